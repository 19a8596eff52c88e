"""Who the package is about and who assessed it: ``[bundle] organization`` / ``assessor`` and
``fedledger bundle --organization`` / ``--assessor``.

The OSCAL assessment-results named no party and no role: the document never said whose system
was assessed or by which assessment organization, and neither did the index. With the names
given, the metadata has the parties (organizations), the roles (``prepared-for``, OSCAL's own
role for the organization the content was made for; ``assessor``, FedRAMP's SAR role for the
assessment organization) and the responsible parties; without them the document is as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.synthetic import build_assessment, build_ledger
from bundler import render
from bundler.oscal_ar import build_assessment_results
from bundler.party_names import PARTY_NAME_MAX_CHARS, party_name_problem
from collector.cli import app
from collector.config import ConfigInvalid, parse_config
from collector.errors import UsageError
from tests.ops_workspace import AS_OF as WS_AS_OF
from tests.ops_workspace import Workspace, make_workspace, manual_source, write_events
from tests.synthetic_jobs import write_cli_ledger
from tests.test_package_oscal import UUID_V4_V5, oscal_reference_problems, oscal_validator

ORG = "Acme Cloud, Inc."
ASSESSOR = "Example Assessment Services LLC"
FILES = {"controls/AU-2.csv": "a" * 64, "proofs/inclusion.jsonl": "c" * 64}


@pytest.fixture(scope="module")
def assessment(tmp_path_factory: pytest.TempPathFactory):
    world = build_ledger(tmp_path_factory.mktemp("parties") / "l.db", entries=120, jobs=2)
    return build_assessment(world)


def build(assessment, *, organization: str | None = None,  # type: ignore[no-untyped-def]
          assessor: str | None = None) -> dict[str, Any]:
    return build_assessment_results(assessment, checkpoint_size=120, checkpoint_root="e" * 64,
                                    evidence_files=FILES, organization=organization, assessor=assessor)


def party_problems(doc: dict[str, Any]) -> list[str]:
    """What the schema does not check in the metadata: every responsible party's role is a role
    of the document and every party it names is a party of it (OSCAL's index-has-key
    constraints), a role is given to parties once (is-unique), party UUIDs are unique."""
    metadata = doc["assessment-results"]["metadata"]
    roles = [r["id"] for r in metadata.get("roles", [])]
    parties = [p["uuid"] for p in metadata.get("parties", [])]
    problems = [f"role {r} defined twice" for r in set(roles) if roles.count(r) > 1]
    problems += [f"party {p} defined twice" for p in set(parties) if parties.count(p) > 1]
    given = [rp["role-id"] for rp in metadata.get("responsible-parties", [])]
    problems += [f"role {r} given twice" for r in set(given) if given.count(r) > 1]
    for rp in metadata.get("responsible-parties", []):
        if rp["role-id"] not in roles:
            problems.append(f"responsible party names undefined role {rp['role-id']}")
        problems += [f"{rp['role-id']} names missing party {p}" for p in rp["party-uuids"] if p not in parties]
    return problems


def responsible(doc: dict[str, Any]) -> dict[str, list[str]]:
    """role id -> the names of its parties."""
    metadata = doc["assessment-results"]["metadata"]
    names = {p["uuid"]: p["name"] for p in metadata.get("parties", [])}
    return {rp["role-id"]: [names[u] for u in rp["party-uuids"]] for rp in metadata.get("responsible-parties", [])}


# -- the OSCAL document ------------------------------------------------------------------------


def test_the_organization_and_the_assessor_are_parties_with_oscal_roles(assessment) -> None:
    doc = build(assessment, organization=ORG, assessor=ASSESSOR)
    errors = list(oscal_validator().iter_errors(doc))
    assert not errors, errors[0].message[:300]
    assert oscal_reference_problems(doc) == [] and party_problems(doc) == []
    metadata = doc["assessment-results"]["metadata"]
    assert responsible(doc) == {"prepared-for": [ORG], "assessor": [ASSESSOR]}
    assert [r["id"] for r in metadata["roles"]] == ["prepared-for", "assessor"]
    assert all(p["type"] == "organization" and UUID_V4_V5.fullmatch(p["uuid"]) for p in metadata["parties"])
    # the tool does not know who ran it: no party is claimed to have prepared the document
    assert "prepared-by" not in responsible(doc)


def test_without_names_the_document_is_as_before(assessment) -> None:
    """No empty arrays (the schema forbids them) and no placeholder party."""
    plain = build(assessment)
    assert plain == build(assessment, organization=None, assessor=None)
    assert not {"roles", "parties", "responsible-parties"} & set(plain["assessment-results"]["metadata"])
    assert not list(oscal_validator().iter_errors(plain))


@pytest.mark.parametrize(("names", "expected"), [
    ({"organization": ORG}, {"prepared-for": [ORG]}),
    ({"assessor": ASSESSOR}, {"assessor": [ASSESSOR]}),
])
def test_either_name_alone(assessment, names: dict[str, str], expected: dict[str, list[str]]) -> None:
    doc = build(assessment, organization=names.get("organization"), assessor=names.get("assessor"))
    assert responsible(doc) == expected and party_problems(doc) == []
    assert [r["id"] for r in doc["assessment-results"]["metadata"]["roles"]] == list(expected)
    assert not list(oscal_validator().iter_errors(doc))


def test_an_organization_that_assesses_itself_is_one_party_in_both_roles(assessment) -> None:
    doc = build(assessment, organization=ORG, assessor=ORG)
    assert len(doc["assessment-results"]["metadata"]["parties"]) == 1
    assert responsible(doc) == {"prepared-for": [ORG], "assessor": [ORG]}
    assert party_problems(doc) == [] and oscal_reference_problems(doc) == []
    assert not list(oscal_validator().iter_errors(doc))


def test_a_party_keeps_its_uuid_across_documents_and_the_document_uuid_follows_the_names(assessment) -> None:
    """A party is the same subject in every document (as the tool is); the document's UUID is of
    its content, so naming the parties gives another document UUID."""
    one = build(assessment, organization=ORG, assessor=ASSESSOR)
    later = build_assessment_results(assessment, checkpoint_size=121, checkpoint_root="f" * 64,
                                     evidence_files=FILES, organization=ORG, assessor=ASSESSOR)

    def uuids(doc: dict[str, Any]) -> dict[str, str]:
        return {p["name"]: p["uuid"] for p in doc["assessment-results"]["metadata"]["parties"]}

    assert uuids(one) == uuids(later) and len(set(uuids(one).values())) == 2
    assert uuids(build(assessment, organization="Other Org"))["Other Org"] != uuids(one)[ORG]
    assert json.dumps(one, sort_keys=True) == json.dumps(build(assessment, organization=ORG, assessor=ASSESSOR),
                                                         sort_keys=True)
    ids = {build(assessment)["assessment-results"]["uuid"], one["assessment-results"]["uuid"],
           build(assessment, organization=ORG)["assessment-results"]["uuid"]}
    assert len(ids) == 3


def test_the_builder_refuses_a_name_that_is_not_plain_text(assessment) -> None:
    with pytest.raises(UsageError, match="organization must be plain text on one line"):
        build(assessment, organization="Acme\nCloud")
    with pytest.raises(UsageError, match="assessor must not be empty"):
        build(assessment, assessor="  ")


# -- the rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [ORG, "Société Générale", "株式会社サンプル", "A", "x" * PARTY_NAME_MAX_CHARS,
                                  "O'Brien & Partners <3PAO>", "Acme\u00a0Cloud"])
def test_plain_one_line_names_are_accepted(name: str) -> None:
    assert party_name_problem(name) is None


@pytest.mark.parametrize(("name", "reason"), [
    ("", "must not be empty"),
    ("x" * (PARTY_NAME_MAX_CHARS + 1), f"is {PARTY_NAME_MAX_CHARS + 1} characters long; at most {PARTY_NAME_MAX_CHARS}"),
    ("Acme\nCloud", "character 5 is U+000A"),
    ("Acme\tCloud", "character 5 is U+0009"),
    ("Acme\x1b[31m", "character 5 is U+001B"),
    ("Acme\x7f", "character 5 is U+007F"),
    ("Acme\u2028Cloud", "character 5 is U+2028"),
    ("Acme\u202egpj", "character 5 is U+202E"),  # right-to-left override
    ("Ac\u200bme", "character 3 is U+200B"),  # zero-width space
    ("Acme\ufe0f", "character 5 is U+FE0F"),  # variation selector
    ("Acme\udc80", "character 5 is U+DC80"),  # an undecodable byte in argv
])
def test_names_that_are_not_plain_text_on_one_line_are_refused(name: str, reason: str) -> None:
    problem = party_name_problem(name)
    assert problem is not None and reason in problem


# -- the index ---------------------------------------------------------------------------------


def test_the_index_names_the_organization_and_the_assessor_escaped(assessment) -> None:
    facts = render.BundleFacts("System", assessment.origin, 120, "ab" * 32, "note",
                               organization='Acme <b>"Cloud"</b> & Co', assessor=ASSESSOR)
    html = render.render_index(assessment, facts)
    assert "<dt>Organization</dt><dd>Acme &lt;b&gt;&#34;Cloud&#34;&lt;/b&gt; &amp; Co</dd>" in html
    assert f"<dt>Assessment organization</dt><dd>{ASSESSOR}</dd>" in html
    assert render.render_index(assessment, facts) == html
    plain = render.render_index(assessment, render.BundleFacts("System", assessment.origin, 120, "ab" * 32, "note"))
    assert "<dt>Organization</dt>" not in plain and "<dt>Assessment organization</dt>" not in plain


# -- fedledger.toml ----------------------------------------------------------------------------

BASE = '[ledger]\npath = "l.db"\norigin = "example.gov/x"\n\n'


def test_config_names_are_read_and_trimmed() -> None:
    cfg = parse_config(BASE + f'[bundle]\norganization = "  {ORG} "\nassessor = "{ASSESSOR}"\n',
                       Path("/etc/fedledger/fedledger.toml"))
    assert cfg.bundle.organization == ORG and cfg.bundle.assessor == ASSESSOR
    plain = parse_config(BASE + '[bundle]\nbaseline = "moderate"\n', Path("/etc/fedledger/fedledger.toml"))
    assert plain.bundle.organization is None and plain.bundle.assessor is None


@pytest.mark.parametrize(("value", "reason"), [
    ('"Acme\\u0007Cloud"', "bundle.organization must be plain text on one line: character 5 is U+0007, "
                          "a control or invisible character"),
    ('"""Acme\nCloud"""', "bundle.organization must be plain text on one line: character 5 is U+000A, "
                         "a control or invisible character"),
    ('"   "', "bundle.organization must not be empty"),
    (f'"{"x" * 201}"', "bundle.organization is 201 characters long; at most 200"),
    ("42", "bundle.organization must be a string, not an integer"),
])
def test_a_bad_config_name_is_one_problem_with_its_file_and_line(value: str, reason: str) -> None:
    text = BASE + f'[bundle]\nbaseline = "moderate"\norganization = {value}\nassessor = "{ASSESSOR}"\n'
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("organization"))
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text, Path("/etc/fedledger/fedledger.toml"))
    assert info.value.problems == [f"/etc/fedledger/fedledger.toml:{line}: {reason}"]


def test_a_bad_assessor_in_the_config_names_its_line() -> None:
    text = BASE + '[bundle]\nassessor = "3PAO\\u202eCLT"\n'
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text, Path("/etc/fedledger/fedledger.toml"))
    assert info.value.problems == ["/etc/fedledger/fedledger.toml:6: bundle.assessor must be plain text on one "
                                   "line: character 5 is U+202E, a control or invisible character"]


# -- the commands ------------------------------------------------------------------------------

AS_OF = "2026-11-21T00:00:00Z"


@pytest.fixture(scope="module")
def ledger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cli_ledger(tmp_path_factory.mktemp("parties-cli"), jobs=1, api_calls=1)


def cli(ledger_dir: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--ledger", str(ledger_dir / "fedledger.db"), *args])


def oscal_of(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "oscal" / "assessment-results.json").read_text(encoding="utf-8"))


def test_bundle_options_name_the_parties_in_oscal_and_on_the_index(ledger_dir: Path) -> None:
    out = ledger_dir / "named"
    result = cli(ledger_dir, "bundle", "--out", str(out), "--controls", "AU-2", "--as-of", AS_OF,
                 "--organization", f" {ORG}", "--assessor", "Tom & Jerry <3PAO>")
    assert result.exit_code == 0, result.stderr
    doc = oscal_of(out)
    assert responsible(doc) == {"prepared-for": [ORG], "assessor": ["Tom & Jerry <3PAO>"]}
    assert not list(oscal_validator().iter_errors(doc)) and party_problems(doc) == []
    html = (out / "index.html").read_text(encoding="utf-8")
    assert f"<dt>Organization</dt><dd>{ORG}</dd>" in html
    assert "<dt>Assessment organization</dt><dd>Tom &amp; Jerry &lt;3PAO&gt;</dd>" in html
    from pypdf import PdfReader

    cover = PdfReader(out / "index.pdf").pages[0].extract_text()
    assert ORG in cover and "Tom & Jerry <3PAO>" in cover
    verified = cli(ledger_dir, "verify-bundle", str(out), "--trusted-key", str(ledger_dir / "fedledger.pub"),
                   "--origin", doc["assessment-results"]["results"][0]["props"][0]["value"])
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    # same ledger, as-of and names: the same bytes
    again = ledger_dir / "named-again"
    assert cli(ledger_dir, "bundle", "--out", str(again), "--controls", "AU-2", "--as-of", AS_OF,
               "--organization", ORG, "--assessor", "Tom & Jerry <3PAO>").exit_code == 0
    for name in ("MANIFEST.json", "index.html", "oscal/assessment-results.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


@pytest.mark.parametrize(("option", "value", "reason"), [
    ("--organization", "Acme\nCloud", "--organization must be plain text on one line: character 5 is U+000A, "
                                      "a control or invisible character"),
    ("--assessor", "", "--assessor must not be empty"),
    ("--assessor", "x" * 201, "--assessor is 201 characters long; at most 200"),
])
def test_a_bad_name_option_exits_2_before_anything_is_written(ledger_dir: Path, option: str, value: str,
                                                             reason: str) -> None:
    out = ledger_dir / "refused"
    result = cli(ledger_dir, "bundle", "--out", str(out), "--controls", "AU-2", "--as-of", AS_OF, option, value)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {reason}"]
    assert not out.exists()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("parties-config")
    write_events(root / "events" / "a.jsonl", 5)
    return make_workspace(root, manual_source("reviews", "events/a.jsonl"),
                          extra_toml=f'[bundle]\ncontrols = ["AU-2"]\norganization = "{ORG}"\n'
                                     f'assessor = "{ASSESSOR}"\n')


def test_bundle_and_run_bundle_take_the_names_from_the_config(ws: Workspace) -> None:
    ran = ws.cli("--format", "json", "run", "--config", str(ws.config), "--as-of", WS_AS_OF, "--bundle")
    assert ran.exit_code == 0, ran.stdout + ran.stderr
    run_bundle = Path(json.loads(ran.stdout)["bundle_summary"]["out"])
    assert responsible(oscal_of(run_bundle)) == {"prepared-for": [ORG], "assessor": [ASSESSOR]}
    assert f"<dt>Organization</dt><dd>{ORG}</dd>" in (run_bundle / "index.html").read_text(encoding="utf-8")

    made = ws.cli("bundle", "--config", str(ws.config), "--as-of", WS_AS_OF, "--out", str(ws.root / "b1"))
    assert made.exit_code == 0, made.stderr
    assert responsible(oscal_of(ws.root / "b1")) == {"prepared-for": [ORG], "assessor": [ASSESSOR]}
    # an option wins over the config, as every other bundle option does
    other = ws.cli("bundle", "--config", str(ws.config), "--as-of", WS_AS_OF, "--out", str(ws.root / "b2"),
                   "--assessor", "Another 3PAO")
    assert other.exit_code == 0, other.stderr
    assert responsible(oscal_of(ws.root / "b2")) == {"prepared-for": [ORG], "assessor": ["Another 3PAO"]}


def test_config_check_reports_the_names(ws: Workspace) -> None:
    checked = ws.cli("--format", "json", "config", "check", "--config", str(ws.config))
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    bundle = json.loads(checked.stdout)["bundle"]
    assert (bundle["organization"], bundle["assessor"]) == (ORG, ASSESSOR)


def test_a_bad_name_in_the_config_stops_bundle_with_file_and_line(ws: Workspace) -> None:
    bad = ws.root / "bad.toml"
    text = ws.config.read_text(encoding="utf-8").replace(f'organization = "{ORG}"', 'organization = "Acme\\tCloud"')
    bad.write_text(text, encoding="utf-8")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("organization"))
    error = (f"error: {bad}:{line}: bundle.organization must be plain text on one line: character 5 is U+0009, "
             "a control or invisible character")
    made = ws.cli("bundle", "--out", str(ws.root / "never"), "--config", str(bad), "--as-of", WS_AS_OF)
    assert made.exit_code == 2 and made.stderr.strip().splitlines() == [error]
    # run and config check tally the config's problems
    for args in (("run", "--bundle", "--as-of", WS_AS_OF), ("config", "check")):
        ran = ws.cli(*args, "--config", str(bad))
        assert ran.exit_code == 2 and ran.stderr.strip().splitlines() == [error, f"1 problem(s) in {bad}"], args
    assert not (ws.root / "never").exists()
