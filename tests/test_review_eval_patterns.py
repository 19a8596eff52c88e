"""Evaluation against pipelines built from PIPELINE-PATTERNS.md, as the collectors normalize them.

``gha_job`` is one GitHub Actions job told the way fedledger's collectors write it: workflow_run and
workflow_job webhook deliveries (run id, job id, runner, ``run_attempt``), the job's OIDC token
(run id, repository and subject from the claims, the job id from the record around it),
``aws-actions/configure-aws-credentials``' AssumeRoleWithWebIdentity (every session named
``GitHubActions``, each with its own temporary key), a Vault JWT login from the token (GitHub
tokens name no job: run id, repository, subject and a Vault entity per role and subject), a PKI
certificate for mTLS to the AI endpoint, secret reads, a cosign-style build/sign, an OPA gate, an
approval, an inference call presenting the certificate and a SLSA attestation under Object Lock
naming the run (GitHub's provenance names runs, not jobs). Each test changes one thing a real
pipeline does (a re-run, a matrix, a token whose times contradict its verdict…) and checks the
per-control results and the entries the findings cite.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from bundler.evaluate import evaluate
from bundler.model import NOT_SATISFIED, SATISFIED, Assessment, CustodyStep, CustodyStory
from tests.synthetic_jobs import BASE, as_entries, digest_events, event, stamp

AS_OF = "2026-11-21T00:00:00Z"
REPO = "agency-gov/claims-model"
ROLE_ARN = "arn:aws-us-gov:iam::123456789012:role/ci-inference-only"
ENDPOINT = "fedramp-ai.gov/infer"
CUSTODY = ("au-2", "au-10", "sa-10")


def _hex(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def gha_job(n: int, start: datetime, *, run: int | None = None, job: int | None = None, attempt: int = 1,
            repo: str = REPO, digest: str | None = None, entity: str = "entity-gha-prod",
            signature: str = "verified", secret_configured: bool | None = None) -> list[dict[str, Any]]:
    """Every event of one compliant GitHub Actions job (see the module docstring), in time order."""
    run_id, job_id = str(run or 9000 + n), str(job or 70000 + n)
    subject = f"repo:{repo}:environment:production"
    key = f"ASIAGHA{n:013d}"
    serial = ":".join(_hex(f"serial-{n}-{attempt}")[k:k + 2] for k in range(0, 40, 2))
    digest = digest or f"sha256:{_hex(f'artifact-{n}')}"

    def at(seconds: int) -> datetime:
        return start + timedelta(seconds=seconds)

    delivery: dict[str, Any] = {"provider": "github", "run_attempt": attempt, "webhook_signature": signature}
    if secret_configured is not None:
        delivery["webhook_secret_configured"] = secret_configured
    ci = {"job_id": job_id, "run_id": run_id, "repository": repo, "runner": f"govcloud-runner-{n}"}
    runner = {**delivery, "runner_labels": ["self-hosted", "linux", "govcloud", "us-gov-west-1"],
              "runner_region": "us-gov-west-1"}
    vault = {"run_id": run_id, "repository": repo, "oidc_subject": subject, "vault_entity_id": entity}
    session = {"access_key_id": key, "role_session": "GitHubActions", "role_arn": ROLE_ARN}
    return [
        event("ci.workflow_run", at(0), actor="dev", action="workflow_run.requested", resource=repo,
              correlation={"run_id": run_id, "repository": repo}, attrs=dict(delivery)),
        event("ci.job_queued", at(2), actor="dev", action="workflow_job.queued", resource=repo, correlation=dict(ci),
              attrs=dict(runner)),
        event("ci.job_started", at(20), actor="dev", action="workflow_job.in_progress", resource=repo,
              correlation=dict(ci), attrs=dict(runner)),
        event("ci.oidc_token", at(25), actor=subject, action="oidc_token.present",
              resource="https://token.actions.githubusercontent.com",
              correlation={"job_id": job_id, "run_id": run_id, "repository": repo, "oidc_subject": subject},
              attrs={"verified": True, "verification_error": None,
                     "issuer": "https://token.actions.githubusercontent.com", "audience": "sts.amazonaws.com",
                     "token_sha256": _hex(f"token-{n}-{attempt}"), "issued_at": stamp(at(25)),
                     "not_before": stamp(at(25)), "expires": stamp(at(325)), "time_source": "event",
                     "leeway_s": 0}),
        event("aws.assume_role_web_identity", at(27), actor=subject, action="AssumeRoleWithWebIdentity",
              resource=ROLE_ARN, correlation={**session, "oidc_subject": subject},
              attrs={"event_source": "sts.amazonaws.com", "event_name": "AssumeRoleWithWebIdentity",
                     "region": "us-gov-west-1", "identity_type": "WebIdentityUser",
                     "provider": "token.actions.githubusercontent.com", "issued_access_key_class": "temporary"}),
        event("vault.login", at(31), actor=entity, action="update", resource="auth/jwt/login", correlation=dict(vault),
              attrs={"auth_method": "jwt", "role": "ci-inference", "policies": ["default", "ci-inference"],
                     "token_ttl": 900, "token_type": "service"}),
        event("vault.pki_issue", at(33), actor=entity, action="update", resource="pki/issue/ci-job",
              correlation={**vault, "cert_serial": serial},
              attrs={"role": "ci-job", "common_name": f"ci-job-{job_id}", "ttl": 900, "cert_serial": serial}),
        event("vault.secret_read", at(35), actor=entity, action="read", resource="kv/data/ci/model",
              correlation=dict(vault), attrs={"mount_type": "kv", "path": "kv/data/ci/model"}),
        event("aws.api_call", at(40), actor=f"arn:aws-us-gov:sts::123456789012:assumed-role/ci-inference-only/"
              "GitHubActions", action="GetObject", resource="arn:aws-us-gov:s3:::models/m", correlation=dict(session),
              attrs={"event_source": "s3.amazonaws.com", "event_name": "GetObject", "region": "us-gov-west-1",
                     "access_key_class": "temporary", "identity_type": "AssumedRole"}),
        event("ci.build_signed", at(300), actor="ci@agency.gov", action="signed", resource="registry.agency.gov/m",
              correlation={**ci, "artifact_digest": digest}, attrs={"signer": "ci@agency.gov"}),
        event("ci.policy_decision", at(320), actor="opa", action="evaluate", resource="pipeline",
              correlation={**ci, "artifact_digest": digest}, attrs={"policy": "pipeline", "decision": "allow"}),
        event("ci.approval", at(340), actor="jane.isso@agency.gov", action="approved", correlation=dict(ci),
              attrs={"approver": "jane.isso@agency.gov"}),
        event("ci.inference_call", at(400), actor="deploy-bot@agency.gov", action="infer", resource=ENDPOINT,
              correlation={**ci, "cert_serial": serial, "artifact_digest": digest},
              attrs={"ai_endpoint": ENDPOINT, "payload_hash": f"sha256:{_hex('payload' + job_id)}",
                     "response_hash": f"sha256:{_hex('response' + job_id)}", "cert_serial": serial,
                     "cert_issued_by": "vault-pki"}),
        event("attestation.signed", at(430), actor="ci@agency.gov", action="PutObject",
              resource=f"s3://agency-attestations/attestations/{run_id}-{attempt}.json",
              correlation={"artifact_digest": digest, "run_id": run_id, "repository": repo},
              attrs={"predicate_type": "https://slsa.dev/provenance/v1",
                     "subjects": [{"name": "registry.agency.gov/m", "digest": {"sha256": digest.split(":", 1)[1]}}],
                     "signer": "ci@agency.gov", "key_id": "cosign", "verification_error": None,
                     "object_lock_mode": "COMPLIANCE", "retain_until": stamp(at(430) + timedelta(days=400)),
                     "legal_hold": False, "version_id": f"v{n}", "sse": "aws:kms", "kms_key_id": "alias/att",
                     "retention_days": 400}),
        event("ci.job_completed", at(600), actor="dev", action="workflow_job.completed", resource=repo,
              correlation=dict(ci), attrs={**runner, "conclusion": "success"}),
    ]


def evaluated(events: list[dict[str, Any]], **kwargs: Any) -> tuple[Assessment, list]:
    entries = as_entries(events + digest_events(BASE, 4))
    kwargs.setdefault("as_of", AS_OF)
    return evaluate(entries, origin="test.example/ledger", **kwargs), entries


def seq_of(entries: list, target: dict) -> int:
    return next(seq for seq, item, _ in entries if item is target)


def of_kind(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (only,) = [e for e in events if e["kind"] == kind]
    return only


def story_of(assessment: Assessment, job: str) -> CustodyStory:
    return next(s for s in assessment.custody if s.job_id == job)


def step(st: CustodyStory, name: str) -> CustodyStep:
    return next(s for s in st.steps if s.step == name)


def status(assessment: Assessment) -> dict[str, str]:
    return {c.control_id: c.status for c in assessment.controls}


def test_compliant_github_jobs_sharing_the_session_name_satisfy_every_control() -> None:
    """The baseline the other tests change: two jobs of one repository and environment, one after the
    other, sharing the OIDC subject, the Vault entity and the role session name ``GitHubActions``."""
    events = gha_job(1, BASE) + gha_job(2, BASE + timedelta(minutes=30))
    assessment, _ = evaluated(events)
    assert set(status(assessment).values()) == {SATISFIED}
    assert [s.job_id for s in assessment.custody] == ["70001", "70002"]
    assert all(s.complete and not s.findings for s in assessment.custody)


# -- a token recorded as verified whose own times contradict it -----------------------------------


def test_a_token_whose_own_times_contradict_its_verdict_is_no_custody_step() -> None:
    """workload-identity treats such a token as not verified (``oidc-time-contradicts``); the chain of
    custody counted it as the job's verified OIDC token, so AU-2, AU-10 and SA-10 passed on it, and a
    Rego policy reading ``input.custody.oidc_token`` saw true."""
    events = gha_job(1, BASE)
    token = of_kind(events, "ci.oidc_token")
    token["attrs"].update(issued_at=stamp(BASE + timedelta(minutes=30)), not_before=stamp(BASE + timedelta(minutes=30)),
                          expires=stamp(BASE + timedelta(minutes=35)))
    assessment, entries = evaluated(events)
    token_seq = seq_of(entries, token)
    identity = next(c for c in assessment.checks if c.check == "workload-identity")
    assert [f.id for f in identity.findings] == [f"workload-identity:oidc-time-contradicts:{token_seq}"]
    st = story_of(assessment, "70001")
    oidc = step(st, "oidc_token")
    assert not oidc.present and oidc.seqs == (token_seq,)
    assert "own times" in oidc.detail
    (finding,) = st.findings
    assert finding.id == "custody-missing:oidc_token:job-70001" and finding.seqs == (token_seq,)
    assert {c for c, s in status(assessment).items() if s == NOT_SATISFIED} == {"ac-2", "ac-6", "ia-2", *CUSTODY}


# -- a job re-run: same run id, attempt 2, new job id ---------------------------------------------


def _rerun(*, second_signature: str = "verified", second_attests: bool = True) -> list[dict[str, Any]]:
    """Run 9001 attempt 1 (job 70001) and, an hour later, its re-run attempt 2 (job 70002): the same
    reproducible digest, the same run id, each attempt with its own workflow_run ``requested``."""
    first = gha_job(1, BASE, run=9001, job=70001, attempt=1)
    digest = of_kind(first, "ci.build_signed")["correlation"]["artifact_digest"]
    second = gha_job(2, BASE + timedelta(hours=1), run=9001, job=70002, attempt=2, digest=digest,
                     signature=second_signature, secret_configured=True if second_signature == "absent" else None)
    if not second_attests:
        second.remove(of_kind(second, "attestation.signed"))
    return first + second


def test_a_rerun_is_judged_on_its_own_attestation_not_the_first_attempts() -> None:
    """Both attestations name run 9001 (GitHub provenance names the run). The re-run took the first
    attempt's too, dated an hour before it started, as its first attestation: a false
    ``custody-order:attestation_stored`` on a compliant re-run."""
    events = _rerun()
    assessment, entries = evaluated(events)
    first_att, second_att = (seq_of(entries, e) for e in events if e["kind"] == "attestation.signed")
    assert set(status(assessment).values()) == {SATISFIED}, [f.id for c in assessment.controls for f in c.findings]
    second = step(story_of(assessment, "70002"), "attestation_stored")
    assert second.present and second.seqs == (second_att,) and second.other_builds == (first_att,)
    assert "by another build (run 9001 in agency-gov/claims-model, attempt 1 (job 70001): entry" in second.detail
    # and the first attempt's story does not cite the re-run's attestation as its own
    first = step(story_of(assessment, "70001"), "attestation_stored")
    assert first.present and first.seqs == (first_att,) and first.other_builds == (second_att,)


def test_a_run_level_attestation_stored_after_the_build_job_is_its_own_but_not_a_later_reruns() -> None:
    """slsa-github-generator stores the run's provenance from a later job, so the attestation may fall
    in no job's window: it is still the build's (its run), but never the re-run's, which began after it."""
    events = _rerun(second_attests=False)
    attestation = next(e for e in events if e["kind"] == "attestation.signed")
    attestation["time"] = stamp(BASE + timedelta(minutes=25))  # 15 minutes after attempt 1 completed
    assessment, entries = evaluated(events)
    seq = seq_of(entries, attestation)
    assert step(story_of(assessment, "70001"), "attestation_stored").seqs == (seq,)
    assert story_of(assessment, "70001").complete
    second = step(story_of(assessment, "70002"), "attestation_stored")
    assert not second.present and second.other_builds == (seq,)
    assert "(run 9001 in agency-gov/claims-model, stored before this job started (an earlier attempt or job of " \
           "the run): entry" in second.detail


