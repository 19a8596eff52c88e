"""Reproducible bundles: the same ledger and ``--as-of`` give the same bytes.

An assessor rebuilds the bundle and compares it with the one delivered (docs/bundle.md,
"Reproducing a bundle"). With a key file (Ed25519, or ECDSA P-256 signed deterministically per
RFC 6979) the folder and the archive are identical byte for byte; only a KMS key's signature
differs between runs (KMS randomizes ECDSA), which the signer stand-in below shows. The two builds below run with different
``SOURCE_DATE_EPOCH`` values and worker counts, standing for two machines at two times.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bench.synthetic import ORIGIN, build_assessment, build_ledger, signer
from bundler.bundle import build_bundle, write_archive
from bundler.bundle_verify import verify_bundle
from collector.checkpoint import NoteVerifier, split_note
from collector.ledger import Ledger
from collector.signing import FileSigner, NoteSigner

# Fixed Ed25519 test key (never a real key).
ED25519_SIGNER = FileSigner(ORIGIN, ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def pem(sign: NoteSigner) -> str:
    return sign.verifier.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def bundle_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sign: NoteSigner, archive: str) -> tuple[Path, Path]:
    world = build_ledger(tmp_path / "l.db", entries=120, jobs=2, sign_with=sign)
    assessment = build_assessment(world, controls=3)
    out = []
    for run, epoch, workers in (("one", 1_000_000_000, 2), ("two", 1_900_000_000, 1)):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))  # a different build clock each time
        with Ledger.open(world.path) as ledger:
            build_bundle(ledger, assessment, tmp_path / run / "bundle", sign, archive=archive, workers=workers)
        out.append(tmp_path / run / "bundle")
    return out[0], out[1]


class RandomizedEcdsaSigner(NoteSigner):
    """Signs as AWS KMS does: ECDSA P-256 with a fresh random nonce each time."""

    def __init__(self, inner: FileSigner) -> None:
        key = inner._key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.name, self._key, self._verifier = inner.name, key, inner.verifier

    @property
    def verifier(self) -> NoteVerifier:
        return self._verifier

    def sign_bytes(self, message: bytes) -> bytes:
        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))


def test_ecdsa_key_file_bundles_and_their_archives_are_byte_identical(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = bundle_twice(tmp_path, monkeypatch, signer(), "zip")
    assert contents(one) == contents(two)  # RFC 6979: the same key and manifest, the same signature
    assert one.with_name("bundle.zip").read_bytes() == two.with_name("bundle.zip").read_bytes()
    assert verify_bundle(one, trusted_keys=[pem(signer())], origin=ORIGIN).ok


def test_randomized_ecdsa_bundles_differ_only_in_the_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sign = RandomizedEcdsaSigner(signer())
    one, two = bundle_twice(tmp_path, monkeypatch, sign, "zip")
    a, b = contents(one), contents(two)
    assert a.keys() == b.keys()
    differ = sorted(name for name in a if a[name] != b[name])
    assert differ == ["MANIFEST.sig"]  # the signatures are randomized; what they sign is not
    assert split_note(a["MANIFEST.sig"].decode())[0] == split_note(b["MANIFEST.sig"].decode())[0]
    for folder in (one, two):
        assert verify_bundle(folder, trusted_keys=[pem(sign)], origin=ORIGIN).ok


def test_ed25519_bundles_and_their_archives_are_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = bundle_twice(tmp_path, monkeypatch, ED25519_SIGNER, "tar.gz")
    assert contents(one) == contents(two)
    assert one.with_name("bundle.tar.gz").read_bytes() == two.with_name("bundle.tar.gz").read_bytes()
    report = verify_bundle(one.with_name("bundle.tar.gz"), trusted_keys=[pem(ED25519_SIGNER)], origin=ORIGIN)
    assert report.ok, report.lines()


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_bytes_do_not_depend_on_file_times_or_permissions(tmp_path: Path, kind: str) -> None:
    one = tmp_path / "one" / "bundle"
    (one / "controls").mkdir(parents=True)
    (one / "MANIFEST.json").write_bytes(b"{}")
    (one / "controls" / "AU-2.csv").write_bytes(b"seq\n1\n")
    (one / "index.html").write_bytes(b"<p>x</p>" * 100)
    two = tmp_path / "two" / "bundle"
    shutil.copytree(one, two)
    for i, path in enumerate(sorted(p for p in two.rglob("*") if p.is_file())):
        os.utime(path, (1_234_567_890 + i, 1_234_567_890 + i))
        path.chmod(0o600 if i % 2 else 0o664)
    first, second = write_archive(one, kind, mtime=1_700_000_000), write_archive(two, kind, mtime=1_700_000_000)
    assert first.read_bytes() == second.read_bytes()
    if kind == "tar.gz":
        with tarfile.open(first) as tar:
            members = tar.getmembers()
            assert [m.name for m in members] == ["MANIFEST.json", "controls/AU-2.csv", "index.html"]
            assert {(m.mtime, m.mode, m.uid, m.gid) for m in members} == {(1_700_000_000, 0o644, 0, 0)}
    else:
        with zipfile.ZipFile(first) as zf:
            infos = zf.infolist()
            assert [i.filename for i in infos] == ["MANIFEST.json", "controls/AU-2.csv", "index.html"]
            assert {i.date_time for i in infos} == {(2023, 11, 14, 22, 13, 20)}
            assert {(i.external_attr >> 16) & 0o777 for i in infos} == {0o644}
