"""The ledger commands through typer's CliRunner: every exit code, JSON output, KMS signing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.cli import app

runner = CliRunner()
ORIGIN = "example.gov/cli-test"
EVENTS = (
    '{"time":"2026-11-20T14:00:00Z","kind":"manual.review","actor":"alice","attrs":{"ticket":"CHG-1"}}\n'
    '{"time":"2026-11-20T14:05:00+00:00","kind":"manual.approval","actor":"bob"}\n'
)


def fl(tmp: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--ledger", str(tmp / "l.db"), "--as-of", "2026-11-21T00:00:00Z", *args])


@pytest.fixture()
def ready(tmp_path: Path) -> Path:
    assert fl(tmp_path, "init", "--origin", ORIGIN).exit_code == 0
    (tmp_path / "e.jsonl").write_text(EVENTS)
    assert fl(tmp_path, "append", str(tmp_path / "e.jsonl")).exit_code == 0
    assert fl(tmp_path, "checkpoint").exit_code == 0
    return tmp_path


def test_init_key_files(tmp_path: Path) -> None:
    result = fl(tmp_path, "init", "--origin", ORIGIN)
    assert result.exit_code == 0, result.output
    key = tmp_path / "l.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in result.output and key.read_text() not in result.output
    assert (tmp_path / "l.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert fl(tmp_path, "init", "--origin", ORIGIN).exit_code == 2  # exists already


def test_exit_0_verify_json(ready: Path) -> None:
    result = fl(ready, "--format", "json", "verify", "--trusted-key", str(ready / "l.pub"), "--origin", ORIGIN)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["kind"] == "fedledger.verify" and doc["ok"] and doc["size"] == 2


def test_exit_1_on_tampered_ledger(ready: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(ready / "l.db")
    conn.execute("UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'alice', 'mallo') AS BLOB) WHERE seq = 0")
    conn.commit()
    conn.close()
    result = fl(ready, "verify", "--trusted-key", str(ready / "l.pub"), "--origin", ORIGIN)
    assert result.exit_code == 1
    assert "INVALID: entry-modified seq 0" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("1/2 entries valid")


def test_exit_2_bad_lines_commit_nothing(ready: Path) -> None:
    bad = ready / "bad.jsonl"
    bad.write_text(
        '{"time":"2026-11-20T14:00:00Z","kind":"manual.ok"}\n'
        '{"time":"2026-11-20T14:00:00","kind":"manual.naive"}\n'
        '{"time":"2026-11-20T14:00:00Z","kind":"manual.float","x":1.5}\n'
        "not json\n"
    )
    result = fl(ready, "append", str(bad))
    assert result.exit_code == 2
    for line in (2, 3, 4):
        assert f"bad.jsonl:{line}:" in result.stderr
    assert "bad.jsonl:1:" not in result.stderr
    assert fl(ready, "--format", "json", "verify").stdout.count('"size": 2') == 1


def test_exit_2_usage(tmp_path: Path) -> None:
    assert fl(tmp_path, "--format", "xml", "verify").exit_code == 2
    assert fl(tmp_path, "init", "--origin", "has space").exit_code == 2
    assert fl(tmp_path, "--as-of", "2026-11-21", "verify").exit_code == 2


def test_exit_3_source_unavailable(tmp_path: Path) -> None:
    result = fl(tmp_path, "append", str(tmp_path / "e.jsonl"))
    assert result.exit_code == 3 and "no ledger here" in result.stderr


def test_exit_4_internal_error(ready: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import collector.ledger

    def broken(self, *a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret-looking detail hvs.SHOULDNOTPRINT")

    monkeypatch.setattr(collector.ledger.Ledger, "add_checkpoint", broken)
    result = fl(ready, "checkpoint")
    assert result.exit_code == 4
    assert "internal error: RuntimeError" in result.stderr and "SHOULDNOTPRINT" not in result.output


def test_append_twice_adds_nothing(ready: Path) -> None:
    result = fl(ready, "--format", "json", "append", str(ready / "e.jsonl"))
    assert result.exit_code == 0
    assert json.loads(result.stdout)["appended"] == 0
    with open(ready / "e.jsonl", "a") as handle:
        handle.write('{"time":"2026-11-20T15:00:00Z","kind":"manual.review","actor":"carol"}\n')
    doc = json.loads(fl(ready, "--format", "json", "append", str(ready / "e.jsonl")).stdout)
    assert (doc["read"], doc["appended"], doc["ledger_size"]) == (1, 1, 3)


def test_prove_and_verify_proof_offline(ready: Path) -> None:
    proof = ready / "p.json"
    result = fl(ready, "prove", "1")
    assert result.exit_code == 0
    proof.write_text(result.stdout)
    ok = runner.invoke(app, ["verify-proof", str(proof), "--trusted-key", str(ready / "l.pub"), "--origin", ORIGIN])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(proof.read_text())
    doc["entry"] = doc["entry"].replace("bob", "eve")
    proof.write_text(json.dumps(doc))
    bad = runner.invoke(app, ["verify-proof", str(proof), "--trusted-key", str(ready / "l.pub"), "--origin", ORIGIN])
    assert bad.exit_code == 1


def test_consistency_proof_offline(ready: Path) -> None:
    with open(ready / "e.jsonl", "a") as handle:
        handle.write('{"time":"2026-11-20T15:00:00Z","kind":"manual.review","actor":"dave"}\n')
    fl(ready, "append", str(ready / "e.jsonl"))
    fl(ready, "checkpoint")
    result = fl(ready, "prove", "--consistency", "2", "3")
    assert result.exit_code == 0, result.output
    (ready / "c.json").write_text(result.stdout)
    ok = runner.invoke(app, ["verify-proof", str(ready / "c.json"), "--trusted-key", str(ready / "l.pub"), "--origin", ORIGIN])
    assert ok.exit_code == 0, ok.output


def test_export_verify_and_saved_checkpoint(ready: Path) -> None:
    assert fl(ready, "checkpoint", "--out", str(ready / "saved.note")).exit_code == 0
    assert fl(ready, "export", "--out", str(ready / "ex")).exit_code == 0
    result = runner.invoke(app, ["verify", str(ready / "ex"), "--trusted-key", str(ready / "l.pub"), "--origin", ORIGIN,
                                 "--checkpoint", str(ready / "saved.note")])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["verify", str(ready / "ex")]).exit_code == 2  # an export needs pinned key and origin


def test_ed25519_ledger(tmp_path: Path) -> None:
    assert fl(tmp_path, "init", "--origin", ORIGIN, "--key-type", "ed25519").exit_code == 0
    assert fl(tmp_path, "checkpoint").exit_code == 0
    assert fl(tmp_path, "verify", "--origin", ORIGIN, "--trusted-key", str(tmp_path / "l.pub")).exit_code == 0


def test_kms_signed_checkpoint(tmp_path: Path, moto_endpoint: str) -> None:
    import boto3

    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-gov-west-1")
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    assert fl(tmp_path, "init", "--origin", ORIGIN, "--no-key").exit_code == 0
    (tmp_path / "e.jsonl").write_text(EVENTS)
    fl(tmp_path, "append", str(tmp_path / "e.jsonl"))
    result = fl(tmp_path, "checkpoint", "--kms-key-id", key_id, "--endpoint-url", moto_endpoint, "--region", "us-gov-west-1")
    assert result.exit_code == 0, result.output
    assert fl(tmp_path, "export", "--out", str(tmp_path / "ex")).exit_code == 0
    keys = sorted((tmp_path / "ex" / "keys").iterdir())
    assert len(keys) == 1
    ok = runner.invoke(app, ["verify", str(tmp_path / "ex"), "--trusted-key", str(keys[0]), "--origin", ORIGIN])
    assert ok.exit_code == 0, ok.output
    other = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    wrong = fl(tmp_path, "checkpoint", "--kms-key-id", other, "--endpoint-url", moto_endpoint, "--region", "us-gov-west-1")
    assert wrong.exit_code == 2
    gone = fl(tmp_path, "checkpoint", "--kms-key-id", "nope", "--endpoint-url", "http://127.0.0.1:9", "--region", "us-gov-west-1")
    assert gone.exit_code == 3


def test_env_ledger_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # FEDLEDGER_LEDGER is read when the app is built; check the default through a subprocess
    import subprocess
    import sys

    env = {**os.environ, "FEDLEDGER_LEDGER": str(tmp_path / "env.db")}
    done = subprocess.run([sys.executable, "-m", "collector.cli", "init", "--origin", ORIGIN], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "env.db").exists()


def test_a_reader_that_stops_early_is_not_an_internal_error() -> None:
    """`fedledger verify-bundle B ... | head -1` (or `| grep -q INVALID`) printed "internal error:
    BrokenPipeError (please report ...)" and exited 4, the code for a fedledger bug. A closed
    stdout is the reader's choice: exit quietly with 141 (128 + SIGPIPE, as a shell reports a
    process killed by it), like the 130 an interrupt gives."""
    import subprocess
    import sys

    samples = Path(__file__).resolve().parent.parent / "samples" / "package"
    command = [sys.executable, "-m", "collector.cli", "verify-bundle", str(samples / "bundle.valid.zip"),
               "--trusted-key", str(samples / "ledger.pub"), "--origin", "example.gov/fedledger-bench"]
    done = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert done.stdout is not None and done.stderr is not None
    done.stdout.close()  # the reader is gone before the first line is written
    stderr = done.stderr.read().decode()
    assert done.wait() == 141, stderr
    assert stderr == "", stderr


def _proof_without(ready: Path, field: str, value: object = None) -> Path:
    """The proof of entry 1 with *field* removed (or, given *value*, replaced)."""
    doc = json.loads(fl(ready, "prove", "1").stdout)
    if value is None:
        del doc[field]
    else:
        doc[field] = value
    path = ready / f"proof.no-{field}.json"
    path.write_text(json.dumps(doc))
    return path


def test_verify_proof_without_the_entry_does_not_say_the_entry_is_proven(ready: Path) -> None:
    """Without `entry` only the leaf hash can be checked: that proves some leaf is in the tree, not
    which entry it is. The assessor guide's workflow checks the entry's bytes, so a plain "valid"
    would read as "this entry is proven": the output says what was proven and exits 1."""
    proof = _proof_without(ready, "entry")
    leaf = json.loads(proof.read_text())["leaf_hash"]
    args = ["verify-proof", str(proof), "--trusted-key", str(ready / "l.pub"), "--origin", ORIGIN]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"valid: leaf hash {leaf} is at index 1 in {ORIGIN} at size 2"
    assert lines[-1].startswith("INVALID: entry-missing seq 1: the proof carries no entry"), lines
    assert not any(line.startswith("valid: entry") for line in lines)

    as_json = runner.invoke(app, ["--format", "json", *args])
    assert as_json.exit_code == 1
    doc = json.loads(as_json.stdout)
    assert (doc["ok"], doc["entry_checked"], doc["leaf_hash"]) == (False, False, leaf)
    assert [f["code"] for f in doc["failures"]] == ["entry-missing"]

    # Asked for explicitly, the leaf hash alone is accepted, and the line says that is all it is.
    only = runner.invoke(app, [*args, "--leaf-hash-only"])
    assert only.exit_code == 0, only.output
    assert only.stdout.strip() == (f"valid: leaf hash {leaf} is at index 1 in {ORIGIN} at size 2 "
                                   "(the proof carries no entry: no entry's bytes were checked)")
    doc = json.loads(runner.invoke(app, ["--format", "json", *args, "--leaf-hash-only"]).stdout)
    assert (doc["ok"], doc["entry_checked"]) == (True, False)


def test_verify_proof_with_the_entry_says_the_entry_is_proven(ready: Path) -> None:
    proof = ready / "p.json"
    proof.write_text(fl(ready, "prove", "1").stdout)
    for extra in ([], ["--leaf-hash-only"]):  # the flag only permits a missing entry; a given one is checked
        result = runner.invoke(app, ["--format", "json", "verify-proof", str(proof), "--trusted-key",
                                     str(ready / "l.pub"), "--origin", ORIGIN, *extra])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert (doc["ok"], doc["entry_checked"], doc["failures"]) == (True, True, [])
        assert doc["message"] == f"valid: entry 1 is in {ORIGIN} at size 2"


def test_verify_proof_with_an_entry_that_is_not_text_is_malformed(ready: Path) -> None:
    proof = _proof_without(ready, "entry", 5)
    result = runner.invoke(app, ["verify-proof", str(proof), "--trusted-key", str(ready / "l.pub"), "--origin", ORIGIN])
    assert result.exit_code == 2 and "entry" in result.stderr, result.output


# -- `fedledger verify` of a bundle archive: the ledger slice, read with verify-bundle's safety checks --

def _bundle_archive(ready: Path, kind: str, *, top: str = "", edit: bool = False) -> Path:
    """An archive shaped like a bundle (its ledger/ folder is a `fedledger export`), written by the
    bundle's own archive writer; *top* nests it in one folder, *edit* changes an exported entry."""
    from bundler.bundle import write_archive

    folder = ready / "bundle-2026-01"
    root = folder / top if top else folder
    assert fl(ready, "export", "--out", str(root / "ledger")).exit_code == 0
    (root / "index.html").write_text("<p>report</p>")
    (root / "MANIFEST.json").write_text('{"format":"fedledger-bundle/1"}')  # not checked by verify
    if edit:
        entries = root / "ledger" / "entries.jsonl"
        entries.write_bytes(entries.read_bytes().replace(b"alice", b"mallo"))
    return write_archive(folder, kind)


