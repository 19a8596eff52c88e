"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs, as plain functions.

Verification functions take every input explicitly and raise :class:`ProofError`
carrying the evidence (expected vs calculated root). Proof *generation* takes a
``subtree_hash(start, end)`` callable so the storage decides how subtree hashes
are found (stored nodes, leaf ranges); nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from collector.errors import IntegrityError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(IntegrityError):
    """A proof does not verify; carries the expected and calculated roots when known."""

    def __init__(self, message: str, *, expected: bytes | None = None, calculated: bytes | None = None) -> None:
        self.expected = expected
        self.calculated = calculated
        if expected is not None and calculated is not None:
            message = f"{message}: expected root {expected.hex()}, calculated {calculated.hex()}"
        super().__init__(message)


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two strictly smaller than *size* (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves, computed bottom-up in O(n)."""
    if not hashes:
        return EMPTY_ROOT
    compact = CompactRange()
    for h in hashes:
        compact.append(h)
    return compact.root()


@dataclass
class CompactRange:
    """The right edge of a tree under construction: the roots of its perfect subtrees.

    ``append`` is amortised O(1); ``root`` is O(log n). ``on_node`` is told of every
    perfect subtree completed (level >= 1), so storage can keep the ones it wants.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)
    on_node: Callable[[int, int, bytes], None] | None = None

    def append(self, leaf: bytes) -> None:
        index = self.size
        self.hashes.append(leaf)
        self.size += 1
        level = 0
        while (index >> level) & 1:
            right = self.hashes.pop()
            left = self.hashes.pop()
            merged = node_hash(left, right)
            self.hashes.append(merged)
            level += 1
            if self.on_node is not None:
                self.on_node(level, index >> level, merged)

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            acc = node_hash(left, acc)
        return acc

    @staticmethod
    def perfect_subtrees(size: int) -> list[tuple[int, int]]:
        """(level, index) of the perfect subtrees that make up a tree of *size*, left to right."""
        out: list[tuple[int, int]] = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size & (1 << level):
                out.append((level, start >> level))
                start += 1 << level
        return out


SubtreeHash = Callable[[int, int], bytes]


def inclusion_proof(index: int, size: int, subtree_hash: SubtreeHash) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf-to-root order."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            proof.append(subtree_hash(start + k, end))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k))
            start = start + k
    proof.reverse()
    return proof


def consistency_proof(size1: int, size2: int, subtree_hash: SubtreeHash) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(size1, D[0:size2])."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"cannot prove consistency from size {size1} to {size2}")
    if size1 == 0 or size1 == size2:
        return []
    proof: list[bytes] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_hash(start, end))
            return
        k = split_point(n)
        if m <= k:
            subproof(m, start, start + k, complete)
            proof.append(subtree_hash(start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(subtree_hash(start, start + k))

    subproof(size1, 0, size2, True)
    return proof


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, want {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by *proof*; raises when the proof has the wrong shape."""
    if index < 0 or size <= 0 or index >= size:
        raise ProofError(f"leaf index {index} outside tree of size {size}")
    _check_hash("leaf hash", leaf)
    fn, sn, r = index, size - 1, leaf
    for step, p in enumerate(proof):
        _check_hash(f"proof[{step}]", p)
        if sn == 0:
            raise ProofError(f"inclusion proof has {len(proof)} hashes, more than the tree needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof has {len(proof)} hashes, fewer than the tree needs")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`ProofError` unless *leaf* is at *index* in the tree of *size* with *root*."""
    _check_hash("root", root)
    calculated = root_from_inclusion_proof(index, size, leaf, proof)
    if calculated != root:
        raise ProofError("inclusion proof does not lead to the root", expected=root, calculated=calculated)


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Raise :class:`ProofError` unless the tree (size2, root2) extends (size1, root1).

    RFC 9162 §2.1.4.2, with the edge cases of transparency-dev/merkle: equal sizes
    need an empty proof and equal roots; size1 = 0 is refused (it proves nothing).
    """
    if size1 < 1:
        raise ProofError("consistency with an empty tree proves nothing (size1 is 0)")
    if size2 < size1:
        raise ProofError(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == size2:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise ProofError("same size, different roots (a fork)", expected=root1, calculated=root2)
        return
    if not proof:
        raise ProofError("empty consistency proof")
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    for step, p in enumerate(proof):
        _check_hash(f"proof[{step}]", p)
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof has {len(proof)} hashes, more than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof has {len(proof)} hashes, fewer than needed")
    if fr != root1:
        raise ProofError("consistency proof does not lead to the old root", expected=root1, calculated=fr)
    if sr != root2:
        raise ProofError("consistency proof does not lead to the new root", expected=root2, calculated=sr)
