"""Control evaluation: ledger entries in, an :class:`~bundler.model.Assessment` out.

``evaluate(entries, as_of=…, origin=…, config=…, catalog=…)`` is pure (no I/O, no
clock). *entries* is an iterable of ``(seq, event, source)`` triples (see
:mod:`bundler.evidence_table`; :func:`bundler.evidence_table.entry_triples` makes
them from stored entry objects). It is read once; pandas does the aggregation.

How a result is decided
-----------------------
* Each **built-in check** (listed in ``bundler/data/mapping.json`` with the controls
  it speaks to) looks at its evidence and returns ``not-assessed`` when there is no
  evidence for it at all, ``not-satisfied`` when it has at least one finding, and
  ``satisfied`` otherwise. Findings cite every entry (seq) that shows the problem;
  observations cite the entries examined (up to ``config.cite_limit`` each; the
  description then says how many were examined).
* **Freshness**: for each source (vault, cloudtrail, ci, attestations) the newest
  event time at ``as_of`` must be younger than the source's cadence (default 7 days,
  per source and per KSI overridable). Stale evidence makes the source's controls
  (mapping data) not satisfied; a source with no evidence leaves them not assessed.
  Configured sources of one kind (``config.freshness_sources``: two Vault servers) are
  judged each on the entries read from its own locations.
* **Rego policies** (:mod:`bundler.rego`) add one check each, for the controls the
  policy declares.
* **Period**: entries outside it are left out, except the context of a CI job that
  runs across one of its edges (judged whole, see :func:`_period_table`).
* A **control** is ``not-satisfied`` if any check that speaks to it is, else
  ``satisfied`` if at least one is, else ``not-assessed``. A control with no check
  (e.g. one from a user's OSCAL baseline that no evidence maps to) is not assessed,
  never satisfied.

What is not verified here: signatures, digest chains and Object Lock are verified
by the collectors; evaluation trusts the verdicts they recorded in the events
(``attestation.signed`` vs ``attestation.invalid``, ``aws.digest_invalid``…), and
the ledger's own integrity is checked by :mod:`bundler.ledger_verify`.
"""

from __future__ import annotations

import functools
import json
import re
import time
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bundler.catalog import Catalog, CatalogControl, control_label, known_ksi_ids, load_builtin_catalog, \
    load_mapping, normalize_control_id
from bundler.custody import STEP_NAMES, Correlation, InFlight, RunShare, attestation_digests, build_stories, \
    correlate, in_flight_jobs, \
    job_attempts, job_sort_key, shared_rows_of_job, shared_within_run, token_time_contradiction, \
    unsigned_while_secret_configured
from bundler.evidence_table import UNPAIRED, UNSIGNED, EvidenceTable, TableReading, assemble_table, read_rows, \
    select_rows, token_verified, values_with_prefix
from bundler.model import (
    NOT_ASSESSED, NOT_SATISFIED, SATISFIED, Assessment, CheckResult, ControlResult, CustodyStory, DailyVolume,
    Finding, Observation, SourceFreshness, Status,
)
from collector.errors import MalformedInput, UsageError
from collector.gc_pause import paused_gc

SOURCES = ("vault", "cloudtrail", "ci", "attestations")
RAW_PAYLOAD_KEYS = frozenset({
    "payload", "prompt", "response", "request_body", "response_body", "input_text", "output_text",
    "messages", "completion", "body", "raw_payload", "raw_response",
})
HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso|-isob)?-[a-z]+-\d$")
TAMPER_TRAIL_ACTIONS = frozenset({"StopLogging", "DeleteTrail"})
TAMPER_AUDIT_OPERATIONS = frozenset({"delete", "disable"})
# Kinds a GitHub/GitLab webhook payload becomes (collector/sources/ci.py); a bare one records its signature state.
PROVIDER_PAYLOAD_KINDS = ("ci.workflow_run", "ci.job_queued", "ci.job_started", "ci.job_completed", "ci.webhook_ping")


@dataclass(frozen=True)
class EvaluationConfig:
    """Everything an assessment depends on besides the evidence. All durations in seconds
    unless the name says days."""

    allowed_regions: tuple[str, ...] = ("us-gov-west-1", "us-gov-east-1")
    secret_read_threshold: int = 20  # more secret reads than this in one job is a finding
    allowed_ai_endpoints: tuple[str, ...] = ()  # empty: the allowlist check is not assessed
    max_token_renewals: int = 3  # more renewals than this in one job is a finding
    retention_min_days: int = 365
    object_lock_modes: tuple[str, ...] = ("COMPLIANCE",)
    freshness_days: int = 7
    freshness_days_per_source: tuple[tuple[str, int], ...] = ()
    freshness_days_per_ksi: tuple[tuple[str, int], ...] = ()
    # Configured sources judged on their own: (name, kind, locations, cadence days). A kind listed
    # here is not pooled; each source gets the entries read from its locations (source.location),
    # as `fedledger status` splits them. Filled from fedledger.toml for kinds with two or more sources.
    freshness_sources: tuple[tuple[str, str, tuple[str, ...], int], ...] = ()
    max_job_seconds: int = 3600  # a job's length when its events do not give timeout_seconds
    clock_skew_seconds: int = 300
    correlation_window_seconds: int = 300
    vault_job_auth_methods: tuple[str, ...] = ("jwt", "oidc")
    allowed_long_term_key_ids: tuple[str, ...] = ()  # explained exceptions (key ids are not secret)
    explained_seqs: tuple[int, ...] = ()  # audit-trail changes explained out of band
    required_custody_steps: tuple[str, ...] = STEP_NAMES
    kms_sse_values: tuple[str, ...] = ("aws:kms", "aws:kms:dsse")
    cite_limit: int = 5000
    require_approval: bool = True  # a job that called an AI endpoint needs a granted ci.approval before it

    @property
    def location_families(self) -> frozenset[str]:
        """Source families whose entries' ``source.location`` evaluation reads (see ``freshness_sources``)."""
        return frozenset(kind for _name, kind, _locations, _days in self.freshness_sources)

    def freshness_seconds(self, source: str) -> int:
        return 86400 * dict(self.freshness_days_per_source).get(source, self.freshness_days)

    @classmethod
    def from_file(cls, path: str | Path) -> EvaluationConfig:
        """Read settings from a JSON or TOML file (keys as the field names; TOML may nest them under
        ``[evaluation]``)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read evaluation settings: {exc.strerror}", location=str(path)) from None
        try:
            if path.suffix.lower() == ".toml":
                doc: Any = tomllib.loads(raw.decode("utf-8"))
                doc = doc.get("evaluation", doc)
            else:
                doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedInput(f"evaluation settings are not valid: {exc}", location=str(path)) from None
        if not isinstance(doc, dict):
            raise MalformedInput("evaluation settings must be an object", location=str(path))
        try:
            return cls.from_mapping(doc)
        except UsageError as exc:
            raise UsageError(str(exc), location=str(path)) from None
        except (TypeError, ValueError) as exc:
            raise MalformedInput(f"evaluation settings have a value of the wrong type: {exc}",
                                 location=str(path)) from None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EvaluationConfig:
        """Build from a plain mapping (e.g. a parsed config file); unknown keys are a usage error."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown evaluation setting(s): {', '.join(unknown)}")
        converted: dict[str, Any] = {}
        for key, value in values.items():
            if key in ("freshness_days_per_source", "freshness_days_per_ksi") and isinstance(value, Mapping):
                value = tuple(sorted(_cadences(key, value)))
            elif key == "freshness_days":
                _whole_days(key, value)
            elif key == "freshness_sources" and isinstance(value, list):
                value = tuple(_configured_source(item) for item in value)
            elif isinstance(value, list):
                value = tuple(value)
            default = getattr(cls(), key)
            if type(value) is not type(default):  # bool is not int, int is not bool
                raise UsageError(f"evaluation setting {key} must be {type(default).__name__}, "
                                 f"not {type(value).__name__}")
            converted[key] = value
        return cls(**converted)


def _whole_days(name: str, value: Any) -> int:
    if type(value) is not int or value < 1:
        raise UsageError(f"{name} must be a whole number of days, at least 1 (not {value!r})")
    return value


def _cadences(key: str, values: Mapping[Any, Any]) -> list[tuple[str, int]]:
    """``freshness_days_per_source`` / ``_per_ksi`` items, checked: a KSI the rules do not know would name
    no control (its cadence silently never applied), and 1.5 days must not become 1."""
    out: list[tuple[str, int]] = []
    for name, days in values.items():
        name = str(name)
        if key == "freshness_days_per_ksi":
            name = name.upper()
            if name not in known_ksi_ids():
                raise UsageError(f"{key}: unknown KSI {name} (the FedRAMP Consolidated Rules name "
                                 f"{len(known_ksi_ids())} KSIs, e.g. KSI-SVC-ASM)")
        out.append((name, _whole_days(f"{key}: {name}", days)))
    return out


def _configured_source(item: Any) -> tuple[str, str, tuple[str, ...], int]:
    """One ``freshness_sources`` item from a settings file: ``{name, kind, locations, days}``."""
    if not isinstance(item, Mapping) or set(item) != {"name", "kind", "locations", "days"}:
        raise UsageError("each freshness_sources item needs exactly name, kind, locations and days")
    locations = item["locations"]
    if not isinstance(locations, list) or not all(isinstance(loc, str) for loc in locations):
        raise UsageError("freshness_sources locations must be a list of strings")
    days = item["days"]
    if type(days) is not int or days < 1:
        raise UsageError("freshness_sources days must be a whole number of days, at least 1")
    return str(item["name"]), str(item["kind"]), tuple(locations), days


