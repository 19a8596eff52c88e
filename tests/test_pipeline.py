"""Staging in a worker process (collector.pipeline): same ledger, counts and source state as in one process."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import orjson
import pytest

from collector.commands.vault_cmds import run_collection
from collector.errors import InternalError, SourceUnavailable, UsageError
from collector.evidence import CursorMark, Source, SourceItem, SourceRecord
from collector.ledger import Ledger
from collector.ingest import ingest_staged
from collector.pipeline import WORKER_MIN_BYTES, staged_in_worker, worth_a_worker
from collector.sources.vault import VaultAuditLog
from tests.vault_support import OBSERVED, SAMPLES, new_ledger, run_cli

STORY = (SAMPLES / "audit.log").read_bytes()


def story(path: Path, copies: int, *, unpaired: bool = True) -> Path:
    """*copies* of the story log with distinct request ids, then (optionally) the unpaired sample."""
    out = bytearray()
    for copy in range(copies):
        out += STORY.replace(b'-5', f"-{copy:03x}5".encode()) if copy else STORY
    if unpaired:
        out += (SAMPLES / "audit.unpaired.log").read_bytes()
    path.write_bytes(bytes(out))
    return path


def collect(ledger: Ledger, path: Path, workers: int, **options: object) -> tuple[dict[str, object], VaultAuditLog]:
    source = VaultAuditLog([str(path)], **options)  # type: ignore[arg-type]
    summary = run_collection(ledger, source, observed=OBSERVED, batch_size=97, workers=workers)
    assert summary.balanced and summary.read == source.lines + source.findings
    return summary.to_json(), source


def untimed(cursors: dict[str, str]) -> dict[str, object]:
    """Cursors without their read_at (the time of the read: two runs differ in it)."""
    return {k: {f: v for f, v in orjson.loads(text).items() if f != "read_at"} for k, text in cursors.items()}


def test_worker_gives_the_same_ledger_counts_and_source_state(tmp_path: Path) -> None:
    path = story(tmp_path / "audit.log", 30)
    with new_ledger(tmp_path, "one.db") as one, new_ledger(tmp_path, "two.db") as two:
        here, source_here = collect(one, path, 0, final=True)
        there, source_there = collect(two, path, 1, final=True)
        assert here == there and here["appended"] > 800
        assert list(one.entries()) == list(two.entries())
        assert one.root() == two.root() and untimed(one.cursors()) == untimed(two.cursors())
        assert [r[:5] for r in one.quarantined()] == [r[:5] for r in two.quarantined()]
        for name in ("lines", "findings", "files", "notes", "tampered", "pending", "skipped"):
            assert getattr(source_here, name) == getattr(source_there, name), name
        assert source_there.findings > 0  # unpaired requests crossed back as findings
        for seq in (0, one.size // 2, one.size - 1):
            assert one.entry(seq) == two.entry(seq)
            assert one.raw_bytes(seq) == two.raw_bytes(seq)  # the worker names its segments after writing them


def test_worker_resumes_dedups_and_reports_tampering(tmp_path: Path) -> None:
    path = story(tmp_path / "audit.log", 4, unpaired=False)
    with new_ledger(tmp_path) as ledger:
        first, _ = collect(ledger, path, 1)
        again, _ = collect(ledger, path, 1)
        assert (first["appended"], again["read"], again["appended"]) == (112, 0, 0)
        copy = tmp_path / "copy.log"
        copy.write_bytes(path.read_bytes())
        dup, _ = collect(ledger, copy, 1)
        assert (dup["read"], dup["duplicates"], dup["appended"]) == (112, 112, 0)
        with open(path, "ab") as handle:  # the file grows
            handle.write(STORY.replace(b'-5', b"-fff5"))
        grown, _ = collect(ledger, path, 1)
        assert (grown["read"], grown["appended"]) == (28, 28)
        path.write_bytes(path.read_bytes().replace(b'"operation":"read"', b'"operation":"list"', 1))
        tampered, source = collect(ledger, path, 1)
        assert tampered["read"] == 0 and [name for name, _ in source.tampered] == [str(path)]
        assert ledger.size == 140


class FailingSource(Source):
    """Yields a committed batch, then fails the way a source fails (or dies)."""

    kind = "test"

    def __init__(self, how: str) -> None:
        self.how = how
        self.yielded = 0

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        for index in range(3):
            self.yielded += 1
            yield SourceRecord("mem", index, b"record %d\n" % index, {"kind": "test.event", "n": index})
        yield CursorMark("test", "3")
        if self.how == "error":
            raise UsageError("the source gave up", location="somewhere.log")
        if self.how == "exit":
            os._exit(7)
        if self.how == "bug":
            raise KeyError("a secret value that must not cross")


@pytest.mark.parametrize("how", ["error", "exit", "bug", "none"])
def test_worker_failures_reach_the_ledger_process(tmp_path: Path, how: str) -> None:
    with new_ledger(tmp_path) as ledger:
        source = FailingSource(how)
        run = lambda: ingest_staged(  # noqa: E731
            ledger, staged_in_worker(source, {}, store_root=ledger.store.root, kind="test", source_id="test",
                                     observed=OBSERVED, batch_size=2), source_id="test", observed=OBSERVED, batch_size=2)
        if how == "none":
            summary = run()
            assert (summary.appended, source.yielded) == (3, 3)  # the worker's state came back
        elif how == "error":
            with pytest.raises(UsageError, match="^somewhere.log: the source gave up$") as caught:
                run()
            assert caught.value.location == "somewhere.log"
        elif how == "exit":
            with pytest.raises(InternalError, match="exit code 7"):
                run()
            # a worker that dies loses the batch whose segment it was still writing: nothing
            # of it landed, the cursor did not move, so the next run reads it again
            assert ledger.size == 0 and ledger.cursors() == {}
            return
        else:
            with pytest.raises(InternalError, match="unexpected KeyError") as caught:
                run()
            assert "secret" not in str(caught.value)
        assert ledger.size == 3 and ledger.cursors() == {"test": "3"}  # the batch before the failure landed
        assert ledger.raw_bytes(0) == b"record 0\n"


def test_worker_is_chosen_by_size_and_cpus(tmp_path: Path) -> None:
    small = tmp_path / "small.log"
    small.write_bytes(b"x" * 10)
    big = tmp_path / "big.log"
    with open(big, "wb") as handle:
        handle.truncate(WORKER_MIN_BYTES)
    assert not worth_a_worker([str(small)], workers=None)
    assert worth_a_worker([str(big)], workers=None) == ((os.cpu_count() or 1) >= 2)
    assert worth_a_worker([str(tmp_path)], workers=None) == ((os.cpu_count() or 1) >= 2)
    assert not worth_a_worker([str(big), "-"], workers=None)  # stdin is read here
    assert worth_a_worker([str(small)], workers=1) and not worth_a_worker([str(big)], workers=0)


def test_cli_collect_vault_with_a_worker(tmp_path: Path) -> None:
    path = story(tmp_path / "audit.log", 3)
    docs = []
    for workers in ("0", "1"):
        ledger = tmp_path / f"ledger-{workers}.db"
        assert run_cli("init", "--origin", "test.example/vault", ledger=ledger).returncode == 0
        result = run_cli("--format", "json", "collect", "vault", "--workers", workers, str(path), ledger=ledger)
        assert result.returncode == 0, result.stderr
        doc = orjson.loads(result.stdout)
        docs.append({k: v for k, v in doc.items() if k not in ("elapsed",)})
    assert docs[0] == docs[1] and docs[0]["appended"] > 80


def test_cloudtrail_picks_workers_by_size() -> None:
    from collector.pipeline import auto_workers

    assert auto_workers(0) == 0 and auto_workers(WORKER_MIN_BYTES - 1) == 0
    assert auto_workers(WORKER_MIN_BYTES) == (2 if (os.cpu_count() or 1) >= 2 else 0)


def _stage_workers() -> set[int]:
    """PIDs of live staging worker processes (they name themselves fedledger-stage)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                named = (proc / "comm").read_text().strip() == "fedledger-stage"
                if named and (proc / "stat").read_text().split()[2] != "Z":  # zombies are gone already
                    found.add(int(proc.name))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("kill_at_size", [1, 2000])
