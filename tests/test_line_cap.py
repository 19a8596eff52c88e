"""The line cap shared by every line reader (``collector.ingest``): a line longer than
``MAX_LINE_BYTES`` is hashed while it streams past, never held whole, and quarantined as
``line-too-long`` with its size and SHA-256; reading goes on at the next line and cursors stay exact.

Before, Vault (and CI stdin) held a line with no newline in memory however long it grew.
"""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
from pathlib import Path

import pytest

from collector.errors import MalformedInput
from collector.ingest import (
    LINE_TOO_LONG,
    MAX_LINE_BYTES,
    FileCursor,
    Line,
    LongLine,
    read_lines,
    read_stream_lines,
)
from collector.sources import ci as ci_source
from collector.sources.ci import CiEvents, CiOptions, CiTally
from collector.sources.manual import ManualEvents
from collector.sources.vault import VaultAuditLog
from tests.fedledger_process import fedledger, new_ledger as new_ci_ledger
from tests.vault_support import SAMPLES, collect, new_ledger, run_cli

CAP = 64  # a small cap for the unit tests (the readers take it as a parameter)


def lines_and_cursors(path: Path, cursor: FileCursor, **options: int) -> list[Line | LongLine | FileCursor]:
    return list(read_lines(path, cursor, **options))


def records(items: list[Line | LongLine | FileCursor]) -> list[Line | LongLine]:
    return [item for item in items if not isinstance(item, FileCursor)]


def test_a_long_line_is_read_through_hashed_and_reading_goes_on(tmp_path: Path) -> None:
    long = b"x" * 1000
    data = b"first\n" + long + b"\nthird\n" + b"y" * (CAP + 1) + b"\r\nlast\n"
    path = tmp_path / "log"
    path.write_bytes(data)
    for chunk in (7, 64, 1 << 20):  # the long line spans blocks, fills one, or sits inside one
        items = lines_and_cursors(path, FileCursor.loads(None), chunk=chunk, max_line=CAP)
        got = records(items)
        assert [type(item).__name__ for item in got] == ["Line", "LongLine", "Line", "LongLine", "Line"]
        first, over, third, crlf, last = got
        assert (first.number, first.data, third.number, third.data, last.number, last.data) == \
            (1, b"first", 3, b"third", 5, b"last")
        assert isinstance(over, LongLine) and isinstance(crlf, LongLine)
        assert (over.number, over.start, over.end, over.size) == (2, 6, 1007, 1001)
        assert over.sha256 == hashlib.sha256(data[over.start:over.end]).hexdigest()  # the line as in the file
        assert crlf.sha256 == hashlib.sha256(data[crlf.start:crlf.end]).hexdigest()
        final = items[-1]
        assert isinstance(final, FileCursor)
        assert (final.offset, final.line, final.prefix_sha256) == (len(data), 5, hashlib.sha256(data).hexdigest())
        assert final.head_sha256 == hashlib.sha256(data[:4096]).hexdigest()


def test_resuming_from_every_cursor_reads_exactly_the_rest(tmp_path: Path) -> None:
    data = b"a\n" + b"L" * 300 + b"\nb\n" + b"M" * 5000 + b"\n" + b"c\n" * 3
    path = tmp_path / "log"
    path.write_bytes(data)
    items = lines_and_cursors(path, FileCursor.loads(None), chunk=16, max_line=CAP)
    whole = records(items)
    for index, item in enumerate(items):
        if not isinstance(item, FileCursor):
            continue
        assert item.prefix_sha256 == hashlib.sha256(data[: item.offset]).hexdigest()  # every cursor is exact
        resumed = records(lines_and_cursors(path, FileCursor.loads(item.dumps()), chunk=16, max_line=CAP))
        assert resumed == records(items[index + 1:])
    assert sum(isinstance(r, LongLine) for r in whole) == 2


def test_a_long_line_without_its_newline_yet_is_pending_then_read(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"a\n" + b"Z" * 500)  # still being written
    items = lines_and_cursors(path, FileCursor.loads(None), chunk=32, max_line=CAP)
    assert records(items) == [Line(str(path), 1, 0, 2, b"a")]
    cursor = [i for i in items if isinstance(i, FileCursor)][-1]
    assert cursor.offset == 2 and cursor.prefix_sha256 == hashlib.sha256(b"a\n").hexdigest()
    with open(path, "ab") as handle:
        handle.write(b"Z\nb\n")
    rest = records(lines_and_cursors(path, FileCursor.loads(cursor.dumps()), chunk=32, max_line=CAP))
    assert [type(r).__name__ for r in rest] == ["LongLine", "Line"]
    assert rest[0].sha256 == hashlib.sha256(b"Z" * 501 + b"\n").hexdigest() and rest[0].number == 2


