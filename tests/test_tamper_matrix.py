"""Tamper matrix: from a golden ledger, one case per mutation, each caught with its class.

The golden ledger (tests/ledger_fixtures.py) has 20 entries and checkpoints at 8
and 20, signed with a fixed Ed25519 key. tests/assets/README.md lists the cases.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundler.verify_cmd import verify_target
from collector import merkle
from collector.canonical import canonical_bytes
from collector.checkpoint import Checkpoint
from collector.errors import MalformedInput
from collector.export import export_ledger
from collector.ledger import Ledger
from collector.signing import FileSigner
from tests.ledger_fixtures import (
    ORIGIN,
    Golden,
    append_with_raw,
    fixed_ed25519,
    make_golden,
    manual_entry,
    sign_checkpoint,
)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    return make_golden(tmp_path_factory.mktemp("golden"))


def _sql(db: Path, statement: str) -> None:
    """Edit a ledger file behind fedledger's back, as an attacker with write access would."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute(statement)
    conn.commit()
    conn.close()


def _lines(export: Path) -> list[bytes]:
    return (export / "entries.jsonl").read_bytes().split(b"\n")[:-1]


def _write_lines(export: Path, lines: list[bytes]) -> None:
    (export / "entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def _reseal_manifest(export: Path, *, size: int | None = None) -> None:
    """What an attacker with write access does after changing files: recompute the manifest."""
    doc = orjson.loads((export / "MANIFEST.json").read_bytes())
    files = {}
    for path in sorted(export.rglob("*")):
        if path.is_file() and path.name != "MANIFEST.json":
            files[path.relative_to(export).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    doc["files"] = files
    if size is not None:
        doc["size"] = size
    (export / "MANIFEST.json").write_bytes(canonical_bytes(doc))


def _rehash_from(lines: list[bytes], start: int) -> list[bytes]:
    out = list(lines)
    for i in range(start, len(out)):
        doc = orjson.loads(out[i])
        doc["prev"] = merkle.leaf_hash(out[i - 1]).hex() if i else "0" * 64
        out[i] = canonical_bytes(doc)
    return out


def _edit_entry(line: bytes, change: Callable[[dict], None]) -> bytes:
    doc = orjson.loads(line)
    change(doc)
    return canonical_bytes(doc)


def _codes(golden: Golden, export: Path, *, origin: str = ORIGIN, saved: list[Path] | None = None,
           keys: list[Path] | None = None) -> set[str]:
    report = verify_target(export, trusted_keys=keys or [golden.public_key], origin=origin, saved=saved or [])
    return {f.code for f in report.failures}


def _copy(golden: Golden, tmp_path: Path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(golden.export, target)
    return target


def test_golden_verifies(golden: Golden) -> None:
    report = verify_target(golden.export, trusted_keys=[golden.public_key], origin=ORIGIN, saved=[])
    assert report.ok, [f.line() for f in report.failures]
    assert report.size == 20 and len(report.checkpoints_valid) == 2
    assert report.tally() == "20/20 entries valid, 2/2 checkpoints valid, 0 INVALID"


def _flip(export: Path) -> None:
    lines = _lines(export)
    lines[5] = lines[5].replace(b"reviewer-2", b"reviewer-X")
    _write_lines(export, lines)
    _reseal_manifest(export)


def _delete(export: Path) -> None:
    lines = _lines(export)
    del lines[5]
    _write_lines(export, lines)
    _reseal_manifest(export, size=19)


def _swap(export: Path) -> None:
    lines = _lines(export)
    lines[5], lines[6] = lines[6], lines[5]
    _write_lines(export, lines)
    _reseal_manifest(export)


def _duplicate(export: Path) -> None:
    lines = _lines(export)
    lines.insert(6, lines[5])
    _write_lines(export, lines)
    _reseal_manifest(export, size=21)


def _modify_and_rehash(export: Path) -> None:
    lines = _lines(export)
    lines[10] = _edit_entry(lines[10], lambda d: d["event"].update(actor="mallory"))
    _write_lines(export, _rehash_from(lines, 11))
    _reseal_manifest(export)


def _truncate(export: Path) -> None:
    lines = _lines(export)
    _write_lines(export, lines[:17])
    _reseal_manifest(export, size=17)


def _malformed_checkpoint(export: Path) -> None:
    path = sorted((export / "checkpoints").iterdir())[-1]
    path.write_text(path.read_text().split("\n\n")[0][:-3] + "\n\n— x y\n")
    _reseal_manifest(export)


def _bad_signature(export: Path) -> None:
    path = sorted((export / "checkpoints").iterdir())[-1]
    body, sig = path.read_text().split("\n\n")
    name_and_b64 = sig.split(" ")
    import base64

    blob = bytearray(base64.b64decode(name_and_b64[2]))
    blob[-1] ^= 0x40
    path.write_text(body + "\n\n— " + name_and_b64[1] + " " + base64.b64encode(bytes(blob)).decode() + "\n")
    _reseal_manifest(export)


def _resign_with_wrong_key(export: Path) -> None:
    """Modify an entry, re-hash the chain, re-sign every checkpoint with the attacker's own key."""
    lines = _lines(export)
    lines[3] = _edit_entry(lines[3], lambda d: d["event"].update(action="reject"))
    lines = _rehash_from(lines, 4)
    _write_lines(export, lines)
    attacker = FileSigner(ORIGIN, fixed_ed25519("attacker"))
    leaves = [merkle.leaf_hash(line) for line in lines]
    for path in (export / "checkpoints").iterdir():
        size = int(path.read_text().split("\n")[1])
        path.write_text(attacker.sign_checkpoint(Checkpoint(ORIGIN, size, merkle.root_from_leaf_hashes(leaves[:size]))))
    _reseal_manifest(export)


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "flip": (_flip, "entry-modified"),
    "delete": (_delete, "entry-deleted"),
    "swap": (_swap, "entries-swapped"),
    "duplicate": (_duplicate, "entry-duplicated"),
    "modify-then-rehash": (_modify_and_rehash, "root-mismatch"),
    "truncate": (_truncate, "truncated"),
    "malformed-checkpoint": (_malformed_checkpoint, "malformed-checkpoint"),
    "bad-signature": (_bad_signature, "bad-signature"),
    "modify-then-re-sign": (_resign_with_wrong_key, "unknown-signer"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_mutation_is_caught_with_its_class(golden: Golden, tmp_path: Path, case: str) -> None:
    mutate, expected = CASES[case]
    export = _copy(golden, tmp_path)
    mutate(export)
    codes = _codes(golden, export)
    assert expected in codes, codes


def test_modify_then_rehash_breaks_no_link_but_the_signed_root(golden: Golden, tmp_path: Path) -> None:
    export = _copy(golden, tmp_path)
    _modify_and_rehash(export)
    assert _codes(golden, export) == {"root-mismatch"}


def test_wrong_origin_pinned(golden: Golden) -> None:
    assert "wrong-origin" in _codes(golden, golden.export, origin="example.gov/another-ledger")


def test_unknown_key_only(golden: Golden, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.pub"
    from collector.signing import write_public_key

    write_public_key(stranger, fixed_ed25519("stranger").public_key())
    assert {"unknown-signer", "no-trusted-checkpoint"} <= _codes(golden, golden.export, keys=[stranger])


def _older_copy(tmp_path: Path) -> Path:
    """The same ledger as it was at size 8: a consistent, correctly signed, older copy."""
    folder = tmp_path / "older"
    folder.mkdir()
    with Ledger.create(folder / "old.db", ORIGIN, created="2026-11-20T15:00:00Z", key_type="ed25519") as ledger:
        ledger.append([manual_entry(i) for i in range(8)])
        sign_checkpoint(ledger, FileSigner(ORIGIN, fixed_ed25519("golden")))
        export_ledger(ledger, folder / "export")
    return folder / "export"


def test_rollback_caught_by_saved_checkpoint(golden: Golden, tmp_path: Path) -> None:
    older = _older_copy(tmp_path)
    assert _codes(golden, older) == set()  # on its own the older copy is consistent
    saved = tmp_path / "saved.checkpoint"
    saved.write_text(sorted((golden.export / "checkpoints").iterdir())[-1].read_text())
    assert "rolled-back" in _codes(golden, older, saved=[saved])


def test_fork_same_size_different_root(golden: Golden, tmp_path: Path) -> None:
    folder = tmp_path / "fork"
    folder.mkdir()
    with Ledger.create(folder / "f.db", ORIGIN, created="2026-11-20T15:00:00Z", key_type="ed25519") as ledger:
        ledger.append([manual_entry(i) for i in range(8)])
        ledger.append([manual_entry(100 + i) for i in range(12)])  # a different history after 8
        note = sign_checkpoint(ledger, FileSigner(ORIGIN, fixed_ed25519("golden")))
    saved = tmp_path / "fork.checkpoint"
    saved.write_text(note)
    assert "fork" in _codes(golden, golden.export, saved=[saved])


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (lambda note: note.replace(b"\n", b"\r\n"), "signed note holds a control character"),
        (lambda note: note.replace(b"\n", b"\r"), "signed note holds a control character"),
        (lambda note: b"\xff" + note, "not UTF-8"),
    ],
    ids=["crlf", "cr", "not-utf8"],
)
def test_saved_checkpoint_is_read_as_its_exact_bytes(golden: Golden, tmp_path: Path, mangle: Callable[[bytes], bytes],
                                                     reason: str) -> None:
    """A saved checkpoint is checked as the bytes in the file: no newline translation (a CRLF
    note is not a C2SP signed note), and bytes that are not UTF-8 are a malformed checkpoint."""
    saved = tmp_path / "saved.checkpoint"
    saved.write_bytes(mangle(sorted((golden.export / "checkpoints").iterdir())[-1].read_bytes()))
    report = verify_target(golden.export, trusted_keys=[golden.public_key], origin=ORIGIN, saved=[saved])
    assert [(f.code, f.where) for f in report.failures] == [("malformed-checkpoint", str(saved))]
    assert reason in report.failures[0].message


def test_saved_checkpoint_consistent_with_newer_ledger(golden: Golden, tmp_path: Path) -> None:
    saved = tmp_path / "saved.checkpoint"
    saved.write_text(sorted((golden.export / "checkpoints").iterdir())[0].read_text())
    assert _codes(golden, golden.export, saved=[saved]) == set()


# -- the same mutations on the SQLite file itself ------------------------------------------


def _db_copy(golden: Golden, tmp_path: Path) -> Path:
    target = tmp_path / "copy.db"
    shutil.copy(golden.db, target)
    return target


def _db_codes(golden: Golden, db: Path) -> set[str]:
    report = verify_target(db, trusted_keys=[golden.public_key], origin=ORIGIN, saved=[])
    return {f.code for f in report.failures}


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'reviewer-1', 'reviewer-9') AS BLOB) WHERE seq = 4", "entry-modified"),
        ("DELETE FROM entries WHERE seq = 7", "entry-deleted"),
        ("UPDATE entries SET body = (SELECT body FROM entries WHERE seq = 12), leaf = (SELECT leaf FROM entries WHERE seq = 12) WHERE seq = 13", "entry-duplicated"),
        ("DELETE FROM entries WHERE seq >= 15", "truncated"),
        # SQLite keeps whatever type is written: the same edits with TEXT values must be reported, not crash verify
        ("UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'reviewer-1', 'reviewer-9') AS TEXT) WHERE seq = 4", "entry-modified"),
        ("UPDATE entries SET leaf = hex(leaf) WHERE seq = 4", "entry-modified"),
        ("UPDATE checkpoints SET note = CAST(X'ff0a' AS TEXT) WHERE id = 2", "malformed-checkpoint"),
    ],
    ids=["flip", "delete", "duplicate", "truncate", "flip-as-text", "leaf-as-text", "note-not-utf8"],
)
def test_database_mutation_is_caught(golden: Golden, tmp_path: Path, sql: str, expected: str) -> None:
    db = _db_copy(golden, tmp_path)
    _sql(db, sql)
    assert expected in _db_codes(golden, db)


