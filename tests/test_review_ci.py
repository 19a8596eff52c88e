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
