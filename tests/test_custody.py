"""Chain of custody: correlation across the four sources and the ordered story per CI job."""

from __future__ import annotations

from datetime import timedelta

from bundler.custody import STEP_NAMES, build_stories, correlate
from bundler.evaluate import evaluate, parse_utc
from bundler.evidence_table import build_table
from bundler.model import NOT_SATISFIED, SATISFIED
from samples.make import story
from tests.synthetic_jobs import as_entries, complete_story, find, job_events

AS_OF = "2026-11-21T00:00:00Z"


def table_of(events: list[dict]):
    entries = as_entries(events)
    return build_table(entries, as_of=parse_utc(AS_OF)), entries


def stories_of(events: list[dict]):
    table, entries = table_of(events)
    correlation = correlate(table.frame)
    return build_stories(table, correlation), correlation, table, entries


def seq_of(entries: list, target: dict) -> int:
    return next(seq for seq, item, _ in entries if item is target)


def test_complete_job_story_is_ordered_and_cites_each_step() -> None:
    events = complete_story(1)
    stories, _, _, entries = stories_of(events)
    (only,) = stories
    assert only.job_id == str(story.JOB_ID) and only.run_id == str(story.RUN_ID)
    assert only.repository == story.REPOSITORY and only.complete and not only.findings
    assert tuple(step.step for step in only.steps) == STEP_NAMES
    by_step = {step.step: step for step in only.steps}
    assert by_step["trigger"].time == story.T_TRIGGER
    assert by_step["role_assumption"].seqs == (seq_of(entries, find(events, "aws.assume_role_web_identity")),)
    assert by_step["certificate"].seqs == (seq_of(entries, find(events, "vault.pki_issue")),)
    assert by_step["attestation_stored"].time == story.T_ATTESTATION_PUT
    times = [step.time for step in only.steps]
    assert times == sorted(times)


def test_correlation_is_transitive_across_sources() -> None:
    events = complete_story(2)
    table, entries = table_of(events)
    correlation = correlate(table.frame)
    job_of = dict(zip(table.frame["seq"], correlation.job))
    second = str(story.JOB_ID + 1)
    # API calls carry only the role session and temporary key: linked through the assume-role record,
    # which the OIDC subject and the job's time window place.
    assert job_of[seq_of(entries, find(events, "aws.api_call", 4))] == second
    # the PKI issue carries only the certificate serial: linked through the inference call
    assert job_of[seq_of(entries, find(events, "vault.pki_issue", 1))] == second
    # secret reads carry only the Vault entity: placed by the entity and the job's time window
    assert job_of[seq_of(entries, find(events, "vault.secret_read", 3))] == second
    # digests belong to no job
    assert job_of[seq_of(entries, find(events, "aws.digest_valid"))] is None
    assert correlation.jobs == (str(story.JOB_ID), second)


def test_missing_vault_login_is_a_finding_on_custody_controls() -> None:
    events = [e for e in complete_story(1) if e["kind"] != "vault.login"]
    stories, _, _, _ = stories_of(events)
    (only,) = stories
    assert not only.complete
    assert [f.id for f in only.findings] == [f"custody-missing:vault_login:job-{story.JOB_ID}"]
    assessment = evaluate(as_entries(events), as_of=AS_OF, origin="test")
    assert assessment.control("au-10").status == NOT_SATISFIED
    assert assessment.control("sa-10").status == NOT_SATISFIED
    assert assessment.control("si-7").status == SATISFIED


def test_failed_steps_are_not_links() -> None:
    events = complete_story(1)
    find(events, "ci.policy_decision")["attrs"]["decision"] = "deny"
    find(events, "attestation.signed")["attrs"]["object_lock_mode"] = None
    stories, _, _, entries = stories_of(events)
    steps = {s.step: s for s in stories[0].steps}
    assert not steps["policy_decision"].present and "deny" in steps["policy_decision"].detail
    assert steps["policy_decision"].seqs == (seq_of(entries, find(events, "ci.policy_decision")),)
    assert not steps["attestation_stored"].present and "Object Lock" in steps["attestation_stored"].detail


def test_out_of_order_steps_are_findings() -> None:
    events = complete_story(1)
    call = find(events, "ci.inference_call")
    call["time"] = "2026-11-20T14:05:00Z"  # before build and policy decision
    stories, _, _, entries = stories_of(events)
    ids = [f.id for f in stories[0].findings]
    assert f"custody-order:build_sign:job-{story.JOB_ID}" in ids or \
        f"custody-order:inference_call:job-{story.JOB_ID}" in ids or \
        f"custody-order:policy_decision:job-{story.JOB_ID}" in ids


def test_shared_certificate_serial_is_a_finding() -> None:
    events = job_events(0) + job_events(1)
    second_call = find(events, "ci.inference_call", 1)
    second_call["correlation"]["cert_serial"] = story.CERT_SERIAL
    second_call["attrs"]["cert_serial"] = story.CERT_SERIAL
    _, correlation, _, _ = stories_of(events)
    assert [f.id for f in correlation.findings] == [f"custody-shared-identifier:cert_serial:{story.CERT_SERIAL}"]


def test_overlapping_jobs_sharing_only_weak_identifiers_stay_unlinked() -> None:
    events = job_events(0) + job_events(1, spacing=timedelta(seconds=30))
    stories, correlation, table, entries = stories_of(events)
    # both jobs share the OIDC subject and overlap in time: the assume-role records cannot be placed
    assume = [seq_of(entries, e) for e in events if e["kind"] == "aws.assume_role_web_identity"]
    job_of = dict(zip(table.frame["seq"], correlation.job))
    assert [job_of[s] for s in assume] == [None, None]
    assert all(not {s.step: s for s in st.steps}["role_assumption"].present for st in stories)


def test_run_level_trigger_found_by_run_id() -> None:
    events = [e for e in complete_story(1) if e["kind"] not in ("ci.job_started",)]
    stories, _, _, entries = stories_of(events)
    trigger = stories[0].steps[0]
    assert trigger.present and trigger.seqs == (seq_of(entries, find(events, "ci.workflow_run")),)


def test_run_completion_is_not_a_trigger() -> None:
    events = [e for e in complete_story(1) if e["kind"] not in ("ci.job_started",)]
    run = find(events, "ci.workflow_run")
    run["action"] = "pipeline.success"
    stories, _, _, _ = stories_of(events)
    trigger = stories[0].steps[0]
    assert not trigger.present and "end" in trigger.detail
    assert f"custody-missing:trigger:job-{story.JOB_ID}" in [f.id for f in stories[0].findings]
