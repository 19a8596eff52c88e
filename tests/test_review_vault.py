"""Adversarial review of the Vault collector: pairing tricks, paths that hand out secrets,
credentials under header-style keys, caller-chosen token metadata, mount-type spellings.

Each test builds the audit lines it needs (real SQLite ledgers on disk, the ledger API or
the CLI); the one that reads the public Elastic sample skips when ../shared is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import shared_data
from tests.vault_support import collect, events, new_ledger, run_cli

HMAC = "hmac-sha256:" + "ab" * 32
JOB_AUTH = {"client_token": HMAC, "accessor": HMAC, "display_name": "jwt-repo:org/app:ref:refs/heads/main",
            "entity_id": "ent-ci", "policies": ["ci"], "metadata": {"job_id": "100", "repository": "org/app"}}


def record(kind: str, request_id: str, path: str, *, operation: str = "read", mount_type: str | None = "kv",
           time: str = "2026-11-25T10:00:00Z", auth: dict[str, Any] | None = None,
           response: dict[str, Any] | None = None, request: dict[str, Any] | None = None) -> bytes:
    req: dict[str, Any] = {"id": request_id, "operation": operation, "path": path, "client_token": HMAC}
    if mount_type is not None:
        req["mount_type"] = mount_type
    req.update(request or {})
    doc: dict[str, Any] = {"time": time, "type": kind, "auth": auth or JOB_AUTH, "request": req}
    if kind == "response":
        doc["response"] = response if response is not None else {"data": {"value": HMAC}}
    return orjson.dumps(doc)


def write_log(folder: Path, *lines: bytes, name: str = "audit.log") -> Path:
    path = folder / name
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def pair(request_id: str, path: str, **options: Any) -> tuple[bytes, bytes]:
    response = options.pop("response", None)
    return record("request", request_id, path, **options), record("response", request_id, path, response=response,
                                                                  **options)


def kinds_of(evs: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in evs]


# -- pairing ---------------------------------------------------------------------------------


def test_response_that_contradicts_its_request_is_not_its_pair(tmp_path: Path) -> None:
    """A secret read whose response line names another path (sys/health) would pair by id and be
    counted as a harmless vault.request: the contradiction is a finding on both sides instead."""
    log = write_log(tmp_path, record("request", "r1", "secret/data/prod/db"),
                    record("response", "r1", "sys/health", mount_type="system"))
    with new_ledger(tmp_path) as ledger:
        summary, source = collect(ledger, [log], final=True)
        evs = events(ledger)
    unpaired = [e for e in evs if e["kind"] == "vault.unpaired"]
    assert sorted(e["attrs"]["side"] for e in unpaired) == ["request", "response"]
    response_finding = next(e for e in unpaired if e["attrs"]["side"] == "response")
    assert response_finding["attrs"]["mismatch"] == "path"
    request_finding = next(e for e in unpaired if e["attrs"]["side"] == "request")
    assert request_finding["attrs"]["path"] == "secret/data/prod/db"
    (answered,) = [e for e in evs if e["kind"] == "vault.request"]
    assert answered["attrs"]["paired"] is False
    assert (summary.read, source.lines, source.findings) == (4, 2, 2)


def test_response_with_another_operation_is_not_its_pair(tmp_path: Path) -> None:
    log = write_log(tmp_path, record("request", "r1", "secret/data/prod/db", operation="read"),
                    record("response", "r1", "secret/data/prod/db", operation="list"))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log], final=True)
        evs = events(ledger)
    unpaired = {e["attrs"]["side"]: e for e in evs if e["kind"] == "vault.unpaired"}
    assert set(unpaired) == {"request", "response"}
    assert unpaired["response"]["attrs"]["mismatch"] == "operation"


def test_the_real_response_still_pairs_after_a_contradicting_one(tmp_path: Path) -> None:
    request, response = pair("r1", "secret/data/prod/db")
    forged = record("response", "r1", "sys/health", mount_type="system")
    log = write_log(tmp_path, request, forged, response)
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log], final=True)
        evs = events(ledger)
    assert [e["attrs"]["side"] for e in evs if e["kind"] == "vault.unpaired"] == ["response"]
    (read,) = [e for e in evs if e["kind"] == "vault.secret_read"]
    assert read["attrs"]["paired"] is True


def test_second_request_with_the_same_id_does_not_hide_the_first(tmp_path: Path) -> None:
    """Two different request lines under one id: the one answered is the later; the first must
    not vanish from the open set without a finding (its response may have been removed)."""
    first = record("request", "r1", "secret/data/prod/db")
    second, response = pair("r1", "secret/data/dev/db", time="2026-11-25T10:00:01Z")
    log = write_log(tmp_path, first, second, response)
    with new_ledger(tmp_path) as ledger:
        summary, source = collect(ledger, [log], final=True)
        evs = events(ledger)
    (finding,) = [e for e in evs if e["kind"] == "vault.unpaired"]
    assert finding["attrs"]["side"] == "request"
    assert finding["attrs"]["closed_by"] == "duplicate-id"
    assert finding["attrs"]["path"] == "secret/data/prod/db"
    assert finding["attrs"]["line"] == 1
    assert (summary.read, source.lines, source.findings) == (4, 3, 1)


def test_the_same_request_line_read_twice_is_no_finding(tmp_path: Path) -> None:
    request, response = pair("r1", "secret/data/prod/db")
    log = write_log(tmp_path, request, request, response)
    with new_ledger(tmp_path) as ledger:
        summary, _ = collect(ledger, [log], final=True)
        evs = events(ledger)
    assert "vault.unpaired" not in kinds_of(evs)
    assert (summary.read, summary.duplicates) == (3, 1)


def test_duplicate_request_id_across_two_files(tmp_path: Path) -> None:
    older = write_log(tmp_path, record("request", "r1", "secret/data/prod/db"), name="audit.log.1")
    request, response = pair("r1", "secret/data/dev/db", time="2026-11-25T10:00:02Z")
    live = write_log(tmp_path, request, response)
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [older, live], final=True)
        evs = events(ledger)
    (finding,) = [e for e in evs if e["kind"] == "vault.unpaired"]
    assert (finding["attrs"]["closed_by"], finding["attrs"]["location"]) == ("duplicate-id", str(older))


# -- paths that hand out secrets -------------------------------------------------------------


def test_unwrap_is_a_secret_read(tmp_path: Path) -> None:
    """sys/wrapping/unwrap hands the wrapped secret to whoever holds the wrapping token."""
    log = write_log(tmp_path, *pair("r1", "sys/wrapping/unwrap", operation="update", mount_type="system"))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        evs = events(ledger)
    (read,) = [e for e in evs if e["kind"] == "vault.secret_read"]
    assert read["attrs"]["unwrap"] is True
    assert read["correlation"]["job_id"] == "100"


def test_raw_storage_read_is_a_secret_read(tmp_path: Path) -> None:
    log = write_log(tmp_path, *pair("r1", "sys/raw/logical/0e1f/prod/db", mount_type="system"))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        evs = events(ledger)
    assert "vault.secret_read" in kinds_of(evs)


def test_kv_metadata_read_that_returns_secret_data_is_a_secret_read(tmp_path: Path) -> None:
    """On a kv v1 mount "metadata/prod" is an ordinary secret: a read of it returning data keys that
    kv v2 metadata never has is a secret read, not a metadata lookup."""
    v1 = pair("r1", "kv1/metadata/prod", response={"data": {"password": HMAC}})
    v2 = pair("r2", "secret/metadata/prod", response={"data": {"current_version": 3, "versions": {},
                                                             "created_time": "2026-11-01T00:00:00Z"}})
    log = write_log(tmp_path, *v1, *v2)
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        evs = events(ledger)
    by_path = {e["attrs"]["path"]: e["kind"] for e in evs if e["kind"] != "vault.request_received"}
    assert by_path == {"kv1/metadata/prod": "vault.secret_read", "secret/metadata/prod": "vault.request"}


@pytest.mark.parametrize("mount_type", ["kv-v2", "kv-v1"])
def test_kv_mount_type_spelled_with_its_version(tmp_path: Path, mount_type: str) -> None:
    log = write_log(tmp_path, *pair("r1", "apps/data/prod/db", mount_type=mount_type))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        evs = events(ledger)
    assert "vault.secret_read" in kinds_of(evs)


def test_pki_sign_verbatim_through_an_issuer_is_a_certificate_issue(tmp_path: Path) -> None:
    response = {"data": {"serial_number": "3a:5f:91", "expiration": 1795600000}}
    log = write_log(tmp_path, *pair("r1", "pki/issuer/default/sign-verbatim", operation="update", mount_type="pki",
                                    response=response))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        evs = events(ledger)
    (issue,) = [e for e in evs if e["kind"] == "vault.pki_issue"]
    assert issue["correlation"]["cert_serial"] == "3a:5f:91"


# -- credentials under header-style keys -------------------------------------------------------

CANARY = "canary-raw-secret-0451"


@pytest.mark.parametrize("header", ["x-auth-token", "private-token", "proxy-authorization", "x-api-key",
                                    "cookie", "X-Vault-Token"])
def test_plaintext_credential_header_is_quarantined(tmp_path: Path, header: str) -> None:
    """Request headers are logged under their HTTP names (hyphens); a credential header the operator
    logs without HMAC must not reach the ledger."""
    log = write_log(tmp_path, record("request", "r1", "secret/data/x", request={"headers": {header: [CANARY]}}))
    with new_ledger(tmp_path) as ledger:
        summary, _ = collect(ledger, [log])
        rows = ledger.quarantined()
    assert (summary.appended, summary.quarantined) == (0, 1)
    assert rows[0].reason == "unhashed-secret"


def test_ordinary_headers_stay(tmp_path: Path) -> None:
    headers = {"user-agent": ["vault/1.18"], "x-forwarded-for": ["10.0.0.9"], "content-type": ["json"],
               "x-vault-request": ["true"]}
    log = write_log(tmp_path, record("request", "r1", "secret/data/x", request={"headers": headers}))
    with new_ledger(tmp_path) as ledger:
        summary, _ = collect(ledger, [log])
    assert (summary.appended, summary.quarantined) == (1, 0)


def test_credential_header_through_the_cli(tmp_path: Path) -> None:
    request, response = pair("r1", "secret/data/x", request={"headers": {"x-auth-token": [CANARY]}})
    log = write_log(tmp_path, record("request", "r0", "secret/data/y"), request, response)
    ledger = tmp_path / "ledger.db"
    created = run_cli("init", "--origin", "test.example/vault", ledger=ledger)
    assert created.returncode == 0, created.stderr
    result = run_cli("--format", "json", "collect", "vault", "--final", str(log), ledger=ledger)
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["read"], doc["quarantined"]) == (doc["appended"] + doc["duplicates"] + doc["quarantined"], 2)
    assert doc["read"] == doc["lines"] + doc["findings"]
    assert CANARY.encode() not in result.stdout + result.stderr
    assert CANARY.encode() not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p != log)


# -- who did it: caller-chosen token metadata ------------------------------------------------


def test_metadata_of_a_token_made_with_token_create_does_not_name_the_job(tmp_path: Path) -> None:
    """auth/token/create takes any "meta" the caller gives: a job can mint a child token whose
    metadata names another job. Such metadata must not attribute its reads to that job."""
    child = {"client_token": HMAC, "accessor": HMAC, "display_name": "token-ci", "entity_id": "ent-ci",
             "metadata": {"job_id": "999", "repository": "org/other", "serial_number": "aa:bb"}}
    log = write_log(tmp_path, *pair("r1", "secret/data/prod/db", auth=child))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        evs = events(ledger)
    (read,) = [e for e in evs if e["kind"] == "vault.secret_read"]
    assert read["correlation"] == {"vault_entity_id": "ent-ci"}
    # kept as what the token claims, for the assessor to see, never as a link to a job
    assert read["attrs"]["claimed_correlation"] == {"job_id": "999", "repository": "org/other", "cert_serial": "aa:bb"}


def test_metadata_of_a_login_token_names_the_job(tmp_path: Path) -> None:
    log = write_log(tmp_path, *pair("r1", "secret/data/prod/db"))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        evs = events(ledger)
    (read,) = [e for e in evs if e["kind"] == "vault.secret_read"]
    assert read["correlation"]["job_id"] == "100"
    assert "claimed_correlation" not in read["attrs"]


# -- the public sample ---------------------------------------------------------------------


def test_public_sample_response_with_hashed_accessors(tmp_path: Path) -> None:
    """The Elastic sample's last record (Vault's own field set: wrap_info, response.mount_type,
    token_policies, headers) once its plaintext accessors are HMAC'd as hmac_accessor=true does."""
    sample = shared_data("vault", "elastic_integrations_pipeline_tests", "test-faked-all-fields.log")
    lines = sample.read_bytes().splitlines()
    fixed = []
    for line in lines[2:]:
        doc = orjson.loads(line)
        doc["auth"]["accessor"] = HMAC
        doc["request"]["client_token_accessor"] = HMAC
        for auth in (doc.get("response", {}).get("auth"),):
            if auth:
                auth["accessor"] = HMAC
        wrap = doc.get("response", {}).get("wrap_info")
        if wrap:
            wrap["accessor"] = HMAC
            wrap["wrapped_accessor"] = HMAC
        fixed.append(orjson.dumps(doc))
    log = write_log(tmp_path, *fixed)
    with new_ledger(tmp_path) as ledger:
        summary, source = collect(ledger, [log], final=True)
        evs = events(ledger)
    assert (summary.read, summary.appended, summary.quarantined, source.findings) == (2, 2, 0, 0)
    (write,) = [e for e in evs if e["kind"] == "vault.secret_write"]
    assert write["attrs"]["paired"] is True and write["attrs"]["mount_type"] == "kv"
    assert write["correlation"] == {"vault_entity_id": "foobarentity"}


