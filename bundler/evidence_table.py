"""One pass over ledger entries into a pandas table that evaluation aggregates over.

Input is an iterable of ``(seq, event, source)`` triples: ``seq`` the entry's ledger
sequence number (int), ``event`` the entry's normalized ``event`` object (see
``docs/events.md``) and ``source`` the entry's ``source`` object (``kind``, ``id``,
``location``…). :func:`entry_triples` turns stored entry objects into such triples.

The table keeps one row per entry with the fields, correlation keys and attrs that
checks read as columns (strings interned so 1M rows stay small).
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

import numpy as np
import pandas as pd

# The correlation keys evaluation reads (docs/events.md has a few more, e.g. git_sha, role_arn:
# they stay in the kept events and in the ledger).
CORRELATION_KEYS = (
    "job_id", "run_id", "repository", "oidc_subject", "role_session",
    "access_key_id", "cert_serial", "artifact_digest", "vault_entity_id", "runner",
)
_CERT_SLOT = CORRELATION_KEYS.index("cert_serial")
# Kinds that are numerous and read only through columns.
BULK_KINDS = frozenset({"aws.api_call", "vault.secret_read", "vault.request", "aws.digest_valid", "vault.secret_write"})
SOURCE_OF_PREFIX = {"vault": "vault", "aws": "cloudtrail", "ci": "ci", "attestation": "attestations"}
# Columns with a handful of distinct values that checks compare over and over: pandas
# categoricals (same values, same comparisons; codes make them cheap).
CATEGORY_COLUMNS = ("kind", "source")
COLUMNS = (
    "seq", "time", "kind", "source", "action", "status",
    *CORRELATION_KEYS,
    "region", "access_key_class", "event_name",
    "location",  # source.location, only for the families read_rows is asked to keep it for (else None)
    "unverified",  # UNPAIRED / UNSIGNED: evidence whose claims nobody verified (unverified_claim), else None
    "run_attempt",  # attrs.run_attempt (a GitHub run's attempt: 1, 2 for a re-run…), an int, else None
)
# A Vault response whose request line was never logged (the collector's attrs.paired false, beside its
# vault.unpaired finding): what it says about who asked is not corroborated.
UNPAIRED = "unpaired"
# A GitHub/GitLab payload collected without its delivery envelope (so without the provider's signature or
# token) while a webhook secret was configured: the signature check in force never saw it.
UNSIGNED = "unsigned"


def token_verified(event: Mapping[str, Any] | None) -> bool:
    """Whether a ``ci.oidc_token`` entry records a token the collector verified. A generic ``ci.job.*``
    line (action: its own event_type) never does, whatever its attrs say: the collector now refuses
    such lines, and a ledger written before may hold them."""
    if not event:
        return False
    attrs = event.get("attrs")
    return isinstance(attrs, Mapping) and attrs.get("verified") is True and \
        not str(event.get("action") or "").startswith("ci.job.")


def unverified_claim(attrs: Mapping[str, Any], kind: Any = None) -> str | None:
    """:data:`UNPAIRED` or :data:`UNSIGNED` for an event whose attrs say nobody verified who or what it claims
    (None otherwise: verified, or nothing recorded either way, as in entries older than those attrs).

    Fail closed on a marker of an odd type (a hand-edited ledger, a generic event's own attrs): ``paired``
    recorded as anything but true (``"false"``, ``0``) is unpaired, and an absent signature whose
    ``webhook_secret_configured`` is anything but false or unrecorded (``"true"``, ``1``) is unsigned. An
    event carrying both markers keeps the one its *kind* is judged by: ``paired`` for a Vault event,
    the signature for any other (only Vault steps and counts consult UNPAIRED)."""
    paired = attrs.get("paired")
    unpaired = paired is not None and paired is not True
    unsigned = attrs.get("webhook_signature") == "absent" and \
        attrs.get("webhook_secret_configured") not in (None, False)
    if unpaired and (not unsigned or (isinstance(kind, str) and kind.startswith("vault."))):
        return UNPAIRED
    return UNSIGNED if unsigned else None


def values_with_prefix(column: pd.Series, prefix: str) -> pd.Series:
    """Boolean mask: the value is a string starting with *prefix* (tested once per distinct value)."""
    matching = [v for v in column.dropna().unique() if isinstance(v, str) and v.startswith(prefix)]
    return column.isin(matching)


def source_of_kind(kind: str, source_kind: str | None = None) -> str:
    """The evidence source family (vault, cloudtrail, ci, attestations) of an event kind."""
    prefix = kind.split(".", 1)[0]
    return SOURCE_OF_PREFIX.get(prefix) or (source_kind or prefix or "unknown")


def evaluated_kind(kind: str, source_kind: str | None) -> tuple[str, str]:
    """(the kind evaluation reads, the source family) of an event of *kind* stored by a source of *source_kind*.

    A collector's kinds (``vault.``, ``aws.``, ``ci.``, ``attestation.``) stand for what that collector
    saw and verified. The same kind from another source (a ``fedledger append`` line claiming
    ``attestation.signed`` or ``aws.digest_valid``) was verified by nobody: it is read as
    ``<source kind>.<kind>`` (``manual.attestation.signed``), evidence of that source, never of the
    collector's. Without a source kind the prefix decides."""
    family = SOURCE_OF_PREFIX.get(kind.split(".", 1)[0])
    if family is not None and source_kind and source_kind != family:
        kind = sys.intern(f"{source_kind}.{kind}")
    return kind, source_of_kind(kind, source_kind)


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


CHUNK_ROWS = 50_000
_WIDTH = len(CORRELATION_KEYS)
_EMPTY: dict[str, Any] = {}


def _chunk_columns(rows: list[tuple[Any, ...]]) -> dict[str, np.ndarray]:
    """Rows → one compact array per column; event times become UTC datetime64 plus a flag
    saying whether the text was in UTC ``Z`` form (the text itself is not kept)."""
    columns = list(zip(*rows))
    out: dict[str, np.ndarray] = {}
    for name, values in zip(COLUMNS, columns):
        if name == "seq":
            out[name] = np.fromiter(map(int, values), dtype=np.int64, count=len(values))
        elif name == "time":
            parsed = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True, errors="coerce")
            out["ts"] = parsed.to_numpy(dtype="datetime64[ns]")
            out["utc_z"] = np.fromiter((isinstance(t, str) and t.endswith("Z") for t in values), dtype=bool,
                                       count=len(values))
        else:
            array = np.empty(len(values), dtype=object)
            array[:] = values
            out[name] = array
    return out


