"""Fail-open points a reviewer found in evaluation (round 3), each with the evidence that showed it.

1. A generic ``ci.job.*`` event (a job's own unauthenticated line) stating ``timeout_seconds`` made that
   the job's allowed length, up to 31 days: whoever writes the CI inbox kept a job with no end event "in
   progress" (its missing steps not judged) for a month, and let a certificate live as long. A length
   beyond ``max_job_seconds`` now comes only from a signed provider delivery.
2. A Vault request whose response line was stripped from the log left a ``vault.request_received`` entry
   and a ``vault.unpaired`` finding but no ``vault.secret_read``: deleting response lines lowered a job's
   secret-read count. Such requests now count apart, as reads that may be the job's.
3. Rego ``input.events`` marked unpaired responses and unsigned payloads only by their attrs; and a
   run-level approval's ``run_attempt`` of the wrong type (``"2"``, ``true``) approved every attempt.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bundler.evaluate import EvaluationConfig
from bundler.model import NOT_SATISFIED
from tests.synthetic_jobs import BASE, event, stamp
from tests.test_review_eval_patterns import REPO, evaluated, four_hour_job, gha_job, of_kind, seq_of, status, step, story_of


def check_of(assessment: Any, name: str) -> Any:
    return next(c for c in assessment.checks if c.check == name)


# -- 1. a generic event's timeout claim ----------------------------------------------------------------


def generic_started(seconds: int, **attrs: Any) -> dict[str, Any]:
    """A generic ``ci.job.started`` line for job 70001 (the collector keeps its own fields as attrs, so it
    can claim anything, a verified signature included: its action is its ``event_type``)."""
    return event("ci.job_started", BASE + timedelta(seconds=seconds), actor="dev", action="ci.job.started",
                 resource=REPO, correlation={"job_id": "70001", "run_id": "9001", "repository": REPO},
                 attrs=attrs)


@pytest.mark.parametrize("forged", [{}, {"provider": "github", "webhook_signature": "verified",
                                         "webhook_signature_kind": "x-hub-signature-256"}])
def test_a_generic_events_timeout_does_not_keep_a_job_in_progress_beyond_max_job_seconds(forged: dict) -> None:
    events = [e for e in gha_job(1, BASE) if e["kind"] not in ("ci.job_completed", "attestation.signed")]
    events.append(generic_started(21, timeout_seconds=31 * 86400, **forged))
    # two days later, no end event: judged as finished, its missing attestation a finding
    assessment, _ = evaluated(events, as_of=stamp(BASE + timedelta(days=2)))
    st = story_of(assessment, "70001")
    assert st.in_progress is None
    assert "custody-missing:attestation_stored:job-70001" in [f.id for f in st.findings]
    assert all(status(assessment)[c] == NOT_SATISFIED for c in ("au-2", "au-10", "sa-10"))


def test_a_generic_events_timeout_does_not_let_a_certificate_outlive_max_job_seconds() -> None:
    events = gha_job(1, BASE)
    certificate = of_kind(events, "vault.pki_issue")
    certificate["attrs"]["ttl"] = 7 * 86400
    events.append(generic_started(21, timeout_minutes=31 * 24 * 60))
    assessment, entries = evaluated(events)
    (finding,) = check_of(assessment, "certificate-ttl").findings
    assert finding.seqs == (seq_of(entries, certificate),)
    assert "the job's length is 3600s" in finding.description


def test_a_generic_events_shorter_timeout_still_counts_and_a_signed_deliverys_longer_one_too() -> None:
    # shorter than max_job_seconds: the job says so, and a shorter length only judges more strictly
    events = gha_job(1, BASE)
    of_kind(events, "vault.pki_issue")["attrs"]["ttl"] = 900
    events.append(generic_started(21, timeout_minutes=5))
    assessment, _ = evaluated(events)
    (finding,) = check_of(assessment, "certificate-ttl").findings
    assert "the job's length is 300s" in finding.description
    # a signed delivery's 4-hour timeout stands beside a generic event's 31-day claim
    events = gha_job(1, BASE)
    of_kind(events, "vault.pki_issue")["attrs"]["ttl"] = 4 * 3600
    of_kind(events, "ci.job_queued")["attrs"]["timeout_minutes"] = 240
    events.append(generic_started(21, timeout_seconds=31 * 86400))
    assessment, _ = evaluated(events)
    assert not check_of(assessment, "certificate-ttl").findings
    of_kind(events, "vault.pki_issue")["attrs"]["ttl"] = 4 * 3600 + 1
    assessment, _ = evaluated(events)
    (finding,) = check_of(assessment, "certificate-ttl").findings
    assert f"the job's length is {4 * 3600}s" in finding.description


def test_a_generic_events_timeout_does_not_widen_the_context_kept_around_the_periods_edge() -> None:
    """A job crossing the period's start two hours in: with a signed delivery's 5-hour timeout its first steps
    are kept as context (tests/test_review_eval_patterns.py); a generic event's claim widens nothing."""
    events = four_hour_job()
    events.append(generic_started(21, timeout_minutes=300))
    assessment, entries = evaluated(events, period=("2026-11-20T16:00:00Z", "2026-11-30T23:59:59Z"))
    st = story_of(assessment, "70001")
    assert not step(st, "certificate").present
    assert seq_of(entries, of_kind(events, "vault.pki_issue")) not in step(st, "certificate").seqs


