"""Canary secrets planted in every field of every CI sample never reach any output.

Three canaries: an OIDC token (a real signed JWT), the webhook secret, and raw AI
payload text. From every record of every sample under samples/ci/events and
samples/ci/hostile (delivery bodies and headers included, re-signed so they pass
verification) one variant is made per string field with the token in it, one
per string field with the webhook secret in it, and one per JSON object with raw
AI text under each payload-like key. OIDC tokens get variants with the canaries
in every claim. All of it is collected; then the ledger file, the evidence
store, stdout, stderr and a `fedledger export --include-raw` folder are searched.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from tests.fedledger_process import SAMPLES_CI, fedledger, new_ledger

KEYS = SAMPLES_CI / "keys"
WEBHOOK_CANARY = "CANARY-webhook-secret-7Qx2pL9v"
AI_CANARY = "CANARY raw AI prompt: patient Zyxwvut Qponm, SSN 000-99-1234"
AI_KEYS = ("prompt", "response", "body", "input", "payload", "output", "messages", "requestBody")


def canary_token() -> str:
    key = serialization.load_pem_private_key((KEYS / "oidc-test-key.pem").read_bytes(), password=None)
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": "sts.amazonaws.com",
              "sub": "repo:agency-gov/claims-model:environment:production", "jti": "canary-7f3e",
              "iat": 1795183225, "nbf": 1795183225, "exp": 1795183525}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "fedledger-sample-ci-1"})  # type: ignore[arg-type]


TOKEN_CANARY = canary_token()


def forbidden() -> dict[str, bytes]:
    head, payload, signature = TOKEN_CANARY.split(".")
    return {
        "token": TOKEN_CANARY.encode(),
        "token-signature": signature.encode(),
        "token-body": f"{head}.{payload}".encode(),
        "webhook-secret": WEBHOOK_CANARY.encode(),
        "webhook-secret-b64": base64.b64encode(WEBHOOK_CANARY.encode()),
        "ai-text": AI_CANARY.encode(),
        "ai-text-fragment": b"Zyxwvut Qponm",
        "ai-text-json-escaped": json.dumps(AI_CANARY).encode()[1:-1],
    }


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_paths(item, (*path, index))


def object_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        yield path
        for key, item in value.items():
            yield from object_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from object_paths(item, (*path, index))


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy_ = copy.deepcopy(doc)
    target = copy_
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy_


def with_key(doc: Any, path: tuple[Any, ...], key: str, value: Any) -> Any:
    copy_ = copy.deepcopy(doc)
    target = copy_
    for step in path:
        target = target[step]
    target[key] = value
    return copy_


def variants(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every field with the token, every field with the secret, every object with AI text."""
    for path in string_paths(doc):
        yield replaced(doc, path, TOKEN_CANARY)
        yield replaced(doc, path, f"prefix {WEBHOOK_CANARY} suffix")
    for number, path in enumerate(object_paths(doc)):
        yield with_key(doc, path, AI_KEYS[number % len(AI_KEYS)], AI_CANARY)


