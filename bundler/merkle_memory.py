"""An in-memory RFC 9162 Merkle tree over a list of leaf hashes, for proving many entries at once.

Asking the SQLite ledger for one proof at a time costs O(log n) queries per entry;
a bundle citing hundreds of thousands of entries builds the perfect-subtree
levels once (about 2n hashes) and answers every proof from memory. Proofs are
the same bytes :func:`collector.merkle.inclusion_proof` defines; tests check that
against the ledger's own proofs.
"""

from __future__ import annotations

import hashlib

from collector import merkle


def _next_level(current: bytes) -> bytes:
    """Parents of the complete pairs of *current* (32-byte nodes)."""
    node_prefix = hashlib.sha256(b"\x01")
    view = memoryview(current)
    out = bytearray(32 * (len(current) // 64))
    for i in range(len(current) // 64):
        h = node_prefix.copy()
        h.update(view[64 * i : 64 * i + 64])
        out[32 * i : 32 * i + 32] = h.digest()
    return bytes(out)


class MemoryTree:
    """Perfect-subtree levels of a tree of ``len(leaves) // 32`` leaves.

    *levels*, if given, are levels 1..k already computed (e.g. by :mod:`bundler.export_hasher`
    in another process); the levels above are computed here.
    """

    def __init__(self, leaves: bytes | bytearray, levels: list[bytes] | None = None) -> None:
        if len(leaves) % 32:
            raise ValueError("leaf buffer is not a multiple of 32 bytes")
        self.size = len(leaves) // 32
        self.levels: list[bytes] = [bytes(leaves), *(levels or ())]
        for level, nodes in enumerate(self.levels):
            if len(nodes) != 32 * (self.size >> level):
                raise ValueError(f"level {level} holds {len(nodes) // 32} nodes, expected {self.size >> level}")
        current = self.levels[-1]
        while len(current) >= 64:
            current = _next_level(current)
            self.levels.append(current)
        self._partial: dict[tuple[int, int], bytes] = {}

    def leaf(self, index: int) -> bytes:
        return self.levels[0][32 * index : 32 * index + 32]

    def subtree_hash(self, start: int, end: int) -> bytes:
        n = end - start
        if n <= 0:
            raise ValueError("empty subtree")
        if n & (n - 1) == 0 and start % n == 0:
            level = n.bit_length() - 1
            idx = start >> level
            return self.levels[level][32 * idx : 32 * idx + 32]
        key = (start, end)
        cached = self._partial.get(key)
        if cached is None:
            k = merkle.split_point(n)
            cached = merkle.node_hash(self.subtree_hash(start, start + k), self.subtree_hash(start + k, end))
            self._partial[key] = cached
        return cached

    def root(self) -> bytes:
        return merkle.EMPTY_ROOT if self.size == 0 else self.subtree_hash(0, self.size)

    def inclusion_proof(self, index: int) -> list[bytes]:
        return merkle.inclusion_proof(index, self.size, self.subtree_hash)
