"""Parity review of the PostgreSQL ledger against SQLite, as a user running fedledger on PostgreSQL meets it.

Against a real PostgreSQL (127.0.0.1:5432, database ``test``; override with ``FEDLEDGER_TEST_PG``),
each test in its own schema; skipped, with the reason, when the server is unreachable.

* the SQLite tamper matrix (tests/test_tamper_matrix.py) replayed on a PostgreSQL ledger: every
  mutation an attacker with write access to the database can make is reported with its class, and a
  table dropped or a row of the wrong type is unusable input (exit 2), never "internal error" (exit 4);
* no password-like value of a ledger URL is echoed, whatever form the URL takes;
* a connection lost mid-run (the server ends the session) is exit 3 with nothing half-committed;
* ``status`` reads entries holding NUL characters, and reports a tampered body as unreadable (exit 2).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundler.verify_cmd import verify_target
from collector.cli import app
from collector.ledger_open import create_ledger, open_ledger
from collector.ledger_pg import PostgresLedger, drop_ledger
from collector.signing import FileSigner, write_public_key
from tests.ledger_fixtures import ORIGIN, OBSERVED, append_with_raw, fixed_ed25519, sign_checkpoint
from tests.ops_workspace import AS_OF, manual_source, write_events
from tests.pg_support import NEEDS_PG, SERVER, pg_url  # noqa: F401 - pg_url is a fixture

pytestmark = NEEDS_PG


@pytest.fixture()
def golden_pg(tmp_path: Path, pg_url: str) -> Iterator[tuple[str, Path]]:
    """The golden ledger of the SQLite tamper matrix (20 entries, checkpoints at 8 and 20, fixed
    Ed25519 key, raw evidence in the store) built in PostgreSQL: (URL, trusted public key file)."""
    signer = FileSigner(ORIGIN, fixed_ed25519("golden"))
    public = tmp_path / "golden.pub"
    write_public_key(public, signer.verifier.public_key)  # type: ignore[arg-type]
    with create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519") as pg:
        append_with_raw(pg, range(8))
        sign_checkpoint(pg, signer)  # type: ignore[arg-type]
        append_with_raw(pg, range(8, 20))
        sign_checkpoint(pg, signer)  # type: ignore[arg-type]
    yield pg_url, public


def _attack(url: str, *statements: str) -> None:
    """Edit the ledger's tables behind fedledger's back, as someone with write access to the database."""
    with PostgresLedger.open(url) as attacker:
        for statement in statements:
            attacker._q(statement)


def _codes(url: str, public: Path) -> set[str]:
    return {f.code for f in verify_target(url, trusted_keys=[public], origin=ORIGIN, saved=[]).failures}


def _cli_verify(url: str, public: Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--ledger", url, "verify", "--trusted-key", str(public), "--origin", ORIGIN])


# -- the tamper matrix on PostgreSQL ---------------------------------------------------------

_FLIP = ("UPDATE ~.entries SET body = convert_to(replace(convert_from(body, 'UTF8'), 'reviewer-1', 'reviewer-9'), "
         "'UTF8') WHERE seq = 4")


@pytest.mark.parametrize("statements, expected", [
    ((_FLIP,), "entry-modified"),
    (("DELETE FROM ~.entries WHERE seq = 7",), "entry-deleted"),
    (("UPDATE ~.entries SET body = (SELECT body FROM ~.entries WHERE seq = 12), "
      "leaf = (SELECT leaf FROM ~.entries WHERE seq = 12) WHERE seq = 13",), "entry-duplicated"),
    (("UPDATE ~.entries e SET body = o.body, leaf = o.leaf FROM ~.entries o WHERE (e.seq, o.seq) IN ((5, 6), (6, 5))",),
     "entries-swapped"),
    (("DELETE FROM ~.entries WHERE seq >= 15",), "truncated"),
    (("UPDATE ~.entries SET leaf = '\\x00' WHERE seq = 4",), "entry-modified"),
    (("UPDATE ~.entries SET body = '\\xff0a' WHERE seq = 4",), "entry-modified"),
    (("UPDATE ~.entries SET seq = 25 WHERE seq = 19",), "database-corrupt"),
    (("UPDATE ~.checkpoints SET note = 'garbage' WHERE id = 2",), "malformed-checkpoint"),
    (("UPDATE ~.checkpoints SET note = replace(note, E'\\n20\\n', E'\\n19\\n') WHERE id = 2",), "bad-signature"),
    (("DELETE FROM ~.checkpoints",), "no-trusted-checkpoint"),
    # PostgreSQL columns are typed, but whoever can write the tables can also ALTER them: a body or
    # leaf made NULL or TEXT is reported like any other edit (as SQLite's untyped columns are), not a crash
    (("ALTER TABLE ~.entries ALTER body DROP NOT NULL", "UPDATE ~.entries SET body = NULL WHERE seq = 3"),
     "entry-modified"),
    (("ALTER TABLE ~.entries ALTER leaf DROP NOT NULL", "UPDATE ~.entries SET leaf = NULL WHERE seq = 3"),
     "entry-modified"),
    (("ALTER TABLE ~.entries ALTER body TYPE text USING convert_from(body, 'UTF8')", _FLIP.replace(
        "convert_to(replace(convert_from(body, 'UTF8'), 'reviewer-1', 'reviewer-9'), 'UTF8')",
        "replace(body, 'reviewer-1', 'reviewer-9')")), "entry-modified"),
    (("ALTER TABLE ~.entries ALTER leaf TYPE text USING encode(leaf, 'hex')",), "entry-modified"),
    (("ALTER TABLE ~.checkpoints ALTER note DROP NOT NULL", "UPDATE ~.checkpoints SET note = NULL WHERE id = 2"),
     "malformed-checkpoint"),
    (("ALTER TABLE ~.checkpoints ALTER root DROP NOT NULL", "UPDATE ~.checkpoints SET root = NULL WHERE id = 2"),
     None),  # the root column is a copy: the signed note is what is verified
], ids=["flip", "delete", "duplicate", "swap", "truncate", "leaf-short", "body-not-utf8", "seq-gap",
        "note-garbage", "note-edited", "checkpoints-deleted", "body-null", "leaf-null", "body-as-text",
        "leaf-as-text", "note-null", "root-null"])
def test_database_mutation_is_caught_on_postgresql(golden_pg: tuple[str, Path], statements: tuple[str, ...],
                                                   expected: str | None) -> None:
    url, public = golden_pg
    assert _codes(url, public) == set()
    _attack(url, *statements)
    result = _cli_verify(url, public)
    if expected is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1, result.output
    assert expected in _codes(url, public)


def test_raw_object_replaced_and_unlinked_on_postgresql(golden_pg: tuple[str, Path]) -> None:
    url, public = golden_pg
    with open_ledger(url) as pg:
        where = pg.raw_location(0)
        assert where is not None
        obj = pg.store.path_for(where.object)
    obj.write_bytes(b"not the evidence\n")
    _attack(url, "DELETE FROM ~.raw_index WHERE sha256 = (SELECT min(sha256) FROM ~.raw_index)")
    codes = _codes(url, public)
    assert {"raw-modified", "raw-missing"} <= codes
    assert _cli_verify(url, public).exit_code == 1


@pytest.mark.parametrize("statement", [
    "DROP TABLE ~.entries CASCADE",
    "DROP TABLE ~.checkpoints",
    "DROP TABLE ~.raw_index",
    "ALTER TABLE ~.entries RENAME COLUMN body TO b",
], ids=["no-entries-table", "no-checkpoints-table", "no-raw-index-table", "no-body-column"])
def test_ledger_schema_broken_is_malformed_not_a_crash(golden_pg: tuple[str, Path], statement: str) -> None:
    """As for a SQLite file with a dropped table: exit 2 naming the ledger unreadable, not exit 4."""
    url, public = golden_pg
    _attack(url, statement)
    commands = [["verify", "--trusted-key", str(public), "--origin", ORIGIN],
                ["export", "--include-raw", "--out", str(public.parent / f"exp-{secrets.token_hex(3)}")]]
    if "raw_index" not in statement:  # only verify and export --include-raw read where raw bytes live
        commands += [["prove", "3"], ["status"]]
    for args in commands:
        result = CliRunner().invoke(app, ["--ledger", url, *args])
        assert result.exit_code == 2, (args, result.output)
        assert "not a readable fedledger ledger" in result.stderr, (args, result.stderr)


# -- status: counts as SQLite gives them, NUL characters included ---------------------------

_NUL_EVENT = {"time": "2026-11-20T10:00:00Z", "kind": "manual.review", "actor": "a\u0000b", "action": "approve",
              "resource": "change\\u0000-not-a-nul", "outcome": {"status": "success", "error": None},
              "correlation": {}, "attrs": {"k\u0000": "v\u0000\u0000"}}


def test_status_reads_entries_holding_nul_characters(tmp_path: Path, pg_url: str) -> None:
    """An event string may hold NUL (a JSON escape \\u0000 in the stored bytes), which PostgreSQL's jsonb
    refuses: status then failed with exit 4 for the whole ledger. It gives SQLite's numbers now."""
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps(_NUL_EVENT) + "\n" + json.dumps(dict(_NUL_EVENT, time="2026-11-20T11:00:00Z",
                                                                     actor="plain")) + "\n")
    docs = []
    for ledger in (str(tmp_path / "l.db"), pg_url):
        cli = CliRunner()
        assert cli.invoke(app, ["--ledger", ledger, "init", "--origin", ORIGIN, "--key-dir",
                                str(tmp_path / secrets.token_hex(3))]).exit_code == 0
        appended = cli.invoke(app, ["--ledger", ledger, "append", str(events)])
        assert appended.exit_code == 0, appended.output
        status = cli.invoke(app, ["--ledger", ledger, "--as-of", "2026-11-21T00:00:00Z", "--format", "json", "status"])
        assert status.exit_code == 0, status.output
        docs.append([{k: v for k, v in s.items() if k != "last_collection"}  # the clock of `append`
                     for s in json.loads(status.stdout)["unconfigured_sources"]])
    lite, pg = docs
    assert pg == lite
    assert [s["entries"] for s in pg] == [2] and pg[0]["newest_evidence"] == "2026-11-20T11:00:00Z"


