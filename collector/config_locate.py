"""Line numbers for TOML keys, which :mod:`tomllib` does not report.

:func:`locate_keys` scans the text once and maps every table header and every
``key = value`` line to the path it defines, with array-of-tables occurrences as
integer indices: ``("sources", 1, "cadence") -> 27``. Multi-line strings and
multi-line arrays are skipped so their contents are never taken for keys; keys
inside inline tables map to the line of the key that holds the inline table
(:func:`line_of` falls back to the nearest located ancestor).

This is a locator for error messages only: the document itself is always the
one :mod:`tomllib` parsed.
"""

from __future__ import annotations

from collections.abc import Sequence

PathPart = str | int
KeyPath = tuple[PathPart, ...]

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _split_key(text: str) -> list[str] | None:
    """Parse a dotted TOML key (``a."b.c".d``) into its parts; None when it is not a key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] in "\"'":
            quote = text[i]
            j = i + 1
            buf = []
            while j < n and text[j] != quote:
                if quote == '"' and text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            if j >= n:
                return None
            parts.append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < n and text[j] in _BARE:
                j += 1
            if j == i:
                return None
            parts.append(text[i:j])
            i = j
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return parts
        if text[i] != ".":
            return None
        i += 1


class _ValueScanner:
    """Tracks whether a value continues on the next line (open brackets or multi-line string)."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_multiline: str | None = None  # '"""' or "'''"

    @property
    def open(self) -> bool:
        return self.depth > 0 or self.in_multiline is not None

    def feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self.in_multiline is not None:
                end = text.find(self.in_multiline, i)
                if end < 0:
                    return
                i = end + 3
                self.in_multiline = None
                continue
            ch = text[i]
            if ch == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.in_multiline = text[i : i + 3]
                i += 3
                continue
            if ch in "\"'":
                j = i + 1
                while j < n and text[j] != ch:
                    j += 2 if (ch == '"' and text[j] == "\\") else 1
                i = j + 1
                continue
            if ch in "[{":
                self.depth += 1
            elif ch in "]}":
                self.depth = max(0, self.depth - 1)
            i += 1


def _find_equals(line: str) -> int:
    """Index of the ``=`` that ends a key, skipping quoted key parts; -1 when none."""
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch in "\"'":
            j = line.find(ch, i + 1)
            if j < 0:
                return -1
            i = j + 1
            continue
        if ch == "=":
            return i
        if ch == "#":
            return -1
        i += 1
    return -1


def locate_keys(text: str) -> dict[KeyPath, int]:
    """Map each table and key path defined in *text* to its 1-based line number."""
    found: dict[KeyPath, int] = {}
    table: KeyPath = ()
    array_index: dict[KeyPath, int] = {}
    value = _ValueScanner()

    def concrete(parts: Sequence[str], *, last_is_array: bool) -> KeyPath:
        path: list[PathPart] = []
        for k, part in enumerate(parts):
            path.append(part)
            is_last = k == len(parts) - 1
            if is_last and last_is_array:
                key = tuple(path)
                array_index[key] = array_index.get(key, -1) + 1
                path.append(array_index[key])
            elif tuple(path) in array_index:
                path.append(array_index[tuple(path)])
        return tuple(path)

    for number, raw in enumerate(text.splitlines(), start=1):
        if value.open:
            value.feed(raw)
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            end = line.find("]]")
            parts = _split_key(line[2:end]) if end > 0 else None
            if parts:
                table = concrete(parts, last_is_array=True)
                found.setdefault(table[:-1], number)
                found[table] = number
            continue
        if line.startswith("["):
            end = line.find("]")
            parts = _split_key(line[1:end]) if end > 0 else None
            if parts:
                table = concrete(parts, last_is_array=False)
                found.setdefault(table, number)
            continue
        eq = _find_equals(line)
        if eq <= 0:
            continue
        parts = _split_key(line[:eq])
        if not parts:
            continue
        path = table + tuple(parts)
        found.setdefault(path, number)
        value.feed(line[eq + 1 :])
    return found


def line_of(found: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of *path*, or of its nearest located ancestor."""
    for end in range(len(path), 0, -1):
        line = found.get(path[:end])
        if line is not None:
            return line
    return None


def dotted(path: KeyPath) -> str:
    """``sources[1].cadence`` for ``("sources", 1, "cadence")``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text or "(top level)"
