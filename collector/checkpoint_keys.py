"""Which key vouches for which tree sizes: pinned key ranges and key handovers (pure code).

fedledger signs a ledger's checkpoints under its origin as key name, so after a key rotation the
old and the new key differ only by key ID. Two things let a verifier follow a rotation from the
evidence itself, and keep a retired key from vouching for trees it never saw:

* **A handover checkpoint.** The new key's first checkpoint carries the extension line
  ``fedledger-key-handover <old key ID> <new verifier key>`` (C2SP tlog-checkpoint: extension
  lines are opaque to other readers) and two signature lines (C2SP signed-note), the new key's
  and the old key's. The old key's signature covers the new key's *whole* public key (the verifier
  key ``name+keyid+base64``), not only the 4-byte key ID a signature line names; the new key's
  signature on the same text shows its holder took part. A verifier that trusts the old key then
  trusts the new key for trees of the handover's size **and larger only**, and the old key for
  trees **up to** that size only: a retired key that leaks later vouches for nothing after it.
  A key accepted by handover can hand over in turn (a chain).
* **A pinned key range** (``KEYID:FIRST..LAST``, either end open, e.g. ``1a2b3c4d:..1200``): the
  assessor limits a pinned key to trees of those sizes, e.g. the size at which the provider said
  the key was retired.

A checkpoint counts only when a key whose range covers its size signed it (:meth:`KeyRing.verify`).
Which sizes a handover lets a key vouch for is decided here from the signed notes alone; whether the
checkpoints agree with one another (the handover extends the old key's checkpoints, the new key's
later ones extend the handover) is for the caller, who holds the tree: ``fedledger verify`` compares
every checkpoint with the roots it computes from the entries, ``verify-proof`` checks a consistency
proof from the handover (:func:`check_extends_handover`).

Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from collector import merkle
from collector.checkpoint import (
    BadSignature,
    Checkpoint,
    CheckpointError,
    MalformedCheckpoint,
    MAX_TREE_SIZE,
    NoteSignature,
    NoteVerifier,
    UnknownSigner,
    parse_checkpoint_body,
    parse_verifier_key,
    require_origin,
    signed_by,
    signer_names,
    split_note,
)
from collector.errors import FedledgerError, UsageError

HANDOVER_TAG = "fedledger-key-handover"
KEY_RANGE_SYNTAX = "KEYID:FIRST..LAST (a pinned key's 8-hex-digit ID, then tree sizes, either end open: " \
                   "1a2b3c4d:..1200, 9f8e7d6c:1200..)"
_KEY_RANGE = re.compile(r"([0-9a-fA-F]{8}):([0-9]{0,20})\.\.([0-9]{0,20})")


class KeyOutOfRange(CheckpointError):
    """Only keys whose range does not cover the checkpoint's size signed it (a retired key)."""

    code = "key-out-of-range"


class BadHandover(CheckpointError):
    """A checkpoint claims a key handover that does not hold."""

    code = "bad-handover"


@dataclass(frozen=True)
class KeyRange:
    """Tree sizes a pinned key may vouch for: *first* to *last* (None: no upper limit)."""

    key_id: bytes
    first: int = 0
    last: int | None = None

    def text(self) -> str:
        return sizes_text(self.first, self.last)


def sizes_text(first: int, last: int | None) -> str:
    """``..120``, ``120..`` or ``5..120``, as a key range is written."""
    return f"{first or ''}..{'' if last is None else last}"


def sizes_words(first: int, last: int | None) -> str:
    """'any tree size', 'tree sizes up to 120', 'tree sizes from 120 on' or 'tree sizes 5 to 120'."""
    if last is None:
        return "any tree size" if first == 0 else f"tree sizes from {first} on"
    return f"tree sizes up to {last}" if first == 0 else f"tree sizes {first} to {last}"


