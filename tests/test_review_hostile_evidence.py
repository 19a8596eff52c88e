"""Review: evidence values an attacker chose, through `fedledger append` → `bundle` → `verify-bundle`.

Anyone who can push a branch, name a job, request a Vault path or put an S3 object controls
some evidence text. Vault logs the decoded request path (``%0D`` is a carriage return) and
CloudTrail the object key, so a CR, a leading ``=`` or Markdown can reach any column. The
bundle must stay exact for machines (every CSV row cites one entry, verify-bundle passes on an
honest bundle) and inert for people (no spreadsheet formula, no markup).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.ledger import Ledger, NewEntry

ORIGIN = "example.gov/review-hostile"
AS_OF = "2026-11-25T00:00:00Z"
CONTROLS = "AU-8"  # the timestamps check examines, and so cites, every entry
DDE = "=cmd|' /C calc'!A0"  # no comma or double quote: the csv module leaves such a field unquoted


def _event(n: int, kind: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {"time": f"2026-11-20T10:00:{n:02d}Z", "kind": kind, "actor": "entity-1",
                               "action": "read", "resource": "kv/data/ci/model",
                               "outcome": {"status": "success", "error": None},
                               "correlation": {"job_id": str(100 + n)}, "attrs": {}}
    base.update(fields)
    return base


HOSTILE_JOB = {"job_id": '"><img src=x onerror=alert(2)>', "run_id": "data:text/html,<script>alert(3)</script>",
               "repository": "</style><style>*{background:url(file:///etc/passwd)}</style>{{ 7*7 }}"}
# Each value is what the named evidence field holds, as the collector stored it.
HOSTILE_EVENTS = [
    _event(0, "vault.secret_read", resource="kv/data/ci/x\r" + DDE),            # CR mid-value, then a formula
    _event(1, "vault.secret_read", resource="\r" + DDE),                         # CR first
    _event(2, "vault.secret_read", resource="kv/data/a\nb"),                     # LF mid-value
    _event(3, "vault.secret_read", actor="=1+1", resource="+1", action="-1"),    # formula starters
    _event(4, "vault.secret_read", actor="@SUM(A1)", resource="\t=1"),
    _event(5, "vault.secret_read", actor="'=1+1", resource="'plain"),            # already starts with a quote
    _event(6, "vault.secret_read", actor="\x00=1+1"),                            # NUL first
]
# A CI job whose id, run id and repository are markup, URLs and template syntax, stored as the CI
# collector stores its events (a ci.* kind appended by hand is manual evidence, not a CI job).
HOSTILE_CI_EVENTS = [
    _event(7, "ci.job_started", actor="<script>alert(1)</script>", action="in_progress",
           resource="javascript:alert(1)", correlation=HOSTILE_JOB),
    _event(8, "ci.job_completed", actor="x", action="completed", resource="file:///etc/passwd",
           correlation=HOSTILE_JOB),
]


def fl(tmp: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--ledger", str(tmp / "l.db"), "--as-of", AS_OF, *args])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile")
    assert fl(tmp, "init", "--origin", ORIGIN).exit_code == 0
    (tmp / "e.jsonl").write_text("".join(json.dumps(e) + "\n" for e in HOSTILE_EVENTS), encoding="utf-8")
    appended = fl(tmp, "append", str(tmp / "e.jsonl"))
    assert appended.exit_code == 0, appended.output
    with Ledger.open(tmp / "l.db") as ledger:
        ledger.append([NewEntry({"kind": "ci", "id": "ci:hostile", "location": "hostile.jsonl", "line": n + 1},
                                AS_OF, event, hashlib.sha256(b"").hexdigest(), 0)  # no raw bytes
                       for n, event in enumerate(HOSTILE_CI_EVENTS)])
    made = fl(tmp, "bundle", "--out", str(tmp / "b"), "--workers", "1", "--controls", CONTROLS)
    assert made.exit_code == 0, made.output
    return tmp / "b"


def csv_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_a_carriage_return_in_evidence_does_not_split_a_csv_row(bundle: Path) -> None:
    rows = csv_rows(bundle / "controls" / "AU-8.csv")
    assert [row[0] for row in rows[1:]] == [str(seq) for seq in range(len(HOSTILE_EVENTS) + len(HOSTILE_CI_EVENTS))]
    assert all(len(row) == len(rows[0]) for row in rows)
    resources = [row[rows[0].index("resource")] for row in rows[1:]]
    assert resources[0] == "kv/data/ci/x\r" + DDE and resources[2] == "kv/data/a\nb"


def test_verify_bundle_passes_on_an_honest_bundle_of_hostile_evidence(bundle: Path) -> None:
    tmp = bundle.parent
    checked = fl(tmp, "verify-bundle", str(bundle), "--trusted-key", str(tmp / "l.pub"), "--origin", ORIGIN)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.strip().splitlines()[-1].endswith(" 0 INVALID")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\x00")  # OWASP CSV injection, and ASVS 1.2.10's NUL


def spreadsheet_text_to_evidence(cell: str) -> str:
    """What docs/bundle.md tells a machine reader to do: drop one leading quote, if there is one."""
    return cell[1:] if cell.startswith("'") else cell


def test_csv_cells_are_never_formulas_and_give_back_the_exact_evidence(bundle: Path) -> None:
    rows = csv_rows(bundle / "controls" / "AU-8.csv")
    header, body = rows[0], rows[1:]
    stored = [json.loads(line) for line in (bundle / "ledger" / "entries.jsonl").read_bytes().split(b"\n")[:-1]]
    for row in body:
        event = stored[int(row[0])]["event"]
        for name in ("actor", "action", "resource"):
            cell = row[header.index(name)]
            assert not cell.startswith(FORMULA_STARTS), (name, cell)
            assert spreadsheet_text_to_evidence(cell) == event[name], (name, cell)


# -- OSCAL: description and remarks are markup-multiline, titles markup-line: Markdown in JSON --------

MARKDOWN_ATTACK = ("[open](javascript:alert(1)) ![pixel](https://evil.example/p.png) <img src=x onerror=alert(2)> "
                   "`code` *em* _em_ {{ insert: param, ac-2_prm_1 }} ~sub~ ^sup^ &lt;b&gt; | a | b |\n# heading\n"
                   "- item\n1. item\n> quote")


def commonmark_text(markdown: str) -> str:
    """The text a CommonMark renderer shows for *markdown*, when it holds no markup: backslash
    escapes of ASCII punctuation undone. Any other markup (a link, an image, raw HTML, an entity,
    a parameter insertion) is left in and fails the comparison below."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def test_evidence_text_in_oscal_markup_is_text_not_markdown(tmp_path: Path) -> None:
    from bench.synthetic import build_assessment, build_ledger
    from bundler.oscal_ar import build_assessment_results

    world = build_ledger(tmp_path / "l.db", entries=60, jobs=2, sign=False)
    assessment = build_assessment(world, evidence_text=MARKDOWN_ATTACK, controls=4)
    doc = build_assessment_results(assessment, checkpoint_size=60, checkpoint_root="e" * 64, evidence_files={})
    result = doc["assessment-results"]["results"][0]
    finding = next(f for f in result["findings"] if f["target"]["target-id"] == "ia-5_smt")
    control = assessment.control("ia-5")
    assert commonmark_text(finding["remarks"]) == "\n".join(f"{f.title}: {f.description}" for f in control.findings)
    assert commonmark_text(finding["description"]) == "; ".join(c.summary for c in control.checks)
    shown = [o for o in result["observations"] if commonmark_text(o["description"]).endswith(MARKDOWN_ATTACK)]
    assert shown
    # each evaluation finding is also an observation and, the control being not satisfied, a risk
    risks = result["risks"]
    assert [commonmark_text(r["description"]) for r in risks] == [f.description for f in control.findings]
    assert [commonmark_text(r["title"]) for r in risks] == [f.title for f in control.findings]
    for value in (finding["remarks"], finding["description"], *(o["description"] for o in shown),
                  *(o["title"] for o in shown), *(r[k] for r in risks for k in ("title", "description", "statement"))):
        for markup in ("[open]", "![pixel]", "<img", "{{", "&lt;", "`code`", "*em*", "\n#", "\n-", "\n1.", "\n>"):
            assert not re.search(r"(?<!\\)" + re.escape(markup), value), (markup, value)  # only escaped


