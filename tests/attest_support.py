"""Shared helpers for the attestation tests: run a collection into a real SQLite ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from collector.attestation_verify import SigstorePolicy, TrustedKeys
from collector.ingest import IngestSummary, ingest
from collector.ledger import Ledger
from collector.object_source import ObjectProvider
from collector.sources.attestations import AttestationObjects, AttestationSettings, AttestationTally, read_trusted_keys

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "attestations"
SAMPLE_BUCKET = SAMPLES / "bucket"
SAMPLE_KEYS = SAMPLES / "trusted-keys"
AS_OF = datetime(2026, 11, 25, tzinfo=timezone.utc)

# object name (under attestations/) -> expected event kind; None means quarantined
SAMPLE_OUTCOMES: dict[str, str | None] = {
    "31415926535.json": "attestation.signed",
    "31415926535.rsa.json": "attestation.signed",
    "31415926535.provenance.dsse.json": "attestation.signed",
    "31415926535.provenance.ed25519.dsse.json": "attestation.signed",
    "attestation.bad-sig.dsse.json": "attestation.invalid",
    "attestation.bad-sig.json": "attestation.invalid",
    "attestation.unknown-key.dsse.json": "attestation.invalid",
    "attestation.unknown-key.json": "attestation.invalid",
    "attestation.unsigned.dsse.json": "attestation.unsigned",
    "attestation.unsigned.json": "attestation.unsigned",
    "attestation.wrong-payload-type.dsse.json": "attestation.invalid",
    "attestation.short-retention.dsse.json": "attestation.signed",
    "attestation.truncated.dsse.json": None,
}


@dataclass
class Run:
    summary: IngestSummary
    tally: AttestationTally
    events: dict[str, dict[str, Any]]  # object key -> event (this ledger, all runs)
    quarantined: list[Any]
    entries: list[dict[str, Any]]


def new_ledger(path: Path) -> Path:
    Ledger.create(path, "test.example/attestations", created="2026-11-25T00:00:00Z", key_type="ecdsa-p256").close()
    return path


def collect(ledger_path: Path, provider: ObjectProvider, src: str, *, keys: TrustedKeys | None = None,
            policy: SigstorePolicy | None = None, min_days: int = 365, all_versions: bool = True) -> Run:
    settings = AttestationSettings(as_of=AS_OF, keys=keys if keys is not None else read_trusted_keys(SAMPLE_KEYS),
                                   sigstore=policy or SigstorePolicy(), min_retention_days=min_days,
                                   all_versions=all_versions)
    source = AttestationObjects(provider, src, settings)
    with Ledger.open(ledger_path) as ledger:
        summary = ingest(ledger, source.collect(ledger.cursors()), kind=source.kind, source_id=source.source_id,
                         observed="2026-11-25T00:00:00Z")
        events: dict[str, dict[str, Any]] = {}
        entries = []
        for _seq, _leaf, body in ledger.entries():
            entry = orjson.loads(bytes(body))
            entries.append(entry)
            events[entry["event"]["attrs"]["object_key"]] = entry["event"]
        quarantined = ledger.quarantined()
    return Run(summary, source.tally, events, quarantined, entries)
