"""Key handover at rotation, and pinned key ranges.

The new key's first checkpoint is co-signed by the old key (`[signer] handover_key_file`,
`fedledger checkpoint --handover-key`), and names the new key in a `fedledger-key-handover` line.
An assessor who pins only the old key follows the rotation from the evidence itself (`verify`,
`verify-bundle`, `verify-proof`), for trees from the handover's size on only; the old key counts
only up to it, so a retired key that leaks vouches for nothing later. `--key-range KEYID:..SIZE`
limits a pinned key the same way by hand. Real keys throughout (ECDSA P-256 from `fedledger init`,
Ed25519 and ECDSA made here, AWS KMS keys on moto's server).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization

from collector.checkpoint import Checkpoint, MalformedCheckpoint, parse_checkpoint_body, split_note
from collector.checkpoint_keys import (
    HANDOVER_TAG,
    KeyRing,
    handover_line,
    note_handover,
    parse_key_range,
    read_handover,
)
from collector.errors import UsageError
from collector.ledger import Ledger
from collector.signing import (
    FileSigner,
    generate_private_key,
    load_file_signer,
    sign_handover,
    write_private_key,
    write_public_key,
)
from tests.ledger_fixtures import append_with_raw, fixed_ed25519, fixed_p256, make_golden
from tests.ops_workspace import AS_OF, ORIGIN, Workspace, make_workspace, manual_source, rewrite_history, write_events
from tests.pg_support import NEEDS_PG, pg_url  # noqa: F401 - pg_url is a fixture

REGION = "us-east-1"


# --- helpers ---------------------------------------------------------------------------------------


def _new_key(folder: Path, stem: str, key_type: str = "ed25519") -> tuple[Path, Path]:
    key = generate_private_key(key_type)
    write_private_key(folder / f"{stem}.key", key)
    write_public_key(folder / f"{stem}.pub", key.public_key())
    return folder / f"{stem}.key", folder / f"{stem}.pub"


def _key_id(public: Path) -> str:
    from collector.signing import load_public_keys

    return load_public_keys([public], ORIGIN)[0].key_id.hex()


def _workspace(tmp_path: Path, count: int = 20) -> tuple[Workspace, Path]:
    """A ledger whose `fedledger init` key (ECDSA P-256) signed size *count* in a run."""
    events = write_events(tmp_path / "a.jsonl", count)
    ws = make_workspace(tmp_path / "ws", manual_source("m", str(events)))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    return ws, events


def _rotate(ws: Workspace, *, handover: bool = True, previous: bool = True, new_type: str = "ed25519") -> None:
    """The old key moves to 2025.key/.pub, a new key takes fedledger.key/.pub; [signer] names them."""
    folder = ws.ledger.parent
    (folder / "fedledger.pub").rename(folder / "2025.pub")
    (folder / "fedledger.key").rename(folder / "2025.key")
    _new_key(folder, "fedledger", new_type)
    signer = '[signer]\nkey_file = "ledger/fedledger.key"\n'
    if previous:
        signer += 'previous_keys = ["ledger/2025.pub"]\n'
    if handover:
        signer += 'handover_key_file = "ledger/2025.key"\n'
    ws.config.write_text(ws.config.read_text().replace("\n\n", "\n\n" + signer + "\n", 1))


def _run(ws: Workspace):  # type: ignore[no-untyped-def]
    return ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")


def _verify(ws: Workspace, *keys: str, target: str | None = None, extra: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    args = ["verify", target or str(ws.ledger), "--origin", ORIGIN]
    for key in keys:
        args += ["--trusted-key", str(ws.ledger.parent / key)]
    return ws.cli(*args, *extra)


def _notes(ws: Workspace) -> list[tuple[int, int, str]]:
    conn = sqlite3.connect(ws.ledger)
    try:
        return [(int(i), int(s), str(n)) for i, s, n in conn.execute("SELECT id, size, note FROM checkpoints ORDER BY id")]
    finally:
        conn.close()


def _sign_behind_the_signers_back(ws: Workspace, key: Path, *, more: int = 0) -> str:
    """What someone holding a leaked key does: append entries and sign the tree with that key alone,
    straight into the ledger (no signer checks)."""
    from tests.ledger_fixtures import sign_checkpoint

    signer = load_file_signer(key, ORIGIN)
    with Ledger.open(ws.ledger) as ledger:
        if more:
            append_with_raw(ledger, range(1000, 1000 + more))
        return sign_checkpoint(ledger, signer)


def _handed_over(tmp_path: Path) -> Workspace:
    """Old key signed 20; the handover (new key + old key) at 30; the new key alone at 35."""
    ws, events = _workspace(tmp_path)
    _rotate(ws)
    write_events(events, 30)
    first = _run(ws)
    assert first.exit_code == 0, first.output
    write_events(events, 35)
    second = _run(ws)
    assert second.exit_code == 0, second.output
    return ws


# --- signing the handover ----------------------------------------------------------------------------


def test_run_signs_the_new_keys_first_checkpoint_as_a_handover_and_records_it(tmp_path: Path) -> None:
    ws, events = _workspace(tmp_path)
    _rotate(ws)
    write_events(events, 30)
    first = _run(ws)
    assert first.exit_code == 0, first.output
    assert HANDOVER_TAG in json.loads(first.stdout)["checkpoint"]["note"]
    old_id, new_id = _key_id(ws.ledger.parent / "2025.pub"), _key_id(ws.ledger.parent / "fedledger.pub")
    (_, size, note), = [row for row in _notes(ws) if row[1] == 30]
    body, sigs = split_note(note)
    assert [s.key_id.hex() for s in sigs] == [new_id, old_id]  # two signature lines on one note
    handover = read_handover(parse_checkpoint_body(body))
    assert handover is not None and handover.old_key_id.hex() == old_id and handover.new.key_id.hex() == new_id
    assert f"\n{HANDOVER_TAG} {old_id} {ORIGIN}+{new_id}+" in body  # the whole new public key, not only its ID
    # the stored note is the record: the next checkpoint is the new key's alone
    write_events(events, 35)
    assert _run(ws).exit_code == 0
    (_, _, later), = [row for row in _notes(ws) if row[1] == 35]
    assert note_handover(later) is None and len(split_note(later)[1]) == 1


def test_checkpoint_handover_key_option_reports_the_handover(tmp_path: Path) -> None:
    ws, _events = _workspace(tmp_path)
    _rotate(ws, handover=False)
    folder = ws.ledger.parent
    got = ws.cli("--ledger", str(ws.ledger), "--format", "json", "checkpoint", "--handover-key",
                 str(folder / "2025.key"), "--previous-key", str(folder / "2025.pub"))
    assert got.exit_code == 0, got.output
    doc = json.loads(got.stdout)
    assert doc["handover"] == {"from_key_id": _key_id(folder / "2025.pub"),
                               "to_key_id": _key_id(folder / "fedledger.pub"), "size": 20}
    assert "co-signed this checkpoint" in got.stderr and "BEGIN" not in got.stderr
    again = ws.cli("--ledger", str(ws.ledger), "--format", "json", "checkpoint", "--handover-key",
                   str(folder / "2025.key"), "--previous-key", str(folder / "2025.pub"))
    assert again.exit_code == 0 and json.loads(again.stdout)["handover"] is None  # a key hands over once


# --- refusals --------------------------------------------------------------------------------------


def _checkpoint(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return ws.cli("--ledger", str(ws.ledger), "checkpoint", *args)


def _one_line_error(result, code: int, text: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert "BEGIN" not in result.stderr and "PRIVATE" not in result.stderr


def test_a_handover_key_that_is_not_a_previous_key_is_refused(tmp_path: Path) -> None:
    ws, _events = _workspace(tmp_path)
    _rotate(ws, handover=False)
    folder = ws.ledger.parent
    _one_line_error(_checkpoint(ws, "--handover-key", str(folder / "2025.key")), 2, "is not one of the previous keys")
    other_key, other_pub = _new_key(folder, "other", "ecdsa-p256")
    _one_line_error(_checkpoint(ws, "--handover-key", str(folder / "2025.key"), "--previous-key", str(other_pub)),
                    2, f"(key IDs: {_key_id(other_pub)})")
    _one_line_error(_checkpoint(ws, "--handover-key", str(folder / "fedledger.key"), "--previous-key",
                                str(folder / "fedledger.pub")), 2, "the handover key is the signing key itself")
    assert len(_notes(ws)) == 1  # nothing signed


def test_the_config_needs_previous_keys_for_a_handover_key(tmp_path: Path) -> None:
    ws, _events = _workspace(tmp_path)
    _rotate(ws, previous=False)
    got = _run(ws)
    assert got.exit_code == 2 and "a handover key needs the old key's public key in signer.previous_keys" in got.output
    text = ws.config.read_text().replace('handover_key_file = "ledger/2025.key"\n',
                                         'handover_key_file = "ledger/2025.key"\nhandover_kms_key_id = "alias/old"\n'
                                         'previous_keys = ["ledger/2025.pub"]\n')
    ws.config.write_text(text)
    got = _run(ws)
    assert got.exit_code == 2 and "not both" in got.output


def test_config_check_says_whether_the_handover_key_is_a_previous_key(tmp_path: Path) -> None:
    ws, _events = _workspace(tmp_path)
    _rotate(ws)
    fine = ws.cli("config", "check", "--config", str(ws.config))
    assert "handover key (co-signs the new key's first checkpoint)" in fine.output and "WARNING" not in fine.output
    (ws.ledger.parent / "2025.pub").unlink()
    _new_key(ws.ledger.parent, "unrelated")
    (ws.ledger.parent / "unrelated.pub").rename(ws.ledger.parent / "2025.pub")
    got = ws.cli("config", "check", "--config", str(ws.config))
    assert "WARNING: signer.handover_key_file:" in got.output and "not one of the previous keys" in got.output, got.output


def test_the_old_key_co_signs_only_a_tree_that_extends_what_it_signed(tmp_path: Path) -> None:
    ws, _events = _workspace(tmp_path)
    _rotate(ws)
    rewrite_history(ws, rewrite=3, delete_checkpoints=False)
    got = ws.cli("checkpoint", "--config", str(ws.config))
    assert got.exit_code == 1 and "refusing to sign" in got.stderr and "previous key" in got.stderr, got.output
    assert len(_notes(ws)) == 1


def test_an_old_key_that_signed_nothing_here_does_not_hand_over(tmp_path: Path) -> None:
    """A key that never signed this ledger has nothing to vouch the tree extends (a wrong key file,
    or every checkpoint row deleted): refused, nothing signed."""
    ws, _events = _workspace(tmp_path)
    _rotate(ws, handover=False)
    folder = ws.ledger.parent
    stranger_key, stranger_pub = _new_key(folder, "stranger", "ecdsa-p256")
    _one_line_error(_checkpoint(ws, "--handover-key", str(stranger_key), "--previous-key", str(stranger_pub),
                                "--previous-key", str(folder / "2025.pub")), 1,
                    f"the previous key {_key_id(stranger_pub)} signed no checkpoint of this ledger")
    assert len(_notes(ws)) == 1


def test_a_new_key_that_already_signed_cannot_take_a_handover_later(tmp_path: Path) -> None:
    ws, events = _workspace(tmp_path)
    _rotate(ws, handover=False)
    write_events(events, 25)
    assert _run(ws).exit_code == 0  # the new key signs size 25 without a handover
    folder = ws.ledger.parent
    got = _checkpoint(ws, "--handover-key", str(folder / "2025.key"), "--previous-key", str(folder / "2025.pub"))
    _one_line_error(got, 2, "this key already signed checkpoint #2 (size 25) without a handover")


def test_a_key_hands_over_once(tmp_path: Path) -> None:
    ws = _handed_over(tmp_path)
    folder = ws.ledger.parent
    third_key, _third_pub = _new_key(folder, "third")
    got = _checkpoint(ws, "--key", str(third_key), "--handover-key", str(folder / "2025.key"),
                      "--previous-key", str(folder / "2025.pub"), "--previous-key", str(folder / "fedledger.pub"))
    _one_line_error(got, 1, "already handed over to key " + _key_id(folder / "fedledger.pub"))


def test_a_retired_key_signs_no_larger_tree(tmp_path: Path) -> None:
    ws = _handed_over(tmp_path)
    with Ledger.open(ws.ledger) as ledger:
        append_with_raw(ledger, range(2000, 2003))
    folder = ws.ledger.parent
    got = _checkpoint(ws, "--key", str(folder / "2025.key"))
    _one_line_error(got, 1, f"this key handed over to key {_key_id(folder / 'fedledger.pub')} at size 30")


# --- verify: following the handover ----------------------------------------------------------------


def test_an_assessor_pinning_only_the_old_key_follows_the_handover(tmp_path: Path) -> None:
    ws = _handed_over(tmp_path)
    old_id, new_id = _key_id(ws.ledger.parent / "2025.pub"), _key_id(ws.ledger.parent / "fedledger.pub")
    got = _verify(ws, "2025.pub")
    assert got.exit_code == 0, got.output
    assert f"key {new_id} accepted by handover from key {old_id} at size 30" in got.stdout
    assert f"key {old_id} pinned (" in got.stdout and "vouches for tree sizes up to 30" in got.stdout
    assert "vouches for tree sizes from 30 on; vouched for 2 checkpoint(s), sizes 30 to 35" in got.stdout
    assert got.stdout.strip().endswith("35/35 entries valid, 3/3 checkpoints valid, 0 INVALID")
    doc = json.loads(ws.cli("--format", "json", "verify", str(ws.ledger), "--origin", ORIGIN, "--trusted-key",
                            str(ws.ledger.parent / "2025.pub")).stdout)
    keys = {k["key_id"]: k for k in doc["keys"]}
    assert keys[old_id]["accepted"] == "pinned" and keys[old_id]["last_size"] == 30
    assert keys[new_id]["accepted"] == "handover" and keys[new_id]["first_size"] == 30
    assert keys[new_id]["handover_from"] == old_id and keys[new_id]["vouched_sizes"] == [30, 35]
    # an export carries the handover too
    assert ws.cli("--ledger", str(ws.ledger), "export", "--out", str(tmp_path / "x")).exit_code == 0
    assert _verify(ws, "2025.pub", target=str(tmp_path / "x")).exit_code == 0


def test_without_the_handover_the_old_key_alone_does_not_accept_the_new_one(tmp_path: Path) -> None:
    ws, events = _workspace(tmp_path)
    _rotate(ws, handover=False)
    write_events(events, 30)
    assert _run(ws).exit_code == 0
    got = _verify(ws, "2025.pub")
    assert got.exit_code == 1 and "INVALID: unknown-signer" in got.stdout


def test_a_leaked_old_key_vouches_for_nothing_after_the_handover(tmp_path: Path) -> None:
    ws = _handed_over(tmp_path)
    old_key = ws.ledger.parent / "2025.key"
    _sign_behind_the_signers_back(ws, old_key, more=5)  # size 40, signed by the retired key alone
    for pinned in (("2025.pub",), ("2025.pub", "fedledger.pub")):
        got = _verify(ws, *pinned)
        assert got.exit_code == 1, got.output
        line = next(line for line in got.stdout.splitlines() if "key-out-of-range" in line)
        assert "size 40 is signed only by key" in line and "retired at its handover" in line, line
        assert "not-checkpointed" in got.stdout  # entries 35..39: nothing that counts vouches for them


def test_a_leaked_old_key_cannot_hand_over_again_to_its_own_key(tmp_path: Path) -> None:
    ws = _handed_over(tmp_path)
    folder = ws.ledger.parent
    mallory = FileSigner(ORIGIN, fixed_p256("mallory"))
    with Ledger.open(ws.ledger) as ledger:
        append_with_raw(ledger, range(3000, 3004))
        ledger.add_checkpoint(lambda size, root: sign_handover(mallory, load_file_signer(folder / "2025.key", ORIGIN),
                                                               Checkpoint(ORIGIN, size, root)), AS_OF)
    got = _verify(ws, "2025.pub")
    assert got.exit_code == 1
    line = next(line for line in got.stdout.splitlines() if line.startswith("INVALID: key-out-of-range"))
    assert "retired at its handover to key" in line, line
    assert f"so its handover to key {mallory.verifier.key_id.hex()} does not count" in line, line
    assert mallory.verifier.key_id.hex() not in [
        k["key_id"] for k in json.loads(ws.cli("--format", "json", "verify", str(ws.ledger), "--origin", ORIGIN,
                                                 "--trusted-key", str(folder / "2025.pub")).stdout)["keys"]]


# --- handover notes that do not hold (library level, one per defect) ----------------------------------


def _golden_with(tmp_path: Path, sign_new) -> tuple[Path, Path, list[str]]:  # type: ignore[no-untyped-def]
    """A golden ledger (old Ed25519 key signs 8 and 20), then entries 20..29 and a note at 30 made by
    *sign_new(ledger)*; returns (db, old public key file, notes)."""
    golden = make_golden(tmp_path / "g")
    with Ledger.open(golden.db) as ledger:
        append_with_raw(ledger, range(20, 30))
        sign_new(ledger, golden.signer)
        notes = [cp.note for cp in ledger.checkpoints()]
    return golden.db, golden.public_key, notes


def _verify_db(db: Path, public: Path):  # type: ignore[no-untyped-def]
    from bundler.verify_cmd import verify_target

    return verify_target(db, trusted_keys=[public], origin="example.gov/fedledger-test", saved=[])


NEW = FileSigner("example.gov/fedledger-test", fixed_p256("new-key"))
THIRD = FileSigner("example.gov/fedledger-test", fixed_ed25519("third-key"))


def _store(ledger: Ledger, make) -> None:  # type: ignore[no-untyped-def]
    ledger.add_checkpoint(lambda size, root: make(Checkpoint(ledger.origin, size, root)), AS_OF)


def test_a_handover_without_the_new_keys_signature_accepts_nothing(tmp_path: Path) -> None:
    def sign(ledger: Ledger, old: FileSigner) -> None:
        line = handover_line(old.verifier, NEW.verifier)
        _store(ledger, lambda cp: old.sign_checkpoint(Checkpoint(cp.origin, cp.size, cp.root, (line,))))
        _store(ledger, NEW.sign_checkpoint)

    db, public, _notes_ = _golden_with(tmp_path, sign)
    report = _verify_db(db, public)
    codes = sorted(f.code for f in report.failures)
    assert codes == ["bad-handover", "unknown-signer"], report.failures
    assert "is not signed by key" in next(f.message for f in report.failures if f.code == "bad-handover")


def test_a_handover_that_does_not_match_the_ledger_voids_the_new_key(tmp_path: Path) -> None:
    """The old key signed a handover over another root (a rewritten history); the new key's later
    checkpoint matches the ledger, but does not extend what the old key vouched for."""
    def sign(ledger: Ledger, old: FileSigner) -> None:
        _store(ledger, lambda cp: sign_handover(NEW, old, Checkpoint(cp.origin, cp.size, bytes(32))))
        append_with_raw(ledger, range(30, 32))
        _store(ledger, NEW.sign_checkpoint)

    db, public, _notes_ = _golden_with(tmp_path, sign)
    report = _verify_db(db, public)
    by_code = {f.code: f.message for f in report.failures}
    assert set(by_code) == {"root-mismatch", "bad-handover"}, report.failures
    assert "vouched for only by key" in by_code["bad-handover"] and "root-mismatch" in by_code["bad-handover"]


def _sign_chain(ledger: Ledger, old: FileSigner) -> None:
    """After the golden ledger's 30 entries: the old key hands over to NEW at 30, NEW to THIRD at 34, THIRD signs 36."""
    _store(ledger, lambda cp: sign_handover(NEW, old, cp))
    append_with_raw(ledger, range(30, 34))
    _store(ledger, lambda cp: sign_handover(THIRD, NEW, cp))
    append_with_raw(ledger, range(34, 36))
    _store(ledger, THIRD.sign_checkpoint)


