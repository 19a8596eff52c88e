"""Pure view-model builders and the Jinja2 environment for the bundle's reports.

View-models are computed here from an :class:`~bundler.model.Assessment`, the
verification transcript and the inclusion proofs; templates only lay them out.
The environment autoescapes every template, whatever its name (``.html.j2``
included: ``select_autoescape()`` would miss it), and uses ``StrictUndefined`` so
a missing field is an error, not an empty string. Evidence text is data: it is
escaped in HTML, never placed in a URL attribute, and its invisible characters
(bidirectional overrides, zero-width and other format characters) are shown as
``[U+XXXX]`` (:mod:`bundler.display_text`); very long text is shortened (:func:`shorten`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jinja2
from markupsafe import Markup

from bundler import charts
from bundler.assets import asset_bytes, templates_folder
from bundler.display_text import STATUS_LABELS, reveal_invisible
from bundler.model import NOT_ASSESSED, NOT_SATISFIED, SATISFIED, Assessment, ControlResult, CustodyStory, Finding

PROOFS_SHOWN = 20  # inclusion proofs printed per control report; all of them are in proofs/
TIMELINES_SHOWN = 12  # custody timelines printed per control report
SEQS_SHOWN = 12
# Findings and observations printed per control report. One finding per job or per attestation
# made 600 findings (over 100 PDF pages) on one page; the report prints the most severe and
# counts every finding by check, the OSCAL finding for the control lists them all, and the
# control's CSV holds every entry they cite.
FINDINGS_SHOWN = 50
OBSERVATIONS_SHOWN = 40
SEVERITY_ORDER = {"high": 0, "moderate": 1, "low": 2}


@dataclass(frozen=True)
class TranscriptItem:
    """One line of the verification transcript: what was checked and the outcome."""

    subject: str
    state: Literal["verified", "failed", "not-verified"]
    detail: str
    by: str = "bundler"  # who verified it: the bundler at build time, or a collector at ingest


@dataclass(frozen=True)
class EvidenceRow:
    """Aggregated evidence of one (kind, source, outcome) for a control."""

    kind: str
    source: str
    outcome: str
    entries: int
    first: str
    last: str


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    leaf_hash: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class ControlEvidence:
    """What the packaging scan learned about one control's cited entries."""

    control_id: str
    cited: int
    rows: tuple[EvidenceRow, ...] = ()
    proofs: tuple[InclusionProof, ...] = ()  # the first PROOFS_SHOWN, for the report


@dataclass(frozen=True)
class BundleFacts:
    """Facts about the bundle that are not part of the assessment."""

    system: str
    origin: str
    checkpoint_size: int
    checkpoint_root: str
    checkpoint_note: str
    proofs_file: str = "proofs/inclusion.jsonl"
    transcript: tuple[TranscriptItem, ...] = ()
    evidence: Mapping[str, ControlEvidence] = field(default_factory=dict)
    organization: str | None = None  # whose system was assessed (OSCAL prepared-for)
    assessor: str | None = None  # the assessment organization (OSCAL assessor)


# -- names ---------------------------------------------------------------------------

def display_id(control_id: str) -> str:
    """``au-9`` → ``AU-9``, ``ac-2.4`` → ``AC-2(4)``; KSI ids unchanged."""
    if control_id.upper().startswith("KSI-"):
        return control_id
    base, _, enhancement = control_id.partition(".")
    return base.upper() + (f"({enhancement})" if enhancement else "")


def file_stem(control_id: str) -> str:
    """File name stem of a control's reports: ``AU-9``, ``AC-2.4``, ``KSI-MLA-01``."""
    stem = control_id.upper()
    if not stem or any(not (c.isalnum() or c in "-.") for c in stem) or stem.startswith("."):
        raise ValueError(f"control id {control_id!r} cannot name a file")
    return stem


def abbreviate(value: str, keep: int = 12) -> str:
    return value if len(value) <= 2 * keep + 1 else f"{value[:keep]}…{value[-keep:]}"


