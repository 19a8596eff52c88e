"""Read an untrusted bundle (folder, .tar.gz or .zip) into a private folder, member by member.

Nothing is cleaned up and used: an unsafe member is rejected and reported with
its name. Rejected: absolute paths, ``..`` components, backslashes, NULs and other
control characters in names, names over ``MAX_NAME_CHARS``, links (symbolic and
hard), devices, FIFOs, encrypted zip members, duplicate names (both copies),
members over the size cap, more than ``max_members`` members, and archives whose
uncompressed size is over ``max_ratio`` times their size on disk (checked on the
declared sizes before anything is written, and again on the bytes actually
inflated, tar headers included).
Regular files that pass are copied by us (never ``extractall``), so the Python
quirks noted in FIELD-NOTES (tarfile's ``data`` filter re-rooting absolute paths,
zipfile stripping ``..``) never come into play.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from bundler.ledger_verify import Failure, printable


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


MAX_NAME_CHARS = 1024


def shown_name(name: str) -> str:
    """*name* as a report may carry it: control characters escaped, an over-long name cut."""
    if len(name) <= MAX_NAME_CHARS:
        return printable(name)
    return printable(name[:200]) + f"… ({len(name)} characters)"


def unsafe_name_reason(name: str) -> str | None:
    """Why *name* may not be a bundle member, or None when it is a plain relative path."""
    if not name or "\x00" in name:
        return "empty name or a NUL byte in the name"
    if len(name) > MAX_NAME_CHARS:
        return f"name longer than {MAX_NAME_CHARS} characters"
    if printable(name) != name:
        return "control character (newline, escape…) in the name"
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


class _InflateCap(io.BufferedIOBase):
    """The decompressed tar stream, refusing to inflate more than *cap* bytes in all.

    tarfile reads pax and GNU long-name headers whole, before it returns the member
    they describe, so member sizes alone cannot bound what a small archive inflates to.
    """

    def __init__(self, stream: gzip.GzipFile, cap: int) -> None:
        super().__init__()
        self._stream = stream
        self._cap = cap

    def read(self, size: int | None = -1) -> bytes:
        room = self._cap - self._stream.tell() + 1
        data = self._stream.read(room if size is None or size < 0 else min(size, room))
        if self._stream.tell() > self._cap:
            raise _TooBig()
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self._stream.tell() + offset if whence == os.SEEK_CUR else -1
        if target < 0 or target > self._cap:
            raise _TooBig()
        return self._stream.seek(target)

    def tell(self) -> int:
        return self._stream.tell()


def read_bundle(path: Path, workdir: Path, limits: ReadLimits = ReadLimits()) -> BundleFiles:
    """A folder is used in place (links and special files rejected); an archive is copied into *workdir*."""
    path = Path(path)
    if path.is_dir():
        # The path the assessor typed may be a link; links inside the folder are still rejected.
        return _read_folder(path.resolve() if path.is_symlink() else path, limits)
    result = BundleFiles(workdir)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        result.failures.append(Failure("unreadable-archive", f"cannot read: {exc.strerror or type(exc).__name__}",
                                       where=path.name))
        result.rejected_whole = True
        return result
    if magic[:2] == b"\x1f\x8b":
        return _read_tar(path, workdir, limits)
    if magic == b"PK\x03\x04" or magic == b"PK\x05\x06":
        return _read_zip(path, workdir, limits)
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


def _short(exc: BaseException) -> str:
    """An exception's message for a report: OS errors without the private path they name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)[:300]


def _register(result: BundleFiles, seen: dict[str, bool], name: str) -> bool:
    """False (and a failure) when *name* was already seen; both copies are then rejected."""
    key = name.rstrip("/")
    if key in seen:
        if seen[key]:
            result.failures.append(Failure("duplicate-member", "the archive holds this name more than once",
                                           where=shown_name(key)))
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
        with gzip.open(path, "rb") as inflated, tarfile.open(fileobj=_InflateCap(inflated, cap), mode="r:") as tar:
            while True:
                member = tar.next()
                if member is None:
                    _check_tar_end(tar, path, result)
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
                                                   where=shown_name(member.name)))
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
                    result.failures.append(Failure("unsafe-member", reason, where=shown_name(name)))
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
                except (FileExistsError, NotADirectoryError):
                    result.failures.append(Failure("duplicate-member", "collides with another member", where=name))
                    continue
                result.files[name] = workdir / name
    except _TooBig:
        result.failures.append(Failure("compression-bomb", f"inflates past {limits.max_ratio}x the archive size "
                                       "(headers included)", where=path.name))
        result.rejected_whole = True
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        result.failures.append(Failure("unreadable-archive", f"{type(exc).__name__}: {_short(exc)}", where=path.name))
        result.rejected_whole = True
    if result.rejected_whole:
        result.files.clear()
    return result


