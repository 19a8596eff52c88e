"""Read-only statistics of a ledger for ``fedledger status``: per source and overall.

Opens the SQLite file read-only (``mode=ro``) and reads with SQL aggregates, so
status is cheap enough for a monitoring probe and never takes the write lock.
Nothing here is verification: these numbers describe what the database says;
``fedledger verify`` is what checks that the database was not altered.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
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
    FROM (SELECT CAST(body AS TEXT) AS b FROM entries WHERE seq >= ? AND seq < ?)
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


def _read_sidecar(path: Path, conn: sqlite3.Connection, size: int, version: int) -> tuple[int, Any]:
    """(covered, document) of a count sidecar that still describes this ledger: its version is
    *version* and the leaf hash of its last counted entry is the ledger's; else (0, None)."""
    try:
        doc = orjson.loads(path.read_bytes())
        covered = int(doc["covered"])
        if doc.get("v") != version or not 0 < covered <= size:
            return 0, None
        if _leaf_hex(conn, covered - 1) != doc["leaf"]:
            return 0, None  # the ledger was rolled back or rewritten: count again
        return covered, doc
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return 0, None


def _write_sidecar(path: Path, conn: sqlite3.Connection, size: int, version: int, body: dict[str, Any]) -> None:
    """Write a count sidecar covering entries [0, size), replaced atomically; a reader that may not
    write here (a monitoring user) stays read-only."""
    leaf = _leaf_hex(conn, size - 1)
    if leaf is None:
        return
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(orjson.dumps({"v": version, "covered": size, "leaf": leaf, **body}))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _leaf_hex(conn: sqlite3.Connection, seq: int) -> str | None:
    row = conn.execute("SELECT leaf FROM entries WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else bytes(row[0]).hex()


def _load_cache(path: Path, conn: sqlite3.Connection, size: int) -> tuple[int, Aggregates]:
    """Aggregates of entries [0, covered) from the cache, if it still describes this ledger."""
    covered, doc = _read_sidecar(path, conn, size, CACHE_VERSION)
    try:
        return (covered, {(str(a), str(b)): list(v) for a, b, v in doc["aggregates"]}) if doc else (0, {})
    except (KeyError, TypeError, ValueError):
        return 0, {}


def _save_cache(path: Path, conn: sqlite3.Connection, size: int, aggregates: Aggregates) -> None:
    _write_sidecar(path, conn, size, CACHE_VERSION,
                   {"aggregates": [[sid, kind, v] for (sid, kind), v in sorted(aggregates.items())]})


@dataclass(frozen=True)
class LocationStats:
    """What the ledger holds of one ``source.id`` from one ``source.location`` (a file or object)."""

    location: str
    entries: int
    newest_event_time: str | None
    quarantined: int


# Rows of (source id, location) for the ids in {marks}; the range is a rowid range of the
# entries table, so exactly hi - lo bodies are read.
_BY_LOCATION = """
    SELECT json_extract(b, '$.source.id'), json_extract(b, '$.source.location'), count(*),
           max(json_extract(b, '$.event.time'))
    FROM (SELECT CAST(body AS TEXT) AS b FROM entries WHERE seq >= ? AND seq < ?)
    WHERE json_extract(b, '$.source.id') IN ({marks})
    GROUP BY 1, 2
"""
LOCATIONS_CACHE_VERSION = 1

# source id -> location (None when an entry names none) -> [count, newest event time]
LocationCounts = dict[str, dict[str | None, list[Any]]]


def locations_cache_path(ledger_path: Path) -> Path:
    return Path(ledger_path).with_name(Path(ledger_path).name + ".locations.json")


def merge_locations(entry_rows: list[tuple[Any, ...]], quarantine_rows: list[tuple[Any, ...]]) -> list[LocationStats]:
    """(location, count, newest) and (location, count) rows as one :class:`LocationStats` per location."""
    quarantined = {str(loc): int(n) for loc, n in quarantine_rows}
    found = {str(loc): (int(n), newest) for loc, n, newest in entry_rows}
    return [LocationStats(loc, found.get(loc, (0, None))[0], found.get(loc, (0, None))[1], quarantined.get(loc, 0))
            for loc in sorted(set(found) | set(quarantined))]


def _load_locations_cache(path: Path, conn: sqlite3.Connection, size: int) -> tuple[int, LocationCounts]:
    """Per-location counts of entries [0, covered) from the cache, if it still describes this ledger."""
    covered, doc = _read_sidecar(path, conn, size, LOCATIONS_CACHE_VERSION)
    if doc is None:
        return 0, {}
    try:
        counts: LocationCounts = {}
        for sid, rows in doc["ids"].items():
            counts[str(sid)] = {None if loc is None else str(loc): [int(n), None if newest is None else str(newest)]
                                for loc, n, newest in rows}
        return covered, counts
    except (KeyError, TypeError, ValueError, AttributeError):
        return 0, {}


def _save_locations_cache(path: Path, conn: sqlite3.Connection, size: int, counts: LocationCounts) -> None:
    _write_sidecar(path, conn, size, LOCATIONS_CACHE_VERSION,
                   {"ids": {sid: [[loc, v[0], v[1]] for loc, v in sorted(by_loc.items(), key=lambda x: str(x[0]))]
                            for sid, by_loc in sorted(counts.items())}})


def _count_locations(conn: sqlite3.Connection, counts: LocationCounts, source_ids: list[str], lo: int, hi: int) -> None:
    """Add the per-location counts of *source_ids* over entries [lo, hi) to *counts*."""
    if not source_ids or hi <= lo:
        return
    sql = _BY_LOCATION.format(marks=", ".join("?" * len(source_ids)))
    for sid, location, count, newest in conn.execute(sql, (lo, hi, *source_ids)).fetchall():
        by_loc = counts.setdefault(str(sid), {})
        key = None if location is None else str(location)
        have = by_loc.get(key)
        if have is None:
            by_loc[key] = [int(count), newest]
        else:
            have[0] += int(count)
            have[1] = max(v for v in (have[1], newest) if v is not None) if (have[1] or newest) else None


def location_stats(path: Path, source_ids: Iterable[str], *, use_cache: bool = True) -> dict[str, list[LocationStats]]:
    """Per-location counts of each of *source_ids*, read-only.

    For a source id several configured sources share (every Vault entry is ``vault``),
    where an entry was read from is what tells the sources apart. With *use_cache*, the
    counts of entries already counted are kept in ``<ledger>.locations.json`` with the seq
    they reach and the leaf hash of the last one (a rolled-back or rewritten ledger is
    counted again), and only entries after it are read; an id asked for the first time is
    counted from the start. Every read stops at the ledger size read first, so entries a
    run commits meanwhile are left for the next call, never counted twice. The cache is
    an operational shortcut, never evidence.
    """
    wanted = sorted(set(source_ids))
    with _read_only(path) as conn:
        size_row = conn.execute("SELECT max(seq) FROM entries").fetchone()
        size = 0 if size_row[0] is None else int(size_row[0]) + 1
        cache = locations_cache_path(path)
        covered, known = _load_locations_cache(cache, conn, size) if use_cache else (0, {})
        counts: LocationCounts = {sid: known[sid] for sid in wanted if sid in known}
        first_time = [sid for sid in wanted if sid not in counts]
        for sid in first_time:
            counts[sid] = {}
        _count_locations(conn, counts, [sid for sid in wanted if sid not in first_time], covered, size)
        _count_locations(conn, counts, first_time, 0, size)
        # Keep only the ids asked for: an id not updated now would fall behind the new "covered".
        if use_cache and size and (size > covered or first_time or set(known) != set(wanted)):
            _save_locations_cache(cache, conn, size, counts)
        quarantine_rows: list[tuple[Any, ...]] = []
        if wanted:
            marks = ", ".join("?" * len(wanted))
            quarantine_rows = conn.execute(
                f"SELECT source, location, count(*) FROM quarantine WHERE source IN ({marks}) GROUP BY 1, 2",
                wanted).fetchall()
    quarantined: dict[str, list[tuple[Any, ...]]] = {sid: [] for sid in wanted}
    for sid, location, n in quarantine_rows:
        quarantined[str(sid)].append((location, n))
    return {sid: merge_locations([(loc, v[0], v[1]) for loc, v in counts[sid].items()], quarantined[sid])
            for sid in wanted}


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
        # Up to the size read above only: a run may commit more meanwhile, and the cache records
        # "counted up to size"; counting beyond it would count those entries again next time.
        _merge(aggregates, conn.execute(_AGGREGATE, (covered, size)).fetchall())
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