def test_a_chain_of_handovers_is_followed_from_the_first_key(tmp_path: Path) -> None:
    db, public, _notes_ = _golden_with(tmp_path, _sign_chain)
    report = _verify_db(db, public)
    assert report.ok, report.failures
    assert report.keys is not None
    ranges = {key.key_id: (key.first, key.last) for key in report.keys.keys}
    assert ranges == {_id(public): (0, 30), NEW.verifier.key_id.hex(): (30, 34),
                      THIRD.verifier.key_id.hex(): (34, None)}


def _id(public: Path) -> str:
    from collector.signing import load_public_keys

    return load_public_keys([public], "example.gov/fedledger-test")[0].key_id.hex()


def test_two_handovers_by_one_key_neither_holds(tmp_path: Path) -> None:
    """A key that hands over to two keys equivocated (a leaked key can forge a handover to its own):
    neither handover counts, and no new key is accepted."""
    def sign(ledger: Ledger, old: FileSigner) -> None:
        _store(ledger, lambda cp: sign_handover(NEW, old, cp))
        _store(ledger, lambda cp: sign_handover(THIRD, old, cp))  # same size, to another key

    db, public, _notes_ = _golden_with(tmp_path, sign)
    report = _verify_db(db, public)
    assert {f.code for f in report.failures} == {"bad-handover"}, report.failures
    assert len(report.failures) == 2 and all("handed over twice" in f.message for f in report.failures), report.failures
    accepted = {key.key_id for key in report.keys.keys if not key.void}  # type: ignore[union-attr]
    assert NEW.verifier.key_id.hex() not in accepted and THIRD.verifier.key_id.hex() not in accepted


