"""Offline ledger verification: stored bytes, pinned keys and origin in, a report out.

Walk every entry once, recompute its leaf hash from the stored bytes, parse the
chain fields, compute the Merkle root at every checkpointed size, and check each
checkpoint's signatures. Every failure is collected (not only the first), each
with a class (``code``) and the sequence numbers it concerns. Pure: no database,
no network, no clock.

Classes: ``entry-modified`` (bytes of an entry changed), ``entry-deleted``,
``entries-swapped`` (entries out of order), ``entry-duplicated``,
``root-mismatch`` (the entries do not hash to a signed root: changed and re-hashed),
``truncated`` (the ledger is shorter than one of its own checkpoints),
``rolled-back`` (shorter than a saved checkpoint), ``fork`` (two signed roots for
one size), ``unknown-signer``, ``wrong-origin``, ``malformed-checkpoint``,
``bad-signature``, ``no-trusted-checkpoint``, ``not-checkpointed`` (entries after the newest
valid checkpoint: nothing vouches for them), ``key-out-of-range`` (signed only by a key that may
not vouch for that size: retired by a handover, or limited with ``--key-range``) and
``bad-handover`` (a key handover that does not hold; see :mod:`collector.checkpoint_keys`); and, from :mod:`bundler.raw_verify` when a ledger
file or PostgreSQL ledger is verified with its evidence store, ``raw-modified`` and ``raw-missing``.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson

from collector import merkle
from collector.checkpoint import Checkpoint, CheckpointError, NoteVerifier
from collector.checkpoint_keys import KeyOutOfRange, KeyRing, TrustedKey

REPORT_VERSION = 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """*text* with control characters escaped, so untrusted names cannot forge report lines."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    seq: int | None = None
    where: str | None = None

    def line(self) -> str:
        at = f" seq {self.seq}" if self.seq is not None else ""
        where = f" [{printable(self.where)}]" if self.where else ""
        return f"INVALID: {self.code}{at}{where}: {printable(self.message)}"


@dataclass
class LedgerVerification:
    origin: str
    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    failures: list[Failure] = field(default_factory=list)
    checkpoints_valid: list[Checkpoint] = field(default_factory=list)
    checkpoints_checked: int = 0
    newest_signed_size: int = 0
    raw_checked: bool | None = None  # entries' raw bytes read from the evidence store: False with --no-raw
    keys: KeyRing | None = None  # the trusted keys, with the sizes each may vouch for (handovers followed)
    vouched_by: dict[str, list[TrustedKey]] = field(default_factory=dict)  # note where -> keys that vouched

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def invalid_entries(self) -> set[int]:
        return {f.seq for f in self.failures if f.seq is not None and f.code.startswith(("entr", "raw-"))}

    def to_json(self) -> dict[str, object]:
        return {
            "version": REPORT_VERSION,
            "kind": "fedledger.verify",
            "ok": self.ok,
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "checkpoints_checked": self.checkpoints_checked,
            "checkpoints_valid": len(self.checkpoints_valid),
            "newest_signed_size": self.newest_signed_size,
            "raw_checked": self.raw_checked,
            "keys": self.keys.to_json() if self.keys is not None else [],
            "failures": [
                {"code": f.code, "seq": f.seq, "where": f.where, "message": f.message} for f in self.failures
            ],
        }

    def key_lines(self) -> list[str]:
        """Which key vouched for what (``key … pinned …``, ``key … accepted by handover …``), when
        there is more than one key, a range or a handover to tell about; else nothing."""
        return self.keys.describe() if self.keys is not None and self.keys.noteworthy else []

    def tally(self) -> str:
        bad = len(self.invalid_entries)
        cps = f"{len(self.checkpoints_valid)}/{self.checkpoints_checked} checkpoints valid"
        if self.raw_checked is False:
            cps += ", raw evidence NOT checked (--no-raw)"
        if self.ok:
            return f"{self.size}/{self.size} entries valid, {cps}, 0 INVALID"
        return f"{self.size - bad}/{self.size} entries valid, {cps}, {len(self.failures)} INVALID"