# -- across runs and in the worker process ----------------------------------------------------


def test_contradicting_response_in_a_later_run(tmp_path: Path) -> None:
    """The open request kept in the cursor still knows its path: a forged answer next run is caught."""
    log = write_log(tmp_path, record("request", "r1", "secret/data/prod/db"))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        write_log(tmp_path, record("request", "r1", "secret/data/prod/db"),
                  record("response", "r1", "sys/health", mount_type="system", time="2026-11-25T10:00:01Z"))
        collect(ledger, [log], final=True)
        evs = events(ledger)
    assert sorted(e["attrs"]["side"] for e in evs if e["kind"] == "vault.unpaired") == ["request", "response"]


def test_worker_process_stages_the_same_findings(tmp_path: Path) -> None:
    from collector.commands.vault_cmds import run_collection
    from collector.sources.vault import VaultAuditLog
    from tests.vault_support import OBSERVED

    first = record("request", "r1", "secret/data/prod/db")
    second, response = pair("r1", "secret/data/dev/db", time="2026-11-25T10:00:01Z")
    forged = record("response", "r1", "sys/health", mount_type="system", time="2026-11-25T10:00:02Z")
    log = write_log(tmp_path, first, second, forged, response, *pair("r2", "sys/wrapping/unwrap", operation="update",
                                                                      mount_type="system"))
    results = []
    for workers in (0, 1):
        with new_ledger(tmp_path, f"ledger-{workers}.db") as ledger:
            source = VaultAuditLog([str(log)], final=True)
            summary = run_collection(ledger, source, observed=OBSERVED, workers=workers)
            assert summary.read == source.lines + source.findings == 8
            results.append([e for e in events(ledger)])
    assert results[0] == results[1]
    assert [e["attrs"].get("closed_by") or e["attrs"].get("mismatch") for e in results[0]
            if e["kind"] == "vault.unpaired"] == ["duplicate-id", "path"]


