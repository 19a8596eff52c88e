"""The reports as their readers see them: a compliance officer printing the PDFs for an audit
packet, an assessor reading the HTML offline.

Each test holds one fix from the report review: every printed page says which system, period and
control it belongs to; long lists are bounded and say how many more there are; the proofs printed
on a page are those of the entries its findings cite; statuses read the same everywhere; nothing is
laid out wider than the page; table headers repeat across page breaks; terms are explained.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import pypdf
import pytest
from weasyprint import HTML

from bench.synthetic import build_assessment, build_ledger
from bundler import charts, render
from bundler.model import Assessment, ControlResult, Finding, SourceFreshness
from bundler.pdf import BASE_URL, PackageAssetFetcher, html_to_pdf

SYSTEM = "Claims Model Platform (Moderate)"
# An ARN, a URL and a digest: long runs without a space, as evidence holds them.
LONG_TEXT = ("arn:aws:iam::123456789012:role/" + "ci-deploy-role-for-the-claims-model-pipeline-" * 5
             + " https://example.gov/" + "a/very/long/path/" * 12 + " sha256:" + "ab" * 64)


@pytest.fixture(scope="module")
def assessment(tmp_path_factory: pytest.TempPathFactory) -> Assessment:
    world = build_ledger(tmp_path_factory.mktemp("readable") / "l.db", entries=400, jobs=4, evidence_text=LONG_TEXT)
    return build_assessment(world, evidence_text=LONG_TEXT)


def facts() -> render.BundleFacts:
    return render.BundleFacts(SYSTEM, "example.gov/fedledger-bench", 400, "ab" * 32, "note")


def many_findings(control: ControlResult, count: int) -> ControlResult:
    """*control* with *count* findings (one per job, as a chain-of-custody check makes them), the
    last one high severity and citing a late entry."""
    findings = tuple(
        Finding(f"custody-missing:vault_login:job-{n}", "chain-of-custody", f"Job {n}: vault login is missing",
                f"Step 'vault_login' of job {n}: no event found for this step. {LONG_TEXT}", (control.control_id,),
                (n % 300,), str(n))
        for n in range(count - 1)
    ) + (Finding("signed-attestation:invalid:399", "signed-attestation", "Attestation at seq 399 does not verify",
                 "bad signature", (control.control_id,), (399,), None, "high"),)
    return replace(control, findings=findings, seqs=tuple(sorted(set(control.seqs) | {399} | set(range(300)))))


def pdf_pages(html: str, tmp_path: Path) -> list[str]:
    html_to_pdf(html, tmp_path / "page.pdf")
    return [page.extract_text() or "" for page in pypdf.PdfReader(tmp_path / "page.pdf").pages]


def boxes_wider_than_the_page(html: str) -> list[tuple[int, str, float]]:
    """(page, box type, points beyond the right edge of the page's content area) of every laid-out box
    that reaches past it."""
    document = HTML(string=html, base_url=BASE_URL, url_fetcher=PackageAssetFetcher()).render()
    wide = []
    for number, page in enumerate(document.pages, 1):
        page_box = page._page_box
        right = page_box.content_box_x() + page_box.width
        stack = list(page_box.children)
        while stack:
            box = stack.pop()
            if type(box).__name__ == "MarginBox":  # running headers: checked through their text
                continue
            if box.position_x + box.margin_width() > right + 0.5:
                wide.append((number, type(box).__name__, round(box.position_x + box.margin_width() - right, 1)))
            stack.extend(getattr(box, "children", ()))
    return wide


def test_every_pdf_page_names_the_system_the_period_and_the_control(assessment: Assessment, tmp_path: Path) -> None:
    control = many_findings(assessment.control("ia-5"), 60)
    pages = pdf_pages(render.render_control(assessment, control, facts()), tmp_path)
    assert len(pages) > 3
    period = render.period_text(assessment)
    for number, text in enumerate(pages, 1):
        flat = " ".join(text.split())
        assert SYSTEM in flat and period in flat and "IA-5 · Not satisfied" in flat, (number, flat[:300])
        assert f"Page {number} of {len(pages)}" in flat


def test_a_page_of_hundreds_of_findings_is_bounded_and_counts_the_rest(assessment: Assessment) -> None:
    control = many_findings(assessment.control("ia-5"), 600)
    view = render.control_view(assessment, control, facts())
    assert len(view["findings"]) == render.FINDINGS_SHOWN and view["findings_total"] == 600
    assert view["findings"][0]["severity"] == "high"  # the most severe first, whatever the evaluation order
    by_check = {g["check"]: g for g in view["findings_by_check"]}
    assert by_check["chain-of-custody"]["findings"] == 599 and by_check["signed-attestation"]["findings"] == 1
    assert sum(g["findings"] for g in view["findings_by_check"]) == 600
    html = render.render_control(assessment, control, facts())
    assert html.count("custody-missing:vault_login:job-") == render.FINDINGS_SHOWN - 1
    assert f"… and {600 - render.FINDINGS_SHOWN:,} more findings" in html
    assert "oscal/assessment-results.json" in html and "IA-5.csv" in html


def test_observations_beyond_the_printed_ones_are_counted(assessment: Assessment) -> None:
    control = assessment.control("ia-5")
    check = control.checks[0]
    observation = check.observations[0] if check.observations else None
    assert observation is not None
    more = replace(check, observations=tuple(replace(observation, id=f"o{n}") for n in range(55)))
    html = render.render_control(assessment, replace(control, checks=(more,) + control.checks[1:]), facts())
    total = 55 + sum(len(c.observations) for c in control.checks[1:])
    assert f"… and {total - render.OBSERVATIONS_SHOWN:,} more observations" in html


def test_proofs_printed_on_a_page_are_those_its_findings_cite(assessment: Assessment) -> None:
    control = many_findings(assessment.control("ia-5"), 30)
    shown = render.proof_seqs_shown(control)
    assert len(shown) == render.PROOFS_SHOWN and shown == sorted(shown)
    assert 399 in shown  # the high-severity finding's entry, though 300 lower seqs are cited
    # Without findings: the lowest cited seqs, as before.
    quiet = replace(control, findings=())
    assert render.proof_seqs_shown(quiet) == sorted(set(quiet.seqs))[:render.PROOFS_SHOWN]


def test_a_finding_that_cites_no_entry_says_so(assessment: Assessment) -> None:
    control = assessment.control("ia-5")
    finding = Finding("custody-missing:trigger:job-1", "chain-of-custody", "Job 1: job triggered is missing",
                      "Step 'trigger' of job 1: no event found for this step.", ("ia-5",), (), "1")
    html = render.render_control(assessment, replace(control, findings=(finding,)), facts())
    assert "none cited" in html


def test_status_reads_the_same_in_tables_badges_and_charts(assessment: Assessment) -> None:
    index = render.render_index(assessment, facts())
    svg = str(charts.status_by_family(assessment.controls))
    for label in render.STATUS_LABELS.values():
        assert f">{label}</text>" in svg
    assert not re.search(r">(satisfied|not-satisfied|not-assessed)</text>", svg)
    labels = set(re.findall(r'<span class="status status-[a-z-]+">([^<]+)</span>', index))
    assert labels and labels <= set(render.STATUS_LABELS.values())


def test_the_freshness_chart_explains_its_dashed_tick() -> None:
    svg = str(charts.freshness([SourceFreshness("ci", "2026-11-20T00:00:00Z", 86400, True, 3)], "2026-11-21T00:00:00Z"))
    assert "cadence: new evidence expected at least this often" in svg and "stale" in svg


def test_not_assessed_is_not_worded_as_a_clean_result(assessment: Assessment) -> None:
    html = render.render_control(assessment, assessment.control("ac-2.4"), facts())
    assert "No findings." not in html and "this control was not assessed" in html
    assert "0 ledger entries support" not in html and "Proofs for all 0" not in html
    assert "No ledger entry is cited for this control" in html


def test_times_wrap_between_date_and_time_and_a_missing_zone_is_said() -> None:
    assert render.time_cell("2026-11-20T14:00:31.106794Z") == "2026-11-20 14:00:31.106794Z"
    assert render.time_cell("2026-11-20T14:00:31+02:00") == "2026-11-20 14:00:31+02:00"
    assert render.time_cell("2026-11-20T14:00:31") == "2026-11-20 14:00:31 (no time zone recorded)"
    assert render.time_cell("yesterday") == "yesterday"


def test_terms_are_explained_where_the_reader_meets_them(assessment: Assessment) -> None:
    index = render.render_index(assessment, facts())
    assert "Reading this bundle" in index
    for term in ("Ledger entry, seq", "Inclusion proof, audit path", "Freshness, cadence, stale", "KSI",
                 "Not assessed by this tool", "Times are UTC"):
        assert term in index, term
    control = render.render_control(assessment, assessment.control("ia-5"), facts())
    assert "are ledger sequence numbers (seq)" in control and "IA-5.csv" in control and "Times are UTC" in control


def test_no_box_is_wider_than_the_page(assessment: Assessment) -> None:
    """Long ARNs, URLs and digests in every column, hundreds of findings, the evidence table's times:
    everything wraps inside the page's content box."""
    control = many_findings(assessment.control("ia-5"), 80)
    assert boxes_wider_than_the_page(render.render_control(assessment, control, facts())) == []
    assert boxes_wider_than_the_page(render.render_index(assessment, facts())) == []


def test_a_table_header_repeats_on_every_page_it_spans(assessment: Assessment, tmp_path: Path) -> None:
    control = many_findings(assessment.control("ia-5"), 60)
    pages = pdf_pages(render.render_control(assessment, control, facts()), tmp_path)
    finding_pages = [text for text in pages if "vault login is missing" in " ".join(text.split())]
    assert len(finding_pages) >= 3
    for text in finding_pages:
        assert re.search(r"Finding\s+Severity\s+Description\s+Entries", text), text[:400]
    assert "thead { display: table-header-group; }" in render.stylesheet()


def test_long_lists_in_a_pdf_stay_short(assessment: Assessment, tmp_path: Path) -> None:
    """600 findings made a 100-page PDF; bounded, the page stays a readable length."""
    control = many_findings(assessment.control("ia-5"), 600)
    reader = pypdf.PdfReader(io.BytesIO(_pdf_bytes(render.render_control(assessment, control, facts()), tmp_path)))
    assert len(reader.pages) < 30


def _pdf_bytes(html: str, tmp_path: Path) -> bytes:
    html_to_pdf(html, tmp_path / "p.pdf")
    return (tmp_path / "p.pdf").read_bytes()