@dataclass(frozen=True)
class NoteInput:
    """A signed checkpoint note to check, and where it came from."""

    where: str
    text: str
    saved: bool = False  # given by the verifier's user, not read from the ledger
    unreadable: str | None = None  # why the note's bytes could not be read as text (then *text* is empty)

    @classmethod
    def from_bytes(cls, where: str, data: bytes, *, saved: bool = False) -> NoteInput:
        """A note from its exact bytes: strict UTF-8 and no newline translation, so a CRLF or a
        non-UTF-8 note is reported as malformed rather than silently repaired or crashing."""
        try:
            return cls(where, data.decode("utf-8"), saved)
        except UnicodeDecodeError:
            return cls(where, "", saved, unreadable="checkpoint note is not UTF-8")


def check_notes(
    notes: Sequence[NoteInput], *, origin: str, verifiers: Sequence[NoteVerifier] = (), keys: KeyRing | None = None
) -> tuple[LedgerVerification, list[tuple[NoteInput, Checkpoint]]]:
    """A fresh report with every checkpoint's signature checked, and the valid ones.

    *keys* (default: *verifiers*, for any size) are the trusted keys with the sizes each may vouch
    for; key handovers among *notes* are followed first (:meth:`KeyRing.follow_handovers`), so a
    key the pinned one handed over to vouches for the sizes from its handover on."""
    report = LedgerVerification(origin=origin)
    ring = keys if keys is not None else KeyRing(verifiers)
    report.keys = ring
    handovers = ring.follow_handovers(((n.where, n.text) for n in notes if n.unreadable is None), origin=origin)
    checked = {note.where for note in notes}
    for key in list(ring.keys):  # followed earlier from a note not among these (verify-bundle's unlisted files)
        if key.handover_where is not None and key.handover_where not in checked:
            ring.void(key.handover_where, f"its handover checkpoint ({key.handover_where}) is not one of the "
                                          "ledger's checkpoints, so it was never compared with the tree")
    parsed: list[tuple[NoteInput, Checkpoint]] = []
    for note in notes:
        report.checkpoints_checked += 1
        if note.unreadable is not None:
            report.failures.append(Failure("malformed-checkpoint", note.unreadable, where=note.where))
            continue
        problem = handovers.failures.get(note.where)
        try:
            checkpoint, vouching = ring.verify(note.text, origin=origin)
        except CheckpointError as exc:
            extra = problem or handovers.hints.get(note.where)
            stated = handovers.stated.get(note.where)
            if isinstance(exc, KeyOutOfRange) and stated is not None:  # the range is said already: just the upshot
                extra = f"so its handover to key {stated.new.key_id.hex()} does not count"
            report.failures.append(Failure(exc.code, f"{exc}; {extra}" if extra else str(exc), where=note.where))
            # A handover note that does not verify (e.g. bad-signature by another trusted key) is never
            # compared with the tree: the keys it made trusted count for nothing (then bad-handover).
            ring.void(note.where, f"its handover checkpoint ({note.where}) is {exc.code}")
            continue
        parsed.append((note, checkpoint))
        report.vouched_by[note.where] = vouching
        if problem is not None:  # vouched for by a trusted key, but the handover it states does not hold
            report.failures.append(Failure("bad-handover", problem, where=note.where))
    return report, parsed


@dataclass
class ChunkScan:
    """One pass over entries [start, start + count): leaf hashes, chain anomalies and the
    compact range (local to the chunk when ``start`` is a multiple of a power of two
    at least as large as the chunk)."""

    start: int
    count: int = 0
    leaves: bytearray = field(default_factory=bytearray)
    irregular: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # position -> (seq, prev)
    failures: list[Failure] = field(default_factory=list)
    stack: list[bytes] = field(default_factory=list)
    stacks_at: dict[int, list[bytes]] = field(default_factory=dict)  # global size -> local stack


