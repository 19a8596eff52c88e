"""Pure verification of attestations: bytes, trusted keys and ``as_of`` in, a verdict out.

Formats understood:

* **DSSE envelopes** (``{"payload", "payloadType", "signatures"}``): each signature is
  checked over PAE(payloadType, payload) as the DSSE spec defines it. For an
  attestation the payload must be an in-toto Statement and ``payloadType`` must be
  ``application/vnd.in-toto+json``; anything else is a failed verification.
* **in-toto Statement v1** (and v0.1) with SLSA provenance v1 / v0.2 or any other
  predicate: subjects and their digests, predicate type, builder id, git commit,
  build/job/run id are extracted (facts, not verified claims: only the signature
  over them is verified).
* **sigstore bundles** v0.1–v0.3, verified offline with the ``sigstore`` library
  against a trusted-root document and an identity policy (certificate identity,
  optional OIDC issuer). Bundles whose verification material is a bare public key
  (no certificate) are checked against the trusted keys instead; their
  transparency-log entry is then *not* verified (``attrs.tlog_verified`` false).
* **Detached signatures** (cosign ``sign-blob`` style): ``<name>.sig`` beside
  ``<name>`` holding base64 of an ECDSA (DER or raw r||s), Ed25519 or RSA signature
  over the exact bytes of ``<name>``; also a JSON object ``{"sig"|"signature": b64,
  "keyid": ...}``. ``<name>`` is a plain JSON attestation (``{"git", "build",
  "signer"}``) or any blob.

Trusted keys are pinned public keys (PEM: SPKI public keys or X.509 certificates,
whose public key is taken as pinned; certificate chains and validity are *not*
checked for pinned keys). A key id is ``sha256:`` + hex SHA-256 of the DER SPKI.

Fail closed: an unknown key, a bad signature, a payload-type mismatch or a missing
signature yields ``status`` ``invalid`` or ``unsigned``, never ``signed``. Input that
is no attestation at all raises :class:`NotAnAttestation` (the caller quarantines it).
This module does no I/O and never imports boto3.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from collector.canonical import parse_json
from collector.errors import MalformedInput

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"

SIGNED, UNSIGNED, INVALID = "signed", "unsigned", "invalid"

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class NotAnAttestation(MalformedInput):
    """The bytes are not any attestation format this module knows (quarantine them)."""


# -- keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedKey:
    """A pinned public key. ``key_id`` is ``sha256:<hex of DER SPKI>``."""

    key_id: str
    name: str
    algorithm: str
    public_key: PublicKey = field(compare=False, repr=False)


def key_id_of(public_key: PublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _algorithm(public_key: PublicKey) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"ecdsa-{public_key.curve.name}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    return f"rsa-{public_key.key_size}"


def load_trusted_key(name: str, pem: bytes) -> TrustedKey:
    """A pinned key from PEM bytes (public key or certificate); :class:`MalformedInput` otherwise."""
    try:
        if b"BEGIN CERTIFICATE" in pem:
            public_key: Any = x509.load_pem_x509_certificate(pem).public_key()
        else:
            public_key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise MalformedInput(f"not a PEM public key or certificate: {exc}", location=name) from None
    if not isinstance(public_key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey)):
        raise MalformedInput(f"unsupported key type {type(public_key).__name__}", location=name)
    return TrustedKey(key_id_of(public_key), name, _algorithm(public_key), public_key)


class TrustedKeys:
    """The pinned keys, looked up by key id (``sha256:...``) or by file name."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self.keys: list[TrustedKey] = list(keys)
        self._by_id = {k.key_id: k for k in self.keys}

    @classmethod
    def from_pem_files(cls, files: Iterable[tuple[str, bytes]]) -> TrustedKeys:
        return cls(load_trusted_key(name, data) for name, data in files)

    def find(self, key_id: str) -> TrustedKey | None:
        found = self._by_id.get(key_id)
        if found is not None:
            return found
        for key in self.keys:  # a keyid may also name the key file ("ci-signing.pub.pem" or its stem)
            if key_id in (key.name, key.name.rsplit("/", 1)[-1], key.name.rsplit("/", 1)[-1].split(".")[0]):
                return key
        return None

    def __len__(self) -> int:
        return len(self.keys)