def test_a_rerun_that_stored_no_attestation_does_not_borrow_the_first_attempts() -> None:
    events = _rerun(second_attests=False)
    assessment, entries = evaluated(events)
    first_att = seq_of(entries, of_kind(events, "attestation.signed"))
    st = story_of(assessment, "70002")
    attestation = step(st, "attestation_stored")
    assert not attestation.present and attestation.seqs == () and attestation.other_builds == (first_att,)
    assert [f.id for f in st.findings] == ["custody-missing:attestation_stored:job-70002"]
    assert story_of(assessment, "70001").complete
    assert assessment.control("si-7").status == SATISFIED  # the digest itself is attested (by attempt 1)


def test_a_reruns_trigger_is_its_own_attempts_not_the_first_attempts() -> None:
    """The re-run's deliveries came as plain payloads while a webhook secret was configured: its
    trigger is not authenticated. It borrowed attempt 1's signed ``workflow_run.requested`` (same run
    id) and showed a trigger; and attempt 1's trigger step cited attempt 2's payload."""
    events = _rerun(second_signature="absent")
    assessment, entries = evaluated(events)
    runs = [seq_of(entries, e) for e in events if e["kind"] == "ci.workflow_run"]
    second = story_of(assessment, "70002")
    trigger = step(second, "trigger")
    assert not trigger.present and runs[0] not in trigger.seqs and runs[1] in trigger.seqs
    assert trigger.unsigned == trigger.seqs
    assert "custody-missing:trigger:job-70002" in [f.id for f in second.findings]
    first = step(story_of(assessment, "70001"), "trigger")
    assert first.present and runs[1] not in first.seqs