def scan_chunk(
    records: Iterable[tuple[bytes, bytes | None]], *, start: int, prev_hex: bytes, wanted_sizes: set[int]
) -> ChunkScan:
    """The hot loop: hash every stored body, check its chain fields, grow the compact range.

    *prev_hex* is the hex leaf hash of entry ``start - 1`` (64 zeros for 0).
    """
    scan = ChunkScan(start)
    leaves, irregular, stack = scan.leaves, scan.irregular, scan.stack
    leaf_hasher = hashlib.sha256(b"\x00")
    sha256 = hashlib.sha256
    hexlify = binascii.hexlify
    position = start
    for body, stored_leaf in records:
        hasher = leaf_hasher.copy()
        hasher.update(body)
        leaf = hasher.digest()
        if stored_leaf is not None and stored_leaf != leaf:
            scan.failures.append(
                Failure("entry-modified", f"stored bytes hash to {leaf.hex()}, stored leaf is {stored_leaf.hex()}",
                        seq=position, where="body")
            )
        # Fast path for the plain case (see _chain_fields): this entry's prev is the
        # previous leaf and its seq is its position.
        # Forward searches over short windows (bytes.rfind is several times slower):
        # the last ',"source":{' is found near the end and must be the only one after
        # it; prev then lies in a window fixed by the raw and seq fields' shapes.
        size = len(body)
        src = body.find(b',"source":{', size - 512 if size > 512 else 0)
        seq_tag = b',"seq":%d' % position
        q = src - len(seq_tag)
        p = body.find(b',"prev":"', q - 183 if q > 183 else 0, q)
        if not (src > 0 and body[q:src] == seq_tag and p > 0 and body[p + 9 : p + 73] == prev_hex
                and body[p + 73 : p + 92] == b'","raw":{"sha256":"' and body[q - 1 : q] == b"}"
                and body.find(b',"source":{', src + 11) < 0):
            seq, prev = _chain_fields(body)
            if seq is None or prev is None:
                scan.failures.append(Failure("entry-modified", "entry is not a well-formed ledger entry", seq=position))
                irregular[position] = (-1, bytes(32))
            elif seq != position or prev != prev_hex:
                irregular[position] = (seq, bytes.fromhex(prev.decode()))
        leaves += leaf
        prev_hex = hexlify(leaf)
        node = leaf
        index = position - start
        while index & 1:
            node = sha256(b"\x01" + stack.pop() + node).digest()
            index >>= 1
        stack.append(node)
        position += 1
        if position in wanted_sizes:
            scan.stacks_at[position] = list(stack)
    scan.count = position - start
    return scan


def finish(
    report: LedgerVerification, parsed: list[tuple[NoteInput, Checkpoint]], chunks: Sequence[ChunkScan]
) -> LedgerVerification:
    """Combine chunk scans (in order, each aligned and full but the last) and judge."""
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    outer: list[bytes] = []
    leaves = bytearray()
    irregular: dict[int, tuple[int, bytes]] = {}
    size = 0
    for number, chunk in enumerate(chunks):
        report.failures.extend(chunk.failures)
        irregular.update(chunk.irregular)
        leaves += chunk.leaves
        for at, local in chunk.stacks_at.items():
            roots[at] = _fold(outer + local)
        size += chunk.count
        if number == len(chunks) - 1:
            outer = outer + chunk.stack
        elif len(chunk.stack) == 1:
            node, index = chunk.stack[0], number
            while index & 1:
                node = hashlib.sha256(b"\x01" + outer.pop() + node).digest()
                index >>= 1
            outer.append(node)
        else:
            raise ValueError("only the last chunk may be partial")
    report.size = size
    report.root = _fold(outer)
    if irregular:
        seqs = array("q", range(size))
        prevs = bytearray(bytes(32)) + leaves[: max(0, 32 * (size - 1))]
        for pos, (seq, prev_bytes) in irregular.items():
            seqs[pos] = seq
            prevs[32 * pos : 32 * pos + 32] = prev_bytes
        _check_order(report, seqs, leaves, prevs)
    _check_checkpoints(report, parsed, roots)
    return report


def verify_ledger(
    records: Iterable[tuple[bytes, bytes | None]],
    *,
    origin: str,
    verifiers: Sequence[NoteVerifier] = (),
    notes: Sequence[NoteInput],
    keys: KeyRing | None = None,
) -> LedgerVerification:
    """Verify a ledger given as ``(stored body, stored leaf hash or None)`` in stored order,
    against *verifiers* (any size) or *keys* (a :class:`KeyRing` with ranges)."""
    report, parsed = check_notes(notes, origin=origin, verifiers=verifiers, keys=keys)
    wanted = {cp.size for _, cp in parsed}
    scan = scan_chunk(records, start=0, prev_hex=b"0" * 64, wanted_sizes=wanted)
    return finish(report, parsed, [scan])


