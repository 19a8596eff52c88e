"""`fedledger run --bundle` reports the bundle it built with the counts `fedledger bundle` reports.

It printed only the bundle's path: the controls tally, the checkpoint size and the attestation
counts (signed, unsigned, invalid, deleted) were in `fedledger bundle`'s output only, so a
scheduled run's reader had to open the bundle to learn them. Here the samples' attestations
(5 signed, 2 unsigned, 5 invalid: samples/attestations/README.md) are collected by a run that
bundles, and its report is compared with `fedledger bundle`'s on the same ledger, human and JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ops_workspace import REPO, Workspace, make_workspace

AS_OF = "2026-11-25T00:00:00Z"
SAMPLE_COUNTS = {"signed": 5, "unsigned": 2, "invalid": 5, "deleted": 0}
ATTESTATION_LINE = "attestations: 5 signed (signature verified), 2 unsigned, 5 invalid, 0 deleted"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    samples = REPO / "samples" / "attestations"
    source = (f'[[sources]]\nname = "attestations"\nkind = "attestations"\nlocations = ["{samples / "bucket"}/"]\n'
              f'trusted_keys_dir = "{samples / "trusted-keys"}/"\n')
    return make_workspace(tmp_path_factory.mktemp("run-bundle"), source, extra_toml='[bundle]\ncontrols = ["SI-7"]\n')


@pytest.fixture(scope="module")
def run_json(ws: Workspace) -> dict[str, Any]:
    result = ws.cli("--format", "json", "run", "--config", str(ws.config), "--as-of", AS_OF, "--bundle")
    doc: dict[str, Any] = json.loads(result.stdout)
    assert doc["failed_steps"] == [] and doc["bundle"], result.stdout
    return doc


def _bundle(ws: Workspace, name: str, *fmt: str) -> Any:
    return ws.cli(*fmt, "bundle", "--config", str(ws.config), "--as-of", AS_OF, "--out", str(ws.root / name))


def test_run_json_has_the_bundle_commands_summary(ws: Workspace, run_json: dict[str, Any]) -> None:
    summary = run_json["bundle_summary"]
    assert summary["attestations"] == SAMPLE_COUNTS
    made = _bundle(ws, "by-bundle-json", "--format", "json")
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    assert set(summary) == set(doc) - {"version", "kind"}  # the same report, key for key
    for key in ("attestations", "controls", "checkpoint_size", "checkpoint_root", "cited_entries"):
        assert summary[key] == doc[key], key
    assert Path(run_json["bundle"]) in (Path(summary["out"]), Path(str(summary["archive"])))


def test_run_human_prints_the_bundle_commands_count_lines(ws: Workspace, run_json: dict[str, Any]) -> None:
    made = _bundle(ws, "by-bundle-human")
    assert made.exit_code == 0, made.output
    bundle_lines = made.stdout.splitlines()
    counts = [line for line in bundle_lines if " controls: " in line or line.startswith("attestations: ")]
    assert len(counts) == 2 and ATTESTATION_LINE in counts, bundle_lines
    again = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--bundle")
    assert again.exit_code == 0, again.output
    run_lines = again.stdout.splitlines()
    at = next(i for i, line in enumerate(run_lines) if line.startswith("bundle: "))
    assert run_lines[at + 1:at + 3] == counts, run_lines


def test_a_run_without_a_bundle_has_no_summary(ws: Workspace, run_json: dict[str, Any]) -> None:
    result = ws.cli("--format", "json", "run", "--config", str(ws.config), "--as-of", AS_OF)
    doc = json.loads(result.stdout)
    assert doc["bundle"] is None and doc["bundle_summary"] is None


def test_the_runs_bundle_log_line_carries_the_counts(ws: Workspace) -> None:
    """A scheduled run's reader has the log, not stdout: its `bundle` line (JSON, and the human line on
    a terminal) carries the controls tally, the checkpoint size and the attestation counts too."""
    from collector.run import _human_line

    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--bundle", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["bundle_summary"]
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (built,) = [e for e in logged if e["event"] == "bundle"]
    assert built["attestations"] == SAMPLE_COUNTS
    for key in ("controls", "checkpoint_size", "attestations"):
        assert built[key] == summary[key], key
    human = _human_line("bundle", built).splitlines()
    assert human[0] == f"  bundle: {built['path']}"
    assert [line.strip() for line in human[1:]] == _count_lines(summary)


def _count_lines(summary: dict[str, Any]) -> list[str]:
    from bundler.make_bundle import bundle_count_lines

    lines = bundle_count_lines(summary)
    assert ATTESTATION_LINE in lines
    return lines