def verify_signature(public_key: PublicKey, signature: bytes, message: bytes) -> bool:
    """True when *signature* over *message* verifies with *public_key*.

    ECDSA: DER or raw r||s (IEEE P1363), SHA-256 (cosign's hash for every curve) or
    the curve's own hash (SHA-384 for P-384, SHA-512 for P-521). Ed25519: pure.
    RSA: PKCS#1 v1.5 or PSS, SHA-256.
    """
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
            return True
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            size = (public_key.curve.key_size + 7) // 8
            candidates = [signature]
            if len(signature) == 2 * size:
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                candidates.insert(0, encode_dss_signature(r, s))
            curve_hash = {384: hashes.SHA384(), 521: hashes.SHA512()}.get(public_key.curve.key_size)
            for hash_algorithm in [hashes.SHA256()] + ([curve_hash] if curve_hash else []):
                for candidate in candidates:
                    try:
                        public_key.verify(candidate, message, ec.ECDSA(hash_algorithm))
                        return True
                    except (InvalidSignature, ValueError):
                        continue
            return False
        if isinstance(public_key, rsa.RSAPublicKey):
            for pad in (padding.PKCS1v15(), padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO)):
                try:
                    public_key.verify(signature, message, pad, hashes.SHA256())
                    return True
                except (InvalidSignature, ValueError):
                    continue
            return False
    except (InvalidSignature, ValueError):
        return False
    return False


@dataclass(frozen=True)
class SignatureCheck:
    """Outcome of checking a set of signatures over one message against the pinned keys."""

    ok: bool
    key_id: str | None = None
    key_name: str | None = None
    error: str | None = None


def check_signatures(message: bytes, signatures: Sequence[tuple[str | None, bytes]], keys: TrustedKeys) -> SignatureCheck:
    """Accept when at least one ``(keyid, signature)`` verifies with a pinned key.

    A signature naming a key id that is not pinned is "signed by an unknown key"; one
    naming a pinned key that does not verify is "bad signature"; one with no key id
    is tried against every pinned key.
    """
    if not signatures:
        return SignatureCheck(False, error="no signatures")
    errors: list[str] = []
    for key_id, signature in signatures:
        if key_id:
            key = keys.find(key_id)
            if key is None:
                errors.append(f"signed by an unknown key {key_id[:80]}")
                continue
            if verify_signature(key.public_key, signature, message):
                return SignatureCheck(True, key.key_id, key.name)
            errors.append(f"bad signature: does not verify with trusted key {key.name}")
            continue
        for key in keys.keys:
            if verify_signature(key.public_key, signature, message):
                return SignatureCheck(True, key.key_id, key.name)
        errors.append("bad signature or unknown key: verifies with no trusted key"
                      if len(keys) else "no trusted keys given (--trusted-keys)")
    return SignatureCheck(False, error="; ".join(dict.fromkeys(errors)))


# -- facts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    name: str
    digest: str  # "sha256:<hex>" when a sha256 is given, else "<alg>:<hex>" of the first digest

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "digest": self.digest}


@dataclass(frozen=True)
class AttestationFacts:
    """What the attestation *claims* (its signature, not its truth, is what is verified)."""

    predicate_type: str | None = None
    subjects: tuple[Subject, ...] = ()
    builder_id: str | None = None
    git_sha: str | None = None
    job_id: str | None = None
    run_id: str | None = None
    build_id: str | None = None
    repository: str | None = None
    signer: str | None = None
    build_finished: str | None = None


