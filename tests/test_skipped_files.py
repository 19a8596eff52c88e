"""Files under a folder that a collector does not read (by their names) are named, never passed over in silence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.ops_workspace import AS_OF, make_workspace, manual_source, write_events

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_collect_ci_names_the_files_it_does_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "ci"
    folder.mkdir()
    shutil.copy(SAMPLES / "ci" / "events" / "job-events.jsonl", folder / "job-events.jsonl")
    shutil.copy(SAMPLES / "ci" / "events" / "job-events.jsonl", folder / "MORE-EVENTS.JSONL")  # upper-case suffix
    (folder / "notes.txt").write_text("not evidence\n")
    (folder / ".hidden.jsonl").write_text("{}\n")  # hidden files stay out of scans, as documented
    ws = make_workspace(tmp_path / "ws", "")
    got = ws.cli("--ledger", str(ws.ledger), "--format", "json", "collect", "ci", str(folder))
    doc = json.loads(got.stdout)
    assert sorted(Path(p).name for p in doc["skipped"]) == ["MORE-EVENTS.JSONL", "notes.txt"], doc
    human = ws.cli("--ledger", str(ws.ledger), "collect", "ci", str(folder))
    assert "MORE-EVENTS.JSONL: skipped (under a folder, and not named" in human.stderr, human.output


def test_run_logs_skipped_files_of_every_folder_source(tmp_path: Path) -> None:
    manual = tmp_path / "manual"
    write_events(manual / "a.jsonl", 2)
    write_events(manual / "b.JSON", 2)
    ci = tmp_path / "ci-spool"
    ci.mkdir()
    (ci / "delivery.txt").write_text("{}\n")  # the only file: the source reads nothing, and says what it passed over
    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.copy(SAMPLES / "vault" / "audit.log", vault / "audit.log")
    (vault / "audit.log.gz").write_bytes(b"\x1f\x8b")
    sources = (manual_source("m", str(manual)) + f'[[sources]]\nname = "c"\nkind = "ci"\nlocations = ["{ci}"]\n\n'
               + f'[[sources]]\nname = "v"\nkind = "vault"\nlocations = ["{vault}"]\n')
    ws = make_workspace(tmp_path / "ws", sources)
    got = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert got.exit_code == 0, got.output
    doc = json.loads(got.stdout)
    skipped = {o["source"]: sorted(Path(p).name for p in o["skipped_files"]) for o in doc["sources"]}
    assert skipped == {"m": ["b.JSON"], "c": ["delivery.txt"], "v": ["audit.log.gz"]}, skipped
    logged = [json.loads(line) for line in got.stderr.splitlines() if line.startswith("{")]
    done = {e["source"]: e for e in logged if e["event"] == "source.done"}
    assert [Path(p).name for p in done["c"]["skipped_files"]] == ["delivery.txt"]


def test_config_check_warns_about_files_a_run_would_not_read(tmp_path: Path) -> None:
    manual = tmp_path / "manual"
    write_events(manual / "a.jsonl", 1)
    write_events(manual / "b.JSONL", 1)
    ws = make_workspace(tmp_path / "ws", manual_source("m", str(manual)))
    got = ws.cli("config", "check", "--config", str(ws.config))
    assert "WARNING: 1 file(s) under its folders not named like its input files are not read" in got.output, got.output
    assert "b.JSONL" in got.output