def test_database_swap_is_caught(golden: Golden, tmp_path: Path) -> None:
    import sqlite3

    db = _db_copy(golden, tmp_path)
    conn = sqlite3.connect(db)
    a, b = (conn.execute("SELECT leaf, body FROM entries WHERE seq = ?", (s,)).fetchone() for s in (5, 6))
    conn.execute("UPDATE entries SET leaf = ?, body = ? WHERE seq = 5", b)
    conn.execute("UPDATE entries SET leaf = ?, body = ? WHERE seq = 6", a)
    conn.commit()
    conn.close()
    assert "entries-swapped" in _db_codes(golden, db)


# -- any single-byte change of an export is caught ------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_of_an_export_is_caught(golden: Golden, tmp_path_factory: pytest.TempPathFactory,
                                                       data: st.DataObject) -> None:
    export = tmp_path_factory.mktemp("byte") / "export"
    shutil.copytree(golden.export, export)
    files = sorted(p for p in export.rglob("*") if p.is_file())
    target = data.draw(st.sampled_from(files), label="file")
    content = bytearray(target.read_bytes())
    position = data.draw(st.integers(0, len(content) - 1), label="position")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != content[position]), label="byte")
    content[position] = new
    target.write_bytes(bytes(content))
    try:
        report = verify_target(export, trusted_keys=[golden.public_key], origin=ORIGIN, saved=[])
    except MalformedInput:
        return  # refused outright: caught
    assert not report.ok


