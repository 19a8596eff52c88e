"""The collection driver: source items → batched, idempotent ledger appends.

Each batch is one ledger transaction holding its entries, the raw-object index
rows (raw bytes are stored first, as one content-addressed segment object per
batch), the quarantine rows and the cursor reached. Batches end only at cursor
marks, so a killed run resumes exactly where the last committed batch ended.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from pathlib import Path

import orjson

from collector.errors import IntegrityError, SourceUnavailable
from collector.evidence import CursorMark, Source, SourceItem, SourceRecord
from collector.rotation import HEAD_BYTES, CursorDoc, open_log
from collector.ledger import (CONFLICT_REASON, EntryPartsMaker, Ledger, NewEntry, PreparedEntry, QuarantineRow, dedup_id,
                              prepared_entry)
from collector.store import EvidenceStore

DEFAULT_BATCH = 5000
NOTES_KEPT = 50  # quarantined records an IngestSummary keeps for the command to show (all are in the ledger)
_NO_EVENT: dict[str, object] = {}  # NewEntry.event when the source handed over event_bytes only


@dataclass
class IngestSummary:
    """Counts that add up: ``read == appended + duplicates + quarantined``."""

    source: str
    read: int = 0
    appended: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    first_seq: int | None = None
    size: int = 0
    notes: list[QuarantineRow] = field(default_factory=list)  # the first NOTES_KEPT quarantined records

    def add(self, other: IngestSummary) -> None:
        self.read += other.read
        self.notes += other.notes[: max(0, NOTES_KEPT - len(self.notes))]
        self.appended += other.appended
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v
        self.size = max(self.size, other.size)

    @property
    def balanced(self) -> bool:
        return self.read == self.appended + self.duplicates + self.quarantined

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "read": self.read,
            "appended": self.appended,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "reasons": dict(sorted(self.reasons.items())),
            "ledger_size": self.size,
        }

    def line(self) -> str:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items()))
        return (
            f"{self.source}: {self.read} read, {self.appended} appended, {self.duplicates} duplicate, "
            f"{self.quarantined} quarantined" + (f" ({reasons})" if reasons else "")
        )


def ingest(
    ledger: Ledger,
    items: Iterable[SourceItem],
    *,
    kind: str,
    source_id: str,
    observed: str,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Append everything *items* yields; return the counts."""
    batches = staged_batches(items, kind=kind, source_id=source_id, observed=observed, store=ledger.store,
                             batch_size=batch_size, parts=True)
    return ingest_staged(ledger, batches, source_id=source_id, observed=observed, batch_size=batch_size,
                         on_progress=on_progress)