@pytest.mark.parametrize("extensions, reason", [
    (lambda line: (line, line), "2 key handover lines"),
    (lambda line: (line.rsplit(" ", 1)[0] + " example.gov/x+00000000+AQ==",), "key handover line"),
    (lambda line: (HANDOVER_TAG + " nothex " + line.rsplit(" ", 1)[1],), "is not 'fedledger-key-handover"),
])
def test_a_malformed_handover_line_is_a_malformed_checkpoint(extensions, reason: str) -> None:  # type: ignore[no-untyped-def]
    old = FileSigner("example.gov/fedledger-test", fixed_ed25519("golden"))
    line = handover_line(old.verifier, NEW.verifier)
    note = old.sign_checkpoint(Checkpoint("example.gov/fedledger-test", 5, bytes(32), extensions(line)))
    with pytest.raises(MalformedCheckpoint, match=reason):
        read_handover(parse_checkpoint_body(split_note(note)[0]))
    ring = KeyRing([old.verifier])
    assert ring.follow_handovers([("n", note)], origin="example.gov/fedledger-test").accepted == {}


# --- pinned key ranges ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["abc", "1a2b3c4d", "1a2b3c4d:", "1a2b3c4d:..", "1a2b3c4d:9..3", "1a2b3c4d..5",
                                  "/etc/keys/old.pub:..5", "old.pub", "1a2b3c4d:-1..5", "1a2b3c4d:..99999999999999999999"])