def parse_utc(value: str | datetime) -> pd.Timestamp:
    """A UTC timestamp from RFC 3339 text or an aware datetime; naive times are refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise UsageError(f"time {value.isoformat()} has no time zone")
        return pd.Timestamp(value).tz_convert("UTC")
    text = str(value).strip()
    if not re.search(r"(Z|[+-]\d\d:\d\d)$", text):
        raise UsageError(f"time {text!r} has no time zone (use RFC 3339 with Z)")
    try:
        return pd.Timestamp(text).tz_convert("UTC")
    except ValueError:
        raise UsageError(f"time {text!r} is not RFC 3339") from None


def _last_instant(end: pd.Timestamp | None) -> pd.Timestamp | None:
    """The last instant a period ending at *end* includes. An end given to the second covers that whole
    second (``…T23:59:59Z`` includes a Vault event at ``23:59:59.5``, which the next period, starting at
    ``00:00:00Z``, does not); an end given with a fraction is taken as it is."""
    if end is None or end.microsecond or end.nanosecond:
        return end
    return end + pd.Timedelta(seconds=1) - pd.Timedelta(nanoseconds=1)


def rfc3339(ts: pd.Timestamp | None) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the context checks share -------------------------------------------------------------


@dataclass
class JobFacts:
    """What checks and policies need to know about one CI job."""

    job_id: str
    run_id: str | None
    repository: str | None
    seqs: tuple[int, ...]
    runner_region: str | None
    runner_labels: tuple[str, ...]
    runner_name: str | None
    timeout_seconds: int | None
    artifact_digests: tuple[str, ...]
    access_key_classes: tuple[str, ...]
    long_term_seqs: tuple[int, ...]
    web_identity_seqs: tuple[int, ...]
    aws_seqs: tuple[int, ...]
    secret_read_seqs: tuple[int, ...]  # from paired Vault responses (or ones that record no pairing)
    token_renew_seqs: tuple[int, ...]
    kind_counts: dict[str, int] = field(default_factory=dict)
    # from unpaired Vault responses: Vault answered, but who asked is unverified (reads that may be the job's)
    unpaired_read_seqs: tuple[int, ...] = ()
    unpaired_renew_seqs: tuple[int, ...] = ()
    # from Vault requests whose response line never came (unanswered_requests): whether Vault handed out
    # the secret is unknown, so these too are reads that may be the job's, counted apart
    unanswered_read_seqs: tuple[int, ...] = ()
    unanswered_renew_seqs: tuple[int, ...] = ()
    # The runner's region and labels as only unsigned webhook payloads give them (a GitHub/GitLab payload
    # collected without its signature while a secret was configured): set only when no other CI event of
    # the job gives a region; never in runner_region / runner_labels, and never satisfying anything.
    unsigned_region: str | None = None
    unsigned_labels: tuple[str, ...] = ()
    unsigned_seqs: tuple[int, ...] = ()  # the job's unsigned ci.job_* payloads


@dataclass
class Context:
    table: EvidenceTable
    correlation: Correlation
    config: EvaluationConfig
    as_of: pd.Timestamp
    jobs: dict[str, JobFacts]
    mapping: Mapping[str, Any]
    attestations_by_digest: dict[str, list[int]]
    # rows correlation could not give to one job, contested only by the jobs of one run (a matrix build)
    within_run: dict[int, RunShare] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # job → its run attempt, where its deliveries give it
    # jobs still running at as_of (custody.in_flight_jobs): steps they have not reached are not judged yet
    in_flight: dict[str, InFlight] = field(default_factory=dict)
    # seq → requested kind of the Vault requests whose response line never came (unanswered_requests)
    unanswered: dict[int, str] = field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        return self.table.frame

    def rows(self, *kinds: str) -> pd.DataFrame:
        return self.frame[self.frame["kind"].isin(kinds)]

    @functools.cached_property
    def shared_rows(self) -> dict[str, list[int]]:
        """job → the rows it shares with the other jobs of its run (:attr:`within_run`)."""
        return shared_rows_of_job(self.within_run)

    def event(self, seq: int) -> Mapping[str, Any]:
        return self.table.events.get(int(seq), {})

    def attr(self, seq: int, name: str) -> Any:
        attrs = self.event(seq).get("attrs")
        return attrs.get(name) if isinstance(attrs, Mapping) else None

    def spec(self, check: str) -> tuple[str, tuple[str, ...]]:
        item = self.mapping["checks"][check]
        return item["title"], tuple(item["controls"])


def _seqs(values: Iterable[Any]) -> tuple[int, ...]:
    """Distinct seqs, ascending, as Python ints (a column of integers in one vectorized step)."""
    if not isinstance(values, (pd.Series, np.ndarray)):
        values = list(values)
    array = np.asarray(values)
    if array.ndim == 1 and array.dtype.kind in "iu":
        if len(array) < 2 or bool((array[1:] > array[:-1]).all()):  # a table column: already ascending
            return tuple(array.tolist())
        # Sort, then drop repeats: numpy 2's hash-based np.unique is ~10x slower on a million ints.
        ordered = np.sort(array, kind="stable")
        return tuple(ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))].tolist())
    return tuple(sorted({int(v) for v in values}))


def _seq_union(*parts: Iterable[Any]) -> np.ndarray:
    """Seq columns (and lists of seqs) as one int64 array, for :func:`_seqs` (no list of a million scalars)."""
    arrays = [p.to_numpy(dtype=np.int64) if isinstance(p, pd.Series) else np.asarray(list(p), dtype=np.int64)
              for p in parts]
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)


def _result(
    ctx: Context,
    check: str,
    *,
    evidence: Sequence[int] | pd.Series | np.ndarray,
    findings: Sequence[Finding],
    what: str,
    not_assessed_reason: str = "no evidence for this check in the period",
    kind: str = "builtin",
    controls: tuple[str, ...] | None = None,
    title: str | None = None,
) -> CheckResult:
    spec_title, spec_controls = ctx.spec(check) if check in ctx.mapping["checks"] else (title or check, ())
    controls = controls if controls is not None else spec_controls
    title = title or spec_title
    examined = _seqs(evidence)
    findings = tuple(sorted(findings, key=lambda f: f.id))
    if not examined and not findings:
        return CheckResult(check, title, controls, NOT_ASSESSED, not_assessed_reason, kind=kind)  # type: ignore[arg-type]
    cited = examined[: ctx.config.cite_limit]
    more = f" ({len(cited)} of {len(examined)} cited)" if len(cited) < len(examined) else ""
    status: Status = NOT_SATISFIED if findings else SATISFIED
    summary = (f"{len(findings)} finding(s) over {len(examined)} entries examined: {what}" if findings
               else f"{len(examined)} entries examined, no findings: {what}")
    observation = Observation(
        id=f"{check}:examined",
        check=check,
        title=f"Examined: {title}",
        description=f"{len(examined)} ledger entries examined{more}; {what}.",
        controls=controls,
        seqs=cited,
    )
    seqs = _seqs([*cited, *(s for f in findings for s in f.seqs)])
    return CheckResult(check, title, controls, status, summary, findings, (observation,), seqs, kind=kind)  # type: ignore[arg-type]


def _finding(ctx: Context, check: str, key: str, title: str, description: str, seqs: Iterable[Any], *,
             job_id: str | None = None, severity: str = "moderate") -> Finding:
    return Finding(f"{check}:{key}", check, title, description, ctx.spec(check)[1], _seqs(seqs), job_id,
                   severity)  # type: ignore[arg-type]


# -- job facts -----------------------------------------------------------------------------


def _grouped_seqs(rows: pd.DataFrame) -> dict[str, tuple[int, ...]]:
    """job → its seqs, ascending (one sort of the whole selection, then slices)."""
    if rows.empty:
        return {}
    codes, jobs = pd.factorize(rows["job"], use_na_sentinel=False)
    seqs = rows["seq"].to_numpy()
    order = np.lexsort((seqs, codes))
    codes = codes[order]
    ordered = seqs[order].tolist()
    bounds = (np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist()
    return {str(jobs[codes[start]]): tuple(ordered[start:end])
            for start, end in zip([0, *bounds], [*bounds, len(ordered)])}


def _job_facts(table: EvidenceTable, correlation: Correlation, config: EvaluationConfig,
               asked: Mapping[int, str] | None = None) -> dict[str, JobFacts]:
    """Per-job facts with whole-table group-bys (one pass per fact, not one per job). *asked*: the Vault
    requests never answered (:func:`unanswered_requests`, computed here when not given)."""
    linked = correlation.job.notna()
    frame = table.frame.loc[linked, ["seq", "kind", "source", "status", "run_id", "repository", "runner",
                                     "access_key_id", "access_key_class", "artifact_digest", "unverified"]]
    frame["job"] = correlation.job[linked]
    if frame.empty:
        return {}
    grouped = frame.groupby("job")
    first = grouped[["run_id", "repository", "runner"]].first()
    seqs = _grouped_seqs(frame)
    aws = frame[frame["source"] == "cloudtrail"]
    key_class = aws["access_key_class"].fillna("")
    key_id = aws["access_key_id"].fillna("")
    long_term = aws[((key_class == "long-term") | values_with_prefix(key_id, "AKIA"))
                    & ~aws["access_key_id"].isin(config.allowed_long_term_key_ids)]
    web = aws[(aws["kind"] == "aws.assume_role_web_identity") & (aws["status"] == "success")]
    classes = aws[key_class != ""].groupby("job")["access_key_class"].agg(lambda s: tuple(sorted(set(s))))
    ci_digests = frame[(frame["source"] == "ci") & frame["artifact_digest"].notna()]
    digests = ci_digests.groupby("job")["artifact_digest"].agg(lambda s: tuple(sorted(set(s))))
    long_term_seqs = _grouped_seqs(long_term)
    web_seqs = _grouped_seqs(web)
    aws_seqs = _grouped_seqs(aws)
    unpaired = frame["unverified"] == UNPAIRED
    read_seqs = _grouped_seqs(frame[(frame["kind"] == "vault.secret_read") & ~unpaired])
    renew_seqs = _grouped_seqs(frame[(frame["kind"] == "vault.token_renew") & ~unpaired])
    unpaired_reads = _grouped_seqs(frame[(frame["kind"] == "vault.secret_read") & unpaired])
    unpaired_renews = _grouped_seqs(frame[(frame["kind"] == "vault.token_renew") & unpaired])
    asked = unanswered_requests(table) if asked is None else asked
    unanswered = frame[frame["seq"].isin(list(asked))]
    requested = unanswered["seq"].map(asked)
    unanswered_reads = _grouped_seqs(unanswered[requested == "vault.secret_read"])
    unanswered_renews = _grouped_seqs(unanswered[requested == "vault.token_renew"])
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for (job, kind), n in frame.groupby(["job", "kind"], observed=True).size().items():
        counts[str(job)][str(kind)] = int(n)
    # What the job's CI events say about its runner and length. A provider payload collected without its
    # signature while a webhook secret was configured (UNSIGNED) establishes nothing: its runner is kept
    # apart (used, marked, only where no other event gives one) and its timeout is never used. The length
    # is the longest timeout claimed; beyond max_job_seconds only a signed delivery's (_timeout_claim).
    runner_facts: dict[str, dict[str, Any]] = defaultdict(dict)
    unsigned_facts: dict[str, dict[str, Any]] = defaultdict(dict)
    ci = frame[values_with_prefix(frame["kind"], "ci.job_")]
    for job, seq, unverified in zip(ci["job"], ci["seq"], ci["unverified"]):
        attrs = table.events.get(int(seq), {}).get("attrs") or {}
        if unverified == UNSIGNED:
            weak = unsigned_facts[str(job)]
            weak.setdefault("seqs", []).append(int(seq))
            if attrs.get("runner_region") and "region" not in weak:
                weak["region"] = str(attrs["runner_region"])
            if isinstance(attrs.get("runner_labels"), list) and "labels" not in weak:
                weak["labels"] = tuple(str(x) for x in attrs["runner_labels"])
            continue
        known = runner_facts[str(job)]
        if attrs.get("runner_region") and "region" not in known:
            known["region"] = str(attrs["runner_region"])
        if isinstance(attrs.get("runner_labels"), list) and "labels" not in known:
            known["labels"] = tuple(str(x) for x in attrs["runner_labels"])
        timeout = _timeout_claim(attrs, table.events.get(int(seq), {}), config.max_job_seconds)
        if timeout is not None:
            known["timeout"] = max(timeout, known.get("timeout", 0))

    def value(series: pd.Series, job: str) -> Any:
        got = series.get(job)
        return None if got is None or (not isinstance(got, (tuple, str)) and pd.isna(got)) else got

    facts: dict[str, JobFacts] = {}
    for job in sorted((str(j) for j in first.index), key=job_sort_key):
        runner = runner_facts.get(job, {})
        weak = unsigned_facts.get(job, {})
        if runner.get("region") or label_region(runner.get("labels", ())):
            weak = {}  # the runner's region is known from events that are not unsigned payloads
        facts[job] = JobFacts(
            job_id=job,
            run_id=value(first["run_id"], job),
            repository=value(first["repository"], job),
            seqs=seqs.get(job, ()),
            runner_region=runner.get("region"),
            runner_labels=runner.get("labels", ()),
            runner_name=value(first["runner"], job),
            timeout_seconds=runner.get("timeout"),
            artifact_digests=value(digests, job) or (),
            access_key_classes=value(classes, job) or (),
            long_term_seqs=long_term_seqs.get(job, ()),
            web_identity_seqs=web_seqs.get(job, ()),
            aws_seqs=aws_seqs.get(job, ()),
            secret_read_seqs=read_seqs.get(job, ()),
            token_renew_seqs=renew_seqs.get(job, ()),
            kind_counts=dict(sorted(counts.get(job, {}).items())),
            unpaired_read_seqs=unpaired_reads.get(job, ()),
            unpaired_renew_seqs=unpaired_renews.get(job, ()),
            unanswered_read_seqs=unanswered_reads.get(job, ()),
            unanswered_renew_seqs=unanswered_renews.get(job, ()),
            unsigned_region=weak.get("region") or label_region(weak.get("labels", ())),
            unsigned_labels=weak.get("labels", ()) if "labels" not in runner else (),
            unsigned_seqs=tuple(weak.get("seqs", ())),
        )
    return facts


COUNTED_REQUEST_KINDS = ("vault.secret_read", "vault.token_renew")


def unanswered_requests(table: EvidenceTable) -> dict[int, str]:
    """seq → requested kind (``vault.secret_read`` / ``vault.token_renew``) of each ``vault.request_received``
    entry whose response line never came: the Vault collector's ``vault.unpaired`` finding with ``side:
    request`` names it (its request id and time, path and operation; a finding without a path is of a
    quarantined request line, which has no entry). Deleting response lines must not lower a job's count.

    Not counted: a request whose answer is an entry after all, an unpaired response of the same request id,
    path and operation (one that came after the pairing window: a ``side: response`` finding), already counted
    apart as an unpaired read, so one request is one read; and answered requests (no finding), whose paired
    response is the read. A request that records no ``requested_kind`` (collected before that attr) counts
    for nothing. Where two request lines share an id and time (a duplicate id), each finding takes one."""
    frame = table.frame
    findings = frame.loc[frame["kind"] == "vault.unpaired", ["seq", "ts"]]
    if findings.empty:
        return {}
    wanted: dict[tuple[str, Any, str, str], int] = defaultdict(int)  # (id, time, path, operation) → n
    answered: set[tuple[str, str, str]] = set()
    for seq, ts in zip(findings["seq"].tolist(), findings["ts"]):
        event = table.events.get(int(seq), {})
        attrs = event.get("attrs")
        if not isinstance(attrs, Mapping):
            continue
        named = _request_named(attrs)
        if named is None:
            continue
        request_id, path, operation = named
        if attrs.get("side") == "request" and pd.notna(ts):  # the request's own time (the collector's)
            wanted[(request_id, ts, path, operation)] += 1
        elif attrs.get("side") == "response":
            answered.add(named)
    times = {key[1] for key in wanted}
    requests = frame.loc[(frame["kind"] == "vault.request_received") & frame["ts"].isin(list(times)), ["seq", "ts"]]
    out: dict[int, str] = {}
    for seq, ts in sorted(zip(requests["seq"].tolist(), requests["ts"]), key=lambda pair: pair[0]):
        event = table.events.get(int(seq), {})
        attrs = event.get("attrs")
        if not isinstance(attrs, Mapping) or attrs.get("requested_kind") not in COUNTED_REQUEST_KINDS:
            continue
        named = _request_named(attrs)
        if named is None:
            continue
        key = (named[0], ts, named[1], named[2])
        if wanted.get(key, 0) > 0 and named not in answered:
            wanted[key] -= 1
            out[int(seq)] = str(attrs["requested_kind"])
    return out


def _request_named(attrs: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(request id, path, operation) a Vault entry or finding names, or None unless all three are text."""
    request_id, path, operation = attrs.get("request_id"), attrs.get("path"), attrs.get("operation")
    if isinstance(request_id, str) and isinstance(path, str) and isinstance(operation, str):
        return request_id, path, operation
    return None


