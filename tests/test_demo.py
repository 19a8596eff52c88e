"""`fedledger demo`: the whole pipeline on the shipped samples, as a user runs it."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", *extra, "demo", "--out", str(out)],
                          cwd=out.parent, capture_output=True, text=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `fedledger demo --format json` run, shared by the tests that look at its bundle."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    done = _demo(out, "--format", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_demo_runs_the_whole_pipeline_and_verifies_offline(demo: dict[str, Any]) -> None:
    doc = demo
    assert doc["kind"] == "fedledger.demo" and doc["verified"] is True and doc["sources_failed"] == []
    assert Path(doc["index_pdf"]).read_bytes().startswith(b"%PDF")
    assert Path(doc["archive"]).name == "bundle.tar.gz"
    assert sum(doc["controls"].values()) >= 19
    # the samples carry planted violations: the demo shows them rather than hiding them
    assert doc["controls"]["not-satisfied"] > 0 and doc["controls"]["satisfied"] > 0
    # the sample attestations (samples/attestations/README.md), counted as `fedledger bundle` counts them
    assert doc["attestations"] == {"signed": 5, "unsigned": 2, "invalid": 5, "deleted": 0}
    # an assessor's independent check of the archive, with the key and origin pinned
    check = subprocess.run([sys.executable, "-m", "collector.cli", "verify-bundle", doc["archive"],
                            "--trusted-key", doc["public_key"], "--origin", doc["origin"]],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().splitlines()[-1].endswith("0 INVALID")
    # the ledger itself verifies too
    ledger = subprocess.run([sys.executable, "-m", "collector.cli", "verify", doc["ledger"], "--trusted-key",
                             doc["public_key"], "--origin", doc["origin"]], capture_output=True, text=True)
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr


def test_demo_bundle_oscal_is_schema_valid_and_its_references_resolve(demo: dict[str, Any]) -> None:
    """The OSCAL checks ran only on synthetic assessments; this is the document a user gets from the
    shipped samples, read from the archive an assessor receives."""
    from tests.test_package_oscal import oscal_reference_problems, oscal_validator

    with tarfile.open(demo["archive"]) as archive:
        member = archive.extractfile("oscal/assessment-results.json")
        assert member is not None
        doc = json.loads(member.read())
    errors = sorted(oscal_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:10])
    assert oscal_reference_problems(doc) == []
    result = doc["assessment-results"]["results"][0]
    reviewed = {c["control-id"] for c in result["reviewed-controls"]["control-selections"][0]["include-controls"]}
    assert len(reviewed) == sum(demo["controls"].values())
    assert {f["target"]["target-id"] for f in result["findings"]} <= {f"{c}_smt" for c in reviewed}
    assert result["observations"] and all(o.get("relevant-evidence") for o in result["observations"])


def test_demo_oscal_names_each_cited_entry_by_a_seq_the_proofs_file_proves(demo: dict[str, Any]) -> None:
    """From the OSCAL document to the evidence: every ledger entry an evaluation finding cites is
    named (``ledger-seq``) on the finding's observation, and the bundle's proofs file has its leaf
    hash and inclusion proof (which verify-bundle checks)."""
    with tarfile.open(demo["archive"]) as archive:
        doc = json.loads(archive.extractfile("oscal/assessment-results.json").read())  # type: ignore[union-attr]
        proofs = archive.extractfile("proofs/inclusion.jsonl").read().decode().splitlines()  # type: ignore[union-attr]
    proven = {json.loads(line)["seq"] for line in proofs[1:]}
    result = doc["assessment-results"]["results"][0]
    observations = {o["uuid"]: o for o in result["observations"]}
    named = set()
    for finding in result["findings"]:
        if finding["target"]["status"]["state"] != "not-satisfied":
            continue
        assert finding["related-risks"], finding["title"]
        for rel in finding["related-observations"]:
            named |= {int(p["value"]) for p in observations[rel["observation-uuid"]].get("props", [])
                      if p["name"] == "ledger-seq"}
    assert named and named <= proven, sorted(named - proven)


def test_demo_replaces_an_earlier_demo_but_not_other_folders(tmp_path: Path) -> None:
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    refused = _demo(mine)
    assert refused.returncode == 2 and "not an earlier demo" in refused.stderr
    assert (mine / "keep.txt").read_text() == "mine"


def test_stale_sources_fail_status_and_the_controls_they_support(tmp_path: Path) -> None:
    """Cadences from the config reach the bundle: stale evidence makes its controls not-satisfied."""
    from bundler.catalog import load_builtin_catalog, select_controls
    from bundler.evaluate import evaluate
    from bundler.make_bundle import _entries, evaluation_settings_from_config
    from collector.config import load_config
    from collector.ledger import Ledger

    config_path = REPO / "samples" / "fedledger.toml"
    db = tmp_path / "l.db"
    cli = [sys.executable, "-m", "collector.cli", "--ledger", str(db)]
    assert subprocess.run([*cli, "init", "--origin", "example.gov/ci-evidence"], capture_output=True).returncode == 0
    run = subprocess.run([*cli, "--as-of", "2026-11-21T00:00:00Z", "run", "--config", str(config_path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    fresh = subprocess.run([*cli, "--as-of", "2026-11-21T00:00:00Z", "status", "--config", str(config_path)],
                           capture_output=True, text=True)
    stale = subprocess.run([*cli, "--as-of", "2027-01-15T00:00:00Z", "status", "--config", str(config_path)],
                           capture_output=True, text=True)
    assert fresh.returncode == 0 and stale.returncode == 1 and "STALE" in stale.stdout

    config = load_config(config_path)
    settings = evaluation_settings_from_config(config)
    assert dict(settings.freshness_days_per_source)["vault"] == 3  # ksi-3d
    catalog = load_builtin_catalog()
    chosen = select_controls(catalog, baseline="moderate", controls=None)

    def assess(as_of: str):  # type: ignore[no-untyped-def]
        with Ledger.open(db) as ledger:
            return evaluate(_entries(ledger, ledger.size), as_of=as_of, origin=ledger.origin, config=settings,
                            catalog=catalog, controls=chosen)

    before, after = assess("2026-11-21T00:00:00Z"), assess("2027-01-15T00:00:00Z")
    fresh_checks = [c for c in before.checks if c.kind == "freshness"]
    stale_checks = [c for c in after.checks if c.kind == "freshness"]
    assert fresh_checks and all(c.status == "satisfied" for c in fresh_checks)
    assert stale_checks and all(c.status == "not-satisfied" for c in stale_checks)
    was_satisfied = {c.control_id for c in before.controls if c.status == "satisfied"}
    assert was_satisfied
    for control in after.controls:
        if control.control_id in was_satisfied:
            assert control.status == "not-satisfied"
            assert any(check.kind == "freshness" and check.status == "not-satisfied" for check in control.checks)


# -- the assessor guide, as written ------------------------------------------------------------

GUIDE = REPO / "docs" / "assessor-guide.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def _guide_commands() -> list[str]:
    """Every shell command of the assessor guide, continuation lines joined."""
    text = GUIDE.read_text(encoding="utf-8")
    commands: list[str] = []
    for block in SH_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                commands.append(" ".join(line.split()))
    return commands


def _tally_pattern(sample: str) -> re.Pattern[str]:
    """The guide's sample line with every number a placeholder (the demo's counts differ)."""
    return re.compile(re.sub(r"\d+", r"\\d+", re.escape(sample)).replace(r"\d+\ INVALID", r"0\ INVALID"))


def test_every_command_of_the_assessor_guide_runs_offline_as_written(demo: dict[str, Any], tmp_path: Path) -> None:
    """An assessor's workspace with the guide's own file names: the provider's bundle archive, its
    public key and origin (out of band), a full export the provider made with `fedledger export`, a
    checkpoint kept from an earlier assessment and a proof the provider made with `fedledger prove`.
    Every `fedledger` command of the guide runs there and prints what the guide says (the bundle's
    ledger slice is verified from the archive itself: nothing is extracted by hand); `pip` lines
    install offline."""
    work = tmp_path / "assessor"
    work.mkdir()
    (work / "bundle-2026-01.tar.gz").write_bytes(Path(demo["archive"]).read_bytes())
    (work / "ledger.pub").write_bytes(Path(demo["public_key"]).read_bytes())
    bundle = Path(demo["bundle"])  # the folder the archive was made from
    export = subprocess.run([sys.executable, "-m", "collector.cli", "--ledger", demo["ledger"], "export", "--out",
                             str(work / "ledger-export")], capture_output=True, text=True)
    assert export.returncode == 0, export.stderr
    notes = sorted((bundle / "ledger" / "checkpoints").glob("*.note"))
    (work / "checkpoint-from-last-assessment.txt").write_bytes(notes[-1].read_bytes())
    proof = subprocess.run([sys.executable, "-m", "collector.cli", "--ledger", demo["ledger"], "prove", "42"],
                           capture_output=True, text=True)
    assert proof.returncode == 0, proof.stderr
    (work / "proof-entry-1234.json").write_text(proof.stdout, encoding="utf-8")

    text = GUIDE.read_text(encoding="utf-8")
    bundle_tally = _tally_pattern(re.search(r"^```text\n(signature valid, .*)\n```", text, re.M).group(1))  # type: ignore[union-attr]
    ledger_tally = re.compile(r"\d+/\d+ entries valid, \d+/\d+ checkpoints valid, 0 INVALID")
    commands = _guide_commands()
    ran = set()
    verified = set()
    for command in commands:
        words = shlex.split(command)
        if words[:2] == ["pip", "install"]:  # runs on the offline machine
            assert "--no-index" in words and "--find-links" in words, f"needs the network: {command}"
            continue
        if words[0] != "fedledger" or any(w.startswith("s3://") for w in words):
            continue  # s3:// anchors need the network; the guide says so
        done = subprocess.run([sys.executable, "-m", "collector.cli", *words[1:]], cwd=work, capture_output=True,
                              text=True, env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"})
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        last = done.stdout.strip().splitlines()[-1]
        if words[1] == "verify-bundle":
            assert bundle_tally.fullmatch(last), f"{command}: {last!r} is not like the guide's tally"
        elif words[1] == "verify":
            assert ledger_tally.fullmatch(last), f"{command}: {last!r}"
            verified.add(words[2])
        elif words[1] == "verify-proof":
            assert re.fullmatch(rf"valid: entry 42 is in {re.escape(demo['origin'])} at size \d+", last), last
        ran.add(words[1])
    assert ran == {"verify-bundle", "verify", "verify-proof"}
    assert verified == {"bundle-2026-01.tar.gz", "ledger-export/"}, verified
    assert any(c.startswith("pip install ") for c in commands), "the guide says how to install fedledger offline"


# -- no secret from the samples reaches the bundle -------------------------------------------------

def _planted_secrets() -> dict[str, str]:
    """Every secret value the samples the demo collects hold or were made from: the stand-in
    Vault secrets behind the audit log's HMACs (passwords, tokens, accessors, the JWT a login
    sent, certificate and key bodies), the audit salt, the webhook secret, each OIDC token and
    its signature, and the body of every private key under samples/ and the demo's own."""
    import samples.make.vault as vault

    planted: dict[str, str] = {}
    real = vault.fake_secret

    def spy(label: str, length: int = 32) -> str:
        value = real(label, length)
        if label != "lease":  # a lease id is an identifier Vault logs in the clear, not a credential
            planted[f"vault {label}"] = value
        return value

    vault.fake_secret = spy  # type: ignore[assignment]
    try:
        vault.story_records()
    finally:
        vault.fake_secret = real  # type: ignore[assignment]
    samples = REPO / "samples"
    planted["vault audit salt"] = (samples / "vault" / "audit-salt.txt").read_text().strip()
    planted["webhook secret"] = (samples / "ci" / "webhook-secret.txt").read_text().strip()
    for path in sorted((samples / "ci" / "events").iterdir()):
        for token in re.findall(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", path.read_text(encoding="utf-8")):
            planted[f"OIDC token in {path.name}"] = token
            planted[f"OIDC token signature in {path.name}"] = token.rsplit(".", 1)[1]
    for path in sorted(samples.rglob("*.pem")):
        text = path.read_text(encoding="utf-8")
        if "PRIVATE KEY" in text:
            planted[f"private key {path.name}"] = "".join(text.splitlines()[1:-1])[16:64]
    return planted


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in _strings(item)]


