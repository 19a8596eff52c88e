"""Evidence text as the reports show it: invisible characters made visible.

Bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069), zero-width
characters and other Unicode format or control characters change how text reads
without being seen: ``deploy\\u202egpj.exe`` displays as ``deployexe.jpg``. So do the
other default-ignorable code points (variation selectors, the combining grapheme
joiner, Hangul fillers), which renderers draw as nothing: ``job-42\\ufe00`` reads as
``job-42``. In an assessment report the reader must see the characters the evidence
holds, so each is shown as ``[U+XXXX]``. Tabs and newlines are kept. The CSV, the
OSCAL document and the ledger keep the evidence exactly as recorded.
"""

from __future__ import annotations

import re
import unicodedata

from bundler.model import NOT_ASSESSED, NOT_SATISFIED, SATISFIED

# How a status reads wherever a report shows it (tables, badges, chart legends): one wording,
# so the index, the control pages and the charts agree. OSCAL keeps the machine values.
STATUS_LABELS = {SATISFIED: "Satisfied", NOT_SATISFIED: "Not satisfied", NOT_ASSESSED: "Not assessed by this tool"}

_KEPT = frozenset("\t\n\r")
_CANDIDATES = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
                         r"\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
                         r"\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001-\U000e007f"
                         r"\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0\ufff0-\ufff8"
                         r"\U000e0000-\U000e0fff]")
# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) that are not Cc or Cf: shown
# whatever their category (marks, letters, unassigned).
_IGNORABLE = re.compile(r"[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2065\u3164\ufe00-\ufe0f\uffa0"
                        r"\ufff0-\ufff8\U000e0000-\U000e0fff]")


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if char in _KEPT or (unicodedata.category(char) not in ("Cc", "Cf") and not _IGNORABLE.match(char)):
        return char
    return f"[U+{ord(char):04X}]"


def reveal_invisible(text: str) -> str:
    """*text* with every control, format and other default-ignorable character (other than tab
    and newlines) written as ``[U+XXXX]``."""
    return _CANDIDATES.sub(_shown, text)
