"""Names of the parties a bundle names: the organization whose system was assessed and the
assessment organization (``[bundle] organization`` / ``assessor``, ``fedledger bundle
--organization`` / ``--assessor``).

A name is plain text on one line. It becomes an OSCAL party ``name`` (the OSCAL string
datatype: no leading or trailing whitespace, no line break) and a line of the index's cover,
so it may hold no control character (tab and newline included), no line or paragraph
separator, no lone surrogate (an undecodable byte in a command-line argument) and no
character the reports would show as ``[U+XXXX]`` (bidirectional overrides, zero-width and
other invisible characters: :mod:`bundler.display_text`), not even at either end; edge
spaces are trimmed.
"""

from __future__ import annotations

import unicodedata

from bundler.display_text import reveal_invisible
from collector.errors import UsageError

PARTY_NAME_MAX_CHARS = 200  # a legal name fits; a pasted paragraph does not


def party_name_problem(name: str) -> str | None:
    """Why *name* cannot name a party, or None; its length is counted without edge spaces. The
    reason never repeats the name (it may hold an escape sequence)."""
    trimmed = name.strip()
    if not trimmed:
        return "must not be empty"
    if len(trimmed) > PARTY_NAME_MAX_CHARS:
        return f"is {len(trimmed)} characters long; at most {PARTY_NAME_MAX_CHARS}"
    for position, char in enumerate(name, start=1):
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or reveal_invisible(char) != char:
            return (f"must be plain text on one line: character {position} is U+{ord(char):04X}, "
                    "a control or invisible character")
    return None


def require_party_name(name: str, *, what: str) -> str:
    """*name* without edge spaces; :class:`UsageError` (exit 2) naming *what* (``--organization``)
    when it cannot name a party (:func:`party_name_problem`)."""
    problem = party_name_problem(name)
    if problem is not None:
        raise UsageError(f"{what} {problem}")
    return name.strip()
