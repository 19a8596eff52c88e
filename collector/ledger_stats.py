"""Read-only statistics of a ledger for ``fedledger status``: per source and overall.

Opens the SQLite file read-only (``mode=ro``) and reads with SQL aggregates, so
status is cheap enough for a monitoring probe and never takes the write lock.
Nothing here is verification: these numbers describe what the database says;
``fedledger verify`` is what checks that the database was not altered.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce
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


def merge_aggregates(into: Aggregates, rows: list[tuple[Any, ...]]) -> None:
    """Add aggregate rows (source id, kind, count, newest, oldest, observed) of more entries to *into*."""
    for source_id, kind, count, newest, oldest, observed in rows:
        key = (str(source_id), str(kind))
        have = into.get(key)
        if have is None:
            into[key] = [int(count), newest, oldest, observed]
            continue
        have[0] += int(count)
        have[1], have[2], have[3] = _later(have[1], newest), _earlier(have[2], oldest), _later(have[3], observed)


def _sql_order(value: Any) -> tuple[int, Any]:
    """The order SQL's max() and min() give the values merged here: numbers before text (SQLite's
    json_extract gives a number for a numeric time; PostgreSQL's ->> gives text only)."""
    return (0, value) if isinstance(value, (int, float)) else (1, value)


def _later(a: Any, b: Any) -> Any:
    """max() of two aggregated values as SQL takes it: NULL only when both are (an empty string is a value)."""
    return a if b is None else b if a is None else max(a, b, key=_sql_order)


def _earlier(a: Any, b: Any) -> Any:
    return a if b is None else b if a is None else min(a, b, key=_sql_order)


def counts_document(data: bytes, size: int, version: int, leaf_hex: Callable[[int], str | None]) -> tuple[int, Any]:
    """(covered, document) of a counts cache (a sidecar file's bytes, or the PostgreSQL ``status_cache``
    row's) that still describes a ledger of *size* entries: its version is *version*, it counts no more
    entries than the ledger holds, and the leaf hash of its last counted entry is the ledger's
    (*leaf_hex(seq)*); else (0, None), and everything is counted again."""
    try:
        doc = orjson.loads(data)
        covered = int(doc["covered"])
        if doc.get("v") != version or not 0 < covered <= size:
            return 0, None
        if leaf_hex(covered - 1) != doc["leaf"]:
            return 0, None  # the ledger was rolled back or rewritten: count again
        return covered, doc
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return 0, None


def counts_bytes(version: int, size: int, leaf_hex: str, body: dict[str, Any]) -> bytes:
    """A counts cache of entries [0, size) whose last entry's leaf hash is *leaf_hex*."""
    return orjson.dumps({"v": version, "covered": size, "leaf": leaf_hex, **body})


def _read_sidecar(path: Path, conn: sqlite3.Connection, size: int, version: int) -> tuple[int, Any]:
    try:
        data = path.read_bytes()
    except OSError:
        return 0, None
    return counts_document(data, size, version, lambda seq: _leaf_hex(conn, seq))