_ISO_TIME = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d(?::\d\d(?:\.\d+)?)?)(Z|[+-]\d\d:\d\d)?")


def time_cell(value: str) -> str:
    """An evidence time as a table cell shows it: ``2026-11-20T14:10:30Z`` → ``2026-11-20 14:10:30Z``
    (RFC 3339 allows the space), so a narrow column wraps between date and time instead of inside
    a number; a time that records no zone says so rather than let a reader assume UTC."""
    match = _ISO_TIME.fullmatch(value)
    if match is None:
        return value
    date, clock, zone = match.groups()
    return f"{date} {clock}{zone}" if zone else f"{date} {clock} (no time zone recorded)"


def period_text(assessment: Assessment) -> str:
    start = assessment.period_start or "start of ledger"
    end = assessment.period_end or assessment.as_of
    return f"{start} to {end}"


# -- environment ---------------------------------------------------------------------

def _autoescape_everything(_name: str | None) -> bool:
    return True


# Very long evidence text is shortened in the reports (the CSV and the ledger keep all of it).
# WeasyPrint splits a run without a break opportunity in time quadratic in its length (16,000
# characters in one cell: 5 s; 200,000: over ten minutes, per quote), so one long job name
# would stall every PDF that quotes it.
RUN_SHOWN = 512  # longest run of non-space characters shown whole
RUN_KEPT = 240  # characters kept at each end of a longer run
TEXT_SHOWN = 20_000  # longest value shown whole (a catalog statement is a few thousand)
_LONG_RUN = re.compile(rf"\S{{{RUN_SHOWN + 1},}}")


def _shorter_run(match: re.Match[str]) -> str:
    run = match.group()
    return f"{run[:RUN_KEPT]}… [{len(run) - 2 * RUN_KEPT:,} more characters] …{run[-RUN_KEPT:]}"


