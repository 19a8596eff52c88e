"""Anchoring checkpoints in S3 under Object Lock COMPLIANCE (moto server over HTTP), and
`fedledger verify --checkpoint s3://...` catching a rolled-back ledger."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from collector.checkpoint_fetch import fetch_checkpoint
from collector.checkpoint_publish import checkpoint_key, parse_s3_url, publish_checkpoint
from collector.errors import SourceUnavailable, UsageError
from tests.ops_workspace import AS_OF, ORIGIN, make_workspace, manual_source, write_events

REGION = "us-east-1"


@pytest.fixture()
def s3(moto_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)


def _bucket(s3, name: str, *, lock: bool = True) -> str:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
    return name


def test_publish_writes_under_compliance_lock_and_delete_is_refused(s3) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "anchors-unit")
    until = datetime.now(timezone.utc) + timedelta(days=30)
    note = "example.gov/x\n5\nAAAA\n\n— example.gov/x sig\n"
    published = publish_checkpoint(s3, f"s3://{bucket}/ledger-a", note, size=5, retain_until=until)
    key = checkpoint_key("ledger-a", note, 5)
    assert published.url == f"s3://{bucket}/{key}" and key.startswith("ledger-a/checkpoint.000000000005.")
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert abs((head["ObjectLockRetainUntilDate"] - until).total_seconds()) < 2
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=published.version_id)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    again = publish_checkpoint(s3, f"s3://{bucket}/ledger-a/", note, size=5, retain_until=until)
    assert again.written is False and again.url == published.url
    assert fetch_checkpoint(s3, f"s3://{bucket}/ledger-a/") == (published.url, note)
    assert fetch_checkpoint(s3, published.url) == (published.url, note)


def test_publish_to_a_bucket_without_object_lock_fails(s3) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "plain-bucket", lock=False)
    with pytest.raises(SourceUnavailable, match="Object Lock"):
        publish_checkpoint(s3, f"s3://{bucket}/p/", "n\n", size=1, retain_until=datetime.now(timezone.utc) + timedelta(days=1))


def test_fetch_picks_the_newest_checkpoint_under_a_prefix(s3) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "anchors-newest")
    until = datetime.now(timezone.utc) + timedelta(days=1)
    for size in (9, 10, 100):
        publish_checkpoint(s3, f"s3://{bucket}/l", f"note {size}\n", size=size, retain_until=until)
    assert fetch_checkpoint(s3, f"s3://{bucket}/l")[1] == "note 100\n"
    with pytest.raises(SourceUnavailable, match="no checkpoint object"):
        fetch_checkpoint(s3, f"s3://{bucket}/empty/")


def test_s3_urls_are_checked() -> None:
    assert parse_s3_url("s3://b/k/x").key == "k/x"
    with pytest.raises(UsageError):
        parse_s3_url("https://b/k")
    with pytest.raises(UsageError):
        parse_s3_url("s3:///k")


def test_run_publishes_and_verify_catches_rollback_against_the_anchor(
    tmp_path: Path, s3, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    bucket = _bucket(s3, "anchors-run")
    events = write_events(tmp_path / "a.jsonl", 50)
    publish = (f'[publish]\ncheckpoint = "s3://{bucket}/ci-evidence/"\nretention_days = 3\n'
               f'region = "{REGION}"\nendpoint_url = "{moto_endpoint}"\n')
    ws = make_workspace(tmp_path / "ws", manual_source("reviews", str(events)), extra_toml=publish)
    log = tmp_path / "run.log"
    first = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--log-file", str(log), "--format", "json")
    assert first.exit_code == 0, first.stderr
    published = json.loads(first.stdout)["published"]
    assert published["mode"] == "COMPLIANCE" and published["written"] is True
    assert any(json.loads(line)["event"] == "publish" for line in log.read_text().splitlines())
    key = published["url"].split("/", 3)[3]
    head = s3.head_object(Bucket=bucket, Key=key)
    expected_until = datetime.now(timezone.utc) + timedelta(days=3)
    assert abs((head["ObjectLockRetainUntilDate"] - expected_until).total_seconds()) < 120
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=head["VersionId"])

    # Keep a copy of the ledger at size 50, then grow it to 80 and anchor again.
    shutil.copytree(ws.ledger.parent, tmp_path / "old")
    with open(events, "a") as handle:
        for i in range(30):
            handle.write(f'{{"time":"2026-01-20T12:00:{i:02d}Z","kind":"manual.review","n":"more-{i}"}}\n')
    second = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json",
                    "--publish-checkpoint", f"s3://{bucket}/ci-evidence/", "--retention-days", "1")
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["published"]["size"] == 80

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    public = ws.ledger.with_suffix(".pub")
    anchored = f"s3://{bucket}/ci-evidence/"
    ok = ws.cli("--ledger", str(ws.ledger), "verify", "--origin", ORIGIN, "--trusted-key", str(public),
                "--checkpoint", anchored)
    assert ok.exit_code == 0, ok.stdout + ok.stderr

    # The operator rolls the ledger back to size 50: its own checkpoints agree, the anchor does not.
    shutil.rmtree(ws.ledger.parent)
    shutil.copytree(tmp_path / "old", ws.ledger.parent)
    rolled = ws.cli("--ledger", str(ws.ledger), "verify", "--origin", ORIGIN, "--trusted-key", str(public),
                    "--checkpoint", anchored)
    assert rolled.exit_code == 1
    assert "rolled-back" in rolled.stdout


def test_publish_failure_fails_the_run_with_exit_3_after_collecting(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "no-lock-here", lock=False)
    events = write_events(tmp_path / "a.jsonl", 5)
    publish = f'[publish]\nregion = "{REGION}"\nendpoint_url = "{moto_endpoint}"\n'
    ws = make_workspace(tmp_path / "ws", manual_source("reviews", str(events)), extra_toml=publish)
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--publish-checkpoint", f"s3://{bucket}/x/")
    assert result.exit_code == 3 and "publish failed" in result.stderr
    assert ws.size() == 5


def test_verify_help_mentions_s3_checkpoints() -> None:
    out = subprocess.run([sys.executable, "-m", "collector.cli", "verify", "--help"], capture_output=True, text=True)
    assert "s3://" in out.stdout