# -- built-in checks -----------------------------------------------------------------------


def check_signed_attestation(ctx: Context) -> CheckResult:
    check = "signed-attestation"
    used = ctx.frame[(ctx.frame["source"] == "ci") & ctx.frame["artifact_digest"].notna()]
    attest = _attestation_rows(ctx)  # delete markers vouch for nothing and claim nothing: attestation-retention
    findings: list[Finding] = []
    bad_by_digest: dict[str, list[int]] = defaultdict(list)
    for seq, kind in zip(attest["seq"], attest["kind"]):
        if kind != "attestation.signed":
            for digest in attestation_digests(ctx.event(seq)) or {"(unknown subject)"}:
                bad_by_digest[digest].append(int(seq))
            if kind == "attestation.invalid":
                error = ctx.attr(seq, "verification_error") or "signature did not verify"
                findings.append(_finding(ctx, check, f"invalid:{seq}", f"Attestation at seq {seq} does not verify",
                                         f"An attestation failed verification: {error}.", [seq], severity="high"))
            else:  # attestation.unsigned (or any other kind): nothing vouches for what it says
                findings.append(_finding(ctx, check, f"unsigned:{seq}", f"Attestation at seq {seq} is not signed",
                                         "An attestation was stored without a signature that could be checked, so "
                                         "it is not evidence of provenance or integrity.", [seq]))
    unattested: dict[str, tuple[list[int], set[str]]] = {}
    unplaced: set[str] = set()  # digests some use of which no job owns
    for index, seq, digest in zip(used.index, used["seq"], used["artifact_digest"]):
        if digest in ctx.attestations_by_digest:
            continue
        seqs, users = unattested.setdefault(str(digest), ([], set()))
        seqs.append(int(seq))
        job = ctx.correlation.job.get(index)
        if job is not None:
            users.add(str(job))
        else:
            unplaced.add(str(digest))
    pending = 0
    for digest, (used_seqs, users) in sorted(unattested.items()):
        jobs = sorted(users, key=job_sort_key)
        bad = bad_by_digest.get(digest, [])
        if not bad and users and digest not in unplaced and users <= ctx.in_flight.keys():
            pending += 1  # only jobs still running at as_of used it: their attestation step comes later
            continue
        reason = ("only unsigned or invalid attestations exist for it" if bad
                  else "no signed attestation names it as a subject")
        findings.append(_finding(
            ctx, check, f"unattested:{digest}", f"Artifact {digest} was used without a valid signed attestation",
            f"Artifact {digest} was built, gated or used for inference (jobs: {', '.join(jobs) or 'none known'}) "
            f"but {reason}.", [*used_seqs, *bad], job_id=jobs[0] if len(jobs) == 1 else None, severity="high"))
    evidence = _seq_union(used["seq"], attest["seq"])
    what = f"{used['artifact_digest'].nunique()} artifact(s) used, {_attestations_counted(ctx, len(attest))}"
    if pending:
        what += f"; {pending} used only by jobs in progress at as_of, not attested yet (not judged yet)"
    return _result(ctx, check, evidence=evidence, findings=findings, what=what)


def check_short_lived_credentials(ctx: Context) -> CheckResult:
    check = "short-lived-credentials"
    aws = ctx.frame.loc[ctx.frame["kind"].isin(("aws.api_call", "aws.assume_role_web_identity", "aws.trail_change")),
                        ["seq", "access_key_id", "access_key_class"]]
    key_id = aws["access_key_id"].fillna("")
    long_term = aws[((aws["access_key_class"] == "long-term") | values_with_prefix(key_id, "AKIA"))
                    & ~aws["access_key_id"].isin(ctx.config.allowed_long_term_key_ids)]
    findings = []
    for key, rows in long_term.groupby(long_term["access_key_id"].fillna("(no key id)"), sort=True):
        jobs = sorted({str(j) for j in ctx.correlation.job[rows.index].dropna()}, key=job_sort_key)
        where = f" in job(s) {', '.join(jobs)}" if jobs else ""
        findings.append(_finding(
            ctx, check, f"long-term-key:{key}", f"Long-term access key {key} was used{where}",
            f"{len(rows)} AWS call(s) were made with the long-term access key {key}{where}; pipelines must use "
            "short-lived credentials from AssumeRoleWithWebIdentity.", rows["seq"],
            job_id=jobs[0] if len(jobs) == 1 else None, severity="high"))
    for job in ctx.jobs.values():
        if job.aws_seqs and not job.web_identity_seqs:
            findings.append(_finding(
                ctx, check, f"no-web-identity:job-{job.job_id}",
                f"Job {job.job_id} called AWS without assuming a role by web identity",
                f"Job {job.job_id} made {len(job.aws_seqs)} AWS call(s) but no successful "
                "AssumeRoleWithWebIdentity is linked to it.", job.aws_seqs, job_id=job.job_id))
    return _result(ctx, check, evidence=aws["seq"], findings=findings,
                   what=f"{len(aws)} AWS call(s), {len(ctx.jobs)} job(s)")


def check_workload_identity(ctx: Context) -> CheckResult:
    check = "workload-identity"
    tokens = ctx.rows("ci.oidc_token")
    logins = ctx.rows("vault.login", "vault.token_create")
    findings = []
    for seq in tokens["seq"]:
        if not token_verified(ctx.event(seq)):
            error = ctx.attr(seq, "verification_error") or "not verified"
            job = ctx.correlation.job.get(tokens.index[tokens["seq"] == seq][0])
            findings.append(_finding(ctx, check, f"oidc-unverified:{seq}", f"OIDC token at seq {seq} did not verify",
                                     f"The job's OIDC ID token did not verify: {error}.", [seq], job_id=job,
                                     severity="high"))
        elif (contradiction := token_time_contradiction(ctx.event(seq))) is not None:
            job = ctx.correlation.job.get(tokens.index[tokens["seq"] == seq][0])
            findings.append(_finding(
                ctx, check, f"oidc-time-contradicts:{seq}",
                f"OIDC token at seq {seq} is recorded as verified but its own times say it was not valid",
                f"The entry records the token as verified, but {contradiction}. The verdict is not taken on "
                "trust: the token is treated as not verified.", [seq], job_id=job, severity="high"))
        elif ctx.attr(seq, "time_source") == "iat":
            job = ctx.correlation.job.get(tokens.index[tokens["seq"] == seq][0])
            findings.append(_finding(
                ctx, check, f"oidc-time-unknown:{seq}", f"OIDC token at seq {seq} has no recorded time of use",
                "The token was collected without the time it was used, so its expiry and not-before were "
                "evaluated at its own issue time (iat): the evidence does not show it was valid when used. "
                "Collect tokens with their time of use (docs/collect-ci.md).", [seq], job_id=job, severity="low"))
    for index, seq, kind, status in zip(logins.index, logins["seq"], logins["kind"], logins["status"]):
        policies = ctx.attr(seq, "policies")
        if isinstance(policies, list) and "root" in policies and status == "success":
            findings.append(_finding(ctx, check, f"root-token:{seq}", f"A root-policy Vault token was issued (seq {seq})",
                                     "A Vault login or token creation granted the root policy.", [seq],
                                     job_id=ctx.correlation.job.get(index), severity="high"))
        job = ctx.correlation.job.get(index)
        method = ctx.attr(seq, "auth_method")
        if kind == "vault.login" and job is not None and status == "success" and method not in ctx.config.vault_job_auth_methods:
            findings.append(_finding(
                ctx, check, f"job-auth-method:{seq}", f"Job {job} logged in to Vault with {method!r}",
                f"CI job {job} logged in to Vault with auth method {method!r}; jobs must use "
                f"{', '.join(ctx.config.vault_job_auth_methods)} (workload identity).", [seq], job_id=job))
    return _result(ctx, check, evidence=_seq_union(tokens["seq"], logins["seq"]), findings=findings,
                   what=f"{len(tokens)} OIDC token(s), {len(logins)} Vault login(s)/token(s)")


def check_certificate_ttl(ctx: Context) -> CheckResult:
    check = "certificate-ttl"
    certs = ctx.rows("vault.pki_issue")
    certs = certs[certs["status"] == "success"]
    findings = []
    for index, seq in zip(certs.index, certs["seq"]):
        job = ctx.correlation.job.get(index)
        ttl = ctx.attr(seq, "ttl")
        facts = ctx.jobs.get(job) if job else None
        limit = facts.timeout_seconds if facts and facts.timeout_seconds else ctx.config.max_job_seconds
        whose = f"job {job}" if job else "no known job"
        if not isinstance(ttl, int) or isinstance(ttl, bool):
            findings.append(_finding(ctx, check, f"ttl-unknown:{seq}", f"Certificate at seq {seq} has no recorded TTL",
                                     f"The certificate issued for {whose} does not record its TTL, so its lifetime "
                                     "cannot be compared with the job's length.", [seq], job_id=job))
        elif ttl > limit:
            findings.append(_finding(
                ctx, check, f"ttl-too-long:{seq}", f"Certificate for {whose} lives {ttl}s, longer than the job ({limit}s)",
                f"Vault PKI issued a certificate with TTL {ttl}s for {whose}; the job's length is {limit}s.",
                [seq], job_id=job))
    return _result(ctx, check, evidence=certs["seq"], findings=findings, what=f"{len(certs)} certificate(s) issued")


def check_mtls_inference(ctx: Context) -> CheckResult:
    check = "mtls-inference"
    calls = ctx.rows("ci.inference_call")
    certs = ctx.rows("vault.pki_issue")
    certs = certs[(certs["status"] == "success") & certs["cert_serial"].notna()]
    issued = certs.groupby("cert_serial")["ts"].min().to_dict()
    cert_seq = certs.groupby("cert_serial")["seq"].min().to_dict()
    ttl_of = {serial: ctx.attr(seq, "ttl") for serial, seq in cert_seq.items()}
    findings = []
    for index, seq, serial, ts in zip(calls.index, calls["seq"], calls["cert_serial"], calls["ts"]):
        job = ctx.correlation.job.get(index)
        if serial is None:
            findings.append(_finding(ctx, check, f"no-cert:{seq}", f"Inference call at seq {seq} names no client certificate",
                                     "The inference call does not record the serial of the mTLS client certificate.",
                                     [seq], job_id=job))
        elif serial not in issued:
            findings.append(_finding(ctx, check, f"unknown-cert:{seq}",
                                     f"Inference call at seq {seq} used a certificate Vault PKI did not issue",
                                     f"Certificate serial {serial} has no Vault PKI issue record in the evidence.",
                                     [seq], job_id=job, severity="high"))
        elif pd.notna(ts) and pd.notna(issued[serial]) and ts < issued[serial]:
            findings.append(_finding(ctx, check, f"cert-after-call:{seq}",
                                     f"Inference call at seq {seq} predates its certificate",
                                     f"Certificate {serial} was issued after the call that presented it.",
                                     [seq, cert_seq[serial]], job_id=job))
        elif pd.notna(ts) and pd.notna(issued[serial]) and isinstance(ttl_of.get(serial), int) and \
                ts > issued[serial] + pd.Timedelta(seconds=ttl_of[serial] + ctx.config.clock_skew_seconds):
            findings.append(_finding(ctx, check, f"cert-expired:{seq}",
                                     f"Inference call at seq {seq} presented an expired certificate",
                                     f"Certificate {serial} (TTL {ttl_of[serial]}s from {rfc3339(issued[serial])}) had "
                                     f"expired when the call at {rfc3339(ts)} presented it, and the call went through: "
                                     "the endpoint did not enforce mutual TLS.",
                                     [seq, cert_seq[serial]], job_id=job, severity="high"))
    return _result(ctx, check, evidence=_seq_union(calls["seq"], certs.loc[certs["cert_serial"].isin(calls["cert_serial"]), "seq"]),
                   findings=findings, what=f"{len(calls)} inference call(s)")