@pytest.mark.parametrize("body", ["\\xff0a", "not json"], ids=["not-utf8", "not-json"])
def test_status_of_a_tampered_body_is_unreadable_not_a_crash(golden_pg: tuple[str, Path], body: str) -> None:
    url, _public = golden_pg
    _attack(url, f"UPDATE ~.entries SET body = convert_to('{body}', 'UTF8') WHERE seq = 3" if body == "not json"
            else f"UPDATE ~.entries SET body = '{body}' WHERE seq = 3")
    result = CliRunner().invoke(app, ["--ledger", url, "status"])
    assert result.exit_code == 2, result.output
    assert "not a readable fedledger ledger" in result.stderr


# -- no password-like value of a ledger URL is ever echoed ----------------------------------

_SECRET = "S3CRETpw"
_LEAKY_URLS = [
    f"postgresql://postgres:{_SECRET}/x@127.0.0.1:5432/test?ledger=t_leak&store=/tmp/o",  # '/' in the password
    f"postgresql://postgres:{_SECRET}#x@127.0.0.1:5432/test?ledger=t_leak&store=/tmp/o",  # '#' in the password
    f"postgresql://postgres:{_SECRET}?x@127.0.0.1:5432/test?ledger=t_leak&store=/tmp/o",  # '?' in the password
    f"postgresql://postgres:[{_SECRET}]@127.0.0.1:5432/test?ledger=t_leak&store=/tmp/o",  # brackets: not a URL
    f"postgresql://postgres@127.0.0.1:5432/test?ledger=t_leak&store=/tmp/o&sslpassword={_SECRET}",
    f"postgresql://postgres@127.0.0.1:5432/test?ledger=t_leak&store=/tmp/o&Password={_SECRET}",
    f"postgresql://postgres@127.0.0.1:5432/test?ledger=t_leak&store=/tmp/o&password%3D={_SECRET}",
]


