"""Vault audit collector: normalization, pairing, quarantine reasons, HMAC, public examples."""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.canonical import canonical_bytes
from collector.sources.vault import (
    TOKEN_SHAPE_TEXT,
    SecretScanner,
    UnhashedSecret,
    VaultAuditLog,
    audit_hmac,
    classify,
    duration_seconds,
    normalize_serial,
)
from samples.make import story
from tests.conftest import shared_data
from tests.vault_support import SAMPLES, collect, events, new_ledger, run_cli

COMMON_FIELDS = {"time", "kind", "actor", "action", "resource", "outcome", "correlation", "attrs"}


def by_kind(evs: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for event in evs:
        found.setdefault(event["kind"], []).append(event)
    return found


def test_story_log_normalizes_every_kind(tmp_path: Path) -> None:
    with new_ledger(tmp_path) as ledger:
        summary, source = collect(ledger, [SAMPLES / "audit.log"])
        evs = events(ledger)
    assert (summary.read, summary.appended, summary.quarantined, source.findings) == (28, 28, 0, 0)
    kinds = by_kind(evs)
    for kind in ("vault.login", "vault.token_create", "vault.token_renew", "vault.secret_read", "vault.secret_write",
                 "vault.pki_issue", "vault.policy_change", "vault.audit_change", "vault.request",
                 "vault.request_received"):
        assert kind in kinds, kind
    assert len(kinds["vault.request_received"]) == 14
    for event in evs:
        assert set(event) == COMMON_FIELDS
        assert event["time"].endswith("Z")
        assert event["outcome"]["status"] in ("success", "failure")
        assert all(isinstance(v, str) for v in event["correlation"].values())
        canonical_bytes(event)  # no floats, nothing JCS cannot hold

    job_login = next(e for e in kinds["vault.login"] if e["attrs"]["auth_method"] == "jwt")
    assert job_login["attrs"]["role"] == story.VAULT_ROLE
    assert job_login["attrs"]["policies"] == ["ci-inference", "default"]
    assert job_login["attrs"]["token_ttl"] == story.CERT_TTL_SECONDS
    assert job_login["attrs"]["token_type"] == "service"
    assert job_login["correlation"] == {
        "job_id": str(story.JOB_ID), "run_id": str(story.RUN_ID), "repository": story.REPOSITORY,
        "git_sha": story.GIT_SHA, "oidc_subject": story.OIDC_SUBJECT, "vault_entity_id": story.VAULT_ENTITY_ID}
    assert job_login["time"].startswith(story.T_VAULT_LOGIN[:19])

    (pki,) = kinds["vault.pki_issue"]
    assert pki["attrs"]["role"] == story.VAULT_PKI_ROLE
    assert pki["attrs"]["common_name"] == story.CERT_COMMON_NAME
    assert pki["attrs"]["ttl"] == story.CERT_TTL_SECONDS
    assert pki["attrs"]["cert_serial"] == story.CERT_SERIAL
    assert pki["correlation"]["cert_serial"] == story.CERT_SERIAL
    assert pki["correlation"]["job_id"] == str(story.JOB_ID)

    reads = kinds["vault.secret_read"]
    assert {e["attrs"]["mount_type"] for e in reads} == {"kv", "database"}
    assert {e["attrs"].get("kv_version") for e in reads if e["attrs"]["mount_type"] == "kv"} == {1, 2}
    denied = [e for e in reads if e["outcome"]["status"] == "failure"]
    assert len(denied) == 1 and denied[0]["attrs"]["permission_denied"] is True
    assert "permission denied" in denied[0]["outcome"]["error"]
    (write,) = kinds["vault.secret_write"]
    assert write["attrs"]["path"] == "secret/data/ci/claims-model/registry"
    (audit,) = kinds["vault.audit_change"]
    assert audit["attrs"]["change"] == "enable" and audit["attrs"]["device"] == "file-siem"
    (policy,) = kinds["vault.policy_change"]
    assert policy["attrs"]["policy"] == story.VAULT_ROLE and policy["attrs"]["operation"] == "update"
    assert all(e["attrs"]["paired"] for e in evs if e["kind"] != "vault.request_received")


@pytest.mark.parametrize(
    ("path", "operation", "mount_type", "kind"),
    [
        ("auth/jwt/login", "update", "jwt", "vault.login"),
        ("auth/userpass/login/bob", "update", "userpass", "vault.login"),
        ("auth/approle/login", "update", None, "vault.login"),
        ("auth/oidc/oidc/callback", "read", "oidc", "vault.login"),
        ("auth/jwt/role/ci", "update", "jwt", "vault.request"),
        ("auth/token/create", "update", "token", "vault.token_create"),
        ("auth/token/create-orphan", "update", "token", "vault.token_create"),
        ("auth/token/create/ci-role", "update", "token", "vault.token_create"),
        ("auth/token/renew-self", "update", "token", "vault.token_renew"),
        ("auth/token/renew-accessor", "update", "token", "vault.token_renew"),
        ("auth/token/lookup-self", "read", "token", "vault.request"),
        ("secret/data/app/db", "read", "kv", "vault.secret_read"),
        ("secret/data/app/db", "update", "kv", "vault.secret_write"),
        ("secret/data/app/db", "delete", "kv", "vault.secret_write"),
        ("secret/metadata/app/db", "read", "kv", "vault.request"),
        ("secret/metadata/app", "list", "kv", "vault.request"),
        ("kv/app/db", "read", "kv", "vault.secret_read"),
        ("kv/app/db", "create", "kv", "vault.secret_write"),
        ("secret/app/db", "read", None, "vault.secret_read"),
        ("database/creds/ro", "read", "database", "vault.secret_read"),
        ("database/static-creds/app", "read", "database", "vault.secret_read"),
        ("database/config/pg", "update", "database", "vault.secret_write"),
        ("database/roles/ro", "read", "database", "vault.request"),
        ("aws/creds/deploy", "read", "aws", "vault.secret_read"),
        ("aws/sts/deploy", "update", "aws", "vault.secret_read"),
        ("gcp/roleset/ci/token", "read", "gcp", "vault.secret_read"),
        ("azure/creds/ci", "read", "azure", "vault.secret_read"),
        ("pki/issue/ci-job", "update", "pki", "vault.pki_issue"),
        ("pki/sign/ci-job", "update", "pki", "vault.pki_issue"),
        ("pki_int/issuer/default/issue/ci-job", "update", "pki", "vault.pki_issue"),
        ("pki/sign-verbatim", "update", "pki", "vault.pki_issue"),
        ("pki/cert/ca", "read", "pki", "vault.request"),
        ("pki/issue/ci-job", "update", None, "vault.pki_issue"),
        ("pki/root/generate/internal", "update", "pki", "vault.pki_ca_change"),
        ("pki/issuers/generate/root/exported", "update", "pki", "vault.pki_ca_change"),
        ("pki/root/sign-intermediate", "update", "pki", "vault.pki_ca_change"),
        ("pki/issuer/default/sign-intermediate", "update", "pki", "vault.pki_ca_change"),
        ("pki_int/intermediate/generate/internal", "update", "pki", "vault.pki_ca_change"),
        ("pki_int/intermediate/set-signed", "update", "pki", "vault.pki_ca_change"),
        ("pki/config/ca", "update", "pki", "vault.pki_ca_change"),
        ("pki/issuers/import/bundle", "update", "pki", "vault.pki_ca_change"),
        ("pki/root/rotate/internal", "update", "pki", "vault.pki_ca_change"),
        ("pki/root/replace", "update", "pki", "vault.pki_ca_change"),
        ("pki/root", "delete", "pki", "vault.pki_ca_change"),
        ("pki/issuer/9c7e", "delete", "pki", "vault.pki_ca_change"),
        ("pki/config/issuers", "update", "pki", "vault.pki_ca_change"),
        ("pki/keys/generate/internal", "update", "pki", "vault.pki_ca_change"),
        ("pki/root/sign-intermediate", "update", None, "vault.pki_ca_change"),
        ("pki/issuer/default", "read", "pki", "vault.request"),
        ("pki/config/issuers", "read", "pki", "vault.request"),
        ("pki/root", "read", "pki", "vault.request"),
        ("pki/revoke", "update", "pki", "vault.request"),
        ("pki/tidy", "update", "pki", "vault.request"),
        ("pki/roles/ci-job", "update", "pki", "vault.request"),
        ("sys/policies/acl/ci", "update", "system", "vault.policy_change"),
        ("sys/policy/ci", "delete", "system", "vault.policy_change"),
        ("sys/policies/acl/ci", "read", "system", "vault.request"),
        ("sys/audit/file", "update", "system", "vault.audit_change"),
        ("sys/audit/file", "delete", "system", "vault.audit_change"),
        ("sys/config/auditing/request-headers/x-forwarded-for", "update", "system", "vault.audit_change"),
        ("sys/audit-hash/file", "update", "system", "vault.request"),
        ("sys/audit", "read", "system", "vault.request"),
        ("transit/encrypt/app", "update", "transit", "vault.request"),
    ],
)
def test_classify(path: str, operation: str, mount_type: str | None, kind: str) -> None:
    from collector.sources.vault import _mount

    request = {"path": path}
    if mount_type:
        request["mount_type"] = mount_type
    mount, rest, found_type, _ = _mount(request, {}, path)
    assert classify(path, operation, mount, rest, found_type) == kind


def test_mount_point_with_slashes_and_failed_login(tmp_path: Path) -> None:
    rid = "11111111-2222-3333-4444-555555555555"
    request = {"id": rid, "operation": "read", "path": "team/a/kv/data/app", "mount_point": "team/a/kv/",
               "mount_type": "kv", "client_token": "hmac-sha256:aa", "remote_address": "10.1.1.1"}
    login = {"id": "21111111-2222-3333-4444-555555555555", "operation": "update", "path": "auth/jwt/login",
             "mount_type": "jwt", "data": {"jwt": "hmac-sha256:bb", "role": "hmac-sha256:cc"}}
    lines = [
        {"time": "2026-11-20T14:00:00Z", "type": "request", "auth": {}, "request": request, "error": ""},
        {"time": "2026-11-20T14:00:00.5Z", "type": "response", "auth": {}, "request": request, "response": {},
         "error": ""},
        {"time": "2026-11-20T14:00:01Z", "type": "request", "auth": {}, "request": login, "error": "permission denied"},
        {"time": "2026-11-20T14:00:01+00:00", "type": "response", "auth": {}, "request": login,
         "response": {"mount_type": "jwt"}, "error": "permission denied"},
    ]
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        evs = by_kind(events(ledger))
    (read,) = evs["vault.secret_read"]
    assert read["attrs"]["mount"] == "team/a/kv" and read["attrs"]["kv_version"] == 2
    assert read["time"] == "2026-11-20T14:00:00.500000Z"
    (failed,) = evs["vault.login"]
    assert failed["outcome"] == {"status": "failure", "error": "permission denied"}
    assert failed["attrs"]["role"] == "hmac-sha256:cc" and failed["actor"] is None
    assert failed["time"] == "2026-11-20T14:00:01Z"


@pytest.mark.parametrize(
    ("name", "read", "appended", "reasons", "lines", "findings"),
    [
        ("audit.raw-token.log", 4, 2, {"unhashed-secret": [3, 4]}, 4, 0),
        ("audit.truncated-line.log", 7, 6, {"truncated-line": [4]}, 6, 1),
        ("audit.invalid-json.log", 3, 2, {"invalid-json": [3]}, 3, 0),
        ("audit.non-utf8.log", 3, 2, {"not-utf8": [3]}, 3, 0),
        ("audit.deep-nesting.log", 4, 2, {"deep-nesting": [3, 4]}, 4, 0),
        ("audit.lone-surrogate.log", 3, 2, {"lone-surrogate": [3]}, 3, 0),
        ("audit.duplicate-keys.log", 3, 2, {"duplicate-keys": [3]}, 3, 0),
        ("audit.unpaired.log", 8, 8, {}, 6, 2),
    ],
)
def test_hostile_files_quarantine_with_reason_file_and_line(
    tmp_path: Path, name: str, read: int, appended: int, reasons: dict[str, list[int]], lines: int, findings: int
) -> None:
    path = SAMPLES / name
    with new_ledger(tmp_path) as ledger:
        summary, source = collect(ledger, [path])
        rows = ledger.quarantined()
        evs = events(ledger)
    assert (source.lines, source.findings) == (lines, findings)
    assert (summary.read, summary.appended) == (read, appended)
    found: dict[str, list[int]] = {}
    for row in rows:
        assert row.location == str(path) and len(row.sha256) == 64
        found.setdefault(row.reason, []).append(row.line)
    assert found == reasons
    assert summary.reasons == {k: len(v) for k, v in reasons.items()}
    assert len([e for e in evs if e["kind"] == "vault.unpaired"]) == findings


def test_unpaired_findings_sides_and_correlation(tmp_path: Path) -> None:
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [SAMPLES / "audit.unpaired.log"])
        evs = events(ledger)
    unpaired = {e["attrs"]["side"]: e for e in evs if e["kind"] == "vault.unpaired"}
    assert set(unpaired) == {"request", "response"}
    assert unpaired["request"]["attrs"]["path"] == "pki/issue/ci-job"
    assert unpaired["request"]["attrs"]["closed_by"] == "window"
    assert unpaired["request"]["correlation"]["job_id"] == str(story.JOB_ID)
    assert unpaired["response"]["attrs"]["line"] == 4
    response = next(e for e in evs if e["kind"] == "vault.secret_read")
    assert response["attrs"]["paired"] is False


