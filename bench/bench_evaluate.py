"""Evaluation time and peak memory over a synthetic ledger (all four sources, N CI jobs).

    python -m bench.bench_evaluate                       # 1,000,000 entries, 2,000 jobs
    python -m bench.bench_evaluate --entries 100000 --jobs 200 [--policies samples/policies]

Entries stream from a generator (tests/synthetic_jobs.py: the shared sample story,
one compliant job after another, 20 minutes apart, hourly CloudTrail digests), so
nothing but evaluation holds them. Floor, measured in the same run: one plain Python
pass over the same generated entries that touches every event (counts kinds) — what
any evaluation must pay to read its input. Reported: floor time, evaluation time,
the ratio, each phase of evaluation, and peak RSS of the process.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bundler.evaluate import evaluate  # noqa: E402
from bundler.rego import load_policies  # noqa: E402
from tests.synthetic_jobs import BASE, iter_entries  # noqa: E402

FIXED_PER_JOB = 12  # events of a job besides API calls and secret reads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--secret-reads", type=int, default=10)
    parser.add_argument("--policies", type=Path, default=None, help="folder of .rego policies to evaluate too")
    args = parser.parse_args(argv)
    per_job = max(FIXED_PER_JOB + args.secret_reads + 1, args.entries // args.jobs)
    api_calls = per_job - FIXED_PER_JOB - args.secret_reads
    # one day after the last job (jobs are 20 minutes apart from the story's start)
    as_of = (BASE + args.jobs * timedelta(minutes=20) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def entries():
        return iter_entries(args.jobs, api_calls=api_calls, secret_reads=args.secret_reads)

    gc.collect()
    started = time.perf_counter()
    kinds: Counter[str] = Counter()
    total = 0
    for _, event, _ in entries():
        kinds[event["kind"]] += 1
        total += 1
    floor = time.perf_counter() - started
    policies = load_policies(args.policies) if args.policies else ()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    assessment = evaluate(entries(), as_of=as_of, origin="bench.example/ledger", policies=policies,
                          timings=timings, period=("2026-11-01T00:00:00Z", None))
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    statuses = Counter(c.status for c in assessment.controls)
    complete = sum(1 for s in assessment.custody if s.complete)
    print(f"entries: {total:,} ({args.jobs:,} jobs, {api_calls} API calls + {args.secret_reads} secret reads per job)")
    print(f"floor (generate + touch every entry): {floor:.2f} s = {total / floor:,.0f} entries/s")
    print(f"evaluate (same generator):            {elapsed:.2f} s = {total / elapsed:,.0f} entries/s "
          f"= {elapsed / floor:.2f}x floor")
    print(f"  of which over the floor (evaluation's own work): {max(0.0, elapsed - floor):.2f} s")
    for name, seconds in timings.items():
        print(f"  {name:<32} {seconds:7.2f} s")
    print(f"peak RSS: {peak_mb:,.0f} MB")
    print(f"controls: {dict(statuses)}; custody complete for {complete:,} of {len(assessment.custody):,} jobs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
