"""GitHub Actions matrix builds, run-level approvals and the run attempt an attestation names.

A matrix build is one run (one run id, one ``workflow_run`` delivery) whose jobs run at the same time
and share the OIDC subject, the Vault entity and the role session name ``GitHubActions``. The evidence
cannot tell which of them assumed a role or logged in to Vault, but it can tell that one of this run's
jobs did: such a step counts for each of them, labelled ``shared within run …``; never when the
contesting jobs belong to different runs, repositories or attempts.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from bundler import render
from bundler.evaluate import evaluate
from bundler.model import NOT_SATISFIED, SATISFIED
from bundler.rego import load_policies
from collector.attestation_verify import facts_from_statement
from collector.object_source import LocalFolderProvider
from samples.make import story
from tests.attest_support import SAMPLE_BUCKET, collect, new_ledger
from tests.synthetic_jobs import BASE, event, stamp
from tests.test_review_eval_patterns import (
    REPO, _rerun, evaluated, gha_job, of_kind, seq_of, status, step, story_of,
)

RUN = 9001
JOBS = ("70001", "70002", "70003")
SHARED = f"shared within run {RUN} in {REPO}, attempt 1 (jobs 70001, 70002, 70003)"


def matrix(size: int = 3, *, run: int = RUN, attempt: int = 1, reads: int = 1, first: int = 1,
           repo: str = REPO) -> list[dict[str, Any]]:
    """One run's *size* matrix jobs, started a second apart: one ``workflow_run`` delivery, each job with
    its own job id, runner, temporary key, certificate and artifact; *reads* secret reads per job."""
    events: list[dict[str, Any]] = []
    for k in range(size):
        job = gha_job(first + k, BASE + timedelta(seconds=k), run=run, attempt=attempt, repo=repo)
        if k:
            job.remove(of_kind(job, "ci.workflow_run"))
        read = of_kind(job, "vault.secret_read")
        for extra in range(1, reads):
            more = {**read, "correlation": dict(read["correlation"]), "attrs": dict(read["attrs"]),
                    "resource": f"kv/data/ci/model-{extra}", "time": stamp(BASE + timedelta(seconds=36 + extra))}
            job.insert(job.index(read) + extra, more)
        events += job
    return events


def findings_of(assessment: Any) -> list[str]:
    return sorted({f.id for c in assessment.controls for f in c.findings})


# -- 1. steps shared within one run ------------------------------------------------------------------


def test_a_matrix_build_is_compliant_its_shared_steps_labelled_with_the_run() -> None:
    events = matrix()
    assessment, entries = evaluated(events)
    assert set(status(assessment).values()) == {SATISFIED}, findings_of(assessment)
    assumed = tuple(seq_of(entries, e) for e in events if e["kind"] == "aws.assume_role_web_identity")
    logins = tuple(seq_of(entries, e) for e in events if e["kind"] == "vault.login")
    for job in JOBS:
        st = story_of(assessment, job)
        assert st.complete and not st.findings, st
        role, login = step(st, "role_assumption"), step(st, "vault_login")
        assert role.seqs == assumed and login.seqs == logins
        for shared in (role, login):
            assert shared.detail.startswith(SHARED), shared.detail
            assert "cannot tell which of these jobs" in shared.detail
        # steps the job's own identifiers place stay the job's own, unlabelled
        assert step(st, "certificate").detail == "" and len(step(st, "certificate").seqs) == 1


def test_the_control_page_shows_the_shared_step_as_shared_within_the_run() -> None:
    assessment, _ = evaluated(matrix())
    control = assessment.control("au-10")
    page = render.render_control(assessment, control, render.BundleFacts("s", "t", 1, "00" * 32, "note"))
    assert page.count(SHARED) >= 2 * len(JOBS)


def test_the_seed_policy_sees_a_matrix_jobs_shared_role_assumption_as_ephemeral_credentials() -> None:
    policies = load_policies(Path(__file__).resolve().parent.parent / "samples" / "policies")
    assessment, _ = evaluated(matrix(), policies=policies)
    check = next(c for c in assessment.checks if c.check == "policy:pipeline")
    assert check.status == SATISFIED, [f.description for f in check.findings]


def test_jobs_of_two_runs_contesting_a_row_do_not_share_it() -> None:
    """Two runs of one repository at the same time (same subject and entity): the role assumptions could be
    either run's, so they stay a missing step, as before."""
    events = gha_job(1, BASE, run=9001) + gha_job(2, BASE + timedelta(seconds=1), run=9002)
    assessment, _ = evaluated(events)
    for job in ("70001", "70002"):
        st = story_of(assessment, job)
        role = step(st, "role_assumption")
        assert not role.present and "shared within run" not in role.detail
        assert f"custody-missing:role_assumption:job-{job}" in [f.id for f in st.findings]
    assert assessment.control("au-10").status == NOT_SATISFIED


