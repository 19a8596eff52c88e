"""Shared test plumbing for the Vault collector tests (real SQLite ledgers in tmp_path)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from collector.ingest import IngestSummary, ingest
from collector.ledger import Ledger
from collector.sources.vault import VaultAuditLog

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "vault"
OBSERVED = "2026-11-25T12:00:00Z"


def new_ledger(tmp_path: Path, name: str = "ledger.db") -> Ledger:
    return Ledger.create(tmp_path / name, "test.example/vault", created=OBSERVED, key_type="ecdsa-p256")


def collect(ledger: Ledger, paths: Iterable[str | Path], *, batch_size: int = 5000, **options: Any
            ) -> tuple[IngestSummary, VaultAuditLog]:
    source = VaultAuditLog([str(p) for p in paths], **options)
    summary = ingest(ledger, source.collect(ledger.cursors()), kind="vault", source_id="vault",
                     observed=OBSERVED, batch_size=batch_size)
    assert summary.balanced
    assert summary.read == source.lines + source.findings
    return summary, source


def events(ledger: Ledger) -> list[dict[str, Any]]:
    return [orjson.loads(body)["event"] for _, _, body in ledger.entries()]


def run_cli(*args: str, ledger: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "collector.cli"]
    if ledger is not None:
        command += ["--ledger", str(ledger)]
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(command + list(args), input=stdin, capture_output=True, cwd=REPO, env=env, timeout=600)
