"""Fetch side of ``fedledger verify --checkpoint s3://...``: bring anchored checkpoints home.

The verifier stays pure: this module only downloads note text, and the caller hands
it to :func:`bundler.ledger_verify.verify_ledger` like a checkpoint read from a file.
A URL naming an object fetches that object; a URL naming a prefix (ending in ``/``,
or matching no object) fetches the newest ``checkpoint.*`` object under it (keys
sort by tree size). Nothing fetched is trusted: its signature is checked against the
pinned keys by the verifier.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from collector.checkpoint_publish import CHECKPOINT_KEY_PREFIX, parse_s3_url, s3_client
from collector.errors import MalformedInput, SourceUnavailable

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