def test_no_sample_secret_reaches_the_bundle_or_its_pdf_text(demo: dict[str, Any]) -> None:
    """Every member of the demo archive, raw bytes and the text of every PDF, holds none of the
    secrets the samples plant, as is, JSON-escaped or base64'd."""
    import base64

    from pypdf import PdfReader

    planted = _planted_secrets()
    key = Path(demo["public_key"]).with_suffix(".key").read_text(encoding="utf-8")
    planted["the demo ledger's private key"] = "".join(key.splitlines()[1:-1])[16:64]
    assert len(planted) > 20
    blobs: dict[str, bytes] = {}
    with tarfile.open(demo["archive"]) as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member)
            if handle is None:
                continue
            data = handle.read()
            blobs[member.name] = data
            if member.name.endswith(".pdf"):
                text = "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)
                assert text.strip(), member.name
                blobs[f"{member.name} (text)"] = text.encode()
    assert "oscal/assessment-results.json" in blobs and "index.pdf (text)" in blobs
    # OSCAL markup text is Markdown-escaped (a secret "a_b" would read "a\\_b"): search it unescaped too.
    blobs["oscal (markup unescaped)"] = "\n".join(
        re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)
        for text in _strings(json.loads(blobs["oscal/assessment-results.json"]))).encode()
    leaks = [f"{what} in {name}"
             for what, value in planted.items()
             for form in {value.encode(), json.dumps(value).encode()[1:-1], base64.b64encode(value.encode())}
             for name, data in blobs.items() if form in data]
    assert not leaks, leaks