# keys whose value names a git commit / job / run / build, wherever they sit in a predicate
_GIT_KEYS = ("gitcommit", "git_sha", "gitsha", "github_sha", "commit_sha", "commit", "sha1", "ci_commit_sha", "sha", "git")
_JOB_KEYS = ("job_id", "jobid", "github_job_id", "ci_job_id", "workflow_job_id")
_RUN_KEYS = ("run_id", "runid", "github_run_id", "ci_pipeline_id", "pipeline_id")
_BUILD_KEYS = ("build_id", "buildid", "buildinvocationid", "invocationid", "build")
_REPO_KEYS = ("repository", "github_repository", "ci_project_path", "repo")
_GIT_URI = re.compile(r"^git\+https://[^/]+/([^/@]+/[^/@]+?)(?:\.git)?(?:@.*)?$")
_INVOCATION = re.compile(r"/([^/]+/[^/]+)/actions/runs/(\d+)(?:/job/(\d+)|/attempts/\d+)?")


def _walk(value: Any, depth: int = 0) -> Iterable[tuple[str, Any]]:
    """(lower-case key, value) pairs, depth-first, bounded."""
    if depth > 8:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key).lower(), item
            yield from _walk(item, depth + 1)
    elif isinstance(value, list):
        for item in value[:64]:
            yield from _walk(item, depth + 1)


def _first(pairs: list[tuple[str, Any]], names: tuple[str, ...], pattern: re.Pattern[str] | None = None) -> str | None:
    for name in names:
        for key, value in pairs:
            if key != name or isinstance(value, (dict, list, bool)) or value is None:
                continue
            text = str(value)
            if pattern is None or pattern.match(text.lower()):
                return text.lower() if pattern is not None else text
    return None


def _digest_text(digests: Any) -> str | None:
    if not isinstance(digests, dict) or not digests:
        return None
    for alg in ("sha256", "sha512", "sha384", "gitCommit", "sha1"):
        if isinstance(digests.get(alg), str):
            return f"{alg}:{digests[alg].lower()}"
    alg, value = next(iter(sorted(digests.items())))
    return f"{alg}:{str(value).lower()}"


def _subjects(statement: Mapping[str, Any]) -> tuple[Subject, ...]:
    out = []
    listed = statement.get("subject")
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict):
            digest = _digest_text(item.get("digest"))
            if digest:
                out.append(Subject(str(item.get("name", "")), digest))
    return tuple(out)


def facts_from_statement(statement: Mapping[str, Any]) -> AttestationFacts:
    """Facts of an in-toto Statement: SLSA v1 ``buildDefinition``/``runDetails``, v0.2, or any predicate."""
    raw_predicate = statement.get("predicate")
    predicate: dict[str, Any] = raw_predicate if isinstance(raw_predicate, dict) else {}
    predicate_type = statement.get("predicateType") if isinstance(statement.get("predicateType"), str) else None
    builder = None
    finished = None
    invocation = None
    if isinstance(predicate.get("runDetails"), dict):  # SLSA provenance v1
        run = predicate["runDetails"]
        builder = (run.get("builder") or {}).get("id") if isinstance(run.get("builder"), dict) else None
        meta: dict[str, Any] = run["metadata"] if isinstance(run.get("metadata"), dict) else {}
        invocation, finished = meta.get("invocationId"), meta.get("finishedOn")
    elif isinstance(predicate.get("builder"), dict):  # SLSA provenance v0.2
        builder = predicate["builder"].get("id")
        meta = predicate["metadata"] if isinstance(predicate.get("metadata"), dict) else {}
        invocation, finished = meta.get("buildInvocationId"), meta.get("buildFinishedOn")
    pairs = list(_walk(predicate))
    job_id = _first(pairs, _JOB_KEYS)
    run_id = _first(pairs, _RUN_KEYS)
    repository = _first(pairs, _REPO_KEYS)
    if isinstance(invocation, str):
        match = _INVOCATION.search(invocation)
        if match:
            repository = repository or match.group(1)
            run_id = run_id or match.group(2)
            job_id = job_id or match.group(3)
    if not repository:  # v1 resolvedDependencies / v0.2 configSource: git+https://host/owner/name@ref
        uri = _first(pairs, ("uri",), _GIT_URI)
        match = _GIT_URI.match(uri or "")
        repository = match.group(1) if match else None
    if repository and repository.startswith("https://github.com/"):
        repository = repository[len("https://github.com/"):]
    build_id = str(invocation) if isinstance(invocation, str) else _first(pairs, _BUILD_KEYS)
    return AttestationFacts(
        predicate_type=predicate_type,
        subjects=_subjects(statement),
        builder_id=str(builder) if isinstance(builder, str) else None,
        git_sha=_first(pairs, _GIT_KEYS, _HEX40),
        job_id=job_id,
        run_id=run_id,
        build_id=build_id or job_id,
        repository=repository,
        build_finished=finished if isinstance(finished, str) else None,
    )


