"""HashiCorp Vault (and OpenBao) file audit device logs: JSON lines → normalized events.

What is verified at ingest, per line:

* It is UTF-8, strict JSON (no duplicate keys, NaN, lone surrogates), an object no
  deeper than :data:`MAX_RECORD_DEPTH`, with ``type`` ``request``/``response``, a
  ``time`` and a ``request.id``. Anything else is quarantined with a fixed reason
  code (:data:`REASONS`) and its file and line; never with its content.
* Secrets stay HMAC'd. A record is quarantined as ``unhashed-secret`` (only its
  SHA-256 is kept; the bytes never reach the ledger, the evidence store, a log line
  or an error) when it holds a Vault token shape anywhere (``hvs.``/``hvb.``/``hvr.``,
  legacy ``s.``/``b.``), a credential field (client token, accessor, wrapping token,
  password, private key, ...) that is not ``hmac-sha256:...`` (a number included: Vault
  HMACs strings only, so a numeric secret is logged as sent), a URL with a password in
  it anywhere (``postgresql://app:pw@db``: metadata, errors and non-HMAC keys are logged
  as given), or a plaintext string
  inside ``request.data``/``response.data`` under a key that is not known to be
  configured non-HMAC (``audit_non_hmac_request_keys``/``..._response_keys``, e.g.
  ``common_name``, ``ttl``, ``serial_number``; extend with ``non_hmac_keys``).
  Timestamps inside data are allowed in plaintext: Vault never HMACs time values.
  In key names a hyphen counts as an underscore (request headers keep their HTTP
  names: ``X-Auth-Token``, ``Proxy-Authorization``).
* A line longer than :data:`collector.ingest.MAX_LINE_BYTES` is never held in memory:
  it is read through, hashed as it passes, and quarantined as ``line-too-long`` (the
  quarantine row's reason reads ``line-too-long: N bytes``; counts stay under ``line-too-long``).

What is *not* verified: that an HMAC was made with the device's salt (only the
salt holder can check that, with ``fedledger vault hmac``), and the audit log's own
completeness beyond request/response pairing (Vault's file device has no chain).

Pairing rule (documented contract). Every line is an input record: a ``request``
line becomes a ``vault.request_received`` entry (``attrs.requested_kind``: the kind its
response would have, where the request alone decides it), a ``response`` line (which repeats
the request and adds the response; the main evidence) becomes an entry of its kind
(``vault.login``, ``vault.secret_read``, ...) with ``attrs.paired``. Request ids seen
on request lines stay *open* until their response line arrives. A response pairs only
with an open request of the same path and operation: one that repeats another request
is a ``vault.unpaired`` finding (``side=response``, ``mismatch``) and the request stays
open. A second request line under an open id (other bytes) makes the earlier one a
finding (``closed_by=duplicate-id``) rather than replacing it. Open requests are
kept, in arrival order, inside the cursor committed with every batch (so they
survive batches, kills and runs, and follow the log across files collected later).
An open request becomes a ``vault.unpaired`` finding (``side=request``) when a later
record of the same collection is more than ``pair_window`` seconds newer (Vault's
default maximum request duration is 90 s), when more than ``max_open`` requests are
open (oldest first), or at the end of the input with ``final=True``. A response
line whose request id is not open is a ``vault.unpaired`` finding (``side=response``)
at once: named files are read in the order given, so give rotated files oldest first (a folder's
files are put in that order: ``audit.log.2``, ``audit.log.1``, ``audit.log``). Quarantined lines that still parse and
carry a request id take part in pairing, so a quarantined request does not make
its response "unpaired" (only the id, time, file and line of such lines are kept).
Findings count as read records (``lines + findings == read``).

Dedup keys: ``vault:<sha256 of the line>`` for lines and
``vault.unpaired:<side>:<request id>:<sha256 of the line>`` for findings, so re-reading
the same bytes from another path or from stdin adds nothing.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson

from collector.canonical import MAX_SAFE_INTEGER, canonical_bytes_of_text_tree, parse_json
from collector.errors import MalformedInput, UsageError
from collector.evidence import CursorMark, Source, SourceItem, SourceRecord
from collector.ingest import (
    LINE_TOO_LONG,
    MAX_LINE_BYTES,
    FileCursor,
    Line,
    LongLine,
    SourceTampered,
    file_source_id,
    iter_files,
    line_too_long_detail,
    read_lines,
    read_stream_lines,
    rotation_cursor,
)
from collector.rotation import (
    RotationPlan,
    accept_changed,
    check_accepted,
    plan_rotations,
    sort_rotations_oldest_first,
)
from collector.timeutil import format_time, parse_time
from collector.url_credentials import has_url_password, json_has_url_password

KIND = "vault"
HMAC_PREFIX = "hmac-sha256:"
MAX_RECORD_DEPTH = 64
DEFAULT_PAIR_WINDOW = 300
DEFAULT_MAX_OPEN = 10_000
DEFAULT_CHUNK = 1 << 20
STDIN_NAME = "-"

# Reason codes of quarantined lines (fixed words: a reason never quotes input).
UNHASHED_SECRET = "unhashed-secret"
NOT_UTF8 = "not-utf8"
INVALID_JSON = "invalid-json"
TRUNCATED_LINE = "truncated-line"
DEEP_NESTING = "deep-nesting"
LONE_SURROGATE = "lone-surrogate"
DUPLICATE_KEYS = "duplicate-keys"
NOT_A_VAULT_RECORD = "not-a-vault-record"
BAD_TIME = "bad-time"
REASONS = (UNHASHED_SECRET, NOT_UTF8, INVALID_JSON, TRUNCATED_LINE, DEEP_NESTING, LONE_SURROGATE,
           DUPLICATE_KEYS, NOT_A_VAULT_RECORD, BAD_TIME, LINE_TOO_LONG)

# Vault token shapes: current service/batch/recovery tokens, legacy service (s. + 24) and batch tokens.
_TOKEN_SHAPE = (
    r"(?<![A-Za-z0-9_.\-])(?:hv[sbr]\.[A-Za-z0-9_\-]{20,}"
    r"|s\.[A-Za-z0-9]{24}(?![A-Za-z0-9_\-])"
    r"|b\.[A-Za-z0-9_\-]{24,})"
)
TOKEN_SHAPE_BYTES = re.compile(_TOKEN_SHAPE.encode())
TOKEN_SHAPE_TEXT = re.compile(_TOKEN_SHAPE)
# Every token shape holds "s.", "b." or "r."; mapping b and r to s lets one substring search rule most lines
# out. The same folded copy maps JSON whitespace to a space, to spot a key written with space before its colon.
_TOKEN_DOT_TABLE = bytes.maketrans(b"br\t\r\n", b"ss   ")

# Fields that hold credentials wherever they appear: their strings must be HMAC'd or empty.
SENSITIVE_KEYS = frozenset({
    "client_token", "accessor", "client_token_accessor", "token", "wrapped_accessor", "wrapped_token",
    "secret_id", "secret_id_accessor", "password", "private_key", "secret_key", "secret_access_key",
    "security_token", "session_token", "refresh_token", "id_token", "jwt", "x-vault-token",
    "authorization", "api_key", "apikey", "client_secret", "cookie",
})
_NOT_SENSITIVE = frozenset({"mount_accessor", "token_type", "token_ttl", "token_policies", "token_issue_time"})
_SENSITIVE_SUFFIXES = ("_token", "password", "_secret", "private_key", "secret_key", "_accessor", "authorization",
                       "_api_key", "_cookie")
# A credential key followed by a plaintext string, a list or an object, found in the raw text of a
# valid JSON line (inside a JSON string every quote is escaped, so this matches real keys only).
_SENSITIVE_RAW = re.compile(
    rb'"[^"\\]*+"(?:'
    + b"|".join(b'(?<="' + re.escape(k.encode()) + b'")' for k in sorted(SENSITIVE_KEYS))
    + b"|" + b"|".join(b"(?<=" + re.escape(k.encode()) + b'")' for k in _SENSITIVE_SUFFIXES)
    + rb')(?<!"mount_accessor")\s*:\s*(?:"(?!hmac-sha256:|")|\[|\{)',
    re.IGNORECASE,
)
_SPACE_BEFORE_COLON = re.compile(rb'"\s+:')
# Every credential key, lower-cased, ends with one of these (then '":' in compact JSON text).
# An object's keys, in order → those that name credentials (objects in audit lines come in few shapes).
_CREDENTIAL_KEYS_OF: dict[tuple[str, ...], tuple[str, ...]] = {}
# A dot after s, b or r: every token shape holds one (a literal first byte keeps the search fast).
_TOKEN_DOT = re.compile(rb"\.(?<=[sbr]\.)")

# request.data / response.data keys a pki mount is commonly tuned to log in plaintext
# (audit_non_hmac_request_keys / audit_non_hmac_response_keys): certificate names, TTL, serial.
# Anything else that an operator made non-HMAC is added with ``non_hmac_keys`` (--non-hmac-key).
DEFAULT_NON_HMAC_KEYS = frozenset({"common_name", "alt_names", "ip_sans", "uri_sans", "other_sans", "ttl",
                                   "serial_number"})

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)$")
_UTC_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-]{1,64}$")
_SERIAL_HEX = re.compile(r"^[0-9A-Fa-f]{2}(?:[:\-]?[0-9A-Fa-f]{2})*$")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")

# Metadata keys (JWT/OIDC claim mappings, cert auth) that link an event to a CI job; never taken from a token
# made by auth/token/create, whose metadata its creator chose (see _caller_chose_metadata).
METADATA_CORRELATION = {
    "job_id": "job_id", "ci_job_id": "job_id", "run_id": "run_id", "pipeline_id": "run_id",
    "ci_pipeline_id": "run_id", "repository": "repository", "project_path": "repository",
    "sub": "oidc_subject", "subject": "oidc_subject", "sha": "git_sha", "git_sha": "git_sha",
    "runner": "runner", "runner_name": "runner", "serial_number": "cert_serial",
}

# kv-v1 / kv-v2 are the names `vault secrets enable` takes (and audit filters show); a mount stores "kv"
_KV_TYPES = frozenset({"kv", "kv-v1", "kv-v2"})
SECRET_ENGINES_STATIC = frozenset({"generic", "cubbyhole"}) | _KV_TYPES
SECRET_ENGINES_DYNAMIC = frozenset({
    "database", "aws", "azure", "gcp", "consul", "nomad", "kubernetes", "ldap", "openldap", "ad",
    "rabbitmq", "ssh", "terraform", "alicloud", "mongodbatlas", "gcpkms",
})
_CREDENTIAL_SEGMENTS = frozenset({"creds", "static-creds", "sts", "static-cred", "token", "key",
                                  "impersonated-account", "static-account", "roleset", "service-account"})
_MOUNT_NAME_TYPES = {"secret": "kv", "kv": "kv", "cubbyhole": "cubbyhole", "database": "database", "aws": "aws",
                     "gcp": "gcp", "azure": "azure", "pki": "pki", "ssh": "ssh", "transit": "transit"}
_KV2_SEGMENTS = frozenset({"data", "metadata", "delete", "undelete", "destroy", "subkeys", "config"})
# Every key a kv v2 metadata/, subkeys/ or config read answers with: a read there answering with any other key
# is a kv v1 mount's secret that happens to live under "metadata/" (or "subkeys/", "config").
_KV2_NON_SECRET_DATA_KEYS = frozenset({
    "cas_required", "created_time", "current_version", "custom_metadata", "delete_version_after", "max_versions",
    "oldest_version", "updated_time", "versions", "subkeys", "metadata",
})
_WRITE_OPERATIONS = frozenset({"create", "update", "patch", "delete"})


class UnhashedSecret(Exception):
    """Internal signal: the record holds a raw secret (never carries the value)."""


def audit_hmac(salt: bytes, value: str | bytes) -> str:
    """``hmac-sha256:<hex>`` of *value* keyed with the audit device's *salt*, as Vault's audit-hash does."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return HMAC_PREFIX + hmac.new(salt, data, hashlib.sha256).hexdigest()


