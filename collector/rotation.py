"""Following log rotation for line files read with a cursor.

A file collected before is known by its path and its cursor: how far it was read and
the SHA-256 of everything before that (:class:`collector.ingest.FileCursor`), plus
the SHA-256 of its first bytes (``head_sha256``, a cheap first test). When logrotate
(or Vault's own SIGHUP rotation, or ``copytruncate``) moves ``audit.log`` to
``audit.log.1`` (``audit.log-20261125``, ``audit.log.1.gz``...) and starts a new
``audit.log``, the old cursor no longer fits the file at its path. Rather than report
that as tampering and never read the path again, :func:`plan_rotations` looks for
the content the cursor describes among the files of the same rotation family in the
same folder, byte for byte (the whole prefix's SHA-256, not a name guess):

* found: the cursor moves to that file (the records written between the last run and
  the rotation are read from it, from where the last run stopped), and the file at
  the old path, which holds new content, is read from its start;
* not found: nothing moves, and reading reports the file as tampered exactly as
  before (a file whose already-read part changed, and whose old content is nowhere
  beside it, is not silently re-read).

When the old content is already held, and read, under another name of the family (a run
between ``copytruncate``'s copy and its truncation), nothing moves and the old path is new.
Cursors of family names that no longer exist (``audit.log.1`` after it became
``audit.log.2``) are looked for the same way; when their content is nowhere (rotated out
of ``maxcount``) they are left alone: content that aged out of the folder is not a finding.
Compressed rotations (``.gz``) are read through gzip, offsets counting uncompressed bytes.

Files of the family never read that were made or renamed after the family was last read
(their inode change time against the cursors' ``read_at``) are generations rotated in since,
e.g. lines written to a file seen empty and then rotated: they are read from their start.
Content dropped by logrotate's keep count while the family was rotated is not a finding; a
file merely deleted, with no rotation since, is.

A change no rotation explains stays tampering until an operator accepts it
(``--accept-changed``, :func:`accept_changed`): then a ``*.file_replaced`` finding records
what had been read, and the file is read from its start, with every never-read file of its
family (:func:`read_unread_family`).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import BinaryIO

import orjson

from collector.evidence import SourceRecord

# name = base + rotation suffix: ".1", ".12", "-20261125", "-20261125-1700", "-2026-11-25T17:00"
# (then optionally ".gz"), or just ".gz"
_ROTATION = re.compile(r"^(?P<base>.+?)(?P<rot>\.\d{1,4}|-\d{4}-?\d\d-?\d\d(?:[T_-]?[\d:.-]*)?)?(?P<gz>\.gz)?$")
HEAD_BYTES = 4096  # the cursor's head_sha256 covers the first min(offset, HEAD_BYTES) bytes


def open_log(path: Path) -> BinaryIO:
    """A binary reader of *path*, through gzip when its name ends in ``.gz``."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def rotation_base(name: str) -> str:
    """The name a rotated file was rotated from (``audit.log.1.gz`` → ``audit.log``)."""
    match = _ROTATION.match(name)
    return match.group("base") if match else name


def covers_location(locations: Sequence[str], location: str) -> bool:
    """Whether an entry read from *location* came from one of a source's configured *locations*:
    the file itself, anything under a folder or prefix, or a rotated generation beside a named
    file (``audit.log.1``, ``audit.log-20261125``, ``audit.log.1.gz`` for ``audit.log``).
    ``fedledger status`` and the bundle's freshness both split a kind's entries this way."""
    for configured in locations:
        base = configured.rstrip("/")
        if location == base or location.startswith(base + "/"):
            return True
        if "://" not in configured:
            here, there = PurePath(location), PurePath(base)
            if here.parent == there.parent and rotation_base(here.name) == there.name:
                return True
    return False


def rotation_order_key(name: str) -> tuple[str, int, str, int]:
    """Sort key putting a family oldest first: dated rotations by date, then numbered ones
    from the highest number down, then the live file (``audit.log-20261120``,
    ``audit.log.2``, ``audit.log.1``, ``audit.log``)."""
    match = _ROTATION.match(name)
    if not match:
        return (name, 2, "", 0)
    base, rot = match.group("base"), match.group("rot") or ""
    if rot.startswith("."):
        return (base, 1, "", -int(rot[1:]))
    if rot:
        return (base, 0, rot, 0)
    return (base, 2 if not match.group("gz") else 1, "", 0)