# -- 2. Vault requests whose response never came -----------------------------------------------------


def unanswered(events: list[dict[str, Any]], count: int, *, kind: str = "vault.secret_read",
               path: str = "kv/data/ci/stripped-{k}", answer: str | None = None,
               entity_only: bool = False) -> list[dict[str, Any]]:
    """*count* request lines of the job's Vault entity whose response lines were stripped: each a
    ``vault.request_received`` entry (``requested_kind`` *kind*) and the collector's ``vault.unpaired``
    finding (``side: request``) for it. With *answer* ``"late"`` the response came after the pairing
    window (an unpaired response and its own finding), with ``"paired"`` it came in time (no finding).
    *entity_only*: the requests name only the Vault entity (a token without the job's run in its metadata)."""
    read = next(e for e in events if e["kind"] == "vault.secret_read")  # the first job's
    if entity_only:
        read = {**read, "correlation": {"vault_entity_id": read["correlation"]["vault_entity_id"]}}
    made = []
    for k in range(count):
        when = BASE + timedelta(seconds=36, microseconds=k)
        request_id = f"b0000000-0000-0000-0000-{k:012d}"
        where = path.format(k=k)
        attrs = {"request_id": request_id, "path": where, "operation": "read", "mount_type": "kv",
                 "requested_kind": kind}
        request = event("vault.request_received", when, actor=read["actor"], action=f"read {where}",
                        resource=where, correlation=dict(read["correlation"]), attrs=attrs)
        request["time"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        made.append(request)
        events.append(request)
        if answer == "paired":
            events.append({**request, "kind": kind, "attrs": {**attrs, "paired": True}})
            continue
        events.append(event("vault.unpaired", when, actor=read["actor"], action="unpaired request",
                            resource=where, status="failure", correlation=dict(read["correlation"]),
                            attrs={"request_id": request_id, "side": "request", "location": "audit.log",
                                   "line": 100 + k, "record_sha256": f"{k:064x}", "closed_by": "window",
                                   "pair_window": 90, "path": where, "operation": "read"}))
        events[-1]["time"] = request["time"]
        if answer == "late":
            response = {**request, "kind": kind, "time": stamp(when + timedelta(seconds=120)),
                        "attrs": {**attrs, "paired": False}}
            del response["attrs"]["requested_kind"]
            events.append(response)
            events.append(event("vault.unpaired", when + timedelta(seconds=120), action="unpaired response",
                                resource=where, status="failure", correlation=dict(read["correlation"]),
                                attrs={"request_id": request_id, "side": "response", "location": "audit.log",
                                       "line": 200 + k, "record_sha256": f"{k + 1000:064x}", "path": where,
                                       "operation": "read"}))
    return made


def test_secret_reads_whose_responses_were_stripped_count_as_reads_that_may_be_the_jobs() -> None:
    events = gha_job(1, BASE)
    requests = unanswered(events, 25)
    assessment, entries = evaluated(events)
    check = check_of(assessment, "secret-read-volume")
    (finding,) = check.findings
    assert finding.id == "secret-read-volume:unanswered:job-70001"
    assert "read 1 secrets" in finding.description and "25 more" in finding.description
    assert "no response was logged" in finding.description
    assert set(finding.seqs) == {seq_of(entries, of_kind(events, "vault.secret_read")),
                                 *(seq_of(entries, r) for r in requests)}
    assert "25 from Vault requests never answered" in check.summary
    assert status(assessment)["au-6"] == NOT_SATISFIED


def test_unanswered_requests_an_identity_of_two_overlapping_jobs_made_count_for_both() -> None:
    """Two jobs of two runs under one Vault entity, overlapping: correlation cannot give the requests to one
    job, so they may be either's (``unattributed``), as reads contested that way are."""
    events = gha_job(1, BASE) + gha_job(2, BASE + timedelta(seconds=30))
    unanswered(events, 25, entity_only=True)
    assessment, _ = evaluated(events)
    ids = sorted(f.id for f in check_of(assessment, "secret-read-volume").findings)
    assert ids == ["secret-read-volume:unattributed:job-70001", "secret-read-volume:unattributed:job-70002"]


def test_token_renewals_whose_responses_were_stripped_count_too() -> None:
    events = gha_job(1, BASE)
    unanswered(events, 4, kind="vault.token_renew", path="auth/token/renew-self")
    assessment, _ = evaluated(events)
    (finding,) = check_of(assessment, "token-renewals").findings
    assert finding.id == "token-renewals:unanswered:job-70001"


def test_an_answered_request_is_one_read_not_two() -> None:
    """15 requests with their paired responses, 15 reads; with the response after the window (an unpaired
    response and an unpaired request of one id) still one read each, counted apart once."""
    events = gha_job(1, BASE)
    unanswered(events, 15, answer="paired")
    assessment, _ = evaluated(events)
    assert not check_of(assessment, "secret-read-volume").findings
    events = gha_job(1, BASE)
    unanswered(events, 15, answer="late")
    assessment, _ = evaluated(events)
    assert not check_of(assessment, "secret-read-volume").findings
    events = gha_job(1, BASE)
    unanswered(events, 25, answer="late")
    assessment, _ = evaluated(events)
    (finding,) = check_of(assessment, "secret-read-volume").findings
    assert finding.id == "secret-read-volume:unpaired:job-70001" and "25 more" in finding.description


def test_an_unanswered_request_that_reads_nothing_counts_for_nothing() -> None:
    events = gha_job(1, BASE)
    unanswered(events, 25, kind="vault.request", path="sys/health-{k}")
    assessment, _ = evaluated(events)
    assert not check_of(assessment, "secret-read-volume").findings


def test_the_collector_records_the_kind_a_request_would_have_had(tmp_path: Path) -> None:
    import orjson

    from tests.vault_support import collect, events as ledger_events, new_ledger

    def request(rid: str, path: str, operation: str, mount_type: str | None) -> bytes:
        req = {"id": rid, "operation": operation, "path": path}
        if mount_type:
            req["mount_type"] = mount_type
        return orjson.dumps({"time": "2026-11-20T14:00:00Z", "type": "request", "auth": {}, "request": req,
                             "error": ""}) + b"\n"

    log = tmp_path / "audit.log"
    log.write_bytes(request("c0000000-0000-0000-0000-000000000001", "secret/data/x", "read", "kv")
                    + request("c0000000-0000-0000-0000-000000000002", "auth/token/renew-self", "update", "token")
                    + request("c0000000-0000-0000-0000-000000000003", "sys/health", "read", None))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log], final=True)
        evs = ledger_events(ledger)
    kinds = {e["attrs"]["path"]: e["attrs"].get("requested_kind") for e in evs if e["kind"] == "vault.request_received"}
    assert kinds == {"secret/data/x": "vault.secret_read", "auth/token/renew-self": "vault.token_renew",
                     "sys/health": "vault.request"}
    assert sum(e["kind"] == "vault.unpaired" for e in evs) == 3


