"""Review of ``--format json`` errors: a ledger location that holds a password but is not a URL
fedledger reads as PostgreSQL (a capitalised scheme, a driver-qualified scheme as SQLAlchemy writes
it, a libpq keyword string) was taken for a file path and echoed, password and all, in the error's
``message`` and ``file`` (and on stderr). Run through the real command (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fedledger_process import REPO, fedledger
from tests.ops_workspace import AS_OF

SECRET = "hunter2-Secret"
LOCATIONS = [
    f"POSTGRESQL://app:{SECRET}@127.0.0.1/test?ledger=ci&store=/tmp/objects",
    f"Postgres://app:{SECRET}@127.0.0.1/test?ledger=ci&store=/tmp/objects",
    f"postgresql+psycopg://app:{SECRET}@127.0.0.1/test?ledger=ci&store=/tmp/objects",
    f"host=127.0.0.1 dbname=test user=app password={SECRET}",
    f"host=127.0.0.1 dbname=test PASSWORD = '{SECRET}'",
]


def _one_error(done: subprocess.CompletedProcess[bytes]) -> dict[str, object]:
    assert done.returncode == 2, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "fedledger.error" and doc["error"]["exit"] == 2, doc
    return doc["error"]  # type: ignore[no-any-return]


def _in(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The command run in *cwd* (init made its "file", and key files named after it, there)."""
    env = {k: v for k, v in os.environ.items() if k != "FEDLEDGER_LEDGER"}
    return subprocess.run([sys.executable, "-m", "collector.cli", "--as-of", AS_OF, *args], capture_output=True,
                          cwd=cwd, env={**env, "PYTHONPATH": str(REPO)}, timeout=600)


@pytest.mark.parametrize("location", LOCATIONS, ids=["capitals", "mixed-case", "driver-scheme", "keyword", "spaced"])
@pytest.mark.parametrize("command", [("status",), ("verify",), ("init", "--origin", "test.agency.gov/ci")])
def test_a_ledger_location_holding_a_password_is_refused_unrepeated(tmp_path: Path, location: str,
                                                                    command: tuple[str, ...]) -> None:
    done = _in(tmp_path, "--format", "json", "--ledger", location, *command)
    error = _one_error(done)
    assert SECRET not in done.stdout.decode() and SECRET not in done.stderr.decode(), done
    assert "postgresql://" in str(error["message"])
    human = _in(tmp_path, "--ledger", location, *command)
    assert human.returncode == 2 and human.stdout == b"" and SECRET not in human.stderr.decode()
    assert list(tmp_path.iterdir()) == []  # no ledger file (or key file) named after it


def test_the_same_location_from_the_environment_or_a_config(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FEDLEDGER_LEDGER"}
    done = subprocess.run([sys.executable, "-m", "collector.cli", "--format", "json", "status"], capture_output=True,
                          cwd=REPO, env={**env, "FEDLEDGER_LEDGER": LOCATIONS[0]}, timeout=600)
    _one_error(done)
    assert SECRET not in done.stdout.decode() + done.stderr.decode()
    config = tmp_path / "fedledger.toml"
    config.write_text(f'[ledger]\npath = "{LOCATIONS[2]}"\norigin = "test.agency.gov/ci"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "collector.cli", "--format", "json", "status", "--config", str(config)],
                          capture_output=True, cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, timeout=600)
    error = _one_error(done)
    assert SECRET not in done.stdout.decode() + done.stderr.decode()
    assert str(error["message"]).startswith(f"{config}:2: ledger.path: "), error


def test_a_file_path_is_still_a_file_path(tmp_path: Path) -> None:
    """Only connection strings are refused: an odd but plain file name still names a SQLite ledger."""
    odd = tmp_path / "ledger host=a.db"
    assert fedledger("init", "--origin", "test.agency.gov/ci", ledger=odd).returncode == 0
    assert fedledger("--format", "json", "status", ledger=odd).returncode == 0


@pytest.mark.parametrize("missing", ["nowhere.json", "."], ids=["missing", "a-folder"])
def test_verify_proof_of_a_file_it_cannot_read_is_exit_3_not_a_bug(tmp_path: Path, missing: str) -> None:
    """A proof file that is missing (or a folder) was an internal error (exit 4, "please report")."""
    path = tmp_path / missing
    for fmt in ("json", "human"):
        done = _in(tmp_path, "--format", fmt, "--ledger", str(tmp_path / "l.db"), "verify-proof", str(path),
                   "--origin", "test.agency.gov/ci")
        assert done.returncode == 3, done.stderr
        assert f"{path}: cannot read the proof file" in done.stderr.decode()
        if fmt == "json":
            error = json.loads(done.stdout)["error"]
            assert error["family"] == "source-unavailable" and error["file"] == str(path), error
