"""CANARY: raw secrets planted in every field of every Vault sample record never leave quarantine.

For each record of ``samples/vault/audit.log`` and each of its fields (every scalar leaf,
at any depth) this writes variants of the record:

* the field holds a token-shaped canary (``hvs.``/``hvb.``/``hvr.``/``s.``/``b.`` shapes), as
  is, and spelled with a JSON ``\\u`` escape;
* when Vault HMACs that field (its sample value is ``hmac-sha256:...``), the field holds a
  plain canary string instead of its HMAC (``log_raw`` on, or a non-HMAC'd key).

A field Vault never HMACs (a path, a display name), or a data key the operator
declared non-HMAC (the collector's non-HMAC list: certificate names, TTL, serial),
may legitimately hold plain text, so only the token shape is planted there. Every variant must be quarantined,
and no canary may appear in the ledger file (and its WAL), the evidence store,
stdout, stderr (human and JSON output), or an export with raw objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from collector.sources.vault import DEFAULT_NON_HMAC_KEYS
from tests.vault_support import SAMPLES, run_cli

TOKEN_MARK = "CNRY7"
PLAIN_MARK = "PLNSCRT"


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, path + (index,))
    else:
        yield path, value


def planted(record: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = orjson.loads(orjson.dumps(record))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def token_canary(n: int) -> str:
    body = f"{TOKEN_MARK}{n:07d}"
    shapes = [f"hvs.{body}AbCdEfGhIjKlMnOpQrStUv", f"hvb.{body}XyZ0123456789abcdefgh", f"hvr.{body}QwErTyUiOpAsDfGhJk",
              f"s.{body}Zx9Yw8Vu7Ts6", f"b.{body}LmNoPqRsTuVwXyZ012345"]
    token = shapes[n % len(shapes)]
    assert len(token) >= 26
    return token


def canary_lines() -> tuple[bytes, int]:
    out = bytearray()
    count = 0
    for number, raw in enumerate((SAMPLES / "audit.log").read_bytes().splitlines()):
        record = orjson.loads(raw)
        for path, value in leaves(record):
            count += 1
            token = token_canary(count)
            line = orjson.dumps(planted(record, path, token))
            out += line + b"\n"
            out += line.replace(token[:1].encode(), b"\\u%04x" % ord(token[0]), 1) + b"\n"
            if isinstance(value, str) and value.startswith("hmac-sha256:") and path[-1] not in DEFAULT_NON_HMAC_KEYS:
                out += orjson.dumps(planted(record, path, f"{PLAIN_MARK}{count:07d}-r{number}")) + b"\n"
    return bytes(out), len(out.splitlines())


def everything_under(folder: Path, skip: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path != skip:
            yield path, path.read_bytes()


def test_planted_secrets_never_leave_quarantine(tmp_path: Path) -> None:
    data, lines = canary_lines()
    assert TOKEN_MARK.encode() in data and PLAIN_MARK.encode() in data
    planted_log = tmp_path / "input" / "planted.log"
    planted_log.parent.mkdir()
    planted_log.write_bytes(data)
    work = tmp_path / "work"
    work.mkdir()
    ledger = work / "ledger.db"
    outputs: list[bytes] = []

    def cli(*args: str, ok: tuple[int, ...] = (0,)) -> None:
        result = run_cli(*args, ledger=ledger)
        outputs.extend([result.stdout, result.stderr])
        assert result.returncode in ok, result.stderr[-2000:]

    cli("init", "--origin", "test.example/canary")
    cli("collect", "vault", str(SAMPLES / "audit.log"))
    cli("--format", "json", "collect", "vault", str(planted_log), ok=(1,))
    doc = orjson.loads(outputs[-2])
    assert doc["lines"] == lines
    assert doc["quarantined"] == lines, doc["reasons"]  # every planted variant is quarantined
    assert doc["appended"] == doc["findings"]  # only pairing findings (ids, files, lines) were appended
    assert set(doc["reasons"]) <= {"unhashed-secret", "not-a-vault-record"}
    cli("collect", "vault", str(planted_log))  # human output, nothing new
    cli("checkpoint")
    cli("export", "--out", str(work / "export"), "--include-raw")
    stored = list(everything_under(work, skip=planted_log))
    assert any(p.name == "entries.jsonl" for p, _ in stored) and any(".objects" in str(p) for p, _ in stored)
    for where, blob in stored + [(Path("<stdout/stderr>"), b"".join(outputs))]:
        for mark in (TOKEN_MARK, PLAIN_MARK):
            assert mark.encode() not in blob, f"canary {mark} leaked into {where}"
            assert mark.encode("utf-16-le") not in blob, f"canary {mark} leaked into {where}"