def facts_from_plain(doc: Mapping[str, Any]) -> AttestationFacts:
    """Facts of a plain attestation ``{"git": sha | {...}, "build": id | {...}, "signer": ..., ...}``."""
    pairs = [("git", doc.get("git"))] + list(_walk(doc))
    git = _first(pairs, _GIT_KEYS, _HEX40)
    build = doc.get("build")
    build_id = str(build) if isinstance(build, (str, int)) and not isinstance(build, bool) else _first(list(_walk(build)), ("id",) + _BUILD_KEYS)
    job_id = _first(pairs, _JOB_KEYS) or build_id
    subjects: list[Subject] = []
    listed = doc.get("subject") or doc.get("subjects")
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict):
            digest = item.get("digest")
            text = _digest_text(digest) if isinstance(digest, dict) else (str(digest) if digest else None)
            if text:
                subjects.append(Subject(str(item.get("name", "")), text))
    if isinstance(doc.get("digest"), str):
        subjects.append(Subject(str(doc.get("artifact", "")), doc["digest"]))
    signer = doc.get("signer")
    if isinstance(signer, dict):
        signer = signer.get("id") or signer.get("email") or signer.get("name")
    return AttestationFacts(
        predicate_type=doc.get("type") if isinstance(doc.get("type"), str) else None,
        subjects=tuple(subjects),
        builder_id=doc.get("builder") if isinstance(doc.get("builder"), str) else None,
        git_sha=git,
        job_id=job_id,
        run_id=_first(pairs, _RUN_KEYS),
        build_id=build_id,
        repository=_first(pairs, _REPO_KEYS),
        signer=str(signer) if signer is not None else None,
    )