# -- two Vault servers in one ledger ------------------------------------------------------------


def two_folders(tmp_path: Path) -> tuple[Path, Path, Any]:
    """Two Vault servers' audit folders and an empty ledger they are both collected into."""
    a, b = tmp_path / "vault-a", tmp_path / "vault-b"
    a.mkdir()
    b.mkdir()
    return a, b, new_ledger(tmp_path)


def unpaired(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["attrs"] for e in evs if e["kind"] == "vault.unpaired"]


def test_two_servers_in_one_ledger_keep_their_own_pairing(tmp_path: Path) -> None:
    # Server B's clock runs an hour ahead of A's (another region, another skew); each writes its own
    # audit folder; `fedledger run` collects A, then B, into one ledger (both under source id "vault").
    a, b, ledger = two_folders(tmp_path)
    req_b = record("request", "b-1", "secret/data/app", time="2026-11-25T11:00:00Z")
    write_log(b, req_b)  # B's request is open when the first run ends; its response comes in the next log lines
    write_log(a, *pair("a-1", "secret/data/app", time="2026-11-25T10:00:00Z"))
    collect(ledger, [a])
    collect(ledger, [b])
    # Second run: A's log has moved on by a day (it expires its own old requests by its own clock);
    # B's response arrives.
    write_log(a, *pair("a-1", "secret/data/app", time="2026-11-25T10:00:00Z"),
              *pair("a-2", "secret/data/app", time="2026-11-26T10:00:00Z"))
    collect(ledger, [a])
    write_log(b, req_b, record("response", "b-1", "secret/data/app", time="2026-11-25T11:00:01Z"))
    collect(ledger, [b])
    got = events(ledger)
    assert unpaired(got) == []
    assert kinds_of(got).count("vault.secret_read") == 3  # a-1, a-2 and b-1's responses, each paired


