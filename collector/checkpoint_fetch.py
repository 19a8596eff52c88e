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
from pathlib import Path
from typing import Any

from collector.checkpoint import BadSignature, CheckpointError, NoteVerifier, verify_checkpoint
from collector.checkpoint_publish import CHECKPOINT_KEY_PREFIX, parse_s3_url, s3_client
from collector.errors import IntegrityError, MalformedInput, SourceUnavailable
from collector.signing import AnchoredCheckpoint, CheckpointAnchor

MAX_NOTE_BYTES = 64 * 1024


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


def fetch_checkpoint(client: Any, url: str) -> tuple[str, str]:
    """(the object's s3:// URL, its text)."""
    where = parse_s3_url(url)
    key = where.key
    if key and not key.endswith("/"):
        try:
            return f"s3://{where.bucket}/{key}", _get(client, where.bucket, key)
        except _Missing:
            key += "/"
    newest = None
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=where.bucket, Prefix=key):
            for item in page.get("Contents", []):
                name = item["Key"][len(key):]
                if name.startswith(CHECKPOINT_KEY_PREFIX) and "/" not in name and (newest is None or item["Key"] > newest):
                    newest = item["Key"]
    except Exception as exc:
        raise SourceUnavailable(f"cannot list {url}: {_code(exc)}") from None
    if newest is None:
        raise SourceUnavailable(f"no checkpoint object at or under {url}")
    try:
        return f"s3://{where.bucket}/{newest}", _get(client, where.bucket, newest)
    except _Missing:
        raise SourceUnavailable(f"checkpoint s3://{where.bucket}/{newest} vanished while reading") from None


class _Missing(Exception):
    pass


def _get(client: Any, bucket: str, key: str) -> str:
    try:
        answer = client.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _code(exc) in ("NoSuchKey", "404", "NotFound"):
            raise _Missing() from None
        raise SourceUnavailable(f"cannot read s3://{bucket}/{key}: {_code(exc)}") from None
    data = answer["Body"].read(MAX_NOTE_BYTES + 1)
    if len(data) > MAX_NOTE_BYTES:
        raise MalformedInput("larger than any checkpoint note", location=f"s3://{bucket}/{key}")
    try:
        return data.decode("utf-8")
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
        keys = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix):]
                    if name.startswith(CHECKPOINT_KEY_PREFIX) and "/" not in name:
                        keys.append(item["Key"])
        except Exception as exc:  # botocore raises many kinds; all mean "the anchor cannot be read"
            raise self._unavailable(_code(exc)) from None
        for key in sorted(keys, reverse=True):  # keys sort by tree size (12 digits)
            url = f"s3://{self.bucket}/{key}"
            try:
                text = _get(self._client, self.bucket, key)
            except _Missing:
                raise self._unavailable(f"{url} vanished while reading") from None
            except MalformedInput:
                continue  # too large or not text: not a note this key signed
            except SourceUnavailable as exc:
                raise self._unavailable(str(exc)) from None
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
