"""Adversarial review of the evaluation changes (round 2): evidence written by whoever controls part of
the collector's input (generic ``ci.job.*`` events carry any attrs the writer chooses; a ledger can be
edited by hand) must not make a non-compliant job look compliant.

* ``pki-ca-changes``: a CA change by a CI job's Vault identity is high whatever explains it, also when
  correlation could not put it in one job (a matrix build's shared entity, or a time outside every window).
* ``certificate-ttl``: the job length a timeout claim gives is capped as it is for the in-progress wait
  (31 days), and a timeout that is not a positive integer is no length.
* Run attempts: a job whose own lifecycle events name two attempts has no known attempt, so a second
  claimed attempt does not hide its run's end (and keep it "in progress", its missing steps unjudged).
* ``paired`` / ``webhook_secret_configured`` of an odd type fail closed, and an event carrying both
  markers keeps the one its kind is judged by.
* The control page: a running job whose findings the table prints is still labelled incomplete.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bundler.evaluate import EvaluationConfig
from bundler.model import NOT_SATISFIED, Assessment, CheckResult
from bundler.render import control_view, render_control
from tests.synthetic_jobs import BASE, event, stamp
from tests.test_review_eval_patterns import REPO, evaluated, gha_job, of_kind, seq_of, step, story_of
from tests.test_unverified_evidence import facts

ENTITY = "entity-gha-prod"  # gha_job's Vault entity (one per role and subject: every job of the pipeline)


def check_of(assessment: Assessment, name: str) -> CheckResult:
    return next(c for c in assessment.checks if c.check == name)


def ca_change(at: Any, **correlation: str) -> dict[str, Any]:
    return event("vault.pki_ca_change", at, actor=ENTITY, action="update", resource="pki/root/generate/internal",
                 correlation={"vault_entity_id": ENTITY, **correlation},
                 attrs={"ca_operation": "generate-root", "mount": "pki", "paired": True})


def matrix() -> list[dict[str, Any]]:
    """Two jobs of one run at once under one Vault entity (a matrix build), one workflow_run delivery."""
    first = gha_job(1, BASE, run=9001, job=70001)
    second = [e for e in gha_job(2, BASE, run=9001, job=70002) if e["kind"] != "ci.workflow_run"]
    return first + second


# -- pki-ca-changes ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["matrix", "after-the-job"])
def test_a_ca_change_by_a_ci_jobs_vault_identity_is_high_whatever_explains_it(where: str) -> None:
    """The identity decides, not whether correlation could name one job: a matrix build's jobs share their
    entity (the change is contested between them, in no job), and the pipeline's entity used hours after
    its job (a leaked or reused token) is in no job's window. Both were moderate, and explainable away."""
    if where == "matrix":
        events = matrix()
        change = ca_change(BASE + timedelta(seconds=100), run_id="9001", repository=REPO)
    else:
        events = gha_job(1, BASE)
        change = ca_change(BASE + timedelta(hours=3))
    assessment, entries = evaluated(events + [change])
    seq = seq_of(entries, change)
    explained, _ = evaluated(events + [change], config=EvaluationConfig(explained_seqs=(seq,)))
    for result in (assessment, explained):
        check = check_of(result, "pki-ca-changes")
        assert check.status == NOT_SATISFIED
        (finding,) = check.findings
        assert finding.seqs == (seq,) and finding.severity == "high", finding
        assert ENTITY in finding.description and "CI job" in finding.description


def test_a_ca_change_by_an_identity_no_job_uses_is_still_only_unexplained() -> None:
    events = gha_job(1, BASE)
    change = ca_change(BASE + timedelta(hours=3))
    change["actor"] = "entity-admin"
    change["correlation"] = {"vault_entity_id": "entity-admin"}
    assessment, entries = evaluated(events + [change])
    (finding,) = check_of(assessment, "pki-ca-changes").findings
    assert finding.severity == "moderate" and finding.id.endswith(f"unexplained:{seq_of(entries, change)}")
    explained, _ = evaluated(events + [change],
                             config=EvaluationConfig(explained_seqs=(seq_of(entries, change),)))
    assert not check_of(explained, "pki-ca-changes").findings


# -- certificate-ttl and the job's length ---------------------------------------------------------


