"""Check every entry's raw evidence bytes against the ``raw.sha256`` and ``raw.size`` it holds.

An entry commits to the SHA-256 and size of the raw bytes it was parsed from; the bytes live in
the content-addressed evidence store, as a slice ``object[offset:offset + size]`` of a segment
object named by its own SHA-256. :class:`RawEvidenceCheck` is fed the entries in order with the
place the ledger records for their bytes, reads each object once through the *read_object*
callable it is given (the only I/O, supplied by the caller), and reports per entry:

* ``raw-missing``: the ledger records no object for the entry's bytes, or the object is gone;
* ``raw-modified``: the slice does not hash to the entry's ``raw.sha256`` (or has another size).

An object whose bytes no longer hash to its name is reported once more on its own (``where`` is
the object), since bytes outside every entry's slice may have changed too. Not verified here: that
the raw bytes are what the source really held when collected (the collectors check source proofs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import orjson

from bundler.ledger_verify import Failure

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEX = frozenset("0123456789abcdef")
_RAW_START = b'"raw":{"sha256":"'
_SIZE_START = b'","size":'


def raw_field(body: bytes) -> tuple[str, int] | None:
    """The ``raw.sha256`` and ``raw.size`` an entry holds, or None when it holds no readable ones.

    Canonical entries end ``"raw":{"sha256":"<64 hex>","size":N},"seq":...``; the last
    ``"raw":{"sha256":"`` is the top-level one (only ``seq``, a flat ``source`` and ``v`` follow
    it, and a JSON string cannot hold its unescaped quotes). Other shapes fall back to a parse."""
    at = body.rfind(_RAW_START)
    start = at + len(_RAW_START)
    digits_at = start + 64 + len(_SIZE_START)
    if at >= 0 and body[start + 64 : digits_at] == _SIZE_START:
        end = body.find(b"}", digits_at)
        digits = body[digits_at:end]
        if end > 0 and digits.isdigit() and digits.isascii():
            return body[start : start + 64].decode("ascii", "replace"), int(digits)
    try:
        raw = orjson.loads(body)["raw"]
        sha, size = raw["sha256"], raw["size"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if type(sha) is not str or type(size) is not int:
        return None
    return sha, size


def object_where(name: str) -> str:
    return f"objects/{name[:2]}/{name}"


class RawEvidenceCheck:
    """Checks entries' raw bytes one by one (see the module docstring); collects ``failures``.

    *read_object(name)* returns an object's bytes, or None when it does not exist; *where(name)*
    names an object in failures. With *store_present* False (the whole store folder is absent),
    entries whose bytes the ledger places in an object are only counted in ``unchecked``; the
    caller reports that once."""

    def __init__(self, read_object: Callable[[str], bytes | None], *, where: Callable[[str], str] = object_where,
                 store_present: bool = True) -> None:
        self.read_object = read_object
        self.where = where
        self.store_present = store_present
        self.failures: list[Failure] = []
        self.unchecked = 0
        self._name: str | None = None
        self._data: bytes | None = None
        self._judged: set[str] = set()

    def check(self, seq: int, body: bytes, obj: str | None, offset: int, size: int) -> None:
        held = raw_field(body)
        if held is None:
            self.failures.append(Failure("raw-missing", "the entry holds no readable raw.sha256 and raw.size", seq=seq))
            return
        sha, want = held
        if obj is None:
            if not (want == 0 and sha == EMPTY_SHA256):  # no raw bytes: nothing to keep
                self.failures.append(Failure("raw-missing", f"the ledger records no evidence object for its {want} raw bytes",
                                             seq=seq))
            return
        if len(obj) != 64 or not _HEX.issuperset(obj):
            self.failures.append(Failure("raw-missing", f"the recorded evidence object {obj[:80]!r} is not a SHA-256 name",
                                         seq=seq))
            return
        if not self.store_present:
            self.unchecked += 1
            return
        if obj != self._name:
            self._name, self._data = obj, self.read_object(obj)
            if self._data is not None and obj not in self._judged:
                self._judged.add(obj)
                actual = hashlib.sha256(self._data).hexdigest()
                if actual != obj:
                    self.failures.append(Failure("raw-modified", f"evidence object's bytes hash to {actual}, not its name",
                                                 where=self.where(obj)))
        data = self._data
        if data is None:
            self.failures.append(Failure("raw-missing", "evidence object missing", seq=seq, where=self.where(obj)))
            return
        piece = data[offset : offset + size] if offset >= 0 and size >= 0 else b""
        actual = hashlib.sha256(piece).hexdigest()
        if actual != sha or len(piece) != want:
            self.failures.append(Failure(
                "raw-modified",
                f"raw bytes at offset {offset} ({len(piece)} bytes) hash to {actual}, the entry holds {sha} ({want} bytes)",
                seq=seq, where=self.where(obj)))


def store_absent(root: str, count: int) -> Failure:
    return Failure("raw-missing", f"evidence store not found: the raw bytes of {count} entries were not checked",
                   where=root)
