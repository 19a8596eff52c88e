"""``fedledger run``: collect every configured source, sign a checkpoint, anchor it, bundle.

Order of a run, under the per-ledger :class:`~collector.runlock.RunLock`:

1. each enabled source, independently: its factory (``SOURCE_FACTORIES[kind]``) plans
   one or more collections; each is ingested with :func:`collector.ingest.ingest`
   (batched, idempotent, resumable). A failing source is logged and named, the
   others still run, and the run exits 3;
2. a checkpoint of the new tree head is signed (skipped when the newest checkpoint
   already covers the current size);
3. the newest checkpoint is published to S3 under Object Lock when asked;
4. a bundle is built when asked (``--bundle`` or ``[bundle] after_run``).

A failed step (2-4) exits with the code of its error's family
(:data:`collector.errors.EXIT_CODES`), the code ``fedledger checkpoint`` or
``fedledger bundle`` would exit with: a refusal to sign (the tree does not extend
what this key signed or anchored) and a URL the bundle's PDF renderer refused are
1, an unreachable KMS, key file or bucket is 3. A failed source is 3, except one that
found tampering (a file whose already-read part changed, a digest chain that does not
validate, records changed after they were read): that is 1, as ``fedledger collect``
exits. When several things failed, 1 wins (tampering was detected, and retrying will
not clear it), else the highest code.

A killed run loses at most its uncommitted batch: a re-run resumes from the cursors
and ends with the same entries and root as an uninterrupted run (given the same
``--as-of``, which is the ``observed`` time written into entries).

Source factories
----------------
``SOURCE_FACTORIES`` maps a source kind to a :data:`SourceFactory`, or to the string
``"collector.sources.<kind>:build_sources"`` which is imported only when a source of
that kind is configured. A factory has the signature::

    def build_sources(source: SourceConfig, context: RunContext) -> Sequence[PlannedCollection]

It must not do heavy I/O (listing a folder is fine): it builds one
:class:`~collector.evidence.Source` per independent stream and names the
``source_id`` written into entries (``source.id``) and quarantine rows. It raises
:class:`~collector.errors.FedledgerError` subclasses for bad settings; reading the
evidence happens later, inside ``Source.collect``. A kind whose module or factory is
missing fails with :class:`~collector.errors.SourceUnavailable`.
"""

from __future__ import annotations

import importlib
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from collector.checkpoint import NoteVerifier
from collector.checkpoint_keys import note_handover
from collector.config import FedledgerConfig, SourceConfig
from collector.errors import (EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, FedledgerError, IntegrityError, SourceUnavailable,
                              UsageError, exit_code_for)
from collector.evidence import Source, SourceItem
from collector.ingest import DEFAULT_BATCH, IngestSummary, ingest_source, iter_files
from collector.ledger import CONFLICT_REASON, Ledger, StoredCheckpoint
from collector.runlock import LedgerLocked, LockHolder, RunLock
from collector.signing import CheckpointAnchor, NoteSigner
from collector.timeutil import format_time, utc_now

RUN_LOG_VERSION = 1

# -- the factory registry ---------------------------------------------------------------


@dataclass(frozen=True)
class RunContext:
    """What a factory may use: the whole config, the ledger path, the run's time and id."""

    config: FedledgerConfig
    ledger_path: Path | str  # a SQLite file, or a postgresql:// URL
    as_of: datetime
    observed: str
    run_id: str
    # source name -> files under its folders that it does not read (by their names), which a
    # factory finds while planning; a source found such files while collecting says so in its
    # ``skipped`` list. Both end in the source's outcome: nothing is passed over in silence.
    skipped: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedCollection:
    """One stream to ingest: ``source.collect`` items go into entries as ``source_id``.

    Plans of one source are ingested in order, so a later plan's ``Source.collect``
    may use what an earlier one did (e.g. validate CloudTrail digests after the logs).
    ``finish`` runs after the plan's ingest with its counts; raising a
    :class:`~collector.errors.FedledgerError` there (a tampered file, a broken digest
    chain) fails the source while keeping what was appended.
    """

    source: Source
    source_id: str
    label: str
    finish: Callable[[IngestSummary], None] | None = None
    batch_size: int | None = None


