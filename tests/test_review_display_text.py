"""Review: evidence text that reads differently from what it holds.

A right-to-left override makes ``deploy\\u202egpj.exe`` display as ``deployexe.jpg`` and
zero-width characters hide in plain sight. The reports (HTML and the PDF made from it)
must show such characters, not obey them; the CSV keeps the evidence as recorded.
"""

from __future__ import annotations

from pathlib import Path

import pypdf
import pytest

from bench.synthetic import build_assessment, build_ledger
from bundler import charts, render
from bundler.display_text import reveal_invisible
from bundler.model import SourceFreshness
from bundler.pdf import html_to_pdf

SPOOF = "deploy\u202egpj.exe\u202c ok\u200bjob\u2066x\u2069\ufeff"
HIDDEN = ("\u202e", "\u202c", "\u200b", "\u2066", "\u2069", "\ufeff")


def test_reveal_invisible_names_each_hidden_character_and_keeps_the_rest() -> None:
    assert reveal_invisible(SPOOF) == "deploy[U+202E]gpj.exe[U+202C] ok[U+200B]job[U+2066]x[U+2069][U+FEFF]"
    assert reveal_invisible("é 中 \t a\nb") == "é 中 \t a\nb"
    assert reveal_invisible("\x1b[2J") == "[U+001B][2J"


def test_templates_show_bidi_and_zero_width_characters(tmp_path: Path) -> None:
    env = render.environment()
    assert env.from_string("{{ v }}").render(v=SPOOF) == reveal_invisible(SPOOF)
    world = build_ledger(tmp_path / "l.db", entries=120, jobs=2, evidence_text=SPOOF)
    assessment = build_assessment(world, evidence_text=SPOOF, controls=4)
    facts = render.BundleFacts("system\u202e", world.path.name, 120, "ab" * 32, "note")
    index = render.render_index(assessment, facts)
    control = render.render_control(assessment, assessment.control("ia-5"), facts)
    for html in (index, control):
        assert not any(ch in html for ch in HIDDEN)
        assert "deploy[U+202E]gpj.exe[U+202C]" in html
    html_to_pdf(control, tmp_path / "c.pdf")
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(tmp_path / "c.pdf").pages)
    assert "gpj.exe" in text and "exe.jpg" not in text


@pytest.mark.parametrize("label", ["vault\u202eevil", "ci\u200b"])
def test_chart_labels_show_hidden_characters(label: str) -> None:
    svg = str(charts.freshness([SourceFreshness(label, "2026-11-20T00:00:00Z", 86400, True, 3)],
                               "2026-11-21T00:00:00Z"))
    assert not any(ch in svg for ch in HIDDEN) and "[U+" in svg


# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) that are not format characters:
# variation selectors, the combining grapheme joiner, Hangul fillers, Khmer inherent vowels,
# Mongolian free variation selectors. Renderers draw nothing for them, so "job-42\ufe00" and
# "job-42" read the same.
IGNORABLE_NOT_FORMAT = ("\u034f", "\u115f", "\u1160", "\u17b4", "\u17b5", "\u180b", "\u180c", "\u180d", "\u180f",
                        "\u3164", "\ufe00", "\ufe0f", "\uffa0", "\U000e0100", "\U000e01ef")


@pytest.mark.parametrize("char", IGNORABLE_NOT_FORMAT, ids=lambda c: f"U+{ord(c):04X}")
def test_default_ignorable_characters_are_shown(char: str) -> None:
    assert reveal_invisible(f"job-42{char}") == f"job-42[U+{ord(char):04X}]"


def test_a_job_id_padded_with_ignorable_characters_reads_differently_in_the_pdf(tmp_path: Path) -> None:
    env = render.environment()
    html = env.from_string("<style>{{ css }}</style><p>{{ a }}</p><p>{{ b }}</p>").render(
        css=render.stylesheet(), a="job-42", b="job-42\ufe00\u3164\u034f")
    html_to_pdf(html, tmp_path / "p.pdf")
    lines = [line.strip() for line in pypdf.PdfReader(tmp_path / "p.pdf").pages[0].extract_text().splitlines()]
    assert lines[:2] == ["job-42", "job-42[U+FE00][U+3164][U+034F]"]