def test_a_timeout_claim_does_not_let_a_certificate_outlive_the_31_day_cap() -> None:
    """The in-progress wait caps a timeout claim at 31 days; certificate-ttl took it whole, so a generic
    ``ci.job.started`` claiming a 30 000-year timeout let a 30-year certificate pass."""
    events = gha_job(1, BASE)
    for item in events:
        if item["kind"].startswith("ci.job_"):
            item["attrs"]["timeout_seconds"] = 10 ** 12
    certificate = of_kind(events, "vault.pki_issue")
    certificate["attrs"]["ttl"] = 10 ** 9
    assessment, entries = evaluated(events)
    (finding,) = check_of(assessment, "certificate-ttl").findings
    assert finding.seqs == (seq_of(entries, certificate),)
    assert f"{31 * 86400}s" in finding.description


@pytest.mark.parametrize("claim", [True, -5, "7200", 2.5])
def test_a_timeout_that_is_no_positive_integer_is_no_length(claim: Any) -> None:
    """``timeout_seconds: true`` was a one-second job ('the job's length is Trues'), a negative one made
    every certificate too long: neither is a length, so max_job_seconds stands."""
    events = gha_job(1, BASE)
    for item in events:
        if item["kind"].startswith("ci.job_"):
            item["attrs"]["timeout_seconds"] = claim
    of_kind(events, "vault.pki_issue")["attrs"]["ttl"] = 900
    assessment, _ = evaluated(events)
    assert not check_of(assessment, "certificate-ttl").findings
    of_kind(events, "vault.pki_issue")["attrs"]["ttl"] = 3601
    assessment, _ = evaluated(events)
    (finding,) = check_of(assessment, "certificate-ttl").findings
    assert "the job's length is 3600s" in finding.description


# -- run attempts -------------------------------------------------------------------------------


def _ended_run_without_job_end() -> list[dict[str, Any]]:
    """Job 70001 of run 9001 (attempt 1) with no workflow_job completed and no attestation; its run's
    workflow_run completed (attempt 1) says it ended."""
    events = [e for e in gha_job(1, BASE) if e["kind"] not in ("ci.job_completed", "attestation.signed")]
    events.append(event("ci.workflow_run", BASE + timedelta(seconds=610), actor="dev",
                        action="workflow_run.completed", resource=REPO,
                        correlation={"run_id": "9001", "repository": REPO},
                        attrs={"provider": "github", "run_attempt": 1, "webhook_signature": "verified",
                               "conclusion": "success"}))
    return events


def test_a_second_attempt_claimed_for_a_job_does_not_hide_its_runs_end() -> None:
    """A generic ``ci.job.started`` for the job claiming attempt 2, read before its deliveries (attempt 1),
    made the job attempt 2: the run's end (attempt 1) no longer ended it, the job was 'in progress' and its
    missing attestation was not judged. A job whose own lifecycle events name two attempts has none known."""
    as_of = stamp(BASE + timedelta(minutes=20))
    events = _ended_run_without_job_end()
    assessment, _ = evaluated(events, as_of=as_of)
    assert story_of(assessment, "70001").in_progress is None  # the run's end ends it
    claim = event("ci.job_started", BASE + timedelta(seconds=21), actor="dev", action="ci.job.started",
                  resource=REPO, correlation={"job_id": "70001", "run_id": "9001", "repository": REPO},
                  attrs={"run_attempt": 2})
    for order in ([claim, *events], [*events, claim]):
        assessment, _ = evaluated(order, as_of=as_of)
        st = story_of(assessment, "70001")
        assert st.in_progress is None
        assert not step(st, "attestation_stored").not_reached
        assert "custody-missing:attestation_stored:job-70001" in [f.id for f in st.findings]


# -- odd types of the markers of unverified evidence ----------------------------------------------


@pytest.mark.parametrize("marker", ["false", 0, "no", [], {}])
def test_a_paired_marker_that_is_not_true_fails_closed(marker: Any) -> None:
    """``paired`` is the Vault collector's boolean; a hand-edited ``"false"`` (or any value but true) was
    taken as paired, so the certificate counted. Absent (older entries, other writers) stays paired."""
    events = gha_job(1, BASE)
    certificate = of_kind(events, "vault.pki_issue")
    certificate["attrs"]["paired"] = marker
    assessment, entries = evaluated(events)
    cert = step(story_of(assessment, "70001"), "certificate")
    assert not cert.present and cert.unpaired == (seq_of(entries, certificate),)


def test_a_null_paired_marker_records_nothing() -> None:
    events = gha_job(1, BASE)
    of_kind(events, "vault.pki_issue")["attrs"]["paired"] = None
    assessment, _ = evaluated(events)
    assert step(story_of(assessment, "70001"), "certificate").present


