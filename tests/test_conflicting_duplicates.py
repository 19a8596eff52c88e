"""A record whose dedup key is already taken but whose raw bytes differ is a conflicting duplicate.

CloudTrail records are deduplicated by ``eventID``. A log file edited after it was ingested, or a
second file holding a record with the same eventID but other content, used to count the changed
record as a plain duplicate (first read wins, nothing reported). It must be quarantined with
reason ``conflicting-duplicate`` naming the entry it conflicts with, and the run must exit 1.
A true duplicate (same key, same bytes) stays a duplicate.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.ingest import ingest, ingest_source
from collector.ledger import Ledger, NewEntry, QuarantineRow
from collector.object_source import LocalFolderProvider
from collector.sources.cloudtrail import CloudTrailLogs
from samples.make import cloudtrail as mk
from tests.pg_support import NEEDS_PG, pg_url  # noqa: F401 - pg_url is a fixture

OBSERVED = "2026-11-25T00:00:00Z"


def _records(count: int = 4) -> list[dict[str, Any]]:
    return mk.background(mk.CHAIN_START, count)


def _tampered(records: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """*records* with record *index*'s content changed and its eventID kept."""
    changed = [dict(r) for r in records]
    changed[index]["sourceIPAddress"] = "203.0.113.9"
    return changed


