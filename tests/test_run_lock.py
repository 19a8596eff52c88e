"""One run at a time per ledger; killed runs release the lock; a SIGKILLed run resumes to the same ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from collector.runlock import LedgerLocked, LockHolder, RunLock, lock_path_for
from tests.ops_workspace import AS_OF, REPO, Workspace, ledger_contents, make_workspace, manual_source, write_events

HOLD_LOCK = """
import sys, time
from pathlib import Path
from collector.runlock import RunLock
lock = RunLock(Path(sys.argv[1]), "holder-run", started="2026-01-20T02:00:00Z").acquire()
print("locked", flush=True)
time.sleep(600)
"""


def hold_lock_in_subprocess(ledger: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(ledger)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_lock_is_refused_with_holder_pid_and_time(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    first = RunLock(ledger, "run-1", started="2026-01-20T02:00:00Z").acquire()
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with pytest.raises(LedgerLocked) as info:
        RunLock(ledger, "run-2", started="x").acquire(3, poll_seconds=1, clock=lambda: now[0], sleep=sleep)
    message = str(info.value)
    assert message.startswith(f"another run holds the ledger lock (pid {os.getpid()}, since 2026-01-20T02:00:00Z")
    assert "run run-1" in message and info.value.exit_code == 3
    assert slept == [1, 1, 1]
    first.release()
    second = RunLock(ledger, "run-2", started="t").acquire()
    assert second.took_over is None  # a clean release leaves no record behind
    second.release()
    assert lock_path_for(ledger).read_bytes() == b""


def test_lock_is_never_deleted_and_records_holder(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    with RunLock(ledger, "run-9", started="2026-01-20T03:00:00Z") as lock:
        record = json.loads(lock.path.read_text())
        assert record["pid"] == os.getpid() and record["run_id"] == "run-9" and record["hostname"]
    assert lock_path_for(ledger).exists()


def test_unreadable_record_still_gives_a_message() -> None:
    assert LockHolder.parse(b"garbage").describe().startswith("pid unknown")
    assert LockHolder.parse(b"") is None


def test_stale_lock_of_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    holder = hold_lock_in_subprocess(ledger)
    with pytest.raises(LedgerLocked, match=f"pid {holder.pid}"):
        RunLock(ledger, "mine", started="t").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = RunLock(ledger, "mine", started="t").acquire()
    assert lock.took_over is not None and lock.took_over.pid == holder.pid and lock.took_over.run_id == "holder-run"
    lock.release()


def test_run_refused_while_another_holds_the_ledger_names_the_pid(tmp_path: Path) -> None:
    write_events(tmp_path / "a.jsonl", 10)
    ws = make_workspace(tmp_path, manual_source("reviews", "a.jsonl"))
    lock = RunLock(ws.ledger, "other-run", started="2026-01-20T02:00:00Z").acquire()
    log = tmp_path / "run.log"
    try:
        result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--log-file", str(log))
    finally:
        lock.release()
    refused = json.loads(log.read_text())
    assert refused["event"] == "lock.refused" and refused["holder_pid"] == os.getpid()
    assert result.exit_code == 3
    assert (f"error: another run holds the ledger lock (pid {os.getpid()}, since 2026-01-20T02:00:00Z, run other-run)"
            in result.stderr)
    assert ws.size() == 0


def test_run_waits_for_the_lock_when_asked(tmp_path: Path) -> None:
    write_events(tmp_path / "a.jsonl", 10)
    ws = make_workspace(tmp_path, manual_source("reviews", "a.jsonl"))
    lock = RunLock(ws.ledger, "other-run", started="t").acquire()
    proc = ws.popen("run", "--config", str(ws.config), "--as-of", AS_OF, "--wait", "120")
    threading.Timer(0.5, lock.release).start()
    _out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert ws.size() == 10


def test_a_waiting_run_says_whom_it_waits_for(tmp_path: Path) -> None:
    # Before, a run given --wait was silent until it got the lock (up to --wait seconds).
    write_events(tmp_path / "a.jsonl", 3)
    ws = make_workspace(tmp_path, manual_source("reviews", "a.jsonl"))
    lock = RunLock(ws.ledger, "other-run", started="2026-01-20T02:00:00Z").acquire()
    proc = ws.popen("run", "--config", str(ws.config), "--as-of", AS_OF, "--wait", "120")
    threading.Timer(1.0, lock.release).start()
    _out, err = proc.communicate()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines()]
    assert [e["event"] for e in events][:2] == ["lock.waiting", "run.start"]
    assert events[0]["wait_s"] == 120 and "run other-run" in events[0]["holder"]
    assert f"pid {os.getpid()}" in events[0]["holder"]


def test_run_after_a_killed_run_takes_over_its_lock(tmp_path: Path) -> None:
    write_events(tmp_path / "a.jsonl", 10)
    ws = make_workspace(tmp_path, manual_source("reviews", "a.jsonl"))
    holder = hold_lock_in_subprocess(ws.ledger)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    log = tmp_path / "run.log"
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--log-file", str(log))
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    taken = [e for e in events if e["event"] == "lock.taken_over"]
    assert taken and f"pid {holder.pid}" in taken[0]["previous"]


def _kill_midway(ws: Workspace, total: int, kills: int) -> list[int]:
    """Start runs and SIGKILL each once some (not all) of its batches committed; return sizes at kill."""
    sizes = []
    for _ in range(kills):
        before = ws.size()
        proc = ws.popen("run", "--config", str(ws.config), "--as-of", AS_OF)
        while proc.poll() is None and ws.size() <= before:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        sizes.append(ws.size())
    return sizes


def _sigkill_and_rerun(tmp_path: Path, total: int, kills: int) -> None:
    events = write_events(tmp_path / "events" / "big.jsonl", total, pad=200)
    reference = make_workspace(tmp_path / "reference", manual_source("reviews", str(events)))
    assert reference.cli("run", "--config", str(reference.config), "--as-of", AS_OF).exit_code == 0
    expected = ledger_contents(reference.ledger)
    assert len(expected[0]) == total

    ws = make_workspace(tmp_path / "killed", manual_source("reviews", str(events)))
    sizes = _kill_midway(ws, total, kills)
    assert 0 < sizes[0] < total, f"the first run was not killed midway: {sizes}"
    proc = ws.popen("run", "--config", str(ws.config), "--as-of", AS_OF)
    _out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "lock.taken_over" in err
    assert ledger_contents(ws.ledger) == expected
    verify = ws.cli("--ledger", str(ws.ledger), "verify", "--origin", "example.gov/ops-test",
                    "--trusted-key", str(ws.ledger.with_suffix(".pub")))
    assert verify.exit_code == 0, verify.stdout


def test_sigkill_midway_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    _sigkill_and_rerun(tmp_path, total=20_000, kills=1)


@pytest.mark.slow
def test_sigkill_repeatedly_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    _sigkill_and_rerun(tmp_path, total=300_000, kills=5)


def test_two_runs_at_once_never_both_write(tmp_path: Path) -> None:
    total = 15_000
    events = write_events(tmp_path / "events" / "big.jsonl", total)
    ws = make_workspace(tmp_path / "race", manual_source("reviews", str(events)))
    procs = [ws.popen("run", "--config", str(ws.config), "--as-of", AS_OF) for _ in range(2)]
    results = [(p.pid, *p.communicate(), p.returncode) for p in procs]
    codes = sorted(code for *_, code in results)
    assert codes in ([0, 3], [0, 0]), results
    if codes == [0, 3]:
        winner = next(pid for pid, _o, _e, code in results if code == 0)
        loser_err = next(err for _pid, _o, err, code in results if code == 3)
        assert f"another run holds the ledger lock (pid {winner}" in loser_err
    else:  # one started only after the other had finished: it must have appended nothing
        assert sum('"appended":0' in err.replace(" ", "") for _pid, _o, err, _c in results) >= 1
    assert ws.size() == total
    verify = ws.cli("--ledger", str(ws.ledger), "verify", "--origin", "example.gov/ops-test",
                    "--trusted-key", str(ws.ledger.with_suffix(".pub")))
    assert verify.exit_code == 0, verify.stdout
