"""CloudTrail benchmarks, each against a floor or a baseline measured in the same run.

(1) ingest: N CloudTrail records in ~1 MB .json.gz files from a local folder.
    floor = gunzip + orjson.loads + orjson.dumps(sort_keys) + SHA-256 + SQLite executemany (WAL,
    synchronous=FULL), one process. fedledger = `CloudTrailLogs` + `ingest()` into a ledger, with
    --workers 0 (one process) and --workers 1/2 (parse in worker processes, append in the main one).
    Targets: >= 0.8x floor with one process, > 1.0x with workers; peak RSS < 400 MB.
(2) validate: a chain of D hourly digests (2 log files each) on moto's S3 server; fedledger's
    validator vs `aws cloudtrail validate-logs` on the same objects, on plain loopback and through a
    proxy that sleeps 20 ms per request (real S3 round trips). Targets: >= 10x (20 ms), >= 2x (loopback).

    python -m bench.bench_cloudtrail --records 1000000 --digests 720
    python -m bench.bench_cloudtrail --only ingest --records 200000
"""

from __future__ import annotations

import argparse
import gc
import gzip
import hashlib
import http.client
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from samples.make import cloudtrail as mk  # noqa: E402


# -- (1) ingest ---------------------------------------------------------------------------


def make_records_folder(folder: Path, records: int, per_file: int) -> int:
    """CloudTrail-like ~1 KB records with varied values, per_file records per .json.gz file."""
    folder.mkdir(parents=True, exist_ok=True)
    base = mk.story_records()
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    files = 0
    for f in range(0, records, per_file):
        recs = []
        for i in range(f, min(f + per_file, records)):
            rec = dict(base[i % len(base)])
            token = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
            rec["eventID"] = f"{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:32]}"
            rec["requestID"] = token[32:56]
            rec["eventTime"] = (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            rec["sourceIPAddress"] = f"10.{i % 251}.{(i // 251) % 251}.{i % 7}"
            recs.append(rec)
        stamp = start + timedelta(minutes=f // per_file)
        name = folder / f"AWSLogs/123456789012/CloudTrail/us-gov-west-1/{stamp:%Y/%m/%d}/" \
                        f"123456789012_CloudTrail_us-gov-west-1_{stamp:%Y%m%dT%H%MZ}_{f:08d}.json.gz"
        name.parent.mkdir(parents=True, exist_ok=True)
        name.write_bytes(gzip.compress(orjson.dumps({"Records": recs}), compresslevel=6, mtime=0))
        files += 1
    return files


def floor_ingest(folder: Path, db: Path) -> int:
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, sha BLOB, body BLOB)")
    count = 0
    for path in sorted(folder.rglob("*.json.gz")):
        doc = orjson.loads(gzip.decompress(path.read_bytes()))
        rows = []
        for rec in doc["Records"]:
            body = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)
            rows.append((count, hashlib.sha256(body).digest(), body))
            count += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
    conn.close()
    return count


def fedledger_ingest(folder: Path, db: Path, workers: int) -> tuple[int, Any]:
    from collector.ingest import ingest_source
    from collector.ledger import Ledger
    from collector.object_source import LocalFolderProvider
    from collector.sources.cloudtrail import CloudTrailLogs

    source = CloudTrailLogs(LocalFolderProvider(folder), workers=workers, fetch_workers=2)
    with Ledger.create(db, "bench.gov/ct", created="2026-11-25T00:00:00Z", key_type="ecdsa-p256") as ledger:
        summary = ingest_source(ledger, source, source_id=source.source_id, observed="2026-11-25T00:00:00Z")
    assert summary.balanced
    return summary.appended, summary