def ingest_source(
    ledger: Ledger,
    source: Source,
    *,
    source_id: str,
    observed: str,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Collect *source* into *ledger*: through its own staging (:meth:`Source.staged`, e.g.
    worker processes) when it has one, else :func:`ingest` of :meth:`Source.collect`."""
    cursors = ledger.cursors()
    staged = source.staged(cursors, store=ledger.store, kind=source.kind, source_id=source_id, observed=observed,
                           batch_size=batch_size)
    if staged is None:
        return ingest(ledger, source.collect(cursors), kind=source.kind, source_id=source_id, observed=observed,
                      batch_size=batch_size, on_progress=on_progress)
    return ingest_staged(ledger, staged, source_id=source_id, observed=observed, batch_size=batch_size,
                         on_progress=on_progress)


def ingest_staged(
    ledger: Ledger,
    batches: Iterable[StagedBatch],
    *,
    source_id: str,
    observed: str,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Commit staged batches, small ones merged (in order) into transactions of about *batch_size* records."""
    summary = IngestSummary(source=source_id, size=ledger.size)
    pending: list[StagedBatch] = []
    count = 0

    def flush() -> None:
        nonlocal pending, count
        commit(ledger, merge_staged(pending), summary=summary, observed=observed)
        if on_progress is not None:
            on_progress(count)
        pending, count = [], 0

    items = iter(batches)
    while True:
        try:
            staged = next(items)
        except StopIteration:
            break
        except Exception:
            if pending:  # what was staged before the source failed still lands (each batch is whole)
                flush()
            raise
        pending.append(staged)
        count += staged.read
        if count >= batch_size:
            flush()
    if pending:
        flush()
    return summary


@dataclass
class StagedBatch:
    """One ledger transaction's worth of records, ready for :meth:`Ledger.append`.

    The raw bytes of its entries are already in the evidence store (one segment
    object); ``read``/``quarantined``/``reasons`` count its input records, so the
    summary adds up whichever process staged it.
    """

    entries: list[NewEntry]
    raw_index: list[tuple[str, int, str, int]]  # RawIndexRow fields, as plain tuples (cheap to pickle)
    quarantine: list[QuarantineRow]
    cursors: dict[str, str]
    read: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    prepared: list[PreparedEntry] = field(default_factory=list)  # instead of entries, see stage(parts=True)


def merge_staged(batches: list[StagedBatch]) -> StagedBatch:
    """Consecutive staged batches as one (the later cursors win)."""
    if len(batches) == 1:
        return batches[0]
    merged = StagedBatch([], [], [], {})
    for staged in batches:
        merged.entries += staged.entries
        merged.prepared += staged.prepared
        merged.raw_index += staged.raw_index
        merged.quarantine += staged.quarantine
        merged.cursors.update(staged.cursors)
        merged.read += staged.read
        merged.quarantined += staged.quarantined
        for reason, n in staged.reasons.items():
            merged.reasons[reason] = merged.reasons.get(reason, 0) + n
    return merged


def staged_batches(
    items: Iterable[SourceItem],
    *,
    kind: str,
    source_id: str,
    observed: str,
    store: EvidenceStore,
    batch_size: int = DEFAULT_BATCH,
    parts: bool = False,
) -> Iterator[StagedBatch]:
    """*items* cut into batches that end at cursor marks (so a killed run resumes exactly
    where the last committed batch ended), each staged by :func:`stage`."""
    pending: list[SourceRecord] = []
    cursors: dict[str, str] = {}
    for item in items:
        if isinstance(item, CursorMark):
            cursors[item.source_id] = item.cursor
            if len(pending) >= batch_size:
                yield stage(pending, cursors, kind=kind, source_id=source_id, observed=observed, store=store,
                            parts=parts)
                pending, cursors = [], {}
            continue
        pending.append(item)
    if pending or cursors:
        yield stage(pending, cursors, kind=kind, source_id=source_id, observed=observed, store=store, parts=parts)


def stage(
    records: list[SourceRecord],
    cursors: dict[str, str],
    *,
    kind: str,
    source_id: str,
    observed: str,
    store: EvidenceStore,
    parts: bool = False,
) -> StagedBatch:
    """Quarantine rows, entries and the raw-object index of *records*; their raw bytes go
    to the store first, as one content-addressed segment object.

    With *parts*, the entries are handed over as :func:`collector.ledger.prepared_entry`
    tuples (dedup key and canonical bytes around ``prev`` and ``seq``) in ``prepared``: plain
    values, so a worker process can do this work and hand the ledger process a batch that
    is cheap to pickle and needs only joining, hashing and inserting.
    """
    segment = bytearray()
    entries: list[NewEntry] = []
    prepared: list[PreparedEntry] = []
    quarantine: list[QuarantineRow] = []
    seen_raw: dict[str, tuple[int, int]] = {}
    sha256 = hashlib.sha256
    add_entry, add_prepared = entries.append, prepared.append
    maker = EntryPartsMaker(observed=observed, kind=kind, source_id=source_id) if parts else None
    reasons: dict[str, int] = {}
    for rec in records:
        raw = rec.raw
        # a given raw_sha256 wins, "" too: a quarantined record whose bytes were not read (hash unknown)
        digest = sha256(raw).hexdigest() if rec.raw_sha256 is None else rec.raw_sha256
        event = rec.event
        if rec.reason is not None or (event is None and rec.event_bytes is None):
            reason = rec.reason or "no-event"
            reasons[reason] = reasons.get(reason, 0) + 1
            # counted under the bare reason; the row keeps the detail too, as conflict_reason() does
            stored = reason if rec.reason_detail is None else f"{reason}: {rec.reason_detail}"
            quarantine.append(QuarantineRow(source_id, rec.location, rec.line, stored, digest, observed))
            continue
        if raw and digest not in seen_raw:
            seen_raw[digest] = (len(segment), len(raw))
            segment += raw
        line = rec.line
        if maker is not None and not rec.source_extra:  # the usual entry, made from cached pieces
            head, middle, tail = maker.parts(rec.location, line, event, rec.event_bytes, digest, len(raw))
            key = rec.dedup_key or digest
            add_prepared((key, dedup_id(key), head, middle, tail, digest))
            continue
        if line is None:
            source: dict[str, object] = {"kind": kind, "id": source_id, "location": rec.location}
        else:
            source = {"kind": kind, "id": source_id, "location": rec.location, "line": line}
        if rec.source_extra:
            source.update(rec.source_extra)
        new = NewEntry(source, observed, event if event is not None else _NO_EVENT, digest, len(raw),
                       rec.dedup_key or digest, rec.event_bytes)
        if parts:
            add_prepared(prepared_entry(new))
        else:
            add_entry(new)
    index: list[tuple[str, int, str, int]] = []
    if segment:
        obj = store.put(bytes(segment))
        index = [(digest, size, obj, offset) for digest, (offset, size) in seen_raw.items()]
    return StagedBatch(entries, index, quarantine, cursors, len(records), len(quarantine), reasons, prepared)


def commit(ledger: Ledger, staged: StagedBatch, *, summary: IngestSummary, observed: str) -> None:
    """Append *staged* in one ledger transaction and add its counts to *summary*."""
    result = ledger.append(staged.entries, prepared=staged.prepared, cursors=staged.cursors,
                           raw_index=staged.raw_index, quarantine=staged.quarantine, updated=observed)
    summary.read += staged.read
    summary.quarantined += staged.quarantined
    summary.notes += staged.quarantine[: max(0, NOTES_KEPT - len(summary.notes))]
    for reason, count in staged.reasons.items():
        summary.reasons[reason] = summary.reasons.get(reason, 0) + count
    if result.conflicts:  # quarantined by the ledger: same dedup key as an entry, other raw bytes
        summary.quarantined += len(result.conflicts)
        summary.notes += list(result.conflicts[: max(0, NOTES_KEPT - len(summary.notes))])
        summary.reasons[CONFLICT_REASON] = summary.reasons.get(CONFLICT_REASON, 0) + len(result.conflicts)
    summary.appended += result.appended
    summary.duplicates += result.duplicates
    summary.size = result.size
    if summary.first_seq is None and result.appended:
        summary.first_seq = result.first_seq


# -- line-oriented files, shared by every JSON-lines source -----------------------------

#: The longest line (one record) any line reader hands over whole: GitHub caps webhook payloads at
#: 25 MB, and a Vault audit record that size is already far out of the ordinary. Longer lines are
#: read through in blocks, hashed as they pass, and handed over as a :class:`LongLine`.
MAX_LINE_BYTES = 25 * 1024 * 1024
LINE_TOO_LONG = "line-too-long"  # the quarantine reason every source gives a LongLine


class Line(NamedTuple):  # one per input line: a NamedTuple costs a fraction of a frozen dataclass
    path: str
    number: int  # 1-based
    start: int  # byte offset of the line
    end: int  # byte offset after its newline
    data: bytes  # without the newline


class LongLine(NamedTuple):
    """A line longer than the cap: its place, size and SHA-256, never its bytes.

    ``sha256`` and ``size`` are of the line as it is in the file, its newline included
    (``sed -n 'Np' FILE | sha256sum``); at the end of a stream without a newline, of what there was.
    """

    path: str
    number: int
    start: int
    end: int
    sha256: str

    @property
    def size(self) -> int:
        return self.end - self.start


def line_too_long_detail(line: LongLine) -> str:
    """The ``reason_detail`` of a quarantined LongLine: its size, kept in the quarantine row
    (``line-too-long: N bytes``) so the ledger tells it after the command's output is gone."""
    return f"{line.size} bytes"



class LineSplitter:
    """Cuts blocks of bytes into :class:`Line` items; a line over *max_line* bytes becomes a
    :class:`LongLine`, hashed while its blocks stream past, so memory stays under
    *max_line* plus two blocks however long a line grows.

    *consume* is given every byte of the lines handed over, in order, once each (a file's
    prefix hash). The bytes of a long line are given to it from the block after the one
    where it went over the cap on, so a cursor taken after :meth:`feed` (when :attr:`whole`)
    covers exactly the lines handed over.
    """

    def __init__(self, path: str, *, offset: int, number: int, max_line: int,
                 consume: Callable[[bytes], None] | None = None) -> None:
        self.path, self.offset, self.number, self.max_line = path, offset, number, max_line
        self.consume = consume
        self.carry = b""
        self._long: Any = None  # the SHA-256 of the long line read so far
        self._long_size = 0
        self._long_due = False  # the carry went over the cap: read through from the next block on

    @property
    def whole(self) -> bool:
        """Whether :attr:`offset` ends the last line handed over (no long line under way)."""
        return self._long is None

    def feed(self, block: bytes) -> list[Line | LongLine]:
        items: list[Line | LongLine] = []
        if self._long_due:
            self._long_due = False
            self._long, self._long_size = hashlib.sha256(), 0
            carry, self.carry = self.carry, b""
            self._long_part(carry)
        if self._long is not None:
            cut = block.find(b"\n")
            if cut < 0:
                self._long_part(block)
                return items
            self._long_part(block[: cut + 1])
            items.append(self._end_long())
            block = block[cut + 1:]
        block = self.carry + block if self.carry else block
        lines = block.split(b"\n")
        self.carry = lines.pop()
        offset, path, number, consumed, add = self.offset, self.path, self.number, 0, items.append
        if len(block) <= self.max_line:  # no line can be over the cap: the common case
            for data in lines:
                number += 1
                start = offset + consumed
                consumed += len(data) + 1
                add(Line(path, number, start, start + len(data) + 1, data))
        else:
            for data in lines:
                number += 1
                start = offset + consumed
                consumed += len(data) + 1
                if len(data) > self.max_line:
                    digest = hashlib.sha256(data)
                    digest.update(b"\n")
                    add(LongLine(path, number, start, start + len(data) + 1, digest.hexdigest()))
                else:
                    add(Line(path, number, start, start + len(data) + 1, data))
        self.number = number
        if consumed and self.consume is not None:
            self.consume(block[:consumed])
        self.offset += consumed
        self._long_due = len(self.carry) > self.max_line
        return items

    def finish(self) -> Line | LongLine | None:
        """The last line of a stream that ended without a newline (a file's is left unread instead)."""
        if self._long is None and not self._long_due:
            if not self.carry:
                return None
            data, self.carry = self.carry, b""
            self.number += 1
            self.offset += len(data)
            return Line(self.path, self.number, self.offset - len(data), self.offset, data)
        if self._long is None:
            self._long, self._long_size = hashlib.sha256(), 0
        carry, self.carry = self.carry, b""
        self._long_part(carry)
        self._long_due = False
        return self._end_long()

    def _long_part(self, data: bytes) -> None:
        self._long.update(data)
        self._long_size += len(data)
        if self.consume is not None:
            self.consume(data)

    def _end_long(self) -> LongLine:
        self.number += 1
        start, self.offset = self.offset, self.offset + self._long_size
        line = LongLine(self.path, self.number, start, self.offset, self._long.hexdigest())
        self._long = None
        return line


@dataclass(frozen=True)
class FileCursor:
    """How far a file was read: the byte offset, the SHA-256 of everything before it, and the
    SHA-256 of its first ``min(offset, 4096)`` bytes (a cheap test that a path still holds the
    same file, see :mod:`collector.rotation`; ``None`` in cursors written before it existed)."""

    offset: int
    line: int
    prefix_sha256: str
    head_sha256: str | None = None
    read_at: int | None = None  # Unix time of the read (collector.rotation: what was rotated in since)

    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"offset": self.offset, "line": self.line, "prefix_sha256": self.prefix_sha256}
        if self.head_sha256 is not None:
            doc["head_sha256"] = self.head_sha256
        if self.read_at is not None:
            doc["read_at"] = self.read_at
        return doc

    def dumps(self) -> str:
        return orjson.dumps(self.doc()).decode()

    @staticmethod
    def loads(text: str | None) -> FileCursor:
        if not text:
            return FileCursor(0, 0, _EMPTY_SHA256, _EMPTY_SHA256)
        doc = orjson.loads(text)
        head, read_at = doc.get("head_sha256"), doc.get("read_at")
        return FileCursor(int(doc["offset"]), int(doc["line"]), str(doc["prefix_sha256"]),
                          None if head is None else str(head), None if read_at is None else int(read_at))


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def rotation_cursor(text: str) -> CursorDoc:
    """A stored file cursor as :func:`collector.rotation.plan_rotations` reads it."""
    cursor = FileCursor.loads(text)
    return CursorDoc(cursor.offset, cursor.prefix_sha256, cursor.head_sha256, cursor.line, cursor.read_at)


