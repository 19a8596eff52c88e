"""Read an untrusted bundle (folder, .tar.gz or .zip) into a private folder, member by member.

Nothing is cleaned up and used: an unsafe member is rejected and reported with
its name. Rejected: absolute paths, ``..`` components, backslashes and NULs in
names, links (symbolic and hard), devices, FIFOs, duplicate names (both copies),
members over the size cap, more than ``max_members`` members, and archives whose
uncompressed size is over ``max_ratio`` times their size on disk (checked on the
declared sizes before anything is written, and again on the bytes actually read).
Regular files that pass are copied by us (never ``extractall``), so the Python
quirks noted in FIELD-NOTES (tarfile's ``data`` filter re-rooting absolute paths,
zipfile stripping ``..``) never come into play.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from bundler.ledger_verify import Failure


@dataclass(frozen=True)
class ReadLimits:
    max_members: int = 10_000
    max_member_bytes: int = 4 << 30
    max_total_bytes: int = 32 << 30
    max_ratio: int = 100


@dataclass
class BundleFiles:
    """Safe regular files of a bundle: bundle-relative name → path on disk."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    rejected_whole: bool = False


class _TooBig(Exception):
    pass


def unsafe_name_reason(name: str) -> str | None:
    """Why *name* may not be a bundle member, or None when it is a plain relative path."""
    if not name or "\x00" in name:
        return "empty name or a NUL byte in the name"
    if "\\" in name:
        return "backslash in the name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts):
        return "'..' in the path (zip-slip)"
    if any(p in ("", ".") for p in name.rstrip("/").split("/")):
        return "empty or '.' path component"
    return None


def _copy(source: IO[bytes], target: Path, cap: int, budget: list[int]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "xb") as out:
        while True:
            block = source.read(1 << 20)
            if not block:
                break
            written += len(block)
            budget[0] -= len(block)
            if written > cap or budget[0] < 0:
                raise _TooBig()
            out.write(block)