def parse_key_range(text: str, *, what: str = "--key-range") -> KeyRange:
    """A :class:`KeyRange` from ``KEYID:FIRST..LAST``; :class:`UsageError` (one line) when malformed.

    The form starts with a key ID and a colon and holds no slash, so it is never read as a path."""
    match = _KEY_RANGE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"{what} {text[:80]!r} is not {KEY_RANGE_SYNTAX}")
    key_hex, first_text, last_text = match.groups()
    if not first_text and not last_text:
        raise UsageError(f"{what} {text[:80]!r} limits nothing: give FIRST, LAST or both, e.g. {key_hex.lower()}:..1200")
    first = int(first_text) if first_text else 0
    last = int(last_text) if last_text else None
    if first > MAX_TREE_SIZE or (last is not None and last > MAX_TREE_SIZE):
        raise UsageError(f"{what} {text[:80]!r}: a tree size is at most 2^64 - 1")
    if last is not None and first > last:
        raise UsageError(f"{what} {text[:80]!r}: FIRST {first} is larger than LAST {last}")
    return KeyRange(bytes.fromhex(key_hex.lower()), first, last)


@dataclass(frozen=True)
class Handover:
    """A checkpoint's statement that the key *old_key_id* hands the ledger over to *new*."""

    old_key_id: bytes
    new: NoteVerifier


def handover_line(old: NoteVerifier, new: NoteVerifier) -> str:
    """The extension line of a handover checkpoint from *old* to *new*."""
    return f"{HANDOVER_TAG} {old.key_id.hex()} {new.vkey()}"


def read_handover(checkpoint: Checkpoint) -> Handover | None:
    """The handover a checkpoint's extension lines state, None when there is none.

    :class:`MalformedCheckpoint` for a handover line that cannot be read, or more than one."""
    lines = [line for line in checkpoint.extensions if line.split(" ", 1)[0] == HANDOVER_TAG]
    if not lines:
        return None
    if len(lines) > 1:
        raise MalformedCheckpoint(f"checkpoint has {len(lines)} key handover lines; a handover names one new key")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise MalformedCheckpoint(f"key handover line is not '{HANDOVER_TAG} <old key ID> <new verifier key>'")
    try:
        new = parse_verifier_key(parts[2], default_name=checkpoint.origin)
    except FedledgerError as exc:
        raise MalformedCheckpoint(f"key handover line: {exc}") from None
    return Handover(bytes.fromhex(parts[1]), new)


def note_handover(note: str) -> Handover | None:
    """The handover a signed note states (its signatures not checked), None when none or unreadable."""
    try:
        return read_handover(parse_checkpoint_body(split_note(note)[0]))
    except CheckpointError:
        return None


