"""Evidence whose claims nobody verified is shown as weaker evidence and satisfies nothing on its own.

* A Vault response whose request line was never logged (the collector's ``vault.unpaired`` finding,
  ``side=response``; the response's own entry carries ``attrs.paired: false``): what it says about who
  asked (the token, the entity, the JWT claims) is not corroborated. A certificate or Vault login known
  only from such a response is no custody step, and secret reads or token renewals known only from them
  are counted apart, as reads that may be the job's.
* A GitHub/GitLab payload collected without its delivery signature while a webhook secret was
  configured (``ci.unsigned-webhook-payload``): what it says about the runner (region, labels) and
  the job's times does not establish them where a verified source for the job exists, and where it
  is the only source, the facts derived from it say so and satisfy nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bundler.evaluate import EvaluationConfig
from bundler.model import NOT_SATISFIED, SATISFIED
from bundler.render import BundleFacts, render_control
from tests.synthetic_jobs import BASE, event, stamp
from tests.test_review_eval_patterns import CUSTODY, evaluated, gha_job, of_kind, seq_of, status, step, story_of


def unpaired(events: list[dict[str, Any]], target: dict[str, Any]) -> dict[str, Any]:
    """Mark *target* (a Vault response) unpaired, as the collector does, and add the collector's
    ``vault.unpaired`` finding for it; returns the finding."""
    request_id = f"req-{len(events)}-{target['kind']}"
    target["attrs"].update(request_id=request_id, paired=False)
    finding = event("vault.unpaired", BASE + timedelta(seconds=36), action="unpaired response",
                    resource=target["resource"], status="failure",
                    correlation=dict(target["correlation"]),
                    attrs={"request_id": request_id, "side": "response", "location": "audit.log", "line": 7,
                           "record_sha256": "ab" * 32, "path": target["resource"], "operation": "update"})
    events.append(finding)
    return finding


def facts() -> BundleFacts:
    return BundleFacts(system="test", origin="test.example/ledger", checkpoint_size=1, checkpoint_root="00",
                       checkpoint_note="")


# -- unpaired Vault responses -----------------------------------------------------------------------


def test_a_certificate_known_only_from_an_unpaired_response_is_no_custody_step() -> None:
    events = gha_job(1, BASE)
    certificate = of_kind(events, "vault.pki_issue")
    unpaired(events, certificate)
    assessment, entries = evaluated(events)
    seq = seq_of(entries, certificate)
    st = story_of(assessment, "70001")
    cert = step(st, "certificate")
    assert not cert.present and cert.seqs == (seq,) and cert.unpaired == (seq,)
    assert "unpaired Vault response" in cert.detail and "who asked" in cert.detail
    (finding,) = st.findings
    assert finding.id == "custody-missing:certificate:job-70001" and finding.seqs == (seq,)
    assert all(status(assessment)[c] == NOT_SATISFIED for c in CUSTODY)
    html = render_control(assessment, assessment.control("au-2"), facts())
    assert f"(unpaired Vault responses, not counted: entries {seq})" in html


def test_a_paired_response_is_the_step_and_an_unpaired_one_beside_it_is_listed_apart() -> None:
    events = gha_job(1, BASE)
    login = of_kind(events, "vault.login")
    login["attrs"]["paired"] = True
    again = {**login, "time": login["time"], "attrs": {**login["attrs"]}, "correlation": dict(login["correlation"])}
    events.insert(events.index(login) + 1, again)
    unpaired(events, again)
    assessment, entries = evaluated(events)
    st = story_of(assessment, "70001")
    vault_login = step(st, "vault_login")
    assert vault_login.present and vault_login.unpaired == (seq_of(entries, again),)
    assert st.complete and not st.findings
    assert all(status(assessment)[c] == SATISFIED for c in CUSTODY)


def test_a_vault_login_known_only_from_an_unpaired_response_is_no_custody_step() -> None:
    events = gha_job(1, BASE)
    unpaired(events, of_kind(events, "vault.login"))
    assessment, _ = evaluated(events)
    st = story_of(assessment, "70001")
    assert not step(st, "vault_login").present
    assert [f.id for f in st.findings] == ["custody-missing:vault_login:job-70001"]


def _reads(events: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    read = of_kind(events, "vault.secret_read")
    more = []
    for k in range(count):
        copy = {**read, "time": read["time"], "resource": f"kv/data/ci/extra-{k}",
                "attrs": {**read["attrs"], "path": f"kv/data/ci/extra-{k}"}, "correlation": dict(read["correlation"])}
        more.append(copy)
    position = events.index(read) + 1
    events[position:position] = more
    return more


def test_secret_reads_from_unpaired_responses_are_counted_apart_as_reads_that_may_be_the_jobs() -> None:
    """One paired read and two unpaired ones, threshold 2: the job read one secret as far as the evidence
    shows; up to three may be its own. Fail closed (a finding), but not as if it had read three."""
    events = gha_job(1, BASE)
    extra = _reads(events, 2)
    for read in extra:
        unpaired(events, read)
    config = EvaluationConfig(secret_read_threshold=2)
    assessment, entries = evaluated(events, config=config)
    check = next(c for c in assessment.checks if c.check == "secret-read-volume")
    (finding,) = check.findings
    assert finding.id == "secret-read-volume:unpaired:job-70001"
    assert "read 1 secrets" in finding.description and "2 more" in finding.description
    assert "unpaired Vault responses" in finding.description
    assert set(finding.seqs) == {seq_of(entries, r) for r in events if r["kind"] == "vault.secret_read"}
    assert "2 from unpaired Vault responses" in check.summary
    # paired, the same reads are the job's own, as before
    events = gha_job(1, BASE)
    _reads(events, 2)
    assessment, _ = evaluated(events, config=config)
    check = next(c for c in assessment.checks if c.check == "secret-read-volume")
    assert [f.id for f in check.findings] == ["secret-read-volume:job-70001"]


def test_a_rego_policy_sees_unpaired_responses_apart(tmp_path) -> None:
    from bundler.rego import load_policies

    (tmp_path / "probe.rego").write_text("""# controls: AU-2