def test_oscal_of_hostile_evidence_is_schema_valid_json(bundle: Path, tmp_path: Path) -> None:
    from bench.synthetic import build_assessment, build_ledger
    from bundler.oscal_ar import build_assessment_results
    from tests.test_package_oscal import oscal_reference_problems, oscal_validator

    world = build_ledger(tmp_path / "l.db", entries=60, jobs=2, sign=False)
    text = MARKDOWN_ATTACK + " \u2028\u2029\x00\x1b\u202e \r\n" + "A" * 5000
    made = build_assessment_results(build_assessment(world, evidence_text=text, controls=4), checkpoint_size=60,
                                    checkpoint_root="e" * 64, evidence_files={})
    bundled = json.loads((bundle / "oscal" / "assessment-results.json").read_bytes())
    validator = oscal_validator()  # skips when the OSCAL 1.1.3 schema is not present
    for doc in (made, bundled):
        assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc
        errors = list(validator.iter_errors(doc))
        assert not errors, errors[0].message[:300]
        assert oscal_reference_problems(doc) == []


# -- HTML and PDF reports: very long evidence text ----------------------------------------------

def _text_of(html: str) -> str:
    import html as html_module

    body = html.split("<body>", 1)[1]
    body = re.sub(r"<svg.*?</svg>", " ", body, flags=re.S)
    return html_module.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.mark.parametrize("long_text", ["J" * 200_000, "word " * 60_000], ids=["unbroken", "words"])
