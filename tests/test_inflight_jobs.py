"""A CI job still running at ``as_of`` (no ``ci.job_completed``, started less than its allowed length
before ``as_of``) is not judged on the steps it has not reached yet.

``fedledger run --bundle`` after every scheduled run makes bundles while jobs run: the steps such a job
has not reached (its policy gate, inference call, stored attestation) are not missing, they have not
happened yet. Steps it already got wrong still count, and a job whose allowed length has passed without
an end event (stale or killed) is judged as before.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bundler.evaluate import EvaluationConfig
from bundler.model import NOT_SATISFIED, SATISFIED
from bundler.render import BundleFacts, render_control
from tests.synthetic_jobs import BASE, event, stamp
from tests.test_review_eval_patterns import CUSTODY, evaluated, gha_job, of_kind, seq_of, status, step, story_of

MID_RUN = BASE + timedelta(seconds=310)  # after build_sign (300 s), before the gate (320 s)
LATER_STEPS = ("policy_decision", "inference_call", "attestation_stored")


def _custody_ids(assessment: Any) -> list[str]:
    check = next(c for c in assessment.checks if c.check == "chain-of-custody")
    return sorted(f.id for f in check.findings)


def test_a_job_caught_mid_run_is_not_judged_on_steps_it_has_not_reached() -> None:
    assessment, _ = evaluated(gha_job(1, BASE), as_of=stamp(MID_RUN))
    st = story_of(assessment, "70001")
    assert not st.findings
    assert _custody_ids(assessment) == []
    assert st.in_progress == f"in progress at as_of {stamp(MID_RUN)}"
    for name in LATER_STEPS:
        later = step(st, name)
        assert not later.present and later.seqs == () and later.not_reached
        assert later.detail.startswith("in progress at as_of"), later.detail
    for name in ("trigger", "oidc_token", "role_assumption", "vault_login", "certificate", "build_sign"):
        assert step(st, name).present
    # the artifact it built is attested at the end of the job: not yet a finding either
    signed = next(c for c in assessment.checks if c.check == "signed-attestation")
    assert signed.findings == ()
    # nothing is wrong; what it has not done yet (mTLS call, redaction, retention) is simply not assessed
    assert NOT_SATISFIED not in status(assessment).values()
    assert all(status(assessment)[c] == SATISFIED for c in CUSTODY)
    chain = next(c for c in assessment.checks if c.check == "chain-of-custody")
    assert "1 in progress at as_of" in chain.summary
    assert any("in progress at as_of" in note and "70001" in note for note in assessment.notes)


def test_the_control_page_shows_the_job_in_progress() -> None:
    assessment, _ = evaluated(gha_job(1, BASE), as_of=stamp(MID_RUN))
    facts = BundleFacts(system="test", origin="test.example/ledger", checkpoint_size=1, checkpoint_root="00",
                        checkpoint_note="")
    html = render_control(assessment, assessment.control("au-10"), facts)
    assert "in progress at as_of" in html
    assert ">incomplete<" not in html
    assert html.count("<b>not reached yet</b>") == len(LATER_STEPS)


def test_the_index_counts_jobs_in_progress_apart() -> None:
    from bundler.render import render_index

    assessment, _ = evaluated(gha_job(1, BASE), as_of=stamp(MID_RUN))
    facts = BundleFacts(system="test", origin="test.example/ledger", checkpoint_size=1, checkpoint_root="00",
                        checkpoint_note="")
    html = render_index(assessment, facts)
    assert "0 of 1 CI jobs have every link; 1 still in progress at as-of" in html


def test_the_same_job_after_its_timeout_is_judged_as_before() -> None:
    events = [e for e in gha_job(1, BASE) if e["time"] <= stamp(MID_RUN)]
    # no end event, and max_job_seconds (3600 s) has passed since the job started
    assessment, _ = evaluated(events, as_of=stamp(BASE + timedelta(seconds=20 + 3600 + 400)))
    st = story_of(assessment, "70001")
    assert sorted(f.id for f in st.findings) == sorted(f"custody-missing:{name}:job-70001" for name in LATER_STEPS)
    assert all("in progress" not in step(st, name).detail for name in LATER_STEPS)
    assert {c for c, s in status(assessment).items() if s == NOT_SATISFIED} >= set(CUSTODY)


def test_a_timeout_from_the_jobs_events_decides_its_allowed_length() -> None:
    events = [e for e in gha_job(1, BASE) if e["time"] <= stamp(MID_RUN)]
    for e in events:
        if e["kind"].startswith("ci.job_"):
            e["attrs"]["timeout_minutes"] = 5
    # 15 minutes after it started: within max_job_seconds, but past its own 5-minute timeout and the clock skew
    assessment, _ = evaluated(events, as_of=stamp(BASE + timedelta(minutes=15)))
    assert len(story_of(assessment, "70001").findings) == 3
    # with a 4-hour timeout it is still running 2 hours in, although max_job_seconds is 1 hour
    for e in events:
        if e["kind"].startswith("ci.job_"):
            e["attrs"]["timeout_minutes"] = 240
    assessment, _ = evaluated(events, as_of=stamp(BASE + timedelta(hours=2)))
    assert story_of(assessment, "70001").findings == ()


def test_a_completed_job_is_judged_whole_even_right_after_it_ended() -> None:
    events = [e for e in gha_job(1, BASE) if e["time"] <= stamp(MID_RUN)]
    events.append(event("ci.job_completed", MID_RUN, actor="dev", action="workflow_job.completed",
                        resource=events[1]["resource"], correlation=dict(events[1]["correlation"]),
                        attrs={**events[1]["attrs"], "conclusion": "success"}))
    assessment, _ = evaluated(events, as_of=stamp(MID_RUN + timedelta(seconds=5)))
    assert len(story_of(assessment, "70001").findings) == 3


def test_an_in_flight_job_that_used_a_long_term_key_still_has_the_finding() -> None:
    events = gha_job(1, BASE)
    akia = event("aws.api_call", BASE + timedelta(seconds=45),
                 actor="arn:aws-us-gov:iam::123456789012:user/ci-legacy", action="GetObject",
                 resource="arn:aws-us-gov:s3:::models/m",
                 correlation={"access_key_id": "AKIAEXAMPLELONGTERM1", "job_id": "70001"},
                 attrs={"event_source": "s3.amazonaws.com", "event_name": "GetObject", "region": "us-gov-west-1",
                        "access_key_class": "long-term", "identity_type": "IAMUser"})
    events.insert(9, akia)
    assessment, entries = evaluated(events, as_of=stamp(MID_RUN))
    short = next(c for c in assessment.checks if c.check == "short-lived-credentials")
    assert [f.id for f in short.findings] == ["short-lived-credentials:long-term-key:AKIAEXAMPLELONGTERM1"]
    assert short.findings[0].seqs == (seq_of(entries, akia),)
    assert short.status == NOT_SATISFIED
    assert story_of(assessment, "70001").findings == ()  # its later steps are still not judged


def test_steps_an_in_flight_job_already_got_wrong_still_count() -> None:
    events = gha_job(1, BASE)
    token = of_kind(events, "ci.oidc_token")
    token["attrs"].update(verified=False, verification_error="signature does not verify")
    gate = of_kind(events, "ci.policy_decision")
    gate["attrs"]["decision"] = "deny"
    # caught after the denied gate, its approval and the inference call made after the deny
    assessment, entries = evaluated(events, as_of=stamp(BASE + timedelta(seconds=410)))
    ids = sorted(f.id for f in story_of(assessment, "70001").findings)
    assert ids == ["custody-missing:oidc_token:job-70001", "custody-missing:policy_decision:job-70001"]
    assert "in progress at as_of" in step(story_of(assessment, "70001"), "attestation_stored").detail
    gate_check = next(c for c in assessment.checks if c.check == "policy-gate")
    assert gate_check.status == NOT_SATISFIED
    identity = next(c for c in assessment.checks if c.check == "workload-identity")
    assert identity.status == NOT_SATISFIED


def test_a_missing_step_before_one_the_job_reached_is_still_missing() -> None:
    events = [e for e in gha_job(1, BASE) if e["kind"] != "vault.pki_issue"]
    assessment, _ = evaluated(events, as_of=stamp(MID_RUN))
    assert [f.id for f in story_of(assessment, "70001").findings] == ["custody-missing:certificate:job-70001"]


def test_in_flight_job_with_a_custom_max_job_seconds() -> None:
    events = [e for e in gha_job(1, BASE) if e["time"] <= stamp(MID_RUN)]
    config = EvaluationConfig(max_job_seconds=600)
    # 600 s plus the 300 s clock skew from its start (20 s) have passed
    assessment, _ = evaluated(events, as_of=stamp(BASE + timedelta(minutes=16)), config=config)
    assert len(story_of(assessment, "70001").findings) == 3
    assessment, _ = evaluated(events, as_of=stamp(BASE + timedelta(minutes=8)), config=config)
    assert story_of(assessment, "70001").findings == ()