def test_a_malformed_key_range_is_a_usage_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(UsageError):
        parse_key_range(text)
    ws, _events = _workspace(tmp_path, 5)
    got = _verify(ws, "fedledger.pub", extra=("--key-range", text))
    _one_line_error(got, 2, "--key-range")


def test_a_key_range_names_a_pinned_key(tmp_path: Path) -> None:
    ws, _events = _workspace(tmp_path, 5)
    _one_line_error(_verify(ws, "fedledger.pub", extra=("--key-range", "0badc0de:..5")), 2, "names no pinned key")
    key = _key_id(ws.ledger.parent / "fedledger.pub")
    _one_line_error(_verify(ws, "fedledger.pub", extra=("--key-range", f"{key}:..5", "--key-range", f"{key}:..9")),
                    2, "given twice")


def test_a_pinned_key_range_refuses_larger_trees(tmp_path: Path) -> None:
    ws, events = _workspace(tmp_path)  # signed at 20
    write_events(events, 30)
    assert _run(ws).exit_code == 0  # the same key signs 30
    key = _key_id(ws.ledger.parent / "fedledger.pub")
    fine = _verify(ws, "fedledger.pub", extra=("--key-range", f"{key}:..30"))
    assert fine.exit_code == 0 and f"key {key} pinned (" in fine.stdout and "(--key-range)" in fine.stdout
    cut = _verify(ws, "fedledger.pub", extra=("--key-range", f"{key}:..25"))
    assert cut.exit_code == 1
    line = next(line for line in cut.stdout.splitlines() if line.startswith("INVALID: key-out-of-range"))
    assert f"size 30 is signed only by key {key}, which may vouch for tree sizes up to 25 (pinned with --key-range)" in line
    assert "not-checkpointed" in cut.stdout