def _fold(stack: list[bytes]) -> bytes:
    if not stack:
        return merkle.EMPTY_ROOT
    acc = stack[-1]
    for left in reversed(stack[:-1]):
        acc = hashlib.sha256(b"\x01" + left + acc).digest()
    return acc


_HEX = frozenset(b"0123456789abcdef")


def _chain_fields(body: bytes) -> tuple[int | None, bytes | None]:
    """The top-level ``seq`` and ``prev`` (as hex bytes) of a canonical entry.

    Canonical key order puts ``prev`` and ``seq`` just before ``source``, and the
    ledger keeps ``source`` flat, so their last occurrences before the last
    ``,"source":{`` are the top-level ones; a key inside a string cannot match
    because its quotes would be escaped. Bodies that do not have this shape fall
    back to a full parse. Either way the Merkle root over the stored bytes, not
    these fields, is what a signed checkpoint is compared with.
    """
    src = body.rfind(b',"source":{')
    p = body.rfind(b',"prev":"', 0, src)
    q = body.rfind(b',"seq":', 0, src)
    if src > 0 and p > 0 and q > p and body[p + 73 : p + 82] == b'","raw":{':
        prev = body[p + 9 : p + 73]
        digits = body[q + 7 : src]
        if digits.isdigit() and (digits == b"0" or digits[:1] != b"0") and _HEX.issuperset(prev):
            return int(digits), prev
    try:
        doc = orjson.loads(body)
        seq = doc["seq"]
        prev_text = doc["prev"]
        if type(seq) is not int or type(prev_text) is not str or len(prev_text) != 64:
            return None, None
        bytes.fromhex(prev_text)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None, None
    return seq, prev_text.encode()


def _check_order(report: LedgerVerification, seqs: array, leaves: bytearray, prevs: bytearray) -> None:
    n = len(seqs)
    by_seq: dict[int, int] = {}
    out_of_place: list[int] = []
    for pos in range(n):
        s = seqs[pos]
        if s < 0:
            continue
        if s in by_seq:
            first = by_seq[s]
            same = leaves[32 * first : 32 * first + 32] == leaves[32 * pos : 32 * pos + 32]
            what = "an exact copy of" if same else "a second entry claiming the seq of"
            report.failures.append(Failure("entry-duplicated", f"position {pos} is {what} position {first}", seq=s))
            continue
        by_seq[s] = pos
        if s != pos:
            out_of_place.append(pos)
    present = set(by_seq)
    top = max(present) if present else -1
    missing = [s for s in range(top + 1) if s not in present]
    for s in missing:
        report.failures.append(Failure("entry-deleted", f"no entry with seq {s} (entries {s - 1} and {s + 1} are present)" if s else "no entry with seq 0", seq=s))
    if not missing and len(by_seq) == len([s for s in seqs if s >= 0]) and out_of_place:
        for pos in out_of_place:
            report.failures.append(
                Failure("entries-swapped", f"entry with seq {seqs[pos]} is stored at position {pos}", seq=seqs[pos])
            )
    elif missing and out_of_place:
        shifted = [pos for pos in out_of_place if seqs[pos] < pos]
        for pos in shifted:
            report.failures.append(
                Failure("entries-swapped", f"entry with seq {seqs[pos]} is stored at position {pos}", seq=seqs[pos])
            )
    # The chain: entry s must name the leaf hash of entry s - 1 (by seq, so one
    # reordering is reported once, not as a cascade of broken links).
    zero = bytes(32)
    for s, pos in by_seq.items():
        prev = prevs[32 * pos : 32 * pos + 32]
        if s == 0:
            if prev != zero:
                report.failures.append(Failure("entry-modified", "seq 0 must have prev = 64 zeros", seq=0))
            continue
        before = by_seq.get(s - 1)
        if before is None:
            continue
        if leaves[32 * before : 32 * before + 32] != prev:
            report.failures.append(
                Failure("entry-modified",
                        f"entry {s} names prev {bytes(prev).hex()[:16]}…, entry {s - 1} hashes to "
                        f"{bytes(leaves[32 * before : 32 * before + 32]).hex()[:16]}…: entry {s - 1} (or this link) changed",
                        seq=s - 1)
            )


