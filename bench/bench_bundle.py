"""Benchmark: bundle a synthetic ledger for the Moderate baseline.

    python -m bench.bench_bundle [--entries 1000000] [--jobs 2000] [--workers 2] [--dir PATH]

The ledger holds all four sources (CI, Vault, CloudTrail, attestations) for
``--jobs`` CI jobs, padded with CloudTrail API calls to ``--entries``; it is built
first and not timed. Then, timed, as ``fedledger bundle`` does it: BundleBuilder.read_evidence, bundler.evaluate, finish
(the read pass: export, hashes, chain and table rows in one pass split over
two processes; then evaluation; then CSV, proofs, HTML, OSCAL, PDFs in
``--workers`` processes, manifest). Floor, measured in the same run: WeasyPrint rendering the same HTML
pages one after another in this one process. Prints pages/s of both, the ratio,
the split of the bundle's time, and peak RSS (this process and the PDF workers).
Target: bundle ≥ 1.5× floor pages/s, aggregation not dominating, RSS < 1.5 GB.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson


def build_ledger(path: Path, entries: int, jobs: int) -> int:
    from bench.synthetic import ORIGIN, signer
    from collector.checkpoint import Checkpoint
    from collector.ledger import Ledger, NewEntry
    from tests.synthetic_jobs import iter_entries

    per_job = sum(1 for _ in iter_entries(1, api_calls=0))
    api_calls = max(0, entries // jobs - per_job)
    ledger = Ledger.create(path, ORIGIN, created="2026-11-20T00:00:00Z", key_type="ecdsa-p256")
    batch: list[NewEntry] = []
    for seq, event, source in iter_entries(jobs, api_calls=api_calls):
        batch.append(NewEntry(source, "2026-12-31T00:00:00Z", event, hashlib.sha256(b"%d" % seq).hexdigest(), 100))
        if len(batch) >= 20000:
            ledger.append(batch)
            batch = []
    if batch:
        ledger.append(batch)
    sign = signer()
    ledger.add_checkpoint(lambda size, root: sign.sign_checkpoint(Checkpoint(ORIGIN, size, root)), "2026-12-31T00:00:00Z")
    size = ledger.size
    ledger.close()
    return size


def pdf_pages(paths: list[Path]) -> int:
    import pypdf

    return sum(len(pypdf.PdfReader(p).pages) for p in paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="Work folder (default: a temporary one, removed).")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, args)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    from bench.synthetic import signer
    from bundler.bundle import BundleBuilder
    from bundler.catalog import load_builtin_catalog, select_controls
    from bundler.evaluate import evaluate_reading
    from collector.ledger import Ledger

    t = time.perf_counter()
    if (work / "bench.db").exists():  # --dir of an earlier run: reuse its ledger
        with Ledger.open(work / "bench.db") as existing:
            size = existing.size
        for old in ("bundle", "floor"):
            shutil.rmtree(work / old, ignore_errors=True)
        print(f"ledger: {size:,} entries, reused from {work}")
    else:
        size = build_ledger(work / "bench.db", args.entries, args.jobs)
        print(f"ledger: {size:,} entries, {args.jobs:,} CI jobs, built in {time.perf_counter() - t:.1f}s (not timed)")

    def child_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def own_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    cpu_children_before, cpu_self_before = child_cpu(), own_cpu()
    start = time.perf_counter()
    with Ledger.open(work / "bench.db") as ledger:
        builder = BundleBuilder.start(ledger, work / "bundle", signer(), workers=args.workers)
        catalog = load_builtin_catalog()
        selected = select_controls(catalog, baseline="moderate")
        reading = builder.read_evidence()  # one pass: export, hashes, chain, table rows (two processes)
        read = time.perf_counter()
        phases: dict[str, float] = {}
        assessment = evaluate_reading(reading, as_of="2026-12-31T00:00:00Z", origin=ledger.origin, catalog=catalog,
                                      controls=selected, baseline="moderate", timings=phases)
        del reading
        evaluated = time.perf_counter()
        result = builder.finish(assessment)
    whole = time.perf_counter() - start
    bundle_worker_cpu = child_cpu() - cpu_children_before
    bundle_self_cpu = own_cpu() - cpu_self_before
    reading_time = read - start
    evaluation = evaluated - read
    pdfs = sorted((work / "bundle").rglob("*.pdf"))
    pages = pdf_pages(pdfs)
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = result.pdf_worker_peak_rss_mb

    # Floor: the same HTML pages, one after another, in one fresh WeasyPrint process
    # (the same worker program the bundle runs two of, so startup costs match).
    floor_dir = work / "floor"
    floor_dir.mkdir()
    jobs = b"".join(orjson.dumps({"html": str(p.with_suffix(".html")), "pdf": str(floor_dir / p.name)}) + b"\n"
                    for p in pdfs)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bundler.pdf"], input=jobs, capture_output=True, check=True)
    floor = time.perf_counter() - t
    floor_cpu = child_cpu() - cpu_children_before - bundle_worker_cpu
    if len(list(floor_dir.glob("*.pdf"))) != len(pdfs):
        raise SystemExit("floor run did not render every page")

    floor_rate = pages / floor
    bundle_rate = pages / whole
    print(f"controls: {len(assessment.controls)}, pdfs: {len(pdfs)}, pages: {pages}, cited entries: {result.cited_entries:,}")
    print(f"floor : WeasyPrint, same {len(pdfs)} HTML files, one fresh process: {floor:.1f}s = {floor_rate:.2f} pages/s")
    print(f"bundle: evaluate + build_bundle, {args.workers} PDF workers: {whole:.1f}s = {bundle_rate:.2f} pages/s")
    print(f"ratio : {bundle_rate / floor_rate:.2f}x floor (target >= 1.5x)")
    split = {"read pass": reading_time, "evaluate": evaluation, **result.timings}
    # The stages after evaluation overlap the PDF workers (pages are sent as they are written), so
    # aggregation is what ran before the first page went to a worker: read pass, evaluation, tree, index.
    pdf_phase = result.timings.get("pdf phase (first page sent to last page done)", result.timings.get("pdf", 0.0))
    aggregation = whole - pdf_phase
    print("split : " + ", ".join(f"{k} {v:.1f}s" for k, v in split.items()))
    print("        evaluation phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()))
    print(f"        aggregation (before the first page went to a PDF worker) {aggregation:.1f}s = "
          f"{100 * aggregation / whole:.0f}% of the bundle; PDF phase {pdf_phase:.1f}s (CSVs, the other pages, "
          "proofs and OSCAL are written during it)")
    print(f"cpu   : bundle {bundle_self_cpu + bundle_worker_cpu:.1f} CPU-s over {whole:.1f}s wall "
          f"({(bundle_self_cpu + bundle_worker_cpu) / whole:.2f} cores; this process {bundle_self_cpu:.1f}, child processes "
          f"(the pass's child, PDF workers) {bundle_worker_cpu:.1f}); floor {floor_cpu:.1f} CPU-s over {floor:.1f}s wall "
          f"({floor_cpu / floor:.2f} cores). Well under 2 cores used means a busy machine.")
    print(f"rss   : peak {rss_self:.0f} MB in this process, {result.pass_child_peak_rss_mb} MB in the pass's child, "
          f"{rss_children:.0f} MB in the largest PDF worker (target < 1536 MB, each)")

    from bench.synthetic import public_pem
    from bundler.bundle_verify import verify_bundle

    t = time.perf_counter()
    report = verify_bundle(work / "bundle", trusted_keys=[public_pem()], origin=assessment.origin)
    print(f"verify-bundle (folder, pinned key): {time.perf_counter() - t:.1f}s, ok={report.ok}, "
          f"{report.entries_checked:,} entries, {report.proofs_checked:,} proofs")


if __name__ == "__main__":
    main()
