"""Adversarial review of keys and checkpoints: note parsing against C2SP signed-note and
tlog-checkpoint, interop with the transparency-dev / Go sumdb note vectors, key files, AWS KMS
signing and anchored checkpoints read back from S3 (moto's server over HTTP, no client mocks).

Each test named after a defect failed before its fix; the others pin behaviour found sound.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from collector.checkpoint import (
    BadSignature,
    Checkpoint,
    MalformedCheckpoint,
    UnknownSigner,
    WrongOrigin,
    add_signature_line,
    parse_verifier_key,
    split_note,
    verify_checkpoint,
)
from collector.checkpoint_fetch import S3CheckpointAnchor, fetch_checkpoint
from collector.checkpoint_publish import checkpoint_key, publish_checkpoint
from collector.errors import IntegrityError, SourceUnavailable, UsageError
from collector.ledger import Ledger
from collector.signing import FileSigner, KmsSigner, load_file_signer, write_private_key
from tests.ledger_fixtures import fixed_ed25519, fixed_p256

ORIGIN = "example.gov/keys-review"
ROOT = hashlib.sha256(b"root").digest()
REGION = "us-east-1"


def _signer(label: str = "mine", name: str = ORIGIN) -> FileSigner:
    return FileSigner(name, fixed_ed25519(label))


def _note(size: int = 5, root: bytes = ROOT, signer: FileSigner | None = None) -> str:
    return (signer or _signer()).sign_checkpoint(Checkpoint(ORIGIN, size, root))


# --- interop: the published vectors of Go's sumdb/note and transparency-dev/formats -------------

# golang.org/x/mod/sumdb/note: the PeterNeumann example (Ed25519, type 0x01).
NEUMANN_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
NEUMANN_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
NEUMANN_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
NEUMANN_NOTE = NEUMANN_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
# transparency-dev/formats note/note_verifier_test.go: Rekor's ECDSA P-256 key (type 0x02) and a checkpoint.
REKOR_VKEY = ("rekor.sigstore.dev+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96"
              "l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=")
REKOR_NOTE = ("Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n\n\u2014 rekor.sigstore.dev "
              "wNI9ajBEAiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIgc+qEHS3+GKVClgqq20uDLet7MCoTURUCRdxwWBHHufk=\n")


def test_our_ed25519_notes_are_byte_identical_to_go_sumdb_note() -> None:
    signer = FileSigner("PeterNeumann", ed25519.Ed25519PrivateKey.from_private_bytes(NEUMANN_SEED))
    assert signer.verifier.vkey() == NEUMANN_VKEY
    assert signer.sign_note(NEUMANN_TEXT) == NEUMANN_NOTE


def test_a_transparency_dev_ecdsa_checkpoint_verifies_under_its_vkey() -> None:
    verifier = parse_verifier_key(REKOR_VKEY, default_name="unused")
    assert verifier.key_id.hex() == "c0d23d6a"  # SHA-256 of the DER SPKI, as signed-note says for type 0x02
    assert verifier.vkey() == REKOR_VKEY
    assert verify_checkpoint(REKOR_NOTE, origin="Rekor", verifiers=[verifier]).size == 798034
    with pytest.raises(BadSignature):
        verify_checkpoint(REKOR_NOTE.replace("798034", "798035"), origin="Rekor", verifiers=[verifier])


def test_ecdsa_key_id_ignores_the_name_and_ed25519_key_id_binds_it() -> None:
    p256 = fixed_p256()
    der = p256.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert FileSigner("a.example/x", p256).verifier.key_id == hashlib.sha256(der).digest()[:4]
    assert FileSigner("b.example/x", p256).verifier.key_id == hashlib.sha256(der).digest()[:4]
    ed = fixed_ed25519()
    raw = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert FileSigner("a.example/x", ed).verifier.key_id == hashlib.sha256(b"a.example/x\n\x01" + raw).digest()[:4]


# --- note parsing against the spec ------------------------------------------------------------


def test_unknown_trailing_signatures_are_ignored_and_a_known_one_must_verify() -> None:
    note = _note()
    witness = _signer("witness", "witness.example/w1")
    cosigned = add_signature_line(note.split("\n\n")[0] + "\n", witness.name, witness.verifier.key_id,
                                  witness.sign_bytes(b"x"), existing=note.split("\n\n")[1])
    assert verify_checkpoint(cosigned, origin=ORIGIN, verifiers=[_signer().verifier]).size == 5
    with pytest.raises(BadSignature):  # the witness is known now, and its signature is over other bytes
        verify_checkpoint(cosigned, origin=ORIGIN, verifiers=[_signer().verifier, witness.verifier])
    with pytest.raises(UnknownSigner):  # only an unknown signer: never accepted
        verify_checkpoint(cosigned, origin=ORIGIN, verifiers=[_signer("third").verifier])


def test_same_name_other_key_and_name_differing_by_case_are_unknown_not_bad() -> None:
    mine = _signer()
    note = _note()
    impostor = _signer("impostor")  # same name, another key: another key ID
    with pytest.raises(UnknownSigner):
        verify_checkpoint(note, origin=ORIGIN, verifiers=[impostor.verifier])
    upper = note.replace(f"\u2014 {ORIGIN} ", f"\u2014 {ORIGIN.upper()} ")
    with pytest.raises(UnknownSigner):
        verify_checkpoint(upper, origin=ORIGIN, verifiers=[mine.verifier])


def test_two_signatures_by_one_key_are_each_verified() -> None:
    note = _note()
    body, sig_block = note.split("\n\n")
    doubled = note + sig_block
    assert verify_checkpoint(doubled, origin=ORIGIN, verifiers=[_signer().verifier]).size == 5
    bad = base64.b64encode(_signer().verifier.key_id + bytes(64)).decode()
    with pytest.raises(BadSignature):
        verify_checkpoint(note + f"\u2014 {ORIGIN} {bad}\n", origin=ORIGIN, verifiers=[_signer().verifier])


@pytest.mark.parametrize("name", ["example.gov/a+b", "has space"])
def test_a_signature_line_whose_name_is_not_a_valid_key_name_is_malformed(name: str) -> None:
    """signed-note: key names MUST NOT contain Unicode spaces or '+'; Go's note.Open rejects the
    whole note (errMalformedNote). Before the fix a name with '+' was taken as an unknown signer."""
    note = _note()
    blob = base64.b64encode(b"\x01\x02\x03\x04" + bytes(64)).decode()
    with pytest.raises(MalformedCheckpoint):
        verify_checkpoint(note + f"\u2014 {name} {blob}\n", origin=ORIGIN, verifiers=[_signer().verifier])


@pytest.mark.parametrize("mutate, message", [
    (lambda n: n.replace("\n", "\r\n"), "control character"),
    (lambda n: n.replace("\n\n", "\n"), "no blank line"),
    (lambda n: n.rstrip("\n"), "newline"),
    (lambda n: n.replace("\u2014 ", "-- "), "em dash"),
])
def test_shape_errors_are_malformed(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MalformedCheckpoint, match=message):
        verify_checkpoint(mutate(_note()), origin=ORIGIN, verifiers=[_signer().verifier])


def test_extension_lines_are_signed_and_kept_and_an_empty_one_is_malformed() -> None:
    signer = _signer()
    note = signer.sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT, ("ext one", "\u00e9t\u00e9 2")))
    assert verify_checkpoint(note, origin=ORIGIN, verifiers=[signer.verifier]).extensions == ("ext one", "\u00e9t\u00e9 2")
    with pytest.raises(BadSignature):
        verify_checkpoint(note.replace("ext one", "ext two"), origin=ORIGIN, verifiers=[signer.verifier])


def test_size_zero_and_the_empty_root_verify() -> None:
    empty = hashlib.sha256(b"").digest()
    assert verify_checkpoint(_note(0, empty), origin=ORIGIN, verifiers=[_signer().verifier]).size == 0
    with pytest.raises(MalformedCheckpoint):
        verify_checkpoint(_note(0, empty).replace("\n0\n", "\n00\n", 1), origin=ORIGIN, verifiers=[_signer().verifier])


def test_a_root_that_is_not_32_bytes_is_malformed() -> None:
    signer = _signer()
    body = f"{ORIGIN}\n5\n{base64.b64encode(bytes(31)).decode()}\n"
    with pytest.raises(MalformedCheckpoint, match="SHA-256"):
        verify_checkpoint(signer.sign_note(body), origin=ORIGIN, verifiers=[signer.verifier])


def test_a_size_line_of_thousands_of_digits_is_malformed_not_a_crash() -> None:
    """Python 3.11 refuses int() of more than 4300 digits with ValueError: before the fix a note
    with such a size line crashed verify (exit 4) instead of being reported as malformed."""
    signer = _signer()
    note = signer.sign_note(f"{ORIGIN}\n{'9' * 5000}\n{base64.b64encode(ROOT).decode()}\n")
    with pytest.raises(MalformedCheckpoint, match="size"):
        verify_checkpoint(note, origin=ORIGIN, verifiers=[signer.verifier])


def test_sizes_beyond_uint64_are_malformed_and_uint64_max_parses() -> None:
    """Go's checkpoint parsers read the size as a uint64; a larger one is not a checkpoint."""
    signer = _signer()
    top = signer.sign_note(f"{ORIGIN}\n{2**64 - 1}\n{base64.b64encode(ROOT).decode()}\n")
    assert verify_checkpoint(top, origin=ORIGIN, verifiers=[signer.verifier]).size == 2**64 - 1
    over = signer.sign_note(f"{ORIGIN}\n{2**64}\n{base64.b64encode(ROOT).decode()}\n")
    with pytest.raises(MalformedCheckpoint, match="size"):
        verify_checkpoint(over, origin=ORIGIN, verifiers=[signer.verifier])


