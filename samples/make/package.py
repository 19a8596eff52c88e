"""Generate samples/package/: a small valid bundle and hostile or broken variants for verify-bundle.

    python -m samples.make.package

Fixed key (bench.synthetic.TEST_KEY, a test-only constant) and fixed times. The
README in samples/package/ says what each file is and what verify-bundle must say.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.synthetic import ORIGIN, TEST_KEY, build_assessment, build_ledger, signer
from bundler.bundle import build_bundle, manifest_note_body, write_archive
from collector.ledger import Ledger
from collector.signing import FileSigner

OUT = Path(__file__).resolve().parent.parent / "package"


def _members(folder: Path) -> list[tuple[str, bytes]]:
    return [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()]


def _zip(target: Path, members: list[tuple[str, bytes]], extra: list[tuple[zipfile.ZipInfo | str, bytes]] = ()) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                zf.writestr(name, data)
            for info, data in extra:
                zf.writestr(info, data)


def _tar(target: Path, members: list[tuple[str, bytes]], extra: list[tarfile.TarInfo] = ()) -> None:
    with tarfile.open(target, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1795000000
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            data = b"x" if info.type == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.name != "README.md":
            old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        world = build_ledger(work / "l.db", entries=240, jobs=2)
        assessment = build_assessment(world, controls=2)
        with Ledger.open(world.path) as ledger:
            build_bundle(ledger, assessment, work / "bundle", signer(), system="Sample system", workers=1)
        folder = work / "bundle"
        good = _members(folder)
        write_archive(folder, "zip")
        shutil.copy(folder.with_name("bundle.zip"), OUT / "bundle.valid.zip")

        swapped = dict(good)
        a, b = "controls/AU-2.pdf", "controls/AU-3.pdf"
        swapped[a], swapped[b] = swapped[b], swapped[a]
        _zip(OUT / "bundle.swapped-pdfs.zip", sorted(swapped.items()))

        flipped = dict(good)
        data = bytearray(flipped["ledger/entries.jsonl"])
        data[len(data) // 2] ^= 1
        flipped["ledger/entries.jsonl"] = bytes(data)
        _zip(OUT / "bundle.tampered-entry.zip", sorted(flipped.items()))

        removed = [(n, d) for n, d in good if n != "controls/AU-3.csv"]
        _zip(OUT / "bundle.removed-csv.zip", removed)

        _zip(OUT / "bundle.zip-slip.zip", good, [("../../evil.sh", b"echo pwned\n")])
        link = zipfile.ZipInfo("controls/AU-2-link.csv")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        _zip(OUT / "bundle.symlink.zip", good, [(link, b"/etc/passwd")])
        _zip(OUT / "bundle.duplicate-names.zip", good, [("index.html", b"<p>a second index</p>")])
        _zip(OUT / "bundle.zip-bomb.zip", [("controls/zeros.csv", b"\0" * (200 << 20))])
        with zipfile.ZipFile(OUT / "bundle.too-many-members.zip", "w", zipfile.ZIP_STORED) as zf:
            for i in range(10_001):
                zf.writestr(f"m/{i}", b"")

        absolute = tarfile.TarInfo("/tmp/fedledger-absolute-path-sample")
        symlink = tarfile.TarInfo("controls/passwd.csv")
        symlink.type, symlink.linkname = tarfile.SYMTYPE, "/etc/passwd"
        device = tarfile.TarInfo("controls/null")
        device.type = tarfile.CHRTYPE
        _tar(OUT / "bundle.absolute-path.tar.gz", good, [absolute])
        _tar(OUT / "bundle.symlink.tar.gz", good, [symlink])
        _tar(OUT / "bundle.device.tar.gz", good, [device])

        # Re-signed by a key that is not the ledger's: the manifest is self-consistent.
        other = FileSigner(ORIGIN, ec.derive_private_key(0xBAD5EED, ec.SECP256R1()))
        import hashlib

        manifest = dict(good)["MANIFEST.json"]
        note = other.sign_note(manifest_note_body(ORIGIN, hashlib.sha256(manifest).hexdigest()))
        resigned = dict(good)
        resigned["MANIFEST.sig"] = note.encode()
        _zip(OUT / "bundle.signed-by-other-key.zip", sorted(resigned.items()))

    pem = TEST_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (OUT / "ledger.pub").write_bytes(pem)
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}")


if __name__ == "__main__":
    main()
