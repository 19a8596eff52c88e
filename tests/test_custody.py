"""Chain of custody: correlation across the four sources and the ordered story per CI job."""

from __future__ import annotations

import copy
from datetime import timedelta

from bundler.custody import STEP_NAMES, build_stories, correlate
from bundler.evaluate import evaluate, parse_utc
from bundler.evidence_table import build_table
from bundler.model import NOT_SATISFIED, SATISFIED, CustodyStep, CustodyStory
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


# -- two builds of one artifact digest: each story shows its own attestation ------------------------


def _two_builds_of_one_digest() -> list[dict]:
    """Job 0 and job 1 (20 minutes apart) build, gate, use and attest the same artifact digest (a
    reproducible build run twice); each attestation names its own job, as the collector derives it
    from the provenance's invocation."""
    second = job_events(1)
    digest, hexdigest = story.ARTIFACT_DIGEST, story.ARTIFACT_DIGEST.split(":", 1)[1]
    for item in second:
        if "artifact_digest" in item["correlation"]:
            item["correlation"]["artifact_digest"] = digest
        if item["kind"] == "attestation.signed":
            item["attrs"]["subjects"] = [{"name": story.ARTIFACT_NAME, "digest": {"sha256": hexdigest}}]
    return job_events(0) + second


def _attestation_step(st: CustodyStory) -> CustodyStep:
    return {s.step: s for s in st.steps}["attestation_stored"]


def test_two_builds_of_one_digest_each_show_their_own_attestation() -> None:
    events = _two_builds_of_one_digest()
    stories, _, _, entries = stories_of(events)
    first, second = (str(story.JOB_ID), str(story.JOB_ID + 1))
    own = {first: seq_of(entries, find(events, "attestation.signed", 0)),
           second: seq_of(entries, find(events, "attestation.signed", 1))}
    by_job = {s.job_id: s for s in stories}
    for job, other in ((first, second), (second, first)):
        step = _attestation_step(by_job[job])
        assert step.present and step.seqs == (own[job],), (job, step)
        # the other build's attestation of the same digest is not this job's, and is labelled so
        assert step.other_builds == (own[other],)
        assert "another build" in step.detail and f"job {other}" in step.detail and str(own[other]) in step.detail
        assert by_job[job].complete and not by_job[job].findings


def test_a_build_does_not_borrow_another_builds_attestation_of_the_same_digest() -> None:
    events = [e for e in _two_builds_of_one_digest() if not (e["kind"] == "attestation.signed"
                                                             and e["correlation"]["job_id"] == str(story.JOB_ID + 1))]
    stories, _, _, entries = stories_of(events)
    by_job = {s.job_id: s for s in stories}
    second = str(story.JOB_ID + 1)
    theirs = seq_of(entries, find(events, "attestation.signed", 0))
    step = _attestation_step(by_job[second])
    assert not step.present and step.seqs == () and step.other_builds == (theirs,)
    assert step.detail.startswith("no event found for this step") and f"job {story.JOB_ID}" in step.detail
    assert [f.id for f in by_job[second].findings] == [f"custody-missing:attestation_stored:job-{second}"]
    assert _attestation_step(by_job[str(story.JOB_ID)]).seqs == (theirs,)
    assessment = evaluate(as_entries(events), as_of=AS_OF, origin="t")
    assert assessment.control("au-10").status == NOT_SATISFIED
    assert assessment.control("si-7").status == SATISFIED  # the artifact itself is attested: not a custody matter


def test_attestation_naming_only_a_run_goes_to_that_runs_build() -> None:
    """A provenance whose invocation names a run but no job (slsa-github-generator's
    ``…/actions/runs/<run>/attempts/1``) is the attestation of that run's build, not of another run's
    build of the same digest; one that names no build at all is still used, labelled, by digest."""
    events = _two_builds_of_one_digest()
    for i in (0, 1):
        att = find(events, "attestation.signed", i)
        att["correlation"] = {"run_id": str(story.RUN_ID + i), "repository": story.REPOSITORY,
                              "artifact_digest": story.ARTIFACT_DIGEST}
    stories, _, _, entries = stories_of(events)
    by_job = {s.job_id: s for s in stories}
    for i in (0, 1):
        step = _attestation_step(by_job[str(story.JOB_ID + i)])
        assert step.present and step.seqs == (seq_of(entries, find(events, "attestation.signed", i)),)
        assert step.other_builds == (seq_of(entries, find(events, "attestation.signed", 1 - i)),)
    # one build of a digest, and an attestation naming no job, run or repository: found by digest, said so
    alone = job_events(0)
    find(alone, "attestation.signed")["correlation"] = {"artifact_digest": story.ARTIFACT_DIGEST}
    (only,), _, _, entries = stories_of(alone)
    step = _attestation_step(only)
    assert step.present and step.seqs == (seq_of(entries, find(alone, "attestation.signed")),)
    assert "artifact digest only" in step.detail and step.other_builds == ()


def test_control_page_labels_another_builds_attestation() -> None:
    from bundler import render

    events = _two_builds_of_one_digest()
    assessment = evaluate(as_entries(events), as_of=AS_OF, origin="t")
    control = assessment.control("au-10")
    page = render.render_control(assessment, control, render.BundleFacts("s", "t", 1, "00" * 32, "note"))
    text = page.replace("&#39;", "'")
    for i in (0, 1):
        other = seq_of(as_entries(events), find(events, "attestation.signed", 1 - i))
        assert f"(another build's, not counted: entries {other})" in text
        assert f"by another build (job {story.JOB_ID + 1 - i}: entry {other})" in text


def test_attestation_of_the_same_digest_from_another_repository_is_another_builds() -> None:
    """A fork that rebuilt the same digest and attested it (naming only its repository) is another
    build, even where the digest and its time place the attestation in this job's window."""
    events = job_events(0)
    fork = copy.deepcopy(find(events, "attestation.signed"))
    fork["correlation"] = {"repository": "other-org/fork", "artifact_digest": story.ARTIFACT_DIGEST}
    fork["resource"] = "s3://fork-bucket/attestations/fork.json"
    events.append(fork)
    (only,), _, _, entries = stories_of(events)
    step = _attestation_step(only)
    assert step.present and step.seqs == (seq_of(entries, find(events, "attestation.signed", 0)),)
    assert step.other_builds == (seq_of(entries, fork),) and "repository other-org/fork" in step.detail
