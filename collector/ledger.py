"""The ledger: a hash chain and an RFC 6962 Merkle tree of canonical JSON entries.

SQLite storage (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``). One call to
:meth:`Ledger.append` is one transaction holding the entries, the raw-object
index rows, the quarantine rows and the source cursors, so a killed run leaves
the whole batch or none of it. The chain tip and the Merkle right edge are read
inside the write lock, so two writers can never fork the chain.

Perfect subtree hashes at level >= :data:`NODE_MIN_LEVEL` are kept in ``nodes``;
smaller subtrees are recomputed from the stored leaf hashes. That keeps appends
cheap (one node row per 64 entries) and proofs O(log n) reads.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from collector import merkle
from collector.canonical import CanonicalizationError, canonical_bytes
from collector.checkpoint import require_valid_origin
from collector.errors import MalformedInput, SourceUnavailable, UsageError
from collector.store import EvidenceStore

# /2: dedup keys are stored as the SHA-256 of the key (32 bytes, not hex text), and where an
# entry's raw bytes live is three columns of its row (evidence object, offset, size) instead of a
# separate index keyed by digest: one random-order B-tree insert per entry instead of two.
FORMAT = "fedledger-ledger/2"
ENTRY_VERSION = 1
ZERO_HASH = "0" * 64
NODE_MIN_LEVEL = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, leaf BLOB NOT NULL, body BLOB NOT NULL,
    raw_object INTEGER, raw_offset INTEGER, raw_size INTEGER);
CREATE TABLE IF NOT EXISTS raw_objects (id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup (key BLOB PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (source TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY, source TEXT NOT NULL, location TEXT NOT NULL,
    line INTEGER, reason TEXT NOT NULL, sha256 TEXT NOT NULL, observed TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signers (name TEXT NOT NULL, key_id TEXT NOT NULL, public_pem TEXT NOT NULL,
    PRIMARY KEY (name, key_id)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_once ON quarantine (source, location, ifnull(line, -1), reason, sha256);
CREATE TABLE IF NOT EXISTS checkpoints (id INTEGER PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL,
    note TEXT NOT NULL, created TEXT NOT NULL);
"""


EntryParts = tuple[bytes, bytes, bytes]  # an entry's canonical bytes around prev and seq: see entry_parts
# An entry as a worker process hands it over: (dedup key, its stored id (dedup_id), *entry_parts,
# raw SHA-256) - plain values, cheap to pickle.
PreparedEntry = tuple["str | None", "bytes | None", bytes, bytes, bytes, str]


class NewEntry(NamedTuple):
    """What a source hands the ledger; ``seq``, ``prev`` and ``v`` are added at append.

    An immutable record (a NamedTuple: one is made per entry, and a frozen dataclass
    costs several times more to construct). ``event_bytes`` is ``canonical_bytes(event)``
    when the source already made it (e.g. in a worker process): the entry is then built
    around these bytes and ``event`` is not read. They must be exactly that;
    :func:`entry_bytes` checks only that they are an object.
    """

    source: Mapping[str, Any]
    observed: str
    event: Mapping[str, Any]
    raw_sha256: str
    raw_size: int
    dedup_key: str | None = None
    event_bytes: bytes | None = None


class RawIndexRow(NamedTuple):
    """Where the raw bytes with *sha256* live: ``object[offset:offset+size]`` in the store."""

    sha256: str
    size: int
    object: str
    offset: int = 0


class QuarantineRow(NamedTuple):
    """A record that did not become an entry. Never holds the record's content.

    ``sha256`` is the hex SHA-256 of the record's bytes as the source read them (a line, a
    CloudTrail record, an object, a whole file), or ``""`` when they were not read, so
    their hash is unknown (e.g. an attestation object over the size limit).
    """

    source: str
    location: str
    line: int | None
    reason: str
    sha256: str
    observed: str


