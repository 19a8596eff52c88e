"""canonical_bytes equals the rfc8785 package on a corpus; what JCS cannot hold is rejected."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.canonical import CanonicalizationError, canonical_bytes, parse_json
from collector.errors import MalformedInput

CORPUS = [
    {},
    [],
    "",
    {"b": 1, "a": 2, "c": {"z": [3, 2, 1], "y": None, "x": True}},
    {"non-ascii": "Grüße, 東京, עברית, emoji 😀", "ключ": "значение"},
    {"controls": "\x00\x01\x07\x08\t\n\x0b\x0c\r\x0e\x1f\x7f", "quote": '"', "backslash": "\\", "slash": "/"},
    {"line-sep": "\u2028\u2029", "bom": "\ufeff", "nbsp": "\u00a0"},
    {"\ue000": 1, "😀": 2, "a": 3, "\u00e9": 4, "\uffff": 5, "𝄞": 6},  # UTF-16 vs code point order
    {"nested": {"deeper": {"deepest": [{"k": "v"}, [1, [2, [3]]]]}}},
    {"big": 2**53 - 1, "neg": -(2**53 - 1), "zero": 0, "minus": -1},
    [True, False, None, 1, "1", [], {}],
    {"escapes": "\\u0041 is not A", "tab\tkey": "v", "new\nline": "k"},
]


@pytest.mark.parametrize("value", CORPUS, ids=range(len(CORPUS)))
def test_matches_rfc8785_package(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_matches_rfc8785_package_property(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except Exception:
        with pytest.raises(CanonicalizationError):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize(
    "value, reason",
    [
        ({"f": 1.5}, "float"),
        ({"f": 1.0}, "float"),
        ({"n": float("nan")}, "float"),
        ({"i": float("inf")}, "float"),
        ({"s": "\ud800"}, "surrogate"),
        ({"\udfff": 1}, "surrogate"),
        ({1: "non-string key"}, "non-string key"),
        ({"big": 2**53}, "integer"),
        ({"big": -(2**63)}, "integer"),
        ({"t": (1, 2)}, "tuple"),
        ({"b": b"bytes"}, "bytes"),
    ],
)
def test_rejects_what_jcs_cannot_hold(value: object, reason: str) -> None:
    with pytest.raises(CanonicalizationError, match=reason):
        canonical_bytes(value)


def test_rejects_deep_nesting() -> None:
    value: object = "leaf"
    for _ in range(100):
        value = [value]
    with pytest.raises(CanonicalizationError, match="nesting"):
        canonical_bytes(value)


@pytest.mark.parametrize(
    "text, reason",
    [
        (b'{"a": NaN}', "invalid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b'{"o": {"k": 1, "k": 1}}', "duplicate key"),
        (b'{"a":1, "a" :2}', "duplicate key"),
        (b'{"a":1,\n "a"\t\n: 2}', "duplicate key"),
        (b"[" * 100_000, "invalid JSON"),
        (b'"\\ud800"', "invalid JSON"),
        (b"\xff\xfe{}", "invalid JSON"),
    ],
)
def test_parse_json_is_strict(text: bytes, reason: str) -> None:
    with pytest.raises(MalformedInput, match=reason):
        parse_json(text, location="f.jsonl:3")


def test_parse_json_accepts_key_like_text_in_strings() -> None:
    assert parse_json(b'{"a": "x\\":y", "b": "\\":"}') == {"a": 'x":y', "b": '":'}


def test_astral_and_lone_surrogate_keys_are_a_clear_error() -> None:
    with pytest.raises(CanonicalizationError, match="surrogate"):
        canonical_bytes({"\U00010000": None, "\ud800": None})