def test_a_checkpoint_signed_by_the_pinned_key_for_another_origin_is_wrong_origin() -> None:
    signer = _signer()
    note = signer.sign_checkpoint(Checkpoint("example.gov/other-ledger", 5, ROOT))
    with pytest.raises(WrongOrigin):
        verify_checkpoint(note, origin=ORIGIN, verifiers=[signer.verifier])


def test_several_pinned_keys_old_and_new_both_verify() -> None:
    old, new = _signer("old"), _signer("new")
    for signer in (old, new):
        assert verify_checkpoint(_note(signer=signer), origin=ORIGIN, verifiers=[old.verifier, new.verifier]).size == 5


def test_odd_origins() -> None:
    signer = _signer()
    for origin in ("example.gov/\u00fcnicode/\u2603", "a" * 300, "example.gov/with+plus and space"):
        note = signer.sign_checkpoint(Checkpoint(origin, 1, ROOT))
        assert verify_checkpoint(note, origin=origin, verifiers=[signer.verifier]).origin == origin
    assert len(split_note(_note())[1]) == 1


def test_a_ledger_origin_with_a_control_character_is_refused(tmp_path: Path) -> None:
    """A control character in the origin makes every checkpoint of the ledger a malformed note
    (signed-note forbids them): before the fix `init` accepted it and signing 'worked'."""
    for number, bad in enumerate(("example.gov/a\x01b", "example.gov/a\x1bb", "")):
        with pytest.raises(UsageError, match="origin"):
            Ledger.create(tmp_path / f"l{number}.db", bad, created="2026-01-01T00:00:00Z", key_type="ed25519")


