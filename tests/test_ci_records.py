"""One record at a time: redaction rules, input shapes, and a fuzz property (never crash, always decide)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.canonical import canonical_bytes
from collector.sources.ci import CiOptions, github_signature, record_for

EVENT = {"event_type": "ci.job.started", "timestamp": "2026-11-20T14:00:20Z", "job_id": "31415926535"}


def record(doc: object, options: CiOptions = CiOptions()):  # type: ignore[no-untyped-def]
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return record_for(data, "test.jsonl", 1, options)


def test_opaque_credentials_under_credential_keys_are_hashed() -> None:
    rec = record({**EVENT, "runner_token": "AAAABBBBCCCCDDDD-opaque", "headers": {"Authorization": "Bearer xyz123456"},
                  "token_ttl": 1800, "token_type": "batch", "access_key_class": "temporary",
                  "access_key_id": "ASIAQEXAMPLE7CIJOB01", "secret_path": "kv/data/ci"})
    assert rec.event is not None
    attrs = rec.event["attrs"]
    assert attrs["runner_token"] == {"sha256": hashlib.sha256(b"AAAABBBBCCCCDDDD-opaque").hexdigest(), "size": 23,
                                     "redacted": "secret"}
    assert attrs["headers"]["Authorization"]["redacted"] == "secret"
    assert attrs["token_ttl"] == 1800 and attrs["token_type"] == "batch"
    assert attrs["access_key_class"] == "temporary"
    assert rec.event["correlation"]["access_key_id"] == "ASIAQEXAMPLE7CIJOB01"
    assert attrs["secret_path"] == "kv/data/ci"
    assert b"opaque" not in rec.raw and b"xyz123456" not in rec.raw


def test_hashes_already_given_are_kept_as_they_are() -> None:
    digest = "sha256:" + "ab" * 32
    rec = record({**EVENT, "event_type": "ci.job.inference_call", "payload": digest, "response": {"sha256": "cd" * 32,
                                                                                                  "size": 12}})
    assert rec.event is not None and rec.source_extra == {}
    assert rec.event["attrs"]["payload"] == digest


def test_floats_never_reach_an_event() -> None:
    rec = record({**EVENT, "latency": 0.25, "nested": {"ratio": 1.5}})
    assert rec.event is not None
    assert rec.event["attrs"]["latency"] == "0.25" and rec.event["attrs"]["nested"]["ratio"] == "1.5"
    canonical_bytes(rec.event)


def test_unknown_event_types_and_non_objects_are_quarantined() -> None:
    assert record({**EVENT, "event_type": "deploy.started"}).reason == "unsupported-event"
    assert record([1, 2]).reason == "not-an-object"
    assert record({**EVENT, "timestamp": "yesterday"}).reason == "bad-time"


def test_policy_deny_and_rejected_approval_are_failures() -> None:
    deny = record({**EVENT, "event_type": "ci.job.policy_decision", "policy": "gate", "decision": "DENY"})
    assert deny.event is not None
    assert deny.event["attrs"]["decision"] == "deny" and deny.event["outcome"]["status"] == "failure"
    rejected = record({**EVENT, "event_type": "ci.job.approval", "approver": "isso", "decision": "rejected"})
    assert rejected.event is not None and rejected.event["outcome"]["status"] == "failure"


def test_cert_serial_and_digest_are_normalized() -> None:
    rec = record({**EVENT, "event_type": "ci.job.build_signed", "cert_serial": "3A5F910C",
                  "artifact_hash": "AB" * 32})
    assert rec.event is not None
    assert rec.event["correlation"]["cert_serial"] == "3a:5f:91:0c"
    assert rec.event["correlation"]["artifact_digest"] == "sha256:" + "ab" * 32


def test_delivery_body_base64_and_headers_kept() -> None:
    payload = json.dumps({"action": "queued", "workflow_job": {"id": 1, "run_id": 2, "created_at": "2026-11-20T14:00:00Z"},
                          "repository": {"full_name": "o/r"}}).encode()
    import base64

    secret = b"s3cret-value"
    delivery = {"headers": {"X-GitHub-Event": "workflow_job", "X-Hub-Signature-256": github_signature(secret, payload),
                            "X-GitHub-Delivery": "d-1", "Cookie": "session=abc"},
                "body_base64": base64.b64encode(payload).decode()}
    rec = record(delivery, CiOptions(webhook_secrets=(secret,)))
    assert rec.event is not None, rec.reason
    assert rec.event["attrs"]["webhook_signature"] == "verified" and rec.event["attrs"]["delivery_id"] == "d-1"
    assert rec.source_extra["dropped_headers"] == ["Cookie"] and b"session=abc" not in rec.raw
    stored = json.loads(rec.raw)
    assert stored["body"] == payload.decode()  # the exact body, re-checkable by a holder of the secret


def test_a_record_holding_the_webhook_secret_is_quarantined() -> None:
    assert record({**EVENT, "note": "the secret is s3cret-value"},
                  CiOptions(webhook_secrets=(b"s3cret-value",))).reason == "secret-in-record"


def test_bare_token_line_without_time_uses_iat() -> None:
    import jwt

    token = jwt.encode({"iss": "x", "iat": 1795183225, "exp": 1795183525, "sub": "s"}, "k" * 32, algorithm="HS256")
    rec = record_for(token.encode(), "t.jwt", None, CiOptions())
    assert rec.event is not None
    assert rec.event["attrs"]["time_source"] == "iat" and rec.event["attrs"]["verified"] is False
    assert token.encode() not in rec.raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30).map(lambda v: json.dumps({**EVENT, "x": v}).encode()))
def test_any_input_becomes_an_entry_or_a_quarantine(data: bytes) -> None:
    rec = record_for(data, "fuzz.jsonl", 1, CiOptions(webhook_secrets=(b"fuzz-secret",)))
    assert (rec.event is None) == (rec.reason is not None)
    if rec.event is not None:
        canonical_bytes(rec.event)
        assert rec.raw


@pytest.mark.slow
@settings(max_examples=5000, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_slow(data: bytes) -> None:
    rec = record_for(data, "fuzz.jsonl", 1, CiOptions())
    assert (rec.event is None) == (rec.reason is not None)


def test_stdin_stream_commits_in_batches() -> None:
    import io

    from collector.evidence import CursorMark
    from collector.sources.ci import CiEvents

    lines = b"".join(json.dumps({**EVENT, "n": i}).encode() + b"\n" for i in range(2500))
    items = list(CiEvents(None, CiOptions(), stream=io.BytesIO(lines)).collect({}))
    marks = [i for i, item in enumerate(items) if isinstance(item, CursorMark)]
    assert len(items) - len(marks) == 2500
    assert len(marks) == 3 and marks[-1] == len(items) - 1


def test_lists_objects_and_numbers_under_credential_keys_are_hashed() -> None:
    """Only strings under a credential key were hashed: ``"password": {"value": ...}``,
    ``"token": [...]`` and ``"password": 27182818`` reached the event and the stored raw bytes."""
    rec = record({**EVENT, "password": {"value": "canary-obj"}, "token": ["canary-list"], "pin_password": 27182818,
                  "credentials": {"user": "u", "pass": "canary-cred"}, "token_ttl": 1800, "empty_secret": [],
                  "api_key": {"sha256": "ab" * 32, "size": 3}})
    assert rec.event is not None and rec.reason is None
    attrs = rec.event["attrs"]
    for key, value in (("password", {"value": "canary-obj"}), ("token", ["canary-list"]),
                       ("pin_password", 27182818), ("credentials", {"user": "u", "pass": "canary-cred"})):
        data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        assert attrs[key] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "redacted": "secret"}
    assert attrs["token_ttl"] == 1800 and attrs["empty_secret"] == []
    assert attrs["api_key"] == {"sha256": "ab" * 32, "size": 3}
    assert rec.source_extra["raw_form"] == "redacted"
    for canary in (b"canary", b"27182818"):
        assert canary not in rec.raw and canary not in canonical_bytes(rec.event)


def test_a_generic_event_cannot_claim_an_oidc_subject_as_correlation() -> None:
    """``oidc_subject`` correlates only from a verified token (docs/collect-ci.md); a generic event's
    own ``oidc_subject`` field is kept as an attr, not put among the correlation keys."""
    rec = record({**EVENT, "oidc_subject": "repo:someone-else/repo:ref:refs/heads/main"})
    assert rec.event is not None
    assert "oidc_subject" not in rec.event["correlation"]
    assert rec.event["attrs"]["oidc_subject"] == "repo:someone-else/repo:ref:refs/heads/main"
    assert rec.event["correlation"]["job_id"] == EVENT["job_id"]


def test_password_keys_the_credential_words_missed_are_hashed() -> None:
    """``DB_PASS``-style keys (``*_pass``, ``pwd``, ``*_pwd``) reached the event and the evidence store;
    ordinary keys that merely contain those letters stay as they are."""
    secrets = {"DB_PASS": "canary-1", "smtpPass": "canary-2", "pass": "canary-3", "pwd": "canary-4",
               "db_pwd": "canary-5", "passwd": "canary-6", "passphrase": "canary-7", "ldap_passwd": "canary-8"}
    ordinary = {"passed": True, "password_policy_name": "strong", "compass": "north", "pass_rate": "0.97",
                "bypass": "none", "passes": 3, "password_present": True}
    rec = record({**EVENT, **secrets, **ordinary})
    assert rec.event is not None and rec.reason is None
    attrs = rec.event["attrs"]
    for key, value in secrets.items():
        assert attrs[key] == {"sha256": hashlib.sha256(value.encode()).hexdigest(), "size": len(value),
                              "redacted": "secret"}, key
    for key, value in ordinary.items():
        assert attrs[key] == value, key
    assert b"canary" not in rec.raw and b"canary" not in canonical_bytes(rec.event)


def test_passwords_in_urls_are_replaced_by_their_hash_in_any_string_field() -> None:
    """``https://user:pass@host/...`` in any string field reached the ledger and the evidence store."""
    marker = "redacted-sha256-" + hashlib.sha256(b"canary-pw").hexdigest()
    rec = record({**EVENT, "repo_url": "https://gitlab-ci-token:canary-pw@gitlab.example/group/app.git",
                  "notes": ["cloned from https://ci:canary-pw@git.example:8443/app?x=1 at 14:00"],
                  "registry": {"mirror": "postgresql://app:canary-pw@db.internal:5432/app"},
                  "homepage": "https://gitlab.example/group/app", "ssh": "ssh://git@github.com/agency/app.git",
                  "template": "postgresql://{{username}}:{{password}}@db:5432/app"})
    assert rec.event is not None and rec.reason is None
    attrs = rec.event["attrs"]
    assert attrs["repo_url"] == f"https://gitlab-ci-token:{marker}@gitlab.example/group/app.git"
    assert attrs["notes"] == [f"cloned from https://ci:{marker}@git.example:8443/app?x=1 at 14:00"]
    assert attrs["registry"]["mirror"] == f"postgresql://app:{marker}@db.internal:5432/app"
    assert attrs["homepage"] == "https://gitlab.example/group/app"
    assert attrs["ssh"] == "ssh://git@github.com/agency/app.git"
    assert attrs["template"] == "postgresql://{{username}}:{{password}}@db:5432/app"
    assert rec.source_extra["raw_form"] == "redacted" and "$.repo_url" in rec.source_extra["redacted"]
    assert b"canary" not in rec.raw and b"canary" not in canonical_bytes(rec.event)
    again = record(rec.raw)  # the stored form is stable: the marker is not hashed again
    assert again.event is not None and again.event["attrs"]["repo_url"] == attrs["repo_url"]