def shorten(text: str) -> str:
    """*text* as a report shows it: a run of more than :data:`RUN_SHOWN` non-space characters
    keeps its two ends and says how many characters are left out between them; the whole is
    cut after :data:`TEXT_SHOWN` characters, saying how many more there are."""
    if len(text) > RUN_SHOWN:
        text = _LONG_RUN.sub(_shorter_run, text)
    if len(text) > TEXT_SHOWN:
        text = f"{text[:TEXT_SHOWN]} … [{len(text) - TEXT_SHOWN:,} more characters]"
    return text


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` value: plain text has its invisible characters shown and is shortened when
    very long; markup we built passes."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return shorten(reveal_invisible(value))
    return value


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_folder())),
        autoescape=_autoescape_everything,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["abbrev"] = abbreviate
    env.filters["num"] = lambda n: f"{n:,}"
    return env


def stylesheet() -> Markup:
    """The package's own CSS, placed inline so each HTML file stands alone."""
    return Markup(asset_bytes("report.css").decode("utf-8"))


# -- view-models ---------------------------------------------------------------------

def ordered_findings(control: ControlResult) -> list[Finding]:
    """A control's findings as its report lists them: most severe first, otherwise as evaluated."""
    return sorted(control.findings, key=lambda f: SEVERITY_ORDER.get(f.severity, len(SEVERITY_ORDER)))


def proof_seqs_shown(control: ControlResult) -> list[int]:
    """The cited entries whose inclusion proofs a control's report prints, in seq order: at most
    :data:`PROOFS_SHOWN`, taking first one entry of each finding (in the order the report lists
    them), then the findings' other entries, then the lowest other cited seqs. A reader checking a
    finding finds its proof on the same page; every proof is in ``proofs/inclusion.jsonl``."""
    cited = set(control.seqs)
    findings = ordered_findings(control)
    chosen: dict[int, None] = {}
    candidates = ([f.seqs[0] for f in findings if f.seqs] + [s for f in findings for s in f.seqs[1:]]
                  + sorted(cited))
    for seq in candidates:
        if len(chosen) >= PROOFS_SHOWN:
            break
        if seq in cited:
            chosen.setdefault(seq)
    return sorted(chosen)


def _findings_by_check(control: ControlResult, findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """Every finding counted by check and severity (most findings first), for a report that cannot print them all."""
    titles = {c.check: c.title for c in control.checks}
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.check, finding.severity), []).append(finding)
    return [
        {"check": check, "title": titles.get(check, check), "severity": severity, "findings": len(group),
         "entries": len({s for f in group for s in f.seqs})}
        for (check, severity), group in sorted(
            groups.items(), key=lambda kv: (SEVERITY_ORDER.get(kv[0][1], 3), -len(kv[1]), kv[0][0]))
    ]


def _seq_text(seqs: Sequence[int]) -> str:
    shown = ", ".join(str(s) for s in seqs[:SEQS_SHOWN])
    more = len(seqs) - SEQS_SHOWN
    return shown + (f" … and {more:,} more" if more > 0 else "")


def _custody_view(story: CustodyStory, printed: Mapping[str, int]) -> dict[str, Any]:
    """A job's timeline. Its findings that the page's Findings table prints (*printed*: finding id → its
    number there) are referred to by number, not printed again; the others (a page whose control the
    finding does not name, or findings beyond the printed ones) are printed here in full, the one place
    the page shows them."""
    return {
        "job_id": story.job_id,
        "run_id": story.run_id or "",
        "repository": story.repository or "",
        "complete": story.complete,
        "in_progress": story.in_progress or "",
        # judged incomplete: it has findings, wherever the page prints them (the table or here)
        "has_findings": bool(story.findings),
        "steps": [
            {"title": s.title, "present": s.present, "time": s.time or "", "detail": s.detail,
             "seqs": _seq_text(s.seqs), "other_builds": _seq_text(s.other_builds), "unsigned": _seq_text(s.unsigned),
             "unpaired": _seq_text(s.unpaired), "not_reached": s.not_reached}
            for s in story.steps
        ],
        "see_findings": sorted(printed[f.id] for f in story.findings if f.id in printed),
        "findings": [{"title": f.title, "description": f.description} for f in story.findings
                     if f.id not in printed],
    }


def _stories_for(control: ControlResult, stories: Sequence[CustodyStory]) -> list[CustodyStory]:
    """Custody stories that bear on *control*: a finding naming it, or a step citing one of its entries."""
    cited = set(control.seqs)
    found = []
    for story in stories:
        if any(control.control_id in f.controls for f in story.findings) or any(
            cited.intersection(step.seqs) for step in story.steps
        ):
            found.append(story)
    found.sort(key=lambda s: (s.complete, s.job_id))  # incomplete chains first
    return found


def control_view(assessment: Assessment, control: ControlResult, facts: BundleFacts) -> dict[str, Any]:
    evidence = facts.evidence.get(control.control_id) or ControlEvidence(control.control_id, len(set(control.seqs)))
    stories = _stories_for(control, assessment.custody)
    stem = file_stem(control.control_id)
    findings = ordered_findings(control)
    printed = {f.id: number for number, f in enumerate(findings[:FINDINGS_SHOWN], start=1)}
    observations = [o for c in control.checks for o in c.observations]
    return {
        "css": stylesheet(),
        "title": f"{display_id(control.control_id)} {control.title}",
        # Every PDF page's header names the system, the period and the control (a printed page
        # that comes loose from its packet still says what it is).
        "running_header": f"{facts.system} · period {period_text(assessment)}",
        "running_right": f"{display_id(control.control_id)} · {STATUS_LABELS[control.status]}",
        "system": facts.system,
        "period": period_text(assessment),
        "as_of": assessment.as_of,
        "origin": facts.origin,
        "checkpoint": {"size": facts.checkpoint_size, "root": facts.checkpoint_root},
        "control": {
            "id": display_id(control.control_id),
            "stem": stem,
            "title": control.title,
            "family": control.family,
            "statement": control.statement,
            "status": control.status,
            "status_label": STATUS_LABELS[control.status],
            "ksi": list(control.ksi),
            "parameters": [{"id": p, "value": v} for p, v in control.parameters],
            "evidence_kinds": list(control.evidence_kinds),
        },
        "checks": [
            {"check": c.check, "title": c.title, "kind": c.kind, "status": c.status,
             "status_label": STATUS_LABELS[c.status], "summary": c.summary, "entries": len(c.seqs)}
            for c in control.checks
        ],
        "findings": [
            {"number": number, "id": f.id, "title": f.title, "severity": f.severity, "description": f.description,
             "job_id": f.job_id or "", "check": f.check, "seqs": _seq_text(f.seqs)}
            for number, f in enumerate(findings[:FINDINGS_SHOWN], start=1)
        ],
        "findings_total": len(findings),
        "findings_by_check": _findings_by_check(control, findings) if len(findings) > FINDINGS_SHOWN else [],
        "observations": [
            {"title": o.title, "description": o.description, "method": o.method, "seqs": _seq_text(o.seqs)}
            for o in observations[:OBSERVATIONS_SHOWN]
        ],
        "observations_total": len(observations),
        "evidence_rows": [{**r.__dict__, "first": time_cell(r.first), "last": time_cell(r.last)}
                          for r in evidence.rows],
        "cited": evidence.cited,
        "csv_name": f"{stem}.csv",
        "timelines": [_custody_view(s, printed) for s in stories[:TIMELINES_SHOWN]],
        "timelines_total": len(stories),
        "proofs": [{"seq": p.seq, "leaf_hash": p.leaf_hash, "path": list(p.path)} for p in evidence.proofs],
        "proofs_file": facts.proofs_file,
        "not_assessed": control.status == NOT_ASSESSED,
    }


def index_view(assessment: Assessment, facts: BundleFacts) -> dict[str, Any]:
    tally = {s: sum(1 for c in assessment.controls if c.status == s) for s in (SATISFIED, NOT_SATISFIED, NOT_ASSESSED)}
    return {
        "css": stylesheet(),
        "title": f"Assessment evidence: {facts.system}",
        "running_header": f"{facts.system} · period {period_text(assessment)}",
        "running_right": "Index",
        "system": facts.system,
        "organization": facts.organization,
        "assessor": facts.assessor,
        "period": period_text(assessment),
        "as_of": assessment.as_of,
        "origin": facts.origin,
        "baseline": assessment.baseline,
        "checkpoint": {"size": facts.checkpoint_size, "root": facts.checkpoint_root, "note": facts.checkpoint_note},
        "entries_considered": assessment.entries_considered,
        "tally": {"satisfied": tally[SATISFIED], "not_satisfied": tally[NOT_SATISFIED],
                  "not_assessed": tally[NOT_ASSESSED]},
        "controls": [
            {"id": display_id(c.control_id), "stem": file_stem(c.control_id), "title": c.title, "family": c.family,
             "status": c.status, "status_label": STATUS_LABELS[c.status], "findings": len(c.findings),
             "entries": len(set(c.seqs))}
            for c in assessment.controls
        ],
        "charts": {
            "status": charts.status_by_family(assessment.controls),
            "volume": charts.volume_by_source(assessment.volume),
            "freshness": charts.freshness(assessment.freshness, assessment.as_of),
        },
        "freshness": [
            {"source": f.source, "newest": time_cell(f.newest) if f.newest else "none", "cadence_hours": f.cadence_seconds // 3600,
             "stale": f.stale, "entries": f.entries}
            for f in assessment.freshness
        ],
        "custody": {
            "jobs": len(assessment.custody),
            "complete": sum(1 for s in assessment.custody if s.complete),
            "in_progress": sum(1 for s in assessment.custody if s.in_progress and not s.complete),
        },
        "transcript": [t.__dict__ for t in facts.transcript],
        "checkpoint_proofs_file": facts.proofs_file,
        "notes": list(assessment.notes),
    }


def render_index(assessment: Assessment, facts: BundleFacts) -> str:
    return environment().get_template("index.html.j2").render(**index_view(assessment, facts))


def render_control(assessment: Assessment, control: ControlResult, facts: BundleFacts) -> str:
    return environment().get_template("control.html.j2").render(**control_view(assessment, control, facts))
