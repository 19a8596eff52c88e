"""FedRAMP 20x KSI links for every control a bundle evaluates, enhancements of a user's OSCAL catalog included.

The built-in controls showed their KSIs; an enhancement loaded from an OSCAL catalog (AC-2(1),
AU-9(4)) showed none, because its links were looked up among the built-in base controls only.
The catalog here is made by the test; nothing reads ../shared (test_catalog.py checks the
shipped table against the FedRAMP Consolidated Rules when that data is present).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bundler import render
from bundler.catalog import load_builtin_catalog, load_oscal_catalog, select_controls
from bundler.evaluate import evaluate
from collector.errors import MalformedInput
from tests.synthetic_jobs import as_entries, complete_story

AS_OF = "2026-11-21T00:00:00Z"
# What the FedRAMP Consolidated Rules 2026 (KSI "controls" lists) say of these ids.
AC_2_1 = ("KSI-IAM-JIT", "KSI-IAM-SUS")
AU_9_4 = ("KSI-IAM-JIT",)
AC_6_9 = ("KSI-IAM-JIT", "KSI-MLA-LET", "KSI-MLA-RVL")
SC_7_DIRECT = ("KSI-CNA-ULN", "KSI-SVC-EIS")  # sc-7 itself
SC_7_VIA = ("KSI-CNA-MAT", "KSI-CNA-RNT")  # only its enhancements sc-7.3/.4/.5/.7/.8


def _control(cid: str, title: str, enhancements: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": cid, "title": title,
                            "parts": [{"id": f"{cid}_smt", "name": "statement", "prose": f"{title} statement."}]}
    if enhancements:
        item["controls"] = enhancements
    return item


def tiny_catalog(path: Path, *, extra: list[dict[str, Any]] | None = None) -> Path:
    doc = {"catalog": {"uuid": "u", "metadata": {"title": "Tiny Rev5"}, "groups": [
        {"id": "ac", "title": "Access Control", "controls": [
            _control("ac-2", "Account Management", [_control("ac-2.1", "Automated System Account Management")]),
            _control("ac-6", "Least Privilege", [_control("ac-6.9", "Log Use of Privileged Functions")])]},
        {"id": "au", "title": "Audit and Accountability", "controls": [
            _control("au-9", "Protection of Audit Information",
                     [_control("au-9.4", "Access by Subset of Privileged Users")])]},
        {"id": "pe", "title": "Physical", "controls": [_control("pe-3", "Physical Access Control")]},
        {"id": "sc", "title": "System and Communications", "controls": [_control("sc-7", "Boundary Protection")]},
        *(extra or []),
    ]}}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_enhancements_from_an_oscal_catalog_keep_their_ksi_links(tmp_path: Path) -> None:
    catalog = load_oscal_catalog(tiny_catalog(tmp_path / "tiny.json"))
    assert catalog.control("AC-2(1)").ksi == AC_2_1 and catalog.control("ac-2.1").ksi == AC_2_1
    assert catalog.control("AU-9(4)").ksi == AU_9_4
    assert catalog.control("ac-6.9").ksi == AC_6_9
    assert catalog.control("sc-7").ksi == SC_7_DIRECT and catalog.control("sc-7").ksi_via_enhancements == SC_7_VIA
    assert not catalog.control("pe-3").ksi and not catalog.control("pe-3").ksi_via_enhancements
    # a base control the built-in catalog has keeps exactly the built-in links
    builtin = load_builtin_catalog().control("ac-2")
    assert (catalog.control("ac-2").ksi, catalog.control("ac-2").ksi_via_enhancements) == \
        (builtin.ksi, builtin.ksi_via_enhancements)


def test_every_evaluated_control_shows_its_ksis_in_the_report(tmp_path: Path) -> None:
    catalog = load_oscal_catalog(tiny_catalog(tmp_path / "tiny.json"))
    selected = select_controls(catalog, controls=["AC-2(1)", "au-9.4", "AC-6(9)", "SC-7", "PE-3", "AU-9"])
    assessment = evaluate(as_entries(complete_story(1)), as_of=AS_OF, origin="t", catalog=catalog,
                          controls=selected)
    assert assessment.control("ac-2.1").ksi == AC_2_1
    assert assessment.control("au-9.4").ksi == AU_9_4
    assert assessment.control("sc-7").ksi == SC_7_DIRECT + SC_7_VIA
    assert assessment.control("pe-3").ksi == ()
    assert assessment.control("au-9").ksi == ("KSI-MLA-OSM", "KSI-IAM-JIT")
    facts = render.BundleFacts("System", "t", 1, "ab" * 32, "note")
    html = render.render_control(assessment, assessment.control("ac-2.1"), facts)
    assert "FedRAMP 20x KSIs: KSI-IAM-JIT, KSI-IAM-SUS" in html
    assert "FedRAMP 20x KSIs" not in render.render_control(assessment, assessment.control("pe-3"), facts)


def test_ids_evaluated_without_a_catalog_entry_get_their_ksis_too() -> None:
    # evaluate() takes any control ids; one neither catalog holds still gets its links by id
    catalog = load_builtin_catalog()
    assessment = evaluate(as_entries(complete_story(1)), as_of=AS_OF, origin="t", catalog=catalog,
                          controls=("ac-2.1", "au-9.4"))
    assert assessment.control("ac-2.1").ksi == AC_2_1 and assessment.control("au-9.4").ksi == AU_9_4


def test_the_shipped_table_agrees_with_the_built_in_controls() -> None:
    """The per-control links of the built-in catalog are what the KSI table derives for them."""
    catalog = load_builtin_catalog()
    for control in catalog.controls.values():
        assert catalog.ksi_links(control.id) == (control.ksi, control.ksi_via_enhancements), control.id
    for ksi in catalog.ksi.values():
        for cid in ksi.controls:
            assert ksi.id in catalog.control(cid).ksi
        for cid in ksi.controls_via_enhancements:
            assert ksi.id in catalog.control(cid).ksi_via_enhancements


def test_a_control_id_twice_in_a_catalog_is_refused_not_overwritten(tmp_path: Path) -> None:
    twice = [{"id": "xx", "title": "Again", "controls": [_control("AC-2.1", "Second AC-2(1)")]}]
    with pytest.raises(MalformedInput, match=r"ac-2\.1.*more than once"):
        load_oscal_catalog(tiny_catalog(tmp_path / "twice.json", extra=twice))


def test_bundle_with_a_catalog_shows_enhancement_ksis(tmp_path: Path) -> None:
    """Through the CLI: ``bundle --catalog FILE --controls "AC-2(1),AU-9(4)"`` (HTML, the PDF's source)."""
    from bench.synthetic import ORIGIN, TEST_KEY
    from collector.cli import app
    from collector.ledger import Ledger, NewEntry
    from collector.signing import write_private_key
    from tests.synthetic_jobs import iter_entries

    ledger = Ledger.create(tmp_path / "fedledger.db", ORIGIN, created="2026-11-20T00:00:00Z", key_type="ecdsa-p256")
    write_private_key(tmp_path / "fedledger.key", TEST_KEY)
    ledger.append([NewEntry(src, "2026-11-20T23:00:00Z", ev, hashlib.sha256(str(seq).encode()).hexdigest(), 10)
                   for seq, ev, src in iter_entries(1, api_calls=1)])
    ledger.close()
    result = CliRunner().invoke(app, [
        "--ledger", str(tmp_path / "fedledger.db"), "bundle", "--out", str(tmp_path / "out"),
        "--catalog", str(tiny_catalog(tmp_path / "tiny.json")), "--controls", "AC-2(1),AU-9(4)",
        "--as-of", AS_OF, "--workers", "1"])
    assert result.exit_code == 0, result.stdout + result.stderr
    page = (tmp_path / "out" / "controls" / "AC-2.1.html").read_text(encoding="utf-8")
    assert "FedRAMP 20x KSIs: KSI-IAM-JIT, KSI-IAM-SUS" in page
    assert "FedRAMP 20x KSIs: KSI-IAM-JIT</p>" in (tmp_path / "out" / "controls" / "AU-9.4.html").read_text()
