"""Report view-models and templates: escaping, strictness, names, charts, in-memory proofs."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from bench.synthetic import build_assessment, build_ledger
from bundler import charts, render
from bundler.merkle_memory import MemoryTree
from bundler.model import DailyVolume, SourceFreshness
from collector.ledger import Ledger

ATTACK = '<script>alert(1)</script><img src="file:///etc/passwd">'


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("render")
    return build_ledger(folder / "l.db", entries=400, jobs=4, evidence_text=ATTACK)


def facts() -> render.BundleFacts:
    return render.BundleFacts("System <b>x</b>", "example.gov/fedledger-bench", 400, "ab" * 32, "note")


def test_every_template_name_is_autoescaped_and_undefined_is_an_error() -> None:
    env = render.environment()
    for name in ("x.html.j2", "x.html", "x.txt", None):
        assert env.autoescape(name) is True  # type: ignore[operator]
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()
    assert env.from_string("{{ v }}").render(v="<b>") == "&lt;b&gt;"


def test_evidence_text_is_escaped_in_reports(world) -> None:
    assessment = build_assessment(world, evidence_text=ATTACK)
    index = render.render_index(assessment, facts())
    control = render.render_control(assessment, assessment.control("ia-5"), facts())
    for html in (index, control):
        assert "<script>" not in html and '<img src="file' not in html
        assert "&lt;script&gt;" in html
    assert "System &lt;b&gt;x&lt;/b&gt;" in index


def test_control_view_puts_incomplete_chains_first_and_caps_lists(world) -> None:
    assessment = build_assessment(world)
    view = render.control_view(assessment, assessment.control("ia-5"), facts())
    assert view["timelines"][0]["complete"] is False
    assert view["control"]["status_label"] == "Not satisfied"
    not_assessed = render.control_view(assessment, assessment.control("ac-2.4"), facts())
    assert not_assessed["not_assessed"] and not_assessed["control"]["status_label"] == "Not assessed by this tool"


def test_control_ids_and_file_names() -> None:
    assert render.display_id("au-9") == "AU-9"
    assert render.display_id("ac-2.4") == "AC-2(4)"
    assert render.display_id("KSI-MLA-01") == "KSI-MLA-01"
    assert render.file_stem("ac-2.4") == "AC-2.4"
    for bad in ("../etc", "a/b", "", ".hidden", "x y"):
        with pytest.raises(ValueError):
            render.file_stem(bad)


def test_charts_escape_labels_and_reference_nothing() -> None:
    svg = charts.volume_by_source([DailyVolume("2026-11-01", "<x>", 3), DailyVolume("2026-11-02", "<x>", 5)])
    assert "&lt;x&gt;" in svg and "<x>" not in svg
    fresh = charts.freshness([SourceFreshness("ci", "2026-11-20T00:00:00Z", 86400, True, 3),
                              SourceFreshness("vault", None, 86400, True, 0)], "2026-11-21T00:00:00Z")
    for markup in (svg, fresh):
        assert "href" not in markup and "url(" not in markup


def test_memory_tree_proofs_equal_the_ledgers(world) -> None:
    with Ledger.open(world.path) as ledger:
        leaves = b"".join(bytes(leaf) for _s, leaf, _b in ledger.entries())
        tree = MemoryTree(leaves)
        assert tree.root() == ledger.root()
        for seq in (0, 1, 63, 64, 200, 399):
            assert tree.inclusion_proof(seq) == ledger.inclusion_proof(seq, 400)


def test_templates_folder_is_found() -> None:
    from bundler.assets import asset_names, templates_folder

    assert (templates_folder() / "control.html.j2").is_file()
    assert "report.css" in asset_names()
    assert Path(templates_folder()).name in ("templates",)


def test_templates_put_no_variable_in_a_url_attribute_except_validated_file_stems() -> None:
    import re

    from bundler.assets import templates_folder

    pattern = re.compile(r'(?:href|src|action|style)\s*=\s*"([^"]*\{\{[^"]*)"', re.IGNORECASE)
    for template in sorted(templates_folder().glob("*.j2")):
        for value in pattern.findall(template.read_text(encoding="utf-8")):
            # Only file names made by render.file_stem (letters, digits, '-', '.') reach a URL, and the
            # page's own anchors by number (the int filter: nothing but digits).
            assert re.fullmatch(r"controls/\{\{ c\.stem \}\}\.(html|pdf|csv)", value) or \
                re.fullmatch(r"#finding-\{\{ [\w.]+ \| int \}\}", value), (template.name, value)


def test_volume_chart_names_the_year() -> None:
    # month-day alone left a reader of a printed packet guessing the year (and a period across New Year)
    days = [DailyVolume(d, "vault", 1) for d in ("2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02")]
    svg = str(charts.volume_by_source(days))
    assert ">2026-12-30<" in svg and ">12-31<" in svg and ">2027-01-01<" in svg and ">01-02<" in svg


# -- each custody finding printed once on a control page ------------------------------------------


def _shown(text: str) -> str:
    """*text* as the HTML holds it (escaped)."""
    from markupsafe import escape

    return str(escape(text))


def _custody_gap_assessment(jobs: int = 1):
    from bundler.evaluate import evaluate
    from tests.synthetic_jobs import as_entries, complete_story

    events = [e for e in complete_story(jobs) if e["kind"] != "vault.login"]
    return evaluate(as_entries(events), as_of="2026-11-21T00:00:00Z", origin="test")


def test_a_custody_finding_is_printed_once_and_the_timeline_links_to_it() -> None:
    """AU-2's page printed each custody finding twice: in the Findings table and again, in full, under the
    job's timeline. The table prints it (numbered, with an anchor); the timeline points to that number."""
    import re

    assessment = _custody_gap_assessment()
    control = assessment.control("au-2")
    (finding,) = [f for f in control.findings if f.id.startswith("custody-missing:vault_login:")]
    html = render.render_control(assessment, control, facts())
    assert html.count(_shown(finding.title)) == 1 and html.count(_shown(finding.description)) == 1
    number = render.ordered_findings(control).index(finding) + 1
    assert f'id="finding-{number}"' in html
    timeline = html[html.index("<h2>Chain of custody</h2>"):html.index("<h2>Inclusion proofs</h2>")]
    assert f'<a href="#finding-{number}">finding {number}</a>' in timeline
    # every link on the page leads to an anchor the page has
    targets = set(re.findall(r'href="#([^"]+)"', html))
    assert targets and targets <= set(re.findall(r'id="([^"]+)"', html))