# --- ECDSA encodings ---------------------------------------------------------------------------


def test_ecdsa_high_s_twin_verifies_but_dedup_and_forks_go_by_root_not_note_bytes() -> None:
    """ECDSA is malleable: (r, n - s) verifies too, so one checkpoint has two valid notes. Nothing
    keys on note bytes for identity: forks compare roots per size, the anchor check compares roots."""
    signer = FileSigner(ORIGIN, fixed_p256())
    note = signer.sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT))
    body, sig_line = note.split("\n\n")
    name, b64 = sig_line.rstrip("\n")[2:].split(" ")
    blob = base64.b64decode(b64)
    r, s = decode_dss_signature(blob[4:])
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    twin = body + "\n\n" + f"\u2014 {name} {base64.b64encode(blob[:4] + encode_dss_signature(r, n - s)).decode()}\n"
    assert twin != note
    assert verify_checkpoint(twin, origin=ORIGIN, verifiers=[signer.verifier]) == \
        verify_checkpoint(note, origin=ORIGIN, verifiers=[signer.verifier])
    # A raw r||s signature (not DER) is not accepted.
    raw = base64.b64encode(blob[:4] + r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    with pytest.raises(BadSignature):
        verify_checkpoint(body + "\n\n" + f"\u2014 {name} {raw}\n", origin=ORIGIN, verifiers=[signer.verifier])


# --- key files ---------------------------------------------------------------------------------


def test_key_file_is_written_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private_key(tmp_path / "k.key", fixed_p256())
    finally:
        os.umask(old)
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620])
def test_a_key_file_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    """A signing key that other users can read is a key anyone on the host may hold. Before the fix
    a 0644 key file was used without a word."""
    path = tmp_path / "k.key"
    write_private_key(path, fixed_p256())
    path.chmod(mode)
    with pytest.raises(UsageError, match=f"{mode:o}") as info:
        load_file_signer(path, ORIGIN)
    assert "BEGIN" not in str(info.value) and "chmod 600" in str(info.value)