_T = TypeVar("_T")
SourceFactory = Callable[[SourceConfig, RunContext], Sequence[PlannedCollection]]


def manual_factory(source: SourceConfig, context: RunContext) -> Sequence[PlannedCollection]:
    """``kind = "manual"``: JSON-lines files (or folders of ``.jsonl``/``.ndjson`` files) of normalized events."""
    from collector.sources.manual import ManualEvents

    remote = [loc for loc in source.locations if "://" in loc]
    if remote:
        raise UsageError(f"source {source.name}: manual sources read local files only, not {remote[0]}")
    plans = []
    skipped = context.skipped.setdefault(source.name, [])
    for path in iter_files(source.locations, suffixes=(".jsonl", ".ndjson", ".json"), skipped=skipped):
        events = AllOrNothingManualEvents(path)
        plans.append(PlannedCollection(events, events.source_id, str(path)))
    return plans


class AllOrNothingManualEvents(Source):
    """Manual events keep ``fedledger append`` semantics: a file with a bad line appends nothing."""

    kind = "manual"

    def __init__(self, path: Path) -> None:
        from collector.sources.manual import ManualEvents

        self._events = ManualEvents(path)
        self.source_id = self._events.source_id

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        from collector.errors import MalformedInput

        problems = self._events.validate(cursors)
        if problems:
            raise MalformedInput(f"{len(problems)} bad line(s), first: {problems[0]}; nothing appended from this file")
        return self._events.collect(cursors)


# Registration points. The lead fills in the collectors when merging; until then a
# configured source of that kind fails (exit 3) with "not available in this build".
SOURCE_FACTORIES: dict[str, SourceFactory | str] = {
    "manual": manual_factory,
    "vault": "collector.sources.vault:build_sources",
    "ci": "collector.sources.ci:build_sources",
    "cloudtrail": "collector.sources.cloudtrail:build_sources",
    "attestations": "collector.sources.attestations:build_sources",
}

# Called when a run builds a bundle: (config, ledger_path, *, as_of, run_id, anchor) -> BuiltBundle;
# *anchor* is the publish target (or None), which the bundle's own signing must also extend.
BUNDLE_HOOK = "bundler.make_bundle:bundle_after_run"
# What the run's `bundle` log line repeats of the bundle's summary: the counts `fedledger bundle` prints.
BUNDLE_LOG_COUNTS = ("controls", "checkpoint_size", "attestations")


@dataclass(frozen=True)
class BuiltBundle:
    """What the bundle hook made: the bundle (archive, else folder), the URLs its PDF renderer
    refused, as (page, URL) pairs, and what `fedledger bundle` reports of it
    (:func:`bundler.make_bundle.bundle_summary`: controls, checkpoint, attestation counts). A refusal
    fails the run's bundle step with exit 1, as ``fedledger bundle`` exits 1; the bundle itself is
    complete and signed either way."""

    path: Path
    refusals: tuple[tuple[str, str], ...] = ()
    summary: dict[str, Any] | None = None


