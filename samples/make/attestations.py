"""Write samples/attestations/: one CI job's attestations, valid and defective, with fixed test keys.

Run from the repository root: ``python -m samples.make.attestations``. Keys and
times are fixed (ECDSA deterministic per RFC 6979, Ed25519 and RSA PKCS#1 v1.5 are
deterministic), so re-running writes identical files. The RSA test key is made
once and kept in ``samples/attestations/keys/``.

Layout (``bucket/`` mirrors ``s3://agency-attestations/``; ``.meta.json`` sidecars
carry what S3 would report: version id, ETag, SSE, Object Lock, put time)::

    samples/attestations/bucket/attestations/...   the objects
    samples/attestations/trusted-keys/             pinned public keys (--trusted-keys)
    samples/attestations/keys/                     private TEST keys (never use elsewhere)
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from samples.make import story

OUT = Path(__file__).resolve().parent.parent / "attestations"
BUCKET_DIR = OUT / "bucket"
PREFIX = "attestations/"
IN_TOTO = "application/vnd.in-toto+json"
KMS_KEY_ARN = f"arn:{story.PARTITION}:kms:{story.REGION}:{story.ACCOUNT_ID}:key/0f3c2a1e-5b7d-4c9e-8a1f-2d3e4f5a6b7c"
RETAIN_UNTIL = "2033-11-20T14:10:30Z"  # ~7 years after the put
SHORT_RETAIN_UNTIL = "2026-12-20T14:10:30Z"  # 30 days after the put: shorter than 365

CI_P256 = ec.derive_private_key(0x5EED_C1_0B_5167_2026_1120, ec.SECP256R1())
UNKNOWN_P256 = ec.derive_private_key(0xBAD_C0DE_0F_0E_5167_0001, ec.SECP256R1())
CI_ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"fedledger sample ed25519 ci key").digest())


def _rsa_key() -> rsa.RSAPrivateKey:
    path = OUT / "keys" / "ci-signing.rsa.key.pem"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key


def key_id(public_key: Any) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_ecdsa(key: ec.EllipticCurvePrivateKey, message: bytes, *, raw: bool) -> bytes:
    der = key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    if not raw:
        return der
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def provenance(subject_digest: str = story.ARTIFACT_DIGEST) -> dict[str, Any]:
    """An in-toto Statement v1 with SLSA provenance v1 for the story's build job."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": story.ARTIFACT_NAME, "digest": {"sha256": subject_digest.split(":", 1)[1]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": story.REF, "repository": f"https://github.com/{story.REPOSITORY}",
                                                    "path": story.WORKFLOW_PATH}},
                "internalParameters": {"github": {"event_name": "push", "repository_id": str(story.REPOSITORY_ID),
                                                  "runner_environment": "self-hosted", "run_id": str(story.RUN_ID),
                                                  "job_id": str(story.JOB_ID), "runner_name": story.RUNNER_NAME}},
                "resolvedDependencies": [{"uri": f"git+https://github.com/{story.REPOSITORY}@{story.REF}",
                                          "digest": {"gitCommit": story.GIT_SHA}}],
            },
            "runDetails": {
                "builder": {"id": f"https://github.com/{story.REPOSITORY}/{story.WORKFLOW_PATH}@{story.REF}"},
                "metadata": {"invocationId": f"https://github.com/{story.REPOSITORY}/actions/runs/{story.RUN_ID}"
                                             f"/attempts/{story.RUN_ATTEMPT}",
                             "startedOn": story.T_JOB_STARTED, "finishedOn": story.T_BUILD_SIGNED},
            },
        },
    }


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def envelope(statement: dict[str, Any], *, signer: Any = CI_P256, payload_type: str = IN_TOTO, raw: bool = True,
             tamper: bool = False, signed: bool = True) -> bytes:
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    sigs = []
    if signed:
        if isinstance(signer, ed25519.Ed25519PrivateKey):
            sig = signer.sign(pae(payload_type, payload))
        else:
            sig = sign_ecdsa(signer, pae(payload_type, payload), raw=raw)
        sigs.append({"keyid": key_id(signer.public_key()), "sig": base64.b64encode(sig).decode()})
    if tamper:  # signed, then the payload changed: the signature no longer covers it
        payload = payload.replace(story.GIT_SHA.encode(), b"0" * 40)
    return dumps({"payload": base64.b64encode(payload).decode(), "payloadType": payload_type, "signatures": sigs})