def test_a_group_readable_key_file_is_accepted_for_kubernetes_fsgroup_mounts(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_private_key(path, fixed_p256())
    path.chmod(0o440)
    assert load_file_signer(path, ORIGIN).verifier.sig_type == 0x02


def test_an_encrypted_key_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    pem = fixed_p256().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"hunter2-secret"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    with pytest.raises(Exception) as info:
        load_file_signer(path, ORIGIN)
    assert getattr(info.value, "exit_code", None) == 2
    assert "encrypted" in str(info.value) and "hunter2" not in str(info.value) and "BEGIN" not in str(info.value)


# --- AWS KMS (moto's server over HTTP) -----------------------------------------------------------


@pytest.fixture()
def kms(moto_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("kms", endpoint_url=moto_endpoint, region_name=REGION)


def test_kms_signs_ecdsa_sha256_over_the_note_text(kms) -> None:  # type: ignore[no-untyped-def]
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signer = KmsSigner(ORIGIN, key_id, kms)
    note = signer.sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT))
    assert verify_checkpoint(note, origin=ORIGIN, verifiers=[signer.verifier]).root == ROOT
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert signer.verifier.key_id == hashlib.sha256(der).digest()[:4]


def test_a_kms_signature_that_does_not_verify_is_never_emitted(kms) -> None:  # type: ignore[no-untyped-def]
    """The public key is read once; the alias can be moved to another key before Sign (key rotation
    by alias). Before the fix the note carried a signature by the other key under this key's ID,
    was kept in the ledger, and every later run refused to sign ('checkpoints were edited')."""
    first = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    second = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/keys-review-moved", TargetKeyId=first)
    signer = KmsSigner(ORIGIN, "alias/keys-review-moved", kms)
    kms.update_alias(AliasName="alias/keys-review-moved", TargetKeyId=second)
    with pytest.raises(SourceUnavailable, match="does not verify"):
        signer.sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT))


# --- anchored checkpoints read back from S3 ------------------------------------------------------


@pytest.fixture()
def s3(moto_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)


def _anchor_two(s3, bucket: str) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """Two checkpoints anchored under COMPLIANCE: sizes 5 and 10. Returns (prefix URL, old note, new note)."""
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    url = f"s3://{bucket}/ledger/"
    until = datetime.now(timezone.utc) + timedelta(days=1)
    old, new = _note(5, ROOT), _note(10, hashlib.sha256(b"ten").digest())
    publish_checkpoint(s3, url, old, size=5, retain_until=until)
    publish_checkpoint(s3, url, new, size=10, retain_until=until)
    return url, old, new