# -- the parallel scan of large ledgers gives the same verdicts ------------------------------


@pytest.mark.parametrize("chunk", [4, 8])
def test_parallel_database_scan_matches_serial(golden: Golden, tmp_path: Path, chunk: int) -> None:
    from bundler.ledger_verify import NoteInput
    from bundler.verify_cmd import _verify_database

    verifiers = [golden.signer.verifier]
    with Ledger.open(golden.db) as ledger:
        notes = [NoteInput(f"cp{cp.id}", cp.note) for cp in ledger.checkpoints()]
        expected_root = ledger.root()
    report = _verify_database(golden.db, origin=ORIGIN, verifiers=verifiers, notes=notes, chunk=chunk)
    assert report.ok and report.root == expected_root and len(report.checkpoints_valid) == 2
    db = _db_copy(golden, tmp_path)
    _sql(db, "UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'reviewer-1', 'reviewer-9') AS BLOB) WHERE seq = 10")
    bad = _verify_database(db, origin=ORIGIN, verifiers=verifiers, notes=notes, chunk=chunk)
    assert {"entry-modified", "root-mismatch"} <= {f.code for f in bad.failures}
    assert {f.seq for f in bad.failures if f.code == "entry-modified"} == {10}
    _sql(db, "UPDATE entries SET body = CAST(body AS TEXT), leaf = hex(leaf) WHERE seq = 13")
    typed = _verify_database(db, origin=ORIGIN, verifiers=verifiers, notes=notes, chunk=chunk)
    assert {f.seq for f in typed.failures if f.code == "entry-modified"} == {10, 13}