def test_a_custody_finding_this_page_does_not_list_is_printed_under_its_timeline() -> None:
    """A control whose entries a job's steps cite shows the job's timeline although the custody findings
    belong to other controls (AU-2, AU-10, SA-10): there the timeline is the one place the finding is printed."""
    assessment = _custody_gap_assessment()
    control = assessment.control("si-7")
    (story,) = assessment.custody
    (finding,) = story.findings
    assert finding.id not in {f.id for f in control.findings}
    html = render.render_control(assessment, control, facts())
    assert "<h2>Chain of custody</h2>" in html
    assert html.count(_shown(finding.description)) == 1 and 'href="#finding-' not in html


def test_custody_findings_beyond_the_printed_ones_are_printed_under_their_timeline(monkeypatch) -> None:
    """When the Findings table stops at FINDINGS_SHOWN, a timeline's finding left out of it is printed in full
    under the timeline (once), and a printed one is referred to."""
    monkeypatch.setattr(render, "FINDINGS_SHOWN", 1)
    assessment = _custody_gap_assessment(jobs=2)
    control = assessment.control("au-2")
    printed = render.ordered_findings(control)[0]
    html = render.render_control(assessment, control, facts())
    for story in assessment.custody:
        for finding in story.findings:
            assert html.count(_shown(finding.description)) == 1, finding.id
    assert printed.job_id is not None and '<a href="#finding-1">finding 1</a>' in html