def _verify(ready: Path, target: Path, *extra: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["verify", str(target), "--trusted-key", str(ready / "l.pub"), "--origin", ORIGIN,
                               *extra])


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_verify_takes_a_bundle_archive_and_checks_its_ledger_slice(ready: Path, kind: str) -> None:
    archive = _bundle_archive(ready, kind)
    result = _verify(ready, archive)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "2/2 entries valid, 1/1 checkpoints valid, 0 INVALID"
    assert fl(ready, "checkpoint", "--out", str(ready / "saved.note")).exit_code == 0
    assert _verify(ready, archive, "--checkpoint", str(ready / "saved.note")).exit_code == 0


def test_verify_of_a_bundle_archive_nested_in_one_folder(ready: Path) -> None:
    assert _verify(ready, _bundle_archive(ready, "zip", top="bundle-2026-01")).exit_code == 0


def test_verify_of_a_bundle_archive_reports_an_edited_entry_by_its_member_name(ready: Path) -> None:
    result = _verify(ready, _bundle_archive(ready, "tar.gz", edit=True))
    assert result.exit_code == 1
    assert "INVALID: export-modified [ledger/entries.jsonl]" in result.stdout
    assert "fedledger-verify-" not in result.output  # no private temporary path


def test_verify_of_a_bundle_archive_rejects_unsafe_members_and_writes_nothing_outside(ready: Path) -> None:
    import io
    import tarfile

    archive = _bundle_archive(ready, "tar.gz")
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    evil = ready / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))
        escape = tarfile.TarInfo("ledger/../../escaped.txt")
        escape.size = 3
        tar.addfile(escape, io.BytesIO(b"pwn"))
        link = tarfile.TarInfo("ledger/keys/link.pem")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    result = _verify(ready, evil)
    assert result.exit_code == 1, result.output
    assert "INVALID: unsafe-member [ledger/../../escaped.txt]" in result.stdout
    assert "INVALID: unsafe-member [ledger/keys/link.pem]" in result.stdout
    assert not (ready.parent / "escaped.txt").exists() and not (ready / "escaped.txt").exists()