@dataclass(frozen=True)
class AppendResult:
    """What one append did. ``conflicts`` are the records quarantined as conflicting duplicates
    (their dedup key is held by an entry whose raw bytes differ); they are in the quarantine table."""

    first_seq: int
    appended: int
    duplicates: int
    size: int
    seqs: tuple[int, ...] = field(default=())
    conflicts: tuple[QuarantineRow, ...] = field(default=())


@dataclass(frozen=True)
class StoredCheckpoint:
    id: int
    size: int
    root: bytes
    note: str
    created: str


_SCALARS = (str, int, bool, type(None))


def entry_document(seq: int, prev: str, new: NewEntry) -> dict[str, Any]:
    """The JSON document of an entry, before canonicalization.

    ``source`` holds scalars and lists of scalars only: the verifier finds the
    top-level ``prev`` and ``seq`` fields by their position before ``"source"`` in
    the canonical bytes, which is only unambiguous when ``source`` has no nested
    objects.
    """
    for value in new.source.values():
        if type(value) not in _SCALARS and not (type(value) is list and all(type(v) in _SCALARS for v in value)):
            raise MalformedInput(f"entry source values must be scalars or lists of scalars, not {type(value).__name__}")
    return {
        "v": ENTRY_VERSION,
        "seq": seq,
        "prev": prev,
        "source": dict(new.source),
        "observed": new.observed,
        "event": orjson.loads(new.event_bytes) if new.event_bytes is not None else dict(new.event),
        "raw": {"sha256": new.raw_sha256, "size": new.raw_size},
    }


_ENTRY_PREFIX = b'{"event":'
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def entry_parts(new: NewEntry) -> EntryParts:
    """The canonical bytes of *new*'s entry around its ``prev`` and ``seq`` values.

    JCS sorts keys, so every entry is ``{"event":E,"observed":O,"prev":"`` + prev hex +
    ``","raw":R,"seq":`` + seq digits + ``,"source":S,"v":1}``; this returns the three
    constant parts. They depend on nothing in the ledger, so a worker process can make
    them while the ledger process only joins, hashes and inserts. Plain values are written
    by orjson directly (sorted keys, integers within ±(2**53-1)) when no ``source`` key holds
    a character above U+FFFF; otherwise they go through :func:`canonical_bytes`.
    ``tests/test_ledger_splice.py`` checks the joined bytes against ``canonical_bytes(entry_document(...))``.
    """
    source = new.source
    for value in source.values():
        if type(value) not in _SCALARS and not (type(value) is list and all(type(v) in _SCALARS for v in value)):
            raise MalformedInput(f"entry source values must be scalars or lists of scalars, not {type(value).__name__}")
    event = new.event_bytes
    if event is None:
        plain = new.event
        event = canonical_bytes(plain if type(plain) is dict else dict(plain))
    elif event[:1] != b"{" or event[-1:] != b"}":
        raise MalformedInput("event_bytes must be the canonical bytes of a JSON object")
    source = source if type(source) is dict else dict(source)
    raw = {"sha256": new.raw_sha256, "size": new.raw_size}
    keys = None
    if type(new.observed) is str and type(new.raw_sha256) is str and type(new.raw_size) is int:
        try:
            keys = "".join(source)
        except TypeError:  # a non-string key: canonical_bytes names it
            pass
    if keys is not None and (keys.isascii() or max(keys) <= "\uffff"):
        try:
            observed = orjson.dumps(new.observed)
            raw_bytes = orjson.dumps(raw, option=_SORTED)
            source_bytes = orjson.dumps(source, option=_SORTED)
        except TypeError as exc:
            raise CanonicalizationError("lone surrogate in a string" if "surrogate" in str(exc) else str(exc)) from None
    else:
        observed, raw_bytes, source_bytes = canonical_bytes(new.observed), canonical_bytes(raw), canonical_bytes(source)
    return (b"".join((_ENTRY_PREFIX, event, b',"observed":', observed, b',"prev":"')),
            b"".join((b'","raw":', raw_bytes, b',"seq":')),
            b"".join((b',"source":', source_bytes, b',"v":%d}' % ENTRY_VERSION)))


