"""``fedledger status`` statistics of a PostgreSQL ledger: the same :class:`LedgerStats` and
per-location counts as :mod:`collector.ledger_stats` computes for SQLite, by SQL aggregates.

One status is one read-only-in-effect ``REPEATABLE READ`` transaction (:func:`status_snapshot`):
the size, the per-source numbers, the per-location ones and the checkpoints all come from the same
moment while a run commits. The counts of entries already counted are kept in the ledger's own
schema, table ``status_cache`` (one row per cache, ``stats`` and ``locations``, holding the same
document as SQLite's ``<ledger>.stats.json`` and ``<ledger>.locations.json``: the counts, the seq
they reach and the leaf hash of the last entry counted), so a status reads only the entries
appended since the last one. A cache counting more entries than the ledger holds, or whose last
counted entry is not the ledger's (a ledger rolled back, truncated or recreated), is not trusted:
everything is counted again.

The cache is brought forward at the end of a status, inside its transaction (so it describes exactly
the snapshot's entries, never one a run commits meanwhile), under ``pg_try_advisory_xact_lock`` on a
key of its own (another status saving at the same time keeps its cache, never blocks) and in a
savepoint: a user who may only read (a monitoring role, a hot standby) gets the same status, from the
cache where one is kept, and writes nothing. Nothing here is verification: the numbers describe what
the database says; ``fedledger verify`` checks that it was not altered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from collector.ledger_pg import CREATE_STATUS_CACHE, PostgresLocation, as_bytes, connect, pg_errors_translated
from collector.ledger_stats import (
    CACHE_VERSION,
    LOCATIONS_CACHE_VERSION,
    LedgerStats,
    LocationRows,
    LocationStats,
    aggregates_body,
    assemble_stats,
    cached_aggregates,
    cached_locations,
    count_locations,
    counts_bytes,
    counts_document,
    location_results,
    locations_body,
    merge_aggregates,
)

# PostgreSQL's json and jsonb refuse the escape \u0000 (a NUL character, which an entry may hold in any
# string of its event, e.g. a CI log line or a Vault request path): one such entry failed the whole
# aggregate. A body holding the six characters \u0000 has them replaced by \ufffd where they are an
# escape (not preceded by an odd number of backslashes) before it is parsed; the fields aggregated
# here are written by fedledger and hold no NUL, so the numbers are those SQLite's json_extract gives.
# {where} is "" (every entry) or "WHERE seq >= %s" (those from a seq on, a range of the primary key). No
# upper bound: in the status's snapshot no entry lies beyond the size it read, and a whole-table scan keeps
# PostgreSQL's parallel plan (a range the planner misestimates, as before a table's first ANALYZE, did not).
_DOCS = r"""(SELECT (CASE WHEN strpos(t, '\u0000') > 0
                      THEN regexp_replace(t, '(?<!\\)((\\\\)*)\\u0000', '\1\\ufffd', 'g') ELSE t END)::jsonb AS d
       FROM (SELECT convert_from(body, 'UTF8') AS t FROM {s}.entries {where}) AS b) AS e"""

# Times are normalized RFC 3339 UTC strings: byte order ("C" collation) is time order,
# as with SQLite's max() over text.
_AGGREGATE = """
    SELECT d->'source'->>'id', d->'source'->>'kind', count(*),
           max(d->'event'->>'time' COLLATE "C"), min(d->'event'->>'time' COLLATE "C"),
           max(d->>'observed' COLLATE "C")
    FROM """ + _DOCS + """
    GROUP BY 1, 2
"""

_BY_LOCATION = """
    SELECT d->'source'->>'id', d->'source'->>'location', count(*), max(d->'event'->>'time' COLLATE "C")
    FROM """ + _DOCS + """
    WHERE d->'source'->>'id' = ANY(%s)
    GROUP BY 1, 2