package probe
import rego.v1

deny contains sprintf("reads %v, unpaired %v", [input.vault.secret_reads, input.vault.unpaired_secret_reads])
deny contains sprintf("certificate present %v, unpaired %v", [input.custody_steps.certificate.present,
                                                              count(input.custody_steps.certificate.unpaired)])
""", encoding="utf-8")
    events = gha_job(1, BASE)
    unpaired(events, of_kind(events, "vault.pki_issue"))
    for read in _reads(events, 2):
        unpaired(events, read)
    assessment, _ = evaluated(events, policies=load_policies(tmp_path))
    (finding,) = next(c for c in assessment.checks if c.check == "policy:probe").findings
    assert finding.description == "probe.rego: certificate present false, unpaired 1; reads 3, unpaired 2"


# -- unsigned CI webhook payloads -------------------------------------------------------------------

UNSIGNED = {"provider": "github", "run_attempt": 1, "webhook_signature": "absent", "webhook_secret_configured": True}


def unsigned_copy(events: list[dict[str, Any]], kind: str, seconds: int, **attrs: Any) -> dict[str, Any]:
    """A bare payload of the job's *kind* delivery, *seconds* after BASE, collected without its signature while
    a webhook secret was configured, with *attrs* changed; added to *events*."""
    original = of_kind(events, kind)
    payload = {**original, "time": stamp(BASE + timedelta(seconds=seconds)),
               "correlation": dict(original["correlation"]), "attrs": {**original["attrs"], **UNSIGNED, **attrs}}
    events.append(payload)
    return payload


def check_of(assessment: Any, name: str) -> Any:
    return next(c for c in assessment.checks if c.check == name)


def test_an_unsigned_payloads_region_does_not_override_the_signed_deliveries() -> None:
    """The job's signed deliveries say us-gov-west-1; a bare payload for the same job says eu-west-1. Nobody
    authenticated the payload: it does not establish where the runner was (it is an audit-trail finding)."""
    events = gha_job(1, BASE)
    unsigned_copy(events, "ci.job_started", 21, runner_region="eu-west-1",
                  runner_labels=["self-hosted", "linux", "eu-west-1"])
    assessment, _ = evaluated(events)
    regions = check_of(assessment, "allowed-regions")
    assert regions.status == SATISFIED and regions.findings == (), [f.id for f in regions.findings]
    audit = check_of(assessment, "audit-trail-integrity")
    assert "audit-trail-integrity:ci.unsigned-webhook-payload" in [f.id for f in audit.findings]


def test_a_region_known_only_from_unsigned_payloads_satisfies_nothing() -> None:
    events = gha_job(1, BASE, signature="absent", secret_configured=True)
    assessment, entries = evaluated(events)
    regions = check_of(assessment, "allowed-regions")
    (finding,) = regions.findings
    assert finding.id == "allowed-regions:region-unsigned:job-70001" and finding.severity == "low"
    assert "us-gov-west-1" in finding.description and "unsigned webhook payload" in finding.description
    cited = {seq_of(entries, e) for e in events if e["kind"].startswith("ci.job_")}
    assert set(finding.seqs) == cited
    assert regions.status == NOT_SATISFIED


def test_a_rego_policy_does_not_see_an_unsigned_region_as_the_runners(tmp_path) -> None:
    from pathlib import Path

    from bundler.rego import load_policies

    seed = load_policies(Path(__file__).resolve().parent.parent / "samples" / "policies")
    (tmp_path / "probe.rego").write_text("""# controls: AC-6
package probe
import rego.v1

