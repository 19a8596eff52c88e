"""CloudTrail log files: scanner, normalization, ingest (idempotent, quarantine adds up), public examples."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.canonical import canonical_bytes
from collector.ingest import ingest
from collector.ledger import Ledger
from collector.object_source import LocalFolderProvider
from collector.sources.cloudtrail import (
    BadSlice,
    CloudTrailLogs,
    RecordSlice,
    access_key_class,
    normalize_record,
    parse_log_bytes,
    scan_records,
)
from samples.make import cloudtrail as mk
from samples.make import story
from tests.conftest import REPO, shared_data

SAMPLES = REPO / "samples" / "cloudtrail"
OBSERVED = "2026-11-25T00:00:00Z"


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.create(tmp_path / "l.db", "test.gov/ct", created=OBSERVED, key_type="ecdsa-p256")


def _events(records: list[dict]) -> list[dict]:
    out = []
    for rec in records:
        event, _ = normalize_record(rec, location="t")
        out.append(event)
    return out


# -- scanner -------------------------------------------------------------------------------


def test_scanner_returns_exact_bytes_of_each_record() -> None:
    data = b'{"Records": [ {"a": "}]{[\\"", "b": [1, {"c": null}]} ,{"d":2}\n]}'
    slices = list(scan_records(data))
    assert [type(s) for s in slices] == [RecordSlice, RecordSlice]
    assert [data[s.start:s.end] for s in slices] == [b'{"a": "}]{[\\"", "b": [1, {"c": null}]}', b'{"d":2}']
    assert [orjson.loads(data[s.start:s.end]) for s in slices][0]["a"] == '}]{["'


def test_scanner_records_key_not_first_and_empty_array() -> None:
    data = b'{"other": {"x": [1, 2]}, "n": 5, "Records": [{"e": 1}]}'
    assert [data[s.start:s.end] for s in scan_records(data)] == [b'{"e": 1}']
    assert list(scan_records(b'{"Records": []}')) == []


def test_scanner_single_record_document() -> None:
    data = b'  {"eventTime": "2026-01-01T00:00:00Z"}\n'
    (only,) = scan_records(data)
    assert isinstance(only, RecordSlice) and data[only.start:only.end] == data.strip()


def test_scanner_unbalanced_rest_is_one_bad_slice() -> None:
    data = b'{"Records": [{"a": 1}, {"b": {"c": 2}, ]}'
    items = list(scan_records(data))
    assert isinstance(items[0], RecordSlice) and isinstance(items[1], BadSlice)
    assert items[1].index == 1 and "unbalanced" in items[1].reason


def test_large_file_is_streamed_record_by_record() -> None:
    """A big Records array is cut without building the whole object graph (slices, then one loads each)."""
    rec = orjson.dumps(mk.background(mk.CHAIN_START, 1)[0])
    data = b'{"Records":[' + b",".join([rec] * 20000) + b"]}"
    count = 0
    for item in scan_records(data):
        assert isinstance(item, RecordSlice)
        assert data[item.start:item.end] == rec
        count += 1
    assert count == 20000


# -- normalization ------------------------------------------------------------------------


def test_story_records_normalize_with_correlation() -> None:
    assume, caller, data_key, put, stop, start = _events(mk.story_records())
    assert assume["kind"] == "aws.assume_role_web_identity"
    assert assume["correlation"]["oidc_subject"] == story.OIDC_SUBJECT
    assert assume["correlation"]["role_session"] == story.ROLE_SESSION_NAME
    assert assume["correlation"]["role_arn"] == story.ROLE_ARN
    assert assume["correlation"]["access_key_id"] == story.TEMP_ACCESS_KEY_ID
    assert assume["attrs"]["provider"].endswith("oidc-provider/token.actions.githubusercontent.com")
    assert assume["attrs"]["issued_access_key_class"] == "temporary"
    assert assume["time"] == story.T_ASSUME_ROLE and assume["resource"] == story.ROLE_ARN
    assert caller["kind"] == "aws.api_call"
    assert caller["attrs"]["access_key_class"] == "temporary"
    assert caller["correlation"]["role_session"] == story.ROLE_SESSION_NAME
    assert caller["attrs"]["partition"] == "aws-us-gov" and caller["attrs"]["region"] == "us-gov-west-1"
    assert caller["actor"] == story.ASSUMED_ROLE_ARN
    assert data_key["attrs"]["event_source"] == "kms.amazonaws.com" and data_key["attrs"]["key_id"] == mk.KMS_KEY_ARN
    assert put["resource"] == f"s3://{story.ATTESTATION_BUCKET}/{story.ATTESTATION_KEY}"
    assert put["attrs"]["object_lock_mode"] == "COMPLIANCE"
    assert put["attrs"]["retain_until"] == "2027-11-20T14:10:30Z"
    assert put["attrs"]["sse"] == "aws:kms" and put["attrs"]["kms_key_id"] == mk.KMS_KEY_ARN
    assert stop["kind"] == "aws.trail_change" and stop["action"] == "StopLogging"
    assert stop["attrs"]["mfa"] is True and stop["resource"] == mk.TRAIL_ARN
    assert start["kind"] == "aws.api_call" and start["action"] == "StartLogging" and start["attrs"]["trail"]


def test_long_term_key_is_classified() -> None:
    (event,) = _events(mk.violation_records())
    assert event["attrs"]["access_key_class"] == "long-term"
    assert event["correlation"]["access_key_id"] == story.LONG_TERM_ACCESS_KEY_ID
    assert access_key_class("ASIAX") == "temporary" and access_key_class("AKIAX") == "long-term"
    assert access_key_class("") is None and access_key_class(None) is None


def test_error_code_and_trail_changes() -> None:
    rec = mk.record(mk.CHAIN_START, "cloudtrail.amazonaws.com", "DeleteTrail", identity=mk.ADMIN,
                    params={"name": "org-trail"}, error="AccessDenied")
    (event,) = _events([rec])
    assert event["kind"] == "aws.trail_change"
    assert event["outcome"] == {"status": "failure", "error": "AccessDenied"}
    assert event["attrs"]["error_code"] == "AccessDenied"
    for name in ("UpdateTrail", "PutEventSelectors"):
        (ev,) = _events([mk.record(mk.CHAIN_START, "cloudtrail.amazonaws.com", name, identity=mk.ADMIN,
                                   params={"trailName": "org-trail"})])
        assert ev["kind"] == "aws.trail_change" and ev["attrs"]["trail"] == "org-trail"


@pytest.mark.parametrize("record,reason", [
    ({"eventName": "X", "eventSource": "s"}, "missing eventTime"),
    ({"eventTime": "yesterday", "eventName": "X", "eventSource": "s"}, "bad eventTime"),
    ({"eventTime": "2026-01-01T00:00:00Z", "eventSource": "s"}, "missing eventName"),
])
def test_records_without_what_an_entry_needs_are_quarantined(record: dict, reason: str) -> None:
    blob = orjson.dumps({"Records": [record]})
    (rec,) = parse_log_bytes(blob, location="f.json")
    assert rec.event is None and rec.reason is not None and rec.reason.startswith(reason)


@pytest.mark.parametrize("text,what", [
    (b'{"Records": null}', "null"),
    (b'{"Records": {"eventTime": "2026-01-01T00:00:00Z"}}', "an object"),
    (b'{"Records": "x", "other": 1}', "a string"),
    (b'{"x": 1, "Records": 5}', "a number"),
    (b'{"Records": true}', "a boolean"),
])
def test_records_that_is_not_a_list_is_named_as_such(text: bytes, what: str) -> None:
    """A file whose Records is null or an object was quarantined as "missing eventTime" (read as one record)."""
    (rec,) = parse_log_bytes(text, location="f.json")
    assert rec.event is None and rec.raw == text
    assert rec.reason == f"Records is not a list (it is {what})"


def test_gzip_trailing_data_is_quarantined_not_dropped() -> None:
    body = gzip.compress(mk.log_body(mk.background(mk.CHAIN_START, 2)), mtime=0) + b"junk"
    recs = list(parse_log_bytes(body, location="f.json.gz"))
    assert [r.event is not None for r in recs] == [True, True, False]
    assert recs[-1].reason == "data after the end of the first gzip member"


def test_raw_bytes_are_the_record_slice() -> None:
    rec = mk.story_records()[0]
    text = b'{"Records":[ ' + orjson.dumps(rec) + b" ]}"
    (out,) = parse_log_bytes(text, location="f")
    assert out.raw == orjson.dumps(rec)
    assert out.dedup_key == f"aws.cloudtrail:{rec['eventID']}"


# -- ingest -------------------------------------------------------------------------------


def test_collect_sample_is_idempotent_and_counts_add_up(tmp_path: Path) -> None:
    source = CloudTrailLogs(LocalFolderProvider(SAMPLES / "valid"))
    with _ledger(tmp_path) as ledger:
        first = ingest(ledger, source.collect(ledger.cursors()), kind=source.kind, source_id=source.source_id,
                       observed=OBSERVED)
        assert first.balanced and first.appended == 34 and first.quarantined == 0
        assert source.files_skipped == 12  # 6 digests + 6 sidecars
        again = ingest(ledger, source.collect(ledger.cursors()), kind=source.kind, source_id=source.source_id,
                       observed=OBSERVED)
        assert again.read == 0  # every object's cursor says done
        # Forget the cursors: the records come again and are all duplicates by eventID.
        fresh = ingest(ledger, source.collect({}), kind=source.kind, source_id=source.source_id, observed=OBSERVED)
        assert fresh.read == 34 and fresh.duplicates == 34 and fresh.appended == 0
        kinds = [orjson.loads(body)["event"]["kind"] for _, _, body in ledger.entries()]
        assert kinds.count("aws.assume_role_web_identity") == 1 and kinds.count("aws.trail_change") == 1
        raw = ledger.raw_bytes(0)
        assert orjson.loads(raw)["eventTime"]


def test_worker_processes_give_the_same_ledger(tmp_path: Path) -> None:
    from collector.ingest import ingest_source

    folder = tmp_path / "logs"
    shutil.copytree(SAMPLES / "valid", folder)
    log = next(p for p in sorted(folder.rglob("*.json.gz")))
    (log.parent / "zz-broken.json.gz").write_bytes(b"not gzip at all")
    (log.parent / "zz-half.json.gz").write_bytes(gzip.compress(b'{"Records":[{"eventID":"x","eventTime":"bad"},', mtime=0))
    ledgers = []
    for workers in (0, 2):
        ledger = Ledger.create(tmp_path / f"l{workers}.db", "t.gov/ct", created=OBSERVED, key_type="ecdsa-p256")
        source = CloudTrailLogs(LocalFolderProvider(folder), workers=workers)
        summary = ingest_source(ledger, source, source_id=source.source_id, observed=OBSERVED, batch_size=7)
        assert summary.balanced and summary.appended == 34 and summary.quarantined >= 2, summary.to_json()
        again = ingest_source(ledger, source, source_id=source.source_id, observed=OBSERVED)
        assert again.read == 0
        ledgers.append((summary.to_json(), list(ledger.entries()), ledger.cursors(),
                        [q[:5] for q in ledger.quarantined()], ledger.raw_bytes(3)))
        ledger.close()
    assert ledgers[0] == ledgers[1]


def test_cursor_resumes_inside_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import collector.sources.cloudtrail as ct

    monkeypatch.setattr(ct, "CURSOR_EVERY", 2)
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.json.gz").write_bytes(gzip.compress(mk.log_body(mk.background(mk.CHAIN_START, 5)), mtime=0))
    source = CloudTrailLogs(LocalFolderProvider(folder))
    items = list(source.collect({}))
    marks = [i for i in items if not hasattr(i, "raw")]
    assert len(marks) == 3  # after 2, after 4, at the end
    resumed = list(source.collect({marks[0].source_id: marks[0].cursor}))
    assert [r.line for r in resumed if hasattr(r, "raw")] == [2, 3, 4]


def test_collect_cli_records_digest_verdicts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from collector.cli import app

    db = tmp_path / "l.db"
    runner = CliRunner()
    assert runner.invoke(app, ["--ledger", str(db), "init", "--origin", "t.gov/ct"]).exit_code == 0
    ok = runner.invoke(app, ["--ledger", str(db), "--as-of", OBSERVED, "collect", "cloudtrail", str(SAMPLES / "valid"),
                             "--public-keys", str(SAMPLES / "public-keys.json")])
    assert ok.exit_code == 0, ok.output
    assert "40 read, 40 appended" in ok.output and "6/6 digest files valid" in ok.output
    bad = runner.invoke(app, ["--ledger", str(db), "--as-of", OBSERVED, "collect", "cloudtrail",
                              str(SAMPLES / "digest-deleted-middle"), "--public-keys",
                              str(SAMPLES / "public-keys.json")])
    assert bad.exit_code == 1 and "INVALID: not found" in bad.output
    with Ledger.open(db) as ledger:
        kinds = [orjson.loads(body)["event"]["kind"] for _, _, body in ledger.entries()]
    # the deleted digest, and the two log files of its hour that no remaining digest lists
    assert kinds.count("aws.digest_valid") == 6 + 5 and kinds.count("aws.digest_invalid") == 3


# -- public examples (../shared/data) -----------------------------------------------------

EXPECTED_QUARANTINE = {
    "02_stscloudtrailexample.malformed.json.txt": "malformed JSON",
    "07_stscloudtrailexample_web-identity.malformed.json.txt": "malformed JSON",
    "08_cloudtrail-integration-signin-success.malformed.json.txt": "malformed JSON",
    "SerializerTestFileBadJsonFormat.json": "malformed JSON",
    "SerializerAllFieldsNull.json": "missing eventTime",
    "SerializerTestFileBadFieldName.json": "missing eventTime",
    "SerializerTestFileNewFieldName.json": "missing eventTime",
    "SerializerTestFileMissField.json": "bad eventTime",
    # 05 and 06 of the IAM guide publish one eventID for two different records: the second read is a
    # conflicting duplicate (same dedup key, other bytes), quarantined, not counted as a duplicate.
    "06_stscloudtrailexample_saml.json": "conflicting-duplicate",
}


def test_public_examples_ingest_or_quarantine_with_reason(tmp_path: Path) -> None:
    root = shared_data("cloudtrail")
    files = sorted(p for p in root.rglob("*") if p.is_file() and (p.name.endswith((".json", ".json.gz", ".json.txt"))))
    assert len(files) >= 20
    total_read = total_ok = total_quarantined = total_dup = 0
    with _ledger(tmp_path) as ledger:
        for path in files:
            source = CloudTrailLogs.for_path(str(path))
            summary = ingest(ledger, source.collect(ledger.cursors()), kind=source.kind, source_id=source.source_id,
                             observed=OBSERVED)
            assert summary.balanced
            total_read += summary.read
            total_ok += summary.appended
            total_dup += summary.duplicates
            total_quarantined += summary.quarantined
            if path.name in EXPECTED_QUARANTINE:
                assert summary.quarantined >= 1, path.name
                assert any(r.startswith(EXPECTED_QUARANTINE[path.name]) for r in summary.reasons), summary.reasons
            else:
                assert summary.quarantined == 0, (path.name, summary.reasons)
        quarantined = ledger.quarantined()
    assert total_read == total_ok + total_dup + total_quarantined
    assert len(quarantined) == total_quarantined and all(q.reason for q in quarantined)
    # The processing library's files repeat the same records without eventIDs (Compact.json, .json.gz
    # and Location.json hold identical record bytes): those are duplicates (by the SHA-256 of the record
    # bytes), counted, not dropped. (05 and 06 of the IAM guide sharing an eventID is a conflict, above.)
    assert total_dup == 14


def test_public_web_identity_and_kms_examples() -> None:
    root = shared_data("cloudtrail", "aws_docs_examples")
    (kms,) = parse_log_bytes((root / "kms_ct-sign_example.json").read_bytes(), location="kms")
    assert kms.event["attrs"]["signing_algorithm"] == "RSASSA_PKCS1_V1_5_SHA_256"
    assert kms.event["resource"].startswith("arn:aws:kms:us-west-2:")
    (failed,) = parse_log_bytes((root / "iam_user_guide_cloudtrail-integration" /
                                 "09_cloudtrail-integration-signin-failure.json").read_bytes(), location="x")
    assert failed.event["outcome"]["status"] == "failure"


def test_importing_the_source_does_not_import_boto3() -> None:
    code = "import sys, collector.sources.cloudtrail, collector.cloudtrail_digest; assert 'boto3' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_collect_from_s3_on_moto(moto_endpoint: str, tmp_path: Path) -> None:
    import boto3
    from typer.testing import CliRunner

    from collector.cli import app

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=story.REGION)
    bucket = "agency-cloudtrail-collect"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": story.REGION},
                     ObjectLockEnabledForBucket=True)
    layout = mk.TrailLayout(bucket=bucket, prefix="org/")
    key = mk.load_or_create_key("digest-signing")
    for obj in mk.build_chain(layout, key, logs_for_hour=mk.story_logs).values():
        s3.put_object(Bucket=bucket, Key=obj.key, Body=obj.body, Metadata=obj.metadata)
    db = tmp_path / "l.db"
    runner = CliRunner()
    assert runner.invoke(app, ["--ledger", str(db), "init", "--origin", "t.gov/ct"]).exit_code == 0
    args = ["--ledger", str(db), "--as-of", OBSERVED, "--format", "json", "collect", "cloudtrail", f"s3://{bucket}/org/",
            "--endpoint-url", moto_endpoint, "--region", story.REGION, "--public-keys",
            str(SAMPLES / "public-keys.json"), "--start", "2026-11-20T11:00:00Z", "--end", "2026-11-20T18:00:00Z"]
    got = runner.invoke(app, args)
    assert got.exit_code == 0, got.output
    doc = orjson.loads(got.output)
    assert doc["appended"] == 34 + 6 and doc["quarantined"] == 0 and doc["digests"]["ok"] is True
    again = orjson.loads(runner.invoke(app, args).output)
    assert again["appended"] == 0 and again["duplicates"] == 6  # logs skipped by cursor (ETag), verdicts deduplicated
    with Ledger.open(db) as ledger:
        entries = [orjson.loads(body) for _, _, body in ledger.entries()]
    assume = next(e for e in entries if e["event"]["kind"] == "aws.assume_role_web_identity")
    assert assume["source"]["location"].startswith(f"s3://{bucket}/org/AWSLogs/")
    assert assume["event"]["correlation"]["oidc_subject"] == story.OIDC_SUBJECT


def test_collect_logs_without_digests_records_a_gap(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from collector.cli import app

    folder = tmp_path / "logs"
    (folder / "AWSLogs").mkdir(parents=True)
    (folder / "AWSLogs" / "a.json.gz").write_bytes(gzip.compress(mk.log_body(mk.background(mk.CHAIN_START, 2))))
    db = tmp_path / "l.db"
    runner = CliRunner()
    assert runner.invoke(app, ["--ledger", str(db), "init", "--origin", "t.gov/ct"]).exit_code == 0
    got = runner.invoke(app, ["--ledger", str(db), "collect", "cloudtrail", str(folder)])
    assert got.exit_code == 0, got.output
    assert "GAP: no CloudTrail digest files found" in got.output
    bad = runner.invoke(app, ["cloudtrail", "validate", str(folder), "--start", "2026-11-20T00:00:00Z", "--end",
                              "2026-11-21T00:00:00Z", "--public-keys", str(SAMPLES / "public-keys.json")])
    assert bad.exit_code == 1 and "INVALID: no CloudTrail digest files found" in bad.output


@pytest.mark.parametrize("text", [b'{"Records":[{"eventID":"a","eventTime":"2026-01-01T00:00:00Z"},',
                                  b'{"Records":[', b'{"Records":[ \n'])
def test_a_document_cut_inside_records_is_quarantined_not_a_crash(text: bytes) -> None:
    from collector.sources.cloudtrail import parse_log_bytes

    records = list(parse_log_bytes(gzip.compress(text, mtime=0), location="cut.json.gz"))
    cut = [r for r in records if r.reason is not None and "malformed JSON in Records" in r.reason]
    assert len(cut) == 1 and "the document ends at byte" in str(cut[0].reason)


_any_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
_field = _any_json | st.sampled_from(["AssumeRole", "AssumeRoleWithWebIdentity", "s3.amazonaws.com",
                                      "kms.amazonaws.com", "cloudtrail.amazonaws.com", "Role", "AKIAEXAMPLE",
                                      "arn:aws-us-gov:sts::1:assumed-role/r/s", "2026-11-20T12:00:00Z"])


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"eventTime": st.just("2026-11-20T12:00:00Z"), "eventName": _field, "eventSource": _field},
                             optional={k: _field | st.dictionaries(st.sampled_from(
                                 ["arn", "type", "accountId", "accessKeyId", "sessionContext", "sessionIssuer",
                                  "attributes", "mfaAuthenticated", "roleArn", "roleSessionName", "assumedRoleUser",
                                  "credentials", "provider", "audience", "subjectFromWebIdentityToken", "keyId",
                                  "bucketName", "key", "name", "principalId", "identityProvider", "ConsoleLogin"]),
                                 _field | st.dictionaries(st.sampled_from(["arn", "type", "accessKeyId",
                                                                          "sessionIssuer", "mfaAuthenticated"]),
                                                          _field, max_size=3), max_size=6)
                                       for k in ["userIdentity", "requestParameters", "responseElements",
                                                 "additionalEventData", "resources", "awsRegion", "errorCode",
                                                 "errorMessage", "eventID", "userAgent", "readOnly", "eventType",
                                                 "sourceIPAddress", "recipientAccountId"]}))
def test_normalized_events_hold_only_text_so_their_fast_canonical_bytes_are_exact(doc: dict[str, object]) -> None:
    from collector.canonical import canonical_bytes_of_text_tree
    from collector.errors import MalformedInput
    from collector.sources.cloudtrail import normalize_record

    try:
        event, _ = normalize_record(doc, location="gen")
    except MalformedInput:
        return
    assert canonical_bytes_of_text_tree(event) == canonical_bytes(event)


def test_sample_events_fast_canonical_bytes_are_exact() -> None:
    from collector.sources.cloudtrail import parse_log_bytes

    count = 0
    for path in sorted(SAMPLES.rglob("*.json.gz")):
        for rec in parse_log_bytes(path.read_bytes(), location=str(path)):
            if rec.event is not None:
                assert rec.event_bytes == canonical_bytes(rec.event)
                count += 1
    assert count > 30
