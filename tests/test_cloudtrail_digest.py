"""Pure digest validation: string to sign, keys by fingerprint, one test per defect folder, the CLI."""

from __future__ import annotations

import base64
import gzip
import hashlib
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.cloudtrail_digest import (
    FetchedDigest,
    LogRef,
    chain_id,
    fingerprint_of,
    inflate_one_member,
    keys_in_window,
    load_public_keys,
    string_to_sign,
    verify_digest,
    verify_log_file,
)
from collector.cloudtrail_fetch import public_keys_from_file, validate_store
from collector.errors import MalformedInput
from collector.object_source import LocalFolderProvider
from samples.make import cloudtrail as mk
from tests.conftest import REPO, shared_data

SAMPLES = REPO / "samples" / "cloudtrail"
START = datetime(2026, 11, 20, 11, 0, tzinfo=timezone.utc)
END = datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc)


def test_importing_the_validator_does_not_import_boto3() -> None:
    code = "import sys, collector.cloudtrail_digest; assert 'boto3' not in sys.modules and 'botocore' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_string_to_sign_readme_example() -> None:
    assert string_to_sign("a", "b", "c", b"abc", None) == (
        b"a\nb/c\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nnull")
    assert string_to_sign("a", "b", "c", b"abc", "ff").endswith(b"\nff")


def test_aws_public_key_fingerprint_lookup() -> None:
    root = shared_data("cloudtrail_digest", "aws_docs_examples")
    keys = load_public_keys((root / "list-public-keys.example-output.json").read_bytes())
    assert list(keys) == ["7f3f401420072e50a65a141430817ab3"]
    key = keys["7f3f401420072e50a65a141430817ab3"]
    assert key.valid_from is not None and key.valid_from.year == 2016
    for name in ("sample_digest_file.json", "empty_digest_file.json"):
        doc = orjson.loads((root / name).read_bytes())
        # Both examples name a key (31e8b5...) that is not in the published key list: a lookup must miss,
        # and the digest is then INVALID ("public key not found"), never valid.
        assert doc["digestPublicKeyFingerprint"] not in keys
        fetched = FetchedDigest(doc["digestS3Object"], name, gzip.compress((root / name).read_bytes()),
                                doc["digestS3Bucket"], "00", "SHA256withRSA")
        verdict, parsed = verify_digest(fetched, keys)
        assert verdict.status == "invalid" and "public key not found for fingerprint 31e8b5" in verdict.reason
        assert parsed is None
        assert chain_id(doc["digestS3Object"]) is not None and chain_id(doc["previousDigestS3Object"]) is not None


def test_empty_digest_validates_when_signed(tmp_path: Path) -> None:
    """The AWS empty digest (no log files that hour), re-signed with the test key, is valid with no logs."""
    root = shared_data("cloudtrail_digest", "aws_docs_examples")
    key = mk.load_or_create_key("digest-signing")
    doc = orjson.loads((root / "empty_digest_file.json").read_bytes())
    doc["digestPublicKeyFingerprint"] = mk.fingerprint(key)
    body, meta = mk.sign_digest(doc, key)
    keys = load_public_keys(orjson.dumps(mk.public_keys_document([key], START, END)))
    fetched = FetchedDigest(doc["digestS3Object"], "x", body, doc["digestS3Bucket"], meta["signature"],
                            meta["signature-algorithm"])
    verdict, parsed = verify_digest(fetched, keys)
    assert verdict.status == "valid" and parsed is not None and parsed.log_files == ()
    # moved: the same bytes read from another bucket or key
    for bucket, obj in (("other-bucket", doc["digestS3Object"]), (doc["digestS3Bucket"], "x/" + doc["digestS3Object"])):
        moved = FetchedDigest(obj, "x", body, bucket, meta["signature"], "SHA256withRSA")
        assert verify_digest(moved, keys)[0].reason == "has been moved from its original location"
    flipped = bytearray(inflate_one_member(body))
    flipped[-3] ^= 1
    bad = FetchedDigest(doc["digestS3Object"], "x", gzip.compress(bytes(flipped)), doc["digestS3Bucket"],
                        meta["signature"], "SHA256withRSA")
    assert verify_digest(bad, keys)[0].status == "invalid"


