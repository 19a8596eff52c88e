"""OSCAL 1.1.3 assessment-results from an Assessment (pure: data in, a JSON document out).

Evidence is linked, not copied: every file the observations rely on (a control's
CSV of supporting entries, the ledger slice, the inclusion proofs, the signed
checkpoint) is a back-matter resource whose ``rlinks`` carry its SHA-256, and
observations point at those resources through ``relevant-evidence``. UUIDs are
version 5 UUIDs derived from content (origin, checkpoint root, as-of and the
object's own id), so the same inputs give the same document, byte for byte.

Findings target each assessed control's statement with objective status
``satisfied`` or ``not-satisfied``. Controls "not assessed by this tool" get no
finding (OSCAL has no such state); they are listed in the result's remarks.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from bundler.model import NOT_ASSESSED, Assessment
from bundler.render import display_id, file_stem

OSCAL_VERSION = "1.1.3"
NAMESPACE = uuid.UUID("6f1e0a52-8c1d-5b0e-9a7e-1f3c2b4d5e6f")
PROP_NS = "https://fedledger.dev/ns/oscal"
ASSESSMENT_PLAN_HREF = "../index.html"


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
    return {"name": name, "ns": PROP_NS, "value": value}


def _method(method: str) -> str:
    return {"AUTOMATED": "TEST"}.get(method, method if method in ("EXAMINE", "INTERVIEW", "TEST") else "UNKNOWN")


def build_assessment_results(
    assessment: Assessment,
    *,
    checkpoint_size: int,
    checkpoint_root: str,
    evidence_files: Mapping[str, str],
    tool_version: str = "0.1.0",
) -> dict[str, Any]:
    """The assessment-results document.

    *evidence_files* maps bundle-relative paths (``controls/AU-9.csv``,
    ``ledger/entries.jsonl``, ...) to their SHA-256 hex; each becomes a resource.
    Hrefs are relative to ``oscal/`` where the document is written.
    """
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

    observations: list[dict[str, Any]] = []
    observation_ids: dict[str, list[str]] = {}
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
                    "collected": assessment.as_of,
                }
                if evidence:
                    item["relevant-evidence"] = evidence
                observations.append(item)

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
        findings.append(finding)

    not_assessed = [display_id(c.control_id) for c in assessment.controls if c.status == NOT_ASSESSED]
    result: dict[str, Any] = {
        "uuid": _uuid(seed, "result", "0"),
        "title": f"Automated evidence assessment ({assessment.baseline})",
        "description": (f"Evaluation of {assessment.entries_considered} ledger entries of {assessment.origin}, "
                        f"anchored to the signed checkpoint of size {checkpoint_size} (root {checkpoint_root})."),
        "start": assessment.period_start or assessment.as_of,
        "props": [_prop("ledger-origin", assessment.origin), _prop("checkpoint-size", str(checkpoint_size)),
                  _prop("checkpoint-root", checkpoint_root)],
        "reviewed-controls": {
            "control-selections": [
                {"include-controls": [{"control-id": c.control_id} for c in assessment.controls]}
                if assessment.controls else {"include-all": {}}
            ]
        },
    }
    if assessment.period_end:
        result["end"] = assessment.period_end
    if observations:
        result["observations"] = observations
    if findings:
        result["findings"] = findings
    if not_assessed:
        result["remarks"] = "Not assessed by this tool (no mapped evidence): " + ", ".join(not_assessed)
    document: dict[str, Any] = {
        "uuid": _uuid(seed, "assessment-results", "0"),
        "metadata": {
            "title": f"Assessment results for {assessment.origin}",
            "last-modified": assessment.as_of,
            "version": tool_version,
            "oscal-version": OSCAL_VERSION,
            "props": [_prop("generator", "fedledger")],
        },
        "import-ap": {"href": ASSESSMENT_PLAN_HREF,
                      "remarks": "Continuous monitoring by fedledger; no separate assessment plan document."},
        "results": [result],
    }
    if resources:
        document["back-matter"] = {"resources": resources}
    return {"assessment-results": document}
