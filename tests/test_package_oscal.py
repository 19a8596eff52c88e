"""OSCAL assessment-results: schema-valid (NIST's JSON schema), deterministic, evidence linked by hash."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench.synthetic import build_assessment, build_ledger
from bundler.oscal_ar import OSCAL_VERSION, PROP_NS, build_assessment_results
from tests.conftest import shared_data

# The OSCAL release whose schema the documents are validated against (../shared/data/oscal/schemas
# holds v1.1.3 and v1.2.1); the documents must declare it, and the docs name it.
SCHEMA_VERSION = "1.1.3"


def oscal_validator():  # type: ignore[no-untyped-def]
    """A Draft-07 validator whose ``pattern`` keyword uses the ``regex`` package (``\\p{L}``)."""
    import jsonschema
    import regex
    from jsonschema import validators

    def pattern(validator, expected, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, str) and not regex.search(expected, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {expected!r}")

    path = shared_data("oscal", "schemas", f"v{SCHEMA_VERSION}", "oscal_assessment-results_schema.json")
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert f"/oscal/{SCHEMA_VERSION}/" in schema["$id"]
    base = validators.validator_for(schema)
    extended = validators.extend(base, {"pattern": pattern})
    return extended(schema, format_checker=base.FORMAT_CHECKER)


UUID_V4_V5 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
REV5_CONTROL_ID = re.compile(r"[a-z]{2}-\d{1,2}(\.\d{1,2})?")  # ac-2, ac-2.1 (the Rev5 catalog's ids)
REV5_STATEMENT_ID = re.compile(REV5_CONTROL_ID.pattern + r"_smt(\.[a-z0-9]+)*")
TIMESTAMP_KEYS = {"last-modified", "published", "start", "end", "collected", "expires", "date-time-stamp"}


def oscal_reference_problems(doc: dict[str, Any]) -> list[str]:
    """What the schema does not check: UUIDs are v4/v5 and unique, every timestamp has a zone,
    every reference (related observations and risks, subjects, evidence links) names an object
    of the document, and control ids have the Rev5 catalog's form."""
    problems: list[str] = []
    ids: dict[str, str] = {}

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}"
                if (key == "uuid" or key.endswith("-uuid")) and not (isinstance(item, str) and UUID_V4_V5.fullmatch(item)):
                    problems.append(f"{where}: {item!r} is not a v4/v5 UUID")
                if key == "uuid" and isinstance(item, str):
                    if item in ids:
                        problems.append(f"{where}: {item} is also {ids[item]}")
                    ids[item] = where
                if key in TIMESTAMP_KEYS and not (isinstance(item, str)
                                                  and re.search(r"T\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", item)):
                    problems.append(f"{where}: {item!r} has no time zone")
                walk(item, where)
        elif isinstance(value, list):
            for n, item in enumerate(value):
                walk(item, f"{path}[{n}]")

    walk(doc, "")
    ar = doc["assessment-results"]
    resources = {r["uuid"] for r in ar.get("back-matter", {}).get("resources", [])}
    for n, result in enumerate(ar["results"]):
        observations = {o["uuid"] for o in result.get("observations", [])}
        risks = {r["uuid"] for r in result.get("risks", [])}
        local = result.get("local-definitions", {})
        subjects = {c["uuid"] for key in ("components", "inventory-items", "users") for c in local.get(key, [])}
        for selection in result["reviewed-controls"]["control-selections"]:
            for control in selection.get("include-controls", []):
                if not REV5_CONTROL_ID.fullmatch(control["control-id"]):
                    problems.append(f"results[{n}] reviews control {control['control-id']!r}")
        for finding in result.get("findings", []):
            target = finding["target"]
            if target["type"] == "statement-id" and not REV5_STATEMENT_ID.fullmatch(target["target-id"]):
                problems.append(f"finding {finding['uuid']} targets {target['target-id']!r}")
            for rel in finding.get("related-observations", []):
                if rel["observation-uuid"] not in observations:
                    problems.append(f"finding {finding['uuid']} names missing observation {rel['observation-uuid']}")
            for rel in finding.get("related-risks", []):
                if rel["risk-uuid"] not in risks:
                    problems.append(f"finding {finding['uuid']} names missing risk {rel['risk-uuid']}")
        for obs in result.get("observations", []):
            for subject in obs.get("subjects", []):
                if subject["subject-uuid"] not in subjects | resources:
                    problems.append(f"observation {obs['uuid']} names missing subject {subject['subject-uuid']}")
            for evidence in obs.get("relevant-evidence", []):
                if evidence["href"].startswith("#") and evidence["href"][1:] not in resources:
                    problems.append(f"observation {obs['uuid']} links missing resource {evidence['href']}")
        for risk in result.get("risks", []):
            for rel in risk.get("related-observations", []):
                if rel["observation-uuid"] not in observations:
                    problems.append(f"risk {risk['uuid']} names missing observation {rel['observation-uuid']}")
        # an origin's tool is a component of the result's assessment assets
        tools = {c["uuid"] for c in local.get("assessment-assets", {}).get("components", [])}
        origins = [(kind, item["uuid"], origin) for kind in ("observations", "findings")
                   for item in result.get(kind, []) for origin in item.get("origins", [])]
        origins += [("risks", risk["uuid"], c["origin"]) for risk in result.get("risks", [])
                    for c in risk.get("characterizations", [])]
        for kind, uuid, origin in origins:
            for actor in origin["actors"]:
                if actor["type"] == "tool" and actor["actor-uuid"] not in tools:
                    problems.append(f"{kind} {uuid} names missing tool {actor['actor-uuid']}")
    href = ar["import-ap"]["href"]
    if href.startswith("#") and href[1:] not in resources:
        problems.append(f"import-ap names missing resource {href}")
    return problems


