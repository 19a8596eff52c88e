"""Ledger commands: init, append, checkpoint, prove, verify-proof, export, verify."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import orjson
import typer

from collector import merkle
from collector.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteVerifier,
    parse_checkpoint_body,
    split_note,
)
from collector.checkpoint_keys import KEY_RANGE_SYNTAX, KeyRing, ProofHandover, parse_key_range
from collector.cli_common import (
    NOTES_SHOWN, OPTIONS, emit_json, err, exit_codes, key_paths, ledger_path_for, out, progress, run,
)
from collector.errors import IntegrityError, MalformedInput, SourceUnavailable, UsageError
from collector.export import export_ledger
from collector.ingest import ingest
from collector.ledger import Ledger
from collector.ledger_open import create_ledger, is_postgres, ledger_location, open_ledger
from collector.signing import (
    KEY_TYPES,
    NoteSigner,
    generate_private_key,
    kms_signer,
    load_file_signer,
    sign_tree_head,
    write_private_key,
    write_public_key,
)
from collector.sources.manual import ManualEvents


KEY_RANGE_HELP = (f"Limit a pinned key to tree sizes: {KEY_RANGE_SYNTAX}; repeatable. A checkpoint of another size "
                  "signed only by that key does not count (key-out-of-range), e.g. a retired key that leaked.")


def load_verifiers(paths: list[Path], origin: str) -> list[NoteVerifier]:
    from collector.signing import load_public_keys

    return load_public_keys(paths, origin)


def open_signer(ledger: Ledger, key: Path | None, kms_key_id: str | None, endpoint_url: str | None,
                region: str | None) -> NoteSigner:
    if kms_key_id:
        return kms_signer(ledger.origin, kms_key_id, endpoint_url=endpoint_url, region=region)
    return load_file_signer(key or key_paths(ledger.path)[0], ledger.origin)


def register(app: typer.Typer, collect_app: typer.Typer) -> None:
    @app.command(epilog=exit_codes())
    @run
    def init(
        origin: str = typer.Option(..., "--origin", help="Ledger identity, e.g. agency.gov/ci-evidence."),
        key_type: str = typer.Option("ecdsa-p256", "--key-type", help="ecdsa-p256 (default, FIPS 186-5) or ed25519."),
        no_key: bool = typer.Option(False, "--no-key", help="Create no key file (sign with --kms-key-id later)."),
        key_dir: Optional[Path] = typer.Option(
            None, "--key-dir",
            help="Write fedledger.key/.pub into this folder instead of beside the ledger file "
                 "(a postgresql:// ledger: default the current folder)."),
    ) -> None:
        """Create a ledger and its checkpoint signing key (private key 0600, never printed)."""
        if key_type not in KEY_TYPES:
            raise UsageError(f"--key-type must be one of {', '.join(KEY_TYPES)}")
        if key_dir is not None or is_postgres(OPTIONS.ledger):
            folder = key_dir if key_dir is not None else Path.cwd()
            private_path, public_path = folder / "fedledger.key", folder / "fedledger.pub"
        else:
            private_path, public_path = key_paths(OPTIONS.ledger)
        if not no_key and (private_path.exists() or public_path.exists()):
            raise UsageError("a key file already exists there", location=str(private_path))
        ledger = create_ledger(OPTIONS.ledger, origin, created=OPTIONS.now_text(), key_type=key_type)
        ledger.close()
        if not no_key:
            private_path.parent.mkdir(parents=True, exist_ok=True)
            key = generate_private_key(key_type)
            write_private_key(private_path, key)
            write_public_key(public_path, key.public_key())
        result = {"ledger": str(ledger.path), "origin": origin, "key_type": key_type,
                  "public_key": None if no_key else str(public_path)}
        if OPTIONS.json:
            emit_json("fedledger.init", result)
        else:
            out(f"created ledger {ledger.path} (origin {origin})")
            if not no_key:
                out(f"public key: {public_path}  (give it to verifiers; the private key stays in {private_path})")
                if key_dir is not None or is_postgres(OPTIONS.ledger):
                    out(f"sign with: fedledger checkpoint --key {private_path}  (or [signer] key_file in the config)")

    @app.command(epilog=exit_codes())
    @run
    def append(events: Path = typer.Argument(..., help="JSON lines of normalized events (time, kind, ...).")) -> None:
        """Append already-normalized events; any bad line fails the file and nothing is committed."""
        with open_ledger(OPTIONS.ledger) as ledger:
            source = ManualEvents(events)
            cursors = ledger.cursors()
            problems = source.validate(cursors)
            if problems:
                for line in problems[:NOTES_SHOWN]:
                    err(f"error: {line}")
                if len(problems) > NOTES_SHOWN:
                    err(f"error: ... {len(problems) - NOTES_SHOWN} more bad line(s)")
                raise MalformedInput(f"{len(problems)} bad line(s); nothing was appended (append takes normalized "
                                     "events, see docs/events.md; Vault, CI, CloudTrail and attestation input goes "
                                     "through `fedledger collect`)", location=str(events))
            with progress("appending") as advance:
                summary = ingest(ledger, source.collect(cursors), kind=source.kind, source_id=source.source_id,
                                 observed=OPTIONS.now_text(), on_progress=advance)
        if OPTIONS.json:
            emit_json("fedledger.append", summary.to_json())
        else:
            out(summary.line())

    @app.command(epilog=exit_codes(
        "the signer refused: the tree does not extend the newest checkpoint this key "
        "signed, in the ledger or at the anchor (or, with a handover key, the old key's), the old key "
        "signed nothing here or handed over already, or this key handed over and is retired"))
    @run
    def checkpoint(
        key: Optional[Path] = typer.Option(None, "--key", help="Private key file (default: the --config \\[signer], else "
                                           "the key beside the ledger)."),
        kms_key_id: Optional[str] = typer.Option(None, "--kms-key-id", help="Sign with this AWS KMS key (ECC_NIST_P256)."),
        endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="KMS endpoint (tests, VPC endpoints)."),
        region: Optional[str] = typer.Option(None, "--region", help="AWS region for KMS."),
        out_file: Optional[Path] = typer.Option(None, "--out", help="Also write the signed checkpoint to this file."),
        config: Optional[Path] = typer.Option(
            None, "--config", help="fedledger.toml: its ledger, its \\[signer] (unless --key or --kms-key-id is "
                                   "given) and its publish target (publish.checkpoint), checked first."),
        anchor: Optional[str] = typer.Option(
            None, "--anchor", help="s3://bucket/prefix where checkpoints are anchored (as run --publish-checkpoint "
                                   "writes them): sign only a tree that extends the newest one this key anchored "
                                   "there. S3 region and endpoint from --config's publish section, else the "
                                   "environment."),
        previous_key: list[Path] = typer.Option(
            [], "--previous-key", help="Public key the ledger was signed with before a key rotation (repeatable; "
                                       "adds to --config's signer.previous_keys): the tree must also extend the "
                                       "newest checkpoint it signed, in the ledger and at the anchor."),
        handover_key: Optional[Path] = typer.Option(
            None, "--handover-key", help="The old key's private key file after a key rotation (its public key must be "
                                         "a previous key): the new key's first checkpoint is then a key handover, "
                                         "co-signed by the old key, which a verifier pinning only the old key follows. "
                                         "Overrides --config's signer.handover_key_file."),
        handover_kms_key_id: Optional[str] = typer.Option(
            None, "--handover-kms-key-id", help="As --handover-key, with the old key in AWS KMS (--region, "
                                                "--endpoint-url)."),
    ) -> None:
        """Sign the current tree head as a C2SP checkpoint and keep it in the ledger.

        With a publish target (--anchor, or --config with publish.checkpoint) the tree must also
        extend the newest checkpoint this key anchored there, as in `fedledger run`; an anchor that
        cannot be read signs nothing (exit 3). With a handover key, the new key's first checkpoint
        is co-signed by the old key (a key handover)."""
        from collector.checkpoint_keys import note_handover
        from collector.run import config_anchor, config_handover_signer, config_previous_keys, config_signer

        if handover_key is not None and handover_kms_key_id is not None:
            raise UsageError("give --handover-key or --handover-kms-key-id, not both")

        loaded = None
        if config is not None:
            from collector.config import load_config

            loaded = load_config(config)
        target = config_anchor(loaded, anchor)
        with open_ledger(ledger_path_for(loaded) if loaded is not None else OPTIONS.ledger) as ledger:
            # with a config and no --key/--kms-key-id: the signer `run` signs with, not a key file that happens to be there
            signer = (config_signer(ledger, loaded, ledger_path_for(loaded))
                      if loaded is not None and key is None and kms_key_id is None
                      else open_signer(ledger, key, kms_key_id, endpoint_url, region))
            previous = config_previous_keys(ledger, loaded) + load_verifiers(previous_key, ledger.origin)
            handover: NoteSigner | None
            if handover_key is not None or handover_kms_key_id is not None:
                handover = open_signer(ledger, handover_key, handover_kms_key_id, endpoint_url, region)
            else:
                handover = config_handover_signer(ledger, loaded)
            stored = sign_tree_head(ledger, signer, OPTIONS.now_text(), anchor=target, previous=previous,
                                    handover=handover)
        if out_file is not None:
            out_file.write_text(stored.note, encoding="utf-8")
        made = note_handover(stored.note)
        handed = None if made is None else {"from_key_id": made.old_key_id.hex(), "to_key_id": made.new.key_id.hex(),
                                            "size": stored.size}
        if OPTIONS.json:
            emit_json("fedledger.checkpoint", {"size": stored.size, "root": stored.root.hex(), "note": stored.note,
                                               "handover": handed})
        else:
            out(stored.note.rstrip("\n"))
        if handed is not None:
            err(f"key handover: the previous key {handed['from_key_id']} co-signed this checkpoint, handing the ledger "
                f"over to key {handed['to_key_id']} from size {stored.size} on; anchor it, then drop the handover key")

    @app.command(epilog=exit_codes())
    @run
    def prove(
        seq: Optional[int] = typer.Argument(None, help="Entry to prove (inclusion)."),
        size: Optional[int] = typer.Option(None, "--size", help="Tree size (default: newest checkpoint)."),
        consistency: Optional[tuple[int, int]] = typer.Option(None, "--consistency", help="OLD NEW tree sizes."),
    ) -> None:
        """Print an inclusion proof (SEQ) or a consistency proof (--consistency OLD NEW) as JSON."""
        with open_ledger(OPTIONS.ledger) as ledger:
            notes = {cp.size: cp.note for cp in ledger.checkpoints()}
            if consistency is not None:
                old, new = consistency
                top = new
                proof = ledger.consistency_proof(old, new)
                doc = {"kind": "fedledger.consistency-proof", "origin": ledger.origin, "size1": old, "size2": new,
                       "root1": ledger.root(old).hex(), "root2": ledger.root(new).hex(),
                       "proof": [p.hex() for p in proof], "checkpoint1": notes.get(old), "checkpoint2": notes.get(new)}
            else:
                if seq is None:
                    raise UsageError("give SEQ for an inclusion proof, or --consistency OLD NEW")
                if size is None:
                    newest = ledger.latest_checkpoint()
                    if newest is None:
                        raise UsageError("the ledger has no checkpoint yet: run `fedledger checkpoint` or give --size")
                    size = newest.size
                top = size
                body = ledger.entry(seq)
                proof = ledger.inclusion_proof(seq, size)
                doc = {"kind": "fedledger.inclusion-proof", "origin": ledger.origin, "leaf_index": seq,
                       "tree_size": size, "leaf_hash": merkle.leaf_hash(body).hex(), "root": ledger.root(size).hex(),
                       "proof": [p.hex() for p in proof], "entry": body.decode("utf-8"),
                       "checkpoint": notes.get(size)}
            handovers = _proof_handovers(ledger, top)
            if handovers:
                doc["handovers"] = handovers
        doc["version"] = 1
        out(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())

    @app.command("verify-proof", epilog=exit_codes(
        "the proof does not verify (or carries no entry and --leaf-hash-only is not "
        "given)"))
    @run
    def verify_proof(
        proof_file: Path = typer.Argument(..., help="Proof JSON from `fedledger prove`."),
        trusted_key: list[Path] = typer.Option([], "--trusted-key", help="Trusted public key (PEM or vkey); repeatable."),
        origin: Optional[str] = typer.Option(None, "--origin", help="Pinned ledger origin."),
        key_range: list[str] = typer.Option([], "--key-range", help=KEY_RANGE_HELP),
        leaf_hash_only: bool = typer.Option(
            False, "--leaf-hash-only",
            help="Accept an inclusion proof that carries no entry: it then proves only that its leaf hash is in "
                 "the tree, not which entry that is (without this flag such a proof exits 1)."),
    ) -> None:
        """Verify a proof offline against a signed checkpoint; no database needed.

        An inclusion proof from `fedledger prove` carries the entry: its bytes must hash to the
        leaf, the audit path must lead from that leaf to the signed root. A proof without the
        entry proves only that its leaf hash is in the tree; that is reported as such, and
        exits 1 unless --leaf-hash-only is given.

        The checkpoint must be signed by a pinned key whose --key-range covers its size, or by a
        key a pinned key handed over to (the proof carries the handover checkpoints `fedledger
        prove` found, each with a consistency proof from it to the proof's tree)."""
        from collector.canonical import parse_json
        from collector.checkpoint_keys import follow_proof_handovers

        try:
            data = proof_file.read_bytes()
        except OSError as exc:  # missing, a folder, unreadable: not a bug
            raise SourceUnavailable(f"cannot read the proof file: {exc.strerror}", location=str(proof_file)) from None
        doc = parse_json(data, location=str(proof_file))
        if not isinstance(doc, dict) or doc.get("kind") not in ("fedledger.inclusion-proof", "fedledger.consistency-proof"):
            raise MalformedInput("not a fedledger proof", location=str(proof_file))
        if not trusted_key or not origin:
            raise UsageError("--trusted-key and --origin are required: a proof is only as good as the root it leads to")
        ring = KeyRing(load_verifiers(trusted_key, origin), [parse_key_range(text) for text in key_range],
                       labels=[str(p) for p in trusted_key])
        lines: list[str] = []
        failures: list[dict[str, object]] = []
        result: dict[str, object] = {}
        try:
            proof = [bytes.fromhex(p) for p in doc["proof"]]
            inclusion = doc["kind"] == "fedledger.inclusion-proof"
            top_note = doc.get("checkpoint") if inclusion else doc.get("checkpoint2")
            if isinstance(top_note, str) and doc.get("handovers"):
                top = parse_checkpoint_body(split_note(top_note)[0])  # trusted only once verified below
                lines += [f"valid: {line}" for line in follow_proof_handovers(
                    ring, _read_proof_handovers(doc["handovers"], proof_file), origin=origin, size=top.size,
                    root=top.root)]
            if inclusion:
                cp = _signed(doc.get("checkpoint"), origin, ring, doc["tree_size"])
                leaf = bytes.fromhex(doc["leaf_hash"])
                entry = doc.get("entry")
                if entry is not None and not isinstance(entry, str):
                    raise MalformedInput("the proof's entry is not a string (the entry's stored bytes as text)",
                                         location=str(proof_file))
                if entry is not None and merkle.leaf_hash(entry.encode()) != leaf:
                    raise IntegrityError("the entry in the proof does not hash to its leaf_hash")
                index, size = doc["leaf_index"], doc["tree_size"]
                merkle.verify_inclusion(index, size, leaf, proof, cp.root)
                result = {"entry_checked": entry is not None, "leaf_hash": leaf.hex()}
                if entry is not None:
                    lines.append(f"valid: entry {index} is in {origin} at size {size}")
                elif leaf_hash_only:
                    lines.append(f"valid: leaf hash {leaf.hex()} is at index {index} in {origin} at size {size} "
                                 "(the proof carries no entry: no entry's bytes were checked)")
                else:
                    # Proven: some leaf with this hash is at that index. Not proven: which entry it is,
                    # which is what the assessor guide's workflow relies on.
                    lines.append(f"valid: leaf hash {leaf.hex()} is at index {index} in {origin} at size {size}")
                    reason = ("the proof carries no entry, so no entry's bytes were checked against that leaf hash: "
                              "it does not show which entry is in the tree (ask for the proof `fedledger prove` "
                              "writes, or give --leaf-hash-only to accept the leaf hash alone)")
                    failures.append({"code": "entry-missing", "seq": index, "message": reason})
                    lines.append(f"INVALID: entry-missing seq {index}: {reason}")
            else:
                cp1 = _signed(doc.get("checkpoint1"), origin, ring, doc["size1"])
                cp2 = _signed(doc.get("checkpoint2"), origin, ring, doc["size2"])
                merkle.verify_consistency(cp1.size, cp2.size, proof, cp1.root, cp2.root)
                lines.append(f"valid: {origin} at size {cp2.size} extends size {cp1.size}")
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedInput(f"proof is missing or has a bad field: {exc}", location=str(proof_file)) from None
        message = next(line for line in lines if not line.startswith("valid: key "))
        if OPTIONS.json:
            emit_json("fedledger.verify-proof", {"ok": not failures, "message": message, "failures": failures,
                                                 "keys": ring.to_json(), **result})
        else:
            for line in lines:
                out(line)
        if failures:
            raise typer.Exit(1)

    @app.command(epilog=exit_codes())
    @run
    def export(
        out_dir: Path = typer.Option(..., "--out", help="Empty or new folder."),
        include_raw: bool = typer.Option(False, "--include-raw", help="Also copy raw evidence objects."),
    ) -> None:
        """Export entries (exact bytes), checkpoints, public keys and a manifest to a folder."""
        with open_ledger(OPTIONS.ledger) as ledger:
            manifest = export_ledger(ledger, out_dir, include_raw=include_raw)
        if OPTIONS.json:
            emit_json("fedledger.export", {"out": str(out_dir), "size": manifest["size"], "files": len(manifest["files"])})  # type: ignore[arg-type]
        else:
            out(f"exported {manifest['size']} entries to {out_dir}")

    @app.command(epilog=exit_codes("any INVALID line"))
    @run
    def verify(
        target: Optional[str] = typer.Argument(
            None, help="Ledger file, postgresql:// URL, export folder, or a bundle archive (.tar.gz/.zip: its "
                       "ledger/ slice, read with verify-bundle's safety checks) (default: --ledger)."),
        trusted_key: list[Path] = typer.Option(
            [], "--trusted-key",
            help="Trusted public key (PEM or vkey); repeatable. Without it a ledger file is checked against the .pub "
                 "beside it, which whoever can write the ledger's folder can replace: pin the key you got out of band."),
        origin: Optional[str] = typer.Option(None, "--origin", help="Pinned ledger origin (default for a ledger file: "
                                             "its own, which proves nothing)."),
        checkpoint: list[str] = typer.Option(
            [], "--checkpoint",
            help="A saved signed checkpoint (catches rollback): a file, or an s3://bucket/key (or prefix: newest) "
                 "anchored by `fedledger run --publish-checkpoint`.",
        ),
        no_raw: bool = typer.Option(
            False, "--no-raw",
            help="Do not read the evidence store: check the chain, tree and checkpoints only (e.g. a ledger file "
                 "copied without its .objects folder). The tally says the raw evidence was not checked."),
        key_range: list[str] = typer.Option([], "--key-range", help=KEY_RANGE_HELP),
    ) -> None:
        """Recompute everything from stored bytes; report every failure; exit 1 on any.

        Key handovers among the checkpoints are followed: a key a trusted key handed over to
        vouches for trees from the handover's size on, and the old key only up to it."""
        import tempfile

        from bundler.verify_cmd import verify_target
        from collector.checkpoint_fetch import materialize_checkpoints

        ranges = [parse_key_range(text) for text in key_range]
        with tempfile.TemporaryDirectory(prefix="fedledger-checkpoints-") as fetched:
            saved = materialize_checkpoints(checkpoint, Path(fetched))
            report = verify_target(ledger_location(target) if target else OPTIONS.ledger, trusted_keys=trusted_key,
                                   origin=origin, saved=saved, raw=not no_raw, key_ranges=ranges)
        if OPTIONS.json:
            emit_json("fedledger.verify", report.to_json())
        else:
            for line in report.key_lines():
                out(line)
            for failure in report.failures:
                out(failure.line())
            out(report.tally())
        if not report.ok:
            raise typer.Exit(1)


def _signed(note: object, origin: str, ring: KeyRing, size: int) -> Checkpoint:
    """The proof's checkpoint, signed by a key of *ring* that may vouch for its size."""
    if not isinstance(note, str):
        raise IntegrityError(f"the proof carries no signed checkpoint for size {size}")
    cp, _vouching = ring.verify(note, origin=origin)
    if cp.size != size:
        raise IntegrityError(f"the checkpoint is for size {cp.size}, the proof for {size}")
    return cp




def _proof_handovers(ledger: Ledger, size: int) -> list[dict[str, object]]:
    """The handover checkpoints kept in *ledger* for trees of at most *size*, smallest first, each
    with a consistency proof from it to *size* (for `fedledger verify-proof`; their signatures are
    the verifier's to judge)."""
    from collector.checkpoint_keys import HANDOVER_TAG, read_handover

    found: dict[str, int] = {}
    for cp in ledger.checkpoints():
        if HANDOVER_TAG not in cp.note or not 0 < cp.size <= size:
            continue
        try:
            if read_handover(parse_checkpoint_body(split_note(cp.note)[0])) is not None:
                found.setdefault(cp.note, cp.size)
        except CheckpointError:
            continue  # `fedledger verify` reports it
    return [{"size": at, "checkpoint": note,
             "consistency": [p.hex() for p in ledger.consistency_proof(at, size)] if at < size else []}
            for note, at in sorted(found.items(), key=lambda item: item[1])]


def _read_proof_handovers(value: object, where: Path) -> list[ProofHandover]:
    if not isinstance(value, list) or not all(
            isinstance(h, dict) and isinstance(h.get("checkpoint"), str) and isinstance(h.get("consistency"), list)
            and all(isinstance(p, str) for p in h["consistency"]) for h in value):
        raise MalformedInput("the proof's handovers are not a list of {checkpoint, consistency} objects",
                             location=str(where))
    try:
        return [ProofHandover(h["checkpoint"], tuple(bytes.fromhex(p) for p in h["consistency"])) for h in value]
    except ValueError:
        raise MalformedInput("a handover's consistency proof is not hex", location=str(where)) from None