def test_a_request_left_open_stays_open_for_its_own_folder_after_an_upgrade(tmp_path: Path) -> None:
    # The request is opened in one run and answered in the next one, by the same server: still one pair
    # whatever else ran in between.
    a, other, ledger = two_folders(tmp_path)
    req = record("request", "a-9", "secret/data/app")
    write_log(a, req)
    collect(ledger, [a])
    write_log(other, *pair("b-9", "secret/data/app", time="2026-11-27T10:00:00Z"))  # a day later by B's clock
    collect(ledger, [other])
    write_log(a, req, record("response", "a-9", "secret/data/app", time="2026-11-25T10:00:02Z"))
    collect(ledger, [a])
    assert unpaired(events(ledger)) == []


def test_cursors_from_before_pairing_domains_are_split_by_folder(tmp_path: Path) -> None:
    # A ledger whose Vault cursors hold one pairing state for everything (written before domains):
    # each folder takes the requests read from its own files, and nothing is lost or expired by the other.
    a, b, ledger = two_folders(tmp_path)
    req_a = record("request", "a-1", "secret/data/app", time="2026-11-25T10:00:00Z")
    req_b = record("request", "b-1", "secret/data/app", time="2026-11-25T10:00:00Z")
    write_log(a, req_a)
    write_log(b, req_b)
    collect(ledger, [a, b])  # one collection of both folders
    conn = ledger._conn
    rows = [(source, orjson.loads(text)) for source, text in conn.execute("SELECT source, cursor FROM cursors")]
    everything = [item for _, doc in rows for item in doc.get("open", [])]
    for source, doc in rows:  # as an older fedledger wrote them: one state for everything, no domain
        if "domain" in doc:
            doc.pop("domain")
            doc["open"] = everything
            conn.execute("UPDATE cursors SET cursor = ? WHERE source = ?", (orjson.dumps(doc).decode(), source))
    conn.commit()
    legacy = [orjson.loads(t) for (t,) in conn.execute("SELECT cursor FROM cursors")]
    assert all("domain" not in d for d in legacy) and max(len(d.get("open", [])) for d in legacy) == 2
    write_log(a, req_a, record("response", "a-1", "secret/data/app", time="2026-11-25T10:00:01Z"),
              *pair("a-2", "secret/data/app", time="2026-11-27T10:00:00Z"))  # A's clock moves two days on
    collect(ledger, [a])
    write_log(b, req_b, record("response", "b-1", "secret/data/app", time="2026-11-25T10:00:02Z"))
    collect(ledger, [b])
    got = events(ledger)
    assert unpaired(got) == []
    assert kinds_of(got).count("vault.secret_read") == 3