def test_the_same_run_id_in_two_repositories_is_not_one_run() -> None:
    """Run ids that count per project (GitLab instances) collide: two jobs of run 77 in two repositories,
    sharing a Vault entity, overlapping. The Vault logins name run 77 but not which repository's."""
    events = gha_job(1, BASE, run=77, repo="group/a", entity="shared") + \
        gha_job(2, BASE + timedelta(seconds=1), run=77, repo="group/b", entity="shared")
    for login in (e for e in events if e["kind"] == "vault.login"):
        del login["correlation"]["repository"], login["correlation"]["oidc_subject"]
    assessment, _ = evaluated(events)
    for job in ("70001", "70002"):
        login = step(story_of(assessment, job), "vault_login")
        assert not login.present and "shared within run" not in login.detail


def test_jobs_of_two_attempts_of_one_run_do_not_share_a_row() -> None:
    events = matrix(2) + matrix(1, attempt=2, first=3)
    assessment, _ = evaluated(events)
    for job in ("70001", "70002", "70003"):
        role = step(story_of(assessment, job), "role_assumption")
        assert not role.present and "shared within run" not in role.detail


def test_secret_reads_shared_within_a_run_are_not_counted_as_each_jobs_own_without_saying_so() -> None:
    """3 jobs × 8 reads by the shared entity: 24 reads the evidence cannot give to one job. Each job may
    have made up to 24 (over the threshold of 20): an ``unattributed`` finding that names the run and
    says none was counted as the job's own; never a plain per-job count of 24."""
    events = matrix(reads=8)
    assessment, entries = evaluated(events)
    reads = {seq_of(entries, e) for e in events if e["kind"] == "vault.secret_read"}
    volume = [f for f in assessment.control("au-6").findings if f.check == "secret-read-volume"]
    assert sorted(f.id for f in volume) == [f"secret-read-volume:unattributed:job-{job}" for job in JOBS]
    for finding in volume:
        assert set(finding.seqs) == reads
        assert "read 0 secrets" in finding.description and SHARED in finding.description
    # within the threshold, a matrix build's shared reads are no finding
    assessment, _ = evaluated(matrix(reads=6))
    assert assessment.control("au-6").status == SATISFIED


# -- 2. run-level approvals ------------------------------------------------------------------------------


def _run_level_approval(events: list[dict[str, Any]], seconds: int, *, succeeded: bool = True,
                        **attrs: Any) -> dict[str, Any]:
    """Replace the jobs' approvals with one GitHub environment approval for the run (it names no job)."""
    for approval in [e for e in events if e["kind"] == "ci.approval"]:
        events.remove(approval)
    made = event("ci.approval", BASE + timedelta(seconds=seconds), actor="jane.isso@agency.gov", action="approved",
                 resource=REPO, status="success" if succeeded else "failure",
                 correlation={"run_id": str(RUN), "repository": REPO},
                 attrs={"approver": "jane.isso@agency.gov", **attrs})
    events.append(made)
    return made


def test_a_run_level_approval_before_the_calls_approves_every_job_of_the_run() -> None:
    events = matrix()
    _run_level_approval(events, 10, run_attempt=1)
    assessment, _ = evaluated(events)
    assert assessment.control("cm-3").status == SATISFIED, findings_of(assessment)
    assert set(status(assessment).values()) == {SATISFIED}, findings_of(assessment)


def test_a_run_level_approval_after_the_calls_is_approval_after_call_for_each_job() -> None:
    events = matrix()
    approval = _run_level_approval(events, 500)
    assessment, entries = evaluated(events)
    gate = sorted(f.id for f in assessment.control("cm-3").findings if f.check == "policy-gate")
    assert gate == [f"policy-gate:approval-after-call:job-{job}" for job in JOBS]
    assert all(seq_of(entries, approval) in f.seqs for f in assessment.control("cm-3").findings)


def test_a_run_level_refusal_before_the_calls_is_a_refusal_for_each_job() -> None:
    events = matrix()
    _run_level_approval(events, 10, succeeded=False)
    assessment, _ = evaluated(events)
    gate = sorted(f.id for f in assessment.control("cm-3").findings if f.check == "policy-gate")
    assert gate == [f"policy-gate:approval-refused:job-{job}" for job in JOBS]


