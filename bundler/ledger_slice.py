"""One pass over the ledger's entries that exports, hashes, scans and reads them for evaluation.

Every entry is read from the ledger once. Its stored bytes are written to the
export's ``entries.jsonl`` and hashed there (the leaf hash the bundle's Merkle root
is checked against, and the file's SHA-256), its ``seq`` and ``prev`` are checked
against the chain, its event kind is counted for the verification transcript, and
the same parsed object becomes a row of the evaluation table
(:mod:`bundler.evidence_table`). Nothing is parsed twice.

The pass is split by sequence range: this process reads ``[0, split)`` while a
fresh child process (``python -m bundler.ledger_slice``) reads ``[split, size)``
on the other core, writes its lines to a part file, and hands back compact
results (leaf hashes, line lengths, counts, the table's column chunks, the lower
Merkle levels of its range) in one pickle. The parent checks the one chain link
that crosses the split; a thread appends the part file to ``entries.jsonl``,
hashes the whole file and writes the rest of the export while the caller
evaluates (:meth:`LedgerPass.wait_export`). *split* is a multiple of
``2**TREE_LEVELS`` so both halves' perfect subtrees up to that level line up with
the whole tree's.

Below :data:`MIN_SPLIT_SIZE` entries the child costs more than it saves and the
parent reads everything.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from bundler.evidence_table import TableReading, read_rows
from bundler.merkle_memory import perfect_levels
from bundler.process_stats import peak_rss_mb

ZERO = bytes(32)
TREE_LEVELS = 12  # the split is a multiple of 2**12 entries
MIN_SPLIT_SIZE = 1 << 17  # below this, one process reads everything
# The child pays its start-up (interpreter, pandas) and the pickle, about what reading this
# many entries costs, so it gets half of the rest (split rounded to 2**TREE_LEVELS).
CHILD_HANDICAP = 50_000
_WRITE_BATCH = 2048  # lines joined per write and hash update


@dataclass
class SlicePart:
    """What one process's pass over entries ``[start, end)`` found."""

    start: int
    end: int
    leaves: bytes = b""
    lengths: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]  # entry lengths (lines less the newline)
    kinds: Counter[str] = field(default_factory=Counter)
    oidc_verified: int = 0
    oidc_failed: int = 0
    chain_breaks: list[int] = field(default_factory=list)  # seqs, not counting the first entry's prev link
    first_prev: bytes | None = None  # the first entry's prev, checked against the entry before it at the merge
    levels: list[bytes] = field(default_factory=list)  # perfect-subtree levels 1..TREE_LEVELS of this range
    reading: TableReading = field(default_factory=TableReading)
    seconds: float = 0.0
    peak_rss_mb: int = 0  # of the child process that read it (0 when this process did)


@dataclass
class SliceScan:
    """The whole pass: the export's leaf hashes, line offsets, counts and chain check."""

    size: int
    leaves: bytes
    offsets: array  # type: ignore[type-arg]  # int64 line starts in entries.jsonl, one more than entries
    kinds: Counter[str] = field(default_factory=Counter)
    oidc_verified: int = 0
    oidc_failed: int = 0
    chain_breaks: list[int] = field(default_factory=list)
    export_files: dict[str, str] = field(default_factory=dict)
    levels: list[bytes] = field(default_factory=list)  # Merkle levels 0..k, as far as both parts computed them
    seconds: dict[str, float] = field(default_factory=dict)
    child_peak_rss_mb: int = 0


def read_part(ledger: Any, start: int, end: int, handle: IO[bytes], digest: Any, *, tree_levels: int = 0) -> SlicePart:
    """Entries ``[start, end)``: write each stored body and a newline to *handle* (and *digest*,
    if given), hash it, check its chain links, count it and read it into table rows."""
    clock = time.perf_counter()
    part = SlicePart(start, end)
    leaves: list[bytes] = []
    seqs: list[Any] = []
    prevs: list[Any] = []
    kinds: list[Any] = []
    oidc = [0, 0]
    leaf_prefix = hashlib.sha256(b"\x00")
    write = handle.write
    update = digest.update if digest is not None else None
    pending: list[bytes] = []
    lengths = part.lengths

    def flush() -> None:
        chunk = b"\n".join(pending) + b"\n"
        lengths.extend(map(len, pending))
        pending.clear()
        write(chunk)
        if update is not None:
            update(chunk)

    def triples() -> Iterator[tuple[int, Any, Any]]:
        # Kept lean, it runs once per entry: the chain and the kinds are checked after the loop.
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        dict_type = dict
        empty: dict[str, Any] = {}
        batch = _WRITE_BATCH
        add_pending, add_leaf, add_seq, add_prev, add_kind = (
            pending.append, leaves.append, seqs.append, prevs.append, kinds.append)
        for seq, _stored_leaf, body in ledger.entries(start, end):
            add_pending(body)
            if len(pending) >= batch:
                flush()
            h = leaf_prefix.copy()
            h.update(body)
            add_leaf(h.digest())
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
                attrs = event.get("attrs")
                oidc[0 if attrs.__class__ is dict_type and attrs.get("verified") else 1] += 1
            yield seq, event, doc.get("source") or empty

    read_rows(triples(), part.reading)
    if pending:
        flush()
    if len(leaves) != end - start:
        raise RuntimeError(f"the ledger returned {len(leaves)} entries for [{start}, {end})")
    part.leaves = b"".join(leaves)
    del leaves
    part.first_prev, part.chain_breaks = _chain_breaks(start, seqs, prevs, part.leaves)
    part.kinds = _kind_counts(kinds)
    part.oidc_verified, part.oidc_failed = oidc
    if tree_levels:
        part.levels = perfect_levels(part.leaves, tree_levels)
    part.seconds = time.perf_counter() - clock
    return part


