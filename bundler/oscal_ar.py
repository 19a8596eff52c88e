"""OSCAL 1.1.3 assessment-results from an Assessment (pure: data in, a JSON document out).

Evidence is linked, not copied: every file the observations rely on (a control's
CSV of supporting entries, the ledger slice, the inclusion proofs) is a back-matter
resource whose ``rlinks`` carry its SHA-256, and observations point at those
resources through ``relevant-evidence``. Object UUIDs are version 5 UUIDs derived from
the origin, checkpoint, as-of and baseline and the object's own id (the same subject
keeps its UUID); the document's UUID is derived from its whole content, so it changes
when anything in the document does. The same inputs give the same document, byte for byte.

Findings target each assessed control's statement (``ac-2_smt``) with objective status
``satisfied`` or ``not-satisfied``; ``reviewed-controls`` names exactly those controls.
Each evaluation finding is an observation of type ``finding`` that names the ledger
entries it cites (``ledger-seq`` props; ``proofs/inclusion.jsonl`` has each one's leaf
hash and inclusion proof) and, for a not-satisfied control, an open risk. Observations,
findings and risks name fedledger (a tool of the result's assessment assets) as their
origin. Controls "not assessed by this tool" get no finding (OSCAL has no such state)
and are not reviewed controls; they are listed in the result's remarks. There is no
OSCAL assessment plan: ``import-ap`` names a back-matter resource that says so.

Given their names, the metadata names the organization whose system was assessed (a party in
OSCAL's ``prepared-for`` role: the organization the content was made for, FedRAMP's SAR
template "typically the CSP") and the assessment organization (a party in the ``assessor``
role of FedRAMP's SAR template and NIST's examples). No party is named ``prepared-by``: the tool
does not know who ran it. A party's UUID is derived from its name alone, so the same
organization keeps its UUID in every document. Without names there are no roles or parties.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from bundler.model import NOT_ASSESSED, Assessment, Finding
from bundler.party_names import require_party_name
from bundler.render import display_id, file_stem

OSCAL_VERSION = "1.1.3"
NAMESPACE = uuid.UUID("6f1e0a52-8c1d-5b0e-9a7e-1f3c2b4d5e6f")
PROP_NS = "https://fedledger.dev/ns/oscal"
# The tool is the same subject in every document: one UUID for it and its platform.
TOOL_UUID = str(uuid.uuid5(NAMESPACE, "tool|fedledger"))
PLATFORM_UUID = str(uuid.uuid5(NAMESPACE, "assessment-platform|fedledger"))
# OSCAL's string datatype: no leading or trailing whitespace, no line break.
_PROP_VALUE = re.compile(r"\S(?:[^\n\r]*\S)?")


# Characters that make Markdown anywhere in a line (links, images, raw HTML and autolinks,
# entities, code, emphasis, OSCAL's {{ insert: param, … }}, ~sub~ and ^sup^, tables), and the
# ones that start a block at the beginning of a line (headings, list items, setext underlines,
# ordered list numbers).
_INLINE_MARKUP = re.compile(r"([\\`*_\[\]<>&{}~^|])")
_LINE_START_MARKUP = re.compile(r"(^|[\r\n])([ \t]*)(?:([#+=-])|(\d+)([.)]))")


def markdown_text(text: str) -> str:
    """*text* as OSCAL markup (Markdown in JSON) that renders as exactly *text*.

    OSCAL descriptions, remarks and titles are markup: a renderer turns ``[x](javascript:…)``
    into a link and ``![](https://…)`` into an image it fetches. Evaluation text quotes
    evidence, so every character that would make markup is backslash-escaped (CommonMark lets
    any ASCII punctuation be escaped); undoing the escapes gives the text back."""
    escaped = _INLINE_MARKUP.sub(r"\\\1", text)

    def line_start(match: re.Match[str]) -> str:
        head = match.group(1) + match.group(2)
        if match.group(3):
            return f"{head}\\{match.group(3)}"
        return f"{head}{match.group(4)}\\{match.group(5)}"

    return _LINE_START_MARKUP.sub(line_start, escaped)


def _uuid(seed: str, kind: str, key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{seed}|{kind}|{key}"))


def _prop(name: str, value: str) -> dict[str, str]:
    """A fedledger prop. A value OSCAL cannot hold as it is (evidence-derived text with line
    breaks, control characters or edge whitespace) is written as its JSON string literal."""
    if not _PROP_VALUE.fullmatch(value) or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        value = json.dumps(value)
    return {"name": name, "ns": PROP_NS, "value": value}


def _method(method: str) -> str:
    return {"AUTOMATED": "TEST"}.get(method, method if method in ("EXAMINE", "INTERVIEW", "TEST") else "UNKNOWN")


def _tool_origin() -> dict[str, Any]:
    return {"actors": [{"type": "tool", "actor-uuid": TOOL_UUID}]}


# (role id, title, description) of each party the bundle can name, in document order.
_ROLES = {
    "organization": ("prepared-for", "Prepared For",
                     "The organization whose system was assessed, for which these results were prepared."),
    "assessor": ("assessor", "Assessment Organization", "The organization performing the assessment."),
}


def _party_metadata(names: Mapping[str, str | None]) -> dict[str, Any]:
    """``roles``, ``parties`` and ``responsible-parties`` for the named parties (*names*: a key of
    ``_ROLES`` to a name or None); nothing when none is named (OSCAL forbids empty arrays)."""
    roles: list[dict[str, str]] = []
    parties: list[dict[str, str]] = []
    responsible: list[dict[str, Any]] = []
    for key, (role_id, title, description) in _ROLES.items():
        name = names.get(key)
        if name is None:
            continue
        name = require_party_name(name, what=key)
        party_uuid = str(uuid.uuid5(NAMESPACE, f"party|organization|{name}"))
        if all(p["uuid"] != party_uuid for p in parties):  # an organization that assesses itself is one party
            parties.append({"uuid": party_uuid, "type": "organization", "name": name})
        roles.append({"id": role_id, "title": title, "description": description})
        responsible.append({"role-id": role_id, "party-uuids": [party_uuid]})
    if not parties:
        return {}
    return {"roles": roles, "parties": parties, "responsible-parties": responsible}


def build_assessment_results(
    assessment: Assessment,
    *,
    checkpoint_size: int,
    checkpoint_root: str,
    evidence_files: Mapping[str, str],
    tool_version: str = "0.1.0",
    organization: str | None = None,
    assessor: str | None = None,
) -> dict[str, Any]:
    """The assessment-results document.

    *evidence_files* maps bundle-relative paths (``controls/AU-9.csv``,
    ``ledger/entries.jsonl``, ...) to their SHA-256 hex; each becomes a resource.
    Hrefs are relative to ``oscal/`` where the document is written. *organization* (whose
    system was assessed) and *assessor* (the assessment organization), when given, become
    parties of the metadata; a name that is not plain text on one line is a
    :class:`~collector.errors.UsageError` (:mod:`bundler.party_names`).
    """
    parties = _party_metadata({"organization": organization, "assessor": assessor})
    seed = f"{assessment.origin}|{checkpoint_size}|{checkpoint_root}|{assessment.as_of}|{assessment.baseline}"
    resources: list[dict[str, Any]] = []
    resource_uuid: dict[str, str] = {}
    for name, digest in sorted(evidence_files.items()):
        rid = _uuid(seed, "resource", name)
        resource_uuid[name] = rid
        media = "text/csv" if name.endswith(".csv") else "application/json" if name.endswith((".json", ".jsonl")) else "text/plain"
        resources.append({
            "uuid": rid,
            "title": name,
            "description": f"Bundle file {name}, covered by the signed MANIFEST.json.",
            "rlinks": [{"href": f"../{name}", "media-type": media,
                        "hashes": [{"algorithm": "SHA-256", "value": digest}]}],
        })
    # import-ap must name a plan; there is none, and this resource says so rather than passing
    # a report page off as one. index.html is rewritten after this document when the PDF renderer
    # refuses a URL, so its link carries no hash (MANIFEST.json covers it).
    plan_uuid = _uuid(seed, "resource", "assessment-plan")
    resources.append({
        "uuid": plan_uuid,
        "title": "Assessment plan: none (fedledger continuous monitoring)",
        "description": (f"There is no OSCAL assessment plan: fedledger assessed the controls named in "
                        f"reviewed-controls (baseline {markdown_text(assessment.baseline)}) with its automated checks "
                        f"over the signed evidence ledger. The bundle's index.html describes the evaluation."),
        "rlinks": [{"href": "../index.html", "media-type": "text/html"}],
    })

    def evidence_for(control_id: str) -> list[dict[str, Any]]:
        links = []
        csv_name = f"controls/{file_stem(control_id)}.csv"
        if csv_name in resource_uuid:
            links.append({"href": f"#{resource_uuid[csv_name]}",
                          "description": f"Every ledger entry supporting {display_id(control_id)}"})
        if "proofs/inclusion.jsonl" in resource_uuid:
            links.append({"href": f"#{resource_uuid['proofs/inclusion.jsonl']}",
                          "description": f"Inclusion proofs against the checkpoint of size {checkpoint_size}"})
        return links

    def evidence_for_finding(finding: Finding) -> list[dict[str, Any]]:
        links = []
        if "proofs/inclusion.jsonl" in resource_uuid:
            links.append({"href": f"#{resource_uuid['proofs/inclusion.jsonl']}",
                          "description": ("The leaf hash and inclusion proof of each cited entry (ledger-seq), "
                                          f"against the checkpoint of size {checkpoint_size}")})
        if "ledger/entries.jsonl" in resource_uuid:
            links.append({"href": f"#{resource_uuid['ledger/entries.jsonl']}",
                          "description": "The cited entries as stored (line seq + 1)"})
        for control_id in finding.controls:
            csv_name = f"controls/{file_stem(control_id)}.csv"
            if csv_name in resource_uuid:
                links.append({"href": f"#{resource_uuid[csv_name]}",
                              "description": f"Every ledger entry supporting {display_id(control_id)}"})
        return links

    observations: list[dict[str, Any]] = []
    observation_ids: dict[str, list[str]] = {}
    finding_observation: dict[str, str] = {}  # evaluation finding id -> observation uuid (one per finding)
    for control in assessment.controls:
        if control.status == NOT_ASSESSED:
            continue
        oid = _uuid(seed, "observation", f"control:{control.control_id}")
        observation_ids.setdefault(control.control_id, []).append(oid)
        obs: dict[str, Any] = {
            "uuid": oid,
            "title": f"Ledger evidence for {display_id(control.control_id)}",
            "description": f"{len(set(control.seqs))} ledger entries were examined for {display_id(control.control_id)}.",
            "props": [_prop("ledger-entries", str(len(set(control.seqs))))],
            "methods": ["TEST"],
            "types": ["control-objective"],
            "origins": [_tool_origin()],
            "collected": assessment.as_of,
        }
        evidence = evidence_for(control.control_id)
        if evidence:
            obs["relevant-evidence"] = evidence
        observations.append(obs)
        for check in control.checks:
            for o in check.observations:
                key = f"{control.control_id}:{o.id}"
                oid = _uuid(seed, "observation", key)
                observation_ids[control.control_id].append(oid)
                item: dict[str, Any] = {
                    "uuid": oid,
                    "title": markdown_text(o.title),
                    "description": markdown_text(o.description or o.title),
                    "props": [_prop("check", o.check), _prop("ledger-entries", str(len(o.seqs)))],
                    "methods": [_method(o.method)],
                    "origins": [_tool_origin()],
                    "collected": assessment.as_of,
                }
                if evidence:
                    item["relevant-evidence"] = evidence
                observations.append(item)
        for f in control.findings:
            if f.id not in finding_observation:
                oid = _uuid(seed, "observation", f"finding:{f.id}")
                finding_observation[f.id] = oid
                item = {
                    "uuid": oid,
                    "title": markdown_text(f.title),
                    "description": markdown_text(f.description or f.title),
                    "props": [_prop("finding-id", f.id), _prop("check", f.check), _prop("severity", f.severity),
                              *(_prop("ledger-seq", str(seq)) for seq in f.seqs)],
                    "methods": ["TEST"],
                    "types": ["finding"],
                    "origins": [_tool_origin()],
                    "collected": assessment.as_of,
                }
                links = evidence_for_finding(f)
                if links:
                    item["relevant-evidence"] = links
                observations.append(item)
            observation_ids[control.control_id].append(finding_observation[f.id])

    risks: list[dict[str, Any]] = []
    risk_ids: dict[str, str] = {}  # evaluation finding id -> risk uuid
    findings: list[dict[str, Any]] = []
    for control in assessment.controls:
        if control.status == NOT_ASSESSED:
            continue
        state = "satisfied" if control.status == "satisfied" else "not-satisfied"
        summaries = markdown_text("; ".join(c.summary for c in control.checks))
        description = summaries or f"{display_id(control.control_id)}: {state}"
        finding: dict[str, Any] = {
            "uuid": _uuid(seed, "finding", control.control_id),
            "title": f"{display_id(control.control_id)} {control.title}",
            "description": description,
            "origins": [_tool_origin()],
            "target": {
                "type": "statement-id",
                "target-id": f"{control.control_id}_smt",
                "status": {"state": state, "reason": "pass" if state == "satisfied" else "fail"},
            },
        }
        if control.findings:
            finding["remarks"] = markdown_text("\n".join(f"{f.title}: {f.description}" for f in control.findings))
            finding["props"] = [_prop("finding-count", str(len(control.findings)))]
        if observation_ids.get(control.control_id):
            finding["related-observations"] = [{"observation-uuid": oid} for oid in observation_ids[control.control_id]]
        if state == "not-satisfied" and control.findings:
            for f in control.findings:
                if f.id not in risk_ids:
                    risk_ids[f.id] = _uuid(seed, "risk", f.id)
                    risks.append({
                        "uuid": risk_ids[f.id],
                        "title": markdown_text(f.title),
                        "description": markdown_text(f.description or f.title),
                        "statement": (f"The ledger evidence shows this for {', '.join(display_id(c) for c in f.controls)}. "
                                      f"fedledger rates the finding {f.severity} (the check's severity); impact and "
                                      "likelihood are not rated by the tool and are for the assessor to determine."),
                        "status": "open",
                        "characterizations": [{"origin": _tool_origin(), "facets": [
                            {"name": "severity", "system": PROP_NS, "value": f.severity}]}],
                        "related-observations": [{"observation-uuid": finding_observation[f.id]}],
                    })
            finding["related-risks"] = [{"risk-uuid": risk_ids[f.id]} for f in control.findings]
        findings.append(finding)

    assessed = [c for c in assessment.controls if c.status != NOT_ASSESSED]
    not_assessed = [display_id(c.control_id) for c in assessment.controls if c.status == NOT_ASSESSED]
    selection: dict[str, Any] = (
        {"include-controls": [{"control-id": c.control_id, "statement-ids": [f"{c.control_id}_smt"]} for c in assessed]}
        if assessed else {"description": "No control was assessed: none had evidence the checks could evaluate."})
    result: dict[str, Any] = {
        "uuid": _uuid(seed, "result", "0"),
        "title": f"Automated evidence assessment ({assessment.baseline})",
        "description": (f"Evaluation of {assessment.entries_considered} ledger entries of {assessment.origin}, "
                        f"anchored to the signed checkpoint of size {checkpoint_size} (root {checkpoint_root})."),
        "start": assessment.period_start or assessment.as_of,
        "props": [_prop("ledger-origin", assessment.origin), _prop("checkpoint-size", str(checkpoint_size)),
                  _prop("checkpoint-root", checkpoint_root)],
        "local-definitions": {"assessment-assets": {
            "components": [{
                "uuid": TOOL_UUID, "type": "software", "title": "fedledger",
                "description": "Evidence ledger and automated control assessment tool that made these results.",
                "props": [_prop("version", tool_version)],
                "status": {"state": "operational"},
            }],
            "assessment-platforms": [{"uuid": PLATFORM_UUID, "title": "fedledger",
                                      "uses-components": [{"component-uuid": TOOL_UUID}]}],
        }},
        "reviewed-controls": {"control-selections": [selection]},
    }
    if assessment.period_end:
        result["end"] = assessment.period_end
    if observations:
        result["observations"] = observations
    if risks:
        result["risks"] = risks
    if findings:
        result["findings"] = findings
    if not_assessed:
        result["remarks"] = "Not assessed by this tool (no mapped evidence): " + ", ".join(not_assessed)
    document: dict[str, Any] = {
        "metadata": {
            "title": f"Assessment results for {assessment.origin}",
            "last-modified": assessment.as_of,
            "version": f"{assessment.as_of} checkpoint {checkpoint_size}",
            "oscal-version": OSCAL_VERSION,
            "props": [_prop("generator", "fedledger")],
            **parties,
        },
        "import-ap": {"href": f"#{plan_uuid}",
                      "remarks": "Continuous monitoring by fedledger; no separate assessment plan document."},
        "results": [result],
        "back-matter": {"resources": resources},
    }
    # OSCAL: the document's UUID changes when the document does. Derived from everything else in
    # it, so a rebuild from the same inputs keeps it and any other content gets another.
    content = hashlib.sha256(json.dumps(document, sort_keys=True).encode("ascii")).hexdigest()
    return {"assessment-results": {"uuid": str(uuid.uuid5(NAMESPACE, f"assessment-results|{content}")), **document}}
