"""Vault file-audit-device samples for the shared CI job story, plus hostile files.

Run from the repository root: ``python -m samples.make.vault``. Writes
``samples/vault/``: ``audit.log`` (the story, HMAC'd with the fixed salt in
``audit-salt.txt``), one ``audit.<defect>.log`` per hostile case and nothing else
(the README is written by hand). Keys, ids and times are fixed; no clock reads.
"""

from __future__ import annotations

import hashlib
import uuid
from calendar import timegm
from pathlib import Path
from typing import Any

import orjson

from collector.sources.vault import audit_hmac
from samples.make import story as s

OUT = Path(__file__).resolve().parent.parent / "vault"
SALT = "b6e4c2a0-5d3f-4e71-9a8b-0c1d2e3f4a5b"  # the audit device's salt (test value, committed)
NON_HMAC_REQUEST_KEYS = {"common_name", "ttl"}  # pki mount tuned with audit_non_hmac_request_keys
NON_HMAC_RESPONSE_KEYS = {"serial_number"}  # pki mount tuned with audit_non_hmac_response_keys
VAULT_VERSION = "v1.15.6+builtin.vault"
ADMIN_ENTITY = "0f9e8d7c-6b5a-4d3c-9b2a-1f0e9d8c7b6a"
ADMIN_IP = "10.0.5.21"
RUNNER_IP = "10.20.7.14"
PERMISSION_DENIED = "1 error occurred:\n\t* permission denied\n\n"


def h(value: str) -> str:
    return audit_hmac(SALT.encode(), value)


