"""`fedledger demo`: the whole pipeline on the shipped samples, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", *extra, "demo", "--out", str(out)],
                          cwd=out.parent, capture_output=True, text=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `fedledger demo --format json` run, shared by the tests that look at its bundle."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    done = _demo(out, "--format", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_demo_runs_the_whole_pipeline_and_verifies_offline(demo: dict[str, Any]) -> None:
    doc = demo
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


def test_demo_bundle_oscal_is_schema_valid_and_its_references_resolve(demo: dict[str, Any]) -> None:
    """The OSCAL checks ran only on synthetic assessments; this is the document a user gets from the
    shipped samples, read from the archive an assessor receives."""
    from tests.test_package_oscal import oscal_reference_problems, oscal_validator

    with tarfile.open(demo["archive"]) as archive:
        member = archive.extractfile("oscal/assessment-results.json")
        assert member is not None
        doc = json.loads(member.read())
    errors = sorted(oscal_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:10])
    assert oscal_reference_problems(doc) == []
    result = doc["assessment-results"]["results"][0]
    reviewed = {c["control-id"] for c in result["reviewed-controls"]["control-selections"][0]["include-controls"]}
    assert len(reviewed) == sum(demo["controls"].values())
    assert {f["target"]["target-id"] for f in result["findings"]} <= {f"{c}_smt" for c in reviewed}
    assert result["observations"] and all(o.get("relevant-evidence") for o in result["observations"])


def test_demo_replaces_an_earlier_demo_but_not_other_folders(tmp_path: Path) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    refused = _demo(mine)
    assert refused.returncode == 2 and "not an earlier demo" in refused.stderr
    assert (mine / "keep.txt").read_text() == "mine"


def test_stale_sources_fail_status_and_the_controls_they_support(tmp_path: Path) -> None:
    """Cadences from the config reach the bundle: stale evidence makes its controls not-satisfied."""
    from bundler.catalog import load_builtin_catalog, select_controls
    from bundler.evaluate import evaluate
    from bundler.make_bundle import _entries, evaluation_settings_from_config
    from collector.config import load_config
    from collector.ledger import Ledger

    config_path = REPO / "samples" / "fedledger.toml"
    db = tmp_path / "l.db"
    cli = [sys.executable, "-m", "collector.cli", "--ledger", str(db)]
    assert subprocess.run([*cli, "init", "--origin", "example.gov/ci-evidence"], capture_output=True).returncode == 0
    run = subprocess.run([*cli, "--as-of", "2026-11-21T00:00:00Z", "run", "--config", str(config_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    fresh = subprocess.run([*cli, "--as-of", "2026-11-21T00:00:00Z", "status", "--config", str(config_path)],
                           capture_output=True, text=True)
    stale = subprocess.run([*cli, "--as-of", "2027-01-15T00:00:00Z", "status", "--config", str(config_path)],
                           capture_output=True, text=True)
    assert fresh.returncode == 0 and stale.returncode == 1 and "STALE" in stale.stdout

    config = load_config(config_path)
    settings = evaluation_settings_from_config(config)
    assert dict(settings.freshness_days_per_source)["vault"] == 3  # ksi-3d
    catalog = load_builtin_catalog()
    chosen = select_controls(catalog, baseline="moderate", controls=None)

    def assess(as_of: str):  # type: ignore[no-untyped-def]
        with Ledger.open(db) as ledger:
            return evaluate(_entries(ledger, ledger.size), as_of=as_of, origin=ledger.origin, config=settings,
                            catalog=catalog, controls=chosen)

    before, after = assess("2026-11-21T00:00:00Z"), assess("2027-01-15T00:00:00Z")
    fresh_checks = [c for c in before.checks if c.kind == "freshness"]
    stale_checks = [c for c in after.checks if c.kind == "freshness"]
    assert fresh_checks and all(c.status == "satisfied" for c in fresh_checks)
    assert stale_checks and all(c.status == "not-satisfied" for c in stale_checks)
    was_satisfied = {c.control_id for c in before.controls if c.status == "satisfied"}
    assert was_satisfied
    for control in after.controls:
        if control.control_id in was_satisfied:
            assert control.status == "not-satisfied"
            assert any(check.kind == "freshness" and check.status == "not-satisfied" for check in control.checks)