def sort_rotations_oldest_first(paths: list[str]) -> list[str]:
    """*paths* with each folder's rotation families oldest first (folders and families keep their order)."""
    return sorted(paths, key=lambda p: (str(Path(p).parent), rotation_order_key(Path(p).name)))


@dataclass
class CursorDoc:
    """What :func:`plan_rotations` needs of a stored cursor (see :class:`collector.ingest.FileCursor`)."""

    offset: int
    prefix_sha256: str
    head_sha256: str | None
    line: int = 0  # lines read before the offset
    read_at: int | None = None  # Unix time of the read that made the cursor (None: from before it existed)


@dataclass
class Rotation:
    """The content read before at *path* (up to *offset*) now lives at *moved_to*."""

    path: str
    moved_to: str
    offset: int

    def to_json(self) -> dict[str, object]:
        return {"file": self.path, "moved_to": self.moved_to, "offset": self.offset}


@dataclass
class RotationPlan:
    """Files to read, in order, and the cursor each starts from (``None``: its own stored one)."""

    order: list[Path]
    # str(path) -> the stored cursor (text) it starts from instead of its own; None: from its start
    starts: dict[str, str | None] = field(default_factory=dict)
    rotations: list[Rotation] = field(default_factory=list)
    # str(input) -> rotated files beside the inputs (not inputs themselves) to read just before it
    extra_before: dict[str, list[Path]] = field(default_factory=dict)
    # names that no longer exist whose cursors are done with (moved on, or content aged out): the
    # source resets them, so a later file of that name is not judged by what another file held
    forget: list[Path] = field(default_factory=list)


def plan_rotations(files: list[Path], cursors: Mapping[str, str], source_id: Callable[[Path], str],
                   load: Callable[[str], CursorDoc]) -> RotationPlan:
    """Where each stored cursor of *files*' rotation families now points (see the module doc).

    *files* are the inputs in reading order; *cursors* the ledger's cursors by source id;
    *source_id* names a path's cursor; *load* reads a stored cursor. Only families with a
    cursor that no longer fits its file (or whose file is gone) cost more than a stat and
    one small read per member.
    """
    plan = RotationPlan(order=list(files))
    families: dict[tuple[str, str], list[Path]] = {}
    for path in files:
        families.setdefault((str(path.parent), rotation_base(path.name)), []).append(path)
    listings: dict[str, dict[str, list[str]]] = {}  # folder -> base -> names (one listing per folder)
    by_family: dict[tuple[str, str], list[str]] | None = None  # cursor ids' (folder part, base) -> names
    for (folder, base), members in families.items():
        if folder not in listings:
            listings[folder] = _families_in(Path(folder))
        names = listings[folder].get(base, [])
        siblings = [Path(folder) / name for name in names]
        # cursors of family names that no longer exist: their content may live on under another name
        if by_family is None:
            by_family = _cursor_names(cursors)
        sample = source_id(Path(folder) / base)  # the id a family name has: "<kind>:<folder>/<name>"
        present = set(names)
        gone = [(Path(folder) / name, cursors[source_id(Path(folder) / name)])
                for name in by_family.get((sample[: sample.rfind("/") + 1], base), [])
                if name not in present and source_id(Path(folder) / name) in cursors]
        _plan_family(plan, Path(folder), siblings, members, cursors, source_id, load, gone)
    return plan


def _cursor_names(cursors: Mapping[str, str]) -> dict[tuple[str, str], list[str]]:
    """Cursor ids by (everything up to the last ``/``, the rotation base of the rest): one pass over
    all cursors, so finding the names gone from a family costs a lookup, not a scan per family."""
    found: dict[tuple[str, str], list[str]] = {}
    for sid in cursors:
        head, slash, name = sid.rpartition("/")
        if slash:
            found.setdefault((head + slash, rotation_base(name)), []).append(name)
    return found


