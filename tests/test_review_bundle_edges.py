"""Review: `fedledger bundle` on edge ledgers (empty; entries whose common fields have another
shape than docs/events.md) and `fedledger append` keeping mis-shaped events out.

A ledger is append-only: one entry the bundler cannot read would make every later bundle
fail, so the bundler shows stored entries as they are, and `append` refuses the shapes.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from collector.cli import app
from collector.ledger import Ledger, NewEntry

ORIGIN = "example.gov/review-edges"
AS_OF = "2026-11-25T00:00:00Z"
runner = CliRunner()


def fl(tmp: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--ledger", str(tmp / "l.db"), "--as-of", AS_OF, *args])


def bundle_and_verify(tmp: Path) -> None:
    made = fl(tmp, "bundle", "--out", str(tmp / "b"), "--workers", "1", "--controls", "AU-2,AU-3,IA-2,SI-7")
    assert made.exit_code == 0, made.output
    checked = fl(tmp, "verify-bundle", str(tmp / "b"), "--trusted-key", str(tmp / "l.pub"), "--origin", ORIGIN)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.strip().splitlines()[-1].endswith(" 0 INVALID")


def test_bundle_of_an_empty_ledger(tmp_path: Path) -> None:
    assert fl(tmp_path, "init", "--origin", ORIGIN).exit_code == 0
    bundle_and_verify(tmp_path)
    assert "not assessed" in (tmp_path / "b" / "index.html").read_text(encoding="utf-8").lower()


MIS_SHAPED = [
    {"actor": {"a": 1}, "action": ["x"], "resource": ["r"], "outcome": "failure", "correlation": {"job_id": "1"},
     "attrs": []},
    {"outcome": ["x"], "correlation": "job-2", "attrs": "x"},
    {"outcome": {"status": 5}, "correlation": {"job_id": 3, "run_id": ["a"]}},
    {"outcome": None, "correlation": None, "attrs": None},
]


def test_bundle_of_a_ledger_holding_mis_shaped_events(tmp_path: Path) -> None:
    assert fl(tmp_path, "init", "--origin", ORIGIN).exit_code == 0
    with Ledger.open(tmp_path / "l.db") as ledger:
        # CI events as an older collector stored them (a ci.* kind from another source, e.g. a manual
        # line, is not CI evidence and would be cited by no control)
        ledger.append([NewEntry({"kind": "ci", "id": "old-file", "location": f"old.jsonl:{i}"},
                                "2026-11-20T10:00:00Z",
                                {"time": f"2026-11-20T10:00:0{i}Z", "kind": "ci.job_started", **fields},
                                "0" * 64, 1)
                       for i, fields in enumerate(MIS_SHAPED)])
    bundle_and_verify(tmp_path)
    csv = (tmp_path / "b" / "controls" / "AU-2.csv").read_text(encoding="utf-8")
    assert len(csv.strip().splitlines()) > 1 and ",failure," in csv  # the string outcome, shown as stored


def test_append_refuses_common_fields_of_another_shape(tmp_path: Path) -> None:
    assert fl(tmp_path, "init", "--origin", ORIGIN).exit_code == 0
    lines = [
        '{"time":"2026-11-20T10:00:00Z","kind":"manual.ok","actor":"a","outcome":{"status":"success","error":null},'
        '"correlation":{"job_id":"1"},"attrs":{"n":1}}',
        '{"time":"2026-11-20T10:00:00Z","kind":"manual.bad","outcome":"failure"}',
        '{"time":"2026-11-20T10:00:00Z","kind":"manual.bad","correlation":{"job_id":3}}',
        '{"time":"2026-11-20T10:00:00Z","kind":"manual.bad","attrs":[]}',
        '{"time":"2026-11-20T10:00:00Z","kind":"manual.bad","actor":{"name":"x"}}',
        '{"time":"2026-11-20T10:00:00Z","kind":"manual.bad","outcome":{"status":"maybe"}}',
    ]
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n")
    result = fl(tmp_path, "append", str(tmp_path / "e.jsonl"))
    assert result.exit_code == 2
    for number in range(2, len(lines) + 1):
        assert f"e.jsonl:{number}:" in result.stderr
    assert "e.jsonl:1:" not in result.stderr
    (tmp_path / "ok.jsonl").write_text(lines[0] + "\n")
    assert fl(tmp_path, "append", str(tmp_path / "ok.jsonl")).exit_code == 0
