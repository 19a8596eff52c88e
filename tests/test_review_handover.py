"""Adversarial review of key handovers and pinned key ranges (collector.checkpoint_keys).

Each test is a way to make a verifier accept what it should not, or say "accepted by handover" for
a key whose handover does not hold. Real keys and real ledger files throughout; the golden ledger
(old Ed25519 key signs 8 and 20) comes from tests.ledger_fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.checkpoint import Checkpoint, signature_line
from collector.checkpoint_keys import KeyRing, follow_proof_handovers, ProofHandover, handover_line
from collector.ledger import Ledger
from collector.signing import FileSigner, sign_handover, write_public_key
from tests.ledger_fixtures import append_with_raw, fixed_ed25519, fixed_p256, make_golden
from tests.ops_workspace import AS_OF
from tests.test_key_handover import anchored_handover_rows_gone

ORIGIN = "example.gov/fedledger-test"
NEW = FileSigner(ORIGIN, fixed_p256("review-new"))
THIRD = FileSigner(ORIGIN, fixed_ed25519("review-third"))
OTHER = fixed_ed25519("review-other-pinned")  # a second key the assessor pins (e.g. another old key)


def _store(ledger: Ledger, make) -> None:  # type: ignore[no-untyped-def]
    ledger.add_checkpoint(lambda size, root: make(Checkpoint(ledger.origin, size, root)), AS_OF)


def _golden(tmp_path: Path, sign) -> tuple[Path, Path, FileSigner]:  # type: ignore[no-untyped-def]
    """The golden ledger, entries 20..29, then *sign(ledger, old signer)*; returns (db, old public key, old)."""
    golden = make_golden(tmp_path / "g")
    with Ledger.open(golden.db) as ledger:
        append_with_raw(ledger, range(20, 30))
        sign(ledger, golden.signer)
    return golden.db, golden.public_key, golden.signer


def _verify(db: Path, *keys: Path):  # type: ignore[no-untyped-def]
    from bundler.verify_cmd import verify_target

    return verify_target(db, trusted_keys=list(keys), origin=ORIGIN, saved=[])


# --- a handover line that cannot be read ---------------------------------------------------------------


@pytest.mark.parametrize("lines", [
    lambda old: (handover_line(old.verifier, NEW.verifier), handover_line(old.verifier, THIRD.verifier)),
    lambda old: (handover_line(old.verifier, NEW.verifier).rsplit(" ", 1)[0] + " " + ORIGIN + "+00000000+AQ==",),
    lambda old: (handover_line(old.verifier, NEW.verifier) + " trailing",),
], ids=["two-lines", "bad-verifier-key", "extra-field"])
def test_a_checkpoint_whose_handover_line_cannot_be_read_is_not_valid(tmp_path: Path, lines) -> None:  # type: ignore[no-untyped-def]
    """The old key signed a note that says it hands over, but the line cannot be read: the verifier
    used to pass over the line and count the note as an ordinary valid checkpoint, so the old key
    stayed trusted for every larger tree (fail open). It is a malformed checkpoint."""
    def sign(ledger: Ledger, old: FileSigner) -> None:
        _store(ledger, lambda cp: old.sign_checkpoint(Checkpoint(cp.origin, cp.size, cp.root, lines(old))))

    db, public, _old = _golden(tmp_path, sign)
    report = _verify(db, public)
    assert [f.code for f in report.failures if f.where == "checkpoint #3"] == ["malformed-checkpoint"], report.failures
    assert 30 not in [cp.size for cp in report.checkpoints_valid]


def test_an_unknown_extension_line_and_an_unknown_cosignature_leave_a_handover_alone(tmp_path: Path) -> None:
    """C2SP: extension lines other than ours are opaque, signature lines by unknown keys are ignored."""
    def sign(ledger: Ledger, old: FileSigner) -> None:
        def make(cp: Checkpoint) -> str:
            note = sign_handover(NEW, old, Checkpoint(cp.origin, cp.size, cp.root, ("example.com/ext some value",)))
            return note + signature_line("witness.example.com", b"\x01\x02\x03\x04", bytes(64))
        _store(ledger, make)
        append_with_raw(ledger, range(30, 32))
        _store(ledger, NEW.sign_checkpoint)

    db, public, _old = _golden(tmp_path, sign)
    report = _verify(db, public)
    assert report.ok, report.failures
    assert [cp.size for cp in report.checkpoints_valid] == [8, 20, 30, 32]


# --- a handover note that is itself INVALID ----------------------------------------------------------


def test_a_handover_checkpoint_that_fails_its_own_check_makes_no_key_trusted(tmp_path: Path) -> None:
    """The old and the new key signed a handover over a root the ledger does not hold, and a
    signature line by another pinned key that does not verify was added: the note is bad-signature,
    so its root was never compared with the ledger and the handover was never voided; the new
    key's later checkpoints counted, and it was reported as accepted by handover."""
    other = tmp_path / "other.pub"
    write_public_key(other, OTHER.public_key())
    other_signer = FileSigner(ORIGIN, OTHER)

    def sign(ledger: Ledger, old: FileSigner) -> None:
        def make(cp: Checkpoint) -> str:
            note = sign_handover(NEW, old, Checkpoint(cp.origin, cp.size, bytes(32)))
            return note + signature_line(ORIGIN, other_signer.verifier.key_id, bytes(64))
        _store(ledger, make)
        append_with_raw(ledger, range(30, 32))
        _store(ledger, NEW.sign_checkpoint)

    db, public, _old = _golden(tmp_path, sign)
    report = _verify(db, public, other)
    assert report.keys is not None
    new = next(key for key in report.keys.keys if key.key_id == NEW.verifier.key_id.hex())
    assert new.void is not None, report.keys.describe()
    assert 32 not in [cp.size for cp in report.checkpoints_valid]
    codes = {f.where: f.code for f in report.failures}
    assert codes == {"checkpoint #3": "bad-signature", "checkpoint #4": "bad-handover", None: "not-checkpointed"}, codes