def _pair_lines(rid: str, when: str, later: str) -> tuple[bytes, bytes]:
    request = {"id": rid, "operation": "read", "path": "secret/data/x", "mount_type": "kv"}
    req = {"time": when, "type": "request", "auth": {}, "request": request, "error": ""}
    resp = {"time": later, "type": "response", "auth": {}, "request": request, "response": {}, "error": ""}
    return orjson.dumps(req) + b"\n", orjson.dumps(resp) + b"\n"


def test_pairing_survives_runs_and_files(tmp_path: Path) -> None:
    """A request read in one run pairs with its response read in a later run, even from another file."""
    req, resp = _pair_lines("a0000000-0000-0000-0000-000000000001", "2026-11-20T14:00:00Z", "2026-11-20T14:00:02Z")
    first, second = tmp_path / "audit.log.1", tmp_path / "audit.log"
    first.write_bytes(req)
    second.write_bytes(b"")
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [first])
        assert ledger.cursor(f"vault:{first.resolve()}") is not None
        second.write_bytes(resp)  # log rotated: the response lands in the new file
        summary, source = collect(ledger, [first, second])
        assert (summary.read, source.findings) == (1, 0)
        evs = events(ledger)
    assert evs[-1]["attrs"]["paired"] is True


def test_open_request_closes_by_window_in_a_later_run_and_with_final(tmp_path: Path) -> None:
    req, _ = _pair_lines("a0000000-0000-0000-0000-000000000002", "2026-11-20T14:00:00Z", "x")
    other_req, other_resp = _pair_lines("a0000000-0000-0000-0000-000000000003", "2026-11-20T14:10:00Z",
                                        "2026-11-20T14:10:01Z")
    log = tmp_path / "audit.log"
    log.write_bytes(req)
    with new_ledger(tmp_path) as ledger:
        _, source = collect(ledger, [log])
        assert source.findings == 0
        with open(log, "ab") as handle:
            handle.write(other_req + other_resp)
        _, source = collect(ledger, [log])
        assert source.findings == 1
        with open(log, "ab") as handle:
            handle.write(_pair_lines("a0000000-0000-0000-0000-000000000004", "2026-11-20T14:10:02Z", "x")[0])
        _, source = collect(ledger, [log])
        assert source.findings == 0
        _, source = collect(ledger, [log], final=True)
        assert source.findings == 1
        _, source = collect(ledger, [log], final=True)
        assert source.findings == 0
        kinds = Counter(e["kind"] for e in events(ledger))
    assert kinds["vault.unpaired"] == 2