def check_inference_redaction(ctx: Context) -> CheckResult:
    check = "inference-redaction"
    calls = ctx.rows("ci.inference_call")
    findings = []
    for index, seq in zip(calls.index, calls["seq"]):
        job = ctx.correlation.job.get(index)
        attrs = ctx.event(seq).get("attrs") or {}
        missing = [name for name in ("payload_hash", "response_hash")
                   if not (isinstance(attrs.get(name), str) and HASH_PATTERN.match(attrs[name]))]
        if missing:
            findings.append(_finding(ctx, check, f"no-hash:{seq}", f"Inference call at seq {seq} lacks {', '.join(missing)}",
                                     f"The call does not carry a sha256:<hex> value for {', '.join(missing)}.",
                                     [seq], job_id=job))
        raw = sorted(RAW_PAYLOAD_KEYS & set(attrs))
        if raw:
            findings.append(_finding(ctx, check, f"raw-payload:{seq}", f"Inference call at seq {seq} logs raw content",
                                     f"The call's record holds raw fields ({', '.join(raw)}) instead of only hashes.",
                                     [seq], job_id=job, severity="high"))
    return _result(ctx, check, evidence=calls["seq"], findings=findings, what=f"{len(calls)} inference call(s)")


def check_allowed_regions(ctx: Context) -> CheckResult:
    check = "allowed-regions"
    allowed = set(ctx.config.allowed_regions)
    frame = ctx.frame
    rows = frame.loc[frame["region"].notna() & frame["source"].isin(("cloudtrail", "ci")),
                     ["seq", "region", "source", "unverified"]]
    # Where a CI job's runner was: its CI events' region or a runner label naming one. An unsigned webhook
    # payload (no signature although a webhook secret was configured) establishes nothing: its claim is left
    # out for a job whose other CI events give a region, and elsewhere judged below, never as a placement.
    unsigned = rows["unverified"] == UNSIGNED
    job_of = ctx.correlation.job[rows.index]
    placed = set(job_of[(rows["source"] == "ci") & ~unsigned].dropna().astype(str))
    placed |= {job.job_id for job in ctx.jobs.values() if label_region(job.runner_labels)}
    with_region = rows[~(unsigned & job_of.isin(list(placed)))]
    findings = []
    outside = with_region[~with_region["region"].isin(allowed)]
    for region, group in outside.groupby("region", sort=True):
        jobs = sorted({str(j) for j in ctx.correlation.job[group.index].dropna()}, key=job_sort_key)
        bare = int((group["unverified"] == UNSIGNED).sum())
        findings.append(_finding(
            ctx, check, f"region:{region}", f"{len(group)} event(s) in region {region}, outside the allowed regions",
            f"Runners or cloud calls ran in {region}; allowed: {', '.join(sorted(allowed))}. "
            f"Jobs: {', '.join(jobs) or 'none linked'}."
            + (f" {bare} of these entries are webhook payloads collected without their signature although a "
               "webhook secret was configured: not authenticated." if bare else ""),
            group["seq"], job_id=jobs[0] if len(jobs) == 1 else None, severity="high"))
    label_seqs: list[int] = []
    ci_job_seqs: dict[str, tuple[int, ...]] | None = None
    for job in ctx.jobs.values():
        labels = job.runner_labels or job.unsigned_labels
        regions = [label for label in labels if REGION_PATTERN.match(label)]
        if regions and ci_job_seqs is None:
            ci_job_seqs = _ci_job_seqs(ctx)
        labelled: tuple[int, ...] = ()
        if regions:
            labelled = ci_job_seqs.get(job.job_id, ()) if ci_job_seqs is not None else ()
            labelled = labelled if job.runner_labels else job.unsigned_seqs
            label_seqs.extend(labelled)
        bad = sorted(set(regions) - allowed)
        if bad:
            whose = "" if job.runner_labels else " (as only unsigned webhook payloads give them: not authenticated)"
            findings.append(_finding(ctx, check, f"runner-label:job-{job.job_id}",
                                     f"Job {job.job_id}'s runner is labelled for {', '.join(bad)}",
                                     f"The runner's labels name region(s) {', '.join(bad)} outside the allowed "
                                     f"regions{whose}.", labelled, job_id=job.job_id, severity="high"))
    # A job whose CI events give no region at all (no region or runner_region, no runner label naming one)
    # cannot be shown to have run inside; nor one whose region only unsigned payloads give. CloudTrail
    # regions say where the job's calls went, not where its runner was.
    unplaced = [job for job in ctx.jobs.values() if job.job_id not in placed
                and any(kind.startswith("ci.") for kind in job.kind_counts)]
    bare_only = [job for job in unplaced if job.unsigned_region]
    for job in bare_only:
        findings.append(_finding(
            ctx, check, f"region-unsigned:job-{job.job_id}",
            f"Job {job.job_id}'s runner region is known only from unsigned webhook payloads",
            f"Only unsigned webhook payloads (collected without their delivery signature, although a webhook "
            f"secret was configured) say job {job.job_id}'s runner was in {job.unsigned_region}: not "
            f"authenticated, so the evidence does not show it ran in an allowed region "
            f"({', '.join(sorted(allowed))}).",
            job.unsigned_seqs, job_id=job.job_id, severity="low"))
    unknown = [job for job in unplaced if not job.unsigned_region]
    if unknown:
        ci_job_seqs = ci_job_seqs if ci_job_seqs is not None else _ci_job_seqs(ctx)
        ci_seqs: dict[str, tuple[int, ...]] | None = None
        for job in unknown:
            seqs: tuple[int, ...] = ci_job_seqs.get(job.job_id) or ()  # its job events; else its other CI events
            if not seqs:  # (its Vault, AWS and attestation entries say nothing about where the runner was)
                ci_seqs = ci_seqs if ci_seqs is not None else _ci_seqs(ctx)
                seqs = ci_seqs.get(job.job_id, ())
            findings.append(_finding(
                ctx, check, f"region-unknown:job-{job.job_id}", f"Job {job.job_id}'s runner region is unknown",
                f"No CI event of job {job.job_id} gives a runner region (runner_region or region) or a runner label "
                f"naming one, so the evidence does not show it ran in an allowed region "
                f"({', '.join(sorted(allowed))}).", seqs, job_id=job.job_id, severity="low"))
    what = f"{len(with_region)} event(s) with a region"
    if unknown:
        what += f"; {len(unknown)} CI job(s) with no runner region"
    if bare_only:
        what += f"; {len(bare_only)} CI job(s) whose runner region only unsigned webhook payloads give"
    return _result(ctx, check, evidence=_seq_union(with_region["seq"], label_seqs), findings=findings, what=what)


def label_region(labels: Sequence[str]) -> str | None:
    """The first runner label that names a region (``us-gov-west-1``), or None."""
    return next((label for label in labels if REGION_PATTERN.match(label)), None)


def _ci_job_seqs(ctx: Context) -> dict[str, tuple[int, ...]]:
    """job → seqs of its ``ci.job_*`` events (the events that carry runner labels), ascending."""
    frame = ctx.frame
    rows = frame.loc[values_with_prefix(frame["kind"], "ci.job_") & ctx.correlation.job.notna(), ["seq"]]
    return _grouped_seqs(rows.assign(job=ctx.correlation.job[rows.index]))


def _ci_seqs(ctx: Context) -> dict[str, tuple[int, ...]]:
    """job → seqs of its CI events (any ``ci.`` kind), ascending."""
    frame = ctx.frame
    rows = frame.loc[(frame["source"] == "ci") & ctx.correlation.job.notna(), ["seq"]]
    return _grouped_seqs(rows.assign(job=ctx.correlation.job[rows.index]))


def _contested(ctx: Context, kind: str) -> dict[str, tuple[int, ...]]:
    """job → seqs of *kind* events that may be that job's but could not be told apart from another
    job's (a shared identifier placed them in two or more jobs' time windows); Vault requests never answered
    that asked for *kind* (:attr:`Context.unanswered`) too."""
    out: dict[str, list[int]] = defaultdict(list)
    for row, jobs in ctx.correlation.ambiguous.items():
        if ctx.frame.at[row, "kind"] == kind or ctx.unanswered.get(int(ctx.frame.at[row, "seq"])) == kind:
            for job in jobs:
                out[job].append(int(ctx.frame.at[row, "seq"]))
    return {job: tuple(sorted(seqs)) for job, seqs in out.items()}


def _vault_job_evidence(ctx: Context, *contested: Mapping[str, tuple[int, ...]]) -> list[int]:
    if not ctx.jobs or not bool((ctx.frame["source"] == "vault").any()):
        return []
    return [s for job in ctx.jobs.values() for s in (*job.secret_read_seqs, *job.token_renew_seqs,
                                                       *job.unpaired_read_seqs, *job.unpaired_renew_seqs,
                                                       *job.unanswered_read_seqs, *job.unanswered_renew_seqs)] + \
        [s for part in contested for seqs in part.values() for s in seqs] or \
        [int(ctx.frame.loc[ctx.frame["source"] == "vault", "seq"].iloc[0])]


def _per_job_count_findings(ctx: Context, check: str, own_of: Mapping[str, tuple[int, ...]],
                            contested: Mapping[str, tuple[int, ...]], limit: int, *, verb: str,
                            noun: str, unpaired_of: Mapping[str, tuple[int, ...]] | None = None,
                            unanswered_of: Mapping[str, tuple[int, ...]] | None = None) -> list[Finding]:
    """A finding per job over *limit*: by its own events, or only once the events that may be its own are
    counted too (fail closed: they do not vanish): those that could not be attributed to one job
    (*contested*: ``unattributed``), those known only from unpaired Vault responses, whose requester is
    unverified (*unpaired_of*: ``unpaired`` when they, with no contested one, take the job over the limit),
    and Vault requests whose response was never logged (*unanswered_of*: ``unanswered`` when they alone do)."""
    findings = []
    for job in ctx.jobs.values():
        own = own_of.get(job.job_id, ())
        maybe = contested.get(job.job_id, ())
        weak = unpaired_of.get(job.job_id, ()) if unpaired_of else ()
        asked = unanswered_of.get(job.job_id, ()) if unanswered_of else ()
        if len(own) > limit:
            findings.append(_finding(
                ctx, check, f"job-{job.job_id}", f"Job {job.job_id} {verb} {len(own)} {noun}",
                f"Job {job.job_id} {verb} {len(own)} {noun}; at most {limit} per job are expected.", own,
                job_id=job.job_id))
        elif len(own) + len(maybe) + len(weak) + len(asked) > limit:
            parts = []
            if maybe:
                rows = [row for row, jobs in ctx.correlation.ambiguous.items() if job.job_id in jobs]
                others = sorted({other for row in rows for other in ctx.correlation.ambiguous[row]
                                 if other != job.job_id}, key=job_sort_key)
                shares = {ctx.within_run[row].label if row in ctx.within_run else None for row in rows}
                if None in shares:
                    whose = f"by an identity it shares with overlapping job(s) {', '.join(others)}"
                else:  # a matrix build: all were made by its run's jobs, none is counted as its own
                    whose = f"{'; '.join(sorted(str(label) for label in shares))}, none counted as its own"
                parts.append(f"{len(maybe)} more, {whose}, could not be attributed to one job")
            if weak:
                parts.append(f"{len(weak)} more are known only from unpaired Vault responses (no request line was "
                             "logged for them), so who made them is unverified")
            if asked:
                parts.append(f"{len(asked)} more were asked of Vault but no response was logged for them (the "
                             "response lines are missing), so whether Vault answered is unknown")
            total = len(own) + len(maybe) + len(weak) + len(asked)
            key = "unattributed" if maybe else "unpaired" if weak else "unanswered"
            findings.append(_finding(
                ctx, check, f"{key}:job-{job.job_id}",
                f"Job {job.job_id} may have {verb} up to {total} {noun}",
                f"Job {job.job_id} {verb} {len(own)} {noun}; {'; '.join(parts)}. Up to {total} may be its own, "
                f"over the limit of {limit} per job.", [*own, *maybe, *weak, *asked], job_id=job.job_id))
    return findings


