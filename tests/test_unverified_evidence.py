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
from tests.synthetic_jobs import BASE, event
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
