"""`fedledger demo`: the whole pipeline on the shipped samples, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", *extra, "demo", "--out", str(out)],
                          cwd=out.parent, capture_output=True, text=True)


def test_demo_runs_the_whole_pipeline_and_verifies_offline(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = _demo(out, "--format", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["kind"] == "fedledger.demo" and doc["verified"] is True and doc["sources_failed"] == []
    assert Path(doc["index_pdf"]).read_bytes().startswith(b"%PDF")
    assert Path(doc["archive"]).name == "bundle.tar.gz"
    assert sum(doc["controls"].values()) >= 19
    # the samples carry planted violations: the demo shows them rather than hiding them
    assert doc["controls"]["not-satisfied"] > 0 and doc["controls"]["satisfied"] > 0
    # an assessor's independent check of the archive, with the key and origin pinned
    check = subprocess.run([sys.executable, "-m", "collector.cli", "verify-bundle", doc["archive"],
                            "--trusted-key", doc["public_key"], "--origin", doc["origin"]],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().splitlines()[-1].endswith("0 INVALID")
    # the ledger itself verifies too
    ledger = subprocess.run([sys.executable, "-m", "collector.cli", "verify", doc["ledger"], "--trusted-key",
                             doc["public_key"], "--origin", doc["origin"]], capture_output=True, text=True)
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr


def test_demo_replaces_an_earlier_demo_but_not_other_folders(tmp_path: Path) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    refused = _demo(mine)
    assert refused.returncode == 2 and "not an earlier demo" in refused.stderr
    assert (mine / "keep.txt").read_text() == "mine"
