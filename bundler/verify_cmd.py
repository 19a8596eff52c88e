"""Fetch side of ``fedledger verify``: read a ledger file or an export folder, then
hand bytes, keys and origin to the pure :func:`bundler.ledger_verify.verify_ledger`."""

from __future__ import annotations

from pathlib import Path

from bundler.export_reader import iter_export_entries, read_export
from bundler.ledger_verify import Failure, LedgerVerification, NoteInput, verify_ledger
from collector.checkpoint import NoteVerifier, parse_verifier_key
from collector.cli_common import err, key_paths
from collector.errors import SourceUnavailable, UsageError


def _read_text(path: Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceUnavailable(f"cannot read {what}: {exc}", location=str(path)) from None


def _verifiers(paths: list[Path], origin: str) -> list[NoteVerifier]:
    return [parse_verifier_key(_read_text(p, "trusted key"), default_name=origin, location=str(p)) for p in paths]


def _saved_notes(paths: list[Path]) -> list[NoteInput]:
    return [NoteInput(str(p), _read_text(p, "saved checkpoint"), saved=True) for p in paths]


def verify_target(
    target: Path, *, trusted_keys: list[Path], origin: str | None, saved: list[Path]
) -> LedgerVerification:
    target = Path(target)
    if target.is_dir():
        if not trusted_keys or not origin:
            raise UsageError("verifying an export needs --trusted-key and --origin: pin them, do not trust the export's own")
        contents = read_export(target)
        verifiers = _verifiers(trusted_keys, origin)
        report = verify_ledger(
            iter_export_entries(contents), origin=origin, verifiers=verifiers, notes=contents.notes + _saved_notes(saved)
        )
        if contents.origin != origin:
            report.failures.append(Failure("wrong-origin", f"export manifest names origin {contents.origin!r}", where="MANIFEST.json"))
        report.failures[:0] = contents.failures
        return report
    from collector.ledger import Ledger

    with Ledger.open(target) as ledger:
        if origin is None:
            origin = ledger.origin
            err(f"note: origin not pinned, using the ledger's own ({origin}); pin it with --origin")
        if not trusted_keys:
            public = key_paths(target)[1]
            if not public.exists():
                raise UsageError("no --trusted-key given and no public key beside the ledger")
            err(f"note: no --trusted-key given, trusting {public}")
            trusted_keys = [public]
        verifiers = _verifiers(trusted_keys, origin)
        notes = [NoteInput(f"checkpoint #{cp.id}", cp.note) for cp in ledger.checkpoints()]
        report = verify_ledger(
            ((bytes(body), bytes(leaf)) for _seq, leaf, body in ledger.entries()),
            origin=origin,
            verifiers=verifiers,
            notes=notes + _saved_notes(saved),
        )
        check = ledger.integrity_check()
        if check != "ok":
            report.failures.insert(0, Failure("database-corrupt", f"PRAGMA integrity_check: {check[:200]}"))
        if ledger.origin != origin:
            report.failures.append(Failure("wrong-origin", f"ledger metadata names origin {ledger.origin!r}"))
    return report