def test_public_key_file_with_wrong_fingerprint_is_rejected() -> None:
    key = mk.load_or_create_key("digest-signing")
    doc = mk.public_keys_document([key], START, END)
    doc["PublicKeyList"][0]["Fingerprint"] = "0" * 32
    with pytest.raises(MalformedInput, match="not the MD5"):
        load_public_keys(orjson.dumps(doc))


def test_keys_outside_the_window_are_not_used() -> None:
    key = mk.load_or_create_key("digest-signing")
    keys = load_public_keys(orjson.dumps(mk.public_keys_document([key], START, END)))
    assert keys_in_window(keys, END.replace(year=2027), END.replace(year=2028)) == {}
    assert fingerprint_of(base64.b64decode(mk.public_keys_document([key], START, END)["PublicKeyList"][0]["Value"])) \
        == mk.fingerprint(key)


def test_log_file_checks() -> None:
    body = b'{"Records":[]}'
    ref = LogRef("b", "k", hashlib.sha256(body).hexdigest(), "d")
    assert verify_log_file(ref, gzip.compress(body), "k").status == "valid"
    assert verify_log_file(ref, None, "k").reason == "not found"
    assert verify_log_file(ref, gzip.compress(body) + b"x", "k").reason == \
        "unexpected data after end of compressed stream"
    assert verify_log_file(ref, gzip.compress(body + b" "), "k").reason == "hash value doesn't match"
    assert verify_log_file(ref, body, "k").reason == "invalid format"


EXPECTED = {
    "valid": (True, []),
    "chain-restart-gap": (True, ["the chain restarts here"]),
    "log-file-modified": (False, ["hash value doesn't match"]),
    "log-file-deleted": (False, ["not found"]),
    "log-file-gzip-trailing-data": (False, ["unexpected data after end of compressed stream"]),
    "digest-modified": (False, ["signature verification failed"]),
    "digest-deleted-middle": (False, ["not found", "listed in no digest"]),
    "digests-deleted-consecutive": (False, ["not found", "not found (deleted: inferred", "listed in no digest"]),
    "digest-moved": (False, ["has been moved from its original location", "not found"]),
    "unknown-key-fingerprint": (False, ["public key not found for fingerprint"]),
    "signature-of-another-digest": (False, ["signature verification failed"]),
    "chain-tail-deleted": (False, ["the chain ends at 2026-11-20T16:00:00Z, before the requested end"]),
    "log-file-unlisted": (False, ["listed in no digest"]),
}


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_sample_folders(folder: str) -> None:
    keys = public_keys_from_file(SAMPLES / "public-keys.json")
    report = validate_store(LocalFolderProvider(SAMPLES / folder), keys, start=START, end=END)
    ok, reasons = EXPECTED[folder]
    problems = [v.reason or "" for v in report.verdicts if v.status != "valid"]
    assert report.ok is ok, problems
    for reason in reasons:
        assert any(p.startswith(reason) for p in problems), (reason, problems)


def test_every_sample_folder_is_covered() -> None:
    folders = {p.name for p in SAMPLES.iterdir() if p.is_dir()} - {"keys", "long-term-key-violation"}
    assert folders == set(EXPECTED)


def test_violation_trail_validates_for_its_own_hour() -> None:
    keys = public_keys_from_file(SAMPLES / "public-keys.json")
    report = validate_store(LocalFolderProvider(SAMPLES / "long-term-key-violation"), keys,
                            start=datetime(2026, 11, 20, 14, tzinfo=timezone.utc),
                            end=datetime(2026, 11, 20, 15, tzinfo=timezone.utc))
    assert report.ok and report.count("digest", "valid") == 1


