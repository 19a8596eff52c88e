"""Log rotation: a rotated Vault audit log is followed, not reported as tampered (collector/rotation.py).

Each case collects, rotates the way logrotate (or Vault's SIGHUP rotation) does, writes
more, collects again, and checks that every line landed exactly once (no duplicates, none
lost, the tail written before the rotation read from the rotated file) and that a real
change of already-read content is still reported as tampered.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.commands.vault_cmds import run_collection
from collector.rotation import CursorDoc, plan_rotations, rotation_base, rotation_order_key, sort_rotations_oldest_first
from collector.sources.vault import VaultAuditLog
from tests.pg_support import NEEDS_PG, pg_url  # noqa: F401  (pg_url: the fixture)
from tests.rotation_support import KEEP, STEPS, run_steps
from tests.vault_support import OBSERVED, SAMPLES, collect, new_ledger, run_cli

STORY = (SAMPLES / "audit.log").read_bytes().splitlines(keepends=True)


def story_lines(copies: int) -> list[bytes]:
    """The story log *copies* times over, each copy with its own request ids (every line new evidence)."""
    lines: list[bytes] = []
    for copy in range(copies):
        lines += [line.replace(b"-5", f"-{copy:01x}5".encode()) if copy else line for line in STORY]
    return lines


LINES = story_lines(3)  # 84 distinct lines


def reference_size(tmp_path: Path, count: int) -> int:
    """Entries (lines + unpaired findings) that one clean run over LINES[:count] gives."""
    folder = tmp_path / "reference"
    folder.mkdir()
    (folder / "audit.log").write_bytes(b"".join(LINES[:count]))
    with new_ledger(folder) as ledger:
        collect(ledger, [folder / "audit.log"])
        return ledger.size


def first_log(tmp_path: Path) -> tuple[Path, Path]:
    """``logs/audit.log`` holding LINES[:30]: (the folder, the file)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "audit.log"
    live.write_bytes(b"".join(LINES[:30]))
    return logs, live


def append(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(lines))


def locations(ledger) -> list[str]:
    return [orjson.loads(body)["source"]["location"] for _, _, body in ledger.entries()]


def test_names_and_order() -> None:
    assert rotation_base("audit.log.1.gz") == rotation_base("audit.log-20261125") == rotation_base("audit.log")
    assert rotation_base("audit.log.1") == "audit.log" and rotation_base("other.log") == "other.log"
    names = ["audit.log", "audit.log.1", "audit.log.2.gz", "audit.log.10", "other.log"]
    assert sorted(names, key=rotation_order_key) == ["audit.log.10", "audit.log.2.gz", "audit.log.1", "audit.log",
                                                    "other.log"]
    dated = ["x/audit.log", "x/audit.log-20261121", "x/audit.log-20261120"]
    assert sort_rotations_oldest_first(dated) == ["x/audit.log-20261120", "x/audit.log-20261121", "x/audit.log"]


