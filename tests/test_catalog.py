"""Built-in catalog and mapping data, OSCAL catalog loading, baseline selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bundler.catalog import (
    control_label, load_builtin_catalog, load_mapping, load_oscal_catalog, normalize_control_id, select_controls,
)
from bundler.evaluate import evaluate
from bundler.model import NOT_ASSESSED, SATISFIED
from collector.errors import MalformedInput, UsageError
from tests.conftest import shared_data
from tests.synthetic_jobs import as_entries, complete_story

REQUIRED = ("ac-2", "ac-6", "au-2", "au-3", "au-6", "au-8", "au-9", "au-10", "au-11", "au-12", "cm-3", "cm-5",
            "cm-14", "ia-2", "ia-5", "sa-10", "sc-8", "sc-12", "sc-13", "sc-28", "si-7", "sr-4")
FEDRAMP_MODERATE = ("oscal", "fedramp_rev5", "FedRAMP_rev5_MODERATE-baseline-resolved-profile_catalog.json")
NIST_HIGH = ("oscal", "nist_sp800-53_rev5", "NIST_SP-800-53_rev5_HIGH-baseline-resolved-profile_catalog-min.json")


def test_builtin_catalog_has_every_required_control_with_ksi_links() -> None:
    catalog = load_builtin_catalog()
    assert tuple(catalog.controls) == tuple(sorted(REQUIRED, key=lambda c: (c[:2], int(c[3:]))))
    for control in catalog.controls.values():
        assert control.title and len(control.statement) > 30 and control.family == control.id[:2].upper()
    assert catalog.control("AU-9").ksi == ("KSI-MLA-OSM",)
    assert "KSI-SVC-VRI" in catalog.control("si-7").ksi
    assert not catalog.control("sr-4").ksi  # no KSI names SR-4
    for ksi in catalog.ksi.values():
        assert ksi.id.startswith("KSI-") and set(ksi.controls) | set(ksi.controls_via_enhancements) <= set(REQUIRED)
    assert set(catalog.baselines) == {"low", "moderate", "high", "ksi"}
    assert set(catalog.baselines["low"]) < set(catalog.baselines["moderate"]) < set(catalog.baselines["high"])


def test_mapping_names_only_known_controls_and_every_control_has_a_check() -> None:
    mapping = load_mapping()
    known = set(REQUIRED)
    for ids in mapping["evidence_kinds"].values():
        assert set(ids) <= known
    checked = {c for spec in mapping["checks"].values() for c in spec["controls"]}
    assert checked == known
    for spec in mapping["sources"].values():
        assert set(spec["controls"]) <= known


def test_control_ids_normalize() -> None:
    assert normalize_control_id("AU-09") == "au-9"
    assert normalize_control_id("AC-2(4)") == "ac-2.4"
    assert control_label("ac-2.4") == "AC-2(4)"


def test_selection_by_baseline_and_list() -> None:
    catalog = load_builtin_catalog()
    assert select_controls(catalog) == tuple(catalog.controls)
    moderate = select_controls(catalog, baseline="moderate")
    assert "au-10" not in moderate and "si-7" in moderate and len(moderate) == 19
    assert "au-10" in select_controls(catalog, baseline="HIGH")
    assert select_controls(catalog, controls=["SI-7", "au-9", "AU-9"]) == ("au-9", "si-7")
    with pytest.raises(UsageError):
        select_controls(catalog, baseline="fedramp-extreme")
    with pytest.raises(UsageError):
        select_controls(catalog, controls=["ZZ-1"])


def test_unresolved_profile_and_non_catalog_are_refused(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"profile": {"uuid": "x", "imports": []}}))
    with pytest.raises(UsageError, match="resolved"):
        load_oscal_catalog(profile)
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    with pytest.raises(MalformedInput):
        load_oscal_catalog(other)
    with pytest.raises(UsageError):
        load_oscal_catalog(tmp_path / "absent.json")


def test_small_oscal_catalog_renders_statements_with_parameters(tmp_path: Path) -> None:
    doc = {"catalog": {"uuid": "u", "metadata": {"title": "Tiny"}, "groups": [{"id": "au", "title": "Audit", "controls": [
        {"id": "au-11", "title": "Audit Record Retention",
         "params": [{"id": "au-11_odp", "label": "time period", "values": ["one year"]}],
         "props": [{"name": "label", "value": "AU-11"}],
         "parts": [{"id": "au-11_smt", "name": "statement",
                    "prose": "Keep records for {{ insert: param, au-11_odp }}."}]},
        {"id": "au-2", "title": "Event Logging",
         "params": [{"id": "au-2_odp", "select": {"how-many": "one-or-more", "choice": ["a", "b"]}},
                    {"id": "au-2_prm", "label": "event types"}],
         "parts": [{"id": "au-2_smt", "name": "statement", "parts": [
             {"id": "au-2_smt.a", "name": "item", "props": [{"name": "label", "value": "a."}],
              "prose": "Log {{ insert: param, au-2_prm }} using {{ insert: param, au-2_odp }}."}]}]},
        {"id": "au-13", "title": "Withdrawn one", "props": [{"name": "status", "value": "withdrawn"}]},
    ]}]}}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(doc))
    catalog = load_oscal_catalog(path)
    assert catalog.name == "Tiny" and not catalog.is_builtin
    assert catalog.control("au-11").statement == "Keep records for one year."
    assert catalog.control("au-11").parameters == (("au-11_odp", "one year"),)
    assert catalog.control("au-2").statement == \
        "a. Log [Assignment: event types] using [Selection (one or more of): a; b]."
    assert select_controls(catalog) == ("au-2", "au-11")  # catalog order, withdrawn left out
    assessment = evaluate(as_entries(complete_story(1)), as_of="2026-11-21T00:00:00Z", origin="t", catalog=catalog,
                          controls=select_controls(catalog))
    assert assessment.control("au-11").statement == "Keep records for one year."
    assert assessment.control("au-11").status == SATISFIED


def test_fedramp_moderate_resolved_catalog() -> None:
    catalog = load_oscal_catalog(shared_data(*FEDRAMP_MODERATE))
    assert "FedRAMP" in catalog.name and len(catalog.controls) > 300
    au11 = catalog.control("AU-11")
    assert au11.title == "Audit Record Retention" and "{{" not in au11.statement
    assert au11.parameters and au11.ksi == ("KSI-MLA-OSM",)
    assert all("{{" not in c.statement for c in catalog.controls.values())
    # our paraphrase is not NIST's text
    assert load_builtin_catalog().control("au-11").statement not in au11.statement
    selected = select_controls(catalog)
    assessment = evaluate(as_entries(complete_story(1)), as_of="2026-11-21T00:00:00Z", origin="t", catalog=catalog,
                          controls=selected, baseline="catalog")
    assert len(assessment.controls) == len(selected)
    # controls without mapped evidence are not assessed, never satisfied
    assert assessment.control("pe-3").status == NOT_ASSESSED and not assessment.control("pe-3").checks
    assert assessment.control("ac-2.1").status == NOT_ASSESSED
    assert assessment.control("au-9").status == SATISFIED
    assert assessment.control("au-9").statement == catalog.control("au-9").statement


def test_nist_high_resolved_catalog() -> None:
    catalog = load_oscal_catalog(shared_data(*NIST_HIGH))
    assert "au-10" in catalog and "[Assignment:" in catalog.control("au-10").statement or \
        catalog.control("au-10").parameters


def test_mapping_covers_every_kind_of_the_event_contract() -> None:
    import re

    contract = (Path(__file__).resolve().parent.parent / "docs" / "events.md").read_text(encoding="utf-8")
    table = contract.split("## Kinds and the attrs the bundler reads", 1)[1]
    kinds = {k for row in table.splitlines() if row.startswith("| `")
             for k in re.findall(r"`([a-z]+\.[a-z_]+)`", row.split("|")[1])}
    assert "vault.pki_issue" in kinds and "attestation.invalid" in kinds
    mapped = set(load_mapping()["evidence_kinds"])
    assert kinds - mapped == set()


def test_ksi_links_agree_with_the_fedramp_consolidated_rules() -> None:
    """Every built-in control's KSIs are exactly the 20x indicators whose 'controls' list names it ('ksi') or
    only an enhancement of it ('ksi_via_enhancements'), and each KSI's name and control lists match."""
    rules = json.loads(shared_data("fedramp-rules", "fedramp-consolidated-rules.json").read_text(encoding="utf-8"))
    direct: dict[str, set[str]] = {}
    via: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    for family in rules["KSI"].values():
        for ksi_id, indicator in family["indicators"].items():
            names[ksi_id] = indicator["name"]
            for control in indicator.get("controls", ()):
                base = normalize_control_id(control).split(".")[0]
                (direct if "." not in normalize_control_id(control) else via).setdefault(base, set()).add(ksi_id)
    catalog = load_builtin_catalog()
    for control in catalog.controls.values():
        expected_direct = direct.get(control.id, set())
        assert set(control.ksi) == expected_direct, control.id
        assert set(control.ksi_via_enhancements) == via.get(control.id, set()) - expected_direct, control.id
    named = {k for c in catalog.controls.values() for k in (*c.ksi, *c.ksi_via_enhancements)}
    assert set(catalog.ksi) == named
    for ksi in catalog.ksi.values():
        assert ksi.name == names[ksi.id]
        assert set(ksi.controls) == {c for c in catalog.controls if ksi.id in direct.get(c, set())}
        assert set(ksi.controls_via_enhancements) == {
            c for c in catalog.controls if ksi.id in via.get(c, set()) - direct.get(c, set())}