def test_capacity_bounds_open_requests(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(_pair_lines(f"a0000000-0000-0000-0000-00000000010{i}", "2026-11-20T14:00:00Z", "x")[0]
                             for i in range(5)))
    with new_ledger(tmp_path) as ledger:
        _, source = collect(ledger, [log], max_open=2)
    assert source.findings == 3 and len(source.state.open) == 2


@pytest.mark.parametrize(
    ("text", "is_token"),
    [
        ("hvs.CAESIJlU9JMYEhOPYv4KMSu05WV2YzlOaDh2SVBrMnZZblRpRmdZWEJ6Rgp", True),
        ("hvb.AAAAAQJxLGJ4bmlxRXZ1d2lxYnZHcVZ2YnJ3c0hZbEt3bA", True),
        ("hvr.AAAAAQJxLGJ4bmlxRXZ1d2lxYnZH", True),
        ("token s.Xq3J0mK2pL9vT4wY7zB1nC6d here", True),
        ("b.AAAAAQJxLGJ4bmlxRXZ1d2lxYnZHcVZ2YnJ3c0hZ", True),
        ("hmac-sha256:08ba357e274f528065766c770a639abf6809b39ccfd37c2a3157c7f51954da0a", False),
        ("s.short", False),
        ("b.example.com", False),
        ("www.s.Xq3J0mK2pL9vT4wY7zB1nC6d", False),
        ("auth/token/lookup-self", False),
    ],
)
def test_token_shapes(text: str, is_token: bool) -> None:
    assert bool(TOKEN_SHAPE_TEXT.search(text)) is is_token


