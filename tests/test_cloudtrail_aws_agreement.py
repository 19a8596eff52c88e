"""fedledger's digest validator agrees with AWS's own (`aws cloudtrail validate-logs`) on every case.

A digest chain signed with a committed RSA test key is put on moto's S3 server (real
HTTP, user metadata signatures); CloudTrail's DescribeTrails/ListPublicKeys come from
a local stub. Both validators run on the same objects; where AWS's tool says INVALID,
fedledger does too, and fedledger reports what AWS's tool misses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("awscli")
import boto3  # noqa: E402

from collector.cloudtrail_digest import ValidationReport  # noqa: E402
from collector.cloudtrail_fetch import public_keys_from_cloudtrail, validate_store  # noqa: E402
from collector.object_source import open_provider  # noqa: E402
from samples.make import cloudtrail as mk  # noqa: E402
from tests.cloudtrail_stub import cloudtrail_stub  # noqa: E402

BUCKET = mk.story.CLOUDTRAIL_BUCKET
REGION = mk.story.REGION
START = "2026-11-20T11:00:00Z"
END = "2026-11-20T18:00:00Z"
CASES = ["valid", "chain-restart-gap", *mk.DEFECTS]


def _objects(case: str, key: Any, other: Any) -> dict[str, mk.TrailObject]:
    layout = mk.TrailLayout(prefix=f"{case}/")
    if case == "chain-restart-gap":
        return _restarted(layout, key)
    objects = mk.build_chain(layout, key, logs_for_hour=mk.story_logs)
    if case == "valid":
        return objects
    return mk.DEFECTS[case](objects, other_key=other)


def _restarted(layout: mk.TrailLayout, key: Any) -> dict[str, mk.TrailObject]:
    import gzip

    import orjson

    objects = mk.build_chain(layout, key, logs_for_hour=mk.story_logs, break_before={4})
    for dkey in sorted(k for k in objects if "/CloudTrail-Digest/" in k)[2:4]:
        doc = orjson.loads(gzip.decompress(objects[dkey].body))
        del objects[dkey]
        for item in doc["logFiles"]:
            objects.pop(item["s3Object"], None)
    return objects


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> Any:
    key = mk.load_or_create_key("digest-signing")
    other = mk.load_or_create_key("unknown-signer")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    try:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    uploads = [obj for case in CASES for obj in _objects(case, key, other).values()]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda o: s3.put_object(Bucket=BUCKET, Key=o.key, Body=o.body, Metadata=o.metadata), uploads))
    layout = mk.TrailLayout()
    trails = [{"Name": layout.trail, "S3BucketName": BUCKET, "S3KeyPrefix": "valid", "TrailARN": layout.arn,
               "HomeRegion": REGION, "LogFileValidationEnabled": True}]
    window = (mk.CHAIN_START - timedelta(days=30), mk.CHAIN_START + timedelta(days=30))
    with cloudtrail_stub(trails, [(mk.public_der(key), *window)]) as stub:
        yield moto_endpoint, stub, layout


def _aws(moto: str, stub: str, arn: str, case: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ENDPOINT_URL_S3=moto, AWS_ENDPOINT_URL_CLOUDTRAIL=stub, AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    args = [sys.executable, "-m", "awscli", "cloudtrail", "validate-logs", "--trail-arn", arn, "--start-time", START,
            "--end-time", END, "--region", REGION, "--verbose"]
    if case is not None:  # otherwise the bucket and prefix come from DescribeTrails
        args += ["--s3-bucket", BUCKET, "--s3-prefix", case]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def _ours(moto: str, stub: str, case: str) -> ValidationReport:
    os.environ["AWS_ENDPOINT_URL_CLOUDTRAIL"] = stub
    try:
        provider = open_provider(f"s3://{BUCKET}/{case}/", endpoint_url=moto, region=REGION)
        return validate_store(provider, public_keys_from_cloudtrail(region=REGION),
                              start=datetime.fromisoformat(START.replace("Z", "+00:00")),
                              end=datetime.fromisoformat(END.replace("Z", "+00:00")))
    finally:
        del os.environ["AWS_ENDPOINT_URL_CLOUDTRAIL"]


@pytest.fixture(scope="module")
def results(world: Any) -> dict[str, tuple[subprocess.CompletedProcess[str], ValidationReport]]:
    moto, stub, layout = world
    with ThreadPoolExecutor(4) as pool:
        aws = dict(zip(CASES, pool.map(lambda c: _aws(moto, stub, layout.arn, None if c == "valid" else c), CASES)))
    ours = {case: _ours(moto, stub, case) for case in CASES}
    return {case: (aws[case], ours[case]) for case in CASES}


@pytest.mark.parametrize("case", CASES)
def test_fedledger_agrees_with_aws_validate_logs(results: Any, case: str) -> None:
    aws, ours = results[case]
    assert aws.returncode in (0, 1), aws.stderr[-2000:]
    aws_invalid = aws.returncode == 1
    expected_aws = mk.AWS_SEES.get(case, False)
    assert aws_invalid == expected_aws, f"AWS's tool on {case}: {aws.stderr[-1500:]}"
    # Where AWS says INVALID, fedledger says INVALID too; and fedledger also fails the cases AWS misses.
    assert ours.ok == (case in ("valid", "chain-restart-gap")), [v.line() for v in ours.verdicts if v.status != "valid"]
    if aws_invalid:
        assert not ours.ok


def test_valid_chain_counts_match(results: Any) -> None:
    aws, ours = results["valid"]
    assert "6/6 digest files valid" in aws.stdout and "12/12 log files valid" in aws.stdout
    assert ours.count("digest", "valid") == 6 and ours.count("log", "valid") == 12


def test_fedledger_names_each_deleted_digest(results: Any) -> None:
    aws, ours = results["digests-deleted-consecutive"]
    assert aws.stderr.count("INVALID: not found") == 1  # AWS names only the first of the two
    missing = [v.key for v in ours.verdicts if v.subject == "digest" and v.status == "invalid"]
    assert len(missing) == 2
    assert all(k.endswith(("T150000Z.json.gz", "T160000Z.json.gz")) for k in missing)


def test_gap_is_reported_by_both_as_gap_not_invalid(results: Any) -> None:
    aws, ours = results["chain-restart-gap"]
    assert aws.returncode == 0 and "No log files were delivered" in aws.stderr
    gaps = [v for v in ours.verdicts if v.status == "gap"]
    assert len(gaps) == 1 and "2026-11-20T14:00:00Z and 2026-11-20T16:00:00Z" in gaps[0].reason


def test_what_aws_misses(results: Any) -> None:
    _, tail = results["chain-tail-deleted"]
    assert any("before the requested end" in (v.reason or "") for v in tail.verdicts)
    _, unlisted = results["log-file-unlisted"]
    assert any(v.reason and "listed in no digest" in v.reason and "Injected" in v.key for v in unlisted.verdicts)


def test_reasons_match_aws_wording(results: Any) -> None:
    for case, phrase in [("log-file-modified", "hash value doesn't match"), ("log-file-deleted", "not found"),
                         ("digest-modified", "signature verification failed"),
                         ("unknown-key-fingerprint", "public key not found"),
                         ("signature-of-another-digest", "signature verification failed"),
                         ("log-file-gzip-trailing-data", "unexpected data after end of compressed stream")]:
        aws, ours = results[case]
        assert phrase in aws.stderr, (case, aws.stderr[-800:])
        assert any(phrase in (v.reason or "") for v in ours.verdicts), case
    aws, ours = results["digest-moved"]  # AWS misses the moved copy and reports only the original as gone
    assert "INVALID: not found" in aws.stderr and "has been moved" not in aws.stderr
    reasons = [v.reason or "" for v in ours.verdicts]
    assert "not found" in reasons and "has been moved from its original location" in reasons
