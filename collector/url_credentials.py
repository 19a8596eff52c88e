"""Passwords written into URLs (``https://user:password@host/...``), found in text or bytes.

Shared by the collectors: CI replaces such a password by a SHA-256 marker
(:func:`redact_url_passwords`), Vault quarantines a record that logs one in plaintext
(:func:`has_url_password`). Not a password: an empty one, a ``{{password}}`` template
(Vault database ``connection_url``), or a marker this module already wrote.
"""

from __future__ import annotations

import hashlib
import re

MARKER_PREFIX = "redacted-sha256-"

_PATTERN = (
    r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^/?#@\s:\"\\]*:"  # scheme://user: (user may be empty)
    r"(?!" + MARKER_PREFIX + r"[0-9a-f]{64}@|\{\{[^}@]*\}\}@)"  # not a marker, not a template
    r"[^/?#@\s\"\\]+@"  # the password, up to the @ that ends the userinfo
)
URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^/?#@\s:]*:)"
                          r"(?!" + MARKER_PREFIX + r"[0-9a-f]{64}@|\{\{[^}@]*\}\}@)([^/?#@\s]+)@")
_URL_PASSWORD_BYTES = re.compile(_PATTERN.encode())  # in JSON text: stops at a quote or a backslash


def json_has_url_password(raw: bytes) -> bool:
    """Whether JSON text *raw* holds a URL with a password as written (``\\/``-escaped slashes and
    ``\\u`` escapes are not seen: a caller checks the decoded strings of such text)."""
    return b"://" in raw and _URL_PASSWORD_BYTES.search(raw) is not None


def has_url_password(text: str) -> bool:
    return "://" in text and URL_PASSWORD.search(text) is not None


def redact_url_passwords(text: str) -> str:
    """*text* with the password of every URL replaced by ``redacted-sha256-<hex of the password>``."""
    if "://" not in text:
        return text
    return URL_PASSWORD.sub(
        lambda m: m.group(1) + MARKER_PREFIX + hashlib.sha256(m.group(2).encode("utf-8")).hexdigest() + "@", text)