@dataclass(eq=False)  # identity: one object per key, mutated as handovers are followed
class TrustedKey:
    """A key a verifier trusts, for trees of sizes *first*..*last*, and what it vouched for."""

    verifier: NoteVerifier
    first: int = 0
    last: int | None = None
    pinned: bool = False  # given by the verifier's user (else accepted by a handover)
    label: str = ""  # where the pinned key came from (a file), for the report
    pinned_range: bool = False  # *first*/*last* were set by the verifier's user (--key-range)
    handover_from: bytes | None = None  # key ID of the key that handed over to this one
    handover_where: str | None = None  # that handover checkpoint
    retired_where: str | None = None  # the handover checkpoint by which this key handed over
    retired_to: bytes | None = None  # ... and to which key
    void: str | None = None  # why its handover does not hold after all (see KeyRing.void)
    sizes: list[int] = field(default_factory=list)  # sizes of the valid checkpoints it vouched for

    @property
    def key_id(self) -> str:
        return self.verifier.key_id.hex()

    def covers(self, size: int) -> bool:
        return self.void is None and self.first <= size and (self.last is None or size <= self.last)

    def why_range(self) -> str:
        """Why the key vouches for only these sizes, e.g. 'retired at its handover to key 9f8e7d6c (checkpoint #4)'."""
        reasons = []
        if self.pinned_range:
            reasons.append("pinned with --key-range")
        if self.handover_from is not None:
            reasons.append(f"accepted by handover from key {self.handover_from.hex()} ({self.handover_where})")
        if self.retired_to is not None:
            reasons.append(f"retired at its handover to key {self.retired_to.hex()} ({self.retired_where})")
        return "; ".join(reasons)

    def describe(self) -> str:
        """One report line: how the key is trusted, for which sizes, and what it vouched for."""
        if self.pinned:
            how = f"pinned ({self.label or 'given'})" + (
                f", also handed over to by key {self.handover_from.hex()} ({self.handover_where})"
                if self.handover_from is not None else "")
        else:
            how = (f"{'named by a' if self.void else 'accepted by'} handover from key "
                   f"{self.handover_from.hex() if self.handover_from else '?'} at size {self.first} ({self.handover_where})")
        text = f"key {self.key_id} {how}: vouches for {sizes_words(self.first, self.last)}"
        if self.pinned_range:
            text += " (--key-range)"
        if self.retired_to is not None:
            text += f", retired at its handover to key {self.retired_to.hex()} ({self.retired_where})"
        if self.void is not None:
            return f"key {self.key_id} {how}, NOT accepted: {self.void}"
        if self.sizes:
            low, high = min(self.sizes), max(self.sizes)
            text += f"; vouched for {len(self.sizes)} checkpoint(s), " + (
                f"size {low}" if low == high else f"sizes {low} to {high}")
        else:
            text += "; vouched for no checkpoint"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "key_id": self.key_id, "name": self.verifier.name, "vkey": self.verifier.vkey(),
            "accepted": "pinned" if self.pinned else "handover",
            "label": self.label or None, "first_size": self.first, "last_size": self.last,
            "range_pinned": self.pinned_range,
            "handover_from": self.handover_from.hex() if self.handover_from is not None else None,
            "handover_checkpoint": self.handover_where,
            "retired_to": self.retired_to.hex() if self.retired_to is not None else None,
            "retired_by_checkpoint": self.retired_where,
            "void": self.void, "vouched_sizes": sorted(self.sizes),
        }


@dataclass(frozen=True)
class HandoverOutcome:
    """What :meth:`KeyRing.follow_handovers` made of the handover lines it read."""

    accepted: dict[str, TrustedKey]  # where -> the key the handover checkpoint there made trusted
    failures: dict[str, str]  # where -> why its handover does not count (a failure of the note)
    hints: dict[str, str]  # where -> a handover that could not be judged (from a key not trusted)
    stated: dict[str, Handover]  # where -> the handover its note states, whatever became of it


