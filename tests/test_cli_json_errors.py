"""Under `--format json`, a failed command still gives its reader one JSON object on stdout.

A scheduled job parses stdout; when the run failed it used to get nothing there (the one-line
error went to stderr only). Every error the CLI maps to an exit code (fedledger's error
families, an interrupt, a bug, click's own usage errors) now also writes one versioned
``fedledger.error`` object: ``{"exit", "family", "message"}`` plus ``file``/``line`` when the
error names them. The human line stays on stderr. A command that already wrote its JSON result
and then exits non-zero writes no second document. Run through the real command (subprocess).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from collector import cli_common
from collector.cli_common import OPTIONS, emit_json
from collector.errors import IntegrityError, SourceUnavailable
from tests.fedledger_process import REPO, fedledger, new_ledger

FAMILIES = {"integrity-error", "malformed-input", "usage-error", "source-unavailable", "internal-error", "interrupted",
            "terminated"}


def _error_doc(done: subprocess.CompletedProcess[bytes], code: int) -> dict[str, Any]:
    """The one JSON document on stdout, checked against the exit code and the stderr line."""
    assert done.returncode == code, done.stderr
    doc = json.loads(done.stdout)  # exactly one JSON value, or this raises
    assert isinstance(doc, dict) and doc["version"] == 1 and doc["kind"] == "fedledger.error", doc
    error = doc["error"]
    assert error["exit"] == code and error["family"] in FAMILIES, doc
    assert "\n" not in error["message"] and error["message"], doc
    assert set(error) <= {"exit", "family", "message", "file", "line", "problems"}, doc
    assert done.stderr.strip(), "the human message stays on stderr"
    return error


def test_a_missing_ledger_is_exit_3_with_the_error_object(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    done = fedledger("--format", "json", "verify", ledger=missing)
    error = _error_doc(done, 3)
    assert error["family"] == "source-unavailable"
    assert error["file"] == str(missing) and "line" not in error
    assert error["message"] == f"{missing}: no ledger here (run `fedledger init` first)"
    assert done.stderr.decode().strip() == f"error: {error['message']}"


def test_human_format_keeps_stdout_empty_on_error(tmp_path: Path) -> None:
    done = fedledger("verify", ledger=tmp_path / "nowhere.db")
    assert done.returncode == 3 and done.stdout == b""
    assert b"no ledger here" in done.stderr


@pytest.mark.parametrize(("args", "family"), [
    (("--format", "json", "verify", "--bogus"), "usage-error"),  # the command's own options: parsed by click
    (("--format", "json", "--bogus", "verify"), "usage-error"),  # the global options
    (("--format=json", "no-such-command"), "usage-error"),
    (("--format", "json", "collect"), "usage-error"),  # a group without its command: click prints its help
    (("--format", "json", "collect", "ci", "--leeway", "soon"), "usage-error"),  # a value click cannot convert
    (("--format", "json", "verify-bundle"), "usage-error"),  # a missing argument
    (("status", "--format", "json", "--bogus"), "usage-error"),  # a command's own --format json
    (("verify", "--format", "json"), "usage-error"),  # a global option after the command: our hint, still JSON
    (("--format", "json", "--as-of", "yesterday", "verify"), "malformed-input"),  # our own check of a global option
], ids=["command-option", "global-option", "command", "group", "bad-value", "missing-argument", "local-format",
        "misplaced", "as-of"])
def test_usage_errors_are_exit_2_with_the_error_object(tmp_path: Path, args: tuple[str, ...], family: str) -> None:
    done = fedledger(*args, ledger=tmp_path / "l.db", as_of=None)
    error = _error_doc(done, 2)
    assert error["family"] == family
    assert not (tmp_path / "l.db").exists()


def test_a_usage_error_without_json_writes_nothing_on_stdout(tmp_path: Path) -> None:
    done = fedledger("verify", "--bogus", ledger=tmp_path / "l.db")
    assert done.returncode == 2 and done.stdout == b"" and b"--bogus" in done.stderr


def test_a_bad_secret_file_names_file_and_line_never_the_secret(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    secret = tmp_path / "webhook-secret.txt"
    secret.write_text("a-long-enough-webhook-secret-0123456789\nq7Z\n")  # line 2 is too short
    events = tmp_path / "events"
    events.mkdir()
    (events / "job.jsonl").write_text("{}\n")
    done = fedledger("--format", "json", "collect", "ci", str(events), "--webhook-secret-file", str(secret),
                     ledger=ledger)
    error = _error_doc(done, 2)
    assert error["family"] == "malformed-input"
    assert (error["file"], error["line"]) == (str(secret), 2)
    for value in (b"q7Z", b"a-long-enough-webhook-secret"):
        assert value not in done.stdout and value not in done.stderr


def test_an_invalid_config_lists_every_problem_in_the_object(tmp_path: Path) -> None:
    config = tmp_path / "fedledger.toml"
    config.write_text('[ledger]\npath = "l.db"\n\n[[sources]]\nname = "ci"\nkind = "nope"\nbogus = 1\n')
    done = fedledger("run", "--config", str(config), "--format", "json", ledger=tmp_path / "l.db")
    error = _error_doc(done, 2)
    assert error["family"] == "malformed-input" and len(error["problems"]) >= 2
    assert all(p.startswith(f"{config}:") for p in error["problems"])
    assert error["message"].startswith(error["problems"][0])


def test_verify_bundle_local_format_json_reports_a_missing_bundle(tmp_path: Path) -> None:
    done = fedledger("verify-bundle", str(tmp_path / "absent.zip"), "--unpinned", "--format", "json",
                     ledger=tmp_path / "l.db")
    error = _error_doc(done, 3)
    assert error["file"] == str(tmp_path / "absent.zip")


BROKEN_CHECKPOINT = """
import sys
import collector.ledger