# -- findings cite what supports them ----------------------------------------------------------------


def test_region_unknown_cites_the_jobs_ci_events_not_its_vault_and_aws_entries() -> None:
    """A job known only from the pipeline's own ci.job.* events (no webhook job deliveries), none giving a
    region. The finding cited every entry linked to the job (its Vault login, AWS calls, attestation…),
    which say nothing about where the runner was; it cites the CI events that could have said it."""
    events = [e for e in gha_job(1, BASE) if not e["kind"].startswith(("ci.job_", "ci.workflow_run"))]
    assessment, entries = evaluated(events)
    (finding,) = [f for f in assessment.control("sc-8").findings if f.check == "allowed-regions"]
    assert finding.id == "allowed-regions:region-unknown:job-70001" and finding.severity == "low"
    assert finding.seqs == tuple(s for s, e, _ in entries if e["kind"].startswith("ci."))


def _with_decision(events: list[dict[str, Any]], kind: str, seconds: int, **attrs: Any) -> dict[str, Any]:
    ci = dict(of_kind(events, "ci.policy_decision")["correlation"])
    made = event(kind, BASE + timedelta(seconds=seconds), actor="opa", action="evaluate", resource="promote",
                 status="failure", correlation=ci, attrs=attrs)
    events.insert(-1, made)
    return made


