"""Fetch side of ``fedledger verify``: read a ledger file or an export folder, then
hand bytes, keys and origin to the pure :func:`bundler.ledger_verify.verify_ledger`."""

from __future__ import annotations

import binascii
import hashlib
import multiprocessing
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, cast

from bundler.export_reader import iter_export_entries, read_export
from bundler.raw_verify import RawEvidenceCheck, raw_field, store_absent
from bundler.ledger_verify import (
    ChunkScan,
    Failure,
    LedgerVerification,
    NoteInput,
    check_notes,
    finish,
    scan_chunk,
    verify_ledger,
)
from collector.checkpoint import NoteVerifier, parse_verifier_key
from collector.checkpoint_keys import KeyRange, KeyRing
from collector.cli_common import err, key_paths
from collector.errors import MalformedInput, SourceUnavailable, UsageError

if TYPE_CHECKING:
    from collector.ledger_pg import PostgresLedger


def _read_text(path: Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceUnavailable(f"cannot read {what}: {exc}", location=str(path)) from None


def _key_ring(paths: list[Path], origin: str, ranges: Sequence[KeyRange] = ()) -> KeyRing:
    """The pinned keys (named after their files in the report), limited by *ranges*."""
    verifiers = [parse_verifier_key(_read_text(p, "trusted key"), default_name=origin, location=str(p)) for p in paths]
    return KeyRing(verifiers, ranges, labels=[str(p) for p in paths])


def _saved_notes(paths: list[Path]) -> list[NoteInput]:
    notes = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SourceUnavailable(f"cannot read saved checkpoint: {exc}", location=str(path)) from None
        notes.append(NoteInput.from_bytes(str(path), data, saved=True))
    return notes


def verify_target(
    target: Path | str, *, trusted_keys: list[Path], origin: str | None, saved: list[Path], raw: bool = True,
    key_ranges: Sequence[KeyRange] = (),
) -> LedgerVerification:
    """Verify a ledger file, PostgreSQL URL, export folder or bundle archive. *raw* False skips
    reading a ledger's evidence store (``--no-raw``): the chain, tree and checkpoints only, and
    the report says the raw bytes were not checked. *key_ranges* limit pinned keys to tree sizes
    (``--key-range``); key handovers among the checkpoints are followed either way."""
    from collector.ledger_pg import is_postgres_url

    if is_postgres_url(target):
        return _verify_postgres(str(target), trusted_keys=trusted_keys, origin=origin, saved=saved, raw=raw,
                                key_ranges=key_ranges)
    target = Path(target)
    if target.is_dir() or _is_archive(target):
        if not trusted_keys or not origin:
            raise UsageError("verifying an export needs --trusted-key and --origin: pin them, do not trust the export's own")
        if target.is_file():
            return _verify_bundle_archive(target, trusted_keys=trusted_keys, origin=origin, saved=saved,
                                          key_ranges=key_ranges)
        if (target / "ledger" / "MANIFEST.json").is_file() and (
                not (target / "MANIFEST.json").is_file() or _is_bundle_manifest(target / "MANIFEST.json")):
            raise MalformedInput(f"a bundle folder, not a ledger export: verify its ledger slice with "
                                 f"`fedledger verify {target / 'ledger'}`, or the whole bundle with "
                                 "`fedledger verify-bundle`", location=str(target))
        contents = read_export(target)
        report = verify_ledger(iter_export_entries(contents), origin=origin, keys=_key_ring(trusted_keys, origin, key_ranges),
                               notes=contents.notes + _saved_notes(saved))
        if contents.origin != origin:
            report.failures.append(Failure("wrong-origin", f"export manifest names origin {contents.origin!r}", where="MANIFEST.json"))
        report.failures[:0] = contents.failures
        return report
    try:
        return _verify_file(target, trusted_keys=trusted_keys, origin=origin, saved=saved, raw=raw,
                            key_ranges=key_ranges)
    except sqlite3.DatabaseError as exc:
        # A dropped table or undecodable metadata: the file is not a usable ledger (exit 2). Without
        # this it surfaced as "internal error" (exit 4), which reads as a fedledger bug.
        raise MalformedInput(f"not a readable fedledger ledger: {exc}", location=str(target)) from None


ARCHIVE_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"PK\x05\x06")  # gzip (.tar.gz), zip; what read_bundle reads


