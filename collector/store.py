"""Content-addressed store for raw evidence bytes, keyed by SHA-256.

Objects are written to a temporary name, fsynced and renamed, so a killed run
leaves either a whole object or none. An object that is not (yet) referenced
from the ledger is harmless: the ledger's raw-object index is what counts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from collector.errors import IntegrityError, SourceUnavailable


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EvidenceStore:
    """A folder of objects at ``<root>/<aa>/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256_hex: str) -> Path:
        if len(sha256_hex) != 64 or not all(c in "0123456789abcdef" for c in sha256_hex):
            raise ValueError(f"not a sha256 hex digest: {sha256_hex[:80]!r}")
        return self.root / sha256_hex[:2] / sha256_hex

    def put(self, data: bytes) -> str:
        """Store *data*; return its SHA-256 hex. Idempotent."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target.exists():
            return digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{digest}.{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise SourceUnavailable(f"cannot write evidence object: {exc.strerror}", location=str(target)) from None
        return digest

    def get(self, sha256_hex: str) -> bytes:
        """The bytes of an object, checked against its name."""
        target = self.path_for(sha256_hex)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise SourceUnavailable("evidence object missing", location=str(target)) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256_hex:
            raise IntegrityError(f"evidence object altered: sha256 {actual}", location=str(target))
        return data

    def __contains__(self, sha256_hex: str) -> bool:
        return self.path_for(sha256_hex).exists()