def test_a_rego_policy_counts_unanswered_requests(tmp_path: Path) -> None:
    from bundler.rego import load_policies

    (tmp_path / "probe.rego").write_text("""# controls: AU-6
package probe
import rego.v1

deny contains sprintf("reads %v, unanswered %v", [input.vault.secret_reads, input.vault.unanswered_secret_reads])
""", encoding="utf-8")
    events = gha_job(1, BASE)
    unanswered(events, 2)
    assessment, _ = evaluated(events, policies=load_policies(tmp_path))
    (finding,) = check_of(assessment, "policy:probe").findings
    assert finding.description == "probe.rego: reads 3, unanswered 2"


# -- 3. Rego input: unverified events; a run-level approval's attempt ---------------------------------


def test_rego_input_events_say_which_are_unverified(tmp_path: Path) -> None:
    from bundler.rego import load_policies
    from tests.test_unverified_evidence import unpaired, unsigned_copy

    (tmp_path / "probe.rego").write_text("""# controls: AU-2
package probe
import rego.v1

deny contains sprintf("%v %v", [e.kind, e.unverified]) if {
  some e in input.events
  e.unverified != null
}
deny contains sprintf("verified %v", [count([e | some e in input.events; e.unverified == null])])
""", encoding="utf-8")
    events = gha_job(1, BASE)
    unpaired(events, of_kind(events, "vault.pki_issue"))
    unsigned_copy(events, "ci.job_started", 21)
    assessment, _ = evaluated(events, policies=load_policies(tmp_path))
    (finding,) = check_of(assessment, "policy:probe").findings
    reasons = finding.description.removeprefix("probe.rego: ").split("; ")
    assert "vault.pki_issue unpaired" in reasons and "ci.job_started unsigned" in reasons
    assert any(r.startswith("verified ") and r != "verified 0" for r in reasons)