def test_a_run_level_approval_of_another_attempt_or_repository_approves_nothing() -> None:
    for attrs, correlation in (({"run_attempt": 2}, {}), ({}, {"repository": "other-org/other"})):
        events = matrix()
        approval = _run_level_approval(events, 10, **attrs)
        approval["correlation"].update(correlation)
        assessment, _ = evaluated(events)
        gate = sorted(f.id for f in assessment.control("cm-3").findings if f.check == "policy-gate")
        assert gate == [f"policy-gate:no-approval:job-{job}" for job in JOBS], (attrs, correlation)


# -- 3. the run attempt an attestation names -------------------------------------------------------------


def test_the_collector_reads_the_run_attempt_from_the_provenance_invocation() -> None:
    from collector.sources.attestations import run_attempt_of
    from samples.make.attestations import provenance

    statement = provenance()
    assert run_attempt_of(facts_from_statement(statement)) == story.RUN_ATTEMPT
    statement["predicate"]["runDetails"]["metadata"]["invocationId"] = \
        f"https://github.com/{story.REPOSITORY}/actions/runs/{story.RUN_ID}/attempts/3"
    assert run_attempt_of(facts_from_statement(statement)) == 3
    v02 = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://slsa.dev/provenance/v0.2",
           "subject": statement["subject"],
           "predicate": {"builder": {"id": "https://github.com/slsa-framework/slsa-github-generator"},
                         "metadata": {"buildInvocationId": f"https://github.com/o/r/actions/runs/{story.RUN_ID}"
                                                           "/attempts/2"}}}
    assert run_attempt_of(facts_from_statement(v02)) == 2
    # a run without an attempt, a job URL, or an attempt of another run than the one the provenance names
    v02["predicate"]["metadata"]["buildInvocationId"] = f"https://github.com/o/r/actions/runs/{story.RUN_ID}"
    assert run_attempt_of(facts_from_statement(v02)) is None
    v02["predicate"]["metadata"]["buildInvocationId"] = "https://github.com/o/r/actions/runs/5/job/6"
    assert run_attempt_of(facts_from_statement(v02)) is None
    v02["predicate"]["metadata"]["buildInvocationId"] = "https://github.com/o/r/actions/runs/5/attempts/2"
    v02["predicate"]["buildConfig"] = {"run_id": "6"}
    assert run_attempt_of(facts_from_statement(v02)) is None


def test_the_collected_provenance_records_its_run_attempt(tmp_path: Path) -> None:
    run = collect(new_ledger(tmp_path / "l.db"), LocalFolderProvider(SAMPLE_BUCKET), str(SAMPLE_BUCKET))
    provenance = run.events["attestations/31415926535.provenance.dsse.json"]
    assert provenance["attrs"]["run_attempt"] == story.RUN_ATTEMPT
    assert "run_attempt" not in run.events[story.ATTESTATION_KEY]["attrs"]  # a plain attestation names none


def test_an_attestation_naming_its_attempt_goes_to_that_attempts_job_whenever_it_was_stored() -> None:
    """Attempt 1's provenance (a later provenance job of the run) was stored while the re-run was under
    way, so its digest and time placed it in attempt 2's job: by time alone the re-run took it as its own
    and attempt 1 lost it. The attestation names its attempt, and that decides."""
    events = _rerun()
    first_att, second_att = (e for e in events if e["kind"] == "attestation.signed")
    first_att["attrs"]["run_attempt"], second_att["attrs"]["run_attempt"] = 1, 2
    first_att["time"] = stamp(BASE + timedelta(hours=1, seconds=450))
    assessment, entries = evaluated(events)
    first_seq, second_seq = seq_of(entries, first_att), seq_of(entries, second_att)
    first = step(story_of(assessment, "70001"), "attestation_stored")
    assert first.present and first.seqs == (first_seq,) and first.other_builds == (second_seq,)
    assert f"(run {RUN} in {REPO}, attempt 2: entry {second_seq})" in first.detail
    second = step(story_of(assessment, "70002"), "attestation_stored")
    assert second.present and second.seqs == (second_seq,) and second.other_builds == (first_seq,)
    assert f"(run {RUN} in {REPO}, attempt 1: entry {first_seq})" in second.detail
    assert all(s.complete and not s.findings for s in assessment.custody), [s.findings for s in assessment.custody]
