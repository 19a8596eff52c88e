"""A URL the PDF renderer refused is reported: by the workers (page and URL), in the bundle's index
(verification transcript, HTML and PDF), in ``fedledger bundle``'s output, and by its exit code.

Our templates reference no URL outside the package's assets and evidence is escaped, so the only way
to make the renderer ask for one here is to break a page on purpose: the tests wrap the renderer's
view functions to append raw markup, standing in for a template or escaping defect.
"""

from __future__ import annotations

import json
from pathlib import Path

import pypdf
import pytest
from typer.testing import CliRunner

from bench.synthetic import ORIGIN, build_assessment, build_ledger, signer
from bundler import render
from bundler.bundle import build_bundle
from bundler.pdf import PdfJob, PdfWorkers
from collector.cli import app
from collector.ledger import Ledger
from tests.synthetic_jobs import write_cli_ledger

HOSTILE = '<img src="file:///etc/passwd">'


def _page(tmp_path: Path, name: str, body: str) -> PdfJob:
    (tmp_path / f"{name}.html").write_text(f"<p>{name}</p>{body}", encoding="utf-8")
    return PdfJob(tmp_path / f"{name}.html", tmp_path / f"{name}.pdf")


@pytest.mark.parametrize("count", [1, 2], ids=["here", "in-workers"])
def test_workers_name_the_page_and_the_url_they_refused(tmp_path: Path, count: int) -> None:
    with PdfWorkers(count) as workers:
        workers.submit(_page(tmp_path, "clean", ""))
        workers.submit(_page(tmp_path, "bad", HOSTILE))
        assert workers.wait() == 1
    assert workers.refusals == [(str(tmp_path / "bad.pdf"), "file:///etc/passwd")]


def _inject_into_control(monkeypatch: pytest.MonkeyPatch, control_id: str) -> None:
    real = render.render_control

    def broken(assessment, control, facts):  # type: ignore[no-untyped-def]
        html = real(assessment, control, facts)
        return html.replace("</body>", HOSTILE + "</body>") if control.control_id.upper() == control_id.upper() else html

    monkeypatch.setattr(render, "render_control", broken)


def test_a_refused_url_is_reported_in_the_bundle_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = build_ledger(tmp_path / "l.db", entries=200, jobs=2)
    assessment = build_assessment(world, controls=3)
    victim = assessment.controls[1].control_id
    _inject_into_control(monkeypatch, victim)
    with Ledger.open(world.path) as ledger:
        result = build_bundle(ledger, assessment, tmp_path / "bundle", signer(), workers=2)
    page = f"controls/{render.file_stem(victim)}.pdf"
    assert result.refused_urls == 1 and result.refusals == ((page, "file:///etc/passwd"),)
    index = (tmp_path / "bundle" / "index.html").read_text(encoding="utf-8")
    assert "PDF renderer" in index and f"{page}: file:///etc/passwd" in index
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(tmp_path / "bundle" / "index.pdf").pages)
    assert "PDF renderer" in text and "etc/passwd" in text  # the PDF was rendered again with the notice
    from bundler.bundle_verify import verify_bundle
    from tests.test_package_bundle import public_pem

    assert verify_bundle(tmp_path / "bundle", trusted_keys=[public_pem()], origin=ORIGIN).ok


def test_a_clean_bundle_says_nothing_about_refusals(tmp_path: Path) -> None:
    world = build_ledger(tmp_path / "l.db", entries=120, jobs=1)
    assessment = build_assessment(world, controls=2)
    with Ledger.open(world.path) as ledger:
        result = build_bundle(ledger, assessment, tmp_path / "bundle", signer(), workers=1)
    assert result.refused_urls == 0 and result.refusals == ()
    assert "PDF renderer" not in (tmp_path / "bundle" / "index.html").read_text(encoding="utf-8")


@pytest.fixture()
def ledger_dir(tmp_path: Path) -> Path:
    return write_cli_ledger(tmp_path, jobs=2, api_calls=1)


def test_bundle_command_warns_and_exits_1_on_a_refused_url(ledger_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _inject_into_control(monkeypatch, "AU-2")
    result = CliRunner().invoke(app, ["--ledger", str(ledger_dir / "fedledger.db"), "--format", "json", "bundle",
                                      "--out", str(ledger_dir / "out"), "--controls", "AU-2,IA-5",
                                      "--as-of", "2026-11-21T00:00:00Z", "--workers", "1"])
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["refused_urls"] == [{"page": "controls/AU-2.pdf", "url": "file:///etc/passwd"}]
    assert "WARNING" in result.stderr and "controls/AU-2.pdf" in result.stderr
    assert (ledger_dir / "out" / "MANIFEST.sig").exists()  # the bundle is complete and signed all the same


def test_run_bundle_exits_1_and_logs_a_refused_url_like_the_bundle_command(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`fedledger run --bundle` builds the same bundle as `fedledger bundle`; a URL its PDF renderer
    refused fails the run's bundle step with the bundle command's exit code (1), logged, while the
    bundle stays complete and signed and what the sources collected stays committed."""
    from tests.ops_workspace import AS_OF, make_workspace, manual_source, write_events

    write_events(tmp_path / "a.jsonl", 5)
    ws = make_workspace(tmp_path / "ws", manual_source("reviews", str(tmp_path / "a.jsonl")),
                        extra_toml='[bundle]\ncontrols = ["AU-2", "IA-5"]\n')
    _inject_into_control(monkeypatch, "AU-2")
    log = tmp_path / "run.log"
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--bundle", "--format", "json",
                    "--log-file", str(log))
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 1 and doc["failed_sources"] == [] and doc["checkpoint"]["size"] == 5
    bundle = Path(doc["bundle"])
    assert (bundle / "MANIFEST.sig").exists()  # complete and signed all the same
    assert doc["bundle_refused_urls"] == [{"page": "controls/AU-2.pdf", "url": "file:///etc/passwd"}]
    (step,) = doc["failed_steps"]
    assert step["step"] == "bundle" and step["exit_code"] == 1 and step["error"] == "IntegrityError"
    assert step["message"].startswith("the PDF renderer refused 1 URL(s) and fetched nothing"), step
    assert "controls/AU-2.pdf" in step["message"] and "\n" not in step["message"]
    assert "error: bundle: the PDF renderer refused 1 URL(s)" in result.stderr
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    (built,) = [e for e in logged if e["event"] == "bundle"]
    assert built["path"] == str(bundle) and built["refused_urls"] == doc["bundle_refused_urls"]
    assert [(e["step"], e["exit_code"]) for e in logged if e["event"] == "step.failed"] == [("bundle", 1)]
    assert logged[-1]["event"] == "run.end" and logged[-1]["exit_code"] == 1
    assert logged[-1]["failed_steps"] == ["bundle"]