def run_in_child(func: str, *args: str) -> dict[str, Any]:
    """Run one measurement in a fresh process, for a clean peak-RSS figure."""
    code = (f"import sys, time, resource, orjson; sys.path.insert(0, {str(REPO)!r}); "
            f"from bench.bench_cloudtrail import {func} as f; from pathlib import Path; "
            f"t = time.perf_counter(); n = f(*{args!r}); dt = time.perf_counter() - t; "
            "n = n[0] if isinstance(n, tuple) else n; "
            "rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "print(orjson.dumps({'n': n, 'seconds': dt, 'rss_mb': rss / 1024}).decode())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return orjson.loads(out.stdout.strip().splitlines()[-1])


def _floor(folder: str, db: str) -> int:
    return floor_ingest(Path(folder), Path(db))


def _ours(folder: str, db: str, workers: str) -> int:
    return fedledger_ingest(Path(folder), Path(db), int(workers))[0]


def bench_ingest(records: int, per_file: int, work: Path) -> None:
    folder = work / f"ingest-{records}-{per_file}"
    if not folder.exists():
        t = time.perf_counter()
        files = make_records_folder(folder, records, per_file)
        print(f"generated {records} records in {files} files ({time.perf_counter() - t:.1f}s)")
    sizes = [p.stat().st_size for p in folder.rglob("*.json.gz")]
    print(f"ingest: {records} records, {len(sizes)} files, {sum(sizes) / len(sizes) / 1e6:.2f} MB per .json.gz")
    floor = run_in_child("_floor", str(folder), str(work / "floor.db"))
    print(f"  floor   {floor['n'] / floor['seconds']:>9,.0f} rec/s  ({floor['seconds']:.1f}s, peak RSS "
          f"{floor['rss_mb']:.0f} MB)")
    for workers in (0, 1, 2):
        for p in work.glob("ledger*"):
            if p.is_dir():
                import shutil

                shutil.rmtree(p)
            else:
                p.unlink()
        ours = run_in_child("_ours", str(folder), str(work / "ledger.db"), str(workers))
        ratio = floor["seconds"] / ours["seconds"]
        print(f"  fedledger --workers {workers}: {ours['n'] / ours['seconds']:>9,.0f} rec/s  ({ours['seconds']:.1f}s) "
              f"= {ratio:.2f}x floor, peak RSS {ours['rss_mb']:.0f} MB")


# -- (2) validate -------------------------------------------------------------------------


class DelayProxy:
    """A reverse proxy in front of moto that sleeps *delay* seconds per request."""

    def __init__(self, target: str, delay: float) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.delay = delay
        local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                time.sleep(proxy.delay)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = http.client.HTTPConnection(host, int(port), timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                except (http.client.HTTPException, OSError):
                    local.conn = None
                    raise
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bench_validate(digests: int, delays: list[float]) -> None:
    import boto3

    from collector.cloudtrail_fetch import public_keys_from_cloudtrail, validate_store
    from collector.object_source import open_provider
    from tests.cloudtrail_stub import cloudtrail_stub
    from tests.moto_server import moto_server

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=mk.story.REGION)
    key = mk.load_or_create_key("digest-signing")
    layout = mk.TrailLayout()
    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    objects = mk.build_chain(layout, key, start=start, hours=digests)
    end = start + digests * mk.HOUR
    logs = sum(1 for k in objects if "/CloudTrail/" in k)
    with moto_server() as moto:
        s3 = boto3.client("s3", endpoint_url=moto, region_name=mk.story.REGION)
        s3.create_bucket(Bucket=layout.bucket, CreateBucketConfiguration={"LocationConstraint": mk.story.REGION})
        t = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda o: s3.put_object(Bucket=layout.bucket, Key=o.key, Body=o.body, Metadata=o.metadata),
                          objects.values()))
        print(f"validate: {digests} digests, {logs} log files uploaded to moto ({time.perf_counter() - t:.1f}s)")
        trails = [{"Name": layout.trail, "S3BucketName": layout.bucket, "TrailARN": layout.arn,
                   "HomeRegion": mk.story.REGION, "LogFileValidationEnabled": True}]
        window = (start - timedelta(days=30), end + timedelta(days=30))
        with cloudtrail_stub(trails, [(mk.public_der(key), *window)]) as stub:
            for delay in delays:
                proxy = DelayProxy(moto, delay) if delay else None
                endpoint = proxy.url if proxy else moto
                env = dict(os.environ, AWS_ENDPOINT_URL_S3=endpoint, AWS_ENDPOINT_URL_CLOUDTRAIL=stub,
                           AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
                t = time.perf_counter()
                aws = subprocess.run([sys.executable, "-m", "awscli", "cloudtrail", "validate-logs", "--trail-arn",
                                      layout.arn, "--start-time", start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                      "--end-time", end.strftime("%Y-%m-%dT%H:%M:%SZ"), "--region",
                                      mk.story.REGION], env=env, capture_output=True, text=True)
                aws_s = time.perf_counter() - t
                assert aws.returncode == 0, aws.stderr[-2000:]
                os.environ["AWS_ENDPOINT_URL_CLOUDTRAIL"] = stub
                t = time.perf_counter()
                report = validate_store(open_provider(f"s3://{layout.bucket}/", endpoint_url=endpoint,
                                                      region=mk.story.REGION),
                                        public_keys_from_cloudtrail(region=mk.story.REGION), start=start, end=end,
                                        workers=32)
                ours_s = time.perf_counter() - t
                assert report.ok, report.tally()
                assert report.count("digest", "valid") == digests and report.count("log", "valid") == logs
                label = f"{delay * 1000:.0f} ms/request proxy" if delay else "plain loopback"
                print(f"  {label:>22}: aws validate-logs {aws_s:6.1f}s, fedledger {ours_s:5.1f}s = "
                      f"{aws_s / ours_s:.1f}x faster")
                if proxy:
                    proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--per-file", type=int, default=1000, help="records per .json.gz (1000 ~ 1 MB of JSON)")
    parser.add_argument("--digests", type=int, default=720)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--only", choices=["ingest", "validate"])
    parser.add_argument("--work", type=Path, default=None, help="folder for generated data (kept between runs)")
    args = parser.parse_args()
    gc.collect()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-cloudtrail-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "ingest"):
        bench_ingest(args.records, args.per_file, work)
    if args.only in (None, "validate"):
        bench_validate(args.digests, [0.0, args.delay_ms / 1000])


if __name__ == "__main__":
    main()
