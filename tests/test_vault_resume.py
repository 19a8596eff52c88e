"""Vault collector: idempotent re-runs, growth, tampering, killed runs, CLI counts and exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from collector.evidence import SourceItem
from collector.ingest import ingest
from collector.ledger import Ledger
from collector.sources.vault import VaultAuditLog
from tests.vault_support import OBSERVED, REPO, SAMPLES, collect, events, new_ledger, run_cli

STORY = (SAMPLES / "audit.log").read_bytes()


def story_file(tmp_path: Path, repeat: int = 1) -> Path:
    """The story log, *repeat* times with distinct request ids (so every copy is new evidence)."""
    lines = STORY.splitlines(keepends=True)
    out = bytearray()
    for copy in range(repeat):
        for line in lines:
            out += line.replace(b'-5', f"-{copy:01x}5".encode()) if copy else line
    path = tmp_path / "audit.log"
    path.write_bytes(bytes(out))
    return path


def test_rerun_adds_nothing(tmp_path: Path) -> None:
    path = story_file(tmp_path)
    with new_ledger(tmp_path) as ledger:
        first, _ = collect(ledger, [path])
        size = ledger.size
        second, _ = collect(ledger, [path])
        assert (first.appended, second.read, second.appended, ledger.size) == (28, 0, 0, size)
        copy = tmp_path / "copy-of-audit.log"
        copy.write_bytes(path.read_bytes())
        third, _ = collect(ledger, [copy])
        assert (third.read, third.appended, third.duplicates, ledger.size) == (28, 0, 28, size)


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    path = story_file(tmp_path)
    with new_ledger(tmp_path) as ledger:
        summary, source = collect(ledger, [path, tmp_path, str(path)])
    assert (summary.read, summary.duplicates, source.files) == (28, 0, 1)


def test_grown_file_resumes_where_it_stopped(tmp_path: Path) -> None:
    lines = STORY.splitlines(keepends=True)
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(lines[:11]) + lines[11][:40])  # a last line still being written
    with new_ledger(tmp_path) as ledger:
        first, source = collect(ledger, [path])
        assert first.appended == 11 and source.pending == [(str(path), 40)]
        path.write_bytes(b"".join(lines))
        second, source = collect(ledger, [path])
        assert (second.read, second.appended, second.duplicates, source.findings) == (17, 17, 0, 0)
        assert source.pending == []
        assert ledger.size == 28
        assert all(e["attrs"].get("paired", True) for e in events(ledger))


def test_changed_prefix_is_reported_as_tampered_and_not_reread(tmp_path: Path) -> None:
    path = story_file(tmp_path)
    other = tmp_path / "other.log"
    other.write_bytes(b"")
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [path])
        size = ledger.size
        data = path.read_bytes()
        path.write_bytes(data.replace(b'"operation":"read"', b'"operation":"list"', 1))
        other.write_bytes((SAMPLES / "audit.unpaired.log").read_bytes())
        summary, source = collect(ledger, [path, other])
        assert [name for name, _ in source.tampered] == [str(path)]
        assert "changed since they were read" in source.tampered[0][1] and str(path) in source.tampered[0][1]
        assert summary.read == 8 and ledger.size == size + 8  # the other file was still collected
    result = run_cli("collect", "vault", str(path), ledger=tmp_path / "ledger.db")
    assert result.returncode == 1
    assert str(path).encode() in result.stderr and b"TAMPERED" in result.stdout
    as_json = run_cli("--format", "json", "collect", "vault", str(path), ledger=tmp_path / "ledger.db")
    assert as_json.returncode == 1 and str(path).encode() in as_json.stderr
    assert [t["file"] for t in orjson.loads(as_json.stdout)["tampered"]] == [str(path)]
    shrunk = tmp_path / "audit.log"
    shrunk.write_bytes(data[:100])
    assert run_cli("collect", "vault", str(shrunk), ledger=tmp_path / "ledger.db").returncode == 1


class Killed(Exception):
    pass


def killed_after(items: Iterator[SourceItem], count: int) -> Iterator[SourceItem]:
    for n, item in enumerate(items):
        if n == count:
            raise Killed
        yield item


@pytest.mark.parametrize("kill_at", [3, 57, 140, 290])
def test_killed_run_resumes_without_loss_or_duplicates(tmp_path: Path, kill_at: int) -> None:
    """A run that dies mid-way (after some batches committed) and is re-run ends equal to one clean run."""
    path = story_file(tmp_path, repeat=8)
    for name in ("clean.db", "killed.db"):
        (tmp_path / name).unlink(missing_ok=True)
    with new_ledger(tmp_path, "clean.db") as clean:
        collect(clean, [path], batch_size=10, chunk_size=4096)
        expected = events(clean)
    with new_ledger(tmp_path, "killed.db") as ledger:
        source = VaultAuditLog([str(path)], chunk_size=4096)
        with pytest.raises(Killed):
            ingest(ledger, killed_after(source.collect(ledger.cursors()), kill_at), kind="vault",
                   source_id="vault", observed=OBSERVED, batch_size=10)
        partial = ledger.size
        assert partial < len(expected)
        summary, _ = collect(ledger, [path], batch_size=10, chunk_size=4096)
        assert summary.duplicates == 0
        assert events(ledger) == expected
    assert len(expected) == 28 * 8


def test_cli_counts_add_up_and_exit_codes(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    assert run_cli("init", "--origin", "test.example/vault", "--no-key", ledger=ledger).returncode == 0
    result = run_cli("--format", "json", "collect", "vault", str(SAMPLES), ledger=ledger)
    assert result.returncode == 1, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["version"] == 1 and doc["kind"] == "fedledger.collect.vault"
    lines = sum(1 for p in SAMPLES.glob("*.log") for line in p.read_bytes().splitlines() if line.strip())
    assert doc["lines"] == lines
    assert doc["read"] == doc["lines"] + doc["findings"]
    assert doc["read"] == doc["appended"] + doc["duplicates"] + doc["quarantined"]
    assert doc["quarantined"] == sum(doc["reasons"].values()) == len(doc["quarantined_records"]) == 9
    assert result.stderr == b""  # no progress bar and no notes outside a terminal under --format json
    again = run_cli("collect", "vault", str(SAMPLES), ledger=ledger)
    assert again.returncode == 0
    assert again.stdout.startswith(b"vault: 0 read, 0 appended, 0 duplicate, 0 quarantined")
    good = run_cli("collect", "vault", str(SAMPLES / "audit.log"), ledger=tmp_path / "fresh.db")
    assert good.returncode == 3  # no ledger there
    assert run_cli("init", "--origin", "test.example/v2", "--no-key", ledger=tmp_path / "fresh.db").returncode == 0
    good = run_cli("collect", "vault", str(SAMPLES / "audit.log"), ledger=tmp_path / "fresh.db")
    assert good.returncode == 0 and good.stdout.startswith(b"vault: 28 read, 28 appended"), good.stderr
    assert run_cli("collect", "vault", str(tmp_path / "missing.log"), ledger=ledger).returncode == 2
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    assert run_cli("collect", "vault", str(empty), ledger=ledger).returncode == 2
    piped = run_cli("collect", "vault", "-", ledger=tmp_path / "fresh.db", stdin=STORY)
    assert piped.returncode == 0 and piped.stdout.startswith(b"vault: 28 read, 0 appended, 28 duplicate")


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    """Kill -9 a real collection process mid-way, re-run, and compare with a clean ledger."""
    path = story_file(tmp_path, repeat=400)
    for name in ("clean.db", "killed.db"):
        assert run_cli("init", "--origin", "test.example/vault", "--no-key", ledger=tmp_path / name).returncode == 0
    assert run_cli("collect", "vault", "--batch-size", "50", str(path), ledger=tmp_path / "clean.db").returncode == 0
    command = [sys.executable, "-m", "collector.cli", "--ledger", str(tmp_path / "killed.db"), "collect", "vault",
               "--batch-size", "50", str(path)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with Ledger.open(tmp_path / "killed.db") as ledger:
        while ledger.size < 500 and process.poll() is None:
            time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert run_cli("collect", "vault", "--batch-size", "50", str(path), ledger=tmp_path / "killed.db").returncode == 0
    with Ledger.open(tmp_path / "clean.db") as clean, Ledger.open(tmp_path / "killed.db") as killed:
        assert events(killed) == events(clean)
