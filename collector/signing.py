"""Checkpoint signers: a local key file (ECDSA P-256 or Ed25519) or an AWS KMS key.

Private key material never leaves this module: it is read from a 0600 file or
stays inside KMS, and no message here includes it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from collector.checkpoint import (
    BadSignature,
    Checkpoint,
    CheckpointError,
    NoteVerifier,
    add_signature_line,
    make_verifier,
    parse_verifier_key,
    signature_line,
    verify_checkpoint,
)
from collector.checkpoint_keys import HANDOVER_TAG, Handover, handover_line, read_handover
from collector import merkle
from collector.errors import IntegrityError, MalformedInput, SourceUnavailable, UsageError

if TYPE_CHECKING:
    from collector.ledger import Ledger, StoredCheckpoint

KEY_TYPES = ("ecdsa-p256", "ed25519")
# A key file others may read, or its group or others may write, is refused (ssh's rule, loosened for
# group read: Kubernetes secret volumes with an fsGroup are 0440, readable by the pod's group only).
KEY_FILE_FORBIDDEN_MODE = 0o027


class NoteSigner(ABC):
    """Signs note text under a key name."""

    name: str

    @property
    @abstractmethod
    def verifier(self) -> NoteVerifier: ...

    @abstractmethod
    def sign_bytes(self, message: bytes) -> bytes: ...

    def sign_note(self, body: str) -> str:
        signature = self.sign_bytes(body.encode())
        return add_signature_line(body, self.name, self.verifier.key_id, signature)

    def sign_checkpoint(self, checkpoint: Checkpoint) -> str:
        return self.sign_note(checkpoint.body())


class FileSigner(NoteSigner):
    def __init__(self, name: str, private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
        self.name = name
        self._key = private_key
        self._verifier = make_verifier(name, private_key.public_key())

    @property
    def verifier(self) -> NoteVerifier:
        return self._verifier

    def sign_bytes(self, message: bytes) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(message)
        try:
            return self._key.sign(message, _ecdsa_sha256())
        except UnsupportedAlgorithm:  # cryptography built against an OpenSSL before 3.2 (its wheels ship 3.2+)
            return self._key.sign(message, ec.ECDSA(hashes.SHA256()))


def _ecdsa_sha256() -> ec.ECDSA:
    """ECDSA with SHA-256, deterministic (RFC 6979): the same key and message give the same
    signature, so a rebuilt bundle's MANIFEST.sig is byte-identical too, and no signature depends on
    the machine's random numbers. Both kinds verify alike; see :meth:`FileSigner.sign_bytes` for an
    OpenSSL without it."""
    return ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


class KmsSigner(NoteSigner):
    """ECDSA P-256 signatures made by AWS KMS (``ECDSA_SHA_256``, message type RAW)."""

    def __init__(self, name: str, key_id: str, client: Any) -> None:
        self.name = name
        self._key_id = key_id
        self._client = client
        try:
            answer = client.get_public_key(KeyId=key_id)
        except Exception as exc:  # botocore raises many kinds; all mean "KMS unusable"
            raise SourceUnavailable(f"cannot read KMS public key {key_id}: {type(exc).__name__}") from None
        # Real KMS returns KeySpec (and the deprecated CustomerMasterKeySpec); moto 5.2 only the latter.
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
        if spec != "ECC_NIST_P256" or answer.get("KeyUsage") != "SIGN_VERIFY":
            raise UsageError(f"KMS key {key_id} must be ECC_NIST_P256 with SIGN_VERIFY usage")
        self._verifier = make_verifier(name, serialization.load_der_public_key(answer["PublicKey"]))

    @property
    def verifier(self) -> NoteVerifier:
        return self._verifier

    def sign_bytes(self, message: bytes) -> bytes:
        try:
            answer = self._client.sign(
                KeyId=self._key_id, Message=message, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
            )
        except Exception as exc:
            raise SourceUnavailable(f"KMS sign with {self._key_id} failed: {type(exc).__name__}") from None
        signature = bytes(answer["Signature"])
        # The public key (and so the key ID in the note) was read when this signer was made; an alias
        # moved since, or a KMS answer over other bytes, would give a note no verifier accepts, kept
        # in the ledger as if this key had signed it. Check before anything is written.
        if not self._verifier.verify(message, signature):
            raise SourceUnavailable(f"KMS key {self._key_id} returned a signature that does not verify under the public "
                                    f"key read from it (key ID {self._verifier.key_id.hex()}): was the alias moved to "
                                    "another key? nothing was signed")
        return signature


@dataclass(frozen=True)
class AnchoredCheckpoint:
    """A checkpoint read back from an anchor outside the ledger, verified under the signer's key."""

    where: str  # e.g. the s3:// URL of the object
    checkpoint: Checkpoint


