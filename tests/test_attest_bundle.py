"""Deleted attestations (S3 delete markers) are counted wherever the bundle counts attestations.

A bucket with one kept and one deleted attestation is collected through the CLI from moto's S3
server into a SQLite ledger, then bundled through the CLI: the index's verification transcript,
the bundle's JSON output, the control pages of the attestation checks and the OSCAL observations
must each say how many were deleted, not only how many objects were read.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from collector.cli import app
from tests.attest_support import SAMPLE_BUCKET, SAMPLE_KEYS

REGION = "us-gov-west-1"
BUCKET = "att-bundle-counts"


def put_signed(client: Any, key: str, sample: str) -> None:
    folder = SAMPLE_BUCKET / "attestations"
    client.put_object(Bucket=BUCKET, Key=key, Body=(folder / sample).read_bytes())
    client.put_object(Bucket=BUCKET, Key=key + ".sig", Body=(folder / (sample + ".sig")).read_bytes())


@pytest.fixture(scope="module")
def bundle(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put_signed(client, "kept.json", "31415926535.json")
    put_signed(client, "gone.json", "31415926535.rsa.json")
    client.delete_object(Bucket=BUCKET, Key="gone.json")  # a delete marker; gone.json's version stays
    folder = tmp_path_factory.mktemp("attest-bundle")
    ledger = str(folder / "fedledger.db")
    runner = CliRunner()
    assert runner.invoke(app, ["--ledger", ledger, "init", "--origin", "t/attest-bundle"]).exit_code == 0
    collected = runner.invoke(app, ["--ledger", ledger, "collect", "attestations", f"s3://{BUCKET}/",
                                    "--endpoint-url", moto_endpoint, "--region", REGION,
                                    "--trusted-keys", str(SAMPLE_KEYS)])
    assert collected.exit_code == 1 and "DELETED" in collected.stdout, collected.output  # the marker: exit 1
    made = runner.invoke(app, ["--ledger", ledger, "--format", "json", "bundle", "--out", str(folder / "out"),
                               "--controls", "AU-11,SI-7,SC-28"])
    assert made.exit_code == 0, made.output
    return folder / "out", json.loads(made.stdout)


def test_bundle_json_counts_deleted_attestations(bundle: tuple[Path, dict[str, Any]]) -> None:
    _out, doc = bundle
    # kept.json and gone.json's hidden version are signed objects; the marker is counted apart
    assert doc["attestations"] == {"signed": 2, "unsigned": 0, "invalid": 0, "deleted": 1}


def _transcript_row(index_html: str, subject: str) -> str:
    rows = re.findall(r"<tr><td>(.*?)</td><td><span class=\"state-([a-z-]+)\">.*?</span></td><td>.*?</td>"
                      r"<td>(.*?)</td></tr>", index_html)
    found = [(state, html.unescape(detail)) for name, state, detail in rows if html.unescape(name) == subject]
    assert len(found) == 1, rows
    return f"{found[0][0]}: {found[0][1]}"


def test_index_transcript_counts_deleted_attestations(bundle: tuple[Path, dict[str, Any]]) -> None:
    out, _doc = bundle
    row = _transcript_row((out / "index.html").read_text(encoding="utf-8"), "Attestation signatures")
    assert row == ("verified: 2 attestation signatures verified against trusted keys; "
                   "1 attestation deleted (S3 delete marker: an attestation-retention finding)")


def test_control_pages_and_oscal_count_deleted_attestations(bundle: tuple[Path, dict[str, Any]]) -> None:
    out, _doc = bundle
    for stem, check in (("AU-11", "attestation-retention"), ("SI-7", "signed-attestation"),
                        ("SC-28", "attestation-encryption")):
        page = html.unescape((out / "controls" / f"{stem}.html").read_text(encoding="utf-8"))
        assert "2 attestation(s), 1 deleted" in page, (stem, check)
    oscal = json.loads((out / "oscal" / "assessment-results.json").read_text(encoding="utf-8"))
    descriptions = {o["title"]: o["description"] for r in oscal["assessment-results"]["results"]
                    for o in r.get("observations", [])}
    counted = [d for t, d in descriptions.items() if "attestation" in t.lower() and "1 deleted" in d]
    assert len(counted) == 3, descriptions
