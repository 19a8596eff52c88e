"""Entries built by splicing the event's canonical bytes are exactly RFC 8785 of the whole entry."""

from __future__ import annotations

import hashlib
import random

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_entries_staged_as_canonical_parts_store_the_same_bytes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What a worker process hands over (stage(parts=True): each entry's canonical bytes around
    prev and seq) gives the same entries, byte for byte, as the plain entries, and those are
    the rfc8785 bytes of the entry document."""
    from collector.evidence import SourceRecord
    from collector.ingest import IngestSummary, commit, stage
    from collector.ledger import entry_document
    from collector.object_source import LocalFolderProvider
    from collector.sources.cloudtrail import CloudTrailLogs
    from tests.conftest import REPO

    folder = REPO / "samples" / "cloudtrail" / "valid"
    records = [r for r in CloudTrailLogs(LocalFolderProvider(folder)).collect({}) if isinstance(r, SourceRecord)]
    assert len(records) == 34
    bodies = []
    for parts in (False, True):
        with Ledger.create(tmp_path / f"p{parts}.db", "test.example/ct", created=OBSERVED, key_type="ed25519") as led:
            staged = stage(records, {}, kind="cloudtrail", source_id="ct", observed=OBSERVED, store=led.store, parts=parts)
            assert (len(staged.prepared), len(staged.entries)) == ((34, 0) if parts else (0, 34))
            commit(led, staged, summary=IngestSummary("ct"), observed=OBSERVED)
            bodies.append([bytes(b) for _, _, b in led.entries()])
            plain = stage(records, {}, kind="cloudtrail", source_id="ct", observed=OBSERVED, store=led.store).entries
            prev = "0" * 64
            for seq, (new, (_, leaf, body)) in enumerate(zip(plain, led.entries())):
                assert bytes(body) == rfc8785.dumps(entry_document(seq, prev, new))
                prev = bytes(leaf).hex()
    assert bodies[0] == bodies[1]


_texts = st.text(max_size=12) | st.sampled_from(["", "a\"b\\c", "\u2028", "😀/k", "\ud800", "s3://b/k.json.gz"])


@settings(max_examples=300, deadline=None)
@given(observed=_texts, kind=_texts, source_id=_texts, location=_texts,
       line=st.none() | st.integers(-(2**54), 2**54) | st.booleans(),
       size=st.integers(-1, 2**54), digest=_texts | st.just("ab" * 32),
       event=st.dictionaries(_texts, st.none() | st.integers(-(2**54), 2**54) | _texts | st.floats(), max_size=3))
def test_parts_maker_equals_entry_parts(observed, kind, source_id, location, line, size, digest, event):  # type: ignore[no-untyped-def]
    from collector.ledger import EntryPartsMaker, entry_parts

    source = {"kind": kind, "id": source_id, "location": location}
    if line is not None:
        source["line"] = line
    new = NewEntry(source, observed, event, digest, size)
    try:
        expected = entry_parts(new)
    except MalformedInput as exc:
        with pytest.raises(type(exc)):
            EntryPartsMaker(observed=observed, kind=kind, source_id=source_id).parts(location, line, event, None, digest, size)
        return
    maker = EntryPartsMaker(observed=observed, kind=kind, source_id=source_id)
    assert maker.parts(location, line, event, None, digest, size) == expected
    assert maker.parts(location, line, None, canonical_bytes(event), digest, size) == expected  # cached pieces again