def test_verify_of_an_archive_without_a_ledger_folder_is_not_a_bundle(ready: Path) -> None:
    from bundler.bundle import write_archive

    folder = ready / "not-a-bundle"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    result = _verify(ready, write_archive(folder, "tar.gz"))
    assert result.exit_code == 2 and "no ledger/MANIFEST.json" in result.stderr, result.output


def test_verify_of_a_bundle_folder_names_its_ledger_folder(ready: Path) -> None:
    folder = ready / "bundle-folder"
    assert fl(ready, "export", "--out", str(folder / "ledger")).exit_code == 0
    (folder / "MANIFEST.json").write_text('{"format":"fedledger-bundle/1"}')
    result = _verify(ready, folder)
    assert result.exit_code == 2 and f"{folder / 'ledger'}" in result.stderr, result.output
    assert _verify(ready, folder / "ledger").exit_code == 0


# -- a first-time user's mistakes: one line that says what to do, exit 2, no traceback ---------

def _one_error(result) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in result.stderr.splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.stderr
    return lines[0]


def test_export_or_bundle_into_a_folder_that_is_not_empty_says_what_to_do(ready: Path) -> None:
    (ready / "notes").mkdir()
    (ready / "notes" / "todo.txt").write_text("mine")
    for command in (["export", "--out"], ["bundle", "--workers", "1", "--out"]):
        result = fl(ready, *command, str(ready / "notes"))
        assert result.exit_code == 2
        assert "folder exists and is not empty: choose a new or empty --out" in _one_error(result)
    assert (ready / "notes" / "todo.txt").read_text() == "mine"
    # what an interrupted export or bundle leaves behind (no MANIFEST.json) is named as unfinished
    (ready / "cut").mkdir()
    (ready / "cut" / "entries.jsonl").write_text("")
    result = fl(ready, "export", "--out", str(ready / "cut"))
    assert result.exit_code == 2 and "holds an unfinished export (no MANIFEST.json" in _one_error(result)
    result = fl(ready, "bundle", "--workers", "1", "--out", str(ready / "e.jsonl"))
    assert result.exit_code == 2 and "bundle folder is a file" in _one_error(result)


