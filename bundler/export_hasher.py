"""Hash the bundle's ledger export from its bytes on disk: leaf hashes, Merkle levels, file SHA-256.

The bundler's pass (:mod:`bundler.ledger_slice`) writes ``entries.jsonl`` (and the
child's part file beside it) without hashing. This step re-reads the exported
bytes, appends the part file, and computes the RFC 9162 leaf hash of every line,
every level of the Merkle tree over them, and the SHA-256 of the whole file. The
bundle's root check and chain check then speak of the exported bytes themselves.

It runs in a process of its own (``python -m bundler.export_hasher``, standard
library and :mod:`bundler.merkle_memory` only, so it starts in a few tens of
milliseconds) while the bundler evaluates: SHA-256 of short lines holds the GIL,
so a thread would not run beside evaluation.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from bundler.merkle_memory import MemoryTree

_BLOCK = 1 << 22


@dataclass
class ExportHashes:
    sha256: str  # of the whole entries.jsonl
    leaves: bytes  # 32 bytes per line
    levels: list[bytes]  # Merkle levels 1.. over the leaves (see MemoryTree)


def hash_export(entries: Path, part: Path | None = None) -> ExportHashes:
    """Append *part* (if given) to *entries*; hash every line of the result and the whole file.

    Lines are split at ``\\n``; a last line without one is hashed too, and an empty line is
    a line: any byte that is not an entry's own changes the leaves, so the root check fails."""
    digest = hashlib.sha256()
    prefix = hashlib.sha256(b"\x00")
    leaves: list[bytes] = []
    add = leaves.append
    carry = b""

    def take(block: bytes) -> None:
        nonlocal carry
        lines = (carry + block).split(b"\n") if carry else block.split(b"\n")
        carry = lines.pop()
        for line in lines:
            h = prefix.copy()
            h.update(line)
            add(h.digest())

    with open(entries, "r+b") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            take(block)
        if part is not None:
            with open(part, "rb") as source:
                for block in iter(lambda: source.read(_BLOCK), b""):
                    handle.write(block)
                    digest.update(block)
                    take(block)
    if carry:
        h = prefix.copy()
        h.update(carry)
        add(h.digest())
    joined = b"".join(leaves)
    return ExportHashes(digest.hexdigest(), joined, MemoryTree(joined).levels[1:])


def write_hashes(hashes: ExportHashes, folder: Path) -> None:
    (folder / "sha256.txt").write_text(hashes.sha256, encoding="ascii")
    (folder / "leaves.bin").write_bytes(hashes.leaves)
    (folder / "levels.bin").write_bytes(b"".join(hashes.levels))


def read_hashes(folder: Path) -> ExportHashes:
    leaves = (folder / "leaves.bin").read_bytes()
    joined = (folder / "levels.bin").read_bytes()
    size = len(leaves) // 32
    levels = []
    at, level = 0, 1
    while size >> level:
        width = 32 * (size >> level)
        levels.append(joined[at : at + width])
        at += width
        level += 1
    return ExportHashes((folder / "sha256.txt").read_text(encoding="ascii"), leaves, levels)


def _main(argv: list[str]) -> int:
    """``ENTRIES PART|- OUT``: hash (and append PART to) ENTRIES; results in the folder OUT."""
    import os

    if hasattr(os, "nice"):
        os.nice(10)  # off the critical path: evaluation and the PDF workers' start-up go first
    entries, part, out = Path(argv[0]), argv[1], Path(argv[2])
    write_hashes(hash_export(entries, None if part == "-" else Path(part)), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
