"""Adversarial review of `fedledger collect ci`: an attacker who writes CI job output or webhook
deliveries and wants a non-compliant job to look compliant, or evidence dropped.

Every case runs the real collector into a SQLite ledger on disk (the library behind the command,
or the command in a subprocess where its exit code and output matter). The public samples in
../shared/data are used where they add a real payload; those tests skip when it is absent.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from collector.oidc import TrustedJwks
from collector.sources.ci import CiOptions, github_signature, read_webhook_secrets
from tests.conftest import shared_data
from tests.fedledger_process import SAMPLES_CI, collect_in_process, fedledger, new_ledger

KEYS = SAMPLES_CI / "keys"
SECRET = b"review-ci-webhook-secret-0f3a9"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
AUDIENCE = "sts.amazonaws.com"
IAT = 1795183225  # 2026-11-20T14:00:25Z
USED = "2026-11-20T14:00:27Z"


def options(**overrides: Any) -> CiOptions:
    base: dict[str, Any] = {"jwks": TrustedJwks.from_bytes((KEYS / "jwks.json").read_bytes()),
                            "audiences": (AUDIENCE,), "webhook_secrets": (SECRET,)}
    base.update(overrides)
    return CiOptions(**base)


def token(key_file: str = "oidc-test-key.pem", kid: str = "fedledger-sample-ci-1", **claims: Any) -> str:
    payload = {"iss": GITHUB_ISSUER, "aud": AUDIENCE, "sub": "repo:attacker-org/scratch:ref:refs/heads/main",
               "repository": "attacker-org/scratch", "run_id": "111", "sha": "a1b2c3d4e5f6a7b8c9d0" * 2,
               "iat": IAT, "nbf": IAT, "exp": IAT + 300, **claims}
    key = serialization.load_pem_private_key((KEYS / key_file).read_bytes(), password=None)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="RS256",
                      headers={"kid": kid})


def write_lines(path: Path, docs: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    return path


def entries(ledger: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(ledger) as conn:
        return [orjson.loads(bytes(r[0])) for r in conn.execute("SELECT body FROM entries ORDER BY seq")]


def quarantine(ledger: Path) -> list[tuple[str, int | None, str, str]]:
    with sqlite3.connect(ledger) as conn:
        return [(Path(r[0]).name, r[1], r[2], r[3])
                for r in conn.execute("SELECT location, line, reason, sha256 FROM quarantine ORDER BY rowid")]


def collect(tmp: Path, docs: list[Any], opts: CiOptions | None = None, name: str = "in.jsonl"):  # type: ignore[no-untyped-def]
    path = write_lines(tmp / name, docs)
    ledger, total, tally = collect_in_process(tmp, [str(path)], opts or options())
    return ledger, total, tally


def delivery(body: str, **headers: str) -> dict[str, Any]:
    return {"headers": headers, "body": body}


def github_job_body(job_id: int = 4242, conclusion: str | None = "success", repository: str = "victim-org/prod",
                    completed_at: str = "2026-11-20T14:05:00Z") -> str:
    return json.dumps({"action": "completed", "workflow_job": {
        "id": job_id, "run_id": 222, "status": "completed", "conclusion": conclusion, "completed_at": completed_at,
        "started_at": "2026-11-20T14:00:00Z", "labels": ["self-hosted", "us-gov-west-1"]},
        "repository": {"full_name": repository}})


def signed(body: str, secret: bytes = SECRET, **headers: str) -> dict[str, Any]:
    return delivery(body, **{"X-GitHub-Event": "workflow_job",
                             "X-Hub-Signature-256": github_signature(secret, body.encode()), **headers})


# -- OIDC: a verified token cannot vouch for another repository's job ---------------------------


def test_a_verified_token_from_another_repository_is_not_verified_for_the_victim_job(tmp_path: Path) -> None:
    """The envelope's job_id/repository/run_id used to override the token's verified claims: any
    token the attacker's own workflow obtained, wrapped with the victim job's ids, became a verified
    `oidc_token` step in the victim job's chain of custody."""
    attacker = token()
    ledger, total, tally = collect(tmp_path, [
        {"event_type": "ci.oidc_token", "time": USED, "token": attacker,
         "job_id": "4242", "repository": "victim-org/prod", "run_id": "222"},
        {"event_type": "ci.oidc_token", "time": USED, "token": attacker, "job_id": "4243", "run_id": "222"},
    ])
    assert (total.appended, total.quarantined) == (2, 0)
    assert (tally.tokens_verified, tally.tokens_failed) == (0, 2)
    repo_lie, run_lie = (e["event"] for e in entries(ledger))
    for event in (repo_lie, run_lie):
        assert event["attrs"]["verified"] is False and event["outcome"]["status"] == "failure"
        assert event["attrs"]["signature_valid"] is True  # the token itself is genuine
        assert event["attrs"]["claims"] == {} and event["attrs"]["unverified_claims"]["repository"] == "attacker-org/scratch"
        assert "oidc_subject" not in event["correlation"]
    assert repo_lie["attrs"]["verification_error"] == (
        "the record's repository 'victim-org/prod' is not the token's repository claim 'attacker-org/scratch'")
    assert run_lie["attrs"]["verification_error"] == "the record's run_id '222' is not the token's run_id claim '111'"
    assert attacker.encode() not in (tmp_path / "ledger.db").read_bytes()