@pytest.mark.parametrize("configured", ["true", 1, "yes"])
def test_an_unsigned_payloads_secret_marker_of_an_odd_type_fails_closed(configured: Any) -> None:
    events = gha_job(1, BASE, signature="absent")
    for item in events:
        if item["kind"].startswith("ci."):
            item["attrs"].setdefault("provider", "github")
            if "webhook_signature" in item["attrs"]:
                item["attrs"]["webhook_secret_configured"] = configured
    assessment, entries = evaluated(events)
    trigger = step(story_of(assessment, "70001"), "trigger")
    assert not trigger.present and trigger.unsigned


def test_an_unpaired_marker_does_not_hide_that_a_payload_is_unsigned() -> None:
    """An event carries one marker that matters for its kind: a CI payload with ``paired: false`` beside
    ``webhook_signature: absent`` was read as 'unpaired' (which only Vault steps consult), so the unsigned
    payload counted as the job's trigger and made its window and its in-progress wait."""
    events = gha_job(1, BASE, signature="absent", secret_configured=True)
    for item in events:
        if item["kind"].startswith("ci.") and item["attrs"].get("webhook_signature") == "absent":
            item["attrs"]["paired"] = False
    assessment, _ = evaluated(events)
    trigger = step(story_of(assessment, "70001"), "trigger")
    assert not trigger.present and trigger.unsigned
    # and a Vault response carrying webhook markers is still unpaired
    events = gha_job(1, BASE)
    certificate = of_kind(events, "vault.pki_issue")
    certificate["attrs"].update(paired=False, webhook_signature="absent", webhook_secret_configured=True)
    assessment, _ = evaluated(events)
    assert not step(story_of(assessment, "70001"), "certificate").present


# -- the control page ---------------------------------------------------------------------------


def test_a_running_job_whose_finding_the_table_prints_is_still_shown_incomplete() -> None:
    """The timeline's state read 'in progress … (steps seen so far; the later ones not judged yet)' as soon
    as its findings moved to the Findings table: a running job with a token that did not verify looked
    merely unfinished on the very page that lists its finding."""
    events = [e for e in gha_job(1, BASE) if e["kind"] != "ci.job_completed"]
    of_kind(events, "ci.oidc_token")["attrs"].update(verified=False, verification_error="bad signature")
    assessment, _ = evaluated(events, as_of=stamp(BASE + timedelta(seconds=310)))
    st = story_of(assessment, "70001")
    assert st.in_progress and "custody-missing:oidc_token:job-70001" in [f.id for f in st.findings]
    control = assessment.control("au-2")
    view = control_view(assessment, control, facts())
    (timeline,) = [t for t in view["timelines"] if t["job_id"] == "70001"]
    assert timeline["see_findings"] and not timeline["findings"]
    html = render_control(assessment, control, facts())
    block = html.split("<b>Job 70001</b>", 1)[1].split("</div>", 1)[0]
    assert "incomplete" in block and "not judged yet)" not in block.split("<ol>", 1)[0]


# -- the shipped pipeline policy ------------------------------------------------------------------


def test_the_seed_policy_waits_for_a_role_assumption_only_while_no_credentials_were_seen() -> None:
    """pipeline.rego waits for a running job's role assumption 'as long as no credentials at all were seen',
    but asked only for ``credentials.type == "unknown"``: a job caught before its role assumption that had
    already called AWS with a temporary key from somewhere else (no web identity) was allowed."""
    from pathlib import Path

    from bundler.rego import load_policies
    from tests.test_review_eval_patterns import ROLE_ARN

    policies = load_policies(Path(__file__).resolve().parent.parent / "samples" / "policies")
    as_of = stamp(BASE + timedelta(seconds=24))
    running = [e for e in gha_job(1, BASE) if e["kind"] != "ci.job_completed"]

    def pipeline(events: list[dict[str, Any]]) -> CheckResult:
        assessment, _ = evaluated(events, as_of=as_of, policies=policies)
        return check_of(assessment, "policy:pipeline")

    assert pipeline(running).status == "satisfied"  # nothing seen yet: waited for
    key = "ASIACHAINED000000001"
    deploy = event("ci.deploy", BASE + timedelta(seconds=21), actor="dev", resource=REPO,
                   correlation={"job_id": "70001", "run_id": "9001", "repository": REPO, "access_key_id": key})
    call = event("aws.api_call", BASE + timedelta(seconds=22), actor=f"{ROLE_ARN}/chained", action="PutObject",
                 resource="arn:aws-us-gov:s3:::models/m", correlation={"access_key_id": key},
                 attrs={"event_source": "s3.amazonaws.com", "event_name": "PutObject", "region": "us-gov-west-1",
                        "access_key_class": "temporary", "identity_type": "AssumedRole"})
    check = pipeline(running + [deploy, call])
    assert check.status == NOT_SATISFIED, [f.description for f in check.findings]