# -- the raw evidence store: every entry's raw bytes, per entry -----------------------------


def _raw_failures(golden: Golden, db: Path) -> list[tuple[str, int | None]]:
    report = verify_target(db, trusted_keys=[golden.public_key], origin=ORIGIN, saved=[])
    return [(f.code, f.seq) for f in report.failures]


def _objects(db: Path) -> list[Path]:
    """The golden ledger's evidence objects: one per batch, entries 0..7 then 8..19."""
    with Ledger.open(db) as ledger:
        return [ledger.store.path_for(ledger.raw_location(seq).object) for seq in (0, 8)]  # type: ignore[union-attr]


def _db_with_store(golden: Golden, tmp_path: Path) -> Path:
    db = _db_copy(golden, tmp_path)
    shutil.copytree(golden.db.with_name(golden.db.name + ".objects"), db.with_name(db.name + ".objects"))
    return db


def test_golden_ledger_file_with_its_raw_evidence_verifies(golden: Golden, tmp_path: Path) -> None:
    assert _raw_failures(golden, _db_with_store(golden, tmp_path)) == []


def test_raw_object_with_one_record_changed_fails_that_entry(golden: Golden, tmp_path: Path) -> None:
    db = _db_with_store(golden, tmp_path)
    second = _objects(db)[1]
    second.write_bytes(second.read_bytes().replace(b"raw record 12\n", b"raw record 99\n"))
    failures = _raw_failures(golden, db)
    assert ("raw-modified", 12) in failures
    assert {seq for code, seq in failures if code == "raw-modified" and seq is not None} == {12}
    report = verify_target(db, trusted_keys=[golden.public_key], origin=ORIGIN, saved=[])
    assert any(f.code == "raw-modified" and f.seq is None and second.name in (f.where or "") for f in report.failures)
    assert report.tally().startswith("19/20 entries valid")


