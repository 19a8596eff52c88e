"""The PostgreSQL ledger backend against a real PostgreSQL (127.0.0.1:5432, database ``test``).

Each test gets its own schema (``ledger=t_<random>``) and drops it afterwards. Skipped,
with the reason, when PostgreSQL is unreachable. Override the server with
``FEDLEDGER_TEST_PG`` (a ``postgresql://`` URL without ``ledger``/``store``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector import merkle
from collector.cli import app
from collector.errors import MalformedInput, SourceUnavailable, UsageError
from collector.ledger import Ledger, NewEntry, QuarantineRow, RawIndexRow
from collector.ledger_open import create_ledger, local_anchor, open_ledger
from collector.ledger_pg import PostgresLocation, PostgresRunLock, drop_ledger
from collector.signing import FileSigner, write_public_key
from tests.ledger_fixtures import OBSERVED, append_with_raw, fixed_ed25519, manual_entry, sign_checkpoint
from tests.ops_workspace import AS_OF, manual_source, write_events
from tests.pg_support import NEEDS_PG, SERVER, pg_url  # noqa: F401 - pg_url is a fixture

REPO = Path(__file__).resolve().parent.parent
ORIGIN = "example.gov/pg-test"
pytestmark = NEEDS_PG


def _entry(i: int, *, dedup: str | None = None) -> NewEntry:
    return manual_entry(i)._replace(dedup_key=dedup)


def _append_both(a: Ledger, b: Ledger, batch: list[NewEntry], **kw: object) -> None:
    ra, rb = a.append(batch, **kw), b.append(batch, **kw)  # type: ignore[arg-type]
    assert ra == rb


def test_same_bytes_roots_and_proofs_as_sqlite(tmp_path: Path, pg_url: str) -> None:
    lite = Ledger.create(tmp_path / "l.db", ORIGIN, created=OBSERVED, key_type="ed25519")
    pg = create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519")
    with lite, pg:
        n = 0
        for size in (1, 3, 64, 7, 129, 2):  # crosses the stored-node levels (64, 128, 256)
            _append_both(lite, pg, [_entry(n + i) for i in range(size)],
                         cursors={"manual:test": str(n)}, updated=OBSERVED)
            n += size
        assert pg.size == lite.size == n
        assert list(pg.entries()) == list(lite.entries())
        assert list(pg.entries(5, 70)) == list(lite.entries(5, 70))
        assert pg.entry(17) == lite.entry(17)
        assert pg.leaf_hashes(3, 90) == lite.leaf_hashes(3, 90)
        assert pg.cursors() == lite.cursors() and pg.cursor("manual:test") == lite.cursor("manual:test")
        assert pg.origin == lite.origin and pg.key_type == lite.key_type == "ed25519"
        assert pg.integrity_check() == "ok"
        for size in range(1, n + 1):
            root = pg.root(size)
            assert root == lite.root(size)
            for seq in {0, size // 2, size - 1}:
                proof = pg.inclusion_proof(seq, size)
                assert proof == lite.inclusion_proof(seq, size)
                merkle.verify_inclusion(seq, size, merkle.leaf_hash(pg.entry(seq)), proof, root)
            proof = pg.consistency_proof(size, n)
            assert proof == lite.consistency_proof(size, n)
            merkle.verify_consistency(size, n, proof, root, pg.root())
        with pytest.raises(UsageError):
            pg.inclusion_proof(n, n)
        with pytest.raises(UsageError):
            pg.entry(n)


def test_dedup_raw_index_quarantine_and_reopen(tmp_path: Path, pg_url: str) -> None:
    lite = Ledger.create(tmp_path / "l.db", ORIGIN, created=OBSERVED, key_type="ecdsa-p256")
    pg = create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ecdsa-p256")
    raw = pg.store.put(b"raw record 0\n")
    lite.store.put(b"raw record 0\n")
    index = [RawIndexRow(raw, 13, raw, 0)]
    bad = QuarantineRow("manual:test", "reviews.jsonl", None, "not-json", "ab" * 32, OBSERVED)
    with lite, pg:
        batch = [_entry(i, dedup=f"k{i % 5}") for i in range(8)]
        batch[0] = batch[0]._replace(raw_sha256=raw, raw_size=13)
        for i in range(5, 8):  # 3 duplicates inside the batch: same key and same raw bytes as an earlier entry
            batch[i] = batch[i]._replace(raw_sha256=batch[i - 5].raw_sha256, raw_size=batch[i - 5].raw_size)
        _append_both(lite, pg, batch, raw_index=index, quarantine=[bad, bad], updated=OBSERVED)
        again = pg.append(batch, raw_index=index, quarantine=[bad])
        assert (again.appended, again.duplicates, again.size) == (0, 8, 5)
        lite.append(batch, raw_index=index, quarantine=[bad])
        assert list(pg.entries()) == list(lite.entries())
        assert pg.quarantined() == lite.quarantined() == [bad]
        assert pg.raw_location(0) == lite.raw_location(0) == RawIndexRow(raw, 13, raw, 0)
        assert pg.raw_bytes(0) == lite.raw_bytes(0) == b"raw record 0\n"
        assert pg.raw_location(1) is None and lite.raw_location(1) is None  # no raw bytes stored for it
        assert pg.raw_location(99) is None and lite.raw_location(99) is None
    with open_ledger(pg_url) as again_open:
        assert again_open.size == 5 and again_open.origin == ORIGIN
        assert again_open.store.root == tmp_path / "objects"


def test_status_statistics_match_sqlite(tmp_path: Path, pg_url: str) -> None:
    from collector.ledger_stats import ledger_stats
    from collector.ledger_stats_pg import ledger_stats_pg

    lite = Ledger.create(tmp_path / "l.db", ORIGIN, created=OBSERVED, key_type="ed25519")
    pg = create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519")
    other = [_entry(i)._replace(source={"kind": "ci", "id": "ci:jobs", "location": f"/spool/{i % 2}.jsonl"})
             for i in range(100, 104)]
    bad = QuarantineRow("ci:jobs", "/spool/2.jsonl", 3, "not-json", "ab" * 32, OBSERVED)
    with lite, pg:
        _append_both(lite, pg, [_entry(i) for i in range(70)] + other, cursors={"manual:test": "c", "idle:x": "c"},
                     quarantine=[bad], updated="2026-11-20T16:00:00Z")
        pg.add_checkpoint(lambda size, root: "note", OBSERVED)
        lite.add_checkpoint(lambda size, root: "note", OBSERVED)
    expected = ledger_stats(tmp_path / "l.db", use_cache=False)
    assert replace(ledger_stats_pg(pg_url), path=expected.path) == expected
    # per-location counts, for a source id that several configured sources share
    from collector.ledger_stats import location_stats
    from collector.ledger_stats_pg import location_stats_pg

    by_location = location_stats(tmp_path / "l.db", ["ci:jobs", "manual:test"])
    assert [(x.location, x.entries, x.quarantined) for x in by_location["ci:jobs"]] == [
        ("/spool/0.jsonl", 2, 0), ("/spool/1.jsonl", 2, 0), ("/spool/2.jsonl", 0, 1)]
    assert location_stats_pg(pg_url, ["ci:jobs", "manual:test"]) == by_location
    # after more appends: SQLite counts only the new entries (its .locations.json cache), PostgreSQL
    # aggregates them all; both equal a full scan
    more = [_entry(i)._replace(source={"kind": "ci", "id": "ci:jobs", "location": f"/spool/{i % 3}.jsonl"})
            for i in range(200, 209)]
    with Ledger.open(tmp_path / "l.db") as lite_again, open_ledger(pg_url) as pg_again:
        _append_both(lite_again, pg_again, more, cursors={}, quarantine=[], updated="2026-11-20T17:00:00Z")
    grown = location_stats(tmp_path / "l.db", ["ci:jobs", "manual:test"])
    assert grown == location_stats(tmp_path / "l.db", ["ci:jobs", "manual:test"], use_cache=False)
    assert [(x.location, x.entries) for x in grown["ci:jobs"]] == [
        ("/spool/0.jsonl", 5), ("/spool/1.jsonl", 5), ("/spool/2.jsonl", 3)]
    assert location_stats_pg(pg_url, ["ci:jobs", "manual:test"]) == grown


class _CountedStatements:
    """A real psycopg connection that counts the statements sent through ``execute``."""

    def __init__(self, conn: object) -> None:
        self.conn, self.statements = conn, 0

    def execute(self, *args: object, **kwargs: object) -> object:
        self.statements += 1
        return self.conn.execute(*args, **kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def _folder(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_with_raw_evidence_is_sqlites_in_a_few_queries(tmp_path: Path, pg_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`export --include-raw` found each entry's raw object with two queries (its body, then the raw index
    row), 40,000 round trips for 20,000 entries; now one raw-index query per chunk of entries. The folder
    is the same, byte for byte, as the SQLite backend's export of the same content."""
    from collector import export as export_module
    from collector.export import export_ledger

    signer = FileSigner(ORIGIN, fixed_ed25519())
    lite = Ledger.create(tmp_path / "l.db", ORIGIN, created=OBSERVED, key_type="ed25519")
    pg = create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519")
    counted = _CountedStatements(pg._conn)
    pg._conn = counted  # type: ignore[assignment]
    statements = []
    with lite, pg:
        for ledger in (lite, pg):
            append_with_raw(ledger, range(8))
            sign_checkpoint(ledger, signer)  # type: ignore[arg-type]
            ledger.append([_entry(8), _entry(9)])  # no raw bytes kept for these
            append_with_raw(ledger, range(10, 20))
        for size in (20, 64):
            for ledger in (lite, pg):
                append_with_raw(ledger, range(ledger.size, size))
                sign_checkpoint(ledger, signer)  # type: ignore[arg-type]
            export_ledger(lite, tmp_path / f"lite-{size}", include_raw=True)
            counted.statements = 0
            export_ledger(pg, tmp_path / f"pg-{size}", include_raw=True)
            statements.append(counted.statements)
            assert _folder(tmp_path / f"pg-{size}") == _folder(tmp_path / f"lite-{size}")
            objects = [name for name in _folder(tmp_path / f"pg-{size}") if name.startswith("objects/")]
            assert len(objects) == {20: 2, 64: 3}[size]  # one evidence object per append_with_raw batch
        assert statements[0] == statements[1] < 10  # the same few, whatever the number of entries
        # chunks that split the entries anywhere give the same folder
        monkeypatch.setattr(export_module, "RAW_LOOKUP_CHUNK", 7)
        export_ledger(pg, tmp_path / "pg-chunked", include_raw=True)
        assert _folder(tmp_path / "pg-chunked") == _folder(tmp_path / "lite-64")