def _is_archive(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4).startswith(ARCHIVE_MAGIC)
    except OSError:
        return False


def _is_bundle_manifest(path: Path) -> bool:
    try:
        return b'"format":"fedledger-bundle/' in path.read_bytes()[:4096]
    except OSError:
        return False


def _verify_bundle_archive(archive: Path, *, trusted_keys: list[Path], origin: str,
                           saved: list[Path], key_ranges: Sequence[KeyRange] = ()) -> LedgerVerification:
    """The ledger slice (``ledger/``) of a bundle archive, read with verify-bundle's reader.

    Members are copied one by one by :func:`bundler.archive_reader.read_bundle`, never extracted
    by a tool: unsafe members (absolute paths, ``..``, links, devices, duplicates, bombs, data
    after the archive's end) are reported as failures and never written. Only the ``ledger/``
    members it accepted are then moved into a folder of their own and verified as an export, so
    nothing the reader rejected (such as the first copy of a duplicate name) is read. The
    bundle's signed manifest and reports are not checked here: that is ``verify-bundle``."""
    import tempfile

    from bundler.archive_reader import read_bundle
    from bundler.bundle_verify import strip_top_folder

    with tempfile.TemporaryDirectory(prefix="fedledger-verify-") as work:
        bundle = strip_top_folder(read_bundle(archive, Path(work) / "bundle"))
        shown = list(bundle.failures)
        if bundle.rejected_whole:
            report = LedgerVerification(origin)
            report.failures = shown
            return report
        export = Path(work) / "ledger"
        export.mkdir()
        for name, path in bundle.files.items():
            if name.startswith("ledger/"):
                (export / name[len("ledger/"):]).parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, export / name[len("ledger/"):])
        if not (export / "MANIFEST.json").is_file():
            if shown:  # e.g. ledger/MANIFEST.json itself was an unsafe member: report what was found
                report = LedgerVerification(origin)
                report.failures = shown + [Failure("export-modified", "the bundle's ledger slice has no manifest",
                                                   where="ledger/MANIFEST.json")]
                return report
            raise MalformedInput("no ledger/MANIFEST.json in the archive: not a fedledger bundle", location=str(archive))
        try:
            contents = read_export(export)
        except MalformedInput as exc:
            raise MalformedInput(str(exc).replace(str(export), "ledger"), location=str(archive)) from None
        report = verify_ledger(iter_export_entries(contents), origin=origin,
                               keys=_key_ring(trusted_keys, origin, key_ranges), notes=contents.notes + _saved_notes(saved))
    kept = {str(path) for path in saved}
    found = contents.failures + report.failures
    if contents.origin != origin:
        found.append(Failure("wrong-origin", f"export manifest names origin {contents.origin!r}", where="MANIFEST.json"))
    report.failures = shown + [
        Failure(f.code, f.message, seq=f.seq,
                where=f.where if f.where is None or f.where in kept else f"ledger/{f.where}") for f in found]
    return report


def _verify_file(target: Path, *, trusted_keys: list[Path], origin: str | None, saved: list[Path],
                 raw: bool = True, key_ranges: Sequence[KeyRange] = ()) -> LedgerVerification:
    """A SQLite ledger file: the scan (parallel when large), its notes read as bytes, and its raw
    evidence in the store beside it."""
    from collector.ledger import Ledger

    with Ledger.open(target) as ledger:
        if origin is None:
            origin = ledger.origin
            err(f"note: origin not pinned, using the ledger's own ({origin}); pin it with --origin")
        if not trusted_keys:
            public = key_paths(target)[1]
            if not public.exists():
                raise UsageError("no --trusted-key given and no public key beside the ledger")
            err(f"note: no --trusted-key given, trusting {public}")
            trusted_keys = [public]
        keys = _key_ring(trusted_keys, origin, key_ranges)
        notes = _stored_notes(ledger.path)
        report = _verify_database(ledger.path, origin=origin, keys=keys, notes=notes + _saved_notes(saved),
                                  store=ledger.store.root if raw else None)
        report.raw_checked = raw
        check = ledger.integrity_check()
        if check != "ok":
            report.failures.insert(0, Failure("database-corrupt", f"PRAGMA integrity_check: {check[:200]}"))
        if ledger.origin != origin:
            report.failures.append(Failure("wrong-origin", f"ledger metadata names origin {ledger.origin!r}"))
    return report