def test_a_token_whose_record_agrees_with_its_claims_stays_verified_and_correlates_by_its_claims(tmp_path: Path) -> None:
    sha = "a1b2c3d4e5f6a7b8c9d0" * 2
    ledger, total, tally = collect(tmp_path, [
        # GitHub tokens carry no job id: the record's job id is kept; repository differs only in case
        {"event_type": "ci.oidc_token", "time": USED, "token": token(), "job_id": "4242",
         "repository": "Attacker-Org/Scratch", "run_id": "111", "git_sha": sha[:12].upper()},
    ])
    assert tally.tokens_verified == 1
    (entry,) = entries(ledger)
    event = entry["event"]
    assert event["attrs"]["verified"] is True and "verification_error" not in event["attrs"]
    assert event["correlation"] == {"job_id": "4242", "run_id": "111", "repository": "attacker-org/scratch",
                                    "git_sha": sha, "oidc_subject": "repo:attacker-org/scratch:ref:refs/heads/main"}


def test_a_gitlab_token_cannot_be_given_another_job_id(tmp_path: Path) -> None:
    gitlab = token("gitlab-oidc-test-key.pem", "fedledger-sample-gitlab-1", iss=GITLAB_ISSUER, repository=None,
                   run_id=None, sha=None, sub="project_path:group/app:ref_type:branch:ref:main",
                   project_path="group/app", pipeline_id="700", job_id="9001")
    ledger, _, tally = collect(tmp_path, [
        {"event_type": "ci.oidc_token", "time": USED, "token": gitlab, "job_id": "4242"},
        {"event_type": "ci.oidc_token", "time": USED, "token": gitlab, "job_id": "9001", "run_id": "700",
         "repository": "group/app"},
    ])
    lie, honest = (e["event"] for e in entries(ledger))
    assert lie["attrs"]["verified"] is False
    assert lie["attrs"]["verification_error"] == "the record's job_id '4242' is not the token's job_id claim '9001'"
    assert honest["attrs"]["verified"] is True and honest["correlation"]["job_id"] == "9001"
    assert (tally.tokens_verified, tally.tokens_failed) == (1, 1)


# -- webhooks: a provider's event needs that provider's own proof ------------------------------


def test_a_github_event_is_not_authenticated_by_a_gitlab_token(tmp_path: Path) -> None:
    """GitLab sends its token in clear text in every delivery; the same secret file verified a
    GitHub event that carried only `X-Gitlab-Token`, so anyone who read one GitLab delivery could
    forge signed-looking GitHub job results."""
    body = github_job_body()
    ledger, total, tally = collect(tmp_path, [
        delivery(body, **{"X-GitHub-Event": "workflow_job", "X-Gitlab-Token": SECRET.decode()}),
        delivery(body, **{"X-Gitlab-Token": SECRET.decode()}),  # no event header: GitHub by its shape
        signed(body),  # control: GitHub's own signature
    ])
    assert (total.appended, total.quarantined) == (1, 2)
    assert [q[1:3] for q in quarantine(ledger)] == [(1, "missing-webhook-signature"), (2, "missing-webhook-signature")]
    (entry,) = entries(ledger)
    assert entry["event"]["attrs"]["webhook_signature"] == "verified"
    assert entry["event"]["attrs"]["webhook_signature_kind"] == "x-hub-signature-256"
    assert tally.webhooks_verified == 1