# --- a chain handed over at one size ----------------------------------------------------------------


def _handover_note(new: FileSigner, old: FileSigner, size: int, root: bytes) -> str:
    return sign_handover(new, old, Checkpoint(ORIGIN, size, root))


def test_a_chain_at_one_size_is_followed_whatever_the_notes_are_called(tmp_path: Path) -> None:
    """A to B and B to C at the same size: which is followed first went by the notes' names as
    strings ('checkpoint #10' before 'checkpoint #9'), so B to C was judged before B was trusted,
    passed over, and C's checkpoints were unknown-signer."""
    old = FileSigner(ORIGIN, fixed_ed25519("review-old"))
    root = bytes(range(32))
    notes = [("checkpoint #9", _handover_note(NEW, old, 30, root)),
             ("checkpoint #10", _handover_note(THIRD, NEW, 30, root))]
    ring = KeyRing([old.verifier])
    outcome = ring.follow_handovers(notes, origin=ORIGIN)
    assert sorted(outcome.accepted) == ["checkpoint #10", "checkpoint #9"], outcome
    assert {key.key_id: (key.first, key.last) for key in ring.keys} == {
        old.verifier.key_id.hex(): (0, 30), NEW.verifier.key_id.hex(): (30, 30), THIRD.verifier.key_id.hex(): (30, None)}


def test_verify_proof_follows_ten_handovers_at_one_size_in_the_order_listed() -> None:
    """The same through verify-proof's names ('handover #10' sorts before 'handover #2')."""
    keys = [FileSigner(ORIGIN, fixed_ed25519(f"review-chain-{n}")) for n in range(12)]
    root = bytes(range(32))
    handovers = [ProofHandover(_handover_note(keys[n + 1], keys[n], 30, root), ()) for n in range(11)]
    ring = KeyRing([keys[0].verifier])
    lines = follow_proof_handovers(ring, handovers, origin=ORIGIN, size=30, root=root)
    assert len(lines) == 11, lines
    assert ring.find(ORIGIN, keys[11].verifier.key_id) is not None


# --- a handover note the ledger slice does not list ------------------------------------------------------


def test_verify_bundle_does_not_follow_a_handover_note_the_ledger_slice_does_not_list(tmp_path: Path) -> None:
    """verify-bundle followed every ledger/checkpoints/*.note file, while the ledger check reads only
    the notes ledger/MANIFEST.json lists: a handover note added beside them was never compared with
    the tree, and the report said 'valid: key … accepted by handover' for its new key."""
    from collector.signing import write_private_key
    from tests.ops_workspace import Workspace

    golden = make_golden(tmp_path / "g")
    with Ledger.open(golden.db) as ledger:  # the new key signs 22 (no handover in the ledger)
        append_with_raw(ledger, range(20, 22))
        _store(ledger, NEW.sign_checkpoint)
    new_key = tmp_path / "new.key"
    write_private_key(new_key, fixed_p256("review-new"))
    ws = Workspace(tmp_path, tmp_path / "none.toml", golden.db)
    made = ws.cli("--ledger", str(golden.db), "bundle", "--out", str(tmp_path / "b"), "--key", str(new_key),
                  "--controls", "AU-9", "--as-of", AS_OF, "--workers", "1")
    assert made.exit_code == 0, made.output
    extra = tmp_path / "b" / "ledger" / "checkpoints" / "000099.note"
    extra.write_text(_handover_note(NEW, golden.signer, 20, bytes(32)), encoding="utf-8")
    got = ws.cli("verify-bundle", str(tmp_path / "b"), "--origin", golden.origin, "--trusted-key", str(golden.public_key))
    assert got.exit_code == 1
    assert "accepted by handover" not in got.stdout, got.stdout
    assert "valid: MANIFEST.sig" not in got.stdout, got.stdout
    assert "INVALID: bad-handover [MANIFEST.sig]" in got.stdout, got.stdout
    assert "is not one of the ledger's checkpoints" in got.stdout, got.stdout


