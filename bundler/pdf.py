"""HTML to PDF with WeasyPrint, fetching nothing but the package's own assets.

WeasyPrint's default fetcher opens ``file://``, ``http(s)://`` and ``data:`` URLs
and follows redirects, so untrusted evidence text that ever reached markup could
pull local files into the PDF (as images or as attachments). Reports are rendered
with :class:`PackageAssetFetcher`, which answers only ``fedledger-asset:NAME`` for
files shipped in :mod:`bundler.templates` with an allowed suffix, and refuses
every other URL (it opens no connection and no file, so there is nothing to
redirect). Refusals are recorded, and :class:`PdfWorkers` reports each one with its page
(:attr:`PdfWorkers.refusals`): the bundle shows them in its index and ``fedledger bundle``
exits 1, because our templates reference nothing else, so a refusal means a page holds
markup it should not.

The same HTML gives the same PDF bytes: the document ``/ID`` is derived from the
HTML, WeasyPrint writes no dates unless the page names them, and the one clock
reading left (fontTools stamps each subset font's ``head.modified`` with the time,
or ``SOURCE_DATE_EPOCH`` when set) is pinned to a time the caller passes (the
bundle passes its as-of).

:class:`PdfWorkers` / :func:`render_pdfs` render many pages in parallel fresh processes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from bundler.assets import asset_bytes, asset_names
from bundler.process_stats import peak_rss_mb

ASSET_SCHEME = "fedledger-asset:"
BASE_URL = ASSET_SCHEME + "/"
ASSET_TYPES = {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png", ".woff2": "font/woff2"}


class RefusedURL(ValueError):
    """A URL the report renderer will not fetch."""


class PackageAssetFetcher(URLFetcher):
    """Serves ``fedledger-asset:NAME`` from the package's templates; refuses everything else."""

    def __init__(self) -> None:
        super().__init__(allowed_protocols=(), allow_redirects=False, fail_on_errors=False)
        self.refused: list[str] = []
        self.served: list[str] = []

    def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
        if url.startswith(ASSET_SCHEME):
            name = url[len(ASSET_SCHEME):].lstrip("/")
            suffix = Path(name).suffix
            if "/" not in name and "\\" not in name and suffix in ASSET_TYPES and name in asset_names():
                self.served.append(name)
                return URLFetcherResponse(url, asset_bytes(name), {"Content-Type": ASSET_TYPES[suffix]})
        self.refused.append(url[:200])
        raise RefusedURL(f"refused to fetch {url[:80]!r}: reports load only the package's own assets")


@contextmanager
def _source_date_epoch(epoch: int | None) -> Iterator[None]:
    """``SOURCE_DATE_EPOCH`` set to *epoch* for the block (the reproducible-builds convention
    fontTools reads in place of the clock), then restored; *None* leaves it as it is."""
    if epoch is None:
        yield
        return
    before = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(int(epoch))
    try:
        yield
    finally:
        if before is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = before


def html_to_pdf(html: str, target: Path, *, source_date_epoch: int | None = None) -> list[str]:
    """Render *html* to *target*; return the URLs that were refused (for diagnostics).

    With *source_date_epoch* (seconds since 1970) the PDF's bytes depend only on *html*:
    that time stands in for the clock in the embedded fonts, whatever the environment
    says. The PDF ``/ID`` is a hash of *html* either way."""
    fetcher = PackageAssetFetcher()
    identifier = hashlib.sha256(html.encode("utf-8")).hexdigest()[:32].encode("ascii")
    with _source_date_epoch(source_date_epoch):
        HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher).write_pdf(
            str(target), pdf_identifier=identifier, uncompressed_pdf=False
        )
    return fetcher.refused


@dataclass(frozen=True)
class PdfJob:
    html_path: Path
    pdf_path: Path
    source_date_epoch: int | None = None  # see html_to_pdf


def _render_job(job: PdfJob) -> tuple[str, list[str]]:
    """Render one page; returns its PDF path and the URLs the fetcher refused for it."""
    html = job.html_path.read_text(encoding="utf-8")
    refused = html_to_pdf(html, job.pdf_path, source_date_epoch=job.source_date_epoch)
    return str(job.pdf_path), refused


def _quiet() -> None:
    # Refused URLs are expected when evidence holds URLs; do not flood stderr.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)