class CheckpointAnchor(ABC):
    """Where signed checkpoints are anchored outside the ledger (``run --publish-checkpoint``).

    Implementations do the I/O (:class:`collector.checkpoint_fetch.S3CheckpointAnchor`);
    :func:`sign_tree_head` only compares the answer with the tree it is about to sign."""

    where: str

    @abstractmethod
    def newest_signed(self, origin: str, verifier: NoteVerifier) -> AnchoredCheckpoint | None:
        """The largest anchored checkpoint that *verifier*'s key signed for *origin*; None when
        nothing this key signed is anchored. Raises :class:`SourceUnavailable` when the anchor
        cannot be read, :class:`IntegrityError` when an anchored note carries this key's name and
        ID with a signature that does not verify."""


def load_public_keys(paths: Sequence[Path], origin: str, *, what: str = "trusted key") -> list[NoteVerifier]:
    """Public keys (PEM, named *origin*, or ``name+keyid+base64`` verifier keys) from files."""
    keys = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceUnavailable(f"cannot read {what}: {getattr(exc, 'strerror', None) or exc}",
                                    location=str(path)) from None
        keys.append(parse_verifier_key(text, default_name=origin, location=str(path)))
    return keys


def load_previous_keys(paths: Sequence[Path], origin: str) -> list[NoteVerifier]:
    """The public keys a ledger was signed with before a key rotation (``[signer] previous_keys``)."""
    return load_public_keys(paths, origin, what="previous signing key")


def newest_signed(ledger: Ledger, verifier: NoteVerifier) -> tuple[StoredCheckpoint, Checkpoint] | None:
    """The largest checkpoint kept in *ledger* that *verifier*'s key signed for the ledger's origin.

    Notes are tried from the largest size down; one that carries this key's name and ID but
    whose signature fails is an edited checkpoint and raises :class:`IntegrityError` (otherwise
    spoiling the newest note would make an older one the reference). Notes by other keys, and
    malformed ones, are skipped: ``fedledger verify`` reports them."""
    for stored in sorted(ledger.checkpoints(), key=lambda cp: (cp.size, cp.id), reverse=True):
        try:
            return stored, verify_checkpoint(stored.note, origin=ledger.origin, verifiers=[verifier])
        except BadSignature:
            raise IntegrityError(f"refusing to sign: checkpoint #{stored.id} carries a signature by this key that does "
                                 "not verify (the ledger's checkpoints were edited); run `fedledger verify`") from None
        except CheckpointError:
            continue
    return None


