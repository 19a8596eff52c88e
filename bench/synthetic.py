"""A synthetic ledger with all four sources and N CI jobs, plus a hand-built Assessment.

Used by the bundle benchmark and the packaging tests. Fixed times and a fixed
key make it reproducible; nothing reads the clock. The Assessment is built by
hand (not by bundler.evaluate) so packaging can be tested on its own.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from bundler.model import (
    NOT_ASSESSED,
    NOT_SATISFIED,
    SATISFIED,
    Assessment,
    CheckResult,
    ControlResult,
    CustodyStep,
    CustodyStory,
    DailyVolume,
    Finding,
    Observation,
    SourceFreshness,
)
from collector.checkpoint import Checkpoint
from collector.ledger import Ledger, NewEntry
from collector.signing import FileSigner, NoteSigner

ORIGIN = "example.gov/fedledger-bench"
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
AS_OF = "2026-11-25T00:00:00Z"
# Fixed P-256 test key (the scalar is a constant; never a real key).
TEST_KEY = ec.derive_private_key(0x5EED5EED5EED5EED5EED5EED5EED5EED5EED5EED5EED5EED5EED5EED5EED5EED, ec.SECP256R1())
SOURCES = ("ci", "vault", "cloudtrail", "attestations")
STORY = [
    ("ci", "ci.job_started", "trigger"),
    ("ci", "ci.oidc_token", "oidc_token"),
    ("cloudtrail", "aws.assume_role_web_identity", "role_assumption"),
    ("vault", "vault.login", "vault_login"),
    ("vault", "vault.pki_issue", "certificate"),
    ("ci", "ci.build_signed", "build_sign"),
    ("ci", "ci.policy_decision", "policy_decision"),
    ("ci", "ci.inference_call", "inference_call"),
    ("attestations", "attestation.signed", "attestation_stored"),
]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def signer() -> FileSigner:
    return FileSigner(ORIGIN, TEST_KEY)


def public_pem() -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return TEST_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass
class SyntheticLedger:
    path: Path
    size: int
    jobs: int
    story_seqs: dict[str, list[tuple[str, int, str]]]  # job id -> [(step, seq, time)]
    kind_seqs: dict[str, list[int]]
    volume: Counter[tuple[str, str]]
    newest: dict[str, str]


def _event(kind: str, t: datetime, job: str, i: int, payload: str = "") -> dict[str, object]:
    return {
        "time": iso(t),
        "kind": kind,
        "actor": f"repo:agency-gov/app-{int(job[-3:]) % 7}:environment:production",
        "action": kind.split(".", 1)[1],
        "resource": f"arn:aws-us-gov:iam::123456789012:role/ci-{i % 5}{payload}",
        "outcome": {"status": "success", "error": None},
        "correlation": {"job_id": job, "run_id": f"run-{job}", "role_session": f"gha-{job}"},
        "attrs": {"region": "us-gov-west-1", "access_key_class": "temporary", "n": i},
    }


def build_ledger(path: Path, *, entries: int = 2000, jobs: int = 20, batch: int = 5000,
                 evidence_text: str = "", sign_with: NoteSigner | None = None, sign: bool = True) -> SyntheticLedger:
    """Write a ledger of *entries* entries (at least 9 per job) and sign a checkpoint over it
    (with *sign_with*, default the fixed test key; none when *sign* is false)."""
    if entries < jobs * len(STORY):
        raise ValueError("need at least 9 entries per job")
    ledger = Ledger.create(path, ORIGIN, created=iso(START), key_type="ecdsa-p256")
    span = timedelta(days=24).total_seconds()
    story_seqs: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    kind_seqs: dict[str, list[int]] = defaultdict(list)
    volume: Counter[tuple[str, str]] = Counter()
    newest: dict[str, str] = {}
    pending: list[NewEntry] = []
    seq = 0
    # Each job's story opens a block of entries // jobs entries; filler fills the rest.
    per_job = entries // jobs if jobs else entries + 1
    fill_no = 0
    filler_kinds = [("cloudtrail", "aws.api_call"), ("vault", "vault.secret_read"), ("ci", "ci.job_completed"),
                    ("cloudtrail", "aws.digest_valid")]
    for position in range(entries):
        t = START + timedelta(seconds=int(span * position / entries))
        block, step_no = divmod(position, per_job)
        if block < jobs and step_no < len(STORY):
            source, kind, step = STORY[step_no]
            job = f"job-{100000 + block}"
            event = _event(kind, t, job, position, evidence_text if step == "inference_call" else "")
            story_seqs[job].append((step, seq, iso(t)))
        else:
            source, kind = filler_kinds[fill_no % len(filler_kinds)]
            job = f"job-{100000 + (fill_no % max(jobs, 1))}"
            event = _event(kind, t, job, position)
            fill_no += 1
        kind_seqs[kind].append(seq)
        day = iso(t)[:10]
        volume[(source, day)] += 1
        newest[source] = iso(t)
        raw = hashlib.sha256(f"{seq}".encode()).hexdigest()
        pending.append(NewEntry({"kind": source, "id": f"{source}-synthetic", "location": f"synthetic:{seq}"},
                                iso(t), event, raw, 100))
        seq += 1
        if len(pending) >= batch:
            ledger.append(pending)
            pending = []
    if pending:
        ledger.append(pending)
    if not sign:
        ledger.close()
        return SyntheticLedger(path, seq, jobs, dict(story_seqs), dict(kind_seqs), volume, newest)
    sign_key = sign_with or signer()
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pem = sign_key.verifier.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    ledger.add_checkpoint(lambda size, root: sign_key.sign_checkpoint(Checkpoint(ORIGIN, size, root)),
                          AS_OF, signer=(sign_key.name, sign_key.verifier.key_id.hex(), pem))
    ledger.close()
    return SyntheticLedger(path, seq, jobs, dict(story_seqs), dict(kind_seqs), volume, newest)


CONTROLS = [
    ("au-2", "Event Logging", "AU", ["aws.api_call", "vault.secret_read"]),
    ("au-3", "Content of Audit Records", "AU", ["ci.inference_call"]),
    ("au-9", "Protection of Audit Information", "AU", ["aws.digest_valid"]),
    ("ia-5", "Authenticator Management", "IA", ["vault.pki_issue", "aws.assume_role_web_identity"]),
    ("si-7", "Software, Firmware, and Information Integrity", "SI", ["attestation.signed"]),
    ("cm-3", "Configuration Change Control", "CM", ["ci.policy_decision"]),
    ("ac-2.4", "Automated Audit Actions", "AC", []),
]


def build_assessment(world: SyntheticLedger, *, evidence_text: str = "", controls: int | None = None,
                     cite_limit: int | None = None) -> Assessment:
    """An Assessment over *world*, by hand: satisfied, not-satisfied and not-assessed controls."""
    results = []
    first_job = sorted(world.story_seqs)[0] if world.story_seqs else None
    for control_id, title, family, kinds in CONTROLS[:controls]:
        seqs = tuple(sorted(s for k in kinds for s in world.kind_seqs.get(k, [])))[:cite_limit]
        if not kinds:
            results.append(ControlResult(control_id, title, family, f"The organization {title.lower()}.",
                                         NOT_ASSESSED))
            continue
        findings: tuple[Finding, ...] = ()
        status = SATISFIED
        if control_id == "ia-5" and first_job:
            step_seqs = tuple(s for _, s, _ in world.story_seqs[first_job][2:3])
            findings = (Finding(f"long-term-key:{first_job}", "short-lived-credentials",
                                "Long-term access key used " + evidence_text,
                                "Job used an AKIA key <b>not</b> a role session. " + evidence_text,
                                ("ia-5",), step_seqs, first_job, "high"),)
            status = NOT_SATISFIED
        check = CheckResult(f"check-{control_id}", f"Check for {title}", (control_id,), status,
                            f"{len(seqs)} entries examined " + evidence_text, findings,
                            (Observation(f"obs-{control_id}", f"check-{control_id}", f"Looked at {title}",
                                         "Examined every mapped entry. " + evidence_text, (control_id,), seqs[:50]),),
                            seqs)
        results.append(ControlResult(control_id, title, family,
                                     f"The organization protects {title.lower()}. {evidence_text}", status,
                                     (check,), findings, seqs, ("KSI-MLA-01",), (("au-9_prm_1", "every 7 days"),),
                                     tuple(kinds)))
    stories = []
    for job, steps in sorted(world.story_seqs.items()):
        present = {step: (seq, t) for step, seq, t in steps}
        story_steps = tuple(
            CustodyStep(step, step.replace("_", " "), step in present and not (job == first_job and step == "vault_login"),
                        (present[step][0],) if step in present else (), present.get(step, (0, None))[1])
            for _, _, step in STORY
        )
        story_findings: tuple[Finding, ...] = ()
        if job == first_job:
            story_findings = (Finding(f"custody-gap:{job}", "custody", "Missing Vault login",
                                      "No Vault login links this job " + evidence_text, ("ia-5",), (), job),)
        stories.append(CustodyStory(job, f"run-{job}", "agency-gov/app", story_steps, story_findings))
    freshness = tuple(
        SourceFreshness(src, world.newest.get(src), 7 * 86400, src == "attestations" and False,
                        sum(n for (s, _), n in world.volume.items() if s == src))
        for src in SOURCES
    )
    volume = tuple(DailyVolume(day, src, n) for (src, day), n in sorted(world.volume.items()))
    return Assessment(AS_OF, "2026-11-01T00:00:00Z", "2026-11-25T00:00:00Z", ORIGIN, "moderate", tuple(results),
                      tuple(stories), freshness, volume, (), world.size, ("Synthetic data. " + evidence_text,))