class PdfWorkers:
    """PDF renderers in fresh interpreter processes (``python -m bundler.pdf``).

    Fresh processes, not forks: a fork would share (and, as the GC touches it,
    copy) the parent's heap of parsed evidence, and ``spawn`` would re-run the
    caller's ``__main__``. Start them early (:meth:`start`) so their imports and a
    warm-up page (fonts, the stylesheet, WeasyPrint's own caches) overlap the
    caller's aggregation; :meth:`render` then hands out one job at a time to
    whichever worker is free, largest pages first.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.count = max(1, workers or min(2, os.cpu_count() or 1))
        self._procs: list[subprocess.Popen[bytes]] = []
        self.peak_rss_mb = 0  # the largest worker's peak resident set, as the workers report it
        self._queue: list[PdfJob] = []
        self._idle: list[subprocess.Popen[bytes]] = []
        self._selector: selectors.BaseSelector | None = None
        self._refused = 0
        self.refusals: list[tuple[str, str]] = []  # (PDF path, refused URL), every page since start, in answer order
        self.first_submitted: float | None = None  # perf_counter() of the first submit (for timings)

    def start(self) -> PdfWorkers:
        if self.count > 1 and not self._procs:
            for _ in range(self.count):
                self._procs.append(subprocess.Popen(
                    [sys.executable, "-m", "bundler.pdf", "--warm-up"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    env={**os.environ, "PYTHONPATH": _import_root() + os.pathsep + os.environ.get("PYTHONPATH", "")},
                ))
        return self

    def render(self, jobs: Sequence[PdfJob]) -> int:
        """Render every job, largest pages first; returns the number of refused URLs. Raises if a worker fails."""
        if self.count <= 1 or (len(jobs) <= 1 and not self._procs):
            _quiet()
            refused = 0
            for job in jobs:
                refused += self._record(*_render_job(job))
            return refused
        for job in sorted(jobs, key=_html_size, reverse=True):
            self.submit(job)
        return self.wait()

    def submit(self, job: PdfJob) -> None:
        """Queue *job*; a free worker starts on it at once (with one worker, :meth:`wait` renders it here)."""
        if self.first_submitted is None:
            self.first_submitted = time.perf_counter()
        self._queue.append(job)
        if self.count > 1:
            self._pump(block=False)

    def wait(self) -> int:
        """Render everything submitted; returns the number of refused URLs since the last wait."""
        if self.count <= 1:
            _quiet()
            while self._queue:
                self._refused += self._record(*_render_job(self._queue.pop(0)))
        else:
            while self._queue or len(self._idle) < len(self._procs):
                self._pump(block=True)
        refused, self._refused = self._refused, 0
        return refused

    def _pump(self, *, block: bool) -> None:
        """Take the answers that are in (waiting for one if *block*), then give queued jobs to idle workers."""
        self.start()
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            for proc in self._procs:
                assert proc.stdout is not None
                self._selector.register(proc.stdout, selectors.EVENT_READ, proc)
            self._idle = list(self._procs)
        busy = len(self._idle) < len(self._procs)
        if busy:
            for key, _ in self._selector.select(timeout=None if block and not (self._queue and self._idle) else 0):
                proc = key.data
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"PDF worker {proc.pid} exited with {proc.wait()}")
                answer = orjson.loads(line)
                if not answer.get("ok"):
                    raise RuntimeError(f"PDF worker failed on {answer.get('pdf')}: {answer.get('error')}")
                self._refused += self._record(str(answer["pdf"]), [str(u) for u in answer["refused"]])
                self.peak_rss_mb = max(self.peak_rss_mb, int(answer.get("peak_rss_mb", 0)))
                self._idle.append(proc)
        while self._queue and self._idle:
            self._send(self._idle.pop(0), self._queue.pop(0))

    def _record(self, pdf: str, refused: list[str]) -> int:
        self.refusals.extend((pdf, url) for url in refused)
        return len(refused)

    @staticmethod
    def _send(proc: subprocess.Popen[bytes], job: PdfJob) -> None:
        assert proc.stdin is not None
        proc.stdin.write(orjson.dumps({"html": str(job.html_path), "pdf": str(job.pdf_path),
                                       "source_date_epoch": job.source_date_epoch}) + b"\n")
        proc.stdin.flush()

    def close(self, *, abort: bool = False) -> None:
        """Let the workers finish and exit; with *abort* (the bundle failed or was interrupted) stop them now."""
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        self._queue = []
        self._idle = []
        for proc in self._procs:
            if abort and proc.poll() is None:
                proc.kill()
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except BrokenPipeError:  # a killed worker's pipe
                    pass
        for proc in self._procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs = []

    def __enter__(self) -> PdfWorkers:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(abort=exc_type is not None)


def _html_size(job: PdfJob) -> int:
    try:
        return job.html_path.stat().st_size
    except OSError:
        return 0  # the worker will report the missing file


def _import_root() -> str:
    """The folder holding the ``bundler`` package, so workers import this same code."""
    return str(Path(__file__).resolve().parent.parent)


def render_pdfs(jobs: Sequence[PdfJob], *, workers: int | None = None) -> int:
    """Render every job; in parallel fresh processes when *workers* > 1. Returns the refused-URL count."""
    with PdfWorkers(workers) as pool:
        return pool.render(jobs)


def warm_up() -> None:
    """Render a small page with the report stylesheet and fonts, and throw it away: the
    one-time costs of a fresh process (font configuration, style sheets) are paid
    before the first real page arrives."""
    css = asset_bytes("report.css").decode("utf-8")
    html = (f"<!DOCTYPE html><html><head><style>{css}</style></head><body><h1>fedledger</h1><h2>Warm-up</h2>"
            "<p>Text in <b>bold</b> and <code>monospace</code>.</p><table><tr><th>column</th></tr>"
            "<tr><td class=\"hash\">0123456789abcdef</td></tr></table></body></html>")
    HTML(string=html, base_url=BASE_URL, url_fetcher=PackageAssetFetcher()).write_pdf()


def _worker_main(argv: list[str]) -> None:
    """Worker loop: one JSON job per stdin line, one JSON answer per stdout line.

    ``--warm-up`` first renders :func:`warm_up`'s page (the bundle's workers start
    while it evaluates; the benchmark's floor process does not warm up).

    Ctrl-C on a terminal reaches the whole process group: the worker ignores it and leaves the
    decision to the parent, which stops it (or closes its stdin), so an interrupted bundle prints
    one line, not a traceback per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _quiet()
    if "--warm-up" in argv:
        warm_up()
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        job = orjson.loads(line)
        try:
            _path, refused = _render_job(PdfJob(Path(job["html"]), Path(job["pdf"]), job.get("source_date_epoch")))
            answer = {"ok": True, "pdf": job["pdf"], "refused": refused, "peak_rss_mb": peak_rss_mb()}
        except Exception as exc:  # reported to the parent, which fails the bundle
            answer = {"ok": False, "pdf": job["pdf"], "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        out.write(orjson.dumps(answer) + b"\n")
        out.flush()


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
