"""With a publish target, the signer checks the anchor too (moto's S3 server over HTTP).

`fedledger checkpoint`/`run` refuse to sign a tree that does not extend the newest checkpoint the
key signed in the ledger; whoever can write the ledger can delete those rows. So when checkpoints
are anchored in S3, `run` (and the bundle it builds, `fedledger bundle --config` with a
`[publish]` target, and `fedledger checkpoint --config`/`--anchor`) also require the new tree to extend the newest checkpoint this key anchored
there, by a consistency proof. A refusal is a detected integrity problem: `run` exits 1, as
`fedledger checkpoint` and `fedledger bundle` do; an anchor that cannot be read fails the step
(exit 3) and nothing is signed.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from collector.checkpoint import Checkpoint
from collector.checkpoint_fetch import S3CheckpointAnchor
from collector.checkpoint_publish import publish_checkpoint
from collector.errors import IntegrityError, SourceUnavailable
from collector.signing import FileSigner, load_file_signer
from tests.ledger_fixtures import fixed_ed25519
from tests.moto_server import _free_port
from tests.ops_workspace import AS_OF, ORIGIN, Workspace, make_workspace, manual_source, rewrite_history, write_events

REGION = "us-east-1"


@pytest.fixture()
def s3(moto_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)


def _bucket(s3, name: str) -> str:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _workspace(tmp_path: Path, endpoint: str, bucket: str, count: int = 50) -> tuple[Workspace, Path]:
    events = write_events(tmp_path / "a.jsonl", count)
    publish = (f'[publish]\ncheckpoint = "s3://{bucket}/ci-evidence/"\nretention_days = 1\n'
               f'region = "{REGION}"\nendpoint_url = "{endpoint}"\n')
    return make_workspace(tmp_path / "ws", manual_source("reviews", str(events)), extra_toml=publish), events


def _run(ws: Workspace, *extra: str):  # type: ignore[no-untyped-def]
    return ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json", *extra)


def _anchored(s3, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def _checkpoint_rows(ws: Workspace) -> int:
    conn = sqlite3.connect(ws.ledger)
    try:
        return int(conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0])
    finally:
        conn.close()


def _more_events(events: Path, count: int) -> None:
    with open(events, "a", encoding="utf-8") as handle:
        for i in range(count):
            handle.write(f'{{"time":"2026-01-20T23:00:{i:02d}Z","kind":"manual.review","n":"more-{i}"}}\n')


def _failed_steps(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {step["step"]: step["message"] for step in json.loads(result.stdout)["failed_steps"]}


def test_run_refuses_to_sign_a_rewritten_history_that_the_anchor_contradicts(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "anchor-rewrite")
    ws, events = _workspace(tmp_path, moto_endpoint, bucket)
    first = _run(ws)
    assert first.exit_code == 0, first.stderr
    anchored = _anchored(s3, bucket)
    assert len(anchored) == 1 and ".000000000050." in anchored[0]

    rewrite_history(ws, rewrite=5)
    _more_events(events, 10)
    second = _run(ws)
    assert second.exit_code == 1, second.stdout + second.stderr  # tampering, not an unavailable service
    (step,) = json.loads(second.stdout)["failed_steps"]
    assert step["step"] == "checkpoint" and step["error"] == "IntegrityError" and step["exit_code"] == 1
    message = _failed_steps(second)["checkpoint"]
    assert message.startswith("refusing to sign size 60: it does not extend the checkpoint this key anchored at "
                              f"s3://{bucket}/{anchored[0]} (size 50, root "), message
    assert "\n" not in message
    assert _checkpoint_rows(ws) == 0 and ws.size() == 60  # collected, but nothing signed
    assert _anchored(s3, bucket) == anchored  # and nothing new anchored


def test_run_refuses_a_rewritten_history_of_the_anchored_size(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "anchor-same-size")
    ws, _events = _workspace(tmp_path, moto_endpoint, bucket)
    assert _run(ws).exit_code == 0
    rewrite_history(ws, rewrite=49)
    second = _run(ws)
    assert second.exit_code == 1
    assert "refusing to sign size 50: it does not extend the checkpoint this key anchored" in _failed_steps(second)["checkpoint"]
    assert _checkpoint_rows(ws) == 0


def test_run_refuses_to_sign_a_ledger_cut_below_the_anchor(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "anchor-cut")
    ws, _events = _workspace(tmp_path, moto_endpoint, bucket)
    assert _run(ws).exit_code == 0
    rewrite_history(ws, keep=30)
    second = _run(ws)
    assert second.exit_code == 1
    message = _failed_steps(second)["checkpoint"]
    assert message.startswith(f"refusing to sign size 30: this key signed size 50 in the checkpoint anchored at s3://{bucket}/"), message
    assert _checkpoint_rows(ws) == 0


def test_run_with_a_bundle_does_not_sign_through_the_bundle_step(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    """The bundle step signs a fresh checkpoint when the newest does not cover the ledger: after the
    checkpoint step refused, it must refuse too, not sign the rewritten history itself."""
    bucket = _bucket(s3, "anchor-bundle")
    ws, _events = _workspace(tmp_path, moto_endpoint, bucket)
    assert _run(ws).exit_code == 0
    rewrite_history(ws, rewrite=5)
    second = _run(ws, "--bundle")
    assert second.exit_code == 1
    steps = _failed_steps(second)
    assert "refusing to sign" in steps["checkpoint"] and "refusing to sign" in steps["bundle"], steps
    assert _checkpoint_rows(ws) == 0


def test_bundle_with_a_publish_target_refuses_like_checkpoint_does(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "anchor-bundle-cmd")
    ws, _events = _workspace(tmp_path, moto_endpoint, bucket)
    assert _run(ws).exit_code == 0
    rewrite_history(ws, rewrite=5)
    result = ws.cli("--ledger", str(ws.ledger), "--as-of", AS_OF, "bundle", "--out", str(tmp_path / "b"),
                    "--config", str(ws.config))
    assert result.exit_code == 1, result.output  # as `fedledger checkpoint` refusing to sign
    assert "refusing to sign size 50" in result.stderr and f"s3://{bucket}/" in result.stderr
    assert _checkpoint_rows(ws) == 0


def test_run_signs_and_anchors_a_ledger_that_extends_the_anchor(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "anchor-honest")
    ws, events = _workspace(tmp_path, moto_endpoint, bucket)
    assert _run(ws).exit_code == 0
    _more_events(events, 10)
    second = _run(ws)
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["published"]["size"] == 60 and len(_anchored(s3, bucket)) == 2


def test_an_unreadable_anchor_fails_the_checkpoint_step_and_nothing_is_signed(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    missing = "anchor-bucket-that-does-not-exist"
    ws, _events = _workspace(tmp_path, moto_endpoint, missing)
    result = _run(ws)
    assert result.exit_code == 3
    steps = _failed_steps(result)
    assert steps["checkpoint"].startswith(f"cannot read the checkpoints anchored at s3://{missing}/ci-evidence/"), steps
    assert "nothing signed" in steps["checkpoint"] and "\n" not in steps["checkpoint"]
    assert _checkpoint_rows(ws) == 0 and ws.size() == 50


def test_an_unreachable_anchor_endpoint_fails_the_checkpoint_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ws, _events = _workspace(tmp_path, f"http://127.0.0.1:{_free_port()}", "anchors")
    result = _run(ws)
    assert result.exit_code == 3
    assert _failed_steps(result)["checkpoint"].startswith("cannot read the checkpoints anchored at s3://anchors/")
    assert _checkpoint_rows(ws) == 0


# -- which anchored checkpoint counts ------------------------------------------------------------

def _note(signer: FileSigner, size: int, root: bytes, origin: str = ORIGIN) -> str:
    return signer.sign_checkpoint(Checkpoint(origin, size, root))


def test_the_newest_checkpoint_this_key_signed_is_the_anchor_others_are_skipped(tmp_path: Path, s3) -> None:  # type: ignore[no-untyped-def]
    """Objects that anyone with write access to the bucket could add and that this key did not
    sign for this origin (another key, another origin, not a note at all) are skipped: they
    cannot hide a genuine anchor, which Object Lock keeps."""
    bucket = _bucket(s3, "anchor-pick")
    until = datetime.now(timezone.utc) + timedelta(days=1)
    mine = FileSigner(ORIGIN, fixed_ed25519("mine"))
    other = FileSigner(ORIGIN, fixed_ed25519("other"))
    url = f"s3://{bucket}/p/"
    for note, size in ((_note(mine, 7, b"\x07" * 32), 7), (_note(mine, 9, b"\x09" * 32), 9),
                       (_note(other, 90, b"\x5a" * 32), 90), (_note(mine, 95, b"\x5f" * 32, "elsewhere.gov/x"), 95),
                       ("not a note\n", 99)):
        publish_checkpoint(s3, url, note, size=size, retain_until=until)
    anchor = S3CheckpointAnchor(url, client=s3)
    found = anchor.newest_signed(ORIGIN, mine.verifier)
    assert found is not None and (found.checkpoint.size, found.checkpoint.root) == (9, b"\x09" * 32)
    assert found.where.startswith(f"s3://{bucket}/p/checkpoint.000000000009.")
    assert anchor.newest_signed(ORIGIN, FileSigner(ORIGIN, fixed_ed25519("third")).verifier) is None
    assert S3CheckpointAnchor(f"s3://{bucket}/empty", client=s3).newest_signed(ORIGIN, mine.verifier) is None

    # A note carrying this key's name and ID whose signature fails is a forged or edited anchor: refuse.
    forged = _note(mine, 100, b"\x64" * 32).replace("\n100\n", "\n101\n")
    publish_checkpoint(s3, url, forged, size=101, retain_until=until)
    with pytest.raises(IntegrityError, match="does not verify"):
        anchor.newest_signed(ORIGIN, mine.verifier)


def test_the_run_key_finds_its_own_anchor(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    """The anchor check is made with the signer's own verifier: the run's key file finds its anchor."""
    bucket = _bucket(s3, "anchor-key")
    ws, _events = _workspace(tmp_path, moto_endpoint, bucket)
    assert _run(ws).exit_code == 0
    signer = load_file_signer(ws.ledger.with_suffix(".key"), ORIGIN)
    found = S3CheckpointAnchor(f"s3://{bucket}/ci-evidence/", client=s3).newest_signed(ORIGIN, signer.verifier)
    assert found is not None and found.checkpoint.size == 50


def test_an_anchor_that_cannot_be_listed_is_unavailable(s3) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceUnavailable, match="nothing signed"):
        S3CheckpointAnchor("s3://no-such-anchor-bucket/p/", client=s3).newest_signed(
            ORIGIN, FileSigner(ORIGIN, fixed_ed25519("mine")).verifier)


# -- `fedledger checkpoint` by hand -------------------------------------------------------------

def _checkpoint_cmd(ws: Workspace, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return ws.cli("--ledger", str(ws.ledger), "--as-of", AS_OF, "checkpoint", *extra, env=env)


def test_checkpoint_command_checks_the_anchor_from_the_config_or_given(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    """An operator signing by hand gets the run's protection: with --config ([publish] checkpoint)
    or --anchor s3://…, a rewritten history the anchor contradicts is not signed."""
    bucket = _bucket(s3, "anchor-checkpoint-cmd")
    ws, _events = _workspace(tmp_path, moto_endpoint, bucket)
    assert _run(ws).exit_code == 0
    rewrite_history(ws, rewrite=5)
    by_config = _checkpoint_cmd(ws, "--config", str(ws.config))
    assert by_config.exit_code == 1, by_config.output
    assert "refusing to sign size 50: it does not extend the checkpoint this key anchored at " \
           f"s3://{bucket}/ci-evidence/" in by_config.stderr
    s3_env = {"AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_DEFAULT_REGION": REGION}
    given = _checkpoint_cmd(ws, "--anchor", f"s3://{bucket}/ci-evidence/", env=s3_env)
    assert given.exit_code == 1 and "anchored at s3://" in given.stderr, given.output
    assert _checkpoint_rows(ws) == 0
    missing = _checkpoint_cmd(ws, "--anchor", "s3://no-such-anchor-bucket/ci-evidence/", env=s3_env)
    assert missing.exit_code == 3 and "nothing signed" in missing.stderr, missing.output
    assert _checkpoint_rows(ws) == 0
    # Without a publish target it checks only the ledger's own checkpoints, which the attack deleted.
    assert _checkpoint_cmd(ws).exit_code == 0 and _checkpoint_rows(ws) == 1


def test_checkpoint_command_signs_a_ledger_that_extends_the_anchor(tmp_path: Path, s3, moto_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    bucket = _bucket(s3, "anchor-checkpoint-honest")
    ws, _events = _workspace(tmp_path, moto_endpoint, bucket)
    assert _run(ws).exit_code == 0
    more = write_events(tmp_path / "more.jsonl", 10, day=19)
    assert ws.cli("--ledger", str(ws.ledger), "append", str(more)).exit_code == 0
    result = ws.cli("--ledger", str(ws.ledger), "--as-of", AS_OF, "--format", "json", "checkpoint",
                    "--config", str(ws.config))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["size"] == 60