def _plan_family(plan: RotationPlan, folder: Path, siblings: list[Path], inputs: list[Path],
                 cursors: Mapping[str, str], source_id: Callable[[Path], str],
                 load: Callable[[str], CursorDoc], gone: list[tuple[Path, str]]) -> None:
    by_name = {p.name: p for p in inputs}
    for sibling in siblings:
        by_name.setdefault(sibling.name, sibling)
    members = list(by_name.values())
    own: dict[str, CursorDoc] = {}
    texts: dict[str, str] = {}
    for member in members:
        text = cursors.get(source_id(member))
        if text:
            try:
                own[member.name] = load(text)
            except (ValueError, KeyError, TypeError):
                continue  # the reader reports an unreadable cursor itself
            texts[member.name] = text
    stale = {name: doc for name, doc in own.items() if doc.offset > 0 and not _fits(by_name[name], doc, cheap=True)}
    # A cursor at offset 0 claims no content: its file is as good as never read.
    unread = {m.name for m in members if m.name not in own or own[m.name].offset == 0}
    # Members that can take a moved cursor: unread ones, or ones whose cursor is stale.
    receivers = [m for m in members if m.name in unread or m.name in stale]
    homeless: list[tuple[Path, CursorDoc, str]] = [(by_name[name], doc, texts[name]) for name, doc in stale.items()]
    looked: list[int] = [doc.read_at for doc in own.values() if doc.read_at is not None]
    for path, text in gone:
        try:
            doc = load(text)
        except (ValueError, KeyError, TypeError):
            continue
        if doc.offset > 0:
            plan.forget.append(path)
            if receivers:
                homeless.append((path, doc, text))
        if doc.read_at is not None:
            looked.append(doc.read_at)
    # Files never read that were renamed or made after the family was last read (their inode change
    # time): generations rotated in since, e.g. lines written to a file seen empty, then rotated.
    new_generations: set[str] = set()
    if looked:
        last_look = max(looked)
        for member in members:
            if member.name in unread:
                try:
                    if member.stat().st_ctime >= last_look:
                        new_generations.add(member.name)
                except OSError:
                    continue
    if not homeless and not new_generations:
        return
    aged_out = False  # a file read before is gone and its content is nowhere: the family was rotated since
    placed: dict[str, str] = {}  # receiver name -> the cursor text it takes
    reach: dict[str, int] = {m.name: own[m.name].offset for m in members if m.name not in unread and m.name not in stale}
    homes: list[Path] = []
    found_home: set[str] = set()  # existing members whose old content lives on under another name
    for old, doc, text in sorted(homeless, key=lambda item: -item[1].offset):
        for receiver in receivers:
            if receiver.name == old.name or receiver.name in placed:
                continue
            if _fits(receiver, doc, cheap=False):
                placed[receiver.name] = text
                reach[receiver.name] = doc.offset
                homes.append(receiver)
                if old.name in by_name:
                    found_home.add(old.name)
                plan.rotations.append(Rotation(str(old), str(receiver), doc.offset))
                break
        else:
            aged_out = aged_out or old.name not in by_name
    # A file read before that is gone with its content counts as aged out only when the family was
    # really rotated since (a generation rotated in, or content moved): a file merely deleted is not.
    aged_out = aged_out and bool(new_generations or homes)
    # A content already read, and held, under another name (e.g. a run between copytruncate's copy
    # and its truncation read audit.log.1 as a new file; or an older cursor of the same content that
    # just moved): nothing more to move, but what the old path holds now is new.
    for name, doc in stale.items():
        if name in found_home:
            continue
        for member in members:
            held = reach.get(member.name)
            if member.name != name and held is not None and held >= doc.offset and _fits(member, doc, cheap=False):
                found_home.add(name)
                homes.append(member)
                if member.name not in placed:
                    plan.rotations.append(Rotation(str(by_name[name]), str(member), doc.offset))
                break
    order = plan.order
    extras: list[Path] = []

    def read_too(member: Path) -> None:  # a file beside the inputs joins them
        if member not in order:
            order.insert(_first_index(order, inputs), member)
            extras.append(member)

    oldest_home = min((rotation_order_key(home.name) for home in homes), default=None)
    for receiver_name, text in placed.items():
        receiver = by_name[receiver_name]
        plan.starts[str(receiver)] = text
        read_too(receiver)  # e.g. audit.log.1.gz beside a named audit.log: its tail
    for name in found_home:
        if name not in placed:  # its old content lives on elsewhere: what is here now is new
            plan.starts[str(by_name[name])] = None
            read_too(by_name[name])
    for member in members:
        if member.name in placed or member.name in found_home:
            continue
        newer = oldest_home is not None and rotation_order_key(member.name) > oldest_home
        if ((newer or aged_out) and (member.name in unread or member.name in stale)) or member.name in new_generations:
            # A generation rotated out after the old content (two or more rotations between runs), or
            # after content that has since aged out: never read, or sitting where content that has since
            # aged out was read: new, from its start.
            plan.starts[str(member)] = None
            read_too(member)
        elif member.name in stale:
            read_too(member)  # changed, and its old content nowhere: read it, so it is reported as tampered
    if not extras and not placed and not found_home and not any(str(m) in plan.starts for m in members):
        return  # nothing moved in this family: named files keep the order given
    # Oldest first within the family, so the tail of the old file comes before the new file.
    positions = sorted(i for i, p in enumerate(order) if p.name in by_name and p.parent == folder)
    family_sorted = sorted((order[i] for i in positions), key=lambda p: rotation_order_key(p.name))
    for i, path in zip(positions, family_sorted):
        order[i] = path
    if extras:
        first_input = next(p for p in order if p in inputs)
        plan.extra_before.setdefault(str(first_input), []).extend(p for p in order if p in extras)