# -- verdicts -------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The result for one attestation object.

    ``status`` is ``signed`` only when a signature verified with a pinned key (or, for
    sigstore bundles, the whole bundle verified against the trusted root and the
    identity policy) *and* the content is well-formed for its format.
    """

    status: str
    format: str
    facts: AttestationFacts = AttestationFacts()
    error: str | None = None
    key_id: str | None = None
    signer: str | None = None
    signature_valid: bool = False
    payload_type: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} is not a base64 string")
    compact = "".join(text.split())
    padded = compact + "=" * (-len(compact) % 4)
    try:  # standard or URL-safe alphabet, strictly (no silently skipped characters)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


def is_dsse_envelope(doc: Any) -> bool:
    return isinstance(doc, dict) and "payload" in doc and "payloadType" in doc and "signatures" in doc


def _statement_or_none(payload: bytes) -> dict[str, Any] | None:
    try:
        doc = parse_json(payload)
    except MalformedInput:
        return None
    if isinstance(doc, dict) and doc.get("_type") in STATEMENT_TYPES:
        return doc
    return None


def verify_dsse_signatures(envelope: Mapping[str, Any], keys: TrustedKeys) -> tuple[SignatureCheck, bytes, str]:
    """Check the envelope's signatures over PAE; return (check, payload bytes, payloadType).

    Raises :class:`NotAnAttestation` when the envelope fields are malformed.
    """
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str):
        raise NotAnAttestation("DSSE payloadType is not a string")
    try:
        payload = _b64(envelope.get("payload"), "DSSE payload")
    except ValueError as exc:
        raise NotAnAttestation(str(exc)) from None
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list):
        raise NotAnAttestation("DSSE signatures is not a list")
    decoded: list[tuple[str | None, bytes]] = []
    for index, item in enumerate(signatures):
        if not isinstance(item, dict):
            raise NotAnAttestation(f"DSSE signature {index} is not an object")
        try:
            decoded.append((item.get("keyid") or None, _b64(item.get("sig"), f"DSSE signature {index}")))
        except ValueError as exc:
            raise NotAnAttestation(str(exc)) from None
    return check_signatures(pae(payload_type, payload), decoded, keys), payload, payload_type


def verify_dsse_envelope(data: bytes, keys: TrustedKeys) -> Verdict:
    """Verify a DSSE envelope that must carry an in-toto Statement.

    ``signed``: a signature verifies with a pinned key, ``payloadType`` is
    ``application/vnd.in-toto+json`` and the payload is an in-toto Statement.
    ``unsigned``: no signatures. ``invalid``: anything else (unknown key, bad
    signature, payload-type mismatch, payload that is not a Statement).
    """
    doc = parse_json(data)
    if not is_dsse_envelope(doc):
        raise NotAnAttestation("not a DSSE envelope")
    check, payload, payload_type = verify_dsse_signatures(doc, keys)
    statement = _statement_or_none(payload)
    facts = facts_from_statement(statement) if statement is not None else AttestationFacts()
    base = Verdict(INVALID, "dsse", facts, key_id=check.key_id, signer=check.key_name,
                   signature_valid=check.ok, payload_type=payload_type)
    if not doc["signatures"]:
        return replace(base, status=UNSIGNED, error="DSSE envelope has no signatures")
    if not check.ok:
        return replace(base, error=check.error)
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        what = "an in-toto Statement" if statement is not None else "a payload"
        return replace(base, error=f"payload type mismatch: {what} with payloadType {payload_type[:80]!r}, "
                                   f"expected {IN_TOTO_PAYLOAD_TYPE}")
    if statement is None:
        return replace(base, error="payloadType is in-toto but the payload is not an in-toto Statement")
    return replace(base, status=SIGNED)


def parse_detached_signature(data: bytes) -> list[tuple[str | None, bytes]]:
    """A ``.sig`` object: base64 text (cosign ``sign-blob``), a JSON object, or raw DER bytes."""
    text = data.strip()
    if text.startswith(b"{"):
        doc = parse_json(text)
        if not isinstance(doc, dict):
            raise NotAnAttestation("detached signature JSON is not an object")
        listed = doc.get("signatures")
        items: list[Any] = listed if isinstance(listed, list) else [doc]
        out = []
        for item in items:
            if not isinstance(item, dict):
                raise NotAnAttestation("detached signature entry is not an object")
            sig = item.get("sig", item.get("signature"))
            try:
                out.append((item.get("keyid") or item.get("key_id") or None, _b64(sig, "detached signature")))
            except ValueError as exc:
                raise NotAnAttestation(str(exc)) from None
        return out
    try:
        return [(None, _b64(text.decode("ascii"), "detached signature"))]
    except (UnicodeDecodeError, ValueError):
        if text[:1] == b"\x30":  # raw DER ECDSA signature
            return [(None, bytes(data))]
        raise NotAnAttestation("detached signature is neither base64 nor JSON") from None


def verify_detached(content: bytes, signature_object: bytes, keys: TrustedKeys) -> Verdict:
    """Verify *content* (a plain JSON attestation or any blob) against its ``.sig`` object."""
    facts, fmt = _content_facts(content)
    check = check_signatures(content, parse_detached_signature(signature_object), keys)
    if not check.ok:
        return Verdict(INVALID, fmt, facts, error=check.error)
    return Verdict(SIGNED, fmt, facts, key_id=check.key_id, signer=facts.signer or check.key_name,
                   signature_valid=True)


def _content_facts(content: bytes) -> tuple[AttestationFacts, str]:
    try:
        doc = parse_json(content)
    except MalformedInput:
        return AttestationFacts(subjects=(Subject("", "sha256:" + hashlib.sha256(content).hexdigest()),)), "blob"
    if isinstance(doc, dict) and doc.get("_type") in STATEMENT_TYPES:
        return facts_from_statement(doc), "in-toto-statement"
    if isinstance(doc, dict):
        return facts_from_plain(doc), "plain-json"
    return AttestationFacts(), "json"


def is_plain_attestation(doc: Any) -> bool:
    return isinstance(doc, dict) and any(k in doc for k in ("git", "build", "signer"))


# -- sigstore -------------------------------------------------------------------------


@dataclass(frozen=True)
class SigstorePolicy:
    """How to verify sigstore bundles: a trusted-root document and the expected identity."""

    trusted_root: bytes | None = None
    identity: str | None = None
    oidc_issuer: str | None = None


def is_sigstore_bundle(doc: Any) -> bool:
    return isinstance(doc, dict) and str(doc.get("mediaType", "")).startswith(SIGSTORE_BUNDLE_PREFIX) or (
        isinstance(doc, dict) and "verificationMaterial" in doc and ("messageSignature" in doc or "dsseEnvelope" in doc))


def _sigstore_facts_of_envelope(payload: bytes, payload_type: str) -> tuple[AttestationFacts, str | None]:
    statement = _statement_or_none(payload)
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        return (facts_from_statement(statement) if statement else AttestationFacts(),
                f"payload type mismatch: payloadType {payload_type[:80]!r}, expected {IN_TOTO_PAYLOAD_TYPE}")
    if statement is None:
        return AttestationFacts(), "payloadType is in-toto but the payload is not an in-toto Statement"
    return facts_from_statement(statement), None


def verify_sigstore_bundle(data: bytes, artifact: bytes | None, policy: SigstorePolicy, keys: TrustedKeys) -> Verdict:
    """Verify a sigstore bundle offline.

    Certificate bundles: ``sigstore`` checks the chain to the trusted root at the
    signing time, the SCT, the transparency-log inclusion proof/promise, the identity
    policy, the signature and the log-entry consistency. Message-signature bundles
    need *artifact* (the signed bytes); without it the bundle's own message digest is
    verified and ``details.artifact_present`` is false. Public-key bundles are checked
    against the pinned keys (signature only; the log entry is not verified).
    """
    doc = parse_json(data)
    if not is_sigstore_bundle(doc):
        raise NotAnAttestation("not a sigstore bundle")
    media_type = str(doc.get("mediaType", ""))
    material = doc.get("verificationMaterial") if isinstance(doc.get("verificationMaterial"), dict) else {}
    details: dict[str, Any] = {"media_type": media_type[:120], "artifact_present": artifact is not None}
    if "publicKey" in material and "certificate" not in material and "x509CertificateChain" not in material:
        return _verify_public_key_bundle(doc, artifact, keys, details)
    if policy.trusted_root is None:
        return Verdict(INVALID, "sigstore-bundle", error="no trusted root given (--trusted-root)", details=details)
    if not policy.identity:
        return Verdict(INVALID, "sigstore-bundle", error="no identity policy given (--certificate-identity)",
                       details=details)
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity
    from sigstore_models.trustroot import v1 as trustroot_v1
    from sigstore_models.common.v1 import HashAlgorithm

    try:
        bundle = Bundle.from_json(data)
    except Exception as exc:  # any failure to load untrusted bundle bytes is an invalid bundle
        return Verdict(INVALID, "sigstore-bundle", error=f"invalid bundle: {_one_line(exc)}", details=details)
    try:
        root = TrustedRoot(trustroot_v1.TrustedRoot.from_json(policy.trusted_root))
    except (SigstoreError, ValueError) as exc:
        raise MalformedInput(f"trusted root is not a sigstore TrustedRoot: {_one_line(exc)}") from None
    certificate = bundle.signing_certificate
    identity = _certificate_identity(certificate)
    details.update({"cert_identity": identity, "cert_serial": _serial(certificate.serial_number),
                    "tlog_verified": False})
    verifier = Verifier(trusted_root=root)
    policy_obj = Identity(identity=policy.identity, issuer=policy.oidc_issuer)
    facts = AttestationFacts(signer=identity)
    try:
        if bundle._dsse_envelope is not None:
            payload_type, payload = verifier.verify_dsse(bundle, policy_obj)
            facts, mismatch = _sigstore_facts_of_envelope(payload, payload_type)
            facts = replace(facts, signer=identity)
            details["tlog_verified"] = True
            if mismatch:
                return Verdict(INVALID, "sigstore-bundle", facts, error=mismatch, signer=identity,
                               signature_valid=True, payload_type=payload_type, details=details)
            if artifact is not None:
                digest = "sha256:" + hashlib.sha256(artifact).hexdigest()
                details["artifact_matches_subject"] = any(s.digest == digest for s in facts.subjects)
            return Verdict(SIGNED, "sigstore-bundle", facts, signer=identity, signature_valid=True,
                           payload_type=payload_type, details=details)
        if artifact is not None:
            target: bytes | Any = artifact
            digest_hex = hashlib.sha256(artifact).hexdigest()
        else:
            signature = bundle._inner.message_signature
            if signature is None or signature.message_digest is None:
                return Verdict(INVALID, "sigstore-bundle", facts, error="no artifact beside the bundle and no "
                               "message digest in it", signer=identity, details=details)
            target = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=signature.message_digest.digest)
            digest_hex = signature.message_digest.digest.hex()
        verifier.verify_artifact(target, bundle, policy_obj)
    except Exception as exc:  # fail closed: whatever stops verification of untrusted input means "not verified"
        return Verdict(INVALID, "sigstore-bundle", facts, error=f"sigstore verification failed: {_one_line(exc)}",
                       signer=identity, details=details)
    details["tlog_verified"] = True
    facts = replace(facts, subjects=(Subject("", "sha256:" + digest_hex),))
    return Verdict(SIGNED, "sigstore-bundle", facts, signer=identity, signature_valid=True, details=details)


def _verify_public_key_bundle(doc: Mapping[str, Any], artifact: bytes | None, keys: TrustedKeys,
                              details: dict[str, Any]) -> Verdict:
    details["tlog_verified"] = False
    hint = (doc["verificationMaterial"].get("publicKey") or {}).get("hint")
    envelope = doc.get("dsseEnvelope")
    if isinstance(envelope, dict):
        check, payload, payload_type = verify_dsse_signatures(envelope, keys)
        facts, mismatch = _sigstore_facts_of_envelope(payload, payload_type)
        if not check.ok or mismatch:
            return Verdict(INVALID, "sigstore-bundle", facts, error=check.error or mismatch, key_id=check.key_id,
                           signature_valid=check.ok, payload_type=payload_type, details=details)
        return Verdict(SIGNED, "sigstore-bundle", facts, key_id=check.key_id, signer=check.key_name,
                       signature_valid=True, payload_type=payload_type, details=details)
    message = doc.get("messageSignature")
    if not isinstance(message, dict):
        raise NotAnAttestation("sigstore bundle has neither dsseEnvelope nor messageSignature")
    try:
        signature = _b64(message.get("signature"), "bundle signature")
    except ValueError as exc:
        raise NotAnAttestation(str(exc)) from None
    if artifact is None:
        return Verdict(INVALID, "sigstore-bundle", error="public-key bundle without its artifact beside it",
                       details=details)
    # a publicKey hint is only a hint: when it names no pinned key, every pinned key is tried
    named = hint if isinstance(hint, str) and keys.find(hint) is not None else None
    check = check_signatures(artifact, [(named, signature)], keys)
    facts = AttestationFacts(subjects=(Subject("", "sha256:" + hashlib.sha256(artifact).hexdigest()),))
    if not check.ok:
        return Verdict(INVALID, "sigstore-bundle", facts, error=check.error, details=details)
    return Verdict(SIGNED, "sigstore-bundle", facts, key_id=check.key_id, signer=check.key_name,
                   signature_valid=True, details=details)


def _certificate_identity(certificate: x509.Certificate) -> str | None:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for general_name in san:
        value = general_name.value
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return str(value)[:300]
    return None


def _serial(number: int) -> str:
    text = f"{number:x}"
    text = "0" * (len(text) % 2) + text
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# -- dispatch -------------------------------------------------------------------------


def verify_attestation(content: bytes, *, signature_object: bytes | None, artifact: bytes | None,
                       keys: TrustedKeys, policy: SigstorePolicy) -> Verdict:
    """Verify one attestation object, choosing the format from its bytes.

    *signature_object* is the ``.sig`` beside it (detached signature), *artifact* the
    signed bytes beside a sigstore bundle. Raises :class:`NotAnAttestation` for bytes
    that are no known attestation format.
    """
    if signature_object is not None:
        return verify_detached(content, signature_object, keys)
    try:
        doc = parse_json(content)
    except MalformedInput as exc:
        detail = re.sub(r"(invalid JSON: )|(:? ?line \d+ column \d+ \(char \d+\))", "", _one_line(exc))[:80]
        raise NotAnAttestation(f"malformed JSON ({detail}), and no detached signature (.sig) beside it") from None
    if is_dsse_envelope(doc):
        return verify_dsse_envelope(content, keys)
    if is_sigstore_bundle(doc):
        return verify_sigstore_bundle(content, artifact, policy, keys)
    if isinstance(doc, dict) and doc.get("_type") in STATEMENT_TYPES:
        return Verdict(UNSIGNED, "in-toto-statement", facts_from_statement(doc),
                       error="bare in-toto Statement: no envelope, no signature")
    if is_plain_attestation(doc):
        facts = facts_from_plain(doc)
        return Verdict(UNSIGNED, "plain-json", facts, signer=facts.signer,
                       error="no detached signature (.sig) beside the attestation")
    raise NotAnAttestation("JSON that is no DSSE envelope, sigstore bundle, in-toto Statement or plain "
                           "attestation (git/build/signer)")


# -- retention ------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionAssessment:
    """Object Lock retention measured from the object's put time (or ``as_of`` if unknown).

    ``retention_days`` is the whole days between the put time and retain-until: the
    retention the object was given when it was written. ``remaining_days`` counts from
    ``as_of``. ``ok`` requires an Object Lock mode, a retain-until date, at least
    ``minimum_days`` of retention and retention not yet expired at ``as_of``.
    A legal hold alone does not count (anyone allowed PutObjectLegalHold can lift it).
    """

    ok: bool
    retention_days: int | None
    remaining_days: int | None
    measured_from: str  # "put_time" or "as_of"
    reason: str | None


def assess_retention(*, mode: str | None, retain_until: str | None, put_time: datetime | None,
                     as_of: datetime, minimum_days: int) -> RetentionAssessment:
    if as_of.tzinfo is None or (put_time is not None and put_time.tzinfo is None):
        raise ValueError("naive datetime")
    start, measured = (put_time, "put_time") if put_time is not None else (as_of, "as_of")
    until: datetime | None = None
    if retain_until:
        try:
            until = datetime.fromisoformat(retain_until.replace("Z", "+00:00"))
            if until.tzinfo is None:
                until = until.replace(tzinfo=timezone.utc)
        except ValueError:
            return RetentionAssessment(False, None, None, measured, f"retain-until {retain_until[:40]!r} is not a time")
    if not mode or until is None:
        return RetentionAssessment(False, None, None, measured, "no Object Lock retention on the object")
    days = (until - start).days
    remaining = (until - as_of).days
    if mode not in ("COMPLIANCE", "GOVERNANCE"):
        return RetentionAssessment(False, days, remaining, measured, f"unknown Object Lock mode {mode[:20]!r}")
    if until <= as_of:
        return RetentionAssessment(False, days, remaining, measured, "retention expired before as_of")
    if days < minimum_days:
        return RetentionAssessment(False, days, remaining, measured,
                                   f"retention {days} days shorter than the minimum {minimum_days} days")
    return RetentionAssessment(True, days, remaining, measured, None)