def test_a_gitlab_event_needs_the_gitlab_token(tmp_path: Path) -> None:
    body = json.dumps({"object_kind": "build", "build_id": 9001, "build_status": "success", "pipeline_id": 700,
                       "build_finished_at": "2026-11-20 14:05:00 UTC", "project": {"path_with_namespace": "group/app"}})
    ledger, total, _ = collect(tmp_path, [
        delivery(body, **{"X-Gitlab-Event": "Job Hook", "X-Hub-Signature-256": github_signature(SECRET, body.encode())}),
        delivery(body, **{"X-Gitlab-Event": "Job Hook", "X-Gitlab-Token": SECRET.decode()}),
    ])
    assert (total.appended, total.quarantined) == (1, 1)
    assert [q[1:3] for q in quarantine(ledger)] == [(1, "missing-webhook-signature")]
    assert entries(ledger)[0]["event"]["attrs"]["webhook_signature_kind"] == "x-gitlab-token"


# -- replayed deliveries -----------------------------------------------------------------------


def test_a_delivery_id_replayed_with_another_body_is_a_conflicting_duplicate(tmp_path: Path) -> None:
    """Headers are not signed: a captured, correctly signed body could be replayed under a delivery
    id that already names another delivery, and both became entries."""
    failed = github_job_body(conclusion="failure")
    succeeded = github_job_body(conclusion="success", completed_at="2026-11-20T14:06:00Z")
    guid = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    ledger, total, tally = collect(tmp_path, [
        signed(failed, **{"X-GitHub-Delivery": guid}),
        signed(failed, **{"X-GitHub-Delivery": guid}),  # the same delivery written twice: a duplicate
        signed(succeeded, **{"X-GitHub-Delivery": guid}),
    ])
    assert (total.read, total.appended, total.duplicates, total.quarantined) == (3, 1, 1, 1)
    (entry,) = entries(ledger)
    assert entry["event"]["outcome"]["status"] == "failure"  # the first delivery stays the evidence
    ((name, line, reason, _),) = quarantine(ledger)
    assert (name, line) == ("in.jsonl", 3)
    assert reason == "conflicting-duplicate: entry 0 has this dedup key with other raw bytes"
    assert total.reasons == {"conflicting-duplicate": 1}


def test_the_command_names_a_replayed_delivery_and_exits_1(tmp_path: Path) -> None:
    guid = "72d3162e-cc78-11e3-81ab-4c9367dc0959"
    path = write_lines(tmp_path / "deliveries.jsonl", [
        signed(github_job_body(conclusion="failure"), **{"X-GitHub-Delivery": guid}),
        signed(github_job_body(conclusion="success"), **{"X-GitHub-Delivery": guid}),
    ])
    secret_file = tmp_path / "secret.txt"
    secret_file.write_bytes(SECRET + b"\n")
    ledger = new_ledger(tmp_path)
    human = fedledger("collect", "ci", str(path), "--webhook-secret-file", str(secret_file), ledger=ledger)
    assert human.returncode == 1, human.stderr
    assert (f"quarantined: {path}:2: conflicting-duplicate: entry 0 has this dedup key with other raw bytes"
            in human.stderr.decode())
    assert SECRET not in human.stdout + human.stderr


def test_gitlab_deliveries_of_one_event_to_two_webhooks_are_not_a_conflict(tmp_path: Path) -> None:
    body = json.dumps({"object_kind": "build", "build_id": 9001, "build_status": "success",
                       "build_finished_at": "2026-11-20 14:05:00 UTC", "project": {"path_with_namespace": "g/app"}})
    common = {"X-Gitlab-Event": "Job Hook", "X-Gitlab-Token": SECRET.decode(), "X-Gitlab-Event-UUID": "ev-1"}
    ledger, total, _ = collect(tmp_path, [
        delivery(body, **common, **{"X-Gitlab-Webhook-UUID": "hook-a"}),
        delivery(body, **common, **{"X-Gitlab-Webhook-UUID": "hook-b"}),
    ])
    assert (total.appended, total.quarantined) == (2, 0)


# -- outcomes fail closed ------------------------------------------------------------------------


GENERIC = {"event_type": "ci.job.completed", "timestamp": "2026-11-20T14:05:00Z", "job_id": "4242"}


@pytest.mark.parametrize(("fields", "status", "error"), [
    ({"status": "completed", "conclusion": "failure"}, "failure", "conclusion failure"),
    ({"conclusion": "timed_out"}, "failure", "conclusion timed_out"),
    ({"conclusion": "startup_failure"}, "failure", "conclusion startup_failure"),
    ({"outcome": "timed_out"}, "failure", "outcome timed_out"),
    ({"outcome": "aborted"}, "failure", "outcome aborted"),
    ({"status": "timed_out"}, "failure", "status timed_out"),
    ({"conclusion": "success"}, "success", None),
    ({"outcome": "succeeded"}, "success", None),
    ({"status": "completed"}, "success", None),
    ({}, "success", None),
])
def test_a_generic_job_result_is_a_success_only_when_it_says_so(tmp_path: Path, fields: dict[str, str], status: str,
                                                                 error: str | None) -> None:
    """`conclusion` was not read at all and `outcome` was a short deny-list: a job that failed or
    timed out, reported in GitHub's own words, became a successful `ci.job_completed`."""
    ledger, _, _ = collect(tmp_path, [{**GENERIC, **fields}])
    (entry,) = entries(ledger)
    assert entry["event"]["outcome"] == {"status": status, "error": error}