def test_validate_cli_lines_tally_and_exit_codes() -> None:
    runner = CliRunner()
    args = ["--start", "2026-11-20T11:00:00Z", "--end", "2026-11-20T18:00:00Z", "--public-keys",
            str(SAMPLES / "public-keys.json")]
    ok = runner.invoke(app, ["cloudtrail", "validate", str(SAMPLES / "valid"), *args])
    assert ok.exit_code == 0, ok.output
    lines = ok.output.strip().splitlines()
    assert lines[-1] == "6/6 digest files valid; 12/12 log files valid; 0 gap(s)"
    assert sum(1 for line in lines if line.endswith("\tvalid")) == 18
    bad = runner.invoke(app, ["cloudtrail", "validate", str(SAMPLES / "digests-deleted-consecutive"), *args])
    assert bad.exit_code == 1
    assert bad.output.count("INVALID: not found") == 2
    js = runner.invoke(app, ["--format", "json", "cloudtrail", "validate", str(SAMPLES / "log-file-modified"), *args])
    doc = orjson.loads(js.output)
    assert js.exit_code == 1 and doc["version"] == 1 and doc["ok"] is False
    missing_keys = runner.invoke(app, ["cloudtrail", "validate", str(SAMPLES / "valid"), "--start",
                                       "2026-11-20T11:00:00Z", "--end", "2026-11-20T18:00:00Z", "--public-keys",
                                       str(SAMPLES / "nope.json")])
    assert missing_keys.exit_code == 3


