"""Attestations from S3: moto's server over HTTP, an Object Lock bucket, boto3 unmocked."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.object_source import ObjectHead, S3Provider, listed_version_id, open_provider
from collector.sources.attestations import version_identity
from collector.timeutil import parse_time
from samples.make import story
from tests.attest_support import SAMPLE_BUCKET, SAMPLE_KEYS, SAMPLE_OUTCOMES, collect, new_ledger

REGION = "us-gov-west-1"


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def upload_samples(client: Any, kms_key: str, bucket: str) -> None:
    """Create an Object Lock bucket and put every sample object with the lock settings of its sidecar."""
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True,
                         CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in sorted((SAMPLE_BUCKET / "attestations").iterdir()):
        if path.name.endswith(".meta.json"):
            continue
        args: dict[str, Any] = {"Bucket": bucket, "Key": "attestations/" + path.name, "Body": path.read_bytes()}
        sidecar = path.with_name(path.name + ".meta.json")
        if sidecar.exists():
            meta = json.loads(sidecar.read_text())
            # the sidecar's retention length, counted from now: S3 refuses retain-until dates in the past
            length = parse_time(meta["retain_until"]) - parse_time(meta["last_modified"])
            args.update(ObjectLockMode=meta["object_lock_mode"],
                        ObjectLockRetainUntilDate=datetime.now(timezone.utc) + length,
                        ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key)
        client.put_object(**args)


@pytest.fixture(scope="module")
def sample_bucket(moto_endpoint: str) -> str:
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name=REGION)
    key_arn = kms.create_key(Description="attestation bucket key")["KeyMetadata"]["Arn"]
    upload_samples(s3(moto_endpoint), key_arn, "att-samples")
    return key_arn


def provider(endpoint: str, src: str) -> Any:
    return open_provider(src, endpoint_url=endpoint, region=REGION)


def test_each_sample_outcome_from_s3(moto_endpoint: str, sample_bucket: str, tmp_path: Path) -> None:
    src = "s3://att-samples/attestations/"
    run = collect(new_ledger(tmp_path / "l.db"), provider(moto_endpoint, src), src)
    for name, kind in SAMPLE_OUTCOMES.items():
        key = "attestations/" + name
        if kind is None:
            assert any(q.location == f"s3://att-samples/{key}" for q in run.quarantined)
        else:
            assert run.events[key]["kind"] == kind, name
    assert run.summary.balanced and (run.summary.appended, run.summary.quarantined) == (12, 1)
    event = run.events["attestations/31415926535.provenance.dsse.json"]
    attrs = event["attrs"]
    assert event["resource"] == "s3://att-samples/attestations/31415926535.provenance.dsse.json"
    assert attrs["bucket"] == "att-samples" and attrs["version_id"] and attrs["etag"]
    assert attrs["sse"] == "aws:kms" and attrs["kms_key_id"]
    assert attrs["object_lock_mode"] == "COMPLIANCE" and attrs["retain_until"] and attrs["put_time"]
    assert attrs["retention_measured_from"] == "put_time" and attrs["retention_ok"] is True
    assert attrs["retention_days"] in (2556, 2557)
    assert event["correlation"]["job_id"] == str(story.JOB_ID)
    assert event["correlation"]["artifact_digest"] == story.ARTIFACT_DIGEST
    short = run.events["attestations/attestation.short-retention.dsse.json"]["attrs"]
    assert short["retention_ok"] is False and short["retention_days"] in (29, 30)
    assert "shorter than the minimum 365 days" in short["retention_reason"]


def test_s3_object_lock_holds_and_legal_hold_is_read(moto_endpoint: str, sample_bucket: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    key = "attestations/" + story.ATTESTATION_KEY.split("/", 1)[1]
    head = client.head_object(Bucket="att-samples", Key=key)
    with pytest.raises(Exception) as denied:
        client.delete_object(Bucket="att-samples", Key=key, VersionId=head["VersionId"])
    assert "AccessDenied" in str(denied.value)
    client.put_object_legal_hold(Bucket="att-samples", Key=key, LegalHold={"Status": "ON"})
    src = "s3://att-samples/attestations/3141"
    run = collect(new_ledger(tmp_path / "l.db"), provider(moto_endpoint, src), src)
    attrs = run.events[key]["attrs"]
    assert attrs["legal_hold"] == "ON" and attrs["version_id"] == head["VersionId"]
    assert run.events[key]["kind"] == "attestation.signed"


def test_s3_idempotent_and_new_version_is_new_entry(moto_endpoint: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    client.create_bucket(Bucket="att-versions", ObjectLockEnabledForBucket=True,
                         CreateBucketConfiguration={"LocationConstraint": REGION})
    body = (SAMPLE_BUCKET / "attestations" / "31415926535.provenance.dsse.json").read_bytes()
    client.put_object(Bucket="att-versions", Key="a/prov.dsse.json", Body=body)  # no retention: a finding
    ledger = new_ledger(tmp_path / "l.db")
    src = "s3://att-versions/a/"
    first = collect(ledger, provider(moto_endpoint, src), src)
    assert first.summary.appended == 1
    attrs = first.events["a/prov.dsse.json"]["attrs"]
    assert attrs["retention_ok"] is False and attrs["retention_reason"] == "no Object Lock retention on the object"
    again = collect(ledger, provider(moto_endpoint, src), src)
    assert (again.summary.appended, again.summary.duplicates) == (0, 1)
    client.put_object(Bucket="att-versions", Key="a/prov.dsse.json", Body=body)  # same bytes, new version
    third = collect(ledger, provider(moto_endpoint, src), src)
    assert third.summary.appended == 1
    versions = {e["source"]["version_id"] for e in third.entries}
    assert len(versions) == 2


def test_cli_over_s3(moto_endpoint: str, sample_bucket: str, tmp_path: Path) -> None:
    runner = CliRunner()
    ledger = tmp_path / "cli.db"
    assert runner.invoke(app, ["--ledger", str(ledger), "init", "--origin", "t/a", "--no-key"]).exit_code == 0
    args = ["--ledger", str(ledger), "--format", "json", "collect", "attestations", "s3://att-samples/attestations/",
            "--endpoint-url", moto_endpoint, "--region", REGION, "--trusted-keys", str(SAMPLE_KEYS)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["balanced"] and doc["appended"] == 12 and doc["objects"]["companions"] == 4
    again = runner.invoke(app, args)
    assert json.loads(again.stdout)["appended"] == 0
    missing = runner.invoke(app, args[:6] + ["s3://no-such-bucket/x", "--endpoint-url", moto_endpoint,
                                             "--region", REGION])
    assert missing.exit_code == 3


# -- every version and delete marker (ListObjectVersions) ------------------------------------------

SIGNED_A = "31415926535.json"  # with a detached .sig
SIGNED_B = "31415926535.rsa.json"  # other bytes, other .sig


def versioned_bucket(client: Any, bucket: str) -> None:
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def put_signed(client: Any, bucket: str, key: str, sample: str) -> str:
    """Put a sample and then its detached signature (as cosign users do); the sample's version id
    ("" in a bucket that never had versioning: S3 returns none)."""
    folder = SAMPLE_BUCKET / "attestations"
    version = client.put_object(Bucket=bucket, Key=key, Body=(folder / sample).read_bytes()).get("VersionId", "")
    client.put_object(Bucket=bucket, Key=key + ".sig", Body=(folder / (sample + ".sig")).read_bytes())
    return str(version)


def test_s3_overwritten_attestation_keeps_both_versions(moto_endpoint: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    versioned_bucket(client, "att-overwrite")
    first = put_signed(client, "att-overwrite", "b/att.json", SIGNED_A)
    second = put_signed(client, "att-overwrite", "b/att.json", SIGNED_B)  # overwritten before any run
    ledger = new_ledger(tmp_path / "l.db")
    src = "s3://att-overwrite/b/"
    run = collect(ledger, provider(moto_endpoint, src), src)
    assert run.summary.balanced and (run.summary.appended, run.summary.quarantined) == (2, 0)
    assert run.tally.listed == run.tally.records + run.tally.companions == 4
    assert (run.tally.older_versions, run.tally.companions, run.tally.deleted) == (2, 2, 0)
    events = [e["event"] for e in run.entries]
    assert [e["attrs"]["version_id"] for e in events] == [second, first]  # current first, then newest first
    assert [e["kind"] for e in events] == ["attestation.signed"] * 2  # each with the .sig of its own time
    assert "is_latest" not in events[0]["attrs"] and events[1]["attrs"]["is_latest"] is False
    assert events[0]["attrs"]["sha256"] != events[1]["attrs"]["sha256"]
    assert [e["source"]["version_id"] for e in run.entries] == [second, first]
    again = collect(ledger, provider(moto_endpoint, src), src)
    assert (again.summary.appended, again.summary.duplicates) == (0, 2)
    # the same bucket collected current-only sees one version: the gap this closes
    current = collect(new_ledger(tmp_path / "c.db"), provider(moto_endpoint, src), src, all_versions=False)
    assert current.summary.appended == 1 and current.entries[0]["event"]["attrs"]["version_id"] == second


def test_s3_overwrite_between_runs_appends_the_new_version_only(moto_endpoint: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    versioned_bucket(client, "att-between")
    put_signed(client, "att-between", "att.json", SIGNED_A)
    ledger = new_ledger(tmp_path / "l.db")
    src = "s3://att-between/"
    assert collect(ledger, provider(moto_endpoint, src), src).summary.appended == 1
    put_signed(client, "att-between", "att.json", SIGNED_B)
    run = collect(ledger, provider(moto_endpoint, src), src)
    assert (run.summary.appended, run.summary.duplicates) == (1, 1)
    assert collect(ledger, provider(moto_endpoint, src), src).summary.appended == 0


def test_s3_deleted_attestation_is_recorded_once(moto_endpoint: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    versioned_bucket(client, "att-deleted")
    version = put_signed(client, "att-deleted", "att.json", SIGNED_A)
    ledger = new_ledger(tmp_path / "l.db")
    src = "s3://att-deleted/"
    assert collect(ledger, provider(moto_endpoint, src), src).summary.appended == 1
    marker = client.delete_object(Bucket="att-deleted", Key="att.json")["VersionId"]
    run = collect(ledger, provider(moto_endpoint, src), src)
    assert run.summary.balanced and (run.summary.appended, run.summary.duplicates) == (1, 1)
    assert run.tally.deleted == 1 and run.tally.listed == run.tally.records + run.tally.companions == 3
    deleted = [e for e in run.entries if e["event"]["kind"] == "attestation.deleted"]
    assert len(deleted) == 1
    event = deleted[0]["event"]
    assert event["resource"] == "s3://att-deleted/att.json" and event["actor"] is None
    assert event["outcome"]["status"] == "failure" and event["time"].endswith("Z")
    attrs = event["attrs"]
    assert attrs["delete_marker_version_id"] == attrs["version_id"] == marker
    assert attrs["previous_version_id"] == version and attrs["deleted_by"] is None and attrs["object_key"] == "att.json"
    again = collect(ledger, provider(moto_endpoint, src), src)
    assert (again.summary.appended, again.summary.duplicates) == (0, 2) and again.tally.deleted == 1


def test_s3_attestation_deleted_before_any_run_keeps_its_version(moto_endpoint: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    versioned_bucket(client, "att-deleted-before-any-run")
    put_signed(client, "att-deleted-before-any-run", "att.json", SIGNED_A)
    client.delete_object(Bucket="att-deleted-before-any-run", Key="att.json")
    client.delete_object(Bucket="att-deleted-before-any-run", Key="att.json.sig")
    src = "s3://att-deleted-before-any-run/"
    run = collect(new_ledger(tmp_path / "l.db"), provider(moto_endpoint, src), src)
    kinds = sorted(e["event"]["kind"] for e in run.entries)
    # the older version still verifies with its (deleted) .sig; both markers are findings
    assert kinds == ["attestation.deleted", "attestation.deleted", "attestation.signed"]
    assert run.summary.quarantined == 0 and run.tally.companions == 1


def test_s3_unversioned_bucket_unchanged(moto_endpoint: str, sample_bucket: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    client.create_bucket(Bucket="att-plain", CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in sorted((SAMPLE_BUCKET / "attestations").iterdir()):
        if not path.name.endswith(".meta.json"):
            client.put_object(Bucket="att-plain", Key=path.name, Body=path.read_bytes())
    src = "s3://att-plain/"
    every = collect(new_ledger(tmp_path / "a.db"), provider(moto_endpoint, src), src)
    current = collect(new_ledger(tmp_path / "c.db"), provider(moto_endpoint, src), src, all_versions=False)
    assert [e["event"] for e in every.entries] == [e["event"] for e in current.entries]
    assert [e["source"] for e in every.entries] == [e["source"] for e in current.entries]
    assert every.tally == current.tally and every.tally.deleted == 0
    assert all(e["event"]["attrs"]["version_id"] is None for e in every.entries)
    assert [(q.location, q.reason) for q in every.quarantined] == [(q.location, q.reason) for q in current.quarantined]


def test_cli_reports_a_deleted_attestation_and_current_only_skips_older_versions(moto_endpoint: str,
                                                                                  tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    versioned_bucket(client, "att-cli-versions")
    put_signed(client, "att-cli-versions", "a.json", SIGNED_A)
    put_signed(client, "att-cli-versions", "a.json", SIGNED_B)  # an older version of a.json, and of a.json.sig
    put_signed(client, "att-cli-versions", "gone.json", SIGNED_A)
    client.delete_object(Bucket="att-cli-versions", Key="gone.json")  # a delete marker
    runner = CliRunner()

    def run(ledger: Path, *extra: str, json_out: bool = False) -> Any:
        assert runner.invoke(app, ["--ledger", str(ledger), "init", "--origin", "t/a", "--no-key"]).exit_code in (0, 2)
        fmt = ["--format", "json"] if json_out else []
        return runner.invoke(app, ["--ledger", str(ledger), *fmt, "collect", "attestations", "s3://att-cli-versions/",
                                   "--endpoint-url", moto_endpoint, "--region", REGION,
                                   "--trusted-keys", str(SAMPLE_KEYS), *extra])

    every = run(tmp_path / "all.db")
    assert every.exit_code == 1, every.output  # a deleted attestation is a finding: exit 1, as the docs say
    assert "DELETED" in every.output
    current = run(tmp_path / "current.db", "--current-only", json_out=True)
    doc = json.loads(current.stdout)
    # current versions only: a.json's newest version, and gone.json.sig left without its object; no marker seen
    assert doc["balanced"] and doc["appended"] == 1 and doc["objects"].get("deleted", 0) == 0
    assert [r["location"] for r in doc["results"]] == ["s3://att-cli-versions/a.json",
                                                      "s3://att-cli-versions/gone.json.sig"]
    full = json.loads(run(tmp_path / "all2.db", json_out=True).stdout)
    assert full["balanced"] and full["objects"]["deleted"] == 1 and full["appended"] > doc["appended"]


# -- the pre-versioning ("null") version: one identity whichever way S3 reports it -----------------
#
# moto 5 (checked): ListObjectVersions lists an object put before put_bucket_versioning with VersionId
# "null", and HeadObject omits the version id both before versioning and for VersionId="null" after it;
# so the first run saw no version id and a run after the overwrite saw "null". AWS documents that such
# an object "has a version ID of null"; a store that also answers HeadObject with "null" (or a listing
# with none) is covered by the unit test below.


def test_s3_pre_versioning_object_overwritten_is_recorded_once(moto_endpoint: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    bucket = "att-null-version"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    ledger = new_ledger(tmp_path / "l.db")
    src = f"s3://{bucket}/"
    put_signed(client, bucket, "att.json", SIGNED_A)  # before versioning: S3's "null" version
    first = collect(ledger, provider(moto_endpoint, src), src)
    assert first.summary.appended == 1 and first.entries[0]["event"]["attrs"]["version_id"] is None
    put_signed(client, bucket, "att.json", SIGNED_B)  # still unversioned: other bytes replace the null version
    second = collect(ledger, provider(moto_endpoint, src), src)
    assert (second.summary.appended, second.summary.duplicates) == (1, 0)  # other bytes: not merged
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    new_version = put_signed(client, bucket, "att.json", SIGNED_A)  # A's bytes again, as a new version
    assert new_version
    third = collect(ledger, provider(moto_endpoint, src), src)
    assert third.tally.older_versions == 2  # att.json and att.json.sig, both listed as "null"
    # the new version is new although its bytes are the first run's; the null version (B), now listed
    # as "null" and read by VersionId=null, is the entry of the second run
    assert (third.summary.appended, third.summary.duplicates) == (1, 1), [e["source"] for e in third.entries]
    assert [e["source"].get("version_id") for e in third.entries] == [None, None, new_version]
    shas = [e["event"]["attrs"]["sha256"] for e in third.entries]
    assert shas[0] == shas[2] != shas[1]
    again = collect(ledger, provider(moto_endpoint, src), src)
    assert (again.summary.appended, again.summary.duplicates) == (0, 2)


class NullNamingS3(S3Provider):
    """An S3 provider whose HeadObject names the null version "null", as AWS documents for a bucket that
    has (had) versioning, where moto leaves the version id out. A real subclass, not a mock: every
    request still goes to moto's server."""

    def head_version(self, key: str, version_id: str | None) -> ObjectHead:
        head = super().head_version(key, version_id)
        return head if head.version_id is not None else dataclasses.replace(head, version_id="null")


def test_s3_null_version_named_null_by_head_object_is_the_same_entry(moto_endpoint: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    bucket = "att-null-named"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    put_signed(client, bucket, "att.json", SIGNED_A)
    ledger = new_ledger(tmp_path / "l.db")
    src = f"s3://{bucket}/"
    assert collect(ledger, provider(moto_endpoint, src), src).summary.appended == 1  # HeadObject: no version id
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    named = NullNamingS3(bucket, "", s3(moto_endpoint))
    run = collect(ledger, named, src)  # the same current object, now read as version "null"
    assert (run.summary.appended, run.summary.duplicates) == (0, 1)


def test_version_identity_of_the_null_version() -> None:
    # ListObjectVersions names the pre-versioning version "null"; HeadObject may name it or not
    assert version_identity(None) == version_identity("") == version_identity("null") == ""
    real = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"  # AWS's example version id
    assert version_identity(real) == real and version_identity("Null") == "Null"
    # a listing entry without a version id can only be the null version (every other has its own)
    assert listed_version_id(None) == listed_version_id("") == listed_version_id("null") == "null"
    assert listed_version_id(real) == real