# -- secrets hygiene -----------------------------------------------------------------------


class _SensitiveKeys(dict[str, bool]):
    """Key → whether it names a credential; computed on first sight, kept for 100,000 keys.

    A hyphen counts as an underscore: request headers are logged under their HTTP names
    (``X-Auth-Token``, ``Private-Token``, ``Proxy-Authorization``)."""

    def __missing__(self, key: str) -> bool:
        lower = key.lower().replace("-", "_")
        found = lower not in _NOT_SENSITIVE and (lower in SENSITIVE_KEYS or lower.endswith(_SENSITIVE_SUFFIXES))
        if len(self) < 100_000:
            self[key] = found
        return found


_SENSITIVE_CACHE = _SensitiveKeys()


def _is_sensitive_key(key: str) -> bool:
    return _SENSITIVE_CACHE[key]


# Walk modes: what a string found at this place must look like.
_PLAIN, _DATA, _SENSITIVE, _REQUEST_OR_RESPONSE, _RECORD = 0, 1, 2, 3, 4


_JSON_ESCAPE = re.compile(rb"\\.", re.DOTALL)


def spells_token_shape(raw: bytes) -> bool:
    """Whether JSON text *raw* spells a Vault token shape (:data:`TOKEN_SHAPE_BYTES`).

    Searched twice: in the bytes as written, and with every two-byte escape such as
    ``\\n`` read as the one non-token character it stands for (so ``"\\nhvs.…"`` is
    found). ``\\u`` escapes can spell token characters: lines holding them are also
    checked string by string by :class:`SecretScanner`. Every shape holds ``s.``, ``b.``
    or ``r.``, so most lines are ruled out by one fast search for such a dot.
    """
    if _TOKEN_DOT.search(raw) is None:
        return False
    if TOKEN_SHAPE_BYTES.search(raw) is not None:
        return True
    return b"\\" in raw and TOKEN_SHAPE_BYTES.search(_JSON_ESCAPE.sub(b"  ", raw)) is not None


def _spells_secret(text: str) -> bool:
    return TOKEN_SHAPE_TEXT.search(text) is not None or has_url_password(text)


