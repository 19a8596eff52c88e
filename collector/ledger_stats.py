"""Read-only statistics of a ledger for ``fedledger status``: per source and overall.

Opens the SQLite file read-only (``mode=ro``) and reads with SQL aggregates, so
status is cheap enough for a monitoring probe and never takes the write lock.
Nothing here is verification: these numbers describe what the database says;
``fedledger verify`` is what checks that the database was not altered.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from collector.errors import MalformedInput, SourceUnavailable


@dataclass(frozen=True)
class SourceStats:
    """What the ledger holds for one ``source.id``.

    ``newest_event_time`` is the greatest ``event.time`` string (times are stored as
    normalized RFC 3339 UTC, so text order is time order to the second).
    ``last_cursor_update`` is the last time a batch of this source committed.
    """

    source_id: str
    kind: str
    entries: int
    newest_event_time: str | None
    oldest_event_time: str | None
    last_observed: str | None
    quarantined: int
    last_cursor_update: str | None


@dataclass(frozen=True)
class CheckpointStats:
    size: int
    created: str
    root_hex: str


@dataclass(frozen=True)
class LedgerStats:
    path: str
    origin: str
    size: int
    sources: tuple[SourceStats, ...]
    latest_checkpoint: CheckpointStats | None
    checkpoints: int
    quarantined: int

    def source(self, source_id: str) -> SourceStats | None:
        for stats in self.sources:
            if stats.source_id == source_id:
                return stats
        return None


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    if not Path(path).is_file():
        raise SourceUnavailable("no ledger here (run `fedledger init` first)", location=str(path))
    conn = sqlite3.connect(f"file:{Path(path).absolute()}?mode=ro", uri=True, timeout=30.0)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        yield conn
    except sqlite3.DatabaseError as exc:
        raise MalformedInput(f"cannot read ledger: {exc}", location=str(path)) from None
    finally:
        conn.close()


_AGGREGATE = """
    SELECT json_extract(b, '$.source.id'), json_extract(b, '$.source.kind'), count(*),
           max(json_extract(b, '$.event.time')), min(json_extract(b, '$.event.time')),
           max(json_extract(b, '$.observed'))
    FROM (SELECT CAST(body AS TEXT) AS b FROM entries WHERE seq >= ?)
    GROUP BY 1, 2
"""
CACHE_VERSION = 1

# (source id, kind) -> [count, newest event time, oldest event time, newest observed]
Aggregates = dict[tuple[str, str], list[Any]]


def stats_cache_path(ledger_path: Path) -> Path:
    return Path(ledger_path).with_name(Path(ledger_path).name + ".stats.json")


def _merge(into: Aggregates, rows: list[tuple[Any, ...]]) -> None:
    for source_id, kind, count, newest, oldest, observed in rows:
        key = (str(source_id), str(kind))
        have = into.get(key)
        if have is None:
            into[key] = [int(count), newest, oldest, observed]
            continue
        have[0] += int(count)
        have[1] = max(v for v in (have[1], newest) if v is not None) if (have[1] or newest) else None
        have[2] = min(v for v in (have[2], oldest) if v is not None) if (have[2] or oldest) else None
        have[3] = max(v for v in (have[3], observed) if v is not None) if (have[3] or observed) else None


def _load_cache(path: Path, conn: sqlite3.Connection, size: int) -> tuple[int, Aggregates]:
    """Aggregates of entries [0, covered) from the cache, if it still describes this ledger."""
    try:
        doc = orjson.loads(path.read_bytes())
        covered = int(doc["covered"])
        if doc.get("v") != CACHE_VERSION or not 0 < covered <= size:
            return 0, {}
        row = conn.execute("SELECT leaf FROM entries WHERE seq = ?", (covered - 1,)).fetchone()
        if row is None or bytes(row[0]).hex() != doc["leaf"]:
            return 0, {}  # the ledger was rolled back or rewritten: start over
        return covered, {(str(a), str(b)): list(v) for a, b, v in doc["aggregates"]}
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return 0, {}


def _save_cache(path: Path, conn: sqlite3.Connection, size: int, aggregates: Aggregates) -> None:
    row = conn.execute("SELECT leaf FROM entries WHERE seq = ?", (size - 1,)).fetchone()
    if row is None:
        return
    doc = {"v": CACHE_VERSION, "covered": size, "leaf": bytes(row[0]).hex(),
           "aggregates": [[sid, kind, v] for (sid, kind), v in sorted(aggregates.items())]}
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(orjson.dumps(doc))
        os.replace(tmp, path)
    except OSError:  # a monitoring user may not be allowed to write here: stay read-only
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class LocationStats:
    """What the ledger holds of one ``source.id`` from one ``source.location`` (a file or object)."""

    location: str
    entries: int
    newest_event_time: str | None
    quarantined: int


_BY_LOCATION = """
    SELECT json_extract(b, '$.source.location'), count(*), max(json_extract(b, '$.event.time'))
    FROM (SELECT CAST(body AS TEXT) AS b FROM entries)
    WHERE json_extract(b, '$.source.id') = ?
    GROUP BY 1