def test_a_newer_unlocked_version_does_not_replace_the_anchored_one(s3) -> None:  # type: ignore[no-untyped-def]
    """Object Lock protects versions, not keys: whoever may s3:PutObject (the collector role must)
    can put a new, unlocked version on the newest anchor's key, e.g. holding an older note. Before
    the fix both the assessor's fetch and the signer's anchor check read that current version, so a
    rollback to size 5 passed `verify --checkpoint s3://…` and the signer accepted it."""
    url, old, new = _anchor_two(s3, "keys-review-overwrite")
    key = checkpoint_key("ledger/", new, 10)
    s3.put_object(Bucket="keys-review-overwrite", Key=key, Body=old.encode())  # no lock headers
    assert fetch_checkpoint(s3, url) == (f"s3://keys-review-overwrite/{key}", new)
    assert fetch_checkpoint(s3, f"s3://keys-review-overwrite/{key}")[1] == new
    anchored = S3CheckpointAnchor(url, client=s3).newest_signed(ORIGIN, _signer().verifier)
    assert anchored is not None and anchored.checkpoint.size == 10


def test_a_delete_marker_does_not_hide_the_anchored_version(s3) -> None:  # type: ignore[no-untyped-def]
    """A DeleteObject without a version ID adds a delete marker even under COMPLIANCE; the locked
    version is still there. Before the fix listing skipped the key, and the older anchor was used."""
    url, old, new = _anchor_two(s3, "keys-review-marker")
    s3.delete_object(Bucket="keys-review-marker", Key=checkpoint_key("ledger/", new, 10))
    assert fetch_checkpoint(s3, url)[1] == new
    anchored = S3CheckpointAnchor(url, client=s3).newest_signed(ORIGIN, _signer().verifier)
    assert anchored is not None and anchored.checkpoint.size == 10


def test_an_unlocked_checkpoint_object_is_not_an_anchor(s3) -> None:  # type: ignore[no-untyped-def]
    bucket = "keys-review-unlocked"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    note = _note(7)
    key = checkpoint_key("ledger/", note, 7)
    s3.put_object(Bucket=bucket, Key=key, Body=note.encode())
    with pytest.raises(IntegrityError, match="Object Lock"):
        fetch_checkpoint(s3, f"s3://{bucket}/{key}")
    with pytest.raises(SourceUnavailable, match="Object Lock"):
        fetch_checkpoint(s3, f"s3://{bucket}/ledger/")
    assert S3CheckpointAnchor(f"s3://{bucket}/ledger/", client=s3).newest_signed(ORIGIN, _signer().verifier) is None


def test_republishing_over_a_version_with_shorter_retention_writes_a_new_locked_version(s3) -> None:  # type: ignore[no-untyped-def]
    """The same note always lands on the same key. Before the fix an existing COMPLIANCE version
    counted as anchored whatever its retain-until date, e.g. one written with retention_days = 1
    before the config asked for 400: the anchor could be gone long before the configured retention."""
    bucket = "keys-review-retention"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    note = _note(5)
    now = datetime.now(timezone.utc)
    publish_checkpoint(s3, f"s3://{bucket}/l/", note, size=5, retain_until=now + timedelta(days=1))
    again = publish_checkpoint(s3, f"s3://{bucket}/l/", note, size=5, retain_until=now + timedelta(days=400),
                               minimum_retention=timedelta(days=400))
    assert again.written
    head = s3.head_object(Bucket=bucket, Key=checkpoint_key("l/", note, 5), VersionId=again.version_id)
    assert head["ObjectLockRetainUntilDate"] > now + timedelta(days=399)
    same = publish_checkpoint(s3, f"s3://{bucket}/l/", note, size=5, retain_until=now + timedelta(days=400),
                              minimum_retention=timedelta(days=400))
    assert not same.written