def test_memory_stays_flat_however_long_the_line(tmp_path: Path) -> None:
    path = tmp_path / "log"
    size = 32 * 1024 * 1024
    with open(path, "wb") as handle:
        handle.write(b"ok\n")
        for _ in range(size // (1 << 20)):
            handle.write(b"q" * (1 << 20))
        handle.write(b"\nok\n")
    tracemalloc.start()
    try:
        got = records(lines_and_cursors(path, FileCursor.loads(None), chunk=1 << 16, max_line=1 << 18))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [type(r).__name__ for r in got] == ["Line", "LongLine", "Line"]
    assert got[1].size == size + 1
    assert peak < 2 * 1024 * 1024, peak  # the cap and a few blocks, not the 32 MiB line


def test_stream_lines_cap_long_lines_and_keep_a_last_line_without_newline() -> None:
    stream = io.BytesIO(b"a\n" + b"W" * 200 + b"\nb\n" + b"V" * 100)
    items = list(read_stream_lines(stream, "-", chunk=16, max_line=CAP))
    got = records(items)
    assert [type(r).__name__ for r in got] == ["Line", "LongLine", "Line", "LongLine"]
    assert got[1].sha256 == hashlib.sha256(b"W" * 200 + b"\n").hexdigest()
    assert got[3].sha256 == hashlib.sha256(b"V" * 100).hexdigest() and got[3].end == 2 + 201 + 2 + 100
    assert isinstance(items[-1], FileCursor) and items[-1].offset == 2 + 201 + 2 + 100


class _LivePipe(io.RawIOBase):
    """A pipe whose writer sent one line and is still open: a second read would block (here: fail)."""

    def __init__(self) -> None:
        self.sent = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        if self.sent:
            raise AssertionError("read past what the pipe holds: a live pipe would block here")
        self.sent = True
        data = b'{"event_type": "ci.job.started"}\n'
        buffer[: len(data)] = data
        return len(data)


def test_stream_lines_hand_over_a_line_of_a_live_pipe_without_waiting_for_a_full_chunk() -> None:
    items = read_stream_lines(io.BufferedReader(_LivePipe()), "-")
    first = next(items)
    assert isinstance(first, Line) and first.data == b'{"event_type": "ci.job.started"}'


def test_vault_quarantines_a_line_over_the_cap_by_size_and_hash(tmp_path: Path) -> None:
    story = (SAMPLES / "audit.log").read_bytes().splitlines(keepends=True)
    huge = b'{"type": "request", "canary": "' + b"s" * (MAX_LINE_BYTES + 10) + b'"}\n'
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(story[:2]) + huge + b"".join(story[2:]))
    ledger = tmp_path / "ledger.db"
    assert run_cli("--ledger", str(ledger), "init", "--origin", "test.example/vault").returncode == 0
    result = run_cli("--format", "json", "collect", "vault", str(path), ledger=ledger)
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["reasons"] == {LINE_TOO_LONG: 1} and doc["read"] == doc["appended"] + doc["duplicates"] + 1
    note = doc["quarantined_records"][0]
    assert (note["line"], note["reason"], note["size"]) == (3, LINE_TOO_LONG, len(huge))
    assert run_cli("--ledger", str(tmp_path / "h.db"), "init", "--origin", "o.example/v").returncode == 0
    human = run_cli("collect", "vault", str(path), ledger=tmp_path / "h.db")
    assert f"quarantined: {path}:3: line-too-long ({len(huge)} bytes)" in human.stderr.decode()
    assert b"canary" not in human.stdout + human.stderr
    import sqlite3

    with sqlite3.connect(ledger) as conn:
        rows = conn.execute("SELECT line, reason, sha256 FROM quarantine").fetchall()
    # the ledger keeps the size too (an assessor reads the table long after the command's output is gone)
    assert rows == [(3, f"{LINE_TOO_LONG}: {len(huge)} bytes", hashlib.sha256(huge).hexdigest())]


def test_vault_small_cap_in_process_resumes_exactly(tmp_path: Path) -> None:
    story = (SAMPLES / "audit.log").read_bytes().splitlines(keepends=True)
    path = tmp_path / "audit.log"
    path.write_bytes(story[0] + b"{" + b" " * 5000 + b"}\n" + b"".join(story[1:]))
    with new_ledger(tmp_path) as ledger:
        first, source = collect(ledger, [path], chunk_size=256, max_line=4096)
        assert first.reasons == {LINE_TOO_LONG: 1} and source.notes[0].line == 2
        assert source.notes[0].size == 5003
        again, _ = collect(ledger, [path], chunk_size=256, max_line=4096)
        assert again.read == 0
    with new_ledger(tmp_path, "stdin.db") as ledger:
        source = VaultAuditLog(["-"], stdin=io.BytesIO(path.read_bytes()), chunk_size=256, max_line=4096)
        from collector.ingest import ingest

        summary = ingest(ledger, source.collect(ledger.cursors()), kind="vault", source_id="vault",
                         observed="2026-11-25T12:00:00Z")
        assert summary.reasons == {LINE_TOO_LONG: 1} and summary.balanced
        assert [q.reason for q in ledger.quarantined()] == [f"{LINE_TOO_LONG}: 5003 bytes"]