def test_a_start_dated_after_the_jobs_own_steps_does_not_open_a_fresh_wait() -> None:
    """A job whose steps ran five hours before as_of, with no end event and no attestation, is judged whole.
    A ``ci.job_started`` for it dated a minute before as_of (its real start missing, or a generic event's
    claim) made it 'in progress', so its missing attestation was not judged: a job does not start after
    its own token, logins and calls."""
    as_of = BASE + timedelta(hours=5)
    events = [e for e in gha_job(1, BASE)
              if e["kind"] not in ("ci.job_completed", "attestation.signed", "ci.job_started")]
    late = event("ci.job_started", as_of - timedelta(seconds=60), actor="dev", action="ci.job.started",
                 resource=REPO, correlation={"job_id": "70001", "run_id": "9001", "repository": REPO})
    for given in (events, events + [late]):
        assessment, _ = evaluated(given, as_of=stamp(as_of))
        st = story_of(assessment, "70001")
        assert st.in_progress is None
        assert "custody-missing:attestation_stored:job-70001" in [f.id for f in st.findings]
    # a job that is running: its start stands (a queued wait before it does not count against it)
    running = [e for e in gha_job(1, BASE) if e["kind"] not in ("ci.job_completed", "attestation.signed")]
    assessment, _ = evaluated(running, as_of=stamp(BASE + timedelta(seconds=310)))
    assert story_of(assessment, "70001").in_progress is not None



def test_a_job_claiming_a_second_attempt_does_not_take_that_attempts_attestation() -> None:
    """Run 9001: attempt 1 (job 70001, which stored no attestation) and its re-run, attempt 2 (job 70002, the
    same reproducible digest, provenance naming attempt 2). A generic event claiming attempt 2 for job 70001
    made it attempt 2 (read first) or of no known attempt (read last): either way the re-run's attestation
    became job 70001's own. A job whose own events name two attempts cannot be shown to be the build an
    attestation naming an attempt speaks of, nor the job a trigger naming an attempt started."""
    from tests.test_review_eval_patterns import _rerun

    events = _rerun()
    first_attestation, second_attestation = (e for e in events if e["kind"] == "attestation.signed")
    events.remove(first_attestation)
    second_attestation["attrs"]["run_attempt"] = 2
    claim = event("ci.job_started", BASE + timedelta(seconds=21), actor="dev", action="ci.job.started",
                  resource=REPO, correlation={"job_id": "70001", "run_id": "9001", "repository": REPO},
                  attrs={"run_attempt": 2})
    for order in ([claim, *events], [*events, claim]):
        assessment, entries = evaluated(order)
        first = step(story_of(assessment, "70001"), "attestation_stored")
        assert not first.present and first.other_builds == (seq_of(entries, second_attestation),), first
        assert "custody-missing:attestation_stored:job-70001" in [f.id for f in story_of(assessment, "70001").findings]
        trigger = step(story_of(assessment, "70001"), "trigger")
        second_run = [e for e in order if e["kind"] == "ci.workflow_run"][1]
        assert seq_of(entries, second_run) not in trigger.seqs
        assert step(story_of(assessment, "70002"), "attestation_stored").present


def test_a_policy_input_regopy_cannot_take_is_a_denial_not_a_crash() -> None:
    """A lone surrogate (``"\\ud800"`` parses as JSON; a hand-edited export can hold it) in any attr of a job's
    events reached regopy's UTF-8 encoding and stopped the whole evaluation. It is that job's denial."""
    from pathlib import Path

    from bundler.rego import load_policies

    policies = load_policies(Path(__file__).resolve().parent.parent / "samples" / "policies")
    events = gha_job(1, BASE)
    of_kind(events, "vault.login")["attrs"]["role"] = "\ud800"
    assessment, _ = evaluated(events, policies=policies)
    check = check_of(assessment, "policy:pipeline")
    assert check.status == NOT_SATISFIED
    (finding,) = check.findings
    assert finding.job_id == "70001" and "could not be given to the policy" in finding.description