def sign_tree_head(ledger: Ledger, signer: NoteSigner, created: str, *,
                   anchor: CheckpointAnchor | None = None,
                   previous: Sequence[NoteVerifier] = (),
                   handover: NoteSigner | None = None) -> StoredCheckpoint:
    """Sign the ledger's tree head and keep the note, if it extends what this key signed before.

    C2SP tlog-checkpoint: a log MUST NOT sign a checkpoint inconsistent with any it signed. The
    ledger is not trusted for that: whoever can write to it (without the key) could rewrite or cut
    entries, re-hash the chain, leaves and nodes, and have the next scheduled checkpoint vouch for
    the result. So, inside the write lock, the newest checkpoint this key signed for the ledger
    (:func:`newest_signed`) must still hold: the tree is at least that large, its first entries
    still hash to the root that was signed, and a consistency proof from that checkpoint to the
    root about to be signed verifies; otherwise :class:`IntegrityError` (exit 1) and nothing is
    signed.

    Whoever can write the ledger can also delete its checkpoint rows. With an *anchor* (the publish
    target), the newest checkpoint this key anchored there must hold too: the tree is at least
    that large and a consistency proof from it to the root about to be signed verifies; otherwise
    :class:`IntegrityError` and nothing is signed. The anchor is read before the write lock is
    taken; when it cannot be read, :class:`SourceUnavailable` and nothing is signed. Not covered:
    entries after the newest checkpoint signed (anchored or not), and, without an anchor,
    checkpoint rows deleted from the ledger; ``verify --checkpoint`` catches the latter.

    After a key rotation the new key has signed nothing: *previous* (the public keys the ledger was
    signed with before) makes the newest checkpoint any of them signed hold as well, in the ledger
    and at the anchor, so a rollback made at rotation time is not signed by the new key.

    *handover* (the old key's signer, one of *previous*) makes the new key's first checkpoint a key
    handover (:mod:`collector.checkpoint_keys`): the note carries a ``fedledger-key-handover`` line
    naming the new key and is signed by both keys, so a verifier who pins only the old key can
    follow the rotation. The old key signs only a tree that extends the newest checkpoint it signed
    (in the ledger and at the anchor), only once, and only as this key's first checkpoint; once
    the ledger holds the handover, *handover* is not used again. A key that handed over signs no
    larger tree. Refusals: :class:`UsageError` for a handover key that is not a previous key or is
    the signing key, or a new key that already signed without a handover; :class:`IntegrityError`
    for a tree the old key cannot vouch for.
    """
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if handover is not None:
        _check_handover_key(signer, handover, previous)
    keys = [signer.verifier, *(v for v in previous if v.key_id != signer.verifier.key_id)]

    def who(verifier: NoteVerifier) -> str:
        return "this key" if verifier is signer.verifier else f"the previous key {verifier.key_id.hex()}"

    anchored: AnchoredCheckpoint | None = None
    anchored_by = signer.verifier
    anchored_old: AnchoredCheckpoint | None = None  # the newest the handover key anchored
    anchored_handover: AnchoredCheckpoint | None = None  # this key's own handover, when it is the newest it anchored
    if anchor is not None:
        for verifier in keys:
            found_anchor = anchor.newest_signed(ledger.origin, verifier)
            if found_anchor is not None and (anchored is None or found_anchor.checkpoint.size > anchored.checkpoint.size):
                anchored, anchored_by = found_anchor, verifier
            if handover is not None and verifier.key_id == handover.verifier.key_id:
                anchored_old = found_anchor
            if verifier is signer.verifier and found_anchor is not None:
                stated = read_handover(found_anchor.checkpoint)
                if stated is not None and stated.old_key_id == signer.verifier.key_id:
                    anchored_handover = found_anchor

    def make_note(size: int, root: bytes) -> str:
        handovers = ledger_handovers(ledger, keys)
        for stored, old_key, done in handovers:
            if old_key.key_id == signer.verifier.key_id and size > stored.size:
                raise IntegrityError(f"refusing to sign size {size}: this key handed over to key {done.new.key_id.hex()} "
                                     f"at size {stored.size} (checkpoint #{stored.id}); a retired key signs no larger "
                                     f"tree: sign with key {done.new.key_id.hex()}")
        if anchored_handover is not None and size > anchored_handover.checkpoint.size:
            raise IntegrityError(f"refusing to sign size {size}: this key handed over at size "
                                 f"{anchored_handover.checkpoint.size} (anchored at {anchored_handover.where}); a retired "
                                 "key signs no larger tree")
        newest: tuple[StoredCheckpoint, Checkpoint, NoteVerifier] | None = None
        for verifier in keys:
            found = newest_signed(ledger, verifier)
            if found is not None and (newest is None or found[1].size > newest[1].size):
                newest = (*found, verifier)
        if newest is not None:
            _require_extends_stored(ledger, size, root, newest[0], newest[1], who(newest[2]))
        if anchored is not None:
            require_extends_anchor(ledger, size, root, anchored, signed_by=who(anchored_by))
        if handover is None or _handed_over(handovers, handover, signer) or _handed_over_at_anchor(
                anchored_old, handover, signer):
            return signer.sign_checkpoint(Checkpoint(ledger.origin, size, root))
        old = next(v for v in keys if v.key_id == handover.verifier.key_id)
        mine = newest_signed(ledger, signer.verifier)
        if mine is not None:
            raise UsageError(f"refusing to hand over: this key already signed checkpoint #{mine[0].id} (size "
                             f"{mine[1].size}) without a handover, and a handover must be its first checkpoint (a "
                             "verifier who pins only the old key could not accept the checkpoints before it); sign "
                             "without a handover key and give verifiers the new public key out of band")
        old_newest = newest_signed(ledger, old)
        if old_newest is None and anchored_old is None:
            raise IntegrityError(f"refusing to hand over: {who(old)} signed no checkpoint of this ledger (in the ledger"
                                 f"{' or at ' + anchor.where if anchor is not None else ''}), so it has nothing to "
                                 "vouch this tree extends: is it the key that signed before? run `fedledger verify`")
        if old_newest is not None:
            _require_extends_stored(ledger, size, root, old_newest[0], old_newest[1], who(old))
        if anchored_old is not None:
            require_extends_anchor(ledger, size, root, anchored_old, signed_by=who(old))
        return sign_handover(signer, handover, Checkpoint(ledger.origin, size, root))

    pem = signer.verifier.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return ledger.add_checkpoint(make_note, created, signer=(signer.name, signer.verifier.key_id.hex(), pem))