@pytest.mark.parametrize("mode", ["create", "copytruncate", "gzip", "dateext", "folder", "folder-gzip"])
def test_rotation_is_followed(tmp_path: Path, mode: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "audit.log"
    live.write_bytes(b"".join(LINES[:30]))
    inputs = [logs] if mode.startswith("folder") else [live]
    rotated = logs / {"create": "audit.log.1", "copytruncate": "audit.log.1", "gzip": "audit.log.1.gz",
                      "dateext": "audit.log-20261125", "folder": "audit.log.1", "folder-gzip": "audit.log.1.gz"}[mode]
    expected = reference_size(tmp_path, 60)
    with new_ledger(tmp_path) as ledger:
        first, _ = collect(ledger, inputs)
        assert first.appended >= 30
        with open(live, "ab") as handle:  # written after the first run, before the rotation
            handle.write(b"".join(LINES[30:40]))
        if mode == "copytruncate":
            shutil.copyfile(live, rotated)
            live.write_bytes(b"")
        elif rotated.name.endswith(".gz"):
            rotated.write_bytes(gzip.compress(live.read_bytes()))
            live.unlink()
        else:
            live.rename(rotated)
        with open(live, "ab") as handle:
            handle.write(b"".join(LINES[40:60]))
        second, source = collect(ledger, inputs)
        assert source.tampered == []
        assert source.rotations == [{"file": str(live), "moved_to": str(rotated), "offset": len(b"".join(LINES[:30]))}]
        assert (second.read - source.findings, second.duplicates) == (30, 0)
        assert ledger.size == expected  # every line once, pairing as in one clean run
        where = locations(ledger)
        assert where.count(str(rotated)) >= 10 and where.count(str(live)) >= 50
        third, source = collect(ledger, inputs)  # the cursors now belong to the files that hold them
        assert (third.read, source.rotations, source.tampered) == (0, [], [])
        with open(live, "ab") as handle:
            handle.write(b"".join(LINES[60:70]))
        fourth, source = collect(ledger, inputs)
        assert (fourth.read - source.findings, fourth.duplicates, source.tampered) == (10, 0, [])


def test_two_rotations_between_runs_and_aged_out_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    live, one, two = logs / "audit.log", logs / "audit.log.1", logs / "audit.log.2"

    def rotate() -> None:  # logrotate with rotate 2: .2 dropped, .1 -> .2, live -> .1
        if two.exists():
            two.unlink()
        if one.exists():
            one.rename(two)
        live.rename(one)

    live.write_bytes(b"".join(LINES[:20]))
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [logs])
        with open(live, "ab") as handle:
            handle.write(b"".join(LINES[20:25]))
        rotate()
        live.write_bytes(b"".join(LINES[25:40]))
        rotate()
        live.write_bytes(b"".join(LINES[40:50]))
        second, source = collect(ledger, [logs])
        assert source.tampered == [] and second.duplicates == 0
        assert second.read - source.findings == 30
        rotate()  # the first file ages out; every cursor's content moved one place
        live.write_bytes(b"".join(LINES[50:60]))
        third, source = collect(ledger, [logs])
        assert (third.read - source.findings, third.duplicates, source.tampered) == (10, 0, [])
        assert {r["moved_to"] for r in source.rotations} == {str(one), str(two)}
        assert ledger.size == reference_size(tmp_path, 60)


def test_changed_content_is_still_tampering(tmp_path: Path) -> None:
    """A rotated-looking file that does not hold exactly what was read moves nothing."""
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "audit.log"
    data = b"".join(LINES[:30])
    live.write_bytes(data)
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [live])
        size = ledger.size
        # the old content "rotated", but one already-read byte changed on the way
        (logs / "audit.log.1").write_bytes(data.replace(b'"operation":"read"', b'"operation":"list"', 1))
        live.write_bytes(b"".join(LINES[40:50]))
        summary, source = collect(ledger, [live])
        assert [name for name, _ in source.tampered] == [str(live)] and source.rotations == []
        # audit.log.1 appeared after the last run: it is read as a new generation (29 of its lines are
        # already in the ledger; the changed one is new evidence), and audit.log is not read
        assert (summary.read - source.findings, summary.duplicates) == (30, 29)
        assert all(where != str(live) for where in locations(ledger)[size:])
        # same length, first line changed, nothing beside it
        (logs / "audit.log.1").unlink()
        live.write_bytes(data.replace(b'"type":"request"', b'"type":"requesT"', 1))
        summary, source = collect(ledger, [live])
        assert [name for name, _ in source.tampered] == [str(live)] and summary.read == 0
        # the head still matches, a later already-read line changed: the full prefix check catches it
        live.write_bytes(data[:-200] + data[-200:].replace(b"2026", b"2025", 1))
        summary, source = collect(ledger, [live])
        assert [name for name, _ in source.tampered] == [str(live)] and summary.read == 0
    result = run_cli("collect", "vault", str(live), ledger=tmp_path / "ledger.db")
    assert result.returncode == 1 and b"TAMPERED" in result.stdout