def fake_secret(label: str, length: int = 32) -> str:
    """A deterministic stand-in for a secret value (never a real credential)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    digest = hashlib.sha512(label.encode()).digest() * 4
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def fake_token(label: str) -> str:
    return "hvs." + fake_secret("token:" + label, 91)


def request_id(label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "fedledger-sample-vault/" + label))


def at(moment: str, micros: int) -> str:
    """A story time (second precision) plus microseconds, as Vault writes it."""
    return f"{moment[:19]}.{micros:06d}Z"


def epoch(moment: str) -> int:
    return timegm((int(moment[0:4]), int(moment[5:7]), int(moment[8:10]), int(moment[11:13]),
                   int(moment[14:16]), int(moment[17:19]), 0, 0, 0))


def hmac_data(value: Any, plain: set[str] = frozenset(), key: str | None = None) -> Any:  # type: ignore[assignment]
    """Vault's audit hashing: every string leaf HMAC'd unless its key is configured non-HMAC."""
    if key in plain:
        return value
    if isinstance(value, str):
        return h(value)
    if isinstance(value, list):
        return [hmac_data(v, plain, key) for v in value]
    if isinstance(value, dict):
        return {k: hmac_data(v, plain, k) for k, v in value.items()}
    return value


class Identity:
    """A Vault token and who holds it."""

    def __init__(self, label: str, display_name: str, policies: list[str], metadata: dict[str, str],
                 entity_id: str, ttl: int, issued: str, remote: str) -> None:
        self.token = fake_token(label)
        self.accessor = fake_secret("accessor:" + label, 24)
        self.display_name = display_name
        self.policies = policies
        self.metadata = metadata
        self.entity_id = entity_id
        self.ttl = ttl
        self.issued = issued
        self.remote = remote

    def auth(self) -> dict[str, Any]:
        return {
            "client_token": h(self.token),
            "accessor": h(self.accessor),
            "display_name": self.display_name,
            "policies": self.policies,
            "token_policies": self.policies,
            "identity_policies": [],
            "metadata": self.metadata,
            "entity_id": self.entity_id,
            "token_type": "service",
            "token_ttl": self.ttl,
            "token_issue_time": self.issued,
        }


JOB = Identity(
    "job", f"jwt-{s.OIDC_SUBJECT}", ["ci-inference", "default"],
    {"role": s.VAULT_ROLE, "job_id": str(s.JOB_ID), "run_id": str(s.RUN_ID), "run_attempt": str(s.RUN_ATTEMPT),
     "repository": s.REPOSITORY, "sha": s.GIT_SHA, "ref": s.REF, "sub": s.OIDC_SUBJECT, "actor": s.ACTOR,
     "job_workflow_ref": f"{s.REPOSITORY}/{s.WORKFLOW_PATH}@{s.REF}", "runner_environment": "self-hosted"},
    s.VAULT_ENTITY_ID, s.CERT_TTL_SECONDS, s.T_VAULT_LOGIN, RUNNER_IP,
)
ADMIN = Identity("admin", "userpass-jane.admin", ["default", "vault-admin"], {"username": "jane.admin"},
                 ADMIN_ENTITY, 3600, "2026-11-20T13:50:00Z", ADMIN_IP)


def pair(label: str, moment: str, micros: int, *, path: str, operation: str, caller: Identity | None,
         mount_type: str, mount_point: str, data: dict[str, Any] | None = None, plain_request: set[str] = set(),
         response: dict[str, Any] | None = None, new_auth: Identity | None = None, error: str = "",
         remote: str | None = None) -> list[dict[str, Any]]:
    """The request record and the response record Vault writes for one request."""
    rid = request_id(label)
    remote = remote or (caller.remote if caller else RUNNER_IP)
    auth = caller.auth() if caller else {"policy_results": {"allowed": True}, "token_type": "default"}
    request = {
        "id": rid,
        "client_id": caller.entity_id if caller else "",
        "operation": operation,
        "mount_point": mount_point,
        "mount_type": mount_type,
        "mount_accessor": f"{mount_type}_{hashlib.sha256(mount_point.encode()).hexdigest()[:8]}",
        "mount_running_version": VAULT_VERSION,
        "mount_class": "auth" if mount_point.startswith("auth/") else "secret",
        "client_token": h(caller.token) if caller else "",
        "client_token_accessor": h(caller.accessor) if caller else "",
        "namespace": {"id": "root"},
        "path": path,
        "remote_address": remote,
        "remote_port": 40000 + int(hashlib.sha256(rid.encode()).hexdigest()[:3], 16),
    }
    if data is not None:
        request["data"] = hmac_data(data, plain_request)
    req_record = {"time": at(moment, micros), "type": "request", "auth": auth, "request": request, "error": error}
    resp_body: dict[str, Any] = {"mount_type": mount_type, "mount_accessor": request["mount_accessor"],
                                 "mount_point": mount_point, "mount_running_plugin_version": VAULT_VERSION}
    if new_auth is not None:
        resp_body["auth"] = new_auth.auth()
    if response is not None:
        resp_body.update(response)
    resp_record = {"time": at(moment, micros + 2417), "type": "response", "auth": auth, "request": request,
                   "response": resp_body, "error": error}
    return [req_record, resp_record]


def story_records() -> list[dict[str, Any]]:
    """The admin set-up and the CI job's Vault activity, in log order."""
    records: list[dict[str, Any]] = []
    job_issue = JOB.issued
    records += pair("admin-login", "2026-11-20T13:50:00Z", 120331, path="auth/userpass/login/jane.admin",
                    operation="update", caller=None, mount_type="userpass", mount_point="auth/userpass/",
                    data={"password": fake_secret("admin-password")}, new_auth=ADMIN, remote=ADMIN_IP)
    policy_text = ('path "pki/issue/ci-job" { capabilities = ["update"] }\n'
                   'path "secret/data/ci/*" { capabilities = ["read"] }\n'
                   'path "database/creds/claims-readonly" { capabilities = ["read"] }\n')
    records += pair("policy-change", "2026-11-20T13:51:10Z", 402118, path=f"sys/policies/acl/{s.VAULT_ROLE}",
                    operation="update", caller=ADMIN, mount_type="system", mount_point="sys/",
                    data={"policy": policy_text})
    records += pair("audit-enable", "2026-11-20T13:52:30Z", 88410, path="sys/audit/file-siem", operation="update",
                    caller=ADMIN, mount_type="system", mount_point="sys/",
                    data={"type": "file", "description": "copy for the SIEM", "local": False,
                          "options": {"file_path": "/var/log/vault/siem-audit.log", "hmac_accessor": "true"}})
    monitor = Identity("monitor", "token-monitoring", ["default", "monitoring"], {}, "", 86400,
                       "2026-11-20T13:53:00Z", ADMIN_IP)
    records += pair("token-create", "2026-11-20T13:53:00Z", 530092, path="auth/token/create", operation="update",
                    caller=ADMIN, mount_type="token", mount_point="auth/token/",
                    data={"policies": ["monitoring"], "ttl": "24h", "display_name": "monitoring"}, new_auth=monitor)
    records += pair("secret-write", "2026-11-20T13:54:12Z", 718264, path="secret/data/ci/claims-model/registry",
                    operation="update", caller=ADMIN, mount_type="kv", mount_point="secret/",
                    data={"data": {"username": "ci-push", "password": fake_secret("registry")},
                          "options": {"cas": 2}},
                    response={"data": hmac_data({"created_time": "2026-11-20T13:54:12.718264Z", "deletion_time": "",
                                                 "destroyed": False, "version": 3})})
    records += pair("job-login", s.T_VAULT_LOGIN, 104377, path=f"auth/{s.VAULT_MOUNT}/login", operation="update",
                    caller=None, mount_type="jwt", mount_point=f"auth/{s.VAULT_MOUNT}/",
                    data={"jwt": "eyJ" + fake_secret("oidc-jwt", 300), "role": s.VAULT_ROLE}, new_auth=JOB)
    records += pair("job-lookup-self", s.T_VAULT_LOGIN, 612930, path="auth/token/lookup-self", operation="read",
                    caller=JOB, mount_type="token", mount_point="auth/token/",
                    response={"data": hmac_data({"display_name": JOB.display_name, "entity_id": JOB.entity_id,
                                                 "id": JOB.token, "accessor": JOB.accessor,
                                                 "policies": JOB.policies, "path": "auth/jwt/login"})
                              | {"ttl": s.CERT_TTL_SECONDS - 1, "renewable": True, "orphan": True,
                                 "issue_time": job_issue, "expire_time": "2026-11-20T14:30:31Z"}})
    pem = "-----BEGIN CERTIFICATE-----\n" + fake_secret("cert", 64) + "\n-----END CERTIFICATE-----"
    records += pair("job-pki-issue", s.T_PKI_ISSUE, 250811, path=f"pki/issue/{s.VAULT_PKI_ROLE}", operation="update",
                    caller=JOB, mount_type="pki", mount_point="pki/",
                    data={"common_name": s.CERT_COMMON_NAME, "ttl": f"{s.CERT_TTL_SECONDS}s", "format": "pem"},
                    plain_request=NON_HMAC_REQUEST_KEYS,
                    response={"data": hmac_data({"certificate": pem, "issuing_ca": pem, "ca_chain": [pem],
                                                 "private_key": "-----BEGIN RSA PRIVATE KEY-----\n"
                                                 + fake_secret("pkey", 64) + "\n-----END RSA PRIVATE KEY-----",
                                                 "private_key_type": "rsa", "serial_number": s.CERT_SERIAL,
                                                 "expiration": epoch(s.T_PKI_ISSUE) + s.CERT_TTL_SECONDS},
                                                NON_HMAC_RESPONSE_KEYS)})
    records += pair("job-kv2-read", s.T_SECRET_READ, 31207, path="secret/data/ci/claims-model/registry",
                    operation="read", caller=JOB, mount_type="kv", mount_point="secret/",
                    response={"data": hmac_data({"data": {"username": "ci-push", "password": fake_secret("registry")},
                                                 "metadata": {"created_time": "2026-10-01T09:00:00.000000Z",
                                                              "deletion_time": "", "version": 3,
                                                              "destroyed": False, "custom_metadata": None}})})
    records += pair("job-kv1-read", s.T_SECRET_READ, 497731, path="kv/ci/claims-model/config", operation="read",
                    caller=JOB, mount_type="kv", mount_point="kv/",
                    response={"data": hmac_data({"endpoint": f"https://{s.AI_ENDPOINT}", "api_key": fake_secret("ai")})})
    records += pair("job-db-creds", "2026-11-20T14:00:36Z", 8820, path="database/creds/claims-readonly",
                    operation="read", caller=JOB, mount_type="database", mount_point="database/",
                    response={"secret": {"lease_id": "database/creds/claims-readonly/" + fake_secret("lease", 24)},
                              "data": hmac_data({"username": "v-jwt-claims-ro-" + fake_secret("dbuser", 20),
                                                 "password": fake_secret("dbpass")})})
    records += pair("job-denied", "2026-11-20T14:00:38Z", 774002, path="secret/data/prod/db-admin", operation="read",
                    caller=JOB, mount_type="kv", mount_point="secret/", error=PERMISSION_DENIED)
    records += pair("job-renew", "2026-11-20T14:05:00Z", 319448, path="auth/token/renew-self", operation="update",
                    caller=JOB, mount_type="token", mount_point="auth/token/", data={"increment": "30m"},
                    new_auth=JOB)
    records += pair("job-revoke", "2026-11-20T14:11:02Z", 60115, path="auth/token/revoke-self", operation="update",
                    caller=JOB, mount_type="token", mount_point="auth/token/")
    return records


