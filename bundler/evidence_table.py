"""One pass over ledger entries into a pandas table that evaluation aggregates over.

Input is an iterable of ``(seq, event, source)`` triples: ``seq`` the entry's ledger
sequence number (int), ``event`` the entry's normalized ``event`` object (see
``docs/events.md``) and ``source`` the entry's ``source`` object (``kind``, ``id``,
``location``…). :func:`entry_triples` turns stored entry objects into such triples.

The table keeps one row per entry with the common fields, the correlation keys and
the few attrs that checks read as columns (strings interned so 1M rows stay small).
Full event objects are kept only for the kinds that are rare and carry structured
attrs (logins, certificates, attestations, inference calls, policy decisions,
audit-trail changes…); bulk kinds (API calls, secret reads, plain Vault requests,
valid digests) live only as columns. Nothing is dropped: an event that is not an
object or has no ``kind`` is kept as a row of kind ``invalid`` and counted.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

CORRELATION_KEYS = (
    "job_id", "run_id", "repository", "git_sha", "oidc_subject", "role_session", "role_arn",
    "access_key_id", "cert_serial", "artifact_digest", "vault_entity_id", "runner",
)
# Kinds that are numerous and read only through columns.
BULK_KINDS = frozenset({"aws.api_call", "vault.secret_read", "vault.request", "aws.digest_valid", "vault.secret_write"})
SOURCE_OF_PREFIX = {"vault": "vault", "aws": "cloudtrail", "ci": "ci", "attestation": "attestations"}
COLUMNS = (
    "seq", "time", "kind", "source", "actor", "action", "resource", "status",
    *CORRELATION_KEYS,
    "region", "access_key_class", "event_name",
)


def source_of_kind(kind: str, source_kind: str | None = None) -> str:
    """The evidence source family (vault, cloudtrail, ci, attestations) of an event kind."""
    prefix = kind.split(".", 1)[0]
    return SOURCE_OF_PREFIX.get(prefix) or (source_kind or prefix or "unknown")


def entry_triples(entries: Iterable[Mapping[str, Any]]) -> Iterator[tuple[int, Mapping[str, Any], Mapping[str, Any]]]:
    """``(seq, event, source)`` from stored ledger entry objects."""
    for entry in entries:
        yield int(entry["seq"]), entry.get("event") or {}, entry.get("source") or {}


@dataclass
class EvidenceTable:
    """The rows (a DataFrame indexed 0..n-1), the kept events by seq, and counts."""

    frame: pd.DataFrame
    events: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    invalid: int = 0
    excluded_future: int = 0
    excluded_period: int = 0
    total: int = 0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return sys.intern(value) if len(value) < 200 else value
    if isinstance(value, (int, bool)):
        return sys.intern(str(value))
    return None


def build_table(
    entries: Iterable[tuple[int, Mapping[str, Any], Mapping[str, Any]]],
    *,
    as_of: pd.Timestamp,
    period_start: pd.Timestamp | None = None,
    period_end: pd.Timestamp | None = None,
) -> EvidenceTable:
    """Read *entries* once. Rows with an event time after *as_of* or outside the period
    are counted and left out; rows whose time cannot be read stay in (the time-stamp
    check reports them)."""
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    kept: dict[int, Mapping[str, Any]] = {}
    invalid = total = 0
    for seq, event, source in entries:
        total += 1
        source_kind = source.get("kind") if isinstance(source, Mapping) else None
        if not isinstance(event, Mapping) or not isinstance(event.get("kind"), str):
            invalid += 1
            event = {}
            kind = "invalid"
        else:
            kind = sys.intern(event["kind"])
        correlation = event.get("correlation")
        correlation = correlation if isinstance(correlation, Mapping) else {}
        attrs = event.get("attrs")
        attrs = attrs if isinstance(attrs, Mapping) else {}
        outcome = event.get("outcome")
        columns["seq"].append(int(seq))
        time = event.get("time")
        columns["time"].append(time if isinstance(time, str) else None)
        columns["kind"].append(kind)
        columns["source"].append(source_of_kind(kind, _text(source_kind)))
        columns["actor"].append(_text(event.get("actor")))
        columns["action"].append(_text(event.get("action")))
        columns["resource"].append(_text(event.get("resource")))
        columns["status"].append(_text(outcome.get("status")) if isinstance(outcome, Mapping) else None)
        for key in CORRELATION_KEYS:
            columns[key].append(_text(correlation.get(key)))
        if columns["cert_serial"][-1] is None and attrs.get("cert_serial"):
            columns["cert_serial"][-1] = _text(attrs.get("cert_serial"))
        columns["region"].append(_text(attrs.get("region") or attrs.get("runner_region")))
        columns["access_key_class"].append(_text(attrs.get("access_key_class")))
        columns["event_name"].append(_text(attrs.get("event_name")))
        if kind not in BULK_KINDS and kind != "invalid":
            kept[int(seq)] = event
    frame = pd.DataFrame(columns, columns=list(COLUMNS))
    frame["seq"] = frame["seq"].astype("int64")
    frame["ts"] = pd.to_datetime(frame["time"], format="ISO8601", utc=True, errors="coerce")
    keep = pd.Series(True, index=frame.index)
    future = frame["ts"] > as_of
    keep &= ~future
    outside = pd.Series(False, index=frame.index)
    if period_start is not None:
        outside |= frame["ts"] < period_start
    if period_end is not None:
        outside |= frame["ts"] > period_end
    keep &= ~outside
    excluded_future = int(future.sum())
    excluded_period = int((outside & ~future).sum())
    if not bool(keep.all()):
        dropped = set(frame.loc[~keep, "seq"].tolist())
        frame = frame.loc[keep].reset_index(drop=True)
        kept = {s: e for s, e in kept.items() if s not in dropped}
    frame = frame.sort_values(["seq"], kind="stable").reset_index(drop=True)
    return EvidenceTable(frame, kept, invalid, excluded_future, excluded_period, total)