def test_signing_with_the_public_key_names_the_mistake(ready: Path) -> None:
    result = fl(ready, "checkpoint", "--key", str(ready / "l.pub"))  # mode 0644: the mode was all it complained of
    assert result.exit_code == 2
    assert "this is a public key (the .pub file): sign with the private key" in _one_error(result)


def test_append_of_a_raw_log_names_few_lines_and_points_to_collect(ready: Path) -> None:
    from collector.cli_common import NOTES_SHOWN

    raw = ready / "audit.log"
    raw.write_text("".join(f'{{"type":"request","time":"2026-11-20T14:00:{i % 60:02d}Z"}}\n' for i in range(500)))
    result = fl(ready, "append", str(raw))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == NOTES_SHOWN + 2 and "... 450 more bad line(s)" in lines[-2]
    assert "500 bad line(s); nothing was appended" in lines[-1] and "fedledger collect" in lines[-1]


def test_a_global_option_after_the_command_says_where_it_goes() -> None:
    from collector.cli import misplaced_global_option

    hint = misplaced_global_option(["verify", "--format", "json"])
    assert hint == "--format is a global option: put it before the command, e.g. `fedledger --format json verify ...`"
    assert "`fedledger --ledger LEDGER collect vault ...`" in (
        misplaced_global_option(["collect", "vault", "audit.log", "--ledger=x.db"]) or "")
    # commands with an option of that name, options before the command, and `--` are left alone
    assert misplaced_global_option(["status", "--format", "json"]) is None
    assert misplaced_global_option(["bundle", "--out", "b", "--as-of", "2026-11-21T00:00:00Z"]) is None
    assert misplaced_global_option(["--format", "json", "--ledger", "x.db", "verify"]) is None
    assert misplaced_global_option(["vault", "hmac", "--salt-file", "s", "--", "--format"]) is None


