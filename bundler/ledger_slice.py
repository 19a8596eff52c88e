"""One pass over the ledger's entries that exports, scans and reads them for evaluation.

Every entry is read from the ledger once. Its stored bytes are written to the
export's ``entries.jsonl``, its ``seq`` and ``prev`` are kept for the chain check,
its event kind is counted for the verification transcript, and the same parsed
object becomes a row of the evaluation table (:mod:`bundler.evidence_table`).
Nothing is parsed twice.

The pass is split by sequence range: this process reads ``[0, split)`` while a
fresh child process (``python -m bundler.ledger_slice``) reads ``[split, size)``
on the other core, writes its lines to a part file, and hands back compact
results (line lengths, prev links, counts, the table's column chunks) in one
pickle. Then, while the caller evaluates, a third small process
(:mod:`bundler.export_hasher`) appends the part file to ``entries.jsonl`` and
hashes the exported bytes: every line's leaf hash, the Merkle levels and the
file's SHA-256. :meth:`LedgerPass.wait_export` collects them, checks every
``prev`` link against the leaf hashes and writes the rest of the export
(checkpoints, keys, manifest).

Below :data:`MIN_SPLIT_SIZE` entries the child costs more than it saves: this
process reads everything and hashes the export itself.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from bundler.evidence_table import TableReading, read_rows, token_verified
from bundler.process_stats import peak_rss_mb

ZERO = bytes(32)
MIN_SPLIT_SIZE = 1 << 17  # below this, one process reads everything
# The child pays its start-up (interpreter, pandas), about what reading this many entries
# costs, and then pickles what it read, so it gets a bit less than half of the rest.
CHILD_HANDICAP = 50_000
CHILD_SHARE = 0.45
_WRITE_BATCH = 2048  # lines joined per write and hash update


@dataclass
class SlicePart:
    """What one process's pass over entries ``[start, end)`` found."""

    start: int
    end: int
    lengths: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]  # entry lengths (lines less the newline)
    prevs: bytes = b""  # each entry's prev link, 32 bytes (zeros where it was unreadable: see chain_breaks)
    kinds: Counter[str] = field(default_factory=Counter)
    oidc_verified: int = 0
    oidc_failed: int = 0
    chain_breaks: list[int] = field(default_factory=list)  # seq not its position, or prev unreadable
    reading: TableReading = field(default_factory=TableReading)
    seconds: float = 0.0
    peak_rss_mb: int = 0  # of the child process that read it (0 when this process did)


@dataclass
class SliceScan:
    """The whole pass: line offsets, counts, and (after :meth:`LedgerPass.wait_export`) the
    export's file hashes, leaf hashes, Merkle levels and chain check."""

    size: int
    leaves: bytes
    offsets: array  # type: ignore[type-arg]  # int64 line starts in entries.jsonl, one more than entries
    kinds: Counter[str] = field(default_factory=Counter)
    oidc_verified: int = 0
    oidc_failed: int = 0
    chain_breaks: list[int] = field(default_factory=list)
    export_files: dict[str, str] = field(default_factory=dict)
    levels: list[bytes] = field(default_factory=list)  # Merkle levels 1.. over the leaves
    prevs: bytes = b""  # every entry's prev link (see SlicePart), checked against the leaves by wait_export
    seconds: dict[str, float] = field(default_factory=dict)
    child_peak_rss_mb: int = 0