class SourceTampered(IntegrityError):
    """The part of a file already read has changed since it was read."""


def file_source_id(kind: str, path: Path) -> str:
    return f"{kind}:{Path(path).resolve()}"


def read_lines(path: Path, cursor: FileCursor, *, chunk: int = 1 << 20, claim: bool = False,
               max_line: int | None = None) -> Iterator[Line | LongLine | FileCursor]:
    """Complete lines after *cursor*, then a :class:`FileCursor` at the end of each chunk.

    The part before the cursor is hashed again and must match, else
    :class:`SourceTampered`. A last line with no newline is left unread (the file
    may still be written); it is read once its newline arrives. A ``.gz`` file (a
    compressed rotation) is read through gzip; offsets count uncompressed bytes.

    A line longer than *max_line* (default :data:`MAX_LINE_BYTES`) comes as a
    :class:`LongLine` (see :class:`LineSplitter`): memory stays flat in the line's
    length, and no cursor is yielded while one streams past, so every cursor is exact.

    With *claim* (a cursor that a rotation moved to this path, :mod:`collector.rotation`),
    *cursor* itself comes first, once its prefix checked out, so it is stored under this
    path even when nothing new follows. A file seen empty for the first time also gets a
    cursor (with its ``read_at``), so later runs know when the family was last looked at.
    """
    try:
        handle = open_log(path)
    except OSError as exc:
        raise SourceUnavailable(f"cannot read: {exc.strerror}", location=str(path)) from None
    with handle:
        read_at = int(time.time())  # before reading: a file rotated in later has a later ctime
        prefix = hashlib.sha256()
        head = bytearray()
        remaining = cursor.offset
        try:
            while remaining:
                block = handle.read(min(remaining, chunk))
                if not block:
                    break
                if len(head) < HEAD_BYTES:
                    head += block[: HEAD_BYTES - len(head)]
                prefix.update(block)
                remaining -= len(block)
        except (OSError, EOFError) as exc:  # a broken .gz
            raise SourceUnavailable(f"cannot read: {exc}", location=str(path)) from None
        if remaining or prefix.hexdigest() != cursor.prefix_sha256:
            raise SourceTampered(
                f"the first {cursor.offset} bytes changed since they were read (or the file shrank)",
                location=str(path),
            )

        hasher = _PrefixHasher(prefix)

        def consume(data: bytes) -> None:
            hasher.update(data)
            if len(head) < HEAD_BYTES:
                head.extend(data[: HEAD_BYTES - len(head)])

        splitter = LineSplitter(str(path), offset=cursor.offset, number=cursor.line,
                                max_line=MAX_LINE_BYTES if max_line is None else max_line, consume=consume)
        marked = claim
        if claim:
            yield dataclasses.replace(cursor, read_at=read_at)
        while True:
            try:
                block = handle.read(chunk)
            except (OSError, EOFError) as exc:
                raise SourceUnavailable(f"cannot read: {exc}", location=str(path)) from None
            if not block:
                break
            yield from splitter.feed(block)
            if splitter.whole:
                yield FileCursor(splitter.offset, splitter.number, hasher.hexdigest(), hashlib.sha256(head).hexdigest(),
                                 read_at)
                marked = True
        if not marked and cursor.offset == 0 and cursor.read_at is None:
            yield dataclasses.replace(cursor, read_at=read_at)