def test_libpq_parameters_of_the_url_reach_the_server_as_written(pg_url: str) -> None:
    """Query parameters other than ledger/store are libpq's: one holding a space (`options=-c name=value`,
    an application_name) was re-encoded with '+' for the space, which libpq does not decode, so the server
    refused the connection or got another value."""
    from collector.ledger_pg import connect

    url = pg_url + "&application_name=fedledger%20status&options=-c%20statement_timeout%3D4321"
    conn = connect(PostgresLocation(url))
    try:
        assert conn.execute("SHOW application_name").fetchone()[0] == "fedledger status"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "4321ms"
    finally:
        conn.close()


def test_failed_batch_commits_nothing(pg_url: str) -> None:
    with create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519") as pg:
        pg.append([_entry(0)], cursors={"s": "1"}, updated=OBSERVED)
        root = pg.root()
        nested = NewEntry(source={"kind": "manual", "nested": {"no": 1}}, observed=OBSERVED,  # type: ignore[dict-item]
                          event={"kind": "x"}, raw_sha256="0" * 64, raw_size=0)
        with pytest.raises(MalformedInput):
            pg.append([_entry(1, dedup="d1"), _entry(2), nested], cursors={"s": "2"},
                      raw_index=[RawIndexRow("ef" * 32, 1, "ef" * 32)], updated=OBSERVED)
        assert pg.size == 1 and pg.root() == root and pg.cursor("s") == "1"
        assert pg.raw_location(1) is None
        again = pg.append([_entry(1, dedup="d1")])  # the dedup key of the failed batch was not kept
        assert again.appended == 1

        def broken_note(size: int, root: bytes) -> str:
            raise RuntimeError("signer failed")

        with pytest.raises(RuntimeError):
            pg.add_checkpoint(broken_note, OBSERVED)
        assert pg.checkpoints() == [] and pg.latest_checkpoint() is None
        stored = pg.add_checkpoint(lambda s, r: f"note {s} {r.hex()}", OBSERVED, signer=("n", "k", "pem"))
        assert (stored.id, stored.size, stored.root) == (1, 2, pg.root())
        assert pg.latest_checkpoint() == stored and pg.signers() == [("n", "k", "pem")]