# --- the signer: a handover key whose handover is anchored --------------------------------------------


def test_a_key_whose_handover_is_anchored_hands_over_no_second_time_even_with_the_ledger_rows_gone(
        tmp_path: Path, moto_endpoint: str) -> None:
    """The signing key's own anchored handover already stops it signing a larger tree; the handover
    key's did not: with the ledger's checkpoint rows deleted, the retired key co-signed a second
    handover, to another key, at a larger size (verifiers then refuse it as bad-handover)."""
    from tests.test_key_handover import _key_id, _new_key, _one_line_error

    ws, args, env = anchored_handover_rows_gone(tmp_path, moto_endpoint, "review-handover-anchors")
    folder = ws.ledger.parent
    third_key, _third_pub = _new_key(folder, "third")
    got = ws.cli("--ledger", str(ws.ledger), "checkpoint", "--key", str(third_key), *args,
                 "--previous-key", str(folder / "fedledger.pub"), env=env)
    _one_line_error(got, 1, "already handed over to key " + _key_id(folder / "fedledger.pub"))


def test_the_new_key_signs_without_a_second_handover_when_the_first_is_anchored(
        tmp_path: Path, moto_endpoint: str) -> None:
    """Same, to the key it handed over to: the old key co-signed the larger tree again (a retired key
    signing a larger tree); the new key now signs alone."""
    ws, args, env = anchored_handover_rows_gone(tmp_path, moto_endpoint, "review-handover-anchors")
    got = ws.cli("--ledger", str(ws.ledger), "checkpoint", "--key", str(ws.ledger.parent / "fedledger.key"), *args,
                 env=env)
    assert got.exit_code == 0, got.output
    with Ledger.open(ws.ledger) as ledger:
        note = ledger.latest_checkpoint().note  # type: ignore[union-attr]
    assert "fedledger-key-handover" not in note and note.count("\n\u2014 ") == 1, note


def test_a_key_that_hands_over_to_two_keys_makes_neither_trusted() -> None:
    """The old key signed a handover to NEW and another to THIRD (its owner's and, say, a thief's):
    the earliest used to win and was reported as accepted. A key that signs two handovers has
    equivocated: neither counts, both are named, and the old key stays retired at the first."""
    old = FileSigner(ORIGIN, fixed_ed25519("review-old"))
    root = bytes(range(32))
    for order in ((30, 40), (40, 30), (30, 30)):
        notes = [("checkpoint #5", _handover_note(NEW, old, order[0], root)),
                 ("checkpoint #6", _handover_note(THIRD, old, order[1], root))]
        ring = KeyRing([old.verifier])
        outcome = ring.follow_handovers(notes, origin=ORIGIN)
        assert outcome.accepted == {}, (order, outcome)
        assert set(outcome.failures) == {"checkpoint #5", "checkpoint #6"}
        assert all("handed over twice" in why for why in outcome.failures.values())
        trusted = {key.key_id: key for key in ring.keys}
        assert all(trusted[k.verifier.key_id.hex()].void for k in (NEW, THIRD) if k.verifier.key_id.hex() in trusted)
        assert trusted[old.verifier.key_id.hex()].last == min(order)
        with pytest.raises(Exception) as raised:
            ring.vouching(*_signed_by_new(root, 50))
        assert type(raised.value).__name__ in ("BadHandover", "UnknownSigner"), raised.value
    # the same handover twice (an anchored copy) is one handover, still accepted
    ring = KeyRing([old.verifier])
    note = _handover_note(NEW, old, 30, root)
    outcome = ring.follow_handovers([("checkpoint #5", note), ("s3 anchor", note)], origin=ORIGIN)
    assert list(outcome.accepted) == ["checkpoint #5"] and not outcome.failures


def _signed_by_new(root: bytes, size: int):  # type: ignore[no-untyped-def]
    from collector.checkpoint import split_note

    body, sigs = split_note(NEW.sign_checkpoint(Checkpoint(ORIGIN, size, root)))
    return body.encode(), sigs, size


def test_two_pinned_keys_sharing_name_and_key_id_are_refused() -> None:
    """Signature lines name a key by name and 4-byte ID only: a second pinned key colliding with the
    first was dropped in silence, so the assessor trusted another key than the one they pinned."""
    import dataclasses

    from collector.errors import UsageError

    first = FileSigner(ORIGIN, fixed_ed25519("review-old")).verifier
    twin = dataclasses.replace(FileSigner(ORIGIN, fixed_ed25519("review-twin")).verifier, key_id=first.key_id)
    with pytest.raises(UsageError, match="different keys"):
        KeyRing([first, twin])
    assert len(KeyRing([first, first]).keys) == 1  # the same key pinned twice is one key
