"""UTC time at the edges: parse RFC 3339 with an explicit zone, format as ``...Z``."""

from __future__ import annotations

from datetime import datetime, timezone

from collector.errors import MalformedInput


def parse_time(text: str, *, location: str | None = None, field: str = "time") -> datetime:
    """An aware UTC datetime from RFC 3339 text; naive times are rejected."""
    if not isinstance(text, str) or len(text) < 20 or text[10] not in "Tt ":
        raise MalformedInput(f"{field} must be an RFC 3339 time with a zone, e.g. 2026-01-18T12:34:56Z", location=location)
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
    except ValueError:
        raise MalformedInput(f"{field} {text[:40]!r} is not an RFC 3339 time", location=location) from None
    if value.tzinfo is None:
        raise MalformedInput(f"{field} {text[:40]!r} has no time zone", location=location)
    return value.astimezone(timezone.utc)


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with a ``Z``; microseconds only when present."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    value = value.astimezone(timezone.utc)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_time(text: str, *, location: str | None = None, field: str = "time") -> str:
    return format_time(parse_time(text, location=location, field=field))


def utc_now() -> datetime:
    """The clock, read only at the CLI edge (pure code takes ``as_of`` instead)."""
    return datetime.now(timezone.utc)
