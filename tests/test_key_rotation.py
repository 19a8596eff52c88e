"""After a key rotation, the new key still refuses to sign a history the old key's checkpoints contradict.

The signer checks that the tree it signs extends the newest checkpoint its own key signed (in the
ledger, and anchored in S3 with a publish target). A new key has signed nothing yet, so without
more, whoever rolled the ledger back at rotation time would get the rollback signed. With the old
public keys named (`[signer] previous_keys`, `fedledger checkpoint --previous-key`), the newest
checkpoint any of those keys or the current one signed must hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from tests.ops_workspace import AS_OF, Workspace, make_workspace, manual_source, rewrite_history, write_events

REGION = "us-east-1"


def _rotate(ws: Workspace, *, previous: bool, publish: str = "") -> Path:
    """Move the ledger's key aside as the old key and create a new one in its place; point the config at them."""
    from collector.signing import generate_private_key, write_private_key, write_public_key

    folder = ws.ledger.parent
    old_pub = folder / "2025.pub"
    (folder / "fedledger.pub").rename(old_pub)
    (folder / "fedledger.key").rename(folder / "2025.key")
    key = generate_private_key("ecdsa-p256")
    write_private_key(folder / "fedledger.key", key)
    write_public_key(folder / "fedledger.pub", key.public_key())
    text = ws.config.read_text()
    signer = f'[signer]\nkey_file = "ledger/fedledger.key"\n' + (
        f'previous_keys = ["ledger/2025.pub"]\n' if previous else "")
    ws.config.write_text(text.replace("\n\n", "\n\n" + signer + "\n", 1) + publish)
    return old_pub


def _workspace(tmp_path: Path) -> Workspace:
    events = write_events(tmp_path / "a.jsonl", 20)
    ws = make_workspace(tmp_path / "ws", manual_source("m", str(events)))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0  # the old key signs size 20
    return ws


def test_the_new_key_refuses_a_history_the_old_key_contradicts(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    _rotate(ws, previous=True)
    rewrite_history(ws, rewrite=3, delete_checkpoints=False)  # entries rewritten; the old key's checkpoint kept
    got = ws.cli("checkpoint", "--config", str(ws.config))
    assert got.exit_code == 1, got.output
    assert "previous key" in got.stderr and "rewritten" in got.stderr, got.stderr
    write_events(tmp_path / "a.jsonl", 25)  # the next scheduled run has new entries to checkpoint
    got = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert got.exit_code == 1 and json.loads(got.stdout)["failed_steps"][0]["step"] == "checkpoint", got.output


def test_without_the_previous_key_the_gap_is_the_documented_one(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    _rotate(ws, previous=False)
    rewrite_history(ws, rewrite=3, delete_checkpoints=False)
    assert ws.cli("checkpoint", "--config", str(ws.config)).exit_code == 0  # nothing by the new key to hold to


def test_checkpoint_previous_key_option(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    old_pub = _rotate(ws, previous=False)
    rewrite_history(ws, keep=10, delete_checkpoints=False)  # cut back below the old key's checkpoint
    got = ws.cli("--ledger", str(ws.ledger), "checkpoint", "--previous-key", str(old_pub))
    assert got.exit_code == 1 and "entries were removed" in got.stderr, got.output


def test_an_honest_rotation_signs_on(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    _rotate(ws, previous=True)
    write_events(tmp_path / "a.jsonl", 30)  # 10 more events
    got = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert got.exit_code == 0, got.output
    verify = ws.cli("--ledger", str(ws.ledger), "verify", "--origin", "example.gov/ops-test",
                    "--trusted-key", str(ws.ledger.parent / "fedledger.pub"),
                    "--trusted-key", str(ws.ledger.parent / "2025.pub"))
    assert verify.exit_code == 0, verify.output


def test_the_old_keys_anchor_holds_after_rotation(tmp_path: Path, moto_endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    s3.create_bucket(Bucket="rotation-anchors", ObjectLockEnabledForBucket=True)
    publish = (f'\n[publish]\ncheckpoint = "s3://rotation-anchors/ci/"\nretention_days = 1\n'
               f'region = "{REGION}"\nendpoint_url = "{moto_endpoint}"\n')
    events = write_events(tmp_path / "a.jsonl", 20)
    ws = make_workspace(tmp_path / "ws", manual_source("m", str(events)), extra_toml=publish)
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0  # old key anchors size 20
    _rotate(ws, previous=True)
    rewrite_history(ws, keep=10)  # rolled back, and every checkpoint row deleted
    write_events(tmp_path / "b.jsonl", 3)
    ws.config.write_text(ws.config.read_text().replace(str(events), str(tmp_path / "b.jsonl")))
    got = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert got.exit_code == 1, got.output
    assert "previous key" in got.stderr and "s3://rotation-anchors/ci/" in got.stderr, got.stderr


def test_config_check_reads_the_previous_keys(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    _rotate(ws, previous=True)
    fine = ws.cli("config", "check", "--config", str(ws.config))
    assert "previous keys (a new tree must extend what they signed)" in fine.output and "WARNING" not in fine.output
    (ws.ledger.parent / "2025.pub").write_text("not a key\n")
    got = ws.cli("config", "check", "--config", str(ws.config))
    assert "WARNING: signer.previous_keys:" in got.output and "2025.pub" in got.output, got.output
