"""What a source hands the collector, and the one interface every source implements.

A source module (``collector/sources/<name>.py``) subclasses :class:`Source` and
yields :class:`SourceRecord` items (one per input record: an event, or a record to
quarantine) and :class:`CursorMark` items (how far it has read, committed with the
records before it). The driver in :mod:`collector.ingest` batches them into ledger
transactions. Sources parse and normalize; they never write to the ledger.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple


class SourceRecord(NamedTuple):
    """One input record (an immutable record; a NamedTuple because sources make one per
    input line and a frozen dataclass costs several times more to construct).

    ``raw`` is the exact bytes the record came from; it is stored in the evidence
    store only when the record becomes an entry. A record with ``reason`` set is
    quarantined: only the SHA-256 of ``raw`` is kept, with ``location``/``line``.
    Sources must set ``raw`` to ``b""`` (and pass ``raw_sha256``) when even holding
    the bytes in memory longer than needed is unwanted; ``raw_sha256=""`` says the
    bytes were not read at all (their hash is unknown), never a hash of anything else. ``event_bytes`` is
    ``canonical_bytes(event)`` when the source already made it (e.g. in a worker
    process); the record is then an event even with ``event`` left ``None``, and the
    ledger builds the entry around these bytes (see :func:`collector.ledger.entry_bytes`).
    ``reason_detail`` (e.g. ``"26214443 bytes"``) is stored after the reason in the
    quarantine row (``line-too-long: 26214443 bytes``) while counts stay under ``reason``;
    like the rest of the row it never holds the record's content.
    """

    location: str
    line: int | None
    raw: bytes
    event: Mapping[str, Any] | None = None
    reason: str | None = None
    dedup_key: str | None = None
    raw_sha256: str | None = None
    source_extra: Mapping[str, Any] = MappingProxyType({})
    event_bytes: bytes | None = None
    reason_detail: str | None = None


@dataclass(frozen=True)
class CursorMark:
    """Everything yielded before this mark is covered by ``cursor`` for ``source_id``."""

    source_id: str
    cursor: str


SourceItem = SourceRecord | CursorMark


class Source(ABC):
    """One kind of evidence. ``kind`` names it in entries (``source.kind``)."""

    kind: str

    @abstractmethod
    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        """Yield records and cursor marks, resuming from *cursors* (source id → cursor)."""

    def staged(self, cursors: Mapping[str, str], *, store: Any, kind: str, source_id: str, observed: str,
               batch_size: int) -> Iterator[Any] | None:
        """Staged batches (:class:`collector.ingest.StagedBatch`) made by the source's own
        means, e.g. worker processes; None (the default) means: use :meth:`collect`."""
        return None

    def followed_rotations(self) -> list[dict[str, Any]]:
        """Rotated files this collection followed (:mod:`collector.rotation`), for run logs."""
        return []

    def worker_state(self) -> Any:
        """What :meth:`collect` left in this object (counts, notes), when it ran in a worker
        process (:mod:`collector.pipeline`); picklable."""
        return dict(vars(self))

    def absorb_worker_state(self, state: Any) -> None:
        """Take the state :meth:`worker_state` returned in the worker, as if collect ran here."""
        vars(self).update(state)
