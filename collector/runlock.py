"""One ``fedledger run`` at a time per ledger: an exclusive ``flock`` on ``<ledger>.lock``.

The kernel holds the lock for the open file, so a run killed with SIGKILL (or a
crashed host process) releases it: there is no stale *lock*, only a stale *record*.
The file also holds a small JSON record of the holder (pid, hostname, start time,
run id), written after the lock is taken, used for two things only:

* the message a second run prints while it is refused ("another run holds the
  ledger lock (pid 4242 on build-7, since 2026-01-18T02:00:00Z, run …)");
* noticing that the previous holder died without releasing it cleanly: a record
  left behind by a process that no longer holds the lock is reported as a stale
  lock taken over (the ledger itself is safe: every batch is one transaction).

The file is never deleted: unlinking a flock'd file lets two runs lock two
different inodes at once. Releasing truncates the record instead.

Not covered: filesystems without working ``flock`` (some NFS setups); keep the
ledger on local disk or use one scheduler that never overlaps runs.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from collector.errors import SourceUnavailable


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) the lock, as recorded in the lock file."""

    pid: int | None
    hostname: str | None
    since: str | None
    run_id: str | None

    def describe(self) -> str:
        host = f" on {self.hostname}" if self.hostname and self.hostname != socket.gethostname() else ""
        parts = [f"pid {self.pid if self.pid is not None else 'unknown'}{host}", f"since {self.since or 'unknown'}"]
        if self.run_id:
            parts.append(f"run {self.run_id}")
        return ", ".join(parts)

    @staticmethod
    def parse(data: bytes) -> LockHolder | None:
        if not data.strip():
            return None
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return LockHolder(None, None, None, None)
        if not isinstance(doc, dict):
            return LockHolder(None, None, None, None)

        def text(key: str) -> str | None:
            value = doc.get(key)
            return value if isinstance(value, str) else None

        pid = doc.get("pid")
        return LockHolder(pid if isinstance(pid, int) else None, text("hostname"), text("since"), text("run_id"))


class LedgerLocked(SourceUnavailable):
    """Another run holds the ledger lock (exit 3)."""

    def __init__(self, holder: LockHolder | None, waited: float) -> None:
        self.holder = holder
        who = holder.describe() if holder else "pid unknown, since unknown"
        waited_text = f" after waiting {waited:.0f}s" if waited >= 1 else ""
        advice = "; try again when it ends" if waited >= 1 else "; let it finish, or give --wait SECONDS"
        super().__init__(f"another run holds the ledger lock ({who}){waited_text}{advice}")


def lock_path_for(ledger_path: Path) -> Path:
    return Path(ledger_path).with_name(Path(ledger_path).name + ".lock")


class RunLock:
    """An exclusive lock on one ledger for one run. Use as a context manager after :meth:`acquire`."""

    def __init__(self, ledger_path: Path, run_id: str, *, started: str) -> None:
        self.path = lock_path_for(ledger_path)
        self.run_id = run_id
        self.started = started
        self._fd: int | None = None
        self.took_over: LockHolder | None = None

    def acquire(
        self,
        wait_seconds: float = 0.0,
        *,
        poll_seconds: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[LockHolder | None], None] | None = None,
    ) -> RunLock:
        """Take the lock, waiting up to *wait_seconds*; raise :class:`LedgerLocked` if it stays held.

        *on_wait* is called once, with the holder's record, when the lock is held and the
        run is going to wait for it (so a waiting run can say whom it waits for).
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SourceUnavailable(f"cannot open the run lock: {exc.strerror}", location=str(self.path)) from None
        start = clock()
        retried = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise SourceUnavailable(f"cannot lock: {exc.strerror}", location=str(self.path)) from None
                waited = clock() - start
                if on_wait is not None and waited < wait_seconds:
                    on_wait(LockHolder.parse(_read_all(fd)))
                    on_wait = None
                if waited >= wait_seconds:
                    # The holder writes its record just after it takes the lock; give a
                    # holder that is between the two a moment, so the message can name it.
                    holder = LockHolder.parse(_read_all(fd))
                    for _ in range(25):
                        if holder is not None and holder.pid is not None:
                            break
                        sleep(0.02)
                        holder = LockHolder.parse(_read_all(fd))
                    if (holder is None or holder.pid is None) and not retried:
                        retried = True  # an empty record: the holder may just have let go
                        continue
                    raise LedgerLocked(holder, waited)
                sleep(min(poll_seconds, max(wait_seconds - waited, 0.0)))
        except BaseException:
            os.close(fd)
            raise
        # We hold the lock. A record still here was left by a holder that died (the kernel
        # released its lock) or by a run that could not clean up: a stale lock, taken over.
        self.took_over = LockHolder.parse(_read_all(fd))
        record = orjson.dumps(
            {"pid": os.getpid(), "hostname": socket.gethostname(), "since": self.started, "run_id": self.run_id}
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, record + b"\n", 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the record and drop the lock (closing the file drops it too)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        block = os.pread(fd, 4096, offset)
        if not block:
            return b"".join(chunks)
        chunks.append(block)
        offset += len(block)
        if offset > 65536:  # a lock record is tiny; do not read a huge file someone put here
            return b"".join(chunks)