def test_long_lines_of_other_sizes_are_counted_under_one_reason_and_stored_with_their_sizes(tmp_path: Path) -> None:
    story = (SAMPLES / "audit.log").read_bytes().splitlines(keepends=True)
    path = tmp_path / "audit.log"
    path.write_bytes(story[0] + b"{" + b" " * 5000 + b"}\n" + story[1] + b"{" + b" " * 6000 + b"}\n" + b"".join(story[2:]))
    with new_ledger(tmp_path) as ledger:
        summary, source = collect(ledger, [path], chunk_size=256, max_line=4096)
        assert summary.reasons == {LINE_TOO_LONG: 2}  # grouped by reason, whatever the sizes
        assert [n.reason for n in summary.notes] == [f"{LINE_TOO_LONG}: 5003 bytes", f"{LINE_TOO_LONG}: 6003 bytes"]
        assert [(n.reason, n.size) for n in source.notes] == [(LINE_TOO_LONG, 5003), (LINE_TOO_LONG, 6003)]
        assert [(q.line, q.reason) for q in ledger.quarantined()] == [
            (2, f"{LINE_TOO_LONG}: 5003 bytes"), (4, f"{LINE_TOO_LONG}: 6003 bytes")]
        again, _ = collect(ledger, [path], chunk_size=256, max_line=4096)
        assert again.read == 0 and len(ledger.quarantined()) == 2


def test_ci_line_files_and_stdin_quarantine_a_line_over_the_cap(tmp_path: Path) -> None:
    good = json.dumps({"event_type": "ci.job.started", "timestamp": "2026-11-20T14:00:20Z", "job_id": "1"}).encode()
    huge = b'{"event_type": "ci.job.started", "note": "' + b"n" * (MAX_LINE_BYTES + 1) + b'"}\n'
    events = tmp_path / "events.jsonl"
    events.write_bytes(good + b"\n" + huge + good.replace(b'"1"', b'"2"') + b"\n")
    ledger = new_ci_ledger(tmp_path)
    result = fedledger("--format", "json", "collect", "ci", str(events), ledger=ledger)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert (doc["appended"], doc["quarantined"], doc["reasons"]) == (2, 1, {LINE_TOO_LONG: 1})
    assert doc["quarantined_records"] == [
        {"location": str(events), "line": 2, "reason": LINE_TOO_LONG, "size": len(huge)}]
    import sqlite3

    with sqlite3.connect(ledger) as conn:
        rows = conn.execute("SELECT line, reason, sha256 FROM quarantine").fetchall()
    assert rows == [(2, f"{LINE_TOO_LONG}: {len(huge)} bytes", hashlib.sha256(huge).hexdigest())]
    tally = CiTally()
    stream = CiEvents(None, CiOptions(), tally, stream=io.BytesIO(events.read_bytes()))
    items = [i for i in stream.collect({}) if hasattr(i, "reason")]
    assert [i.reason for i in items] == [None, LINE_TOO_LONG, None]
    assert items[1].raw == b"" and items[1].raw_sha256 == hashlib.sha256(huge).hexdigest()
    assert items[1].reason_detail == f"{len(huge)} bytes"
    assert ci_source.MAX_RECORD_BYTES == MAX_LINE_BYTES  # one cap for lines and whole documents


def test_manual_events_refuse_a_line_over_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collector import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "MAX_LINE_BYTES", CAP)
    path = tmp_path / "manual.jsonl"
    path.write_bytes(b"{" + b" " * 100 + b"}\n")
    problems = ManualEvents(path).validate({})
    assert len(problems) == 1 and f"{path}:1: line of 103 bytes is longer than" in problems[0]
    with pytest.raises(MalformedInput):
        list(ManualEvents(path).collect({}))


def test_cursors_stay_exact_when_big_blocks_are_hashed_in_the_background(tmp_path: Path) -> None:
    # Blocks of 64 KiB and more are hashed in a thread while their lines are handed over;
    # small pieces (a long line's carry, short blocks) are hashed inline, in the same order.
    pieces = []
    for n in range(400):
        pieces.append(b"x" * (n * 977 % 9000) + b"\n")
        if n % 97 == 0:
            pieces.append(b"L" * 150_000 + b"\n")  # over the cap: read through in parts
    data = b"".join(pieces)
    path = tmp_path / "log"
    path.write_bytes(data)
    for chunk in (70_000, 1 << 20):
        items = lines_and_cursors(path, FileCursor.loads(None), chunk=chunk, max_line=100_000)
        cursors = [item for item in items if isinstance(item, FileCursor)]
        assert len(cursors) > 1 or chunk > len(data)
        for item in cursors:
            assert item.prefix_sha256 == hashlib.sha256(data[: item.offset]).hexdigest()
        assert cursors[-1].offset == len(data)
        middle = cursors[len(cursors) // 2]
        resumed = lines_and_cursors(path, FileCursor.loads(middle.dumps()), chunk=chunk, max_line=100_000)
        assert [i for i in resumed if isinstance(i, FileCursor)][-1].prefix_sha256 == hashlib.sha256(data).hexdigest()
