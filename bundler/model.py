"""The assessment model: what evaluation produces and rendering/packaging consumes.

Evaluation (:mod:`bundler.evaluate`) is pure: ledger entries, a catalog, policies,
configuration and ``as_of`` in, an :class:`Assessment` out. Renderers build
view-models from it; nothing here does I/O. Control ids are OSCAL style, lower
case (``au-9``, ``ac-2.4``); KSI ids as FedRAMP writes them (``KSI-MLA-01``).
Statuses follow OSCAL finding states plus ``not-assessed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["satisfied", "not-satisfied", "not-assessed"]
SATISFIED: Status = "satisfied"
NOT_SATISFIED: Status = "not-satisfied"
NOT_ASSESSED: Status = "not-assessed"


@dataclass(frozen=True)
class Finding:
    """Something wrong (or missing) in the evidence, tied to controls and the entries that show it."""

    id: str  # deterministic, e.g. "long-term-key:job-31415926535"
    check: str  # the check (or policy) that produced it
    title: str
    description: str
    controls: tuple[str, ...]
    seqs: tuple[int, ...] = ()  # supporting ledger entries
    job_id: str | None = None
    severity: Literal["low", "moderate", "high"] = "moderate"


@dataclass(frozen=True)
class Observation:
    """What was looked at and seen, satisfied or not; cites ledger entries."""

    id: str
    check: str
    title: str
    description: str
    controls: tuple[str, ...]
    seqs: tuple[int, ...] = ()
    method: Literal["AUTOMATED", "EXAMINE", "TEST"] = "AUTOMATED"


@dataclass(frozen=True)
class CheckResult:
    """One built-in check or Rego policy, over the whole period."""

    check: str
    title: str
    controls: tuple[str, ...]
    status: Status
    summary: str
    findings: tuple[Finding, ...] = ()
    observations: tuple[Observation, ...] = ()
    seqs: tuple[int, ...] = ()
    kind: Literal["builtin", "policy", "freshness"] = "builtin"


@dataclass(frozen=True)
class ControlResult:
    control_id: str
    title: str
    family: str  # "AU"
    statement: str  # from the catalog (ours or the user's OSCAL catalog)
    status: Status
    checks: tuple[CheckResult, ...] = ()
    findings: tuple[Finding, ...] = ()
    seqs: tuple[int, ...] = ()  # every entry cited for this control
    ksi: tuple[str, ...] = ()  # FedRAMP 20x KSIs this control maps to
    parameters: tuple[tuple[str, str], ...] = ()  # (param id, value) from the catalog/profile
    evidence_kinds: tuple[str, ...] = ()  # kinds mapped to this control (from the mapping data)


@dataclass(frozen=True)
class CustodyStep:
    """One link of a CI job's chain of custody."""

    step: str  # trigger, oidc_token, role_assumption, vault_login, certificate, build_sign, policy_decision, inference_call, attestation_stored
    title: str
    present: bool
    seqs: tuple[int, ...] = ()
    time: str | None = None
    detail: str = ""
    # attestation_stored: attestations of this job's artifact digest made by another build (another job,
    # run or repository): not counted for this job, listed so a reader sees why (named in ``detail``)
    other_builds: tuple[int, ...] = ()
    # trigger: GitHub/GitLab payloads collected without their delivery signature although a webhook secret
    # was configured: not authenticated, so not counted for the step (named in ``detail`` when it rests on them)
    unsigned: tuple[int, ...] = ()
    # the job was in progress at as_of and has not reached this step yet: not judged (no finding)
    not_reached: bool = False
    # vault_login, certificate: Vault responses whose request line was never logged (attrs.paired false): who
    # asked is unverified, so not counted for the step (named in ``detail`` when it rests on them)
    unpaired: tuple[int, ...] = ()


@dataclass(frozen=True)
class CustodyStory:
    job_id: str
    run_id: str | None
    repository: str | None
    steps: tuple[CustodyStep, ...]
    findings: tuple[Finding, ...] = ()
    in_progress: str | None = None  # "in progress at as_of T": the job had no end event yet (see custody.InFlight)

    @property
    def complete(self) -> bool:
        return all(step.present for step in self.steps)


@dataclass(frozen=True)
class SourceFreshness:
    source: str  # vault, cloudtrail, ci, attestations, manual
    newest: str | None  # newest evidence time
    cadence_seconds: int
    stale: bool
    entries: int


@dataclass(frozen=True)
class DailyVolume:
    day: str  # YYYY-MM-DD
    source: str
    entries: int


@dataclass(frozen=True)
class Assessment:
    as_of: str
    period_start: str | None
    period_end: str | None
    origin: str
    baseline: str  # moderate, high, low, ksi, or "custom"
    controls: tuple[ControlResult, ...]
    custody: tuple[CustodyStory, ...] = ()
    freshness: tuple[SourceFreshness, ...] = ()
    volume: tuple[DailyVolume, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    entries_considered: int = 0
    notes: tuple[str, ...] = field(default=())
    catalog: str = ""  # name of the catalog statements came from (built-in or the user's OSCAL title)
    jobs: int = 0  # CI jobs seen in the evidence

    def control(self, control_id: str) -> ControlResult:
        for result in self.controls:
            if result.control_id == control_id:
                return result
        raise KeyError(control_id)
