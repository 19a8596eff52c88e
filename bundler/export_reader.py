"""Read a ledger export folder for offline verification (file I/O only, no network).

Checks the manifest before anything else is trusted: it must be canonical JSON of
the expected format, every file it lists must hash as listed, and no file may be
present that it does not list. Entries are then streamed line by line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bundler.ledger_verify import Failure, NoteInput
from collector.store import sha256_file
from collector.canonical import CanonicalizationError, canonical_bytes
from collector.errors import MalformedInput
from collector.export import EXPORT_FORMAT


@dataclass
class ExportContents:
    folder: Path
    origin: str
    size: int
    notes: list[NoteInput] = field(default_factory=list)
    key_pems: list[tuple[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def read_export(folder: Path) -> ExportContents:
    folder = Path(folder)
    manifest_path = folder / "MANIFEST.json"
    try:
        raw = manifest_path.read_bytes()
    except OSError:
        raise MalformedInput("not a fedledger export: MANIFEST.json missing", location=str(folder)) from None
    try:
        doc = orjson.loads(raw)
        canonical = canonical_bytes(doc)
    except (orjson.JSONDecodeError, CanonicalizationError) as exc:
        raise MalformedInput(f"MANIFEST.json is not valid: {exc}", location=str(manifest_path)) from None
    if not isinstance(doc, dict) or set(doc) != {"format", "origin", "size", "files"} or doc["format"] != EXPORT_FORMAT:
        raise MalformedInput(f"MANIFEST.json is not a {EXPORT_FORMAT} manifest", location=str(manifest_path))
    files = doc["files"]
    if not isinstance(files, dict) or type(doc["size"]) is not int or not isinstance(doc["origin"], str):
        raise MalformedInput("MANIFEST.json has fields of the wrong type", location=str(manifest_path))
    contents = ExportContents(folder, doc["origin"], doc["size"])
    if canonical != raw:
        contents.failures.append(Failure("export-modified", "MANIFEST.json is not in canonical form", where="MANIFEST.json"))
    present = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and p != manifest_path
    }
    for name in sorted(present - set(files)):
        contents.failures.append(Failure("export-modified", "file not listed in the manifest", where=name))
    for name, want in sorted(files.items()):
        path = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            contents.failures.append(Failure("export-modified", "manifest names a path outside the export", where=name))
            continue
        if name not in present:
            contents.failures.append(Failure("export-modified", "listed in the manifest but missing", where=name))
            continue
        if path.is_symlink():
            contents.failures.append(Failure("export-modified", "is a symbolic link", where=name))
            continue
        got = sha256_file(path)
        if got != want:
            contents.failures.append(Failure("export-modified", f"sha256 {got}, manifest says {want}", where=name))
    for name in sorted(files):
        if name.startswith("checkpoints/") and name in present:
            contents.notes.append(NoteInput.from_bytes(name, (folder / name).read_bytes()))
        elif name.startswith("keys/") and name.endswith(".pem") and name in present:
            contents.key_pems.append((name, (folder / name).read_text(encoding="ascii", errors="replace")))
    return contents


def iter_export_entries(contents: ExportContents) -> Iterator[tuple[bytes, bytes | None]]:
    """Entry bodies from ``entries.jsonl``; shape problems are added to ``contents.failures``."""
    path = contents.folder / "entries.jsonl"
    if not path.is_file():
        return
    count = 0
    with open(path, "rb") as handle:
        carry = b""
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            for line in lines:
                if not line:
                    contents.failures.append(Failure("entry-modified", "empty line in entries.jsonl", seq=count))
                    continue
                count += 1
                yield line, None
        if carry:
            contents.failures.append(Failure("entry-modified", "entries.jsonl does not end with a newline", seq=count))
            count += 1
            yield carry, None
    if count != contents.size:
        contents.failures.append(
            Failure("export-modified", f"entries.jsonl holds {count} entries, the manifest says {contents.size}",
                    where="entries.jsonl")
        )