@dataclass
class TableReading:
    """What one pass over some entries produced: column chunks, kept events, counts.

    Readings of consecutive seq ranges join by concatenating their chunks in order
    (:mod:`bundler.ledger_slice` reads two ranges in two processes)."""

    chunks: list[dict[str, np.ndarray]] = field(default_factory=list)
    kept: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    invalid: int = 0
    total: int = 0
    # Source families whose rows carry source.location (freshness per configured source needs it;
    # kept only where asked, as a location can be unique per entry: one CI webhook file, one object).
    location_families: frozenset[str] = frozenset()


def _slow_text(value: Any) -> str | None:
    return sys.intern(value) if type(value) is str else _text(value)


def read_rows(entries: Iterable[tuple[int, Any, Any]], reading: TableReading,
              location_families: frozenset[str] = frozenset()) -> None:
    """Add *entries* to *reading*. The per-entry loop: each row becomes one tuple of the table's columns (strings
    interned so repeated values share one object). Kept lean: it runs once per entry.

    Rows of the source families in *location_families* keep their ``source.location`` (the same
    families for every call on one reading)."""
    if reading.total and location_families != reading.location_families:
        raise ValueError("every part of a reading must keep locations for the same source families")
    reading.location_families = location_families
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    chunks = reading.chunks
    kept = reading.kept
    invalid = total = 0
    intern = sys.intern
    text = _slow_text
    bulk = BULK_KINDS
    empty = _EMPTY
    source_names: dict[tuple[str, Any], tuple[str, str, bool]] = {}
    slots = {key: index for index, key in enumerate(CORRELATION_KEYS)}
    slot_of = slots.get
    none_linked: list[str | None] = [None] * _WIDTH
    cert_slot = _CERT_SLOT
    str_type = str
    dict_type = dict
    limit = CHUNK_ROWS
    for seq, event, source in entries:
        if event.__class__ is not dict_type and not isinstance(event, Mapping):
            event = empty
        kind = event.get("kind")
        if kind.__class__ is not str_type:
            invalid += 1
            event = empty
            kind = "invalid"
        else:
            kind = intern(kind)
        if source.__class__ is dict_type or isinstance(source, Mapping):
            source_kind = source.get("kind")
        else:
            source, source_kind = empty, None
        named = source_names.get((kind, source_kind))
        if named is None:
            evaluated = evaluated_kind(kind, _text(source_kind))
            named = source_names.setdefault((kind, source_kind),
                                           (evaluated[0], evaluated[1], evaluated[1] in location_families))
        kind, family, keeps_location = named
        location = source.get("location") if keeps_location else None
        correlation = event.get("correlation")
        attrs = event.get("attrs")
        if attrs.__class__ is not dict_type and not isinstance(attrs, Mapping):
            attrs = empty
        linked = none_linked.copy()
        if correlation and (correlation.__class__ is dict_type or isinstance(correlation, Mapping)):
            for key, value in correlation.items():
                slot = slot_of(key)
                if slot is not None and value is not None:
                    linked[slot] = intern(value) if value.__class__ is str_type else text(value)
        if linked[cert_slot] is None and attrs.get("cert_serial"):
            linked[cert_slot] = _text(attrs.get("cert_serial"))
        time = event.get("time")
        outcome = event.get("outcome")
        status = outcome.get("status") if outcome.__class__ is dict_type or isinstance(outcome, Mapping) else None
        action = event.get("action")
        region = attrs.get("region") or attrs.get("runner_region")
        key_class = attrs.get("access_key_class")
        event_name = attrs.get("event_name")
        unverified = unverified_claim(attrs, kind) if attrs else None
        attempt = attrs.get("run_attempt")
        append((
            seq, time if time.__class__ is str_type else None, kind, family,
            None if action is None else intern(action) if action.__class__ is str_type else text(action),
            None if status is None else intern(status) if status.__class__ is str_type else text(status),
            *linked,
            None if region is None else intern(region) if region.__class__ is str_type else text(region),
            None if key_class is None else intern(key_class) if key_class.__class__ is str_type else text(key_class),
            None if event_name is None else intern(event_name) if event_name.__class__ is str_type
            else text(event_name),
            None if location is None else intern(location) if location.__class__ is str_type else text(location),
            unverified,
            attempt if attempt.__class__ is int else None,  # not a bool, a float or text
        ))
        if kind not in bulk and kind != "invalid":
            kept[int(seq)] = event
        if len(rows) >= limit:
            total += len(rows)
            chunks.append(_chunk_columns(rows))
            rows = []
            append = rows.append
    if rows:
        total += len(rows)
        chunks.append(_chunk_columns(rows))
    reading.invalid += invalid
    reading.total += total


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
    reading = TableReading()
    read_rows(entries, reading)
    return assemble_table(reading, as_of=as_of, period_start=period_start, period_end=period_end)