@pytest.fixture(scope="module")
def assessment(tmp_path_factory: pytest.TempPathFactory):
    world = build_ledger(tmp_path_factory.mktemp("oscal") / "l.db", entries=300, jobs=3,
                         evidence_text='<b>"quoted" & \u00e9vidence</b>')
    return build_assessment(world, evidence_text='<b>"quoted" & \u00e9vidence</b>')


FILES = {"controls/AU-2.csv": "a" * 64, "controls/IA-5.csv": "b" * 64, "proofs/inclusion.jsonl": "c" * 64,
         "ledger/entries.jsonl": "d" * 64}


def build(assessment):  # type: ignore[no-untyped-def]
    return build_assessment_results(assessment, checkpoint_size=300, checkpoint_root="e" * 64, evidence_files=FILES)


def test_document_is_valid_against_the_oscal_schema(assessment) -> None:
    validator = oscal_validator()
    doc = build(assessment)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:10])
    assert doc["assessment-results"]["metadata"]["oscal-version"] == OSCAL_VERSION
    assert oscal_reference_problems(doc) == []


def test_reference_check_catches_dangling_and_malformed_references(assessment) -> None:
    doc = build(assessment)
    result = doc["assessment-results"]["results"][0]
    result["findings"][0]["related-observations"] = [{"observation-uuid": "0" * 8 + "-0000-4000-8000-" + "0" * 12}]
    result["observations"][0]["collected"] = "2026-11-21T00:00:00"
    result["observations"][0]["subjects"] = [{"subject-uuid": result["uuid"], "type": "component"}]
    result["reviewed-controls"]["control-selections"][0]["include-controls"] = [{"control-id": "AC-2(1)"}]
    doc["assessment-results"]["uuid"] = "6f1e0a52-8c1d-1b0e-9a7e-1f3c2b4d5e6f"  # version 1
    problems = "\n".join(oscal_reference_problems(doc))
    for expected in ("missing observation", "no time zone", "missing subject", "'AC-2(1)'", "not a v4/v5 UUID"):
        assert expected in problems, problems


def test_docs_name_the_oscal_version_the_document_declares() -> None:
    """The document and the docs said 1.1.2 while the document was validated against the v1.1.3 schema."""
    import re

    assert OSCAL_VERSION == SCHEMA_VERSION
    repo = Path(__file__).resolve().parent.parent
    for name in ("README.md", "docs/bundle.md", "bundler/bundle.py", "bundler/oscal_ar.py"):
        named = set(re.findall(r"OSCAL (\d+\.\d+\.\d+)", (repo / name).read_text(encoding="utf-8")))
        assert named == {OSCAL_VERSION}, f"{name} names OSCAL {', '.join(sorted(named))}"


def test_validator_catches_a_broken_document(assessment) -> None:
    validator = oscal_validator()
    doc = build(assessment)
    doc["assessment-results"]["results"][0]["findings"][0]["target"]["status"]["state"] = "mostly-fine"
    del doc["assessment-results"]["uuid"]
    assert len(list(validator.iter_errors(doc))) >= 2


def test_same_inputs_give_the_same_document(assessment) -> None:
    assert json.dumps(build(assessment), sort_keys=True) == json.dumps(build(assessment), sort_keys=True)
    other = build_assessment_results(assessment, checkpoint_size=301, checkpoint_root="f" * 64, evidence_files=FILES)
    assert other["assessment-results"]["uuid"] != build(assessment)["assessment-results"]["uuid"]