def _import_target(target: str, what: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise SourceUnavailable(f"{what} is not available in this build ({module_name} is not installed)") from None
        raise
    func = getattr(module, attr, None)
    if not callable(func):
        raise SourceUnavailable(f"{what} is not available in this build ({module_name} has no {attr}())")
    return func  # type: ignore[no-any-return]


def resolve_factory(kind: str) -> SourceFactory:
    entry = SOURCE_FACTORIES.get(kind)
    if entry is None:
        raise SourceUnavailable(f"no collector registered for source kind {kind!r}")
    if isinstance(entry, str):
        return _import_target(entry, f"the {kind} collector")  # type: ignore[return-value]
    return entry


def plan_source(source: SourceConfig, context: RunContext) -> Sequence[PlannedCollection]:
    return resolve_factory(source.kind)(source, context)


# -- structured logs -------------------------------------------------------------------


class RunLog:
    """JSON lines (one object per event, with ``run_id``) or human lines on a terminal.

    *also_human* adds a second sink of human lines (a terminal while JSON goes to a file).
    """

    def __init__(self, stream: IO[str], *, human: bool, run_id: str, also_human: IO[str] | None = None) -> None:
        self.sinks: list[tuple[IO[str], bool]] = [(stream, human)]
        if also_human is not None:
            self.sinks.append((also_human, True))
        self.run_id = run_id

    def emit(self, event: str, **fields: Any) -> None:
        for stream, human in self.sinks:
            if human:
                stream.write(_human_line(event, {"run_id": self.run_id, **fields}) + "\n")
            else:
                doc = {"v": RUN_LOG_VERSION, "ts": format_time(utc_now()), "run_id": self.run_id, "event": event,
                       **fields}
                stream.write(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
            stream.flush()


def _human_line(event: str, f: Mapping[str, Any]) -> str:
    if event == "source.done":
        c = f["counts"]
        moved = "".join(f"; followed the rotation of {r['file']} to {r['moved_to']}" for r in f.get("rotations", ()))
        skipped = f.get("skipped_files") or ()
        passed = (f"; skipped {len(skipped)} file(s) not named like its input: {', '.join(skipped[:3])}"
                  + (", …" if len(skipped) > 3 else "")) if skipped else ""
        return (f"  {f['source']}: {c['read']} read, {c['appended']} appended, {c['duplicate']} duplicate, "
                f"{c['quarantined']} quarantined ({f['duration_s']:.1f}s){moved}{passed}")
    if event == "source.failed":
        return f"  {f['source']}: FAILED ({f['error']}): {f['message']}"
    if event == "run.start":
        return f"run {f['run_id']}: {len(f['sources'])} source(s) into {f['ledger']}"
    if event == "lock.refused":
        return f"  {f['message']}"
    if event == "lock.waiting":
        return f"  another run holds the ledger lock ({f['holder']}): waiting up to {f['wait_s']:g}s"
    if event == "lock.taken_over":
        return f"  note: took over a stale ledger lock ({f['previous']})"
    if event == "checkpoint":
        return f"  checkpoint: size {f['size']} root {f['root'][:16]}…" + ("" if f.get("new") else " (unchanged)") + (
            f" (key handover: {f['handover']}; anchor it, then drop [signer] handover_key_file or handover_kms_key_id)"
            if f.get("handover") else "")
    if event == "publish":
        return f"  anchored checkpoint at {f['url']} (Object Lock {f['mode']} until {f['retain_until']})"
    if event == "publish.skipped":
        return f"  checkpoint already anchored at {f['url']}"
    if event == "step.failed":
        return f"  {f['step']}: FAILED ({f['error']}): {f['message']}"
    if event == "bundle":
        refused = f.get("refused_urls") or ()
        line = f"  bundle: {f['path']}" + (f" ({len(refused)} URL(s) refused by the PDF renderer)" if refused else "")
        if all(k in f for k in BUNDLE_LOG_COUNTS):
            from bundler.make_bundle import bundle_count_lines  # the counts come from the bundle hook: bundler is there

            line += "".join(f"\n    {count}" for count in bundle_count_lines(f))
        return line
    if event == "run.end":
        return f"run {'ok' if f['exit_code'] == 0 else 'FAILED'} in {f['duration_s']:.1f}s"
    return f"  {event}: " + ", ".join(f"{k}={v}" for k, v in f.items())


def new_run_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


# -- results ---------------------------------------------------------------------------


@dataclass
class SourceOutcome:
    name: str
    kind: str
    ok: bool
    source_ids: list[str] = field(default_factory=list)
    counts: IngestSummary | None = None
    error: str | None = None
    message: str | None = None
    duration_s: float = 0.0
    rotations: list[dict[str, Any]] = field(default_factory=list)  # rotated files followed
    skipped_files: list[str] = field(default_factory=list)  # under its folders, not named like its input files

    def name_skipped(self, names: Iterable[str]) -> None:
        """Add files the source did not read (by their names), each once."""
        self.skipped_files.extend(name for name in dict.fromkeys(names) if name not in self.skipped_files)

    def to_json(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "source": self.name,
            "kind": self.kind,
            "ok": self.ok,
            "source_ids": self.source_ids,
            "counts": _counts(counts) if counts else None,
            "error": self.error,
            "message": self.message,
            "duration_s": round(self.duration_s, 3),
            "rotations": self.rotations,
            "skipped_files": self.skipped_files,
        }


def _counts(summary: IngestSummary) -> dict[str, Any]:
    return {
        "read": summary.read,
        "appended": summary.appended,
        "duplicate": summary.duplicates,
        "quarantined": summary.quarantined,
        "reasons": dict(sorted(summary.reasons.items())),
    }


@dataclass(frozen=True)
class StepFailure:
    """A step (checkpoint, publish, bundle) that failed: its error family decides its exit code."""

    step: str
    error: str  # the exception's class name, e.g. IntegrityError
    message: str  # one line, no secret (FedledgerError messages carry evidence, never secrets)
    exit_code: int

    @staticmethod
    def of(step: str, exc: FedledgerError) -> StepFailure:
        return StepFailure(step, type(exc).__name__, str(exc), exit_code_for(exc))


@dataclass
class RunResult:
    run_id: str
    ledger: str
    as_of: str
    outcomes: list[SourceOutcome] = field(default_factory=list)
    checkpoint: StoredCheckpoint | None = None
    checkpoint_new: bool = False
    published: dict[str, Any] | None = None
    bundle: str | None = None
    bundle_refusals: tuple[tuple[str, str], ...] = ()
    bundle_summary: dict[str, Any] | None = None  # `fedledger bundle`'s report of that bundle
    failed_steps: list[StepFailure] = field(default_factory=list)
    took_over: LockHolder | None = None
    duration_s: float = 0.0

    @property
    def failed_sources(self) -> list[str]:
        return [o.name for o in self.outcomes if not o.ok]

    @property
    def exit_code(self) -> int:
        """0; else 1 when a source or a step found an integrity failure (a tampered file, a broken
        digest chain, a refusal to sign: retrying will not clear it), else the highest code of what
        failed (any other failure of a source counts 3, as docs/scheduling.md says)."""
        codes = [EXIT_FAILED if o.error == IntegrityError.__name__ else EXIT_UNAVAILABLE
                 for o in self.outcomes if not o.ok] + [f.exit_code for f in self.failed_steps]
        if not codes:
            return EXIT_OK
        return EXIT_FAILED if EXIT_FAILED in codes else max(codes)

    def to_json(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "run_id": self.run_id,
            "ledger": self.ledger,
            "as_of": self.as_of,
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "sources": [o.to_json() for o in self.outcomes],
            "failed_sources": self.failed_sources,
            "failed_steps": [{"step": f.step, "error": f.error, "exit_code": f.exit_code, "message": f.message}
                             for f in self.failed_steps],
            "checkpoint": None if cp is None else {"size": cp.size, "root": cp.root.hex(), "new": self.checkpoint_new,
                                                    "note": cp.note},
            "published": self.published,
            "bundle": self.bundle,
            "bundle_refused_urls": [{"page": page, "url": url} for page, url in self.bundle_refusals],
            "bundle_summary": self.bundle_summary,
            "took_over_stale_lock": None if self.took_over is None else self.took_over.describe(),
            "duration_s": round(self.duration_s, 3),
        }

    def failure_message(self) -> str:
        parts = []
        if self.failed_sources:
            parts.append(f"{len(self.failed_sources)} source(s) failed: {', '.join(self.failed_sources)}")
        for failure in self.failed_steps:
            # an integrity failure is what the operator must act on: say it here, not only in the log
            parts.append(f"{failure.step}: {failure.message}" if failure.exit_code == EXIT_FAILED
                         else f"{failure.step} failed")
        return "; ".join(parts)


# -- the journal: what each run did, for `fedledger status` ------------------------------


def journal_path_for(ledger_path: Path | str) -> Path:
    """``<ledger file>.runs.jsonl``; for a PostgreSQL ledger beside its store folder (see ``local_anchor``)."""
    from collector.ledger_open import local_anchor

    anchor = local_anchor(ledger_path)
    return anchor.with_name(anchor.name + ".runs.jsonl")


def append_journal(ledger_path: Path | str, result: RunResult) -> None:
    """One line per finished run: operational history, not evidence (it is not in the ledger)."""
    doc = {
        "run_id": result.run_id,
        "as_of": result.as_of,
        "finished": format_time(utc_now()),
        "exit_code": result.exit_code,
        "sources": {o.name: {"ok": o.ok, "error": o.error, "source_ids": o.source_ids} for o in result.outcomes},
        "checkpoint_size": result.checkpoint.size if result.checkpoint else None,
        "failed_steps": [{"step": f.step, "error": f.error, "exit_code": f.exit_code} for f in result.failed_steps],
    }
    with open(journal_path_for(ledger_path), "ab") as handle:
        handle.write(orjson.dumps(doc) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_journal(ledger_path: Path | str) -> list[dict[str, Any]]:
    """Finished runs, oldest first; unreadable lines are skipped (this file is advisory)."""
    path = journal_path_for(ledger_path)
    try:
        data = path.read_bytes()
    except OSError:
        return []
    runs = []
    for line in data.splitlines():
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            runs.append(doc)
    return runs


# -- the run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    config: FedledgerConfig
    ledger_path: Path | str  # a SQLite file, or a postgresql:// URL
    as_of: datetime
    wait_seconds: float = 0.0
    only: tuple[str, ...] = ()
    publish_url: str | None = None
    publish_retention_days: int | None = None
    build_bundle: bool = False
    run_id: str | None = None


def execute_run(request: RunRequest, log_stream: IO[str] | None = None, *, human: bool = False,
                also_human: IO[str] | None = None) -> RunResult:
    """Do one run; never raises for a failing source (see :attr:`RunResult.exit_code`).

    Raises for what stops the whole run: no ledger, wrong origin, the lock held
    (:class:`~collector.runlock.LedgerLocked`), the signer unavailable.
    """
    started = time.monotonic()
    as_of = request.as_of
    observed = format_time(as_of)
    run_id = request.run_id or new_run_id(utc_now())
    log = RunLog(log_stream or sys.stderr, human=human, run_id=run_id, also_human=also_human)
    config = request.config
    from collector.ledger_open import is_postgres, ledger_location, local_anchor, open_ledger
    from collector.ledger_pg import PostgresRunLock

    ledger_path = ledger_location(request.ledger_path)
    result = RunResult(run_id=run_id, ledger=str(ledger_path), as_of=observed)
    if not is_postgres(ledger_path) and not Path(ledger_path).is_file():
        raise SourceUnavailable(
            f"no ledger here: create it with `fedledger --ledger {ledger_path} init --origin {config.ledger.origin}`",
            location=str(ledger_path),
        )
    if not config.signer.kms_key_id and config.signer.key_file is None:
        from collector.cli_common import key_paths

        key_paths(ledger_path)  # a PostgreSQL ledger has no key beside it: a config error, before anything is read
    selected = [s for s in config.sources if s.enabled and (not request.only or s.name in request.only)]
    unknown = set(request.only) - {s.name for s in config.sources}
    if unknown:
        raise UsageError(f"no source named {', '.join(sorted(unknown))} in {config.path}")

    try:
        lock: RunLock | PostgresRunLock
        if is_postgres(ledger_path):  # held in PostgreSQL, so runs on different hosts exclude each other too
            lock = PostgresRunLock(str(ledger_path), run_id, started=format_time(utc_now()))
        else:
            lock = RunLock(local_anchor(ledger_path), run_id, started=format_time(utc_now()))
        lock.acquire(request.wait_seconds, on_wait=lambda holder: log.emit(
            "lock.waiting", ledger=str(ledger_path), wait_s=request.wait_seconds,
            holder=holder.describe() if holder is not None else "pid unknown, since unknown"))
    except LedgerLocked as exc:
        log.emit("lock.refused", ledger=str(ledger_path), message=str(exc),
                 holder_pid=exc.holder.pid if exc.holder else None)
        raise
    try:
        result.took_over = lock.took_over
        log.emit("run.start", ledger=str(ledger_path), config=str(config.path), as_of=observed,
                 sources=[s.name for s in selected], pid=os.getpid(), hostname=socket.gethostname())
        if lock.took_over is not None:
            log.emit("lock.taken_over", previous=lock.took_over.describe())
        context = RunContext(config, ledger_path, as_of, observed, run_id)
        publish_url = request.publish_url or config.publish.checkpoint
        anchor = config_anchor(config, publish_url) if publish_url else None
        with open_ledger(ledger_path) as ledger:
            if ledger.origin != config.ledger.origin:
                raise UsageError(f"the ledger's origin is {ledger.origin!r} but the config says "
                                 f"{config.ledger.origin!r}: wrong ledger or wrong config", location=str(ledger_path))
            for source in selected:
                outcome = _collect_one(ledger, source, context)
                result.outcomes.append(outcome)
                if outcome.ok:
                    log.emit("source.done", source=outcome.name, kind=outcome.kind, source_ids=outcome.source_ids,
                             counts=_counts(outcome.counts or IngestSummary(outcome.name)),
                             duration_s=round(outcome.duration_s, 3), ledger_size=ledger.size,
                             **({"rotations": outcome.rotations} if outcome.rotations else {}),
                             **({"skipped_files": outcome.skipped_files} if outcome.skipped_files else {}))
                else:
                    log.emit("source.failed", source=outcome.name, kind=outcome.kind, error=outcome.error,
                             message=outcome.message, duration_s=round(outcome.duration_s, 3))
            # Signing is a step like publishing: a missing key file or an unreachable KMS fails the
            # run (exit 3) after what was collected is committed, and the run still ends logged.
            try:
                result.checkpoint, result.checkpoint_new = _sign_checkpoint(ledger, config, ledger_path, observed,
                                                                            anchor=anchor)
                cp = result.checkpoint
                handover = note_handover(cp.note) if result.checkpoint_new else None
                log.emit("checkpoint", size=cp.size, root=cp.root.hex(), new=result.checkpoint_new, note=cp.note,
                         **({"handover": f"key {handover.old_key_id.hex()} co-signed, handing over to key "
                                         f"{handover.new.key_id.hex()}"} if handover is not None else {}))
            except FedledgerError as exc:
                result.checkpoint, result.checkpoint_new = _still_readable(ledger.latest_checkpoint), False
                _fail_step(result, log, "checkpoint", exc, ledger_size=_still_readable(lambda: ledger.size))
            origin, final_size = ledger.origin, _still_readable(lambda: ledger.size)
        if publish_url and result.checkpoint is not None:
            days = request.publish_retention_days or config.publish_retention_days
            try:
                result.published = _publish(publish_url, result.checkpoint, origin, days, config)
                event = "publish" if result.published.get("written") else "publish.skipped"
                log.emit(event, **result.published)
            except FedledgerError as exc:
                _fail_step(result, log, "publish", exc)
        if request.build_bundle:
            try:
                hook = _import_target(BUNDLE_HOOK, "the bundle step")
                built: BuiltBundle = hook(config, ledger_path, as_of=as_of, run_id=run_id, anchor=anchor)
                result.bundle, result.bundle_refusals = str(built.path), built.refusals
                result.bundle_summary = built.summary
                refused = [{"page": page, "url": url} for page, url in built.refusals]
                counts = {k: built.summary[k] for k in BUNDLE_LOG_COUNTS} if built.summary is not None else {}
                log.emit("bundle", path=result.bundle, **counts, **({"refused_urls": refused} if refused else {}))
                if built.refusals:
                    raise refused_urls_error(built.refusals)
            except FedledgerError as exc:
                _fail_step(result, log, "bundle", exc)
        result.duration_s = time.monotonic() - started
        append_journal(ledger_path, result)
        log.emit("run.end", exit_code=result.exit_code, failed_sources=result.failed_sources,
                 failed_steps=[f.step for f in result.failed_steps], duration_s=round(result.duration_s, 3),
                 ledger_size=final_size)
    finally:
        lock.release()
    return result


def _still_readable(read: Callable[[], _T]) -> _T | None:
    """*read()*, or None when the ledger cannot be read any more (a PostgreSQL server that ended the
    session mid-run): the failure is already recorded with the step that met it, and the run must
    still end with its result, its journal line and run.end, not with the same error again."""
    try:
        return read()
    except SourceUnavailable:
        return None


def _fail_step(result: RunResult, log: RunLog, step: str, exc: FedledgerError, **fields: Any) -> None:
    failure = StepFailure.of(step, exc)
    result.failed_steps.append(failure)
    log.emit("step.failed", step=step, error=failure.error, exit_code=failure.exit_code, message=failure.message,
             **fields)


def refused_urls_error(refusals: Sequence[tuple[str, str]]) -> IntegrityError:
    """One line for URLs a bundle's PDF renderer refused: nothing was fetched, but the report templates
    reference no URL outside the package's assets, so a page held markup it should not (docs/bundle.md)."""
    page, url = refusals[0]
    more = f" and {len(refusals) - 1} more" if len(refusals) > 1 else ""
    return IntegrityError(f"the PDF renderer refused {len(refusals)} URL(s) and fetched nothing; the report templates "
                          f"reference none, so evidence or a template put markup into these pages (listed in the "
                          f"bundle's verification transcript): {page}: {ascii(url)}{more}")


def _collect_one(ledger: Ledger, source: SourceConfig, context: RunContext) -> SourceOutcome:
    outcome = SourceOutcome(source.name, source.kind, ok=False)
    started = time.monotonic()
    total = IngestSummary(source=source.name, size=ledger.size)
    conflicts: list[str] = []
    try:
        for plan in plan_source(source, context):
            outcome.source_ids.append(plan.source_id)
            summary = ingest_source(ledger, plan.source, source_id=plan.source_id, observed=context.observed,
                                    batch_size=plan.batch_size or DEFAULT_BATCH)
            total.add(summary)
            for rotation in plan.source.followed_rotations():
                if rotation not in outcome.rotations:  # CI files of one source share their notes
                    outcome.rotations.append(rotation)
            outcome.name_skipped(getattr(plan.source, "skipped", ()))
            if plan.finish is not None:
                plan.finish(summary)
            if summary.reasons.get(CONFLICT_REASON):  # the later plans still run (digests may say which file changed)
                conflicts.append(f"{summary.reasons[CONFLICT_REASON]} record(s) of {plan.label}")
        if conflicts:
            raise IntegrityError(f"records hold the dedup key of an entry with other bytes (changed after they were "
                                 f"read; quarantined as {CONFLICT_REASON}): {', '.join(conflicts)}")
        outcome.ok = True
    except FedledgerError as exc:
        outcome.error, outcome.message = type(exc).__name__, str(exc)
    except Exception as exc:  # a bug in one collector must not stop the others; no message: it may hold data
        outcome.error, outcome.message = "InternalError", f"{type(exc).__name__} in the {source.kind} collector"
    outcome.name_skipped(context.skipped.get(source.name, ()))
    outcome.counts = total
    outcome.duration_s = time.monotonic() - started
    return outcome


def config_anchor(config: FedledgerConfig | None, url: str | None = None) -> CheckpointAnchor | None:
    """The publish target read back before signing (see :func:`collector.signing.sign_tree_head`):
    *url*, else the config's ``[publish] checkpoint``; S3 region and endpoint from ``[publish]``
    (else the AWS environment). None when there is neither."""
    from collector.checkpoint_fetch import S3CheckpointAnchor

    url = url or (config.publish.checkpoint if config is not None else None)
    if not url:
        return None
    if not url.startswith("s3://"):
        raise UsageError(f"a checkpoint anchor must be an s3://bucket/prefix URL, not {url!r}")
    publish = config.publish if config is not None else None
    return S3CheckpointAnchor(url, region=publish.region if publish else None,
                              endpoint_url=publish.endpoint_url if publish else None)


def config_signer(ledger: Ledger, config: FedledgerConfig, ledger_path: Path | str) -> NoteSigner:
    """The signer the config's ``[signer]`` names: its KMS key, its key file, else the key file beside the ledger."""
    from collector.cli_common import key_paths
    from collector.signing import kms_signer, load_file_signer

    signer_config = config.signer
    if signer_config.kms_key_id:
        return kms_signer(ledger.origin, signer_config.kms_key_id, endpoint_url=signer_config.endpoint_url,
                          region=signer_config.region)
    return load_file_signer(signer_config.key_file or key_paths(ledger_path)[0], ledger.origin)


def config_previous_keys(ledger: Ledger, config: FedledgerConfig | None) -> list[NoteVerifier]:
    """The config's ``[signer] previous_keys``: public keys of the keys this ledger was signed with before."""
    from collector.signing import load_previous_keys

    return load_previous_keys(config.signer.previous_keys, ledger.origin) if config is not None else []


def config_handover_signer(ledger: Ledger, config: FedledgerConfig | None) -> NoteSigner | None:
    """The config's ``[signer] handover_key`` (or ``handover_kms_key_id``, in the signer's region):
    the old key that co-signs the new key's first checkpoint; None when there is none."""
    from collector.signing import kms_signer, load_file_signer

    if config is None:
        return None
    signer_config = config.signer
    if signer_config.handover_kms_key_id:
        return kms_signer(ledger.origin, signer_config.handover_kms_key_id, endpoint_url=signer_config.endpoint_url,
                          region=signer_config.region)
    if signer_config.handover_key_file is not None:
        return load_file_signer(signer_config.handover_key_file, ledger.origin)
    return None


def _sign_checkpoint(ledger: Ledger, config: FedledgerConfig, ledger_path: Path | str, created: str, *,
                     anchor: CheckpointAnchor | None = None) -> tuple[StoredCheckpoint, bool]:
    from collector.signing import sign_tree_head

    newest = ledger.latest_checkpoint()
    if newest is not None and newest.size == ledger.size:
        return newest, False
    return sign_tree_head(ledger, config_signer(ledger, config, ledger_path), created, anchor=anchor,
                          previous=config_previous_keys(ledger, config),
                          handover=config_handover_signer(ledger, config)), True


def _publish(url: str, checkpoint: StoredCheckpoint | None, origin: str, days: int,
             config: FedledgerConfig) -> dict[str, Any]:
    from collector.checkpoint_publish import publish_checkpoint, s3_client

    if checkpoint is None:
        raise UsageError("no checkpoint to publish")
    client = s3_client(region=config.publish.region, endpoint_url=config.publish.endpoint_url)
    retain_until = utc_now() + timedelta(days=days)
    return publish_checkpoint(client, url, checkpoint.note, size=checkpoint.size, retain_until=retain_until,
                              minimum_retention=timedelta(days=days)).to_json()