@pytest.mark.parametrize("attempt", ["1", True, 1.0, [1]])
def test_a_run_level_approval_whose_attempt_is_no_integer_approves_nothing(attempt: Any) -> None:
    from tests.test_matrix_builds import JOBS, _run_level_approval, matrix

    events = matrix()
    _run_level_approval(events, 10, run_attempt=attempt)
    assessment, _ = evaluated(events)
    gate = sorted(f.id for f in assessment.control("cm-3").findings if f.check == "policy-gate")
    assert gate == [f"policy-gate:no-approval:job-{job}" for job in JOBS], attempt


@pytest.mark.parametrize("attempt", ["2", True, 2.0])
def test_a_run_level_refusal_whose_attempt_is_no_integer_still_refuses(attempt: Any) -> None:
    from tests.test_matrix_builds import JOBS, _run_level_approval, matrix

    events = matrix()
    _run_level_approval(events, 10, succeeded=False, run_attempt=attempt)
    assessment, _ = evaluated(events)
    gate = sorted(f.id for f in assessment.control("cm-3").findings if f.check == "policy-gate")
    assert gate == [f"policy-gate:approval-refused:job-{job}" for job in JOBS], attempt


def test_requests_the_collector_left_unanswered_are_found_in_its_own_entries(tmp_path: Path) -> None:
    """From a real log: two kv reads whose response lines were stripped, one answered, one answered after
    the pairing window. Only the first two are unanswered reads (the finding and the request matched on
    the collector's own id, time, path and operation)."""
    import orjson
    import pandas as pd

    from bundler.evaluate import unanswered_requests
    from bundler.evidence_table import build_table
    from tests.vault_support import collect, events as ledger_events, new_ledger

    def line(kind: str, rid: str, when: str, path: str) -> bytes:
        request = {"id": rid, "operation": "read", "path": path, "mount_type": "kv"}
        record: dict[str, Any] = {"time": when, "type": kind, "auth": {"entity_id": "entity-1"},
                                  "request": request, "error": ""}
        if kind == "response":
            record["response"] = {"data": {"password": "hmac-sha256:00"}}
        return orjson.dumps(record) + b"\n"

    log = tmp_path / "audit.log"
    log.write_bytes(
        line("request", "d0000000-0000-0000-0000-000000000001", "2026-11-20T14:00:00.123456Z", "secret/data/a")
        + line("request", "d0000000-0000-0000-0000-000000000002", "2026-11-20T14:00:01.5Z", "secret/data/b")
        + line("request", "d0000000-0000-0000-0000-000000000003", "2026-11-20T14:00:02Z", "secret/data/c")
        + line("response", "d0000000-0000-0000-0000-000000000003", "2026-11-20T14:00:02.1Z", "secret/data/c")
        + line("request", "d0000000-0000-0000-0000-000000000004", "2026-11-20T14:00:03Z", "secret/data/d")
        + line("request", "d0000000-0000-0000-0000-000000000005", "2026-11-20T14:06:00Z", "secret/data/e")
        + line("response", "d0000000-0000-0000-0000-000000000005", "2026-11-20T14:06:00.1Z", "secret/data/e")
        + line("response", "d0000000-0000-0000-0000-000000000004", "2026-11-20T14:06:01Z", "secret/data/d"))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log], final=True)
        evs = ledger_events(ledger)
    entries = [(seq, item, {"kind": "vault"}) for seq, item in enumerate(evs)]
    table = build_table(entries, as_of=pd.Timestamp("2026-11-21T00:00:00Z"))
    found = unanswered_requests(table)
    paths = sorted(evs[seq]["attrs"]["path"] for seq in found)
    assert paths == ["secret/data/a", "secret/data/b"] and set(found.values()) == {"vault.secret_read"}
    assert [e["attrs"]["side"] for e in evs if e["kind"] == "vault.unpaired"] == ["request"] * 3 + ["response"], evs