def test_findings_states_and_evidence_links(assessment) -> None:
    doc = build(assessment)["assessment-results"]
    result = doc["results"][0]
    states = {f["target"]["target-id"]: f["target"]["status"]["state"] for f in result["findings"]}
    assert states["ia-5_smt"] == "not-satisfied" and states["au-2_smt"] == "satisfied"
    assert "ac-2.4_smt" not in states and "AC-2(4)" in result["remarks"]  # not assessed: no finding
    resources = {r["uuid"]: r for r in doc["back-matter"]["resources"]}
    by_title = {r["title"]: r for r in resources.values()}
    assert by_title["controls/AU-2.csv"]["rlinks"][0]["hashes"] == [{"algorithm": "SHA-256", "value": "a" * 64}]
    assert by_title["controls/AU-2.csv"]["rlinks"][0]["href"] == "../controls/AU-2.csv"
    observations = {o["uuid"]: o for o in result["observations"]}
    for finding in result["findings"]:
        for rel in finding.get("related-observations", []):
            assert rel["observation-uuid"] in observations
    for obs in observations.values():
        for ev in obs.get("relevant-evidence", []):
            assert ev["href"][1:] in resources


def test_shipped_example_passes_our_validator() -> None:
    # Guards the validator itself: NIST's own example must be valid under it.
    example = shared_data("oscal", "nist_oscal_content_examples", "ifa_assessment-results-example-min.json")
    doc = json.loads(Path(example).read_text(encoding="utf-8"))
    errors = list(oscal_validator().iter_errors(doc))
    assert not errors, errors[0].message[:300]


# -- what an assessor or an importing tool needs beyond the schema ------------------------------


def _reviewed(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for s in result["reviewed-controls"]["control-selections"] for c in s.get("include-controls", [])]


def test_reviewed_controls_are_exactly_the_assessed_ones(assessment) -> None:
    """reviewed-controls listed the not-assessed AC-2(4) as reviewed, and with no control at all
    claimed ``include-all`` (every control of the plan reviewed)."""
    from dataclasses import replace

    result = build(assessment)["assessment-results"]["results"][0]
    assessed = [c.control_id for c in assessment.controls if c.status != "not-assessed"]
    assert [c["control-id"] for c in _reviewed(result)] == assessed
    # the statement each finding targets
    assert all(c["statement-ids"] == [f"{c['control-id']}_smt"] for c in _reviewed(result))
    assert {f["target"]["target-id"] for f in result["findings"]} == {f"{c}_smt" for c in assessed}

    none = replace(assessment, controls=tuple(replace(c, status="not-assessed") for c in assessment.controls))
    doc = build(none)
    result = doc["assessment-results"]["results"][0]
    assert _reviewed(result) == [] and all("include-all" not in s for s in result["reviewed-controls"]["control-selections"])
    assert not list(oscal_validator().iter_errors(doc))


def test_import_ap_names_a_resource_of_the_document_not_a_report_page(assessment) -> None:
    """import-ap pointed at ../index.html, an HTML page, as if it were the assessment plan."""
    doc = build(assessment)["assessment-results"]
    href = doc["import-ap"]["href"]
    assert href.startswith("#"), href
    resources = {r["uuid"]: r for r in doc["back-matter"]["resources"]}
    plan = resources[href[1:]]
    assert "no OSCAL assessment plan" in plan["description"]
    # with no evidence files at all, the reference still resolves
    alone = build_assessment_results(assessment, checkpoint_size=300, checkpoint_root="e" * 64, evidence_files={})
    assert oscal_reference_problems(alone) == []


def test_every_entry_a_finding_cites_is_named_by_seq_with_its_proof(assessment) -> None:
    """An OSCAL finding said how many evaluation findings there were, in prose: which ledger entries
    show each one could not be read from the document (the control CSV lists every supporting entry,
    not which ones a finding cites)."""
    doc = build(assessment)["assessment-results"]
    result = doc["results"][0]
    proofs = next(r["uuid"] for r in doc["back-matter"]["resources"] if r["title"] == "proofs/inclusion.jsonl")
    observations = {o["uuid"]: o for o in result["observations"]}
    cited = 0
    for control in assessment.controls:
        if not control.findings:
            continue
        finding = next(f for f in result["findings"] if f["target"]["target-id"] == f"{control.control_id}_smt")
        related = [observations[r["observation-uuid"]] for r in finding["related-observations"]]
        for evaluated in control.findings:
            named = [o for o in related if {"name": "finding-id", "ns": PROP_NS, "value": evaluated.id} in o.get("props", [])]
            assert len(named) == 1, evaluated.id
            obs = named[0]
            assert obs["types"] == ["finding"]
            seqs = [int(p["value"]) for p in obs["props"] if p["name"] == "ledger-seq"]
            assert seqs == list(evaluated.seqs)
            assert f"#{proofs}" in {e["href"] for e in obs["relevant-evidence"]}
            cited += len(seqs)
    assert cited > 0