"""


def _from(seq: int) -> str:
    return "WHERE seq >= %s" if seq else ""


class PostgresStatusReader:
    """The statistics of one ledger as of one snapshot; made by :func:`status_snapshot`."""

    def __init__(self, url: str, location: PostgresLocation, conn: Any, *, use_cache: bool) -> None:
        self.url = url
        self._location = location
        self._s = location.schema
        self._conn = conn
        self._use_cache = use_cache
        self._to_save: dict[str, bytes] = {}
        row = conn.execute(f"SELECT max(seq) FROM {self._s}.entries").fetchone()
        self.size = 0 if row[0] is None else int(row[0]) + 1

    def ledger_stats(self) -> LedgerStats:
        """Per-source counts and times, ledger size and newest checkpoint."""
        conn, s = self._conn, self._s
        covered, aggregates = cached_aggregates(*self._cached("stats", CACHE_VERSION))
        if self.size > covered:
            merge_aggregates(aggregates, conn.execute(_AGGREGATE.format(s=s, where=_from(covered)),
                                                      (covered,) if covered else ()).fetchall())
            self._keep("stats", CACHE_VERSION, aggregates_body(aggregates))
        origin_row = conn.execute(f"SELECT value FROM {s}.meta WHERE key='origin'").fetchone()
        quarantine = conn.execute(f"SELECT source, count(*) FROM {s}.quarantine GROUP BY source").fetchall()
        cursors = conn.execute(f"SELECT source, updated FROM {s}.cursors").fetchall()
        cp_row = conn.execute(f"SELECT size, created, root FROM {s}.checkpoints ORDER BY id DESC LIMIT 1").fetchone()
        cp_count = int(conn.execute(f"SELECT count(*) FROM {s}.checkpoints").fetchone()[0])
        if cp_row is not None:
            cp_row = (cp_row[0], cp_row[1], as_bytes(cp_row[2]))
        return assemble_stats(self.url, str(origin_row[0]) if origin_row else "", self.size, aggregates, quarantine,
                              cursors, cp_row, cp_count)

    def location_stats(self, source_ids: Iterable[str]) -> dict[str, list[LocationStats]]:
        """:func:`collector.ledger_stats.location_stats` for this snapshot: per-location counts of each of
        *source_ids* (a source id that several configured sources share is split by where each entry was
        read from)."""
        wanted = sorted(set(source_ids))
        if not wanted:
            return {}
        conn, s = self._conn, self._s

        def read(ids: list[str], lo: int, _size: int) -> LocationRows:  # the snapshot holds no entry beyond it
            return conn.execute(_BY_LOCATION.format(s=s, where=_from(lo)), ((lo,) if lo else ()) + (ids,)).fetchall()

        covered, known = cached_locations(*self._cached("locations", LOCATIONS_CACHE_VERSION))
        counts, changed = count_locations(known, covered, self.size, wanted, read)
        if changed:
            self._keep("locations", LOCATIONS_CACHE_VERSION, locations_body(counts))
        quarantine_rows = conn.execute(
            f"SELECT source, location, count(*) FROM {s}.quarantine WHERE source = ANY(%s) GROUP BY 1, 2",
            (wanted,)).fetchall()
        return location_results(wanted, counts, quarantine_rows)

    # -- the cache ----------------------------------------------------------------------
    def _leaf_hex(self, seq: int) -> str | None:
        row = self._conn.execute(f"SELECT leaf FROM {self._s}.entries WHERE seq = %s", (seq,)).fetchone()
        return None if row is None else as_bytes(row[0]).hex()

    def _cached(self, name: str, version: int) -> tuple[int, Any]:
        """(covered, document) of cache *name* if it still describes this snapshot's ledger, else (0, None)."""
        import psycopg

        if not self._use_cache:
            return 0, None
        conn = self._conn
        if conn.execute("SELECT to_regclass(%s)", (f"{self._s}.status_cache",)).fetchone()[0] is None:
            return 0, None  # a ledger made before the cache: the first status that may write adds it
        try:
            with conn.transaction():  # a savepoint: a cache this user may not read is no cache, not a failure
                row = conn.execute(f"SELECT doc FROM {self._s}.status_cache WHERE name = %s", (name,)).fetchone()
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedColumn, psycopg.DataError):
            return 0, None
        if row is None:
            return 0, None
        return counts_document(as_bytes(row[0]), self.size, version, self._leaf_hex)

    def _keep(self, name: str, version: int, body: dict[str, Any]) -> None:
        """Save cache *name* (the counts of entries [0, size)) when the status ends."""
        leaf = self._leaf_hex(self.size - 1) if self._use_cache and self.size else None
        if leaf is not None:
            self._to_save[name] = counts_bytes(version, self.size, leaf, body)

    def save(self) -> None:
        """Write the caches brought forward, if this user may and no other status is saving right now.

        In a savepoint: a failure to write (no privilege, a read-only session or standby, another
        status that saved after this snapshot was taken: a serialization failure) leaves the caches as
        they were and the status as it is."""
        import psycopg

        if not self._to_save:
            return
        conn, s = self._conn, self._s
        try:
            with conn.transaction():
                if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                    (self._location.status_cache_lock_key,)).fetchone()[0]:
                    return
                if conn.execute("SELECT to_regclass(%s)", (f"{s}.status_cache",)).fetchone()[0] is None:
                    conn.execute(CREATE_STATUS_CACHE.format(s=s))
        except psycopg.Error:
            return  # the status stands; the next one that may write brings the cache forward
        for name, doc in sorted(self._to_save.items()):
            try:
                with conn.transaction():  # one savepoint each: a newer "stats" kept does not lose "locations"
                    conn.execute(f"INSERT INTO {s}.status_cache(name, doc) VALUES (%s, %s) "
                                 "ON CONFLICT (name) DO UPDATE SET doc = excluded.doc", (name, doc))
            except psycopg.Error:
                pass


@contextmanager
def status_snapshot(url: str, *, use_cache: bool = True) -> Iterator[PostgresStatusReader]:
    """A reader of the statistics of the ledger at *url*, all from one ``REPEATABLE READ`` transaction
    (a batch a run commits meanwhile is in none of its numbers, and counted by the next status).
    With *use_cache*, counts of entries already counted come from the ``status_cache`` table, and it
    is brought forward when the block ends without an error."""
    from collector.ledger_open import open_ledger

    open_ledger(url).close()  # "no ledger here" and format checks, with the usual messages
    location = PostgresLocation(url)
    conn = connect(location)
    try:
        with pg_errors_translated(url), conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            reader = PostgresStatusReader(url, location, conn, use_cache=use_cache)
            yield reader
            reader.save()
    finally:
        conn.close()


def ledger_stats_pg(url: str, *, use_cache: bool = True) -> LedgerStats:
    """Per-source counts and times, ledger size and newest checkpoint of the ledger at *url*."""
    with status_snapshot(url, use_cache=use_cache) as snapshot:
        return snapshot.ledger_stats()


def location_stats_pg(url: str, source_ids: Iterable[str], *, use_cache: bool = True) -> dict[str, list[LocationStats]]:
    """:func:`collector.ledger_stats.location_stats` for a PostgreSQL ledger (see :func:`status_snapshot`)."""
    wanted = sorted(set(source_ids))
    if not wanted:
        return {}
    with status_snapshot(url, use_cache=use_cache) as snapshot:
        return snapshot.location_stats(wanted)
