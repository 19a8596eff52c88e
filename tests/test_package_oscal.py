"""OSCAL assessment-results: schema-valid (NIST's JSON schema), deterministic, evidence linked by hash."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench.synthetic import build_assessment, build_ledger
from bundler.oscal_ar import OSCAL_VERSION, build_assessment_results
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