@pytest.mark.parametrize("url", _LEAKY_URLS, ids=["slash", "hash", "question-mark", "brackets", "sslpassword",
                                                  "Password", "encoded-key"])
def test_a_password_in_any_form_of_the_url_is_refused_and_never_echoed(tmp_path: Path, url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEDLEDGER_LEDGER", raising=False)
    cli = CliRunner()
    config = tmp_path / "fedledger.toml"
    config.write_text(f'[ledger]\npath = "{url}"\norigin = "{ORIGIN}"\n\n[signer]\nkey_file = "k.key"\n\n'
                      + manual_source("reviews", "ev/"), encoding="utf-8")
    runs = [cli.invoke(app, ["--ledger", url, *args]) for args in (
        ["init", "--origin", ORIGIN], ["status"], ["verify", "--trusted-key", "k.pub", "--origin", ORIGIN],
        ["checkpoint", "--key", "k.key"], ["export", "--out", "x"], ["prove", "0"])]
    runs.append(cli.invoke(app, ["verify", url, "--trusted-key", "k.pub", "--origin", ORIGIN]))
    runs.append(cli.invoke(app, ["status"], env={"FEDLEDGER_LEDGER": url}))
    runs += [cli.invoke(app, [*args, "--config", str(config)]) for args in (["config", "check"], ["run"], ["status"])]
    for result in runs:
        assert _SECRET not in result.output, result.output
        assert result.exit_code == 2, result.output
        assert "password" in result.output, result.output


# -- the server ends the session mid-run: exit 3, nothing half-committed --------------------


def test_connection_lost_mid_run_is_exit_3_and_commits_no_half_batch(tmp_path: Path, pg_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The server ends fedledger's session (an administrator, a failover, a restart) while the second
    source's batch is being written: that batch is not committed, the first source's is, and the run
    ends with exit 3, its run.end logged and its journal line written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEDLEDGER_LEDGER", raising=False)
    cli = CliRunner()
    assert cli.invoke(app, ["--ledger", pg_url, "init", "--origin", ORIGIN, "--key-dir", "keys"]).exit_code == 0
    write_events(tmp_path / "a" / "a.jsonl", 30)
    write_events(tmp_path / "b" / "b.jsonl", 30, day=19)
    config = tmp_path / "fedledger.toml"
    config.write_text(f'[ledger]\npath = "{pg_url}"\norigin = "{ORIGIN}"\n\n[signer]\nkey_file = "keys/fedledger.key"\n\n'
                      + manual_source("first", "a/") + manual_source("second", "b/"), encoding="utf-8")
    # A real server-side end of the session: the 10th entry of the second source terminates its own backend.
    _attack(pg_url, """CREATE FUNCTION ~.end_session() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF strpos(convert_from(NEW.body, 'UTF8'), 'b.jsonl') > 0 AND NEW.seq >= 39 THEN
            PERFORM pg_terminate_backend(pg_backend_pid());
          END IF;
          RETURN NEW;
        END $$""", "CREATE TRIGGER end_session BEFORE INSERT ON ~.entries FOR EACH ROW EXECUTE FUNCTION ~.end_session()")
    result = cli.invoke(app, ["run", "--config", str(config), "--as-of", AS_OF, "--format", "json"])
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert result.stdout, result.stderr
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 3
    outcomes = {s["source"]: s for s in doc["sources"]}
    assert outcomes["first"]["ok"] and outcomes["first"]["counts"]["appended"] == 30
    assert not outcomes["second"]["ok"] and outcomes["second"]["error"] == "SourceUnavailable"
    assert "terminat" in outcomes["second"]["message"]
    assert '"event":"run.end"' in result.stderr.replace(" ", "")
    from collector.ledger_pg import PostgresLocation

    journal = (tmp_path / f"{PostgresLocation(pg_url).name}.runs.jsonl").read_text().splitlines()
    assert json.loads(journal[-1])["exit_code"] == 3
    _attack(pg_url, "DROP TRIGGER end_session ON ~.entries")
    with open_ledger(pg_url) as ledger:
        assert ledger.size == 30  # the second source's batch: all or nothing
        assert not any("b.jsonl" in source for source in ledger.cursors())
    again = cli.invoke(app, ["run", "--config", str(config), "--as-of", AS_OF, "--format", "json"])
    assert again.exit_code == 0, again.output
    with open_ledger(pg_url) as ledger:
        assert ledger.size == 60


# -- status while a run commits: one snapshot -----------------------------------------------

_WRITER = """
import sys, time
from collector.ledger_open import open_ledger
from tests.ledger_fixtures import manual_entry
with open_ledger(sys.argv[1]) as ledger:
    i, stop = 0, time.monotonic() + float(sys.argv[2])
    while time.monotonic() < stop:
        ledger.append([manual_entry(i + k)._replace(dedup_key=None) for k in range(20)], updated="2026-11-20T15:00:00Z")
        i += 20
"""


def test_status_numbers_come_from_one_snapshot_while_a_writer_commits(tmp_path: Path, pg_url: str) -> None:
    """Size, per-source counts and checkpoints were read by separate autocommit statements, each its own
    snapshot: with a run committing meanwhile, the per-source counts added up to more than the size."""
    import subprocess
    import sys

    from collector.ledger_stats_pg import ledger_stats_pg

    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    repo = Path(__file__).resolve().parent.parent
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, "3"], cwd=repo)
    try:
        mismatches = []
        while writer.poll() is None:  # three seconds of status calls against a committing writer
            stats = ledger_stats_pg(pg_url)
            counted = sum(s.entries for s in stats.sources)
            if counted != stats.size:
                mismatches.append((stats.size, counted))
        assert mismatches == []
    finally:
        writer.kill()
        writer.wait()


