"""Pure attestation verification: DSSE/PAE, signature encodings, in-toto facts, sigstore, retention."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from collector.attestation_verify import (
    IN_TOTO_PAYLOAD_TYPE,
    INVALID,
    SIGNED,
    UNSIGNED,
    NotAnAttestation,
    SigstorePolicy,
    TrustedKeys,
    assess_retention,
    check_signatures,
    facts_from_statement,
    load_trusted_key,
    pae,
    verify_attestation,
    verify_detached,
    verify_dsse_envelope,
    verify_dsse_signatures,
    verify_signature,
    verify_sigstore_bundle,
)
from tests.conftest import REPO, shared_data

P256 = ec.derive_private_key(424242, ec.SECP256R1())
OTHER = ec.derive_private_key(777, ec.SECP256R1())
ED = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def keys(*private: object) -> TrustedKeys:
    return TrustedKeys(load_trusted_key(f"k{i}.pem", pem(k)) for i, k in enumerate(private))


def statement() -> dict[str, object]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "img", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "x",
                "externalParameters": {"workflow": {"repository": "https://github.com/o/r", "ref": "refs/heads/main"}},
                "internalParameters": {"github": {"job_id": "55", "run_id": "44"}},
                "resolvedDependencies": [{"uri": "git+https://github.com/o/r", "digest": {"gitCommit": "c" * 40}}],
            },
            "runDetails": {"builder": {"id": "https://builder.example/v1"},
                           "metadata": {"invocationId": "https://github.com/o/r/actions/runs/44/attempts/1"}},
        },
    }


def envelope(payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE, signer: object = P256, *, raw: bool = False,
             keyid: str | None = None) -> bytes:
    message = pae(payload_type, payload)
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        sig = signer.sign(message)
    else:
        sig = signer.sign(message, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        if raw:
            r, s = decode_dss_signature(sig)
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    item = {"sig": base64.b64encode(sig).decode()}
    if keyid:
        item["keyid"] = keyid
    return json.dumps({"payload": base64.b64encode(payload).decode(), "payloadType": payload_type,
                       "signatures": [item]}).encode()


def test_verifier_does_not_import_boto3() -> None:
    code = "import sys, collector.attestation_verify; sys.exit(1 if 'boto3' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_pae_matches_the_dsse_spec() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_signature_encodings_ecdsa_raw_and_der_ed25519_rsa() -> None:
    message = b"attest me"
    der = P256.sign(message, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert verify_signature(P256.public_key(), der, message)
    assert verify_signature(P256.public_key(), raw, message)
    assert not verify_signature(OTHER.public_key(), der, message)
    assert verify_signature(ED.public_key(), ED.sign(message), message)
    assert not verify_signature(ED.public_key(), ED.sign(message), message + b"!")
    pkcs1 = RSA_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    pss = RSA_KEY.sign(message, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH), hashes.SHA256())
    assert verify_signature(RSA_KEY.public_key(), pkcs1, message)
    assert verify_signature(RSA_KEY.public_key(), pss, message)
    assert not verify_signature(RSA_KEY.public_key(), pkcs1, b"other")
    assert not verify_signature(P256.public_key(), b"\x00" * 64, message)


def test_check_signatures_says_unknown_key_or_bad_signature() -> None:
    trusted = keys(P256)
    kid = trusted.keys[0].key_id
    sig = OTHER.sign(b"m", ec.ECDSA(hashes.SHA256()))
    assert check_signatures(b"m", [("sha256:" + "0" * 64, sig)], trusted).error.startswith("signed by an unknown key")
    assert "bad signature" in check_signatures(b"m", [(kid, sig)], trusted).error
    assert not check_signatures(b"m", [], trusted).ok
    good = P256.sign(b"m", ec.ECDSA(hashes.SHA256()))
    assert check_signatures(b"m", [(None, sig), (None, good)], trusted).ok


@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize("signer", [P256, ED])
def test_dsse_in_toto_signed_with_facts(raw: bool, signer: object) -> None:
    payload = json.dumps(statement()).encode()
    verdict = verify_dsse_envelope(envelope(payload, signer=signer, raw=raw), keys(signer))
    assert verdict.status == SIGNED, verdict.error
    facts = verdict.facts
    assert facts.predicate_type == "https://slsa.dev/provenance/v1"
    assert [s.digest for s in facts.subjects] == ["sha256:" + "ab" * 32]
    assert (facts.builder_id, facts.git_sha, facts.job_id, facts.run_id, facts.repository) == (
        "https://builder.example/v1", "c" * 40, "55", "44", "o/r")


def test_dsse_failures_are_never_signed() -> None:
    payload = json.dumps(statement()).encode()
    assert verify_dsse_envelope(envelope(payload, signer=OTHER), keys(P256)).status == INVALID
    wrong_type = verify_dsse_envelope(envelope(payload, payload_type="application/json"), keys(P256))
    assert wrong_type.status == INVALID and wrong_type.signature_valid and "payload type mismatch" in wrong_type.error
    not_statement = verify_dsse_envelope(envelope(b'{"a":1}'), keys(P256))
    assert not_statement.status == INVALID
    doc = json.loads(envelope(payload))
    doc["signatures"] = []
    assert verify_dsse_envelope(json.dumps(doc).encode(), keys(P256)).status == UNSIGNED
    doc = json.loads(envelope(payload))
    doc["payload"] = base64.b64encode(payload.replace(b"c" * 40, b"d" * 40)).decode()
    assert verify_dsse_envelope(json.dumps(doc).encode(), keys(P256)).status == INVALID
    assert verify_dsse_envelope(envelope(payload), TrustedKeys()).status == INVALID
    with pytest.raises(NotAnAttestation):
        verify_dsse_envelope(b'{"payload": "!!", "payloadType": "x", "signatures": []}', keys(P256))


def test_detached_signature_forms() -> None:
    blob = b'{"git": "' + b"a" * 40 + b'", "build": "7", "signer": "ci@x"}'
    der = P256.sign(blob, ec.ECDSA(hashes.SHA256()))
    verdict = verify_detached(blob, base64.b64encode(der) + b"\n", keys(P256))
    assert verdict.status == SIGNED and verdict.facts.git_sha == "a" * 40 and verdict.facts.job_id == "7"
    assert verdict.signer == "ci@x"
    as_json = json.dumps({"sig": base64.b64encode(der).decode()}).encode()
    assert verify_detached(blob, as_json, keys(P256)).status == SIGNED
    assert verify_detached(blob + b" ", base64.b64encode(der), keys(P256)).status == INVALID
    assert verify_detached(blob, base64.b64encode(der), keys(OTHER)).status == INVALID


def test_unsigned_and_unknown_content() -> None:
    plain = b'{"git": "' + b"a" * 40 + b'", "build": "7", "signer": "ci@x"}'
    policy = SigstorePolicy()
    assert verify_attestation(plain, signature_object=None, artifact=None, keys=keys(P256), policy=policy).status == UNSIGNED
    bare = json.dumps(statement()).encode()
    assert verify_attestation(bare, signature_object=None, artifact=None, keys=keys(P256), policy=policy).status == UNSIGNED
    for junk in (b'{"hello": 1}', b"not json", b"[1,2]"):
        with pytest.raises(NotAnAttestation):
            verify_attestation(junk, signature_object=None, artifact=None, keys=keys(P256), policy=policy)


@pytest.mark.parametrize("name,predicate_type,git_sha,run_id", [
    ("slsa_predicate_v1_0.json", "https://slsa.dev/provenance/v1", "1ac93ce21ee526b36fd154b9058d97dfaa424c50",
     "10313983218"),
    ("slsa_predicate_v0_2.json", "https://slsa.dev/provenance/v0.2", "fc29ec190575ae345cea23f0953b64ca6f2ab8ba",
     "10457864437"),
])
def test_slsa_public_predicate_facts(name: str, predicate_type: str, git_sha: str, run_id: str) -> None:
    path = shared_data("attestations", "sigstore_python_assets", "slsa_predicates", name)
    predicate = json.loads(path.read_text())
    facts = facts_from_statement({"_type": "https://in-toto.io/Statement/v1", "subject": [],
                                  "predicateType": predicate_type, "predicate": predicate})
    assert facts.predicate_type == predicate_type
    assert facts.builder_id and facts.builder_id.startswith("https://github.com/")
    assert (facts.git_sha, facts.run_id) == (git_sha, run_id)
    assert facts.repository in ("octo-org/octo-repo", "sigstore/sigstore-python")


# -- public examples --------------------------------------------------------------------


def test_dsse_spec_test_vector_verifies_and_every_byte_matters() -> None:
    folder = shared_data("attestations", "dsse_spec")
    trusted = TrustedKeys([load_trusted_key("vector.pem", (folder / "dsse_spec_test_vector.pub.pem").read_bytes())])
    data = (folder / "dsse_spec_test_vector.envelope.json").read_bytes()
    doc = json.loads(data)
    check, payload, payload_type = verify_dsse_signatures(doc, trusted)
    assert check.ok and payload == b"hello world" and payload_type == "http://example.com/HelloWorld"
    # DER form of the same signature verifies too
    vector = json.loads((folder / "dsse_spec_test_vector.json").read_text())
    der_doc = dict(doc, signatures=[{"sig": vector["signature_b64_der_equivalent"]}])
    assert verify_dsse_signatures(der_doc, trusted)[0].ok
    # one byte changed anywhere that is signed: fails
    sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    for index in range(len(sig)):
        mutated = bytearray(sig)
        mutated[index] ^= 0x01
        bad = dict(doc, signatures=[{"sig": base64.b64encode(bytes(mutated)).decode()}])
        assert not verify_dsse_signatures(bad, trusted)[0].ok, index
    for index in range(len(payload)):
        mutated = bytearray(payload)
        mutated[index] ^= 0x01
        bad = dict(doc, payload=base64.b64encode(bytes(mutated)).decode())
        assert not verify_dsse_signatures(bad, trusted)[0].ok, index
    assert not verify_dsse_signatures(dict(doc, payloadType="http://example.com/HelloWorle"), trusted)[0].ok
    # as an attestation it is not in-toto: failed verification, with the signature itself valid
    verdict = verify_dsse_envelope(data, trusted)
    assert verdict.status == INVALID and verdict.signature_valid


SIGSTORE = ("attestations", "sigstore_python_assets")


def staging_policy(identity: str = "william@yossarian.net") -> SigstorePolicy:
    root = shared_data(*SIGSTORE, "trusted_root", "staging", "trusted_root.json").read_bytes()
    return SigstorePolicy(root, identity, "https://github.com/login/oauth")


def test_sigstore_good_staging_bundle_verifies_offline() -> None:
    folder = shared_data(*SIGSTORE)
    bundle = (folder / "bundle_v3.txt.sigstore").read_bytes()
    artifact = (folder / "bundle_v3.txt").read_bytes()
    verdict = verify_sigstore_bundle(bundle, artifact, staging_policy(), TrustedKeys())
    assert verdict.status == SIGNED, verdict.error
    assert verdict.signer == "william@yossarian.net" and verdict.details["tlog_verified"] is True
    assert verdict.facts.subjects[0].digest == "sha256:" + hashlib.sha256(artifact).hexdigest()
    # wrong identity, wrong issuer, other artifact, no policy, no root: all fail closed
    assert verify_sigstore_bundle(bundle, artifact, staging_policy("mallory@example.com"), TrustedKeys()).status == INVALID
    wrong_issuer = SigstorePolicy(staging_policy().trusted_root, "william@yossarian.net", "https://accounts.google.com")
    assert verify_sigstore_bundle(bundle, artifact, wrong_issuer, TrustedKeys()).status == INVALID
    assert verify_sigstore_bundle(bundle, artifact + b"x", staging_policy(), TrustedKeys()).status == INVALID
    assert verify_sigstore_bundle(bundle, artifact, SigstorePolicy(staging_policy().trusted_root), TrustedKeys()).status == INVALID
    assert verify_sigstore_bundle(bundle, artifact, SigstorePolicy(None, "william@yossarian.net"), TrustedKeys()).status == INVALID
    prod = shared_data(*SIGSTORE, "trusted_root", "prod", "trusted_root.json").read_bytes()
    assert verify_sigstore_bundle(bundle, artifact, SigstorePolicy(prod, "william@yossarian.net"), TrustedKeys()).status == INVALID


@pytest.mark.parametrize("name", [
    "bundle_invalid_version.txt.sigstore",
    "bundle_no_cert_v1.txt.sigstore",
    "bundle_no_log_entry.txt.sigstore",
    "bundle_v3_no_signed_time.txt.sigstore.json",
    "bundle_cve_2022_36056.txt.sigstore",
])
def test_sigstore_must_fail_bundles(name: str) -> None:
    folder = shared_data(*SIGSTORE)
    artifact_path = folder / name.replace(".sigstore.json", "").replace(".sigstore", "")
    policy = SigstorePolicy(staging_policy().trusted_root, "william@yossarian.net")  # identity only
    for identity in ("william@yossarian.net", "a@tny.town"):
        policy = SigstorePolicy(policy.trusted_root, identity)
        verdict = verify_sigstore_bundle((folder / name).read_bytes(), artifact_path.read_bytes(), policy, TrustedKeys())
        assert verdict.status == INVALID, (name, identity)
        assert verdict.error


def test_sigstore_dsse_bundle_gives_statement_facts() -> None:
    folder = shared_data(*SIGSTORE)
    identity = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
                "extremely-dangerous-oidc-beacon.yml@refs/heads/main")
    policy = SigstorePolicy(staging_policy().trusted_root, identity, "https://token.actions.githubusercontent.com")
    verdict = verify_sigstore_bundle((folder / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes(), None,
                                     policy, TrustedKeys())
    assert verdict.status == SIGNED, verdict.error
    assert verdict.payload_type == IN_TOTO_PAYLOAD_TYPE and verdict.facts.predicate_type and verdict.facts.subjects


def test_cosign_blob_signatures_verify_with_the_certificate_key() -> None:
    folder = shared_data(*SIGSTORE)
    cert_key = x509.load_pem_x509_certificate((folder / "a.txt.crt").read_bytes()).public_key()
    trusted = TrustedKeys([load_trusted_key("a.pem", cert_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))])
    good = verify_detached((folder / "a.txt").read_bytes(), (folder / "a.txt.sig").read_bytes(), trusted)
    assert good.status == SIGNED and good.format == "blob"
    bad = verify_detached((folder / "bad.txt").read_bytes(), (folder / "bad.txt.sig").read_bytes(), trusted)
    assert bad.status == INVALID
    # the certificate itself (PEM) may be pinned as a trusted key file
    pinned_cert = TrustedKeys([load_trusted_key("a.crt", (folder / "a.txt.crt").read_bytes())])
    assert verify_detached((folder / "a.txt").read_bytes(), (folder / "a.txt.sig").read_bytes(), pinned_cert).status == SIGNED
    assert verify_detached((folder / "a.txt").read_bytes(), (folder / "a.txt.sig").read_bytes(), keys(P256)).status == INVALID


# -- retention --------------------------------------------------------------------------

PUT = datetime(2026, 11, 20, 14, 10, 30, tzinfo=timezone.utc)
AS_OF = datetime(2026, 11, 25, tzinfo=timezone.utc)


@pytest.mark.parametrize("mode,until,ok,days,reason", [
    ("COMPLIANCE", "2033-11-20T14:10:30Z", True, 2557, None),
    ("GOVERNANCE", "2027-11-20T14:10:30Z", True, 365, None),
    ("COMPLIANCE", "2027-11-19T14:10:30Z", False, 364, "shorter than the minimum"),
    ("COMPLIANCE", "2026-11-21T00:00:00Z", False, 0, "expired"),
    (None, None, False, None, "no Object Lock"),
    ("COMPLIANCE", None, False, None, "no Object Lock"),
])
def test_retention(mode: str | None, until: str | None, ok: bool, days: int | None, reason: str | None) -> None:
    result = assess_retention(mode=mode, retain_until=until, put_time=PUT, as_of=AS_OF, minimum_days=365)
    assert (result.ok, result.retention_days) == (ok, days)
    assert (reason is None and result.reason is None) or (reason and reason in (result.reason or ""))
    assert result.measured_from == "put_time"


def test_retention_without_put_time_is_measured_from_as_of() -> None:
    result = assess_retention(mode="COMPLIANCE", retain_until="2027-11-25T00:00:00Z", put_time=None, as_of=AS_OF,
                              minimum_days=365)
    assert result.ok and result.retention_days == 365 and result.measured_from == "as_of"
    with pytest.raises(ValueError):
        assess_retention(mode="COMPLIANCE", retain_until=None, put_time=None, as_of=datetime(2026, 1, 1), minimum_days=1)


def public_key_bundle(artifact: bytes, signer: object, *, dsse_payload: bytes | None = None) -> bytes:
    material = {"publicKey": {"hint": "ci-key"}, "tlogEntries": []}
    doc: dict[str, object] = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                              "verificationMaterial": material}
    if dsse_payload is not None:
        doc["dsseEnvelope"] = json.loads(envelope(dsse_payload, signer=signer))
    else:
        sig = signer.sign(artifact, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        doc["messageSignature"] = {"messageDigest": {"algorithm": "SHA2_256",
                                                     "digest": base64.b64encode(hashlib.sha256(artifact).digest()).decode()},
                                   "signature": base64.b64encode(sig).decode()}
    return json.dumps(doc).encode()


def test_sigstore_public_key_bundles_check_the_pinned_keys() -> None:
    artifact = b"release.tar.gz bytes"
    trusted = keys(P256)
    good = verify_sigstore_bundle(public_key_bundle(artifact, P256), artifact, SigstorePolicy(), trusted)
    assert good.status == SIGNED and good.details["tlog_verified"] is False
    assert good.facts.subjects[0].digest == "sha256:" + hashlib.sha256(artifact).hexdigest()
    assert verify_sigstore_bundle(public_key_bundle(artifact, OTHER), artifact, SigstorePolicy(), trusted).status == INVALID
    assert verify_sigstore_bundle(public_key_bundle(artifact, P256), artifact + b"!", SigstorePolicy(), trusted).status == INVALID
    assert verify_sigstore_bundle(public_key_bundle(artifact, P256), None, SigstorePolicy(), trusted).status == INVALID
    payload = json.dumps(statement()).encode()
    dsse = verify_sigstore_bundle(public_key_bundle(b"", P256, dsse_payload=payload), None, SigstorePolicy(), trusted)
    assert dsse.status == SIGNED and dsse.facts.job_id == "55"
    assert verify_sigstore_bundle(public_key_bundle(b"", OTHER, dsse_payload=payload), None, SigstorePolicy(),
                                  trusted).status == INVALID


@pytest.mark.parametrize("name,root,identity,issuer,with_artifact,version", [
    ("bundle.txt.sigstore", "staging", "a@tny.town", "https://github.com/login/oauth", True, "version=0.1"),
    ("bundle_v3_github.whl.sigstore", "prod",
     "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
     "https://token.actions.githubusercontent.com", False, "version=0.2"),
    ("bundle_v3.txt.sigstore", "staging", "william@yossarian.net", "https://github.com/login/oauth", True, "v0.3"),
    ("staging-rekor-v2.txt.sigstore.json", "staging", "jku@goto.fi", "https://github.com/login/oauth", True, "v0.3"),
])
def test_sigstore_bundle_versions_verify_offline(name: str, root: str, identity: str, issuer: str,
                                                 with_artifact: bool, version: str) -> None:
    folder = shared_data(*SIGSTORE)
    trusted_root = (folder / "trusted_root" / root / "trusted_root.json").read_bytes()
    artifact = (folder / name.replace(".sigstore.json", "").replace(".sigstore", "")).read_bytes() if with_artifact else None
    verdict = verify_sigstore_bundle((folder / name).read_bytes(), artifact, SigstorePolicy(trusted_root, identity, issuer),
                                     TrustedKeys())
    assert verdict.status == SIGNED, verdict.error
    assert version in verdict.details["media_type"] and verdict.details["artifact_present"] is with_artifact
    # the same bundle under the other trust root fails
    other = "prod" if root == "staging" else "staging"
    other_root = (folder / "trusted_root" / other / "trusted_root.json").read_bytes()
    assert verify_sigstore_bundle((folder / name).read_bytes(), artifact, SigstorePolicy(other_root, identity, issuer),
                                  TrustedKeys()).status == INVALID


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                     max_leaves=20)
_shaped = st.fixed_dictionaries({"payload": st.text(max_size=40), "payloadType": _json, "signatures": _json}) | \
    st.fixed_dictionaries({"mediaType": st.just("application/vnd.dev.sigstore.bundle.v0.3+json"),
                           "verificationMaterial": _json, "messageSignature": _json}) | \
    st.fixed_dictionaries({"_type": st.just("https://in-toto.io/Statement/v1"), "subject": _json, "predicate": _json}) | \
    st.fixed_dictionaries({"git": _json, "build": _json, "signer": _json})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_json | _shaped, sig=st.none() | st.binary(max_size=80))
def test_untrusted_input_is_never_signed_and_never_crashes(doc: object, sig: bytes | None) -> None:
    data = json.dumps(doc).encode()
    try:
        verdict = verify_attestation(data, signature_object=sig, artifact=None, keys=keys(P256), policy=SigstorePolicy())
    except NotAnAttestation:
        return
    except Exception as exc:  # only the malformed-input family may escape
        from collector.errors import MalformedInput
        assert isinstance(exc, MalformedInput), repr(exc)
        return
    assert verdict.status != SIGNED