def test_location_rules_and_clear_errors(tmp_path: Path, pg_url: str) -> None:
    with pytest.raises(UsageError, match="store="):
        PostgresLocation(f"{SERVER}?ledger=x")
    with pytest.raises(UsageError, match="PGPASSWORD"):
        PostgresLocation(f"postgresql://postgres:hunter2@127.0.0.1/test?store={tmp_path}")
    # libpq takes a password from the query string too: refused the same way, never echoed
    with pytest.raises(UsageError, match="PGPASSWORD") as query_password:
        PostgresLocation(f"postgresql://postgres@127.0.0.1/test?store={tmp_path}&password=hunter2")
    assert "hunter2" not in str(query_password.value)
    with pytest.raises(UsageError, match="ledger="):
        PostgresLocation(f"{SERVER}?ledger=Bad-Name&store={tmp_path}")
    with pytest.raises(SourceUnavailable, match="no ledger here"):
        open_ledger(pg_url)
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    with pytest.raises(UsageError, match="already exists"):
        create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519")
    with pytest.raises(SourceUnavailable, match="cannot connect"):
        open_ledger(f"postgresql://postgres@127.0.0.1:1/test?connect_timeout=2&store={tmp_path}")
    name = PostgresLocation(pg_url).name
    assert local_anchor(pg_url) == tmp_path / name
    reserved = f"{SERVER}?ledger=user&store={tmp_path / 'reserved'}"
    drop_ledger(reserved)
    try:
        with create_ledger(reserved, ORIGIN, created=OBSERVED, key_type="ed25519") as ledger:
            ledger.append([_entry(0)])
            assert ledger.size == 1 and ledger.integrity_check() == "ok"
    finally:
        drop_ledger(reserved)