def _verify_postgres(url: str, *, trusted_keys: list[Path], origin: str | None, saved: list[Path],
                     raw: bool = True, key_ranges: Sequence[KeyRange] = ()) -> LedgerVerification:
    """A PostgreSQL ledger: one serial scan of the stored bytes through the Ledger API.

    The parallel scan below reads SQLite files directly and is not used here.
    """
    from collector.ledger_open import open_ledger

    if not trusted_keys:
        raise UsageError("a PostgreSQL ledger has no public key beside it: give --trusted-key (e.g. the fedledger.pub "
                         "that `init` wrote)")
    with open_ledger(url) as ledger:
        if origin is None:
            origin = ledger.origin
            err(f"note: origin not pinned, using the ledger's own ({origin}); pin it with --origin")
        keys = _key_ring(trusted_keys, origin, key_ranges)
        notes = [NoteInput(f"checkpoint #{cp.id}", cp.note) for cp in ledger.checkpoints()]
        if raw:
            check_raw = _raw_check(ledger.store.root)
            report = verify_ledger(_postgres_records(cast("PostgresLedger", ledger), check_raw), origin=origin,
                                   keys=keys, notes=notes + _saved_notes(saved))
            _add_raw_failures(report, check_raw.failures, check_raw.unchecked, ledger.store.root)
        else:
            report = verify_ledger(((body, leaf) for _seq, leaf, body in ledger.entries()), origin=origin,
                                   keys=keys, notes=notes + _saved_notes(saved))
        report.raw_checked = raw
        check = ledger.integrity_check()
        if check != "ok":
            report.failures.insert(0, Failure("database-corrupt", f"ledger shape check: {check[:200]}"))
        if ledger.origin != origin:
            report.failures.append(Failure("wrong-origin", f"ledger metadata names origin {ledger.origin!r}"))
    return report


def _raw_check(root: Path) -> RawEvidenceCheck:
    """A check of entries' raw bytes against the evidence store folder *root* (see bundler.raw_verify)."""
    def read_object(name: str) -> bytes | None:
        path = root / name[:2] / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceUnavailable(f"cannot read evidence object: {exc.strerror}", location=str(path)) from None

    return RawEvidenceCheck(read_object, where=lambda name: str(root / name[:2] / name), store_present=root.is_dir())


def _add_raw_failures(report: LedgerVerification, failures: list[Failure], unchecked: int, root: Path) -> None:
    """Raw-evidence failures into *report*: an object reported by two chunks once, and one
    failure for a whole store folder that is absent (e.g. a ledger file copied without it)."""
    report.failures += list(dict.fromkeys(failures))
    if unchecked:
        report.failures.append(store_absent(str(root), unchecked))


def _postgres_records(ledger: PostgresLedger, raw: RawEvidenceCheck, page: int = 5000) -> Iterator[tuple[bytes, bytes]]:
    """(body, leaf) of every entry in seq order, checking their raw bytes on the way: the raw-bytes
    index of a PostgreSQL ledger is keyed by the raw SHA-256, looked up a page at a time."""
    batch: list[tuple[int, bytes]] = []

    def flush() -> None:
        where = ledger.raw_index_rows([held[0] for _seq, body in batch if (held := raw_field(body)) is not None])
        for seq, body in batch:
            held = raw_field(body)
            row = where.get(held[0]) if held is not None else None
            raw.check(seq, body, row.object if row else None, row.offset if row else 0, row.size if row else 0)
        batch.clear()

    for seq, leaf, body in ledger.entries():
        batch.append((seq, body))
        yield body, leaf
        if len(batch) >= page:
            flush()
    flush()


