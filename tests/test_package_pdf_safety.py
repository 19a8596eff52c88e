"""The PDF step fetches nothing outside the package: proven on the PDF bytes with pypdf.

Hostile evidence carries ``<img src=file:///etc/passwd>``, ``<link rel=attachment>``,
CSS ``url()`` and a URL in an attribute, both through the real templates (where it
must arrive as escaped text) and as raw markup handed straight to the renderer
(where the URL fetcher alone must refuse it). A real HTTP server on loopback, which
also redirects to ``file://``, counts requests: it must see none.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pypdf
import pytest
from pypdf.generic import IndirectObject

from bench.synthetic import build_assessment, build_ledger
from bundler import render
from bundler.pdf import BASE_URL, PackageAssetFetcher, html_to_pdf

SECRET_FILE_MARKER = b"fedledger-secret-marker-7f3a"


class CountingHandler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        CountingHandler.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", "file:///etc/passwd")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_bytes(SECRET_FILE_MARKER + b"\n")
    return path


def attack_text(secret: Path, http_url: str) -> str:
    return (f'<img src="file://{secret}"><img src="file:///etc/passwd">'
            f'<link rel="attachment" href="file://{secret}">'
            f'<div style="background: url(file://{secret})">x</div>'
            f'<style>@import url("{http_url}/import.css");</style>'
            f'<a href="{http_url}/redirect">link</a><img src="{http_url}/img.png">'
            f'<img src="data:image/svg+xml;base64,PHN2Zy8+">')


def all_stream_bytes(reader: pypdf.PdfReader) -> bytes:
    """Every object's decoded stream data plus the raw file, to search for leaked bytes."""
    chunks = []
    refs = [(num, gen) for gen, objects in reader.xref.items() for num in objects]
    refs += [(num, 0) for num in reader.xref_objStm]
    for num, gen in refs:
        obj = reader.get_object(IndirectObject(num, gen, reader))
        data = getattr(obj, "get_data", None)
        if data is not None:
            chunks.append(data())
    return b"".join(chunks)


def assert_nothing_embedded(pdf: Path, secret: Path) -> pypdf.PdfReader:
    raw = pdf.read_bytes()
    reader = pypdf.PdfReader(pdf)
    root = reader.trailer["/Root"]
    names = root.get("/Names")
    assert names is None or "/EmbeddedFiles" not in names.get_object()
    assert "/AF" not in root
    assert reader.attachments == {}
    for page in reader.pages:
        for annot in page.get("/Annots") or []:
            assert annot.get_object().get("/Subtype") != "/FileAttachment"
        resources = page.get("/Resources") or {}
        xobjects = resources.get("/XObject") or {}
        for xobj in xobjects.values():
            assert xobj.get_object().get("/Subtype") != "/Image"
    everything = raw + all_stream_bytes(reader)
    assert SECRET_FILE_MARKER not in everything
    assert b"root:x:0:0" not in everything
    return reader


def test_hostile_evidence_through_templates_is_text_and_fetches_nothing(tmp_path: Path, secret_file: Path,
                                                                        http_url: str) -> None:
    CountingHandler.hits.clear()
    attack = attack_text(secret_file, http_url)
    world = build_ledger(tmp_path / "l.db", entries=120, jobs=2, evidence_text=attack)
    assessment = build_assessment(world, evidence_text=attack, controls=4)
    facts = render.BundleFacts("system", world.path.name, 120, "ab" * 32, "note")
    html = render.render_control(assessment, assessment.control("ia-5"), facts)
    refused = html_to_pdf(html, tmp_path / "c.pdf")
    assert refused == []  # escaped: the renderer never even saw a URL to refuse
    reader = assert_nothing_embedded(tmp_path / "c.pdf", secret_file)
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "<img src=" in text and "rel=\"attachment\"" in text  # shown as text, escaped in the markup
    assert CountingHandler.hits == []


def test_raw_hostile_markup_is_refused_by_the_fetcher(tmp_path: Path, secret_file: Path, http_url: str) -> None:
    CountingHandler.hits.clear()
    html = f"<html><body><p>evidence</p>{attack_text(secret_file, http_url)}</body></html>"
    refused = html_to_pdf(html, tmp_path / "raw.pdf")
    assert any(u.startswith("file://") for u in refused)
    assert any(u.startswith("http://127.0.0.1") for u in refused)
    assert any(u.startswith("data:") for u in refused)
    assert_nothing_embedded(tmp_path / "raw.pdf", secret_file)
    assert CountingHandler.hits == []


def test_fetcher_serves_only_shipped_assets() -> None:
    fetcher = PackageAssetFetcher()
    response = fetcher.fetch(BASE_URL + "report.css")
    assert b"@page" in response.read()
    for url in (BASE_URL + "../pyproject.toml", BASE_URL + "base.html.j2", "fedledger-asset:sub/report.css",
                "file:///etc/passwd", "https://example.com/x.css", "data:text/css,body{}"):
        with pytest.raises(ValueError):
            fetcher.fetch(url)
    assert len(fetcher.refused) == 6 and fetcher.served == ["report.css"]


def test_parallel_workers_render_every_page_and_report_failures(tmp_path: Path) -> None:
    from bundler.pdf import PdfJob, PdfWorkers

    jobs = []
    for i in range(3):
        (tmp_path / f"{i}.html").write_text(f"<p>page {i} <img src='file:///etc/passwd'></p>", encoding="utf-8")
        jobs.append(PdfJob(tmp_path / f"{i}.html", tmp_path / f"{i}.pdf"))
    with PdfWorkers(2) as workers:
        assert workers.render(jobs) == 3  # each page's file:// image refused, in the worker
        assert workers.peak_rss_mb > 0
    assert all((tmp_path / f"{i}.pdf").stat().st_size > 0 for i in range(3))
    with PdfWorkers(2) as workers:
        with pytest.raises(RuntimeError, match="PDF worker failed"):
            workers.render(jobs + [PdfJob(tmp_path / "missing.html", tmp_path / "m.pdf")])


def test_pages_submitted_one_by_one_render_while_more_are_written(tmp_path: Path) -> None:
    from bundler.pdf import PdfJob, PdfWorkers

    def page(i: int) -> PdfJob:
        (tmp_path / f"{i}.html").write_text(f"<p>page {i} <img src='file:///etc/passwd'></p>", encoding="utf-8")
        return PdfJob(tmp_path / f"{i}.html", tmp_path / f"{i}.pdf")

    with PdfWorkers(2) as workers:
        workers.submit(page(0))  # a worker starts on it before the next page exists
        for i in range(1, 5):
            workers.submit(page(i))
        assert workers.wait() == 5 and workers.wait() == 0  # the refused count is per wait
        workers.submit(page(5))
        assert workers.wait() == 1
    assert all((tmp_path / f"{i}.pdf").stat().st_size > 0 for i in range(6))
    with PdfWorkers(1) as alone:  # one worker: rendered here, at wait
        alone.submit(page(6))
        assert not (tmp_path / "6.pdf").exists() and alone.wait() == 1 and (tmp_path / "6.pdf").exists()
