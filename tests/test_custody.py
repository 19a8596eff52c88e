"""Chain of custody: correlation across the four sources and the ordered story per CI job."""

from __future__ import annotations

from datetime import timedelta

from bundler.custody import STEP_NAMES, build_stories, correlate
from bundler.evaluate import evaluate, parse_utc
from bundler.evidence_table import build_table
from bundler.model import NOT_SATISFIED, SATISFIED
from samples.make import story
from tests.synthetic_jobs import BASE, as_entries, complete_story, digest_events, find, job_events

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


OTHER_REPOSITORY = "other-org/other-repo"


def _second_repository_same_ids(i: int = 1, *, run_id: str | None = None) -> list[dict]:
    """Job *i*, moved to another repository and given job 0's job id (and optionally a run id): CI systems
    whose job ids count per project or per instance (GitLab instances, Jenkins build numbers) reuse them."""
    events = job_events(i)
    for item in events:
        correlation = item["correlation"]
        if "job_id" in correlation:
            correlation["job_id"] = str(story.JOB_ID)
        if run_id is not None and "run_id" in correlation:
            correlation["run_id"] = run_id
        if "repository" in correlation:
            correlation["repository"] = OTHER_REPOSITORY
    return events


def test_same_job_id_in_two_repositories_is_two_jobs() -> None:
    """One job id in two repositories names two jobs: the second repository's ungated, unapproved inference
    call must not borrow the first job's gate, approval and attestation."""
    other = [e for e in _second_repository_same_ids() if e["kind"] not in ("ci.policy_decision", "ci.approval")]
    events = job_events(0) + other + digest_events(BASE, 3)
    stories, correlation, _, _ = stories_of(events)
    first, second = f"{story.REPOSITORY}#{story.JOB_ID}", f"{OTHER_REPOSITORY}#{story.JOB_ID}"
    assert sorted(correlation.jobs) == sorted([first, second])
    by_job = {s.job_id: s for s in stories}
    assert by_job[first].complete and by_job[first].repository == story.REPOSITORY
    assert not by_job[second].complete and by_job[second].repository == OTHER_REPOSITORY
    assessment = evaluate(as_entries(events), as_of=AS_OF, origin="t")
    assert assessment.control("cm-3").status == NOT_SATISFIED
    gate = {f.id for f in assessment.control("cm-3").findings}
    assert gate == {f"policy-gate:no-gate:job-{second}", f"policy-gate:no-approval:job-{second}"}
    assert assessment.control("au-8").status == SATISFIED  # each job's events lie within its own run time


def test_same_job_and_run_id_in_two_repositories_keep_their_own_triggers() -> None:
    events = job_events(0) + _second_repository_same_ids(run_id=str(story.RUN_ID)) + digest_events(BASE, 3)
    stories, correlation, _, entries = stories_of(events)
    by_job = {s.job_id: s for s in stories}
    for repository, index in ((story.REPOSITORY, 0), (OTHER_REPOSITORY, 1)):
        trigger = {st.step: st for st in by_job[f"{repository}#{story.JOB_ID}"].steps}["trigger"]
        own = {seq_of(entries, find(events, "ci.workflow_run", index)), seq_of(entries, find(events, "ci.job_started", index))}
        assert set(trigger.seqs) == own


def test_event_naming_a_shared_job_id_without_a_repository_is_not_guessed() -> None:
    """An event that gives only the job id (no repository), where that id is used in two repositories and
    nothing else places it, stays unlinked and is a finding."""
    other = _second_repository_same_ids()
    login = find(other, "vault.login")
    login["correlation"] = {"job_id": str(story.JOB_ID)}
    events = job_events(0) + other
    _, correlation, table, entries = stories_of(events)
    job_of = dict(zip(table.frame["seq"], correlation.job))
    assert job_of[seq_of(entries, login)] is None
    (finding,) = [f for f in correlation.findings if f.id.startswith("custody-ambiguous-job-id:")]
    assert finding.id == f"custody-ambiguous-job-id:{story.JOB_ID}" and finding.seqs == (seq_of(entries, login),)
    assert OTHER_REPOSITORY in finding.description and story.REPOSITORY in finding.description


def test_role_session_name_shared_by_jobs_links_no_job_to_another_jobs_session() -> None:
    """aws-actions/configure-aws-credentials names every session 'GitHubActions' unless told otherwise: a
    session name that several role assumptions (each with its own temporary key) share is no per-job
    identifier, so one job naming it must not take the other jobs' role assumptions and API calls."""
    events: list[dict] = []
    for i in range(3):
        for item in job_events(i):
            if "role_session" in item["correlation"]:
                item["correlation"]["role_session"] = "GitHubActions"
            events.append(item)
    find(events, "ci.oidc_token", 0)["correlation"]["role_session"] = "GitHubActions"
    stories, correlation, table, entries = stories_of(events)
    assert not correlation.findings
    job_of = dict(zip(table.frame["seq"], correlation.job))
    for i, st in enumerate(stories):
        own = str(story.JOB_ID + i)
        assert st.job_id == own
        assume = seq_of(entries, find(events, "aws.assume_role_web_identity", i))
        assert {s.step: s for s in st.steps}["role_assumption"].seqs == (assume,)
        assert {job_of[seq_of(entries, find(events, "aws.api_call", 3 * i + k))] for k in range(3)} == {own}
    assessment = evaluate(as_entries(events + digest_events(BASE, 4)), as_of=AS_OF, origin="t")
    assert assessment.control("au-8").status == SATISFIED and assessment.control("au-10").status == SATISFIED