def meta(name: str, data: bytes, *, retain_until: str = RETAIN_UNTIL, mode: str = "COMPLIANCE") -> dict[str, Any]:
    return {
        "bucket": story.ATTESTATION_BUCKET,
        "version_id": hashlib.sha256(("v1/" + name).encode()).hexdigest()[:32],
        "etag": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "sse": "aws:kms",
        "kms_key_id": KMS_KEY_ARN,
        "object_lock_mode": mode,
        "retain_until": retain_until,
        "legal_hold": "OFF",
        "last_modified": story.T_ATTESTATION_PUT,
    }


def build() -> dict[str, bytes]:
    """Object name (under the prefix) → bytes. Sidecars are added by :func:`write`."""
    rsa_key = _rsa_key()
    plain = dumps({"git": story.GIT_SHA, "build": str(story.JOB_ID), "signer": story.SIGNER})
    plain_rsa = dumps({"git": story.GIT_SHA, "build": str(story.JOB_ID), "signer": story.SIGNER,
                       "subject": [{"name": story.ARTIFACT_NAME, "digest": story.ARTIFACT_DIGEST}]})
    job = str(story.JOB_ID)
    objects: dict[str, bytes] = {
        # the seed's minimal plain attestation, cosign sign-blob style detached ECDSA (DER, base64)
        f"{job}.json": plain,
        f"{job}.json.sig": base64.b64encode(sign_ecdsa(CI_P256, plain, raw=False)) + b"\n",
        # the same facts plus the artifact, detached RSA PKCS#1 v1.5 signature
        f"{job}.rsa.json": plain_rsa,
        f"{job}.rsa.json.sig": base64.b64encode(rsa_key.sign(plain_rsa, padding.PKCS1v15(), hashes.SHA256())) + b"\n",
        # DSSE in-toto SLSA v1 provenance: ECDSA P-256 raw r||s, and Ed25519
        f"{job}.provenance.dsse.json": envelope(provenance()),
        f"{job}.provenance.ed25519.dsse.json": envelope(provenance(), signer=CI_ED25519),
        # defects, named after the defect
        "attestation.bad-sig.dsse.json": envelope(provenance(), tamper=True),
        "attestation.bad-sig.json": plain.replace(story.GIT_SHA.encode(), b"1" * 40),
        "attestation.bad-sig.json.sig": base64.b64encode(sign_ecdsa(CI_P256, plain, raw=False)) + b"\n",
        "attestation.unknown-key.dsse.json": envelope(provenance(), signer=UNKNOWN_P256),
        "attestation.unknown-key.json": plain,
        "attestation.unknown-key.json.sig": base64.b64encode(sign_ecdsa(UNKNOWN_P256, plain, raw=False)) + b"\n",
        "attestation.unsigned.dsse.json": envelope(provenance(), signed=False),
        "attestation.unsigned.json": plain,
        "attestation.wrong-payload-type.dsse.json": envelope(provenance(), payload_type="application/json"),
        "attestation.short-retention.dsse.json": envelope(provenance()),
        "attestation.truncated.dsse.json": envelope(provenance())[:200],
    }
    return objects


def write() -> None:
    objects = build()
    target = BUCKET_DIR / PREFIX
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        old.unlink()
    for name, data in objects.items():
        (target / name).write_bytes(data)
        if name.endswith(".sig"):
            continue
        retain = SHORT_RETAIN_UNTIL if "short-retention" in name else RETAIN_UNTIL
        (target / (name + ".meta.json")).write_bytes(dumps(meta(PREFIX + name, data, retain_until=retain)))
    keys_dir = OUT / "trusted-keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    for name, key in (("ci-signing.ecdsa-p256", CI_P256), ("ci-signing.ed25519", CI_ED25519),
                      ("ci-signing.rsa", _rsa_key())):
        (keys_dir / f"{name}.pub.pem").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    private_dir = OUT / "keys"
    for name, key in (("ci-signing.ecdsa-p256", CI_P256), ("ci-signing.ed25519", CI_ED25519),
                      ("unknown-signer.ecdsa-p256", UNKNOWN_P256)):
        (private_dir / f"{name}.key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


if __name__ == "__main__":
    write()
    print(f"wrote {OUT}")
