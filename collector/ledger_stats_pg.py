"""``fedledger status`` statistics of a PostgreSQL ledger: the same :class:`LedgerStats` as
:func:`collector.ledger_stats.ledger_stats` computes for SQLite, by SQL aggregates.

Reads only (no lock, no write: no stats cache either, PostgreSQL aggregates the JSON
bodies itself). Nothing here is verification: the numbers describe what the database
says; ``fedledger verify`` checks that it was not altered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from collector.ledger_pg import PostgresLocation, connect, pg_errors_translated
from collector.ledger_stats import CheckpointStats, LedgerStats, LocationStats, SourceStats, merge_locations

# PostgreSQL's json and jsonb refuse the escape \u0000 (a NUL character, which an entry may hold in any
# string of its event, e.g. a CI log line or a Vault request path): one such entry failed the whole
# aggregate. A body holding the six characters \u0000 has them replaced by \ufffd where they are an
# escape (not preceded by an odd number of backslashes) before it is parsed; the fields aggregated
# here are written by fedledger and hold no NUL, so the numbers are those SQLite's json_extract gives.
_DOCS = r"""(SELECT (CASE WHEN strpos(t, '\u0000') > 0
                      THEN regexp_replace(t, '(?<!\\)((\\\\)*)\\u0000', '\1\\ufffd', 'g') ELSE t END)::jsonb AS d
       FROM (SELECT convert_from(body, 'UTF8') AS t FROM {s}.entries) AS b) AS e"""

# Times are normalized RFC 3339 UTC strings: byte order ("C" collation) is time order,
# as with SQLite's max() over text.
_AGGREGATE = """
    SELECT d->'source'->>'id', d->'source'->>'kind', count(*),
           max(d->'event'->>'time' COLLATE "C"), min(d->'event'->>'time' COLLATE "C"),
           max(d->>'observed' COLLATE "C")
    FROM """ + _DOCS + """
    GROUP BY 1, 2
"""


@contextmanager
def _snapshot(url: str, conn: Any) -> Iterator[None]:
    """One read-only REPEATABLE READ transaction, PostgreSQL errors as fedledger's: every number of one
    ``status`` comes from the same snapshot, so batches a concurrent run commits cannot make the
    per-source counts add up to more than the size (in autocommit each statement had its own)."""
    with pg_errors_translated(url), conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def ledger_stats_pg(url: str) -> LedgerStats:
    """Per-source counts and times, ledger size and newest checkpoint of the ledger at *url*."""
    from collector.ledger_open import open_ledger

    open_ledger(url).close()  # "no ledger here" and format checks, with the usual messages
    location = PostgresLocation(url)
    s = location.schema
    conn = connect(location)
    try:
        with _snapshot(url, conn):
            origin_row = conn.execute(f"SELECT value FROM {s}.meta WHERE key='origin'").fetchone()
            size_row = conn.execute(f"SELECT max(seq) FROM {s}.entries").fetchone()
            size = 0 if size_row[0] is None else int(size_row[0]) + 1
            per_source = conn.execute(_AGGREGATE.format(s=s)).fetchall()
            quarantine = {str(a): int(b)
                          for a, b in conn.execute(f"SELECT source, count(*) FROM {s}.quarantine GROUP BY source")}
            cursors = {str(a): str(b) for a, b in conn.execute(f"SELECT source, updated FROM {s}.cursors")}
            cp_row = conn.execute(f"SELECT size, created, root FROM {s}.checkpoints ORDER BY id DESC LIMIT 1").fetchone()
            cp_count = int(conn.execute(f"SELECT count(*) FROM {s}.checkpoints").fetchone()[0])
    finally:
        conn.close()
    sources: dict[str, SourceStats] = {}
    for source_id, kind, count, newest, oldest, observed in per_source:
        sid = str(source_id)
        sources[sid] = SourceStats(sid, str(kind), int(count), newest, oldest, observed,
                                   quarantine.get(sid, 0), cursors.get(sid))
    for sid in set(quarantine) | set(cursors):
        if sid not in sources:
            kind = sid.split(":", 1)[0] if ":" in sid else "unknown"
            sources[sid] = SourceStats(sid, kind, 0, None, None, None, quarantine.get(sid, 0), cursors.get(sid))
    latest = None if cp_row is None else CheckpointStats(int(cp_row[0]), str(cp_row[1]), bytes(cp_row[2]).hex())
    return LedgerStats(
        path=url,
        origin=str(origin_row[0]) if origin_row else "",
        size=size,
        sources=tuple(sorted(sources.values(), key=lambda x: x.source_id)),
        latest_checkpoint=latest,
        checkpoints=cp_count,
        quarantined=sum(quarantine.values()),
    )


_BY_LOCATION = """
    SELECT d->'source'->>'id', d->'source'->>'location', count(*), max(d->'event'->>'time' COLLATE "C")
    FROM """ + _DOCS + """
    WHERE d->'source'->>'id' = ANY(%s)
    GROUP BY 1, 2
"""


def location_stats_pg(url: str, source_ids: Iterable[str]) -> dict[str, list[LocationStats]]:
    """:func:`collector.ledger_stats.location_stats` for a PostgreSQL ledger: one aggregate over the
    stored bodies for all *source_ids* at once (no cache: the server aggregates; see
    docs/postgresql.md)."""
    wanted = sorted(set(source_ids))
    if not wanted:
        return {}
    location = PostgresLocation(url)
    s = location.schema
    conn = connect(location)
    try:
        with _snapshot(url, conn):
            entry_rows = conn.execute(_BY_LOCATION.format(s=s), (wanted,)).fetchall()
            quarantine_rows = conn.execute(
                f"SELECT source, location, count(*) FROM {s}.quarantine WHERE source = ANY(%s) GROUP BY 1, 2",
                (wanted,)).fetchall()
    finally:
        conn.close()
    entries: dict[str, list[tuple[object, ...]]] = {sid: [] for sid in wanted}
    for sid, loc, n, newest in entry_rows:
        entries[str(sid)].append((loc, n, newest))
    quarantined: dict[str, list[tuple[object, ...]]] = {sid: [] for sid in wanted}
    for sid, loc, n in quarantine_rows:
        quarantined[str(sid)].append((loc, n))
    return {sid: merge_locations(entries[sid], quarantined[sid]) for sid in wanted}