def _check_handover_key(signer: NoteSigner, handover: NoteSigner, previous: Sequence[NoteVerifier]) -> None:
    """:class:`UsageError` unless *handover* is a previous key, and not the signing key itself."""
    mine = handover.verifier
    if mine.key_id == signer.verifier.key_id:
        raise UsageError(f"the handover key is the signing key itself (key {mine.key_id.hex()}): give the old key's "
                         "private key as the handover key")
    require_previous_key(mine, previous)


def require_previous_key(handover: NoteVerifier, previous: Sequence[NoteVerifier]) -> None:
    """:class:`UsageError` unless the handover key's public key is one of the *previous* keys."""
    if not any(v.key_id == handover.key_id and v.vkey() == handover.vkey() for v in previous):
        named = ", ".join(v.key_id.hex() for v in previous) or "none"
        raise UsageError(f"the handover key (key {handover.key_id.hex()}) is not one of the previous keys (key IDs: "
                         f"{named}): name its public key in [signer] previous_keys or with --previous-key")


def _handed_over(handovers: list[tuple[StoredCheckpoint, NoteVerifier, Handover]], handover: NoteSigner,
                 signer: NoteSigner) -> bool:
    """Whether the ledger holds the handover from *handover*'s key to *signer*'s already;
    :class:`IntegrityError` when that key handed over to another key."""
    for stored, old_key, done in handovers:
        if old_key.key_id != handover.verifier.key_id:
            continue
        if done.new.key_id == signer.verifier.key_id and done.new.vkey() == signer.verifier.vkey():
            return True
        raise IntegrityError(f"refusing to hand over: the previous key {old_key.key_id.hex()} already handed over to key "
                             f"{done.new.key_id.hex()} at size {stored.size} (checkpoint #{stored.id}); a key hands "
                             "over once")
    return False


