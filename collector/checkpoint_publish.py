"""Anchor signed checkpoints outside the ledger: S3 objects under Object Lock COMPLIANCE.

A checkpoint kept only in the ledger can be rolled back together with the ledger by
whoever controls the database. Written to a bucket with Object Lock in COMPLIANCE
mode, it cannot be deleted or overwritten by anyone (the root account included)
until its retain-until date, so a later ``fedledger verify --checkpoint s3://...``
catches a ledger that was truncated or rewritten after the checkpoint was anchored.

Object key: ``<prefix>checkpoint.<size, 12 digits>.<first 16 hex of SHA-256(note)>``,
so keys sort by tree size and the same note always lands on the same key.
After the write, the object's lock mode and retain-until date are read back with
``HeadObject`` and checked; a bucket without Object Lock fails the publish.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from collector.errors import SourceUnavailable, UsageError
from collector.timeutil import format_time

CHECKPOINT_KEY_PREFIX = "checkpoint."
LOCK_MODE = "COMPLIANCE"
# S3 keeps LastModified to the second and a run takes a while between computing retain-until and
# the write: an existing version locked this much less than asked for still counts.
RETENTION_SLACK = timedelta(hours=1)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str  # for a prefix: "" or ending in "/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_url(url: str) -> S3Location:
    if not url.startswith("s3://"):
        raise UsageError(f"not an s3:// URL: {url[:200]}")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {url[:200]}")
    return S3Location(bucket, key)


def checkpoint_key(prefix: str, note: str, size: int) -> str:
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    digest = hashlib.sha256(note.encode()).hexdigest()[:16]
    return f"{prefix}{CHECKPOINT_KEY_PREFIX}{size:012d}.{digest}"


@dataclass(frozen=True)
class PublishedCheckpoint:
    url: str
    size: int
    version_id: str | None
    mode: str
    retain_until: str
    written: bool

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "size": self.size, "version_id": self.version_id, "mode": self.mode,
                "retain_until": self.retain_until, "written": self.written}


def s3_client(*, region: str | None = None, endpoint_url: str | None = None) -> Any:
    import boto3

    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


def publish_checkpoint(client: Any, url: str, note: str, *, size: int, retain_until: datetime,
                       minimum_retention: timedelta | None = None) -> PublishedCheckpoint:
    """Write *note* under Object Lock COMPLIANCE until *retain_until*, unless it is already anchored.

    Already anchored means: the key's current version holds the same bytes under COMPLIANCE and,
    with *minimum_retention*, was locked for at least that long after it was written (one written
    under a shorter ``retention_days`` is not; a new locked version is written instead)."""
    where = parse_s3_url(url)
    key = checkpoint_key(where.key, note, size)
    target = f"s3://{where.bucket}/{key}"
    body = note.encode("utf-8")
    try:
        head = client.head_object(Bucket=where.bucket, Key=key)
        until = head.get("ObjectLockRetainUntilDate")
        written_at = head.get("LastModified")
        long_enough = minimum_retention is None or (
            until is not None and written_at is not None and until - written_at >= minimum_retention - RETENTION_SLACK)
        if head.get("ObjectLockMode") == LOCK_MODE and until is not None and long_enough:
            version = head.get("VersionId")
            extra = {"VersionId": version} if version and version != "null" else {}
            existing = client.get_object(Bucket=where.bucket, Key=key, **extra)["Body"].read()
            if existing == body:
                return PublishedCheckpoint(target, size, version, LOCK_MODE, format_time(until), written=False)
    except Exception as exc:
        if _error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise SourceUnavailable(f"cannot read {target}: {_error_code(exc)}") from None
    md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    try:
        answer = client.put_object(
            Bucket=where.bucket,
            Key=key,
            Body=body,
            ContentType="text/plain; charset=utf-8",
            ContentMD5=md5,  # S3 requires an integrity header on Object Lock writes
            ObjectLockMode=LOCK_MODE,
            ObjectLockRetainUntilDate=retain_until,
        )
        head = client.head_object(Bucket=where.bucket, Key=key, VersionId=answer.get("VersionId")) \
            if answer.get("VersionId") else client.head_object(Bucket=where.bucket, Key=key)
    except Exception as exc:
        raise SourceUnavailable(f"cannot write checkpoint to {target}: {_error_code(exc)} "
                                "(the bucket must exist with Object Lock enabled)") from None
    mode = head.get("ObjectLockMode")
    until = head.get("ObjectLockRetainUntilDate")
    if mode != LOCK_MODE or until is None:
        raise SourceUnavailable(f"{target} was written without Object Lock {LOCK_MODE} (got {mode!r}): "
                                "enable Object Lock on the bucket")
    if until < retain_until - timedelta(seconds=1):
        raise SourceUnavailable(f"{target} was locked until {format_time(until)}, not {format_time(retain_until)} as "
                                "asked: check the bucket's Object Lock configuration")
    return PublishedCheckpoint(target, size, answer.get("VersionId"), LOCK_MODE, format_time(until), written=True)