def _write_sidecar(path: Path, conn: sqlite3.Connection, size: int, version: int, body: dict[str, Any]) -> None:
    """Write a count sidecar covering entries [0, size), replaced atomically; a reader that may not
    write here (a monitoring user) stays read-only."""
    leaf = _leaf_hex(conn, size - 1)
    if leaf is None:
        return
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(counts_bytes(version, size, leaf, body))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _leaf_hex(conn: sqlite3.Connection, seq: int) -> str | None:
    row = conn.execute("SELECT leaf FROM entries WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else bytes(row[0]).hex()


def cached_aggregates(covered: int, doc: Any) -> tuple[int, Aggregates]:
    """(covered, aggregates) held by a checked ``.stats.json`` document (:func:`counts_document`);
    (0, {}) for none or one of another shape."""
    try:
        aggregates = {(str(a), str(b)): list(v) for a, b, v in doc["aggregates"]} if doc else {}
    except (KeyError, TypeError, ValueError):
        return 0, {}
    if not all(_aggregate_counts(v) for v in aggregates.values()):
        return 0, {}  # [count, newest, oldest, observed] is what merge_aggregates and assemble_stats take
    return (covered, aggregates) if doc else (0, {})


def _aggregate_counts(value: list[Any]) -> bool:
    return (len(value) == 4 and type(value[0]) is int and value[0] >= 0
            and all(v is None or type(v) in (str, int, float) for v in value[1:]))


def aggregates_body(aggregates: Aggregates) -> dict[str, Any]:
    return {"aggregates": [[sid, kind, v] for (sid, kind), v in sorted(aggregates.items())]}


def _load_cache(path: Path, conn: sqlite3.Connection, size: int) -> tuple[int, Aggregates]:
    """Aggregates of entries [0, covered) from the cache, if it still describes this ledger."""
    return cached_aggregates(*_read_sidecar(path, conn, size, CACHE_VERSION))


def _save_cache(path: Path, conn: sqlite3.Connection, size: int, aggregates: Aggregates) -> None:
    _write_sidecar(path, conn, size, CACHE_VERSION, aggregates_body(aggregates))


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


def cached_locations(covered: int, doc: Any) -> tuple[int, LocationCounts]:
    """(covered, per-location counts) held by a checked ``.locations.json`` document
    (:func:`counts_document`); (0, {}) for none or one of another shape."""
    if doc is None:
        return 0, {}
    try:
        counts: LocationCounts = {}
        for sid, rows in doc["ids"].items():
            counts[str(sid)] = {None if loc is None else str(loc): [int(n), _time_value(newest)]
                                for loc, n, newest in rows}
        return covered, counts
    except (KeyError, TypeError, ValueError, AttributeError):
        return 0, {}


def _time_value(value: Any) -> Any:
    """A cached newest time as SQL gave it (text, or a number from SQLite's json_extract), so merged
    with newer ones it compares as a recount does."""
    if value is None or type(value) in (str, int, float):
        return value
    raise ValueError("not a time")


def locations_body(counts: LocationCounts) -> dict[str, Any]:
    return {"ids": {sid: [[loc, v[0], v[1]] for loc, v in sorted(by_loc.items(), key=lambda x: str(x[0]))]
                    for sid, by_loc in sorted(counts.items())}}


def _load_locations_cache(path: Path, conn: sqlite3.Connection, size: int) -> tuple[int, LocationCounts]:
    """Per-location counts of entries [0, covered) from the cache, if it still describes this ledger."""
    return cached_locations(*_read_sidecar(path, conn, size, LOCATIONS_CACHE_VERSION))


def _save_locations_cache(path: Path, conn: sqlite3.Connection, size: int, counts: LocationCounts) -> None:
    _write_sidecar(path, conn, size, LOCATIONS_CACHE_VERSION, locations_body(counts))


# (source id, location, count, newest event time) rows of some entries
LocationRows = list[tuple[Any, ...]]


def count_locations(known: LocationCounts, covered: int, size: int, wanted: list[str],
                    read: Callable[[list[str], int, int], LocationRows]) -> tuple[LocationCounts, bool]:
    """Per-location counts of each of *wanted* over entries [0, size), from *known* (the counts of
    entries [0, covered)) and *read(ids, lo, hi)*, the rows of entries [lo, hi) of *ids*: ids already
    known are read from *covered*, an id asked for the first time from 0. Also whether the result
    should replace the cache: it holds the ids asked for only, as one not brought forward now would
    fall behind its new ``covered``."""
    counts: LocationCounts = {sid: known[sid] for sid in wanted if sid in known}
    first_time = [sid for sid in wanted if sid not in counts]
    for sid in first_time:
        counts[sid] = {}
    for ids, lo in (([sid for sid in wanted if sid not in first_time], covered), (first_time, 0)):
        if ids and size > lo:
            _merge_location_rows(counts, read(ids, lo, size))
    return counts, bool(size) and (size > covered or bool(first_time) or set(known) != set(wanted))


def _merge_location_rows(counts: LocationCounts, rows: LocationRows) -> None:
    for sid, location, count, newest in rows:
        by_loc = counts.setdefault(str(sid), {})
        key = None if location is None else str(location)
        have = by_loc.get(key)
        if have is None:
            by_loc[key] = [int(count), newest]
        else:
            have[0] += int(count)
            have[1] = _later(have[1], newest)


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

        def read(ids: list[str], lo: int, hi: int) -> LocationRows:
            return conn.execute(_BY_LOCATION.format(marks=", ".join("?" * len(ids))), (lo, hi, *ids)).fetchall()

        counts, changed = count_locations(known, covered, size, wanted, read)
        if use_cache and changed:
            _save_locations_cache(cache, conn, size, counts)
        quarantine_rows: list[tuple[Any, ...]] = []
        if wanted:
            marks = ", ".join("?" * len(wanted))
            quarantine_rows = conn.execute(
                f"SELECT source, location, count(*) FROM quarantine WHERE source IN ({marks}) GROUP BY 1, 2",
                wanted).fetchall()
    return location_results(wanted, counts, quarantine_rows)


def location_results(wanted: list[str], counts: LocationCounts,
                     quarantine_rows: list[tuple[Any, ...]]) -> dict[str, list[LocationStats]]:
    """One :class:`LocationStats` list per id of *wanted*, from its counts and the (source id,
    location, count) rows of the quarantine."""
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
        merge_aggregates(aggregates, conn.execute(_AGGREGATE, (covered, size)).fetchall())
        if use_cache and size > covered:
            _save_cache(cache, conn, size, aggregates)
        quarantine = conn.execute("SELECT source, count(*) FROM quarantine GROUP BY source").fetchall()
        cursors = conn.execute("SELECT source, updated FROM cursors").fetchall()
        cp_row = conn.execute("SELECT size, created, root FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
        cp_count = int(conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0])
        origin = str(origin_row[0]) if origin_row else ""
    return assemble_stats(str(path), origin, size, aggregates, quarantine, cursors, cp_row, cp_count)


def assemble_stats(path: str, origin: str, size: int, aggregates: Aggregates, quarantine_rows: Iterable[tuple[Any, Any]],
                   cursor_rows: Iterable[tuple[Any, Any]], cp_row: tuple[Any, ...] | None, cp_count: int) -> LedgerStats:
    """:class:`LedgerStats` from the per-source aggregates, the (source, count) rows of the quarantine,
    the (source, updated) rows of the cursors and the newest checkpoint's (size, created, root) row."""
    quarantine = {str(sid): int(n) for sid, n in quarantine_rows}
    cursors = {str(sid): str(updated) for sid, updated in cursor_rows}
    # One source id whose entries name several kinds (or none) is one source: all its entries count,
    # under the kind most of them name (the smallest name on a tie), whatever order the rows came in.
    by_id: dict[str, list[tuple[str, list[Any]]]] = {}
    for (source_id, kind), counts in aggregates.items():
        by_id.setdefault(str(source_id), []).append((str(kind), counts))
    sources: dict[str, SourceStats] = {}
    for sid, kinds in by_id.items():
        kind = min(kinds, key=lambda k: (-int(k[1][0]), k[0]))[0]
        sources[sid] = SourceStats(sid, kind, sum(int(c[0]) for _, c in kinds),
                                   reduce(_later, (c[1] for _, c in kinds), None),
                                   reduce(_earlier, (c[2] for _, c in kinds), None),
                                   reduce(_later, (c[3] for _, c in kinds), None),
                                   quarantine.get(sid, 0), cursors.get(sid))
    # Sources that only ever quarantined, or only moved a cursor, still show up.
    for sid in set(quarantine) | set(cursors):
        if sid not in sources:
            kind = sid.split(":", 1)[0] if ":" in sid else "unknown"
            sources[sid] = SourceStats(sid, kind, 0, None, None, None, quarantine.get(sid, 0), cursors.get(sid))
    latest = None if cp_row is None else CheckpointStats(int(cp_row[0]), str(cp_row[1]), bytes(cp_row[2]).hex())
    return LedgerStats(
        path=path,
        origin=origin,
        size=size,
        sources=tuple(sorted(sources.values(), key=lambda s: s.source_id)),
        latest_checkpoint=latest,
        checkpoints=cp_count,
        quarantined=sum(quarantine.values()),
    )