def test_the_installed_command_answers_a_misplaced_global_option_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "collector.cli", "verify", "--format", "json"],
                          capture_output=True, text=True, cwd=tmp_path)
    hint = "--format is a global option: put it before the command, e.g. `fedledger --format json verify ...`"
    assert done.returncode == 2 and done.stderr == f"error: {hint}\n"
    # it asked for JSON: its reader gets the error object too (docs/scheduling.md)
    assert json.loads(done.stdout)["error"] == {"exit": 2, "family": "usage-error", "message": hint}
    human = subprocess.run([sys.executable, "-m", "collector.cli", "verify", "--ledger", "x.db"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert human.returncode == 2 and human.stdout == "" and human.stderr.startswith("error: --ledger is a global option")


def test_verify_of_a_ledger_never_checkpointed_says_how_to_sign_one(tmp_path: Path) -> None:
    assert fl(tmp_path, "init", "--origin", ORIGIN).exit_code == 0
    result = fl(tmp_path, "verify")
    assert result.exit_code == 1  # nothing vouches for the ledger: it still fails, and says why
    assert ("INVALID: no-trusted-checkpoint: no checkpoint signed by a trusted key vouches for these entries "
            "(there is no checkpoint at all: the ledger's owner signs one with `fedledger checkpoint`)") in result.stdout
    other = tmp_path / "other"
    other.mkdir()
    assert runner.invoke(app, ["--ledger", str(other / "o.db"), "init", "--origin", ORIGIN]).exit_code == 0
    assert fl(tmp_path, "checkpoint").exit_code == 0
    result = fl(tmp_path, "verify", "--trusted-key", str(other / "o.pub"), "--origin", ORIGIN)
    assert result.exit_code == 1 and "no-trusted-checkpoint" in result.stdout and "no checkpoint at all" not in result.stdout