def test_a_pinned_range_before_the_handover_refuses_the_handover(tmp_path: Path) -> None:
    """The provider said the old key retired at 25, but it signed a handover at 30: the evidence
    contradicts what the assessor was told, and the new key is not accepted."""
    ws = _handed_over(tmp_path)
    old = _key_id(ws.ledger.parent / "2025.pub")
    got = _verify(ws, "2025.pub", extra=("--key-range", f"{old}:..25"))
    assert got.exit_code == 1
    assert "so its handover to key" in got.stdout and "does not count" in got.stdout


# --- verify-bundle ----------------------------------------------------------------------------------


def test_verify_bundle_follows_the_handover_and_a_range_cuts_it(tmp_path: Path) -> None:
    ws, events = _workspace(tmp_path)
    _rotate(ws)
    write_events(events, 30)
    assert _run(ws).exit_code == 0  # the handover, at 30
    write_events(events, 33)
    assert _run(ws).exit_code == 0
    made = ws.cli("--ledger", str(ws.ledger), "bundle", "--out", str(tmp_path / "b"), "--config", str(ws.config),
                  "--controls", "AU-9", "--as-of", AS_OF, "--workers", "1")
    assert made.exit_code == 0, made.output
    old, new = _key_id(ws.ledger.parent / "2025.pub"), _key_id(ws.ledger.parent / "fedledger.pub")
    args = ["verify-bundle", str(tmp_path / "b"), "--origin", ORIGIN, "--trusted-key", str(ws.ledger.parent / "2025.pub")]
    got = ws.cli(*args)
    assert got.exit_code == 0, got.output
    assert f"valid: key {new} accepted by handover from key {old} at size 30 (ledger/checkpoints/" in got.stdout
    assert f"valid: MANIFEST.sig: manifest signed by key {new}, accepted by handover from key {old} at size 30" in got.stdout
    cut = ws.cli(*args, "--key-range", f"{old}:..20")
    assert cut.exit_code == 1
    assert "INVALID: unknown-signer [MANIFEST.sig]" in cut.stdout, cut.stdout
    assert f"so its handover to key {new} does not count" in cut.stdout, cut.stdout


