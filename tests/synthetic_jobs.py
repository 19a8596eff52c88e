"""Synthetic normalized events (docs/events.md) for evaluation tests and the evaluation bench.

``job_events(i)`` is CI job number *i* told through all four sources, built from the
shared story in ``samples/make/story.py`` (job 0 uses its exact ids); jobs are
``spacing`` apart in time so their windows do not overlap. ``as_entries`` numbers
events into ``(seq, event, source)`` triples. Everything is fixed: no clock, no
randomness.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from samples.make import story

BASE = datetime(2026, 11, 20, 14, 0, 0, tzinfo=timezone.utc)
SOURCE_OF = {"vault": "vault", "aws": "cloudtrail", "ci": "ci", "attestation": "attestations"}


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _offset(text: str) -> timedelta:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) - BASE


def _hex(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def event(kind: str, time: datetime, *, actor: str | None = None, action: str | None = None,
          resource: str | None = None, status: str = "success", correlation: dict[str, str] | None = None,
          attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "time": stamp(time), "kind": kind, "actor": actor, "action": action or kind.split(".", 1)[1],
        "resource": resource, "outcome": {"status": status, "error": None if status == "success" else "denied"},
        "correlation": correlation or {}, "attrs": attrs or {},
    }


def job_ids(i: int) -> dict[str, str]:
    job = str(story.JOB_ID + i)
    run = str(story.RUN_ID + i)
    serial = story.CERT_SERIAL if i == 0 else ":".join(_hex(f"serial{i}")[k:k + 2] for k in range(0, 40, 2))
    return {
        "job_id": job, "run_id": run, "role_session": f"gha-{run}-{job}",
        "access_key_id": story.TEMP_ACCESS_KEY_ID if i == 0 else f"ASIAQEXAMPLE{i:08d}",
        "cert_serial": serial,
        "artifact_digest": story.ARTIFACT_DIGEST if i == 0 else f"sha256:{_hex(f'artifact{i}')}",
        "vault_entity_id": story.VAULT_ENTITY_ID if i == 0 else f"entity-{i:08d}",
    }


def job_events(i: int = 0, *, spacing: timedelta = timedelta(minutes=20), api_calls: int = 3,
               secret_reads: int = 2) -> list[dict[str, Any]]:
    """Every event of one complete, compliant CI job, in time order."""
    ids = job_ids(i)
    base = BASE + i * spacing

    def at(text: str, extra: int = 0) -> datetime:
        return base + _offset(text) + timedelta(seconds=extra)

    job, run = ids["job_id"], ids["run_id"]
    ci = {"job_id": job, "run_id": run, "repository": story.REPOSITORY, "runner": story.RUNNER_NAME}
    session = {"role_session": ids["role_session"], "access_key_id": ids["access_key_id"],
               "role_arn": story.ROLE_ARN}
    retain = at(story.T_ATTESTATION_PUT) + timedelta(days=400)
    events = [
        event("ci.workflow_run", at(story.T_TRIGGER), actor=story.ACTOR, action="requested",
              resource=story.REPOSITORY, correlation={"run_id": run, "repository": story.REPOSITORY,
                                                      "git_sha": story.GIT_SHA},
              attrs={"workflow": story.WORKFLOW_PATH, "run_attempt": 1}),
        event("ci.job_started", at(story.T_JOB_STARTED), actor=story.ACTOR, action="in_progress",
              resource=story.REPOSITORY, correlation=ci,
              attrs={"runner_labels": list(story.RUNNER_LABELS), "runner_group": story.RUNNER_GROUP,
                     "runner_region": story.REGION}),
        event("ci.oidc_token", at(story.T_OIDC_ISSUED), actor=story.OIDC_SUBJECT, action="issue",
              correlation={**ci, "oidc_subject": story.OIDC_SUBJECT},
              attrs={"verified": True, "issuer": story.OIDC_ISSUER, "audience": story.OIDC_AUDIENCE,
                     "token_sha256": _hex(f"token{i}")}),
        event("aws.assume_role_web_identity", at(story.T_ASSUME_ROLE), actor=story.OIDC_SUBJECT,
              action="AssumeRoleWithWebIdentity", resource=story.ROLE_ARN,
              correlation={**session, "oidc_subject": story.OIDC_SUBJECT},
              attrs={"provider": "token.actions.githubusercontent.com", "role_arn": story.ROLE_ARN,
                     "event_source": "sts.amazonaws.com", "event_name": "AssumeRoleWithWebIdentity",
                     "region": story.REGION, "access_key_class": None, "identity_type": "WebIdentityUser",
                     "mfa": False, "error_code": None}),
        event("vault.login", at(story.T_VAULT_LOGIN), actor=ids["vault_entity_id"], action="update",
              resource=f"auth/{story.VAULT_MOUNT}/login",
              correlation={"job_id": job, "vault_entity_id": ids["vault_entity_id"],
                           "oidc_subject": story.OIDC_SUBJECT},
              attrs={"auth_method": "jwt", "role": story.VAULT_ROLE, "policies": ["default", "ci-inference"],
                     "token_ttl": 1800, "token_type": "service"}),
        event("vault.pki_issue", at(story.T_PKI_ISSUE), actor=ids["vault_entity_id"], action="update",
              resource=f"pki/issue/{story.VAULT_PKI_ROLE}",
              correlation={"cert_serial": ids["cert_serial"], "vault_entity_id": ids["vault_entity_id"]},
              attrs={"role": story.VAULT_PKI_ROLE, "common_name": f"ci-job-{job}", "ttl": story.CERT_TTL_SECONDS,
                     "cert_serial": ids["cert_serial"]}),
    ]
    for k in range(secret_reads):
        events.append(event("vault.secret_read", at(story.T_SECRET_READ, k), actor=ids["vault_entity_id"],
                            action="read", resource=f"kv/data/ci/model-{k}",
                            correlation={"vault_entity_id": ids["vault_entity_id"]},
                            attrs={"mount_type": "kv", "path": f"kv/data/ci/model-{k}"}))
    for k in range(api_calls):
        events.append(event("aws.api_call", at(story.T_SECRET_READ, 5 + k % 400), actor=story.ASSUMED_ROLE_ARN,
                            action="GetObject", resource=f"arn:aws-us-gov:s3:::models/{k}", correlation=dict(session),
                            attrs={"event_source": "s3.amazonaws.com", "event_name": "GetObject",
                                   "region": story.REGION, "access_key_class": "temporary",
                                   "identity_type": "AssumedRole", "mfa": False, "error_code": None}))
    events += [
        event("ci.build_signed", at(story.T_BUILD_SIGNED), actor=story.SIGNER, action="signed",
              resource=story.ARTIFACT_NAME, correlation={**ci, "artifact_digest": ids["artifact_digest"],
                                                         "git_sha": story.GIT_SHA},
              attrs={"signer": story.SIGNER}),
        event("ci.policy_decision", at(story.T_POLICY_DECISION), actor="opa", action="evaluate",
              resource="pipeline", correlation={**ci, "artifact_digest": ids["artifact_digest"]},
              attrs={"policy": "pipeline", "decision": "allow",
                     "input": {"artifact_signed": True, "runner_region": story.REGION}}),
        event("ci.approval", at(story.T_APPROVAL), actor=story.APPROVER, action="approved", correlation=dict(ci),
              attrs={"approver": story.APPROVER}),
        event("ci.inference_call", at(story.T_INFERENCE), actor=story.ACTOR_EMAIL, action="infer",
              resource=story.AI_ENDPOINT,
              correlation={**ci, "cert_serial": ids["cert_serial"], "artifact_digest": ids["artifact_digest"]},
              attrs={"ai_endpoint": story.AI_ENDPOINT, "payload_hash": f"sha256:{_hex(f'payload{i}')}",
                     "response_hash": f"sha256:{_hex(f'response{i}')}", "cert_serial": ids["cert_serial"],
                     "cert_issued_by": "vault-pki"}),
        event("attestation.signed", at(story.T_ATTESTATION_PUT), actor=story.SIGNER, action="PutObject",
              resource=f"s3://{story.ATTESTATION_BUCKET}/attestations/{job}.json",
              correlation={"job_id": job, "artifact_digest": ids["artifact_digest"], "git_sha": story.GIT_SHA},
              attrs={"predicate_type": "https://slsa.dev/provenance/v1",
                     "subjects": [{"name": story.ARTIFACT_NAME,
                                   "digest": {"sha256": ids["artifact_digest"].split(":", 1)[1]}}],
                     "signer": story.SIGNER, "key_id": "ci-signing-key", "verification_error": None,
                     "object_lock_mode": "COMPLIANCE", "retain_until": stamp(retain), "legal_hold": False,
                     "version_id": f"v{i}", "sse": "aws:kms", "kms_key_id": "alias/attestations",
                     "retention_days": 400}),
        event("ci.job_completed", at(story.T_JOB_COMPLETED), actor=story.ACTOR, action="completed",
              resource=story.REPOSITORY, correlation=dict(ci), attrs={"conclusion": "success"}),
    ]
    return events


def digest_events(start: datetime, hours: int) -> list[dict[str, Any]]:
    """Hourly valid CloudTrail digests covering *hours* from *start*."""
    return [event("aws.digest_valid", start + timedelta(hours=h), action="validate",
                  resource=f"s3://{story.CLOUDTRAIL_BUCKET}/digest/{h}.json.gz",
                  attrs={"digest_key": f"digest/{h}.json.gz", "start": stamp(start + timedelta(hours=h - 1)),
                         "end": stamp(start + timedelta(hours=h)), "reason": None})
            for h in range(hours)]


def as_entries(events: Iterable[dict[str, Any]]) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """Number events from seq 0 and attach a source object like the collectors write."""
    out = []
    for seq, item in enumerate(events):
        prefix = item["kind"].split(".", 1)[0]
        kind = SOURCE_OF.get(prefix, prefix)
        out.append((seq, item, {"kind": kind, "id": f"{kind}:synthetic", "location": f"synthetic/{kind}",
                                "line": seq + 1}))
    return out


def iter_entries(jobs: int, *, api_calls: int, secret_reads: int = 2,
                 spacing: timedelta = timedelta(minutes=20)) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """A stream of entries for *jobs* jobs plus hourly digests (for the bench: nothing held at once)."""
    seq = 0
    hours_per_job = max(1, int(spacing.total_seconds() // 3600))
    for i in range(jobs):
        items = job_events(i, spacing=spacing, api_calls=api_calls, secret_reads=secret_reads)
        if i % max(1, int(3600 // spacing.total_seconds())) == 0:
            items += digest_events(BASE + i * spacing + timedelta(minutes=59), hours_per_job)
        for entry in as_entries(items):
            yield (seq, entry[1], entry[2])
            seq += 1


def complete_story(jobs: int = 1, **kwargs: Any) -> list[dict[str, Any]]:
    """Events of *jobs* complete jobs plus the digests covering them."""
    events: list[dict[str, Any]] = []
    for i in range(jobs):
        events += job_events(i, **kwargs)
    events += digest_events(BASE, 1 + jobs)
    return events


def deep(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return copy.deepcopy(events)


def find(events: list[dict[str, Any]], kind: str, index: int = 0) -> dict[str, Any]:
    return [e for e in events if e["kind"] == kind][index]


def seq_of(entries: list[tuple[int, dict[str, Any], dict[str, Any]]], kind: str, index: int = 0) -> int:
    return [s for s, e, _ in entries if e["kind"] == kind][index]


def write_cli_ledger(folder: Any, *, jobs: int, api_calls: int) -> Any:
    """A ledger of *jobs* synthetic jobs in *folder* (``fedledger.db``) with the bench's fixed test key
    beside it (``fedledger.key``/``.pub``), as `fedledger --ledger folder/fedledger.db …` finds them."""
    from pathlib import Path

    from bench.synthetic import ORIGIN, TEST_KEY
    from collector.ledger import Ledger, NewEntry
    from collector.signing import write_private_key, write_public_key

    folder = Path(folder)
    ledger = Ledger.create(folder / "fedledger.db", ORIGIN, created="2026-11-20T00:00:00Z", key_type="ecdsa-p256")
    write_private_key(folder / "fedledger.key", TEST_KEY)
    write_public_key(folder / "fedledger.pub", TEST_KEY.public_key())
    ledger.append([NewEntry(src, "2026-11-20T23:00:00Z", ev, hashlib.sha256(str(seq).encode()).hexdigest(), 10)
                   for seq, ev, src in iter_entries(jobs, api_calls=api_calls)])
    ledger.close()
    return folder
