"""Entries built by splicing the event's canonical bytes are exactly RFC 8785 of the whole entry."""

from __future__ import annotations

import hashlib
import random

import pytest
import rfc8785

from collector.canonical import CanonicalizationError, canonical_bytes
from collector.errors import MalformedInput
from collector.ledger import Ledger, NewEntry, entry_bytes, entry_document

OBSERVED = "2026-11-20T15:00:00Z"
ALPHABET = ["a", "Z", "0", "é", "ß", "\u20ac", "\u2028", "\ufb01", "\uffff", "\U0001f600", "\U00010000", "\U0010fffd",
            "\n", '"', "\\", "\x00", "\x1f", "/", " "]


def random_text(rng: random.Random, limit: int = 6) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(limit)))


def random_value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randrange(9 if depth < 4 else 5)
    if pick == 0:
        return random_text(rng)
    if pick == 1:
        return rng.randrange(-(2**53) + 1, 2**53)
    if pick == 2:
        return rng.choice([True, False, None])
    if pick == 3:
        return rng.randrange(-5, 5)
    if pick == 4:
        return ""
    if pick in (5, 6):
        return {random_text(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def random_entry(rng: random.Random, index: int) -> NewEntry:
    event = {random_text(rng): random_value(rng) for _ in range(rng.randrange(8))}
    source: dict[str, object] = {"kind": "splice", "id": random_text(rng), "location": random_text(rng, 12)}
    if rng.random() < 0.5:
        source["line"] = rng.randrange(10**9)
    if rng.random() < 0.3:
        source[random_text(rng) or "k"] = rng.choice([random_text(rng), 7, None, [1, "\U0001f600", None]])
    raw = hashlib.sha256(b"%d" % index).hexdigest()
    with_bytes = rng.random() < 0.5
    return NewEntry(source, random_text(rng) or OBSERVED, event, raw, rng.randrange(10**6), None,
                    canonical_bytes(event) if with_bytes else None)


def test_spliced_bytes_equal_rfc8785_of_the_whole_entry() -> None:
    rng = random.Random(8785)
    for index in range(2000):
        new = random_entry(rng, index)
        prev = hashlib.sha256(b"p%d" % index).hexdigest()
        spliced = entry_bytes(index, prev, new)
        document = entry_document(index, prev, new)
        assert spliced == canonical_bytes(document)
        assert spliced == rfc8785.dumps(document)


def test_astral_keys_inside_event_and_source_sort_by_utf16() -> None:
    event = {"\U0001f600": 1, "\uff61": 2, "a": {"\U00010000": [1], "\ufffd": None}}
    source = {"kind": "k", "id": "i", "location": "l", "\U0001f600x": "v", "\uffffy": "w"}
    for event_bytes in (None, canonical_bytes(event)):
        new = NewEntry(source, OBSERVED, event, "0" * 64, 1, None, event_bytes)
        assert entry_bytes(3, "1" * 64, new) == rfc8785.dumps(entry_document(3, "1" * 64, new))


def test_bad_event_or_source_values_are_refused() -> None:
    with pytest.raises(CanonicalizationError):
        entry_bytes(0, "0" * 64, NewEntry({"kind": "k"}, OBSERVED, {"f": 1.5}, "0" * 64, 1))
    with pytest.raises(CanonicalizationError):
        entry_bytes(0, "0" * 64, NewEntry({"kind": 2**60}, OBSERVED, {}, "0" * 64, 1))
    with pytest.raises(CanonicalizationError):
        entry_bytes(0, "0" * 64, NewEntry({"kind": "\ud800"}, OBSERVED, {}, "0" * 64, 1))
    with pytest.raises(MalformedInput):
        entry_bytes(0, "0" * 64, NewEntry({"kind": {"nested": 1}}, OBSERVED, {}, "0" * 64, 1))
    with pytest.raises(MalformedInput):
        entry_bytes(0, "0" * 64, NewEntry({"kind": "k"}, OBSERVED, {}, "0" * 64, 1, None, b'"not an object"'))


def test_ledger_stores_the_same_bytes_with_or_without_event_bytes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    entries = [random_entry(rng, i) for i in range(300)]
    plain = [NewEntry(e.source, e.observed, e.event, e.raw_sha256, e.raw_size) for e in entries]
    bodies = []
    for name, batch in (("a", entries), ("b", plain)):
        with Ledger.create(tmp_path / f"{name}.db", "test.example/splice", created=OBSERVED, key_type="ed25519") as led:
            led.append(batch)
            bodies.append([bytes(b) for _, _, b in led.entries()])
    assert bodies[0] == bodies[1]
    assert len(bodies[0]) == 300


def test_cloudtrail_workers_hand_over_canonical_event_bytes_and_store_the_same_entries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from collector.evidence import SourceRecord
    from collector.ingest import ingest
    from collector.object_source import LocalFolderProvider
    from collector.sources.cloudtrail import CloudTrailLogs
    from tests.conftest import REPO

    folder = REPO / "samples" / "cloudtrail" / "valid"
    one = [r for r in CloudTrailLogs(LocalFolderProvider(folder)).collect({}) if isinstance(r, SourceRecord)]
    two = [r for r in CloudTrailLogs(LocalFolderProvider(folder), workers=2).collect({}) if isinstance(r, SourceRecord)]
    assert len(one) == len(two) == 34
    for a, b in zip(one, two):
        assert a.event is not None and b.event is None
        assert b.event_bytes == canonical_bytes(a.event) == rfc8785.dumps(a.event)
    bodies = []
    for workers in (0, 2):
        source = CloudTrailLogs(LocalFolderProvider(folder), workers=workers)
        with Ledger.create(tmp_path / f"w{workers}.db", "test.example/ct", created=OBSERVED, key_type="ed25519") as led:
            summary = ingest(led, source.collect({}), kind=source.kind, source_id=source.source_id, observed=OBSERVED)
            assert summary.balanced and summary.appended == 34
            again = ingest(led, source.collect({}), kind=source.kind, source_id=source.source_id, observed=OBSERVED)
            assert again.duplicates == 34 and again.appended == 0
            bodies.append([bytes(b) for _, _, b in led.entries()])
    assert bodies[0] == bodies[1]