def read_part(ledger: Any, start: int, end: int, handle: IO[bytes],
              location_families: frozenset[str] = frozenset()) -> SlicePart:
    """Entries ``[start, end)``: write each stored body and a newline to *handle*, keep its
    seq and prev for the chain check, count it and read it into table rows (keeping
    ``source.location`` for *location_families*, see :func:`bundler.evidence_table.read_rows`)."""
    clock = time.perf_counter()
    part = SlicePart(start, end)
    seqs: list[Any] = []
    prevs: list[Any] = []
    kinds: list[Any] = []
    oidc = [0, 0]
    write = handle.write
    pending: list[bytes] = []
    lengths = part.lengths

    def flush() -> None:
        chunk = b"\n".join(pending) + b"\n"
        lengths.extend(map(len, pending))
        pending.clear()
        write(chunk)

    def triples() -> Iterator[tuple[int, Any, Any]]:
        # Kept lean, it runs once per entry: the chain and the kinds are checked after the loop.
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        dict_type = dict
        empty: dict[str, Any] = {}
        batch = _WRITE_BATCH
        add_pending, add_seq, add_prev, add_kind = pending.append, seqs.append, prevs.append, kinds.append
        for seq, _stored_leaf, body in ledger.entries(start, end):
            add_pending(body)
            if len(pending) >= batch:
                flush()
            try:
                doc = loads(body)
            except decode_error:
                doc = empty
            if doc.__class__ is not dict_type:
                doc = empty
            add_seq(doc.get("seq"))
            add_prev(doc.get("prev"))
            event = doc.get("event") or empty
            if event.__class__ is not dict_type:
                event = empty
            kind = event.get("kind")
            add_kind(kind)
            if kind == "ci.oidc_token":
                oidc[0 if token_verified(event) else 1] += 1
            yield seq, event, doc.get("source") or empty

    read_rows(triples(), part.reading, location_families)
    if pending:
        flush()
    if len(seqs) != end - start:
        raise RuntimeError(f"the ledger returned {len(seqs)} entries for [{start}, {end})")
    part.prevs, part.chain_breaks = _links(start, seqs, prevs)
    part.kinds = _kind_counts(kinds)
    part.oidc_verified, part.oidc_failed = oidc
    part.seconds = time.perf_counter() - clock
    return part


def _prev_bytes(prev: Any) -> bytes | None:
    try:
        link = bytes.fromhex(prev)
    except (TypeError, ValueError):
        return None
    return link if len(link) == 32 else None


def _links(start: int, seqs: list[Any], prevs: list[Any]) -> tuple[bytes, list[int]]:
    """Every entry's prev link as 32 bytes, and the seqs whose ``seq`` is not their position
    or whose ``prev`` is not 32 bytes of hex (their link is stored as zeros). One conversion
    of the whole list when every link is readable; entry by entry only when one is not."""
    breaks: list[int] = []
    if seqs != list(range(start, start + len(seqs))):
        breaks = [start + i for i, seq in enumerate(seqs) if seq != start + i]
    try:
        linked = bytes.fromhex("".join(prevs))
    except (TypeError, ValueError):
        linked = b""
    if len(linked) == 32 * len(prevs) and all(p.__class__ is str and len(p) == 64 for p in prevs):
        return linked, breaks
    parts = []
    for i, prev in enumerate(prevs):
        link = _prev_bytes(prev)
        if link is None:
            breaks.append(start + i)
        parts.append(link or ZERO)
    return b"".join(parts), sorted(set(breaks))


def chain_breaks(prevs: bytes, leaves: bytes, known: list[int]) -> list[int]:
    """*known* breaks plus every entry whose prev link is not the leaf hash of the entry before
    it (zeros for the first). One comparison of whole buffers when the chain is intact."""
    expected = ZERO + leaves[:-32] if leaves else b""  # an empty ledger has no links to check
    if len(prevs) != len(expected):
        raise ValueError("prev links and leaf hashes are not the same number of entries")
    if prevs == expected:
        return sorted(known)
    import numpy as np

    got = np.frombuffer(prevs, dtype=np.uint8).reshape(-1, 32)
    want = np.frombuffer(expected, dtype=np.uint8).reshape(-1, 32)
    return sorted(set(known) | set(np.flatnonzero((got != want).any(axis=1)).tolist()))


def _kind_counts(kinds: list[Any]) -> Counter[str]:
    """Event kinds as the transcript counts them: anything but a non-empty string is ``?``."""
    try:
        counts: Counter[Any] = Counter(kinds)
    except TypeError:  # an unhashable kind (a list, an object)
        counts = Counter(k if isinstance(k, str) else None for k in kinds)
    out: Counter[str] = Counter()
    for kind, n in counts.items():
        out[kind if isinstance(kind, str) and kind else "?"] += n
    return out