def test_raw_object_replaced_fails_every_entry_it_holds(golden: Golden, tmp_path: Path) -> None:
    db = _db_with_store(golden, tmp_path)
    first = _objects(db)[0]
    first.write_bytes(b"something else entirely\n")
    assert {seq for code, seq in _raw_failures(golden, db) if code == "raw-modified" and seq is not None} == set(range(8))


def test_no_raw_checks_the_chain_alone_and_says_so(golden: Golden, tmp_path: Path) -> None:
    """``verify --no-raw``: the store is not read (a tampered object goes unseen) and the tally and
    JSON say the raw evidence was not checked; the chain is still checked in full."""
    import orjson as _orjson

    from tests.fedledger_process import fedledger

    db = _db_with_store(golden, tmp_path)
    _objects(db)[1].unlink()
    key = ["--trusted-key", str(golden.public_key), "--origin", ORIGIN]
    full = fedledger("verify", *key, ledger=db)
    assert full.returncode == 1 and b"raw-missing" in full.stdout
    chain_only = fedledger("verify", *key, "--no-raw", ledger=db)
    assert chain_only.returncode == 0, chain_only.stdout + chain_only.stderr
    assert b"raw evidence NOT checked (--no-raw)" in chain_only.stdout.splitlines()[-1]
    doc = _orjson.loads(fedledger("--format", "json", "verify", *key, "--no-raw", ledger=db).stdout)
    assert doc["ok"] is True and doc["raw_checked"] is False
    assert _orjson.loads(fedledger("--format", "json", "verify", *key, ledger=db).stdout)["raw_checked"] is True
    _sql(db, "UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'reviewer-1', 'reviewer-9') AS BLOB) "
                 "WHERE seq = 4")  # an edited entry is still caught without the store
    edited = fedledger("verify", *key, "--no-raw", ledger=db)
    assert edited.returncode == 1 and b"entry-modified" in edited.stdout


def test_raw_object_deleted_is_missing_per_entry(golden: Golden, tmp_path: Path) -> None:
    db = _db_with_store(golden, tmp_path)
    _objects(db)[1].unlink()
    failures = _raw_failures(golden, db)
    assert [seq for code, seq in failures if code == "raw-missing"] == list(range(8, 20))
    assert {code for code, _ in failures} == {"raw-missing"}