class SecretScanner:
    """Finds raw secrets in a parsed record. Pure; raises :class:`UnhashedSecret` on the first one.

    :meth:`scan` also counts the record's object keys, so the caller can run the
    duplicate-key check of :func:`collector.canonical.parse_json` without a second walk.
    """

    def __init__(self, non_hmac_keys: Iterable[str] = ()) -> None:
        self.allowed_plain = DEFAULT_NON_HMAC_KEYS | frozenset(non_hmac_keys)
        self._shapes = False
        self.spaced = True  # whether the last text scanned had a quote followed by whitespace

    def compact_scan(self, record: dict[str, Any], raw: bytes) -> bool:
        """The fast path of :meth:`scan` for the common line: True when clean, False when undecided.

        It decides only when *raw* holds no ``\\u`` escape (other escapes each stand for one
        character that cannot be part of a token) and is exactly ``orjson.dumps(record)``
        (the record re-serializes byte for byte, so no duplicate key was dropped). Then it
        finds what :meth:`scan` finds, with less work per value:

        * token shapes: :func:`spells_token_shape`, as :meth:`scan`;
        * credential keys: the credential keys of each object (by the same rule, cached by
          the object's key tuple) have their values checked as :meth:`scan` checks them,
          and every nested object and list is walked;
        * ``request.data``/``response.data``: walked by the same code as :meth:`scan`.

        Raises :class:`UnhashedSecret` or ``_TooDeep`` like :meth:`scan`.
        """
        if b"\\u" in raw:
            return False
        try:
            if orjson.dumps(record) != raw:
                return False
        except TypeError:
            return False
        if spells_token_shape(raw) or json_has_url_password(raw):
            raise UnhashedSecret
        self._shapes = False
        self._compact_dict(record, 0)
        for side in ("request", "response"):
            holder = record.get(side)
            if type(holder) is not dict:
                continue
            data: Any = holder.get("data")
            kind = type(data)
            if kind is dict:
                self._dict(data, _DATA, 2)
            elif kind is list:
                self._list(data, _DATA, 2)
            elif kind is str and data and not data.startswith(HMAC_PREFIX) and not _TIMESTAMP.match(data):
                raise UnhashedSecret
        return True

    def _compact_dict(self, value: dict[str, Any], depth: int) -> None:
        """What :meth:`_plain_dict` checks (without ``data``), with the credential keys of each key shape cached."""
        if depth > MAX_RECORD_DEPTH:
            raise _TooDeep
        keys = tuple(value)
        credential_keys = _CREDENTIAL_KEYS_OF.get(keys)
        if credential_keys is None:
            credential_keys = tuple(key for key in keys if _SENSITIVE_CACHE[key])
            if len(_CREDENTIAL_KEYS_OF) < 10_000:
                _CREDENTIAL_KEYS_OF[keys] = credential_keys
        for key in credential_keys:
            item = value[key]
            kind = type(item)
            if kind is str:
                if item and not item.startswith(HMAC_PREFIX):
                    raise UnhashedSecret
            elif kind is int or kind is float:  # Vault HMACs strings only: a number is logged as sent
                raise UnhashedSecret
            elif kind is dict:
                self._dict(item, _SENSITIVE, depth + 1)
            elif kind is list:
                self._list(item, _SENSITIVE, depth + 1)
        for item in value.values():
            kind = type(item)
            if kind is dict:
                self._compact_dict(item, depth + 1)
            elif kind is list:
                self._compact_list(item, depth + 1)

    def _compact_list(self, value: list[Any], depth: int) -> None:
        if depth > MAX_RECORD_DEPTH:
            raise _TooDeep
        for item in value:
            kind = type(item)
            if kind is dict:
                self._compact_dict(item, depth + 1)
            elif kind is list:
                self._compact_list(item, depth + 1)

    def check(self, record: Any, raw: bytes) -> None:
        """Raise :class:`UnhashedSecret` when *record* (parsed from *raw*) carries a raw secret."""
        self.scan(record, raw)

    def scan(self, record: Any, raw: bytes) -> int:
        """Check *record* (parsed from *raw*) by walking every value; return its number of object keys.

        Raises :class:`UnhashedSecret`, or ``_TooDeep`` past :data:`MAX_RECORD_DEPTH`.
        """
        folded = raw.translate(_TOKEN_DOT_TABLE)
        self.spaced = b'" ' in folded
        if spells_token_shape(raw) or json_has_url_password(raw):
            raise UnhashedSecret
        # JSON \\u escapes (and \\/ for a URL's slashes) can spell a token or a URL password the byte
        # scans cannot see: then look at every decoded string.
        self._shapes = b"\\u" in raw or b"\\/" in raw
        if type(record) is dict:
            if self._shapes:
                return self._dict(record, _RECORD, 0)
            count = len(record)
            for key, item in record.items():
                kind = type(item)
                if kind is dict:
                    if _SENSITIVE_CACHE[key]:
                        count += self._dict(item, _SENSITIVE, 1)
                    else:
                        count += self._plain_dict(item, 1, key == "request" or key == "response")
                elif kind is list:
                    count += self._list(item, _SENSITIVE if _SENSITIVE_CACHE[key] else _PLAIN, 1)
                elif kind is str and item and _SENSITIVE_CACHE[key] and not item.startswith(HMAC_PREFIX):
                    raise UnhashedSecret
                elif (kind is int or kind is float) and _SENSITIVE_CACHE[key]:
                    raise UnhashedSecret
            return count
        if type(record) is list:
            return self._list(record, _PLAIN, 0)
        if self._shapes and type(record) is str and _spells_secret(record):
            raise UnhashedSecret
        return 0

    def _plain_dict(self, value: dict[str, Any], depth: int, holds_data: bool = False) -> int:
        """A dict where plain strings are fine except under credential keys (no \\u escapes in the line)."""
        if depth > MAX_RECORD_DEPTH:
            raise _TooDeep
        count = len(value)
        sensitive = _SENSITIVE_CACHE
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                if item and sensitive[key] and not item.startswith(HMAC_PREFIX):
                    raise UnhashedSecret
            elif kind is int or kind is float:
                if sensitive[key]:
                    raise UnhashedSecret
            elif kind is dict:
                if sensitive[key]:
                    count += self._dict(item, _SENSITIVE, depth + 1)
                elif holds_data and key == "data":
                    count += self._dict(item, _DATA, depth + 1)
                else:
                    count += self._plain_dict(item, depth + 1)
            elif kind is list:
                if sensitive[key]:
                    count += self._list(item, _SENSITIVE, depth + 1)
                elif holds_data and key == "data":
                    count += self._list(item, _DATA, depth + 1)
                elif not all(type(x) is str for x in item):
                    count += self._list(item, _PLAIN, depth + 1)
                elif depth + 1 > MAX_RECORD_DEPTH:
                    raise _TooDeep
        if holds_data:
            data = value.get("data")
            if type(data) is str and data and not data.startswith(HMAC_PREFIX) and not _TIMESTAMP.match(data):
                raise UnhashedSecret
        return count

    def _dict(self, value: dict[str, Any], mode: int, depth: int) -> int:
        if depth > MAX_RECORD_DEPTH:
            raise _TooDeep
        count = len(value)
        shapes = self._shapes
        sensitive_cache = _SENSITIVE_CACHE
        for key, item in value.items():
            if shapes and _spells_secret(key):
                raise UnhashedSecret
            if mode == _SENSITIVE or sensitive_cache[key]:
                child = _SENSITIVE
            elif mode == _DATA:
                child = _PLAIN if key in self.allowed_plain else _DATA
            elif mode == _RECORD:
                child = _REQUEST_OR_RESPONSE if (key == "request" or key == "response") else _PLAIN
            elif mode == _REQUEST_OR_RESPONSE:
                child = _DATA if key == "data" else _PLAIN
            else:
                child = _PLAIN
            kind = type(item)
            if kind is str:
                if (child == _DATA or child == _SENSITIVE) and item and not item.startswith(HMAC_PREFIX):
                    if child == _SENSITIVE or not _TIMESTAMP.match(item):
                        raise UnhashedSecret
                if shapes and _spells_secret(item):
                    raise UnhashedSecret
            elif kind is int or kind is float:
                if child == _SENSITIVE:
                    raise UnhashedSecret
            elif kind is dict:
                count += self._dict(item, child, depth + 1)
            elif kind is list:
                count += self._list(item, child, depth + 1)
        return count

    def _list(self, value: list[Any], mode: int, depth: int) -> int:
        if depth > MAX_RECORD_DEPTH:
            raise _TooDeep
        if mode == _RECORD or mode == _REQUEST_OR_RESPONSE:
            mode = _PLAIN
        count = 0
        shapes = self._shapes
        for item in value:
            kind = type(item)
            if kind is str:
                if mode and item and not item.startswith(HMAC_PREFIX):
                    if mode == _SENSITIVE or not _TIMESTAMP.match(item):
                        raise UnhashedSecret
                if shapes and _spells_secret(item):
                    raise UnhashedSecret
            elif kind is int or kind is float:
                if mode == _SENSITIVE:
                    raise UnhashedSecret
            elif kind is dict:
                count += self._dict(item, mode, depth + 1)
            elif kind is list:
                count += self._list(item, mode, depth + 1)
        return count


class _TooDeep(Exception):
    pass


# -- parsing one line ---------------------------------------------------------------------------


def classify_parse_error(message: str) -> str:
    """Reason code for a :func:`parse_json` failure message (the message itself is not kept)."""
    if "duplicate key" in message:
        return DUPLICATE_KEYS
    if "UTF-8" in message and "byte order mark" not in message:  # a BOM is valid UTF-8, not valid JSON
        return NOT_UTF8
    if "surrogate" in message:
        return LONE_SURROGATE
    if "depth limit" in message or "recursion" in message:
        return DEEP_NESTING
    if "unexpected end of data" in message or "EOF" in message:
        return TRUNCATED_LINE
    return INVALID_JSON


class ParsedLine(NamedTuple):
    """A line that parsed as a Vault audit record (an immutable tuple: cheap per line)."""

    record: dict[str, Any]
    record_type: str
    request_id: str
    time: str | None  # normalized RFC 3339 UTC, None when unusable
    epoch: int | None


_MINUTE_EPOCH: dict[str, int] = {}