def test_a_deny_recorded_after_the_calls_is_not_a_job_that_ran_after_a_deny() -> None:
    """A promotion gate that denies after the job's inference call (the job then stops) worked: the call
    came after the allow and before the deny. It was a high ``denied-but-ran`` ('yet it went on to make 1
    inference call'); a deny before a call still is, citing that deny and the calls after it."""
    events = gha_job(1, BASE)
    _with_decision(events, "ci.policy_decision", 500, policy="promote", decision="deny")
    assessment, _ = evaluated(events)
    assert assessment.control("cm-3").status == SATISFIED
    assert assessment.control("cm-5").status == SATISFIED
    events = gha_job(1, BASE)
    early = _with_decision(events, "ci.policy_decision", 350, policy="scan", decision="deny")
    assessment, entries = evaluated(events)
    (finding,) = [f for f in assessment.control("cm-3").findings if f.check == "policy-gate"]
    assert finding.id == "policy-gate:denied-but-ran:job-70001" and finding.severity == "high"
    assert finding.seqs == (seq_of(entries, of_kind(events, "ci.inference_call")), seq_of(entries, early))


def test_an_approval_refused_after_the_calls_is_not_a_call_made_although_refused() -> None:
    """The job was approved before its call; a later approval (a production promotion) was refused.
    It read 'called the AI endpoint although its approval was refused' (high)."""
    events = gha_job(1, BASE)
    _with_decision(events, "ci.approval", 500, approver="ciso@agency.gov")
    assessment, _ = evaluated(events)
    assert assessment.control("cm-3").status == SATISFIED
    # refused before the call: a finding, whatever was granted around it
    events = gha_job(1, BASE)
    refused = _with_decision(events, "ci.approval", 330, approver="ciso@agency.gov")
    assessment, entries = evaluated(events)
    (finding,) = [f for f in assessment.control("cm-3").findings if f.check == "policy-gate"]
    assert finding.id == "policy-gate:approval-refused:job-70001" and finding.severity == "high"
    assert finding.seqs == (seq_of(entries, of_kind(events, "ci.inference_call")), seq_of(entries, refused))