def test_raw_location_unlinked_is_missing(golden: Golden, tmp_path: Path) -> None:
    import sqlite3

    db = _db_with_store(golden, tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE entries SET raw_object = NULL WHERE seq = 3")
    conn.execute("UPDATE entries SET raw_offset = raw_offset + 1 WHERE seq = 5")
    conn.commit()
    conn.close()
    assert _raw_failures(golden, db) == [("raw-missing", 3), ("raw-modified", 5)]


def test_raw_store_absent_is_one_failure(golden: Golden, tmp_path: Path) -> None:
    failures = _raw_failures(golden, _db_copy(golden, tmp_path))
    assert failures == [("raw-missing", None)]


# -- the signer never signs a history that contradicts a checkpoint it signed before ---------


def _rewrite_db(db: Path, change: Callable[[list[bytes]], list[bytes]]) -> None:
    """What an attacker without the key does to a ledger file: rewrite entries, then re-hash the
    chain, the stored leaves and the stored Merkle nodes so the file is consistent again."""
    import sqlite3

    conn = sqlite3.connect(db)
    bodies = change([bytes(b) for (b,) in conn.execute("SELECT body FROM entries ORDER BY seq")])
    conn.execute("DELETE FROM entries")
    conn.execute("DELETE FROM nodes")
    def keep_node(level: int, idx: int, node: bytes) -> None:
        if level >= 6:  # NODE_MIN_LEVEL: the ledger keeps subtrees of 64 entries and more
            conn.execute("INSERT INTO nodes(level, idx, hash) VALUES (?, ?, ?)", (level, idx, node))

    compact = merkle.CompactRange(on_node=keep_node)
    for seq, body in enumerate(bodies):
        conn.execute("INSERT INTO entries(seq, leaf, body) VALUES (?, ?, ?)", (seq, merkle.leaf_hash(body), body))
        compact.append(merkle.leaf_hash(body))
    conn.commit()
    conn.close()


def _signing_ledger(golden: Golden, tmp_path: Path) -> tuple[Path, Path]:
    from collector.signing import write_private_key

    db = _db_with_store(golden, tmp_path)
    key = tmp_path / "golden.key"
    write_private_key(key, fixed_ed25519("golden"))
    return db, key


def _cli_checkpoint(db: Path, key: Path):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from collector.cli import app

    return CliRunner().invoke(app, ["--ledger", str(db), "--as-of", "2026-11-21T00:00:00Z", "checkpoint", "--key", str(key)])


def _checkpoint_count(db: Path) -> int:
    with Ledger.open(db) as ledger:
        return len(ledger.checkpoints())


def test_checkpoint_refuses_to_sign_a_rewritten_history(golden: Golden, tmp_path: Path) -> None:
    """C2SP tlog-checkpoint: a log MUST NOT sign a checkpoint inconsistent with one it signed.
    Entry 5 is rewritten and everything re-hashed; the next scheduled checkpoint must not vouch
    for it (it did: the signer was the attacker's oracle for a signed fork)."""
    db, key = _signing_ledger(golden, tmp_path)

    def rewrite(bodies: list[bytes]) -> list[bytes]:
        bodies[5] = _edit_entry(bodies[5], lambda d: d["event"].update(actor="mallory"))
        return _rehash_from(bodies, 6)

    _rewrite_db(db, rewrite)
    with Ledger.open(db) as ledger:
        append_with_raw(ledger, range(20, 23))
    result = _cli_checkpoint(db, key)
    assert result.exit_code == 1, result.output
    assert "refusing to sign" in result.stderr and "checkpoint #2" in result.stderr
    assert _checkpoint_count(db) == 2


def test_checkpoint_refuses_to_sign_a_truncated_ledger(golden: Golden, tmp_path: Path) -> None:
    db, key = _signing_ledger(golden, tmp_path)
    _sql(db, "DELETE FROM entries WHERE seq >= 15")
    result = _cli_checkpoint(db, key)
    assert result.exit_code == 1 and "size 20" in result.stderr, result.output
    assert _checkpoint_count(db) == 2


def test_checkpoint_refuses_when_a_note_of_its_key_was_edited(golden: Golden, tmp_path: Path) -> None:
    """Spoiling the newest checkpoint's signature must not make the signer fall back to an older one."""
    db, key = _signing_ledger(golden, tmp_path)
    _sql(db, "UPDATE checkpoints SET note = replace(note, '\n20\n', '\n21\n') WHERE id = 2")
    result = _cli_checkpoint(db, key)
    assert result.exit_code == 1 and "checkpoint #2" in result.stderr, result.output


def test_checkpoint_refuses_a_tree_whose_stored_nodes_hide_a_rewrite(golden: Golden, tmp_path: Path) -> None:
    """The signed root is read from stored Merkle nodes. Entry 10 is edited (chain left broken, so
    later leaves stay as they were) and the node over entries 0..127 recomputed, while the node
    over 0..63 is left stale: the tree of the newest checkpoint (size 96) still hashes to its
    signed root, but the tree of size 128 commits to the edit. Only a consistency proof from 96 to
    the root about to be signed shows the two disagree; without it this signed a fork."""
    import sqlite3

    db, key = _signing_ledger(golden, tmp_path)
    with Ledger.open(db) as ledger:
        append_with_raw(ledger, range(20, 96))
    assert _cli_checkpoint(db, key).exit_code == 0
    with Ledger.open(db) as ledger:
        append_with_raw(ledger, range(96, 128))
    conn = sqlite3.connect(db)
    body = _edit_entry(bytes(conn.execute("SELECT body FROM entries WHERE seq = 10").fetchone()[0]),
                       lambda d: d["event"].update(actor="mallory"))
    conn.execute("UPDATE entries SET body = ?, leaf = ? WHERE seq = 10", (body, merkle.leaf_hash(body)))
    leaves = [bytes(leaf) for (leaf,) in conn.execute("SELECT leaf FROM entries ORDER BY seq")]
    right = bytes(conn.execute("SELECT hash FROM nodes WHERE level = 6 AND idx = 1").fetchone()[0])
    conn.execute("UPDATE nodes SET hash = ? WHERE level = 7 AND idx = 0",
                 (merkle.node_hash(merkle.root_from_leaf_hashes(leaves[:64]), right),))
    conn.commit()
    conn.close()
    result = _cli_checkpoint(db, key)
    assert result.exit_code == 1, result.output
    assert "refusing to sign size 128: it does not extend" in result.stderr and "checkpoint #3" in result.stderr
    assert _checkpoint_count(db) == 3


def test_checkpoint_signs_a_ledger_that_extends_its_checkpoints(golden: Golden, tmp_path: Path) -> None:
    db, key = _signing_ledger(golden, tmp_path)
    with Ledger.open(db) as ledger:
        append_with_raw(ledger, range(20, 23))
    result = _cli_checkpoint(db, key)
    assert result.exit_code == 0, result.output
    assert _checkpoint_count(db) == 3
    report = verify_target(db, trusted_keys=[golden.public_key], origin=ORIGIN, saved=[])
    assert report.ok and report.newest_signed_size == 23, [f.line() for f in report.failures]


# -- entries after the newest signed checkpoint are vouched for by nothing ------------------


def _forge_tail(lines: list[bytes]) -> list[bytes]:
    """A forged entry appended with a correct chain, and no checkpoint over it."""
    forged = _edit_entry(lines[-1], lambda d: d.update(seq=len(lines), event=dict(d["event"], actor="forged")))
    return _rehash_from([*lines, forged], len(lines))


@pytest.mark.parametrize("saved", [False, True], ids=["alone", "with-saved-checkpoint"])
def test_forged_tail_is_reported_as_not_checkpointed(golden: Golden, tmp_path: Path, saved: bool) -> None:
    export = _copy(golden, tmp_path)
    _write_lines(export, _forge_tail(_lines(export)))
    _reseal_manifest(export, size=21)
    note = tmp_path / "saved.checkpoint"
    note.write_bytes(sorted((golden.export / "checkpoints").iterdir())[-1].read_bytes())
    report = verify_target(export, trusted_keys=[golden.public_key], origin=ORIGIN, saved=[note] if saved else [])
    assert [f.code for f in report.failures] == ["not-checkpointed"]
    assert "entries 20..20" in report.failures[0].message
    assert not report.ok


def test_database_forged_tail_is_not_checkpointed(golden: Golden, tmp_path: Path) -> None:
    db = _db_with_store(golden, tmp_path)
    _rewrite_db(db, _forge_tail)
    codes = [f.code for f in verify_target(db, trusted_keys=[golden.public_key], origin=ORIGIN, saved=[]).failures]
    assert "not-checkpointed" in codes


@pytest.mark.parametrize("sql", [
    "DROP TABLE checkpoints",
    "DROP TABLE raw_objects",
    "DROP TABLE entries",
    "UPDATE meta SET value = CAST(X'ff' AS TEXT) WHERE key = 'origin'",
], ids=["no-checkpoints-table", "no-raw-objects-table", "no-entries-table", "origin-not-utf8"])
def test_ledger_file_with_a_broken_schema_is_malformed_not_a_crash(golden: Golden, tmp_path: Path, sql: str) -> None:
    """A dropped table or undecodable metadata is unusable input (exit 2) named as such, never
    'internal error' (exit 4), which reads as a bug in fedledger rather than a tampered file."""
    from typer.testing import CliRunner

    from collector.cli import app

    db = _db_with_store(golden, tmp_path)
    _sql(db, sql)
    result = CliRunner().invoke(app, ["--ledger", str(db), "verify", "--trusted-key", str(golden.public_key),
                                      "--origin", ORIGIN])
    assert result.exit_code == 2, result.output
    assert "not a readable fedledger ledger" in result.stderr
