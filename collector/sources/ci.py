"""CI job events: GitHub/GitLab webhooks, generic ``ci.job.*`` events and OIDC ID tokens.

Input formats (files, folders of them, or ``-`` for JSON lines on stdin)
-----------------------------------------------------------------------
``*.json``
    One JSON document per file: a plain webhook payload as GitHub or GitLab sends
    it (e.g. the octokit examples), a generic event, or one webhook delivery
    envelope (below). Read whole (at most :data:`MAX_RECORD_BYTES`).
``*.jsonl``, ``*.ndjson``, ``*.log`` and any other named file
    JSON lines, one record per line, in any of the shapes below, read
    incrementally with a tamper-checked cursor. A line over :data:`MAX_RECORD_BYTES` is
    read through without being held and quarantined as ``line-too-long``. A line may also be a bare OIDC
    token, optionally preceded by its time: ``2026-11-20T14:00:27Z eyJ...``.
``*.jwt``
    One OIDC ID token per file, optionally preceded by the time it was used
    (``<RFC 3339 time> <token>``); without a time, the token's ``iat`` is the
    event time and ``attrs.time_source`` says so.

Record shapes
-------------
* webhook delivery: ``{"headers": {"X-GitHub-Event": "workflow_job",
  "X-Hub-Signature-256": "sha256=...", ...}, "body": "<the exact raw request body>"}``
  (or ``"body_base64"`` for bodies that are not text). With ``--webhook-secret-file``
  the body is checked: GitHub ``X-Hub-Signature-256`` = HMAC-SHA256(secret, body
  bytes), GitLab ``X-Gitlab-Token`` = the secret (constant-time compare); each provider's
  event needs that provider's own proof. A mismatch is quarantined as
  ``bad-webhook-signature``, no signature (or only the other provider's) as
  ``missing-webhook-signature``. A delivery is deduplicated by its delivery id, so another
  body under an id already held is a ``conflicting-duplicate``. Without a secret the delivery is ingested with
  ``attrs.webhook_signature = "not-checked"``.
* plain payloads: GitHub ``workflow_job`` / ``workflow_run`` and GitLab Job Hook
  (``object_kind: build``) / Pipeline Hook bodies (``attrs.webhook_signature = "absent"`` and
  ``attrs.webhook_secret_configured``: whether this run had a secret to check a delivery with).
  With ``require_signed`` they are quarantined as ``missing-webhook-signature``.
* generic events: ``{"event_type": "ci.job.<name>", "timestamp"|"time": ..., ...}``.
* OIDC ID tokens: ``{"event_type": "ci.oidc_token", "token": "<JWT>", "time": "<when it
  was used>", "job_id": ...}``, verified by :mod:`collector.oidc` at that time.

Secrets hygiene (applied before anything is stored, the evidence store included)
-------------------------------------------------------------------------------
* A field named like ``payload``, ``prompt``, ``input``, ``body``, ``response``,
  ``output``, ``completion`` or ``messages`` holding raw content (not a hash) is
  replaced by ``{"sha256": ..., "size": ...}`` at any depth. The one exception is
  the object ``input`` of a ``ci.job.policy_decision`` (the policy's input facts),
  which is kept and walked.
* GitLab pipeline variable values, and values under keys named like a credential
  (``token``, ``secret``, ``password``, ``api_key``, ``Authorization``..., ``*_pass`` and
  ``*_pwd``, but not ``token_ttl``/``token_type``/``*_sha256``): strings, numbers, and whole
  non-empty lists and objects (not a ``{"status": "enabled"}`` feature switch), are
  replaced the same way.
* The password of a URL in any string (``https://user:pw@host``) is replaced by
  ``redacted-sha256-<hex>`` (:mod:`collector.url_credentials`).
* A string shaped like a token (JWT, Vault ``hvs.``/``hvb.``/``hvr.``, GitHub
  ``ghp_``/``ghs_``/``github_pat_``..., GitLab ``glpat-``) is replaced by its hash; an
  OIDC token is verified, then only its SHA-256 and claims are kept.
* A record holding the webhook secret anywhere except the ``X-Gitlab-Token`` header
  is quarantined (``secret-in-record``). Only allow-listed delivery headers are kept.
* When anything was replaced, the raw bytes stored are the redacted record
  (orjson, sorted keys) and the entry's ``source.raw_form`` is ``"redacted"``
  with the replaced paths in ``source.redacted`` (and, for deliveries, the names
  of headers not kept in ``source.dropped_headers``); otherwise they are the exact
  input bytes and ``raw_form`` is absent.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import jwt
import orjson

from collector.canonical import CanonicalizationError, canonical_bytes, parse_json
from collector.errors import FedledgerError, MalformedInput, UsageError
from collector.evidence import CursorMark, Source, SourceItem, SourceRecord
from collector.ingest import (
    LINE_TOO_LONG,
    MAX_LINE_BYTES,
    FileCursor,
    Line,
    LongLine,
    SourceTampered,
    file_source_id,
    line_too_long_detail,
    read_lines,
    read_stream_lines,
    rotation_cursor,
)
from collector.rotation import (
    CursorDoc,
    RotationPlan,
    accept_changed,
    check_accepted,
    plan_rotations,
    replaced_file_finding,
    sort_rotations_oldest_first,
)
from collector.oidc import (
    DEFAULT_ISSUERS,
    MAX_LEEWAY_SECONDS,
    TokenVerification,
    TrustedJwks,
    epoch_to_rfc3339,
    numeric_date_seconds,
    token_sha256,
    verify_id_token,
)
from collector.timeutil import format_time, parse_time
from collector.url_credentials import has_url_password, json_has_url_password, redact_url_passwords

KIND = "ci"
UTF8_BOM = b"\xef\xbb\xbf"  # skipped at the start of a file or of stdin only (RFC 8259 section 8.1)
MAX_RECORD_BYTES = MAX_LINE_BYTES  # one cap for a line and a whole document (GitHub caps webhook payloads at 25 MB)
MAX_DEPTH = 48
STREAM_MARK_EVERY = 1000
QUARANTINE_NOTES_KEPT = 1000  # quarantined records named in a run's output (all are in the quarantine table)
WHOLE_FILE_SUFFIXES = (".json", ".jwt")
FOLDER_SUFFIXES = (".json", ".jsonl", ".ndjson", ".log", ".jwt")

# Quarantine reasons (stable strings: tests and operators grep for them).
R_NOT_UTF8 = "not-utf8"
R_INVALID_JSON = "invalid-json"
R_DUPLICATE_KEY = "duplicate-key"
R_LONE_SURROGATE = "lone-surrogate"
R_TOO_DEEP = "too-deep"
R_TOO_LARGE = "too-large"  # a whole .json/.jwt document over the cap
R_LINE_TOO_LONG = LINE_TOO_LONG  # a line over the cap (read through, never held whole)
R_NOT_OBJECT = "not-an-object"
R_UNSUPPORTED = "unsupported-event"
R_RESERVED = "reserved-event-type"  # a generic ci.job.<name> naming a kind only the collector makes
R_MISSING_TIME = "missing-time"
R_BAD_TIME = "bad-time"
R_BAD_FIELD = "bad-field"
R_BAD_SIGNATURE = "bad-webhook-signature"
R_MISSING_SIGNATURE = "missing-webhook-signature"
R_SECRET_IN_RECORD = "secret-in-record"
R_TOKEN_IN_KEY = "token-in-key"

#: The shortest webhook secret accepted. A shorter one cannot be searched for in records (it would
#: match ordinary text, so the secret-leak scan would be off for it), and an HMAC key of 1 to 3 bytes
#: (at most 2^24 values) is recovered from one captured delivery in seconds: it authenticates nothing.
MIN_SECRET_BYTES = 4
SHORT_SECRET_TEXT = (f"the webhook secret on this line is shorter than {MIN_SECRET_BYTES} bytes: it cannot be "
                     "searched for in records (the secret-leak scan) and is guessed from one signed delivery; "
                     "use a long random secret (e.g. 32 bytes)")

#: The proof each provider sends with a delivery (what --webhook-secret-file checks).
PROVIDER_PROOF = {"github": "x-hub-signature-256", "gitlab": "x-gitlab-token"}

#: Delivery headers kept in the stored raw record (lower-case). Everything else is dropped.
KEPT_HEADERS = (
    "x-github-event", "x-github-delivery", "x-github-hook-id", "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type", "x-hub-signature-256", "x-gitlab-event", "x-gitlab-event-uuid",
    "x-gitlab-webhook-uuid", "x-gitlab-instance", "user-agent", "content-type",
)

TOKEN_SHAPE = re.compile(
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWS compact (JWT)
    r"|\b(?:hvs|hvb|hvr)\.[A-Za-z0-9_-]{20,}"  # Vault service/batch/recovery tokens
    r"|\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{40,}"  # GitHub tokens
    r"|\bglpat-[A-Za-z0-9_-]{20,}"  # GitLab personal access tokens
)
TOKEN_SHAPE_BYTES = re.compile(TOKEN_SHAPE.pattern.encode())
TOKEN_PREFIXES = (b"eyJ", b"hvs.", b"hvb.", b"hvr.", b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_", b"glpat-")
TOKEN_LINE = re.compile(r"^(?:(\S+)\s+)?(eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)\s*$")
HASH_TEXT = re.compile(r"^(?:sha(?:256|384|512):)?[0-9a-fA-F]{64,128}$")
AI_PAYLOAD_WORDS = frozenset(
    {"payload", "payloads", "prompt", "prompts", "input", "inputs", "body", "response", "responses",
     "output", "outputs", "completion", "completions", "messages"}
)
NOT_CONTENT_SUFFIX = frozenset(
    {"hash", "sha256", "sha", "digest", "size", "length", "id", "url", "type", "code", "status", "count",
     "tokens", "time", "ms", "seconds", "bytes", "at"}
)
SECRET_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "passphrase", "apikey", "authorization", "credential",
     "credentials", "cookie", "privatekey", "pat"}
)
# Credential words only as a key's last word: ``DB_PASS``, ``smtpPass``, ``pwd``, ``db_pwd`` (not ``pass_rate``).
SECRET_LAST_WORDS = frozenset({"pass", "pwd"})
# A feature switch, not a credential: GitHub's security_and_analysis.secret_scanning* objects.
FEATURE_STATUSES = frozenset({"enabled", "disabled"})
SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("client", "secret")})
NOT_SECRET_SUFFIX = NOT_CONTENT_SUFFIX | {"ttl", "path", "name", "policy", "policies", "expires", "expiry", "kind",
                                          "source", "issuer", "audience", "ref", "mount", "class", "format",
                                          "version", "algorithm", "alg", "fingerprint", "prefix", "hint", "present",
                                          "used", "rotated", "created", "arn", "role", "provider", "method", "scope",
                                          "scopes", "renewable", "ttl", "usage"}
EVENT_TYPE = re.compile(r"ci\.job\.([a-z][a-z0-9_]{0,62})")  # fullmatch: "$" would allow a trailing newline
JOB_KINDS = {"started": "ci.job_started", "queued": "ci.job_queued", "completed": "ci.job_completed"}
AWS_REGION = re.compile(r"^(?:us|eu|ap|ca|sa|me|af|il|mx)(?:-gov)?-[a-z]+-\d$")
ISO_SECONDS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
GITLAB_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d+)?)\s*(UTC|Z|[+-]\d\d:?\d\d)$")


# -- options and outcome of one record ------------------------------------------------------


@dataclass(frozen=True)
class CiOptions:
    """What verification needs: JWKS, allowed issuers/audiences, webhook secrets, the clock leeway
    (0..``MAX_LEEWAY_SECONDS``, recorded in each token's entry as ``attrs.leeway_s``).

    *require_signed* (``--require-signed``, a CI source's ``require_signed``): a GitHub/GitLab
    payload that arrives without its delivery envelope, so without the provider's signature or
    token, is quarantined ``missing-webhook-signature`` instead of ingested unsigned. It needs a
    webhook secret: without one no payload can be signed."""

    jwks: TrustedJwks | None = None
    issuers: tuple[str, ...] = DEFAULT_ISSUERS
    audiences: tuple[str, ...] = ()
    webhook_secrets: tuple[bytes, ...] = ()
    leeway_seconds: int = 0
    require_signed: bool = False

    def __post_init__(self) -> None:
        leeway = self.leeway_seconds
        if isinstance(leeway, bool) or not isinstance(leeway, int) or not 0 <= leeway <= MAX_LEEWAY_SECONDS:
            raise UsageError(f"the OIDC leeway must be between 0 and {MAX_LEEWAY_SECONDS} seconds, not {leeway!r}")
        if any(len(secret) < MIN_SECRET_BYTES for secret in self.webhook_secrets):
            raise UsageError(f"a webhook secret is shorter than {MIN_SECRET_BYTES} bytes")
        if self.require_signed and not self.webhook_secrets:
            raise UsageError("--require-signed (require_signed) needs a webhook secret (--webhook-secret-file, "
                             "or webhook_secret_file / webhook_secret_env in fedledger.toml): without one no "
                             "payload can be signed")


@dataclass
class CiTally:
    """Verification outcomes of the records that became entries in one run (re-read duplicates
    included; a quarantined record is counted under its reason only, even when its signature or
    token checked out before something else in it was refused)."""

    tokens_verified: int = 0
    tokens_failed: int = 0
    webhooks_verified: int = 0
    webhooks_unchecked: int = 0
    webhooks_unsigned: int = 0  # bare provider payloads ingested (no delivery envelope, no signature)
    # bare provider payloads ingested while a webhook secret was configured: location, line, provider
    unsigned_payloads: list[dict[str, object]] = field(default_factory=list)
    redacted_records: int = 0
    pending: list[str] = field(default_factory=list)
    tampered: list[str] = field(default_factory=list)
    rotations: list[dict[str, object]] = field(default_factory=list)  # rotated files followed
    accepted: list[dict[str, object]] = field(default_factory=list)  # --accept-changed: reset or not needed
    quarantined: list[dict[str, object]] = field(default_factory=list)  # location, line, reason; never content
    skipped: list[str] = field(default_factory=list)  # files under a folder not named like CI event files

    def count(self, record: NormalizedRecord) -> None:
        """Add a record that becomes an entry: its OIDC verification, webhook signature, redaction."""
        attrs = record.event["attrs"]
        if record.event["kind"] == "ci.oidc_token":
            if attrs.get("verified") is True:
                self.tokens_verified += 1
            else:
                self.tokens_failed += 1
        signature = attrs.get("webhook_signature")
        if signature == "verified":
            self.webhooks_verified += 1
        elif signature == "not-checked":
            self.webhooks_unchecked += 1
        elif signature == "absent":
            self.webhooks_unsigned += 1
        if record.source_extra:
            self.redacted_records += 1

    def note_unsigned(self, location: str, line: int | None, provider: str) -> None:
        if len(self.unsigned_payloads) < QUARANTINE_NOTES_KEPT:
            self.unsigned_payloads.append({"location": location, "line": line, "provider": provider})

    def note_quarantine(self, location: str, line: int | None, reason: str, size: int | None = None) -> None:
        if len(self.quarantined) < QUARANTINE_NOTES_KEPT:
            note: dict[str, object] = {"location": location, "line": line, "reason": reason}
            if size is not None:
                note["size"] = size
            self.quarantined.append(note)

    def to_json(self) -> dict[str, object]:
        return {
            "oidc_tokens_verified": self.tokens_verified,
            "oidc_tokens_failed": self.tokens_failed,
            "webhooks_verified": self.webhooks_verified,
            "webhooks_unchecked": self.webhooks_unchecked,
            "webhooks_unsigned": self.webhooks_unsigned,
            "unsigned_payloads": list(self.unsigned_payloads),
            "redacted_records": self.redacted_records,
            "pending": list(self.pending),
            "tampered": list(self.tampered),
            "rotations": list(self.rotations),
            "accepted_changed": list(self.accepted),
            "quarantined_records": list(self.quarantined),
            "skipped": list(self.skipped),
        }


class Quarantine(Exception):
    """Internal: this record is quarantined with *reason* (never carries record content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NormalizedRecord:
    event: dict[str, Any]
    raw: bytes
    source_extra: dict[str, Any]
    dedup_key: str | None = None  # a webhook delivery's id (else the ledger dedups by the raw SHA-256)


# -- pure webhook verification --------------------------------------------------------------


def github_signature(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for *body*."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_github_signature(body: bytes, header: str, secrets: Iterable[bytes]) -> bool:
    """True when *header* is the HMAC-SHA256 of the exact *body* bytes under one of *secrets*."""
    given = header.strip().encode("ascii", "replace")
    return any(hmac.compare_digest(github_signature(s, body).encode(), given) for s in secrets)


def verify_gitlab_token(header: str, secrets: Iterable[bytes]) -> bool:
    """True when the ``X-Gitlab-Token`` header equals one of *secrets* (constant time)."""
    given = header.encode("utf-8", "replace")
    return any(hmac.compare_digest(s, given) for s in secrets)


def read_webhook_secrets(data: bytes, *, location: str) -> tuple[bytes, ...]:
    """Secrets from a secret file: one per non-empty line, line endings removed, nothing else.

    A UTF-8 byte order mark at the start (Windows editors write one) is not part of the first
    secret: kept, no delivery would verify and the real secret would not be found in records.
    A secret shorter than :data:`MIN_SECRET_BYTES` is refused, naming its line (never its value)."""
    data = data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data
    secrets: list[bytes] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        secret = line.rstrip(b"\r")
        if not secret:
            continue
        if len(secret) < MIN_SECRET_BYTES:
            raise MalformedInput(SHORT_SECRET_TEXT, location=f"{location}:{number}")
        secrets.append(secret)
    if not secrets:
        raise MalformedInput("the webhook secret file is empty", location=location)
    return tuple(secrets)


# -- redaction ------------------------------------------------------------------------------


def _digest_of(value: Any) -> dict[str, Any]:
    data = value.encode("utf-8") if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _is_redacted_form(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) <= {"sha256", "size", "redacted"} and "sha256" in value
            and isinstance(value["sha256"], str) and bool(HASH_TEXT.match(value["sha256"])))


def _key_words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


@functools.lru_cache(maxsize=8192)
def is_ai_payload_key(key: str) -> bool:
    """A key named like an AI request/response payload (``prompt``, ``request_body``, ``userInput``...)."""
    words = _key_words(key)
    return bool(words) and any(w in AI_PAYLOAD_WORDS for w in words) and words[-1] not in NOT_CONTENT_SUFFIX


@functools.lru_cache(maxsize=8192)
def is_secret_key(key: str) -> bool:
    """A key named like a credential (``token``, ``client_secret``, ``apiKey``, ``Authorization``...).

    Keys that name facts about a credential rather than the credential itself
    (``token_ttl``, ``token_type``, ``token_sha256``, ``secret_path``) do not count.
    """
    words = _key_words(key)
    if not words or words[-1] in NOT_SECRET_SUFFIX:
        return False
    if words[-1] in SECRET_LAST_WORDS or any(w in SECRET_WORDS for w in words):
        return True
    return any(pair in SECRET_PAIRS for pair in zip(words, words[1:]))


def _holds_raw_content(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float)):
        return False
    if isinstance(value, str):
        return not HASH_TEXT.match(value)
    return not _is_redacted_form(value)


def _holds_secret(value: Any) -> bool:
    """Whether a credential key's value must be hashed: a string that is not a hash, a number,
    or a non-empty list or object (its strings are credentials too) that is not a redacted form
    nor a feature switch (``{"status": "enabled"}``, as GitHub's ``secret_scanning`` settings)."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, (list, dict)) and not value:
        return False
    if isinstance(value, dict) and len(value) == 1 and value.get("status") in FEATURE_STATUSES:
        return False
    return _holds_raw_content(value)


@dataclass(frozen=True)
class RecordScreen:
    """A cheap look at a record's bytes that says which string-by-string checks can be skipped.

    Without a backslash, every JSON string's text is a byte-for-byte slice of the
    record, so no token shape and no secret in the bytes means none in any string.
    """

    scan_tokens: bool
    scan_secrets: bool
    scan_urls: bool = True  # passwords in URLs (collector.url_credentials)

    @staticmethod
    def of(data: bytes, secrets: tuple[bytes, ...]) -> RecordScreen:
        escaped = b"\\" in data
        return RecordScreen(
            scan_tokens=escaped or (any(p in data for p in TOKEN_PREFIXES) and TOKEN_SHAPE_BYTES.search(data) is not None),
            scan_secrets=bool(secrets) and (escaped or any(s in data for s in secrets)),
            scan_urls=escaped or json_has_url_password(data),
        )


@dataclass
class Redactor:
    """Replaces AI payload fields, token-shaped strings and GitLab variable values by hashes.

    Also quarantines a record that holds a webhook secret (outside the GitLab token
    header, which the caller removes first) or a token-shaped object key.
    """

    secrets: tuple[bytes, ...] = ()
    paths: list[str] = field(default_factory=list)
    screen: RecordScreen | None = None

    def __post_init__(self) -> None:
        scan_secrets = self.screen is None or self.screen.scan_secrets
        # every secret is searched for: CiOptions refuses one shorter than MIN_SECRET_BYTES
        self._secret_texts = tuple(s.decode("utf-8", "replace") for s in self.secrets) \
            if scan_secrets else ()
        self._scan_tokens = self.screen is None or self.screen.scan_tokens
        self._scan_urls = self.screen is None or self.screen.scan_urls

    def check_text(self, text: str) -> None:
        for secret in self._secret_texts:
            if secret in text:
                raise Quarantine(R_SECRET_IN_RECORD)

    def redact(self, value: Any, path: str = "$", *, keep_object_keys: frozenset[str] = frozenset()) -> Any:
        if isinstance(value, str):
            self.check_text(value)
            if self._scan_urls and has_url_password(value):
                self.paths.append(path)
                value = redact_url_passwords(value)
            if self._scan_tokens and TOKEN_SHAPE.search(value):
                if not self.paths or self.paths[-1] != path:
                    self.paths.append(path)
                return {**_digest_of(value), "redacted": "token"}
            return value
        if isinstance(value, list):
            return [self.redact(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            result: dict[str, Any] = {}
            for key, item in value.items():
                self.check_text(key)
                if (self._scan_tokens and TOKEN_SHAPE.search(key)) or (self._scan_urls and has_url_password(key)):
                    raise Quarantine(R_TOKEN_IN_KEY)
                child = f"{path}.{key}"
                if key in keep_object_keys and isinstance(item, dict):
                    result[key] = self.redact(item, child)
                elif is_ai_payload_key(key) and _holds_raw_content(item):
                    self._check_all(item)
                    self.paths.append(child)
                    result[key] = {**_digest_of(item), "redacted": "ai-payload"}
                elif is_secret_key(key) and _holds_secret(item):
                    self._check_all(item)
                    self.paths.append(child)
                    result[key] = {**_digest_of(item), "redacted": "secret"}
                elif key == "variables" and isinstance(item, list):
                    result[key] = [self._variable(v, f"{child}[{i}]") for i, v in enumerate(item)]
                else:
                    result[key] = self.redact(item, child)
            return result
        return value

    def scrub(self, value: Any) -> Any:
        """Safety net over a finished event: secrets quarantine, token-shaped strings become hashes.

        Catches what reached the event from places the record walk does not see,
        such as OIDC claims and verification errors quoting them.
        """
        if isinstance(value, str):
            self.check_text(value)
            value = redact_url_passwords(value)
            return {**_digest_of(value), "redacted": "token"} if TOKEN_SHAPE.search(value) else value
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        if isinstance(value, dict):
            for key in value:
                self.check_text(key)
                if TOKEN_SHAPE.search(key) or has_url_password(key):
                    raise Quarantine(R_TOKEN_IN_KEY)
            return {key: self.scrub(item) for key, item in value.items()}
        return value

    def _variable(self, item: Any, path: str) -> Any:
        if isinstance(item, dict) and "value" in item and isinstance(item["value"], str):
            self.check_text(item["value"])
            self.paths.append(f"{path}.value")
            kept = self.redact({k: v for k, v in item.items() if k != "value"}, path)
            return {**kept, "value": {**_digest_of(item["value"]), "redacted": "variable"}}
        return self.redact(item, path)

    def _check_all(self, value: Any) -> None:
        """A secret inside content that is about to be hashed still quarantines the record."""
        if isinstance(value, str):
            self.check_text(value)
        elif isinstance(value, list):
            for item in value:
                self._check_all(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.check_text(key)
                self._check_all(item)


# -- parsing --------------------------------------------------------------------------------


def parse_record_json(data: bytes) -> Any:
    """Strict JSON with a quarantine reason for every way it can fail."""
    if len(data) > MAX_RECORD_BYTES:
        raise Quarantine(R_TOO_LARGE)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise Quarantine(R_NOT_UTF8) from None
    try:
        value = parse_json(data)
    except MalformedInput as exc:
        text = str(exc)
        if "duplicate key" in text:
            raise Quarantine(R_DUPLICATE_KEY) from None
        if "surrogate" in text:
            raise Quarantine(R_LONE_SURROGATE) from None
        if "recursion" in text.lower() or "depth" in text.lower():
            raise Quarantine(R_TOO_DEEP) from None
        raise Quarantine(R_INVALID_JSON) from None
    except RecursionError:
        raise Quarantine(R_TOO_DEEP) from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise Quarantine(R_TOO_DEEP)
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


def json_safe(value: Any) -> Any:
    """Attrs hold no floats: floats become strings, out-of-range integers too."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**53 - 1 else str(value)
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


def ci_time(value: Any) -> str | None:
    """RFC 3339 UTC text from GitHub (``...Z``), GitLab (``2023-01-10 13:50:02 UTC``) or epoch seconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return format_time(datetime.fromtimestamp(value, tz=timezone.utc))
        except (OverflowError, OSError, ValueError):
            raise Quarantine(R_BAD_TIME) from None
    if not isinstance(value, str):
        raise Quarantine(R_BAD_TIME)
    return _time_text(value)


@functools.lru_cache(maxsize=4096)
def _time_text(value: str) -> str:
    if ISO_SECONDS_Z.fullmatch(value):  # the common GitHub / generic form: already canonical once valid
        try:
            datetime.fromisoformat(value[:-1])
            return value
        except ValueError:
            raise Quarantine(R_BAD_TIME) from None
    text = value.strip()
    match = GITLAB_TIME.match(text)
    if match:
        zone = match.group(3)
        zone = "Z" if zone in ("UTC", "Z") else (zone if ":" in zone else zone[:3] + ":" + zone[3:])
        text = f"{match.group(1)}T{match.group(2)}{zone}"
    try:
        return format_time(parse_time(text))
    except MalformedInput:
        raise Quarantine(R_BAD_TIME) from None


def _time_of_use(doc: Mapping[str, Any]) -> str | None:
    """A token event's ``time`` (else ``timestamp``); None only when neither is given (null or "").

    A given value that is not a time is ``bad-time``, never read as "not given": the token would
    then be evaluated at its own iat and verify however long before its issue it was used (``0``
    is 1970-01-01, a time like any other)."""
    given = [v for v in (doc.get("time"), doc.get("timestamp")) if v is not None and v != ""]
    if not given:
        return None
    if any(isinstance(v, bool) for v in given):
        raise Quarantine(R_BAD_TIME)
    return _first_time(*given)


def _first_time(*values: Any) -> str:
    for value in values:
        if value is not None and value != "":
            result = ci_time(value)
            if result:
                return result
    raise Quarantine(R_MISSING_TIME)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        text = str(value)
        return text if text else None
    return None


def normalize_cert_serial(value: Any) -> str | None:
    """Colon-separated lower-case hex (``3a:5f:...``) from any common spelling."""
    text = _text(value)
    return None if text is None else _cert_serial_text(text)


@functools.lru_cache(maxsize=4096)
def _cert_serial_text(text: str) -> str:
    hexdigits = re.sub(r"[:\-\s]", "", text).lower()
    if hexdigits and re.fullmatch(r"[0-9a-f]+", hexdigits):
        if len(hexdigits) % 2:
            hexdigits = "0" + hexdigits
        return ":".join(hexdigits[i : i + 2] for i in range(0, len(hexdigits), 2))
    return text.lower()


def normalize_digest(value: Any) -> str | None:
    """``sha256:<hex>`` for a bare 64-hex digest; other algorithm prefixes kept, lower-cased."""
    text = _text(value)
    return None if text is None else _digest_text(text)


@functools.lru_cache(maxsize=4096)
def _digest_text(text: str) -> str:
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return "sha256:" + text.lower()
    if re.fullmatch(r"sha(256|384|512):[0-9a-fA-F]+", text):
        algo, hexpart = text.split(":", 1)
        return f"{algo}:{hexpart.lower()}"
    return text


def _correlation(**values: Any) -> dict[str, str]:
    return {k: t for k, v in values.items() if (t := _text(v)) is not None}


def runner_region(labels: list[str]) -> str | None:
    return next((label for label in labels if AWS_REGION.match(label)), None)


def _event(time: str, kind: str, actor: Any, action: str, resource: Any, *, ok: bool = True,
           error: str | None = None, correlation: Mapping[str, str], attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "time": time,
        "kind": kind,
        "actor": _text(actor),
        "action": action,
        "resource": _text(resource),
        "outcome": {"status": "success" if ok else "failure", "error": error},
        "correlation": dict(correlation),
        "attrs": json_safe({k: v for k, v in attrs.items() if v is not None}),
    }


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _login(user: Any) -> str | None:
    return _text(user.get("login")) if isinstance(user, dict) else _text(user)


def _str_list(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, str)] if isinstance(value, list) else []


# -- GitHub ---------------------------------------------------------------------------------


def _conclusion_error(conclusion: str | None, *, completed: bool) -> str | None:
    """The outcome error of a GitHub job or run: a conclusion other than success/skipped/neutral,
    or none at all once it completed (GitHub always sends one then: fail closed)."""
    if conclusion is None:
        return "completed without a conclusion" if completed else None
    return None if conclusion in SUCCESS_CONCLUSIONS else f"conclusion {conclusion}"


def normalize_github_workflow_job(doc: dict[str, Any]) -> dict[str, Any]:
    job = doc.get("workflow_job")
    if not isinstance(job, dict):
        raise Quarantine(R_BAD_FIELD)
    action = _text(doc.get("action")) or _text(job.get("status")) or "unknown"
    kinds = {"queued": "ci.job_queued", "waiting": "ci.job_queued", "in_progress": "ci.job_started",
             "completed": "ci.job_completed"}
    kind = kinds.get(action)
    if kind is None:
        raise Quarantine(R_UNSUPPORTED)
    order = {
        "ci.job_queued": ("created_at", "started_at"),
        "ci.job_started": ("started_at", "created_at"),
        "ci.job_completed": ("completed_at", "started_at", "created_at"),
    }[kind]
    time = _first_time(*(job.get(name) for name in order))
    repo = _obj(doc.get("repository"))
    labels = _str_list(job.get("labels"))
    conclusion = _text(job.get("conclusion"))
    error = _conclusion_error(conclusion, completed=kind == "ci.job_completed")
    return _event(
        time, kind, _login(doc.get("sender")), f"workflow_job.{action}", _text(repo.get("full_name")),
        ok=error is None, error=error,
        correlation=_correlation(job_id=job.get("id"), run_id=job.get("run_id"), repository=repo.get("full_name"),
                                 git_sha=job.get("head_sha"), runner=job.get("runner_name")),
        attrs={
            "provider": "github", "event": "workflow_job", "status": _text(job.get("status")),
            "conclusion": conclusion, "job_name": _text(job.get("name")),
            "workflow": _text(job.get("workflow_name")), "run_attempt": job.get("run_attempt"),
            "head_branch": _text(job.get("head_branch")), "runner_labels": labels,
            "runner_name": _text(job.get("runner_name")), "runner_id": job.get("runner_id"),
            "runner_group": _text(job.get("runner_group_name")), "runner_group_id": job.get("runner_group_id"),
            "runner_region": runner_region(labels), "created_at": ci_time(job.get("created_at")),
            "started_at": ci_time(job.get("started_at")), "completed_at": ci_time(job.get("completed_at")),
            "html_url": _text(job.get("html_url")),
        },
    )


def normalize_github_workflow_run(doc: dict[str, Any]) -> dict[str, Any]:
    run = doc.get("workflow_run")
    if not isinstance(run, dict):
        raise Quarantine(R_BAD_FIELD)
    action = _text(doc.get("action")) or "unknown"
    if action == "completed":
        time = _first_time(run.get("updated_at"), run.get("run_started_at"), run.get("created_at"))
    elif action == "in_progress":
        time = _first_time(run.get("run_started_at"), run.get("updated_at"), run.get("created_at"))
    else:
        time = _first_time(run.get("created_at"), run.get("run_started_at"), run.get("updated_at"))
    repo = _obj(doc.get("repository"))
    conclusion = _text(run.get("conclusion"))
    error = _conclusion_error(conclusion, completed=action == "completed")
    actor = _login(run.get("triggering_actor")) or _login(run.get("actor")) or _login(doc.get("sender"))
    workflow = _obj(doc.get("workflow"))
    return _event(
        time, "ci.workflow_run", actor, f"workflow_run.{action}", _text(repo.get("full_name")),
        ok=error is None, error=error,
        correlation=_correlation(run_id=run.get("id"), repository=repo.get("full_name"), git_sha=run.get("head_sha")),
        attrs={
            "provider": "github", "event": "workflow_run", "status": _text(run.get("status")),
            "conclusion": conclusion, "workflow": _text(run.get("name")) or _text(workflow.get("name")),
            "workflow_path": _text(run.get("path")) or _text(workflow.get("path")),
            "workflow_id": run.get("workflow_id"), "run_number": run.get("run_number"),
            "run_attempt": run.get("run_attempt"), "trigger": _text(run.get("event")),
            "head_branch": _text(run.get("head_branch")), "actor": _login(run.get("actor")),
            "triggering_actor": _login(run.get("triggering_actor")),
            "created_at": ci_time(run.get("created_at")), "run_started_at": ci_time(run.get("run_started_at")),
            "updated_at": ci_time(run.get("updated_at")), "html_url": _text(run.get("html_url")),
        },
    )


def normalize_github_ping(doc: dict[str, Any]) -> dict[str, Any]:
    """GitHub's ``ping`` (sent when a webhook is created): evidence of what the hook subscribes to.

    Kept: hook id and type, whether it is active, its event list, content type and TLS
    setting; not kept: the receiver URL (it may carry a token in its query) and ``zen``.
    """
    hook = _obj(doc.get("hook"))
    config = _obj(hook.get("config"))
    repo = _obj(doc.get("repository"))
    organization = _obj(doc.get("organization"))
    time = _first_time(hook.get("updated_at"), hook.get("created_at"))
    scope = _text(repo.get("full_name")) or _text(organization.get("login"))
    active = hook.get("active")
    return _event(
        time, "ci.webhook_ping", _login(doc.get("sender")), "ping", scope,
        correlation=_correlation(repository=repo.get("full_name")),
        attrs={
            "provider": "github", "event": "ping", "hook_id": _text(doc.get("hook_id")) or _text(hook.get("id")),
            "hook_type": _text(hook.get("type")), "active": active if isinstance(active, bool) else None,
            "events": _str_list(hook.get("events")) or None, "content_type": _text(config.get("content_type")),
            "insecure_ssl": _text(config.get("insecure_ssl")),
        },
    )


# -- GitLab ---------------------------------------------------------------------------------


def _gitlab_project_path(doc: dict[str, Any]) -> str | None:
    project = doc.get("project")
    if isinstance(project, dict) and _text(project.get("path_with_namespace")):
        return _text(project.get("path_with_namespace"))
    repo = doc.get("repository")
    if isinstance(repo, dict):
        homepage = _text(repo.get("homepage"))
        if homepage and "://" in homepage:
            path = homepage.split("://", 1)[1].split("/", 1)
            if len(path) == 2 and path[1]:
                return path[1].rstrip("/")
    return None


GITLAB_QUEUED = {"created", "pending", "waiting_for_resource", "preparing", "scheduled", "manual"}
GITLAB_RUNNING = {"running"}
GITLAB_OK = {"success", "skipped", "manual"}


def normalize_gitlab_job(doc: dict[str, Any]) -> dict[str, Any]:
    status = _text(doc.get("build_status")) or "unknown"
    times: tuple[str, ...]
    if status in GITLAB_QUEUED:
        kind, times = "ci.job_queued", ("build_created_at",)
    elif status in GITLAB_RUNNING:
        kind, times = "ci.job_started", ("build_started_at", "build_created_at")
    else:
        kind, times = "ci.job_completed", ("build_finished_at", "build_started_at", "build_created_at")
    time = _first_time(*(doc.get(name) for name in times))
    runner = _obj(doc.get("runner"))
    user = _obj(doc.get("user"))
    project = _gitlab_project_path(doc)
    labels = _str_list(runner.get("tags"))
    failed = kind == "ci.job_completed" and status not in GITLAB_OK
    duration = doc.get("build_duration")
    environment = _obj(doc.get("environment"))
    return _event(
        time, kind, _text(user.get("username")), f"job.{status}", project,
        ok=not failed, error=f"status {status}" if failed else None,
        correlation=_correlation(job_id=doc.get("build_id"), run_id=doc.get("pipeline_id"), repository=project,
                                 git_sha=doc.get("sha"), runner=runner.get("description")),
        attrs={
            "provider": "gitlab", "event": "job", "status": status,
            "conclusion": status if kind == "ci.job_completed" else None,
            "job_name": _text(doc.get("build_name")), "stage": _text(doc.get("build_stage")),
            "ref": _text(doc.get("ref")), "runner_labels": labels, "runner_name": _text(runner.get("description")),
            "runner_id": runner.get("id"), "runner_type": _text(runner.get("runner_type")),
            "runner_shared": runner.get("is_shared") if isinstance(runner.get("is_shared"), bool) else None,
            "runner_region": runner_region(labels), "project_id": doc.get("project_id"),
            "failure_reason": _text(doc.get("build_failure_reason")) if failed else None,
            "allow_failure": doc.get("build_allow_failure") if isinstance(doc.get("build_allow_failure"), bool) else None,
            "retries_count": doc.get("retries_count"),
            "duration_seconds": int(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None,
            "environment": _text(environment.get("name")),
        },
    )


def normalize_gitlab_pipeline(doc: dict[str, Any]) -> dict[str, Any]:
    attrs_in = doc.get("object_attributes")
    if not isinstance(attrs_in, dict):
        raise Quarantine(R_BAD_FIELD)
    status = _text(attrs_in.get("status")) or "unknown"
    finished = status in {"success", "failed", "canceled", "skipped"}
    time = _first_time(attrs_in.get("finished_at") if finished else None, attrs_in.get("created_at"))
    user = _obj(doc.get("user"))
    project = _gitlab_project_path(doc)
    failed = finished and status not in GITLAB_OK
    builds = _list(doc.get("builds"))
    jobs = [
        {"id": b.get("id"), "name": _text(b.get("name")), "stage": _text(b.get("stage")), "status": _text(b.get("status"))}
        for b in builds[:200] if isinstance(b, dict)
    ]
    return _event(
        time, "ci.workflow_run", _text(user.get("username")), f"pipeline.{status}", project,
        ok=not failed, error=f"status {status}" if failed else None,
        correlation=_correlation(run_id=attrs_in.get("id"), repository=project, git_sha=attrs_in.get("sha")),
        attrs={
            "provider": "gitlab", "event": "pipeline", "status": status,
            "conclusion": status if finished else None, "trigger": _text(attrs_in.get("source")),
            "ref": _text(attrs_in.get("ref")), "stages": _str_list(attrs_in.get("stages")),
            "pipeline_iid": attrs_in.get("iid"),
            "duration_seconds": int(attrs_in["duration"]) if isinstance(attrs_in.get("duration"), (int, float))
            and not isinstance(attrs_in.get("duration"), bool) else None,
            "created_at": ci_time(attrs_in.get("created_at")), "finished_at": ci_time(attrs_in.get("finished_at")),
            "jobs": jobs,
        },
    )


# -- generic ci.job.* events ----------------------------------------------------------------

# Fields a generic event maps to common fields and correlation keys (not kept in attrs). Not
# oidc_subject: it correlates only from a verified token, so an event's own claim stays an attr.
GENERIC_COMMON = {
    "event_type", "time", "timestamp", "occurred_at", "user", "actor", "job_id", "run_id", "repository",
    "git_sha", "sha", "head_sha", "role_session", "role_arn", "access_key_id",
    "artifact_hash", "artifact_digest", "vault_entity_id", "runner", "outcome", "error",
}
FAILURE_WORDS = {"failure", "failed", "fail", "error", "errored", "denied", "deny", "rejected", "cancelled", "canceled",
                 "timed_out", "timeout", "startup_failure", "aborted", "action_required", "stale"}
# ``outcome`` and ``conclusion`` name a result: only these count as a success (fail closed). A
# ``status`` may name a stage instead (``in_progress``, ``completed``): only FAILURE_WORDS fail it.
SUCCESS_OUTCOMES = frozenset({"success", "succeeded", "successful", "ok", "passed", "pass", "allow", "allowed",
                              "approved"})
SUCCESS_CONCLUSIONS = frozenset({"success", "skipped", "neutral"})  # as GitHub's workflow_job/workflow_run
APPROVING_DECISIONS = frozenset({"approved", "approve", "accepted", "granted", "allow", "allowed"})


def _generic_result(doc: Mapping[str, Any]) -> str | None:
    """Why a generic event reports a failure (``outcome timed_out``), or None for a success.

    ``outcome`` and ``conclusion`` fail unless they name a success; ``status`` fails on a
    failure word only. An event with none of them is a success, as it always was."""
    outcome, conclusion, status = (_text(doc.get(name)) for name in ("outcome", "conclusion", "status"))
    if outcome is not None and outcome.lower() not in SUCCESS_OUTCOMES:
        return f"outcome {outcome[:80]}"
    if conclusion is not None and conclusion.lower() not in SUCCESS_CONCLUSIONS:
        return f"conclusion {conclusion[:80]}"
    if status is not None and status.lower() in FAILURE_WORDS:
        return f"status {status[:80]}"
    return None


# Kinds whose facts come from the collector's own checks (a token it verified, a signature that failed,
# a file it saw replaced): a generic line, an unauthenticated statement, cannot make one.
RESERVED_GENERIC_KINDS = frozenset({"ci.oidc_token", "ci.webhook_invalid", "ci.webhook_ping", "ci.file_replaced"})
# Attrs that record what the collector established (a verified token or delivery signature, a paired
# Vault record): a generic line's own fields of these names are kept under ``claimed_attrs``, never as facts.
COLLECTOR_ATTRS = frozenset({"verified", "signature_valid", "verification_error", "webhook_signature",
                             "webhook_signature_kind", "webhook_secret_configured", "paired", "delivery_id",
                             "leeway_s", "unverified_claims"})


def normalize_generic(doc: dict[str, Any]) -> dict[str, Any]:
    match = EVENT_TYPE.fullmatch(str(doc.get("event_type")))
    if not match:
        raise Quarantine(R_UNSUPPORTED)
    name = match.group(1)
    kind = JOB_KINDS.get(name, f"ci.{name}")
    if kind in RESERVED_GENERIC_KINDS:
        raise Quarantine(R_RESERVED)
    time = _first_time(doc.get("timestamp"), doc.get("time"), doc.get("occurred_at"))
    attrs: dict[str, Any] = {k: v for k, v in doc.items() if k not in GENERIC_COMMON and k not in COLLECTOR_ATTRS}
    claimed = {k: v for k, v in doc.items() if k in COLLECTOR_ATTRS}
    if claimed:
        attrs["claimed_attrs"] = claimed
    artifact = normalize_digest(doc.get("artifact_digest") or doc.get("artifact_hash"))
    cert = normalize_cert_serial(doc.get("cert_serial"))
    if cert is not None:
        attrs["cert_serial"] = cert
    if artifact is not None:
        attrs["artifact_digest"] = artifact
    actor = doc.get("user") or doc.get("actor")
    resource: Any = doc.get("repository")
    ok, error = True, _text(doc.get("error"))
    result = _generic_result(doc)
    if result is not None:
        ok, error = False, error or result
    if kind == "ci.policy_decision":
        decision = (_text(doc.get("decision")) or "").lower()
        if decision not in ("allow", "deny"):
            decision = "allow" if doc.get("allow") is True or doc.get("allowed") is True else "deny"
        attrs["decision"] = decision
        resource = doc.get("policy") or resource
        if decision == "deny":
            ok, error = False, error or "policy denied"
    elif kind == "ci.approval":
        approver = _text(doc.get("approver")) or _text(actor)
        attrs["approver"] = approver
        actor = approver
        resource = doc.get("environment") or resource
        if (_text(doc.get("decision")) or "approved").lower() not in APPROVING_DECISIONS:
            ok, error = False, error or "not approved"
    elif kind == "ci.inference_call":
        resource = doc.get("ai_endpoint") or resource
    elif kind == "ci.build_signed":
        resource = artifact or resource
    return _event(
        time, kind, actor, str(doc["event_type"]), resource, ok=ok, error=error if not ok else None,
        correlation=_correlation(
            job_id=doc.get("job_id"), run_id=doc.get("run_id"), repository=doc.get("repository"),
            git_sha=doc.get("git_sha") or doc.get("sha") or doc.get("head_sha"),
            role_session=doc.get("role_session"), role_arn=doc.get("role_arn"), access_key_id=doc.get("access_key_id"),
            cert_serial=cert, artifact_digest=artifact, vault_entity_id=doc.get("vault_entity_id"),
            runner=doc.get("runner"),
        ),
        attrs=attrs,
    )


# -- OIDC tokens ----------------------------------------------------------------------------


def normalize_oidc_token(token: str, when: str | None, envelope: Mapping[str, Any],
                         options: CiOptions) -> dict[str, Any]:
    """A ``ci.oidc_token`` event for *token* used at *when* (or its ``iat`` when None)."""
    if not isinstance(token, str) or not token.strip():
        raise Quarantine(R_BAD_FIELD)
    time_source = "event"
    if when is None:
        try:  # the unverified iat only picks the evaluation time; verification follows
            iat = jwt.decode(token.strip(), options={"verify_signature": False}).get("iat")
        except (jwt.InvalidTokenError, ValueError, TypeError, AttributeError):
            iat = None
        # A fractional iat counts from the next whole second, which is also the issued_at
        # recorded (collector.oidc.numeric_date_seconds): the event's time never precedes it.
        iat = numeric_date_seconds(iat)
        if iat is None:
            raise Quarantine(R_MISSING_TIME)
        when = ci_time(iat)
        time_source = "iat"
    assert when is not None
    result: TokenVerification = verify_id_token(
        token, options.jwks, at=parse_time(when), issuers=options.issuers, audiences=options.audiences,
        leeway_seconds=options.leeway_seconds,
    )
    claims = result.claims
    verified, error, unverified_claims = result.verified, result.error, result.unverified_claims
    asserted = _token_correlation(claims)
    if verified:
        conflict = _envelope_conflict(envelope, asserted)
        if conflict is not None:  # a genuine token, but not the one this job used: fail closed
            verified, error, unverified_claims, claims, asserted = False, conflict, claims, {}, {}
    correlation = _correlation(
        job_id=asserted.get("job_id") or envelope.get("job_id"), run_id=asserted.get("run_id") or envelope.get("run_id"),
        repository=asserted.get("repository") or envelope.get("repository"),
        git_sha=asserted.get("git_sha") or envelope.get("git_sha"),
        oidc_subject=claims.get("sub"), role_session=envelope.get("role_session"), runner=envelope.get("runner"),
    )
    return _event(
        when, "ci.oidc_token", claims.get("actor") or claims.get("user_login") or claims.get("sub"),
        "oidc_token.present", result.issuer, ok=verified, error=error,
        correlation=correlation,
        attrs={
            "verified": verified, "verification_error": error, "signature_valid": result.signature_valid,
            "issuer": result.issuer, "audience": result.audience, "claims": claims,
            "unverified_claims": unverified_claims or None, "token_sha256": result.token_sha256,
            "key_id": result.key_id, "algorithm": result.algorithm,
            "issued_at": epoch_to_rfc3339(result.issued_at), "not_before": epoch_to_rfc3339(result.not_before),
            "expires": epoch_to_rfc3339(result.expires), "time_source": time_source,
            "leeway_s": options.leeway_seconds,
            "allowed_audiences": list(options.audiences), "allowed_issuers": list(options.issuers),
        },
    )


# Correlation keys a verified token asserts, and the claims they come from (GitHub, then GitLab).
# GitHub tokens name no job, so a GitHub token's job id can only come from the record around it.
TOKEN_CORRELATION_CLAIMS = (("repository", ("repository", "project_path")), ("job_id", ("job_id",)),
                            ("run_id", ("run_id", "pipeline_id")), ("git_sha", ("sha",)))


def _token_correlation(claims: Mapping[str, Any]) -> dict[str, str]:
    """The correlation keys a verified token's claims give, each with the claim it came from."""
    found: dict[str, str] = {}
    for key, names in TOKEN_CORRELATION_CLAIMS:
        name = next((n for n in names if _text(claims.get(n)) is not None), None)
        if name is not None:
            found[key] = str(_text(claims.get(name)))
            found[f"{key}_claim"] = name
    return found


def _envelope_conflict(envelope: Mapping[str, Any], asserted: Mapping[str, str]) -> str | None:
    """Why the record around a verified token contradicts the token's own claims, or None.

    The record's ``job_id``/``run_id``/``repository``/``git_sha`` are the collector input's word;
    the claims are the issuer's. Where both are given they must agree (a repository in any
    letter case, as GitHub and GitLab resolve it; a commit by an abbreviation of 7+ hex digits),
    else the token would vouch for a job it was not issued to.
    """
    for key, _ in TOKEN_CORRELATION_CLAIMS:
        given, claimed = _text(envelope.get(key)), asserted.get(key)
        if given is None or claimed is None:
            continue
        if key == "repository":
            agrees = given.lower() == claimed.lower()
        elif key == "git_sha":
            agrees = len(given) >= 7 and claimed.lower().startswith(given.lower())
        else:
            agrees = given == claimed
        if not agrees:
            return (f"the record's {key} {given[:120]!r} is not the token's {asserted[key + '_claim']} claim "
                    f"{claimed[:120]!r}")
    return None


# -- one record -----------------------------------------------------------------------------


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


def _payload_event(doc: dict[str, Any], event_name: str | None) -> dict[str, Any]:
    """Normalize a webhook payload, by the delivery's event name when known, else by its shape."""
    name = (event_name or "").strip().lower()
    if name == "workflow_job" or (not name and "workflow_job" in doc):
        return normalize_github_workflow_job(doc)
    if name == "workflow_run" or (not name and "workflow_run" in doc):
        return normalize_github_workflow_run(doc)
    if name == "ping" or (not name and "zen" in doc and "hook_id" in doc):
        return normalize_github_ping(doc)
    kind = doc.get("object_kind")
    if name in ("job hook", "build hook") or (not name and kind == "build"):
        return normalize_gitlab_job(doc)
    if name == "pipeline hook" or (not name and kind == "pipeline"):
        return normalize_gitlab_pipeline(doc)
    raise Quarantine(R_UNSUPPORTED)


def normalize_record(data: bytes, options: CiOptions, *, starts_input: bool = False) -> NormalizedRecord:
    """One input record's event and the raw bytes to store for it, or raise :class:`Quarantine`.

    With *starts_input* (the record begins a file or stdin) a UTF-8 byte order mark is
    skipped, as RFC 8259 allows; the raw bytes stored stay exact, BOM included.
    """
    body = data[len(UTF8_BOM):] if starts_input and data.startswith(UTF8_BOM) else data
    screen = RecordScreen.of(body, options.webhook_secrets)
    record = _normalize_record(body, options, screen)
    if body is not data and "raw_form" not in record.source_extra:
        record = NormalizedRecord(record.event, data, record.source_extra, record.dedup_key)
    if record.event.get("kind") != "ci.oidc_token" and not (screen.scan_tokens or screen.scan_secrets or screen.scan_urls):
        return record  # every string of the event came from the record, which holds neither
    scrubbed = Redactor(options.webhook_secrets).scrub(record.event)
    if scrubbed == record.event:
        return record
    return NormalizedRecord(scrubbed, record.raw, {**record.source_extra, "event_scrubbed": True}, record.dedup_key)


def _normalize_record(data: bytes, options: CiOptions, screen: RecordScreen) -> NormalizedRecord:
    token_line = _token_line(data)
    if token_line is not None:
        when_text, token = token_line
        when = ci_time(when_text) if when_text else None
        redactor = Redactor(options.webhook_secrets)
        redactor.check_text(token)
        event = normalize_oidc_token(token, when, {}, options)
        raw = {"event_type": "ci.oidc_token", "time": when_text,
               "token": {**_digest_of(token.strip()), "redacted": "token"}}
        return _finish(event, raw, ["$.token"])
    doc = parse_record_json(data)
    if not isinstance(doc, dict):
        raise Quarantine(R_NOT_OBJECT)
    if isinstance(doc.get("headers"), dict) and ("body" in doc or "body_base64" in doc):
        return _delivery(doc, options)
    redactor = Redactor(options.webhook_secrets, screen=screen)
    if doc.get("event_type") == "ci.oidc_token":
        given = doc.get("token")
        if not isinstance(given, str):
            raise Quarantine(R_BAD_FIELD)
        redactor.check_text(given)
        rest = {k: v for k, v in doc.items() if k != "token"}
        rest = redactor.redact(rest)
        event = normalize_oidc_token(given, _time_of_use(doc), rest, options)
        raw = {**rest, "token": {**_digest_of(given.strip()), "redacted": "token"}}
        return _finish(event, raw, ["$.token", *redactor.paths])
    keep = frozenset({"input"}) if doc.get("event_type") == "ci.job.policy_decision" else frozenset()
    clean = redactor.redact(doc, keep_object_keys=keep)
    if "event_type" in doc:
        event = normalize_generic(clean)
    else:
        event = _payload_event(clean, None)
        if options.require_signed:
            # A provider's payload without its delivery envelope carries no signature or token:
            # dropping the envelope must not be a way around the check (docs/collect-ci.md).
            raise Quarantine(R_MISSING_SIGNATURE)
        event["attrs"]["webhook_signature"] = "absent"
        # whether this run could have checked a signature: the bundle reports an unsigned payload
        # collected while a secret was configured (audit-trail-integrity) and does not let it stand
        # for an authenticated step of a job's chain of custody
        event["attrs"]["webhook_secret_configured"] = bool(options.webhook_secrets)
    if redactor.paths:
        return _finish(event, clean, redactor.paths)
    return _finish(event, None, [], exact=data)


def _delivery(doc: dict[str, Any], options: CiOptions) -> NormalizedRecord:
    headers: dict[str, Any] = doc["headers"]
    if "body_base64" in doc:
        if not isinstance(doc["body_base64"], str):
            raise Quarantine(R_BAD_FIELD)
        try:
            body = base64.b64decode(doc["body_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise Quarantine(R_BAD_FIELD) from None
    elif isinstance(doc.get("body"), str):
        body = doc["body"].encode("utf-8")
    else:
        raise Quarantine(R_BAD_FIELD)
    github_event = _header(headers, "x-github-event")
    gitlab_event = _header(headers, "x-gitlab-event")
    signature = _header(headers, "x-hub-signature-256")
    gitlab_token = _header(headers, "x-gitlab-token")
    if options.webhook_secrets:
        if signature is not None:
            ok = verify_github_signature(body, signature, options.webhook_secrets)
        elif gitlab_token is not None:
            ok = verify_gitlab_token(gitlab_token, options.webhook_secrets)
        else:
            raise Quarantine(R_MISSING_SIGNATURE)
        if not ok:
            raise Quarantine(R_BAD_SIGNATURE)
        state = "verified"
    else:
        state = "not-checked"
    kept_headers = {k: v for k, v in headers.items() if k.lower() in KEPT_HEADERS and isinstance(v, str)}
    redactor = Redactor(options.webhook_secrets)
    kept_headers = redactor.redact(kept_headers, "$.headers")
    for name in headers:  # header names are listed in source.dropped_headers: they must not hide a secret
        redactor.check_text(str(name))
        if TOKEN_SHAPE.search(str(name)):
            raise Quarantine(R_TOKEN_IN_KEY)
    # From here on only the redacted headers are read.
    github_event = _header(kept_headers, "x-github-event")
    gitlab_event = _header(kept_headers, "x-gitlab-event")
    payload = parse_record_json(body)
    if not isinstance(payload, dict):
        raise Quarantine(R_NOT_OBJECT)
    clean = redactor.redact(payload, "$.body")
    event = _payload_event(clean, github_event or gitlab_event)
    attrs = event["attrs"]
    proof = "x-hub-signature-256" if signature is not None else "x-gitlab-token" if gitlab_token is not None else None
    if options.webhook_secrets and proof != PROVIDER_PROOF.get(str(attrs.get("provider"))):
        # GitLab sends its token in clear text with every delivery: it cannot vouch for a GitHub
        # event, and a GitHub HMAC header is not what GitLab sends. Each event needs its own provider's proof.
        raise Quarantine(R_MISSING_SIGNATURE)
    attrs["webhook_signature"] = state
    if proof is not None:
        attrs["webhook_signature_kind"] = proof
    delivery = _header(kept_headers, "x-github-delivery") or _header(kept_headers, "x-gitlab-event-uuid")
    if delivery:
        attrs["delivery_id"] = delivery[:128]
    paths = list(redactor.paths)
    dropped = sorted(k for k in headers if k.lower() not in KEPT_HEADERS)
    if redactor.paths:
        raw: dict[str, Any] = {"headers": kept_headers, "body": clean}
    else:
        raw = {"headers": kept_headers, "body": body.decode("utf-8", "replace")} if _is_utf8(body) else {
            "headers": kept_headers, "body_base64": base64.b64encode(body).decode()}
    # The envelope is re-serialized (dropped headers such as X-Gitlab-Token); the body
    # text is exact unless a field in it was redacted, so a holder of the secret can re-check it.
    result = _finish(event, raw, paths, force_redacted=True)
    if dropped:
        result.source_extra["dropped_headers"] = dropped[:64]
    key = delivery_dedup_key(str(attrs.get("provider")), kept_headers)
    return result if key is None else NormalizedRecord(result.event, result.raw, result.source_extra, key)


def delivery_dedup_key(provider: str, headers: Mapping[str, Any]) -> str | None:
    """The ledger's dedup key of a delivery that names itself: GitHub's ``X-GitHub-Delivery`` GUID;
    GitLab's ``X-Gitlab-Event-UUID`` per webhook (``X-Gitlab-Webhook-UUID``: one event reaches every
    hook with the same event UUID). The same delivery read again is a duplicate; another delivery
    under an id the ledger already holds (headers are not signed, so a captured body can be
    replayed under any id) is quarantined as a ``conflicting-duplicate``."""
    if provider == "github":
        guid = _header(headers, "x-github-delivery")
        return None if not guid else "ci.delivery:github:" + _bounded_id(guid)
    if provider == "gitlab":
        event = _header(headers, "x-gitlab-event-uuid")
        hook = _header(headers, "x-gitlab-webhook-uuid") or ""
        return None if not event else f"ci.delivery:gitlab:{_bounded_id(hook)}:{_bounded_id(event)}"
    return None


def _bounded_id(text: str) -> str:
    """An id as given, or the SHA-256 of a very long one (keys stay small)."""
    return text if len(text) <= 128 else "sha256-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _token_line(data: bytes) -> tuple[str | None, str] | None:
    stripped = data.strip()
    if not stripped.startswith(b"eyJ") and b" eyJ" not in stripped[:64] and b"\teyJ" not in stripped[:64]:
        return None
    try:
        text = stripped.decode("ascii")
    except UnicodeDecodeError:
        return None
    match = TOKEN_LINE.match(text)
    if not match:
        return None
    return match.group(1), match.group(2)


def _finish(event: dict[str, Any], redacted_raw: Any, paths: list[str], *, exact: bytes | None = None,
            force_redacted: bool = False) -> NormalizedRecord:
    try:
        canonical_bytes(event)
    except CanonicalizationError:
        raise Quarantine(R_BAD_FIELD) from None
    if exact is not None and not paths and not force_redacted:
        return NormalizedRecord(event, exact, {})
    raw = orjson.dumps(redacted_raw, option=orjson.OPT_SORT_KEYS) + b"\n"
    extra: dict[str, Any] = {"raw_form": "redacted"}
    if paths:
        extra["redacted"] = paths[:64]
    return NormalizedRecord(event, raw, extra)


def record_for(data: bytes, location: str, line: int | None, options: CiOptions,
               tally: CiTally | None = None, *, starts_input: bool = False) -> SourceRecord:
    """A :class:`SourceRecord` for one input record: an entry, or a quarantine by reason.
    *starts_input*: the record begins a file or stdin, where a byte order mark may come first."""
    try:
        normalized = normalize_record(data, options, starts_input=starts_input)
    except Quarantine as q:
        return _quarantined(data, location, line, q.reason, tally)
    except (FedledgerError, RecursionError, ValueError, TypeError, KeyError, AttributeError, IndexError):
        return _quarantined(data, location, line, R_BAD_FIELD, tally)
    if tally is not None:
        tally.count(normalized)
        attrs = normalized.event["attrs"]
        if attrs.get("webhook_signature") == "absent" and attrs.get("webhook_secret_configured") is True:
            tally.note_unsigned(location, line, str(attrs.get("provider")))
    return SourceRecord(location=location, line=line, raw=normalized.raw, event=normalized.event,
                        source_extra=normalized.source_extra, dedup_key=normalized.dedup_key)


def _quarantined(data: bytes, location: str, line: int | None, reason: str, tally: CiTally | None) -> SourceRecord:
    if tally is not None:
        tally.note_quarantine(location, line, reason)
    return SourceRecord(location=location, line=line, raw=b"", reason=reason, raw_sha256=hashlib.sha256(data).hexdigest())


# -- the source -----------------------------------------------------------------------------


class CiEvents(Source):
    """CI events from one file (JSON lines or one document) or from a binary stream (stdin).

    Line files are read incrementally with :func:`collector.ingest.read_lines`
    (resumable, tamper-checked); whole-document files (``.json``, ``.jwt``) carry a
    cursor holding their size and SHA-256, so an unchanged file is skipped and a
    changed one is reported as tampered. A tampered file is skipped and listed in
    ``tally.tampered``; a last line with no newline yet is left for the next run
    and listed in ``tally.pending``.
    """

    kind = KIND

    def __init__(self, path: Path | None, options: CiOptions, tally: CiTally | None = None,
                 stream: BinaryIO | None = None, rotations: SharedRotations | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.stream = stream
        self.rotations = rotations  # the line files of one collection, for following rotations
        self.options = options
        self.tally = tally if tally is not None else CiTally()
        self.source_id = file_source_id(self.kind, self.path) if self.path is not None else f"{self.kind}:stdin"

    def followed_rotations(self) -> list[dict[str, Any]]:
        return list(self.tally.rotations)

    @property
    def location(self) -> str:
        return str(self.path) if self.path is not None else "-"

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        if self.path is None:
            yield from self._stream(self.stream if self.stream is not None else sys.stdin.buffer)
        elif self.path.name.endswith(WHOLE_FILE_SUFFIXES):
            yield from self._whole_file(cursors.get(self.source_id))
        else:
            plan = self.rotations.plan(cursors) if self.rotations is not None else None
            here = str(self.path)
            if plan is not None and self.rotations is not None and not self.rotations.forgotten:
                self.rotations.forgotten = True  # cursors of names that no longer exist: done with
                for gone in plan.forget:
                    yield CursorMark(file_source_id(self.kind, gone), FileCursor.loads(None).dumps())
            if plan is not None:
                for extra in plan.extra_before.get(here, []):  # a rotated file beside the inputs: its tail first
                    extra_id = file_source_id(self.kind, extra)
                    if str(extra) in plan.starts:
                        yield from self._lines(extra, extra_id, FileCursor.loads(plan.starts[str(extra)]), moved=True)
                    else:  # read with its own cursor: a changed one is reported as tampered
                        yield from self._lines(extra, extra_id, FileCursor.loads(cursors.get(extra_id)))
            if plan is not None and here in plan.starts:  # a rotation moved a cursor here (or left this path new)
                if self.rotations is not None and here in self.rotations.replaced:
                    yield self.rotations.replaced[here]
                yield from self._lines(self.path, self.source_id, FileCursor.loads(plan.starts[here]), moved=True)
            else:
                yield from self._lines(self.path, self.source_id, FileCursor.loads(cursors.get(self.source_id)))

    def _stream(self, stream: BinaryIO) -> Iterator[SourceItem]:
        """Lines from a stream. Not resumable (dedup makes a replay harmless); the marks only
        let the driver commit in batches so memory stays flat."""
        number = 0
        for item in read_stream_lines(stream, "-"):
            if isinstance(item, FileCursor):
                continue
            yield from self._line_record(item)
            number = item.number
            if number % STREAM_MARK_EVERY == 0:
                yield CursorMark(self.source_id, orjson.dumps({"stream_lines": number}).decode())
        yield CursorMark(self.source_id, orjson.dumps({"stream_lines": number}).decode())

    def _line_record(self, item: Line | LongLine) -> Iterator[SourceRecord]:
        """The record of one line (none for a blank one); a line over the cap is quarantined by its hash."""
        if isinstance(item, LongLine):
            self.tally.note_quarantine(item.path, item.number, R_LINE_TOO_LONG, item.size)
            yield SourceRecord(location=item.path, line=item.number, raw=b"", reason=R_LINE_TOO_LONG,
                               raw_sha256=item.sha256, reason_detail=line_too_long_detail(item))
            return
        if not item.data.strip():
            return
        data = item.data[:-1] if item.data.endswith(b"\r") else item.data
        yield record_for(data, item.path, item.number, self.options, self.tally, starts_input=item.start == 0)

    def _lines(self, path: Path, source_id: str, cursor: FileCursor, moved: bool = False) -> Iterator[SourceItem]:
        end = cursor.offset
        lines = read_lines(path, cursor, claim=moved)
        try:
            first = next(lines)
        except SourceTampered as exc:
            self.tally.tampered.append(str(exc))
            return
        except StopIteration:
            first = None
        items = [first] if first is not None else []
        for item in _chain(items, lines):
            if isinstance(item, FileCursor):
                end = item.offset
                yield CursorMark(source_id, item.dumps())
                continue
            yield from self._line_record(item)
        try:
            size = end if path.name.endswith(".gz") else os.path.getsize(path)
        except OSError:
            size = end
        if size > end:
            self.tally.pending.append(f"{path}: {size - end} byte(s) after the last newline not read yet "
                                      "(an incomplete last line is read once it ends with a newline)")

    def _whole_file(self, cursor_text: str | None) -> Iterator[SourceItem]:
        assert self.path is not None
        try:
            size = os.path.getsize(self.path)
            if size > MAX_RECORD_BYTES:
                data = None
                with open(self.path, "rb") as handle:
                    digest = hashlib.sha256()
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            else:
                data = self.path.read_bytes()
                digest = hashlib.sha256(data)
        except OSError as exc:
            from collector.errors import SourceUnavailable

            raise SourceUnavailable(f"cannot read: {exc.strerror}", location=str(self.path)) from None
        mark = FileCursor(size, 1, digest.hexdigest())
        if cursor_text:
            previous = FileCursor.loads(cursor_text)
            if previous == mark:
                if self.rotations is not None and self.rotations.accepts(self.path):
                    self.tally.accepted.append({"file": str(self.path), "reset": False})
                return
            if self.rotations is not None and self.rotations.accepts(self.path):
                self.tally.accepted.append({"file": str(self.path), "reset": True, "previous_offset": previous.offset})
                yield replaced_file_finding(
                    KIND, self.path, CursorDoc(previous.offset, previous.prefix_sha256, None, previous.line))
                cursor_text = None  # read as a new file below
        if cursor_text:
            self.tally.tampered.append(f"{self.path}: the file changed since it was read (was {previous.offset} "
                                       f"bytes, sha256 {previous.prefix_sha256[:16]}...)")
            return
        if data is None:
            self.tally.note_quarantine(str(self.path), None, R_TOO_LARGE)
            yield SourceRecord(location=str(self.path), line=None, raw=b"", reason=R_TOO_LARGE,
                               raw_sha256=mark.prefix_sha256)
        elif data.strip():
            yield record_for(data, str(self.path), None, self.options, self.tally, starts_input=True)
        yield CursorMark(self.source_id, mark.dumps())


def _chain(first: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from first
    yield from rest


class SharedRotations:
    """The rotation plan (:func:`collector.rotation.plan_rotations`) of one collection's line
    files, made once from the cursors the first of them is collected with. Cursors it
    moves are carried as text, so the order the files are then collected in does not matter."""

    def __init__(self, files: list[Path], tally: CiTally, accept_changed: frozenset[str] = frozenset()) -> None:
        self.files, self.tally = files, tally
        self.accept_changed = accept_changed  # resolved paths the operator accepts as changed
        self.replaced: dict[str, SourceRecord] = {}  # str(path) -> its ci.file_replaced finding
        self.forgotten = False  # whether the plan's forgotten cursors were reset (by the first file read)
        self._plan: RotationPlan | None = None

    def accepts(self, path: Path) -> bool:
        return str(path.resolve()) in self.accept_changed

    def plan(self, cursors: Mapping[str, str]) -> RotationPlan:
        if self._plan is None:
            plan = plan_rotations(self.files, cursors, lambda path: file_source_id(KIND, path), rotation_cursor)
            self.tally.rotations.extend(rotation.to_json() for rotation in plan.rotations)
            if self.accept_changed:
                self.replaced, notes = accept_changed(KIND, self.files, self.accept_changed, cursors, plan,
                                                      lambda path: file_source_id(KIND, path), rotation_cursor)
                self.tally.accepted.extend(notes)
            self._plan = plan
        return self._plan


def ci_sources(paths: Iterable[str], options: CiOptions, tally: CiTally,
               accept_changed: Iterable[str] = ()) -> Iterator[CiEvents]:
    """One :class:`CiEvents` per file named or found under a folder (``-`` is stdin); line files
    follow their rotations (``events.jsonl`` moved to ``events.jsonl.1``...) together."""
    from collector.ingest import iter_files

    found: list[Path | None] = []
    for name in paths:
        if name == "-":
            found.append(None)
            continue
        path = Path(name)
        if path.is_dir():
            found.extend(sort_rotations_oldest_first_paths(list(iter_files([name], suffixes=FOLDER_SUFFIXES,
                                                                           skipped=tally.skipped))))
        else:
            found.append(path)
    seen: set[str] = set()
    unique: list[Path | None] = []
    for file in found:  # a file named twice (or also found under a named folder) is read once
        key = "-" if file is None else str(file.resolve())
        if key not in seen or file is None:
            seen.add(key)
            unique.append(file)
    found = unique
    accepted = frozenset(str(Path(name).resolve()) for name in accept_changed)
    check_accepted(accepted, [p for p in found if p is not None])
    rotations = SharedRotations([p for p in found if p is not None and not p.name.endswith(WHOLE_FILE_SUFFIXES)],
                                tally, accepted)
    for file in found:
        yield CiEvents(file, options, tally, rotations=rotations)


def sort_rotations_oldest_first_paths(paths: list[Path]) -> list[Path]:
    return [Path(p) for p in sort_rotations_oldest_first([str(p) for p in paths])]


def build_sources(source: Any, context: Any) -> list[Any]:
    """``fedledger run`` factory for ``kind = "ci"`` (see collector.run).

    Options mirror ``fedledger collect ci``: ``jwks``, ``issuers``, ``audiences``,
    ``webhook_secret`` (a file or environment variable, never inline), ``leeway`` and ``require_signed``.
    A file whose already-read part changed fails the source after its appends.
    """
    from collector.errors import IntegrityError
    from collector.oidc import DEFAULT_ISSUERS, TrustedJwks
    from collector.run import PlannedCollection

    opts = source.options
    trusted = None
    if source.jwks is not None:
        try:
            trusted = TrustedJwks.from_bytes(Path(source.jwks).read_bytes(), location=str(source.jwks))
        except OSError as exc:
            raise UsageError(f"cannot read JWKS: {exc.strerror}", location=str(source.jwks)) from None
    secrets: tuple[bytes, ...] = ()
    if source.webhook_secret is not None:
        secrets = read_webhook_secrets(source.webhook_secret.read(), location=source.webhook_secret.describe())
    leeway = int(opts.get("leeway") or 0)
    options = CiOptions(jwks=trusted, issuers=tuple(opts.get("issuers") or ()) or DEFAULT_ISSUERS,
                        audiences=tuple(opts.get("audiences") or ()), webhook_secrets=secrets, leeway_seconds=leeway,
                        require_signed=bool(opts.get("require_signed")))
    tally = CiTally()

    def finish(_summary: Any) -> None:
        if tally.tampered:
            raise IntegrityError(f"{len(tally.tampered)} CI file(s) changed after they were read: {tally.tampered[0]}")

    plans = [PlannedCollection(events, events.source_id, str(events.source_id), finish=finish)
             for events in ci_sources(list(source.locations), options, tally)]
    context.skipped.setdefault(source.name, []).extend(tally.skipped)  # named in the run's log, never passed over
    return plans