def test_not_satisfied_findings_carry_open_risks(assessment) -> None:
    """A not-satisfied finding had no risk: nothing for a POA&M to pick up."""
    doc = build(assessment)
    result = doc["assessment-results"]["results"][0]
    risks = {r["uuid"]: r for r in result.get("risks", [])}
    for finding in result["findings"]:
        control = assessment.control(finding["target"]["target-id"].removesuffix("_smt"))
        related = [risks[r["risk-uuid"]] for r in finding.get("related-risks", [])]
        if finding["target"]["status"]["state"] == "satisfied":
            assert related == []
            continue
        assert len(related) == len(control.findings) > 0
        for risk, evaluated in zip(related, control.findings):
            assert risk["status"] == "open"
            facets = risk["characterizations"][0]["facets"]
            assert {"name": "severity", "system": PROP_NS, "value": evaluated.severity} in facets
            assert risk["related-observations"]
    assert oscal_reference_problems(doc) == []


def test_observations_findings_and_risks_name_the_tool_that_made_them(assessment) -> None:
    """Nothing said who or what made an observation: an importer could not tell an automated
    fedledger result from an assessor's."""
    doc = build(assessment)
    result = doc["assessment-results"]["results"][0]
    tools = result["local-definitions"]["assessment-assets"]["components"]
    assert [t["title"] for t in tools] == ["fedledger"]
    for kind in ("observations", "findings"):
        for item in result[kind]:
            assert item["origins"] == [{"actors": [{"type": "tool", "actor-uuid": tools[0]["uuid"]}]}], kind
    for risk in result["risks"]:
        assert risk["characterizations"][0]["origin"] == {"actors": [{"type": "tool", "actor-uuid": tools[0]["uuid"]}]}
    assert oscal_reference_problems(doc) == []
    # metadata.version names this document's revision (it was the tool's version, the same for every
    # document); the tool's version is on the tool
    made = build_assessment_results(assessment, checkpoint_size=300, checkpoint_root="e" * 64, evidence_files=FILES,
                                    tool_version="9.9.9")["assessment-results"]
    assert made["metadata"]["version"] == f"{assessment.as_of} checkpoint 300"
    assert {"name": "version", "ns": PROP_NS, "value": "9.9.9"} in made["results"][0]["local-definitions"][
        "assessment-assets"]["components"][0]["props"]


def test_document_uuid_changes_when_its_content_does(assessment) -> None:
    """The document UUID came from the origin, checkpoint, as-of and baseline only: a bundle of the
    same ledger at the same as-of over another period (other findings) had the same UUID. OSCAL:
    the document's UUID should change when the document is revised."""
    from dataclasses import replace

    other = replace(assessment, period_start="2026-11-10T00:00:00Z")
    assert build(other)["assessment-results"]["uuid"] != build(assessment)["assessment-results"]["uuid"]
    assert build(assessment)["assessment-results"]["uuid"] == build(assessment)["assessment-results"]["uuid"]


def test_compliance_trestle_loads_the_document(assessment, tmp_path: Path) -> None:
    """An import check with compliance-trestle's pydantic models (extra fields forbidden)."""
    models = pytest.importorskip("trestle.oscal.assessment_results",
                                 reason="compliance-trestle is not installed (optional import check)")
    path = tmp_path / "assessment-results.json"
    path.write_text(json.dumps(build(assessment)), encoding="utf-8")
    loaded = models.AssessmentResults.oscal_read(path)
    assert loaded is not None and len(loaded.results[0].findings) == len(build(assessment)["assessment-results"]["results"][0]["findings"])


def test_prop_values_from_evidence_stay_schema_valid(assessment) -> None:
    """Finding ids and policy check names come from evidence and file names: a line break or edge
    space is not an OSCAL string, so such a value is written as its JSON string literal."""
    from dataclasses import replace

    control = assessment.control("ia-5")
    odd = " policy\nname "
    finding = replace(control.findings[0], id=" key:\njob ", check=odd)
    check = replace(control.checks[0], findings=(finding,),
                    observations=tuple(replace(o, check=odd) for o in control.checks[0].observations))
    changed = replace(control, findings=(finding,), checks=(check,))
    hostile = replace(assessment, controls=tuple(changed if c.control_id == "ia-5" else c for c in assessment.controls))
    doc = build(hostile)
    assert not list(oscal_validator().iter_errors(doc))
    values = {p["value"] for o in doc["assessment-results"]["results"][0]["observations"] for p in o.get("props", [])}
    assert json.dumps(" key:\njob ") in values and json.dumps(odd) in values
