"""SQLite ledger: appends, Merkle state, proofs from stored nodes, dedup, cursors, atomic batches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from collector import merkle
from collector.canonical import canonical_bytes
from collector.ledger import NODE_MIN_LEVEL, ZERO_HASH, Ledger, NewEntry, QuarantineRow, RawIndexRow
from tests.ledger_fixtures import OBSERVED, manual_entry


@pytest.fixture()
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.create(tmp_path / "l.db", "example.gov/t", created=OBSERVED, key_type="ecdsa-p256")


def test_sqlite_settings(ledger: Ledger) -> None:
    conn = ledger._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_chain_fields_and_canonical_bytes(ledger: Ledger) -> None:
    ledger.append([manual_entry(i) for i in range(3)])
    bodies = [bytes(b) for _, _, b in ledger.entries()]
    docs = [orjson.loads(b) for b in bodies]
    assert [d["seq"] for d in docs] == [0, 1, 2]
    assert docs[0]["prev"] == ZERO_HASH
    assert docs[1]["prev"] == merkle.leaf_hash(bodies[0]).hex()
    assert docs[2]["prev"] == merkle.leaf_hash(bodies[1]).hex()
    assert all(canonical_bytes(d) == b for d, b in zip(docs, bodies))
    assert docs[0]["v"] == 1 and docs[0]["observed"] == OBSERVED and set(docs[0]["raw"]) == {"sha256", "size"}


def test_roots_and_proofs_match_naive_tree_across_many_batches(ledger: Ledger) -> None:
    sizes = [1, 2, 5, 60, 3, 64, 130, 7]  # crosses several stored-node boundaries (level >= 6)
    n = 0
    for s in sizes:
        ledger.append([manual_entry(n + i) for i in range(s)])
        n += s
    leaves = [merkle.leaf_hash(bytes(b)) for _, _, b in ledger.entries()]
    assert len(leaves) == n == ledger.size
    stored_nodes = ledger._conn.execute("SELECT count(*) FROM nodes").fetchone()[0]
    assert stored_nodes == sum(n >> level for level in range(NODE_MIN_LEVEL, n.bit_length()))
    for size in (1, 2, 63, 64, 65, 128, 200, n):
        root = merkle.root_from_leaf_hashes(leaves[:size])
        assert ledger.root(size) == root
        for seq in {0, size // 2, size - 1}:
            merkle.verify_inclusion(seq, size, leaves[seq], ledger.inclusion_proof(seq, size), root)
    for old in (1, 7, 64, 100, n):
        merkle.verify_consistency(old, n, ledger.consistency_proof(old, n), ledger.root(old), ledger.root(n))


def test_dedup_keys_skip_duplicates_in_and_across_batches(ledger: Ledger) -> None:
    first = manual_entry(0)
    dup = NewEntry(first.source, first.observed, first.event, first.raw_sha256, first.raw_size, "k0")
    r1 = ledger.append([dup, dup, manual_entry(1)])
    assert (r1.appended, r1.duplicates) == (2, 1)
    r2 = ledger.append([dup])
    assert (r2.appended, r2.duplicates, ledger.size) == (0, 1, 2)


def test_failed_batch_commits_nothing(ledger: Ledger) -> None:
    ledger.append([manual_entry(0)], cursors={"src": "c1"})
    bad = NewEntry({"kind": "x"}, OBSERVED, {"time": "t", "kind": "k", "f": 1.5}, "0" * 64, 1)
    with pytest.raises(Exception):
        ledger.append([manual_entry(1), bad], cursors={"src": "c2"},
                      quarantine=[QuarantineRow("src", "f", 1, "r", "0" * 64, OBSERVED)],
                      raw_index=[RawIndexRow("1" * 64, 1, "2" * 64, 0)])
    assert ledger.size == 1
    assert ledger.cursor("src") == "c1"
    assert ledger.quarantined() == []
    assert ledger.raw_location(0) is None and ledger.raw_location(1) is None


def test_open_rejects_missing_and_foreign_files(tmp_path: Path) -> None:
    from collector.errors import MalformedInput, SourceUnavailable

    with pytest.raises(SourceUnavailable):
        Ledger.open(tmp_path / "missing.db")
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE x (a)").connection.commit()
    with pytest.raises(MalformedInput):
        Ledger.open(foreign)
    (tmp_path / "text.db").write_text("not a database")
    with pytest.raises(MalformedInput):
        Ledger.open(tmp_path / "text.db")


def test_open_names_an_older_format(tmp_path: Path) -> None:
    from collector.errors import MalformedInput

    with Ledger.create(tmp_path / "old.db", "test.example/old", created=OBSERVED, key_type="ed25519"):
        pass
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("UPDATE meta SET value='fedledger-ledger/1' WHERE key='format'")
    with pytest.raises(MalformedInput, match="older fedledger .*export it"):
        Ledger.open(tmp_path / "old.db")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("UPDATE meta SET value='fedledger-ledger/9' WHERE key='format'")
    with pytest.raises(MalformedInput, match="unknown ledger format 'fedledger-ledger/9'"):
        Ledger.open(tmp_path / "old.db")