def test_very_long_evidence_text_is_shortened_in_reports_and_renders_quickly(tmp_path: Path, long_text: str) -> None:
    """WeasyPrint breaks an unbroken run in time quadratic in its length (16,000 characters in one
    table cell: 5 s; 200,000: over ten minutes, per quote), so one long job name or endpoint stalled
    every PDF of the bundle that quotes it. Reports show the start and end of a long run and say how much is left out; the CSV
    and the ledger keep the whole value."""
    import time

    from bench.synthetic import build_assessment, build_ledger
    from bundler import render
    from bundler.pdf import html_to_pdf

    world = build_ledger(tmp_path / "l.db", entries=60, jobs=2, sign=False)
    assessment = build_assessment(world, evidence_text=long_text, controls=4)
    facts = render.BundleFacts("system", ORIGIN, 60, "ab" * 32, "note")
    html = render.render_control(assessment, assessment.control("ia-5"), facts)
    text = _text_of(html)
    assert max(len(run) for run in text.split()) <= 600
    assert len(html) < 300_000  # 8 quotes of the evidence, each shortened
    assert re.search(r"\[[\d,]+ more characters\]", text)
    started = time.perf_counter()
    html_to_pdf(html, tmp_path / "c.pdf")
    assert time.perf_counter() - started < 60


# -- file names in the bundle ------------------------------------------------------------------

SAFE_MEMBER = re.compile(r"[A-Za-z0-9._-]{1,200}(/[A-Za-z0-9._-]{1,200})*")


@pytest.mark.parametrize("origin", ["example.gov\\ci", "example.gov/" + "x" * 300, "example.gov/a:b|c?*<>\"d"],
                         ids=["backslash", "long", "windows-reserved"])
def test_an_origin_any_name_makes_bundle_member_names_that_verify(tmp_path: Path, origin: str) -> None:
    """The ledger key's file under ledger/keys/ is named after its key name (the origin), which
    `init` takes with any character but space and '+'. A backslash made a member name every
    archive reader (verify-bundle included) rejects; 300 characters made the bundle fail with
    OSError (file name too long)."""
    assert fl(tmp_path, "init", "--origin", origin).exit_code == 0
    made = fl(tmp_path, "bundle", "--out", str(tmp_path / "b"), "--workers", "1", "--controls", CONTROLS,
              "--archive", "zip")
    assert made.exit_code == 0, made.output
    names = [p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*") if p.is_file()]
    assert [n for n in names if not SAFE_MEMBER.fullmatch(n)] == []
    for target in (tmp_path / "b", tmp_path / "b.zip"):
        checked = fl(tmp_path, "verify-bundle", str(target), "--trusted-key", str(tmp_path / "l.pub"),
                     "--origin", origin)
        assert checked.exit_code == 0, checked.output


def test_key_file_names_of_ordinary_origins_are_unchanged(bundle: Path) -> None:
    keys = sorted(p.name for p in (bundle / "ledger" / "keys").iterdir())
    assert len(keys) == 1 and re.fullmatch(r"example\.gov_review-hostile-[0-9a-f]+\.pem", keys[0])


# -- HTML and PDF reports: evidence is text --------------------------------------------------------

ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "p", "h1", "h2", "h3", "section", "dl", "dt", "dd",
                "table", "thead", "tbody", "tr", "th", "td", "span", "b", "code", "br", "div", "ol", "ul", "li", "a",
                "svg", "rect", "text", "line", "polyline", "circle"}
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'"


def test_hostile_job_ids_and_repositories_stay_text_in_every_report(bundle: Path) -> None:
    from html.parser import HTMLParser

    import pypdf

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[str, dict[str, str | None]]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.seen.append((tag, dict(attrs)))

    pages = sorted(bundle.rglob("*.html"))
    timeline = (bundle / "controls" / "AU-8.html").read_text(encoding="utf-8")
    assert "Job &#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in timeline and "{{ 7*7 }}" in timeline
    for page in pages:
        parser = Tags()
        parser.feed(page.read_text(encoding="utf-8"))
        assert {tag for tag, _ in parser.seen} <= ALLOWED_TAGS, page
        metas = [attrs for tag, attrs in parser.seen if tag == "meta" and attrs.get("http-equiv")]
        assert metas == [{"http-equiv": "Content-Security-Policy", "content": CSP}], page
        for tag, attrs in parser.seen:
            assert "style" not in attrs or re.fullmatch(r"width:\d+%", attrs["style"] or ""), (page, attrs)
            assert not any(name.startswith("on") for name in attrs), (page, attrs)
            if "href" in attrs:
                assert re.fullmatch(r"controls/[A-Z0-9.-]+\.(html|pdf|csv)", attrs["href"] or ""), (page, attrs)
    for pdf in sorted(bundle.rglob("*.pdf")):
        reader = pypdf.PdfReader(pdf)
        assert reader.attachments == {}
        for number, page in enumerate(reader.pages):
            for annot in page.get("/Annots") or []:
                action = annot.get_object().get("/A") or {}
                uri = str(action.get("/URI", ""))
                assert not uri or re.fullmatch(r"controls/[A-Z0-9.-]+\.(html|pdf|csv)", uri), (pdf, number, uri)