def vault_time(value: Any) -> tuple[str, int] | None:
    """(RFC 3339 UTC text with at most microseconds, epoch seconds) of a Vault ``time``, or None."""
    if type(value) is not str:
        return None
    match = _UTC_TIME.match(value)
    if match is None:
        try:
            moment = parse_time(value)
        except MalformedInput:
            return None
        return format_time(moment), calendar.timegm(moment.utctimetuple())
    base, fraction = match.group(1), match.group(2)
    minute = base[:16]
    start = _MINUTE_EPOCH.get(minute)
    if start is None:
        try:
            start = calendar.timegm((int(base[0:4]), int(base[5:7]), int(base[8:10]), int(base[11:13]),
                                     int(base[14:16]), 0, 0, 0, 0))
            parse_time(minute + ":00Z")  # validates month/day ranges
        except (ValueError, MalformedInput):
            return None
        if len(_MINUTE_EPOCH) > 100_000:
            _MINUTE_EPOCH.clear()
        _MINUTE_EPOCH[minute] = start
    seconds = int(base[17:19])
    if seconds > 59:
        return None
    if not fraction:
        return base + "Z", start + seconds
    micro = fraction[:6].ljust(6, "0")
    return (base + "Z" if micro == "000000" else f"{base}.{micro}Z"), start + seconds


def _reject_spaced_duplicates(data: bytes) -> None:
    """Exact duplicate-key check for text with space before a colon (parse_json's count misses it)."""
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in items}) != len(items):
            raise MalformedInput("duplicate key in one JSON object")
        return dict(items)

    json.loads(data, object_pairs_hook=pairs)


def parse_line(data: bytes, location: str, scanner: SecretScanner) -> tuple[ParsedLine | None, str | None]:
    """Parse and check one audit line: (the record or None, the quarantine reason or None).

    Strictness is :func:`collector.canonical.parse_json`'s: orjson parses (no NaN, no lone
    surrogates, valid UTF-8); the scanner counts keys while it looks for secrets, and only
    when the text holds more key separators than that count is ``parse_json`` asked to
    rule on duplicate keys (the same over-count test it uses itself, without its second
    walk). Text with space before a colon gets an exact duplicate check, which that count
    cannot give. A record comes back with a reason too when it parsed
    (``unhashed-secret``, ``bad-time``), for pairing.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return None, classify_parse_error(str(exc))
    if type(doc) is not dict:
        return None, NOT_A_VAULT_RECORD
    reason: str | None = None
    try:
        if scanner.compact_scan(doc, data):
            return _vault_fields(doc, None)
    except UnhashedSecret:
        return _vault_fields(doc, UNHASHED_SECRET)
    except (_TooDeep, RecursionError):
        return None, DEEP_NESTING
    try:
        # parse_json's own test: more '":' in the text than keys parsed may mean a duplicate key.
        suspicious = data.count(b'":') > scanner.scan(doc, data)
    except UnhashedSecret:
        reason, suspicious = UNHASHED_SECRET, False
    except (_TooDeep, RecursionError):
        return None, DEEP_NESTING
    if suspicious or (reason is None and scanner.spaced and _SPACE_BEFORE_COLON.search(data)):
        try:
            parse_json(data, location=location)
            if not suspicious:
                _reject_spaced_duplicates(data)
        except MalformedInput as exc:
            return None, classify_parse_error(str(exc))
    return _vault_fields(doc, reason)


def _vault_fields(doc: dict[str, Any], reason: str | None) -> tuple[ParsedLine | None, str | None]:
    """The record's type, request id and time, checked (the end of :func:`parse_line`)."""
    record_type = doc.get("type")
    request = doc.get("request")
    if record_type not in ("request", "response") or type(request) is not dict:
        return None, reason or NOT_A_VAULT_RECORD
    request_id = request.get("id")
    if type(request_id) is not str or not _REQUEST_ID.match(request_id):
        return None, reason or NOT_A_VAULT_RECORD
    when = vault_time(doc.get("time"))
    if when is None:
        return ParsedLine(doc, record_type, request_id, None, None), reason or BAD_TIME
    return ParsedLine(doc, record_type, request_id, when[0], when[1]), reason


# -- normalization ------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if type(value) is str and value else None


def _plain(value: Any) -> str | None:
    """A non-empty string that is not an HMAC."""
    return value if type(value) is str and value and not value.startswith(HMAC_PREFIX) else None


def _int(value: Any) -> int | None:
    return value if type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else None


