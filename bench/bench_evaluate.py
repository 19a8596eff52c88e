"""Evaluation time and peak memory over a synthetic ledger (all four sources, N CI jobs).

    python -m bench.bench_evaluate                       # 1,000,000 entries, 2,000 jobs
    python -m bench.bench_evaluate --entries 100000 --jobs 200 [--policies samples/policies]

Entries stream from a generator (tests/synthetic_jobs.py: the shared sample story,
one compliant job after another, 20 minutes apart, hourly CloudTrail digests), so
nothing but evaluation holds them. Measured in the same run: the time to generate the
entries (subtracted from evaluation), and the floor: ``orjson.loads`` of every entry's
JSON, what any evaluation pays just to read its input from a ledger. Reported:
evaluation's own time and its ratio to the floor, each phase, and peak RSS.
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

import orjson  # noqa: E402

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
    gc.disable()  # evaluate() pauses the cyclic GC too; measure everything under the same condition
    started = time.perf_counter()
    kinds: Counter[str] = Counter()
    total = 0
    for _, event, _ in entries():
        kinds[event["kind"]] += 1
        total += 1
    generation = time.perf_counter() - started
    floor = 0.0
    clock = time.perf_counter
    for seq, event, source in entries():
        body = orjson.dumps({"seq": seq, "event": event, "source": source})
        tick = clock()
        orjson.loads(body)
        floor += clock() - tick
    gc.enable()
    policies = load_policies(args.policies) if args.policies else ()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    assessment = evaluate(entries(), as_of=as_of, origin="bench.example/ledger", policies=policies,
                          timings=timings, period=("2026-11-01T00:00:00Z", None))
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    statuses = Counter(c.status for c in assessment.controls)
    complete = sum(1 for s in assessment.custody if s.complete)
    own = max(1e-9, elapsed - generation)
    print(f"entries: {total:,} ({args.jobs:,} jobs, {api_calls} API calls + {args.secret_reads} secret reads per job)")
    print(f"generating the synthetic entries (not evaluation): {generation:.2f} s")
    print(f"floor (orjson.loads of every entry, what reading a ledger costs): {floor:.2f} s = "
          f"{total / floor:,.0f} entries/s")
    print(f"evaluate (over the generator): {elapsed:.2f} s; evaluation's own work {own:.2f} s = "
          f"{total / own:,.0f} entries/s = {own / floor:.1f}x floor")
    for name, seconds in timings.items():
        print(f"  {name:<32} {seconds:7.2f} s")
    print(f"peak RSS: {peak_mb:,.0f} MB")
    print(f"controls: {dict(statuses)}; custody complete for {complete:,} of {len(assessment.custody):,} jobs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