def entry_bytes(seq: int, prev: str, new: NewEntry) -> bytes:
    """``canonical_bytes(entry_document(seq, prev, new))``, built from :func:`entry_parts`."""
    if type(seq) is not int or not 0 <= seq <= 2**53 - 1:
        raise CanonicalizationError(f"seq out of range: {seq!r}")
    head, middle, tail = entry_parts(new)
    return b"".join((head, prev.encode(), middle, b"%d" % seq, tail))


class EntryPartsMaker:
    """:func:`entry_parts` for the usual entry of one batch, with its constant pieces made once.

    The usual entry has ``source = {kind, id, location[, line]}`` (sorted: ``id``, ``kind``,
    ``line``, ``location``) and one ``observed`` for the batch, so only the event, the
    line number and the raw digest and size change from entry to entry. :meth:`parts`
    gives exactly ``entry_parts(NewEntry(source, observed, event, digest, size, ...))``
    (``tests/test_ledger_splice.py`` checks it); anything unusual goes to :func:`entry_parts`.
    """

    def __init__(self, *, observed: str, kind: str, source_id: str) -> None:
        self.observed, self.kind, self.source_id = observed, kind, source_id
        try:
            self._observed = b',"observed":' + orjson.dumps(observed) + b',"prev":"'
            self._source = b',"source":{"id":' + orjson.dumps(source_id) + b',"kind":' + orjson.dumps(kind)
        except TypeError:  # a lone surrogate: entry_parts names it
            self._observed = self._source = b""
        self._plain = type(observed) is str and type(kind) is str and type(source_id) is str and bool(self._source)
        self._locations: dict[str, bytes] = {}

    def parts(self, location: str, line: int | None, event: Mapping[str, Any] | None, event_bytes: bytes | None,
              raw_sha256: str, raw_size: int) -> EntryParts:
        tail_end = self._locations.get(location)
        try:
            if tail_end is None and self._plain and type(location) is str:
                tail_end = b',"location":' + orjson.dumps(location) + b'},"v":%d}' % ENTRY_VERSION
                self._locations[location] = tail_end
            digest = orjson.dumps(raw_sha256) if type(raw_sha256) is str else None
        except TypeError:  # a lone surrogate: entry_parts names it
            tail_end = digest = None
        if (tail_end is None or digest is None
                or (line is not None and (type(line) is not int or not -_MAX_INT <= line <= _MAX_INT))
                or type(raw_size) is not int or not 0 <= raw_size <= _MAX_INT
                or (event_bytes is not None and (event_bytes[:1] != b"{" or event_bytes[-1:] != b"}"))):
            source: dict[str, Any] = {"kind": self.kind, "id": self.source_id, "location": location}
            if line is not None:
                source["line"] = line
            return entry_parts(NewEntry(source, self.observed, event if event is not None else {}, raw_sha256,
                                        raw_size, None, event_bytes))
        if event_bytes is None:
            event_bytes = canonical_bytes(event if type(event) is dict else dict(event or {}))
        return (b"".join((_ENTRY_PREFIX, event_bytes, self._observed)),
                b'","raw":{"sha256":%b,"size":%d},"seq":' % (digest, raw_size),
                b"".join((self._source, b"" if line is None else b',"line":%d' % line, tail_end)))


_MAX_INT = 2**53 - 1


def prepared_entry(new: NewEntry) -> PreparedEntry:
    """*new* as the ledger appends it: its dedup key, :func:`entry_parts` and raw digest."""
    head, middle, tail = entry_parts(new)
    key = new.dedup_key
    return (key, None if key is None else dedup_id(key), head, middle, tail, new.raw_sha256)


_NOWHERE = (None, None, None)  # an entry appended without raw bytes in the store


def prepared_items(batch: Sequence[NewEntry], prepared: Sequence[PreparedEntry]) -> Sequence[PreparedEntry]:
    if batch and prepared:
        raise UsageError("append takes entries or prepared entries, not both")
    return prepared if prepared else [prepared_entry(new) for new in batch]


