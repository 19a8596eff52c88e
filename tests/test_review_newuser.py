"""A first-time user's rough edges, each held by a test: what they typed, the one line they
should get back (what is wrong, where, what to do), the exit code, and no traceback."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
from typer.testing import CliRunner

from collector.cli import app
from collector.runlock import LedgerLocked

REPO = Path(__file__).resolve().parent.parent
SAMPLE_AUDIT_LOG = REPO / "samples" / "vault" / "audit.log"


def test_collect_vault_on_a_folder_of_gzip_files_says_how_to_read_them(tmp_path: Path) -> None:
    runner = CliRunner()
    ledger = str(tmp_path / "l.db")
    assert runner.invoke(app, ["--ledger", ledger, "init", "--origin", "example.gov/newuser"]).exit_code == 0
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "audit.log.1.gz").write_bytes(gzip.compress(SAMPLE_AUDIT_LOG.read_bytes()))
    result = runner.invoke(app, ["--ledger", ledger, "collect", "vault", str(folder)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: no Vault audit log files found in {folder} (looked for *.log, *.json, *.jsonl; skipped 1 other "
        f"file(s), e.g. {folder / 'audit.log.1.gz'}): name a file itself to read it, e.g. a compressed rotation "
        "`fedledger collect vault audit.log.1.gz`"]
    result = runner.invoke(app, ["--ledger", ledger, "collect", "vault", str(folder / "audit.log.1.gz")])
    assert result.exit_code == 0 and "28 read, 28 appended" in result.stdout, result.output


def test_a_second_run_is_told_what_to_do() -> None:
    assert str(LedgerLocked(None, 0)).endswith("; let it finish, or give --wait SECONDS")
    assert str(LedgerLocked(None, 30)).endswith(" after waiting 30s; try again when it ends")


def test_a_pdf_worker_leaves_ctrl_c_to_the_bundle(tmp_path: Path) -> None:
    """Ctrl-C on a terminal reaches the whole process group: the PDF workers printed a
    KeyboardInterrupt traceback each under the bundle's one `interrupted` line. A worker now
    ignores SIGINT and still answers; the parent stops it."""
    html = tmp_path / "page.html"
    html.write_text("<!DOCTYPE html><html><body><p>page</p></body></html>", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    worker = subprocess.Popen([sys.executable, "-m", "bundler.pdf"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
    assert worker.stdin is not None and worker.stdout is not None
    job = {"html": str(html), "pdf": str(tmp_path / "page.pdf"), "source_date_epoch": None}
    worker.stdin.write(orjson.dumps(job) + b"\n")
    worker.stdin.flush()
    first = orjson.loads(worker.stdout.readline())  # the worker is up and has set its handlers
    time.sleep(0.1)
    worker.send_signal(signal.SIGINT)
    worker.stdin.write(orjson.dumps({**job, "pdf": str(tmp_path / "after.pdf")}) + b"\n")
    worker.stdin.flush()
    second = orjson.loads(worker.stdout.readline())
    worker.stdin.close()
    assert worker.wait(timeout=60) == 0
    assert first["ok"] and second["ok"] and (tmp_path / "after.pdf").stat().st_size > 0
    assert worker.stderr is not None and b"KeyboardInterrupt" not in worker.stderr.read()


def test_pdf_workers_are_stopped_at_once_when_the_bundle_is_interrupted() -> None:
    from bundler.pdf import PdfWorkers

    workers = PdfWorkers(2).start()
    procs = list(workers._procs)
    began = time.monotonic()
    workers.close(abort=True)
    assert all(proc.poll() is not None for proc in procs) and time.monotonic() - began < 10


def _no_aws_region(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "aws-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_kms_and_list_public_keys_without_a_region_are_usage_errors_not_bugs(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Both were `internal error: NoRegionError (please report ...)`, exit 4."""
    _no_aws_region(monkeypatch, tmp_path)
    runner = CliRunner()
    ledger = str(tmp_path / "l.db")
    assert runner.invoke(app, ["--ledger", ledger, "init", "--origin", "example.gov/newuser", "--no-key"]).exit_code == 0
    result = runner.invoke(app, ["--ledger", ledger, "checkpoint", "--kms-key-id", "alias/fedledger"])
    assert result.exit_code == 2 and result.stderr.startswith("error: AWS KMS needs a region: give --region"), result.output
    result = runner.invoke(app, ["cloudtrail", "validate", str(REPO / "samples" / "cloudtrail" / "valid"),
                                 "--start", "2026-11-01T00:00:00Z", "--end", "2026-11-30T00:00:00Z"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: CloudTrail ListPublicKeys needs an AWS region: give --region")
    assert "--public-keys FILE" in result.stderr and len(result.stderr.splitlines()) == 1


def test_bundle_usage_errors_come_before_it_signs_anything(tmp_path: Path) -> None:
    """A wrong --from or a non-empty --out used to be found after the bundle had signed a fresh
    checkpoint into the ledger (and evaluated it)."""
    runner = CliRunner()
    ledger = str(tmp_path / "l.db")
    assert runner.invoke(app, ["--ledger", ledger, "init", "--origin", "example.gov/newuser"]).exit_code == 0
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for args in (["--from", "2026-11-01"], ["--to", "tomorrow"], ["--out", str(tmp_path / "full")]):
        result = runner.invoke(app, ["--ledger", ledger, "bundle", "--out", str(tmp_path / "b"), *args])
        assert result.exit_code == 2 and result.stdout == "", result.output
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, result.stderr
    from collector.ledger_open import open_ledger

    with open_ledger(Path(ledger)) as opened:
        assert opened.latest_checkpoint() is None


def test_config_check_shows_the_organization_and_the_assessor_it_will_name(tmp_path: Path) -> None:
    """A compliance officer who sets [bundle] organization / assessor checks the config before
    bundling: the human report said only `bundle after run: no` (the names were in its JSON alone),
    so which names the index and the OSCAL parties would carry (one still commented out in the
    sample config, a typo) was seen only in the finished bundle."""
    config = tmp_path / "fedledger.toml"
    base = '[ledger]\npath = "l.db"\norigin = "example.gov/newuser"\n\n[bundle]\n'
    runner = CliRunner()
    config.write_text(base + 'organization = "Example Cloud Services, Inc."\nassessor = "Example 3PAO LLC"\n')
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert ("bundle names: organization 'Example Cloud Services, Inc.' (OSCAL prepared-for), "
            "assessor 'Example 3PAO LLC' (OSCAL assessor)") in result.stdout.splitlines(), result.stdout
    config.write_text(base + 'assessor = "Example 3PAO LLC"\n')
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert ("bundle names: organization not named, assessor 'Example 3PAO LLC' (OSCAL assessor)"
            in result.stdout.splitlines()), result.stdout
    config.write_text(base)
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert "bundle names: none (set [bundle] organization and assessor to name them)" in result.stdout.splitlines()


def test_bundle_says_which_organization_and_assessor_it_named(tmp_path: Path) -> None:
    """`fedledger bundle --organization/--assessor` printed nothing about them (human or JSON): the
    officer learnt which names the OSCAL parties carry only from the PDF. Both outputs now say, with
    the names as written into the bundle (edge spaces trimmed), and `run --bundle`'s summary too."""
    import json

    from tests.ops_workspace import AS_OF, make_workspace, manual_source, write_events

    write_events(tmp_path / "a.jsonl", 3)
    ws = make_workspace(tmp_path / "ws", manual_source("reviews", str(tmp_path / "a.jsonl")),
                        extra_toml='[bundle]\ncontrols = ["AU-2"]\nassessor = "Example 3PAO LLC"\n')
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    human = ws.cli("bundle", "--config", str(ws.config), "--as-of", AS_OF, "--out", str(tmp_path / "b1"),
                   "--organization", "  Example Cloud Services, Inc. ")
    assert human.exit_code == 0, human.output
    assert ("bundle names: organization 'Example Cloud Services, Inc.' (OSCAL prepared-for), "
            "assessor 'Example 3PAO LLC' (OSCAL assessor)") in human.stdout.splitlines(), human.stdout
    made = ws.cli("--format", "json", "bundle", "--config", str(ws.config), "--as-of", AS_OF,
                  "--out", str(tmp_path / "b2"))
    doc = json.loads(made.stdout)
    assert (doc["organization"], doc["assessor"]) == (None, "Example 3PAO LLC"), doc