@pytest.mark.parametrize(("decision", "status"), [
    ("declined", "failure"), ("not_approved", "failure"), ("pending", "failure"), ("rejected", "failure"),
    ("approved", "success"), ("APPROVED", "success"), (None, "success"),
])
def test_an_approval_counts_only_when_its_decision_approves(tmp_path: Path, decision: str | None, status: str) -> None:
    doc = {"event_type": "ci.job.approval", "timestamp": "2026-11-20T14:05:00Z", "job_id": "4242", "approver": "isso"}
    if decision is not None:
        doc["decision"] = decision
    ledger, _, _ = collect(tmp_path, [doc])
    (entry,) = entries(ledger)
    assert entry["event"]["outcome"]["status"] == status


def test_a_completed_github_job_or_run_without_a_conclusion_is_not_a_success(tmp_path: Path) -> None:
    run = json.dumps({"action": "completed", "workflow_run": {"id": 222, "status": "completed", "conclusion": None,
                                                              "updated_at": "2026-11-20T14:06:00Z"}})
    ledger, total, _ = collect(tmp_path, [
        signed(github_job_body(conclusion=None)),
        delivery(run, **{"X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": github_signature(SECRET, run.encode())}),
    ])
    assert total.appended == 2
    for entry in entries(ledger):
        assert entry["event"]["outcome"] == {"status": "failure", "error": "completed without a conclusion"}


def test_an_event_type_with_a_trailing_newline_is_not_a_ci_event(tmp_path: Path) -> None:
    ledger, total, _ = collect(tmp_path, [{**GENERIC, "event_type": "ci.job.completed\n"}])
    assert total.quarantined == 1 and [q[2] for q in quarantine(ledger)] == ["unsupported-event"]


# -- the webhook secret file --------------------------------------------------------------------


def test_a_byte_order_mark_is_not_part_of_the_first_webhook_secret(tmp_path: Path) -> None:
    """A secret file saved by a Windows editor starts with a BOM: it became part of the first secret,
    so the real secret was no longer found in records (stored in clear) and no delivery verified."""
    secrets = read_webhook_secrets(b"\xef\xbb\xbf" + SECRET + b"\r\n", location="secret.txt")
    assert secrets == (SECRET,)
    ledger, total, _ = collect(tmp_path, [
        signed(github_job_body()),
        {**GENERIC, "note": SECRET.decode()},
    ], options(webhook_secrets=secrets))
    assert (total.appended, total.quarantined) == (1, 1)
    assert [q[2] for q in quarantine(ledger)] == ["secret-in-record"]
    assert SECRET not in (tmp_path / "ledger.db").read_bytes()


# -- real payloads (../shared/data) --------------------------------------------------------------


def test_real_github_payloads_in_signed_deliveries_verify_and_cross_provider_proofs_do_not(tmp_path: Path) -> None:
    folder = shared_data("ci_events", "github_webhooks", "workflow_job")
    gitlab_job = shared_data("ci_events", "gitlab_webhooks", "job.json").read_text()
    records: list[Any] = []
    for path in sorted(folder.glob("*.json")):
        body = path.read_text()
        records.append(signed(body, **{"X-GitHub-Delivery": path.name}))
        records.append(delivery(body, **{"X-GitHub-Event": "workflow_job", "X-Gitlab-Token": SECRET.decode()}))
    records.append(delivery(gitlab_job, **{"X-Gitlab-Event": "Job Hook", "X-Gitlab-Token": SECRET.decode()}))
    records.append(delivery(gitlab_job, **{"X-Gitlab-Event": "Job Hook",
                                           "X-Hub-Signature-256": github_signature(SECRET, gitlab_job.encode())}))
    ledger, total, tally = collect(tmp_path, records)
    github = len(list(folder.glob("*.json")))
    assert (total.appended, total.quarantined) == (github + 1, github + 1)
    assert tally.webhooks_verified == github + 1
    assert {q[2] for q in quarantine(ledger)} == {"missing-webhook-signature"}
    kinds = {(e["event"]["attrs"]["provider"], e["event"]["attrs"]["webhook_signature_kind"]) for e in entries(ledger)}
    assert kinds == {("github", "x-hub-signature-256"), ("gitlab", "x-gitlab-token")}