def test_cli_killed_with_a_worker_resumes_without_loss_or_duplicates(tmp_path: Path, kill_at_size: int) -> None:
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from tests.vault_support import REPO

    # 16,800 lines: batches end at the 1 MiB read chunks (~650 lines), and the worker is at most a
    # few batches ahead, so it is still staging when the first batches land
    path = story(tmp_path / "audit.log", 600, unpaired=False)
    with new_ledger(tmp_path, "clean.db") as clean:
        collect(clean, path, 0)
        expected = list(clean.entries())
    ledger = tmp_path / "killed.db"
    assert run_cli("init", "--origin", "test.example/vault", "--no-key", ledger=ledger).returncode == 0
    before = _stage_workers()
    child = subprocess.Popen([sys.executable, "-m", "collector.cli", "--ledger", str(ledger), "--as-of", OBSERVED,
                              "collect", "vault", "--workers", "1", "--batch-size", "20", str(path)],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    size = 0
    while time.monotonic() < deadline and child.poll() is None:
        with sqlite3.connect(ledger) as conn:
            size = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        if size >= kill_at_size:
            assert _stage_workers() - before, "the run has no staging worker to outlive it"
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL and 0 < size < len(expected)  # killed mid-run
    for _ in range(200):  # the worker notices that the ledger process is gone and exits
        if not (_stage_workers() - before):
            break
        time.sleep(0.05)
    assert not (_stage_workers() - before), "a staging worker outlived the killed run"
    again = run_cli("--as-of", OBSERVED, "collect", "vault", "--workers", "1", str(path), ledger=ledger)
    assert again.returncode == 0, again.stderr
    with Ledger.open(ledger) as opened:
        assert [body for _, _, body in opened.entries()] == [body for _, _, body in expected]
        assert opened.integrity_check() == "ok"


class ThreeBatches(Source):
    """Three batches of three records each, a cursor mark after each."""

    kind = "test"

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        for batch in range(3):
            for index in range(3):
                n = batch * 3 + index
                yield SourceRecord("mem", n, b"record %d\n" % n, {"kind": "test.event", "n": n})
            yield CursorMark("test", str(batch + 1))


def test_a_failed_segment_write_stops_the_run_before_any_later_batch(tmp_path: Path) -> None:
    import hashlib

    with new_ledger(tmp_path) as ledger:
        second = hashlib.sha256(b"".join(b"record %d\n" % n for n in (3, 4, 5))).hexdigest()
        first = hashlib.sha256(b"".join(b"record %d\n" % n for n in (0, 1, 2))).hexdigest()
        assert first[:2] != second[:2]
        ledger.store.root.mkdir(parents=True, exist_ok=True)
        (ledger.store.root / second[:2]).write_bytes(b"a file where the store needs a folder")
        batches = staged_in_worker(ThreeBatches(), {}, store_root=ledger.store.root, kind="test", source_id="test",
                                   observed=OBSERVED, batch_size=2)
        with pytest.raises(SourceUnavailable, match="cannot write evidence object"):
            ingest_staged(ledger, batches, source_id="test", observed=OBSERVED, batch_size=2)
        assert ledger.size == 3 and ledger.cursors() == {"test": "1"}  # batch 3 did not land after the failed 2


def test_merged_batches_staged_before_a_failure_still_land(tmp_path: Path) -> None:
    from collector.ingest import stage

    with new_ledger(tmp_path) as ledger:
        def batches() -> Iterator[object]:
            for n in range(2):  # small batches (one file each), merged into one transaction
                yield stage([SourceRecord("mem", n, b"record %d\n" % n, {"kind": "test.event", "n": n})],
                            {"test": str(n + 1)}, kind="test", source_id="test", observed=OBSERVED,
                            store=ledger.store, parts=True)
            raise UsageError("the third file could not be read")

        with pytest.raises(UsageError, match="third file"):
            ingest_staged(ledger, batches(), source_id="test", observed=OBSERVED, batch_size=100)  # type: ignore[arg-type]
        assert ledger.size == 2 and ledger.cursors() == {"test": "2"}


def test_no_worker_when_no_temporary_folder_is_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker process is started through multiprocessing's forkserver, which needs a writable
    # temporary folder (its socket). Without one (a container with readOnlyRootFilesystem and no
    # /tmp volume) a Vault source of 8 MiB or more failed: "FileNotFoundError in the vault collector".
    import tempfile

    from collector.pipeline import auto_workers

    big = tmp_path / "big.log"
    with open(big, "wb") as handle:
        handle.truncate(WORKER_MIN_BYTES)

    def no_temp_dir() -> str:
        raise FileNotFoundError(2, "No usable temporary directory found")

    monkeypatch.setattr(tempfile, "gettempdir", no_temp_dir)
    assert not worth_a_worker([str(big)], workers=None)
    assert auto_workers(WORKER_MIN_BYTES) == 0
    with pytest.raises(SourceUnavailable, match="writable temporary folder"):
        worth_a_worker([str(big)], workers=1)
