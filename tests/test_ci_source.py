"""`fedledger collect ci`: every kind, hostile inputs, public payloads, idempotency, counts."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.ingest import ingest
from collector.ledger import Ledger
from collector.sources import ci as ci_source
from collector.sources.ci import CiEvents, CiOptions, CiTally, record_for, verify_github_signature
from samples.make import story
from tests.conftest import shared_data
from tests.rotation_support import KEEP, STEPS, run_steps
from tests.fedledger_process import (
    SAMPLES_CI,
    collect_in_process,
    fedledger,
    new_ledger,
    story_ci_options,
    story_options,
)

EVENTS = SAMPLES_CI / "events"
HOSTILE = SAMPLES_CI / "hostile"
SECRET = (SAMPLES_CI / "webhook-secret.txt").read_bytes().strip()


def entries(ledger: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(ledger) as conn:
        return [orjson.loads(bytes(row[0])) for row in conn.execute("SELECT body FROM entries ORDER BY seq")]


def quarantine(ledger: Path) -> list[tuple[str, int | None, str]]:
    with sqlite3.connect(ledger) as conn:
        return [(Path(r[0]).name, r[1], r[2]) for r in conn.execute("SELECT location, line, reason FROM quarantine")]


def summary(result: Any) -> dict[str, Any]:
    doc = json.loads(result.stdout)
    assert doc["kind"] == "fedledger.collect.ci" and doc["version"] == 1
    assert doc["read"] == doc["appended"] + doc["duplicates"] + doc["quarantined"], doc
    assert doc["balanced"] is True
    return doc


@pytest.fixture(scope="module")
def story_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("story")
    ledger = new_ledger(tmp)
    result = fedledger("--format", "json", "collect", "ci", str(EVENTS), *story_options(), ledger=ledger)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""  # no progress bar when stderr is not a terminal
    doc = summary(result)
    assert doc["appended"] == 15 and doc["quarantined"] == 0
    assert doc["oidc_tokens_verified"] == 2 and doc["oidc_tokens_failed"] == 0
    assert doc["webhooks_verified"] == 7
    # the one bare payload (no delivery envelope) is ingested unsigned and named: a secret was configured
    assert doc["webhooks_unsigned"] == 1 and [Path(str(u["location"])).name for u in doc["unsigned_payloads"]] == [
        "github-workflow_run.in_progress.payload.json"]
    return ledger


def test_story_covers_every_kind(story_ledger: Path) -> None:
    kinds = {e["event"]["kind"] for e in entries(story_ledger)}
    assert kinds == {"ci.workflow_run", "ci.job_queued", "ci.job_started", "ci.job_completed", "ci.oidc_token",
                     "ci.build_signed", "ci.policy_decision", "ci.approval", "ci.inference_call"}


def test_story_correlates_with_the_shared_constants(story_ledger: Path) -> None:
    events = [e["event"] for e in entries(story_ledger)]
    job = [e for e in events if e["correlation"].get("job_id") == str(story.JOB_ID)]
    assert {e["kind"] for e in job} >= {"ci.job_queued", "ci.job_started", "ci.job_completed", "ci.oidc_token",
                                         "ci.build_signed", "ci.policy_decision", "ci.approval", "ci.inference_call"}
    token = next(e for e in job if e["kind"] == "ci.oidc_token")
    assert token["attrs"]["verified"] is True
    assert token["correlation"]["oidc_subject"] == story.OIDC_SUBJECT
    assert token["correlation"]["role_session"] == story.ROLE_SESSION_NAME
    assert token["time"] == story.T_ASSUME_ROLE
    inference = next(e for e in job if e["kind"] == "ci.inference_call")
    assert inference["correlation"]["cert_serial"] == story.CERT_SERIAL
    assert inference["correlation"]["artifact_digest"] == story.ARTIFACT_DIGEST
    assert inference["attrs"]["ai_endpoint"] == story.AI_ENDPOINT
    assert inference["attrs"]["payload_hash"].startswith("sha256:")
    completed = next(e for e in job if e["kind"] == "ci.job_completed")
    assert completed["attrs"]["runner_labels"] == story.RUNNER_LABELS
    assert completed["attrs"]["runner_group"] == story.RUNNER_GROUP
    assert completed["attrs"]["runner_region"] == story.REGION
    assert completed["attrs"]["conclusion"] == "success"
    assert completed["attrs"]["webhook_signature"] == "verified"
    assert completed["correlation"]["runner"] == story.RUNNER_NAME
    assert completed["correlation"]["git_sha"] == story.GIT_SHA
    run = next(e for e in events if e["kind"] == "ci.workflow_run" and e["action"] == "workflow_run.completed")
    assert run["attrs"]["workflow_path"] == story.WORKFLOW_PATH and run["attrs"]["run_attempt"] == 1
    policy = next(e for e in job if e["kind"] == "ci.policy_decision")
    assert policy["attrs"]["decision"] == "allow" and policy["attrs"]["input"]["region"] == story.REGION
    assert policy["attrs"]["input"]["access_key_class"] == "temporary"
    approval = next(e for e in job if e["kind"] == "ci.approval")
    assert approval["attrs"]["approver"] == story.APPROVER
    gitlab = [e for e in events if e["attrs"].get("provider") == "gitlab"]
    assert {e["kind"] for e in gitlab} == {"ci.workflow_run", "ci.job_completed"}
    assert all(e["attrs"]["webhook_signature"] == "verified" for e in gitlab)
    gl_token = next(e for e in events if e["kind"] == "ci.oidc_token" and e["resource"] == "https://gitlab.com")
    assert gl_token["attrs"]["verified"] and gl_token["attrs"]["claims"]["project_path"]


def test_raw_evidence_is_traceable_and_holds_no_secret(story_ledger: Path) -> None:
    with Ledger.open(story_ledger) as ledger:
        for seq, entry in enumerate(entries(story_ledger)):
            raw = ledger.raw_bytes(seq)
            assert hashlib.sha256(raw).hexdigest() == entry["raw"]["sha256"] and len(raw) == entry["raw"]["size"]
            assert b"eyJ" not in raw and SECRET not in raw
            if entry["event"]["kind"] == "ci.oidc_token":
                assert entry["source"]["raw_form"] == "redacted"


def test_rerun_adds_nothing(story_ledger: Path) -> None:
    before = len(entries(story_ledger))
    result = fedledger("--format", "json", "collect", "ci", str(EVENTS), *story_options(), ledger=story_ledger)
    assert result.returncode == 0
    doc = summary(result)
    assert doc["appended"] == 0 and doc["read"] == 0
    assert len(entries(story_ledger)) == before


def test_same_records_again_from_stdin_are_duplicates(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    data = (EVENTS / "job-events.jsonl").read_bytes()
    args = ("--format", "json", "collect", "ci", "-", *story_options())
    first = summary(fedledger(*args, ledger=ledger, stdin=data))
    second = fedledger(*args, ledger=ledger, stdin=data)
    assert second.returncode == 0
    assert first["appended"] == 6 and summary(second) | {} and summary(second)["duplicates"] == 6


HOSTILE_OUTCOMES = {
    # file: (entries appended, quarantine reasons)
    "oidc-token.expired.jsonl": (1, []),
    "oidc-token.forged-wrong-key.jsonl": (1, []),
    "oidc-token.not-yet-valid.jsonl": (1, []),
    "oidc-token.wrong-audience.jsonl": (1, []),
    "webhook-delivery.bad-signature.jsonl": (0, ["bad-webhook-signature"]),
    "webhook-delivery.missing-signature.jsonl": (0, ["missing-webhook-signature"]),
    "gitlab-delivery.wrong-token.jsonl": (0, ["bad-webhook-signature"]),
    "inference-call.raw-ai-payload.jsonl": (1, []),
    "job-started.raw-token-in-field.jsonl": (1, []),
    "invalid-json.jsonl": (1, ["invalid-json"]),
    "non-utf8.jsonl": (0, ["not-utf8"]),
    "deep-nesting.jsonl": (0, ["too-deep"]),
    "lone-surrogate-ud800.jsonl": (0, ["lone-surrogate"]),
    "duplicate-keys.jsonl": (0, ["duplicate-key"]),
    "truncated-line.jsonl": (1, ["invalid-json"]),
    "truncated-last-line-no-newline.jsonl": (1, []),
    "unsupported-event.push.json": (0, ["unsupported-event"]),
    "missing-time.jsonl": (0, ["missing-time"]),
}


def test_every_hostile_file_has_a_documented_outcome() -> None:
    assert {p.name for p in HOSTILE.iterdir()} == set(HOSTILE_OUTCOMES)
    readme = (SAMPLES_CI / "README.md").read_text()
    for name in HOSTILE_OUTCOMES:
        assert name in readme


@pytest.mark.parametrize("name", sorted(HOSTILE_OUTCOMES))
def test_hostile_file(name: str, tmp_path: Path) -> None:
    ledger, total, tally = collect_in_process(tmp_path, [str(HOSTILE / name)], story_ci_options())
    appended, reasons = HOSTILE_OUTCOMES[name]
    assert total.appended == appended, total
    assert sorted(r for _, _, r in quarantine(ledger)) == sorted(reasons)
    assert total.reasons == {r: reasons.count(r) for r in reasons}
    for entry in entries(ledger):
        event = entry["event"]
        if event["kind"] == "ci.oidc_token":
            assert event["attrs"]["verified"] is False and event["outcome"]["status"] == "failure"
            assert event["attrs"]["claims"] == {} and "oidc_subject" not in event["correlation"]
            assert event["attrs"]["verification_error"]
    if name == "truncated-last-line-no-newline.jsonl":
        assert tally.pending and "not read yet" in tally.pending[0]


def test_expired_token_error_names_both_times(tmp_path: Path) -> None:
    ledger, _, _ = collect_in_process(tmp_path, [str(HOSTILE / "oidc-token.expired.jsonl")], story_ci_options())
    (entry,) = entries(ledger)
    assert entry["event"]["attrs"]["verification_error"] == \
        "expired at 2026-11-20T14:05:25Z, used at 2026-11-20T15:00:25Z"
    assert entry["event"]["attrs"]["signature_valid"] is True


def test_raw_ai_payload_is_replaced_by_its_hash_everywhere(tmp_path: Path) -> None:
    from samples.make.ci import RAW_AI_PROMPT, RAW_AI_RESPONSE

    ledger, _, _ = collect_in_process(tmp_path, [str(HOSTILE / "inference-call.raw-ai-payload.jsonl")])
    (entry,) = entries(ledger)
    attrs = entry["event"]["attrs"]
    assert attrs["prompt"] == {"sha256": hashlib.sha256(RAW_AI_PROMPT.encode()).hexdigest(),
                               "size": len(RAW_AI_PROMPT.encode()), "redacted": "ai-payload"}
    assert attrs["response"]["sha256"] == hashlib.sha256(RAW_AI_RESPONSE.encode()).hexdigest()
    assert entry["source"]["raw_form"] == "redacted"
    assert set(entry["source"]["redacted"]) == {"$.prompt", "$.response", "$.request.body"}
    with Ledger.open(ledger) as opened:
        raw = opened.raw_bytes(0)
    assert b"Jane Q. Public" not in raw and b"anxiety" not in raw
    for stored in (tmp_path / "ledger.db.objects").rglob("*"):
        if stored.is_file():
            assert b"Jane Q. Public" not in stored.read_bytes()


def test_deliveries_without_a_secret_are_ingested_as_not_checked(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    result = fedledger("--format", "json", "collect", "ci", str(HOSTILE / "webhook-delivery.bad-signature.jsonl"),
                       ledger=ledger)
    assert result.returncode == 0
    (entry,) = entries(ledger)
    assert entry["event"]["attrs"]["webhook_signature"] == "not-checked"
    assert summary(result)["webhooks_unchecked"] == 1


def test_verification_counts_are_of_ingested_records_only(tmp_path: Path) -> None:
    """A delivery whose signature checked out but which was then quarantined (an unsupported
    ``push`` event) was counted in ``webhooks_verified``: the verification counts now describe the
    records that became entries (appended or already there), so a quarantined record is counted
    once, under its reason, and ``webhooks_verified + webhooks_unchecked`` deliveries were ingested."""
    body = json.dumps({"ref": "refs/heads/main", "after": "0" * 40, "repository": {"full_name": "agency/app"}})
    push = {"headers": {"X-GitHub-Event": "push", "X-Hub-Signature-256": ci_source.github_signature(SECRET, body.encode())},
            "body": body}
    job = json.loads((EVENTS / "github-deliveries.jsonl").read_bytes().splitlines()[1])
    events = tmp_path / "deliveries.jsonl"
    events.write_bytes(json.dumps(push).encode() + b"\n" + json.dumps(job).encode() + b"\n")
    secret_file = tmp_path / "secret.txt"
    secret_file.write_bytes(SECRET + b"\n")
    ledger = new_ledger(tmp_path)
    signed = fedledger("--format", "json", "collect", "ci", str(events), "--webhook-secret-file", str(secret_file),
                       ledger=ledger)
    assert signed.returncode == 1
    doc = summary(signed)
    assert (doc["appended"], doc["quarantined"], doc["reasons"]) == (1, 1, {"unsupported-event": 1})
    assert (doc["webhooks_verified"], doc["webhooks_unchecked"]) == (1, 0)
    again = fedledger("collect", "ci", str(events), ledger=new_ledger(tmp_path / "unchecked"))
    assert "webhook deliveries: 0 signature verified, 1 not checked" in again.stdout.decode()


def test_tokens_without_audience_are_not_verified(tmp_path: Path) -> None:
    options = CiOptions(jwks=story_ci_options().jwks)
    ledger, _, _ = collect_in_process(tmp_path, [str(EVENTS / "job-events.jsonl")], options)
    token = next(e["event"] for e in entries(ledger) if e["event"]["kind"] == "ci.oidc_token")
    assert token["attrs"]["verified"] is False and token["attrs"]["signature_valid"] is True


def test_github_webhook_signature_vector() -> None:
    vector = json.loads(shared_data("ci_events", "github_webhook_signature",
                                    "github_docs_webhook_signature_vector.json").read_text())
    secret = vector["secret"].encode()
    body = vector["payload"].encode()
    assert ci_source.github_signature(secret, body) == vector["expected_header_value"]
    assert verify_github_signature(body, vector["expected_header_value"], [secret])
    assert not verify_github_signature(b"Hello, World?", vector["expected_header_value"], [secret])
    assert not verify_github_signature(body, vector["expected_header_value"], [b"wrong secret"])


def test_github_webhook_signature_vector_through_a_delivery_record() -> None:
    vector = json.loads(shared_data("ci_events", "github_webhook_signature",
                                    "github_docs_webhook_signature_vector.json").read_text())
    options = CiOptions(webhook_secrets=(vector["secret"].encode(),))
    payload = json.loads((EVENTS / "github-workflow_run.in_progress.payload.json").read_text())
    body = json.dumps(payload)
    good = {"headers": {"X-GitHub-Event": "workflow_run",
                        "X-Hub-Signature-256": ci_source.github_signature(vector["secret"].encode(), body.encode())},
            "body": body}
    record = record_for(json.dumps(good).encode(), "t", 1, options)
    assert record.reason is None and record.event is not None
    assert record.event["attrs"]["webhook_signature"] == "verified"
    changed = dict(good, body=body.replace("in_progress", "completed", 1))
    assert record_for(json.dumps(changed).encode(), "t", 1, options).reason == "bad-webhook-signature"


def public_payloads() -> list[Path]:
    root = shared_data("ci_events")
    return sorted(p for p in root.rglob("*.json") if "webhooks" in p.parent.as_posix())


def expected_public_outcome(path: Path) -> str | None:
    if path.parent.name in ("workflow_job", "workflow_run", "ping"):
        return None
    if path.parent.name == "gitlab_webhooks" and path.name in ("job.json", "pipeline.json"):
        return None
    return "unsupported-event"


def test_public_github_and_gitlab_payloads_ingest_or_quarantine_with_the_right_reason() -> None:
    paths = public_payloads()
    assert paths
    for path in paths:
        record = record_for(path.read_bytes(), str(path), None, CiOptions())
        assert record.reason == expected_public_outcome(path), path
        if record.event is not None:
            event = record.event
            assert event["attrs"]["webhook_signature"] == "absent"
            assert event["kind"] in ("ci.workflow_run", "ci.job_queued", "ci.job_started", "ci.job_completed",
                                     "ci.webhook_ping")
            assert event["time"].endswith("Z")
            if event["kind"] == "ci.webhook_ping":  # what the hook subscribes to; never its receiver URL
                assert event["attrs"]["events"] == ["*"] and event["attrs"]["hook_id"] == "109948940"
                assert event["correlation"] == {"repository": "Octocoders/Hello-World"}
                assert b"smee.io" not in orjson.dumps(event)


def test_public_payload_folders_through_the_cli(tmp_path: Path) -> None:
    root = shared_data("ci_events")
    ledger = new_ledger(tmp_path)
    result = fedledger("--format", "json", "collect", "ci", str(root / "github_webhooks"),
                       str(root / "gitlab_webhooks"), ledger=ledger)
    doc = summary(result)
    expected_entries = sum(expected_public_outcome(p) is None for p in public_payloads())
    assert doc["appended"] == expected_entries
    assert doc["reasons"] == {"unsupported-event": len(public_payloads()) - expected_entries}
    assert result.returncode == 1
    kinds = {e["event"]["kind"] for e in entries(ledger)}
    assert kinds == {"ci.workflow_run", "ci.job_queued", "ci.job_started", "ci.job_completed", "ci.webhook_ping"}
    gitlab_job = next(e["event"] for e in entries(ledger) if e["event"]["action"].startswith("job."))
    assert gitlab_job["correlation"]["job_id"] == "3580121225"
    assert gitlab_job["attrs"]["duration_seconds"] == 49 and gitlab_job["attrs"]["runner_labels"] == ["linux", "docker"]


def test_file_that_grew_is_read_from_where_it_stopped_and_a_changed_one_is_tampered(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    lines = (EVENTS / "job-events.jsonl").read_bytes().splitlines(keepends=True)
    target = tmp_path / "events.jsonl"
    target.write_bytes(b"".join(lines[:3]))
    first = summary(fedledger("--format", "json", "collect", "ci", str(target), ledger=ledger))
    assert first["read"] == 3
    target.write_bytes(b"".join(lines))
    second = summary(fedledger("--format", "json", "collect", "ci", str(target), ledger=ledger))
    assert second["read"] == 3 and second["appended"] == 3
    target.write_bytes(b"".join(lines).replace(b"deploy-bot", b"deploy-bob", 1))
    third = fedledger("collect", "ci", str(target), ledger=ledger)
    assert third.returncode == 1 and b"TAMPERED" in third.stderr
    assert len(entries(ledger)) == 6


def test_changed_whole_file_is_tampered(tmp_path: Path) -> None:
    target = tmp_path / "payload.json"
    target.write_bytes((EVENTS / "github-workflow_run.in_progress.payload.json").read_bytes())
    ledger_path, total, _ = collect_in_process(tmp_path, [str(target)])
    assert total.appended == 1
    from collector.commands.ci_cmds import collect_ci

    with Ledger.open(ledger_path) as ledger:
        again, tally = collect_ci(ledger, [str(target)], CiOptions(), observed="2026-11-25T00:00:00Z")
        assert again.read == 0 and not tally.tampered
        target.write_bytes(target.read_bytes().replace(b"in_progress", b"completed", 1))
        changed, tally = collect_ci(ledger, [str(target)], CiOptions(), observed="2026-11-25T00:00:00Z")
        assert changed.read == 0 and len(tally.tampered) == 1 and "changed since it was read" in tally.tampered[0]


def test_killed_midway_then_rerun_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    ledger_path = new_ledger(tmp_path)
    template = json.loads((EVENTS / "job-events.jsonl").read_bytes().splitlines()[0])
    target = tmp_path / "many.jsonl"
    with open(target, "wb") as handle:
        for i in range(4000):
            handle.write(orjson.dumps({**template, "step": i, "filler": "x" * 300}) + b"\n")

    class Killed(Exception):
        pass

    def killed_after(items: Any, limit: int) -> Any:
        for count, item in enumerate(items):
            if count == limit:
                raise Killed
            yield item

    source = CiEvents(target, CiOptions(), CiTally())
    with Ledger.open(ledger_path) as ledger:
        with pytest.raises(Killed):
            ingest(ledger, killed_after(source.collect(ledger.cursors()), 3500), kind="ci",
                   source_id=source.source_id, observed="2026-11-25T00:00:00Z", batch_size=500)
        partial = ledger.size
        assert 0 < partial < 4000
        result = ingest(ledger, source.collect(ledger.cursors()), kind="ci", source_id=source.source_id,
                        observed="2026-11-25T00:00:00Z", batch_size=500)
        assert ledger.size == 4000
        assert result.read == result.appended + result.duplicates + result.quarantined
        assert result.quarantined == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    missing = fedledger("collect", "ci", str(tmp_path / "nope"), ledger=ledger)
    assert missing.returncode == 2 and b"no such file" in missing.stderr
    bad_jwks = tmp_path / "jwks.json"
    bad_jwks.write_text("{}")
    assert fedledger("collect", "ci", str(EVENTS), "--jwks", str(bad_jwks), ledger=ledger).returncode == 2
    empty_secret = tmp_path / "secret.txt"
    empty_secret.write_text("\n")
    result = fedledger("collect", "ci", str(EVENTS), "--webhook-secret-file", str(empty_secret), ledger=ledger)
    assert result.returncode == 2
    assert entries(ledger) == []


def test_a_folder_without_ci_files_is_unusable_input(tmp_path: Path) -> None:
    """``collect ci`` on a folder holding no CI event file read nothing and exited 0, while
    ``collect vault`` exits 2 with "no files found": an operator who typed the wrong folder
    must be told (a scheduled ``fedledger run`` keeps accepting an empty inbox, see test_run)."""
    ledger = new_ledger(tmp_path)
    empty = tmp_path / "inbox"
    empty.mkdir()
    result = fedledger("collect", "ci", str(empty), ledger=ledger)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "no CI event files found in" in lines[0] and str(empty) in lines[0], lines
    (empty / "README.txt").write_text("not an event file")
    (empty / ".hidden.jsonl").write_text("{}\n")
    result = fedledger("--format", "json", "collect", "ci", str(empty), ledger=ledger)
    assert result.returncode == 2 and b"no CI event files found" in result.stderr
    error = json.loads(result.stdout)["error"]  # the JSON reader is told too (tests/test_cli_json_errors.py)
    assert error["exit"] == 2 and error["message"].startswith("no CI event files found")
    assert entries(ledger) == []
    (empty / "events.jsonl").write_bytes(b"")  # a CI file, still empty: nothing to read, nothing wrong
    doc = summary(fedledger("--format", "json", "collect", "ci", str(empty), ledger=ledger))
    assert doc["read"] == 0 and doc["ok"] is True


def test_human_output_ends_with_counts(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    result = fedledger("collect", "ci", str(HOSTILE), *story_options(), ledger=ledger)
    assert result.returncode == 1
    text = result.stdout.decode()
    assert "read," in text and "quarantined (" in text and "oidc tokens: 0 verified, 4 NOT verified" in text
    first = text.splitlines()[0]
    numbers = [int(w) for w in first.replace(",", " ").split() if w.isdigit()]
    read, appended, duplicate, quarantined = numbers[:4]
    assert read == appended + duplicate + quarantined


@pytest.mark.parametrize("as_folder", [False, True])
def test_rotated_event_file_is_followed_not_tampered(tmp_path: Path, as_folder: bool) -> None:
    """events.jsonl moved to events.jsonl.1 (logrotate) and started anew: the tail written before the
    rotation is read from the rotated file, the new file from its start; nothing twice, nothing lost."""
    ledger = new_ledger(tmp_path)
    first_line = (EVENTS / "job-events.jsonl").read_bytes().splitlines()[0]
    lines = [first_line.replace(b'"31415926535"', f'"4{n:010d}"'.encode()) + b"\n" for n in range(12)]
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "events.jsonl"
    live.write_bytes(b"".join(lines[:3]))
    target = str(logs if as_folder else live)
    assert summary(fedledger("--format", "json", "collect", "ci", target, ledger=ledger))["read"] == 3
    with open(live, "ab") as handle:
        handle.write(b"".join(lines[3:5]))
    live.rename(logs / "events.jsonl.1")
    live.write_bytes(b"".join(lines[5:8]))
    second = summary(fedledger("--format", "json", "collect", "ci", target, ledger=ledger))
    assert (second["read"], second["appended"], second["duplicates"], second["tampered"]) == (5, 5, 0, [])
    assert second["rotations"] == [{"file": str(live), "moved_to": str(logs / "events.jsonl.1"),
                                    "offset": len(b"".join(lines[:3]))}]
    third = summary(fedledger("--format", "json", "collect", "ci", target, ledger=ledger))
    assert (third["read"], third["rotations"], third["tampered"]) == (0, [], [])
    jobs = [e["event"]["correlation"]["job_id"] for e in entries(ledger)]
    assert sorted(jobs) == sorted(f"4{n:010d}" for n in range(8))
    live.write_bytes(b"".join(lines[8:10]))  # replaced with other content, the old nowhere beside it
    fourth = fedledger("collect", "ci", target, ledger=ledger)
    assert fourth.returncode == 1 and b"TAMPERED" in fourth.stderr


def test_signed_github_ping_delivery_is_an_entry_without_the_receiver_url() -> None:
    """The ping GitHub sends when a hook is created is not a job event, but it is evidence of what the
    hook subscribes to; it must not fail the run as unsupported (it arrives at every new receiver)."""
    secret = b"ping-test-secret"
    ping = {"zen": "Keep it logically awesome.", "hook_id": 4242,
            "hook": {"type": "Organization", "id": 4242, "active": True, "events": ["workflow_job", "workflow_run"],
                     "config": {"content_type": "json", "url": "https://receiver.example/hook?token=abc123",
                                "insecure_ssl": "0"},
                     "created_at": "2026-11-20T13:59:00Z", "updated_at": "2026-11-20T13:59:00Z"},
            "organization": {"login": "agency-gov"}, "sender": {"login": "platform-admin"}}
    body = json.dumps(ping)
    delivery = {"headers": {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-1",
                            "X-Hub-Signature-256": ci_source.github_signature(secret, body.encode())}, "body": body}
    record = record_for(json.dumps(delivery).encode(), "t", 1, CiOptions(webhook_secrets=(secret,)))
    assert record.reason is None and record.event is not None
    event = record.event
    assert (event["kind"], event["actor"], event["resource"], event["time"]) == (
        "ci.webhook_ping", "platform-admin", "agency-gov", "2026-11-20T13:59:00Z")
    assert event["attrs"]["events"] == ["workflow_job", "workflow_run"]
    assert event["attrs"]["webhook_signature"] == "verified" and event["attrs"]["hook_id"] == "4242"
    assert b"abc123" not in orjson.dumps(event) and b"receiver.example" not in orjson.dumps(event)
    forged = dict(delivery, body=body.replace("workflow_run", "push"))
    assert record_for(json.dumps(forged).encode(), "t", 1, CiOptions(webhook_secrets=(secret,))).reason == (
        "bad-webhook-signature")


def test_accept_changed_for_a_line_file_and_a_whole_file(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    first_line = (EVENTS / "job-events.jsonl").read_bytes().splitlines()[0]
    lines = [first_line.replace(b'"31415926535"', f'"5{n:010d}"'.encode()) + b"\n" for n in range(6)]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(lines[:3]))
    whole = tmp_path / "run.json"
    whole.write_bytes((EVENTS / "github-workflow_run.in_progress.payload.json").read_bytes())
    assert summary(fedledger("--format", "json", "collect", "ci", str(events), str(whole), ledger=ledger))["read"] == 4
    events.write_bytes(b"".join(lines[1:6]))  # the first line is gone: changed, nothing beside it
    whole.write_bytes(whole.read_bytes().replace(b"in_progress", b"completed", 1))
    tampered = fedledger("--format", "json", "collect", "ci", str(events), str(whole), ledger=ledger)
    assert tampered.returncode == 1 and len(summary(tampered)["tampered"]) == 2
    bad = fedledger("collect", "ci", str(events), "--accept-changed", str(tmp_path / "nope.jsonl"), ledger=ledger)
    assert bad.returncode == 2 and b"nope.jsonl" in bad.stderr
    accepted = fedledger("--format", "json", "collect", "ci", str(events), str(whole),
                         "--accept-changed", str(events), "--accept-changed", str(whole), ledger=ledger)
    doc = summary(accepted)
    assert accepted.returncode == 0 and doc["tampered"] == []
    assert sorted(a["file"] for a in doc["accepted_changed"] if a["reset"]) == sorted([str(events), str(whole)])
    # 2 findings + 5 lines (2 of them read before) + the changed whole file
    assert (doc["read"], doc["appended"], doc["duplicates"]) == (8, 6, 2)
    found = [e["event"] for e in entries(ledger) if e["event"]["kind"] == "ci.file_replaced"]
    assert sorted(f["attrs"]["file"] for f in found) == sorted([str(events), str(whole)])
    again = summary(fedledger("--format", "json", "collect", "ci", str(events), str(whole),
                              "--accept-changed", str(events), "--accept-changed", str(whole), ledger=ledger))
    assert again["read"] == 0 and all(not a["reset"] for a in again["accepted_changed"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, as_folder=st.booleans(), keep=KEEP)
def test_ci_line_files_through_any_rotations_lose_nothing(tmp_path_factory: pytest.TempPathFactory, steps: list[str],
                                                          as_folder: bool, keep: int | None) -> None:
    """CI line files follow rotations like Vault's: every event written lands once, never as tampering
    (a folder's rotated events.jsonl.N are not inputs: they are found beside the live file)."""
    from collector.commands.ci_cmds import collect_ci

    root = tmp_path_factory.mktemp("ci-rot")
    first_line = (EVENTS / "job-events.jsonl").read_bytes().splitlines()[0]
    pool = (first_line.replace(b'"31415926535"', f'"7{n:010d}"'.encode()) + b"\n" for n in range(10_000))
    with Ledger.create(root / "l.db", "test.example/ci", created="2026-11-25T00:00:00Z",
                       key_type="ecdsa-p256") as ledger:

        def run(inputs: list[str], accept: list[str]) -> tuple[int, list[str]]:
            total, tally = collect_ci(ledger, inputs, CiOptions(), observed="2026-11-25T00:00:00Z",
                                      accept_changed=accept)
            return total.duplicates, [line.split(": the first ", 1)[0] for line in tally.tampered]

        def stored() -> set[bytes]:  # a CI record's raw bytes are its line without the newline
            return {ledger.raw_bytes(seq) + b"\n" for seq in range(ledger.size) if ledger.raw_location(seq) is not None}

        run_steps(root, "events.jsonl", steps, as_folder, pool, run, stored, keep)


def test_a_ci_file_named_twice_is_read_once(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    folder = tmp_path / "ev"
    folder.mkdir()
    (folder / "events.jsonl").write_bytes((EVENTS / "job-events.jsonl").read_bytes())
    doc = summary(fedledger("--format", "json", "collect", "ci", str(folder), str(folder / "events.jsonl"),
                            str(folder / "events.jsonl"), ledger=ledger))
    assert (doc["read"], doc["duplicates"]) == (6, 0)


def test_quarantined_records_are_named_with_file_line_and_reason(tmp_path: Path) -> None:
    """``collect ci`` said only how many records were quarantined, never which: each one is named
    (file, line, reason; never content) on stderr, and listed in the JSON output, as ``collect vault`` does."""
    events = tmp_path / "events.jsonl"
    good = json.dumps({"event_type": "ci.job.started", "timestamp": "2026-11-20T14:00:20Z", "job_id": "1"})
    events.write_bytes(good.encode() + b'\n{"canary-not-json\n' + b'{"event_type": "deploy.started"}\n')
    too_big = tmp_path / "big.json"
    too_big.write_bytes(b" " * (ci_source.MAX_RECORD_BYTES + 1))
    ledger = new_ledger(tmp_path)
    human = fedledger("collect", "ci", str(events), str(too_big), ledger=ledger)
    assert human.returncode == 1
    assert human.stderr.decode().splitlines() == [
        f"quarantined: {events}:2: invalid-json",
        f"quarantined: {events}:3: unsupported-event",
        f"quarantined: {too_big}: too-large",
    ]
    assert b"canary" not in human.stdout + human.stderr
    again = tmp_path / "again.jsonl"
    again.write_bytes(events.read_bytes())
    doc = summary(fedledger("--format", "json", "collect", "ci", str(again), ledger=ledger))
    assert doc["quarantined_records"] == [
        {"location": str(again), "line": 2, "reason": "invalid-json"},
        {"location": str(again), "line": 3, "reason": "unsupported-event"},
    ]


def test_a_byte_order_mark_at_the_start_of_a_file_is_accepted_and_kept(tmp_path: Path) -> None:
    """RFC 8259 lets a parser ignore a BOM: a ``.json`` or ``.jsonl`` file saved with one (Windows
    editors, PowerShell) was quarantined as ``invalid-json``. Only the start of a file (or of stdin)
    may carry one; the evidence store keeps the exact bytes, BOM included."""
    bom = b"\xef\xbb\xbf"
    one = json.dumps({"event_type": "ci.job.started", "timestamp": "2026-11-20T14:00:20Z", "job_id": "1"}).encode()
    two = one.replace(b'"1"', b'"2"')
    doc = tmp_path / "event.json"
    doc.write_bytes(bom + one)
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(bom + one.replace(b'"1"', b'"3"') + b"\n" + bom + two + b"\n")
    ledger, total, tally = collect_in_process(tmp_path, [str(doc), str(lines)])
    assert (total.appended, total.quarantined) == (2, 1)
    assert tally.quarantined == [{"location": str(lines), "line": 2, "reason": "invalid-json"}]  # not a file's start
    with Ledger.open(ledger) as opened:
        raws = {opened.raw_bytes(seq) for seq in range(opened.size)}
    assert raws == {bom + one, bom + one.replace(b'"1"', b'"3"')}
    stdin = CiEvents(None, CiOptions(), stream=__import__("io").BytesIO(bom + one + b"\n" + bom + two + b"\n"))
    assert [i.reason for i in stdin.collect({}) if hasattr(i, "reason")] == [None, "invalid-json"]
