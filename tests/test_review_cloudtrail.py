"""Defects found by an adversarial review of `collect cloudtrail` and `cloudtrail validate`."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import orjson
from typer.testing import CliRunner

from collector.cli import app
from samples.make import cloudtrail as mk
from tests.conftest import REPO

SAMPLES = REPO / "samples" / "cloudtrail"
KEYS = SAMPLES / "public-keys.json"
OBSERVED = "2026-11-25T00:00:00Z"


def _init(tmp_path: Path) -> tuple[CliRunner, Path]:
    runner = CliRunner()
    tmp_path.mkdir(exist_ok=True)
    db = tmp_path / "l.db"
    assert runner.invoke(app, ["--ledger", str(db), "init", "--origin", "t.gov/ct"]).exit_code == 0
    return runner, db


def test_quarantined_records_fail_the_run_and_name_their_file(tmp_path: Path) -> None:
    """README: exit 1 when anything was quarantined; the user must be told which file and why."""
    folder = tmp_path / "logs"
    folder.mkdir()
    body = mk.log_body(mk.background(mk.CHAIN_START, 2))
    (folder / "good.json.gz").write_bytes(gzip.compress(body, mtime=0))
    whole = gzip.compress(mk.log_body(mk.background(mk.CHAIN_START + mk.HOUR, 2)), mtime=0)
    (folder / "cut.json.gz").write_bytes(whole[: len(whole) // 2])
    runner, db = _init(tmp_path)
    got = runner.invoke(app, ["--ledger", str(db), "--as-of", OBSERVED, "collect", "cloudtrail", str(folder),
                              "--skip-digests"])
    assert got.exit_code == 1, got.output
    assert "2 appended" in got.stdout and "1 quarantined" in got.stdout
    assert f"{folder / 'cut.json.gz'}" in got.stderr and "truncated gzip file" in got.stderr
    again = runner.invoke(app, ["--ledger", str(db), "--as-of", OBSERVED, "collect", "cloudtrail", str(folder),
                                "--skip-digests"])
    assert again.exit_code == 0 and "0 read" in again.stdout  # recorded once; nothing new to read
    runner, db = _init(tmp_path / "json")
    js = runner.invoke(app, ["--ledger", str(db), "--as-of", OBSERVED, "--format", "json", "collect", "cloudtrail",
                             str(folder), "--skip-digests"])
    doc = orjson.loads(js.stdout)
    assert js.exit_code == 1 and doc["quarantined"] == 1 and doc["ok"] is False
    assert doc["quarantined_records"] == [{"location": str(folder / "cut.json.gz"), "line": None,
                                           "reason": "truncated gzip file"}]


def test_a_folder_named_relative_or_absolute_is_the_same_source(tmp_path: Path, monkeypatch) -> None:
    """Cursors, dedup keys of verdicts and entry locations must not depend on how SRC is spelled (or the cwd)."""
    import shutil

    shutil.copytree(SAMPLES / "valid", tmp_path / "trail")
    runner, db = _init(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ["--ledger", str(db), "--as-of", OBSERVED, "--format", "json", "collect", "cloudtrail"]
    first = orjson.loads(runner.invoke(app, args + ["trail", "--public-keys", str(KEYS)]).stdout)
    assert first["appended"] == 34 + 6 and first["source"] == f"cloudtrail:{tmp_path / 'trail'}"
    for spelling in (str(tmp_path / "trail"), str(tmp_path / "trail") + "/", "./trail/../trail"):
        again = runner.invoke(app, args + [spelling, "--public-keys", str(KEYS)])
        doc = orjson.loads(again.stdout)
        assert again.exit_code == 0 and (doc["read"], doc["appended"], doc["duplicates"]) == (6, 0, 6), spelling
    from collector.ledger import Ledger

    with Ledger.open(db) as ledger:
        locations = {orjson.loads(body)["source"]["location"] for _, _, body in ledger.entries()}
    assert all(os.path.isabs(loc) for loc in locations)


def _digest_keys(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*_CloudTrail-Digest_*.json.gz"))


def test_a_bad_signature_sidecar_is_one_invalid_digest_not_the_end_of_validation(tmp_path: Path) -> None:
    import shutil

    trail = tmp_path / "trail"
    shutil.copytree(SAMPLES / "valid", trail)
    digests = _digest_keys(trail)
    digests[2].with_name(digests[2].name + ".sig.json").write_text("not json")
    digests[3].with_name(digests[3].name + ".sig.json").write_text("[1, 2]")
    runner = CliRunner()
    got = runner.invoke(app, ["cloudtrail", "validate", str(trail), "--start", "2026-11-20T12:00:00Z", "--end",
                              "2026-11-20T18:00:00Z", "--public-keys", str(KEYS)])
    assert got.exit_code == 1, got.output
    assert f"{digests[2]}\tINVALID: signature verification failed (signature sidecar is not JSON)" in got.stdout
    assert f"{digests[3]}\tINVALID: signature verification failed (no signature metadata)" in got.stdout
    assert "4/6 digest files valid, 2 INVALID" in got.stdout


def test_a_bad_provider_metadata_sidecar_is_one_invalid_digest(tmp_path: Path) -> None:
    import shutil

    trail = tmp_path / "trail"
    shutil.copytree(SAMPLES / "valid", trail)
    digest = _digest_keys(trail)[1]
    sig = orjson.loads(digest.with_name(digest.name + ".sig.json").read_bytes())
    for path in _digest_keys(trail):  # the provider's form: <digest>.meta.json
        side = path.with_name(path.name + ".sig.json")
        meta = orjson.loads(side.read_bytes())
        side.unlink()
        path.with_name(path.name + ".meta.json").write_bytes(orjson.dumps({"metadata": {
            "signature": meta["signature"], "signature-algorithm": meta["signature-algorithm"]}}))
    assert sig["signature"]
    digest.with_name(digest.name + ".meta.json").write_text("[]")
    runner = CliRunner()
    got = runner.invoke(app, ["cloudtrail", "validate", str(trail), "--start", "2026-11-20T12:00:00Z", "--end",
                              "2026-11-20T18:00:00Z", "--public-keys", str(KEYS)])
    assert got.exit_code == 1, got.output
    assert "5/6 digest files valid, 1 INVALID" in got.stdout
    assert f"{digest}\tINVALID: signature verification failed (" in got.stdout
    assert "metadata sidecar is not a JSON object" in got.stdout


def test_the_oldest_digests_deleted_are_each_named_with_their_log_files(tmp_path: Path) -> None:
    """Deleting the first digests of the period: each is named (from the cadence, back to --start), and the
    log files of their hours are listed in no digest. AWS's tool names only the newest of them."""
    import shutil

    trail = tmp_path / "trail"
    shutil.copytree(SAMPLES / "valid", trail)
    for digest in _digest_keys(trail)[:2]:  # 13:00 and 14:00 (the hours 12-13 and 13-14)
        digest.unlink()
        digest.with_name(digest.name + ".sig.json").unlink()
    runner = CliRunner()
    got = runner.invoke(app, ["cloudtrail", "validate", str(trail), "--start", "2026-11-20T12:00:00Z", "--end",
                              "2026-11-20T18:00:00Z", "--public-keys", str(KEYS)])
    assert got.exit_code == 1, got.output
    missing = [line for line in got.stdout.splitlines() if line.startswith("Digest file") and "INVALID" in line]
    assert len(missing) == 2 and "T140000Z.json.gz\tINVALID: not found" in missing[0]
    assert "T130000Z.json.gz\tINVALID: not found (deleted: inferred from the hourly digest cadence)" in missing[1]
    unlisted = [line for line in got.stdout.splitlines() if "listed in no digest" in line]
    stamps = [line.split("\t")[1].rsplit("/", 1)[-1].split("_")[3] for line in unlisted]
    assert stamps == ["20261120T1220Z", "20261120T1250Z", "20261120T1320Z", "20261120T1350Z"]