_WRITER = textwrap.dedent("""
    import sys
    from dataclasses import replace
    from collector.ledger_open import open_ledger
    from tests.ledger_fixtures import manual_entry
    url, writer, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open_ledger(url) as ledger:
        for b in range(batches):
            base = writer * 100000 + b * 10
            ledger.append([manual_entry(base + i)._replace(dedup_key=f"w{writer}-{b}-{i}") for i in range(10)])
    """)


def test_two_processes_appending_at_once_never_fork(tmp_path: Path, pg_url: str) -> None:
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, str(w), "15"], env=env, cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for w in (1, 2)]
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err
    signer = FileSigner(ORIGIN, fixed_ed25519())
    with open_ledger(pg_url) as ledger:
        assert ledger.size == 300 and ledger.integrity_check() == "ok"
        sign_checkpoint(ledger, signer)
        prev = "0" * 64
        writers = set()
        for seq, leaf, body in ledger.entries():
            doc = json.loads(body)
            assert doc["seq"] == seq and doc["prev"] == prev and merkle.leaf_hash(body) == leaf
            writers.add(doc["event"]["attrs"]["n"] // 100000)
            prev = leaf.hex()
        assert writers == {1, 2}
    # the export of the shared ledger verifies offline with the CLI
    keys = tmp_path / "keys"
    cli = CliRunner()
    assert cli.invoke(app, ["--ledger", pg_url, "export", "--out", str(tmp_path / "exp")]).exit_code == 0
    keys.mkdir()
    write_public_key(keys / "k.pub", fixed_ed25519().public_key())
    result = cli.invoke(app, ["verify", str(tmp_path / "exp"), "--trusted-key", str(keys / "k.pub"), "--origin", ORIGIN])
    assert result.exit_code == 0, result.output
    assert "300/300 entries valid, 1/1 checkpoints valid" in result.output


def test_a_writer_killed_mid_run_leaves_whole_batches(pg_url: str) -> None:
    import signal
    import time

    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, "3", "100000"], env=env, cwd=REPO,
                            stderr=subprocess.DEVNULL)
    with open_ledger(pg_url) as ledger:
        while ledger.size < 30 and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        size = ledger.size
        assert size >= 30 and size % 10 == 0  # whole batches of 10 only
        assert ledger.integrity_check() == "ok"
        result = ledger.append([_entry(7, dedup="after-kill")])
        assert result.first_seq == size
        prev = "0" * 64
        for seq, leaf, body in ledger.entries():
            assert json.loads(body)["prev"] == prev and merkle.leaf_hash(body) == leaf
            prev = leaf.hex()