def check_secret_read_volume(ctx: Context) -> CheckResult:
    check = "secret-read-volume"
    threshold = ctx.config.secret_read_threshold
    contested = _contested(ctx, "vault.secret_read")
    findings = _per_job_count_findings(ctx, check, {j.job_id: j.secret_read_seqs for j in ctx.jobs.values()},
                                       contested, threshold, verb="read", noun="secrets",
                                       unpaired_of={j.job_id: j.unpaired_read_seqs for j in ctx.jobs.values()},
                                       unanswered_of={j.job_id: j.unanswered_read_seqs for j in ctx.jobs.values()})
    reads = sum(len(job.secret_read_seqs) for job in ctx.jobs.values())
    unattributed = len({s for seqs in contested.values() for s in seqs})
    unpaired = sum(len(job.unpaired_read_seqs) for job in ctx.jobs.values())
    unanswered = sum(len(job.unanswered_read_seqs) for job in ctx.jobs.values())
    more = f" (and {unattributed} not attributable to one job)" if unattributed else ""
    more += f" (and {unpaired} from unpaired Vault responses, counted apart)" if unpaired else ""
    more += f" (and {unanswered} from Vault requests never answered, counted apart)" if unanswered else ""
    return _result(ctx, check, evidence=_vault_job_evidence(ctx, contested), findings=findings,
                   what=f"{reads} secret read(s){more} over {len(ctx.jobs)} job(s), threshold {threshold} per job",
                   not_assessed_reason="no CI jobs or no Vault evidence in the period")


def check_token_renewals(ctx: Context) -> CheckResult:
    check = "token-renewals"
    limit = ctx.config.max_token_renewals
    contested = _contested(ctx, "vault.token_renew")
    findings = _per_job_count_findings(ctx, check, {j.job_id: j.token_renew_seqs for j in ctx.jobs.values()},
                                       contested, limit, verb="renewed tokens", noun="times",
                                       unpaired_of={j.job_id: j.unpaired_renew_seqs for j in ctx.jobs.values()},
                                       unanswered_of={j.job_id: j.unanswered_renew_seqs for j in ctx.jobs.values()})
    return _result(ctx, check, evidence=_vault_job_evidence(ctx, contested), findings=findings,
                   what=f"token renewals over {len(ctx.jobs)} job(s), at most {limit} per job",
                   not_assessed_reason="no CI jobs or no Vault evidence in the period")


def check_ai_endpoint_allowlist(ctx: Context) -> CheckResult:
    check = "ai-endpoint-allowlist"
    calls = ctx.rows("ci.inference_call")
    if not ctx.config.allowed_ai_endpoints:
        title, controls = ctx.spec(check)
        return CheckResult(check, title, controls, NOT_ASSESSED,
                           "no AI endpoint allowlist configured (allowed_ai_endpoints)")
    allowed = set(ctx.config.allowed_ai_endpoints)
    findings = []
    for index, seq in zip(calls.index, calls["seq"]):
        endpoint = ctx.attr(seq, "ai_endpoint")
        if endpoint not in allowed:
            job = ctx.correlation.job.get(index)
            findings.append(_finding(ctx, check, f"endpoint:{seq}", f"Inference call at seq {seq} to {endpoint!r}",
                                     f"The AI endpoint {endpoint!r} is not on the allowlist.", [seq], job_id=job,
                                     severity="high"))
    return _result(ctx, check, evidence=calls["seq"], findings=findings, what=f"{len(calls)} inference call(s)")


def check_pki_ca_changes(ctx: Context) -> CheckResult:
    """Changes to what Vault PKI's certificates chain to (``vault.pki_ca_change``): every successful one
    must be explained out of band (as audit-trail changes are), and a CI job's identity making one is
    a high finding whatever explains it: a pipeline that can mint or replace a CA can vouch for anything."""
    check = "pki-ca-changes"
    changes = ctx.rows("vault.pki_ca_change")
    issued = ctx.rows("vault.pki_issue")
    explained = _explained(ctx)
    findings = []
    done = changes[changes["status"] != "failure"]
    ci_entities = _ci_vault_entities(ctx) if not done.empty else {}
    for index, seq, entity in zip(done.index, done["seq"], done["vault_entity_id"]):
        event = ctx.event(seq)
        what = f"{ctx.attr(seq, 'ca_operation') or event.get('action')} on {event.get('resource')} by {event.get('actor')}"
        job = ctx.correlation.job.get(index)
        if isinstance(job, str):
            findings.append(_finding(ctx, check, f"by-job:{seq}", f"PKI CA changed by CI job {job} at seq {seq}",
                                     f"{what}: a CI job's Vault identity changed the CA (sign or replace an issuer, "
                                     "import or generate a CA key); a pipeline should only be able to issue leaf "
                                     "certificates.", [seq], job_id=job, severity="high"))
        elif entity in ci_entities:
            # correlation could not name one job (a matrix build's shared entity, a time outside every job's
            # window: a leaked or reused token), but the identity is the pipeline's all the same
            jobs = ci_entities[entity]
            named = ", ".join(jobs[:5]) + (f" and {len(jobs) - 5} more" if len(jobs) > 5 else "")
            findings.append(_finding(ctx, check, f"by-job:{seq}",
                                     f"PKI CA changed by a CI job's Vault identity at seq {seq}",
                                     f"{what}: Vault entity {entity} is the identity of CI job(s) {named}, and it "
                                     "changed the CA (sign or replace an issuer, import or generate a CA key); a "
                                     "pipeline should only be able to issue leaf certificates.", [seq],
                                     severity="high"))
        elif int(seq) not in explained:
            findings.append(_finding(ctx, check, f"unexplained:{seq}", f"Unexplained PKI CA change at seq {seq}",
                                     f"{what} is not explained (explained_seqs, or an operator's explanation "
                                     "entry naming it).", [seq]))
    return _result(ctx, check, evidence=[*changes["seq"], *issued["seq"]], findings=findings,
                   what=f"{len(changes)} PKI CA change(s) ({len(done)} successful) and {len(issued)} certificate(s) issued",
                   not_assessed_reason="no Vault PKI evidence in the period")


def _ci_vault_entities(ctx: Context) -> dict[str, list[str]]:
    """Vault entity → the CI jobs it is the identity of: the entities of the Vault events correlation placed
    in a job or found shared by jobs (contested, or shared within a run), in job order. Only the Vault
    collector's own events count: a CI event naming an entity (a generic event's own claim) makes no
    identity a job's."""
    frame = ctx.frame
    vault = (frame["source"] == "vault") & frame["vault_entity_id"].notna()
    out: dict[str, set[str]] = defaultdict(set)
    placed = vault & ctx.correlation.job.notna()
    for entity, job in zip(frame.loc[placed, "vault_entity_id"], ctx.correlation.job[placed]):
        out[str(entity)].add(str(job))
    for row, jobs in ctx.correlation.ambiguous.items():
        if bool(vault.get(row, False)):
            out[str(frame.at[row, "vault_entity_id"])].update(jobs)
    return {entity: sorted(jobs, key=job_sort_key) for entity, jobs in out.items()}


def _explained(ctx: Context) -> set[int]:
    """Seqs explained out of band: the explained_seqs setting, and ``*.explanation`` entries from a source
    other than the four collectors (an operator's ``fedledger append``). The audited systems themselves
    (a CI webhook's ``ci.job.explanation``) cannot explain away a change to their own audit trail."""
    explained = set(ctx.config.explained_seqs)
    frame = ctx.frame
    notes = frame.loc[~frame["source"].isin(SOURCES), ["seq", "kind"]]
    for seq, kind in zip(notes["seq"], notes["kind"]):
        if str(kind).endswith(".explanation"):
            attrs = ctx.event(seq).get("attrs") or {}
            explained.update(int(s) for s in attrs.get("explains", ()) if isinstance(s, int))
    return explained


def check_audit_trail_integrity(ctx: Context) -> CheckResult:
    check = "audit-trail-integrity"
    frame = ctx.frame
    findings = []
    for kind, title in (("aws.digest_invalid", "CloudTrail digest or log file does not verify"),
                        ("aws.digest_gap", "CloudTrail digest chain has a gap"),
                        ("vault.unpaired", "Vault audit requests without responses (or the reverse)")):
        rows = frame[frame["kind"] == kind]
        if len(rows):
            findings.append(_finding(ctx, check, kind, title, f"{len(rows)} {kind} record(s) in the period.",
                                     rows["seq"], severity="high"))
    forged = frame[frame["kind"] == "ci.webhook_invalid"]
    if len(forged):
        findings.append(_finding(ctx, check, "ci.webhook_invalid", "CI webhook deliveries with bad signatures",
                                 f"{len(forged)} CI event deliveries failed their webhook signature check: someone "
                                 "other than the CI system may have sent them.", forged["seq"], severity="high"))
    # A provider payload collected without its delivery envelope while a secret was configured: the signature
    # check in force never saw it (whoever can write the collector's input could have written it). Moderate:
    # it shows no alteration, as a bad signature does (high), only evidence that nobody authenticated.
    payloads = frame.loc[(frame["source"] == "ci") & frame["kind"].isin(PROVIDER_PAYLOAD_KINDS), "seq"]
    unsigned = [int(seq) for seq in payloads if unsigned_while_secret_configured(ctx.event(seq))]
    if unsigned:
        findings.append(_finding(
            ctx, check, "ci.unsigned-webhook-payload",
            "CI provider payloads collected without a webhook signature while a webhook secret was configured",
            f"{len(unsigned)} GitHub/GitLab payload(s) came without their delivery envelope, so without the "
            "provider's signature or token, although the collector had a webhook secret to check deliveries "
            "with: anyone able to write the collector's input could have written them. They do not count as "
            "authenticated steps of a job's chain of custody. Collect deliveries, or use --require-signed "
            "(require_signed = true) to quarantine such payloads.", unsigned))
    explained = _explained(ctx)
    trail = frame[(frame["kind"] == "aws.trail_change") & (frame["status"] == "success")]
    tamper = trail[trail["event_name"].isin(TAMPER_TRAIL_ACTIONS) | trail["action"].isin(TAMPER_TRAIL_ACTIONS)]
    audit = frame[(frame["kind"] == "vault.audit_change") & (frame["status"] != "failure")]
    for seq in [*tamper["seq"], *audit["seq"]]:
        event = ctx.event(seq)
        if event.get("kind") == "vault.audit_change" and \
                str(ctx.attr(seq, "operation") or event.get("action") or "").lower() not in TAMPER_AUDIT_OPERATIONS:
            continue
        if int(seq) in explained:
            continue
        what = event.get("action") or ctx.attr(seq, "operation")
        findings.append(_finding(ctx, check, f"tamper:{seq}", f"Unexplained audit-trail change at seq {seq}: {what}",
                                 f"{event.get('kind')} {what} on {event.get('resource')} by {event.get('actor')} "
                                 "is not explained.", [seq], severity="high"))
    cloudtrail = frame.loc[frame["source"] == "cloudtrail", ["seq"]]
    digests = frame[values_with_prefix(frame["kind"], "aws.digest_")]
    if len(cloudtrail) and not len(digests):
        findings.append(_finding(ctx, check, "no-digest-validation", "CloudTrail records were not checked against digests",
                                 "The period holds CloudTrail records but no digest validation results.",
                                 cloudtrail["seq"].iloc[:1]))
    vault = frame.loc[frame["source"] == "vault", "seq"]
    evidence = _seq_union(digests["seq"], trail["seq"], audit["seq"], forged["seq"], unsigned,
                          frame.loc[frame["kind"] == "vault.unpaired", "seq"],
                          vault.iloc[:1])  # Vault pairing is judged by the absence of vault.unpaired
    return _result(ctx, check, evidence=evidence, findings=findings,
                   what=f"{len(digests)} digest result(s), {len(trail)} trail change(s), {len(audit)} audit-device change(s)")


ATTESTATION_DELETED = "attestation.deleted"


def _attestation_rows(ctx: Context) -> pd.DataFrame:
    """Attestation objects (every version); delete markers (``attestation.deleted``) are not objects."""
    frame = ctx.frame
    return frame.loc[(frame["source"] == "attestations") & (frame["kind"] != ATTESTATION_DELETED), ["seq", "kind", "ts"]]


def _deleted_attestation_seqs(ctx: Context) -> pd.Series:
    frame = ctx.frame
    return frame.loc[(frame["source"] == "attestations") & (frame["kind"] == ATTESTATION_DELETED), "seq"]


def _attestations_counted(ctx: Context, objects: int) -> str:
    """``N attestation(s)`` and, when there are delete markers, ``, M deleted``: every check that counts
    attestations says how many were deleted, although only attestation-retention judges the markers."""
    deleted = len(_deleted_attestation_seqs(ctx))
    return f"{objects} attestation(s)" + (f", {deleted} deleted" if deleted else "")


