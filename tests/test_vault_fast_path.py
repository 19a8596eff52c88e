"""The Vault parser's fast path decides exactly what the full walk decides.

``SecretScanner.compact_scan`` handles compact lines; a scanner whose fast path is
switched off gives the reference verdict (the full walk plus the duplicate-key
checks). Every mutation of every story line must get the same verdict from both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.sources.vault import (
    DUPLICATE_KEYS,
    UNHASHED_SECRET,
    SecretScanner,
    parse_line,
    spells_token_shape,
)
from tests.vault_support import SAMPLES

TOKEN = "hvs.CAESIJ1d2aVq3Wn0k8EXAMPLEtokenAAAAAAAAA"
LEGACY = "s.AbCdEfGhIjKlMnOpQrStUvWx"


class FullWalkScanner(SecretScanner):
    """The reference: never takes the fast path."""

    def compact_scan(self, record: dict[str, Any], raw: bytes) -> bool:
        return False


def verdict(line: bytes, scanner: SecretScanner) -> tuple[str | None, Any]:
    parsed, reason = parse_line(line, "test.log", scanner)
    return reason, None if parsed is None else (parsed.record_type, parsed.request_id, parsed.time)


def story_records() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (SAMPLES / "audit.log").read_bytes().splitlines() if line.strip()]


def places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path and list index in *value*."""
    if type(value) is dict:
        for key, item in value.items():
            yield (*path, key)
            yield from places(item, (*path, key))
    elif type(value) is list:
        for index, item in enumerate(value):
            yield (*path, index)
            yield from places(item, (*path, index))


def replaced(record: Any, path: tuple[Any, ...], new: Any) -> Any:
    copy = orjson.loads(orjson.dumps(record))
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = new
    return copy


PLANTS = [TOKEN, LEGACY, "plain-value", "", "hmac-sha256:00ff", "2026-11-20T13:50:00Z", ["plain"], {"k": "plain"},
          {"client_token": "raw"}, ["hmac-sha256:ab", ""], 7, None, "line1\n" + TOKEN, "tab\t" + LEGACY,
          "b\b." + "A" * 30]


def mutations() -> Iterator[bytes]:
    for record in story_records():
        yield orjson.dumps(record)
        for path in places(record):
            for plant in PLANTS:
                yield orjson.dumps(replaced(record, path, plant))
        for key in ("client_token", "Password", "x_secret", "ssh_private_key", "note", "data"):
            for where in ((), ("request",), ("auth",), ("response",)):
                target = record
                for step in where:
                    target = target.get(step) if type(target) is dict else None
                if type(target) is dict:
                    for plant in ("raw", {"inner": "raw"}, ["raw"], "hmac-sha256:aa"):
                        grown = replaced(record, (*where, key), plant) if where else {**record, key: plant}
                        yield orjson.dumps(grown)


def test_fast_path_matches_full_walk_on_every_story_mutation() -> None:
    fast, full = SecretScanner(), FullWalkScanner()
    checked = 0
    for line in mutations():
        assert verdict(line, fast) == verdict(line, full), line[:200]
        checked += 1
    assert checked > 5000


def test_fast_path_is_taken_for_story_lines() -> None:
    scanner = SecretScanner()
    taken = [scanner.compact_scan(record, orjson.dumps(record)) for record in story_records()]
    assert all(taken)


@pytest.mark.parametrize("text", [
    "1 error occurred:\n\t* " + TOKEN,
    "x\n" + LEGACY,
    "\\" + TOKEN,
    "q\"" + TOKEN,
])
def test_token_after_an_escape_is_found(text: str) -> None:
    record = story_records()[1]
    record["error"] = text
    line = orjson.dumps(record)
    assert spells_token_shape(line)
    assert verdict(line, SecretScanner())[0] == UNHASHED_SECRET
    assert verdict(line, FullWalkScanner())[0] == UNHASHED_SECRET


def test_escapes_that_spell_no_token_pass() -> None:
    record = story_records()[1]
    record["error"] = "1 error occurred:\n\t* permission denied\n\n"
    line = orjson.dumps(record)
    assert SecretScanner().compact_scan(record, line)
    assert verdict(line, SecretScanner())[0] is None


def test_duplicate_key_is_not_taken_by_the_fast_path() -> None:
    line = orjson.dumps(story_records()[1])
    doubled = line.replace(b'"type":"response"', b'"type":"response","type":"response"', 1)
    assert verdict(doubled, SecretScanner())[0] == DUPLICATE_KEYS


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10, 10),
                      st.sampled_from(["", "plain", "hmac-sha256:ab", TOKEN, LEGACY, "a\nb", "2026-11-20T13:50:00Z"]))
json_keys = st.sampled_from(["data", "request", "response", "client_token", "accessor", "mount_accessor", "common_name",
                             "ttl", "token_type", "Secret_Key", "note", "id", "type", "time", "auth", "x"])
json_values = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(json_keys, inner, max_size=4)),
                           max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(json_keys, json_values, max_size=6))
def test_fast_path_matches_full_walk_on_generated_records(record: dict[str, Any]) -> None:
    line = orjson.dumps(record)
    assert verdict(line, SecretScanner()) == verdict(line, FullWalkScanner())