def test_rotation_in_the_staging_worker_and_the_cli(tmp_path: Path) -> None:
    logs, live = first_log(tmp_path)
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [live])
        append(live, LINES[30:40])
        live.rename(logs / "audit.log.1")
        live.write_bytes(b"".join(LINES[40:60]))
        source = VaultAuditLog([str(live)])
        summary = run_collection(ledger, source, observed=OBSERVED, workers=1)
        assert source.rotations == [{"file": str(live), "moved_to": str(logs / "audit.log.1"),
                                     "offset": len(b"".join(LINES[:30]))}]
        assert (summary.read - source.findings, summary.duplicates, source.tampered) == (30, 0, [])
        assert ledger.size == reference_size(tmp_path, 60)
    with open(live, "ab") as handle:
        handle.write(b"".join(LINES[60:70]))
    (logs / "audit.log.1").rename(logs / "audit.log.2")
    live.rename(logs / "audit.log.1")
    live.write_bytes(b"".join(LINES[70:75]))
    result = run_cli("--format", "json", "collect", "vault", str(live), ledger=tmp_path / "ledger.db")
    assert result.returncode == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["tampered"] == [] and doc["read"] - doc["findings"] == 15
    # both cursors moved one place: audit.log.1's to audit.log.2, audit.log's to audit.log.1
    assert {(r["file"], r["moved_to"]) for r in doc["rotations"]} == {
        (str(logs / "audit.log.1"), str(logs / "audit.log.2")), (str(live), str(logs / "audit.log.1"))}
    live.write_bytes(b"".join(LINES[75:80]) + b"".join(LINES[70:75]))  # the new file changed under us
    human = run_cli("collect", "vault", str(live), ledger=tmp_path / "ledger.db")
    assert human.returncode == 1 and b"TAMPERED" in human.stdout


def test_plan_with_cursors_from_before_head_hashes(tmp_path: Path) -> None:
    """Cursors written before head_sha256 existed: a file now shorter than the cursor is looked for."""
    live, old = tmp_path / "audit.log", tmp_path / "audit.log.1"
    content = b"".join(LINES[:10])
    old.write_bytes(content + b"".join(LINES[10:12]))
    live.write_bytes(LINES[20])
    import hashlib

    cursor = orjson.dumps({"offset": len(content), "line": 10, "prefix_sha256": hashlib.sha256(content).hexdigest()})

    def load(text: str) -> CursorDoc:
        doc = orjson.loads(text)
        return CursorDoc(doc["offset"], doc["prefix_sha256"], doc.get("head_sha256"))

    plan = plan_rotations([live], {f"id:{live}": cursor.decode()}, lambda p: f"id:{p}", load)
    assert plan.order == [old, live]
    assert plan.starts == {str(old): cursor.decode(), str(live): None}
    assert plan.extra_before == {str(live): [old]}
    # the same file, longer than the cursor and no head hash to compare: left to the full prefix check
    live.write_bytes(content + LINES[20])
    plan = plan_rotations([live], {f"id:{live}": cursor.decode()}, lambda p: f"id:{p}", load)
    assert (plan.order, plan.starts, plan.rotations) == ([live], {}, [])