def test_the_github_docs_signature_vector_and_its_tampered_body(tmp_path: Path) -> None:
    vector = json.loads(shared_data("ci_events", "github_webhook_signature",
                                    "github_docs_webhook_signature_vector.json").read_text())
    assert github_signature(vector["secret"].encode(), vector["payload"].encode()) == vector["expected_header_value"]
    body = github_job_body()
    secret = vector["secret"].encode()
    ledger, total, _ = collect(tmp_path, [
        signed(body, secret),
        {"headers": signed(body, secret)["headers"], "body": body.replace("success", "failure")},
    ], options(webhook_secrets=(secret,)))
    assert (total.appended, total.quarantined) == (1, 1)
    assert [q[2] for q in quarantine(ledger)] == ["bad-webhook-signature"]


# -- unsigned provider payloads: dropping the delivery envelope must not defeat signing -----------


def github_started_body(job_id: int = 4242) -> str:
    return json.dumps({"action": "in_progress", "workflow_job": {
        "id": job_id, "run_id": 222, "status": "in_progress", "started_at": "2026-11-20T14:00:00Z",
        "labels": ["self-hosted", "us-gov-west-1"]}, "repository": {"full_name": "victim-org/prod"}})


BUILD_SIGNED = {"event_type": "ci.job.build_signed", "timestamp": "2026-11-20T14:03:00Z", "job_id": "4242",
                "repository": "victim-org/prod", "artifact_digest": "sha256:" + "ab" * 32}


def test_a_bare_payload_records_whether_a_webhook_secret_was_configured(tmp_path: Path) -> None:
    """A bare GitHub/GitLab payload said only `webhook_signature: absent`: nothing told an assessor
    that the run had a secret, i.e. that the payload bypassed a signature check that was in force."""
    bare = json.loads(github_started_body())
    ledger, total, tally = collect(tmp_path, [bare])
    assert (total.appended, total.quarantined) == (1, 0)
    attrs = entries(ledger)[0]["event"]["attrs"]
    assert attrs["webhook_signature"] == "absent" and attrs["webhook_secret_configured"] is True
    assert (tally.webhooks_verified, tally.webhooks_unchecked, tally.webhooks_unsigned) == (0, 0, 1)
    assert tally.to_json()["webhooks_unsigned"] == 1
    (tmp_path / "plain").mkdir()
    plain, _, _ = collect(tmp_path / "plain", [bare], CiOptions())
    assert entries(plain)[0]["event"]["attrs"]["webhook_secret_configured"] is False


def test_require_signed_quarantines_bare_provider_payloads(tmp_path: Path) -> None:
    body = github_started_body()
    ledger, total, tally = collect(tmp_path, [
        json.loads(body),  # bare: no proof at all
        signed(body),  # the same job, delivered and signed
        BUILD_SIGNED,  # a generic event is the job's own statement, not a provider payload
    ], options(require_signed=True))
    assert (total.read, total.appended, total.quarantined) == (3, 2, 1)
    assert [q[1:3] for q in quarantine(ledger)] == [(1, "missing-webhook-signature")]
    assert total.reasons == {"missing-webhook-signature": 1}
    assert tally.webhooks_unsigned == 0 and tally.webhooks_verified == 1


def test_require_signed_without_a_secret_is_refused() -> None:
    from collector.errors import UsageError

    with pytest.raises(UsageError, match="require.signed.* needs a webhook secret"):
        CiOptions(require_signed=True)