def check_attestation_retention(ctx: Context) -> CheckResult:
    check = "attestation-retention"
    rows = _attestation_rows(ctx)
    minimum = pd.Timedelta(days=ctx.config.retention_min_days)
    findings = []
    deleted = _deleted_attestation_seqs(ctx)
    for seq in deleted:  # one finding per delete marker (the rows are the findings)
        resource = ctx.event(seq).get("resource")
        marker = ctx.attr(seq, "delete_marker_version_id")
        hidden = ctx.attr(seq, "previous_version_id")
        findings.append(_finding(ctx, check, f"deleted:{seq}", f"Attestation {resource} was deleted",
                                 f"A delete marker ({marker}) hides the attestation from the bucket's current listing"
                                 + (f"; its version {hidden} remains in the bucket and in the ledger" if hidden else "")
                                 + ". S3 does not say who deleted it: see CloudTrail data events (DeleteObject).",
                                 [seq]))
    for seq, ts in zip(rows["seq"], rows["ts"]):
        mode = ctx.attr(seq, "object_lock_mode")
        until = ctx.attr(seq, "retain_until")
        days = ctx.attr(seq, "retention_days")
        if mode not in ctx.config.object_lock_modes:
            findings.append(_finding(ctx, check, f"no-lock:{seq}", f"Attestation at seq {seq} is not under the required Object Lock",
                                     f"Object Lock mode is {mode!r}; required: {', '.join(ctx.config.object_lock_modes)}.",
                                     [seq], severity="high"))
            continue
        try:
            until_ts = parse_utc(until) if isinstance(until, str) else None
        except UsageError:
            until_ts = None
        long_enough = (until_ts is not None and pd.notna(ts) and until_ts - ts >= minimum) or \
            (until_ts is None and isinstance(days, int) and days >= ctx.config.retention_min_days)
        if until_ts is not None and until_ts < ctx.as_of:
            findings.append(_finding(ctx, check, f"expired:{seq}", f"Attestation at seq {seq}: retention ended {until}",
                                     "The Object Lock retain-until date is already past.", [seq]))
        elif not long_enough:
            findings.append(_finding(ctx, check, f"short:{seq}", f"Attestation at seq {seq} is retained too briefly",
                                     f"Retained until {until!r} ({days!r} days); at least {ctx.config.retention_min_days} "
                                     "days from storage are required.", [seq]))
    return _result(ctx, check, evidence=_seq_union(rows["seq"], deleted), findings=findings,
                   what=_attestations_counted(ctx, len(rows)))


def check_attestation_encryption(ctx: Context) -> CheckResult:
    check = "attestation-encryption"
    rows = _attestation_rows(ctx)
    findings = []
    for seq in rows["seq"]:
        sse = ctx.attr(seq, "sse")
        if sse not in ctx.config.kms_sse_values:
            findings.append(_finding(ctx, check, f"sse:{seq}", f"Attestation at seq {seq} is not KMS-encrypted",
                                     f"Server-side encryption is {sse!r}; expected {', '.join(ctx.config.kms_sse_values)}.",
                                     [seq]))
    return _result(ctx, check, evidence=rows["seq"], findings=findings, what=_attestations_counted(ctx, len(rows)))


def check_policy_gate(ctx: Context) -> CheckResult:
    check = "policy-gate"
    rows = ctx.rows("ci.policy_decision", "ci.inference_call", "ci.approval")
    jobs = ctx.correlation.job[rows.index]
    per_job: dict[str, dict[str, list[tuple[int, Any]]]] = defaultdict(lambda: defaultdict(list))
    status_of: dict[int, Any] = {}
    run_level = _run_level_approvals(ctx, rows)
    for job_id, seq, kind, ts, status in zip(jobs, rows["seq"], rows["kind"], rows["ts"], rows["status"]):
        status_of[int(seq)] = status
        if job_id is not None and int(seq) not in run_level:
            per_job[str(job_id)][kind].append((int(seq), ts))
    for seq, (ts, approved) in run_level.items():
        for job_id in approved:
            per_job[job_id]["ci.approval"].append((seq, ts))
    findings = []
    for job_id in sorted(per_job, key=job_sort_key):
        calls = per_job[job_id].get("ci.inference_call", [])
        decisions = per_job[job_id].get("ci.policy_decision", [])
        if not calls:
            continue
        call_seqs = [seq for seq, _ in calls]
        call_times = [ts for _, ts in calls if pd.notna(ts)]
        verdicts = [(seq, ts, str(ctx.attr(seq, "decision") or "").lower()) for seq, ts in decisions]
        # An allow whose outcome is a failure (the gate errored) let nothing through, as in the custody story.
        allows = [ts for seq, ts, verdict in verdicts if verdict == "allow" and pd.notna(ts)
                  and status_of.get(seq) == "success"]
        # A deny counts against the calls made after it (a promotion gate denying after the job's calls
        # stopped the job; the calls had passed the gate). Unknown times fail closed: they count.
        denied = _calls_after(calls, [(seq, ts) for seq, ts, verdict in verdicts if verdict == "deny"])
        if denied:
            denies, after = denied
            findings.append(_finding(ctx, check, f"denied-but-ran:job-{job_id}",
                                     f"Job {job_id} called the AI endpoint after a policy denied it",
                                     f"The policy gate denied job {job_id}, yet it went on to make "
                                     f"{len(after)} inference call(s).", [*denies, *after], job_id=job_id,
                                     severity="high"))
        elif not allows:
            findings.append(_finding(ctx, check, f"no-gate:job-{job_id}", f"Job {job_id} was not gated by a policy",
                                     f"Job {job_id} made {len(calls)} inference call(s) with no allow decision.",
                                     call_seqs, job_id=job_id))
        elif call_times and min(allows) > min(call_times):
            findings.append(_finding(ctx, check, f"gate-after-call:job-{job_id}",
                                     f"Job {job_id}'s policy decision came after its inference call",
                                     "The allow decision was recorded after the first inference call.",
                                     [*(seq for seq, _ in decisions), *call_seqs], job_id=job_id))
        findings.extend(_approval_findings(ctx, check, job_id, per_job[job_id].get("ci.approval", []), status_of,
                                           calls))
    # A call correlation places in no job has no gate to show: fail closed rather than leave it unjudged.
    unplaced = rows.loc[(rows["kind"] == "ci.inference_call") & jobs.isna().to_numpy(), "seq"]
    if len(unplaced):
        findings.append(_finding(ctx, check, "unattributed-calls", "Inference calls placed in no CI job",
                                 f"{len(unplaced)} inference call(s) could not be placed in any one CI job (no job id, "
                                 "run or identifier that correlation ties to a single job), so no policy decision or "
                                 "approval can be shown to have gated them.", unplaced))
    return _result(ctx, check, evidence=_seq_union(rows.loc[jobs.notna(), "seq"], list(run_level), unplaced),
                   findings=findings, what=f"{len(per_job)} job(s) with gate decisions or inference calls")


def _run_level_approvals(ctx: Context, rows: pd.DataFrame) -> dict[int, tuple[Any, tuple[str, ...]]]:
    """seq → (time, the jobs it approves) of each ``ci.approval`` that names a run but no job (a GitHub
    environment approval for the run): it applies to every job of that run, within the job's repository and,
    where both give ``run_attempt``, of the job's attempt, as a run-level trigger does. Correlation alone
    would place it in one job only where exactly one job's window holds it, and in none for a matrix build."""
    approvals = rows[(rows["kind"] == "ci.approval") & rows["job_id"].isna() & rows["run_id"].notna()]
    if approvals.empty:
        return {}
    jobs_of_run: dict[str, list[JobFacts]] = defaultdict(list)
    for job in ctx.jobs.values():
        if job.run_id is not None:
            jobs_of_run[str(job.run_id)].append(job)
    out: dict[int, tuple[Any, tuple[str, ...]]] = {}
    for seq, ts, run_id, repository, status in zip(approvals["seq"], approvals["ts"], approvals["run_id"],
                                                   approvals["repository"], approvals["status"]):
        attempt = ctx.attr(int(seq), "run_attempt")
        if attempt is not None and (not isinstance(attempt, int) or isinstance(attempt, bool)):
            # An attempt that is no integer ("2", true, 2.0) names no attempt this check can read: fail closed.
            # A grant approves no job (it never matches, nor stands for every attempt); a refusal refuses
            # every job of the run, as one naming no attempt does.
            if status == "success":
                out[int(seq)] = (ts, ())
                continue
            attempt = None
        approved = tuple(
            job.job_id for job in jobs_of_run.get(str(run_id), [])
            if (repository is None or job.repository is None or job.repository == repository)
            and (attempt is None or ctx.attempts.get(job.job_id) in (None, attempt)))
        out[int(seq)] = (ts, approved)
    return out


def _calls_after(calls: Sequence[tuple[int, Any]],
                 stops: Sequence[tuple[int, Any]]) -> tuple[list[int], list[int]] | None:
    """(the *stops* — denies, refused approvals — that calls came after, those calls), or None when every
    call came before every stop. A call or stop whose time is unknown counts as after (fail closed)."""
    cited: set[int] = set()
    after: set[int] = set()
    for stop, stop_ts in stops:
        later = [seq for seq, ts in calls if pd.isna(stop_ts) or pd.isna(ts) or ts >= stop_ts]
        if later:
            cited.add(stop)
            after.update(later)
    return (sorted(cited), sorted(after)) if after else None


def _approval_findings(ctx: Context, check: str, job_id: str, approvals: list[tuple[int, Any]],
                       status_of: Mapping[int, Any], calls: list[tuple[int, Any]]) -> list[Finding]:
    """A job that called an AI endpoint must record who approved it, before the first call; a refused
    approval (outcome failure) is never an approval, and a call after one is a finding whatever was granted
    around it (a refusal after every call, e.g. of a later promotion, let none of them through)."""
    granted = [(seq, ts) for seq, ts in approvals if status_of.get(seq) == "success"]
    # A refusal counts against the calls made after it (one refused after the calls, e.g. a production
    # promotion, did not let them through); unknown times fail closed.
    call_seqs = [seq for seq, _ in calls]
    call_times = [ts for _, ts in calls if pd.notna(ts)]
    refusal = _calls_after(calls, [(seq, ts) for seq, ts in approvals if status_of.get(seq) != "success"])
    if refusal:
        refused, after = refusal
        who = sorted({str(ctx.attr(seq, "approver") or ctx.event(seq).get("actor") or "unknown") for seq in refused})
        return [_finding(ctx, check, f"approval-refused:job-{job_id}",
                         f"Job {job_id} called the AI endpoint although its approval was refused",
                         f"Approval of job {job_id} was refused (by {', '.join(who)}), yet it went on to make "
                         f"{len(after)} inference call(s).", [*refused, *after], job_id=job_id,
                         severity="high")]
    if not granted:
        if not ctx.config.require_approval:
            return []
        return [_finding(ctx, check, f"no-approval:job-{job_id}", f"Job {job_id} deployed without a recorded approval",
                         f"Job {job_id} made {len(call_seqs)} inference call(s), and no granted approval (ci.approval) "
                         "is linked to it: nothing shows who approved the change.", call_seqs, job_id=job_id)]
    granted_times = [ts for _, ts in granted if pd.notna(ts)]
    if call_times and (not granted_times or min(granted_times) > min(call_times)):
        return [_finding(ctx, check, f"approval-after-call:job-{job_id}",
                         f"Job {job_id} was approved only after its inference call",
                         "The first granted approval was recorded after the first inference call.",
                         [*(seq for seq, _ in granted), *call_seqs], job_id=job_id)]
    return []


def check_timestamps(ctx: Context) -> CheckResult:
    check = "timestamps"
    frame = ctx.frame
    findings = []
    unreadable = frame.loc[frame["ts"].isna(), ["seq"]]
    if len(unreadable):
        findings.append(_finding(ctx, check, "unreadable", f"{len(unreadable)} event(s) without a readable time",
                                 "These events have no RFC 3339 time and cannot be ordered.", unreadable["seq"]))
    not_utc = frame.loc[frame["ts"].notna() & ~frame["utc_z"], ["seq"]]
    if len(not_utc):
        findings.append(_finding(ctx, check, "not-utc", f"{len(not_utc)} event time(s) not in UTC 'Z' form",
                                 "Event times must be UTC with a Z suffix.", not_utc["seq"]))
    windows = _ci_windows(ctx)
    if not windows.empty:
        skew = pd.Timedelta(seconds=ctx.config.clock_skew_seconds)
        mask = ctx.correlation.job.notna() & frame["source"].isin(("vault", "cloudtrail", "ci")) & frame["ts"].notna()
        rows = frame.loc[mask, ["seq", "ts"]]
        rows["job"] = ctx.correlation.job[mask]
        rows = rows.join(windows, on="job", how="inner")
        off = rows[(rows["ts"] < rows["start"] - skew) | (rows["ts"] > rows["end"] + skew)]
        for job_id, group in off.groupby("job", sort=False):
            findings.append(_finding(ctx, check, f"outside-job:job-{job_id}",
                                     f"{len(group)} event(s) of job {job_id} fall outside the job's run time",
                                     f"Events linked to job {job_id} are more than {ctx.config.clock_skew_seconds}s "
                                     "outside its start/completion: clocks disagree or the link is wrong.",
                                     group["seq"], job_id=str(job_id)))
    what = f"{len(frame)} event time(s)"
    bare = _bare_run_times(ctx, windows)
    if bare:
        what += (f"; {len(bare)} job(s) whose start and completion only unsigned webhook payloads give, so "
                 f"their events were not checked against them: {', '.join(bare[:20])}"
                 + (" …" if len(bare) > 20 else ""))
    return _result(ctx, check, evidence=frame["seq"], findings=findings, what=what)