@pytest.mark.parametrize(("path", "operation", "mount_type", "hands_out_a_secret"), [
    ("transit/decrypt/payments", "update", "transit", True),  # answers with the plaintext
    ("transit/datakey/plaintext/payments", "update", "transit", True),  # a data key in plaintext
    ("transit/export/encryption-key/payments", "read", "transit", True),  # the key material itself
    ("identity/oidc/token/ci-role", "read", "identity", True),  # a signed identity token for whoever asks
    ("totp/code/deploy-bot", "read", "totp", True),  # a valid one-time code
    ("transit/encrypt/payments", "update", "transit", False),  # ciphertext out: no secret handed out
    ("transit/keys/payments", "read", "transit", False),  # key metadata, no material
    ("identity/entity/id/ent-ci", "read", "identity", False),
])
def test_engines_that_hand_out_a_secret_count_as_reads(tmp_path: Path, path: str, operation: str,
                                                       mount_type: str, hands_out_a_secret: bool) -> None:
    log = write_log(tmp_path, *pair("r1", path, operation=operation, mount_type=mount_type))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [log])
        evs = events(ledger)
    # the response line is the read (its request line is vault.request_received)
    assert kinds_of(evs).count("vault.secret_read") == (1 if hands_out_a_secret else 0), kinds_of(evs)