"""


def merge_locations(entry_rows: list[tuple[Any, ...]], quarantine_rows: list[tuple[Any, ...]]) -> list[LocationStats]:
    """(location, count, newest) and (location, count) rows as one :class:`LocationStats` per location."""
    quarantined = {str(loc): int(n) for loc, n in quarantine_rows}
    found = {str(loc): (int(n), newest) for loc, n, newest in entry_rows}
    return [LocationStats(loc, found.get(loc, (0, None))[0], found.get(loc, (0, None))[1], quarantined.get(loc, 0))
            for loc in sorted(set(found) | set(quarantined))]


def location_stats(path: Path, source_id: str) -> list[LocationStats]:
    """Per-location counts of one source id (a full scan of that id's entries; no cache).

    For a source id several configured sources share (every Vault entry is ``vault``),
    where an entry was read from is what tells the sources apart.
    """
    with _read_only(path) as conn:
        entry_rows = conn.execute(_BY_LOCATION, (source_id,)).fetchall()
        quarantine_rows = conn.execute("SELECT location, count(*) FROM quarantine WHERE source = ? GROUP BY 1",
                                       (source_id,)).fetchall()
    return merge_locations(entry_rows, quarantine_rows)


def ledger_stats(path: Path, *, use_cache: bool = True) -> LedgerStats:
    """Per-source counts and times, ledger size and newest checkpoint, read-only.

    With *use_cache*, per-source aggregates of entries already counted are kept in
    ``<ledger>.stats.json`` (checked against the leaf hash of the last counted entry,
    so a rolled-back or rewritten ledger is recounted), and only newer entries are read.
    The cache is an operational shortcut, never evidence.
    """
    with _read_only(path) as conn:
        origin_row = conn.execute("SELECT value FROM meta WHERE key='origin'").fetchone()
        size_row = conn.execute("SELECT max(seq) FROM entries").fetchone()
        size = 0 if size_row[0] is None else int(size_row[0]) + 1
        cache = stats_cache_path(path)
        covered, aggregates = _load_cache(cache, conn, size) if use_cache else (0, {})
        _merge(aggregates, conn.execute(_AGGREGATE, (covered,)).fetchall())
        if use_cache and size > covered:
            _save_cache(cache, conn, size, aggregates)
        per_source = [(sid, kind, *values) for (sid, kind), values in aggregates.items()]
        quarantine = dict(conn.execute("SELECT source, count(*) FROM quarantine GROUP BY source").fetchall())
        cursors = dict(conn.execute("SELECT source, updated FROM cursors").fetchall())
        cp_row = conn.execute("SELECT size, created, root FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
        cp_count = int(conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0])
    sources: dict[str, SourceStats] = {}
    for source_id, kind, count, newest, oldest, observed in per_source:
        sid = str(source_id)
        sources[sid] = SourceStats(sid, str(kind), int(count), newest, oldest, observed,
                                   int(quarantine.get(sid, 0)), cursors.get(sid))
    # Sources that only ever quarantined, or only moved a cursor, still show up.
    for sid in set(quarantine) | set(cursors):
        if sid not in sources:
            kind = sid.split(":", 1)[0] if ":" in sid else "unknown"
            sources[sid] = SourceStats(sid, kind, 0, None, None, None, int(quarantine.get(sid, 0)), cursors.get(sid))
    latest = None if cp_row is None else CheckpointStats(int(cp_row[0]), str(cp_row[1]), bytes(cp_row[2]).hex())
    return LedgerStats(
        path=str(path),
        origin=str(origin_row[0]) if origin_row else "",
        size=size,
        sources=tuple(sorted(sources.values(), key=lambda s: s.source_id)),
        latest_checkpoint=latest,
        checkpoints=cp_count,
        quarantined=sum(int(v) for v in quarantine.values()),
    )