def test_accept_changed_records_a_finding_and_reads_the_file_anew(tmp_path: Path) -> None:
    """A file reported TAMPERED stays so run after run, until the operator accepts it after looking into
    it: then a vault.file_replaced finding (what was known of the old content, never content) is
    recorded once and the file is read from its start."""
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "audit.log"
    old = b"".join(LINES[:30])
    live.write_bytes(old)
    db = tmp_path / "ledger.db"
    with new_ledger(tmp_path):
        pass
    assert run_cli("collect", "vault", str(live), ledger=db).returncode == 0
    live.write_bytes(b"".join(LINES[20:50]))  # 10 lines read before, 20 new; the old head is gone
    for _ in range(2):
        again = run_cli("collect", "vault", str(live), ledger=db)
        assert again.returncode == 1 and b"TAMPERED" in again.stdout
    unknown = run_cli("collect", "vault", str(live), "--accept-changed", str(logs / "other.log"), ledger=db)
    assert unknown.returncode == 2 and b"other.log" in unknown.stderr
    accepted = run_cli("--format", "json", "collect", "vault", str(live), "--accept-changed", str(live), ledger=db)
    assert accepted.returncode == 0, accepted.stderr
    doc = orjson.loads(accepted.stdout)
    assert doc["tampered"] == [] and doc["accepted_changed"] == [
        {"file": str(live), "reset": True, "previous_offset": len(old)}]
    assert doc["read"] == 30 + doc["findings"] and doc["duplicates"] == 10
    from collector.ledger import Ledger

    with Ledger.open(db) as ledger:
        bodies = [orjson.loads(body) for _, _, body in ledger.entries()]
    replaced = [b["event"] for b in bodies if b["event"]["kind"] == "vault.file_replaced"]
    assert len(replaced) == 1
    attrs = replaced[0]["attrs"]
    assert (attrs["previous_offset"], attrs["previous_lines"], attrs["file"]) == (len(old), 30, str(live))
    import hashlib

    assert attrs["previous_prefix_sha256"] == hashlib.sha256(old).hexdigest()
    assert replaced[0]["outcome"]["status"] == "failure"
    size = len(bodies)
    same = run_cli("--format", "json", "collect", "vault", str(live), "--accept-changed", str(live), ledger=db)
    assert same.returncode == 0
    assert orjson.loads(same.stdout)["accepted_changed"] == [{"file": str(live), "reset": False}]
    with Ledger.open(db) as ledger:
        assert ledger.size == size
    human = run_cli("collect", "vault", str(live), "--accept-changed", str(live), ledger=db)
    assert human.returncode == 0 and b"nothing to accept" in human.stderr


def test_copytruncate_with_a_run_between_the_copy_and_the_truncation(tmp_path: Path) -> None:
    """The rotated copy was already read as a new file of the folder (all duplicates); after the
    truncation the live file is new content, not tampering."""
    logs, live = first_log(tmp_path)
    with new_ledger(tmp_path) as ledger:
        collect(ledger, [logs])
        append(live, LINES[30:40])
        shutil.copyfile(live, logs / "audit.log.1")  # copytruncate's copy ...
        between, source = collect(ledger, [logs])  # ... a run here ...
        assert source.tampered == [] and between.appended - source.findings >= 10
        live.write_bytes(b"")  # ... then the truncation, and new lines
        append(live, LINES[40:50])
        after, source = collect(ledger, [logs])
        assert source.tampered == [] and (after.read - source.findings, after.duplicates) == (10, 0)
        assert source.rotations == [{"file": str(live), "moved_to": str(logs / "audit.log.1"),
                                     "offset": len(b"".join(LINES[:40]))}]
        assert ledger.size == reference_size(tmp_path, 50)



@NEEDS_PG
def test_rotation_lands_the_same_in_postgresql(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    from collector.ledger_open import create_ledger

    logs, live = first_log(tmp_path)
    with create_ledger(pg_url, "test.example/vault", created=OBSERVED, key_type="ecdsa-p256") as ledger:
        collect(ledger, [live])
        append(live, LINES[30:40])
        live.rename(logs / "audit.log.1")
        live.write_bytes(b"".join(LINES[40:60]))
        second, source = collect(ledger, [live])
        assert source.tampered == [] and len(source.rotations) == 1 and second.duplicates == 0
        third, source = collect(ledger, [live])
        assert (third.read, source.rotations) == (0, [])
        assert ledger.size == reference_size(tmp_path, 60)


def _run_steps(root: Path, steps: list[str], as_folder: bool, keep: int | None) -> None:
    pool = iter(story_lines(5))
    with new_ledger(root) as ledger:

        def run(inputs: list[str], accept: list[str]) -> tuple[int, list[str]]:
            summary, source = collect(ledger, inputs, accept_changed=accept)
            assert summary.quarantined == 0
            return summary.duplicates, [name for name, _ in source.tampered]

        def stored() -> set[bytes]:
            return {ledger.raw_bytes(seq) for seq in range(ledger.size) if ledger.raw_location(seq) is not None}

        run_steps(root, "audit.log", steps, as_folder, pool, run, stored, keep)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, as_folder=st.booleans(), keep=KEEP)