def _ci_windows(ctx: Context) -> pd.DataFrame:
    """job → start, end: its run time from its ``ci.job_started`` / ``ci.job_completed`` events. Unsigned
    webhook payloads (no signature although a webhook secret was configured) are left out: they do not
    say when a job ran (a job known to run only from them has no run time here; see :func:`_bare_run_times`)."""
    frame = ctx.frame
    ci = frame[frame["kind"].isin(("ci.job_started", "ci.job_completed")) & (frame["unverified"] != UNSIGNED)]
    ci = ci.assign(job=ctx.correlation.job[ci.index]).dropna(subset=["job"])
    starts = ci[ci["kind"] == "ci.job_started"].groupby("job")["ts"].min()
    ends = ci[ci["kind"] == "ci.job_completed"].groupby("job")["ts"].max()
    both = pd.DataFrame({"start": starts, "end": ends}).dropna()
    return both


def _bare_run_times(ctx: Context, windows: pd.DataFrame) -> list[str]:
    """Jobs with no run time in *windows* that unsigned payloads alone would have given one."""
    frame = ctx.frame
    bare = frame[frame["kind"].isin(("ci.job_started", "ci.job_completed")) & (frame["unverified"] == UNSIGNED)]
    bare = bare.assign(job=ctx.correlation.job[bare.index]).dropna(subset=["job"])
    kinds = bare.groupby("job")["kind"].agg(lambda k: set(map(str, k)))
    return sorted((str(job) for job, seen in kinds.items()
                   if job not in windows.index and {"ci.job_started", "ci.job_completed"} <= seen), key=job_sort_key)


def check_chain_of_custody(ctx: Context, stories: Sequence[CustodyStory]) -> CheckResult:
    check = "chain-of-custody"
    findings = [*ctx.correlation.findings, *(f for story in stories for f in story.findings)]
    evidence = [s for story in stories for step in story.steps for s in step.seqs]
    whole = sum(1 for story in stories if not story.findings and story.job_id not in ctx.in_flight)
    running = sum(1 for story in stories if story.job_id in ctx.in_flight)
    what = f"{whole} of {len(stories)} job(s) with every required custody step, in order"
    if running:
        what += f"; {running} in progress at as_of (steps not reached yet are not judged)"
    return _result(ctx, check, evidence=evidence, findings=findings, what=what,
                   not_assessed_reason="no CI jobs in the period")


def freshness(ctx: Context, catalog: Catalog, selected: Sequence[str],
              notes: list[str] | None = None) -> tuple[list[SourceFreshness], list[CheckResult]]:
    """Newest evidence per source at as_of; one check per source (and per KSI cadence override).

    A source kind named in ``config.freshness_sources`` is judged per configured source, on the
    entries read from that source's locations (so one Vault server that stopped logging is not
    hidden by another); entries of that kind from no configured location are counted in *notes*."""
    frame = ctx.frame[~ctx.frame["context"]]  # a crossing job's context is not the period's evidence
    newest = frame.loc[frame["ts"].notna(), ["source", "ts"]].groupby("source", observed=True)["ts"].max()
    counts = frame.groupby("source", observed=True).size()
    configured: dict[str, list[tuple[str, tuple[str, ...], int]]] = defaultdict(list)
    for name, kind, locations, days in ctx.config.freshness_sources:
        configured[kind].append((name, locations, days))
    sources = sorted(set(SOURCES) | set(str(s) for s in counts.index))
    states: list[SourceFreshness] = []
    checks: list[CheckResult] = []
    for source in sources:
        spec = ctx.mapping["sources"].get(source)
        if source not in configured:
            when = newest.get(source)

            def newest_of_kind(when: Any = when, source: str = source) -> pd.Series:
                if when is not None and pd.notna(when):
                    return frame.loc[(frame["source"] == source) & (frame["ts"] == when), "seq"]
                return frame.loc[frame["source"] == source, "seq"].iloc[:1]

            _freshness_of(ctx, catalog, states, checks, spec, label=source, what=f"{source} evidence",
                          cadence=ctx.config.freshness_seconds(source), when=when,
                          entries=int(counts.get(source, 0)), newest_seqs=newest_of_kind)
            continue
        # Split by where each entry was read from: the test runs once per distinct location.
        from collector.rotation import covers_location

        rows = frame.loc[frame["source"] == source, ["seq", "ts", "location"]]
        places = [p for p in rows["location"].dropna().unique() if isinstance(p, str)]
        covered = pd.Series(False, index=rows.index)
        for name, locations, days in configured[source]:
            mine = [p for p in places if covers_location(locations, p)]
            mask = rows["location"].isin(mine)
            covered |= mask
            picked = rows.loc[mask]
            dated = picked.loc[picked["ts"].notna(), "ts"]
            when = dated.max() if len(dated) else None

            def newest_of_source(when: Any = when, picked: pd.DataFrame = picked) -> pd.Series:
                if when is not None and pd.notna(when):
                    return picked.loc[picked["ts"] == when, "seq"]
                return picked["seq"].iloc[:1]

            _freshness_of(ctx, catalog, states, checks, spec, label=f"{source}/{name}",
                          what=f"{source} evidence from source {name}", cadence=86400 * days, when=when,
                          entries=len(picked), newest_seqs=newest_of_source, name=name)
        stray = int((~covered).sum())
        if stray and notes is not None:
            notes.append(f"{stray} {source} entr(y/ies) were read from locations no configured {source} source "
                         f"names; they count toward no source's freshness")
    return states, checks


def _freshness_of(ctx: Context, catalog: Catalog, states: list[SourceFreshness], checks: list[CheckResult],
                  spec: Mapping[str, Any] | None, *, label: str, what: str, cadence: int, when: Any, entries: int,
                  newest_seqs: Callable[[], pd.Series], name: str | None = None) -> None:
    """The freshness state and checks of one source (a kind, or one configured source of a kind)."""
    stale = when is None or pd.isna(when) or (ctx.as_of - when).total_seconds() > cadence
    states.append(SourceFreshness(label, rfc3339(when), cadence, bool(stale), entries))
    if spec is None:
        return
    ksi_days = dict(ctx.config.freshness_days_per_ksi)
    groups: dict[int, list[str]] = defaultdict(list)
    for control in spec["controls"]:
        entry = catalog.controls.get(control)
        overrides = [86400 * ksi_days[k] for k in (entry.ksi if entry else ()) if k in ksi_days]
        groups[min([cadence, *overrides])].append(control)
    title_what = spec["title"] + (f" evidence from {name}" if name else " evidence")
    for group_cadence, controls in sorted(groups.items(), reverse=True):
        suffix = "" if group_cadence == cadence else f":{group_cadence // 86400}d"
        check = f"freshness:{label}{suffix}"
        title = f"{title_what} is fresh (cadence {group_cadence // 86400} days)"
        if entries == 0:
            checks.append(CheckResult(check, title, tuple(controls), NOT_ASSESSED,
                                      f"no {what} in the period", kind="freshness"))
            continue
        age = (ctx.as_of - when).total_seconds() if when is not None and pd.notna(when) else None
        is_stale = age is None or age > group_cadence
        newest_seq = newest_seqs()
        findings: tuple[Finding, ...] = ()
        if is_stale:
            findings = (Finding(
                f"{check}:stale", check, f"{title_what} is stale",
                f"The newest {what} is from {rfc3339(when) or 'an unreadable time'}, older than the "
                f"cadence of {group_cadence // 86400} days at {rfc3339(ctx.as_of)}.",
                tuple(controls), _seqs(newest_seq)),)
        summary = (f"newest {what} {rfc3339(when)}, "
                   f"{'older' if is_stale else 'younger'} than {group_cadence // 86400} days at {rfc3339(ctx.as_of)}")
        observation = Observation(f"{check}:newest", check, f"Newest {what}", summary, tuple(controls),
                                  _seqs(newest_seq))
        checks.append(CheckResult(check, title, tuple(controls), NOT_SATISFIED if is_stale else SATISFIED,
                                  summary, findings, (observation,), _seqs(newest_seq), kind="freshness"))


BUILTIN_CHECKS = (
    check_signed_attestation, check_short_lived_credentials, check_workload_identity, check_certificate_ttl,
    check_mtls_inference, check_inference_redaction, check_allowed_regions, check_secret_read_volume,
    check_ai_endpoint_allowlist, check_token_renewals, check_audit_trail_integrity, check_attestation_retention,
    check_attestation_encryption, check_policy_gate, check_timestamps, check_pki_ca_changes,
)


# -- the whole assessment ------------------------------------------------------------------


def evaluate(
    entries: Iterable[tuple[int, Mapping[str, Any], Mapping[str, Any]]],
    *,
    as_of: str | datetime,
    origin: str,
    config: EvaluationConfig | None = None,
    catalog: Catalog | None = None,
    controls: Sequence[str] | None = None,
    policies: Sequence[Any] = (),
    period: tuple[str | datetime | None, str | datetime | None] | None = None,
    baseline: str = "custom",
    timings: dict[str, float] | None = None,
) -> Assessment:
    """Evaluate *entries* (``(seq, event, source)`` triples) into an :class:`Assessment`.

    *controls* are the control ids to report (``None``: every control of *catalog*,
    see :func:`bundler.catalog.select_controls`); *policies* are loaded
    :class:`bundler.rego.Policy` objects; *period* ``(start, end)`` limits the events
    considered (either end may be None). Events after *as_of* are left out. The
    result is deterministic for the same inputs. *timings*, if given, receives the
    seconds spent in each phase (for benchmarks; not part of the result).
    """
    # Evaluation keeps millions of small containers alive; the cyclic GC would rescan
    # them over and over (FIELD-NOTES: up to 4x slower). Nothing here makes cycles.
    with paused_gc():
        reading = TableReading()
        started = time.perf_counter()
        read_rows(entries, reading, (config or EvaluationConfig()).location_families)
        if timings is not None:  # with the table's assembly, which evaluate_reading adds to the same phase
            timings["read entries into the table"] = time.perf_counter() - started
        return evaluate_reading(reading, as_of=as_of, origin=origin, config=config, catalog=catalog,
                                controls=controls, policies=policies, period=period, baseline=baseline,
                                timings=timings)


