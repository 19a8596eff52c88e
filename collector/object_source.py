"""Fetch side for object stores: a local folder or ``s3://bucket/prefix``, one interface.

CloudTrail logs/digests and attestations are read through :class:`ObjectProvider`.
Providers only fetch (list, get bytes, head metadata); parsing and verification
happen elsewhere. S3 access uses boto3's standard credential chain and profiles,
with an optional ``endpoint_url`` and ``region`` (GovCloud ``aws-us-gov`` works).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from collector.errors import MalformedInput, SourceUnavailable
from collector.timeutil import format_time

FETCH_WORKERS = 16

#: S3 error codes that concern one object and persist until someone acts (it was deleted after the
#: listing, archived, or this object or its KMS key denies us), as opposed to throttling, server and
#: connection errors, which a later run retries. See :class:`ObjectUnreadable`.
OBJECT_ERROR_CODES = frozenset({
    "NoSuchKey", "NoSuchVersion", "404", "InvalidObjectState", "AccessDenied", "403",
    "KMS.AccessDeniedException", "KMS.DisabledException", "KMS.KMSInvalidStateException", "KMS.NotFoundException",
})


class ObjectUnreadable(SourceUnavailable):
    """One listed object cannot be read for a reason of its own (:data:`OBJECT_ERROR_CODES`, or a
    local file gone or unreadable): a collector may record it and go on with the other objects."""


#: S3's version id of the *null version*: an object put before versioning was enabled on its bucket, or
#: while it was suspended. ListObjectVersions names it ``"null"``; HeadObject/GetObject may name it
#: ``"null"`` or leave the version id out (moto 5 does; so does S3 for a bucket never versioned).
NULL_VERSION_ID = "null"


def listed_version_id(value: Any) -> str:
    """The version id of one ListObjectVersions entry. Every version but the null version has an id
    of its own, so an entry without one (or with an empty one) is the null version."""
    return str(value) if value not in (None, "") else NULL_VERSION_ID


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # S3 key, or path relative to the folder (POSIX separators)
    size: int
    uri: str  # s3://bucket/key or the local file path
    etag: str | None = None
    version_id: str | None = None
    last_modified: str | None = None
    is_latest: bool = True  # False: an older version of the key (:meth:`ObjectProvider.list_versions`)


@dataclass(frozen=True)
class DeleteMarker:
    """An S3 delete marker: the key was deleted (without a version id) at ``last_modified``.

    S3 names no principal: ``owner_id`` is the canonical id of the account owning the marker,
    when the listing gives it; who deleted is in CloudTrail data events (``DeleteObject``)."""

    key: str
    uri: str
    version_id: str
    last_modified: str | None = None
    is_latest: bool = True
    owner_id: str | None = None


@dataclass(frozen=True)
class ObjectHead:
    """What the store says about an object besides its bytes."""

    key: str
    uri: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)  # user metadata (x-amz-meta-*), lower-case keys
    etag: str | None = None
    version_id: str | None = None
    sse: str | None = None  # AES256, aws:kms, aws:kms:dsse
    kms_key_id: str | None = None
    object_lock_mode: str | None = None  # GOVERNANCE, COMPLIANCE
    retain_until: str | None = None  # RFC 3339 UTC
    legal_hold: str | None = None  # ON, OFF
    bucket: str | None = None
    last_modified: str | None = None  # RFC 3339 UTC put time, when the store says it


class ObjectProvider(ABC):
    """List, get and head objects under one root."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def head(self, key: str) -> ObjectHead: ...

    @abstractmethod
    def uri(self, key: str) -> str: ...

    def list_versions(self, prefix: str = "") -> Iterator[ObjectInfo | DeleteMarker]:
        """Every version and delete marker, by key then newest first (``is_latest`` on the current one).

        Stores without versions (folders) list their current objects, exactly as :meth:`list`."""
        return self.list(prefix)

    def get_version(self, key: str, version_id: str | None) -> bytes:
        """The bytes of one version of an object (the current one when *version_id* is None, or
        for stores without versions), so that bytes and a version id read apart belong together."""
        return self.get(key)

    def head_version(self, key: str, version_id: str | None) -> ObjectHead:
        """:meth:`head` of one version (the current one when *version_id* is None, or for stores
        without versions)."""
        return self.head(key)

    def get_with_metadata(self, key: str) -> tuple[bytes, dict[str, str]]:
        """The bytes and the user metadata (lower-case keys) of one object.

        S3 answers both in one GetObject; the default asks twice."""
        return self.get(key), self.head(key).metadata

    def get_many(self, keys: Iterable[str], *, workers: int = FETCH_WORKERS) -> Iterator[tuple[str, bytes]]:
        """Fetch *keys* concurrently, yielding in the given order (bounded read-ahead)."""
        pending: list[tuple[str, Any]] = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for key in keys:
                pending.append((key, pool.submit(self.get, key)))
                if len(pending) >= workers * 2:
                    k, fut = pending.pop(0)
                    yield k, fut.result()
            for k, fut in pending:
                yield k, fut.result()