def assemble_table(
    reading: TableReading,
    *,
    as_of: pd.Timestamp,
    period_start: pd.Timestamp | None,
    period_end: pd.Timestamp | None,
) -> EvidenceTable:
    """Column chunks → one DataFrame in seq order, without the rows dated after *as_of* or outside the period."""
    chunks = reading.chunks or [_empty_columns()]
    kept = reading.kept
    names = list(chunks[0])
    data = {}
    for name in names:
        data[name] = np.concatenate([chunk.pop(name) for chunk in chunks]) if len(chunks) > 1 else chunks[0].pop(name)
    reading.chunks = []
    del chunks
    # Object columns keep None for "absent" (pandas 3 would infer its str dtype with NaN).
    frame = pd.DataFrame({name: pd.Series(values, dtype=values.dtype, copy=False) for name, values in data.items()})
    del data
    frame["ts"] = frame["ts"].dt.tz_localize("UTC")
    for name in CATEGORY_COLUMNS:  # few distinct values, never null: compared and grouped as codes
        frame[name] = pd.Categorical(frame[name])
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
    if not frame["seq"].is_monotonic_increasing:
        frame = frame.sort_values(["seq"], kind="stable").reset_index(drop=True)
    return EvidenceTable(frame, kept, reading.invalid, excluded_future, excluded_period, reading.total)


def select_rows(table: EvidenceTable, keep: pd.Series) -> EvidenceTable:
    """*table* with only the rows where *keep* is true (the others counted as outside the period)."""
    if bool(keep.all()):
        return table
    dropped = set(table.frame.loc[~keep, "seq"].tolist())
    frame = table.frame.loc[keep].reset_index(drop=True)
    kept = {s: e for s, e in table.events.items() if s not in dropped}
    return EvidenceTable(frame, kept, table.invalid, table.excluded_future,
                         table.excluded_period + int((~keep).sum()), table.total)


def _empty_columns() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        if name == "seq":
            out[name] = np.empty(0, dtype=np.int64)
        elif name == "time":
            out["ts"] = np.empty(0, dtype="datetime64[ns]")
            out["utc_z"] = np.empty(0, dtype=bool)
        else:
            out[name] = np.empty(0, dtype=object)
    return out