def signed_delivery(headers: dict[str, Any], body_doc: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(body_doc, separators=(",", ":"))
    fresh = dict(headers)
    if "X-Hub-Signature-256" in fresh:
        fresh["X-Hub-Signature-256"] = "sha256=" + hmac.new(WEBHOOK_CANARY.encode(), body.encode(),
                                                            hashlib.sha256).hexdigest()
    if "X-Gitlab-Token" in fresh:
        fresh["X-Gitlab-Token"] = WEBHOOK_CANARY
    return distinct_delivery({"headers": fresh, "body": body})


def distinct_delivery(delivery: dict[str, Any]) -> dict[str, Any]:
    """Each planted variant is a delivery of its own: its delivery id gets a suffix from its content
    (one id with two contents is a replay, quarantined as a conflicting duplicate)."""
    headers = dict(delivery["headers"])
    digest = hashlib.sha256(json.dumps(delivery, sort_keys=True).encode()).hexdigest()[:16]
    for name in ("X-GitHub-Delivery", "X-Gitlab-Event-UUID"):
        if isinstance(headers.get(name), str):
            headers[name] = f"{headers[name]}-{digest}"
    return {**delivery, "headers": headers}


def token_variants() -> Iterator[str]:
    """The story token's claims, each replaced by a canary, re-signed with the trusted test key."""
    key = serialization.load_pem_private_key((KEYS / "oidc-test-key.pem").read_bytes(), password=None)
    base = jwt.decode(TOKEN_CANARY, options={"verify_signature": False})
    base.update({"repository": "agency-gov/claims-model", "run_id": "9876543210", "sha": "9f2c4e1b",
                 "job_workflow_ref": "agency-gov/claims-model/.github/workflows/deploy.yml@refs/heads/main",
                 "runner_environment": "self-hosted", "actor": "deploy-bot"})
    for name in list(base):
        for value in (TOKEN_CANARY, WEBHOOK_CANARY):
            yield jwt.encode({**base, name: value}, key, algorithm="RS256",  # type: ignore[arg-type]
                             headers={"kid": "fedledger-sample-ci-1"})
    for ai_key in AI_KEYS:
        yield jwt.encode({**base, ai_key: AI_CANARY}, key, algorithm="RS256",  # type: ignore[arg-type]
                         headers={"kid": "fedledger-sample-ci-1"})
    yield jwt.encode(base, key, algorithm="RS256", headers={"kid": "fedledger-sample-ci-1", "x": WEBHOOK_CANARY})  # type: ignore[arg-type]


def sample_records() -> Iterator[dict[str, Any]]:
    for folder in ("events", "hostile"):
        for path in sorted((SAMPLES_CI / folder).iterdir()):
            data = path.read_bytes()
            chunks = [data] if path.suffix == ".json" else data.splitlines()
            for chunk in chunks:
                try:
                    doc = json.loads(chunk)
                except (ValueError, RecursionError):
                    continue
                if isinstance(doc, dict):
                    yield doc


def planted_lines() -> Iterator[bytes]:
    for doc in sample_records():
        if isinstance(doc.get("headers"), dict) and isinstance(doc.get("body"), str):
            body = json.loads(doc["body"])
            for body_variant in variants(body):
                yield json.dumps(signed_delivery(doc["headers"], body_variant)).encode()
            delivery = signed_delivery(doc["headers"], body)
            for header_variant in variants({"headers": delivery["headers"]}):
                yield json.dumps(distinct_delivery({**delivery, "headers": header_variant["headers"]})).encode()
            yield json.dumps({**delivery, "note": AI_CANARY, "prompt": AI_CANARY}).encode()
            continue
        if doc.get("event_type") == "ci.oidc_token":
            doc = {**doc, "token": TOKEN_CANARY}
        for variant in variants(doc):
            yield json.dumps(variant).encode()
    for token in token_variants():
        yield json.dumps({"event_type": "ci.oidc_token", "time": "2026-11-20T14:00:27Z", "job_id": "31415926535",
                          "token": token}).encode()
        yield f"2026-11-20T14:00:27Z {token}".encode()


def test_no_canary_reaches_ledger_store_output_or_export(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    lines = list(planted_lines())
    assert len(lines) > 1000
    (inputs / "planted.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (inputs / "planted-token.jwt").write_text(f"2026-11-20T14:00:27Z {TOKEN_CANARY}\n")
    (inputs / "planted-bare-token.jwt").write_text(TOKEN_CANARY)
    secret_file = tmp_path / "webhook-secret.txt"
    secret_file.write_text(WEBHOOK_CANARY + "\n")
    ledger = new_ledger(tmp_path)
    options = ["--jwks", str(KEYS / "jwks.json"), "--audience", "sts.amazonaws.com", "--webhook-secret-file",
               str(secret_file)]
    outputs: list[bytes] = []
    human = fedledger("collect", "ci", str(inputs), *options, ledger=ledger)
    assert human.returncode == 1, human.stderr  # some variants are quarantined (secret in record, bad time...)
    outputs += [human.stdout, human.stderr]
    as_json = fedledger("--format", "json", "collect", "ci", "-", *options, ledger=ledger,
                        stdin=(inputs / "planted.jsonl").read_bytes())
    outputs += [as_json.stdout, as_json.stderr]
    doc = json.loads(as_json.stdout)
    assert doc["read"] == doc["appended"] + doc["duplicates"] + doc["quarantined"]
    assert doc["read"] == len(lines)
    assert doc["appended"] + doc["duplicates"] > len(lines) // 3  # most variants are still evidence, redacted
    checkpoint = fedledger("checkpoint", ledger=ledger)
    assert checkpoint.returncode == 0, checkpoint.stderr
    export_dir = tmp_path / "export"
    exported = fedledger("export", "--out", str(export_dir), "--include-raw", ledger=ledger)
    assert exported.returncode == 0, exported.stderr
    outputs += [checkpoint.stdout, checkpoint.stderr, exported.stdout, exported.stderr]

    places: dict[str, bytes] = {f"output[{i}]": data for i, data in enumerate(outputs)}
    stored = [p for p in tmp_path.iterdir() if p.name.startswith("ledger.db")]
    for path in stored + [export_dir]:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            places[str(file)] = file.read_bytes()
    assert any("objects" in name for name in places)  # the evidence store was searched, not skipped
    assert any(name.endswith("entries.jsonl") for name in places)
    leaks = [(name, what) for name, data in places.items() for what, needle in forbidden().items() if needle in data]
    assert leaks == []