def test_log_files_of_an_account_or_region_without_any_digest_are_not_passed_over(tmp_path: Path) -> None:
    """A log file in a region (or account) that has no digest chain at all is not verified by anything: say so,
    as for a folder with no digest at all (INVALID for validate, GAP when collecting)."""
    import shutil

    trail = tmp_path / "trail"
    shutil.copytree(SAMPLES / "valid", trail)
    log = sorted(trail.rglob("*_CloudTrail_us-gov-west-1_*.json.gz"))[3]
    for old, new in (("us-gov-west-1", "us-gov-east-1"), ("123456789012", "210987654321")):
        copy = Path(str(log).replace(old, new))
        copy.parent.mkdir(parents=True)
        shutil.copy(log, copy)
    runner = CliRunner()
    args = ["--start", "2026-11-20T12:00:00Z", "--end", "2026-11-20T18:00:00Z", "--public-keys", str(KEYS)]
    got = runner.invoke(app, ["cloudtrail", "validate", str(trail), *args])
    assert got.exit_code == 1, got.output
    problems = [line for line in got.stdout.splitlines() if line.startswith("Digest chain")]
    assert problems == [
        f"Digest chain\t{trail}/AWSLogs/{account}/CloudTrail/{region}\tINVALID: 1 log file(s) between "
        "2026-11-20T13:50:00Z and 2026-11-20T13:50:00Z and no digest chain for this account and region: the log "
        "files are not verified" for account, region in (("123456789012", "us-gov-east-1"),
                                                          ("210987654321", "us-gov-west-1"))]
    assert "6/6 digest files valid; 12/12 log files valid; 2 chain problem(s) INVALID" in got.stdout
    runner, db = _init(tmp_path)
    collected = runner.invoke(app, ["--ledger", str(db), "--as-of", OBSERVED, "collect", "cloudtrail", str(trail),
                                    *args])
    assert collected.exit_code == 0, collected.output
    assert collected.stdout.count("GAP: 1 log file(s)") == 2


def test_collect_json_names_what_is_invalid(tmp_path: Path) -> None:
    """The human output lists every non-valid verdict; the JSON output must too, not only a tally."""
    runner, db = _init(tmp_path)
    got = runner.invoke(app, ["--ledger", str(db), "--as-of", OBSERVED, "--format", "json", "collect", "cloudtrail",
                              str(SAMPLES / "log-file-modified"), "--public-keys", str(KEYS)])
    assert got.exit_code == 1, got.output
    doc = orjson.loads(got.stdout)
    problems = doc["digests"]["problems"]
    assert doc["ok"] is False and doc["digests"]["ok"] is False and len(problems) == 1
    assert problems[0]["status"] == "invalid" and problems[0]["reason"] == "hash value doesn't match"
    assert problems[0]["location"].startswith(str(SAMPLES / "log-file-modified" / "AWSLogs"))