def _handed_over_at_anchor(anchored_old: AnchoredCheckpoint | None, handover: NoteSigner, signer: NoteSigner) -> bool:
    """Whether the newest checkpoint the handover key anchored (*anchored_old*) is its handover to
    *signer* already; :class:`IntegrityError` when it handed over to another key there. The
    anchor keeps the handover when the ledger's rows are gone (as for the signing key's own)."""
    if anchored_old is None:
        return False
    stated = read_handover(anchored_old.checkpoint)
    if stated is None or stated.old_key_id != handover.verifier.key_id:
        return False
    if stated.new.key_id == signer.verifier.key_id and stated.new.vkey() == signer.verifier.vkey():
        return True
    raise IntegrityError(f"refusing to hand over: the previous key {handover.verifier.key_id.hex()} already handed over "
                         f"to key {stated.new.key_id.hex()} at size {anchored_old.checkpoint.size} (anchored at "
                         f"{anchored_old.where}); a key hands over once")


def ledger_handovers(ledger: Ledger, keys: Sequence[NoteVerifier]) -> list[tuple[StoredCheckpoint, NoteVerifier, Handover]]:
    """The handover checkpoints kept in *ledger* by one of *keys*, smallest size first: each with the
    key that handed over (its signature verified; the note's line names it) and the handover.

    A note that names one of *keys* as handing over but whose signature by it fails is an edited
    checkpoint: :class:`IntegrityError`, as in :func:`newest_signed`."""
    found = []
    for stored in sorted(ledger.checkpoints(), key=lambda cp: (cp.size, cp.id)):
        if HANDOVER_TAG not in stored.note:  # most notes: no signature to check
            continue
        try:
            handover = read_handover(verify_checkpoint(stored.note, origin=ledger.origin, verifiers=keys))
        except BadSignature:
            raise IntegrityError(f"refusing to sign: checkpoint #{stored.id} carries a signature by a key named here "
                                 "that does not verify (the ledger's checkpoints were edited); run `fedledger verify`"
                                 ) from None
        except CheckpointError:
            continue
        old = next((v for v in keys if handover is not None and v.key_id == handover.old_key_id), None)
        if handover is not None and old is not None:
            try:
                verify_checkpoint(stored.note, origin=ledger.origin, verifiers=[old])
            except CheckpointError:
                continue  # the key the line names did not sign it: not its handover
            found.append((stored, old, handover))
    return found


def sign_handover(signer: NoteSigner, old: NoteSigner, checkpoint: Checkpoint) -> str:
    """A handover checkpoint: *checkpoint* with a ``fedledger-key-handover`` line naming *signer*'s
    key, signed by *signer* (first) and by *old*. Both signatures are checked before it is returned."""
    body = Checkpoint(checkpoint.origin, checkpoint.size, checkpoint.root,
                      (*checkpoint.extensions, handover_line(old.verifier, signer.verifier))).body()
    note = signer.sign_note(body) + signature_line(old.name, old.verifier.key_id, old.sign_bytes(body.encode()))
    for verifier in (signer.verifier, old.verifier):
        verify_checkpoint(note, origin=checkpoint.origin, verifiers=[verifier])  # BadSignature: never stored
    return note


def _require_extends_stored(ledger: Ledger, size: int, root: bytes, stored: StoredCheckpoint, signed: Checkpoint,
                            by: str) -> None:
    """:class:`IntegrityError` unless the tree (*size*, *root*) extends *signed*, a checkpoint kept in
    the ledger (*stored*) that *by* signed: at least as large, its first entries still hash to the
    signed root, and a consistency proof from it verifies."""
    if size < signed.size:
        raise IntegrityError(f"refusing to sign size {size}: {by} signed size {signed.size} "
                             f"(checkpoint #{stored.id}), so entries were removed; run `fedledger verify`")
    now = ledger.root(signed.size)
    if now != signed.root:
        raise IntegrityError(f"refusing to sign: entries 0..{signed.size - 1} now hash to {now.hex()}, but "
                             f"{by} signed {signed.root.hex()} for them (checkpoint #{stored.id}), so they "
                             "were rewritten; run `fedledger verify`")
    if not _extends(ledger, signed.size, signed.root, size, root):
        raise IntegrityError(f"refusing to sign size {size}: it does not extend the checkpoint {by} signed "
                             f"at size {signed.size} (checkpoint #{stored.id}): the ledger's stored tree was "
                             "edited; run `fedledger verify`")


