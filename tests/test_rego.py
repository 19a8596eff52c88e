"""Rego policies evaluated in-process: inputs per job and per artifact, declared controls, compile errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundler.evaluate import evaluate
from bundler.model import NOT_ASSESSED, NOT_SATISFIED, SATISFIED
from bundler.rego import load_policies, load_policy
from collector.errors import UsageError
from samples.make import story
from tests.synthetic_jobs import as_entries, complete_story, find

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-21T00:00:00Z"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def policy_check(assessment, name: str):
    return next(c for c in assessment.checks if c.check == f"policy:{name}")


def test_seed_policy_allows_compliant_jobs() -> None:
    policies = load_policies(REPO / "samples" / "policies")
    assert [p.name for p in policies] == ["pipeline"]
    assert policies[0].controls == ("cm-3", "cm-5", "si-7", "ac-6") and policies[0].inputs == ("job",)
    assessment = evaluate(as_entries(complete_story(2)), as_of=AS_OF, origin="t", policies=policies)
    check = policy_check(assessment, "pipeline")
    assert check.status == SATISFIED and check.kind == "policy" and "2 of 2" in check.summary
    assert check in assessment.control("cm-3").checks


def test_seed_policy_denies_job_outside_govcloud_with_its_entries() -> None:
    events = complete_story(2)
    find(events, "ci.job_started", 1)["attrs"]["runner_region"] = "us-gov-east-1"
    policies = load_policies(REPO / "samples" / "policies")
    entries = as_entries(events)
    assessment = evaluate(entries, as_of=AS_OF, origin="t", policies=policies)
    check = policy_check(assessment, "pipeline")
    assert check.status == NOT_SATISFIED
    (finding,) = check.findings
    second = str(story.JOB_ID + 1)
    assert finding.id == f"policy:pipeline:job-{second}" and finding.job_id == second
    assert seq_of_kind(entries, "ci.job_started", 1) in finding.seqs
    assert assessment.control("cm-3").status == NOT_SATISFIED


def seq_of_kind(entries, kind: str, index: int) -> int:
    return [s for s, e, _ in entries if e["kind"] == kind][index]


def test_policy_that_does_not_compile_is_a_usage_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "broken.rego", "# controls: CM-3\npackage broken\n\nallow { input.x == }\n")
    with pytest.raises(UsageError) as caught:
        load_policies(tmp_path)
    assert caught.value.exit_code == 2
    assert "Invalid boolean operator at broken.rego:4:17" in str(caught.value)
    # regopy prints compile errors natively on fd 1; stdout belongs to results
    assert "Errors:" not in capfd.readouterr().out


@pytest.mark.parametrize("text, reason", [
    ("package p\nallow { true }\n", "controls"),
    ("# controls: not-a-control\npackage p\nallow { true }\n", "controls"),
    ("# controls: CM-3\nallow { true }\n", "package"),
    ("# controls: CM-3\npackage p\nx := 1\n", "allow"),
    ("# controls: CM-3\n# inputs: deployment\npackage p\nallow { true }\n", "inputs"),
])
def test_policy_declarations_are_required(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        load_policy(write(tmp_path, "p.rego", text))


def test_controls_rule_deny_messages_and_artifact_inputs(tmp_path: Path) -> None:
    write(tmp_path, "artifacts.rego", """package supply
import rego.v1

controls := ["SR-4", "AU-11"]

# inputs: artifact
deny contains msg if {
  some a in input.artifact.attestations
  a.object_lock_mode != "COMPLIANCE"
  msg := sprintf("attestation %v is not under compliance-mode Object Lock", [a.seq])
}
""")
    (policy,) = load_policies(tmp_path)
    assert policy.controls == ("sr-4", "au-11") and policy.inputs == ("artifact",)
    events = complete_story(2)
    find(events, "attestation.signed", 0)["attrs"]["object_lock_mode"] = "GOVERNANCE"
    entries = as_entries(events)
    assessment = evaluate(entries, as_of=AS_OF, origin="t", policies=[policy])
    check = policy_check(assessment, "artifacts")
    assert check.status == NOT_SATISFIED
    (finding,) = check.findings
    bad_seq = seq_of_kind(entries, "attestation.signed", 0)
    assert finding.id == f"policy:artifacts:artifact-{story.ARTIFACT_DIGEST}"
    assert f"attestation {bad_seq} is not under" in finding.description and bad_seq in finding.seqs
    assert assessment.control("sr-4").status == NOT_SATISFIED
    # the policy is named by its file name: the build machine's folders are not evidence (and a bundle
    # rebuilt elsewhere from the same inputs must be the same bytes)
    assert finding.description.startswith("artifacts.rego: ") and str(tmp_path) not in finding.description


def test_policy_reads_job_events_and_counts(tmp_path: Path) -> None:
    write(tmp_path, "reads.rego", """# controls: AU-6
package reads