class _PrefixHasher:
    """A file's prefix SHA-256, fed in order; blocks of 64 KiB or more are hashed in a
    background thread (hashlib releases the GIL for them) while the lines they hold are
    parsed. :meth:`hexdigest` waits for what is still being hashed."""

    THREADED_MIN = 64 * 1024

    def __init__(self, prefix: Any) -> None:
        self.prefix = prefix
        self.pending: Future[None] | None = None

    def update(self, data: bytes) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None
        if len(data) >= self.THREADED_MIN:
            self.pending = _hash_thread().submit(self.prefix.update, data)
        else:
            self.prefix.update(data)

    def hexdigest(self) -> str:
        if self.pending is not None:
            self.pending.result()
            self.pending = None
        return str(self.prefix.hexdigest())


_HASH_THREAD: dict[int, ThreadPoolExecutor] = {}  # by process id: a forked child makes its own (threads do not fork)


def _hash_thread() -> ThreadPoolExecutor:
    pid = os.getpid()
    executor = _HASH_THREAD.get(pid)
    if executor is None:
        _HASH_THREAD.clear()
        executor = _HASH_THREAD[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedledger-hash")
    return executor


def read_stream_lines(stream: Any, name: str, *, chunk: int = 1 << 20, max_line: int | None = None
                      ) -> Iterator[Line | LongLine | FileCursor]:
    """Lines of a binary stream (stdin), capped as :func:`read_lines` caps them, with a
    :class:`FileCursor` (offset and line count only: a stream is not resumable) after each
    chunk. A last line without a newline is a line when the stream ends."""
    splitter = LineSplitter(name, offset=0, number=0, max_line=MAX_LINE_BYTES if max_line is None else max_line)
    # read1: what the pipe holds now (up to *chunk*), so a line from a live pipe is handed over as
    # soon as it arrives instead of waiting for a whole chunk to fill.
    read = getattr(stream, "read1", stream.read)
    while True:
        block = read(chunk)
        if not block:
            break
        yield from splitter.feed(block)
        if splitter.whole:
            yield FileCursor(splitter.offset, splitter.number, "")
    last = splitter.finish()
    if last is not None:
        yield last
        yield FileCursor(splitter.offset, splitter.number, "")


def iter_files(paths: Iterable[str], *, suffixes: tuple[str, ...] = (),
               skipped: list[str] | None = None) -> Iterator[Path]:
    """Files named, and files under folders named (sorted, hidden files skipped). A file under a
    folder whose name does not end with one of *suffixes* (case matters: ``A.JSON`` is not read)
    is not yielded but added to *skipped*, for the caller to name."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(p.startswith(".") for p in child.relative_to(path).parts):
                    if not suffixes or child.name.endswith(suffixes):
                        yield child
                    elif skipped is not None:
                        skipped.append(str(child))
        elif path.is_file():
            yield path
        else:
            raise SourceUnavailable("no such file or folder", location=str(path))


def safe_reason(exc: BaseException) -> str:
    """An error's message for a quarantine reason: one line, bounded, no record content."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]