def _first_index(order: list[Path], inputs: list[Path]) -> int:
    return min((order.index(p) for p in inputs if p in order), default=len(order))


def _families_in(folder: Path) -> dict[str, list[str]]:
    """The regular, not hidden files of *folder* by rotation base name (sorted)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return {}
    found: dict[str, list[str]] = {}
    for name in names:
        if not name.startswith(".") and (folder / name).is_file():
            found.setdefault(rotation_base(name), []).append(name)
    return found


def _fits(path: Path, doc: CursorDoc, *, cheap: bool) -> bool:
    """Whether *path* starts with the content *doc* describes. *cheap*: only the size and the
    first bytes (the reader checks the whole prefix); otherwise the whole prefix's SHA-256."""
    try:
        if not path.name.endswith(".gz") and path.stat().st_size < doc.offset:
            return False
        with open_log(path) as handle:
            head_size = min(doc.offset, HEAD_BYTES)
            head = _read_exactly(handle, head_size)
            if len(head) < head_size:
                return False
            if doc.head_sha256 is not None and hashlib.sha256(head).hexdigest() != doc.head_sha256:
                return False
            if cheap:
                return True
            prefix = hashlib.sha256(head)
            remaining = doc.offset - head_size
            while remaining:
                block = handle.read(min(remaining, 1 << 20))
                if not block:
                    return False
                prefix.update(block)
                remaining -= len(block)
            return prefix.hexdigest() == doc.prefix_sha256
    except (OSError, EOFError, gzip.BadGzipFile):
        return False