deny contains sprintf("region %v", [input.runner.region])
deny contains sprintf("unsigned region %v", [input.runner.unsigned.region])
deny contains sprintf("unsigned labels %v", [count(input.runner.unsigned.labels)])
deny contains sprintf("labels %v", [count(input.runner.labels)])
""", encoding="utf-8")
    policies = [*seed, *load_policies(tmp_path)]
    assessment, _ = evaluated(gha_job(1, BASE, signature="absent", secret_configured=True), policies=policies)
    (probe,) = check_of(assessment, "policy:probe").findings
    assert probe.description == "probe.rego: labels 0; region null; unsigned labels 4; unsigned region us-gov-west-1"
    assert check_of(assessment, "policy:pipeline").status == NOT_SATISFIED
    assessment, _ = evaluated(gha_job(1, BASE), policies=policies)
    (probe,) = check_of(assessment, "policy:probe").findings
    assert probe.description == "probe.rego: labels 4; region us-gov-west-1"
    assert check_of(assessment, "policy:pipeline").status == SATISFIED


def test_an_unsigned_payload_does_not_widen_the_jobs_time_window() -> None:
    """A bare 'completed' payload dated three hours after the job's signed completion stretched the job's window
    over a secret read made two hours later by the same Vault entity, which correlation then gave to the job."""
    from bundler.custody import correlate
    from bundler.evaluate import parse_utc
    from bundler.evidence_table import build_table
    from tests.synthetic_jobs import as_entries

    events = gha_job(1, BASE)
    unsigned_copy(events, "ci.job_completed", 3 * 3600)
    read = of_kind(events, "vault.secret_read")
    late = {**read, "time": stamp(BASE + timedelta(hours=2)), "correlation": dict(read["correlation"]),
            "attrs": dict(read["attrs"])}
    events.append(late)
    entries = as_entries(events)
    table = build_table(entries, as_of=parse_utc("2026-11-21T00:00:00Z"))
    correlation = correlate(table.frame)
    job_of = dict(zip(table.frame["seq"], correlation.job))
    assert job_of[seq_of(entries, read)] == "70001"
    assert job_of[seq_of(entries, late)] is None
    assert correlation.windows.at["70001", "end"] < parse_utc(stamp(BASE + timedelta(hours=1)))


def test_a_job_known_to_be_running_only_from_unsigned_payloads_is_judged_whole() -> None:
    """A job is in progress at as_of (its later steps not judged yet) only on a lifecycle event someone
    authenticated: bare payloads alone do not grant the wait."""
    mid_run = stamp(BASE + timedelta(seconds=310))
    events = [e for e in gha_job(1, BASE, signature="absent", secret_configured=True)
              if e["kind"] != "ci.job_completed"]
    assessment, _ = evaluated(events, as_of=mid_run)
    st = story_of(assessment, "70001")
    assert st.in_progress is None
    assert "custody-missing:attestation_stored:job-70001" in [f.id for f in st.findings]
    # the same job with its deliveries signed is in progress, as before
    events = [e for e in gha_job(1, BASE) if e["kind"] != "ci.job_completed"]
    assessment, _ = evaluated(events, as_of=mid_run)
    assert story_of(assessment, "70001").in_progress is not None


def test_an_unsigned_payloads_timeout_does_not_lengthen_the_job() -> None:
    """A job's length (certificate TTL, in-progress wait) comes from the timeout its events give; a bare
    payload's claim of three hours let a two-hour certificate pass."""
    events = gha_job(1, BASE)
    of_kind(events, "vault.pki_issue")["attrs"]["ttl"] = 7200
    unsigned_copy(events, "ci.job_started", 21, timeout_minutes=180)
    assessment, entries = evaluated(events)
    (finding,) = check_of(assessment, "certificate-ttl").findings
    assert finding.id == f"certificate-ttl:ttl-too-long:{seq_of(entries, of_kind(events, 'vault.pki_issue'))}"
    assert "3600s" in finding.title


def test_an_unsigned_payload_does_not_move_the_jobs_start_for_the_timestamps_check() -> None:
    """The job's signed ``in_progress`` delivery says it started at 14:00:20; a bare payload claims two hours
    earlier. An event of the job half an hour before its start is outside its run time all the same."""
    events = gha_job(1, BASE)
    bare = unsigned_copy(events, "ci.job_started", -2 * 3600)
    build = of_kind(events, "ci.build_signed")
    build["time"] = stamp(BASE - timedelta(minutes=30))
    assessment, entries = evaluated(events)
    timestamps = check_of(assessment, "timestamps")
    (finding,) = timestamps.findings
    # the bare payload, dated two hours before the start, is one of the job's events outside it too
    assert finding.id == "timestamps:outside-job:job-70001"
    assert finding.seqs == tuple(sorted((seq_of(entries, build), seq_of(entries, bare))))


def test_a_run_time_known_only_from_unsigned_payloads_is_said_not_checked() -> None:
    events = gha_job(1, BASE, signature="absent", secret_configured=True)
    assessment, _ = evaluated(events)
    timestamps = check_of(assessment, "timestamps")
    assert "1 job(s) whose start and completion only unsigned webhook payloads give" in timestamps.summary
    assert "70001" in timestamps.summary
