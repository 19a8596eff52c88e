"""Bundle build and verify-bundle: a golden bundle, then a tamper matrix and hostile archives.

Each tamper case changes one thing and asserts the failure names the file. "Resealed"
cases re-sign the manifest with the real key after the change, to prove the deeper
checks (proofs, citations, OSCAL hashes, the ledger slice) catch it on their own.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import warnings
import zipfile
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.synthetic import ORIGIN, build_assessment, build_ledger, signer
from bundler.archive_reader import ReadLimits
from bundler.bundle import build_bundle, manifest_note_body
from bundler.bundle_verify import verify_bundle
from collector.canonical import canonical_bytes
from collector.errors import UsageError
from collector.ledger import Ledger
from collector.signing import FileSigner


def public_pem() -> str:
    return signer().verifier.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def verify(path: Path, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("trusted_keys", [public_pem()])
    kwargs.setdefault("origin", ORIGIN)
    return verify_bundle(path, **kwargs)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("golden")
    world = build_ledger(folder / "l.db", entries=600, jobs=3)
    assessment = build_assessment(world, controls=4)
    with Ledger.open(world.path) as ledger:
        result = build_bundle(ledger, assessment, folder / "bundle", signer(), archive="tar.gz", workers=2)
    assert result.archive is not None
    shutil.copy(result.archive, folder / "golden.tar.gz")
    from bundler.bundle import write_archive

    write_archive(folder / "bundle", "zip")
    return folder / "bundle"


@pytest.fixture()
def copy(golden: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(golden, target)
    return target


def reseal(folder: Path, *, sign_with: FileSigner | None = None) -> None:
    files = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(folder.rglob("*"))
             if p.is_file() and p.relative_to(folder).as_posix() not in ("MANIFEST.json", "MANIFEST.sig")}
    manifest = orjson.loads((folder / "MANIFEST.json").read_bytes())
    manifest["files"] = files
    data = canonical_bytes(manifest)
    (folder / "MANIFEST.json").write_bytes(data)
    note = (sign_with or signer()).sign_note(manifest_note_body(ORIGIN, hashlib.sha256(data).hexdigest()))
    (folder / "MANIFEST.sig").write_text(note, encoding="utf-8")


def flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def wheres(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.where or "" for f in report.failures}


def codes(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.code for f in report.failures}


# -- the golden bundle ---------------------------------------------------------------

def test_golden_bundle_verifies_as_folder_tar_and_zip(golden: Path) -> None:
    for target in (golden, golden.parent / "golden.tar.gz", golden.with_name("bundle.zip")):
        report = verify(target)
        assert report.ok, [f.line() for f in report.failures]
        assert report.pinned and report.proofs_checked > 0 and report.entries_checked == 600
    names = {p.relative_to(golden).as_posix() for p in golden.rglob("*") if p.is_file()}
    for required in ("index.html", "index.pdf", "controls/IA-5.pdf", "controls/IA-5.csv", "controls/IA-5.html",
                     "oscal/assessment-results.json", "proofs/inclusion.jsonl", "ledger/entries.jsonl",
                     "MANIFEST.json", "MANIFEST.sig"):
        assert required in names


def test_unpinned_verification_says_so(golden: Path) -> None:
    assert "not-pinned" in codes(verify_bundle(golden))  # fails closed unless asked for
    report = verify_bundle(golden, unpinned=True)
    assert report.ok and not report.pinned
    assert any("NOT pinned" in line for line in report.valid)


def test_csv_holds_every_supporting_entry(golden: Path) -> None:
    rows = (golden / "controls" / "AU-2.csv").read_text(encoding="utf-8").splitlines()
    manifest = orjson.loads((golden / "MANIFEST.json").read_bytes())
    assert rows[0].startswith("seq,leaf_hash,time,kind")
    assert len(rows) - 1 > 100 and manifest["checkpoint"]["size"] == 600


def test_wrong_key_and_wrong_origin(golden: Path) -> None:
    other = ec.derive_private_key(12345, ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert "unknown-signer" in codes(verify(golden, trusted_keys=[other]))
    assert "wrong-origin" in codes(verify(golden, origin="example.gov/other"))


def test_bundle_refuses_a_used_folder_and_covers_its_checkpoint_only(tmp_path: Path) -> None:
    world = build_ledger(tmp_path / "l.db", entries=100, jobs=2)
    assessment = build_assessment(world, controls=2)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with Ledger.open(world.path) as ledger:
        with pytest.raises(UsageError):
            build_bundle(ledger, assessment, tmp_path / "used", signer())
        from collector.ledger import NewEntry

        ledger.append([NewEntry({"kind": "ci", "id": "x", "location": "x"}, "2026-11-24T00:00:00Z",
                                {"time": "2026-11-24T00:00:00Z", "kind": "ci.job_started"}, "0" * 64, 1)])
        # An entry after the newest checkpoint (a run collecting meanwhile): the bundle covers exactly
        # the checkpointed entries, verifies, and its transcript says one more came after.
        result = build_bundle(ledger, assessment, tmp_path / "new", signer())
        assert result.checkpoint_size == 100 and ledger.size == 101
    assert verify(tmp_path / "new").ok
    index = (tmp_path / "new" / "index.html").read_text()
    assert "Entries after the checkpoint" in index and "1 entry appended after the checkpoint at size 100" in index


# -- tamper matrix: one changed byte in each kind of file --------------------------------

TAMPERED_FILES = ["index.html", "index.pdf", "controls/IA-5.pdf", "controls/IA-5.html", "controls/IA-5.csv",
                  "oscal/assessment-results.json", "proofs/inclusion.jsonl", "ledger/entries.jsonl",
                  "ledger/checkpoints/000001.note", "ledger/MANIFEST.json", "MANIFEST.json", "MANIFEST.sig"]


@pytest.mark.parametrize("name", TAMPERED_FILES)
def test_a_flipped_byte_in_any_file_is_caught_and_named(copy: Path, name: str) -> None:
    keys = sorted((copy / "ledger" / "keys").iterdir())
    flip(copy / name, 0.5 if name != "MANIFEST.sig" else 0.9)
    report = verify(copy)
    assert not report.ok
    assert name in wheres(report) or {"MANIFEST.json", "MANIFEST.sig"} & wheres(report), report.lines()
    assert keys  # the bundle's own keys were not needed: the key was pinned


def test_a_flipped_byte_in_the_bundled_public_key_is_caught(copy: Path) -> None:
    key = sorted((copy / "ledger" / "keys").iterdir())[0]
    data = key.read_text().replace("A", "B", 1)
    key.write_text(data)
    report = verify(copy)
    assert f"ledger/keys/{key.name}" in wheres(report)


def test_swapped_pdfs(copy: Path) -> None:
    a, b = copy / "controls" / "AU-2.pdf", copy / "controls" / "IA-5.pdf"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    report = verify(copy)
    assert {"controls/AU-2.pdf", "controls/IA-5.pdf"} <= wheres(report)


def test_removed_and_added_files(copy: Path) -> None:
    (copy / "controls" / "AU-3.pdf").unlink()
    (copy / "controls" / "extra.html").write_text("<p>not in the manifest</p>")
    report = verify(copy)
    assert {"file-missing", "file-unlisted"} <= codes(report)
    assert {"controls/AU-3.pdf", "controls/extra.html"} <= wheres(report)


def test_folder_with_a_symlink_is_rejected(copy: Path) -> None:
    target = copy / "controls" / "AU-2.csv"
    target.unlink()
    target.symlink_to("/etc/passwd")
    report = verify(copy)
    assert "unsafe-member" in codes(report) and "controls/AU-2.csv" in wheres(report)


# -- resealed: the signature is good, the deeper checks must still fail -----------------------

def test_resealed_bad_proof(copy: Path) -> None:
    lines = (copy / "proofs" / "inclusion.jsonl").read_bytes().split(b"\n")
    doc = orjson.loads(lines[3])
    doc["path"][0] = "00" * 32
    lines[3] = orjson.dumps(doc)
    (copy / "proofs" / "inclusion.jsonl").write_bytes(b"\n".join(lines))
    reseal(copy)
    report = verify(copy)
    assert "proof-invalid" in codes(report) and "proofs/inclusion.jsonl:4" in wheres(report)
    assert "citation-unproven" in codes(report)  # the CSVs cite that entry


def test_resealed_csv_citing_a_wrong_leaf(copy: Path) -> None:
    path = copy / "controls" / "IA-5.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    cells = lines[1].split(",")
    cells[1] = "f" * 64
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines), encoding="utf-8")
    reseal(copy)
    report = verify(copy)
    assert "citation-invalid" in codes(report) and "controls/IA-5.csv:2" in wheres(report)


def test_resealed_oscal_with_a_wrong_evidence_hash(copy: Path) -> None:
    path = copy / "oscal" / "assessment-results.json"
    doc = orjson.loads(path.read_bytes())
    doc["assessment-results"]["back-matter"]["resources"][0]["rlinks"][0]["hashes"][0]["value"] = "0" * 64
    path.write_bytes(orjson.dumps(doc))
    reseal(copy)
    report = verify(copy)
    assert "oscal-evidence" in codes(report) and "oscal/assessment-results.json" in wheres(report)


def test_resealed_ledger_with_a_changed_entry(copy: Path) -> None:
    path = copy / "ledger" / "entries.jsonl"
    data = path.read_bytes().replace(b'"ci.job_started"', b'"ci.job_startee"', 1)
    path.write_bytes(data)
    export_manifest = orjson.loads((copy / "ledger" / "MANIFEST.json").read_bytes())
    export_manifest["files"]["entries.jsonl"] = hashlib.sha256(data).hexdigest()
    (copy / "ledger" / "MANIFEST.json").write_bytes(canonical_bytes(export_manifest))
    reseal(copy)
    report = verify(copy)
    assert not report.ok and any(w.startswith("ledger/") for w in wheres(report))


def test_resealed_by_another_key_is_not_trusted(copy: Path) -> None:
    flip(copy / "index.html")
    reseal(copy, sign_with=FileSigner(ORIGIN, ec.derive_private_key(777, ec.SECP256R1())))
    assert "unknown-signer" in codes(verify(copy))


# -- hostile archives ---------------------------------------------------------------------

def tar_with(golden: Path, target: Path, extra) -> Path:  # type: ignore[no-untyped-def]
    with tarfile.open(target, "w:gz") as tar:
        for p in sorted(golden.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(golden).as_posix())
        extra(tar)
    return target


def zip_with(golden: Path, target: Path, extra) -> Path:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names: that is the point
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(golden.rglob("*")):
                if p.is_file():
                    zf.write(p, arcname=p.relative_to(golden).as_posix())
            extra(zf)
    return target


def add_tar_member(tar: tarfile.TarFile, name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE,
                   link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("case", ["zip-slip", "absolute", "symlink", "hardlink", "device", "duplicate"])
def test_unsafe_tar_members_are_rejected_and_named(golden: Path, tmp_path: Path, case: str) -> None:
    outside = tmp_path / "pwned"
    adders = {
        "zip-slip": lambda t: add_tar_member(t, "../../pwned"),
        "absolute": lambda t: add_tar_member(t, str(outside)),
        "symlink": lambda t: add_tar_member(t, "controls/link.csv", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        "hardlink": lambda t: add_tar_member(t, "controls/hard.csv", kind=tarfile.LNKTYPE, link="index.html"),
        "device": lambda t: add_tar_member(t, "controls/dev", kind=tarfile.CHRTYPE),
        "duplicate": lambda t: add_tar_member(t, "index.html", b"<p>second copy</p>"),
    }
    archive = tar_with(golden, tmp_path / "bad.tar.gz", adders[case])
    report = verify(archive)
    assert not report.ok
    expected = {"duplicate": "duplicate-member"}.get(case, "unsafe-member")
    assert expected in codes(report), report.lines()
    assert not outside.exists()


@pytest.mark.parametrize("case", ["zip-slip", "absolute", "symlink", "duplicate"])
def test_unsafe_zip_members_are_rejected_and_named(golden: Path, tmp_path: Path, case: str) -> None:
    def symlink(zf: zipfile.ZipFile) -> None:
        info = zipfile.ZipInfo("controls/link.csv")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")

    adders = {
        "zip-slip": lambda zf: zf.writestr("../../pwned", "x"),
        "absolute": lambda zf: zf.writestr(str(tmp_path / "pwned"), "x"),
        "symlink": symlink,
        "duplicate": lambda zf: zf.writestr("index.html", "<p>second copy</p>"),
    }
    report = verify(zip_with(golden, tmp_path / "bad.zip", adders[case]))
    assert not report.ok
    assert ({"duplicate": "duplicate-member"}.get(case, "unsafe-member")) in codes(report), report.lines()
    assert not (tmp_path / "pwned").exists()


def test_zip_bomb_is_rejected_before_anything_is_read(golden: Path, tmp_path: Path) -> None:
    bomb = zip_with(golden, tmp_path / "bomb.zip", lambda zf: zf.writestr("controls/zeros.csv", b"\0" * (300 << 20)))
    report = verify(bomb)
    assert codes(report) == {"compression-bomb"}


def test_tar_bomb_is_stopped_while_reading(golden: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_tar_member(tar, "controls/zeros.csv", b"\0" * (120 << 20))
    report = verify(archive)
    assert "compression-bomb" in codes(report)


def test_more_than_ten_thousand_members_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for i in range(10_001):
            zf.writestr(f"controls/f{i}.csv", b"")
    report = verify(archive)
    assert codes(report) == {"too-many-members"}


def test_member_over_the_size_cap(golden: Path, tmp_path: Path) -> None:
    archive = tar_with(golden, tmp_path / "big.tar.gz", lambda t: add_tar_member(t, "controls/big.csv", b"y" * 5000))
    under_cap = verify(archive)
    assert codes(under_cap) == {"file-unlisted"}  # read, then caught as not in the manifest
    over_cap = verify(archive, limits=ReadLimits(max_member_bytes=4096))
    assert "unsafe-member" in codes(over_cap) and "controls/big.csv" in wheres(over_cap)


SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "package"
SAMPLE_OUTCOMES = {
    "bundle.valid.zip": set(),
    "bundle.swapped-pdfs.zip": {"file-modified"},
    "bundle.tampered-entry.zip": {"file-modified", "root-mismatch"},
    "bundle.removed-csv.zip": {"file-missing", "oscal-evidence"},
    "bundle.signed-by-other-key.zip": {"unknown-signer"},
    "bundle.zip-slip.zip": {"unsafe-member"},
    "bundle.symlink.zip": {"unsafe-member"},
    "bundle.duplicate-names.zip": {"duplicate-member"},
    "bundle.zip-bomb.zip": {"compression-bomb"},
    "bundle.too-many-members.zip": {"too-many-members"},
    "bundle.absolute-path.tar.gz": {"unsafe-member"},
    "bundle.symlink.tar.gz": {"unsafe-member"},
    "bundle.device.tar.gz": {"unsafe-member"},
}


@pytest.mark.parametrize("name", sorted(SAMPLE_OUTCOMES))
def test_committed_samples_give_their_documented_outcome(name: str) -> None:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip("run python -m samples.make.package")
    report = verify(path, trusted_keys=[(SAMPLES / "ledger.pub").read_text()])
    assert SAMPLE_OUTCOMES[name] <= codes(report) and (report.ok == (not SAMPLE_OUTCOMES[name])), report.lines()


def test_the_verifier_imports_no_aws_sdk_and_no_renderer() -> None:
    import subprocess
    import sys

    code = ("import sys, bundler.bundle_verify; "
            "print(sorted(m for m in ('boto3', 'botocore', 'weasyprint', 'pandas') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout.strip() == "[]"


def test_any_single_byte_change_in_any_file_is_caught(golden: Path) -> None:
    import tempfile

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    names = sorted(p.relative_to(golden).as_posix() for p in golden.rglob("*") if p.is_file())

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(name=st.sampled_from(names), position=st.floats(0, 0.999), mask=st.integers(1, 255))
    def check(name: str, position: float, mask: int) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "bundle"
            shutil.copytree(golden, target)
            data = bytearray((target / name).read_bytes())
            data[int(len(data) * position)] ^= mask
            (target / name).write_bytes(bytes(data))
            assert not verify(target).ok, name

    check()


def test_a_csv_that_is_not_utf8_is_a_listed_failure_not_a_crash(copy: Path) -> None:
    path = copy / "controls" / "AU-9.csv"
    data = bytearray(path.read_bytes())
    data[0] ^= 0x80  # found by the property above: invalid UTF-8 used to raise
    path.write_bytes(bytes(data))
    reseal(copy)
    report = verify(copy)
    assert "citation-malformed" in codes(report) and "controls/AU-9.csv" in wheres(report)


def test_an_archive_of_the_bundle_folder_itself_verifies(golden: Path, tmp_path: Path) -> None:
    archive = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(golden.rglob("*")):
            if p.is_file():
                zf.write(p, arcname="evidence-2026-11/" + p.relative_to(golden).as_posix())
    report = verify(archive)
    assert report.ok, report.lines()


def _pass(ledger: Ledger, out: Path, *, split: int | None = None):  # type: ignore[no-untyped-def]
    from bundler.ledger_slice import LedgerPass

    ledger_pass = LedgerPass(ledger, out, ledger.size, split=split)
    scan, rows = ledger_pass.run()
    return ledger_pass.wait_export(), rows


def test_the_split_pass_exports_what_export_ledger_does_and_reads_what_one_process_reads(tmp_path: Path) -> None:
    from bundler.evaluate import evaluate, evaluate_reading
    from bundler.merkle_memory import MemoryTree
    from collector.export import export_ledger

    world = build_ledger(tmp_path / "l.db", entries=600, jobs=3)
    with Ledger.open(world.path) as ledger:
        export_ledger(ledger, tmp_path / "export")
        whole, whole_rows = _pass(ledger, tmp_path / "one")
        split, split_rows = _pass(ledger, tmp_path / "two", split=256)  # a child process reads [256, 600)
        checkpoint = ledger.latest_checkpoint()
        triples = [(seq, orjson.loads(body)["event"], orjson.loads(body)["source"]) for seq, _, body in ledger.entries()]
    expected = {p.relative_to(tmp_path / "export").as_posix(): p.read_bytes()
                for p in (tmp_path / "export").rglob("*") if p.is_file()}
    for folder in ("one", "two"):
        got = {p.relative_to(tmp_path / folder).as_posix(): p.read_bytes()
               for p in (tmp_path / folder).rglob("*") if p.is_file()}
        assert got == expected, folder
    assert split.leaves == whole.leaves and split.offsets == whole.offsets and split.kinds == whole.kinds
    assert split.export_files == whole.export_files and not split.chain_breaks and not whole.chain_breaks
    assert (split.oidc_verified, split.oidc_failed) == (whole.oidc_verified, whole.oidc_failed)
    assert MemoryTree(split.leaves, split.levels).root() == MemoryTree(split.leaves).root() == checkpoint.root
    kwargs = {"as_of": "2026-12-31T00:00:00Z", "origin": ORIGIN}
    one = evaluate(triples, **kwargs)
    assert evaluate_reading(whole_rows, **kwargs) == one
    assert evaluate_reading(split_rows, **kwargs) == one


@pytest.mark.parametrize("swap", [10, 255, 256], ids=["inside", "last-before-split", "first-after-split"])
def test_the_pass_finds_a_broken_chain_on_either_side_of_the_split(tmp_path: Path, swap: int) -> None:
    import sqlite3

    world = build_ledger(tmp_path / "l.db", entries=600, jobs=3)
    with sqlite3.connect(world.path) as db:  # two stored entries trade places
        a, b = (db.execute("SELECT body FROM entries WHERE seq=?", (s,)).fetchone()[0] for s in (swap, swap + 1))
        db.execute("UPDATE entries SET body=? WHERE seq=?", (b, swap))
        db.execute("UPDATE entries SET body=? WHERE seq=?", (a, swap + 1))
    with Ledger.open(world.path) as ledger:
        for split in (None, 256):
            scan, _rows = _pass(ledger, tmp_path / f"out-{split}", split=split)
            assert scan.chain_breaks[:1] == [swap], split


def test_builder_abort_stops_its_processes(tmp_path: Path) -> None:
    from bundler.bundle import BundleBuilder

    world = build_ledger(tmp_path / "l.db", entries=100, jobs=2)
    with Ledger.open(world.path) as ledger:
        builder = BundleBuilder.start(ledger, tmp_path / "out", signer(), workers=2)
        builder.abort()
    assert builder.ledger_pass._proc is None or builder.ledger_pass._proc.poll() is not None
    assert all(p.poll() is not None for p in builder.pdf_workers._procs) or not builder.pdf_workers._procs


@pytest.mark.parametrize("seq", [3, 300], ids=["this-process", "child-process"])
def test_an_entry_changed_in_the_database_fails_the_root_check_before_anything_cites_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seq: int) -> None:
    import sqlite3

    from bundler import ledger_slice
    from collector.errors import IntegrityError

    world = build_ledger(tmp_path / "l.db", entries=600, jobs=3)
    with sqlite3.connect(world.path) as db:  # valid JSON, same chain fields, different bytes
        body = db.execute("SELECT body FROM entries WHERE seq=?", (seq,)).fetchone()[0]
        db.execute("UPDATE entries SET body=? WHERE seq=?", (body.replace(b'"time":"2026', b'"time":"2025'), seq))
    monkeypatch.setattr(ledger_slice, "MIN_SPLIT_SIZE", 256)  # split this small ledger at 300, over two processes
    monkeypatch.setattr(ledger_slice, "CHILD_HANDICAP", 0)
    monkeypatch.setattr(ledger_slice, "CHILD_SHARE", 0.5)
    spawned = []
    real_start = ledger_slice._start
    monkeypatch.setattr(ledger_slice, "_start", lambda *args: spawned.append(args[0]) or real_start(*args))
    assessment = build_assessment(world, controls=4)
    with Ledger.open(world.path) as ledger:
        with pytest.raises(IntegrityError, match="root"):
            build_bundle(ledger, assessment, tmp_path / "out", signer(), workers=2)
    assert not list((tmp_path / "out" / "controls").glob("*.csv"))
    assert spawned == ["bundler.ledger_slice", "bundler.export_hasher"]


def test_a_run_appending_while_the_cli_bundles_does_not_fail_the_bundle(tmp_path: Path) -> None:
    # make_bundle (the CLI's path) signs a checkpoint over the whole ledger, then starts the bundle; a
    # scheduled run appending in between made that an exit-2 "sign a fresh checkpoint first".
    from bundler.make_bundle import BundleRequest, make_bundle
    from collector.ledger import NewEntry

    world = build_ledger(tmp_path / "l.db", entries=100, jobs=2, sign=False)
    notes: list[str] = []

    def meanwhile(note: str) -> None:  # called right after the bundle's checkpoint is signed
        notes.append(note)
        if note.startswith("signed a fresh checkpoint"):
            with Ledger.open(world.path) as other:  # another process's connection, as a run has
                other.append([NewEntry({"kind": "ci", "id": "x", "location": "x"}, "2026-11-24T00:00:00Z",
                                       {"time": "2026-11-24T00:00:00Z", "kind": "ci.job_started"}, "1" * 64, 1)])

    with Ledger.open(world.path) as ledger:
        request = BundleRequest(out_dir=tmp_path / "b", as_of="2026-11-25T00:00:00Z", baseline="moderate",
                                controls=None, catalog=None, policies=None, period=None, archive=None)
        result, _ = make_bundle(ledger, signer(), request, on_note=meanwhile)
    assert result.checkpoint_size == 100 and any("signed a fresh checkpoint" in n for n in notes)
    assert verify(tmp_path / "b").ok
    assert "1 entry appended after the checkpoint at size 100" in (tmp_path / "b" / "index.html").read_text()
