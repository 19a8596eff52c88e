"""A bundle signed by an AWS KMS key (moto's server over HTTP), verified with the KMS public key."""

from __future__ import annotations

from pathlib import Path

import boto3
from cryptography.hazmat.primitives import serialization

from bench.synthetic import ORIGIN, build_assessment, build_ledger
from bundler.bundle import build_bundle
from bundler.bundle_verify import verify_bundle
from collector.ledger import Ledger
from collector.signing import kms_signer


def test_bundle_signed_with_kms_verifies_with_the_kms_public_key(moto_endpoint: str, tmp_path: Path) -> None:
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-gov-west-1")
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signer = kms_signer(ORIGIN, key_id, endpoint_url=moto_endpoint, region="us-gov-west-1")
    world = build_ledger(tmp_path / "l.db", entries=90, jobs=2, sign_with=signer)
    assessment = build_assessment(world, controls=1)
    with Ledger.open(world.path) as ledger:
        build_bundle(ledger, assessment, tmp_path / "bundle", signer, workers=1)
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    pem = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    report = verify_bundle(tmp_path / "bundle", trusted_keys=[pem], origin=ORIGIN)
    assert report.ok, report.lines()
    assert report.pinned
