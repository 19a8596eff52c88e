"""Defects found by an adversarial review of `collect attestations`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.canonical import parse_json
from collector.cli import app
from collector.errors import MalformedInput, SourceUnavailable
from collector.ledger import Ledger
from tests.attest_support import SAMPLE_KEYS

DEEP_WITH_DUPLICATE = '{"a":' * 1000 + '{"a":1,"a":2,"signer":"x"}' + "}" * 1000


def test_deep_json_that_may_hold_duplicate_keys_is_malformed_input_not_a_crash() -> None:
    with pytest.raises(MalformedInput, match="nested too deeply"):
        parse_json(DEEP_WITH_DUPLICATE.encode())
    # a deep text with '":' inside a string (the cheap duplicate test over-counts) but no duplicate key
    deep_string = '{"a":' * 1000 + '{"b":"x\\":"}' + "}" * 1000
    with pytest.raises(MalformedInput, match="nested too deeply"):
        parse_json(deep_string.encode())


def test_a_deeply_nested_object_is_quarantined_and_the_others_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "bucket"
    folder.mkdir()
    (folder / "deep.json").write_text(DEEP_WITH_DUPLICATE)
    (folder / "plain.json").write_text(json.dumps({"git": "a" * 40, "build": 1, "signer": "me"}))
    runner = CliRunner()
    db = tmp_path / "l.db"
    assert runner.invoke(app, ["--ledger", str(db), "init", "--origin", "t/a", "--no-key"]).exit_code == 0
    got = runner.invoke(app, ["--ledger", str(db), "--as-of", "2026-11-25T00:00:00Z", "--format", "json", "collect",
                              "attestations", str(folder), "--trusted-keys", str(SAMPLE_KEYS)])
    assert got.exit_code == 1, got.output  # the unsigned one and the quarantined one: findings, not a crash
    doc = json.loads(got.stdout)
    assert (doc["read"], doc["appended"], doc["quarantined"]) == (2, 1, 1)
    assert any("nested too deeply" in reason for reason in doc["reasons"])


def test_the_bytes_recorded_are_those_of_the_version_recorded(moto_endpoint: str, tmp_path: Path) -> None:
    """An object overwritten while it is read: the entry must not pair one version's id with another's bytes."""
    import hashlib

    import boto3

    from collector.object_source import ObjectHead, S3Provider, s3_client
    from tests.attest_support import SAMPLE_BUCKET, collect, new_ledger

    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-gov-west-1")
    client.create_bucket(Bucket="att-race", ObjectLockEnabledForBucket=True,
                         CreateBucketConfiguration={"LocationConstraint": "us-gov-west-1"})
    first = (SAMPLE_BUCKET / "attestations" / "31415926535.provenance.dsse.json").read_bytes()
    second = (SAMPLE_BUCKET / "attestations" / "attestation.bad-sig.dsse.json").read_bytes()
    client.put_object(Bucket="att-race", Key="a/prov.dsse.json", Body=first)

    class OverwrittenWhileRead(S3Provider):
        def head_version(self, key: str, version_id: str | None) -> ObjectHead:  # the read path of every version
            head = super().head_version(key, version_id)
            client.put_object(Bucket="att-race", Key=key, Body=second)  # a writer, between head and get
            return head

    provider = OverwrittenWhileRead("att-race", "a/", s3_client(endpoint_url=moto_endpoint, region="us-gov-west-1"))
    run = collect(new_ledger(tmp_path / "l.db"), provider, "s3://att-race/a/")
    attrs = run.events["a/prov.dsse.json"]["attrs"]
    versions = client.list_object_versions(Bucket="att-race", Prefix="a/")["Versions"]
    (oldest,) = [v for v in versions if not v["IsLatest"]]  # LastModified has whole seconds: both may share one
    assert len(versions) == 2 and attrs["version_id"] == oldest["VersionId"]
    body = client.get_object(Bucket="att-race", Key="a/prov.dsse.json", VersionId=attrs["version_id"])["Body"].read()
    assert attrs["sha256"] == hashlib.sha256(body).hexdigest()
    assert run.events["a/prov.dsse.json"]["kind"] == "attestation.signed"


def test_collect_json_names_each_failing_object(tmp_path: Path) -> None:
    """Human output has one line per record (signed / INVALID / UNSIGNED / QUARANTINED); JSON must say the same."""
    from tests.attest_support import SAMPLE_BUCKET

    runner = CliRunner()
    db = tmp_path / "l.db"
    assert runner.invoke(app, ["--ledger", str(db), "init", "--origin", "t/a", "--no-key"]).exit_code == 0
    folder = SAMPLE_BUCKET / "attestations"
    got = runner.invoke(app, ["--ledger", str(db), "--as-of", "2026-11-25T00:00:00Z", "--format", "json", "collect",
                              "attestations", str(folder), "--trusted-keys", str(SAMPLE_KEYS)])
    assert got.exit_code == 1, got.output
    doc = json.loads(got.stdout)
    results = {r["location"].rsplit("/", 1)[-1]: r for r in doc["results"]}
    assert len(results) == doc["read"] == 13
    assert results["attestation.bad-sig.dsse.json"]["status"] == "invalid"
    assert "bad signature" in results["attestation.bad-sig.dsse.json"]["reason"]
    assert results["attestation.unsigned.json"]["status"] == "unsigned"
    assert results["attestation.truncated.dsse.json"]["status"] == "quarantined"
    assert results["31415926535.provenance.dsse.json"] == {
        "location": str(folder / "31415926535.provenance.dsse.json"), "status": "signed", "reason": None,
        "retention_ok": True, "retention_reason": None}


def test_an_object_over_the_size_limit_records_no_made_up_content_hash(tmp_path: Path) -> None:
    """It was quarantined with the SHA-256 of its key name in the hash field, which reads as the hash of
    its content. Its bytes are not read: the hash field is empty (unknown) and the reason gives its size."""
    import hashlib

    from collector.ledger import Ledger
    from collector.sources.attestations import MAX_OBJECT_BYTES

    folder = tmp_path / "bucket"
    folder.mkdir()
    with open(folder / "huge.dsse.json", "wb") as handle:
        handle.truncate(MAX_OBJECT_BYTES + 1)  # sparse: no 16 MiB written
    (folder / "plain.json").write_text(json.dumps({"git": "a" * 40, "build": 1, "signer": "me"}))
    runner = CliRunner()
    db = tmp_path / "l.db"
    assert runner.invoke(app, ["--ledger", str(db), "init", "--origin", "t/a", "--no-key"]).exit_code == 0
    args = ["--ledger", str(db), "--as-of", "2026-11-25T00:00:00Z", "--format", "json", "collect", "attestations",
            str(folder), "--trusted-keys", str(SAMPLE_KEYS)]
    got = runner.invoke(app, args)
    assert got.exit_code == 1, got.output
    doc = json.loads(got.stdout)
    assert (doc["read"], doc["appended"], doc["quarantined"]) == (2, 1, 1)
    reason = f"object too large: {MAX_OBJECT_BYTES + 1} bytes, over the 16 MiB limit (not read, SHA-256 unknown)"
    results = {r["location"].rsplit("/", 1)[-1]: r for r in doc["results"]}
    assert results["huge.dsse.json"]["reason"] == reason
    with Ledger.open(db) as ledger:
        (row,) = ledger.quarantined()
    assert (row.reason, row.sha256) == (reason, "")
    assert row.sha256 != hashlib.sha256(b"huge.dsse.json").hexdigest()
    assert runner.invoke(app, args).exit_code == 1  # a re-run quarantines it again but keeps one row
    with Ledger.open(db) as ledger:
        assert len(ledger.quarantined()) == 1


def test_an_object_deleted_after_the_listing_is_quarantined_and_the_others_recorded(moto_endpoint: str,
                                                                                   tmp_path: Path) -> None:
    """An object gone between the listing and its read (a lifecycle rule, an operator) concerns that object only:
    it is quarantined with the S3 error code and the objects after it are still read; before, the run stopped
    (exit 3) at it, and a persistent per-object error (access denied, archived) stopped every later run there."""
    import boto3

    from collector.object_source import DeleteMarker, ObjectInfo, S3Provider, s3_client
    from tests.attest_support import SAMPLE_BUCKET, collect, new_ledger

    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-gov-west-1")
    client.create_bucket(Bucket="att-gone", CreateBucketConfiguration={"LocationConstraint": "us-gov-west-1"})
    body = (SAMPLE_BUCKET / "attestations" / "31415926535.provenance.dsse.json").read_bytes()
    for name in ("a", "b", "c"):
        client.put_object(Bucket="att-gone", Key=f"p/{name}.dsse.json", Body=body)

    class DeletedAfterListing(S3Provider):
        def list_versions(self, prefix: str = "") -> Iterator[ObjectInfo | DeleteMarker]:  # the listing S3 sources use
            infos = list(super().list_versions(prefix))
            client.delete_object(Bucket="att-gone", Key="p/b.dsse.json")  # gone before it is read
            return iter(infos)

    provider = DeletedAfterListing("att-gone", "p/", s3_client(endpoint_url=moto_endpoint, region="us-gov-west-1"))
    ledger = new_ledger(tmp_path / "l.db")
    run = collect(ledger, provider, "s3://att-gone/p/")
    assert run.summary.read == 3 and run.summary.appended == 2 and run.summary.quarantined == 1, run.summary
    assert set(run.events) == {"p/a.dsse.json", "p/c.dsse.json"}
    with Ledger.open(ledger) as opened:
        (row,) = opened.quarantined()
    assert row.location == "s3://att-gone/p/b.dsse.json" and row.sha256 == ""
    assert row.reason.startswith("unreadable: s3://att-gone/p/b.dsse.json: S3 request failed: "), row.reason
    assert row.reason.rsplit(" ", 1)[-1] in {"404", "NoSuchKey"}, row.reason


def test_a_throttled_or_failing_service_still_stops_the_run() -> None:
    """Only errors of one object are recorded as such; throttling, server and connection errors stop the run
    (exit 3) so that the next run retries them."""
    from collector.object_source import ObjectUnreadable, S3Provider

    class Throttled(Exception):
        response = {"Error": {"Code": "SlowDown"}}

    class Gone(Exception):
        response = {"Error": {"Code": "NoSuchKey"}}

    provider = S3Provider("b", "p/", client=None)
    assert type(provider._fail(Throttled(), "p/x")) is SourceUnavailable
    assert type(provider._fail(Gone(), "p/x")) is ObjectUnreadable
    assert type(provider._fail(Gone(), "")) is SourceUnavailable  # not about one object: the listing itself