def dedup_id(key: str) -> bytes:
    """How a dedup key is stored (SQLite): its SHA-256, a fixed 32 bytes whatever the key's length."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def default_store_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".objects")


CONFLICT_REASON = "conflicting-duplicate"


def conflict_reason(seq: int) -> str:
    """The quarantine reason of a record whose dedup key entry *seq* holds with other raw bytes."""
    return f"{CONFLICT_REASON}: entry {seq} has this dedup key with other raw bytes"


@dataclass
class PreparedBatch:
    """The rows one append writes: entries, stored Merkle nodes and dedup keys."""

    rows: list[tuple[int, bytes, bytes]]  # (seq, leaf hash, body)
    raws: list[str]  # the raw SHA-256 of each row
    nodes: list[tuple[int, int, bytes]]  # (level, index, hash) of completed subtrees at level >= NODE_MIN_LEVEL
    dedup_rows: list[tuple[str, int]]
    seqs: list[int]
    duplicates: int
    next_seq: int
    conflicts: list[tuple[int, int]] = field(default_factory=list)  # (index in the batch, seq holding its key)


def prepare_batch(batch: Sequence[PreparedEntry], *, size: int, prev: str, known: Mapping[str, tuple[int, str]],
                  edge: list[bytes]) -> PreparedBatch:
    """Chain and hash *batch* after a tree of *size* whose right edge is *edge* (changed in place).

    *known* maps the batch's dedup keys that the ledger holds already to (seq, raw SHA-256)
    of the entry holding each. An entry whose key is known (or came earlier in the batch)
    is skipped: a duplicate when its raw SHA-256 is that entry's, else a conflict
    (``conflicts``: its index in *batch* and the seq of the entry holding the key), which the
    caller quarantines. Shared by the SQLite and PostgreSQL backends: this loop is the append
    hot path, so the compact-range update is inlined and a new key costs what it did before
    conflicts were looked for (the first copies in the batch are indexed only once a key repeats).
    """
    push, pop = edge.append, edge.pop
    sha256 = hashlib.sha256
    rows: list[tuple[int, bytes, bytes]] = []
    raws: list[str] = []
    nodes: list[tuple[int, int, bytes]] = []
    dedup_rows: list[tuple[str, int]] = []
    seqs: list[int] = []
    conflicts: list[tuple[int, int]] = []
    seen = set(known)
    in_batch: dict[str, int] = {}  # key -> seq of its first copy in this batch, filled on the duplicate path only
    duplicates = 0
    seq = size
    prev_hex = prev.encode()
    if size + len(batch) > 2**53 - 1:
        raise CanonicalizationError("the ledger would pass 2**53 - 1 entries")
    for key, _key_id, head, middle, tail, raw in batch:
        if key is not None:
            if key in seen:
                holder = known.get(key)
                if holder is None:  # its first copy is in this batch
                    for k, at in dedup_rows[len(in_batch):]:
                        in_batch[k] = at
                    at = in_batch[key]
                    holder = (at, raws[at - size])
                if holder[1] == raw:
                    duplicates += 1
                else:  # this item's index: every earlier item is a row, a duplicate or a conflict
                    conflicts.append((seq - size + duplicates + len(conflicts), holder[0]))
                continue
            seen.add(key)
            dedup_rows.append((key, seq))
        body = b"".join((head, prev_hex, middle, b"%d" % seq, tail))
        leaf = sha256(b"\x00" + body).digest()
        rows.append((seq, leaf, body))
        raws.append(raw)
        seqs.append(seq)
        prev_hex = leaf.hex().encode()
        # the Merkle right edge (CompactRange.append, inlined): merge while the index is odd
        push(leaf)
        index = seq
        level = 0
        while index & 1:
            right = pop()
            merged = sha256(b"\x01" + pop() + right).digest()
            push(merged)
            level += 1
            index >>= 1
            if level >= NODE_MIN_LEVEL:
                nodes.append((level, index, merged))
        seq += 1
    return PreparedBatch(rows, raws, nodes, dedup_rows, seqs, duplicates, seq, conflicts)


_SOURCE_START = b',"source":'
_ENTRY_END = b',"v":%d}' % ENTRY_VERSION
_OBSERVED_START = b',"observed":'
_PREV_START = b',"prev":"'


def conflict_rows(batch: Sequence[PreparedEntry], conflicts: Sequence[tuple[int, int]]) -> tuple[QuarantineRow, ...]:
    """The quarantine rows of *conflicts* (see :func:`prepare_batch`): each record's source id,
    location and line, read from the ``source`` of the entry it would have been, its raw
    SHA-256, the entry it conflicts with, never its content."""
    rows = []
    for index, holder in conflicts:
        _key, _key_id, head, _middle, tail, raw = batch[index]
        # tail is ',"source":{...},"v":1}'; head ends with ',"observed":"...","prev":"' (see entry_parts)
        source = orjson.loads(tail[len(_SOURCE_START):-len(_ENTRY_END)])
        observed = orjson.loads(head[head.rindex(_OBSERVED_START) + len(_OBSERVED_START):-len(_PREV_START)])
        line = source.get("line")
        rows.append(QuarantineRow(str(source.get("id")), str(source.get("location")),
                                  line if type(line) is int else None, conflict_reason(holder), raw, str(observed)))
    return tuple(rows)


_RAW_START = b'","raw":{"sha256":"'


def stored_raw_sha256(body: bytes) -> str:
    """``raw.sha256`` of a stored entry's canonical bytes, found by its place instead of a parse.

    The top-level ``raw`` is the last object with a ``sha256`` key: only ``seq``, ``source``
    (scalars and lists of scalars, see :func:`entry_document`) and ``v`` come after it, and a
    JSON string cannot hold an unescaped quote. Anything unexpected falls back to a parse.
    """
    at = body.rfind(_RAW_START)
    start = at + len(_RAW_START)
    if at < 0 or body[start + 64:start + 65] != b'"':
        return str(orjson.loads(body)["raw"]["sha256"])
    return body[start:start + 64].decode("ascii")


class LedgerReads:
    """Tree and raw-evidence reads shared by the SQLite and PostgreSQL ledgers.

    A backend supplies ``size``, ``path``, ``store``, :meth:`leaf_hashes`,
    :meth:`_stored_node`, :meth:`raw_location` and :meth:`checkpoints`; everything
    here is computed from those, so both backends answer proofs the same way.
    """

    path: Any
    store: EvidenceStore

    @property
    def size(self) -> int:
        raise NotImplementedError

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        raise NotImplementedError

    def _stored_node(self, level: int, idx: int) -> bytes | None:
        raise NotImplementedError

    def raw_location(self, seq: int) -> RawIndexRow | None:
        """Where the raw bytes of entry *seq* live in the evidence store (None when the entry has none)."""
        raise NotImplementedError

    def raw_locations(self, entries: Sequence[tuple[int, bytes]]) -> list[RawIndexRow | None]:
        """:meth:`raw_location` of each (seq, stored body) of *entries*, in order. A backend where each
        lookup is a round trip (PostgreSQL) answers them all at once."""
        return [self.raw_location(seq) for seq, _body in entries]

    def checkpoints(self) -> list[StoredCheckpoint]:
        raise NotImplementedError

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end): stored nodes where they exist, leaves below that."""
        n = end - start
        if n <= 0:
            raise ValueError("empty subtree")
        if n & (n - 1) == 0 and start % n == 0:
            level = n.bit_length() - 1
            if level >= NODE_MIN_LEVEL:
                node = self._stored_node(level, start >> level)
                if node is None:
                    raise MalformedInput(f"ledger node ({level}, {start >> level}) missing", location=str(self.path))
                return node
        if n <= 1 << NODE_MIN_LEVEL:
            return merkle.root_from_leaf_hashes(self.leaf_hashes(start, end))
        k = merkle.split_point(n)
        return merkle.node_hash(self.subtree_hash(start, start + k), self.subtree_hash(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if size == 0:
            return merkle.EMPTY_ROOT
        return self.subtree_hash(0, size)

    def _check_size(self, size: int | None) -> int:
        current = self.size
        if size is None:
            return current
        if not 0 <= size <= current:
            raise UsageError(f"tree size {size} outside 0..{current}")
        return size

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        size = self._check_size(size)
        if not 0 <= seq < size:
            raise UsageError(f"seq {seq} is not in a tree of size {size}")
        return merkle.inclusion_proof(seq, size, self.subtree_hash)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        size2 = self._check_size(size2)
        if not 1 <= size1 <= size2:
            raise UsageError(f"consistency needs 1 <= OLD <= NEW <= {self.size}, got {size1} and {size2}")
        return merkle.consistency_proof(size1, size2, self.subtree_hash)

    def raw_bytes(self, seq: int) -> bytes:
        """The raw bytes entry *seq* came from, checked against the digest the entry holds."""
        where = self.raw_location(seq)
        if where is None:
            raise SourceUnavailable(f"entry {seq} has no raw bytes in the evidence store", location=str(self.path))
        data = self.store.get(where.object)[where.offset : where.offset + where.size]
        if hashlib.sha256(data).hexdigest() != where.sha256:
            raise MalformedInput(f"the raw bytes of entry {seq} do not match its raw.sha256", location=str(self.path))
        return data

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        cps = self.checkpoints()
        return cps[-1] if cps else None

    def _right_edge(self, size: int) -> merkle.CompactRange:
        compact = merkle.CompactRange()
        start = 0
        for level, _ in merkle.CompactRange.perfect_subtrees(size):
            compact.hashes.append(self.subtree_hash(start, start + (1 << level)))
            start += 1 << level
        compact.size = size
        return compact


class Ledger(LedgerReads):
    """A ledger in one SQLite file plus its evidence store folder."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self.store = EvidenceStore(default_store_path(path))
        self.origin = self._meta("origin")

    # -- opening -------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=60000")
        # Dedup keys are hashes, so each batch touches index pages all over a big ledger: keep up
        # to 32 MiB of pages in memory rather than the default 2 MiB (bounded, whatever the size).
        conn.execute("PRAGMA cache_size=-32768")
        # Checkpoint the WAL every ~40 MiB instead of every 4 MiB: a dedup index page changed by
        # several batches in a row is then copied into the database file once, not once per batch.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        return conn

    @classmethod
    def create(cls, path: Path | str, origin: str, *, created: str, key_type: str) -> Ledger:
        path = Path(path)
        if path.exists():
            raise UsageError("a ledger already exists here", location=str(path))
        require_valid_origin(origin)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = cls._connect(path)
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [("format", FORMAT), ("origin", origin), ("created", created), ("key_type", key_type)],
        )
        conn.execute("COMMIT")
        return cls(path, conn)

    @classmethod
    def open(cls, path: Path | str) -> Ledger:
        path = Path(path)
        if not path.is_file():
            raise SourceUnavailable("no ledger here (run `fedledger init` first)", location=str(path))
        try:
            conn = cls._connect(path)
            fmt = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise MalformedInput(f"not a fedledger ledger: {exc}", location=str(path)) from None
        if fmt is not None and fmt[0] == "fedledger-ledger/1":
            raise MalformedInput("this ledger was made by an older fedledger (format fedledger-ledger/1): export it "
                                 "with that version (`fedledger export`, verifiable by this one) and collect into a new "
                                 "ledger", location=str(path))
        if fmt is None or fmt[0] != FORMAT:
            raise MalformedInput(f"unknown ledger format {fmt[0] if fmt else None!r}", location=str(path))
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _meta(self, key: str) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            raise MalformedInput(f"ledger metadata {key!r} missing", location=str(self.path))
        return str(row[0])

    @property
    def key_type(self) -> str:
        return self._meta("key_type")

    # -- reading -------------------------------------------------------------------
    @property
    def size(self) -> int:
        row = self._conn.execute("SELECT max(seq) FROM entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(seq, stored leaf hash, stored body bytes) in seq order."""
        sql = "SELECT seq, leaf, body FROM entries WHERE seq >= ?"
        args: list[int] = [start]
        if end is not None:
            sql += " AND seq < ?"
            args.append(end)
        yield from self._conn.execute(sql + " ORDER BY seq", args)

    def entry(self, seq: int) -> bytes:
        row = self._conn.execute("SELECT body FROM entries WHERE seq=?", (seq,)).fetchone()
        if row is None:
            raise UsageError(f"no entry with seq {seq} (ledger size {self.size})")
        return bytes(row[0])

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        rows = self._conn.execute(
            "SELECT leaf FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq", (start, end)
        ).fetchall()
        if len(rows) != end - start:
            raise MalformedInput(f"ledger is missing leaves in [{start}, {end})", location=str(self.path))
        return [bytes(r[0]) for r in rows]

    def _stored_node(self, level: int, idx: int) -> bytes | None:
        row = self._conn.execute("SELECT hash FROM nodes WHERE level=? AND idx=?", (level, idx)).fetchone()
        return None if row is None else bytes(row[0])

    def cursor(self, source: str) -> str | None:
        row = self._conn.execute("SELECT cursor FROM cursors WHERE source=?", (source,)).fetchone()
        return None if row is None else str(row[0])

    def cursors(self) -> dict[str, str]:
        return {str(s): str(c) for s, c in self._conn.execute("SELECT source, cursor FROM cursors")}

    def raw_location(self, seq: int) -> RawIndexRow | None:
        row = self._conn.execute(
            "SELECT e.body, o.sha256, e.raw_offset, e.raw_size FROM entries e JOIN raw_objects o ON o.id = e.raw_object "
            "WHERE e.seq=?", (seq,)).fetchone()
        if row is None:
            return None
        return RawIndexRow(orjson.loads(row[0])["raw"]["sha256"], int(row[3]), bytes(row[1]).hex(), int(row[2]))

    def quarantined(self) -> list[QuarantineRow]:
        return [
            QuarantineRow(str(r[0]), str(r[1]), r[2], str(r[3]), str(r[4]), str(r[5]))
            for r in self._conn.execute(
                "SELECT source, location, line, reason, sha256, observed FROM quarantine ORDER BY id"
            )
        ]

    def checkpoints(self) -> list[StoredCheckpoint]:
        return [
            StoredCheckpoint(int(r[0]), int(r[1]), bytes(r[2]), str(r[3]), str(r[4]))
            for r in self._conn.execute("SELECT id, size, root, note, created FROM checkpoints ORDER BY id")
        ]

    # -- writing -------------------------------------------------------------------
    def append(
        self,
        batch: Sequence[NewEntry] = (),
        *,
        prepared: Sequence[PreparedEntry] = (),
        cursors: Mapping[str, str] | None = None,
        raw_index: Iterable[tuple[str, int, str, int]] = (),
        quarantine: Iterable[QuarantineRow] = (),
        updated: str = "",
    ) -> AppendResult:
        """Append *batch* (or *prepared*: the same as :func:`prepared_entry` made them, e.g. in a
        worker process), skipping entries whose ``dedup_key`` is already known, in one transaction."""
        items = prepared_items(batch, prepared)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            size = self.size
            tip = conn.execute("SELECT leaf FROM entries WHERE seq=?", (size - 1,)).fetchone() if size else None
            prev = bytes(tip[0]).hex() if tip else ZERO_HASH
            ids = {item[0]: item[1] or dedup_id(item[0]) for item in items if item[0] is not None}
            known = self._known_keys(ids)
            batch_rows = prepare_batch(items, size=size, prev=prev, known=known, edge=self._right_edge(size).hashes)
            rows, nodes, dedup_rows, seqs = batch_rows.rows, batch_rows.nodes, batch_rows.dedup_rows, batch_rows.seqs
            duplicates, seq = batch_rows.duplicates, batch_rows.next_seq
            conflicts = conflict_rows(items, batch_rows.conflicts)
            where = self._raw_objects(raw_index)
            conn.executemany(
                "INSERT INTO entries(seq, leaf, body, raw_object, raw_offset, raw_size) VALUES (?, ?, ?, ?, ?, ?)",
                [(*row, *where.get(raw, _NOWHERE)) for row, raw in zip(rows, batch_rows.raws)])
            if nodes:
                conn.executemany("INSERT INTO nodes(level, idx, hash) VALUES (?, ?, ?)", nodes)
            # keys in order: B-tree inserts then touch each page once instead of at random
            if dedup_rows:
                conn.executemany("INSERT INTO dedup(key, seq) VALUES (?, ?)",
                                 sorted([(ids[key], at) for key, at in dedup_rows]))
            conn.executemany(
                "INSERT OR IGNORE INTO quarantine(source, location, line, reason, sha256, observed) VALUES (?, ?, ?, ?, ?, ?)",
                [*quarantine, *conflicts])
            for source, value in (cursors or {}).items():
                conn.execute(
                    "INSERT INTO cursors(source, cursor, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT(source) DO UPDATE SET cursor=excluded.cursor, updated=excluded.updated",
                    (source, value, updated),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return AppendResult(size, len(rows), duplicates, seq, tuple(seqs), conflicts)

    def _raw_objects(self, raw_index: Iterable[tuple[str, int, str, int]]) -> dict[str, tuple[int, int, int]]:
        """raw SHA-256 -> (evidence object row id, offset, size), adding the objects' rows (in the open transaction)."""
        ids: dict[str, int] = {}
        where: dict[str, tuple[int, int, int]] = {}
        conn = self._conn
        for digest, size, obj, offset in raw_index:
            object_id = ids.get(obj)
            if object_id is None:
                key = bytes.fromhex(obj)
                conn.execute("INSERT OR IGNORE INTO raw_objects(sha256) VALUES (?)", (key,))
                object_id = ids[obj] = int(conn.execute("SELECT id FROM raw_objects WHERE sha256=?", (key,)).fetchone()[0])
            where.setdefault(digest, (object_id, offset, size))
        return where

    def _known_keys(self, ids: Mapping[str, bytes]) -> dict[str, tuple[int, str]]:
        """The keys (key -> stored id) the ledger holds already, each with the seq and raw
        SHA-256 of the entry holding it. Entry bodies are read for these keys only: a new key
        costs one dedup index probe, as before."""
        keys = {stored: key for key, stored in ids.items()}
        wanted = sorted(keys)  # in key order: the B-tree pages are visited once each
        known: dict[str, tuple[int, str]] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, seq, body in self._conn.execute(
                    f"SELECT d.key, d.seq, e.body FROM dedup d LEFT JOIN entries e ON e.seq = d.seq "
                    f"WHERE d.key IN ({marks})", chunk):
                if body is None:
                    raise MalformedInput(f"a dedup key points at entry {seq}, which is missing", location=str(self.path))
                known[keys[bytes(key)]] = (int(seq), stored_raw_sha256(bytes(body)))
        return known

    def signers(self) -> list[tuple[str, str, str]]:
        """(name, key ID hex, public key PEM) of every key that signed a checkpoint here."""
        return [(str(a), str(b), str(c)) for a, b, c in self._conn.execute("SELECT name, key_id, public_pem FROM signers ORDER BY name, key_id")]

    def add_checkpoint(
        self, make_note: Callable[[int, bytes], str], created: str, *, signer: tuple[str, str, str] | None = None
    ) -> StoredCheckpoint:
        """Sign the tree head as it stands inside the write lock, and keep the note.

        *make_note(size, root)* returns the signed note text; it runs while the lock
        is held, so no append can slip between reading the head and storing it.
        """
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            size = self.size
            root = self.root(size)
            note = make_note(size, root)
            cur = conn.execute(
                "INSERT INTO checkpoints(size, root, note, created) VALUES (?, ?, ?, ?)", (size, root, note, created)
            )
            if signer is not None:
                conn.execute("INSERT OR IGNORE INTO signers(name, key_id, public_pem) VALUES (?, ?, ?)", signer)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return StoredCheckpoint(int(cur.lastrowid or 0), size, root, note, created)

    def integrity_check(self) -> str:
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])