def _stored_notes(path: Path) -> list[NoteInput]:
    """The checkpoint notes of a ledger file, read as bytes: a note that is not UTF-8 (SQLite
    stores whatever bytes it is given) is a ``malformed-checkpoint``, not a decoding crash."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [NoteInput.from_bytes(f"checkpoint #{cp_id}", bytes(raw or b""))
                for cp_id, raw in conn.execute("SELECT id, CAST(note AS BLOB) FROM checkpoints ORDER BY id")]
    finally:
        conn.close()


CHUNK = 1 << 16  # entries per worker task; a power of two so chunk subtrees are perfect
# SQLite keeps any type in any column: whoever edits the file can write a body or leaf as TEXT (or a
# number). Read them as the bytes they hold, so such a row is hashed and reported like any other edit
# instead of stopping the scan with a TypeError (which hid every other finding behind exit 4).
_BODY = "ifnull(CAST(body AS BLOB), X'')"
_LEAF = "CAST(leaf AS BLOB)"


_COLUMNS = f"seq, {_BODY}, {_LEAF}, raw_object, CAST(raw_offset AS INTEGER), CAST(raw_size AS INTEGER)"


def _scan_rows(conn: sqlite3.Connection, rows: Iterable[tuple], *, start: int, prev_hex: bytes, wanted: set[int],
               store: Path | None) -> tuple[ChunkScan, list[Failure], int]:
    """Scan *rows* (``_COLUMNS`` in seq order); with *store*, check their raw bytes in the same
    pass, so each body is read once. Returns the scan, the raw-evidence failures and how many
    entries' raw bytes went unchecked because the store folder is absent."""
    if store is None:
        return scan_chunk(((body, leaf) for _s, body, leaf, *_raw in rows), start=start, prev_hex=prev_hex,
                          wanted_sizes=wanted), [], 0
    objects = {oid: bytes(sha).hex() for oid, sha in conn.execute("SELECT id, CAST(sha256 AS BLOB) FROM raw_objects")
               if sha is not None and len(sha) == 32}
    raw = _raw_check(store)
    check = raw.check

    def records() -> Iterator[tuple[bytes, bytes]]:
        for seq, body, leaf, obj, offset, size in rows:
            check(seq, body, None if obj is None else objects.get(obj), offset or 0, size or 0)
            yield body, leaf

    scan = scan_chunk(records(), start=start, prev_hex=prev_hex, wanted_sizes=wanted)
    return scan, raw.failures, raw.unchecked


def _scan_db_range(path: str, start: int, end: int, wanted: set[int],
                   store: Path | None) -> tuple[ChunkScan, list[Failure], int]:
    """Worker: scan entries with seq in [start, end) of a ledger file, read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        prev_hex = b"0" * 64
        if start:
            row = conn.execute(f"SELECT {_BODY} FROM entries WHERE seq = ?", (start - 1,)).fetchone()
            prev_hex = binascii.hexlify(hashlib.sha256(b"\x00" + row[0]).digest())
        rows = conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq", (start, end))
        return _scan_rows(conn, rows, start=start, prev_hex=prev_hex, wanted=wanted, store=store)
    finally:
        conn.close()


def _verify_database(path: Path, *, origin: str, notes: list[NoteInput], verifiers: Sequence[NoteVerifier] = (),
                     keys: KeyRing | None = None, chunk: int = CHUNK, store: Path | None = None) -> LedgerVerification:
    """Scan the ledger in parallel chunks when it is large and its seq column has no gaps;
    otherwise (small, or rows missing) in one pass, which classifies every anomaly. With *store*
    (the evidence store folder), every entry's raw bytes are checked in the same pass."""
    report, parsed = check_notes(notes, origin=origin, verifiers=verifiers, keys=keys)
    wanted = {cp.size for _, cp in parsed}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        count, top = conn.execute("SELECT count(*), max(seq) FROM entries").fetchone()
        workers = min(os.cpu_count() or 1, 8)
        if count < 2 * chunk or workers < 2 or top != count - 1:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY seq")
            scans = [_scan_rows(conn, rows, start=0, prev_hex=b"0" * 64, wanted=wanted, store=store)]
        else:
            scans = []
    finally:
        conn.close()
    if not scans:
        ranges = [(start, min(count, start + chunk)) for start in range(0, count, chunk)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            scans = list(pool.map(_scan_db_range, [str(path)] * len(ranges), [a for a, _ in ranges],
                                  [b for _, b in ranges], [wanted] * len(ranges), [store] * len(ranges)))
    report = finish(report, parsed, [scan for scan, _raw, _unchecked in scans])
    if store is not None:
        _add_raw_failures(report, [f for _scan, raw, _n in scans for f in raw], sum(n for *_, n in scans), store)
    return report
