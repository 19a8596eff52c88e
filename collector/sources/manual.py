"""Already-normalized events, one JSON object per line (``fedledger append``).

The generic path for evidence no collector covers (manual evidence, exports of
other tools). Each line needs ``time`` (RFC 3339 with a zone) and ``kind`` (a
dotted name); the other common fields (``actor``, ``action``, ``resource``,
``outcome``, ``correlation``, ``attrs``) may be absent but, when present, must have
the types of docs/events.md; fields beyond them are kept as given. Unlike the collectors,
this path is all-or-nothing: any bad line fails the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from collector import ingest
from collector.canonical import CanonicalizationError, canonical_bytes, parse_json
from collector.errors import MalformedInput
from collector.evidence import CursorMark, Source, SourceItem, SourceRecord
from collector.ingest import FileCursor, Line, LongLine, file_source_id, read_lines
from collector.timeutil import normalize_time

KIND_PATTERN = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


def normalize_manual_event(data: bytes, location: str) -> dict[str, Any]:
    """Validate one line and return its event, or raise :class:`MalformedInput`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedInput("not UTF-8", location=location) from None
    doc = parse_json(text, location=location)
    if not isinstance(doc, dict):
        raise MalformedInput("line is not a JSON object", location=location)
    kind = doc.get("kind")
    if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
        raise MalformedInput("'kind' must be a dotted lower-case name such as manual.review", location=location)
    shape = _shape_problem(doc)
    if shape is not None:
        raise MalformedInput(f"{shape} (docs/events.md)", location=location)
    event = dict(doc)
    event["time"] = normalize_time(doc.get("time"), location=location)  # type: ignore[arg-type]
    try:
        canonical_bytes(event)
    except CanonicalizationError as exc:
        raise MalformedInput(str(exc), location=location) from None
    return event


def _shape_problem(doc: dict[str, Any]) -> str | None:
    """What makes a common field of *doc* another shape than the normalized event contract, if anything.

    Absent fields are allowed; a present one must have the contract's type, since the
    ledger keeps it for good and the bundler reads it.
    """
    for name in ("actor", "resource"):
        if doc.get(name) is not None and not isinstance(doc[name], str):
            return f"'{name}' must be a string or null"
    if "action" in doc and not isinstance(doc["action"], str):
        return "'action' must be a string"
    if "outcome" in doc:
        outcome = doc["outcome"]
        if (not isinstance(outcome, dict) or outcome.get("status") not in ("success", "failure")
                or not isinstance(outcome.get("error"), (str, type(None)))):
            return "'outcome' must be {\"status\": \"success\" or \"failure\", \"error\": string or null}"
    if "correlation" in doc:
        correlation = doc["correlation"]
        if not isinstance(correlation, dict) or not all(isinstance(v, str) for v in correlation.values()):
            return "'correlation' must be an object of strings"
    if "attrs" in doc and not isinstance(doc["attrs"], dict):
        return "'attrs' must be an object"
    return None


class ManualEvents(Source):
    kind = "manual"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.source_id = file_source_id(self.kind, self.path)

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        for item in read_lines(self.path, FileCursor.loads(cursors.get(self.source_id))):
            if isinstance(item, FileCursor):
                yield CursorMark(self.source_id, item.dumps())
                continue
            if isinstance(item, Line) and not item.data.strip():
                continue
            yield self._record(item)

    def _record(self, line: Line | LongLine) -> SourceRecord:
        location = f"{line.path}:{line.number}"
        if isinstance(line, LongLine):
            raise MalformedInput(_too_long(line), location=location)
        event = normalize_manual_event(line.data, location)
        return SourceRecord(location=line.path, line=line.number, raw=line.data + b"\n", event=event)

    def validate(self, cursors: Mapping[str, str]) -> list[str]:
        """Every bad line's one-line error, without appending anything."""
        problems: list[str] = []
        for item in read_lines(self.path, FileCursor.loads(cursors.get(self.source_id))):
            if isinstance(item, LongLine):
                problems.append(str(MalformedInput(_too_long(item), location=f"{item.path}:{item.number}")))
            elif isinstance(item, Line) and item.data.strip():
                try:
                    normalize_manual_event(item.data, f"{item.path}:{item.number}")
                except MalformedInput as exc:
                    problems.append(str(exc))
        return problems


def _too_long(line: LongLine) -> str:
    return f"line of {line.size} bytes is longer than the {ingest.MAX_LINE_BYTES}-byte limit (sha256 {line.sha256})"