def test_scanner_sees_escaped_tokens_and_raw_credentials() -> None:
    scanner = SecretScanner()
    escaped = b'{"time":"x","auth":{"display_name":"\\u0068vs.CAESIJlU9JMYEhOPYv4KMSu05WV2"}}'
    with pytest.raises(UnhashedSecret):
        scanner.check(orjson.loads(escaped), escaped)
    for record in (
        {"auth": {"client_token": "plain"}},
        {"request": {"client_token_accessor": "35e2f256-0fc3-4eea-9405-3e212435b6c7"}},
        {"response": {"wrap_info": {"token": "x"}}},
        {"request": {"data": {"password": "p"}}},
        {"response": {"data": {"data": {"api_key": "k"}}}},
        {"response": {"data": {"keys": ["k1"]}}},
        {"request": {"headers": {"authorization": ["Bearer abc"]}}},
    ):
        raw = orjson.dumps(record)
        with pytest.raises(UnhashedSecret):
            scanner.check(record, raw)
    fine = {"request": {"data": {"common_name": "ci-job-1", "ttl": "30m", "password": "hmac-sha256:ab",
                                 "created": "2026-11-20T14:00:00.123Z", "n": 3}},
            "auth": {"client_token": "", "metadata": {"job_id": "1"}, "token_type": "service"}}
    scanner.check(fine, orjson.dumps(fine))
    with pytest.raises(UnhashedSecret):
        SecretScanner().check({"request": {"data": {"username": "u"}}}, b"{}")
    SecretScanner(["username"]).check({"request": {"data": {"username": "u"}}}, b"{}")


