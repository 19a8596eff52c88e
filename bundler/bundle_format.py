"""Names and byte formats shared by the bundle writer and the offline verifier (no I/O)."""

from __future__ import annotations

BUNDLE_FORMAT = "fedledger-bundle/1"
MANIFEST_FILE = "MANIFEST.json"
SIGNATURE_FILE = "MANIFEST.sig"
MANIFEST_NOTE_HEADER = "fedledger-bundle-manifest/1"
PROOFS_FILE = "proofs/inclusion.jsonl"


def manifest_note_body(origin: str, manifest_sha256: str) -> str:
    """The signed-note text over a bundle manifest: header, origin, SHA-256 of MANIFEST.json."""
    return f"{MANIFEST_NOTE_HEADER}\n{origin}\nsha256:{manifest_sha256}\n"