default allow := false
allow {
  input.vault.secret_reads <= 1
  count([e | e := input.events[_]; e.kind == "vault.login"]) == 1
  input.counts["aws.api_call"] > 0
}
""")
    policies = load_policies(tmp_path)
    entries = as_entries(complete_story(1))
    check = policy_check(evaluate(entries, as_of=AS_OF, origin="t", policies=policies), "reads")
    assert check.status == NOT_SATISFIED  # the synthetic job reads two secrets
    relaxed = write(tmp_path, "reads.rego", (tmp_path / "reads.rego").read_text().replace("<= 1", "<= 2"))
    check = policy_check(evaluate(entries, as_of=AS_OF, origin="t", policies=[load_policy(relaxed)]), "reads")
    assert check.status == SATISFIED


def test_policy_without_inputs_is_not_assessed() -> None:
    policies = load_policies(REPO / "samples" / "policies")
    assessment = evaluate([], as_of=AS_OF, origin="t", policies=policies)
    assert policy_check(assessment, "pipeline").status == NOT_ASSESSED
    assert assessment.control("cm-3").status == "not-assessed"


def test_policy_results_are_deterministic() -> None:
    policies = load_policies(REPO / "samples" / "policies")
    entries = as_entries(complete_story(2))
    assert evaluate(entries, as_of=AS_OF, origin="t", policies=policies) == \
        evaluate(entries, as_of=AS_OF, origin="t", policies=policies)


def test_policy_that_speaks_to_no_assessed_control_says_so(tmp_path: Path) -> None:
    """Review: a policy whose controls are all outside the assessment (a typo such as CM-99,
    or --controls leaving them out) changed no result and the report did not say so."""
    write(tmp_path, "typo.rego", "# controls: CM-99\npackage pipeline\nallow { false }\n")
    write(tmp_path, "kept.rego", "# controls: AU-2\npackage pipeline\nallow { true }\n")
    assessment = evaluate(as_entries(complete_story(1)), as_of=AS_OF, origin="t", policies=load_policies(tmp_path),
                          controls=["AU-2", "AU-9"])
    notes = [n for n in assessment.notes if "policy" in n]
    assert len(notes) == 1 and "typo" in notes[0] and "CM-99" in notes[0], assessment.notes


@pytest.mark.parametrize("call, name, reason", [
    ('http.send({"method": "get", "url": "http://127.0.0.1:9/"})', "http.send", "network"),
    ('net.lookup_ip_addr("example.com")', "net.lookup_ip_addr", "network"),
    ("time.now_ns()", "time.now_ns", "clock"),
    ('rand.intn("x", 10)', "rand.intn", "random"),
    ('uuid.rfc4122("x")', "uuid.rfc4122", "random"),
    ("opa.runtime()", "opa.runtime", "environment"),
])
def test_policy_calling_a_network_or_non_deterministic_builtin_is_refused(
        tmp_path: Path, call: str, name: str, reason: str) -> None:
    """regopy compiles these: http.send and net.lookup_ip_addr quietly evaluate to undefined (a deny
    rule built on them never fires), the others answer with the clock, chance or the host's environment."""
    path = write(tmp_path, "p.rego", "# controls: CM-3\npackage p\n\n"
                                     f"# {name}( in a comment is text\n"
                                     "allow {\n"
                                     f"  x := {call}\n"
                                     "  x != null\n"
                                     "}\n")
    with pytest.raises(UsageError) as caught:
        load_policies(tmp_path)
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message
    assert message.startswith(f"{path}:6: {name} is not allowed"), message
    assert reason in message


def test_builtin_names_in_strings_and_comments_are_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "p.rego", '# controls: CM-3\npackage p\n\n# http.send(x) would be refused\n'
                                     'deny[msg] {\n  input.kind == "never"\n  msg := "time.now_ns() and http.send(x)"\n}\n')
    assert load_policy(path).package == "p"


@pytest.mark.parametrize("kind", ["attestation.invalid", "attestation.unsigned"])
def test_artifact_with_only_a_bad_attestation_is_not_attested(tmp_path: Path, kind: str) -> None:
    """A policy gating on 'the attestation exists' (PIPELINE-PATTERNS pattern 5) must not pass an artifact
    whose only attestation failed verification or carries no signature."""
    write(tmp_path, "exists.rego", "# controls: SR-4\n# inputs: artifact\npackage exists\n\n"
                                   "default allow := false\nallow { input.artifact.attested == true }\n")
    policies = load_policies(tmp_path)
    events = complete_story(1)
    assert policy_check(evaluate(as_entries(events), as_of=AS_OF, origin="t", policies=policies),
                        "exists").status == SATISFIED
    find(events, "attestation.signed")["kind"] = kind
    check = policy_check(evaluate(as_entries(events), as_of=AS_OF, origin="t", policies=policies), "exists")
    assert check.status == NOT_SATISFIED
    assert [f.id for f in check.findings] == [f"policy:exists:artifact-{story.ARTIFACT_DIGEST}"]