EVENTS = (
    '{"time":"2026-11-20T14:00:00Z","kind":"manual.review","actor":"alice","attrs":{"ticket":"CHG-1"}}\n'
    '{"time":"2026-11-20T14:05:00+00:00","kind":"manual.approval","actor":"bob"}\n'
)


def test_verify_checks_every_entrys_raw_evidence(tmp_path: Path, pg_url: str) -> None:
    """Raw evidence objects edited, unlinked or deleted are reported per entry, as for SQLite."""
    from bundler.verify_cmd import verify_target
    from collector.ledger_pg import PostgresLedger

    signer = FileSigner(ORIGIN, fixed_ed25519("pg-raw"))
    public = tmp_path / "k.pub"
    write_public_key(public, signer.verifier.public_key)  # type: ignore[arg-type]
    with create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519") as pg:
        append_with_raw(pg, range(6))
        append_with_raw(pg, range(6, 10))
        sign_checkpoint(pg, signer)  # type: ignore[arg-type]
        objects = [pg.store.path_for(pg.raw_location(seq).object) for seq in (0, 6)]  # type: ignore[union-attr]

    def failures() -> list[tuple[str, int | None]]:
        report = verify_target(pg_url, trusted_keys=[public], origin=ORIGIN, saved=[])
        return [(f.code, f.seq) for f in report.failures if f.seq is not None or not f.code.startswith("raw-")]

    assert failures() == []
    objects[0].write_bytes(objects[0].read_bytes().replace(b"raw record 2\n", b"raw record X\n"))
    assert failures() == [("raw-modified", 2)]
    with PostgresLedger.open(pg_url) as unlinked:
        unlinked._q("DELETE FROM ~.raw_index WHERE sha256 = %s", (manual_entry(4).raw_sha256,))
    assert failures() == [("raw-modified", 2), ("raw-missing", 4)]
    objects[1].unlink()
    assert failures() == [("raw-modified", 2), ("raw-missing", 4), *[("raw-missing", s) for s in range(6, 10)]]
    chain_only = verify_target(pg_url, trusted_keys=[public], origin=ORIGIN, saved=[], raw=False)  # --no-raw
    assert chain_only.ok and chain_only.raw_checked is False and chain_only.size == 10
    assert "raw evidence NOT checked" in chain_only.tally()


def test_signer_refuses_a_history_rewritten_in_the_database(pg_url: str) -> None:
    """C2SP tlog-checkpoint: never sign a tree inconsistent with a checkpoint signed before. An
    entry rewritten in PostgreSQL, with chain and leaves re-hashed, is not signed over."""
    import orjson

    from collector.canonical import canonical_bytes
    from collector.errors import IntegrityError
    from collector.ledger_pg import PostgresLedger
    from collector.signing import sign_tree_head

    signer = FileSigner(ORIGIN, fixed_ed25519("pg-signer"))
    with create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519") as pg:
        append_with_raw(pg, range(10))
        sign_tree_head(pg, signer, OBSERVED)
    with PostgresLedger.open(pg_url) as attacker:
        bodies = [body for _seq, _leaf, body in attacker.entries()]
        for seq in range(3, 10):
            doc = orjson.loads(bodies[seq])
            if seq == 3:
                doc["event"]["actor"] = "mallory"
            doc["prev"] = merkle.leaf_hash(bodies[seq - 1]).hex()
            bodies[seq] = canonical_bytes(doc)
            attacker._q("UPDATE ~.entries SET body = %s, leaf = %s WHERE seq = %s",
                        (bodies[seq], merkle.leaf_hash(bodies[seq]), seq))
    with open_ledger(pg_url) as pg:
        append_with_raw(pg, range(10, 12))
        with pytest.raises(IntegrityError, match="refusing to sign: entries 0..9 now hash to"):
            sign_tree_head(pg, signer, OBSERVED)
        assert [cp.size for cp in pg.checkpoints()] == [10]


