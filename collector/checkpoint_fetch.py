"""Fetch side of ``fedledger verify --checkpoint s3://...``: bring anchored checkpoints home.

The verifier stays pure: this module only downloads note text, and the caller hands
it to :func:`bundler.ledger_verify.verify_ledger` like a checkpoint read from a file.
A URL naming an object fetches that object; a URL naming a prefix (ending in ``/``,
or matching no object) fetches the newest ``checkpoint.*`` object under it (keys
sort by tree size). Nothing fetched is trusted: its signature is checked against the
pinned keys by the verifier.

:class:`S3CheckpointAnchor` is the signer's side: before ``run`` signs with a publish target,
it finds the newest checkpoint the signing key anchored there, so the signer can refuse a
tree that does not extend it (:func:`collector.signing.sign_tree_head`).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from collector.checkpoint import BadSignature, CheckpointError, NoteVerifier, verify_checkpoint
from collector.checkpoint_publish import CHECKPOINT_KEY_PREFIX, LOCK_MODE, parse_s3_url, s3_client
from collector.errors import IntegrityError, MalformedInput, SourceUnavailable
from collector.signing import AnchoredCheckpoint, CheckpointAnchor

MAX_NOTE_BYTES = 64 * 1024


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


def fetch_checkpoint(client: Any, url: str) -> tuple[str, str]:
    """(the object's s3:// URL, its text), read only from a version under Object Lock COMPLIANCE.

    Object Lock protects object *versions*, not keys: whoever may ``s3:PutObject`` (the collector
    role must) can put a newer, unlocked version on an anchored key, and a ``DeleteObject`` without a
    version ID adds a delete marker that hides the key from a plain listing. So versions are listed
    (``ListObjectVersions``), delete markers and versions without COMPLIANCE retention are passed
    over, and the largest size's newest locked version is read. A URL naming an object whose
    versions are all unlocked raises :class:`IntegrityError` (it is not an anchor)."""
    where = parse_s3_url(url)
    key = where.key
    if key and not key.endswith("/"):
        versions = _checkpoint_versions(client, where.bucket, key, exact=True, url=url)
        if versions:
            found = _first_locked(client, where.bucket, versions)
            if found is None:
                raise IntegrityError(f"no version of s3://{where.bucket}/{key} is under Object Lock {LOCK_MODE}: "
                                     "it is not an anchored checkpoint (an unlocked object was put there)")
            return found
        key += "/"
    versions = _checkpoint_versions(client, where.bucket, key, exact=False, url=url)
    if not versions:
        raise SourceUnavailable(f"no checkpoint object at or under {url}")
    found = _first_locked(client, where.bucket, versions)
    if found is None:
        raise SourceUnavailable(f"no checkpoint object under Object Lock {LOCK_MODE} at or under {url} "
                                f"({len(versions)} unlocked version(s) passed over)")
    return found


def _size_order(key: str) -> tuple[int, str]:
    """Sort key for ``checkpoint.<size>.<hash>`` names: by the size as a number, then the name."""
    digits = key.rsplit("/", 1)[-1][len(CHECKPOINT_KEY_PREFIX):].split(".", 1)[0]
    return (int(digits) if digits.isdigit() and len(digits) <= 20 else -1, key)


def _checkpoint_versions(client: Any, bucket: str, prefix: str, *, exact: bool, url: str) -> list[tuple[str, str | None]]:
    """Every version (not delete markers) of the ``checkpoint.*`` objects directly under *prefix*
    (or of the one key *prefix* when *exact*), largest size first, newest version first."""
    found: list[tuple[tuple[int, str], datetime, str, str | None]] = []
    try:
        paginator = client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Versions", []):
                name = item["Key"][len(prefix):]
                if exact and item["Key"] != prefix:
                    continue
                if not exact and not (name.startswith(CHECKPOINT_KEY_PREFIX) and "/" not in name):
                    continue
                version = item.get("VersionId")
                found.append((_size_order(item["Key"]), item.get("LastModified") or _EPOCH, item["Key"],
                              None if version in (None, "null") else version))
    except Exception as exc:
        raise SourceUnavailable(f"cannot list the versions under {url}: {_code(exc)} "
                                "(reading anchors needs s3:ListBucketVersions)") from None
    found.sort(key=lambda row: (row[0], row[1]), reverse=True)
    return [(key, version) for _, _, key, version in found]


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _first_locked(client: Any, bucket: str, versions: list[tuple[str, str | None]]) -> tuple[str, str] | None:
    for key, version in versions:
        try:
            text, locked = _get(client, bucket, key, version)
        except _Missing:
            continue
        if locked:
            return f"s3://{bucket}/{key}", text
    return None


class _Missing(Exception):
    pass


def _get(client: Any, bucket: str, key: str, version: str | None = None) -> tuple[str, bool]:
    """(the text of the object version, whether it is under Object Lock COMPLIANCE)."""
    try:
        extra = {"VersionId": version} if version else {}
        answer = client.get_object(Bucket=bucket, Key=key, **extra)
    except Exception as exc:
        if _code(exc) in ("NoSuchKey", "NoSuchVersion", "404", "NotFound"):
            raise _Missing() from None
        raise SourceUnavailable(f"cannot read s3://{bucket}/{key}: {_code(exc)}") from None
    locked = answer.get("ObjectLockMode") == LOCK_MODE and answer.get("ObjectLockRetainUntilDate") is not None
    data = answer["Body"].read(MAX_NOTE_BYTES + 1)
    if len(data) > MAX_NOTE_BYTES:
        raise MalformedInput("larger than any checkpoint note", location=f"s3://{bucket}/{key}")
    try:
        return data.decode("utf-8"), locked
    except UnicodeDecodeError:
        raise MalformedInput("not UTF-8 text", location=f"s3://{bucket}/{key}") from None


class S3CheckpointAnchor(CheckpointAnchor):
    """The checkpoints ``run --publish-checkpoint`` anchored under an ``s3://bucket/prefix``.

    The prefix is read as :func:`collector.checkpoint_publish.publish_checkpoint` writes it (a
    ``/`` is added). Every ``checkpoint.*`` object directly under it is listed; notes are read
    from the largest size down until one verifies under the signer's key for the origin. Objects
    this key did not sign for this origin (another key, another origin, not a note) are skipped:
    anyone who may write to the bucket can add those, but none can hide a checkpoint Object Lock
    keeps. A note that carries this key's name and ID but whose signature fails is an edited or
    forged anchor: :class:`IntegrityError`, nothing is signed."""

    def __init__(self, url: str, *, client: Any = None, region: str | None = None,
                 endpoint_url: str | None = None) -> None:
        where = parse_s3_url(url)
        prefix = where.key if not where.key or where.key.endswith("/") else where.key + "/"
        self.bucket, self.prefix = where.bucket, prefix
        self.where = f"s3://{where.bucket}/{prefix}"
        self._client = client
        self._region, self._endpoint_url = region, endpoint_url

    def _unavailable(self, reason: str) -> SourceUnavailable:
        return SourceUnavailable(f"cannot read the checkpoints anchored at {self.where}: {reason}; nothing signed "
                                 "(with a publish target the signer checks that the new tree extends them)")

    def newest_signed(self, origin: str, verifier: NoteVerifier) -> AnchoredCheckpoint | None:
        if self._client is None:
            self._client = s3_client(region=self._region, endpoint_url=self._endpoint_url)
        try:
            versions = _checkpoint_versions(self._client, self.bucket, self.prefix, exact=False, url=self.where)
        except SourceUnavailable as exc:  # botocore raises many kinds; all mean "the anchor cannot be read"
            raise self._unavailable(str(exc)) from None
        for key, version in versions:  # largest size first, newest version first
            url = f"s3://{self.bucket}/{key}"
            try:
                text, locked = _get(self._client, self.bucket, key, version)
            except _Missing:
                continue  # a version removed while listing (only possible once its retention ended)
            except MalformedInput:
                continue  # too large or not text: not a note this key signed
            except SourceUnavailable as exc:
                raise self._unavailable(str(exc)) from None
            if not locked:
                continue  # not under COMPLIANCE retention: anyone with s3:PutObject may have put it
            try:
                checkpoint = verify_checkpoint(text, origin=origin, verifiers=[verifier])
            except BadSignature:
                raise IntegrityError(f"refusing to sign: the anchored checkpoint {url} carries a signature by this key "
                                     "that does not verify (an edited or forged anchor object)") from None
            except CheckpointError:
                continue
            return AnchoredCheckpoint(url, checkpoint)
        return None


def materialize_checkpoints(values: list[str], folder: Path) -> list[Path]:
    """Local paths for ``--checkpoint`` values: files as given, ``s3://`` URLs downloaded into *folder*.

    Downloaded files are named after their object key so failures name where they came from.
    """
    paths: list[Path] = []
    client = None
    for value in values:
        if not value.startswith("s3://"):
            paths.append(Path(value))
            continue
        if client is None:
            client = s3_client()
        url, text = fetch_checkpoint(client, value)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", url[5:])[-150:]
        target = folder / name
        target.write_text(text, encoding="utf-8")
        paths.append(target)
    return paths