def test_verify_bundle_refuses_a_bundle_made_with_the_leaked_retired_key(tmp_path: Path) -> None:
    """Whoever holds the retired key signs a larger tree with it behind the signer's back, and a
    bundle of it: its manifest signature and its checkpoint count for nothing."""
    ws = _handed_over(tmp_path)
    folder = ws.ledger.parent
    _sign_behind_the_signers_back(ws, folder / "2025.key", more=2)  # size 37
    made = ws.cli("--ledger", str(ws.ledger), "bundle", "--out", str(tmp_path / "b"), "--key", str(folder / "2025.key"),
                  "--controls", "AU-9", "--as-of", AS_OF, "--workers", "1")
    assert made.exit_code == 0, made.output
    got = ws.cli("verify-bundle", str(tmp_path / "b"), "--origin", ORIGIN, "--trusted-key", str(folder / "2025.pub"))
    assert got.exit_code == 1
    line = next(line for line in got.stdout.splitlines() if line.startswith("INVALID: key-out-of-range [MANIFEST.sig]"))
    assert "the manifest is for the checkpoint of size 37" in line and "retired at its handover" in line, line
    assert "INVALID: checkpoint-not-found" in got.stdout


# --- verify-proof -----------------------------------------------------------------------------------


def test_verify_proof_follows_the_handover_the_proof_carries(tmp_path: Path) -> None:
    ws = _handed_over(tmp_path)
    folder = ws.ledger.parent
    old, new = _key_id(folder / "2025.pub"), _key_id(folder / "fedledger.pub")
    proof = tmp_path / "p.json"
    proof.write_text(ws.cli("--ledger", str(ws.ledger), "prove", "3").stdout)
    doc = json.loads(proof.read_text())
    assert doc["tree_size"] == 35 and [h["size"] for h in doc["handovers"]] == [30]
    pinned = ("--trusted-key", str(folder / "2025.pub"), "--origin", ORIGIN)
    got = ws.cli("verify-proof", str(proof), *pinned)
    assert got.exit_code == 0, got.output
    assert got.stdout.splitlines() == [
        f"valid: key {new} accepted by handover from key {old} at size 30; size 35 extends it (consistency proof)",
        f"valid: entry 3 is in {ORIGIN} at size 35"]
    consistency = tmp_path / "c.json"
    consistency.write_text(ws.cli("--ledger", str(ws.ledger), "prove", "--consistency", "20", "35").stdout)
    assert ws.cli("verify-proof", str(consistency), *pinned).exit_code == 0
    # a consistency proof from the handover that does not verify: the new key is not accepted
    first = bytearray(bytes.fromhex(doc["handovers"][0]["consistency"][0]))
    first[0] ^= 1
    doc["handovers"][0]["consistency"][0] = bytes(first).hex()
    proof.write_text(json.dumps(doc))
    _one_line_error(ws.cli("verify-proof", str(proof), *pinned), 1, "does not extend the handover checkpoint at size 30")
    # no handovers in the proof: the new key's checkpoint is by a key the assessor does not trust
    del doc["handovers"]
    proof.write_text(json.dumps(doc))
    _one_line_error(ws.cli("verify-proof", str(proof), *pinned), 1, "no signature by a trusted key")


