"""Export the ledger slice and scan its bytes, in a fresh process that runs beside evaluation.

The scan needs nothing from the assessment: leaf hashes (re-computed from the
exported bytes), the chain (``seq`` and ``prev`` of every entry), counts of event
kinds for the verification transcript, and the byte offset of every line so the
bundler can later read just the entries an assessment cites. Running it in its
own process (``python -m bundler.ledger_slice``) uses the second core while the
caller evaluates on the first.

Results are handed back as files in a private folder: ``leaves.bin`` (32 bytes
per entry), ``offsets.bin`` (int64 line starts, one more than entries) and
``scan.json``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

ZERO = bytes(32)


@dataclass
class SliceScan:
    size: int
    leaves: bytes
    offsets: array  # type: ignore[type-arg]
    kinds: Counter[str] = field(default_factory=Counter)
    oidc_verified: int = 0
    oidc_failed: int = 0
    chain_breaks: list[int] = field(default_factory=list)
    export_files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # how long the export and scan took in their process


def export_and_scan(ledger_path: Path | str, folder: Path) -> SliceScan:
    """Export the ledger to *folder* and scan the exported bytes (not the database's)."""
    from collector.export import export_ledger
    from collector.ledger_open import open_ledger

    with open_ledger(ledger_path) as ledger:
        manifest = export_ledger(ledger, folder)
    files: dict[str, str] = manifest["files"]  # type: ignore[assignment]
    return scan_entries(folder / "entries.jsonl", files)


def scan_entries(path: Path, export_files: dict[str, str]) -> SliceScan:
    leaves = bytearray()
    offsets = array("q")
    kinds: Counter[str] = Counter()
    oidc = [0, 0]
    breaks: list[int] = []
    previous = ZERO
    sha = hashlib.sha256
    loads = orjson.loads
    position = 0
    offset = 0
    with open(path, "rb") as handle:
        for line in handle:
            offsets.append(offset)
            offset += len(line)
            body = line[:-1] if line.endswith(b"\n") else line
            leaf = sha(b"\x00" + body).digest()
            leaves += leaf
            try:
                doc = loads(body)
                prev = bytes.fromhex(doc.get("prev", ""))
            except (orjson.JSONDecodeError, ValueError, AttributeError):
                doc, prev = {}, b""
            if doc.get("seq") != position or prev != previous:
                breaks.append(position)
            previous = leaf
            event = doc.get("event") or {}
            kind = event.get("kind") or "?"
            kinds[kind] += 1
            if kind == "ci.oidc_token":
                oidc[0 if (event.get("attrs") or {}).get("verified") else 1] += 1
            position += 1
    offsets.append(offset)
    return SliceScan(position, bytes(leaves), offsets, kinds, oidc[0], oidc[1], breaks, dict(export_files))


def _write(scan: SliceScan, folder: Path) -> None:
    (folder / "leaves.bin").write_bytes(scan.leaves)
    (folder / "offsets.bin").write_bytes(scan.offsets.tobytes())
    (folder / "scan.json").write_bytes(orjson.dumps({
        "size": scan.size, "kinds": dict(scan.kinds), "oidc_verified": scan.oidc_verified,
        "oidc_failed": scan.oidc_failed, "chain_breaks": scan.chain_breaks[:1000],
        "export_files": scan.export_files, "seconds": scan.seconds,
    }))


def _read(folder: Path) -> SliceScan:
    doc = orjson.loads((folder / "scan.json").read_bytes())
    offsets = array("q")
    offsets.frombytes((folder / "offsets.bin").read_bytes())
    return SliceScan(doc["size"], (folder / "leaves.bin").read_bytes(), offsets, Counter(doc["kinds"]),
                     doc["oidc_verified"], doc["oidc_failed"], doc["chain_breaks"], doc["export_files"],
                     doc.get("seconds", 0.0))


class SliceJob:
    """``export_and_scan`` in a fresh process; :meth:`result` waits for it."""

    def __init__(self, ledger_path: Path | str, folder: Path) -> None:
        self._work = Path(tempfile.mkdtemp(prefix="fedledger-slice-"))
        root = str(Path(__file__).resolve().parent.parent)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bundler.ledger_slice", str(ledger_path), str(folder), str(self._work)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")},
        )

    def result(self) -> SliceScan:
        _, err = self._proc.communicate()
        try:
            if self._proc.returncode != 0:
                lines = err.decode("utf-8", "replace").strip().splitlines()
                raise RuntimeError(f"ledger export failed: {lines[-1] if lines else self._proc.returncode}")
            return _read(self._work)
        finally:
            self._cleanup()

    def cancel(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        import shutil

        shutil.rmtree(self._work, ignore_errors=True)


def _main(argv: list[str]) -> int:
    import time

    from collector.ledger_open import ledger_location

    folder, work = Path(argv[1]), Path(argv[2])
    started = time.perf_counter()
    scan = export_and_scan(ledger_location(argv[0]), folder)
    scan.seconds = time.perf_counter() - started
    _write(scan, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
