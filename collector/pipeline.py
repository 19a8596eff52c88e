"""Staging in a worker process, appending in this one.

A source's records are read, parsed, normalized and staged (raw bytes written to
the evidence store, each entry put in its canonical parts, see
:func:`collector.ledger.entry_parts`) in one worker process, while this process
only chains, hashes and inserts (:func:`collector.ingest.commit`). The two run on
two cores at once; batches still end at the source's cursor marks and each is one
ledger transaction, so resuming after a kill, duplicates and the counts behave
exactly as with :func:`collector.ingest.ingest`.

Batches travel over a pipe as pickles. The pipe gives back-pressure (the worker is
at most a couple of batches ahead: one whose segment is being written, one in the
pipe; memory stays flat) and ties the two processes' lives together: when this process dies the worker's next send fails and it exits; when
the worker dies, reading here fails and the run stops with an error.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import resource
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from collector.errors import FedledgerError, InternalError, SourceUnavailable, family_of
from collector.evidence import Source
from collector.ingest import DEFAULT_BATCH, StagedBatch, staged_batches
from collector.store import EvidenceStore

# Below this many input bytes a worker costs more to start than it saves.
WORKER_MIN_BYTES = 8 << 20


def _temp_dir_usable() -> bool:
    """Whether a worker can be started: multiprocessing's forkserver puts its socket in a
    temporary folder, and a container with a read-only root file system may have none."""
    import tempfile

    try:
        tempfile.gettempdir()
    except OSError:
        return False
    return True


def require_worker_temp_dir() -> None:
    if not _temp_dir_usable():
        raise SourceUnavailable("worker processes need a writable temporary folder (TMPDIR, /tmp) and there is none: "
                                "mount one (e.g. an emptyDir at /tmp) or use --workers 0")


def worth_a_worker(paths: list[str], *, workers: int | None) -> bool:
    """Whether to stage in a worker: *workers* 0/1 forces it off/on; ``None`` decides by
    the machine (two or more CPUs, a writable temporary folder) and the input size (files
    only: stdin stays here). Asked for a worker where none can start: SourceUnavailable."""
    if workers is not None:
        if workers > 0:
            require_worker_temp_dir()
        return workers > 0
    if (os.cpu_count() or 1) < 2 or not _temp_dir_usable():
        return False  # the same entries either way: a worker only saves time
    total = 0
    for name in paths:
        if name == "-":
            return False
        try:
            total += os.path.getsize(name) if os.path.isfile(name) else _folder_bytes(name)
        except OSError:
            return False  # the source reports unreadable input itself
    return total >= WORKER_MIN_BYTES


def auto_workers(total_bytes: int) -> int:
    """Worker processes for inputs of *total_bytes*: 2 on a machine with 2+ CPUs (and a writable
    temporary folder) for 8 MiB or more, else 0."""
    return 2 if (os.cpu_count() or 1) >= 2 and total_bytes >= WORKER_MIN_BYTES and _temp_dir_usable() else 0


def _folder_bytes(name: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(name):
        for file in files:
            try:
                total += os.path.getsize(os.path.join(root, file))
            except OSError:
                pass
            if total >= WORKER_MIN_BYTES:
                return total
    return total


def staged_in_worker(source: Source, cursors: Mapping[str, str], *, store_root: Path, kind: str, source_id: str,
                     observed: str, batch_size: int = DEFAULT_BATCH) -> Iterator[StagedBatch]:
    """The staged batches of ``source.collect(cursors)``, made in a worker process.

    When the iterator ends, *source* holds the state its collection left, and
    ``worker_cpu``/``worker_peak_rss_mib`` attributes with the worker's CPU seconds and
    peak RSS. An error raised by the source in the worker is raised here, after the
    batches staged before it.
    """
    ctx = multiprocessing.get_context("forkserver")
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_stage_worker,
        args=(source, dict(cursors), str(store_root), kind, source_id, observed, batch_size, writer),
        name="fedledger-stage",
        daemon=True,
    )
    process.start()
    writer.close()  # the worker holds the only write end: its death ends our reads
    try:
        while True:
            try:
                tag, value = pickle.loads(reader.recv_bytes())
            except EOFError:
                process.join()
                raise InternalError(f"the staging worker stopped unexpectedly (exit code {process.exitcode})") from None
            if tag == "batch":
                yield value
            elif tag == "done":
                state, cpu, rss = value
                source.absorb_worker_state(state)
                source.worker_cpu, source.worker_peak_rss_mib = cpu, rss  # type: ignore[attr-defined]
                return
            else:
                raise value
    finally:
        reader.close()
        if process.is_alive():
            process.terminate()
        process.join()


def _stage_worker(source: Source, cursors: dict[str, str], store_root: str, kind: str, source_id: str,
                  observed: str, batch_size: int, writer: Any) -> None:
    import gc

    gc.disable()  # as in the collect commands: the records are acyclic and short-lived
    try:  # a name that ps and top show (Linux)
        with open("/proc/self/comm", "w") as comm:
            comm.write("fedledger-stage")
    except OSError:
        pass
    store = _WriteBehindStore(Path(store_root))
    held: list[tuple[StagedBatch, Future[str] | None]] = []  # staged, its segment maybe still being written
    source_error: Exception | None = None
    try:
        try:
            batches = staged_batches(source.collect(cursors), kind=kind, source_id=source_id, observed=observed,
                                     store=store, batch_size=batch_size, parts=True)
            while True:
                try:
                    staged = next(batches)
                except StopIteration:
                    break
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - the source failed: what came before it still lands
                    source_error = exc
                    break
                held.append((staged, store.last))
                store.last = None
                if len(held) > 1:
                    _send_batch(writer, *held.pop(0))
            while held:
                _send_batch(writer, *held.pop(0))
            if source_error is not None:
                message = _error_message(source_error)
            else:
                state = (source.worker_state(), time.process_time(),
                         resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
                message = pickle.dumps(("done", state), protocol=pickle.HIGHEST_PROTOCOL)
        except (BrokenPipeError, KeyboardInterrupt):
            return  # the ledger process is gone or stopping
        except Exception as exc:  # noqa: BLE001 - a segment write failed: no batch after it may land
            message = _error_message(exc)
        writer.send_bytes(message)
    except BrokenPipeError:
        pass
    finally:
        writer.close()
        store.close()


class _WriteBehindStore(EvidenceStore):
    """An evidence store whose hashing, writes and fsyncs run in a thread while the worker
    parses on (hashlib and file writes release the GIL): ``put`` returns :data:`UNNAMED`
    at once; ``last`` is the write to wait for, whose result is the object's name."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedledger-store")
        self.last: Future[str] | None = None

    def put(self, data: bytes) -> str:
        self.last = self._thread.submit(EvidenceStore.put, self, data)
        return UNNAMED

    def close(self) -> None:
        self._thread.shutdown(wait=True)