def line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record) + b"\n"


def lookup_pair(label: str, moment: str) -> bytes:
    """A harmless good request/response pair that starts every hostile file."""
    return b"".join(line(r) for r in pair(label, moment, 1000, path="auth/token/lookup-self", operation="read",
                                          caller=ADMIN, mount_type="token", mount_point="auth/token/"))


def hostile_files() -> dict[str, bytes]:
    """File name → bytes: each file is one good pair, then its defect."""
    files: dict[str, bytes] = {}
    t = "2026-11-20T15:00:00Z"

    # log_raw on: the token, accessor and secret values are in the clear.
    raw = pair("raw-token", "2026-11-20T15:00:05Z", 1000, path="secret/data/ci/claims-model/registry",
               operation="read", caller=JOB, mount_type="kv", mount_point="secret/",
               response={"data": {"data": {"password": fake_secret("registry")}}})
    for record in raw:
        for auth in (record["auth"],):
            auth["client_token"], auth["accessor"] = JOB.token, JOB.accessor
        record["request"]["client_token"] = JOB.token
        record["request"]["client_token_accessor"] = JOB.accessor
    files["audit.raw-token.log"] = lookup_pair("raw-token-good", t) + b"".join(line(r) for r in raw)

    good, cut = pair("truncated", "2026-11-20T15:00:05Z", 1000, path="pki/issue/ci-job", operation="update",
                     caller=JOB, mount_type="pki", mount_point="pki/",
                     data={"common_name": s.CERT_COMMON_NAME, "ttl": "1800s"}, plain_request=NON_HMAC_REQUEST_KEYS)
    files["audit.truncated-line.log"] = (lookup_pair("truncated-good", t) + line(good) + line(cut)[:211] + b"\n"
                                         + lookup_pair("truncated-later", "2026-11-20T15:10:00Z"))

    files["audit.invalid-json.log"] = lookup_pair("invalid-good", t) + (
        b'{"time":"2026-11-20T15:00:05.000100Z","type":response,"request":{"id":"'
        + request_id("invalid").encode() + b'"}}\n')

    record = pair("non-utf8", "2026-11-20T15:00:05Z", 1000, path="auth/token/lookup-self", operation="read",
                  caller=ADMIN, mount_type="token", mount_point="auth/token/")[0]
    files["audit.non-utf8.log"] = lookup_pair("non-utf8-good", t) + line(record).replace(
        b'"userpass-jane.admin"', b'"userpass-jane.\xff\xfeadmin"')

    deep = pair("deep", "2026-11-20T15:00:05Z", 1000, path="secret/data/x", operation="update", caller=ADMIN,
                mount_type="kv", mount_point="secret/")[0]
    too_deep_for_json = line(deep).replace(b'"namespace":{"id":"root"}', b'"namespace":' + b"[" * 5000 + b"]" * 5000)
    deeper_than_vault = line(deep).replace(b'"namespace":{"id":"root"}', b'"namespace":' + b"[" * 100 + b"]" * 100)
    files["audit.deep-nesting.log"] = lookup_pair("deep-good", t) + too_deep_for_json + deeper_than_vault

    record = pair("surrogate", "2026-11-20T15:00:05Z", 1000, path="auth/token/lookup-self", operation="read",
                  caller=ADMIN, mount_type="token", mount_point="auth/token/")[0]
    files["audit.lone-surrogate.log"] = lookup_pair("surrogate-good", t) + line(record).replace(
        b'"userpass-jane.admin"', b'"userpass-jane.\\ud800admin"')

    record = pair("duplicate", "2026-11-20T15:00:05Z", 1000, path="auth/token/lookup-self", operation="read",
                  caller=ADMIN, mount_type="token", mount_point="auth/token/")[1]
    files["audit.duplicate-keys.log"] = lookup_pair("duplicate-good", t) + line(record).replace(
        b'"type":"response",', b'"type":"response","type":"request",', 1)

    request_only = pair("unpaired-request", "2026-11-20T15:00:05Z", 1000, path=f"pki/issue/{s.VAULT_PKI_ROLE}",
                        operation="update", caller=JOB, mount_type="pki", mount_point="pki/",
                        data={"common_name": s.CERT_COMMON_NAME, "ttl": "1800s"},
                        plain_request=NON_HMAC_REQUEST_KEYS)[0]
    response_only = pair("unpaired-response", "2026-11-20T15:01:00Z", 1000, path="secret/data/ci/claims-model/registry",
                         operation="read", caller=JOB, mount_type="kv", mount_point="secret/")[1]
    files["audit.unpaired.log"] = (lookup_pair("unpaired-good", t) + line(request_only) + line(response_only)
                                   + lookup_pair("unpaired-later", "2026-11-20T15:10:00Z"))
    return files


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "audit-salt.txt").write_text(SALT + "\n", encoding="ascii")
    (OUT / "audit.log").write_bytes(b"".join(line(r) for r in story_records()))
    for name, data in hostile_files().items():
        (OUT / name).write_bytes(data)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