@paused_gc()
def evaluate_reading(
    reading: TableReading,
    *,
    as_of: str | datetime,
    origin: str,
    config: EvaluationConfig | None = None,
    catalog: Catalog | None = None,
    controls: Sequence[str] | None = None,
    policies: Sequence[Any] = (),
    period: tuple[str | datetime | None, str | datetime | None] | None = None,
    baseline: str = "custom",
    timings: dict[str, float] | None = None,
) -> Assessment:
    """:func:`evaluate` over entries already read into table rows (:func:`bundler.evidence_table.read_rows`,
    or the bundler's one pass over the ledger, :mod:`bundler.ledger_slice`). *reading* is consumed; it must
    keep the locations of ``config.location_families`` (a usage error otherwise)."""
    phase = _PhaseClock(timings)
    config = config or EvaluationConfig()
    missing = config.location_families - reading.location_families
    if missing:
        raise UsageError(f"freshness_sources names {', '.join(sorted(missing))} sources, but the entries were read "
                         "without their locations (read_rows(..., location_families=config.location_families))")
    catalog = catalog or load_builtin_catalog()
    mapping = load_mapping()
    as_of_ts = parse_utc(as_of)
    start = parse_utc(period[0]) if period and period[0] is not None else None
    end = parse_utc(period[1]) if period and period[1] is not None else None
    if start is not None and end is not None and start > end:
        raise UsageError("the period starts after it ends")
    table, context_jobs = _period_table(reading, as_of_ts, start, _last_instant(end), config)
    phase("read entries into the table")
    correlation = correlate(table.frame, window_seconds=config.correlation_window_seconds)
    phase("correlate events to jobs")
    unanswered = unanswered_requests(table)
    jobs = _job_facts(table, correlation, config, unanswered)
    phase("per-job facts")
    attested: dict[str, list[int]] = defaultdict(list)
    for seq in table.frame.loc[table.frame["kind"] == "attestation.signed", "seq"]:
        for digest in attestation_digests(table.events.get(int(seq), {})):
            attested[digest].append(int(seq))
    attempts = job_attempts(table, correlation)
    within_run = shared_within_run(table, correlation, attempts)
    # a job's allowed length: the timeout its CI events give (at most MAX_CONTEXT_JOB_SECONDS), else max_job_seconds
    lengths = {job: facts.timeout_seconds for job, facts in jobs.items() if facts.timeout_seconds}
    in_flight = in_flight_jobs(table, correlation, as_of=as_of_ts, lengths=lengths,
                               default_seconds=config.max_job_seconds, skew_seconds=config.clock_skew_seconds,
                               attempts=attempts)
    ctx = Context(table, correlation, config, as_of_ts, jobs, mapping, dict(attested), within_run, attempts,
                  in_flight, unanswered)
    stories = build_stories(table, correlation, required_steps=config.required_custody_steps,
                            skew_seconds=config.clock_skew_seconds, within_run=within_run, in_flight=in_flight)
    phase("chain-of-custody stories")
    checks = [check(ctx) for check in BUILTIN_CHECKS]
    checks.append(check_chain_of_custody(ctx, stories))
    phase("built-in checks")
    selected = tuple(normalize_control_id(c) for c in controls) if controls else \
        tuple(c.id for c in catalog.controls.values() if not c.withdrawn)
    notes: list[str] = []
    fresh_states, fresh_checks = freshness(ctx, catalog, selected, notes)
    checks.extend(fresh_checks)
    if policies:
        from bundler.rego import evaluate_policies

        checks.extend(evaluate_policies(policies, ctx, stories))
    phase("freshness and Rego policies")
    controls_out = _control_results(selected, checks, catalog, mapping)
    volume = _daily_volume(table.frame[~table.frame["context"]])
    phase("control results and volume")
    if table.invalid:
        notes.append(f"{table.invalid} entr(y/ies) had no readable event kind and were counted as 'invalid'")
    if table.excluded_future:
        notes.append(f"{table.excluded_future} entr(y/ies) dated after as-of were left out")
    if table.excluded_period:
        notes.append(f"{table.excluded_period} entr(y/ies) outside the period were left out")
    context_rows = int(table.frame["context"].sum())
    if context_rows:
        notes.append(f"{context_rows} entr(y/ies) just outside the period were read as the context of "
                     f"{context_jobs} job(s) that cross its edges (each such job is judged whole)")
    for policy in policies:
        if not set(getattr(policy, "controls", ())) & set(selected):
            notes.append(f"policy {policy.name} speaks to {', '.join(map(control_label, policy.controls))}, none of which is assessed "
                         "here: it changed no control's result")
    unassigned = int(correlation.job.isna().sum())
    notes.append(f"{len(jobs)} CI job(s); {unassigned} of {len(table.frame)} entries are not linked to a job")
    if in_flight:
        listed = ", ".join(sorted(in_flight, key=job_sort_key)[:20]) + (" …" if len(in_flight) > 20 else "")
        notes.append(f"{len(in_flight)} CI job(s) in progress at as_of (no end event, started within their allowed "
                     f"length): judged on the steps seen so far, the later ones not yet: {listed}")
    return Assessment(
        as_of=rfc3339(as_of_ts) or "",
        period_start=rfc3339(start),
        period_end=rfc3339(end),
        origin=origin,
        baseline=baseline,
        controls=controls_out,
        custody=stories,
        freshness=tuple(fresh_states),
        volume=volume,
        checks=tuple(sorted(checks, key=lambda c: (c.kind != "builtin", c.check))),
        entries_considered=len(table.frame),
        notes=tuple(notes),
        catalog=catalog.name,
        jobs=len(correlation.jobs),
    )


class _PhaseClock:
    """Adds the seconds since the previous call to ``timings[name]`` (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        import time

        self._timings = timings
        self._counter = time.perf_counter
        self._last = self._counter()

    def __call__(self, name: str) -> None:
        if self._timings is None:
            return
        now = self._counter()
        self._timings[name] = self._timings.get(name, 0.0) + now - self._last
        self._last = now


def _period_table(reading: TableReading, as_of: pd.Timestamp, start: pd.Timestamp | None, last: pd.Timestamp | None,
                  config: EvaluationConfig) -> tuple[EvidenceTable, int]:
    """The evidence table for the period, and how many jobs crossing its edges brought context.

    A job that runs across an edge of the period (a monthly bundle's midnight) would otherwise lose its
    steps on the other side and show false findings in both periods: its rows within a job's length of
    the edge, outside the period, are kept as its context (column ``context``), judged with the job and
    left out of freshness and volume. Rows outside the period that belong to no such job stay out."""
    if start is None and last is None:
        table = assemble_table(reading, as_of=as_of, period_start=None, period_end=None)
        table.frame["context"] = False
        return table, 0
    # A job's length: max_job_seconds, or the longest timeout the jobs' own CI events give (a 4-hour training
    # job says so), so a long job crossing the edge keeps its first steps.
    job_seconds = max(config.max_job_seconds, _longest_job_timeout(reading, config.max_job_seconds))
    margin = pd.Timedelta(seconds=job_seconds + config.correlation_window_seconds + config.clock_skew_seconds)
    wide = assemble_table(reading, as_of=as_of, period_start=None if start is None else start - margin,
                          period_end=None if last is None else last + margin)
    frame = wide.frame
    ts = frame["ts"]
    outside = pd.Series(False, index=frame.index)
    near_edge = pd.Series(False, index=frame.index)
    if start is not None:
        outside |= ts < start
        near_edge |= (ts >= start - margin) & (ts <= start + margin)
    if last is not None:
        outside |= ts > last
        near_edge |= (ts >= last - margin) & (ts <= last + margin)
    context = pd.Series(False, index=frame.index)
    jobs = 0
    if bool(outside.any()):
        # Correlate only the bands around the edges: a job crossing an edge lies within them.
        band = frame.loc[near_edge].reset_index(drop=True)
        linked = correlate(band, window_seconds=config.correlation_window_seconds).job
        band_outside = outside[near_edge].to_numpy()
        crossing = set(linked[~band_outside].dropna()) & set(linked[band_outside].dropna())
        if crossing:
            jobs = len(crossing)
            context_seqs = set(band.loc[band_outside & linked.isin(list(crossing)).to_numpy(), "seq"].tolist())
            context = outside & frame["seq"].isin(list(context_seqs))
    frame["context"] = context
    return select_rows(wide, ~outside | context), jobs


MAX_CONTEXT_JOB_SECONDS = 31 * 86400  # a timeout claim widens the edge bands by at most this (GitLab's maximum)
# A provider delivery's action (``workflow_job.<action>``, GitLab ``job.<status>``); a generic ``ci.job.*``
# event's action is its own ``event_type``, and its attrs are whatever its line says.
_DELIVERY_ACTION_PREFIX = {"github": "workflow_job.", "gitlab": "job."}


def signed_delivery(event: Mapping[str, Any]) -> bool:
    """Whether a CI event is a GitHub/GitLab delivery whose signature (or token) the collector verified:
    ``webhook_signature: verified`` on a provider's own event. A generic ``ci.job.*`` line may write those
    attrs too (the collector keeps its fields as attrs), but its action stays its ``event_type``."""
    attrs = event.get("attrs")
    if not isinstance(attrs, Mapping) or attrs.get("webhook_signature") != "verified":
        return False
    provider = attrs.get("provider")
    prefix = _DELIVERY_ACTION_PREFIX.get(provider) if isinstance(provider, str) else None
    action = event.get("action")
    return prefix is not None and isinstance(action, str) and action.startswith(prefix)


def _longest_job_timeout(reading: TableReading, max_job_seconds: int) -> int:
    """The longest ``timeout_seconds`` / ``timeout_minutes`` a ``ci.job_*`` event of *reading* gives (0: none),
    as :func:`_timeout_claim` reads it (beyond *max_job_seconds* only a signed delivery's). Reads only those
    events (found by their kind column, vectorized)."""
    longest = 0
    for chunk in reading.chunks:
        kinds = chunk["kind"]
        job_kinds = [k for k in pd.unique(kinds) if isinstance(k, str) and k.startswith("ci.job_")]
        if not job_kinds:
            continue
        for seq in chunk["seq"][np.isin(kinds, job_kinds)].tolist():
            event = reading.kept.get(int(seq), {})
            attrs = event.get("attrs")
            if isinstance(attrs, Mapping):
                longest = max(longest, _timeout_claim(attrs, event, max_job_seconds) or 0)
    return longest


def _timeout_claim(attrs: Mapping[str, Any], event: Mapping[str, Any], max_job_seconds: int) -> int | None:
    """The job length a ``ci.job_*`` event's ``timeout_seconds`` (else ``timeout_minutes``) gives, at most
    :data:`MAX_CONTEXT_JOB_SECONDS`; None when it gives none that is a positive integer (``true``, ``-5``,
    ``"7200"`` are no length: a bool was a one-second job, a negative one made every certificate too long).
    Only a signed provider delivery (:func:`signed_delivery`) lengthens a job beyond *max_job_seconds*: an
    unauthenticated claim (a generic ``ci.job.*`` line, a delivery nobody checked) is capped at it, so
    whoever can write the CI inbox cannot keep a job "in progress" or a certificate valid for a month. A
    shorter claim still counts: it only judges the job more strictly."""
    for name, unit in (("timeout_seconds", 1), ("timeout_minutes", 60)):
        value = attrs.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            seconds = min(value * unit, MAX_CONTEXT_JOB_SECONDS)
            return seconds if seconds <= max_job_seconds or signed_delivery(event) else max_job_seconds
    return None


def _control_results(selected: Sequence[str], checks: Sequence[CheckResult], catalog: Catalog,
                     mapping: Mapping[str, Any]) -> tuple[ControlResult, ...]:
    builtin = catalog if catalog.is_builtin else load_builtin_catalog()
    by_control: dict[str, list[CheckResult]] = defaultdict(list)
    for check in checks:
        for control in check.controls:
            by_control[control].append(check)
    kinds_of: dict[str, list[str]] = defaultdict(list)
    for kind, ids in sorted(mapping["evidence_kinds"].items()):
        for control in ids:
            kinds_of[control].append(kind)
    results = []
    for control_id in selected:
        entry: CatalogControl | None = catalog.controls.get(control_id) or builtin.controls.get(control_id)
        relevant = sorted(by_control.get(control_id, []), key=lambda c: (c.kind != "builtin", c.check))
        statuses = {c.status for c in relevant}
        # Fresh evidence alone proves nothing: satisfied needs a satisfied check that looked at the evidence.
        evidenced = any(c.status == SATISFIED and c.kind != "freshness" for c in relevant)
        status: Status = NOT_SATISFIED if NOT_SATISFIED in statuses else SATISFIED if evidenced else NOT_ASSESSED
        findings = tuple(sorted({f.id: f for c in relevant for f in c.findings}.values(), key=lambda f: f.id))
        seqs = _seqs(s for c in relevant if c.status != NOT_ASSESSED for s in c.seqs)
        results.append(ControlResult(
            control_id=control_id,
            title=entry.title if entry else control_label(control_id),
            family=entry.family if entry else control_id.split("-")[0].upper(),
            statement=entry.statement if entry else "",
            status=status,
            checks=tuple(relevant),
            findings=findings,
            seqs=seqs,
            # KSIs by id, for every control evaluated: an enhancement only the user's catalog holds
            # (AC-2(1)) or an id no catalog holds gets its links from the KSI table too.
            ksi=(tuple(dict.fromkeys([*entry.ksi, *entry.ksi_via_enhancements])) if entry
                 else builtin.ksi_of(control_id)),
            parameters=entry.parameters if entry else (),
            evidence_kinds=tuple(kinds_of.get(control_id, ())),
        ))
    return tuple(results)


def _daily_volume(frame: pd.DataFrame) -> tuple[DailyVolume, ...]:
    dated = frame.loc[frame["ts"].notna(), ["ts", "source"]]
    if dated.empty:
        return ()
    counts = dated.groupby([dated["ts"].dt.floor("D"), dated["source"]], observed=True).size()
    volume = [DailyVolume(day.strftime("%Y-%m-%d"), str(source), int(n)) for (day, source), n in counts.items()]
    return tuple(sorted(volume, key=lambda v: (v.day, v.source)))