def test_download_writes_sidecars_that_validate(moto_endpoint: str, tmp_path: Path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-gov-west-1")
    bucket = "agency-cloudtrail-download"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-gov-west-1"})
    key = mk.load_or_create_key("digest-signing")
    layout = mk.TrailLayout(bucket=bucket)
    for obj in mk.build_chain(layout, key, hours=2).values():
        s3.put_object(Bucket=bucket, Key=obj.key, Body=obj.body, Metadata=obj.metadata)
    runner = CliRunner()
    out = tmp_path / "copy"
    got = runner.invoke(app, ["cloudtrail", "download", f"s3://{bucket}/", str(out), "--endpoint-url", moto_endpoint,
                              "--region", "us-gov-west-1"])
    assert got.exit_code == 0, got.output
    assert len(list(out.rglob("*.sig.json"))) == 2
    keys = public_keys_from_file(SAMPLES / "public-keys.json")
    report = validate_store(LocalFolderProvider(out), keys, start=mk.CHAIN_START,
                            end=mk.CHAIN_START.replace(hour=14))
    assert report.ok and report.count("digest", "valid") == 2 and report.count("log", "valid") == 4


@pytest.mark.parametrize("prefix", ["AWSLogs/", "AWSLogs/123456789012/"])
def test_a_copy_downloaded_from_a_prefix_inside_awslogs_still_validates(moto_endpoint: str, tmp_path: Path,
                                                                        prefix: str) -> None:
    """README downloads and validates s3://bucket/AWSLogs/: the copy keeps each object's whole key
    (the AWSLogs/ layout the validator reads), not the key less the prefix given."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-gov-west-1")
    bucket = "agency-cloudtrail-prefixed" + str(len(prefix))
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-gov-west-1"})
    key = mk.load_or_create_key("digest-signing")
    for obj in mk.build_chain(mk.TrailLayout(bucket=bucket), key, hours=2).values():
        s3.put_object(Bucket=bucket, Key=obj.key, Body=obj.body, Metadata=obj.metadata)
    out = tmp_path / "copy"
    got = CliRunner().invoke(app, ["cloudtrail", "download", f"s3://{bucket}/{prefix}", str(out),
                                   "--endpoint-url", moto_endpoint, "--region", "us-gov-west-1"])
    assert got.exit_code == 0, got.output
    assert all(p.relative_to(out).parts[0] == "AWSLogs" for p in out.rglob("*") if p.is_file())
    report = validate_store(LocalFolderProvider(out), public_keys_from_file(SAMPLES / "public-keys.json"),
                            start=mk.CHAIN_START, end=mk.CHAIN_START.replace(hour=14))
    assert report.ok and report.count("digest", "valid") == 2 and report.count("log", "valid") == 4


def _signed_digest() -> tuple[dict, bytes, dict, dict]:
    key = mk.load_or_create_key("digest-signing")
    objects = mk.build_chain(mk.TrailLayout(), key, hours=2)
    dkey = sorted(k for k in objects if "/CloudTrail-Digest/" in k)[1]
    keys = load_public_keys(orjson.dumps(mk.public_keys_document([key], START, END)))
    return keys, inflate_one_member(objects[dkey].body), objects[dkey].metadata, {"key": dkey}


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SIGNED = _signed_digest()


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_of_a_digest_is_caught(position: int, flip: int) -> None:
    keys, inflated, meta, where = SIGNED
    changed = bytearray(inflated)
    changed[position % len(changed)] ^= flip
    fetched = FetchedDigest(where["key"], "x", gzip.compress(bytes(changed)), mk.story.CLOUDTRAIL_BUCKET,
                            meta["signature"], meta["signature-algorithm"])
    assert verify_digest(fetched, keys)[0].status == "invalid"


def test_the_unchanged_digest_verifies() -> None:
    keys, inflated, meta, where = SIGNED
    fetched = FetchedDigest(where["key"], "x", gzip.compress(inflated), mk.story.CLOUDTRAIL_BUCKET,
                            meta["signature"], meta["signature-algorithm"])
    assert verify_digest(fetched, keys)[0].status == "valid"


def test_a_re_signed_replacement_breaks_the_link_its_successor_recorded(tmp_path: Path) -> None:
    """AWS's tool checks each signature but not that a digest is the one its successor linked to."""
    key = mk.load_or_create_key("digest-signing")
    objects = mk.build_chain(mk.TrailLayout(), key, hours=4)
    digests = sorted(k for k in objects if "/CloudTrail-Digest/" in k)
    doc = orjson.loads(inflate_one_member(objects[digests[2]].body))
    doc["logFiles"] = []  # a different, validly signed digest in the same place
    body, meta = mk.sign_digest(doc, key)
    objects[digests[2]] = mk.TrailObject(digests[2], body, meta)
    mk.write_folder(tmp_path / "chain", objects)
    keys = public_keys_from_file(SAMPLES / "public-keys.json")
    report = validate_store(LocalFolderProvider(tmp_path / "chain"), keys, start=mk.CHAIN_START,
                            end=mk.CHAIN_START.replace(hour=16))
    assert report.count("digest", "valid") == 4
    problems = [v for v in report.verdicts if v.status == "invalid"]
    assert any(v.subject == "chain" and v.key == digests[2] and "digest replaced" in (v.reason or "") for v in problems)
    assert not report.ok


def _key_list_file(path: Path, items: list[dict]) -> Path:
    path.write_bytes(orjson.dumps({"PublicKeyList": items}))
    return path


def test_public_keys_from_several_files_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline key lists saved per region or per period: every file counts, a key listed twice is
    valid over the union of its windows, and two different keys with one fingerprint are refused."""
    import base64

    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from collector import cloudtrail_digest
    from collector.errors import MalformedInput

    sample = orjson.loads((SAMPLES / "public-keys.json").read_bytes())["PublicKeyList"][0]
    early = _key_list_file(tmp_path / "early.json", [dict(sample, ValidityEndTime="2026-11-19T00:00:00Z")])
    late = _key_list_file(tmp_path / "late.json", [dict(sample, ValidityStartTime="2026-11-20T15:00:00Z")])
    other_der = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        Encoding.DER, PublicFormat.PKCS1)
    other = _key_list_file(tmp_path / "other.json", [{
        "Value": base64.b64encode(other_der).decode(), "Fingerprint": cloudtrail_digest.fingerprint_of(other_der),
        "ValidityStartTime": "2026-01-01T00:00:00Z", "ValidityEndTime": "2027-01-01T00:00:00Z"}])
    # the early file alone says the key expired before the chain; with the later file it covers it
    assert not validate_store(LocalFolderProvider(SAMPLES / "valid"), public_keys_from_file(early),
                              start=START, end=END).ok
    both = validate_store(LocalFolderProvider(SAMPLES / "valid"), public_keys_from_file(other, early, late),
                          start=START, end=END)
    assert both.ok and both.count("digest", "valid") == 6
    runner = CliRunner()
    args = ["cloudtrail", "validate", str(SAMPLES / "valid"), "--start", "2026-11-20T11:00:00Z", "--end",
            "2026-11-20T18:00:00Z"]
    assert runner.invoke(app, [*args, "--public-keys", str(other)]).exit_code == 1
    assert runner.invoke(app, [*args, "--public-keys", str(other), "--public-keys", str(SAMPLES / "public-keys.json")]
                         ).exit_code == 0
    monkeypatch.setattr(cloudtrail_digest, "fingerprint_of", lambda der: "0" * 32)  # as if MD5 collided
    colliding = [_key_list_file(tmp_path / f"c{i}.json", [{"Value": item["Value"], "Fingerprint": "0" * 32}])
                 for i, item in enumerate((sample, {"Value": base64.b64encode(other_der).decode()}))]
    with pytest.raises(MalformedInput, match="MD5 collision"):
        public_keys_from_file(*colliding)


def _chain_listing_a_log_in_another_bucket(bucket: str) -> tuple[dict[str, mk.TrailObject], str]:
    """A 2-hour chain whose newest digest (validly re-signed, no successor to break) lists its
    first log file under another bucket; the file with that key is in the copy, unchanged."""
    key = mk.load_or_create_key("digest-signing")
    objects = mk.build_chain(mk.TrailLayout(bucket=bucket), key, hours=2)
    newest = sorted(k for k in objects if "/CloudTrail-Digest/" in k)[-1]
    doc = orjson.loads(inflate_one_member(objects[newest].body))
    doc["logFiles"][0]["s3Bucket"] = "another-agency-bucket"
    body, meta = mk.sign_digest(doc, key)
    objects[newest] = mk.TrailObject(newest, body, meta)
    return objects, doc["logFiles"][0]["s3Object"]


def _bucket_problems(report) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(v.location, v.reason or "") for v in report.verdicts
            if v.subject == "log" and v.status == "invalid" and "another bucket" in (v.reason or "")]


def test_a_local_copy_reports_a_log_its_digest_lists_in_another_bucket(tmp_path: Path) -> None:
    """A local folder carries no bucket name, but each digest signs its own (digestS3Bucket): a log file
    it lists in another bucket is not the file of that key in this copy. Before, the copy's file was
    hashed and reported valid; over S3 the same digest was already INVALID (see the next test)."""
    objects, moved_log = _chain_listing_a_log_in_another_bucket(mk.story.CLOUDTRAIL_BUCKET)
    mk.write_folder(tmp_path / "copy", objects)
    keys = public_keys_from_file(SAMPLES / "public-keys.json")
    report = validate_store(LocalFolderProvider(tmp_path / "copy"), keys, start=mk.CHAIN_START,
                            end=mk.CHAIN_START.replace(hour=14))
    assert report.count("digest", "valid") == 2 and not report.ok
    assert _bucket_problems(report) == [(
        f"s3://another-agency-bucket/{moved_log}",
        f"in another bucket than its digest's ({mk.story.CLOUDTRAIL_BUCKET}): not checked in this copy")]
    assert report.count("log", "valid") == 3


def test_over_s3_a_log_listed_in_another_bucket_is_reported_as_before(moto_endpoint: str) -> None:
    import boto3

    from collector.object_source import S3Provider

    bucket = "agency-cloudtrail-other-bucket"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-gov-west-1")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-gov-west-1"})
    objects, moved_log = _chain_listing_a_log_in_another_bucket(bucket)
    for obj in objects.values():
        s3.put_object(Bucket=bucket, Key=obj.key, Body=obj.body, Metadata=obj.metadata)
    keys = public_keys_from_file(SAMPLES / "public-keys.json")
    report = validate_store(S3Provider(bucket, "", s3), keys, start=mk.CHAIN_START,
                            end=mk.CHAIN_START.replace(hour=14))
    assert report.count("digest", "valid") == 2 and not report.ok
    assert _bucket_problems(report) == [(
        f"s3://another-agency-bucket/{moved_log}", "in another bucket than the one validated (not checked)")]
    assert report.count("log", "valid") == 3