def _prev_bytes(prev: Any) -> bytes:
    try:
        return bytes.fromhex(prev)
    except (TypeError, ValueError):
        return b""


def _chain_breaks(start: int, seqs: list[Any], prevs: list[Any], leaves: bytes) -> tuple[bytes | None, list[int]]:
    """The first entry's prev, and the seqs whose ``seq`` is not their position or whose
    ``prev`` is not the leaf hash of the entry before (the first entry's prev is left to
    the caller, who knows the entry before it). One comparison of whole buffers when
    the chain is intact; entry by entry only when it is not."""
    if not seqs:
        return None, []
    breaks: list[int] = []
    if seqs != list(range(start, start + len(seqs))):
        breaks = [start + i for i, seq in enumerate(seqs) if seq != start + i]
    try:
        linked = bytes.fromhex("".join(prevs))
    except (TypeError, ValueError):
        linked = b""
    if len(linked) == len(leaves):
        first_prev = linked[:32]
        if linked[32:] == leaves[:-32]:
            return first_prev, breaks
    else:
        first_prev = _prev_bytes(prevs[0])
    for i in range(1, len(prevs)):
        if _prev_bytes(prevs[i]) != leaves[32 * (i - 1) : 32 * i]:
            breaks.append(start + i)
    return first_prev, sorted(set(breaks))


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

    Construct it (the child starts reading at once), then call :meth:`run` in the
    reading process; :meth:`cancel` stops the child.
    """

    def __init__(self, ledger: Any, folder: Path, size: int, *, split: int | None = None,
                 tree_levels: int = TREE_LEVELS) -> None:
        self.ledger = ledger
        self.folder = Path(folder)
        self.size = size
        self.tree_levels = tree_levels
        align = 1 << tree_levels
        if split is None:
            split = size if size < MIN_SPLIT_SIZE else round((size + CHILD_HANDICAP) / 2 / align) * align
        if split % align or not 0 < split <= size:
            split = size
        self.split = split
        self._work: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._export_files: dict[str, str] | None = None
        self._export_error: BaseException | None = None
        if split < size:
            self._work = Path(tempfile.mkdtemp(prefix="fedledger-slice-"))
            root = str(Path(__file__).resolve().parent.parent)
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bundler.ledger_slice", str(ledger.path), str(split), str(size),
                 str(tree_levels), str(self._work)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")},
            )

    def run(self) -> tuple[SliceScan, TableReading]:
        """Read this process's share, wait for the child's, and join them.

        ``entries.jsonl`` is finished (the child's part appended, the whole file
        hashed) and the rest of the export written by a thread, beside the caller's
        evaluation: file I/O and SHA-256 over large blocks run without the GIL.
        :meth:`wait_export` waits for it and returns the export's file hashes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        seconds: dict[str, float] = {}
        entries = self.folder / "entries.jsonl"
        with open(entries, "wb") as handle:
            levels = self.tree_levels if self._proc is not None else 0
            parts = [read_part(self.ledger, 0, self.split, handle, None, tree_levels=levels)]
        seconds["this process's share"] = parts[0].seconds
        if self._proc is not None:
            clock = time.perf_counter()
            child = self._child_result()
            seconds["wait for the child's share"] = time.perf_counter() - clock
            seconds["child's share (beside)"] = child.seconds
            parts.append(child)
        clock = time.perf_counter()
        # Read here: a SQLite connection belongs to the thread that opened it.
        rest = (self.ledger.origin, self.ledger.checkpoints(), self.ledger.signers())
        part_file = self._work / "entries.part" if self._proc is not None and self._work is not None else None
        self._thread = threading.Thread(target=self._finish_export, args=(entries, part_file, rest),
                                        name="fedledger-export", daemon=True)
        self._thread.start()
        scan, reading = _join(parts, self.tree_levels if len(parts) > 1 else 0)
        seconds["join"] = time.perf_counter() - clock
        scan.seconds = seconds
        scan.child_peak_rss_mb = max((p.peak_rss_mb for p in parts), default=0)
        return scan, reading

    def _finish_export(self, entries: Path, part_file: Path | None, rest: tuple[str, list[Any], list[Any]]) -> None:
        try:
            digest = hashlib.sha256()
            with open(entries, "r+b") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
                if part_file is not None:
                    with open(part_file, "rb") as source:
                        for block in iter(lambda: source.read(1 << 22), b""):
                            handle.write(block)
                            digest.update(block)
            self._export_files = _export_rest(self.folder, self.size, digest.hexdigest(), *rest)
        except BaseException as exc:  # handed to the caller by wait_export
            self._export_error = exc

    def wait_export(self) -> dict[str, str]:
        """Wait until the export folder is complete; the SHA-256 of each of its files."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self._cleanup()
        if self._export_error is not None:
            raise self._export_error
        if self._export_files is None:
            raise RuntimeError("the ledger pass has not run")
        return self._export_files

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
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)


def _join(parts: list[SlicePart], tree_levels: int) -> tuple[SliceScan, TableReading]:
    """Parts in seq order → one scan and one table reading; checks the links between parts."""
    import numpy as np

    lengths = np.concatenate([np.zeros(1, dtype=np.int64)] + [np.frombuffer(p.lengths, dtype=np.int64) + 1 for p in parts])
    offsets = array("q")
    offsets.frombytes(np.cumsum(lengths, dtype=np.int64).tobytes())
    breaks: list[int] = []
    kinds: Counter[str] = Counter()
    reading = TableReading()
    previous = ZERO
    for part in parts:
        if part.start < part.end and part.first_prev != previous and part.start not in part.chain_breaks:
            breaks.append(part.start)
        breaks.extend(part.chain_breaks)
        if part.end > part.start:
            previous = part.leaves[-32:]
        kinds.update(part.kinds)
        reading.chunks.extend(part.reading.chunks)
        reading.kept.update(part.reading.kept)
        reading.invalid += part.reading.invalid
        reading.total += part.reading.total
    breaks.sort()
    levels = [b"".join(p.leaves for p in parts)]
    for level in range(tree_levels):
        levels.append(b"".join(p.levels[level] for p in parts))
    scan = SliceScan(parts[-1].end, levels[0], offsets, kinds, sum(p.oidc_verified for p in parts),
                     sum(p.oidc_failed for p in parts), breaks, levels=levels)
    return scan, reading


def _export_rest(out: Path, size: int, entries_sha256: str, origin: str, checkpoints: list[Any],
                 signers: list[Any]) -> dict[str, str]:
    """Checkpoints, keys and MANIFEST.json beside ``entries.jsonl``, as :func:`collector.export.export_ledger`
    writes them (a test compares the two folders byte for byte)."""
    from collector.canonical import canonical_bytes
    from collector.export import EXPORT_FORMAT

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
        name = f"keys/{key_name.replace('/', '_')}-{key_id}.pem"
        (out / name).write_text(pem, encoding="ascii")
        files[name] = hashlib.sha256(pem.encode()).hexdigest()
    manifest = {"format": EXPORT_FORMAT, "origin": origin, "size": size, "files": dict(sorted(files.items()))}
    (out / "MANIFEST.json").write_bytes(canonical_bytes(manifest))
    return dict(sorted(files.items()))


def _main(argv: list[str]) -> int:
    """Child: ``LEDGER START END TREE_LEVELS WORK`` → ``WORK/entries.part`` and ``WORK/part.pickle``."""
    import gc

    from bundler import ledger_slice  # not __main__'s copy: the pickle must name bundler.ledger_slice.SlicePart
    from collector.ledger_open import ledger_location, open_ledger

    gc.disable()  # millions of small containers, no cycles (see bundler.evaluate)
    start, end, levels = int(argv[1]), int(argv[2]), int(argv[3])
    work = Path(argv[4])
    with open_ledger(ledger_location(argv[0])) as ledger, open(work / "entries.part", "wb") as handle:
        part = ledger_slice.read_part(ledger, start, end, handle, None, tree_levels=levels)
    part.peak_rss_mb = peak_rss_mb()
    with open(work / "part.pickle", "wb") as handle:
        pickle.dump(part, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