def require_extends_anchor(ledger: Ledger, size: int, root: bytes, anchored: AnchoredCheckpoint, *,
                           signed_by: str = "this key") -> None:
    """Raise :class:`IntegrityError` unless the tree (*size*, *root*) extends *anchored*.

    A consistency proof from the anchored size to *size* is made from the ledger and checked
    against the anchored root and *root*, the root about to be signed: however the ledger's
    stored leaves and nodes were edited, a proof that verifies means the signed tree's first
    entries are the ones the anchored checkpoint covered."""
    old = anchored.checkpoint
    verify_hint = f"run `fedledger verify --checkpoint {anchored.where}`"
    if size < old.size:
        raise IntegrityError(f"refusing to sign size {size}: {signed_by} signed size {old.size} in the checkpoint anchored "
                             f"at {anchored.where}, so entries were removed or the ledger was rolled back; {verify_hint}")
    if not _extends(ledger, old.size, old.root, size, root):
        raise IntegrityError(f"refusing to sign size {size}: it does not extend the checkpoint {signed_by} anchored at "
                             f"{anchored.where} (size {old.size}, root {old.root.hex()}), so entries "
                             f"0..{old.size - 1} were rewritten; {verify_hint}")


def _extends(ledger: Ledger, old_size: int, old_root: bytes, size: int, root: bytes) -> bool:
    """Whether the tree (*size*, *root*) extends (*old_size*, *old_root*), by a consistency proof the
    ledger makes and that is checked against both roots: the signed root is read from stored nodes,
    so comparing the ledger's own root at *old_size* alone can agree while *root* commits to an edit."""
    if old_size == 0:
        return True
    try:
        merkle.verify_consistency(old_size, size, ledger.consistency_proof(old_size, size), old_root, root)
    except merkle.ProofError:
        return False
    return True


def generate_private_key(key_type: str) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise UsageError(f"unknown key type {key_type!r}: use one of {', '.join(KEY_TYPES)}")


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
    """Write a PKCS#8 PEM private key, created with mode 0600 (never world-readable, even briefly)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def write_public_key(path: Path, key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> None:
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def load_file_signer(path: Path, name: str) -> FileSigner:
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read()
    except OSError as exc:
        raise SourceUnavailable(f"cannot read signing key: {exc.strerror}", location=str(path)) from None
    if b"-----BEGIN PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        # before the mode check: chmod 600 would not help, and a public key is no secret
        raise UsageError("this is a public key (the .pub file): sign with the private key, e.g. the .key file "
                         "`fedledger init` wrote beside it", location=str(path))
    if mode & KEY_FILE_FORBIDDEN_MODE:
        raise UsageError(f"signing key file has mode {mode & 0o777:o}: other users can read or write it "
                         "(chmod 600 it, or 640/440 for a group only the service is in)", location=str(path))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        raise MalformedInput("the PEM private key is encrypted: fedledger reads unencrypted PKCS#8 keys from a "
                             "0600 file; keep a key that must stay protected in AWS KMS", location=str(path)) from None
    except ValueError:
        raise MalformedInput("not an unencrypted PEM private key", location=str(path)) from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise MalformedInput("signing key must be ECDSA P-256 or Ed25519", location=str(path))
    return FileSigner(name, key)


def kms_signer(name: str, key_id: str, *, endpoint_url: str | None = None, region: str | None = None) -> KmsSigner:
    import boto3
    from botocore.exceptions import NoRegionError

    try:
        client = boto3.client("kms", endpoint_url=endpoint_url, region_name=region)
    except NoRegionError:
        raise UsageError("AWS KMS needs a region: give --region (for `run`: region in the config's [signer]), "
                         "or set AWS_REGION") from None
    return KmsSigner(name, key_id, client)
