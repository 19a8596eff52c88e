"""Two writers never fork the chain; SIGKILL at random points loses no acknowledged batch."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from bundler.verify_cmd import verify_target
from collector.ledger import Ledger
from collector.signing import FileSigner
from tests.ledger_fixtures import ORIGIN, fixed_ed25519, sign_checkpoint

REPO = Path(__file__).resolve().parent.parent


def _spawn(db: Path, tag: str, batches: int, size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_appender", str(db), tag, str(batches), str(size)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )


def _new_ledger(tmp_path: Path) -> tuple[Path, FileSigner, Path]:
    db = tmp_path / "crash.db"
    Ledger.create(db, ORIGIN, created="2026-11-20T15:00:00Z", key_type="ed25519").close()
    signer = FileSigner(ORIGIN, fixed_ed25519())
    pub = tmp_path / "k.pub"
    from collector.signing import write_public_key

    write_public_key(pub, fixed_ed25519().public_key())
    return db, signer, pub


def _verify(db: Path, signer: FileSigner, pub: Path) -> None:
    with Ledger.open(db) as ledger:
        assert ledger.integrity_check() == "ok"
        sign_checkpoint(ledger, signer)
    report = verify_target(db, trusted_keys=[pub], origin=ORIGIN, saved=[])
    assert report.ok, [f.line() for f in report.failures]


def test_two_processes_appending_never_fork(tmp_path: Path) -> None:
    db, signer, pub = _new_ledger(tmp_path)
    procs = [_spawn(db, tag, 40, 25) for tag in ("a", "b")]
    outputs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(o.count("ack ") for o in outputs) == 80
    _verify(db, signer, pub)
    with Ledger.open(db) as ledger:
        assert ledger.size == 2000
        resources = {orjson.loads(body)["event"]["resource"] for _, _, body in ledger.entries()}
    assert len(resources) == 2000


def _kill_rounds(tmp_path: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    db, signer, pub = _new_ledger(tmp_path)
    acked: dict[str, int] = {}
    for r in range(rounds):
        tag = f"r{r}"
        proc = _spawn(db, tag, 200, 50)
        time.sleep(rng.uniform(0.05, 0.6))  # a random point in the run, not a time limit
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("ack ")]
        acked[tag] = len(lines)
        with Ledger.open(db) as ledger:
            assert ledger.integrity_check() == "ok"
            committed = ledger.cursor(tag)
            # every acknowledged batch is there (a batch may commit just before its ack is printed)
            assert committed is None and acked[tag] == 0 or int(committed or -1) + 1 >= acked[tag]
            resources = {orjson.loads(body)["event"]["resource"] for _, _, body in ledger.entries()}
        for b in range(acked[tag]):
            assert f"{tag}-{b}-0" in resources and f"{tag}-{b}-49" in resources
        batches: dict[str, int] = {}
        for res in resources:
            key = res.rsplit("-", 1)[0]
            batches[key] = batches.get(key, 0) + 1
        assert set(batches.values()) <= {50}, "a batch was committed in part"
    _verify(db, signer, pub)


def test_sigkill_during_appends_short(tmp_path: Path) -> None:
    _kill_rounds(tmp_path, rounds=20, seed=20261125)


@pytest.mark.slow
def test_sigkill_during_appends_long(tmp_path: Path) -> None:
    _kill_rounds(tmp_path, rounds=200, seed=int(os.environ.get("FEDLEDGER_SEED", "7")))