def _check_checkpoints(
    report: LedgerVerification, parsed: list[tuple[NoteInput, Checkpoint]], roots: dict[int, bytes]
) -> None:
    signed_roots: dict[int, tuple[bytes, str]] = {}
    held: list[tuple[NoteInput, Checkpoint]] = []
    failed: dict[str, str] = {}  # note where -> failure code
    for note, cp in parsed:
        seen = signed_roots.get(cp.size)
        if seen is not None and seen[0] != cp.root:
            report.failures.append(
                Failure("fork", f"two signed roots for size {cp.size}: {seen[0].hex()} ({seen[1]}) and {cp.root.hex()}",
                        where=note.where)
            )
            failed[note.where] = "fork"
            continue
        signed_roots[cp.size] = (cp.root, note.where)
        if cp.size > report.size:
            code = "rolled-back" if note.saved else "truncated"
            report.failures.append(
                Failure(code, f"ledger has {report.size} entries but a signed checkpoint covers {cp.size}",
                        where=note.where)
            )
            failed[note.where] = code
            continue
        calculated = roots[cp.size]
        if calculated != cp.root:
            report.failures.append(
                Failure("root-mismatch",
                        f"entries 0..{cp.size - 1} hash to {calculated.hex()}, the checkpoint signed {cp.root.hex()}",
                        where=note.where)
            )
            failed[note.where] = "root-mismatch"
            continue
        held.append((note, cp))
    for note, cp in _without_broken_handovers(report, held, failed):
        report.checkpoints_valid.append(cp)
        report.newest_signed_size = max(report.newest_signed_size, cp.size)
        for key in report.vouched_by.get(note.where, ()):
            key.sizes.append(cp.size)
    if not report.checkpoints_valid and not any(f.code in ("fork", "root-mismatch", "truncated", "rolled-back") for f in report.failures):
        none_at_all = not parsed and not any(
            f.code in ("malformed-checkpoint", "unknown-signer", "wrong-origin", "bad-signature") for f in report.failures)
        hint = " (there is no checkpoint at all: the ledger's owner signs one with `fedledger checkpoint`)" if none_at_all else ""
        report.failures.append(Failure("no-trusted-checkpoint",
                                       "no checkpoint signed by a trusted key vouches for these entries" + hint))
        return
    # Fail closed: entries after every checkpoint a trusted key signed are vouched for by nothing
    # (anyone who can write to the ledger may have appended, altered or forged them). A tail that a
    # signed checkpoint covers but does not match is already root-mismatch, truncated or fork.
    signed = max(cp.size for _, cp in parsed) if parsed else 0
    if parsed and signed < report.size:
        report.failures.append(Failure(
            "not-checkpointed",
            f"entries {signed}..{report.size - 1} are not covered by any checkpoint signed by a trusted key: "
            "nothing vouches for them; sign one with `fedledger checkpoint`"))


def _without_broken_handovers(report: LedgerVerification, held: list[tuple[NoteInput, Checkpoint]],
                              failed: dict[str, str]) -> list[tuple[NoteInput, Checkpoint]]:
    """*held* without the checkpoints vouched for only by keys whose handover checkpoint failed.

    A key handed over to is trusted because its handover checkpoint holds: the old key signed it,
    and it matches the tree the old key's checkpoints cover. When that checkpoint is itself a
    ``root-mismatch``, ``fork``, ``truncated`` or ``rolled-back``, the new key's later checkpoints
    do not extend what the old key vouched for, and count for nothing (``bad-handover``); so, in
    turn, for the keys it handed over to."""
    ring = report.keys
    if ring is None:
        return held
    changed = True
    while changed:
        changed = False
        for where, code in list(failed.items()):
            changed |= bool(ring.void(where, f"its handover checkpoint ({where}) is {code}"))
        kept = []
        for note, cp in held:
            vouching = report.vouched_by.get(note.where, [])
            if vouching and all(key.void for key in vouching):
                reasons = "; ".join(f"key {key.key_id}, NOT accepted: {key.void}" for key in vouching)
                report.failures.append(Failure("bad-handover", f"size {cp.size} is vouched for only by {reasons}",
                                               where=note.where))
                failed[note.where] = "bad-handover"
                changed = True
            else:
                kept.append((note, cp))
        held = kept
    return held
