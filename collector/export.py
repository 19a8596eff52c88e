"""Export a ledger to a self-contained folder that ``fedledger verify`` checks offline.

Layout::

    entries.jsonl              the exact stored bytes of each entry, one per line
    checkpoints/NNNNNN.note    every signed checkpoint, as stored
    keys/<name>-<keyid>.pem    public keys that signed checkpoints (:func:`key_file_name`)
    objects/aa/<sha256>        raw evidence objects (with ``include_raw``)
    MANIFEST.json              canonical JSON: origin, size, SHA-256 of every file
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import orjson

from collector.canonical import canonical_bytes
from collector.errors import UsageError
from collector.ledger import Ledger

EXPORT_FORMAT = "fedledger-export/1"
RAW_LOOKUP_CHUNK = 5000  # entries whose raw objects are looked up at once (one query on PostgreSQL)
KEY_NAME_KEPT = 64  # characters of a key name kept in its file name
_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def key_file_name(key_name: str, key_id: str) -> str:
    """``keys/<name>-<keyid>.pem`` for a signer, usable as a file and archive member name anywhere.

    The key name is the origin, which may hold any character but space and '+' (a backslash
    or ':' no archive reader accepts, 300 characters no file system does): characters other
    than ASCII letters, digits, '.', '_' and '-' become '_' (so ``example.gov/ci`` gives
    ``example.gov_ci`` as before) and the name is cut to :data:`KEY_NAME_KEPT` characters.
    Readers identify keys by their contents, not by this name."""
    name = _UNSAFE_IN_FILE_NAME.sub("_", key_name)[:KEY_NAME_KEPT].lstrip(".") or "key"
    return f"keys/{name}-{_UNSAFE_IN_FILE_NAME.sub('_', key_id)[:KEY_NAME_KEPT]}.pem"


def not_empty_message(what: str, out: Path) -> str:
    """Why *out* cannot take a new export or bundle, and what to do; an unfinished one (no
    MANIFEST.json: interrupted or failed) is named as such, so it is not mistaken for a result."""
    if not out.is_dir():
        return f"{what} folder is a file: choose another --out"
    unfinished = not (out / "MANIFEST.json").exists() and any(
        (out / name).exists() for name in ("entries.jsonl", "checkpoints", "ledger", "index.html", "controls"))
    if unfinished:
        return (f"{what} folder holds an unfinished {what} (no MANIFEST.json: interrupted or failed): "
                f"remove it, or choose another --out")
    return f"{what} folder exists and is not empty: choose a new or empty --out (nothing there is overwritten)"


def export_ledger(ledger: Ledger, out: Path, *, start: int = 0, include_raw: bool = False) -> dict[str, object]:
    """Write the export; return the manifest document."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(not_empty_message("export", out), location=str(out))
    if start != 0:
        raise UsageError("partial exports start at seq 0 (a slice must be verifiable from the first entry)")
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "keys").mkdir(exist_ok=True)
    files: dict[str, str] = {}
    size = 0
    objects: set[str] = set()
    digest = hashlib.sha256()
    pending: list[tuple[int, bytes]] = []

    def add_objects() -> None:
        objects.update(where.object for where in ledger.raw_locations(pending) if where is not None)
        pending.clear()

    with open(out / "entries.jsonl", "wb") as handle:
        for seq, _leaf, body in ledger.entries():
            data = bytes(body)
            handle.write(data + b"\n")
            digest.update(data + b"\n")
            size += 1
            if include_raw:
                pending.append((seq, data))
                if len(pending) >= RAW_LOOKUP_CHUNK:
                    add_objects()
    if pending:
        add_objects()
    files["entries.jsonl"] = digest.hexdigest()
    for cp in ledger.checkpoints():
        if cp.size > size:
            continue
        name = f"checkpoints/{cp.id:06d}.note"
        (out / name).write_text(cp.note, encoding="utf-8")
        files[name] = hashlib.sha256(cp.note.encode()).hexdigest()
    for key_name, key_id, pem in ledger.signers():
        name = key_file_name(key_name, key_id)
        (out / name).write_text(pem, encoding="ascii")
        files[name] = hashlib.sha256(pem.encode()).hexdigest()
    if include_raw:
        for obj in sorted(objects):
            data = ledger.store.get(obj)
            name = f"objects/{obj[:2]}/{obj}"
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
            files[name] = obj
    manifest = {
        "format": EXPORT_FORMAT,
        "origin": ledger.origin,
        "size": size,
        "files": dict(sorted(files.items())),
    }
    (out / "MANIFEST.json").write_bytes(canonical_bytes(manifest))
    return manifest