def test_any_writes_rotations_and_runs_lose_nothing_and_read_nothing_twice(
        tmp_path_factory: pytest.TempPathFactory, steps: list[str], as_folder: bool, keep: int | None) -> None:
    """Any mix of writes, logrotate rotations (create, compress at once, copytruncate) and runs, with
    the file named or its folder given: every line written lands exactly once, never as tampering."""
    _run_steps(tmp_path_factory.mktemp("rot"), steps, as_folder, keep)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, as_folder=st.booleans(), keep=KEEP)
def test_rotation_sequences_long_run(tmp_path_factory: pytest.TempPathFactory, steps: list[str], as_folder: bool,
                                    keep: int | None) -> None:
    _run_steps(tmp_path_factory.mktemp("rot"), steps, as_folder, keep)


@pytest.mark.parametrize("as_folder", [False, True])
def test_a_changed_rotated_file_is_reported_even_when_only_the_live_file_is_named(tmp_path: Path,
                                                                                  as_folder: bool) -> None:
    logs, live = first_log(tmp_path)
    inputs = [logs] if as_folder else [live]
    with new_ledger(tmp_path) as ledger:
        collect(ledger, inputs)
        append(live, LINES[30:40])
        live.rename(logs / "audit.log.1")
        append(live, LINES[40:50])
        collect(ledger, inputs)  # the rotation is followed: audit.log.1 now has a cursor of its own
        rotated = logs / "audit.log.1"
        data = rotated.read_bytes()
        # a change in the first 4 KiB: found for a rotated file beside a named one too (its size and
        # first bytes are checked every run; a named or folder input has its whole read part re-hashed)
        rotated.write_bytes(data.replace(b'"type":"request"', b'"type":"requesT"', 1))
        summary, source = collect(ledger, inputs)
        assert [name for name, _ in source.tampered] == [str(rotated)] and summary.read == 0
        rotated.write_bytes(data[:-300] + data[-300:].replace(b"2026", b"2025", 1))  # near its end
        summary, source = collect(ledger, inputs)
        assert [name for name, _ in source.tampered] == ([str(rotated)] if as_folder else [])


def test_aged_out_content_under_a_rotated_name_is_not_tampering(tmp_path: Path) -> None:
    """logrotate keeping 2: two rotations between runs drop what audit.log.1 held; the newer generation
    now at audit.log.1 is read as new (not reported as tampered, not skipped)."""
    logs, live = first_log(tmp_path)
    one, two = logs / "audit.log.1", logs / "audit.log.2"

    def rotate_keep_two() -> None:
        if two.exists():
            two.unlink()
        if one.exists():
            one.rename(two)
        live.rename(one)

    with new_ledger(tmp_path) as ledger:
        collect(ledger, [live])
        rotate_keep_two()
        append(live, LINES[30:40])
        collect(ledger, [live])  # audit.log.1 now has a cursor of its own (LINES[:30])
        append(live, LINES[40:50])
        rotate_keep_two()  # LINES[:30] -> .2, LINES[30:50] -> .1
        append(live, LINES[50:60])
        rotate_keep_two()  # LINES[:30] dropped, LINES[30:50] -> .2, LINES[50:60] -> .1
        append(live, LINES[60:70])
        summary, source = collect(ledger, [live])
        assert source.tampered == [] and summary.duplicates == 0
        assert summary.read - source.findings == 30  # LINES[40:70]
        assert ledger.size == reference_size(tmp_path, 70)