class LedgerPass:
    """The pass over entries ``[0, size)`` into ``folder/entries.jsonl``, split with one child process.

    Construct it (the child starts reading at once), call :meth:`run` in the reading
    process, and :meth:`wait_export` before anything uses the hashes; :meth:`cancel`
    stops the helper processes.
    """

    def __init__(self, ledger: Any, folder: Path, size: int, *, split: int | None = None,
                 location_families: frozenset[str] = frozenset()) -> None:
        self.ledger = ledger
        self.location_families = location_families
        self.folder = Path(folder)
        self.size = size
        if split is None:
            split = size if size < MIN_SPLIT_SIZE else size - int((size - CHILD_HANDICAP) * CHILD_SHARE)
        self.split = split if 0 < split <= size else size
        self._work: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._hasher: subprocess.Popen[bytes] | None = None
        self._scan: SliceScan | None = None
        self._rest: tuple[str, list[Any], list[Any]] | None = None
        if self.split < size:
            self._work = Path(tempfile.mkdtemp(prefix="fedledger-slice-"))
            self._proc = _start("bundler.ledger_slice", str(ledger.path), str(self.split), str(size), str(self._work),
                                ",".join(sorted(location_families)))

    def run(self) -> tuple[SliceScan, TableReading]:
        """Read this process's share, wait for the child's, join them, and start hashing the export."""
        self.folder.mkdir(parents=True, exist_ok=True)
        seconds: dict[str, float] = {}
        entries = self.folder / "entries.jsonl"
        with open(entries, "wb") as handle:
            parts = [read_part(self.ledger, 0, self.split, handle, self.location_families)]
        seconds["this process's share"] = parts[0].seconds
        if self._proc is not None:
            clock = time.perf_counter()
            child = self._child_result()
            seconds["wait for the child's share"] = time.perf_counter() - clock
            seconds["child's share (beside)"] = child.seconds
            parts.append(child)
            assert self._work is not None
            self._hasher = _start("bundler.export_hasher", str(entries), str(self._work / "entries.part"),
                                  str(self._work))
        clock = time.perf_counter()
        self._rest = (self.ledger.origin, self.ledger.checkpoints(), self.ledger.signers())
        scan, reading = _join(parts)
        seconds["join"] = time.perf_counter() - clock
        scan.seconds = seconds
        scan.child_peak_rss_mb = max((p.peak_rss_mb for p in parts), default=0)
        self._scan = scan
        return scan, reading

    def wait_export(self) -> SliceScan:
        """Complete the export and the scan: the leaf hashes and Merkle levels of the exported
        lines, the chain check against them, and the export's checkpoints, keys and manifest."""
        from bundler.export_hasher import hash_export, read_hashes

        scan, rest = self._scan, self._rest
        if scan is None or rest is None:
            raise RuntimeError("the ledger pass has not run")
        if scan.export_files:
            return scan
        clock = time.perf_counter()
        if self._hasher is not None:
            _, err = self._hasher.communicate()
            if self._hasher.returncode != 0:
                lines = err.decode("utf-8", "replace").strip().splitlines()
                raise RuntimeError(f"hashing the ledger export failed: {lines[-1] if lines else self._hasher.returncode}")
            assert self._work is not None
            hashes = read_hashes(self._work)
            self._hasher = None
        else:
            hashes = hash_export(self.folder / "entries.jsonl")
        self._cleanup()
        scan.leaves, scan.levels = hashes.leaves, hashes.levels
        if len(scan.leaves) == len(scan.prevs):  # else the leaves cannot match the root, which says so
            scan.chain_breaks = chain_breaks(scan.prevs, scan.leaves, scan.chain_breaks)
        scan.prevs = b""
        scan.export_files = _export_rest(self.folder, self.size, hashes.sha256, *rest)
        scan.seconds["hash wait"] = time.perf_counter() - clock
        return scan

    def _child_result(self) -> SlicePart:
        assert self._proc is not None and self._work is not None
        _, err = self._proc.communicate()
        if self._proc.returncode != 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            self._cleanup()
            raise RuntimeError(f"ledger export failed: {lines[-1] if lines else self._proc.returncode}")
        with open(self._work / "part.pickle", "rb") as handle:
            part: SlicePart = pickle.load(handle)
        return part

    def cancel(self) -> None:
        for proc in (self._proc, self._hasher):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)