def test_duration_and_serial_helpers() -> None:
    assert [duration_seconds(v) for v in (1800, "1800", "1800s", "30m", "1h", "2d", "hmac-sha256:aa", None)] == [
        1800, 1800, 1800, 1800, 3600, 172800, None, None]
    assert normalize_serial("3A:5F:91") == "3a:5f:91"
    assert normalize_serial("3a5f91") == "3a:5f:91"
    assert normalize_serial("hmac-sha256:aa") is None


def test_public_elastic_examples(tmp_path: Path) -> None:
    path = shared_data("vault", "elastic_integrations_pipeline_tests", "test-faked-all-fields.log")
    with new_ledger(tmp_path) as ledger:
        summary, source = collect(ledger, [path])
        rows = ledger.quarantined()
        kinds = [e["kind"] for e in events(ledger)]
    # Lines 1-2: a token lookup pair, HMAC'd. Lines 3-4: raw accessors ("bar", a UUID) → unhashed-secret.
    assert kinds == ["vault.request_received", "vault.request"]
    assert [(r.line, r.reason) for r in rows] == [(3, "unhashed-secret"), (4, "unhashed-secret")]
    assert (summary.read, summary.appended, summary.quarantined, source.findings) == (4, 2, 2, 0)


def test_hmac_matches_public_vectors() -> None:
    doc = orjson.loads(shared_data("vault", "hmac_vectors", "vault_audit_hmac_vectors.json").read_bytes())
    for vector in doc["vectors"]:
        assert audit_hmac(vector["salt"].encode(), vector["input"]) == vector["expected"]