def test_ksi_control_table_is_the_fedramp_consolidated_rules() -> None:
    """The shipped ``ksi_control_links`` table holds every KSI of the rules with exactly the ids it names, and
    a real resolved catalog's enhancements (FedRAMP Rev5 Moderate) get their links from it."""
    rules = json.loads(shared_data("fedramp-rules", "fedramp-consolidated-rules.json").read_text(encoding="utf-8"))
    table = json.loads((Path(__file__).resolve().parent.parent / "bundler" / "data" / "controls.json")
                       .read_text(encoding="utf-8"))["ksi_control_links"]
    assert table["rules_version"] == rules["info"]["version"]
    expected = {ksi_id: {normalize_control_id(c) for c in indicator.get("controls", ())}
                for family in rules["KSI"].values() for ksi_id, indicator in family["indicators"].items()}
    assert {k: set(v) for k, v in table["indicators"].items()} == expected
    catalog = load_oscal_catalog(shared_data(*FEDRAMP_MODERATE))
    named = {c for ids in expected.values() for c in ids}
    for control in catalog.controls.values():
        direct = {k for k, ids in expected.items() if control.id in ids}
        assert set(control.ksi) == direct, control.id
    assert catalog.control("AC-2(1)").ksi == ("KSI-IAM-JIT", "KSI-IAM-SUS")
    assert sum(1 for c in catalog.controls if c in named and "." in c) > 20  # enhancements really are linked
