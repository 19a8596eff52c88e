"""C2SP tlog-checkpoint bodies and C2SP signed-note signatures (pure code).

A checkpoint body is ``origin\\nsize\\nbase64(root)\\n[extension lines\\n]``. A signed
note is the body, a blank line, and lines ``— <name> base64(keyid4 || sig)``.
Signature types: Ed25519 (0x01, key ID over name, 0x0A, 0x01 and the 32-byte key)
and ECDSA P-256 / SHA-256 (0x02, key ID = SHA-256 of the DER SubjectPublicKeyInfo,
DER signature), as c2sp.org/signed-note assigns them.

:func:`verify_checkpoint` ignores signatures from unknown keys, rejects the note
when a known key's signature fails, and when no trusted signature verifies.
Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from collector.errors import IntegrityError, MalformedInput, UsageError

SIG_ED25519 = 0x01
SIG_ECDSA = 0x02
EM_DASH_PREFIX = "\u2014 "
MAX_SIGNATURES = 16
# Go's checkpoint parsers (transparency-dev/formats/log, sumdb) read the tree size as a uint64; a
# longer size line is not a checkpoint (and int() refuses over 4300 digits in Python 3.11).
MAX_TREE_SIZE = 2**64 - 1


class CheckpointError(IntegrityError):
    """A checkpoint failed verification; ``code`` names the class of failure."""

    code = "checkpoint-invalid"


class MalformedCheckpoint(CheckpointError):
    code = "malformed-checkpoint"


class WrongOrigin(CheckpointError):
    code = "wrong-origin"


class UnknownSigner(CheckpointError):
    code = "unknown-signer"


class BadSignature(CheckpointError):
    code = "bad-signature"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted public key under a name, as a C2SP signed-note verifier."""

    name: str
    sig_type: int
    key_id: bytes
    public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, message)
            else:
                self.public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def vkey(self) -> str:
        """The verifier key string ``name+hexkeyid+base64(type||key)``."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([self.sig_type]) + public_key_bytes(self.public_key)).decode()}"


def public_key_bytes(key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(name: str, key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return hashlib.sha256(name.encode() + b"\n" + bytes([SIG_ED25519]) + public_key_bytes(key)).digest()[:4]
    return hashlib.sha256(public_key_bytes(key)).digest()[:4]


def make_verifier(name: str, key: object) -> NoteVerifier:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return NoteVerifier(name, SIG_ED25519, key_id(name, key), key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise MalformedInput(f"ECDSA key on {key.curve.name}: only P-256 is supported")
        return NoteVerifier(name, SIG_ECDSA, key_id(name, key), key)
    raise MalformedInput(f"unsupported public key type {type(key).__name__}: use ECDSA P-256 or Ed25519")


def parse_verifier_key(text: str, *, default_name: str, location: str | None = None) -> NoteVerifier:
    """A PEM public key (named *default_name*) or a ``name+keyid+base64`` verifier key."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            pem_key = serialization.load_pem_public_key(text.encode())
        except ValueError:
            raise MalformedInput("not a PEM public key", location=location) from None
        return make_verifier(default_name, pem_key)
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise MalformedInput("not a PEM public key or a name+keyid+base64 verifier key", location=location)
    name, hex_id, b64 = parts
    try:
        raw = base64.b64decode(b64, validate=True)
        wanted_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise MalformedInput("verifier key has bad hex or base64", location=location) from None
    if not raw:
        raise MalformedInput("verifier key is empty", location=location)
    try:
        if raw[0] == SIG_ED25519:
            key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey = ed25519.Ed25519PublicKey.from_public_bytes(raw[1:])
        elif raw[0] == SIG_ECDSA:
            loaded = serialization.load_der_public_key(raw[1:])
            if not isinstance(loaded, ec.EllipticCurvePublicKey):
                raise ValueError("not an EC key")
            key = loaded
        else:
            raise MalformedInput(f"verifier key type 0x{raw[0]:02x} is not supported", location=location)
    except ValueError:
        raise MalformedInput("verifier key does not hold a valid public key", location=location) from None
    verifier = make_verifier(name, key)
    if verifier.key_id != wanted_id:
        raise MalformedInput("verifier key ID does not match its key", location=location)
    return verifier


