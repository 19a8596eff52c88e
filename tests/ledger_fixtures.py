"""Golden ledgers for tests, made with fixed keys and fixed times (no clock, no randomness).

``make_golden(folder)`` builds a ledger of :data:`GOLDEN_SIZE` manual events with
an Ed25519 key derived from a fixed seed (Ed25519 signatures are deterministic,
so the signed checkpoint text is the same on every run), checkpoints at sizes 8
and GOLDEN_SIZE, and an export. tests/assets/README.md lists the tamper cases
built from it and the outcome each must have.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from collector.checkpoint import Checkpoint
from collector.export import export_ledger
from collector.ledger import Ledger, LedgerReads, NewEntry
from collector.signing import FileSigner, write_public_key

ORIGIN = "example.gov/fedledger-test"
GOLDEN_SIZE = 20
OBSERVED = "2026-11-20T15:00:00Z"


def fixed_ed25519(label: str = "golden") -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def fixed_p256(label: str = "golden-p256") -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % (2**256 - 2**224) or 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def manual_raw(i: int) -> bytes:
    """The raw bytes :func:`manual_entry` *i* says it was parsed from."""
    return f"raw record {i}\n".encode()


def raw_index_for(ledger: LedgerReads, entries: list[NewEntry], raws: list[bytes]) -> list[tuple[str, int, str, int]]:
    """Put *raws* in the ledger's evidence store as one segment object, as a collector's batch
    does, and return the raw-object index rows that go with ``append(entries, raw_index=...)``."""
    obj = ledger.store.put(b"".join(raws))
    index, offset = [], 0
    for entry, raw in zip(entries, raws):
        index.append((entry.raw_sha256, len(raw), obj, offset))
        offset += len(raw)
    return index


def append_with_raw(ledger: LedgerReads, seqs: range, *, updated: str = OBSERVED) -> None:
    """Append ``manual_entry(i)`` for *seqs* with their raw bytes kept in the evidence store."""
    entries = [manual_entry(i) for i in seqs]
    ledger.append(entries, raw_index=raw_index_for(ledger, entries, [manual_raw(i) for i in seqs]),  # type: ignore[attr-defined]
                  updated=updated)


def manual_entry(i: int) -> NewEntry:
    event = {
        "time": f"2026-11-20T14:{i // 60:02d}:{i % 60:02d}Z",
        "kind": "manual.review",
        "actor": f"reviewer-{i % 3}",
        "action": "approve",
        "resource": f"change-{i}",
        "outcome": {"status": "success", "error": None},
        "correlation": {"job_id": str(1000 + i // 4)},
        "attrs": {"note": f"entry {i} — ünïcode ✓", "n": i},
    }
    raw = manual_raw(i)
    return NewEntry(
        source={"kind": "manual", "id": "manual:test", "location": "reviews.jsonl", "line": i + 1},
        observed=OBSERVED,
        event=event,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        raw_size=len(raw),
    )


@dataclass(frozen=True)
class Golden:
    db: Path
    export: Path
    public_key: Path
    signer: FileSigner
    origin: str = ORIGIN


def sign_checkpoint(ledger: Ledger, signer: FileSigner) -> str:
    stored = ledger.add_checkpoint(
        lambda size, root: signer.sign_checkpoint(Checkpoint(ledger.origin, size, root)),
        OBSERVED,
        signer=(signer.name, signer.verifier.key_id.hex(), _pem(signer)),
    )
    return stored.note


def _pem(signer: FileSigner) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return signer.verifier.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def make_golden(folder: Path, *, size: int = GOLDEN_SIZE, key: str = "golden") -> Golden:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "golden.db"
    private = fixed_ed25519(key)
    signer = FileSigner(ORIGIN, private)
    public = folder / "golden.pub"
    write_public_key(public, private.public_key())
    with Ledger.create(db, ORIGIN, created=OBSERVED, key_type="ed25519") as ledger:
        append_with_raw(ledger, range(8))
        sign_checkpoint(ledger, signer)
        append_with_raw(ledger, range(8, size))
        sign_checkpoint(ledger, signer)
        export_ledger(ledger, folder / "export")
    return Golden(db, folder / "export", public, signer)