class KeyRing:
    """The keys a verifier trusts and the tree sizes each may vouch for.

    Made from the pinned keys (and their :class:`KeyRange` limits); :meth:`follow_handovers` adds
    the keys that trusted keys handed over to, and retires those that handed over."""

    def __init__(self, pinned: Sequence[NoteVerifier], ranges: Sequence[KeyRange] = (),
                 labels: Sequence[str] = ()) -> None:
        self.keys: list[TrustedKey] = []
        for number, verifier in enumerate(pinned):
            same = self.find(verifier.name, verifier.key_id)
            if same is None:
                self.keys.append(TrustedKey(verifier, pinned=True,
                                            label=labels[number] if number < len(labels) else ""))
            elif same.verifier.vkey() != verifier.vkey():  # a signature line names a key by name and ID alone
                raise UsageError(f"two pinned keys are both named {verifier.name!r} with key ID {verifier.key_id.hex()} "
                                 "but are different keys: a signature could not say which one signed; pin one")
        limited: set[bytes] = set()
        for limit in ranges:
            matching = [key for key in self.keys if key.verifier.key_id == limit.key_id]
            if not matching:
                pinned_ids = ", ".join(key.key_id for key in self.keys) or "none"
                raise UsageError(f"--key-range {limit.key_id.hex()}:{limit.text()} names no pinned key "
                                 f"(pinned key IDs: {pinned_ids}); pin it with --trusted-key")
            if limit.key_id in limited:
                raise UsageError(f"--key-range is given twice for key {limit.key_id.hex()}: give one range per key")
            limited.add(limit.key_id)
            for key in matching:
                key.first, key.last, key.pinned_range = limit.first, limit.last, True

    @property
    def verifiers(self) -> list[NoteVerifier]:
        return [key.verifier for key in self.keys]

    @property
    def noteworthy(self) -> bool:
        """Whether a report should say which key vouched for what: more than one key, a range or a handover."""
        return len(self.keys) > 1 or any(key.pinned_range or key.retired_to or key.handover_from for key in self.keys)

    def find(self, name: str, key_id: bytes) -> TrustedKey | None:
        for key in self.keys:
            if key.verifier.name == name and key.verifier.key_id == key_id:
                return key
        return None

    def _trusted_for(self, verifier: NoteVerifier) -> TrustedKey:
        key = self.find(verifier.name, verifier.key_id)
        assert key is not None  # signed_by returns only the ring's own verifiers
        return key

    # -- judging one note --------------------------------------------------------------------
    def vouching(self, message: bytes, sigs: Sequence[NoteSignature], size: int | None) -> list[TrustedKey]:
        """The keys whose signature verifies over *message* and whose range covers *size* (None:
        any size). :class:`BadSignature` when a trusted key's signature fails; :class:`BadHandover`
        when every trusted signature is by a key whose handover does not hold (:meth:`void`);
        :class:`KeyOutOfRange` when every trusted signature is by a key that may not vouch for *size*; :class:`UnknownSigner`
        when no trusted key signed."""
        signers = [self._trusted_for(v) for v in signed_by(message, sigs, self.verifiers)]
        if not signers:
            raise UnknownSigner(f"no signature by a trusted key (signed by: {signer_names(sigs)})")
        good = [key for key in signers if size is None or key.covers(size)]
        if not good and all(key.void for key in signers):
            raise BadHandover(f"size {size} is vouched for only by " + "; ".join(
                f"key {key.key_id}, NOT accepted: {key.void}" for key in dict.fromkeys(signers)))
        if not good:
            raise KeyOutOfRange(f"size {size} is signed only by " + "; ".join(
                f"key {key.key_id}, which may vouch for {sizes_words(key.first, key.last)}"
                + (f" ({key.why_range()})" if key.why_range() else "")
                + (f" and is NOT accepted: {key.void}" if key.void else "")
                for key in dict.fromkeys(signers)) + ": its signature does not count for this size")
        return list(dict.fromkeys(good))  # a key that signed twice, once

    def verify(self, note: str, *, origin: str) -> tuple[Checkpoint, list[TrustedKey]]:
        """Verify a signed checkpoint: shape, origin, and a signature by a trusted key whose range
        covers the checkpoint's size (see :func:`collector.checkpoint.verify_checkpoint`, which this
        extends with ranges). Returns the checkpoint and the keys that vouch for it.

        A note with a ``fedledger-key-handover`` line that cannot be read (two of them, a bad
        verifier key) is :class:`MalformedCheckpoint`: its signer said it hands over, so it does
        not count as an ordinary checkpoint that keeps the old key trusted for larger trees."""
        body, sigs = split_note(note)
        checkpoint = parse_checkpoint_body(body)
        read_handover(checkpoint)
        keys = self.vouching(body.encode(), sigs, checkpoint.size)
        require_origin(checkpoint, origin)
        return checkpoint, keys

    # -- following handovers -----------------------------------------------------------------
    def follow_handovers(self, notes: Iterable[tuple[str, str]], *, origin: str) -> HandoverOutcome:
        """Accept the handovers that trusted keys signed among *notes* (``(where, text)``), smallest
        tree size first, so a chain (A to B, then B to C) is followed and the earliest handover by a
        key is the one that retires it; a key that signed handovers to two keys equivocated, and neither
        counts (both are failures, the keys they made trusted void). Following the same notes again
        changes nothing.

        A handover counts when the key handing over (named by the line, trusted, its range covering
        the size) and the new key (the line's verifier key) both signed the note. Notes that are not
        well-formed, or whose trusted signatures fail, are left to :meth:`verify` to report."""
        found: list[tuple[int, str, bytes, list[NoteSignature], Handover]] = []
        for where, text in notes:
            try:
                body, sigs = split_note(text)
                checkpoint = parse_checkpoint_body(body)
                handover = read_handover(checkpoint)
            except CheckpointError:
                continue
            if handover is not None and checkpoint.origin == origin:
                found.append((checkpoint.size, where, body.encode(), sigs, handover))
        accepted: dict[str, TrustedKey] = {}
        failures: dict[str, str] = {}
        hints: dict[str, str] = {}
        stated = {where: handover for _size, where, _message, _sigs, handover in found}
        # Smallest size first; at one size, in the order given (a ledger's notes by id), never by name
        # ('checkpoint #10' sorts before 'checkpoint #9'). A handover from a key not trusted yet waits:
        # a chain at one size (A to B, B to C) listed newest first is followed on the next pass.
        pending = sorted(found, key=lambda item: item[0])
        while pending:
            waiting = []
            followed = len(accepted)
            for item in pending:
                if self._judge(item, accepted, failures, hints):
                    waiting.append(item)
            if len(accepted) == followed:
                break
            pending = waiting
        return HandoverOutcome(accepted, failures, hints, stated)

    def _judge(self, item: tuple[int, str, bytes, list[NoteSignature], Handover], accepted: dict[str, TrustedKey],
               failures: dict[str, str], hints: dict[str, str]) -> bool:
        """Follow one handover note (see :meth:`follow_handovers`) into *accepted*, *failures* or
        *hints*; True when it waits for its old key to become trusted."""
        size, where, message, sigs, handover = item
        hints.pop(where, None)
        old_sigs = [sig for sig in sigs if sig.key_id == handover.old_key_id]
        olds = [key for sig in old_sigs if (key := self.find(sig.name, sig.key_id)) is not None]
        to = f"key {handover.new.key_id.hex()}"
        if not olds:
            if old_sigs:
                hints[where] = (f"it hands over from key {handover.old_key_id.hex()} to {to} at size {size}; "
                                "neither key is pinned")
                return True
            failures[where] = (f"its handover line names key {handover.old_key_id.hex()} as handing over to "
                               f"{to}, but that key did not sign it")
            return False
        old = olds[0]
        try:
            if not signed_by(message, sigs, [old.verifier]):
                return False
        except BadSignature:
            return False  # reported by verify as bad-signature
        if handover.new.key_id == old.verifier.key_id:
            failures[where] = f"key {old.key_id} hands over to itself"
            return False
        new_key = self.find(handover.new.name, handover.new.key_id)
        if old.retired_to == handover.new.key_id:
            return False  # the same handover again (a copy of the note, e.g. an anchored one): nothing new
        if old.retired_to is not None and old.retired_to != handover.new.key_id:
            # The key signed two handovers to two keys: it equivocated (a leaked key forging a handover to
            # a key of its own looks the same as its owner's), so neither counts and the key stays retired.
            first = old.retired_where or "?"
            reason = (f"key {old.key_id} handed over twice: to key {old.retired_to.hex()} ({first}) and to {to} "
                      f"({where}, size {size}); a key that signs two handovers may have leaked, so neither counts")
            failures[where] = reason
            failures[first] = reason
            accepted.pop(first, None)
            self.void(first, reason)
            return False
        if not old.covers(size):  # e.g. a retired key, at a larger size
            failures[where] = (f"key {old.key_id} may vouch for {sizes_words(old.first, old.last)}"
                               + (f" ({old.why_range()})" if old.why_range() else "")
                               + f", so its handover to {to} at size {size} does not count")
            return False
        try:
            new_signed = signed_by(message, sigs, [handover.new])
        except BadSignature:
            new_signed = []
        if not new_signed:
            failures[where] = (f"the handover from key {old.key_id} to {to} at size {size} is not signed by {to}: "
                               "a handover checkpoint carries the signatures of both keys")
            return False
        if new_key is None:
            new_key = TrustedKey(handover.new, first=size, handover_from=old.verifier.key_id, handover_where=where)
            self.keys.append(new_key)
        elif new_key.handover_from is None:  # pinned as well: keep the pinned range, note the handover
            new_key.handover_from, new_key.handover_where = old.verifier.key_id, where
        old.last = size if old.last is None else min(old.last, size)
        old.retired_where, old.retired_to = where, handover.new.key_id
        accepted[where] = new_key
        return False

    def void(self, handover_where: str, reason: str) -> list[TrustedKey]:
        """Withdraw the keys a handover checkpoint made trusted, because that checkpoint does not hold
        (e.g. it does not match the ledger), and the keys they handed over to in turn. Returns them."""
        withdrawn: list[TrustedKey] = []
        for key in self.keys:
            if key.handover_where == handover_where and key.void is None and not key.pinned:
                key.void = reason
                withdrawn.append(key)
                if key.retired_where is not None:
                    withdrawn += self.void(key.retired_where, f"it was accepted by a handover from key {key.key_id}, "
                                                              f"whose own handover does not hold ({reason})")
        return withdrawn

    def describe(self) -> list[str]:
        return [key.describe() for key in self.keys]

    def to_json(self) -> list[dict[str, object]]:
        return [key.to_json() for key in self.keys]