# -- the README, as written --------------------------------------------------------------------

README = REPO / "README.md"
# Placeholders in README's commands and the sample each stands for (paths relative to the workspace).
README_PLACEHOLDERS = {"/var/log/vault/audit.log": "vault/audit.log"}


def _readme_commands() -> list[str]:
    """Every `fedledger` line of README's sh blocks, continuation lines joined, comments cut."""
    commands = []
    for block in SH_BLOCK.findall(README.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("fedledger "):
                commands.append(" ".join(line.split()))
    return commands


def test_every_command_of_the_readme_runs_offline_on_the_samples_as_written(tmp_path: Path) -> None:
    """A new operator's folder with README's own file names standing for samples/: the sample sources
    linked in, samples/fedledger.toml with this ledger's path and README's origin, 250 manual events
    (so `prove 41` and `prove --consistency 100 250` have their entries). Every README `fedledger`
    command runs there in order, as written, and exits as README says; s3:// ones need AWS and are
    skipped (S3 collection, validation and anchoring are tested against moto in test_attest_s3.py,
    test_cloudtrail_source.py and test_run_publish.py)."""
    work = tmp_path / "operator"
    work.mkdir()
    samples = REPO / "samples"
    for name in ("vault", "ci", "cloudtrail", "attestations", "policies"):
        (work / name).symlink_to(samples / name)
    (work / "events").symlink_to(samples / "ci" / "events")
    (work / "keys").symlink_to(samples / "attestations" / "trusted-keys")
    (work / "jwks.json").write_bytes((samples / "ci" / "keys" / "jwks.json").read_bytes())
    (work / "salt.txt").write_bytes((samples / "vault" / "audit-salt.txt").read_bytes())
    secret = work / "webhook-secret.txt"
    secret.write_bytes((samples / "ci" / "webhook-secret.txt").read_bytes())
    secret.chmod(0o600)
    config = (samples / "fedledger.toml").read_text(encoding="utf-8")
    config = re.sub(r'(?m)^path = ".*"$', 'path = "fedledger.db"', config, count=1)
    config = re.sub(r'(?m)^origin = ".*"$', 'origin = "agency.gov/ci-evidence"', config, count=1)
    (work / "fedledger.toml").write_text(config, encoding="utf-8")
    with open(work / "manual-evidence.jsonl", "w", encoding="utf-8") as handle:
        for i in range(250):
            handle.write(json.dumps({"time": f"2026-11-19T{i // 60:02d}:{i % 60:02d}:00Z", "kind": "manual.review",
                                     "actor": "isso@agency.gov", "action": "review", "resource": f"job-{i}"}) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("FEDLEDGER_LEDGER", "FEDLEDGER_CONFIG")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    ran, skipped = [], []
    for command in _readme_commands():
        for placeholder, sample in README_PLACEHOLDERS.items():
            command = command.replace(placeholder, sample)
        words = shlex.split(command)
        if any(w.startswith("s3://") for w in words):
            skipped.append(command)
            continue
        stdout_file = None
        if ">" in words:  # `fedledger prove 41 > proof.json`
            stdout_file = work / words[words.index(">") + 1]
            words = words[:words.index(">")]
        done = subprocess.run([sys.executable, "-m", "collector.cli", *words[1:]], cwd=work, capture_output=True,
                              text=True, env=env)
        if stdout_file is not None:
            stdout_file.write_text(done.stdout, encoding="utf-8")
        last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        if words[1] == "status":  # README: exit 1 when stale (the samples' evidence ages with the clock)
            assert done.returncode in (0, 1) and (done.returncode == 1) == ("STALE" in done.stdout), command
        else:
            assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        if words[1] == "export":  # README's saved checkpoint: one kept from this export
            notes = sorted((work / "ledger-export" / "checkpoints").iterdir())
            (work / "saved-checkpoint.note").write_bytes(notes[-1].read_bytes())
        if words[1] == "verify":
            assert re.fullmatch(r"\d+/\d+ entries valid, \d+/\d+ checkpoints valid, 0 INVALID", last), last
        if words[1] == "verify-proof":
            assert re.fullmatch(r"valid: entry 41 is in agency\.gov/ci-evidence at size 250", last), last
        if words[1] == "verify-bundle":
            assert last.startswith("signature valid, ") and last.endswith(" 0 INVALID"), last
        ran.append(words[1] if words[1] not in ("collect", "config", "vault") else " ".join(words[1:3]))
    assert ran == ["init", "append", "checkpoint", "prove", "prove", "verify-proof", "export", "verify",
                   "collect vault", "vault hmac", "collect ci", "config check", "status", "bundle",
                   "verify-bundle", "demo"], ran
    assert len(skipped) == 4 and all("s3://" in c for c in skipped), skipped


def test_every_link_in_the_demo_reports_names_a_file_of_the_bundle(demo: dict[str, Any]) -> None:
    """An assessor reading the HTML offline follows every link to a file the bundle holds (or to a place
    on the same page: a custody timeline's "see finding N")."""
    bundle = Path(demo["bundle"])
    pages = [bundle / "index.html", *sorted((bundle / "controls").glob("*.html"))]
    links = anchors = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for href in re.findall(r'href="([^"]*)"', text):
            if href.startswith("#"):
                anchors += 1
                assert f'id="{href[1:]}"' in text, (page.name, href)
                continue
            links += 1
            assert not re.match(r"[a-z]+:", href), (page.name, href)  # relative, inside the bundle
            assert (page.parent / href).is_file(), (page.name, href)
    assert links >= 3 * sum(demo["controls"].values())
    assert anchors  # the samples' custody findings are referred to from their timelines


def test_every_demo_pdf_page_names_its_system_period_and_control(demo: dict[str, Any]) -> None:
    from pypdf import PdfReader

    bundle = Path(demo["bundle"])
    index = " ".join((PdfReader(bundle / "index.pdf").pages[0].extract_text() or "").split())
    period = re.search(r"period (.+? to \S+)", index)
    assert period, index[:300]
    for pdf in [bundle / "index.pdf", *sorted((bundle / "controls").glob("*.pdf"))]:
        pages = PdfReader(pdf).pages
        for number, page in enumerate(pages, 1):
            text = " ".join((page.extract_text() or "").split())
            assert "example.gov/ci-evidence" in text and period.group(1) in text, (pdf.name, number)
            assert f"Page {number} of {len(pages)}" in text, (pdf.name, number)
            if pdf.name != "index.pdf":
                assert f"{pdf.stem} · " in text, (pdf.name, number)


def test_demo_prints_the_bundle_counts_as_fedledger_bundle_does(demo: dict[str, Any]) -> None:
    """The demo's human output has the count lines of `fedledger bundle` (controls with the checkpoint
    size, then the attestations by outcome), from the same numbers as its JSON."""
    from bundler.make_bundle import bundle_count_lines
    from collector.commands.demo_cmds import demo_lines

    lines = demo_lines(demo)
    for line in bundle_count_lines(demo):
        assert any(shown.startswith(line) for shown in lines), (line, lines)
    assert "attestations: 5 signed (signature verified), 2 unsigned, 5 invalid, 0 deleted" in lines
    assert lines[-1].startswith("assessors: fedledger verify-bundle ")