def test_hmac_command(tmp_path: Path) -> None:
    salt = tmp_path / "salt.txt"
    salt.write_text("foo\n")
    result = run_cli("vault", "hmac", "--salt-file", str(salt), "canary-hmac-input")
    assert result.returncode == 0, result.stderr
    expected = audit_hmac(b"foo", "canary-hmac-input")
    assert result.stdout.decode() == expected + "\n"
    assert b"canary" not in result.stdout + result.stderr
    piped = run_cli("vault", "hmac", "--salt-file", str(salt), "-", stdin=b"canary-hmac-input\n")
    assert piped.stdout.decode() == expected + "\n"
    sample_salt = (SAMPLES / "audit-salt.txt").read_bytes().strip()
    assert audit_hmac(sample_salt, story.VAULT_ROLE).encode() in (SAMPLES / "audit.log").read_bytes()
    missing = run_cli("vault", "hmac", "--salt-file", str(tmp_path / "nope"), "canary-hmac-input")
    assert missing.returncode == 3 and b"canary" not in missing.stdout + missing.stderr


def test_stdin_source_and_dedup_against_files(tmp_path: Path) -> None:
    data = (SAMPLES / "audit.log").read_bytes()
    with new_ledger(tmp_path) as ledger:
        summary, _ = collect(ledger, ["-"], stdin=io.BytesIO(data[:-1]))  # no final newline: still a record
        assert (summary.read, summary.appended) == (28, 28)
        summary, _ = collect(ledger, [SAMPLES / "audit.log"])
        assert (summary.read, summary.appended, summary.duplicates) == (28, 0, 28)


_KEYS = st.sampled_from(["request", "response", "data", "auth", "client_token", "accessor", "metadata", "path",
                         "password", "common_name", "ttl", "x_token", "mount_accessor", "token_type", "items"])
_STRINGS = st.sampled_from(["", "plain", "hmac-sha256:ab", "2026-11-20T14:00:00Z", "ci-job-1"])
_VALUES = st.recursive(st.one_of(_STRINGS, st.integers(0, 5), st.booleans(), st.none()),
                       lambda inner: st.one_of(st.lists(inner, max_size=3),
                                               st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=5))
def test_fast_walk_agrees_with_the_generic_walk(record: dict) -> None:
    """The plain-region walk used for lines without \\u escapes gives the generic walk's verdict and key count."""
    from collector.sources.vault import _RECORD, _TooDeep

    def verdict(run):  # type: ignore[no-untyped-def]
        try:
            return run()
        except UnhashedSecret:
            return "secret"
        except _TooDeep:
            return "deep"

    scanner = SecretScanner()
    fast = verdict(lambda: scanner.scan(record, b"{}"))
    scanner._shapes = False
    generic = verdict(lambda: scanner._dict(record, _RECORD, 0))
    assert fast == generic


def test_duplicate_keys_with_space_before_the_colon_are_caught(tmp_path: Path) -> None:
    """collector.canonical.parse_json's count misses '"k" :' duplicates; the Vault source checks them exactly."""
    request = b'{"id":"a0000000-0000-0000-0000-000000000009","operation":"read","path":"sys/health"}'
    line = (b'{"time":"2026-11-20T14:00:00Z","type":"request","type" :"response","auth":{},"request":'
            + request + b',"error":""}\n')
    log = tmp_path / "audit.log"
    log.write_bytes(line + line.replace(b'"type" :"response",', b"\t"))
    with new_ledger(tmp_path) as ledger:
        summary, _ = collect(ledger, [log])
        assert [(r.line, r.reason) for r in ledger.quarantined()] == [(1, "duplicate-keys")]
    assert summary.appended == 1


def test_sample_events_fast_canonical_bytes_are_exact() -> None:
    from collector.sources.vault import VaultAuditLog

    count = 0
    for path in sorted(SAMPLES.glob("*.log")):
        for rec in VaultAuditLog([str(path)], final=True).collect({}):
            event_bytes = getattr(rec, "event_bytes", None)
            if event_bytes is not None:
                assert event_bytes == canonical_bytes(rec.event)  # type: ignore[union-attr]
                count += 1
    assert count > 30


_values = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats() | st.text(max_size=6) \
    | st.sampled_from(["hmac-sha256:ab", "30m", "😀", "\ue000"]) | st.lists(st.text(max_size=3) | st.integers(), max_size=3)
_keys = st.text(max_size=5) | st.sampled_from(["role", "role_name", "job_id", "😀k", "\ue000k", "project_path"])


