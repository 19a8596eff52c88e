"""Rego decisions shared out over worker processes give the same checks as in-process evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

import bundler.rego as rego
from bundler.evaluate import evaluate
from bundler.rego import decide_all, load_policies, load_policy
from tests.synthetic_jobs import as_entries, complete_story, find

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-21T00:00:00Z"


def test_worker_processes_decide_like_this_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "artifacts.rego").write_text("""package supply
import rego.v1

controls := ["SR-4"]

# inputs: artifact, job
deny contains msg if {
  some a in input.artifact.attestations
  a.object_lock_mode != "COMPLIANCE"
  msg := sprintf("attestation %v is not under compliance-mode Object Lock", [a.seq])
}
""", encoding="utf-8")
    policies = [*load_policies(REPO / "samples" / "policies"), load_policy(tmp_path / "artifacts.rego")]
    events = complete_story(4)
    find(events, "ci.job_started", 1)["attrs"]["runner_region"] = "us-gov-east-1"
    find(events, "attestation.signed", 2)["attrs"]["object_lock_mode"] = "GOVERNANCE"
    entries = as_entries(events)
    monkeypatch.setattr(rego, "PARALLEL_MIN_INPUTS", 10**9)
    alone = evaluate(entries, as_of=AS_OF, origin="t", policies=policies)
    monkeypatch.setattr(rego, "PARALLEL_MIN_INPUTS", 1)
    shared = evaluate(entries, as_of=AS_OF, origin="t", policies=policies)
    assert shared == alone
    assert any(c.findings for c in shared.checks if c.kind == "policy")


def test_decide_all_keeps_document_order(monkeypatch: pytest.MonkeyPatch) -> None:
    (policy,) = load_policies(REPO / "samples" / "policies")
    good = {"artifact": {"signed": True}, "runner": {"region": "us-gov-west-1"}, "credentials": {"type": "ephemeral"}}
    bad = {**good, "runner": {"region": "us-east-1"}}
    documents = [good, bad, bad, good, good, bad, good]
    monkeypatch.setattr(rego, "PARALLEL_MIN_INPUTS", 1)
    assert decide_all(policy, documents, processes=2) == decide_all(policy, documents, processes=1)
    assert [ok for ok, _ in decide_all(policy, documents, processes=2)] == [d is good for d in documents]