def broken(*args, **kwargs):
    raise RuntimeError("secret-looking detail hvs.SHOULDNOTPRINT")

collector.ledger.Ledger.add_checkpoint = broken
from collector.cli import main
main()
"""


def test_a_bug_is_exit_4_with_the_error_object_and_no_detail(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path)
    done = subprocess.run([sys.executable, "-c", BROKEN_CHECKPOINT, "--ledger", str(ledger), "--format", "json",
                           "checkpoint"], capture_output=True, cwd=REPO, timeout=120)
    error = _error_doc(done, 4)
    assert error["family"] == "internal-error" and "RuntimeError" in error["message"]
    assert b"SHOULDNOTPRINT" not in done.stdout + done.stderr


def test_a_result_then_exit_1_is_one_document(tmp_path: Path) -> None:
    import sqlite3

    ledger = new_ledger(tmp_path)
    (tmp_path / "e.jsonl").write_text('{"time":"2026-11-20T14:00:00Z","kind":"manual.review","actor":"alice"}\n')
    assert fedledger("append", str(tmp_path / "e.jsonl"), ledger=ledger).returncode == 0
    with sqlite3.connect(ledger) as conn:
        conn.execute("UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'alice', 'mallo') AS BLOB)")
    conn.close()
    done = fedledger("--format", "json", "verify", ledger=ledger)
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    assert doc["kind"] == "fedledger.verify" and not doc["ok"]


# -- the wrapper's contract, on functions that fail the ways no command does on purpose --------


@pytest.fixture()
def json_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OPTIONS, "format", "json")
    monkeypatch.setattr(OPTIONS, "result_written", False)


def _exit_of(func: Any) -> int:
    with pytest.raises(typer.Exit) as caught:
        cli_common.run(func)()
    return caught.value.exit_code


def test_an_error_after_the_result_writes_no_second_document(json_output: None, capsys: pytest.CaptureFixture[str]) -> None:
    def emits_then_fails() -> None:
        emit_json("fedledger.verify", {"ok": False})
        raise IntegrityError("the evidence fails")

    assert _exit_of(emits_then_fails) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["kind"] == "fedledger.verify"
    assert captured.err == "error: the evidence fails\n"


def test_an_interrupt_is_exit_130_with_the_error_object(json_output: None, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    assert _exit_of(interrupted) == 130
    error = json.loads(capsys.readouterr().out)["error"]
    assert error == {"exit": 130, "family": "interrupted", "message": "interrupted"}


def test_every_family_has_its_stable_name(json_output: None, capsys: pytest.CaptureFixture[str]) -> None:
    from collector.errors import EXIT_CODES

    seen = {}
    for family, code in EXIT_CODES.items():
        def fails(family: type = family) -> None:
            raise family("why", location="where.txt:7")

        OPTIONS.result_written = False
        assert _exit_of(fails) == code
        error = json.loads(capsys.readouterr().out)["error"]
        assert (error["exit"], error["file"], error["line"], error["message"]) == (code, "where.txt", 7, "where.txt:7: why")
        seen[family.__name__] = error["family"]
    assert seen == {"IntegrityError": "integrity-error", "MalformedInput": "malformed-input", "UsageError": "usage-error",
                    "SourceUnavailable": "source-unavailable", "InternalError": "internal-error"}


def test_a_url_location_is_not_split_into_a_line(json_output: None, capsys: pytest.CaptureFixture[str]) -> None:
    def unreachable() -> None:
        raise SourceUnavailable("cannot connect", location="postgresql://db.example:5432")

    assert _exit_of(unreachable) == 3
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["file"] == "postgresql://db.example:5432" and "line" not in error


def test_a_run_stopped_by_sigterm_is_exit_143_with_the_error_object(tmp_path: Path) -> None:
    """systemd (a stop, TimeoutStartSec) and Kubernetes (activeDeadlineSeconds, eviction) stop a
    scheduled run with SIGTERM. It ended the process with no document on stdout and no line on
    stderr; like Ctrl-C it now ends with one `fedledger.error` (family `terminated`, exit 143,
    128 + 15 as a shell reports it) and the lock is released. Here the run is waiting for the ledger
    lock another process holds, a point every run passes."""
    import fcntl
    import os
    import signal

    from collector.runlock import lock_path_for
    from tests.ops_workspace import make_workspace, manual_source, write_events

    write_events(tmp_path / "a.jsonl", 3)
    ws = make_workspace(tmp_path / "ws", manual_source("reviews", str(tmp_path / "a.jsonl")))
    with open(lock_path_for(ws.ledger), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = ws.popen("run", "--config", str(ws.config), "--format", "json", "--wait", "60")
        assert proc.stderr is not None
        for line in proc.stderr:
            if '"lock.waiting"' in line:
                break
        else:
            raise AssertionError("the run never waited for the lock")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    doc = json.loads(out)
    assert doc["kind"] == "fedledger.error"
    assert doc["error"] == {"exit": 143, "family": "terminated", "message": "terminated (SIGTERM)"}
    assert err.splitlines()[-1] == "terminated (SIGTERM)", err
    assert ws.size() == 0  # nothing was collected: it never got the lock
    again = ws.cli("run", "--config", str(ws.config))
    assert again.exit_code == 0 and ws.size() == 3, again.output
    assert os.path.exists(ws.ledger)