def _read_exactly(handle: BinaryIO, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        block = handle.read(remaining)
        if not block:
            break
        chunks.append(block)
        remaining -= len(block)
    return b"".join(chunks)


def holds_read_content(path: Path, doc: CursorDoc) -> bool:
    """Whether *path* still starts with exactly the bytes its cursor *doc* says were read."""
    return _fits(path, doc, cheap=False)


def replaced_file_finding(kind_prefix: str, path: Path, doc: CursorDoc) -> SourceRecord:
    """The ``<kind>.file_replaced`` finding of an operator's ``--accept-changed`` for *path*: its
    already-read part changed (nothing beside it holds it), and its cursor is reset so what it
    holds now is read from its start.

    The finding keeps what the ledger knew of the old content (its length, line count and
    SHA-256) and the new file's size and first-bytes SHA-256; never content. One per old
    content: accepting the same change again adds nothing.
    """
    from collector.timeutil import format_time, utc_now

    try:
        size = path.stat().st_size
        with open_log(path) as handle:
            head = hashlib.sha256(_read_exactly(handle, HEAD_BYTES)).hexdigest()
    except (OSError, EOFError, gzip.BadGzipFile):
        size, head = -1, None
    attrs: dict[str, object] = {
        "file": str(path), "previous_offset": doc.offset, "previous_lines": doc.line,
        "previous_prefix_sha256": doc.prefix_sha256, "current_size": size, "current_head_sha256": head,
        "accepted_by": "--accept-changed",
    }
    kind = f"{kind_prefix}.file_replaced"
    event: dict[str, object] = {
        "time": format_time(utc_now()),
        "kind": kind,
        "actor": None,
        "action": "accept changed file",
        "resource": str(path),
        "outcome": {"status": "failure",
                    "error": "the part of the file read before changed; its cursor was reset by the operator"},
        "correlation": {},
        "attrs": attrs,
    }
    statement = orjson.dumps({"finding": kind, **attrs}, option=orjson.OPT_SORT_KEYS) + b"\n"
    return SourceRecord(location=str(path), line=None, raw=statement, event=event,
                        dedup_key=f"{kind}:{path}:{doc.offset}:{doc.prefix_sha256}", source_extra={"finding": True})


def accept_changed(kind_prefix: str, files: list[Path], accept: frozenset[str], cursors: Mapping[str, str],
                   plan: RotationPlan, source_id: Callable[[Path], str], load: Callable[[str], CursorDoc]
                   ) -> tuple[dict[str, SourceRecord], list[dict[str, object]]]:
    """An operator's ``--accept-changed``: for each of *files* whose resolved path is in *accept*
    and whose already-read part changed (no rotation in *plan* explains it), its finding
    (:func:`replaced_file_finding`) by ``str(path)``, with *plan* set to read it from its start
    and every never-read file of its family too (:func:`read_unread_family`); and a note per
    accepted file (``reset`` false when there was nothing to accept)."""
    findings: dict[str, SourceRecord] = {}
    notes: list[dict[str, object]] = []
    for path in files:
        if str(path.resolve()) not in accept:
            continue
        text = cursors.get(source_id(path))
        doc = load(text) if text else None
        if doc is None or doc.offset == 0 or str(path) in plan.starts or holds_read_content(path, doc):
            notes.append({"file": str(path), "reset": False})
            continue
        findings[str(path)] = replaced_file_finding(kind_prefix, path, doc)
        plan.starts[str(path)] = None
        notes.append({"file": str(path), "reset": True, "previous_offset": doc.offset})
    read_unread_family(plan, [Path(name) for name in findings], cursors, source_id, load)
    return findings, notes


def read_unread_family(plan: RotationPlan, accepted: list[Path], cursors: Mapping[str, str],
                       source_id: Callable[[Path], str], load: Callable[[str], CursorDoc]) -> None:
    """After an accepted change, also read every file of the accepted files' rotation families
    that was never read (from its start, oldest first, just before the accepted file): whatever
    rotated past since the last run is then not skipped; lines already in the ledger count as
    duplicates."""
    for path in accepted:
        folder = path.parent
        added = []
        for name in _families_in(folder).get(rotation_base(path.name), []):
            member = folder / name
            text = cursors.get(source_id(member))
            try:
                unread = not text or load(text).offset == 0
            except (ValueError, KeyError, TypeError):
                unread = False
            if unread and member not in plan.order:
                plan.starts[str(member)] = None
                added.append(member)
        added.sort(key=lambda member: rotation_order_key(member.name))
        where = plan.order.index(path) if path in plan.order else len(plan.order)
        plan.order[where:where] = added
        if added:
            plan.extra_before.setdefault(str(path), []).extend(added)


def check_accepted(accept: frozenset[str], collected: list[Path]) -> None:
    """Every ``--accept-changed`` file must be one of the files collected (exit 2 otherwise)."""
    missing = sorted(accept - {str(path.resolve()) for path in collected})
    if missing:
        from collector.errors import UsageError

        raise UsageError("--accept-changed names a file that is not collected in this run", location=missing[0])


def rotation_notes(kind_prefix: str, rotations: list[dict[str, object]], accepted: list[dict[str, object]]
                   ) -> list[str]:
    """The human output's notes on followed rotations and accepted changes."""
    notes = []
    for item in accepted:
        if item["reset"]:
            notes.append(f"note: {item['file']}: changed after {item['previous_offset']} bytes were read; accepted: "
                         f"a {kind_prefix}.file_replaced finding was recorded and the file was read from its start")
        else:
            notes.append(f"note: {item['file']}: --accept-changed given, but nothing to accept "
                         "(it still holds what was read, or a rotation explains it)")
    for moved in rotations:
        notes.append(f"note: {moved['file']}: rotated; what was not read yet of it was read from {moved['moved_to']} "
                     f"(from byte {moved['offset']}), and {moved['file']} was read from its start as a new file")
    return notes