@settings(max_examples=200, deadline=None)
@given(metadata=st.dictionaries(_keys, _values, max_size=6), data=st.dictionaries(_keys, _values, max_size=4),
       auth=st.dictionaries(st.sampled_from(["policies", "token_ttl", "lease_duration", "token_type", "entity_id",
                                             "display_name"]), _values, max_size=6),
       path=st.sampled_from(["auth/jwt/login", "pki/issue/ci", "secret/data/app", "sys/audit/file", "sys/policy/p",
                             "auth/token/create", "database/creds/r"]),
       response_data=st.dictionaries(st.sampled_from(["expiration", "serial_number", "lease_id"]), _values, max_size=3))
def test_normalized_events_hold_no_float_so_their_fast_canonical_bytes_are_exact(
        metadata: dict[str, object], data: dict[str, object], auth: dict[str, object], path: str,
        response_data: dict[str, object]) -> None:
    """Whatever a record holds, the event normalize builds has no float and its fast bytes
    equal canonical_bytes (also when a metadata key sorts differently in UTF-16)."""
    from collector.canonical import canonical_bytes_of_text_tree
    from collector.sources.vault import ParsedLine, normalize

    record = {"type": "response", "time": "2026-11-20T14:00:00Z",
              "auth": {"metadata": metadata, **auth},
              "request": {"id": "0000-1", "path": path, "operation": "update", "data": data},
              "response": {"auth": {"metadata": metadata, **auth}, "data": response_data}}
    event = normalize(ParsedLine(record, "response", "0000-1", "2026-11-20T14:00:00Z", 1_700_000_000), True)
    try:
        expected = canonical_bytes(event)
    except Exception as exc:  # noqa: BLE001 - then the fast path must refuse it too
        with pytest.raises(type(exc)):
            canonical_bytes_of_text_tree(event)
        return
    assert canonical_bytes_of_text_tree(event) == expected


def test_hmac_command_takes_any_bytes_and_one_line_ending(tmp_path: Path) -> None:
    """A value that is not UTF-8 is hashed as its bytes (it was an internal error, exit 4), and a
    value piped from a file with CRLF line endings loses its whole line ending, as the salt file does."""
    salt = tmp_path / "salt.txt"
    salt.write_bytes(b"foo\r\n")
    crlf = run_cli("vault", "hmac", "--salt-file", str(salt), "-", stdin=b"canary-hmac-input\r\n")
    assert crlf.returncode == 0, crlf.stderr
    assert crlf.stdout.decode() == audit_hmac(b"foo", "canary-hmac-input") + "\n"
    piped = run_cli("vault", "hmac", "--salt-file", str(salt), "-", stdin=b"canary-\xff\n")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.decode() == audit_hmac(b"foo", b"canary-\xff") + "\n"
    argument = run_cli("vault", "hmac", "--salt-file", str(salt), os.fsdecode(b"canary-\xff"))
    assert argument.returncode == 0, argument.stderr
    assert argument.stdout.decode() == audit_hmac(b"foo", b"canary-\xff") + "\n"


def test_numbers_under_credential_keys_are_unhashed_secrets(tmp_path: Path) -> None:
    """Vault HMACs strings only: a numeric password or token is logged as it was sent and must be
    quarantined like a plaintext string (it was appended and its raw line kept in the evidence store)."""
    scanner = SecretScanner()
    for record in (
        {"auth": {"client_token": 31415926}},
        {"request": {"data": {"password": 31415926}}},
        {"request": {"data": {"db": {"password": 3.14159}}}},
        {"response": {"wrap_info": {"token": 31415926}}},
        {"request": {"headers": {"x-vault-token": [31415926]}}},
        {"request": {"client_token": {"value": 31415926}}},
    ):
        raw = orjson.dumps(record)
        with pytest.raises(UnhashedSecret):
            scanner.check(record, raw)
        with pytest.raises(UnhashedSecret):
            scanner.compact_scan(record, raw)
    fine = {"request": {"data": {"ttl": 3600, "max_versions": 5}}, "auth": {"token_ttl": 60, "num_uses": 0}}
    scanner.check(fine, orjson.dumps(fine))
    line = (b'{"time":"2026-11-20T14:00:00Z","type":"request","auth":{},"request":{"id":'
            b'"a0000000-0000-0000-0000-000000000011","operation":"update","path":"auth/userpass/login/u",'
            b'"data":{"password":31415926}},"error":""}\n')
    log = tmp_path / "audit.log"
    log.write_bytes(line)
    with new_ledger(tmp_path) as ledger:
        summary, _ = collect(ledger, [log])
        assert [(r.line, r.reason) for r in ledger.quarantined()] == [(1, "unhashed-secret")]
    assert summary.appended == 0
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p != log)
    assert b"31415926" not in stored


