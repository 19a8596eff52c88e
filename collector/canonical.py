"""The one place where fedledger's canonical form (RFC 8785, JCS) is defined.

Hashed and signed data is JSON with no floats: objects with string keys,
arrays, strings, integers within ±(2**53 - 1), booleans and null. orjson
writes exactly the JCS bytes for that subset except for one thing: it sorts
keys by code point, where JCS sorts by UTF-16 code unit. The two orders differ
only when a key holds a character above U+FFFF, and for those (rare) objects
the keys are put in UTF-16 order first and written without re-sorting.
``tests/test_canonical.py`` proves byte equality with the ``rfc8785`` package.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from collector.errors import MalformedInput

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 64

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


class CanonicalizationError(MalformedInput):
    """A value cannot be put in canonical form (float, NaN, lone surrogate, ...)."""


def _check(value: Any, depth: int, path: str) -> bool:
    """Reject what JCS-without-floats cannot hold; True when a key is above U+FFFF."""
    if depth > MAX_DEPTH:
        raise CanonicalizationError(f"nesting deeper than {MAX_DEPTH} at {path}")
    kind = type(value)
    if kind is str:
        return False
    if kind is dict:
        astral = False
        for key, item in value.items():
            if type(key) is not str:
                raise CanonicalizationError(f"non-string key {type(key).__name__} at {path}")
            if not key.isascii() and max(key) > "\uffff":
                astral = True
            if type(item) is not str and _check(item, depth + 1, path):
                astral = True
        return astral
    if kind is list:
        astral = False
        for index, item in enumerate(value):
            if type(item) is not str and _check(item, depth + 1, f"{path}[{index}]"):
                astral = True
        return astral
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return False
        raise CanonicalizationError(f"integer outside ±(2**53-1) at {path}")
    if kind is bool or value is None:
        return False
    if kind is float:
        raise CanonicalizationError(f"float at {path}: hashed data holds no floats, use a string or an integer")
    raise CanonicalizationError(f"{kind.__name__} at {path} is not JSON")


def _utf16_order(value: Any) -> Any:
    if type(value) is dict:
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))  # a lone surrogate is named below
        return {key: _utf16_order(value[key]) for key in keys}
    if type(value) is list:
        return [_utf16_order(item) for item in value]
    return value


_NONE = type(None)


def _scan(value: Any, depth: int = 0) -> bool | None:
    """The fast check: None when something is wrong (``_check`` then names it), else
    whether a key holds a character above U+FFFF. One join per object; recursion is
    bounded by :data:`MAX_DEPTH` (and cheaper than an explicit stack)."""
    if depth > MAX_DEPTH:
        return None
    if type(value) is dict:
        try:
            keys = "".join(value)
        except TypeError:
            return None
        astral = not keys.isascii() and max(keys) > "\uffff"
        items = value.values()
    else:
        astral = False
        items = value
    for item in items:
        kind = type(item)
        if kind is str or kind is bool or kind is _NONE:
            continue
        if kind is dict or kind is list:
            found = _scan(item, depth + 1)
            if found is None:
                return None
            astral = astral or found
            continue
        if kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
            continue
        return None
    return astral


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of *value*; raise :class:`CanonicalizationError` for what JCS cannot hold."""
    if type(value) is not dict and type(value) is not list:
        astral = _check(value, 0, "$")
    else:
        found = _scan(value)
        astral = _check(value, 0, "$") if found is None else found
    try:
        if astral:
            return orjson.dumps(_utf16_order(value), option=orjson.OPT_STRICT_INTEGER)
        return orjson.dumps(value, option=_SORTED)
    except TypeError as exc:  # lone surrogates are found by orjson's UTF-8 encoder
        reason = "lone surrogate in a string" if "surrogate" in str(exc) else str(exc)
        raise CanonicalizationError(reason) from None


_ASTRAL_LEAD = re.compile(rb"[\xf0-\xf4]")  # the first byte of a character above U+FFFF in UTF-8


def canonical_bytes_of_text_tree(value: dict[str, Any]) -> bytes:
    """:func:`canonical_bytes` of an object the caller built from strings, booleans, None and
    integers (any nesting of dicts and lists), without the type walk: for those, JCS writes
    exactly what orjson writes with sorted keys, except the key order when a key holds a
    character above U+FFFF; output holding any such character goes through
    :func:`canonical_bytes`. orjson refuses integers beyond ±(2**53-1) and lone surrogates.
    No float may be in *value*: a normalizer that uses this must keep to that shape, and
    its tests compare the result with :func:`canonical_bytes` (``tests/test_cloudtrail_source.py``,
    ``tests/test_vault.py``).
    """
    try:
        out = orjson.dumps(value, option=_SORTED)
    except TypeError as exc:
        raise CanonicalizationError("lone surrogate in a string" if "surrogate" in str(exc) else str(exc)) from None
    if out.isascii() or _ASTRAL_LEAD.search(out) is None:
        return out
    return canonical_bytes(value)


def parse_json(data: bytes | str, *, location: str | None = None) -> Any:
    """Parse untrusted JSON strictly: no NaN/Infinity, no lone surrogates, bounded depth.

    orjson rejects NaN, lone surrogates, invalid UTF-8 and nesting deeper than 1024;
    duplicate keys would silently keep the last value, so a text that holds the same
    key twice in one object is rejected too (checked with the slower stdlib parser
    only when the fast parse shows fewer keys than the text has key separators).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedInput(f"invalid JSON: {exc}", location=location) from None
    if _may_hold_duplicate_keys(value, data):
        _reject_duplicate_keys(data, location)
    return value


def _count_keys(value: Any) -> int:
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            stack.extend(v for v in item.values() if type(v) in (dict, list))
        elif type(item) is list:
            stack.extend(v for v in item if type(v) in (dict, list))
    return count


_KEY_END = re.compile(rb'"[ \t\r\n]*:')


def _may_hold_duplicate_keys(value: Any, data: bytes | str) -> bool:
    # Every key ends with '"', optional whitespace and ':' in the text; strings can
    # hold that sequence too, so this over-counts and never under-counts: equal
    # counts prove no duplicate.
    raw = data.encode() if isinstance(data, str) else data
    return len(_KEY_END.findall(raw)) > _count_keys(value)


def _reject_duplicate_keys(data: bytes | str, location: str | None) -> None:
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise MalformedInput(f"duplicate key {key!r} in one JSON object", location=location)
            seen.add(key)
        return dict(items)

    try:
        json.loads(data, object_pairs_hook=pairs)
    except RecursionError:  # orjson allows 1024 levels, the stdlib parser fewer
        raise MalformedInput("JSON nested too deeply to check for duplicate keys", location=location) from None