def test_verify_proof_key_range(tmp_path: Path) -> None:
    ws, _events = _workspace(tmp_path)
    proof = tmp_path / "p.json"
    proof.write_text(ws.cli("--ledger", str(ws.ledger), "prove", "3").stdout)
    key = _key_id(ws.ledger.parent / "fedledger.pub")
    pinned = ("--trusted-key", str(ws.ledger.parent / "fedledger.pub"), "--origin", ORIGIN)
    assert ws.cli("verify-proof", str(proof), *pinned, "--key-range", f"{key}:..20").exit_code == 0
    _one_line_error(ws.cli("verify-proof", str(proof), *pinned, "--key-range", f"{key}:..19"), 1,
                    "size 20 is signed only by key")
    _one_line_error(ws.cli("verify-proof", str(proof), *pinned, "--key-range", "nonsense"), 2, "--key-range")


# --- AWS KMS ----------------------------------------------------------------------------------------


def test_an_old_kms_key_hands_over_to_a_new_kms_key(tmp_path: Path, moto_endpoint: str) -> None:
    """The recommended set-up keeps the key in KMS: the old KMS key co-signs the new KMS key's first
    checkpoint (`--handover-kms-key-id`), with the region and endpoint of the signing key."""
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name=REGION)
    old_id, new_id = (kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
                      for _ in range(2))
    old_pub = tmp_path / "old.pub"
    old_pub.write_bytes(serialization.load_der_public_key(kms.get_public_key(KeyId=old_id)["PublicKey"]).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    new_pub = tmp_path / "new.pub"
    new_pub.write_bytes(serialization.load_der_public_key(kms.get_public_key(KeyId=new_id)["PublicKey"]).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    ledger = tmp_path / "l.db"
    ws = Workspace(tmp_path, tmp_path / "none.toml", ledger)
    aws = ("--endpoint-url", moto_endpoint, "--region", REGION)
    assert ws.cli("--ledger", str(ledger), "init", "--origin", ORIGIN, "--no-key").exit_code == 0
    assert ws.cli("--ledger", str(ledger), "append", str(write_events(tmp_path / "a.jsonl", 10))).exit_code == 0
    assert ws.cli("--ledger", str(ledger), "checkpoint", "--kms-key-id", old_id, *aws).exit_code == 0
    assert ws.cli("--ledger", str(ledger), "append", str(write_events(tmp_path / "b.jsonl", 4, day=21))).exit_code == 0
    got = ws.cli("--ledger", str(ledger), "--format", "json", "checkpoint", "--kms-key-id", new_id,
                 "--handover-kms-key-id", old_id, "--previous-key", str(old_pub), *aws)
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["handover"]["size"] == 14
    verified = ws.cli("verify", str(ledger), "--origin", ORIGIN, "--trusted-key", str(old_pub))
    assert verified.exit_code == 0, verified.output
    assert f"key {_key_id(new_pub)} accepted by handover from key {_key_id(old_pub)} at size 14" in verified.stdout


# --- PostgreSQL: the handover is a stored note like any other ------------------------------------------


@NEEDS_PG
def test_a_postgresql_ledger_keeps_and_verifies_the_handover(tmp_path: Path, pg_url: str) -> None:
    old_key, old_pub = _new_key(tmp_path, "old", "ecdsa-p256")
    new_key, new_pub = _new_key(tmp_path, "new")
    ws = Workspace(tmp_path, tmp_path / "none.toml", tmp_path / "unused.db")
    assert ws.cli("--ledger", pg_url, "init", "--origin", ORIGIN, "--no-key").exit_code == 0
    assert ws.cli("--ledger", pg_url, "append", str(write_events(tmp_path / "a.jsonl", 6))).exit_code == 0
    assert ws.cli("--ledger", pg_url, "checkpoint", "--key", str(old_key)).exit_code == 0
    assert ws.cli("--ledger", pg_url, "append", str(write_events(tmp_path / "b.jsonl", 3, day=21))).exit_code == 0
    got = ws.cli("--ledger", pg_url, "checkpoint", "--key", str(new_key), "--handover-key", str(old_key),
                 "--previous-key", str(old_pub))
    assert got.exit_code == 0 and "key handover" in got.stderr, got.output
    verified = ws.cli("verify", pg_url, "--origin", ORIGIN, "--trusted-key", str(old_pub))
    assert verified.exit_code == 0, verified.output
    assert f"key {_key_id(new_pub)} accepted by handover from key {_key_id(old_pub)} at size 9" in verified.stdout
    assert ws.cli("--ledger", pg_url, "append", str(write_events(tmp_path / "c.jsonl", 2, day=22))).exit_code == 0
    _one_line_error(ws.cli("--ledger", pg_url, "checkpoint", "--key", str(old_key)), 1, "a retired key signs no larger tree")


# --- more handovers that do not hold, end to end ---------------------------------------------------------


def test_verify_bundle_does_not_count_a_manifest_signed_by_a_key_whose_handover_fails(tmp_path: Path) -> None:
    """The old key's handover signs a root the ledger does not have: the new key's checkpoint and
    the manifest it signed are vouched for by nothing (before the fix for the manifest, the
    signature line said valid while the ledger check failed)."""
    golden = make_golden(tmp_path / "g")
    with Ledger.open(golden.db) as ledger:
        append_with_raw(ledger, range(20, 30))
        _store(ledger, lambda cp: sign_handover(NEW, golden.signer, Checkpoint(cp.origin, cp.size, bytes(32))))
        append_with_raw(ledger, range(30, 32))
        _store(ledger, NEW.sign_checkpoint)
    new_key = tmp_path / "new.key"
    write_private_key(new_key, fixed_p256("new-key"))
    ws = Workspace(tmp_path, tmp_path / "none.toml", golden.db)
    made = ws.cli("--ledger", str(golden.db), "bundle", "--out", str(tmp_path / "b"), "--key", str(new_key),
                  "--controls", "AU-9", "--as-of", AS_OF, "--workers", "1")
    assert made.exit_code == 0, made.output
    got = ws.cli("verify-bundle", str(tmp_path / "b"), "--origin", golden.origin, "--trusted-key", str(golden.public_key))
    assert got.exit_code == 1
    assert "INVALID: bad-handover [MANIFEST.sig]: the manifest is signed only by key" in got.stdout, got.stdout
    assert "INVALID: root-mismatch" in got.stdout and "valid: key" not in got.stdout
    assert f"key {NEW.verifier.key_id.hex()} named by a handover from key" in got.stdout
    assert "NOT accepted: its handover checkpoint (checkpoints/000003.note) is root-mismatch" in got.stdout
    assert got.stdout.strip().splitlines()[-1].startswith("signature INVALID")


def test_verify_proof_follows_a_chain_whatever_the_order_the_proof_lists_it(tmp_path: Path) -> None:
    db, public, _notes_ = _golden_with(tmp_path, _sign_chain)
    ws = Workspace(tmp_path, tmp_path / "none.toml", db)
    doc = json.loads(ws.cli("--ledger", str(db), "prove", "5").stdout)
    assert [h["size"] for h in doc["handovers"]] == [30, 34]
    doc["handovers"].reverse()
    proof = tmp_path / "p.json"
    proof.write_text(json.dumps(doc))
    got = ws.cli("verify-proof", str(proof), "--trusted-key", str(public), "--origin", "example.gov/fedledger-test")
    assert got.exit_code == 0, got.output
    assert [line.split(";")[0] for line in got.stdout.splitlines()] == [
        f"valid: key {NEW.verifier.key_id.hex()} accepted by handover from key {_id(public)} at size 30",
        f"valid: key {THIRD.verifier.key_id.hex()} accepted by handover from key {NEW.verifier.key_id.hex()} at size 34",
        "valid: entry 5 is in example.gov/fedledger-test at size 36"]


def anchored_handover_rows_gone(tmp_path: Path, moto_endpoint: str, bucket: str = "handover-anchors"):  # type: ignore[no-untyped-def]
    """A ledger whose old key signed 20 and handed over at 30 (anchored in *bucket*); then the checkpoint
    rows are deleted and two entries appended. Returns (workspace, checkpoint options for the anchor, env)."""
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    publish = (f'\n[publish]\ncheckpoint = "s3://{bucket}/ci/"\nretention_days = 1\n'
               f'region = "{REGION}"\nendpoint_url = "{moto_endpoint}"\n')
    events = write_events(tmp_path / "a.jsonl", 20)
    ws = make_workspace(tmp_path / "ws", manual_source("m", str(events)), extra_toml=publish)
    assert _run(ws).exit_code == 0
    _rotate(ws)
    write_events(events, 30)
    assert _run(ws).exit_code == 0  # the handover at 30, anchored
    conn = sqlite3.connect(ws.ledger)
    conn.execute("DELETE FROM checkpoints")
    conn.commit()
    conn.close()
    with Ledger.open(ws.ledger) as ledger:
        append_with_raw(ledger, range(4000, 4002))
    folder = ws.ledger.parent
    args = ("--handover-key", str(folder / "2025.key"), "--previous-key", str(folder / "2025.pub"),
            "--anchor", f"s3://{bucket}/ci/")
    return ws, args, {"AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_REGION": REGION}


def test_a_key_whose_handover_is_anchored_signs_no_larger_tree_even_with_the_ledger_rows_gone(
        tmp_path: Path, moto_endpoint: str) -> None:
    ws, _args, _env = anchored_handover_rows_gone(tmp_path, moto_endpoint)
    got = ws.cli("--ledger", str(ws.ledger), "checkpoint", "--key", str(ws.ledger.parent / "2025.key"), "--anchor",
                 "s3://handover-anchors/ci/", env={"AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_REGION": REGION})
    _one_line_error(got, 1, "this key handed over at size 30 (anchored at s3://handover-anchors/ci/")