def _dict(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else {}


def _str_list(value: Any) -> list[str] | None:
    if type(value) is not list:
        return None
    return [v for v in value if type(v) is str]


def duration_seconds(value: Any) -> int | None:
    """Seconds of a Vault TTL given as an int or ``"30m"``/``"1800s"``/``"1800"``; None when HMAC'd."""
    if type(value) is int:
        return _int(value)
    if type(value) is not str:
        return None
    match = _DURATION.match(value.strip())
    if match is None:
        return None
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return _int(int(match.group(1)) * scale)


def normalize_serial(value: Any) -> str | None:
    """``aa:bb:...`` lower-case, or None for an HMAC or a non-hex value."""
    text = _plain(value)
    if text is None or not _SERIAL_HEX.match(text):
        return None
    digits = text.replace(":", "").replace("-", "").lower()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _error_text(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    return " ".join(text.split())[:500] or None


def _correlation(*metadatas: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for metadata in metadatas:
        for key, value in metadata.items():
            name = METADATA_CORRELATION.get(key)
            if name is None:
                continue
            if type(value) is int:
                value = str(value)
            value = _plain(value)
            if value is not None:
                if name == "cert_serial":
                    value = normalize_serial(value)
                    if value is None:
                        continue
                found[name] = value
    return found


def _caller_chose_metadata(auth: dict[str, Any]) -> bool:
    """Whether a token's metadata is whatever its creator passed: auth/token/create names its tokens
    ``token`` or ``token-<display_name>`` and stores any ``meta`` given, so a job can mint a token whose
    metadata names another job. Login tokens (``jwt-…``, ``cert-…``) carry what the auth method set."""
    name = auth.get("display_name")
    return type(name) is str and (name == "token" or name.startswith("token-"))


def _mount(request: dict[str, Any], response: dict[str, Any], path: str) -> tuple[str, str, str | None, bool]:
    """(mount path without slash, path inside the mount, mount type, whether the type was inferred)."""
    mount_point = _text(request.get("mount_point"))
    if mount_point and path.startswith(mount_point):
        mount, rest = mount_point.rstrip("/"), path[len(mount_point):]
    elif path.startswith("auth/"):
        parts = path.split("/", 2)
        mount, rest = "/".join(parts[:2]), parts[2] if len(parts) > 2 else ""
    else:
        mount, _, rest = path.partition("/")
    mount_type = _plain(request.get("mount_type")) or _plain(response.get("mount_type"))
    if mount_type is not None:
        return mount, rest, mount_type, False
    if mount == "sys" or mount.startswith("auth/"):
        return mount, rest, None, False
    name = mount.rsplit("/", 1)[-1]
    inferred = _MOUNT_NAME_TYPES.get(name) or ("pki" if name.startswith("pki") else None)
    return mount, rest, inferred, inferred is not None


def classify(path: str, operation: str, mount: str, rest: str, mount_type: str | None) -> str:
    """The event kind for a request path and operation (see docs/events.md)."""
    segments = rest.split("/") if rest else []
    if mount == "auth/token":
        head = segments[0] if segments else ""
        if head.startswith("create"):
            return "vault.token_create"
        if head in ("renew", "renew-self", "renew-accessor"):
            return "vault.token_renew"
        return "vault.request"
    if mount.startswith("auth/"):
        if segments and (segments[0] == "login" or rest == "oidc/callback"):
            return "vault.login"
        return "vault.request"
    if mount == "sys":
        if operation in _WRITE_OPERATIONS:
            if rest.startswith(("policy/", "policies/acl/", "policies/rgp/", "policies/egp/")):
                return "vault.policy_change"
            if rest.startswith(("audit/", "config/auditing/request-headers")):
                return "vault.audit_change"
            if rest == "wrapping/unwrap":  # hands the wrapped secret to whoever holds the wrapping token
                return "vault.secret_read"
        elif operation == "read" and rest.startswith("raw/"):  # storage read past every engine and policy
            return "vault.secret_read"
        return "vault.request"
    if mount_type == "pki":
        if operation in ("update", "create") and _pki_role(segments) is not None:
            return "vault.pki_issue"
        if pki_ca_operation(segments, operation) is not None:
            return "vault.pki_ca_change"
        return "vault.request"
    if mount_type in SECRET_ENGINES_STATIC:
        if mount_type in _KV_TYPES and segments and segments[0] in ("metadata", "subkeys", "config"):
            return "vault.secret_write" if operation in _WRITE_OPERATIONS else "vault.request"
        if operation == "read":
            return "vault.secret_read"
        if operation in _WRITE_OPERATIONS:
            return "vault.secret_write"
        return "vault.request"
    if mount_type == "transit":  # the engine's answers that are secrets: plaintext, data keys, key material
        if segments and (segments[0] == "decrypt" or segments[:2] == ["datakey", "plaintext"] or segments[0] == "export"):
            return "vault.secret_read"
        return "vault.secret_write" if operation == "delete" else "vault.request"
    if mount_type == "identity" and segments[:2] == ["oidc", "token"]:  # a signed identity token for the caller
        return "vault.secret_read"
    if mount_type == "totp" and segments and segments[0] == "code" and operation == "read":  # a valid one-time code
        return "vault.secret_read"
    if mount_type in SECRET_ENGINES_DYNAMIC:
        credential = bool(segments) and segments[0] in _CREDENTIAL_SEGMENTS
        if credential and operation in ("read", "update", "create"):
            return "vault.secret_read"
        if operation in _WRITE_OPERATIONS:
            return "vault.secret_write"
        return "vault.request"
    return "vault.request"


def _answers_with_secret_data(response: dict[str, Any]) -> bool:
    """Whether a kv read classified as a metadata lookup answered with keys kv v2 metadata never has."""
    data = response.get("data")
    return type(data) is dict and any(key not in _KV2_NON_SECRET_DATA_KEYS for key in data)


# PKI endpoints that change who the engine's certificates chain to (its issuers and their keys):
# first path segments (after ``issuer/<ref>/`` where the API has that form) -> the change, written
# operations only. Certificates for leaves are vault.pki_issue; revocation, tidy and roles stay requests.
_PKI_CA_CHANGES = {
    ("root", "generate"): "generate-root", ("issuers", "generate", "root"): "generate-root",
    ("root", "sign-intermediate"): "sign-intermediate", ("sign-intermediate",): "sign-intermediate",
    ("root", "sign-self-issued"): "sign-self-issued", ("sign-self-issued",): "sign-self-issued",
    ("intermediate", "generate"): "generate-intermediate", ("issuers", "generate", "intermediate"): "generate-intermediate",
    ("intermediate", "set-signed"): "set-signed", ("intermediate", "cross-sign"): "cross-sign",
    ("config", "ca"): "import", ("issuers", "import"): "import", ("keys", "import"): "key-import",
    ("keys", "generate"): "key-generate", ("root", "rotate"): "rotate-root", ("root", "replace"): "replace-root",
    ("config", "issuers"): "default-issuer", ("config", "keys"): "default-key",
}


def pki_ca_operation(segments: list[str], operation: str) -> str | None:
    """The CA change a PKI request makes (:data:`_PKI_CA_CHANGES`), or None for any other request:
    also an issuer or key updated or deleted (``issuer/<ref>``, ``key/<ref>``) and ``root`` deleted
    (every issuer and key of the mount)."""
    if operation not in _WRITE_OPERATIONS:
        return None
    if segments == ["root"] and operation == "delete":
        return "delete-all"
    if len(segments) == 2 and segments[0] in ("issuer", "key"):
        return f"{segments[0]}-{'delete' if operation == 'delete' else 'update'}"
    if len(segments) >= 3 and segments[0] == "issuer":
        segments = segments[2:]  # issuer/<ref>/sign-intermediate, .../sign-self-issued
    for size in (3, 2, 1):
        change = _PKI_CA_CHANGES.get(tuple(segments[:size]))
        if change is not None:
            return change
    return None


def _pki_role(segments: list[str]) -> str | None:
    """The role of ``issue/<role>``, ``sign/<role>``, ``issuer/<ref>/issue|sign/<role>``, ``sign-verbatim``."""
    if len(segments) >= 3 and segments[0] == "issuer":
        segments = segments[2:]
    if len(segments) >= 2 and segments[0] in ("issue", "sign", "sign-verbatim"):
        return segments[1]
    if segments and segments[0] == "sign-verbatim":
        return ""
    return None


def normalize(parsed: ParsedLine, paired: bool | None = None) -> dict[str, Any]:
    """The normalized event of a parsed record that passed the secrets check.

    Its values are strings, booleans, None and integers within ±(2**53-1) only (never a
    float or a subtree copied from the record), so its canonical bytes need no type walk
    (``canonical_bytes_of_text_tree``); ``tests/test_vault.py`` checks that.
    """
    record = parsed.record
    request = record["request"]
    response = _dict(record.get("response"))
    auth = _dict(record.get("auth"))
    response_auth = _dict(response.get("auth"))
    path = _text(request.get("path")) or ""
    operation = _text(request.get("operation")) or ""
    mount, rest, mount_type, inferred = _mount(request, response, path)
    error = _error_text(record.get("error"))
    attrs: dict[str, Any] = {"request_id": parsed.request_id, "path": path, "operation": operation}
    if mount_type is not None:
        attrs["mount_type"] = mount_type
        if inferred:
            attrs["mount_type_inferred"] = True
    remote = _plain(request.get("remote_address"))
    if remote is not None:
        attrs["remote_address"] = remote
    namespace = _plain(_dict(request.get("namespace")).get("id"))
    if namespace is not None and namespace != "root":
        attrs["namespace"] = namespace
    if error is not None and "permission denied" in error:
        attrs["permission_denied"] = True

    if parsed.record_type == "request":
        kind = "vault.request_received"
        # The kind its response would have, where the request alone decides it: a request whose response
        # line never comes (stripped from the log) still counts as the secret read or renewal it asked for.
        attrs["requested_kind"] = classify(path, operation, mount, rest, mount_type)
        actor_auth, metadata = auth, _dict(auth.get("metadata"))
    else:
        kind = classify(path, operation, mount, rest, mount_type)
        if kind == "vault.request" and operation == "read" and mount_type in _KV_TYPES and \
                _answers_with_secret_data(response):
            kind = "vault.secret_read"
        attrs["paired"] = bool(paired)
        login = kind == "vault.login"
        actor_auth = response_auth if (login and response_auth) else auth
        metadata = _dict(actor_auth.get("metadata"))
        request_data = _dict(request.get("data"))
        response_data = _dict(response.get("data"))
        if kind in ("vault.login", "vault.token_create", "vault.token_renew"):
            if login:
                attrs["auth_method"] = mount_type or mount.split("/", 1)[-1]
                attrs["role"] = (_plain(metadata.get("role")) or _plain(metadata.get("role_name"))
                                 or _text(request_data.get("role")))
            policies = _str_list(response_auth.get("policies"))
            if policies is not None:
                attrs["policies"] = policies
            ttl = _int(response_auth.get("token_ttl"))
            if ttl is None:
                ttl = _int(response_auth.get("lease_duration"))
            attrs["token_ttl"] = ttl
            attrs["token_type"] = _plain(response_auth.get("token_type"))
            if login and metadata:
                attrs["metadata"] = {k: v for k, v in sorted(metadata.items())[:50] if type(v) is str}
        elif kind == "vault.pki_issue":
            attrs["role"] = _pki_role(rest.split("/"))
            attrs["common_name"] = _text(request_data.get("common_name"))
            ttl = duration_seconds(request_data.get("ttl"))
            expiration = _int(response_data.get("expiration"))
            if expiration is not None:
                attrs["expiration"] = format_time_epoch(expiration)
                if ttl is None and parsed.epoch is not None:
                    ttl = expiration - parsed.epoch
            attrs["ttl"] = ttl
            serial = normalize_serial(response_data.get("serial_number"))
            if serial is not None:
                attrs["cert_serial"] = serial
            elif _text(response_data.get("serial_number")):
                attrs["cert_serial_hmac"] = response_data["serial_number"]
        elif kind == "vault.pki_ca_change":
            segments = rest.split("/")
            attrs["ca_operation"] = pki_ca_operation(segments, operation)
            attrs["mount"] = mount
            if len(segments) >= 2 and segments[0] in ("issuer", "key"):
                attrs[segments[0]] = segments[1]
            common_name = _text(request_data.get("common_name"))
            if common_name is not None:
                attrs["common_name"] = common_name
        elif kind in ("vault.secret_read", "vault.secret_write"):
            attrs["mount"] = mount
            if mount_type in _KV_TYPES:
                first = rest.split("/", 1)[0]
                # kv v2 reads only under data/: a read elsewhere that handed out a secret is kv v1's
                attrs["kv_version"] = 2 if first in _KV2_SEGMENTS and (first == "data" or operation != "read") else 1
            elif mount == "sys":
                attrs["unwrap" if rest == "wrapping/unwrap" else "raw_storage"] = True
            lease = _plain(_dict(response.get("secret")).get("lease_id"))
            if lease is not None:
                attrs["lease_id"] = lease
        elif kind == "vault.policy_change":
            attrs["policy"] = rest.rsplit("/", 1)[-1]
        elif kind == "vault.audit_change":
            attrs["change"] = "disable" if operation == "delete" else "enable"
            attrs["device"] = rest.split("/", 1)[1] if "/" in rest else rest
            device_type = _text(request_data.get("type"))
            if device_type is not None:
                attrs["device_type"] = device_type

    auth_metadata = _dict(auth.get("metadata"))
    correlation = _correlation(auth_metadata)
    if correlation and _caller_chose_metadata(auth):
        attrs["claimed_correlation"], correlation = correlation, {}
    if metadata is not auth_metadata:
        found = _correlation(metadata)
        if found and _caller_chose_metadata(actor_auth):
            attrs.setdefault("claimed_correlation", {}).update(found)
        else:
            correlation.update(found)
    entity = _plain(actor_auth.get("entity_id")) or _plain(auth.get("entity_id"))
    if entity is not None:
        correlation["vault_entity_id"] = entity
    if "cert_serial" in attrs:
        correlation["cert_serial"] = attrs["cert_serial"]
    actor = _plain(actor_auth.get("display_name")) or entity
    return {
        "time": parsed.time,
        "kind": kind,
        "actor": actor,
        "action": f"{operation} {path}".strip(),
        "resource": path or None,
        "outcome": {"status": "failure" if error else "success", "error": error},
        "correlation": correlation,
        "attrs": attrs,
    }


def format_time_epoch(seconds: int) -> str:
    """RFC 3339 UTC text of a Unix time."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# -- pairing state ------------------------------------------------------------------------------


class OpenRequest(NamedTuple):
    """A request line whose response has not been read yet (no secret content; an immutable tuple)."""

    epoch: int
    time: str | None
    location: str
    line: int | None
    raw_sha256: str
    path: str | None = None
    operation: str | None = None
    actor: str | None = None
    correlation: Mapping[str, str] | None = None

    def to_json(self) -> list[Any]:
        return [self.epoch, self.time, self.location, self.line, self.raw_sha256, self.path, self.operation,
                self.actor, dict(self.correlation) if self.correlation else None]

    @staticmethod
    def from_json(doc: list[Any]) -> OpenRequest:
        return OpenRequest(int(doc[0]), doc[1], str(doc[2]), doc[3], str(doc[4]), doc[5], doc[6], doc[7], doc[8])


class PairingState:
    """Open request ids in arrival order, and a generation counter that orders cursors."""

    def __init__(self, generation: int = 0, open_requests: dict[str, OpenRequest] | None = None) -> None:
        self.generation = generation
        self.open: dict[str, OpenRequest] = open_requests or {}

    def to_json(self) -> dict[str, Any]:
        return {"gen": self.generation, "open": [[k, v.to_json()] for k, v in self.open.items()]}


UNREADABLE_CURSOR = "the ledger holds a Vault cursor fedledger cannot read"


def pairing_domain(name: str) -> str:
    """The pairing domain of an input: the folder of a file (one Vault server's audit device writes
    its requests and their responses there, rotations included), ``-`` for stdin."""
    return STDIN_NAME if name == STDIN_NAME else str(Path(name).resolve().parent)


class PairingStates:
    """The open requests of each pairing domain, as the ledger's Vault cursors left them.

    Every file cursor carries the state of its file's domain (``domain``) and a generation
    counter that grows across all Vault cursors; a domain's state is the one with the highest
    generation among its cursors. Two Vault servers writing to two folders of one ledger (both
    under source id ``vault``) thus never see each other's open requests: one server's clock
    cannot expire the other's requests, and one collection cannot drop them. Cursors written
    before domains existed hold one state for everything: it is read for a domain, with only
    the requests read from that domain's files, when no newer state of the domain exists.
    """

    def __init__(self, cursors: Mapping[str, str]) -> None:
        self.generation = 0
        self._newest: dict[str, tuple[int, list[Any]]] = {}  # domain -> (gen, open) of its newest cursor
        self._legacy: tuple[int, list[Any]] | None = None
        for source_id, text in cursors.items():
            if not source_id.startswith(KIND + ":"):
                continue
            doc = orjson.loads(text)
            if "gen" not in doc:
                continue
            gen = int(doc["gen"])
            self.generation = max(self.generation, gen)
            found = (gen, list(doc.get("open", [])))
            domain = doc.get("domain")
            if domain is None:
                if self._legacy is None or gen > self._legacy[0]:
                    self._legacy = found
            elif str(domain) not in self._newest or gen > self._newest[str(domain)][0]:
                self._newest[str(domain)] = found
        self.states: dict[str, PairingState] = {}

    def of(self, domain: str) -> PairingState:
        state = self.states.get(domain)
        if state is None:
            try:
                state = self.states[domain] = self._load(domain)
            except (KeyError, TypeError, ValueError, IndexError):
                raise MalformedInput(UNREADABLE_CURSOR) from None
        return state

    def _load(self, domain: str) -> PairingState:
        newest = self._newest.get(domain)
        legacy = self._legacy
        if newest is not None and (legacy is None or newest[0] > legacy[0]):
            return PairingState(newest[0], {k: OpenRequest.from_json(v) for k, v in newest[1]})
        if legacy is None:
            return PairingState()
        opened = {k: OpenRequest.from_json(v) for k, v in legacy[1]}
        return PairingState(legacy[0], {k: v for k, v in opened.items() if pairing_domain(v.location) == domain})


# -- the source ---------------------------------------------------------------------------------


_NO_EXTRA = SourceRecord._field_defaults["source_extra"]  # the shared empty source_extra
_KEY_PREFIX = f"{KIND}:"  # dedup keys of lines: vault:<sha256 of the line>


@dataclass(frozen=True)
class QuarantineNote:
    location: str
    line: int | None
    reason: str
    size: int | None = None  # bytes of a line over the cap (line-too-long)


LOG_NAME = re.compile(r"(\.log|\.json|\.jsonl)(\.\d+|-[\w.-]+)?$")


def is_audit_log_name(name: str) -> bool:
    """Whether a file found under a folder is read: ``*.log``, ``*.json``, ``*.jsonl`` and rotations
    such as ``audit.log.1`` or ``audit.log-20261120`` (not compressed ones). Named files are always read."""
    return bool(LOG_NAME.search(name)) and not name.endswith((".gz", ".bz2", ".xz", ".zst", ".zip"))


class VaultAuditLog(Source):
    """Vault file-audit-device logs from files, folders (every file under them) or ``-`` (stdin).

    Files are resumed from their cursor (byte offset + SHA-256 of everything before
    it); a rotated file is followed (:mod:`collector.rotation`, listed in
    :attr:`rotations`); a file whose already-read part changed (and is found nowhere
    beside it) is recorded in :attr:`tampered` and skipped (nothing of it is re-read),
    while the other inputs are still collected.
    Stdin is not resumable; dedup keys make a repeated stdin run add nothing.
    """

    kind = KIND

    def __init__(
        self,
        paths: Iterable[str],
        *,
        chunk_size: int = DEFAULT_CHUNK,
        pair_window: int = DEFAULT_PAIR_WINDOW,
        max_open: int = DEFAULT_MAX_OPEN,
        final: bool = False,
        non_hmac_keys: Iterable[str] = (),
        stdin: BinaryIO | None = None,
        keep_notes: int = 1000,
        workers: int | None = None,
        accept_changed: Iterable[str] = (),
        max_line: int = MAX_LINE_BYTES,
    ) -> None:
        self.paths = list(paths)
        self.max_line = max_line  # a longer line is quarantined as line-too-long, never held whole
        # files whose changed already-read part the operator accepts: cursor reset, a finding recorded
        self.accept_changed = frozenset(str(Path(name).resolve()) for name in accept_changed)
        self.workers = workers  # 1: parse and stage in a worker process; 0: here; None: by input size
        if not self.paths:
            raise UsageError("give at least one file, folder or '-'")
        self.chunk_size = chunk_size
        self.pair_window = pair_window
        self.max_open = max_open
        self.final = final
        self.scanner = SecretScanner(non_hmac_keys)
        self.stdin = stdin
        self.keep_notes = keep_notes
        # Filled while collecting.
        self.lines = 0  # records read (a line over the cap included)
        self.findings = 0
        self.files = 0
        self.tampered: list[tuple[str, str]] = []
        self.rotations: list[dict[str, object]] = []  # rotated files followed (collector.rotation)
        self.accepted: list[dict[str, object]] = []  # --accept-changed files: reset or found unchanged
        self.skipped: list[str] = []  # files under a folder that do not look like audit logs
        self.pending: list[tuple[str, int]] = []  # (file, bytes after the last complete line)
        self.notes: list[QuarantineNote] = []
        self.state = PairingState()  # the pairing domain being read (see PairingStates)
        self._last_epoch: int | None = None
        self._states: PairingStates | None = None
        self._domain: str | None = None
        self._epochs: dict[str, int | None] = {}  # newest event time seen per pairing domain in this run

    def inputs(self) -> list[str]:
        """The files to read, in order (folders expanded, sorted by name with rotated files
        oldest first: ``audit.log-20261120``, ``audit.log.2``, ``audit.log.1``, ``audit.log``);
        ``-`` kept as is."""
        found: list[str] = []
        self.skipped = []
        for name in self.paths:
            if name == STDIN_NAME:
                found.append(STDIN_NAME)
                continue
            if not os.path.exists(name):
                raise UsageError("no such file or folder", location=name)
            if os.path.isdir(name):
                logs = []
                for child in iter_files([name]):
                    if is_audit_log_name(child.name):
                        logs.append(str(child))
                    else:
                        self.skipped.append(str(child))
                found.extend(sort_rotations_oldest_first(logs))  # audit.log.2, audit.log.1, audit.log
            else:
                found.append(name)
        seen: set[str] = set()
        unique = []
        for name in found:  # a file named twice (or also under a named folder) is read once
            key = name if name == STDIN_NAME else str(Path(name).resolve())
            if key not in seen:
                seen.add(key)
                unique.append(name)
        found = unique
        if not found:
            where = ", ".join(self.paths)
            if not self.skipped:
                raise UsageError(f"no files found in {where}")
            raise UsageError(f"no Vault audit log files found in {where} (looked for *.log, *.json, *.jsonl; skipped "
                             f"{len(self.skipped)} other file(s), e.g. {self.skipped[0]}): name a file itself to read "
                             "it, e.g. a compressed rotation `fedledger collect vault audit.log.1.gz`")
        return found

    def followed_rotations(self) -> list[dict[str, Any]]:
        return list(self.rotations)

    def check_accept_changed(self) -> list[str]:
        """:meth:`inputs`, after checking that every ``accept_changed`` file is one of them."""
        found = self.inputs()
        check_accepted(self.accept_changed, [Path(name) for name in found if name != STDIN_NAME])
        return found

    def staged(self, cursors: Mapping[str, str], *, store: Any, kind: str, source_id: str, observed: str,
               batch_size: int) -> Iterator[Any] | None:
        """Parsed and staged in a worker process when :func:`collector.pipeline.worth_a_worker` says so."""
        from collector.pipeline import staged_in_worker, worth_a_worker

        if self.stdin is not None or not worth_a_worker(self.paths, workers=self.workers):
            return None
        return staged_in_worker(self, cursors, store_root=store.root, kind=kind, source_id=source_id,
                                observed=observed, batch_size=batch_size)

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        try:
            self._states = PairingStates(cursors)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
            raise MalformedInput(UNREADABLE_CURSOR) from None
        self._domain = None
        self._epochs = {}
        last_marks: dict[str, tuple[str, dict[str, Any]]] = {}  # per pairing domain: its last file's cursor
        names = self.inputs()
        files = [Path(name) for name in names if name != STDIN_NAME]
        plan = plan_rotations(files, cursors, lambda path: file_source_id(KIND, path), rotation_cursor)
        self.rotations = [rotation.to_json() for rotation in plan.rotations]
        replaced = self._accept_changed(files, cursors, plan)
        for gone in plan.forget:  # cursors of names that no longer exist: done with (collector.rotation)
            self._enter(pairing_domain(str(gone)))
            yield self._mark(file_source_id(KIND, gone), FileCursor.loads(None).doc())
        if plan.order != files:  # rotated files beside the inputs join them, oldest first; stdin keeps its place
            reordered = iter([str(path) for path in plan.order])
            names = [STDIN_NAME if name == STDIN_NAME else next(reordered) for name in names] + list(reordered)
        for name in names:
            moved = False
            self._enter(pairing_domain(name))
            if name == STDIN_NAME:
                source_id = f"{KIND}:{STDIN_NAME}"
                items: Iterator[Line | LongLine | FileCursor] = self._stdin_lines()
                base: dict[str, Any] = {}
            else:
                path = Path(name)
                source_id = file_source_id(KIND, path)
                if name in plan.starts:  # a rotation moved a cursor here (or left this path new)
                    start, moved = FileCursor.loads(plan.starts[name]), True
                else:
                    start = FileCursor.loads(cursors.get(source_id))
                items = read_lines(path, start, chunk=self.chunk_size, claim=moved, max_line=self.max_line)
                base = start.doc()
            self.files += 1
            try:
                if name in replaced:  # accepted: read from its start, after the finding that says so
                    self.findings += 1
                    yield replaced[name]
                for item in items:
                    if type(item) is Line:
                        yield from self._line(item)
                    elif isinstance(item, FileCursor):
                        base = item.doc()
                        yield self._mark(source_id, base)
                    else:  # a LongLine: its bytes were never held; only its size and SHA-256 are known
                        assert isinstance(item, LongLine)
                        self.lines += 1
                        yield self._quarantine(item, LINE_TOO_LONG, item.sha256, item.size,
                                               line_too_long_detail(item))
            except SourceTampered as exc:
                self.tampered.append((name, str(exc)))
                continue
            last_marks[pairing_domain(name)] = (source_id, base)
            if name != STDIN_NAME and not name.endswith(".gz"):
                size = os.path.getsize(name)
                if size > base["offset"]:
                    self.pending.append((name, size - base["offset"]))
        if self.final:  # every domain this collection read: its requests still open are findings now
            for domain, last_mark in sorted(last_marks.items()):
                self._enter(domain)
                if not self.state.open:
                    continue
                for request_id, opened in list(self.state.open.items()):
                    del self.state.open[request_id]
                    yield self._unpaired_request(request_id, opened, "end-of-input")
                yield self._mark(*last_mark)

    def _enter(self, domain: str) -> None:
        """Read on in pairing *domain*: its open requests, and its own clock (newest time seen)."""
        if domain == self._domain:
            return
        assert self._states is not None
        if self._domain is not None:
            self._epochs[self._domain] = self._last_epoch
        self._domain = domain
        self.state = self._states.of(domain)
        self._last_epoch = self._epochs.get(domain)

    def _accept_changed(self, files: list[Path], cursors: Mapping[str, str], plan: RotationPlan
                        ) -> dict[str, SourceRecord]:
        """Reset the cursor of each ``accept_changed`` file whose already-read part changed (and that
        no rotation explains): it is read from its start after a ``vault.file_replaced`` finding,
        and so is every file of its rotation family never read yet."""
        if not self.accept_changed:
            return {}
        check_accepted(self.accept_changed, files)
        findings, self.accepted = accept_changed(KIND, files, self.accept_changed, cursors, plan,
                                                 lambda path: file_source_id(KIND, path), rotation_cursor)
        return findings

    def _mark(self, source_id: str, base: dict[str, Any]) -> CursorMark:
        """The cursor of *source_id* (a file of the current pairing domain) with that domain's state."""
        assert self._states is not None and self._domain is not None
        self._states.generation += 1
        self.state.generation = self._states.generation
        doc = dict(base)
        doc.update(self.state.to_json())
        doc["domain"] = self._domain
        return CursorMark(source_id, orjson.dumps(doc).decode())

    def _stdin_lines(self) -> Iterator[Line | LongLine | FileCursor]:
        stream = self.stdin if self.stdin is not None else sys.stdin.buffer
        return read_stream_lines(stream, STDIN_NAME, chunk=self.chunk_size, max_line=self.max_line)

    def _quarantine(self, line: Line | LongLine, reason: str, digest: str, size: int | None = None,
                    detail: str | None = None) -> SourceRecord:
        if len(self.notes) < self.keep_notes:
            self.notes.append(QuarantineNote(line.path, line.number, reason, size))
        return SourceRecord(location=line.path, line=line.number, raw=b"", reason=reason, raw_sha256=digest,
                            reason_detail=detail)

    def _line(self, line: Line) -> Iterator[SourceRecord]:
        data = line.data
        if data.endswith(b"\r"):
            data = data[:-1]
        if not data or data.isspace():
            return  # blank lines are not records
        self.lines += 1
        raw = data + b"\n"
        digest = hashlib.sha256(raw).hexdigest()
        parsed, reason = parse_line(data, line.path, self.scanner)
        if parsed is None:
            yield self._quarantine(line, reason or NOT_A_VAULT_RECORD, digest)
            return
        epoch = parsed.epoch if parsed.epoch is not None else self._last_epoch
        if epoch is not None:
            open_requests = self.state.open
            if open_requests and next(iter(open_requests.values())).epoch < epoch - self.pair_window:
                yield from self._expire(epoch)
            last = self._last_epoch
            if last is None or epoch > last:
                self._last_epoch = epoch
        if reason is not None:
            # The record is untrusted: pair on its id only, keep nothing else from it.
            if parsed.record_type == "request":
                yield from self._open(parsed.request_id,
                                      OpenRequest(epoch or 0, parsed.time, line.path, line.number, digest))
            elif self.state.open.pop(parsed.request_id, None) is None:
                yield self._unpaired_response(parsed.request_id, parsed.time, line, digest, None)
            yield self._quarantine(line, reason, digest)
            return
        if parsed.record_type == "request":
            event = normalize(parsed)
            attrs = event["attrs"]
            opened = OpenRequest(epoch or 0, parsed.time, line.path, line.number, digest, attrs["path"],
                                 attrs["operation"], event["actor"], event["correlation"] or None)
            open_requests = self.state.open
            request_id = parsed.request_id
            if request_id in open_requests or len(open_requests) >= self.max_open:
                yield from self._open(request_id, opened)
            else:
                open_requests[request_id] = opened
        else:
            open_requests = self.state.open
            waiting = open_requests.get(parsed.request_id)
            event = normalize(parsed, waiting is not None)
            if waiting is None:
                yield self._unpaired_response(parsed.request_id, parsed.time, line, digest, event)
            else:
                attrs = event["attrs"]
                if waiting.path is None or (waiting.path == attrs["path"] and waiting.operation == attrs["operation"]):
                    del open_requests[parsed.request_id]
                else:  # it repeats another request than the one logged under its id: not that request's answer
                    attrs["paired"] = False
                    yield self._unpaired_response(parsed.request_id, parsed.time, line, digest, event,
                                                  "path" if waiting.path != attrs["path"] else "operation")
        # normalize builds events from strings, booleans, None and safe integers only
        yield SourceRecord(line.path, line.number, raw, event, None, _KEY_PREFIX + digest, digest, _NO_EXTRA,
                           canonical_bytes_of_text_tree(event))

    def _open(self, request_id: str, opened: OpenRequest) -> Iterator[SourceRecord]:
        open_requests = self.state.open
        earlier = open_requests.pop(request_id, None)
        if earlier is not None and earlier.raw_sha256 != opened.raw_sha256:
            # another request under the same id: the earlier one's answer is never told apart, so it is unpaired
            yield self._unpaired_request(request_id, earlier, "duplicate-id")
        open_requests[request_id] = opened
        while len(open_requests) > self.max_open:
            oldest = next(iter(open_requests))
            yield self._unpaired_request(oldest, open_requests.pop(oldest), "capacity")

    def _expire(self, epoch: int) -> Iterator[SourceRecord]:
        cutoff = epoch - self.pair_window
        open_requests = self.state.open
        while open_requests:
            request_id, opened = next(iter(open_requests.items()))
            if opened.epoch >= cutoff:
                break
            del open_requests[request_id]
            yield self._unpaired_request(request_id, opened, "window")

    def _finding(self, *, time: str | None, request_id: str, side: str, location: str, line: int | None,
                 raw_sha256: str, closed_by: str | None, path: str | None, operation: str | None,
                 actor: str | None, correlation: Mapping[str, str] | None, mismatch: str | None = None
                 ) -> SourceRecord:
        self.findings += 1
        attrs: dict[str, Any] = {"request_id": request_id, "side": side, "location": location, "line": line,
                                 "record_sha256": raw_sha256}
        if mismatch is not None:  # the open request under this id names another path or operation
            attrs["mismatch"] = mismatch
        if closed_by is not None:
            attrs["closed_by"] = closed_by
            attrs["pair_window"] = self.pair_window
        if path is not None:
            attrs["path"] = path
            attrs["operation"] = operation
        event = {
            "time": time or format_time_epoch(self._last_epoch or 0),
            "kind": "vault.unpaired",
            "actor": actor,
            "action": f"unpaired {side}",
            "resource": path,
            "outcome": {"status": "failure", "error": f"no matching {'response' if side == 'request' else 'request'}"
                        + (f" (the request logged under this id has another {mismatch})" if mismatch else "")},
            "correlation": dict(correlation or {}),
            "attrs": attrs,
        }
        statement = orjson.dumps({"finding": "vault.unpaired", **attrs}, option=orjson.OPT_SORT_KEYS) + b"\n"
        return SourceRecord(location=location, line=line, raw=statement, event=event,
                            dedup_key=f"vault.unpaired:{side}:{request_id}:{raw_sha256}",
                            source_extra={"finding": True})

    def _unpaired_request(self, request_id: str, opened: OpenRequest, closed_by: str) -> SourceRecord:
        return self._finding(time=opened.time, request_id=request_id, side="request", location=opened.location,
                             line=opened.line, raw_sha256=opened.raw_sha256, closed_by=closed_by,
                             path=opened.path, operation=opened.operation, actor=opened.actor,
                             correlation=opened.correlation)

    def _unpaired_response(self, request_id: str, time: str | None, line: Line, digest: str,
                           event: Mapping[str, Any] | None, mismatch: str | None = None) -> SourceRecord:
        attrs = event["attrs"] if event else {}
        return self._finding(time=time, request_id=request_id, side="response", location=line.path,
                             line=line.number, raw_sha256=digest, closed_by=None, path=attrs.get("path"),
                             operation=attrs.get("operation"), actor=event["actor"] if event else None,
                             correlation=event["correlation"] if event else None, mismatch=mismatch)



def build_sources(source: Any, context: Any) -> list[Any]:
    """``fedledger run`` factory for ``kind = "vault"`` (see collector.run).

    Options mirror ``fedledger collect vault``: ``pair_window``, ``max_open``,
    ``final``, ``non_hmac_keys``, ``batch_size``. A file whose already-read part
    changed fails the source (after the other files were collected).
    """
    from collector.errors import IntegrityError
    from collector.run import PlannedCollection

    opts = source.options
    audit = VaultAuditLog(
        list(source.locations),
        pair_window=int(opts.get("pair_window") or DEFAULT_PAIR_WINDOW),
        max_open=int(opts.get("max_open") or DEFAULT_MAX_OPEN),
        final=bool(opts.get("final") or False),
        non_hmac_keys=tuple(opts.get("non_hmac_keys") or ()),
    )
    audit.inputs()  # unusable paths fail here, before anything is read

    def finish(_summary: Any) -> None:
        if audit.tampered:
            name, message = audit.tampered[0]
            raise IntegrityError(f"{len(audit.tampered)} Vault audit file(s) changed after they were read: {message}",
                                 location=name)

    return [PlannedCollection(audit, KIND, ", ".join(source.locations), finish=finish,
                              batch_size=opts.get("batch_size"))]
