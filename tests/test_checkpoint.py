"""Pinned bytes of a known entry and a known signed checkpoint; signed-note rules."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from collector.checkpoint import (
    BadSignature,
    Checkpoint,
    MalformedCheckpoint,
    UnknownSigner,
    WrongOrigin,
    parse_verifier_key,
    verify_checkpoint,
)
from collector.ledger import Ledger
from collector.signing import FileSigner
from tests.ledger_fixtures import ORIGIN, fixed_ed25519, fixed_p256, make_golden

PINNED_ENTRY_0 = (
    '{"event":{"action":"approve","actor":"reviewer-0","attrs":{"n":0,"note":"entry 0 — ünïcode ✓"},'
    '"correlation":{"job_id":"1000"},"kind":"manual.review","outcome":{"error":null,"status":"success"},'
    '"resource":"change-0","time":"2026-11-20T14:00:00Z"},"observed":"2026-11-20T15:00:00Z",'
    '"prev":"0000000000000000000000000000000000000000000000000000000000000000",'
    '"raw":{"sha256":"e0952c75118dba482f43396772513ac2c40468b97cf9cfa02cf8bd715e74ccfe","size":13},'
    '"seq":0,"source":{"id":"manual:test","kind":"manual","line":1,"location":"reviews.jsonl"},"v":1}'
).encode()
PINNED_LEAF_0 = "2df01c2c72f7921e8e74f32346c89c1fa261c792490b79ed92aca2b3a5a12b58"
PINNED_CHECKPOINT_8 = (
    "example.gov/fedledger-test\n8\nv/qyRIdz6t6zYCMMTaRpsJWODqBTbAsiN37eCG8hdTM=\n\n"
    "— example.gov/fedledger-test cN3+LPCXN0ZzEakja7SWhPSd/ZHkEZOVDUml2u9C5iclkG4cuXFn0uGesu9Y7mRH6FDjxLdF3eUWw6fc3Eg9h1aOPgk=\n"
)
PINNED_VKEY = "example.gov/fedledger-test+70ddfe2c+AWbRRAv0fCP4Opd2LaNapYkdgHNJR9+6wve8FpSkYRaQ"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_golden(tmp_path_factory.mktemp("golden"))


def test_pinned_entry_bytes_and_leaf_hash(golden) -> None:  # type: ignore[no-untyped-def]
    with Ledger.open(golden.db) as ledger:
        body = ledger.entry(0)
    assert body == PINNED_ENTRY_0
    assert hashlib.sha256(b"\x00" + body).hexdigest() == PINNED_LEAF_0


def test_pinned_signed_checkpoint_text(golden) -> None:  # type: ignore[no-untyped-def]
    with Ledger.open(golden.db) as ledger:
        assert ledger.checkpoints()[0].note == PINNED_CHECKPOINT_8
    assert golden.signer.verifier.vkey() == PINNED_VKEY
    # key ID per c2sp.org/signed-note: SHA-256(name || 0x0A || 0x01 || 32-byte key)[:4]
    raw_key = base64.b64decode(PINNED_VKEY.split("+", 2)[2])[1:]
    assert hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw_key).digest()[:4].hex() == "70ddfe2c"


def _verifier(label: str = "golden"):  # type: ignore[no-untyped-def]
    return FileSigner(ORIGIN, fixed_ed25519(label)).verifier


def test_verifies_with_pem_and_vkey_forms() -> None:
    cp = verify_checkpoint(PINNED_CHECKPOINT_8, origin=ORIGIN, verifiers=[_verifier()])
    assert (cp.origin, cp.size) == (ORIGIN, 8)
    vkey = parse_verifier_key(PINNED_VKEY, default_name="ignored")
    verify_checkpoint(PINNED_CHECKPOINT_8, origin=ORIGIN, verifiers=[vkey])


def test_unknown_signatures_beside_a_trusted_one_are_ignored() -> None:
    other = FileSigner("witness.example/w1", fixed_ed25519("witness"))
    body = PINNED_CHECKPOINT_8.split("\n\n")[0] + "\n"
    extra = other.sign_note(body).split("\n\n")[1]
    note = PINNED_CHECKPOINT_8 + extra
    verify_checkpoint(note, origin=ORIGIN, verifiers=[_verifier()])
    with pytest.raises(UnknownSigner):
        verify_checkpoint(note, origin=ORIGIN, verifiers=[_verifier("someone-else")])


def test_same_name_other_key_is_unknown_not_bad() -> None:
    with pytest.raises(UnknownSigner):
        verify_checkpoint(PINNED_CHECKPOINT_8, origin=ORIGIN, verifiers=[_verifier("other")])


def test_bad_signature_by_known_key_rejects_note() -> None:
    sig_line = PINNED_CHECKPOINT_8.split("\n\n")[1]
    blob = bytearray(base64.b64decode(sig_line.split(" ")[2]))
    blob[10] ^= 1
    note = PINNED_CHECKPOINT_8.split("\n\n")[0] + "\n\n— " + ORIGIN + " " + base64.b64encode(bytes(blob)).decode() + "\n"
    with pytest.raises(BadSignature):
        verify_checkpoint(note, origin=ORIGIN, verifiers=[_verifier()])


def test_wrong_origin() -> None:
    with pytest.raises(WrongOrigin):
        verify_checkpoint(PINNED_CHECKPOINT_8, origin="example.gov/other", verifiers=[_verifier()])


@pytest.mark.parametrize(
    "note",
    [
        "",
        "example.gov/x\n8\n",
        "example.gov/x\n8\nnot-base64!\n\n— example.gov/x AAAAAAAA\n",
        "example.gov/x\n08\nv/qyRIdz6t6zYCMMTaRpsJWODqBTbAsiN37eCG8hdTM=\n\n— example.gov/x AAAAAAAA\n",
        "example.gov/x\n-1\nv/qyRIdz6t6zYCMMTaRpsJWODqBTbAsiN37eCG8hdTM=\n\n— example.gov/x AAAAAAAA\n",
        "example.gov/x\n8\nv/qyRIdz6t6zYCMMTaRpsJWODqBTbAsiN37eCG8hdTM=\n\n- example.gov/x AAAAAAAA\n",
        "example.gov/x\n8\nv/qyRIdz6t6zYCMMTaRpsJWODqBTbAsiN37eCG8hdTM=\n",
        "example.gov/x\r\n8\nv/qyRIdz6t6zYCMMTaRpsJWODqBTbAsiN37eCG8hdTM=\n\n— example.gov/x AAAAAAAA\n",
        "example.gov/x\n8\nAAAA\n\n— example.gov/x AAAAAAAA\n",
    ],
)
def test_malformed_checkpoints(note: str) -> None:
    with pytest.raises(MalformedCheckpoint):
        verify_checkpoint(note, origin="example.gov/x", verifiers=[_verifier()])


_GOOD_BODY = "example.gov/x\n8\nv/qyRIdz6t6zYCMMTaRpsJWODqBTbAsiN37eCG8hdTM=\n"


@pytest.mark.parametrize(
    "note, reason",
    [
        (_GOOD_BODY + "\n— example.gov/x AAAAAAAA", "signed note does not end with a newline"),
        (_GOOD_BODY, "signed note has no blank line before its signatures"),
        (_GOOD_BODY.replace("\n", "\r\n") + "\r\n— example.gov/x AAAAAAAA\r\n", "signed note holds a control character"),
        (_GOOD_BODY + "\n— example.gov/x AAAAAAAA\n\n", "signature line does not start with an em dash and a space"),
    ],
    ids=["no-final-newline", "no-blank-line", "crlf", "trailing-blank-line"],
)
def test_malformed_checkpoint_reasons_name_the_defect(note: str, reason: str) -> None:
    with pytest.raises(MalformedCheckpoint, match=reason):
        verify_checkpoint(note, origin="example.gov/x", verifiers=[_verifier()])


def test_ecdsa_p256_signature_type_and_key_id() -> None:
    key = fixed_p256()
    signer = FileSigner(ORIGIN, key)
    note = signer.sign_checkpoint(Checkpoint(ORIGIN, 3, bytes(32)))
    assert verify_checkpoint(note, origin=ORIGIN, verifiers=[signer.verifier]).size == 3
    blob = base64.b64decode(note.split("\n\n")[1].split(" ")[2])
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert blob[:4] == hashlib.sha256(spki).digest()[:4]  # type 0x02: key ID over the DER SPKI
    key.public_key().verify(blob[4:], note.split("\n\n")[0].encode() + b"\n", ec.ECDSA(hashes.SHA256()))
    assert parse_verifier_key(signer.verifier.vkey(), default_name="x").key_id == blob[:4]


def test_ecdsa_key_file_signs_deterministically_per_rfc_6979() -> None:
    """The same key and message give the same signature (a rebuilt bundle's MANIFEST.sig is identical);
    a randomized ECDSA signature of the same message verifies alike."""
    key = fixed_p256()
    signer = FileSigner(ORIGIN, key)
    checkpoint = Checkpoint(ORIGIN, 3, bytes(32))
    assert signer.sign_checkpoint(checkpoint) == signer.sign_checkpoint(checkpoint)
    assert signer.sign_bytes(b"a") != signer.sign_bytes(b"b")
    randomized = key.sign(checkpoint.body().encode(), ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(randomized, checkpoint.body().encode(), ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(signer.sign_bytes(checkpoint.body().encode()), checkpoint.body().encode(),
                            ec.ECDSA(hashes.SHA256()))


def test_verifier_never_imports_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import bundler.ledger_verify, collector.checkpoint, collector.merkle, bundler.export_reader; "
        "sys.exit(1 if 'boto3' in sys.modules or 'botocore' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0
