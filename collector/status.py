"""``fedledger status``: is every configured source's evidence fresh against its cadence?

A source is stale when its newest evidence (``event.time``) is older than
``as_of - cadence``, or when it has no evidence at all. ``as_of`` is an input.
Entries are attributed to a configured source by the source ids its collector
plans (``source.id`` in entries); when its collector is not available in this
build, by kind (ids of that kind not claimed by another configured source). An id that
several configured sources share (every Vault entry's is ``vault``, whichever server or
file it came from) is split by where each entry was read from (``source.location``);
on SQLite those per-location counts are kept in ``<ledger>.locations.json`` like the
per-source ones in ``<ledger>.stats.json``, on PostgreSQL in the ledger schema's
``status_cache`` table, so a call reads only the entries appended since the last one
(:func:`collector.ledger_stats.location_stats`, :mod:`collector.ledger_stats_pg`). On
PostgreSQL every number of one status comes from one snapshot (:func:`_stats_reader`).
Freshness here is operational: the numbers come from the database as it is, and
``fedledger verify`` is what checks the database was not altered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from collector.config import FedledgerConfig, SourceConfig
from collector.errors import FedledgerError
from collector.ledger_stats import LedgerStats, LocationStats, SourceStats, ledger_stats, location_stats
from collector.rotation import covers_location
from collector.timeutil import format_time, parse_time


@dataclass(frozen=True)
class SourceStatus:
    name: str
    kind: str
    cadence: str | None
    cadence_seconds: int | None
    source_ids: tuple[str, ...]
    matched_by: str  # "plan" | "kind"
    entries: int
    quarantined: int
    newest_evidence: str | None
    newest_evidence_age_s: int | None
    last_collection: str | None
    last_run_ok: bool | None
    last_error: str | None
    enabled: bool
    stale: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class StatusReport:
    as_of: str
    ledger: LedgerStats
    sources: list[SourceStatus] = field(default_factory=list)
    unconfigured: list[SourceStats] = field(default_factory=list)
    checkpoint_age_s: int | None = None
    config: str | None = None

    @property
    def stale(self) -> list[str]:
        return [s.name for s in self.sources if s.stale]

    def to_json(self) -> dict[str, Any]:
        cp = self.ledger.latest_checkpoint
        return {
            "as_of": self.as_of,
            "config": self.config,
            "ok": not self.stale,
            "stale": self.stale,
            "ledger": {
                "path": self.ledger.path,
                "origin": self.ledger.origin,
                "size": self.ledger.size,
                "quarantined": self.ledger.quarantined,
                "checkpoints": self.ledger.checkpoints,
                "latest_checkpoint": None if cp is None else {
                    "size": cp.size, "created": cp.created, "root": cp.root_hex, "age_s": self.checkpoint_age_s,
                    "unsigned_entries": self.ledger.size - cp.size,
                },
            },
            "sources": [s.to_json() for s in self.sources],
            "unconfigured_sources": [
                {"source_id": u.source_id, "kind": u.kind, "entries": u.entries, "quarantined": u.quarantined,
                 "newest_evidence": u.newest_event_time, "last_collection": u.last_cursor_update}
                for u in self.unconfigured
            ],
        }


def _age(as_of: datetime, text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int((as_of - parse_time(text)).total_seconds())
    except FedledgerError:
        return None


def _planned_ids(source: SourceConfig, cfg: FedledgerConfig, ledger_path: Path | str, as_of: datetime) -> tuple[str, ...] | None:
    from collector.run import RunContext, plan_source

    try:
        return tuple(p.source_id for p in plan_source(source, RunContext(cfg, ledger_path, as_of, "", "status")))
    except FedledgerError:
        return None


class _StatsReader(Protocol):
    def ledger_stats(self) -> LedgerStats: ...

    def location_stats(self, source_ids: list[str]) -> dict[str, list[LocationStats]]: ...


@dataclass(frozen=True)
class _SqliteStats:
    path: Path

    def ledger_stats(self) -> LedgerStats:
        return ledger_stats(self.path)

    def location_stats(self, source_ids: list[str]) -> dict[str, list[LocationStats]]:
        return location_stats(self.path, source_ids) if source_ids else {}


@contextmanager
def _stats_reader(ledger_path: Path | str) -> Iterator[_StatsReader]:
    """The ledger's statistics; on PostgreSQL all from one snapshot, read and cached in one transaction
    (the configured sources are planned before it starts)."""
    from collector.ledger_pg import is_postgres_url

    if is_postgres_url(ledger_path):
        from collector.ledger_stats_pg import status_snapshot

        with status_snapshot(str(ledger_path)) as snapshot:
            yield snapshot
    else:
        yield _SqliteStats(Path(ledger_path))


def _max(values: list[str | None]) -> str | None:
    present = [v for v in values if v]
    return max(present) if present else None


def ledger_status(ledger_path: Path | str, cfg: FedledgerConfig | None, *, as_of: datetime) -> StatusReport:
    """Status of every configured source (and of ledger sources the config does not name)."""
    from collector.run import read_journal

    # Planned (a source's listing may take seconds) before the statistics are read: on PostgreSQL they
    # are one transaction, which a server's idle_in_transaction_session_timeout ends if it waits.
    journal = read_journal(ledger_path) if cfg is not None else []
    planned = {s.name: _planned_ids(s, cfg, ledger_path, as_of) for s in cfg.sources} if cfg is not None else {}
    with _stats_reader(ledger_path) as reader:
        return _status(reader, cfg, as_of, journal, planned)


def _status(reader: _StatsReader, cfg: FedledgerConfig | None, as_of: datetime, journal: list[dict[str, Any]],
            planned: dict[str, tuple[str, ...] | None]) -> StatusReport:
    stats = reader.ledger_stats()
    report = StatusReport(as_of=format_time(as_of), ledger=stats, config=str(cfg.path) if cfg else None)
    if stats.latest_checkpoint is not None:
        report.checkpoint_age_s = _age(as_of, stats.latest_checkpoint.created)
    if cfg is None:
        report.unconfigured = list(stats.sources)
        return report
    claimed = {sid for ids in planned.values() if ids for sid in ids}
    # Journal ids claim too: a source whose files moved still owns what it collected.
    for run_doc in journal:
        for name, doc in (run_doc.get("sources") or {}).items():
            if name in planned and isinstance(doc, dict):
                claimed.update(str(i) for i in doc.get("source_ids") or [])
    by_kind_taken: set[str] = set()
    matched: dict[str, tuple[tuple[str, ...], str]] = {}
    for source in cfg.sources:
        ids = planned[source.name]
        matched_by = "plan"
        history_ids = {str(i) for r in journal for n, d in (r.get("sources") or {}).items()
                       if n == source.name and isinstance(d, dict) for i in d.get("source_ids") or []}
        if ids is None:
            matched_by = "kind"
            ids = tuple(s.source_id for s in stats.sources
                        if s.kind == source.kind and (s.source_id not in claimed or s.source_id in history_ids)
                        and s.source_id not in by_kind_taken)
            by_kind_taken.update(ids)
        matched[source.name] = (tuple(sorted(set(ids) | history_ids)), matched_by)
    # A source id several configured sources write (every Vault entry is "vault", whichever
    # server it came from): each source gets only the entries read from its own locations.
    owners: dict[str, int] = {}
    for ids, _ in matched.values():
        for sid in ids:
            owners[sid] = owners.get(sid, 0) + 1
    # One read for all of them; on SQLite only the entries appended since the last status call.
    by_location = reader.location_stats(sorted(sid for sid, n in owners.items()
                                               if n > 1 and stats.source(sid) is not None))
    for source in cfg.sources:
        all_ids, matched_by = matched[source.name]
        mine = [s for s in stats.sources if s.source_id in all_ids and s.source_id not in by_location]
        for sid in all_ids:
            if sid in by_location:
                shared = stats.source(sid)
                assert shared is not None
                covered = [loc for loc in by_location[sid] if covers_location(source.locations, loc.location)]
                mine.append(SourceStats(sid, shared.kind, sum(loc.entries for loc in covered),
                                        _max([loc.newest_event_time for loc in covered]), None, None,
                                        sum(loc.quarantined for loc in covered), shared.last_cursor_update))
        newest = _max([s.newest_event_time for s in mine])
        # Per-file cursors under "<kind>:<path>" (Vault's entries all say "vault") also date a collection.
        file_cursors = [s.last_cursor_update for s in stats.sources
                        if s.source_id.startswith(source.kind + ":") and s.source_id not in all_ids
                        and covers_location(source.locations, s.source_id.split(":", 1)[1])]
        last_ok, last_error, last_collection = None, None, _max([s.last_cursor_update for s in mine] + file_cursors)
        for run_doc in reversed(journal):
            doc = (run_doc.get("sources") or {}).get(source.name)
            if not isinstance(doc, dict):
                continue
            if last_ok is None:
                last_ok = bool(doc.get("ok"))
                last_error = doc.get("error") if not doc.get("ok") else None
            if doc.get("ok"):
                last_collection = _max([last_collection, run_doc.get("as_of")])
                break
        age = _age(as_of, newest)
        stale, reason = False, "fresh"
        if source.cadence is None:
            reason = "no cadence configured"
        elif newest is None:
            stale, reason = True, "no evidence collected yet"
        elif age is not None and age > source.cadence.seconds:
            stale, reason = True, f"newest evidence is older than {source.cadence.name}"
        if not source.enabled:
            stale, reason = False, "disabled"
        report.sources.append(SourceStatus(
            name=source.name, kind=source.kind,
            cadence=source.cadence.name if source.cadence else None,
            cadence_seconds=source.cadence.seconds if source.cadence else None,
            source_ids=all_ids, matched_by=matched_by,
            entries=sum(s.entries for s in mine), quarantined=sum(s.quarantined for s in mine),
            newest_evidence=newest, newest_evidence_age_s=age, last_collection=last_collection,
            last_run_ok=last_ok, last_error=last_error, enabled=source.enabled, stale=stale, reason=reason,
        ))
    used = {sid for s in report.sources for sid in s.source_ids}
    # Collectors keep one cursor per file or object under their source id; such
    # cursor-only ids (no entries, nothing quarantined) are not sources of their own.
    report.unconfigured = [s for s in stats.sources if s.source_id not in used and (s.entries or s.quarantined)]
    return report


def _age_text(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{sign}{days}d{hours}h"
    if hours:
        return f"{sign}{hours}h{rest // 60}m"
    return f"{sign}{rest // 60}m"


def render_status(report: StatusReport) -> list[str]:
    """Human lines: the ledger, one line per source, a tally."""
    led = report.ledger
    lines = [f"ledger {led.path} ({led.origin}): {led.size} entries, {led.quarantined} quarantined, as of {report.as_of}"]
    cp = led.latest_checkpoint
    if cp is None:
        lines.append("last checkpoint: none")
    else:
        unsigned = led.size - cp.size
        lines.append(f"last checkpoint: size {cp.size}, created {cp.created} ({_age_text(report.checkpoint_age_s)} ago)"
                     + (f", {unsigned} entries not yet checkpointed" if unsigned else ""))
    for s in report.sources:
        mark = "STALE" if s.stale else ("ok" if s.cadence and s.enabled else "-")
        last = f"last collection {s.last_collection or 'never'}" + ("" if s.last_run_ok in (None, True) else
                                                                    f" (last run FAILED: {s.last_error})")
        lines.append(f"  {mark:5} {s.name} [{s.kind}] {s.entries} entries, {s.quarantined} quarantined, newest evidence "
                     f"{s.newest_evidence or 'none'} (age {_age_text(s.newest_evidence_age_s)}, cadence "
                     f"{s.cadence or 'none'}), {last}" + (f": {s.reason}" if s.stale or not s.enabled else ""))
    for u in report.unconfigured:
        lines.append(f"  -     {u.source_id} [{u.kind}] (not in the config) {u.entries} entries, newest evidence "
                     f"{u.newest_event_time or 'none'}")
    stale = report.stale
    unchecked = sum(1 for s in report.sources if not s.stale and (s.cadence is None or not s.enabled))
    fresh = len(report.sources) - len(stale) - unchecked
    lines.append(f"{len(report.sources)} source(s): {fresh} fresh, {len(stale)} STALE, {unchecked} not checked"
                 if report.sources else "no configured sources (give --config for freshness)")
    return lines