def test_a_byte_order_mark_is_invalid_json_not_bad_utf8(tmp_path: Path) -> None:
    """A BOM is valid UTF-8: a line starting with one was quarantined as ``not-utf8``, which sends
    the operator looking for an encoding problem that is not there."""
    line = (SAMPLES / "audit.log").read_bytes().splitlines(keepends=True)[0]
    log = tmp_path / "audit.log"
    log.write_bytes(b"\xef\xbb\xbf" + line)
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        assert [(r.line, r.reason) for r in ledger.quarantined()] == [(1, "invalid-json")]


def test_a_password_in_a_url_in_a_plaintext_field_is_an_unhashed_secret(tmp_path: Path) -> None:
    """Vault HMACs data values, but metadata, errors and non-HMAC data keys are logged as given: a URL
    carrying a raw password there (``postgresql://app:pw@db``) was appended and its raw line stored."""
    scanner = SecretScanner(non_hmac_keys=["connection_url"])
    for record in (
        {"auth": {"metadata": {"repo": "https://ci:canary-pw@git.example/app.git"}}},
        {"error": "dial postgresql://app:canary-pw@db.internal:5432/app: refused"},
        {"request": {"data": {"connection_url": "postgresql://app:canary-pw@db:5432/app"}}},
    ):
        raw = orjson.dumps(record)
        with pytest.raises(UnhashedSecret):
            scanner.check(record, raw)
        with pytest.raises(UnhashedSecret):
            scanner.compact_scan(record, raw)
    escaped = b'{"error":"postgresql:\\/\\/app:canary-pw@db\\u002einternal\\/app"}'
    with pytest.raises(UnhashedSecret):
        scanner.check(orjson.loads(escaped), escaped)
    fine = {"request": {"data": {"connection_url": "postgresql://{{username}}:{{password}}@db:5432/app"}},
            "auth": {"metadata": {"repo": "https://git.example/app.git", "ssh": "ssh://git@github.com/a/b"}}}
    scanner.check(fine, orjson.dumps(fine))
    assert scanner.compact_scan(fine, orjson.dumps(fine))
    line = (b'{"time":"2026-11-20T14:00:00Z","type":"request","auth":{},"request":{"id":'
            b'"a0000000-0000-0000-0000-000000000012","operation":"update","path":"sys/mounts/db"},'
            b'"error":"dial postgresql://app:canary-pw@db:5432/app"}\n')
    log = tmp_path / "audit.log"
    log.write_bytes(line)
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        assert [(r.line, r.reason) for r in ledger.quarantined()] == [(1, "unhashed-secret")]
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p != log)
    assert b"canary" not in stored


def test_pki_ca_change_is_its_own_kind(tmp_path: Path) -> None:
    """Signing an intermediate CA (the engine's trust changes) is evidence apart from leaf certificates."""
    rid = "c0000000-0000-0000-0000-000000000001"
    request = {"id": rid, "operation": "update", "path": "pki/issuer/default/sign-intermediate", "mount_type": "pki",
               "mount_point": "pki/", "data": {"common_name": "hmac-sha256:11", "csr": "hmac-sha256:22"}}
    lines = [
        {"time": "2026-11-20T14:00:00Z", "type": "request", "auth": {"display_name": "userpass-admin"},
         "request": request, "error": ""},
        {"time": "2026-11-20T14:00:01Z", "type": "response", "auth": {"display_name": "userpass-admin"},
         "request": request, "response": {"data": {"certificate": "hmac-sha256:33"}}, "error": ""},
    ]
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        (change,) = [e for e in events(ledger) if e["kind"] == "vault.pki_ca_change"]
    assert change["attrs"]["ca_operation"] == "sign-intermediate"
    assert change["attrs"]["issuer"] == "default"
    assert change["attrs"]["mount"] == "pki"
    assert change["attrs"]["common_name"] == "hmac-sha256:11"
    assert change["outcome"]["status"] == "success"