def test_run_on_a_postgresql_ledger_not_created_yet_says_so(tmp_path: Path, pg_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: exit 3 'no ledger here'. PostgreSQL ended 'internal error: InvalidSchemaName' (exit 4):
    the run lock created its holder table in a schema that `init` had not made."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEDLEDGER_LEDGER", raising=False)
    write_events(tmp_path / "ev" / "a.jsonl", 3)
    config = tmp_path / "fedledger.toml"
    config.write_text(f'[ledger]\npath = "{pg_url}"\norigin = "{ORIGIN}"\n\n[signer]\nkey_file = "k.key"\n\n'
                      + manual_source("reviews", "ev/"), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--as-of", AS_OF])
    assert result.exit_code == 3, result.output
    assert "no ledger here" in result.stderr and "fedledger init" in result.stderr


@NEEDS_PG
def test_a_ledger_origin_with_a_control_character_is_refused_as_on_sqlite(pg_url: str) -> None:
    # signed-note forbids control characters: such an origin would make every checkpoint malformed
    from collector.errors import UsageError

    for bad in ("example.gov/a\x01b", "example.gov/a\x1bb", "example.gov/a b", ""):
        with pytest.raises(UsageError, match="control characters"):
            PostgresLedger.create(pg_url, bad, created=OBSERVED, key_type="ed25519")
