"""Generate samples/ci/: one CI job's story as webhooks, generic events and OIDC tokens, plus hostile files.

Run from the repository root: ``python -m samples.make.ci``. Keys are fixed: the
RSA test keys are committed under ``samples/ci/keys/`` and only created when
missing; RS256 (PKCS#1 v1.5) signatures are deterministic, so a re-run writes the
same bytes. Times come from :mod:`samples.make.story` (no clock reads).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from samples.make import story as s

ROOT = Path(__file__).resolve().parent.parent / "ci"
KEYS = ROOT / "keys"
EVENTS = ROOT / "events"
HOSTILE = ROOT / "hostile"

KEY_ID = "fedledger-sample-ci-1"
GITLAB_KEY_ID = "fedledger-sample-gitlab-1"
WEBHOOK_SECRET = "fedledger-sample-webhook-secret-2026"
GITLAB_ISSUER = "https://gitlab.com"
GITLAB_AUDIENCE = "https://vault.agency.gov"
GITLAB_PROJECT = "agency-gov/claims-model-mirror"
GITLAB_PROJECT_ID = 4477120
GITLAB_PIPELINE_ID = 1520046611
GITLAB_JOB_ID = 8452210377
GITLAB_SHA = s.GIT_SHA  # the mirror builds the same commit

RAW_AI_PROMPT = "Summarize claim #88231 for applicant Jane Q. Public, SSN 000-12-3456, diagnosis code F41.1"
RAW_AI_RESPONSE = "Claim #88231: applicant reports anxiety disorder; recommend approval of benefits."


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp())


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str) -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})


def github_claims(iat: int, *, lifetime: int = 300) -> dict[str, Any]:
    return {
        "jti": "5d3c1e0a-7b2f-4c6d-9e8a-1f0b2c3d4e5f",
        "sub": s.OIDC_SUBJECT,
        "aud": s.OIDC_AUDIENCE,
        "ref": s.REF,
        "sha": s.GIT_SHA,
        "repository": s.REPOSITORY,
        "repository_owner": s.ORG,
        "repository_id": str(s.REPOSITORY_ID),
        "repository_visibility": "internal",
        "run_id": str(s.RUN_ID),
        "run_number": "412",
        "run_attempt": str(s.RUN_ATTEMPT),
        "runner_environment": "self-hosted",
        "actor": s.ACTOR,
        "workflow": "deploy",
        "workflow_ref": f"{s.REPOSITORY}/{s.WORKFLOW_PATH}@{s.REF}",
        "job_workflow_ref": f"{s.REPOSITORY}/{s.WORKFLOW_PATH}@{s.REF}",
        "environment": "production",
        "event_name": "push",
        "ref_type": "branch",
        "iss": s.OIDC_ISSUER,
        "nbf": iat,
        "iat": iat,
        "exp": iat + lifetime,
    }


def gitlab_claims(iat: int) -> dict[str, Any]:
    return {
        "jti": "a1b2c3d4-0000-4000-8000-00000000c1ab",
        "iss": GITLAB_ISSUER,
        "aud": GITLAB_AUDIENCE,
        "sub": f"project_path:{GITLAB_PROJECT}:ref_type:branch:ref:main",
        "namespace_id": "118800", "namespace_path": s.ORG,
        "project_id": str(GITLAB_PROJECT_ID), "project_path": GITLAB_PROJECT,
        "user_id": "77", "user_login": s.ACTOR, "user_email": s.ACTOR_EMAIL,
        "pipeline_id": str(GITLAB_PIPELINE_ID), "pipeline_source": "push",
        "job_id": str(GITLAB_JOB_ID), "ref": "main", "ref_type": "branch", "ref_protected": "true",
        "runner_id": 9912, "runner_environment": "self-hosted", "sha": GITLAB_SHA,
        "environment": "production", "deployment_tier": "production",
        "nbf": iat - 5, "iat": iat, "exp": iat + 300,
    }


# -- GitHub payloads -------------------------------------------------------------------------

REPO_OBJ = {
    "id": s.REPOSITORY_ID, "node_id": "R_kgDOKcXf1Q", "name": s.REPOSITORY.split("/")[1],
    "full_name": s.REPOSITORY, "private": True, "visibility": "internal",
    "owner": {"login": s.ORG, "id": 91822, "type": "Organization"},
    "html_url": f"https://github.com/{s.REPOSITORY}", "default_branch": "main",
}
ORG_OBJ = {"login": s.ORG, "id": 91822, "node_id": "O_kgDOAAFmLg", "url": f"https://api.github.com/orgs/{s.ORG}"}
SENDER = {"login": s.ACTOR, "id": 100233, "type": "Bot", "site_admin": False}


def workflow_run(action: str) -> dict[str, Any]:
    completed = action == "completed"
    return {
        "action": action,
        "workflow_run": {
            "id": s.RUN_ID, "name": "deploy", "node_id": "WFR_kwLOKcXf1c8AAAACTxY9yg",
            "head_branch": "main", "head_sha": s.GIT_SHA, "path": s.WORKFLOW_PATH,
            "display_title": "Merge pull request #212 from agency-gov/model-v7", "run_number": 412,
            "event": "push", "status": {"completed": "completed", "in_progress": "in_progress"}.get(action, "queued"),
            "conclusion": "success" if completed else None, "workflow_id": 70112233,
            "check_suite_id": 22910001234, "url": f"https://api.github.com/repos/{s.REPOSITORY}/actions/runs/{s.RUN_ID}",
            "html_url": f"https://github.com/{s.REPOSITORY}/actions/runs/{s.RUN_ID}",
            "pull_requests": [], "created_at": s.T_TRIGGER,
            "updated_at": s.T_JOB_COMPLETED if completed else (s.T_JOB_STARTED if action == "in_progress" else s.T_TRIGGER),
            "actor": SENDER, "triggering_actor": SENDER, "run_attempt": s.RUN_ATTEMPT,
            "run_started_at": s.T_TRIGGER,
            "head_commit": {"id": s.GIT_SHA, "message": "Merge pull request #212 from agency-gov/model-v7",
                            "timestamp": "2026-11-20T13:59:48Z",
                            "author": {"name": "Deploy Bot", "email": s.ACTOR_EMAIL}},
            "repository": {"id": s.REPOSITORY_ID, "full_name": s.REPOSITORY},
        },
        "workflow": {"id": 70112233, "name": "deploy", "path": s.WORKFLOW_PATH, "state": "active"},
        "repository": REPO_OBJ,
        "organization": ORG_OBJ,
        "sender": SENDER,
    }


def workflow_job(action: str) -> dict[str, Any]:
    started = action in ("in_progress", "completed")
    completed = action == "completed"
    steps = []
    if started:
        steps = [
            {"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1,
             "started_at": s.T_JOB_STARTED, "completed_at": "2026-11-20T14:00:22Z"},
            {"name": "Build, sign and infer", "status": "completed" if completed else "in_progress",
             "conclusion": "success" if completed else None, "number": 2, "started_at": "2026-11-20T14:00:22Z",
             "completed_at": s.T_JOB_COMPLETED if completed else None},
        ]
    return {
        "action": action,
        "workflow_job": {
            "id": s.JOB_ID, "run_id": s.RUN_ID, "run_attempt": s.RUN_ATTEMPT, "node_id": "CR_kwDOKcXf1c8AAAAHUGVfVw",
            "head_sha": s.GIT_SHA, "head_branch": "main", "workflow_name": "deploy",
            "url": f"https://api.github.com/repos/{s.REPOSITORY}/actions/jobs/{s.JOB_ID}",
            "html_url": f"https://github.com/{s.REPOSITORY}/actions/runs/{s.RUN_ID}/job/{s.JOB_ID}",
            "status": action, "conclusion": "success" if completed else None,
            "created_at": s.T_TRIGGER, "started_at": s.T_JOB_STARTED if started else s.T_TRIGGER,
            "completed_at": s.T_JOB_COMPLETED if completed else None, "name": s.JOB_NAME, "steps": steps,
            "labels": list(s.RUNNER_LABELS),
            "runner_id": 77 if started else None, "runner_name": s.RUNNER_NAME if started else None,
            "runner_group_id": 12 if started else None, "runner_group_name": s.RUNNER_GROUP if started else None,
        },
        "repository": REPO_OBJ,
        "organization": ORG_OBJ,
        "sender": SENDER,
    }


def github_delivery(event: str, payload: dict[str, Any], delivery_id: str, *, secret: str = WEBHOOK_SECRET) -> dict[str, Any]:
    body = json.dumps(payload, separators=(",", ":"))
    signature = "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return {
        "headers": {
            "Accept": "*/*", "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/8c2ae1b",
            "X-GitHub-Delivery": delivery_id, "X-GitHub-Event": event, "X-GitHub-Hook-ID": "448812301",
            "X-GitHub-Hook-Installation-Target-ID": "91822", "X-GitHub-Hook-Installation-Target-Type": "organization",
            "X-Hub-Signature-256": signature,
        },
        "body": body,
    }


# -- GitLab payloads -------------------------------------------------------------------------

GITLAB_RUNNER = {"id": 9912, "description": "govcloud-gl-runner-03", "runner_type": "group_type", "active": True,
                 "is_shared": False, "tags": ["self-hosted", "govcloud", "us-gov-west-1"]}
GITLAB_USER = {"id": 77, "name": "Deploy Bot", "username": s.ACTOR, "email": s.ACTOR_EMAIL}


def gitlab_pipeline() -> dict[str, Any]:
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": GITLAB_PIPELINE_ID, "iid": 388, "name": "deploy", "ref": "main", "tag": False, "sha": GITLAB_SHA,
            "before_sha": "0" * 40, "source": "push", "status": "success", "detailed_status": "passed",
            "stages": ["build", "sign", "infer"], "created_at": "2026-11-20 14:00:02 UTC",
            "finished_at": "2026-11-20 14:11:04 UTC", "duration": 655, "queued_duration": 3,
            "variables": [{"key": "DEPLOY_REGION", "value": "us-gov-west-1"}],
            "url": f"https://gitlab.com/{GITLAB_PROJECT}/-/pipelines/{GITLAB_PIPELINE_ID}",
        },
        "user": GITLAB_USER,
        "project": {"id": GITLAB_PROJECT_ID, "name": "claims-model-mirror", "path_with_namespace": GITLAB_PROJECT,
                    "web_url": f"https://gitlab.com/{GITLAB_PROJECT}", "default_branch": "main",
                    "visibility": "private"},
        "commit": {"id": GITLAB_SHA, "message": "Merge branch 'model-v7' into 'main'",
                   "timestamp": "2026-11-20T13:59:48+00:00", "author": {"name": "Deploy Bot", "email": s.ACTOR_EMAIL}},
        "builds": [{"id": GITLAB_JOB_ID, "stage": "build", "name": s.JOB_NAME, "status": "success",
                    "created_at": "2026-11-20 14:00:02 UTC", "started_at": "2026-11-20 14:00:21 UTC",
                    "finished_at": "2026-11-20 14:11:01 UTC", "duration": 640.5, "queued_duration": 1.2,
                    "when": "on_success", "manual": False, "allow_failure": False, "user": GITLAB_USER,
                    "runner": GITLAB_RUNNER, "environment": {"name": "production", "action": "start"}}],
    }


def gitlab_job() -> dict[str, Any]:
    return {
        "object_kind": "build", "ref": "main", "tag": False, "before_sha": "0" * 40, "sha": GITLAB_SHA,
        "build_id": GITLAB_JOB_ID, "build_name": s.JOB_NAME, "build_stage": "build", "build_status": "success",
        "build_created_at": "2026-11-20 14:00:02 UTC", "build_started_at": "2026-11-20 14:00:21 UTC",
        "build_finished_at": "2026-11-20 14:11:01 UTC", "build_duration": 640.5, "build_queued_duration": 1.2,
        "build_allow_failure": False, "build_failure_reason": "unknown_failure", "retries_count": 0,
        "pipeline_id": GITLAB_PIPELINE_ID, "project_id": GITLAB_PROJECT_ID, "project_name": "Agency Gov / claims-model-mirror",
        "user": GITLAB_USER, "runner": GITLAB_RUNNER,
        "commit": {"id": GITLAB_PIPELINE_ID, "name": "Build pipeline", "sha": GITLAB_SHA,
                   "message": "Merge branch 'model-v7' into 'main'", "status": "success",
                   "started_at": "2026-11-20 14:00:02 UTC", "finished_at": "2026-11-20 14:11:04 UTC"},
        "repository": {"name": "claims-model-mirror", "homepage": f"https://gitlab.com/{GITLAB_PROJECT}",
                       "git_http_url": f"https://gitlab.com/{GITLAB_PROJECT}.git", "visibility_level": 0},
        "project": {"id": GITLAB_PROJECT_ID, "path_with_namespace": GITLAB_PROJECT},
        "environment": {"name": "production", "action": "start", "deployment_tier": "production"},
    }


def gitlab_delivery(event: str, payload: dict[str, Any], uuid: str, *, token: str = WEBHOOK_SECRET) -> dict[str, Any]:
    return {
        "headers": {"Content-Type": "application/json", "User-Agent": "GitLab/17.6.0", "X-Gitlab-Event": event,
                    "X-Gitlab-Event-UUID": uuid, "X-Gitlab-Instance": "https://gitlab.com",
                    "X-Gitlab-Webhook-UUID": "0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f", "X-Gitlab-Token": token},
        "body": json.dumps(payload, separators=(",", ":")),
    }


# -- generic events --------------------------------------------------------------------------


def sha256_text(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def job_events(token: str) -> list[dict[str, Any]]:
    job = str(s.JOB_ID)
    common = {"job_id": job, "run_id": str(s.RUN_ID), "repository": s.REPOSITORY, "git_sha": s.GIT_SHA}
    return [
        {"event_type": "ci.job.started", "timestamp": s.T_JOB_STARTED, **common, "user": s.ACTOR,
         "runner": s.RUNNER_NAME, "runner_labels": list(s.RUNNER_LABELS), "runner_group": s.RUNNER_GROUP,
         "runner_region": s.REGION, "workflow": "deploy", "run_attempt": s.RUN_ATTEMPT},
        {"event_type": "ci.oidc_token", "time": s.T_ASSUME_ROLE, **common, "role_session": s.ROLE_SESSION_NAME,
         "token": token},
        {"event_type": "ci.job.build_signed", "timestamp": s.T_BUILD_SIGNED, **common, "user": s.ACTOR,
         "artifact": s.ARTIFACT_NAME, "artifact_hash": s.ARTIFACT_DIGEST, "signer": s.SIGNER,
         "cert_serial": s.CERT_SERIAL, "cert_issued_by": "vault-pki:pki/issue/" + s.VAULT_PKI_ROLE,
         "signature_format": "dsse", "key_id": "ci-job-" + job},
        {"event_type": "ci.job.policy_decision", "timestamp": s.T_POLICY_DECISION, **common,
         "policy": "pipeline.deploy_gate", "decision": "allow", "engine": "opa",
         "input": {"runner_labels": list(s.RUNNER_LABELS), "region": s.REGION, "artifact_signed": True,
                   "ai_endpoint": s.AI_ENDPOINT, "access_key_class": "temporary"}},
        {"event_type": "ci.job.approval", "timestamp": s.T_APPROVAL, **common, "approver": s.APPROVER,
         "environment": "production", "decision": "approved", "comment_sha256": sha256_text("LGTM, change CR-1182")},
        {"event_type": "ci.job.inference_call", "timestamp": s.T_INFERENCE, "job_id": job, "run_id": str(s.RUN_ID),
         "user": s.ACTOR, "artifact_hash": s.ARTIFACT_DIGEST, "cert_issued_by": "vault-pki:pki/issue/" + s.VAULT_PKI_ROLE,
         "cert_serial": s.CERT_SERIAL, "ai_endpoint": s.AI_ENDPOINT, "payload_hash": sha256_text(RAW_AI_PROMPT),
         "response_hash": sha256_text(RAW_AI_RESPONSE), "model": "claims-summarizer-v7", "http_status": 200,
         "latency_ms": 812},
    ]


# -- writing ---------------------------------------------------------------------------------


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item, separators=(",", ":")).encode() + b"\n" for item in items)


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main() -> None:
    for folder in (KEYS, EVENTS, HOSTILE):
        folder.mkdir(parents=True, exist_ok=True)
    key = load_or_create_key(KEYS / "oidc-test-key.pem")
    gitlab_key = load_or_create_key(KEYS / "gitlab-oidc-test-key.pem")
    wrong_key = load_or_create_key(KEYS / "attacker-wrong-key.pem")
    write(KEYS / "jwks.json", (json.dumps({"keys": [public_jwk(key, KEY_ID), public_jwk(gitlab_key, GITLAB_KEY_ID)]},
                                          indent=2) + "\n").encode())
    write(ROOT / "webhook-secret.txt", WEBHOOK_SECRET.encode() + b"\n")

    iat = epoch(s.T_OIDC_ISSUED)
    token = sign(github_claims(iat), key, KEY_ID)

    # The story: GitHub deliveries (signed), generic job events with the OIDC token, GitLab mirror pair.
    write(EVENTS / "github-deliveries.jsonl", jsonl([
        github_delivery("workflow_run", workflow_run("requested"), "c0a1e7a0-c6a4-11f1-8a11-000000000001"),
        github_delivery("workflow_job", workflow_job("queued"), "c0a1e7a0-c6a4-11f1-8a11-000000000002"),
        github_delivery("workflow_job", workflow_job("in_progress"), "c0a1e7a0-c6a4-11f1-8a11-000000000003"),
        github_delivery("workflow_job", workflow_job("completed"), "c0a1e7a0-c6a4-11f1-8a11-000000000004"),
        github_delivery("workflow_run", workflow_run("completed"), "c0a1e7a0-c6a4-11f1-8a11-000000000005"),
    ]))
    write(EVENTS / "job-events.jsonl", jsonl(job_events(token)))
    write(EVENTS / "gitlab-deliveries.jsonl", jsonl([
        gitlab_delivery("Pipeline Hook", gitlab_pipeline(), "7e1f0a52-1c3d-4e5f-8a9b-0c1d2e3f4a51"),
        gitlab_delivery("Job Hook", gitlab_job(), "7e1f0a52-1c3d-4e5f-8a9b-0c1d2e3f4a52"),
    ]))
    gitlab_iat = epoch("2026-11-20T14:00:24Z")
    write(EVENTS / "gitlab-id-token.jwt",
          f"2026-11-20T14:00:30Z {sign(gitlab_claims(gitlab_iat), gitlab_key, GITLAB_KEY_ID)}\n".encode())
    write(EVENTS / "github-workflow_run.in_progress.payload.json",
          (json.dumps(workflow_run("in_progress"), indent=2) + "\n").encode())

    # Hostile files: each named after its defect; the README says the correct outcome.
    envelope = {"job_id": str(s.JOB_ID), "run_id": str(s.RUN_ID), "repository": s.REPOSITORY}
    write(HOSTILE / "oidc-token.expired.jsonl", jsonl([
        {"event_type": "ci.oidc_token", "time": rfc3339(iat + 3600), **envelope, "token": token},
    ]))
    forged = sign(github_claims(iat), wrong_key, KEY_ID)  # claims the real kid, signed by another key
    write(HOSTILE / "oidc-token.forged-wrong-key.jsonl", jsonl([
        {"event_type": "ci.oidc_token", "time": s.T_ASSUME_ROLE, **envelope, "token": forged},
    ]))
    not_yet = sign(github_claims(iat + 600), key, KEY_ID)
    write(HOSTILE / "oidc-token.not-yet-valid.jsonl", jsonl([
        {"event_type": "ci.oidc_token", "time": s.T_ASSUME_ROLE, **envelope, "token": not_yet},
    ]))
    wrong_aud = sign(github_claims(iat) | {"aud": "https://evil.example"}, key, KEY_ID)
    write(HOSTILE / "oidc-token.wrong-audience.jsonl", jsonl([
        {"event_type": "ci.oidc_token", "time": s.T_ASSUME_ROLE, **envelope, "token": wrong_aud},
    ]))
    bad = github_delivery("workflow_job", workflow_job("completed"), "c0a1e7a0-c6a4-11f1-8a11-0000000000ff")
    bad["body"] = bad["body"].replace('"conclusion":"success"', '"conclusion":"failure"', 1)  # body changed after signing
    write(HOSTILE / "webhook-delivery.bad-signature.jsonl", jsonl([bad]))
    unsigned = github_delivery("workflow_job", workflow_job("queued"), "c0a1e7a0-c6a4-11f1-8a11-0000000000fe")
    del unsigned["headers"]["X-Hub-Signature-256"]
    write(HOSTILE / "webhook-delivery.missing-signature.jsonl", jsonl([unsigned]))
    write(HOSTILE / "gitlab-delivery.wrong-token.jsonl",
          jsonl([gitlab_delivery("Job Hook", gitlab_job(), "7e1f0a52-1c3d-4e5f-8a9b-0c1d2e3f4aff",
                                 token="not-the-secret")]))
    raw_call = dict(job_events(token)[-1])
    raw_call.update({"prompt": RAW_AI_PROMPT, "response": RAW_AI_RESPONSE,
                     "request": {"body": {"messages": [{"role": "user", "content": RAW_AI_PROMPT}]}}})
    write(HOSTILE / "inference-call.raw-ai-payload.jsonl", jsonl([raw_call]))
    leaked = dict(job_events(token)[0])
    leaked["debug_env"] = {"ACTIONS_ID_TOKEN": token}
    write(HOSTILE / "job-started.raw-token-in-field.jsonl", jsonl([leaked]))
    good = jsonl([job_events(token)[0]])
    write(HOSTILE / "invalid-json.jsonl", good + b'{"event_type": "ci.job.started", "timestamp": "2026-11-20T14:00:20Z",,}\n')
    write(HOSTILE / "non-utf8.jsonl", b'{"event_type":"ci.job.started","timestamp":"2026-11-20T14:00:20Z","user":"\xff\xfe"}\n')
    write(HOSTILE / "deep-nesting.jsonl", b'{"event_type":"ci.job.started","timestamp":"2026-11-20T14:00:20Z","x":'
          + b"[" * 5000 + b"]" * 5000 + b"}\n")
    write(HOSTILE / "lone-surrogate-ud800.jsonl",
          b'{"event_type":"ci.job.started","timestamp":"2026-11-20T14:00:20Z","user":"\\ud800"}\n')
    write(HOSTILE / "duplicate-keys.jsonl",
          b'{"event_type":"ci.job.approval","timestamp":"2026-11-20T14:09:00Z","approver":"jane.isso@agency.gov",'
          b'"approver":"mallory@example.com","job_id":"31415926535"}\n')
    full = json.dumps(job_events(token)[2], separators=(",", ":")).encode()
    write(HOSTILE / "truncated-line.jsonl", full[: len(full) // 2] + b"\n" + good)
    write(HOSTILE / "truncated-last-line-no-newline.jsonl", good + full[: len(full) // 2])
    write(HOSTILE / "unsupported-event.push.json", (json.dumps(
        {"ref": s.REF, "before": "0" * 40, "after": s.GIT_SHA, "repository": REPO_OBJ, "sender": SENDER},
        indent=2) + "\n").encode())
    write(HOSTILE / "missing-time.jsonl", jsonl([{"event_type": "ci.job.approval", "job_id": str(s.JOB_ID),
                                                    "approver": s.APPROVER}]))


if __name__ == "__main__":
    main()
