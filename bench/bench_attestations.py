"""Attestation collection speed: N signed DSSE envelopes from a local folder, against a floor.

Floor (same run, one process): read the file + SHA-256 + orjson.loads + base64 decode + one
ECDSA P-256 verification over PAE per object. The collector does all that plus sidecar
metadata, retention, normalization and the SQLite ledger append.
Usage: python -m bench.bench_attestations [N]   (default 2000)
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from collector.attestation_verify import pae
from collector.ingest import ingest
from collector.ledger import Ledger
from collector.object_source import LocalFolderProvider
from collector.sources.attestations import AttestationObjects, AttestationSettings, read_trusted_keys
from collector.timeutil import parse_time
from samples.make import attestations as maker

REPO = Path(__file__).resolve().parent.parent


def main(n: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-attest-"))
    try:
        folder = work / "bucket" / "attestations"
        folder.mkdir(parents=True)
        for i in range(n):
            statement = maker.provenance("sha256:" + hashlib.sha256(str(i).encode()).hexdigest())
            data = maker.envelope(statement)
            (folder / f"{i:07d}.dsse.json").write_bytes(data)
            (folder / f"{i:07d}.dsse.json.meta.json").write_bytes(orjson.dumps(maker.meta(str(i), data)))
        public = maker.CI_P256.public_key()
        start = time.perf_counter()
        for path in sorted(folder.glob("*.dsse.json")):
            raw = path.read_bytes()
            hashlib.sha256(raw).hexdigest()
            doc = orjson.loads(raw)
            payload = base64.b64decode(doc["payload"])
            sig = base64.b64decode(doc["signatures"][0]["sig"])
            der = __import__("cryptography.hazmat.primitives.asymmetric.utils", fromlist=["x"]).encode_dss_signature(
                int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            public.verify(der, pae(doc["payloadType"], payload), ec.ECDSA(hashes.SHA256()))
        floor = n / (time.perf_counter() - start)
        ledger_path = work / "l.db"
        Ledger.create(ledger_path, "bench/attest", created="2026-11-25T00:00:00Z", key_type="ecdsa-p256").close()
        settings = AttestationSettings(as_of=parse_time("2026-11-25T00:00:00Z"),
                                       keys=read_trusted_keys(REPO / "samples" / "attestations" / "trusted-keys"))
        source = AttestationObjects(LocalFolderProvider(work / "bucket"), str(work / "bucket"), settings)
        start = time.perf_counter()
        with Ledger.open(ledger_path) as ledger:
            summary = ingest(ledger, source.collect({}), kind=source.kind, source_id=source.source_id,
                             observed="2026-11-25T00:00:00Z")
        rate = n / (time.perf_counter() - start)
        assert summary.appended == n and source.tally.signed == n
        print(f"objects: {n}")
        print(f"floor (read+sha256+parse+ECDSA verify): {floor:,.0f} objects/s")
        print(f"collect attestations (folder -> ledger): {rate:,.0f} objects/s  ratio {rate / floor:.2f}x floor")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