def test_cli_init_append_checkpoint_prove_export_verify(tmp_path: Path, pg_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()

    def fl(*args: str):  # type: ignore[no-untyped-def]
        return cli.invoke(app, ["--ledger", pg_url, "--as-of", "2026-11-21T00:00:00Z", *args])

    result = fl("init", "--origin", ORIGIN)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fedledger.key").stat().st_mode & 0o777 == 0o600 and (tmp_path / "fedledger.pub").exists()
    assert fl("init", "--origin", ORIGIN).exit_code == 2  # key files (and the ledger) exist
    (tmp_path / "e.jsonl").write_text(EVENTS)
    assert fl("append", "e.jsonl").exit_code == 0
    again = fl("--format", "json", "append", "e.jsonl")
    assert json.loads(again.stdout)["appended"] == 0

    no_key = fl("checkpoint")
    assert no_key.exit_code == 2 and "--key" in no_key.stderr
    assert fl("checkpoint", "--key", "fedledger.key", "--out", "cp.txt").exit_code == 0
    proof = fl("prove", "1")
    assert proof.exit_code == 0, proof.output
    (tmp_path / "p.json").write_text(proof.stdout)
    checked = cli.invoke(app, ["verify-proof", "p.json", "--trusted-key", "fedledger.pub", "--origin", ORIGIN])
    assert checked.exit_code == 0, checked.output

    assert fl("export", "--out", "exp", "--include-raw").exit_code == 0
    offline = cli.invoke(app, ["verify", "exp", "--trusted-key", "fedledger.pub", "--origin", ORIGIN])
    assert offline.exit_code == 0 and "2/2 entries valid" in offline.stdout, offline.output
    direct = fl("verify", "--trusted-key", "fedledger.pub", "--origin", ORIGIN)
    assert direct.exit_code == 0 and "2/2 entries valid" in direct.stdout, direct.output
    as_target = cli.invoke(app, ["verify", pg_url, "--trusted-key", "fedledger.pub", "--origin", ORIGIN])
    assert as_target.exit_code == 0, as_target.output
    untrusted = fl("verify")
    assert untrusted.exit_code == 2 and "--trusted-key" in untrusted.stderr
    status = fl("--format", "json", "status")
    assert status.exit_code == 0, status.output
    doc = json.loads(status.stdout)
    assert doc["ledger"]["size"] == 2 and doc["ledger"]["latest_checkpoint"]["size"] == 2
    assert [s["entries"] for s in doc["unconfigured_sources"]] == [2]

    # the same through FEDLEDGER_LEDGER
    env_size = cli.invoke(app, ["--format", "json", "prove", "--consistency", "1", "2"],
                          env={"FEDLEDGER_LEDGER": pg_url})
    assert env_size.exit_code == 0 and json.loads(env_size.stdout)["size2"] == 2


def test_run_with_a_config_whose_ledger_is_a_url(tmp_path: Path, pg_url: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEDLEDGER_LEDGER", raising=False)
    cli = CliRunner()
    assert cli.invoke(app, ["--ledger", pg_url, "init", "--origin", ORIGIN, "--key-dir", "keys"]).exit_code == 0
    write_events(tmp_path / "ev" / "a.jsonl", 40)
    config = tmp_path / "fedledger.toml"
    config.write_text(f'[ledger]\npath = "{pg_url}"\norigin = "{ORIGIN}"\n\n[signer]\nkey_file = "keys/fedledger.key"\n\n'
                      + manual_source("reviews", "ev/"), encoding="utf-8")
    check = cli.invoke(app, ["config", "check", "--config", str(config)])
    assert check.exit_code == 0, check.output
    first = cli.invoke(app, ["run", "--config", str(config), "--as-of", AS_OF, "--format", "json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["sources"][0]["counts"]["appended"] == 40 and doc["checkpoint"]["size"] == 40
    second = cli.invoke(app, ["run", "--config", str(config), "--as-of", AS_OF, "--format", "json"])
    assert second.exit_code == 0 and json.loads(second.stdout)["sources"][0]["counts"]["appended"] == 0
    name = PostgresLocation(pg_url).name
    assert (tmp_path / f"{name}.runs.jsonl").exists()
    with open_ledger(pg_url) as ledger:
        assert ledger.size == 40 and len(ledger.checkpoints()) == 1
    verified = cli.invoke(app, ["--ledger", pg_url, "verify", "--trusted-key", "keys/fedledger.pub", "--origin", ORIGIN])
    assert verified.exit_code == 0, verified.output

    # one run at a time, across hosts: the lock lives in PostgreSQL
    held = PostgresRunLock(pg_url, "other-run", started="2026-01-20T23:00:00Z").acquire()
    try:
        refused = cli.invoke(app, ["run", "--config", str(config), "--as-of", AS_OF])
        assert refused.exit_code == 3
        assert f"another run holds the ledger lock (pid {os.getpid()}" in refused.stderr
        assert "since 2026-01-20T23:00:00Z, run other-run" in refused.stderr
    finally:
        assert held._conn is not None
        held._conn.close()  # as if killed: PostgreSQL drops the lock, the record stays
    after = cli.invoke(app, ["run", "--config", str(config), "--as-of", AS_OF, "--format", "json"])
    assert after.exit_code == 0, after.output
    assert "other-run" in json.loads(after.stdout)["took_over_stale_lock"]


def test_run_without_a_signer_for_a_url_ledger_exits_2_before_collecting(tmp_path: Path, pg_url: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # docs/postgresql.md: without [signer] key_file (or kms_key_id) `fedledger run` exits 2 saying so.
    # Before, it collected first, exited 2 only on a day with something new to sign, and logged no run.end.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEDLEDGER_LEDGER", raising=False)
    cli = CliRunner()
    assert cli.invoke(app, ["--ledger", pg_url, "init", "--origin", ORIGIN, "--key-dir", "keys"]).exit_code == 0
    write_events(tmp_path / "ev" / "a.jsonl", 5)
    config = tmp_path / "fedledger.toml"
    config.write_text(f'[ledger]\npath = "{pg_url}"\norigin = "{ORIGIN}"\n\n' + manual_source("reviews", "ev/"),
                      encoding="utf-8")
    result = cli.invoke(app, ["run", "--config", str(config), "--as-of", AS_OF])
    assert result.exit_code == 2, result.output
    assert "[signer] key_file" in result.stderr
    with open_ledger(pg_url) as ledger:
        assert ledger.size == 0


@pytest.mark.slow
def test_bundle_from_a_postgresql_ledger_verifies(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    assert cli.invoke(app, ["--ledger", pg_url, "init", "--origin", ORIGIN]).exit_code == 0
    (tmp_path / "e.jsonl").write_text(EVENTS)
    assert cli.invoke(app, ["--ledger", pg_url, "append", "e.jsonl"]).exit_code == 0
    no_key = cli.invoke(app, ["--ledger", pg_url, "bundle", "--out", "b0"])
    assert no_key.exit_code == 2 and "--key" in no_key.stderr
    made = cli.invoke(app, ["--ledger", pg_url, "--as-of", "2026-11-21T00:00:00Z", "bundle", "--out", "b",
                            "--key", "fedledger.key", "--workers", "1"])
    assert made.exit_code == 0, made.output
    checked = cli.invoke(app, ["verify-bundle", "b", "--trusted-key", "fedledger.pub", "--origin", ORIGIN])
    assert checked.exit_code == 0, checked.output
    tally = checked.stdout.strip().splitlines()[-1]
    assert "2 ledger entries verified" in tally and tally.endswith(", 0 INVALID")


def test_vault_staged_in_a_worker_lands_the_same_in_postgresql(tmp_path: Path, pg_url: str) -> None:
    """The worker path (entries handed over as prepared tuples) on both backends: same entries, raw bytes."""
    from collector.commands.vault_cmds import run_collection
    from collector.sources.vault import VaultAuditLog

    log = REPO / "samples" / "vault" / "audit.log"
    lite = Ledger.create(tmp_path / "l.db", ORIGIN, created=OBSERVED, key_type="ed25519")
    pg = create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519")
    with lite, pg:
        for ledger in (lite, pg):
            summary = run_collection(ledger, VaultAuditLog([str(log)]), observed=OBSERVED, batch_size=5, workers=1)
            assert summary.appended == 28 and summary.balanced
            again = run_collection(ledger, VaultAuditLog([str(log)]), observed=OBSERVED, workers=1)
            assert again.read == 0
        assert list(pg.entries()) == list(lite.entries())
        assert pg.raw_bytes(27) == lite.raw_bytes(27) == log.read_bytes().splitlines(keepends=True)[27]