#: The object name a :class:`_WriteBehindStore` gives before its thread has hashed the bytes;
#: :func:`_send_batch` puts the real name in the batch's raw-object index before it leaves.
UNNAMED = ""


def _send_batch(writer: Any, staged: StagedBatch, written: Future[str] | None) -> None:
    if written is not None:
        name = written.result()  # raises the store's own error when the write failed
        staged.raw_index = [(digest, size, name, offset) for digest, size, _unnamed, offset in staged.raw_index]
    elif staged.raw_index:  # a segment put() that was not handed over with its batch: a bug
        raise InternalError("a staged batch lost the write of its evidence segment")
    writer.send_bytes(pickle.dumps(("batch", staged), protocol=pickle.HIGHEST_PROTOCOL))


def _error_message(exc: BaseException) -> bytes:
    """The pickled error to raise in the ledger process: a fedledger error as it is (its
    message never holds record content); anything else (a bug) by its type only."""
    if not isinstance(exc, FedledgerError):
        return pickle.dumps(("error", InternalError(f"unexpected {type(exc).__name__} while reading the source")))
    try:
        message = pickle.dumps(("error", exc), protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(message)
        return message
    except Exception:  # noqa: BLE001 - an error class that does not survive pickling
        return pickle.dumps(("error", (family_of(exc) or InternalError)(str(exc))))
