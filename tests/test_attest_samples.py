"""The attestation samples from a local folder, the public examples, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.attestation_verify import SigstorePolicy, TrustedKeys, load_trusted_key
from collector.cli import app
from collector.object_source import LocalFolderProvider
from samples.make import story
from tests.attest_support import SAMPLE_BUCKET, SAMPLE_KEYS, SAMPLE_OUTCOMES, collect, new_ledger
from tests.conftest import shared_data


def test_samples_generator_is_reproducible(tmp_path: Path) -> None:
    from samples.make import attestations as maker

    built = maker.build()
    for name, data in built.items():
        assert (SAMPLE_BUCKET / "attestations" / name).read_bytes() == data, name
    assert set(SAMPLE_OUTCOMES) <= set(built)


def test_each_sample_outcome_from_folder(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path / "l.db")
    run = collect(ledger, LocalFolderProvider(SAMPLE_BUCKET), str(SAMPLE_BUCKET))
    for name, kind in SAMPLE_OUTCOMES.items():
        key = "attestations/" + name
        if kind is None:
            assert key not in run.events
            assert any(q.location.endswith(key) and q.reason.startswith("not an attestation") for q in run.quarantined)
        else:
            assert run.events[key]["kind"] == kind, (name, run.events[key]["attrs"]["verification_error"])
            if kind != "attestation.signed":
                assert run.events[key]["outcome"]["status"] == "failure"
                assert run.events[key]["attrs"]["verification_error"]
    assert run.summary.balanced
    assert (run.summary.read, run.summary.appended, run.summary.quarantined) == (13, 12, 1)
    assert run.tally.listed == run.tally.records + run.tally.companions == 17
    assert (run.tally.signed, run.tally.unsigned, run.tally.invalid, run.tally.retention_findings) == (5, 2, 5, 1)

    provenance = run.events["attestations/31415926535.provenance.dsse.json"]
    assert provenance["correlation"] == {
        "job_id": str(story.JOB_ID), "run_id": str(story.RUN_ID), "repository": story.REPOSITORY,
        "git_sha": story.GIT_SHA, "artifact_digest": story.ARTIFACT_DIGEST}
    attrs = provenance["attrs"]
    assert attrs["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert attrs["subjects"] == [{"name": story.ARTIFACT_NAME, "digest": story.ARTIFACT_DIGEST}]
    assert attrs["builder"].startswith(f"https://github.com/{story.REPOSITORY}/")
    assert (attrs["object_lock_mode"], attrs["sse"], attrs["retention_ok"]) == ("COMPLIANCE", "aws:kms", True)
    assert attrs["kms_key_id"].startswith("arn:aws-us-gov:kms:") and attrs["version_id"] and attrs["etag"]
    assert provenance["time"] == story.T_ATTESTATION_PUT

    seed = run.events[story.ATTESTATION_KEY]
    assert seed["kind"] == "attestation.signed" and seed["actor"] == story.SIGNER
    assert seed["correlation"] == {"job_id": str(story.JOB_ID), "git_sha": story.GIT_SHA}

    assert "unknown key" in run.events["attestations/attestation.unknown-key.dsse.json"]["attrs"]["verification_error"]
    assert "bad signature" in run.events["attestations/attestation.bad-sig.dsse.json"]["attrs"]["verification_error"]
    wrong = run.events["attestations/attestation.wrong-payload-type.dsse.json"]["attrs"]
    assert wrong["signature_valid"] is True and "payload type mismatch" in wrong["verification_error"]


def test_retention_too_short_is_a_finding(tmp_path: Path) -> None:
    run = collect(new_ledger(tmp_path / "l.db"), LocalFolderProvider(SAMPLE_BUCKET), str(SAMPLE_BUCKET))
    short = run.events["attestations/attestation.short-retention.dsse.json"]
    assert short["kind"] == "attestation.signed"
    assert short["attrs"]["retention_ok"] is False and short["attrs"]["retention_days"] == 30
    assert "shorter than the minimum 365" in short["attrs"]["retention_reason"]
    # the minimum is configurable: 30 days passes at --min-retention-days 30
    run30 = collect(new_ledger(tmp_path / "m.db"), LocalFolderProvider(SAMPLE_BUCKET), str(SAMPLE_BUCKET), min_days=30)
    assert run30.events["attestations/attestation.short-retention.dsse.json"]["attrs"]["retention_ok"] is True


def test_idempotent_rerun_adds_nothing(tmp_path: Path) -> None:
    ledger = new_ledger(tmp_path / "l.db")
    first = collect(ledger, LocalFolderProvider(SAMPLE_BUCKET), str(SAMPLE_BUCKET))
    second = collect(ledger, LocalFolderProvider(SAMPLE_BUCKET), str(SAMPLE_BUCKET))
    assert second.summary.appended == 0 and second.summary.duplicates == first.summary.appended
    assert second.summary.balanced and len(second.entries) == len(first.entries)


def test_changed_bytes_are_a_new_entry_and_orphans_are_quarantined(tmp_path: Path) -> None:
    folder = tmp_path / "bucket"
    shutil.copytree(SAMPLE_BUCKET, folder)
    ledger = new_ledger(tmp_path / "l.db")
    collect(ledger, LocalFolderProvider(folder), str(folder))
    (folder / "attestations" / "attestation.unsigned.json").write_bytes(b'{"git": "x", "build": "2", "signer": "s"}')
    (folder / "attestations" / "lonely.json.sig").write_bytes(b"AAAA")
    (folder / "attestations" / "notes.txt").write_bytes(b"hello")
    (folder / "attestations" / "weird.json").write_bytes(b'{"a": 1}')
    (folder / "attestations" / "dup-keys.json").write_bytes(b'{"git": "a", "git": "b"}')
    run = collect(ledger, LocalFolderProvider(folder), str(folder))
    assert run.summary.appended == 1 and run.summary.balanced
    reasons = {q.location.rsplit("/", 1)[-1]: q.reason for q in run.quarantined}
    assert reasons["lonely.json.sig"] == "detached signature without its signed object"
    assert reasons["notes.txt"].startswith("not an attestation: malformed JSON")
    assert reasons["weird.json"].startswith("not an attestation: JSON that is no DSSE")
    assert "duplicate key" in reasons["dup-keys.json"]


def test_cli_collect_attestations_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    ledger = tmp_path / "cli.db"
    assert runner.invoke(app, ["--ledger", str(ledger), "init", "--origin", "t/a", "--no-key"]).exit_code == 0
    base = ["--ledger", str(ledger), "--as-of", "2026-11-25T00:00:00Z", "--format", "json", "collect", "attestations"]
    result = runner.invoke(app, base + [str(SAMPLE_BUCKET), "--trusted-keys", str(SAMPLE_KEYS)])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "fedledger.collect.attestations" and doc["balanced"] and not doc["ok"]
    assert (doc["appended"], doc["quarantined"], doc["objects"]["signed"]) == (12, 1, 5)
    # only the good objects: exit 0
    good = tmp_path / "good" / "attestations"
    good.mkdir(parents=True)
    for name in ("31415926535.json", "31415926535.json.sig", "31415926535.json.meta.json",
                 "31415926535.provenance.dsse.json", "31415926535.provenance.dsse.json.meta.json"):
        shutil.copy(SAMPLE_BUCKET / "attestations" / name, good / name)
    result = runner.invoke(app, base + [str(good.parent), "--trusted-keys", str(SAMPLE_KEYS)])
    assert result.exit_code == 0, result.output
    # usage and unavailable sources
    assert runner.invoke(app, base + [str(tmp_path / "missing")]).exit_code == 3
    bad_keys = tmp_path / "bad-keys"
    bad_keys.mkdir()
    (bad_keys / "x.pem").write_text("not a key")
    assert runner.invoke(app, base + [str(good.parent), "--trusted-keys", str(bad_keys)]).exit_code == 2
    assert runner.invoke(app, base + [str(good.parent), "--certificate-oidc-issuer", "https://x"]).exit_code == 2


def test_public_examples_folder_every_object_accounted(tmp_path: Path) -> None:
    folder = shared_data("attestations", "sigstore_python_assets")
    root = (folder / "trusted_root" / "staging" / "trusted_root.json").read_bytes()
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_key = x509.load_pem_x509_certificate((folder / "a.txt.crt").read_bytes()).public_key()
    keys = TrustedKeys([load_trusted_key("a.pem", cert_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))])
    policy = SigstorePolicy(root, "william@yossarian.net", "https://github.com/login/oauth")
    ledger = new_ledger(tmp_path / "l.db")
    run = collect(ledger, LocalFolderProvider(folder), str(folder), keys=keys, policy=policy)
    assert run.summary.balanced and run.tally.listed == run.tally.records + run.tally.companions
    kinds = {k: e["kind"] for k, e in run.events.items()}
    assert kinds["bundle_v3.txt.sigstore"] == "attestation.signed"
    assert kinds["bundle_v3_alt.txt.sigstore"] == "attestation.signed"
    for must_fail in ("bundle_invalid_version.txt.sigstore", "bundle_no_cert_v1.txt.sigstore",
                      "bundle_no_log_entry.txt.sigstore", "bundle_v3_no_signed_time.txt.sigstore.json",
                      "bundle_cve_2022_36056.txt.sigstore"):
        assert kinds[must_fail] == "attestation.invalid", must_fail
    assert kinds["a.txt"] == "attestation.signed" and kinds["bad.txt"] == "attestation.invalid"
    # the trusted-root files and the SLSA predicates are JSON but no attestations: quarantined with the reason
    reasons = {q.location.rsplit("/", 1)[-1]: q.reason for q in run.quarantined}
    assert reasons["trusted_root.json"].startswith("not an attestation")
    assert not any(k.endswith((".sig", ".crt")) for k in run.events)
    second = collect(ledger, LocalFolderProvider(folder), str(folder), keys=keys, policy=policy)
    assert second.summary.appended == 0


def test_public_dsse_vector_folder(tmp_path: Path) -> None:
    folder = shared_data("attestations", "dsse_spec")
    keys = TrustedKeys([load_trusted_key("v.pem", (folder / "dsse_spec_test_vector.pub.pem").read_bytes())])
    run = collect(new_ledger(tmp_path / "l.db"), LocalFolderProvider(folder), str(folder), keys=keys)
    event = run.events["dsse_spec_test_vector.envelope.json"]
    assert event["kind"] == "attestation.invalid" and event["attrs"]["signature_valid"] is True
    reasons = {q.location.rsplit("/", 1)[-1]: q.reason for q in run.quarantined}
    assert reasons == {"dsse_spec_test_vector.json": pytest.approx(reasons["dsse_spec_test_vector.json"]),
                       "dsse_spec_test_vector.pub.pem": "certificate or key file, not an attestation"}
    assert run.summary.balanced and run.summary.read == 3


@pytest.mark.parametrize("sidecar,reason", [
    (b"{not json", "bad object metadata: "),
    (b'{"retain_until": 5}', "bad object metadata: retain_until is not a string"),
    (b'{"retain_until": "soon"}', "bad object metadata: "),
    (b'{"last_modified": "2026-01-01"}', "bad object metadata: "),
    (b'{"object_lock_mode": ["COMPLIANCE"]}', "bad object metadata: object_lock_mode is not a string"),
])
def test_bad_sidecar_metadata_is_quarantined(tmp_path: Path, sidecar: bytes, reason: str) -> None:
    folder = tmp_path / "bucket"
    folder.mkdir()
    shutil.copy(SAMPLE_BUCKET / "attestations" / "31415926535.provenance.dsse.json", folder / "p.dsse.json")
    (folder / "p.dsse.json.meta.json").write_bytes(sidecar)
    run = collect(new_ledger(tmp_path / "l.db"), LocalFolderProvider(folder), str(folder))
    assert run.summary.quarantined == 1 and run.summary.balanced
    assert run.quarantined[0].reason.startswith(reason)