def check_extends_handover(handover_size: int, handover_root: bytes, size: int, root: bytes,
                           proof: Sequence[bytes]) -> None:
    """:class:`BadHandover` unless the tree (*size*, *root*) extends the handover checkpoint
    (*handover_size*, *handover_root*) by the consistency *proof* (RFC 9162 §2.1.4)."""
    if size < handover_size:
        raise BadHandover(f"the checkpoint of size {size} is older than the handover at size {handover_size}")
    if handover_size == 0:  # every tree extends the empty one
        if handover_root != merkle.EMPTY_ROOT:
            raise BadHandover(f"the handover at size 0 signs {handover_root.hex()}, not the empty tree's root")
        return
    if size == handover_size:
        if root != handover_root:
            raise BadHandover(f"two roots for size {size}: the handover's {handover_root.hex()} and {root.hex()}")
        return
    try:
        merkle.verify_consistency(handover_size, size, list(proof), handover_root, root)
    except merkle.ProofError as exc:
        raise BadHandover(f"size {size} does not extend the handover checkpoint at size {handover_size}: {exc}") from None


@dataclass(frozen=True)
class ProofHandover:
    """A handover checkpoint carried by a proof, with a consistency proof from it to the proof's tree."""

    note: str
    consistency: tuple[bytes, ...]


