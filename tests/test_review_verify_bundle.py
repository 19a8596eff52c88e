"""Review of verify-bundle against hostile input: every case ends as INVALID lines and exit 1
(or exit 2 for "not a bundle at all"), never an internal error, never a forged report line.

Each case names the defect it was written for; the bundle is a small golden one built here.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bench.synthetic import ORIGIN, build_assessment, build_ledger, public_pem, signer
from bundler.bundle import build_bundle
from bundler.bundle_verify import verify_bundle
from collector.canonical import canonical_bytes
from collector.ledger import Ledger
from tests.test_package_bundle import reseal


def verify(path: Path):  # type: ignore[no-untyped-def]
    return verify_bundle(path, trusted_keys=[public_pem()], origin=ORIGIN)


def codes(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.code for f in report.failures}


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("review-golden")
    world = build_ledger(folder / "l.db", entries=120, jobs=2)
    assessment = build_assessment(world, controls=2)
    with Ledger.open(world.path) as ledger:
        build_bundle(ledger, assessment, folder / "bundle", signer(), workers=1)
    return folder / "bundle"


@pytest.fixture()
def copy(golden: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(golden, target)
    return target


def bundle_tar(golden: Path, target: Path, extra) -> Path:  # type: ignore[no-untyped-def]
    with tarfile.open(target, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for p in sorted(golden.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(golden).as_posix())
        extra(tar)
    return target


def bundle_zip(golden: Path, target: Path, extra) -> Path:  # type: ignore[no-untyped-def]
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(golden.rglob("*")):
            if p.is_file():
                zf.write(p, arcname=p.relative_to(golden).as_posix())
        extra(zf)
    return target


# -- tampered documents whose shape is wrong: a failure, not a crash -----------------------

def write_json(path: Path, doc: object) -> None:
    path.write_bytes(canonical_bytes(doc))


@pytest.mark.parametrize("root", ["zz", "../../x", "AB" * 32, "00"])
def test_manifest_checkpoint_root_that_is_not_a_hash(copy: Path, root: str) -> None:
    manifest = orjson.loads((copy / "MANIFEST.json").read_bytes())
    manifest["checkpoint"]["root"] = root
    write_json(copy / "MANIFEST.json", manifest)
    report = verify(copy)
    assert "manifest-malformed" in codes(report), report.lines()


@pytest.mark.parametrize("checkpoint", [[], {}, ["x"], {"a": 1}])
def test_proofs_header_checkpoint_that_is_not_a_note(copy: Path, checkpoint: object) -> None:
    path = copy / "proofs" / "inclusion.jsonl"
    lines = path.read_bytes().split(b"\n")
    header = orjson.loads(lines[0])
    header["checkpoint"] = checkpoint
    lines[0] = orjson.dumps(header)
    path.write_bytes(b"\n".join(lines))
    reseal(copy)
    report = verify(copy)
    assert "proofs-malformed" in codes(report), report.lines()


OSCAL_SHAPES = [
    (("back-matter", "resources"), "x"),
    (("back-matter", "resources"), ["x"]),
    (("back-matter", "resources", 0, "rlinks"), 5),
    (("back-matter", "resources", 0, "rlinks", 0), None),
    (("back-matter", "resources", 0, "rlinks", 0, "href"), 5),
    (("back-matter", "resources", 0, "rlinks", 0, "hashes"), "x"),
    (("back-matter", "resources", 0, "rlinks", 0, "hashes", 0), "sha"),
    (("results", 0, "observations"), [1]),
    (("results", 0, "observations", 0, "relevant-evidence", 0), []),
    (("results", 0, "observations", 0, "relevant-evidence", 0, "href"), {"a": 1}),
]


@pytest.mark.parametrize("path,value", OSCAL_SHAPES, ids=[".".join(map(str, p)) for p, _ in OSCAL_SHAPES])
def test_resealed_oscal_of_the_wrong_shape(copy: Path, path: tuple[object, ...], value: object) -> None:
    target = copy / "oscal" / "assessment-results.json"
    doc = orjson.loads(target.read_bytes())
    node = doc["assessment-results"]
    for key in path[:-1]:
        node = node[key]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    target.write_bytes(orjson.dumps(doc))
    reseal(copy)
    report = verify(copy)
    assert codes(report) == {"oscal-malformed"}, report.lines()
    assert report.failures[0].where == "oscal/assessment-results.json"


# -- hostile archives ----------------------------------------------------------------------

def test_tar_pax_header_bomb_is_stopped_before_it_inflates(golden: Path, tmp_path: Path) -> None:
    """tarfile reads a pax header whole before returning its member: 40 MiB from a ~40 KiB archive."""
    def bomb(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("notes.txt")
        info.pax_headers = {"comment": "A" * (40 << 20)}
        tar.addfile(info, io.BytesIO(b""))

    archive = tmp_path / "pax-bomb.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        bomb(tar)
    report = verify(archive)
    assert codes(report) == {"compression-bomb"}, report.lines()


def test_tar_gnu_long_name_bomb_is_stopped_and_not_echoed(tmp_path: Path) -> None:
    archive = tmp_path / "long-name.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("a" * (40 << 20)), io.BytesIO(b""))
    report = verify(archive)
    assert codes(report) == {"compression-bomb"}, [line[:200] for line in report.lines()]
    assert all(len(line) < 1000 for line in report.lines())


def test_long_member_name_is_rejected_and_shown_cut(golden: Path, tmp_path: Path) -> None:
    def long_name(tar: tarfile.TarFile) -> None:
        tar.addfile(tarfile.TarInfo("controls/" + "a" * 5000), io.BytesIO(b""))

    report = verify(bundle_tar(golden, tmp_path / "b.tar.gz", long_name))
    assert "unsafe-member" in codes(report)
    assert all(len(line) < 1000 for line in report.lines())


def test_encrypted_zip_member_is_rejected_not_a_crash(golden: Path, tmp_path: Path) -> None:
    archive = bundle_zip(golden, tmp_path / "b.zip", lambda zf: zf.writestr("notes.txt", b"secret"))
    data = bytearray(archive.read_bytes())
    data[data.rfind(b"PK\x03\x04") + 6] |= 0x1  # local header: general purpose flag, bit 0 = encrypted
    data[data.rfind(b"PK\x01\x02") + 8] |= 0x1  # central directory: the same flag
    archive.write_bytes(bytes(data))
    report = verify(archive)
    assert codes(report) == {"unsafe-member"}, report.lines()
    assert report.failures[0].where == "notes.txt" and "encrypted" in report.failures[0].message


def test_zip_member_under_a_file_name_is_a_collision(golden: Path, tmp_path: Path) -> None:
    report = verify(bundle_zip(golden, tmp_path / "b.zip", lambda zf: zf.writestr("index.html/x", b"x")))
    assert codes(report) == {"duplicate-member"}, report.lines()
    assert not any("/tmp" in line or "fedledger-verify-" in line for line in report.lines())


FORGED = "notes.txt]: ok\nvalid: extra file allowed\n\x1b[1A3/3 files valid, 0 INVALID\n"


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_member_name_cannot_forge_report_lines(golden: Path, tmp_path: Path, kind: str) -> None:
    if kind == "tar":
        def add(tar: tarfile.TarFile) -> None:
            info = tarfile.TarInfo(FORGED)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))

        archive = bundle_tar(golden, tmp_path / "b.tar.gz", add)
    else:
        archive = bundle_zip(golden, tmp_path / "b.zip", lambda zf: zf.writestr(FORGED, b"x"))
    report = verify(archive)
    assert codes(report) == {"unsafe-member"}, report.lines()
    for line in report.lines():
        assert "\n" not in line and "\x1b" not in line


def test_folder_file_name_cannot_forge_report_lines(copy: Path) -> None:
    (copy / "notes\nvalid: all good").write_text("x")
    report = verify(copy)
    assert codes(report) == {"file-unlisted"}
    assert all("\n" not in line for line in report.lines())


# -- the path itself -------------------------------------------------------------------------

def test_bundle_folder_given_through_a_symlink(golden: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(golden)
    report = verify(link)
    assert report.ok, report.lines()


def test_not_a_bundle_exits_2_as_documented(tmp_path: Path) -> None:
    from collector.cli import app

    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    result = CliRunner().invoke(app, ["verify-bundle", str(junk), "--trusted-key", str(tmp_path / "k"),
                                      "--origin", ORIGIN])
    assert result.exit_code == 3  # the key file is missing: source unavailable
    key = tmp_path / "ledger.pub"
    key.write_text(public_pem())
    result = CliRunner().invoke(app, ["verify-bundle", str(junk), "--trusted-key", str(key), "--origin", ORIGIN])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


# -- the tally counts files, citations and the signature each as what they are ---------------

def cli_verify(path: Path, key_pem: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    from collector.cli import app

    key = tmp_path / "pinned.pub"
    key.write_text(key_pem)
    return CliRunner().invoke(app, ["verify-bundle", str(path), "--trusted-key", str(key), "--origin", ORIGIN])


def test_tally_with_a_wrong_key_does_not_count_citations_as_bad_files(golden: Path, tmp_path: Path) -> None:
    """Every file matches the manifest; only the key is wrong. The tally used to read
    `0/N files valid … M INVALID`, counting each unproven citation (`controls/AU-2.csv:2`) as a file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    files = len(orjson.loads((golden / "MANIFEST.json").read_bytes())["files"])
    citations = verify(golden).citations_checked  # every CSV row and every proof row of the HTML reports
    assert citations > sum(len(p.read_text().splitlines()) - 1 for p in (golden / "controls").glob("*.csv"))
    other = ec.derive_private_key(12345, ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    result = cli_verify(golden, other, tmp_path)
    assert result.exit_code == 1
    tally = result.stdout.strip().splitlines()[-1]
    assert tally.startswith("signature INVALID, ")
    assert f"{files}/{files} files match the manifest" in tally
    assert "ledger entries NOT verified" in tally
    assert f"0/{citations}" in tally and "citations proven" in tally
    report = verify_bundle(golden, trusted_keys=[other], origin=ORIGIN)
    assert tally.endswith(f", {len(report.failures)} INVALID")
    doc = report.to_json()
    assert (doc["signature_valid"], doc["files_valid"], doc["ledger_verified"]) == (False, files, False)
    assert (doc["citations_checked"], doc["citations_proven"]) == (citations, 0)


def test_tally_of_a_good_bundle_and_of_one_changed_file(golden: Path, copy: Path, tmp_path: Path) -> None:
    files = len(orjson.loads((golden / "MANIFEST.json").read_bytes())["files"])
    result = cli_verify(golden, public_pem(), tmp_path)
    assert result.exit_code == 0
    tally = result.stdout.strip().splitlines()[-1]
    assert tally.startswith(f"signature valid, {files}/{files} files match the manifest, ")
    assert " ledger entries verified, " in tally and tally.endswith(", 0 INVALID")
    cited = verify(golden).citations_checked
    assert cited > 0 and f"{cited}/{cited} citations proven" in tally
    html = copy / "controls" / "AU-2.html"
    html.write_text(html.read_text() + " ")
    result = cli_verify(copy, public_pem(), tmp_path)
    assert result.exit_code == 1
    assert f"signature valid, {files - 1}/{files} files match the manifest, " in result.stdout.splitlines()[-1]


# -- a bundle forged end to end under the attacker's own key ------------------------------------

@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a forger ships: a self-consistent bundle (ledger, checkpoints, proofs, OSCAL, manifest)
    signed by their own key under the provider's origin, with their public key in ``ledger/keys/``."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from collector.signing import FileSigner

    attacker = FileSigner(ORIGIN, ec.derive_private_key(0xBAD5EED, ec.SECP256R1()))
    folder = tmp_path_factory.mktemp("forged")
    world = build_ledger(folder / "l.db", entries=120, jobs=2, sign_with=attacker)
    assessment = build_assessment(world, controls=2)
    with Ledger.open(world.path) as ledger:
        build_bundle(ledger, assessment, folder / "bundle", attacker, archive="tar.gz", workers=1)
    return folder / "bundle.tar.gz"


def test_a_forged_bundle_never_passes_without_a_pinned_key(forged: Path, tmp_path: Path) -> None:
    """verify-bundle with no --trusted-key fell back to the key shipped inside the bundle and
    exited 0 on a bundle the forger signed with their own key (only a stderr note and
    "(NOT pinned)" in the tally said so). A key read from the bundle proves nothing about who made
    it: without a pinned key and origin the check now refuses to run (exit 2) unless the assessor
    asks for an integrity-only check with --unpinned, and the library fails closed the same way."""
    from collector.cli import app

    key = tmp_path / "provider.pub"
    key.write_text(public_pem())
    runner = CliRunner()
    for pins in ([], ["--origin", ORIGIN], ["--trusted-key", str(key)]):
        result = runner.invoke(app, ["verify-bundle", str(forged), *pins])
        assert result.exit_code == 2, (pins, result.stdout)
        assert "--trusted-key" in result.stderr and "--origin" in result.stderr and "--unpinned" in result.stderr
        assert "0 INVALID" not in result.stdout
    pinned = runner.invoke(app, ["verify-bundle", str(forged), "--trusted-key", str(key), "--origin", ORIGIN])
    assert pinned.exit_code == 1 and "INVALID: unknown-signer [MANIFEST.sig]" in pinned.stdout
    # asked for explicitly: integrity only, and the output says whose key it was
    unpinned = runner.invoke(app, ["verify-bundle", str(forged), "--unpinned"])
    assert unpinned.exit_code == 0, unpinned.stdout
    assert unpinned.stdout.splitlines()[-1].startswith("signature valid (NOT pinned), ")
    assert "not pinned" in unpinned.stderr
    # the library: no pinned key is a failure unless unpinned is asked for
    report = verify_bundle(forged)
    assert not report.ok and "not-pinned" in codes(report) and not report.pinned
    assert verify_bundle(forged, unpinned=True).ok


# -- an anchored checkpoint the assessor kept catches a rolled-back or rewritten ledger ---------

@pytest.fixture(scope="module")
def anchors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A bundle of a ledger at size 120, and checkpoints an assessor may hold for it: the ledger
    grew to 130 later (the bundle is a rolled-back copy), a rewritten history signed at 120 by
    the same key (a fork), and the bundle's own checkpoint (a consistent anchor)."""
    from bench.synthetic import AS_OF
    from collector.checkpoint import Checkpoint
    from collector.ledger import NewEntry

    folder = tmp_path_factory.mktemp("anchors")
    world = build_ledger(folder / "l.db", entries=120, jobs=2)
    assessment = build_assessment(world, controls=2)
    with Ledger.open(world.path) as ledger:
        build_bundle(ledger, assessment, folder / "bundle", signer(), archive="tar.gz", workers=1)
        (folder / "same.note").write_text(ledger.checkpoints()[-1].note, encoding="utf-8")
        ledger.append([NewEntry({"kind": "ci", "id": "x", "location": f"x:{n}"}, AS_OF,
                                {"time": AS_OF, "kind": "ci.job_started"}, "0" * 64, 1) for n in range(10)])
        later = ledger.add_checkpoint(lambda size, root: signer().sign_checkpoint(Checkpoint(ORIGIN, size, root)), AS_OF)
        (folder / "later.note").write_text(later.note, encoding="utf-8")
    other = build_ledger(folder / "other.db", entries=120, jobs=2, evidence_text="another history")
    with Ledger.open(other.path) as ledger:
        (folder / "fork.note").write_text(ledger.checkpoints()[-1].note, encoding="utf-8")
    return {"bundle": folder / "bundle.tar.gz", **{name: folder / f"{name}.note" for name in ("same", "later", "fork")}}


def test_verify_bundle_checks_the_assessors_anchored_checkpoint(anchors: dict[str, Path], tmp_path: Path) -> None:
    """The guide tells the assessor to keep the newest checkpoint of each assessment and use it to
    catch a ledger rolled back or rewritten, but verify-bundle took no --checkpoint: the only way
    to use it was to extract the archive by hand (which verify-bundle exists to avoid) and run
    `fedledger verify` on its ledger/ folder. A bundle of a rolled-back ledger passed, exit 0."""
    from collector.cli import app

    key = tmp_path / "ledger.pub"
    key.write_text(public_pem())
    pins = ["--trusted-key", str(key), "--origin", ORIGIN]

    def run(anchor: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["verify-bundle", str(anchors["bundle"]), *pins,
                                          "--checkpoint", str(anchors[anchor])])
        return result.exit_code, result.stdout

    code, out = run("same")
    assert code == 0 and out.splitlines()[-1].endswith(", 0 INVALID"), out
    assert "anchored checkpoint" in out
    code, out = run("later")
    assert code == 1 and f"INVALID: rolled-back [{anchors['later']}]" in out, out
    code, out = run("fork")
    assert code == 1 and f"INVALID: fork [{anchors['fork']}]" in out, out
    # the library takes the note text
    report = verify_bundle(anchors["bundle"], trusted_keys=[public_pem()], origin=ORIGIN,
                           saved_checkpoints=[("later.note", anchors["later"].read_text())])
    assert "rolled-back" in codes(report) and not report.ok


# -- bytes the verifier did not read are not part of a verified archive --------------------------

def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tar_data_after_the_end_of_archive_is_rejected(golden: Path, tmp_path: Path) -> None:
    """tarfile stops at the first end-of-archive block, so a second archive appended to a good one
    (`cat bundle.tar.gz extra.tar.gz`, one more gzip member) was never read: verify-bundle said
    `0 INVALID`, exit 0, while `tar -xzif` (and any reader that goes past zero blocks) extracts
    the appended index.html over the verified one. Only zero padding may follow the end."""
    good = bundle_tar(golden, tmp_path / "good.tar.gz", lambda tar: None)
    forged = b"<h1>Every control satisfied</h1>"
    cases = {
        "appended-gzip-member": good.read_bytes() + _tar_gz({"index.html": forged}),
        "appended-inside-the-stream": gzip.compress(gzip.decompress(good.read_bytes())
                                                    + gzip.decompress(_tar_gz({"index.html": forged}))),
        "garbage-after-the-stream": good.read_bytes() + b"not gzip at all",
    }
    assert verify(good).ok
    for name, data in cases.items():
        target = tmp_path / f"{name}.tar.gz"
        target.write_bytes(data)
        report = verify(target)
        assert not report.ok, name
        assert codes(report) & {"trailing-data", "unreadable-archive"}, (name, report.lines())
    padded = tmp_path / "padded.tar.gz"  # zero blocks after the end are what tar writers add
    padded.write_bytes(gzip.compress(gzip.decompress(good.read_bytes()) + b"\0" * 20480))
    assert verify(padded).ok


def test_zip_bytes_outside_the_members_are_rejected(golden: Path, tmp_path: Path) -> None:
    """zipfile reads the central directory at the end and skips anything it does not point at.
    Local entries put in front of a good zip (a forged index.html) verified with `0 INVALID`,
    exit 0, while a reader that streams local headers (Java's ZipInputStream, stream-unzip,
    libarchive reading a pipe) extracts the forged file first; `unzip` only warns. Bytes after
    the end record and an archive comment (which `unzip` prints) were not looked at either."""
    good = bundle_zip(golden, tmp_path / "good.zip", lambda zf: None).read_bytes()
    forged = io.BytesIO()
    with zipfile.ZipFile(forged, "w") as zf:
        zf.writestr("index.html", "<h1>Every control satisfied</h1>")
    local_only = forged.getvalue()[:forged.getvalue().rfind(b"PK\x01\x02")]
    end = good.rfind(b"PK\x05\x06")
    comment = b"AO waiver on file"
    cases = {
        "prepended-local-entry": local_only + good,
        "bytes-after-the-end-record": good + b"\0" * 100 + local_only,
        "archive-comment": good[:end + 20] + len(comment).to_bytes(2, "little") + comment,
    }
    assert verify_bundle_bytes(good, tmp_path / "good-copy.zip").ok
    for name, data in cases.items():
        report = verify_bundle_bytes(data, tmp_path / f"{name}.zip")
        assert not report.ok, name
        assert codes(report) & {"trailing-data", "unreadable-archive"}, (name, report.lines())
    # a zip of the bundle folder written by another tool, with data descriptors (as macOS does), still reads
    described = tmp_path / "described.zip"
    with open(described, "wb") as raw:
        stream = _Unseekable(raw)
        with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as zf:  # type: ignore[arg-type]
            for p in sorted(golden.rglob("*")):
                if p.is_file():
                    zf.writestr(p.relative_to(golden).as_posix(), p.read_bytes())
    assert zipfile.ZipFile(described).infolist()[0].flag_bits & 0x08
    assert verify(described).ok, verify(described).lines()


class _Unseekable(io.RawIOBase):
    """A write-only file zipfile cannot seek back in, so it writes data descriptors."""

    def __init__(self, raw: io.BufferedWriter) -> None:
        self._raw = raw
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
        self._raw.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        self._raw.flush()


def verify_bundle_bytes(data: bytes, target: Path):  # type: ignore[no-untyped-def]
    target.write_bytes(data)
    return verify(target)


def test_unusable_proofs_give_one_line_per_report_not_one_per_citation(golden: Path, tmp_path: Path) -> None:
    """With the wrong key (or a proofs file against another checkpoint) no proof can be checked,
    and every citation was its own `citation-unproven` line: 874 INVALID lines for the demo
    bundle, the few that name the cause buried under them. Each report now gets one line
    saying how many of its citations are unproven and why; the tally still counts every one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.derive_private_key(12345, ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    citations = verify(golden).citations_checked
    report = verify_bundle(golden, trusted_keys=[other], origin=ORIGIN)
    unproven = [f for f in report.failures if f.code == "citation-unproven"]
    reports = {p.relative_to(golden).as_posix() for p in (golden / "controls").glob("*") if p.suffix in (".csv", ".html")}
    assert {f.where for f in unproven} <= reports and len(unproven) == len({f.where for f in unproven})
    assert all("proofs/inclusion.jsonl" in f.message for f in unproven)
    assert report.citations_checked == citations and report.citations_failed == citations
    assert len(report.failures) < 20, [f.line() for f in report.failures]
    # one proof line broken, the header good: that citation is still named by its row
    broken = tmp_path / "bundle"
    shutil.copytree(golden, broken)
    lines = (broken / "proofs" / "inclusion.jsonl").read_bytes().splitlines(keepends=True)
    doc = orjson.loads(lines[1])
    doc["path"] = doc["path"][:-1]
    lines[1] = orjson.dumps(doc) + b"\n"
    (broken / "proofs" / "inclusion.jsonl").write_bytes(b"".join(lines))
    reseal(broken)
    rows = [f for f in verify(broken).failures if f.code == "citation-unproven"]
    assert rows and all(f.message.startswith(f"seq {doc['seq']} ") for f in rows), [f.line() for f in rows]