# -- a long job crossing the period's edge -----------------------------------------------------------


def four_hour_job() -> list[dict]:
    """gha_job 1 stretched to 4 hours: its build, gate, approval, call and attestation near the end."""
    events = gha_job(1, BASE)
    late = {"ci.build_signed": 3 * 3600 + 600, "ci.policy_decision": 3 * 3600 + 620, "ci.approval": 3 * 3600 + 640,
            "ci.inference_call": 3 * 3600 + 700, "attestation.signed": 3 * 3600 + 730, "ci.job_completed": 4 * 3600}
    for item in events:
        if item["kind"] in late:
            item["time"] = stamp(BASE + timedelta(seconds=late[item["kind"]]))
    return events


def test_a_job_longer_than_max_job_seconds_crossing_the_edge_keeps_what_its_timeout_allows() -> None:
    """A 4-hour job (its deliveries give ``timeout_minutes: 300``) crossing the start of a monthly period
    two hours in. The context kept around the edge was max_job_seconds (1 h) wide, so the period's half
    lost its trigger, token, role, login and certificate: five custody findings and a high
    ``mtls-inference:unknown-cert`` for a certificate Vault issued two hours before the edge."""
    events = four_hour_job()
    for item in events:
        if item["kind"].startswith("ci.job_"):
            item["attrs"]["timeout_minutes"] = 300
        if item["kind"] == "vault.pki_issue":
            item["attrs"]["ttl"] = 300 * 60
    assessment, entries = evaluated(events, period=("2026-11-20T16:00:00Z", "2026-11-30T23:59:59Z"))
    st = story_of(assessment, "70001")
    assert st.complete and not st.findings, st
    cert = seq_of(entries, of_kind(events, "vault.pki_issue"))
    assert step(st, "certificate").seqs == (cert,)
    assert assessment.control("sc-8").status == SATISFIED and assessment.control("sc-12").status == SATISFIED
    assert any("just outside the period" in note for note in assessment.notes)


# -- checked and found right (kept as regressions) ---------------------------------------------------


def test_colliding_job_and_pipeline_numbers_in_two_repositories_overlapping_stay_two_complete_jobs() -> None:
    events = gha_job(1, BASE, run=77, job=500, repo="group/a", entity="ent-a") + \
        gha_job(2, BASE + timedelta(seconds=30), run=77, job=500, repo="group/b", entity="ent-b")
    assessment, _ = evaluated(events)
    assert set(status(assessment).values()) == {SATISFIED}
    assert [s.job_id for s in assessment.custody] == ["group/a#500", "group/b#500"]
    assert all(s.complete for s in assessment.custody)


