"""Benchmark: ingest N generic CI events (``ci.job.inference_call``, hashes only) against a floor.

Floor (same process kind, same lines): ``orjson.loads`` + ``orjson.dumps(OPT_SORT_KEYS)`` +
SHA-256 + SQLite ``executemany`` (WAL, synchronous=FULL, one transaction). The collector does
more per record (strict parse with a duplicate-key check, redaction walk, normalization, JCS,
Merkle nodes, dedup index, raw store), so the ratio says how much that costs.

    python bench/bench_ci.py --lines 100000
    python bench/bench_ci.py --lines 100000 --tokens 1000   # plus OIDC tokens to verify

Each phase runs in its own child process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_input(path: Path, lines: int, tokens: int) -> None:
    from samples.make import story as s

    token_text = ""
    if tokens:
        import jwt
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key((REPO / "samples/ci/keys/oidc-test-key.pem").read_bytes(), None)
    with open(path, "wb") as handle:
        for i in range(lines):
            doc = {"event_type": "ci.job.inference_call", "timestamp": "2026-11-20T14:10:05Z", "job_id": str(s.JOB_ID + i),
                   "run_id": str(s.RUN_ID), "user": s.ACTOR, "artifact_hash": s.ARTIFACT_DIGEST,
                   "cert_issued_by": "vault-pki:pki/issue/ci-job", "cert_serial": s.CERT_SERIAL,
                   "ai_endpoint": s.AI_ENDPOINT, "payload_hash": "sha256:" + hashlib.sha256(b"p%d" % i).hexdigest(),
                   "response_hash": "sha256:" + hashlib.sha256(b"r%d" % i).hexdigest(), "model": "claims-summarizer-v7",
                   "http_status": 200, "latency_ms": 800 + i % 100}
            handle.write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
        for i in range(tokens):
            iat = 1795183225 + i
            claims = {"iss": s.OIDC_ISSUER, "aud": s.OIDC_AUDIENCE, "sub": s.OIDC_SUBJECT, "iat": iat, "nbf": iat,
                      "exp": iat + 300, "run_id": str(s.RUN_ID), "jti": str(i)}
            token_text = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "fedledger-sample-ci-1"})  # type: ignore[arg-type]
            handle.write(json.dumps({"event_type": "ci.oidc_token", "time": "2026-11-20T14:00:27Z",
                                     "job_id": str(i), "token": token_text}).encode() + b"\n")


def phase_floor(path: Path, workdir: Path) -> dict[str, float]:
    import orjson

    conn = sqlite3.connect(workdir / "floor.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, hash BLOB, body BLOB)")
    start = time.perf_counter()
    rows = []
    count = 0
    conn.execute("BEGIN")
    with open(path, "rb") as handle:
        for line in handle:
            body = orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS)
            rows.append((count, hashlib.sha256(body).digest(), body))
            count += 1
            if len(rows) >= 5000:
                conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
                rows.clear()
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    return {"records": count, "seconds": elapsed}


def phase_collect(path: Path, workdir: Path) -> dict[str, float]:
    from collector.commands.ci_cmds import collect_ci
    from collector.ledger import Ledger
    from collector.oidc import TrustedJwks
    from collector.sources.ci import CiOptions

    ledger_path = workdir / "ledger.db"
    Ledger.create(ledger_path, "bench.agency.gov/ci", created="2026-11-25T00:00:00Z", key_type="ecdsa-p256").close()
    options = CiOptions(jwks=TrustedJwks.from_bytes((REPO / "samples/ci/keys/jwks.json").read_bytes()),
                        audiences=("sts.amazonaws.com",))
    start = time.perf_counter()
    with Ledger.open(ledger_path) as ledger:
        total, _ = collect_ci(ledger, [str(path)], options, observed="2026-11-25T00:00:00Z")
    elapsed = time.perf_counter() - start
    assert total.balanced and total.quarantined == 0, total.to_json()
    return {"records": total.read, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=0)
    parser.add_argument("--phase", choices=("floor", "collect"))
    parser.add_argument("--input")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.phase:
        run = phase_floor if args.phase == "floor" else phase_collect
        result = run(Path(args.input), Path(args.workdir))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "events.jsonl"
        make_input(source, args.lines, args.tokens)
        results = {}
        for phase in ("floor", "collect"):
            out = subprocess.run([sys.executable, __file__, "--phase", phase, "--input", str(source), "--workdir", tmp],
                                 capture_output=True, text=True, check=True)
            results[phase] = json.loads(out.stdout)
        floor, collect = results["floor"], results["collect"]
        floor_rate = floor["records"] / floor["seconds"]
        collect_rate = collect["records"] / collect["seconds"]
        print(f"input: {args.lines} generic events + {args.tokens} OIDC tokens ({source.stat().st_size / 1e6:.1f} MB)")
        print(f"floor:   {floor_rate:,.0f} records/s  peak RSS {floor['peak_rss_mb']:.0f} MB")
        print(f"collect: {collect_rate:,.0f} records/s  peak RSS {collect['peak_rss_mb']:.0f} MB")
        print(f"ratio collect/floor: {collect_rate / floor_rate:.2f}x")


if __name__ == "__main__":
    main()
