"""HTML to PDF with WeasyPrint, fetching nothing but the package's own assets.

WeasyPrint's default fetcher opens ``file://``, ``http(s)://`` and ``data:`` URLs
and follows redirects, so untrusted evidence text that ever reached markup could
pull local files into the PDF (as images or as attachments). Reports are rendered
with :class:`PackageAssetFetcher`, which answers only ``fedledger-asset:NAME`` for
files shipped in :mod:`bundler.templates` with an allowed suffix, and refuses
every other URL (it opens no connection and no file, so there is nothing to
redirect). Refusals are recorded so tests and callers can see what was asked.

:func:`render_pdfs` renders many pages in parallel processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from bundler.assets import asset_bytes, asset_names

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


def html_to_pdf(html: str, target: Path) -> list[str]:
    """Render *html* to *target*; return the URLs that were refused (for diagnostics)."""
    fetcher = PackageAssetFetcher()
    HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher).write_pdf(
        str(target), pdf_identifier=b"fedledger", uncompressed_pdf=False
    )
    return fetcher.refused


@dataclass(frozen=True)
class PdfJob:
    html_path: Path
    pdf_path: Path


def _render_job(job: PdfJob) -> tuple[str, int]:
    html = job.html_path.read_text(encoding="utf-8")
    refused = html_to_pdf(html, job.pdf_path)
    return str(job.pdf_path), len(refused)


def _quiet_worker() -> None:
    # Refused URLs are expected when evidence holds URLs; do not flood stderr.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)


def _context():  # type: ignore[no-untyped-def]
    # fork: no re-import of the caller's __main__ (spawn needs a main guard every
    # caller would have to remember); the parent renders nothing before forking.
    import sys

    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def render_pdfs(jobs: Sequence[PdfJob], *, workers: int | None = None) -> int:
    """Render every job; in parallel processes when *workers* > 1. Returns the refused-URL count."""
    workers = workers or min(2, os.cpu_count() or 1)
    if workers <= 1 or len(jobs) <= 1:
        _quiet_worker()
        return sum(_render_job(job)[1] for job in jobs)
    # Largest pages first so one long report does not finish last alone.
    ordered = sorted(jobs, key=lambda j: j.html_path.stat().st_size, reverse=True)
    refused = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_quiet_worker) as pool:
        for _path, count in pool.map(_render_job, ordered, chunksize=1):
            refused += count
    return refused