def read_bundle(path: Path, workdir: Path, limits: ReadLimits = ReadLimits()) -> BundleFiles:
    """A folder is used in place (links and special files rejected); an archive is copied into *workdir*."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return _read_folder(path, limits)
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] == b"\x1f\x8b":
        return _read_tar(path, workdir, limits)
    if magic == b"PK\x03\x04" or magic == b"PK\x05\x06":
        return _read_zip(path, workdir, limits)
    result = BundleFiles(workdir)
    result.failures.append(Failure("not-a-bundle", "not a folder, .tar.gz or .zip", where=path.name))
    result.rejected_whole = True
    return result


def _read_folder(folder: Path, limits: ReadLimits) -> BundleFiles:
    result = BundleFiles(folder)
    count = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            if (base / name).is_symlink():
                rel = (base / name).relative_to(folder).as_posix()
                result.failures.append(Failure("unsafe-member", "is a symbolic link", where=rel))
                dirnames.remove(name)
        for name in filenames:
            full = base / name
            rel = full.relative_to(folder).as_posix()
            count += 1
            if count > limits.max_members:
                result.failures.append(Failure("too-many-members", f"more than {limits.max_members} files", where=rel))
                result.rejected_whole = True
                return result
            mode = full.lstat().st_mode
            if stat.S_ISLNK(mode):
                result.failures.append(Failure("unsafe-member", "is a symbolic link", where=rel))
            elif not stat.S_ISREG(mode):
                result.failures.append(Failure("unsafe-member", "is not a regular file", where=rel))
            elif full.stat().st_nlink > 1:
                result.failures.append(Failure("unsafe-member", "is a hard link", where=rel))
            elif full.stat().st_size > limits.max_member_bytes:
                result.failures.append(Failure("unsafe-member", f"larger than {limits.max_member_bytes} bytes", where=rel))
            else:
                result.files[rel] = full
    return result


def _register(result: BundleFiles, seen: dict[str, bool], name: str) -> bool:
    """False (and a failure) when *name* was already seen; both copies are then rejected."""
    key = name.rstrip("/")
    if key in seen:
        if seen[key]:
            result.failures.append(Failure("duplicate-member", "the archive holds this name more than once", where=key))
            seen[key] = False
        result.files.pop(key, None)
        return False
    seen[key] = True
    return True


def _read_tar(path: Path, workdir: Path, limits: ReadLimits) -> BundleFiles:
    result = BundleFiles(workdir)
    archive_size = max(path.stat().st_size, 1)
    budget = [min(limits.max_total_bytes, limits.max_ratio * archive_size)]
    seen: dict[str, bool] = {}
    count = 0
    declared = 0
    cap = budget[0]
    try:
        with tarfile.open(path, "r:gz") as tar:
            while True:
                member = tar.next()
                if member is None:
                    break
                count += 1
                if count > limits.max_members:
                    result.failures.append(Failure("too-many-members", f"more than {limits.max_members} members",
                                                   where=path.name))
                    result.rejected_whole = True
                    break
                # Declared sizes are the real stream lengths in tar: count them even for
                # members we skip, since stepping past a member still inflates its data.
                declared += member.size
                if declared > cap:
                    result.failures.append(Failure("compression-bomb",
                                                   f"members declare over {limits.max_ratio}x the archive size",
                                                   where=member.name[:200]))
                    result.rejected_whole = True
                    break
                name = member.name
                reason = unsafe_name_reason(name)
                if reason is None and (member.issym() or member.islnk()):
                    reason = f"is a {'symbolic' if member.issym() else 'hard'} link to {member.linkname[:80]!r}"
                elif reason is None and (member.ischr() or member.isblk() or member.isfifo()):
                    reason = "is a device or FIFO"
                elif reason is None and not (member.isreg() or member.isdir()):
                    reason = "is not a regular file"
                elif reason is None and member.size > limits.max_member_bytes:
                    reason = f"declares {member.size} bytes, over the cap of {limits.max_member_bytes}"
                duplicate = not _register(result, seen, name)
                if reason is not None:
                    result.failures.append(Failure("unsafe-member", reason, where=name))
                    seen[name.rstrip("/")] = False
                    continue
                if duplicate or member.isdir():
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                try:
                    _copy(source, workdir / name, limits.max_member_bytes, budget)
                except _TooBig:
                    result.failures.append(Failure("compression-bomb",
                                                   f"uncompressed data passes {limits.max_ratio}x the archive size "
                                                   "or the size cap", where=name))
                    result.rejected_whole = True
                    break
                except FileExistsError:
                    result.failures.append(Failure("duplicate-member", "collides with another member", where=name))
                    continue
                result.files[name] = workdir / name
    except (tarfile.TarError, OSError, EOFError) as exc:
        result.failures.append(Failure("unreadable-archive", f"{type(exc).__name__}: {exc}", where=path.name))
        result.rejected_whole = True
    if result.rejected_whole:
        result.files.clear()
    return result


def _read_zip(path: Path, workdir: Path, limits: ReadLimits) -> BundleFiles:
    result = BundleFiles(workdir)
    archive_size = max(path.stat().st_size, 1)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > limits.max_members:
                result.failures.append(Failure("too-many-members", f"{len(infos)} members, over {limits.max_members}",
                                               where=path.name))
                result.rejected_whole = True
                return result
            declared = sum(i.file_size for i in infos)
            if declared > limits.max_ratio * archive_size or declared > limits.max_total_bytes:
                result.failures.append(Failure("compression-bomb",
                                               f"declares {declared} bytes uncompressed, over {limits.max_ratio}x "
                                               f"the archive's {archive_size} bytes", where=path.name))
                result.rejected_whole = True
                return result
            budget = [min(limits.max_total_bytes, limits.max_ratio * archive_size)]
            seen: dict[str, bool] = {}
            accepted: list[zipfile.ZipInfo] = []
            for info in infos:
                name = info.filename
                reason = unsafe_name_reason(name)
                kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
                if reason is None and kind == stat.S_IFLNK:
                    reason = "is a symbolic link"
                elif reason is None and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    reason = "is a device, FIFO or other special file"
                elif reason is None and info.file_size > limits.max_member_bytes:
                    reason = f"declares {info.file_size} bytes, over the cap of {limits.max_member_bytes}"
                duplicate = not _register(result, seen, name)
                if reason is not None:
                    result.failures.append(Failure("unsafe-member", reason, where=name))
                    seen[name.rstrip("/")] = False
                    continue
                if not duplicate and not info.is_dir():
                    accepted.append(info)
            for info in accepted:
                if not seen.get(info.filename, False):
                    continue
                with zf.open(info) as source:
                    try:
                        _copy(source, workdir / info.filename, min(info.file_size, limits.max_member_bytes), budget)
                    except _TooBig:
                        result.failures.append(Failure("compression-bomb", "member inflates past its declared size "
                                                       f"or {limits.max_ratio}x the archive", where=info.filename))
                        result.rejected_whole = True
                        break
                result.files[info.filename] = workdir / info.filename
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        result.failures.append(Failure("unreadable-archive", f"{type(exc).__name__}: {exc}", where=path.name))
        result.rejected_whole = True
    if result.rejected_whole:
        result.files.clear()
    return result