# -- a job still running at as_of -------------------------------------------------------------------

EVERY_STEP = """# controls: AU-2
package every_step
import rego.v1

# every custody step of a job, except those a job still running at as-of has not reached yet
deny contains msg if {
  some name, step in input.custody_steps
  not step.present
  not step.not_reached
  msg := sprintf("custody step %v is missing", [name])
}
"""


def _mid_run(seconds: int, *, without: str | None = None):
    from datetime import timedelta

    from tests.synthetic_jobs import BASE, stamp
    from tests.test_review_eval_patterns import gha_job

    events = [e for e in gha_job(1, BASE) if e["kind"] != without]
    return as_entries(events), stamp(BASE + timedelta(seconds=seconds))


def test_job_input_tells_a_step_not_reached_yet_from_a_missing_one(tmp_path: Path) -> None:
    """``input.custody.<step>`` is false both for a step a running job has not reached yet and for a
    missing one, so a policy demanding every step denied every job caught mid-run. The input says which
    steps are not reached yet (``custody_steps.<step>.not_reached``) and that the job is in progress."""
    write(tmp_path, "every_step.rego", EVERY_STEP)
    policies = load_policies(tmp_path)
    entries, as_of = _mid_run(310)  # after the build, before the gate, the inference call and the attestation
    assessment = evaluate(entries, as_of=as_of, origin="t", policies=policies)
    check = policy_check(assessment, "every_step")
    assert check.status == SATISFIED, [f.description for f in check.findings]
    # the same job without its Vault login, a step before the ones it reached: missing, not "not reached"
    entries, as_of = _mid_run(310, without="vault.login")
    check = policy_check(evaluate(entries, as_of=as_of, origin="t", policies=policies), "every_step")
    assert check.status == NOT_SATISFIED
    (finding,) = check.findings
    assert finding.description == "every_step.rego: custody step vault_login is missing"
    # what a policy reads (regopy's json.marshal cannot print arrays of scalars: the probe says it in words)
    entries, as_of = _mid_run(310)
    (story_70001,) = evaluate(entries, as_of=as_of, origin="t").custody
    not_reached = [s.step for s in story_70001.steps if s.not_reached]
    assert not_reached == ["policy_decision", "inference_call", "attestation_stored"]
    assert _probe(entries, as_of) == sorted([
        "in progress", f"as_of {as_of}", "started 2026-11-20T14:00:20Z", "allowed 3600 from max_job_seconds",
        *(f"not reached: {name}" for name in not_reached),
        "present: build_sign", "custody: attestation_stored false",  # unchanged: whether the step is present
    ])
    assert _probe(*_mid_run(7200)) == ["custody: attestation_stored true", "present: build_sign"]


PROBE = """# controls: AU-2
package probe
import rego.v1

deny contains "in progress" if input.job.in_progress == true
deny contains sprintf("as_of %v", [input.in_progress.as_of])
deny contains sprintf("started %v", [input.in_progress.started])
deny contains sprintf("allowed %v from %v", [input.in_progress.allowed_seconds, input.in_progress.allowed_from])
deny contains sprintf("not reached: %v", [name]) if {
  some name, step in input.custody_steps
  step.not_reached == true
}
deny contains "present: build_sign" if {
  input.custody_steps.build_sign.present == true
  input.custody_steps.build_sign.not_reached == false
}
deny contains sprintf("custody: attestation_stored %v", [input.custody.attestation_stored])
"""


def _probe(entries, as_of: str) -> list[str]:
    """What the probe policy reads in the input document of the one job in *entries* (a real Rego evaluation)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), "probe.rego", PROBE)
        check = policy_check(evaluate(entries, as_of=as_of, origin="t", policies=load_policies(folder)), "probe")
    (finding,) = check.findings
    return sorted(finding.description.removeprefix("probe.rego: ").split("; "))


def test_seed_policy_does_not_deny_a_job_for_steps_it_has_not_reached() -> None:
    """The shipped pipeline policy asks for a signed artifact and ephemeral credentials: a job caught before
    it stored its attestation (or before it assumed a role) was denied for what it had not done yet."""
    policies = load_policies(REPO / "samples" / "policies")
    for seconds in (22, 310):  # before the role assumption; after the build, before the attestation
        entries, as_of = _mid_run(seconds)
        check = policy_check(evaluate(entries, as_of=as_of, origin="t", policies=policies), "pipeline")
        assert check.status == SATISFIED, (seconds, [f.description for f in check.findings])
    # once the job is over (or past its allowed length) a missing attestation is denied again
    entries, as_of = _mid_run(7200, without="attestation.signed")
    check = policy_check(evaluate(entries, as_of=as_of, origin="t", policies=policies), "pipeline")
    assert check.status == NOT_SATISFIED