def _start(module: str, *args: str) -> subprocess.Popen[bytes]:
    root = str(Path(__file__).resolve().parent.parent)
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )


def _join(parts: list[SlicePart]) -> tuple[SliceScan, TableReading]:
    """Parts in seq order → one scan (without hashes yet) and one table reading."""
    import numpy as np

    lengths = np.concatenate([np.zeros(1, dtype=np.int64)] + [np.frombuffer(p.lengths, dtype=np.int64) + 1 for p in parts])
    offsets = array("q")
    offsets.frombytes(np.cumsum(lengths, dtype=np.int64).tobytes())
    kinds: Counter[str] = Counter()
    reading = TableReading(location_families=parts[0].reading.location_families)
    breaks: list[int] = []
    for part in parts:
        breaks.extend(part.chain_breaks)
        kinds.update(part.kinds)
        reading.chunks.extend(part.reading.chunks)
        reading.kept.update(part.reading.kept)
        reading.invalid += part.reading.invalid
        reading.total += part.reading.total
    scan = SliceScan(parts[-1].end, b"", offsets, kinds, sum(p.oidc_verified for p in parts),
                     sum(p.oidc_failed for p in parts), breaks, prevs=b"".join(p.prevs for p in parts))
    return scan, reading


def _export_rest(out: Path, size: int, entries_sha256: str, origin: str, checkpoints: list[Any],
                 signers: list[Any]) -> dict[str, str]:
    """Checkpoints, keys and MANIFEST.json beside ``entries.jsonl``, as :func:`collector.export.export_ledger`
    writes them (a test compares the two folders byte for byte)."""
    from collector.canonical import canonical_bytes
    from collector.export import EXPORT_FORMAT, key_file_name

    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "keys").mkdir(exist_ok=True)
    files = {"entries.jsonl": entries_sha256}
    for cp in checkpoints:
        if cp.size > size:
            continue
        name = f"checkpoints/{cp.id:06d}.note"
        (out / name).write_text(cp.note, encoding="utf-8")
        files[name] = hashlib.sha256(cp.note.encode()).hexdigest()
    for key_name, key_id, pem in signers:
        name = key_file_name(key_name, key_id)
        (out / name).write_text(pem, encoding="ascii")
        files[name] = hashlib.sha256(pem.encode()).hexdigest()
    manifest = {"format": EXPORT_FORMAT, "origin": origin, "size": size, "files": dict(sorted(files.items()))}
    (out / "MANIFEST.json").write_bytes(canonical_bytes(manifest))
    return dict(sorted(files.items()))


def _main(argv: list[str]) -> int:
    """Child: ``LEDGER START END WORK FAMILIES`` → ``WORK/entries.part`` and ``WORK/part.pickle``
    (*FAMILIES*: comma-separated source families whose rows keep ``source.location``)."""
    import gc

    from bundler import ledger_slice  # not __main__'s copy: the pickle must name bundler.ledger_slice.SlicePart
    from collector.ledger_open import ledger_location, open_ledger

    gc.disable()  # millions of small containers, no cycles (see bundler.evaluate)
    start, end = int(argv[1]), int(argv[2])
    work = Path(argv[3])
    families = frozenset(f for f in (argv[4] if len(argv) > 4 else "").split(",") if f)
    with open_ledger(ledger_location(argv[0])) as ledger, open(work / "entries.part", "wb") as handle:
        part = ledger_slice.read_part(ledger, start, end, handle, families)
    part.peak_rss_mb = peak_rss_mb()
    with open(work / "part.pickle", "wb") as handle:
        pickle.dump(part, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