def test_the_command_quarantines_a_bare_payload_with_require_signed_and_exits_1(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.jsonl", [json.loads(github_started_body())])
    secret_file = tmp_path / "secret.txt"
    secret_file.write_bytes(SECRET + b"\n")
    ledger = new_ledger(tmp_path)
    accepted = fedledger("collect", "ci", str(path), "--webhook-secret-file", str(secret_file), ledger=ledger)
    assert accepted.returncode == 0, accepted.stderr
    assert "1 unsigned payload(s)" in accepted.stdout.decode()
    assert f"warning: {path}:1: a GitHub payload without a delivery signature" in accepted.stderr.decode()
    other = write_lines(tmp_path / "more.jsonl", [json.loads(github_started_body(4243))])
    refused = fedledger("collect", "ci", str(other), "--webhook-secret-file", str(secret_file), "--require-signed",
                        ledger=ledger)
    assert refused.returncode == 1, refused.stderr
    assert f"quarantined: {other}:1: missing-webhook-signature" in refused.stderr.decode()
    no_secret = fedledger("collect", "ci", str(other), "--require-signed", ledger=ledger)
    assert no_secret.returncode == 2
    (line,) = no_secret.stderr.decode().strip().splitlines()
    assert "--require-signed needs a webhook secret" in line
    for result in (accepted, refused, no_secret):
        assert SECRET not in result.stdout + result.stderr


def test_a_config_ci_source_takes_require_signed(tmp_path: Path) -> None:
    from tests.ops_workspace import make_workspace

    (tmp_path / "ci").mkdir()
    write_lines(tmp_path / "ci" / "events.jsonl", [json.loads(github_started_body())])
    secret = tmp_path / "hook.secret"
    secret.write_bytes(SECRET + b"\n")
    secret.chmod(0o600)
    ws = make_workspace(tmp_path, '[[sources]]\nname = "c"\nkind = "ci"\nlocation = "ci/"\n'
                                  'webhook_secret_file = "hook.secret"\nrequire_signed = true\n')
    result = ws.cli("--ledger", str(ws.ledger), "run", "--config", str(ws.config))
    # `run` counts and logs quarantined records without failing (docs/scheduling.md)
    assert result.exit_code == 0, result.output
    assert '"reasons":{"missing-webhook-signature":1}' in result.output
    with sqlite3.connect(ws.ledger) as conn:
        assert [r[0] for r in conn.execute("SELECT reason FROM quarantine")] == ["missing-webhook-signature"]


def _assess(ledger: Path):  # type: ignore[no-untyped-def]
    from bundler.evaluate import evaluate
    from bundler.evidence_table import entry_triples

    return evaluate(entry_triples(entries(ledger)), as_of="2026-11-21T00:00:00Z", origin="test.agency.gov/ci")


def _check(assessment: Any, name: str) -> Any:
    return next(c for c in assessment.checks if c.check == name)


def test_an_unsigned_payload_collected_with_a_secret_is_an_audit_trail_finding_and_no_custody_step(tmp_path: Path) -> None:
    """The bundler never read `webhook_signature`: a bare payload written into the inbox was a
    trigger step of the job's chain of custody exactly as a signed delivery was."""
    ledger, _, _ = collect(tmp_path, [json.loads(github_started_body()), BUILD_SIGNED])
    assessment = _assess(ledger)
    integrity = _check(assessment, "audit-trail-integrity")
    (finding,) = [f for f in integrity.findings if f.id == "audit-trail-integrity:ci.unsigned-webhook-payload"]
    assert finding.seqs == (0,) and finding.severity == "moderate" and set(finding.controls) == {"au-9", "au-12"}
    assert integrity.status == "not-satisfied"
    (story_,) = [s for s in assessment.custody if s.job_id == "4242"]
    trigger = story_.steps[0]
    assert trigger.step == "trigger" and trigger.present is False and trigger.unsigned == (0,)
    assert "not authenticated" in trigger.detail and "webhook secret was configured" in trigger.detail
    assert any(f.id == "custody-missing:trigger:job-4242" for f in story_.findings)


def test_a_signed_delivery_is_the_step_and_the_unsigned_copy_is_labelled(tmp_path: Path) -> None:
    body = github_started_body()
    ledger, _, _ = collect(tmp_path, [json.loads(body), signed(body), BUILD_SIGNED])
    assessment = _assess(ledger)
    (story_,) = [s for s in assessment.custody if s.job_id == "4242"]
    trigger = story_.steps[0]
    assert trigger.present is True and trigger.seqs == (0, 1) and trigger.unsigned == (0,)
    assert not any(f.id.startswith("custody-missing:trigger") for f in story_.findings)
    integrity = _check(assessment, "audit-trail-integrity")
    assert [f.seqs for f in integrity.findings if f.id.endswith("unsigned-webhook-payload")] == [(0,)]


def test_without_a_secret_unsigned_payloads_count_but_are_labelled_not_authenticated(tmp_path: Path) -> None:
    body = github_started_body()
    ledger, _, _ = collect(tmp_path, [json.loads(body), delivery(body, **{"X-GitHub-Event": "workflow_job"}),
                                      BUILD_SIGNED], CiOptions())
    assessment = _assess(ledger)
    assert not [f for f in _check(assessment, "audit-trail-integrity").findings
                if f.id.endswith("unsigned-webhook-payload")]
    (story_,) = [s for s in assessment.custody if s.job_id == "4242"]
    trigger = story_.steps[0]
    assert trigger.present is True and trigger.unsigned == ()
    assert trigger.detail.startswith("not authenticated: ")


def test_the_sample_storys_bare_payload_is_reported_and_labelled(tmp_path: Path) -> None:
    from tests.fedledger_process import story_ci_options

    ledger, total, tally = collect_in_process(tmp_path, [str(SAMPLES_CI / "events")], story_ci_options())
    assert (total.appended, total.quarantined, tally.webhooks_verified, tally.webhooks_unsigned) == (15, 0, 7, 1)
    stored = entries(ledger)
    (bare,) = [e["seq"] for e in stored if e["event"]["attrs"].get("webhook_signature") == "absent"]
    assessment = _assess(ledger)
    (finding,) = [f for f in _check(assessment, "audit-trail-integrity").findings
                  if f.id.endswith("unsigned-webhook-payload")]
    assert finding.seqs == (bare,)
    story_ = next(s for s in assessment.custody if s.job_id == "31415926535")
    trigger = story_.steps[0]
    assert trigger.present is True and trigger.unsigned == (bare,) and bare in trigger.seqs


# -- JWKS keys for encryption never verify a signature (RFC 7517 section 4.2, 4.3) ----------------


def _jwks_with(**changes: Any) -> TrustedJwks:
    doc = json.loads((KEYS / "jwks.json").read_bytes())
    for key in doc["keys"]:
        if key["kid"] == "fedledger-sample-ci-1":
            for name, value in changes.items():
                if value is None:
                    key.pop(name, None)
                else:
                    key[name] = value
    return TrustedJwks.from_bytes(json.dumps(doc).encode())


def _verify(jwks: TrustedJwks):  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    from collector.oidc import verify_id_token

    return verify_id_token(token(), jwks, at=datetime(2026, 11, 20, 14, 0, 27, tzinfo=timezone.utc),
                           audiences=(AUDIENCE,))


@pytest.mark.parametrize(("changes", "error"), [
    ({"use": "enc", "key_ops": None},
     "the JWKS key with kid 'fedledger-sample-ci-1' is for encryption (\"use\": \"enc\"), not for verifying signatures"),
    ({"use": None, "key_ops": ["encrypt", "wrapKey"]},
     "the JWKS key with kid 'fedledger-sample-ci-1' does not allow \"verify\" (key_ops: encrypt, wrapKey)"),
    ({"use": "sig", "key_ops": ["sign"]},
     "the JWKS key with kid 'fedledger-sample-ci-1' does not allow \"verify\" (key_ops: sign)"),
])
def test_a_jwks_key_not_for_signature_verification_never_verifies_a_token(changes: dict[str, Any], error: str) -> None:
    result = _verify(_jwks_with(**changes))
    assert result.verified is False and result.signature_valid is False
    assert result.error == error
    assert result.claims == {}


@pytest.mark.parametrize("changes", [{"use": "sig", "key_ops": None}, {"use": None, "key_ops": ["verify"]},
                                     {"use": None, "key_ops": None}])
def test_a_signature_key_still_verifies(changes: dict[str, Any]) -> None:
    assert _verify(_jwks_with(**changes)).verified is True


def test_an_encryption_key_collected_through_the_source_is_recorded_not_verified(tmp_path: Path) -> None:
    ledger, _, tally = collect(tmp_path, [{"event_type": "ci.oidc_token", "time": USED, "token": token()}],
                               options(jwks=_jwks_with(use="enc", key_ops=None)))
    assert (tally.tokens_verified, tally.tokens_failed) == (0, 1)
    attrs = entries(ledger)[0]["event"]["attrs"]
    assert attrs["verified"] is False and "for encryption" in attrs["verification_error"]


# -- webhook secrets too short to search for (the secret-leak scan) -------------------------------


def test_a_webhook_secret_shorter_than_4_bytes_is_refused_with_its_file_and_line() -> None:
    from collector.errors import MalformedInput

    with pytest.raises(MalformedInput) as info:
        read_webhook_secrets(b"a-long-enough-webhook-secret\r\n\nZq9\n", location="hook.secret")
    message = str(info.value)
    assert message.startswith("hook.secret:3: ") and "shorter than 4 bytes" in message
    assert "Zq9" not in message and "a-long-enough" not in message
    with pytest.raises(MalformedInput, match="^hook.secret:1: "):
        read_webhook_secrets(b"\xef\xbb\xbfab\n", location="hook.secret")
    assert read_webhook_secrets(b"Zq9x\n", location="hook.secret") == (b"Zq9x",)


def test_library_options_refuse_a_short_secret_and_a_4_byte_secret_is_searched_for(tmp_path: Path) -> None:
    from collector.errors import UsageError

    with pytest.raises(UsageError, match="shorter than 4 bytes"):
        CiOptions(webhook_secrets=(SECRET, b"Zq9"))
    ledger, total, _ = collect(tmp_path, [{**GENERIC, "note": "value Zq9x here"}], options(webhook_secrets=(b"Zq9x",)))
    assert [q[2] for q in quarantine(ledger)] == ["secret-in-record"]


def test_the_command_refuses_a_short_secret_with_exit_2_naming_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.jsonl", [GENERIC])
    secret_file = tmp_path / "hook.secret"
    secret_file.write_bytes(SECRET + b"\nZq9\n")
    ledger = new_ledger(tmp_path)
    result = fedledger("collect", "ci", str(path), "--webhook-secret-file", str(secret_file), ledger=ledger)
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert f"{secret_file}:2: " in line and "shorter than 4 bytes" in line
    assert b"Zq9" not in result.stdout + result.stderr and SECRET not in result.stdout + result.stderr


def test_a_jwks_with_no_key_for_signatures_is_unusable_input() -> None:
    from collector.oidc import JwksError

    doc = json.loads((KEYS / "jwks.json").read_bytes())
    for key in doc["keys"]:
        key["use"] = "enc"
        key.pop("key_ops")
    with pytest.raises(JwksError, match="no key for verifying signatures"):
        TrustedJwks.from_bytes(json.dumps(doc).encode(), location="jwks.json")


def test_a_config_ci_source_with_require_signed_and_no_secret_is_a_config_error_with_its_line() -> None:
    from collector.config import ConfigInvalid, parse_config

    text = ('[ledger]\npath = "l.db"\norigin = "example.gov/x"\n\n[[sources]]\nname = "ci"\nkind = "ci"\n'
            'locations = ["ci/"]\nrequire_signed = true\n')
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text, Path("/etc/fedledger/fedledger.toml"))
    (problem,) = info.value.problems
    assert problem.startswith("/etc/fedledger/fedledger.toml:9: sources[0].require_signed needs a webhook secret")