def _check_tar_end(tar: tarfile.TarFile, path: Path, result: BundleFiles) -> None:
    """Only zero blocks may follow the end-of-archive marker, to the end of the gzip stream.

    tarfile stops at the first zero block; another archive appended after it (one more gzip
    member, or more tar data in the same stream) would never be read here, while a reader that
    goes on past zero blocks (``tar -i``) extracts it, over the files verified. Reading on to
    the end also makes gzip check whatever follows its stream. The inflate cap still applies.
    """
    stream = tar.fileobj
    assert stream is not None
    while True:
        block = stream.read(1 << 20)
        if not block:
            return
        if block.strip(b"\0"):
            result.failures.append(Failure("trailing-data", "data after the tar end-of-archive marker: another "
                                           "archive appended, which this check would not have read",
                                           where=path.name))
            result.rejected_whole = True
            return


ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the name and extra field lengths
ZIP_LOCAL_SIGNATURE = b"PK\x03\x04"
ZIP_END_SIGNATURE = b"PK\x05\x06"
ZIP_END_RECORD = 22  # the end of central directory record, without a comment


def _zip_layout_problem(path: Path, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> str | None:
    """Why the zip holds bytes no member accounts for, or None.

    zipfile reads the central directory at the end and skips whatever it does not point at:
    local entries in front of the first member or between members (a reader that streams local
    headers, such as Java's ZipInputStream or libarchive on a pipe, extracts those), bytes after
    the end record, an archive comment (``unzip`` prints it). None of it would be verified, so
    the members must follow each other from the first byte to the central directory, and the
    end record, with no comment, must end the file.
    """
    at = 0
    with open(path, "rb") as handle:
        for info in sorted(infos, key=lambda i: i.header_offset):
            if info.header_offset != at:
                gap = "bytes no member accounts for" if info.header_offset > at else "members that overlap"
                return f"{gap} before {shown_name(info.filename)} (offset {at}, member at {info.header_offset})"
            handle.seek(at)
            header = handle.read(ZIP_LOCAL_HEADER.size)
            if len(header) != ZIP_LOCAL_HEADER.size:
                return f"no local header for {shown_name(info.filename)}"
            signature, name_length, extra_length = ZIP_LOCAL_HEADER.unpack(header)
            if signature != ZIP_LOCAL_SIGNATURE:
                return f"no local header for {shown_name(info.filename)}"
            extra = handle.read(name_length + extra_length)[name_length:]
            at += ZIP_LOCAL_HEADER.size + name_length + extra_length + info.compress_size
            if info.flag_bits & 0x08:  # a data descriptor follows: optional signature, CRC, two sizes
                handle.seek(at)
                at += 4 if handle.read(4) == b"PK\x07\x08" else 0
                at += 4 + (16 if _zip64_extra(extra) else 8)
        if at != zf.start_dir:
            return f"{zf.start_dir - at} bytes no member accounts for before the central directory"
        if zf.comment:
            return "an archive comment (zip tools show it; the manifest does not cover it)"
        size = path.stat().st_size
        handle.seek(max(size - ZIP_END_RECORD, 0))
        tail = handle.read(ZIP_END_RECORD)
    if len(tail) != ZIP_END_RECORD or tail[:4] != ZIP_END_SIGNATURE or tail[20:22] != b"\0\0":
        return "data after the end of the archive"
    return None


def _zip64_extra(extra: bytes) -> bool:
    """Whether a local header's extra field holds a zip64 record (its data descriptor has 8-byte sizes)."""
    while len(extra) >= 4:
        kind, length = struct.unpack("<HH", extra[:4])
        if kind == 0x0001:
            return True
        extra = extra[4 + length:]
    return False


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
            layout = _zip_layout_problem(path, zf, infos)
            if layout is not None:
                result.failures.append(Failure("trailing-data", layout, where=path.name))
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
                elif reason is None and info.flag_bits & 0x1:
                    reason = "is encrypted"
                duplicate = not _register(result, seen, name)
                if reason is not None:
                    result.failures.append(Failure("unsafe-member", reason, where=shown_name(name)))
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
                    except (FileExistsError, NotADirectoryError):
                        result.failures.append(Failure("duplicate-member", "collides with another member",
                                                       where=info.filename))
                        continue
                result.files[info.filename] = workdir / info.filename
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, zlib.error) as exc:
        result.failures.append(Failure("unreadable-archive", f"{type(exc).__name__}: {_short(exc)}", where=path.name))
        result.rejected_whole = True
    if result.rejected_whole:
        result.files.clear()
    return result
