"""CloudTrail samples: the story's log files, a signed digest chain, and one folder per defect.

Run from the repository root: ``python -m samples.make.cloudtrail``. Writes
``samples/cloudtrail/`` (see its README.md). Keys and times are fixed; the RSA test
keys are created once under ``samples/cloudtrail/keys/`` and reused.

The builder (:func:`build_chain`) and the defects (:data:`DEFECTS`) are also used by
the tests, which put the same objects on moto's S3 and compare fedledger's validator
with ``aws cloudtrail validate-logs``.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from samples.make import story

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "samples" / "cloudtrail"
KEYS = OUT / "keys"
HOUR = timedelta(hours=1)
CHAIN_START = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)
CHAIN_HOURS = 6  # digests for 12:00-13:00 ... 17:00-18:00
SIGNATURE_ALGORITHM = "SHA256withRSA"


def ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- keys ---------------------------------------------------------------------------------


def load_or_create_key(name: str, keys_dir: Path = KEYS) -> rsa.RSAPrivateKey:
    """A fixed RSA test key (created once, then committed; test use only)."""
    path = keys_dir / f"{name}.test-key.pem"
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded


def public_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def fingerprint(key: rsa.RSAPrivateKey) -> str:
    return hashlib.md5(public_der(key), usedforsecurity=False).hexdigest()


def public_keys_document(keys: list[rsa.RSAPrivateKey], start: datetime, end: datetime) -> dict[str, Any]:
    """What ``aws cloudtrail list-public-keys`` prints for these keys."""
    import base64

    return {"PublicKeyList": [{"Value": base64.b64encode(public_der(k)).decode(),
                               "ValidityStartTime": ts(start), "ValidityEndTime": ts(end),
                               "Fingerprint": fingerprint(k)} for k in keys]}


# -- objects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrailObject:
    key: str
    body: bytes
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrailLayout:
    bucket: str = story.CLOUDTRAIL_BUCKET
    account: str = story.ACCOUNT_ID
    region: str = story.REGION
    trail: str = story.TRAIL_NAME
    prefix: str = ""  # S3 key prefix of the trail ("" or "name/")

    def digest_key(self, end: datetime) -> str:
        return (f"{self.prefix}AWSLogs/{self.account}/CloudTrail-Digest/{self.region}/{end:%Y/%m/%d}/"
                f"{self.account}_CloudTrail-Digest_{self.region}_{self.trail}_{self.region}_{end:%Y%m%dT%H%M%SZ}.json.gz")

    def log_key(self, delivered: datetime, unique: str) -> str:
        return (f"{self.prefix}AWSLogs/{self.account}/CloudTrail/{self.region}/{delivered:%Y/%m/%d}/"
                f"{self.account}_CloudTrail_{self.region}_{delivered:%Y%m%dT%H%MZ}_{unique}.json.gz")

    @property
    def arn(self) -> str:
        return f"arn:{story.PARTITION}:cloudtrail:{self.region}:{self.account}:trail/{self.trail}"


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def log_body(records: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"Records": records})


def sign_digest(doc: dict[str, Any], key: rsa.RSAPrivateKey) -> tuple[bytes, dict[str, str]]:
    """The gzip body and S3 metadata of a digest, signed as CloudTrail signs it."""
    inflated = orjson.dumps(doc)
    previous = doc["previousDigestSignature"] if doc["previousDigestSignature"] is not None else "null"
    message = (f"{doc['digestEndTime']}\n{doc['digestS3Bucket']}/{doc['digestS3Object']}\n"
               f"{hashlib.sha256(inflated).hexdigest()}\n{previous}").encode()
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256()).hex()
    return gz(inflated), {"signature": signature, "signature-algorithm": SIGNATURE_ALGORITHM}


RecordsForHour = Callable[[int, datetime], list[tuple[datetime, list[dict[str, Any]]]]]


def build_chain(layout: TrailLayout, key: rsa.RSAPrivateKey, *, start: datetime = CHAIN_START,
                hours: int = CHAIN_HOURS, logs_for_hour: RecordsForHour | None = None,
                break_before: set[int] | frozenset[int] = frozenset()) -> dict[str, TrailObject]:
    """Hourly digests for [start, start + hours h], each listing that hour's log files.

    ``logs_for_hour(h, window_start)`` gives (delivery time, records) per log file.
    Hours in *break_before* start a new chain (null previous link), as after logging
    was turned off.
    """
    objects: dict[str, TrailObject] = {}
    previous: dict[str, Any] | None = None
    previous_meta: dict[str, str] | None = None
    for h in range(hours):
        window_start = start + h * HOUR
        window_end = window_start + HOUR
        files = (logs_for_hour or background_logs)(h, window_start)
        log_entries = []
        times: list[str] = []
        for n, (delivered, records) in enumerate(files):
            unique = hashlib.sha256(f"{layout.trail}{h}{n}".encode()).hexdigest()[:16]
            body = log_body(records)
            lkey = layout.log_key(delivered, unique)
            objects[lkey] = TrailObject(lkey, gz(body))
            event_times = [r["eventTime"] for r in records]
            times.extend(event_times)
            log_entries.append({"s3Bucket": layout.bucket, "s3Object": lkey,
                                "hashValue": hashlib.sha256(body).hexdigest(), "hashAlgorithm": "SHA-256",
                                "newestEventTime": max(event_times) if event_times else None,
                                "oldestEventTime": min(event_times) if event_times else None})
        dkey = layout.digest_key(window_end)
        linked = previous is not None and h not in break_before
        doc = {
            "awsAccountId": layout.account,
            "digestStartTime": ts(window_start),
            "digestEndTime": ts(window_end),
            "digestS3Bucket": layout.bucket,
            "digestS3Object": dkey,
            "digestPublicKeyFingerprint": fingerprint(key),
            "digestSignatureAlgorithm": SIGNATURE_ALGORITHM,
            "newestEventTime": max(times) if times else None,
            "oldestEventTime": min(times) if times else None,
            "previousDigestS3Bucket": layout.bucket if linked else None,
            "previousDigestS3Object": previous["digestS3Object"] if linked and previous else None,
            "previousDigestHashValue": previous["_sha256"] if linked and previous else None,
            "previousDigestHashAlgorithm": "SHA-256" if linked else None,
            "previousDigestSignature": previous_meta["signature"] if linked and previous_meta else None,
            "logFiles": log_entries,
        }
        body, meta = sign_digest(doc, key)
        objects[dkey] = TrailObject(dkey, body, meta)
        previous = dict(doc, _sha256=hashlib.sha256(orjson.dumps(doc)).hexdigest())
        previous_meta = meta
    return objects


# -- records ------------------------------------------------------------------------------


def record(time: datetime, source: str, name: str, *, identity: dict[str, Any], params: Any = None,
           response: Any = None, resources: list[dict[str, Any]] | None = None, error: str | None = None,
           extra: dict[str, Any] | None = None, read_only: bool = False) -> dict[str, Any]:
    """One CloudTrail record (eventVersion 1.09 shape), with a deterministic eventID."""
    event_id = hashlib.sha256(f"{ts(time)}{source}{name}{orjson.dumps(params).decode()}".encode()).hexdigest()
    rec: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": ts(time),
        "eventSource": source,
        "eventName": name,
        "awsRegion": story.REGION,
        "sourceIPAddress": "10.20.7.15",
        "userAgent": "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux",
        "requestParameters": params,
        "responseElements": response,
        "requestID": event_id[:8] + "-" + event_id[8:12] + "-" + event_id[12:16],
        "eventID": f"{event_id[:8]}-{event_id[8:12]}-{event_id[12:16]}-{event_id[16:20]}-{event_id[20:32]}",
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": source != "s3.amazonaws.com",
        "recipientAccountId": story.ACCOUNT_ID,
        "eventCategory": "Management" if source != "s3.amazonaws.com" else "Data",
    }
    if resources is not None:
        rec["resources"] = resources
    if error is not None:
        rec["errorCode"] = error
        rec["errorMessage"] = f"{error} (sample)"
    if extra is not None:
        rec["additionalEventData"] = extra
    return rec


def session_identity(time: datetime) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAQEXAMPLEROLEID01:{story.ROLE_SESSION_NAME}",
        "arn": story.ASSUMED_ROLE_ARN,
        "accountId": story.ACCOUNT_ID,
        "accessKeyId": story.TEMP_ACCESS_KEY_ID,
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROAQEXAMPLEROLEID01", "arn": story.ROLE_ARN,
                              "accountId": story.ACCOUNT_ID, "userName": story.ROLE_NAME},
            "webIdFederationData": {"federatedProvider": f"arn:{story.PARTITION}:iam::{story.ACCOUNT_ID}:"
                                                         "oidc-provider/token.actions.githubusercontent.com",
                                    "attributes": {}},
            "attributes": {"creationDate": story.T_ASSUME_ROLE, "mfaAuthenticated": "false"},
        },
    }


ADMIN = {
    "type": "AssumedRole",
    "principalId": "AROAQEXAMPLEADMIN001:jane.isso",
    "arn": f"arn:{story.PARTITION}:sts::{story.ACCOUNT_ID}:assumed-role/audit-admin/jane.isso",
    "accountId": story.ACCOUNT_ID,
    "accessKeyId": "ASIAQEXAMPLEADMIN001",
    "sessionContext": {
        "sessionIssuer": {"type": "Role", "principalId": "AROAQEXAMPLEADMIN001",
                          "arn": f"arn:{story.PARTITION}:iam::{story.ACCOUNT_ID}:role/audit-admin",
                          "accountId": story.ACCOUNT_ID, "userName": "audit-admin"},
        "attributes": {"creationDate": "2026-11-20T14:25:00Z", "mfaAuthenticated": "true"},
    },
}
KMS_KEY_ARN = f"arn:{story.PARTITION}:kms:{story.REGION}:{story.ACCOUNT_ID}:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
TRAIL_ARN = TrailLayout().arn


def story_records() -> list[dict[str, Any]]:
    """The CI job's AWS calls (14:00-15:00)."""
    t_assume = parse(story.T_ASSUME_ROLE)
    t_put = parse(story.T_ATTESTATION_PUT)
    retain_until = "2027-11-20T14:10:30Z"
    assume = record(
        t_assume, "sts.amazonaws.com", "AssumeRoleWithWebIdentity",
        identity={"type": "WebIdentityUser",
                  "principalId": f"{story.OIDC_ISSUER.removeprefix('https://')}:{story.OIDC_AUDIENCE}:"
                                 f"{story.OIDC_SUBJECT}",
                  "userName": story.OIDC_SUBJECT, "identityProvider": story.OIDC_ISSUER.removeprefix("https://")},
        params={"roleArn": story.ROLE_ARN, "roleSessionName": story.ROLE_SESSION_NAME, "durationSeconds": 1800},
        response={"credentials": {"accessKeyId": story.TEMP_ACCESS_KEY_ID, "sessionToken": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                  "expiration": "Nov 20, 2026, 2:30:27 PM"},
                  "subjectFromWebIdentityToken": story.OIDC_SUBJECT,
                  "assumedRoleUser": {"assumedRoleId": f"AROAQEXAMPLEROLEID01:{story.ROLE_SESSION_NAME}",
                                      "arn": story.ASSUMED_ROLE_ARN},
                  "provider": f"arn:{story.PARTITION}:iam::{story.ACCOUNT_ID}:oidc-provider/"
                              "token.actions.githubusercontent.com",
                  "audience": story.OIDC_AUDIENCE},
        resources=[{"accountId": story.ACCOUNT_ID, "type": "AWS::IAM::Role", "ARN": story.ROLE_ARN}],
        read_only=True,
    )
    caller = record(t_assume + timedelta(seconds=2), "sts.amazonaws.com", "GetCallerIdentity",
                    identity=session_identity(t_assume), read_only=True)
    data_key = record(t_put - timedelta(seconds=1), "kms.amazonaws.com", "GenerateDataKey",
                      identity=session_identity(t_assume),
                      params={"keyId": KMS_KEY_ARN, "keySpec": "AES_256",
                              "encryptionContext": {"aws:s3:arn": f"arn:{story.PARTITION}:s3:::"
                                                                  f"{story.ATTESTATION_BUCKET}/{story.ATTESTATION_KEY}"}},
                      resources=[{"accountId": story.ACCOUNT_ID, "type": "AWS::KMS::Key", "ARN": KMS_KEY_ARN}],
                      read_only=True)
    put = record(
        t_put, "s3.amazonaws.com", "PutObject", identity=session_identity(t_assume),
        params={"bucketName": story.ATTESTATION_BUCKET, "Host": f"{story.ATTESTATION_BUCKET}.s3.{story.REGION}.amazonaws.com",
                "key": story.ATTESTATION_KEY, "x-amz-object-lock-mode": "COMPLIANCE",
                "x-amz-object-lock-retain-until-date": retain_until,
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": KMS_KEY_ARN},
        response={"x-amz-server-side-encryption": "aws:kms",
                  "x-amz-server-side-encryption-aws-kms-key-id": KMS_KEY_ARN,
                  "x-amz-version-id": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"},
        resources=[{"type": "AWS::S3::Object",
                    "ARN": f"arn:{story.PARTITION}:s3:::{story.ATTESTATION_BUCKET}/{story.ATTESTATION_KEY}"},
                   {"accountId": story.ACCOUNT_ID, "type": "AWS::S3::Bucket",
                    "ARN": f"arn:{story.PARTITION}:s3:::{story.ATTESTATION_BUCKET}"}],
        extra={"SignatureVersion": "SigV4", "SSEApplied": "SSE_KMS", "bytesTransferredIn": 2144},
    )
    stop = record(datetime(2026, 11, 20, 14, 30, 0, tzinfo=timezone.utc), "cloudtrail.amazonaws.com", "StopLogging",
                  identity=ADMIN, params={"name": TRAIL_ARN}, resources=[{"type": "AWS::CloudTrail::Trail",
                                                                          "ARN": TRAIL_ARN}])
    start = record(datetime(2026, 11, 20, 14, 32, 0, tzinfo=timezone.utc), "cloudtrail.amazonaws.com", "StartLogging",
                   identity=ADMIN, params={"name": TRAIL_ARN}, resources=[{"type": "AWS::CloudTrail::Trail",
                                                                           "ARN": TRAIL_ARN}])
    return [assume, caller, data_key, put, stop, start]


def background(window_start: datetime, count: int = 3) -> list[dict[str, Any]]:
    ident = {"type": "AWSService", "invokedBy": "config.amazonaws.com"}
    return [record(window_start + timedelta(minutes=7 + 11 * i), "ec2.amazonaws.com", "DescribeInstances",
                   identity=ident, params={"maxResults": 100, "page": i}, read_only=True) for i in range(count)]


def background_logs(h: int, window_start: datetime) -> list[tuple[datetime, list[dict[str, Any]]]]:
    return [(window_start + timedelta(minutes=20), background(window_start)),
            (window_start + timedelta(minutes=50), background(window_start + timedelta(minutes=30), 2))]


def story_logs(h: int, window_start: datetime) -> list[tuple[datetime, list[dict[str, Any]]]]:
    if window_start == parse("2026-11-20T14:00:00Z"):
        recs = story_records()
        return [(window_start + timedelta(minutes=15), recs[:4] + background(window_start)),
                (window_start + timedelta(minutes=40), recs[4:])]
    return background_logs(h, window_start)


def violation_records() -> list[dict[str, Any]]:
    """A CI deploy done with a long-term IAM user key (AKIA…): a finding."""
    ident = {"type": "IAMUser", "principalId": "AIDAQEXAMPLELEGACY01",
             "arn": f"arn:{story.PARTITION}:iam::{story.ACCOUNT_ID}:user/legacy-ci",
             "accountId": story.ACCOUNT_ID, "accessKeyId": story.LONG_TERM_ACCESS_KEY_ID, "userName": "legacy-ci"}
    t = datetime(2026, 11, 20, 14, 12, 0, tzinfo=timezone.utc)
    return [record(t, "s3.amazonaws.com", "PutObject", identity=ident,
                   params={"bucketName": story.ATTESTATION_BUCKET, "key": f"legacy/{story.JOB_ID}.json"},
                   resources=[{"type": "AWS::S3::Object",
                               "ARN": f"arn:{story.PARTITION}:s3:::{story.ATTESTATION_BUCKET}/legacy/{story.JOB_ID}.json"}])]


# -- defects: each takes the valid objects and returns a damaged copy ----------------------


Objects = dict[str, TrailObject]


def _digests(objects: Objects) -> list[str]:
    return sorted(k for k in objects if "/CloudTrail-Digest/" in k)


def _logs(objects: Objects) -> list[str]:
    return sorted(k for k in objects if "/CloudTrail/" in k)


def log_file_modified(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    key = _logs(objects)[4]
    doc = orjson.loads(gzip.decompress(objects[key].body))
    doc["Records"][0]["eventName"] = "TerminateInstances"
    out[key] = replace(objects[key], body=gz(orjson.dumps(doc)))
    return out


def log_file_deleted(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    del out[_logs(objects)[4]]
    return out


def log_file_gzip_trailing_data(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    key = _logs(objects)[4]
    out[key] = replace(objects[key], body=objects[key].body + gz(b'{"Records":[]}'))
    return out


def digest_modified(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    key = _digests(objects)[2]
    doc = orjson.loads(gzip.decompress(objects[key].body))
    doc["logFiles"] = doc["logFiles"][:1]  # hide a log file
    out[key] = replace(objects[key], body=gz(orjson.dumps(doc)))
    return out


def digest_deleted_middle(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    del out[_digests(objects)[3]]
    return out


def digests_deleted_consecutive(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    for key in _digests(objects)[2:4]:
        del out[key]
    return out


def digest_moved(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    key = _digests(objects)[3]
    moved = key.replace("0000Z.json.gz", "3000Z.json.gz")  # same folder, half an hour later
    out[moved] = replace(objects[key], key=moved)
    del out[key]
    return out


def unknown_key_fingerprint(objects: Objects, *, other_key: rsa.RSAPrivateKey, **_: Any) -> Objects:
    out = dict(objects)
    key = _digests(objects)[3]
    doc = orjson.loads(gzip.decompress(objects[key].body))
    doc["digestPublicKeyFingerprint"] = fingerprint(other_key)
    body, meta = sign_digest(doc, other_key)
    out[key] = TrailObject(key, body, meta)
    return out


def signature_of_another_digest(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    digests = _digests(objects)
    out[digests[3]] = replace(objects[digests[3]], metadata=dict(objects[digests[2]].metadata))
    return out


def chain_tail_deleted(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    for key in _digests(objects)[-2:]:
        del out[key]
    return out


def log_file_unlisted(objects: Objects, **_: Any) -> Objects:
    out = dict(objects)
    first = _logs(objects)[0]
    layout = TrailLayout(prefix=first[: first.index("AWSLogs/")])
    delivered = CHAIN_START + 3 * HOUR + timedelta(minutes=33)
    extra = record(delivered - timedelta(minutes=2), "iam.amazonaws.com", "CreateAccessKey",
                   identity=dict(ADMIN), params={"userName": "injected"})
    key = layout.log_key(delivered, "InjectedNotInAnyDigest")
    out[key] = TrailObject(key, gz(log_body([extra])))
    return out


DEFECTS: dict[str, Callable[..., Objects]] = {
    "log-file-modified": log_file_modified,
    "log-file-deleted": log_file_deleted,
    "log-file-gzip-trailing-data": log_file_gzip_trailing_data,
    "digest-modified": digest_modified,
    "digest-deleted-middle": digest_deleted_middle,
    "digests-deleted-consecutive": digests_deleted_consecutive,
    "digest-moved": digest_moved,
    "unknown-key-fingerprint": unknown_key_fingerprint,
    "signature-of-another-digest": signature_of_another_digest,
    "chain-tail-deleted": chain_tail_deleted,
    "log-file-unlisted": log_file_unlisted,
}
# What AWS's own validator says about each (True = it reports INVALID); fedledger reports all as INVALID.
AWS_SEES = {name: True for name in DEFECTS} | {"chain-tail-deleted": False, "log-file-unlisted": False}


def story_chain(key: rsa.RSAPrivateKey) -> Objects:
    return build_chain(TrailLayout(), key, logs_for_hour=story_logs)


def restarted_chain(key: rsa.RSAPrivateKey) -> Objects:
    """Logging off for two hours: digests 2-3 never written, digest 4 starts a new chain (a gap, not a defect)."""
    objects = build_chain(TrailLayout(), key, logs_for_hour=story_logs, break_before={4})
    digests = _digests(objects)
    for dkey in digests[2:4]:
        doc = orjson.loads(gzip.decompress(objects[dkey].body))
        del objects[dkey]
        for item in doc["logFiles"]:
            objects.pop(item["s3Object"], None)
    return objects


# -- writing ------------------------------------------------------------------------------


def write_folder(folder: Path, objects: Objects) -> None:
    """Objects as files, with a ``.sig.json`` sidecar beside each digest (as `cloudtrail download` writes)."""
    if folder.exists():
        shutil.rmtree(folder)
    for obj in objects.values():
        path = folder / obj.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(obj.body)
        if obj.metadata:
            sidecar = dict(obj.metadata, bucket=story.CLOUDTRAIL_BUCKET, key=obj.key)
            path.with_name(path.name + ".sig.json").write_bytes(orjson.dumps(sidecar, option=orjson.OPT_INDENT_2))


def main() -> None:
    key = load_or_create_key("digest-signing")
    other = load_or_create_key("unknown-signer")
    valid = story_chain(key)
    (OUT / "public-keys.json").write_bytes(orjson.dumps(
        public_keys_document([key], CHAIN_START - 30 * 24 * HOUR, CHAIN_START + 365 * 24 * HOUR),
        option=orjson.OPT_INDENT_2))
    write_folder(OUT / "valid", valid)
    write_folder(OUT / "chain-restart-gap", restarted_chain(key))
    for name, defect in DEFECTS.items():
        write_folder(OUT / name, defect(valid, other_key=other))
    violation = TrailLayout(trail="legacy-ci-trail")
    write_folder(OUT / "long-term-key-violation", build_chain(
        violation, key, hours=1, start=parse("2026-11-20T14:00:00Z"),
        logs_for_hour=lambda h, w: [(w + timedelta(minutes=15), violation_records())]))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
