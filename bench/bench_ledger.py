"""Ledger speed, as ratios against floors measured in the same run.

1. append: N entries of ~1 KB through Ledger.append (batches of 5,000) vs the floor
   orjson.dumps(OPT_SORT_KEYS) + SHA-256 + one SQLite executemany transaction.
2. verify: the offline verifier over an M-entry ledger vs the floor SQLite scan +
   SHA-256 of each stored body.
3. inclusion proofs: median time of 1,000 proofs in the M-entry ledger.

Usage: python bench/bench_ledger.py [--append 200000] [--verify 1000000]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bundler.verify_cmd import _verify_database  # noqa: E402
from bundler.ledger_verify import NoteInput  # noqa: E402
from collector.checkpoint import Checkpoint  # noqa: E402
from collector.ledger import Ledger, NewEntry  # noqa: E402
from collector.signing import FileSigner, generate_private_key  # noqa: E402

OBSERVED = "2026-11-20T15:00:00Z"


def event(i: int) -> dict:
    """A ~1 KB CloudTrail-like normalized event."""
    return {
        "time": f"2026-11-20T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        "kind": "aws.api_call",
        "actor": f"arn:aws-us-gov:sts::123456789012:assumed-role/ci-inference-only/gha-{i % 977}",
        "action": "PutObject",
        "resource": f"arn:aws-us-gov:s3:::agency-attestations/attestations/{i}.json",
        "outcome": {"status": "success", "error": None},
        "correlation": {"job_id": str(31415926535 + i % 2000), "role_session": f"gha-{i % 977}",
                        "access_key_id": "ASIAQEXAMPLE7CIJOB01"},
        "attrs": {
            "event_source": "s3.amazonaws.com", "event_name": "PutObject", "region": "us-gov-west-1",
            "access_key_class": "temporary", "identity_type": "AssumedRole", "mfa": False, "error_code": None,
            "request_id": hashlib.sha256(str(i).encode()).hexdigest()[:32],
            "event_id": hashlib.sha256(str(-i).encode()).hexdigest(),
            "user_agent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2 prompt/off command/s3api.put-object",
            "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256", "host": "agency-attestations.s3.us-gov-west-1.amazonaws.com"},
            "request_parameters": {"bucket": "agency-attestations", "key": f"attestations/{i}.json",
                                   "x-amz-object-lock-mode": "COMPLIANCE", "x-amz-server-side-encryption": "aws:kms"},
        },
    }


def new_entry(i: int) -> NewEntry:
    raw = hashlib.sha256(b"raw%d" % i).hexdigest()
    return NewEntry({"kind": "cloudtrail", "id": "cloudtrail:bench", "location": f"s3://b/k{i // 1000}.json.gz",
                     "index": i % 1000}, OBSERVED, event(i), raw, 1024, None)


def floor_append(n: int, folder: Path) -> float:
    conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, leaf BLOB, body BLOB)")
    docs = [{"v": 1, "seq": i, "prev": "0" * 64, "source": {"kind": "cloudtrail"}, "observed": OBSERVED,
             "event": event(i), "raw": {"sha256": "0" * 64, "size": 1024}} for i in range(n)]
    start = time.perf_counter()
    rows = []
    for i, doc in enumerate(docs):
        body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        rows.append((i, hashlib.sha256(b"\x00" + body).digest(), body))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def ours_append(n: int, folder: Path) -> tuple[float, Ledger]:
    ledger = Ledger.create(folder / "ours.db", "bench.example/ledger", created=OBSERVED, key_type="ecdsa-p256")
    batches = [[new_entry(i) for i in range(s, min(n, s + 5000))] for s in range(0, n, 5000)]
    start = time.perf_counter()
    for batch in batches:
        ledger.append(batch)
    return n / (time.perf_counter() - start), ledger


def build(n: int, folder: Path) -> Ledger:
    ledger = Ledger.create(folder / "big.db", "bench.example/ledger", created=OBSERVED, key_type="ecdsa-p256")
    for s in range(0, n, 20000):
        ledger.append([new_entry(i) for i in range(s, min(n, s + 20000))])
    return ledger


def floor_verify(path: Path) -> float:
    conn = sqlite3.connect(path)
    start = time.perf_counter()
    count = 0
    for (body,) in conn.execute("SELECT body FROM entries ORDER BY seq"):
        hashlib.sha256(b"\x00" + body).digest()
        count += 1
    return count / (time.perf_counter() - start)


def ours_verify(ledger: Ledger, note: str, signer: FileSigner) -> float:
    start = time.perf_counter()
    report = _verify_database(ledger.path, origin=ledger.origin, verifiers=[signer.verifier],
                              notes=[NoteInput("cp", note)])
    elapsed = time.perf_counter() - start
    assert report.ok, [f.line() for f in report.failures[:3]]
    return report.size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--append", type=int, default=200_000)
    parser.add_argument("--verify", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=1000)
    args = parser.parse_args()
    gc.disable()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        floor = floor_append(args.append, folder)
        ours, _ = ours_append(args.append, folder)
        print(f"append {args.append:,} entries: floor {floor:,.0f}/s, fedledger {ours:,.0f}/s, "
              f"ratio {ours / floor:.2f}x (target >= 0.5x)")
        ledger = build(args.verify, folder)
        signer = FileSigner(ledger.origin, generate_private_key("ecdsa-p256"))
        note = ledger.add_checkpoint(lambda s, r: signer.sign_checkpoint(Checkpoint(ledger.origin, s, r)), OBSERVED).note
        vfloor = floor_verify(ledger.path)
        vours = ours_verify(ledger, note, signer)
        print(f"verify {args.verify:,} entries: floor {vfloor:,.0f}/s, fedledger {vours:,.0f}/s, "
              f"ratio {vours / vfloor:.2f}x (target >= 0.7x)")
        rng = random.Random(1)
        times = []
        for _ in range(args.proofs):
            seq = rng.randrange(args.verify)
            t0 = time.perf_counter()
            ledger.inclusion_proof(seq, args.verify)
            times.append(time.perf_counter() - t0)
        print(f"inclusion proof in {args.verify:,} entries: median {statistics.median(times) * 1000:.2f} ms, "
              f"p99 {sorted(times)[int(len(times) * 0.99)] * 1000:.2f} ms (target < 5 ms)")


if __name__ == "__main__":
    main()