def test_a_url_password_in_a_signed_delivery_body_is_redacted() -> None:
    secret = b"hook-secret"
    payload = json.loads(json.dumps(GITHUB_JOB))
    payload["workflow_job"]["html_url"] = "https://ci:canary-pw@github.example/agency/app/actions/runs/1"
    body = json.dumps(payload)
    delivery = {"headers": {"X-GitHub-Event": "workflow_job", "X-Hub-Signature-256": github_signature(secret, body.encode())},
                "body": body}
    rec = record(delivery, CiOptions(webhook_secrets=(secret,)))
    assert rec.event is not None and rec.reason is None
    assert b"canary" not in rec.raw and b"canary" not in canonical_bytes(rec.event)
    assert rec.event["attrs"]["html_url"].startswith("https://ci:redacted-sha256-")


def test_github_secret_scanning_settings_are_not_taken_for_credentials() -> None:
    """GitHub's ``repository.security_and_analysis.secret_scanning*`` objects (``{"status": "enabled"}``)
    were hashed as credential-like objects, so a webhook body carrying no secret was not stored exact."""
    payload = json.loads(json.dumps(GITHUB_JOB))
    payload["repository"]["security_and_analysis"] = {
        "advanced_security": {"status": "enabled"}, "secret_scanning": {"status": "enabled"},
        "secret_scanning_push_protection": {"status": "disabled"},
        "secret_scanning_non_provider_patterns": {"status": "disabled"},
        "secret_scanning_validity_checks": {"status": "enabled"},
    }
    data = json.dumps(payload).encode()
    rec = record(data)
    assert rec.event is not None and rec.reason is None
    assert rec.raw == data and not rec.source_extra  # exact bytes, nothing redacted
    still = record({**EVENT, "secret_scanning": {"status": "enabled", "token": "canary"}, "client_secret": {"status": "x"}})
    assert still.event is not None and b"canary" not in still.raw
    assert still.event["attrs"]["client_secret"]["redacted"] == "secret"


GITHUB_JOB = {
    "action": "completed",
    "workflow_job": {"id": 1, "run_id": 2, "head_sha": "a" * 40, "status": "completed", "conclusion": "success",
                     "name": "build", "created_at": "2026-11-20T14:00:00Z", "started_at": "2026-11-20T14:00:05Z",
                     "completed_at": "2026-11-20T14:03:00Z", "labels": ["self-hosted"], "runner_name": "r1",
                     "html_url": "https://github.example/agency/app/actions/runs/2/job/1"},
    "repository": {"full_name": "agency/app"},
    "sender": {"login": "octocat"},
}