class LocalFolderProvider(ObjectProvider):
    """Objects as files under a folder. Metadata comes from an optional sidecar
    ``<file>.meta.json`` (``{"metadata": {...}, "object_lock_mode": ..., ...}``, the
    fields of :class:`ObjectHead`); sidecars themselves are not listed as objects."""

    SIDECAR = ".meta.json"

    def __init__(self, root: Path) -> None:
        # Absolute (not symlink-resolved, like the attestation source ids): locations, cursor ids and
        # dedup keys must not depend on the working directory or on how the folder was spelled.
        self.root = Path(os.path.abspath(root))
        if not self.root.is_dir():
            raise SourceUnavailable("no such folder", location=str(self.root))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path.name.endswith(self.SIDECAR):
                continue
            key = path.relative_to(self.root).as_posix()
            if any(part.startswith(".") for part in key.split("/")) or not key.startswith(prefix):
                continue
            stat = path.stat()
            yield ObjectInfo(key, stat.st_size, str(path), last_modified=format_time(
                datetime.fromtimestamp(stat.st_mtime).astimezone()))

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise MalformedInput("object key escapes the folder", location=key)
        return path

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise ObjectUnreadable(f"cannot read: {exc.strerror}", location=str(self.root / key)) from None
        except OSError as exc:
            raise SourceUnavailable(f"cannot read: {exc.strerror}", location=str(self.root / key)) from None

    def head(self, key: str) -> ObjectHead:
        try:
            return self._head(key)
        except (FileNotFoundError, PermissionError) as exc:
            raise ObjectUnreadable(f"cannot read: {exc.strerror}", location=str(self.root / key)) from None
        except OSError as exc:
            raise SourceUnavailable(f"cannot read: {exc.strerror}", location=str(self.root / key)) from None

    def _head(self, key: str) -> ObjectHead:
        path = self._path(key)
        sidecar = path.with_name(path.name + self.SIDECAR)
        extra: dict[str, Any] = {}
        if sidecar.is_file():
            try:
                extra = orjson.loads(sidecar.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise MalformedInput(f"bad metadata sidecar: {exc}", location=str(sidecar)) from None
            if not isinstance(extra, dict):
                raise MalformedInput("metadata sidecar is not a JSON object", location=str(sidecar))
        known = {f for f in ObjectHead.__dataclass_fields__} - {"key", "uri", "size"}
        fields = {k: v for k, v in extra.items() if k in known}
        fields["metadata"] = {str(k).lower(): str(v) for k, v in (extra.get("metadata") or {}).items()}
        return ObjectHead(key=key, uri=str(path), size=path.stat().st_size, **fields)

    def uri(self, key: str) -> str:
        return str(self.root / key)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def _newest_first(value: Any) -> float:
    return -value.timestamp() if isinstance(value, datetime) else float("inf")


class S3Provider(ObjectProvider):
    """Objects in ``s3://bucket/prefix`` through a boto3 client."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client

    def _fail(self, exc: Exception, key: str = "") -> SourceUnavailable:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        kind = ObjectUnreadable if key and str(code) in OBJECT_ERROR_CODES else SourceUnavailable
        return kind(f"S3 request failed: {code}", location=f"s3://{self.bucket}/{key}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    yield ObjectInfo(key, int(obj["Size"]), self.uri(key), etag=obj.get("ETag", "").strip('"') or None,
                                     last_modified=_iso(obj.get("LastModified")))
        except Exception as exc:  # botocore errors of every kind mean "source unavailable"
            raise self._fail(exc, self.prefix + prefix) from None

    def get(self, key: str) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except Exception as exc:
            raise self._fail(exc, key) from None

    def list_versions(self, prefix: str = "") -> Iterator[ObjectInfo | DeleteMarker]:
        """ListObjectVersions, every page. Needs ``s3:ListBucketVersions`` (``s3:ListBucket`` is not
        enough). An unversioned bucket lists each object once, version id ``"null"``, as latest."""
        paginator = self.client.get_paginator("list_object_versions")
        listed: list[tuple[tuple[str, bool, float, int], ObjectInfo | DeleteMarker]] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Versions", []):
                    key = obj["Key"]
                    entry: ObjectInfo | DeleteMarker = ObjectInfo(
                        key, int(obj["Size"]), self.uri(key), etag=obj.get("ETag", "").strip('"') or None,
                        version_id=listed_version_id(obj.get("VersionId")), last_modified=_iso(obj.get("LastModified")),
                        is_latest=bool(obj.get("IsLatest")))
                    listed.append(((key, not entry.is_latest, _newest_first(obj.get("LastModified")),
                                    len(listed)), entry))
                for obj in page.get("DeleteMarkers", []):
                    key = obj["Key"]
                    entry = DeleteMarker(key, self.uri(key), listed_version_id(obj.get("VersionId")),
                                         last_modified=_iso(obj.get("LastModified")), is_latest=bool(obj.get("IsLatest")),
                                         owner_id=(obj.get("Owner") or {}).get("ID"))
                    listed.append(((key, not entry.is_latest, _newest_first(obj.get("LastModified")),
                                    len(listed)), entry))
        except Exception as exc:  # botocore errors of every kind mean "source unavailable"
            raise self._fail(exc, self.prefix + prefix) from None
        # Versions and markers come in two lists per page: one order for both, by key (as
        # list_objects_v2: code points = UTF-8 bytes), the current entry first, then newest first; equal
        # times (S3 lists whole seconds) keep S3's own order.
        listed.sort(key=lambda pair: pair[0])
        return iter([entry for _, entry in listed])

    def get_version(self, key: str, version_id: str | None) -> bytes:
        if version_id is None:
            return self.get(key)
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"].read())
        except Exception as exc:
            raise self._fail(exc, key) from None

    def get_with_metadata(self, key: str) -> tuple[bytes, dict[str, str]]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            body = bytes(answer["Body"].read())
        except Exception as exc:
            raise self._fail(exc, key) from None
        return body, {str(k).lower(): str(v) for k, v in (answer.get("Metadata") or {}).items()}

    def head(self, key: str) -> ObjectHead:
        return self.head_version(key, None)

    def head_version(self, key: str, version_id: str | None) -> ObjectHead:
        which = {"VersionId": version_id} if version_id is not None else {}
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=key, **which)
        except Exception as exc:
            raise self._fail(exc, key) from None
        mode = answer.get("ObjectLockMode")
        until = answer.get("ObjectLockRetainUntilDate")
        version = answer.get("VersionId") or None  # absent (or empty): the store did not say
        if mode is None:
            try:  # HeadObject normally carries retention; GetObjectRetention is the fallback
                retention = self.client.get_object_retention(Bucket=self.bucket, Key=key, **which).get("Retention", {})
                mode, until = retention.get("Mode"), retention.get("RetainUntilDate")
            except Exception:
                pass
        hold = answer.get("ObjectLockLegalHoldStatus")
        if hold is None:
            try:
                hold = self.client.get_object_legal_hold(Bucket=self.bucket, Key=key,
                                                         **which).get("LegalHold", {}).get("Status")
            except Exception:
                hold = None
        return ObjectHead(
            key=key,
            uri=self.uri(key),
            size=int(answer.get("ContentLength", 0)),
            metadata={str(k).lower(): str(v) for k, v in (answer.get("Metadata") or {}).items()},
            etag=(answer.get("ETag") or "").strip('"') or None,
            version_id=version,
            sse=answer.get("ServerSideEncryption"),
            kms_key_id=answer.get("SSEKMSKeyId"),
            object_lock_mode=mode,
            retain_until=_iso(until),
            legal_hold=hold,
            bucket=self.bucket,
            last_modified=_iso(answer.get("LastModified")),
        )

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def s3_client(*, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
    config = Config(max_pool_connections=FETCH_WORKERS * 2, retries={"max_attempts": 5, "mode": "standard"})
    return session.client("s3", endpoint_url=endpoint_url, region_name=region or os.environ.get("AWS_DEFAULT_REGION"),
                          config=config)


def open_provider(src: str, *, endpoint_url: str | None = None, region: str | None = None,
                  profile: str | None = None) -> ObjectProvider:
    """A provider for ``s3://bucket/prefix`` or a local folder."""
    if src.startswith("s3://"):
        rest = src[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise MalformedInput("s3:// URL without a bucket", location=src)
        return S3Provider(bucket, prefix, s3_client(endpoint_url=endpoint_url, region=region, profile=profile))
    return LocalFolderProvider(Path(src))