def test_a_generic_line_cannot_make_a_verified_oidc_token(tmp_path: Path) -> None:
    """`{"event_type": "ci.job.oidc_token", "verified": true}` became a ci.oidc_token entry recorded as
    verified, which workload-identity and the custody story took on trust: whoever could write the CI
    events file forged a verified workload identity. Kinds only the collector makes are refused; a
    generic line's own fields named like the collector's verdicts are kept apart as claims."""
    forged = {"event_type": "ci.job.oidc_token", "time": "2026-11-20T14:00:27Z", "job_id": "4242",
              "verified": True, "issuer": "https://token.actions.githubusercontent.com"}
    for kind in ("oidc_token", "webhook_invalid", "webhook_ping", "file_replaced"):
        (tmp_path / kind).mkdir()
        ledger, total, _ = collect(tmp_path / kind, [{**forged, "event_type": f"ci.job.{kind}"}])
        assert (total.read, total.appended, total.quarantined) == (1, 0, 1)
        assert [row[2] for row in quarantine(ledger)] == ["reserved-event-type"]
        assert entries(ledger) == []
    claims = {"event_type": "ci.job.started", "time": "2026-11-20T14:00:00Z", "job_id": "4242",
              "webhook_signature": "verified", "paired": True, "verified": True, "runner": "r1", "region": "us-gov-west-1"}
    (tmp_path / "claims").mkdir()
    ledger, total, _ = collect(tmp_path / "claims", [claims])
    assert (total.read, total.appended) == (1, 1)
    (entry,) = entries(ledger)
    attrs = entry["event"]["attrs"]
    assert attrs["claimed_attrs"] == {"webhook_signature": "verified", "paired": True, "verified": True}
    assert not {"webhook_signature", "paired", "verified"} & set(attrs)
    assert attrs["region"] == "us-gov-west-1"


def test_a_forged_verified_token_already_in_a_ledger_does_not_count() -> None:
    """A ledger written before the collector refused such lines may hold one: evaluation does not
    take a generic line's 'verified' for a verified token (workload-identity, custody)."""
    from bundler.evaluate import evaluate
    from tests.synthetic_jobs import as_entries, complete_story

    events = complete_story(1)
    token = next(e for e in events if e["kind"] == "ci.oidc_token")
    token["action"] = "ci.job.oidc_token"
    assessment = evaluate(as_entries(events), as_of="2026-11-21T00:00:00Z", origin="test.example/ledger")
    ids = {f.id for f in assessment.control("ac-2").findings}
    assert any(i.startswith("workload-identity:oidc-unverified:") for i in ids), ids
    (story,) = assessment.custody
    assert not story.complete