def test_reads_by_a_token_create_child_naming_another_job_count_for_the_entitys_job() -> None:
    """attrs.claimed_correlation links nothing: 25 reads by a child token (meta names job 70002) during
    job 70001 count for 70001, placed by the inherited Vault entity and time."""
    events = gha_job(1, BASE) + gha_job(2, BASE + timedelta(minutes=30))
    reads = [event("vault.secret_read", BASE + timedelta(seconds=100 + k), actor="token", action="read",
                   resource=f"kv/data/x{k}", correlation={"vault_entity_id": "entity-gha-prod"},
                   attrs={"mount_type": "kv", "path": f"kv/data/x{k}", "claimed_correlation": {"job_id": "70002"}})
             for k in range(25)]
    assessment, entries = evaluated(events + reads)
    (finding,) = [f for f in assessment.control("au-6").findings if f.check == "secret-read-volume"]
    assert finding.id == "secret-read-volume:job-70001"
    assert set(seq_of(entries, r) for r in reads) <= set(finding.seqs)


# -- correlation tells a re-run's attestation from the first attempt's -------------------------------


def _close_attempts() -> list[dict[str, Any]]:
    """Run 9001 attempt 1 (job 70001) and its re-run, attempt 2 (job 70002), started 12 minutes later, so
    their time windows (each widened by the correlation window) overlap. Each stores its provenance
    naming the run and its attempt (``…/actions/runs/9001/attempts/<n>``: ``attrs.run_attempt``), the
    re-run's 150 s after it began."""
    first = gha_job(1, BASE, run=9001, job=70001, attempt=1)
    digest = of_kind(first, "ci.build_signed")["correlation"]["artifact_digest"]
    second = gha_job(2, BASE + timedelta(minutes=12), run=9001, job=70002, attempt=2, digest=digest)
    for attempt, events in ((1, first), (2, second)):
        of_kind(events, "attestation.signed")["attrs"]["run_attempt"] = attempt
    of_kind(second, "attestation.signed")["time"] = stamp(BASE + timedelta(minutes=12, seconds=150))
    return first + second


def test_an_attestation_naming_its_attempt_correlates_with_that_attempts_job() -> None:
    """Both attestations name run 9001 and carry the same digest, and each fell in both attempts' windows:
    correlation left them in no job (or, where one window held them, in whichever job it was), so a Rego
    policy reading a job's events saw no attestation of its own. The attempt each names decides."""
    from bundler.custody import correlate
    from bundler.evaluate import parse_utc
    from bundler.evidence_table import build_table

    events = _close_attempts()
    entries = as_entries(events)
    table = build_table(entries, as_of=parse_utc(AS_OF))
    job_of = dict(zip(table.frame["seq"], correlate(table.frame).job))
    first_att, second_att = (seq_of(entries, e) for e in events if e["kind"] == "attestation.signed")
    assert (job_of[first_att], job_of[second_att]) == ("70001", "70002")
    assessment, _ = evaluated(events)
    for job, own, other in (("70001", first_att, second_att), ("70002", second_att, first_att)):
        attestation = step(story_of(assessment, job), "attestation_stored")
        assert attestation.present and attestation.seqs == (own,) and attestation.other_builds == (other,)


def test_an_attestation_naming_an_attempt_is_not_placed_in_another_attempts_job_alone() -> None:
    """The re-run's attestation stored where only the first attempt's window holds it (its clock ran 8
    minutes slow): it names attempt 2, so it is not the first attempt's job's, whatever its time."""
    from bundler.custody import correlate
    from bundler.evaluate import parse_utc
    from bundler.evidence_table import build_table

    first = gha_job(1, BASE, run=9001, job=70001, attempt=1)
    digest = of_kind(first, "ci.build_signed")["correlation"]["artifact_digest"]
    second = gha_job(2, BASE + timedelta(minutes=30), run=9001, job=70002, attempt=2, digest=digest)
    attestation = of_kind(second, "attestation.signed")
    attestation["attrs"]["run_attempt"] = 2
    attestation["time"] = stamp(BASE + timedelta(minutes=12))
    events = first + second
    entries = as_entries(events)
    table = build_table(entries, as_of=parse_utc(AS_OF))
    job_of = dict(zip(table.frame["seq"], correlate(table.frame).job))
    assert job_of[seq_of(entries, attestation)] is None
