"""Chain of custody: tie every event to its CI job and rebuild each job's story.

Correlation (:func:`correlate`) works in two rounds over the evidence table:

1. **Identifiers unique to one job** — ``job_id``, ``role_session`` (STS session
   name), ``cert_serial`` and temporary ``access_key_id`` (``ASIA…``) — are joined
   transitively: an event carrying two of them links them (the CloudTrail
   ``AssumeRoleWithWebIdentity`` record links the role session to its temporary key,
   the inference call links the certificate serial to the job id, …). Every event
   whose identifiers lead to exactly one job id belongs to that job. An identifier
   that leads to two or more jobs (a certificate or session shared by jobs) is a
   finding, and events reached only through it stay unassigned. A job id given with
   two or more repositories (job ids that count per project or per instance) names
   one job per repository, ``<repository>#<job id>``; an event giving such a job id
   without a repository is placed only by its other identifiers, else it is a finding.
   A role session name under which two or more temporary keys were used is not
   per-job (``aws-actions/configure-aws-credentials`` names every session
   ``GitHubActions`` by default): it joins the shared identifiers below.
2. **Identifiers shared by many jobs** — ``run_id``, ``oidc_subject``,
   ``vault_entity_id``, ``artifact_digest``, ``runner`` (and a shared role session
   name) — assign a still unassigned
   event only when exactly one job carrying the same value has its time window
   (first to last event, widened by ``window_seconds``) around the event. An unsigned webhook
   payload (no delivery signature although a webhook secret was configured) does not stretch the
   window of a job that has other events; a window made of such payloads alone places nothing.
   An event naming its run's attempt (``run_attempt``: a re-run's provenance) is not placed in a
   job of another attempt of the same run.

:func:`build_stories` then orders each job's events into the steps trigger →
oidc_token → role_assumption → vault_login → certificate → build_sign →
policy_decision → inference_call → attestation_stored. A step is present only when
its event succeeded (and: the OIDC token verified and its own times do not
contradict that, the policy allowed, the attestation is under Object Lock, the trigger was not a GitHub/GitLab payload collected
without its delivery signature while a webhook secret was configured: such a payload is
listed in the step's ``unsigned``, and a trigger known only from payloads nobody checked
is labelled not authenticated). Missing, failed and out-of-order steps are
findings. Run-level triggers (``ci.workflow_run``) are found by the job's run id (in the
job's repository, and of the job's run attempt, where both are known). An event left unassigned
because it fell in several jobs' windows, all of one run (:func:`shared_within_run`: a matrix
build's role assumption and Vault login), counts for the step of each of them, whose detail says
``shared within run …``; it is never any job's own in ``Correlation.job``.

Attestations are found by the job and by the digests of the artifacts the job built or
used, and then sorted by the build they name (the collector reads ``job_id``, ``run_id``
and ``repository`` from the provenance's invocation): an attestation *of this build*
(correlated to this job, or naming this job's run and no other repository, unless it names
another attempt of the run — ``attrs.run_attempt`` — or, naming none, was placed in a job of another
attempt, or was stored before this job began: a re-run's view of the first attempt's provenance) is
the step;
one of *another build* (correlated to another job, or naming another run or repository:
the same digest built twice) is never this job's step, and is listed in the step's
``other_builds`` and named in its detail; one naming no build at all is used only when
the job has no attestation of its own, and the detail says it was matched by artifact
digest only.

A job still running at ``as_of`` (:func:`in_flight_jobs`: no end event, started less than its
allowed length before ``as_of``) is judged on the steps up to the last one it reached; the later
steps say it was in progress at as_of and are no finding. Past its allowed length it is judged whole.

Pure: no I/O, no clock (``as_of`` is given).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from bundler.evidence_table import UNPAIRED, UNSIGNED, EvidenceTable, token_verified, unverified_claim, values_with_prefix
from bundler.model import CustodyStep, CustodyStory, Finding
from collector.errors import MalformedInput
from collector.timeutil import parse_time

STRONG_KEYS = ("job_id", "role_session", "cert_serial", "access_key_id")
WEAK_KEYS = ("run_id", "oidc_subject", "vault_entity_id", "artifact_digest", "runner", "role_session")
CUSTODY_CONTROLS = ("au-2", "au-10", "sa-10")

STEPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("trigger", "Job triggered", ("ci.workflow_run", "ci.job_queued", "ci.job_started")),
    ("oidc_token", "OIDC token issued to the job", ("ci.oidc_token",)),
    ("role_assumption", "Role assumed with web identity", ("aws.assume_role_web_identity",)),
    ("vault_login", "Vault login", ("vault.login",)),
    ("certificate", "Client certificate issued by Vault PKI", ("vault.pki_issue",)),
    ("build_sign", "Artifact built and signed", ("ci.build_signed",)),
    ("policy_decision", "Policy gate decision", ("ci.policy_decision",)),
    ("inference_call", "AI inference call", ("ci.inference_call",)),
    ("attestation_stored", "Attestation stored under Object Lock", ("attestation.signed",)),
)
# ci.workflow_run actions (GitHub workflow_run.<action>, GitLab pipeline.<status>) that report a
# run's end: they prove the run existed, not what triggered it.
RUN_END_STATES = frozenset({"completed", "success", "failed", "canceled", "cancelled", "skipped"})
_LATEST = pd.Timestamp.max.tz_localize("UTC")
STEP_NAMES = tuple(name for name, _, _ in STEPS)
VAULT_STEPS = frozenset(name for name, _, kinds in STEPS if all(kind.startswith("vault.") for kind in kinds))
STEP_KINDS = frozenset(kind for _, _, kinds in STEPS for kind in kinds)


@dataclass
class Correlation:
    """Which job each row of the table belongs to (``None``: none or ambiguous)."""

    job: pd.Series
    jobs: tuple[str, ...]
    windows: pd.DataFrame  # index job id; columns start, end (UTC timestamps)
    findings: list[Finding] = field(default_factory=list)
    # rows left unassigned because a shared identifier placed them in two or more jobs' windows:
    # row index → those jobs (checks that count per job count them as possibly each one's)
    ambiguous: dict[int, tuple[str, ...]] = field(default_factory=dict)


def job_sort_key(job_id: str) -> tuple[int, str]:
    return (len(job_id), job_id) if job_id.isdigit() else (1 << 30, job_id)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        parent = self.parent.setdefault(item, item)
        while parent != item:
            grand = self.parent[parent]
            self.parent[item] = grand
            item, parent = parent, grand
        return item

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _job_keys(frame: pd.DataFrame) -> tuple[pd.Series, dict[str, tuple[str, ...]]]:
    """The job each row names. A job id is taken as unique, except where rows give it with two or more
    repositories (CI systems whose job ids count per project or per instance: GitLab instances, Jenkins
    build numbers): there it names one job per repository, ``<repository>#<job id>``, and a row that
    gives that job id without a repository names no job by itself (it may still be placed by its other
    identifiers). Returns the keys and, per such job id, its repositories."""
    ids = frame["job_id"]
    named = frame.loc[ids.notna() & frame["repository"].notna(), ["job_id", "repository"]].drop_duplicates()
    counts = named.groupby("job_id")["repository"].nunique()
    shared = counts[counts > 1].index
    if not len(shared):
        return ids, {}
    repositories = {str(job): tuple(sorted(named.loc[named["job_id"] == job, "repository"].astype(str)))
                    for job in shared}
    keys = ids.copy()
    rows = ids.isin(list(shared))
    qualified = rows & frame["repository"].notna()
    keys[qualified] = frame.loc[qualified, "repository"].astype(str) + "#" + ids[qualified].astype(str)
    keys[rows & frame["repository"].isna()] = None
    return keys.astype(object).where(keys.notna(), None), repositories


def _strong_frame(frame: pd.DataFrame, job_keys: pd.Series) -> pd.DataFrame:
    strong = frame[list(STRONG_KEYS)].copy()
    strong["job_id"] = job_keys
    keys = strong["access_key_id"]
    temporary = keys.notna() & values_with_prefix(keys, "ASIA")
    strong.loc[keys.notna() & ~temporary, "access_key_id"] = None
    # A role session name is per-job only if each name stands for one session: a name under which two
    # or more temporary keys were used (aws-actions names every session "GitHubActions" by default) is
    # shared, and links only as a shared identifier (by time), while its keys keep linking each session.
    sessions = frame.loc[temporary & frame["role_session"].notna(), ["role_session", "access_key_id"]]
    keys_per_name = sessions.drop_duplicates().groupby("role_session")["access_key_id"].nunique()
    shared_names = keys_per_name[keys_per_name > 1].index
    if len(shared_names):
        strong.loc[strong["role_session"].isin(list(shared_names)), "role_session"] = None
    return strong


def correlate(frame: pd.DataFrame, *, window_seconds: int = 300) -> Correlation:
    """Assign each row of *frame* to a CI job (see the module docstring)."""
    job_keys, shared_job_ids = _job_keys(frame)
    strong = _strong_frame(frame, job_keys)
    combos = strong.dropna(how="all").drop_duplicates()
    links = _UnionFind()
    for row in combos.itertuples(index=False):
        present = [f"{key}\0{value}" for key, value in zip(STRONG_KEYS, row) if value is not None and value == value]
        for other in present[1:]:
            links.union(present[0], other)
        if present:
            links.find(present[0])
    jobs_of_root: dict[str, set[str]] = defaultdict(set)
    for node in list(links.parent):
        key, value = node.split("\0", 1)
        if key == "job_id":
            jobs_of_root[links.find(node)].add(value)
    findings: list[Finding] = []
    value_job: dict[str, dict[str, str]] = {key: {} for key in STRONG_KEYS}
    for node in sorted(links.parent):
        key, value = node.split("\0", 1)
        linked_jobs = jobs_of_root.get(links.find(node), set())
        if len(linked_jobs) == 1:
            value_job[key][value] = next(iter(linked_jobs))
        elif len(linked_jobs) > 1 and key != "job_id":
            seqs = tuple(sorted(frame.loc[strong[key] == value, "seq"].astype(int).tolist()))
            listed = ", ".join(sorted(linked_jobs, key=job_sort_key))
            findings.append(Finding(
                id=f"custody-shared-identifier:{key}:{value}",
                check="chain-of-custody",
                title=f"{key} {value} is shared by several jobs",
                description=f"The {key} {value} links jobs {listed}; a per-job identifier must belong to one job.",
                controls=CUSTODY_CONTROLS,
                seqs=seqs,
                severity="high",
            ))
    job = _fill_strong(job_keys.copy(), strong, value_job)

    assigned = job.notna()
    timed, bare_jobs = _window_rows(frame, job)
    windows = _windows(frame.loc[timed, "ts"], job[timed], window_seconds)
    unassigned = ~assigned
    contested: dict[int, set[str]] = defaultdict(set)
    if bool(unassigned.any()) and not windows.empty:
        # An event naming its run's attempt (a re-run's provenance: attempt 2) is never placed by a shared
        # identifier in a job of another attempt of that run (the attempt its deliveries give).
        attempt_of = attempts_of_jobs(frame, job)
        run_of = frame.loc[assigned, ["run_id"]].assign(job=job[assigned]).dropna().groupby("job")["run_id"].first()
        owner_attempt = pd.DataFrame({"job_attempt": pd.Series(attempt_of, dtype=object), "job_run": run_of})
        for key in WEAK_KEYS:
            candidates = unassigned & frame[key].notna() & job.isna()
            if not bool(candidates.any()):
                continue
            owners = pd.DataFrame({"value": frame.loc[assigned, key], "job": job[assigned]}).dropna().drop_duplicates()
            if owners.empty:
                continue
            owners = owners.join(windows, on="job")
            named_attempt = bool((frame.loc[candidates, "run_attempt"].notna()).any()) and bool(attempt_of)
            if named_attempt:
                owners = owners.join(owner_attempt, on="job")
            for start in range(0, int(candidates.sum()), 50_000):
                rows = frame.loc[candidates, [key, "ts"]].iloc[start:start + 50_000]
                rows = rows.rename(columns={key: "value"})
                if named_attempt:
                    rows = rows.assign(row_run=frame.loc[rows.index, "run_id"],
                                       row_attempt=frame.loc[rows.index, "run_attempt"])
                rows = rows.reset_index(names="row")
                pairs = rows.merge(owners, on="value")
                pairs = pairs[(pairs["ts"] >= pairs["start"]) & (pairs["ts"] <= pairs["end"])]
                if named_attempt:
                    other = (pairs["row_attempt"].notna() & pairs["job_attempt"].notna()
                             & (pairs["row_run"] == pairs["job_run"]) & (pairs["row_attempt"] != pairs["job_attempt"]))
                    pairs = pairs[~other]
                counts = pairs.groupby("row")["job"].nunique()
                single = pairs[pairs["row"].isin(counts[counts == 1].index)].drop_duplicates("row")
                if bare_jobs:  # a window only unsigned payloads give may contest an event, never place it
                    single = single[~single["job"].isin(list(bare_jobs))]
                job.loc[single["row"].to_numpy()] = single["job"].to_numpy()
                several = pairs[pairs["row"].isin(counts[counts > 1].index)]
                for row, owner in zip(several["row"].tolist(), several["job"].tolist()):
                    contested[int(row)].add(str(owner))
            assigned = job.notna()
            unassigned = ~assigned
        # A row placed by a shared identifier brings along the per-job identifiers it carries
        # (the AssumeRoleWithWebIdentity record, placed by OIDC subject and time, brings its
        # role session and temporary key, and with them every API call of that session).
        placed = assigned & job_keys.isna()
        claims: dict[str, set[str]] = defaultdict(set)  # component root → jobs claiming it
        for key in STRONG_KEYS[1:]:
            rows = placed & strong[key].notna() & ~strong[key].isin(list(value_job[key]))
            for value, owner in zip(strong.loc[rows, key], job[rows]):
                claims[links.find(f"{key}\0{value}")].add(owner)
        if claims:
            for node in links.parent:
                owners = claims.get(links.find(node))
                key, value = node.split("\0", 1)
                if owners and len(owners) == 1 and value not in value_job[key]:
                    value_job[key][value] = next(iter(owners))
            job = _fill_strong(job, strong, value_job)
    jobs = tuple(sorted(set(job_keys.dropna().unique().tolist()), key=job_sort_key))
    for job_id, repositories in sorted(shared_job_ids.items()):
        unplaced = frame["job_id"].eq(job_id) & frame["repository"].isna() & job.isna()
        if bool(unplaced.any()):
            findings.append(Finding(
                id=f"custody-ambiguous-job-id:{job_id}",
                check="chain-of-custody",
                title=f"Job id {job_id} is used in {len(repositories)} repositories",
                description=(f"Job id {job_id} names a job in each of {', '.join(repositories)}; "
                             f"{int(unplaced.sum())} event(s) give that job id without a repository, and nothing "
                             "else ties them to one of those jobs."),
                controls=CUSTODY_CONTROLS,
                seqs=tuple(sorted(frame.loc[unplaced, "seq"].astype(int).tolist())),
                severity="high",
            ))
    timed, _ = _window_rows(frame, job)
    final_windows = _windows(frame.loc[timed, "ts"], job[timed], 0)
    ambiguous = {row: tuple(sorted(owners, key=job_sort_key)) for row, owners in sorted(contested.items())
                 if job.at[row] is None}
    return Correlation(job, jobs, final_windows, findings, ambiguous)


def _fill_strong(job: pd.Series, strong: pd.DataFrame, value_job: Mapping[str, Mapping[str, str]]) -> pd.Series:
    for key in STRONG_KEYS[1:]:
        job = job.fillna(strong[key].map(value_job[key]))
    return job.astype(object).where(job.notna(), None)


def _window_rows(frame: pd.DataFrame, job: pd.Series) -> tuple[pd.Series, set[str]]:
    """(the rows whose times make their job's time window, the jobs whose window rests on unsigned payloads
    only). An unsigned webhook payload (no delivery signature although a webhook secret was configured) says
    when the job ran without anyone vouching for it: it does not stretch the window of a job that has other
    events, and a window made of such payloads alone is returned as such (it places no event)."""
    assigned = job.notna()
    bare = assigned & (frame["unverified"] == UNSIGNED)
    if not bool(bare.any()):
        return assigned, set()
    trusted = set(job[assigned & ~bare])
    bare_only = set(job[bare]) - trusted
    return assigned & (~bare | job.isin(list(bare_only))), {str(j) for j in bare_only}


def _windows(ts: pd.Series, job: pd.Series, pad_seconds: int) -> pd.DataFrame:
    if ts.empty:
        return pd.DataFrame(columns=["start", "end"])
    grouped = pd.DataFrame({"ts": ts, "job": job}).dropna().groupby("job")["ts"]
    pad = pd.Timedelta(seconds=pad_seconds)
    return pd.DataFrame({"start": grouped.min() - pad, "end": grouped.max() + pad})


def _attr(event: Mapping[str, Any] | None, name: str) -> Any:
    if not event:
        return None
    attrs = event.get("attrs")
    return attrs.get(name) if isinstance(attrs, Mapping) else None


def attestation_digests(event: Mapping[str, Any]) -> set[str]:
    """Artifact digests an attestation event speaks to (correlation and subjects)."""
    digests: set[str] = set()
    correlation = event.get("correlation")
    if isinstance(correlation, Mapping) and isinstance(correlation.get("artifact_digest"), str):
        digests.add(correlation["artifact_digest"])
    subjects = _attr(event, "subjects")
    for subject in subjects if isinstance(subjects, list) else ():
        if not isinstance(subject, Mapping):
            continue
        digest = subject.get("digest")
        if isinstance(digest, Mapping):
            for algorithm, value in sorted(digest.items()):
                digests.add(f"{algorithm}:{value}")
        elif isinstance(digest, str):
            digests.add(digest)
    return digests


ATTESTATION_STEP = "attestation_stored"
ATTESTATION_KINDS = frozenset(dict((name, kinds) for name, _, kinds in STEPS)[ATTESTATION_STEP])
_OWN, _OTHER, _DIGEST_ONLY = "own", "other", "digest-only"
_EARLIER = "earlier"  # names this job's run, but another attempt's, or stored before this job began


def _text(value: Any) -> str | None:
    return None if value is None or value != value else str(value)  # NaN (pandas' missing) too


@dataclass(frozen=True)
class _AttestedBuild:
    """The build an attestation names: the job correlation placed it in, and the job id, run id and
    repository it gives itself (``correlation``, which the collector reads from the provenance's
    invocation and build parameters)."""

    job: str | None
    job_id: str | None
    run_id: str | None
    repository: str | None
    attempt: int | None = None  # the run attempt its invocation names (``attrs.run_attempt``)

    @property
    def name(self) -> str:
        """The build as the attestation names it (else the job its time placed it in)."""
        where = f" in {self.repository}" if self.repository is not None else ""
        if self.job_id is not None:
            return f"job {self.job}" if self.job is not None else f"job {self.job_id}{where}"
        if self.run_id is not None:
            return f"run {self.run_id}{where}" + (f", attempt {self.attempt}" if self.attempt is not None else "")
        if self.repository is not None:
            return f"repository {self.repository}"
        return f"job {self.job}"

    @property
    def names_build(self) -> bool:
        return self.job_id is not None or self.run_id is not None or self.repository is not None

    def linked_to(self, job: str, run_id: str | None, repository: str | None, *, before_job: bool = False,
                  other_attempt: bool = False, attempt: int | None = None) -> str:
        """``own`` (this build's), ``other`` (another build's), ``earlier`` (this job's run, but of another attempt
        of it — the attempt it names differs from the job's *attempt*, or, when it names none, correlation
        placed it in a job of another attempt: *other_attempt* — or stored before this job began: *before_job*)
        or ``digest-only`` (it names none)."""
        # A job id places it (correlate), also where the repository is spelled otherwise; a job id that
        # placed it nowhere (one used in two repositories, given without one) is no evidence for this job.
        if self.job_id is not None:
            return _OWN if self.job == job else _OTHER
        if repository is not None and self.repository is not None and self.repository != repository:
            return _OTHER
        if self.run_id is not None and run_id is not None:  # run-level provenance: the run's build
            if self.run_id != run_id:
                return _OTHER
            # A re-run (attempt 2) keeps its run id. Provenance whose invocation names the attempt
            # (``…/actions/runs/<run>/attempts/<n>``) says which attempt built it, whenever it was stored and
            # wherever its time placed it; one that names none is another attempt's when correlation placed
            # it in a job of another attempt. Either way, one stored before this job began is an earlier
            # attempt's or an earlier job's, not this build's.
            if self.attempt is not None and attempt is not None:
                return _EARLIER if before_job or self.attempt != attempt else _OWN
            return _EARLIER if before_job or other_attempt else _OWN
        if self.job is not None:  # placed by a shared identifier and time in one job's window
            return _OWN if self.job == job else _OTHER
        return _DIGEST_ONLY


def _other_builds_text(records: Sequence[tuple[Any, ...]], builds: Mapping[Any, _AttestedBuild],
                       why: Mapping[Any, str] | None = None) -> str:
    """``not this job's: N attestation(s) of the same artifact digest by another build (job X: entry 40; …)``;
    *why* adds to a name what makes an attestation naming this job's run another build's (``run R, …``)."""
    named = []
    for record in sorted(records, key=lambda r: int(r[0])):
        name = builds[record[0]].name
        if why and record[0] in why:
            name += f", {why[record[0]]}"
        named.append(f"{name}: entry {int(record[0])}")
    return (f"not this job's: {len(records)} attestation(s) of the same artifact digest by another build "
            f"({'; '.join(named)})")


UNSIGNED_REASON = ("an unsigned webhook payload (no delivery signature, although a webhook secret was configured): "
                   "not authenticated")
UNPAIRED_REASON = ("an unpaired Vault response (no request line was logged for it): Vault answered, but who asked "
                   "is unverified")
UNCHECKED_LABEL = ("not authenticated: known only from webhook payloads whose signature was not checked "
                   "(no webhook secret was configured)")


def unsigned_while_secret_configured(event: Mapping[str, Any] | None) -> bool:
    """A GitHub/GitLab payload the collector took without its delivery envelope (so without the
    provider's signature or token) while a webhook secret was configured: anyone who could write the
    collector's input could have written it, and the signature check that was in force never saw it."""
    attrs = event.get("attrs") if event else None
    if event is None or not isinstance(attrs, Mapping):
        return False
    return unverified_claim(attrs, event.get("kind")) == UNSIGNED


def unpaired_response(event: Mapping[str, Any] | None) -> bool:
    """A Vault response whose request line was never logged (``attrs.paired`` false; the collector also wrote
    a ``vault.unpaired`` finding for it): Vault answered, but who asked is not corroborated."""
    attrs = event.get("attrs") if event else None
    if event is None or not isinstance(attrs, Mapping):
        return False
    return unverified_claim(attrs, event.get("kind")) == UNPAIRED


def token_time_contradiction(event: Mapping[str, Any]) -> str | None:
    """Why a ``ci.oidc_token`` entry's own times contradict ``attrs.verified`` (None when they do not).

    The collector verified the token against its exact claims (collector/oidc.py) with the clock
    leeway it records as ``attrs.leeway_s`` (0 when the entry records none); the entry keeps the
    claims as whole seconds, a fractional claim rounded up. So, for a time of use t and leeway L,
    the claims were certainly not met when t + L <= issued_at - 1 or t + L <= not_before - 1 (the
    claim is above the stored second minus one), or t >= expires + L. Within the last second before
    a stored issued_at/not_before only the collector's exact verdict can tell, and it stands. For
    entries a correct collector made this never disagrees with ``verified``; it catches a verdict
    reached with a leeway beyond the documented 600 s (a fedledger.toml ``leeway`` that was not
    bounded) or an entry whose verdict and times do not belong together."""
    attrs = event.get("attrs")
    if not isinstance(attrs, Mapping):
        return None
    try:
        used = parse_time(str(event.get("time")))
    except MalformedInput:
        return None  # the timestamps check reports a time that cannot be read
    leeway = attrs.get("leeway_s")
    leeway = leeway if isinstance(leeway, int) and not isinstance(leeway, bool) and leeway >= 0 else 0

    def stored(name: str) -> datetime | None:
        value = attrs.get(name)
        try:
            return parse_time(value) if isinstance(value, str) else None
        except MalformedInput:
            return None

    slack = timedelta(seconds=leeway)
    used_text = str(event.get("time"))
    for name, label in (("issued_at", "issued at"), ("not_before", "not before")):
        claim = stored(name)
        if claim is not None and used + slack <= claim - timedelta(seconds=1):
            return f"it was used at {used_text}, before it was {label} {attrs[name]} (leeway {leeway} s)"
    expires = stored("expires")
    if expires is not None and used >= expires + slack:
        return f"it was used at {used_text}, when it had expired (expires {attrs['expires']}, leeway {leeway} s)"
    return None


def _unauthenticated_payload(event: Mapping[str, Any] | None) -> bool:
    """A provider payload whose signature nobody checked (a bare payload, or a delivery without a secret)."""
    return _attr(event, "webhook_signature") in ("absent", "not-checked")


def _run_attempt(event: Mapping[str, Any] | None) -> int | None:
    """A GitHub run attempt (``attrs.run_attempt``: 1, 2 for a re-run, …), or None when not given."""
    attempt = _attr(event, "run_attempt")
    return attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None


def job_attempts(table: EvidenceTable, correlation: Correlation) -> dict[str, int]:
    """job → its run attempt, from its own ``ci.job_queued``/``ci.job_started`` events (``attrs.run_attempt``);
    jobs whose events give none are left out, and so are jobs whose events give two or more attempts (a
    job id belongs to one attempt: a claimed second attempt must not move the job away from its run's end,
    its trigger or its attestation, so its attempt is unknown)."""
    return attempts_of_jobs(table.frame, correlation.job)


def attempts_of_jobs(frame: pd.DataFrame, job: pd.Series) -> dict[str, int]:
    """:func:`job_attempts` over a table's rows and their jobs (``run_attempt`` column)."""
    return {j: next(iter(a)) for j, a in _attempts_given(frame, job).items() if len(a) == 1}


def conflicting_attempts(frame: pd.DataFrame, job: pd.Series) -> set[str]:
    """The jobs whose own ``ci.job_queued``/``ci.job_started`` events name two or more run attempts: their
    attempt is unknown (:func:`job_attempts`), and nothing that names an attempt (an attestation's
    provenance, a run's trigger) can be shown to be theirs."""
    return {j for j, a in _attempts_given(frame, job).items() if len(a) > 1}


def _attempts_given(frame: pd.DataFrame, job: pd.Series) -> dict[str, set[int]]:
    rows = frame.loc[frame["kind"].isin(("ci.job_queued", "ci.job_started")) & job.notna()
                     & frame["run_attempt"].notna(), ["run_attempt"]]
    if rows.empty:
        return {}
    given = rows.assign(job=job[rows.index]).groupby("job", sort=False)["run_attempt"].agg(lambda s: set(s))
    return {str(j): {int(a) for a in attempts} for j, attempts in given.items()}


@dataclass(frozen=True)
class RunShare:
    """An event correlation could not give to one job (a shared identifier placed it in two or more jobs'
    windows) whose contesting jobs all belong to one run: the same run id, the same repository (or none
    known for any of them) and, where known, the same attempt. The evidence cannot tell which of them
    the event was, only that it was one of this run's jobs (a GitHub Actions matrix build)."""

    run_id: str
    repository: str | None
    attempt: int | None
    jobs: tuple[str, ...]

    @property
    def label(self) -> str:
        where = f" in {self.repository}" if self.repository is not None else ""
        attempt = f", attempt {self.attempt}" if self.attempt is not None else ""
        return f"shared within run {self.run_id}{where}{attempt} (jobs {', '.join(self.jobs)})"


def shared_within_run(table: EvidenceTable, correlation: Correlation,
                      attempts: Mapping[str, int] | None = None) -> dict[int, RunShare]:
    """Row index → :class:`RunShare`, for the rows of ``correlation.ambiguous`` that only jobs of one run
    contest (and that name no other run or repository themselves). Rows contested by jobs of two runs,
    repositories or attempts are not here: they stay unattributed."""
    if not correlation.ambiguous:
        return {}
    frame = table.frame
    attempts = job_attempts(table, correlation) if attempts is None else attempts
    linked = correlation.job.notna()
    info = frame.loc[linked, ["run_id", "repository"]].assign(job=correlation.job[linked])
    runs = info.dropna(subset=["run_id"]).groupby("job")["run_id"].agg(lambda s: tuple(sorted(set(s)))).to_dict()
    repos = info.dropna(subset=["repository"]).groupby("job")["repository"].agg(
        lambda s: tuple(sorted(set(s)))).to_dict()

    def share_of(jobs: tuple[str, ...]) -> RunShare | None:
        job_runs = {runs.get(job, ()) for job in jobs}
        job_repos = {repos.get(job, ()) for job in jobs}
        known = {attempts[job] for job in jobs if job in attempts}
        if len(job_runs) != 1 or len(job_repos) != 1 or len(known) > 1:
            return None
        (run,), (repo,) = job_runs, job_repos
        if len(run) != 1 or len(repo) > 1:  # a job with no run id, or one naming two runs or repositories
            return None
        return RunShare(str(run[0]), str(repo[0]) if repo else None, next(iter(known)) if known else None, jobs)

    shares: dict[tuple[str, ...], RunShare | None] = {}
    out: dict[int, RunShare] = {}
    rows = list(correlation.ambiguous)
    named = frame.loc[rows, ["run_id", "repository"]]
    for row, run_id, repository in zip(rows, named["run_id"], named["repository"]):
        jobs = correlation.ambiguous[row]
        if jobs not in shares:
            shares[jobs] = share_of(jobs)
        share = shares[jobs]
        if share is None:
            continue
        # an event naming another run or repository than its contesting jobs' is not this run's
        if _text(run_id) not in (None, share.run_id) or _text(repository) not in (None, share.repository):
            continue
        out[row] = share
    return out


def shared_rows_of_job(within_run: Mapping[int, RunShare]) -> dict[str, list[int]]:
    """job → the row indexes it shares with the other jobs of its run (ascending)."""
    out: dict[str, list[int]] = defaultdict(list)
    for row, share in sorted(within_run.items()):
        for job in share.jobs:
            out[job].append(row)
    return dict(out)


IN_PROGRESS = "in progress at as_of"
END_KIND = "ci.job_completed"  # GitHub workflow_job completed, GitLab build finished, generic ci.job.completed
LIFECYCLE_KINDS = ("ci.job_queued", "ci.job_started", END_KIND)


@dataclass(frozen=True)
class InFlight:
    """A job still running at ``as_of``: no end event, started less than its allowed length before it."""

    started: str  # its ci.job_started time (never after its first step), else its first event's
    length_seconds: int
    length_from: str  # "timeout_seconds/timeout_minutes of its events" or "max_job_seconds"
    as_of: str

    @property
    def state(self) -> str:
        return f"{IN_PROGRESS} {self.as_of}"

    @property
    def label(self) -> str:
        return (f"{self.state} (no end event yet, started {self.started}, allowed length "
                f"{self.length_seconds} s from {self.length_from}); this step comes later and is not judged yet")


def in_flight_jobs(table: EvidenceTable, correlation: Correlation, *, as_of: pd.Timestamp,
                   lengths: Mapping[str, int], default_seconds: int, skew_seconds: int = 0,
                   attempts: Mapping[str, int] | None = None) -> dict[str, InFlight]:
    """job → :class:`InFlight`, for the jobs still running at *as_of*: a job with a lifecycle event
    (``ci.job_queued``/``ci.job_started``) but no end (no ``ci.job_completed``, and no ``ci.workflow_run``
    reporting its run's end, in its repository and attempt where known) that started (``ci.job_started``,
    else its first event; never after its first event other than a queued one or a run's) less than its allowed length (*lengths*: from its events' timeouts, else
    *default_seconds*) plus *skew_seconds* before *as_of*. Its last event is then within that length too.
    A job past its allowed length without an end event (stale, killed, or its end never collected) is not
    here: it is judged as finished."""
    frame = table.frame
    job = correlation.job
    lifecycle = frame["kind"].isin(LIFECYCLE_KINDS) & job.notna()
    life = frame.loc[lifecycle, ["kind", "ts", "unverified"]].assign(job=job[lifecycle])
    if life.empty:
        return {}
    ended = set(life.loc[life["kind"] == END_KIND, "job"])  # any end event ends it (then judged whole)
    # Only a lifecycle event someone vouched for starts the wait: unsigned payloads alone do not.
    open_jobs = life[~life["job"].isin(ended) & (life["unverified"] != UNSIGNED)]
    if open_jobs.empty:
        return {}
    started = open_jobs[open_jobs["kind"] == "ci.job_started"].groupby("job")["ts"].min()
    first = correlation.windows["start"] if "start" in correlation.windows else pd.Series(dtype=object)
    starts = started.reindex(sorted(set(open_jobs["job"]))).fillna(first)
    # A job does not start after its own steps: a ci.job_started dated hours after its token, logins and
    # calls (its real start missing, or a generic event's claim) must not open a fresh wait.
    steps = job.notna() & frame["ts"].notna() & ~frame["kind"].isin(("ci.job_queued", "ci.workflow_run")) \
        & (frame["unverified"] != UNSIGNED)
    first_step = frame.loc[steps, "ts"].groupby(job[steps]).min().reindex(starts.index)
    starts = starts.where(first_step.isna() | (starts.notna() & (starts <= first_step)), first_step)
    starts = starts[starts.notna()]
    seconds = pd.Series([lengths.get(j, default_seconds) for j in starts.index], index=starts.index, dtype="int64")
    running = starts[(starts + pd.to_timedelta(seconds + skew_seconds, unit="s")) >= as_of]
    if running.empty:
        return {}
    # a run reported ended (workflow_run completed, a GitLab pipeline's end status) ended all its jobs
    runs = frame.loc[frame["kind"] == "ci.workflow_run", ["seq", "run_id", "repository"]].dropna(subset=["run_id"])
    run_ends: dict[str, list[tuple[str | None, int | None]]] = defaultdict(list)
    for seq, run_id, repository in zip(runs["seq"], runs["run_id"], runs["repository"]):
        event = table.events.get(int(seq)) or {}
        if str(event.get("action") or "").rsplit(".", 1)[-1].lower() in RUN_END_STATES:
            run_ends[str(run_id)].append((_text(repository), _run_attempt(event)))
    mine = job.isin(list(running.index))
    info = frame.loc[mine, ["run_id", "repository"]].assign(job=job[mine])
    run_of = info.dropna(subset=["run_id"]).groupby("job")["run_id"].first().to_dict()
    repo_of = info.dropna(subset=["repository"]).groupby("job")["repository"].first().to_dict()
    attempts = attempts if attempts is not None else job_attempts(table, correlation)
    out: dict[str, InFlight] = {}
    stamp = as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
    for job_id, start in running.items():
        run_id, repository, attempt = run_of.get(job_id), repo_of.get(job_id), attempts.get(str(job_id))
        if run_id is not None and any(
                (repository is None or end_repo is None or end_repo == repository)
                and (attempt is None or end_attempt is None or end_attempt == attempt)
                for end_repo, end_attempt in run_ends.get(str(run_id), [])):
            continue
        out[str(job_id)] = InFlight(start.strftime("%Y-%m-%dT%H:%M:%SZ"), int(seconds[job_id]),
                                    "the timeout its events give" if job_id in lengths else "max_job_seconds",
                                    stamp)
    return out


def _step_state(step: str, event: Mapping[str, Any] | None, status: Any) -> tuple[bool, str]:
    """(counts as present, reason if not) for one event of a step."""
    if step == "trigger" and unsigned_while_secret_configured(event):
        return False, UNSIGNED_REASON
    if step in VAULT_STEPS and unpaired_response(event):
        return False, UNPAIRED_REASON
    if step == "trigger" and event and event.get("kind") == "ci.workflow_run":
        action = str(event.get("action") or "").rsplit(".", 1)[-1].lower()
        if action in RUN_END_STATES:
            return False, "only the run's end was seen, not what triggered it"
    if status != "success":
        return False, "the event failed"
    if step == "oidc_token" and not token_verified(event):
        return False, "the OIDC token did not verify"
    if step == "oidc_token" and event and (contradiction := token_time_contradiction(event)) is not None:
        # workload-identity's oidc-time-contradicts: the verdict is not taken on trust here either
        return False, f"the OIDC token is recorded as verified, but its own times say it was not valid: {contradiction}"
    if step == "policy_decision" and str(_attr(event, "decision") or "").lower() != "allow":
        return False, f"the policy decision was {_attr(event, 'decision')!r}, not allow"
    if step == "attestation_stored" and not _attr(event, "object_lock_mode"):
        return False, "the attestation is not under S3 Object Lock"
    return True, ""


def build_stories(
    table: EvidenceTable,
    correlation: Correlation,
    *,
    required_steps: Sequence[str] = STEP_NAMES,
    skew_seconds: int = 120,
    within_run: Mapping[int, RunShare] | None = None,
    in_flight: Mapping[str, InFlight] | None = None,
) -> tuple[CustodyStory, ...]:
    """One :class:`CustodyStory` per job id seen in the evidence, in job-id order. *within_run*
    (:func:`shared_within_run`, computed when not given) names the events each of a run's jobs shares:
    they count for each of them, and the step says so. A job in *in_flight* (:func:`in_flight_jobs`) is
    judged on the steps up to the last one it has an event for; the steps after it have not happened yet:
    their detail says the job was in progress at as_of, and they are no finding."""
    frame = table.frame
    attempt_of_job = job_attempts(table, correlation)
    conflicted = conflicting_attempts(frame, correlation.job)
    if within_run is None:
        within_run = shared_within_run(table, correlation, attempt_of_job)
    step_of_kind: dict[str, list[str]] = defaultdict(list)
    for name, _, kinds in STEPS:
        for kind in kinds:
            step_of_kind[kind].append(name)
    rows = frame.loc[frame["kind"].isin(STEP_KINDS), ["seq", "kind", "ts", "status", "job_id", "run_id", "repository"]]
    rows = rows.assign(job=correlation.job[rows.index],
                       share=pd.Series(within_run, dtype=object).reindex(rows.index) if within_run else None)
    by_job: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    shared_seqs: dict[Any, RunShare] = {}  # seq of a row the jobs of one run share → that run
    # run id → (record, repository, run attempt): run-level triggers
    by_run: dict[str, list[tuple[tuple[Any, ...], Any, int | None]]] = defaultdict(list)
    by_digest: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    builds: dict[Any, _AttestedBuild] = {}  # attestation seq → the build it names
    for row in rows.itertuples(index=False):
        time = table.events.get(int(row.seq), {}).get("time")
        record = (row.seq, row.kind, time if isinstance(time, str) else None, row.ts, row.status)
        if row.job is not None:
            by_job[row.job].append(record)
        elif isinstance(row.share, RunShare):  # one of the run's jobs: a step of each, labelled so
            shared_seqs[row.seq] = row.share
            for job in row.share.jobs:
                by_job[job].append(record)
        if row.kind == "ci.workflow_run" and row.run_id is not None:
            by_run[row.run_id].append((record, row.repository, _run_attempt(table.events.get(int(row.seq)))))
        if row.kind in ATTESTATION_KINDS:
            builds[row.seq] = _AttestedBuild(row.job, _text(row.job_id), _text(row.run_id), _text(row.repository),
                                             _run_attempt(table.events.get(int(row.seq))))
            for digest in attestation_digests(table.events.get(int(row.seq), {})):
                by_digest[digest].append(record)
    job_info = frame.loc[correlation.job.notna(), ["run_id", "repository", "artifact_digest"]].assign(
        job=correlation.job[correlation.job.notna()])
    runs = job_info.dropna(subset=["run_id"]).groupby("job")["run_id"].first().to_dict()
    repos = job_info.dropna(subset=["repository"]).groupby("job")["repository"].first().to_dict()
    digests_of_job = job_info.dropna(subset=["artifact_digest"]).groupby("job")["artifact_digest"].agg(
        lambda s: sorted(set(s))).to_dict()
    stories = []
    skew = pd.Timedelta(seconds=skew_seconds)
    starts = correlation.windows["start"].to_dict() if "start" in correlation.windows else {}
    for job_id in correlation.jobs:
        records = {r[0]: r for r in by_job.get(job_id, [])}
        run_id = runs.get(job_id)
        repository = repos.get(job_id)
        attempt = attempt_of_job.get(job_id)
        for record, run_repository, run_attempt in by_run.get(run_id, []) if run_id else []:
            # a run id is unique only within its repository on some CI systems; a re-run keeps the run id
            # (attempt 2): each attempt has its own trigger, and another attempt's is not this job's
            # (a job whose own events name two attempts takes no trigger that names one)
            same_attempt = attempt == run_attempt if attempt is not None else job_id not in conflicted
            if (repository is None or run_repository is None or run_repository == repository) and \
                    (run_attempt is None or same_attempt):
                records.setdefault(record[0], record)
        for digest in digests_of_job.get(job_id, []):
            for record in by_digest.get(digest, []):
                records.setdefault(record[0], record)
        # Attestations: this build's own, else ones naming no build; never another build's of the same digest
        began = starts.get(job_id)
        attested: dict[Any, str] = {}
        why: dict[Any, str] = {}
        for seq in records:
            if seq not in builds:
                continue
            placed = builds[seq].job
            placed_attempt = attempt_of_job.get(placed) if placed is not None and placed != job_id else None
            other_attempt = placed_attempt is not None and attempt is not None and placed_attempt != attempt
            before_job = bool(began is not None and pd.notna(records[seq][3]) and records[seq][3] + skew < began)
            attested[seq] = builds[seq].linked_to(job_id, run_id, repository, before_job=before_job,
                                                  other_attempt=other_attempt, attempt=attempt)
            named_attempt = builds[seq].attempt  # its name gives it: no need to repeat it
            if attested[seq] != _EARLIER or (named_attempt is not None and attempt is not None
                                             and named_attempt != attempt):
                pass
            elif named_attempt is not None and attempt is not None:
                why[seq] = "stored before this job started (an earlier job of the attempt)"
            elif other_attempt:
                why[seq] = f"attempt {placed_attempt} (job {placed})" if named_attempt is None else f"job {placed}"
            else:
                why[seq] = "stored before this job started (an earlier attempt or job of the run)"
            if attested[seq] == _OWN and job_id in conflicted and named_attempt is not None:
                # this job's own events name two attempts of its run: which one it was cannot be told
                attested[seq] = _EARLIER
                why[seq] = "this job's own events name two attempts of its run"
        own = any(link == _OWN for link in attested.values())
        other_builds: list[tuple[Any, ...]] = []
        for seq, link in attested.items():
            if link in (_OTHER, _EARLIER):
                other_builds.append(records.pop(seq))
            elif link == _DIGEST_ONLY and own:
                del records[seq]  # nothing ties it to this build, and the build has its own
        # the step rests only on attestations that name no build (found by digest, or placed by digest and time)
        by_digest_only = bool(attested) and len(other_builds) < len(attested) and not any(
            builds[seq].names_build for seq in records if seq in builds)
        steps: list[CustodyStep] = []
        findings: list[Finding] = []
        previous: tuple[str, pd.Timestamp] | None = None
        running = in_flight.get(job_id) if in_flight else None
        horizon = len(STEPS)  # steps from this index on have not been reached (a job in flight)
        if running is not None:
            kinds_seen = {r[1] for r in records.values()}
            reached = [i for i, (_, _, step_kinds) in enumerate(STEPS) if kinds_seen.intersection(step_kinds)]
            horizon = max(reached) + 1 if reached else 0
        for index, (name, title, kinds) in enumerate(STEPS):
            matching = sorted((r for r in records.values() if r[1] in kinds),
                              key=lambda r: (r[3] if pd.notna(r[3]) else _LATEST, r[0]))
            good: list[tuple[Any, ...]] = []
            reasons: list[tuple[tuple[Any, ...], str]] = []
            for record in matching:
                ok, reason = _step_state(name, table.events.get(int(record[0])), record[4])
                if ok:
                    good.append(record)
                else:
                    reasons.append((record, reason))
            seqs = tuple(sorted(int(r[0]) for r in matching))
            unsigned = tuple(sorted(int(r[0]) for r, reason in reasons if reason == UNSIGNED_REASON))
            unpaired = tuple(sorted(int(r[0]) for r, reason in reasons if reason == UNPAIRED_REASON))
            present = bool(good)
            first = good[0] if good else None
            detail = ""
            not_reached = not present and not reasons and running is not None and index >= horizon
            if not present and reasons:
                detail = "; ".join(sorted({reason for _, reason in reasons}))
            elif not_reached:
                assert running is not None
                detail = running.label
            elif not present:
                detail = "no event found for this step"
            elif all(_unauthenticated_payload(table.events.get(int(r[0]))) for r in good):
                detail = UNCHECKED_LABEL  # present, as before, but nobody vouched for it
            shares = [shared_seqs.get(r[0]) for r in good]
            if present and all(share is not None for share in shares):
                # only events this job shares with the other jobs of its run: present, and said so
                labels = "; ".join(sorted({share.label for share in shares if share is not None}))
                shared = (f"{labels}: the evidence cannot tell which of these jobs each of the {len(good)} "
                          "event(s) was, only that it was one of this run's")
                detail = f"{shared}; {detail}" if detail else shared
            others: tuple[int, ...] = ()
            if name == ATTESTATION_STEP:
                notes = [detail] if detail else []
                if by_digest_only and matching:
                    notes.append("the attestation names no job, run or repository: matched by artifact digest only")
                if other_builds:
                    others = tuple(sorted(int(r[0]) for r in other_builds))
                    notes.append(_other_builds_text(other_builds, builds, why))
                detail = "; ".join(notes)
            steps.append(CustodyStep(name, title, present, seqs, first[2] if first else None, detail, others, unsigned,
                                     not_reached, unpaired))
            if not present and name in required_steps and index < horizon:
                findings.append(Finding(
                    id=f"custody-missing:{name}:job-{job_id}",
                    check="chain-of-custody",
                    title=f"Job {job_id}: {title.lower()} is missing from the chain of custody",
                    description=f"Step '{name}' of job {job_id}: {detail}.",
                    controls=CUSTODY_CONTROLS,
                    seqs=seqs,
                    job_id=job_id,
                ))
            if first is not None and pd.notna(first[3]):
                if previous is not None and first[3] + skew < previous[1]:
                    findings.append(Finding(
                        id=f"custody-order:{name}:job-{job_id}",
                        check="chain-of-custody",
                        title=f"Job {job_id}: {name} happened before {previous[0]}",
                        description=(f"Step '{name}' at {first[2]} comes before the earlier step '{previous[0]}' "
                                     f"at {previous[1].strftime('%Y-%m-%dT%H:%M:%SZ')}."),
                        controls=CUSTODY_CONTROLS,
                        seqs=(int(first[0]),),
                        job_id=job_id,
                    ))
                if previous is None or first[3] > previous[1]:
                    previous = (name, first[3])
        stories.append(CustodyStory(job_id, run_id, repos.get(job_id), tuple(steps), tuple(findings),
                                    running.state if running is not None else None))
    return tuple(stories)
