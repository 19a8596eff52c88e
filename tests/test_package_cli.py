"""``fedledger bundle`` → ``fedledger verify-bundle`` end to end, through the real CLI and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.synthetic import ORIGIN
from collector.cli import app
from tests.synthetic_jobs import write_cli_ledger

AS_OF = "2026-11-21T00:00:00Z"


@pytest.fixture(scope="module")
def ledger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cli_ledger(tmp_path_factory.mktemp("cli"), jobs=3, api_calls=2)


def cli(ledger_dir: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--ledger", str(ledger_dir / "fedledger.db"), *args])


@pytest.fixture(scope="module")
def bundled(ledger_dir: Path) -> Path:
    result = cli(ledger_dir, "--format", "json", "bundle", "--out", str(ledger_dir / "out"), "--controls", "AU-2,IA-5",
                 "--as-of", AS_OF, "--archive", "zip")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "fedledger.bundle" and doc["archive"].endswith("out.zip")
    assert "signed a fresh checkpoint" in result.stderr
    return ledger_dir / "out"


def test_bundle_then_verify_bundle(ledger_dir: Path, bundled: Path) -> None:
    assert sorted(p.name for p in (bundled / "controls").glob("*.pdf")) == ["AU-2.pdf", "IA-5.pdf"]
    for target in (bundled, ledger_dir / "out.zip"):
        result = cli(ledger_dir, "verify-bundle", str(target), "--trusted-key", str(ledger_dir / "fedledger.pub"),
                     "--origin", ORIGIN)
        assert result.exit_code == 0, result.stdout + result.stderr
        assert result.stdout.splitlines()[-1].endswith("0 INVALID")
        assert all(line.startswith("valid: ") for line in result.stdout.splitlines()[:-1])


def test_verify_bundle_json_and_failure_exit_code(ledger_dir: Path, bundled: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundled, copy)
    (copy / "index.html").write_text("<p>changed</p>", encoding="utf-8")
    result = cli(ledger_dir, "verify-bundle", str(copy), "--trusted-key", str(ledger_dir / "fedledger.pub"),
                 "--origin", ORIGIN, "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["kind"] == "fedledger.verify-bundle" and doc["ok"] is False and doc["pinned"] is True
    assert any(f["where"] == "index.html" and f["code"] == "file-modified" for f in doc["failures"])
    human = cli(ledger_dir, "verify-bundle", str(copy), "--unpinned")
    assert human.exit_code == 1 and "INVALID: file-modified [index.html]" in human.stdout
    assert "not pinned" in human.stderr


def test_bundle_usage_errors(ledger_dir: Path) -> None:
    assert cli(ledger_dir, "bundle", "--out", str(ledger_dir / "x"), "--archive", "rar").exit_code == 2
    assert cli(ledger_dir, "bundle", "--out", str(ledger_dir / "x"), "--baseline", "extreme").exit_code == 2
    assert cli(ledger_dir, "verify-bundle", str(ledger_dir / "nope")).exit_code == 3


def test_bundled_oscal_from_real_evaluation_is_schema_valid(bundled: Path) -> None:
    from tests.test_package_oscal import oscal_validator

    doc = json.loads((bundled / "oscal" / "assessment-results.json").read_text(encoding="utf-8"))
    errors = list(oscal_validator().iter_errors(doc))
    assert not errors, errors[0].message[:300]
    findings = doc["assessment-results"]["results"][0]["findings"]
    assert {f["target"]["target-id"] for f in findings} == {"au-2_smt", "ia-5_smt"}