def parse_checkpoint_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise MalformedCheckpoint("checkpoint body needs origin, size and root lines, each ending in a newline")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin:
        raise MalformedCheckpoint("checkpoint origin line is empty")
    if not size_text.isdigit() or (len(size_text) > 1 and size_text[0] == "0") or not size_text.isascii():
        raise MalformedCheckpoint(f"checkpoint size {size_text[:40]!r} is not a decimal number")
    if len(size_text) > len(str(MAX_TREE_SIZE)) or int(size_text) > MAX_TREE_SIZE:
        raise MalformedCheckpoint(f"checkpoint size {size_text[:40]}{'...' if len(size_text) > 40 else ''} "
                                  f"({len(size_text)} digits) is larger than 2^64 - 1")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise MalformedCheckpoint("checkpoint root is not base64") from None
    if len(root) != 32 or base64.b64encode(root).decode() != root_text:
        raise MalformedCheckpoint("checkpoint root is not a canonical base64 SHA-256 hash")
    if any(not ext for ext in extensions):
        raise MalformedCheckpoint("checkpoint has an empty extension line")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def is_valid_key_name(name: str) -> bool:
    """c2sp.org/signed-note: key names are non-empty and hold no Unicode space and no '+'."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def is_valid_origin(origin: str) -> bool:
    """Whether *origin* can name a ledger: fedledger signs under the origin as key name, so it must
    be a valid key name, and a note holds no control character (signed-note), so neither may it."""
    return is_valid_key_name(origin) and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in origin)


ORIGIN_RULE = "a non-empty name without spaces, '+' or control characters, e.g. example.gov/fedledger"


def require_valid_origin(origin: str) -> None:
    """Raise :class:`UsageError` unless *origin* can name a ledger (:func:`is_valid_origin`); every backend."""
    if not is_valid_origin(origin):
        raise UsageError(f"origin must be {ORIGIN_RULE}")


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


def split_note(text: str) -> tuple[str, list[NoteSignature]]:
    """The note text and its signature lines, checked for shape only."""
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise MalformedCheckpoint("signed note holds a control character")
    if not text.endswith("\n"):
        raise MalformedCheckpoint("signed note does not end with a newline")
    sep = text.rfind("\n\n")
    if sep < 0:
        raise MalformedCheckpoint("signed note has no blank line before its signatures")
    body, sig_block = text[: sep + 1], text[sep + 2 :]
    sigs: list[NoteSignature] = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(EM_DASH_PREFIX):
            raise MalformedCheckpoint("signature line does not start with an em dash and a space")
        fields = line[len(EM_DASH_PREFIX) :].split(" ")
        if len(fields) != 2 or not fields[0]:
            raise MalformedCheckpoint("signature line is not '— name base64'")
        if not is_valid_key_name(fields[0]):
            # As Go's note.Open: the whole note is malformed, not just this signature unknown.
            raise MalformedCheckpoint(f"signature line names {fields[0][:80]!r}: a key name holds no space or '+'")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise MalformedCheckpoint("signature is not base64") from None
        if len(blob) < 5:
            raise MalformedCheckpoint("signature is too short")
        sigs.append(NoteSignature(fields[0], blob[:4], blob[4:]))
    if not sigs:
        raise MalformedCheckpoint("signed note has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise MalformedCheckpoint(f"signed note has more than {MAX_SIGNATURES} signatures")
    return body, sigs


def verify_checkpoint(note: str, *, origin: str, verifiers: Sequence[NoteVerifier]) -> Checkpoint:
    """Verify a signed checkpoint note against pinned *origin* and trusted *verifiers*.

    Verified: shape, that at least one trusted key signed the exact note text, that
    no trusted key's signature fails, and the origin. Not verified: that the tree
    it names is the one you hold; compare roots or use a consistency proof for that.
    """
    body, sigs = split_note(note)
    checkpoint = parse_checkpoint_body(body)
    if not signed_by(body.encode(), sigs, verifiers):
        raise UnknownSigner(f"no signature by a trusted key (signed by: {signer_names(sigs)})")
    require_origin(checkpoint, origin)
    return checkpoint


def signed_by(message: bytes, sigs: Sequence[NoteSignature], verifiers: Sequence[NoteVerifier]) -> list[NoteVerifier]:
    """The *verifiers* whose signature in *sigs* verifies over *message* (signed-note: a key is
    known by its name and key ID). Raises :class:`BadSignature` when a known key's signature fails:
    the note was edited after signing, whatever other keys signed it."""
    found: list[NoteVerifier] = []
    for sig in sigs:
        for verifier in verifiers:
            if verifier.name == sig.name and verifier.key_id == sig.key_id:
                if not verifier.verify(message, sig.signature):
                    raise BadSignature(f"signature by trusted key {sig.name} ({sig.key_id.hex()}) does not verify")
                found.append(verifier)
    return found


def signer_names(sigs: Sequence[NoteSignature]) -> str:
    return ", ".join(f"{s.name}/{s.key_id.hex()}" for s in sigs)


def require_origin(checkpoint: Checkpoint, origin: str) -> None:
    if checkpoint.origin != origin:
        raise WrongOrigin(f"checkpoint origin {checkpoint.origin!r} is not the pinned origin {origin!r}")


def signature_line(name: str, keyid: bytes, signature: bytes) -> str:
    """One signed-note signature line: an em dash, the key name, base64(key ID || signature)."""
    return f"{EM_DASH_PREFIX}{name} {base64.b64encode(keyid + signature).decode()}\n"


def add_signature_line(body: str, name: str, keyid: bytes, signature: bytes, existing: str = "") -> str:
    """Append one signature line to a note (``existing`` holds earlier signature lines)."""
    return body + "\n" + existing + signature_line(name, keyid, signature)