def _write(folder: Path, name: str, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(gzip.compress(mk.log_body(records), mtime=0))
    return path


def _raw_sha256(record: dict[str, Any]) -> str:
    """The SHA-256 of a record's exact bytes in a file made by :func:`_write` (orjson's compact form)."""
    return hashlib.sha256(orjson.dumps(record)).hexdigest()


def _collect(db: Path | str, folder: Path, *, fmt: str = "json") -> Any:
    return CliRunner().invoke(app, ["--ledger", str(db), "--as-of", OBSERVED, "--format", fmt, "collect",
                                    "cloudtrail", str(folder), "--skip-digests"])


def _init(db: Path) -> None:
    got = CliRunner().invoke(app, ["--ledger", str(db), "init", "--origin", "t.gov/ct"])
    assert got.exit_code == 0, got.output


def _balanced(doc: dict[str, Any]) -> bool:
    return doc["read"] == doc["appended"] + doc["duplicates"] + doc["quarantined"]


def _reason(seq: int) -> str:
    return f"conflicting-duplicate: entry {seq} has this dedup key with other raw bytes"


# -- the CLI on SQLite -----------------------------------------------------------------------


def test_a_changed_copy_in_another_file_is_quarantined_as_a_conflicting_duplicate(tmp_path: Path) -> None:
    records = _records()
    folder = tmp_path / "logs"
    _write(folder, "a.json.gz", records)
    db = tmp_path / "l.db"
    _init(db)
    first = _collect(db, folder)
    assert first.exit_code == 0, first.output
    assert orjson.loads(first.stdout)["appended"] == 4
    changed = _tampered(records, 2)
    b = _write(folder, "b.json.gz", changed)
    second = _collect(db, folder)
    doc = orjson.loads(second.stdout)
    assert second.exit_code == 1, second.output
    assert (doc["read"], doc["appended"], doc["duplicates"], doc["quarantined"]) == (4, 0, 3, 1)
    assert _balanced(doc) and doc["ok"] is False
    assert doc["reasons"] == {"conflicting-duplicate": 1}  # the tally counts the kind; each row names its entry
    assert doc["quarantined_records"] == [{"location": str(b), "line": 2, "reason": _reason(2)}]
    with Ledger.open(db) as ledger:
        assert ledger.size == 4
        (row,) = ledger.quarantined()
        assert (row.location, row.line, row.reason) == (str(b), 2, _reason(2))
        assert row.sha256 == _raw_sha256(changed[2]) != _raw_sha256(records[2])
        assert row.source.startswith("cloudtrail:")
        stored = orjson.loads(ledger.entry(2))
        assert stored["raw"]["sha256"] == _raw_sha256(records[2])  # the first copy stays the entry


def test_the_human_output_names_the_conflict(tmp_path: Path) -> None:
    records = _records(2)
    folder = tmp_path / "logs"
    _write(folder, "a.json.gz", records)
    b = _write(folder, "b.json.gz", _tampered(records, 1))
    db = tmp_path / "l.db"
    _init(db)
    got = _collect(db, folder, fmt="human")
    assert got.exit_code == 1, got.output
    assert "4 read, 2 appended, 1 duplicate, 1 quarantined" in got.stdout
    assert f"quarantined: {b}#1: {_reason(1)}" in got.stderr
    assert "203.0.113.9" not in got.stdout + got.stderr  # never the record's content


def test_a_file_edited_after_it_was_ingested_is_reported_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    records = _records()
    folder = tmp_path / "logs"
    path = _write(folder, "a.json.gz", records)
    db = tmp_path / "l.db"
    _init(db)
    assert _collect(db, folder).exit_code == 0
    changed = _tampered(records, 0)
    path.write_bytes(gzip.compress(mk.log_body(changed) + b" ", mtime=0))  # another size: another cursor tag
    edited = _collect(db, folder)
    doc = orjson.loads(edited.stdout)
    assert edited.exit_code == 1, edited.output
    assert (doc["read"], doc["appended"], doc["duplicates"], doc["quarantined"]) == (4, 0, 3, 1)
    assert doc["quarantined_records"] == [{"location": str(path), "line": 0, "reason": _reason(0)}]
    with Ledger.open(db) as ledger:
        before = (list(ledger.entries()), ledger.quarantined())
    again = _collect(db, folder)
    doc = orjson.loads(again.stdout)
    assert again.exit_code == 0 and doc["read"] == 0
    with Ledger.open(db) as ledger:
        assert (list(ledger.entries()), ledger.quarantined()) == before


def test_an_identical_copy_is_only_duplicates(tmp_path: Path) -> None:
    records = _records()
    folder = tmp_path / "logs"
    _write(folder, "a.json.gz", records)
    db = tmp_path / "l.db"
    _init(db)
    assert _collect(db, folder).exit_code == 0
    _write(folder, "b.json.gz", records)
    got = _collect(db, folder)
    doc = orjson.loads(got.stdout)
    assert got.exit_code == 0, got.output
    assert (doc["read"], doc["appended"], doc["duplicates"], doc["quarantined"]) == (4, 0, 4, 0)
    with Ledger.open(db) as ledger:
        assert ledger.quarantined() == []


def test_a_conflict_within_one_file_is_caught_in_the_batch(tmp_path: Path) -> None:
    records = _records(3)
    changed = _tampered(records, 1)
    folder = tmp_path / "logs"
    path = _write(folder, "a.json.gz", records + [changed[1], records[1]])
    db = tmp_path / "l.db"
    _init(db)
    got = _collect(db, folder)
    doc = orjson.loads(got.stdout)
    assert got.exit_code == 1, got.output
    assert (doc["read"], doc["appended"], doc["duplicates"], doc["quarantined"]) == (5, 3, 1, 1)
    assert doc["quarantined_records"] == [{"location": str(path), "line": 3, "reason": _reason(1)}]
    with Ledger.open(db) as ledger:
        assert [q.sha256 for q in ledger.quarantined()] == [_raw_sha256(changed[1])]


# -- the ledger API, both backends -----------------------------------------------------------


def _entry(key: str, raw: bytes, line: int) -> NewEntry:
    return NewEntry({"kind": "test", "id": "test:src", "location": "/in/f.jsonl", "line": line}, OBSERVED,
                    {"time": "2026-01-01T00:00:00Z", "kind": "test.event", "n": str(line)},
                    hashlib.sha256(raw).hexdigest(), len(raw), key)


def _ledger_api_case(ledger: Any) -> None:
    """Same key: same bytes is a duplicate, other bytes a conflict (stored and within the batch)."""
    first = ledger.append([_entry("k1", b"one", 1), _entry("k2", b"two", 2)], updated=OBSERVED)
    assert (first.appended, first.duplicates, first.conflicts) == (2, 0, ())
    batch = [_entry("k1", b"one", 3), _entry("k2", b"TWO", 4), _entry("k3", b"three", 5), _entry("k3", b"3", 6),
             _entry("k3", b"three", 7)]
    second = ledger.append(batch, updated=OBSERVED)
    assert (second.appended, second.duplicates) == (1, 2)
    assert second.conflicts == (
        QuarantineRow("test:src", "/in/f.jsonl", 4, _reason(1), hashlib.sha256(b"TWO").hexdigest(), OBSERVED),
        QuarantineRow("test:src", "/in/f.jsonl", 6, _reason(2), hashlib.sha256(b"3").hexdigest(), OBSERVED),
    )
    assert ledger.quarantined() == list(second.conflicts)
    again = ledger.append(batch, updated=OBSERVED)  # the same batch again: nothing new anywhere
    assert (again.appended, again.duplicates, again.conflicts) == (0, 3, second.conflicts)
    assert ledger.size == 3 and ledger.quarantined() == list(second.conflicts)


def test_the_stored_raw_digest_is_the_top_level_one() -> None:
    """An event may hold its own ``raw.sha256`` object; the digest compared is the entry's."""
    from collector.ledger import entry_bytes, stored_raw_sha256

    new = _entry("k", b"bytes", 1)._replace(event={"time": "2026-01-01T00:00:00Z", "kind": "test.event",
                                                   "attrs": {"raw": {"sha256": "f" * 64, "size": 1}}})
    body = entry_bytes(7, "0" * 64, new)
    assert body.count(b'"raw":{"sha256":') == 2
    assert stored_raw_sha256(body) == hashlib.sha256(b"bytes").hexdigest() == orjson.loads(body)["raw"]["sha256"]


def test_ledger_append_reports_conflicts_sqlite(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "l.db", "t.gov/x", created=OBSERVED, key_type="ecdsa-p256") as ledger:
        _ledger_api_case(ledger)


@NEEDS_PG
def test_ledger_append_reports_conflicts_postgres(pg_url: str) -> None:  # noqa: F811
    from collector.ledger_pg import PostgresLedger

    with PostgresLedger.create(pg_url, "t.gov/x", created=OBSERVED, key_type="ecdsa-p256") as ledger:
        _ledger_api_case(ledger)


@NEEDS_PG
def test_cloudtrail_conflict_on_postgres(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    from collector.ledger_pg import PostgresLedger

    records = _records()
    folder = tmp_path / "logs"
    _write(folder, "a.json.gz", records)
    b = _write(folder, "b.json.gz", _tampered(records, 3))
    with PostgresLedger.create(pg_url, "t.gov/ct", created=OBSERVED, key_type="ecdsa-p256") as ledger:
        source = CloudTrailLogs(LocalFolderProvider(folder), workers=0)
        summary = ingest_source(ledger, source, source_id=source.source_id, observed=OBSERVED)
        assert summary.balanced, summary.to_json()
        assert (summary.read, summary.appended, summary.duplicates, summary.quarantined) == (8, 4, 3, 1)
        assert summary.reasons == {"conflicting-duplicate": 1}
        (row,) = ledger.quarantined()
        assert (row.location, row.line, row.reason, row.sha256) == (str(b), 3, _reason(3),
                                                                    _raw_sha256(_tampered(records, 3)[3]))
        fresh = ingest_source(ledger, source, source_id=source.source_id, observed=OBSERVED)
        assert fresh.read == 0
        forgotten = ingest(ledger, source.collect({}), kind=source.kind, source_id=source.source_id,
                           observed=OBSERVED)  # cursors forgotten: read again, still nothing new stored
        assert (forgotten.appended, forgotten.duplicates, forgotten.quarantined) == (0, 7, 1)
        assert ledger.size == 4 and len(ledger.quarantined()) == 1


# -- worker processes --------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [3, 5000])
def test_worker_path_gives_the_same_conflicts(tmp_path: Path, batch_size: int) -> None:
    records = _records(5)
    folder = tmp_path / "logs"
    _write(folder, "a.json.gz", records)
    _write(folder, "b.json.gz", _tampered(records, 1) + [_tampered(records, 4)[4]])
    _write(folder, "c.json.gz", records)
    results = []
    for workers in (0, 2):
        with Ledger.create(tmp_path / f"l{workers}.db", "t.gov/ct", created=OBSERVED,
                           key_type="ecdsa-p256") as ledger:
            source = CloudTrailLogs(LocalFolderProvider(folder), workers=workers)
            summary = ingest_source(ledger, source, source_id=source.source_id, observed=OBSERVED,
                                    batch_size=batch_size)
            assert summary.balanced, summary.to_json()
            assert (summary.read, summary.appended, summary.duplicates, summary.quarantined) == (16, 5, 9, 2)
            assert summary.reasons == {"conflicting-duplicate": 2}
            results.append((summary.to_json(), list(ledger.entries()), [q[:5] for q in ledger.quarantined()]))
    assert results[0] == results[1]


# -- fedledger run -----------------------------------------------------------------------------


def test_fedledger_run_counts_a_conflict_as_quarantined(tmp_path: Path) -> None:
    from tests.ops_workspace import make_workspace

    records = _records()
    folder = tmp_path / "logs"
    _write(folder, "a.json.gz", records)
    _write(folder, "b.json.gz", _tampered(records, 0))
    sources = f'[[sources]]\nname = "ct"\nkind = "cloudtrail"\nlocations = ["{folder}/"]\nskip_digests = true\n\n'
    ws = make_workspace(tmp_path / "ws", sources)
    got = ws.cli("run", "--config", str(ws.config), "--as-of", "2026-11-21T00:00:00Z", "--format", "json")
    doc = orjson.loads(got.stdout)
    (outcome,) = doc["sources"]
    # A changed record is a tampering signal: the source fails (as for a tampered Vault file), so a
    # scheduled job alerts on it; what was collected stays committed and checkpointed.
    assert got.exit_code == 1 and doc["failed_sources"] == ["ct"], got.output
    assert outcome["error"] == "IntegrityError" and "conflicting-duplicate" in outcome["message"], outcome
    assert outcome["counts"]["quarantined"] == 1 and outcome["counts"]["duplicate"] == 3, outcome
    assert outcome["counts"]["reasons"] == {"conflicting-duplicate": 1}
    with Ledger.open(ws.ledger) as ledger:
        assert [q.reason for q in ledger.quarantined()] == [_reason(0)]
