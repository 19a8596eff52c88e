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
            # Only file names made by render.file_stem (letters, digits, '-', '.') reach a URL.
            assert re.fullmatch(r"controls/\{\{ c\.stem \}\}\.(html|pdf|csv)", value), (template.name, value)


def test_volume_chart_names_the_year() -> None:
    # month-day alone left a reader of a printed packet guessing the year (and a period across New Year)
    days = [DailyVolume(d, "vault", 1) for d in ("2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02")]
    svg = str(charts.volume_by_source(days))
    assert ">2026-12-30<" in svg and ">12-31<" in svg and ">2027-01-01<" in svg and ">01-02<" in svg