def follow_proof_handovers(ring: KeyRing, handovers: Sequence[ProofHandover], *, origin: str, size: int,
                           root: bytes) -> list[str]:
    """Follow the handovers a proof carries (``fedledger prove`` adds those the ledger holds up to the
    proof's tree size) into *ring*, smallest size first whatever their order, each only if the
    proof's tree (*size*, *root*: not yet trusted; the caller verifies its checkpoint under *ring*
    afterwards) extends the handover checkpoint by its consistency proof. Returns one report line
    per handover followed.

    :class:`BadHandover` when a handover a trusted key signed does not hold (not signed by the new
    key, out of the old key's range, or the tree does not extend it); a handover from a key not
    trusted is passed over."""
    named = {f"handover #{number + 1}": handover for number, handover in enumerate(handovers)}
    outcome = ring.follow_handovers(((where, h.note) for where, h in named.items()), origin=origin)
    for where, reason in sorted(outcome.failures.items()):
        raise BadHandover(f"{where}: {reason}")
    lines = []
    for where, key in sorted(outcome.accepted.items(), key=lambda item: item[1].first):
        checkpoint, _vouching = ring.verify(named[where].note, origin=origin)
        try:
            check_extends_handover(checkpoint.size, checkpoint.root, size, root, named[where].consistency)
        except BadHandover as exc:
            ring.void(where, str(exc))
            raise BadHandover(f"{where}: key {key.key_id} is not accepted: {exc}") from None
        lines.append(f"key {key.key_id} accepted by handover from key "
                     f"{key.handover_from.hex() if key.handover_from else '?'} at size {checkpoint.size}"
                     f"; size {size} extends it (consistency proof)")
    return lines
