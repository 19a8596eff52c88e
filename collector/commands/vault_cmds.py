"""Vault commands: ``fedledger collect vault PATH...`` and ``fedledger vault hmac``.

Exit codes of ``collect vault``: 0 every record became an entry or a duplicate;
1 some records were quarantined or a file's already-read part changed (the good
records are still committed); 2 unusable input (no such path, no file found);
3 the ledger or a file cannot be read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer

from collector.cli_common import (
    COLLECT_FAILED, OPTIONS, FedledgerGroup, emit_json, err, exit_codes, out, progress, report_quarantined, run,
)
from collector.errors import InternalError, SourceUnavailable, UsageError
from collector.gc_pause import paused_gc
from collector.ingest import DEFAULT_BATCH, IngestSummary, ingest_source
from collector.ledger import Ledger
from collector.ledger_open import open_ledger
from collector.rotation import rotation_notes
from collector.sources.vault import (
    DEFAULT_MAX_OPEN,
    DEFAULT_PAIR_WINDOW,
    KIND,
    VaultAuditLog,
    audit_hmac,
)


def run_collection(ledger: Ledger, source: VaultAuditLog, *, observed: str, batch_size: int = DEFAULT_BATCH,
                   on_progress: Callable[[int], None] | None = None, workers: int | None = None) -> IngestSummary:
    """Collect *source* into *ledger* (what ``fedledger collect vault`` runs, and what the bench measures).

    *workers* (when given) overrides the source's choice: 1 parses and stages in a worker
    process, 0 here (default: by machine and input size, see :mod:`collector.pipeline`).
    """
    if workers is not None:
        source.workers = workers
    with paused_gc():
        return ingest_source(ledger, source, source_id=KIND, observed=observed, batch_size=batch_size,
                             on_progress=on_progress)


def read_salt(path: Path) -> bytes:
    """The audit device salt from *path*, without a trailing newline."""
    try:
        salt = Path(path).read_bytes()
    except OSError as exc:
        raise SourceUnavailable(f"cannot read the salt file: {exc.strerror}", location=str(path)) from None
    salt = salt.rstrip(b"\r\n")
    if not salt:
        raise UsageError("the salt file is empty", location=str(path))
    return salt


def register(app: typer.Typer, collect_app: typer.Typer) -> None:
    vault_app = typer.Typer(cls=FedledgerGroup, help="HashiCorp Vault audit helpers.", no_args_is_help=True)
    app.add_typer(vault_app, name="vault")

    @collect_app.command("vault", epilog=exit_codes(COLLECT_FAILED))
    @run
    def collect_vault(
        paths: list[str] = typer.Argument(..., help="Vault file-audit-device logs: files, folders, or - for stdin."),
        batch_size: int = typer.Option(DEFAULT_BATCH, "--batch-size", min=1, help="Records per ledger transaction."),
        pair_window: int = typer.Option(
            DEFAULT_PAIR_WINDOW, "--pair-window", min=1,
            help="Seconds after which a request with no response becomes a vault.unpaired finding."),
        max_open: int = typer.Option(DEFAULT_MAX_OPEN, "--max-open", min=1,
                                     help="Most requests kept waiting for their response."),
        final: bool = typer.Option(False, "--final",
                                   help="The logs are complete (rotated): every request still open is unpaired."),
        non_hmac_key: list[str] = typer.Option(
            [], "--non-hmac-key",
            help="A request/response data key the audit device logs in plaintext (audit_non_hmac_*_keys)."),
        workers: Optional[int] = typer.Option(
            None, "--workers", min=0, max=1, show_default=False,
            help="1: parse in a second process while this one appends; 0: one process "
                 "(default: 1 for 8 MiB or more of files on a machine with 2+ CPUs)."),
        accept_changed: list[str] = typer.Option(
            [], "--accept-changed", metavar="FILE",
            help="A file reported TAMPERED that you have looked into: record a vault.file_replaced finding "
                 "and read it from its start (repeatable)."),
    ) -> None:
        """Collect Vault audit logs; every line becomes an entry, a duplicate or a quarantined record."""
        with open_ledger(OPTIONS.ledger) as ledger:
            source = VaultAuditLog(paths, pair_window=pair_window, max_open=max_open, final=final,
                                   non_hmac_keys=non_hmac_key, accept_changed=accept_changed)
            source.check_accept_changed()  # unusable paths fail here, before anything is read
            with progress("vault audit log") as advance:
                summary = run_collection(ledger, source, observed=OPTIONS.now_text(), batch_size=batch_size,
                                         on_progress=advance, workers=workers)
        if not summary.balanced or summary.read != source.lines + source.findings:
            raise InternalError("vault collection counts do not add up")
        notes = [{"location": n.location, "line": n.line, "reason": n.reason, **({"size": n.size} if n.size else {})}
                 for n in source.notes]
        tampered = [{"file": name, "error": message} for name, message in source.tampered]
        pending = [{"file": name, "bytes": size} for name, size in source.pending]
        for item in tampered:  # diagnostics go to stderr in both output formats
            err(f"error: {item['error']}")
        if OPTIONS.json:
            doc = summary.to_json()
            doc.update({"lines": source.lines, "findings": source.findings, "files": source.files,
                        "tampered": tampered, "rotations": source.rotations, "accepted_changed": source.accepted,
                        "pending": pending, "skipped": source.skipped, "quarantined_records": notes,
                        "ok": not summary.quarantined and not tampered})
            emit_json("fedledger.collect.vault", doc)
        else:
            report_quarantined(notes, summary.quarantined)
            for message in rotation_notes("vault", source.rotations, source.accepted):
                err(message)
            for name in source.skipped:
                err(f"note: {name}: skipped (under a folder, and not named like an audit log: *.log, *.json, *.jsonl; "
                    "name the file itself to read it)")
            for waiting in pending:
                err(f"note: {waiting['file']}: {waiting['bytes']} bytes after the last complete line are left for the next run")
            out(f"{summary.line()}; {source.lines} lines + {source.findings} unpaired findings from {source.files} file(s)"
                + (f"; {len(tampered)} file(s) TAMPERED" if tampered else ""))
        if summary.quarantined or tampered:
            raise typer.Exit(1)

    @vault_app.command("hmac", epilog=exit_codes())
    @run
    def vault_hmac(
        value: str = typer.Argument(..., help="The value to hash, or - to read it from stdin (keeps it out of ps)."),
        salt_file: Path = typer.Option(..., "--salt-file", help="File holding the audit device's salt."),
    ) -> None:
        """Print hmac-sha256:<hex> of VALUE as Vault's audit-hash endpoint computes it (offline)."""
        salt = read_salt(salt_file)
        if value == "-":
            data = sys.stdin.buffer.read()
            data = data[:-1] if data.endswith(b"\n") else data
            data = data[:-1] if data.endswith(b"\r") else data  # a CRLF line ending, as in read_salt
        else:
            data = os.fsencode(value)  # the argument's own bytes, even when they are not UTF-8
        digest = audit_hmac(salt, data)
        if OPTIONS.json:
            emit_json("fedledger.vault.hmac", {"hmac": digest})
        else:
            out(digest)
