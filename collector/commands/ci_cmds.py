"""``fedledger collect ci PATH...``: CI webhooks, generic ``ci.job.*`` events and OIDC tokens.

Exit codes: 0 everything ingested (appended or already there) · 1 something was
quarantined or a file was tampered with (the good records are still committed) ·
2 unusable input (missing path, no CI event file found, unreadable JWKS or secret file) · 3 ledger unavailable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer

from collector.cli_common import (
    COLLECT_FAILED, OPTIONS, emit_json, err, exit_codes, out, progress, report_quarantined, run,
)
from collector.errors import UsageError
from collector.ingest import IngestSummary, ingest
from collector.ledger import CONFLICT_REASON, Ledger
from collector.ledger_open import open_ledger
from collector.oidc import DEFAULT_ISSUERS, MAX_LEEWAY_SECONDS, TrustedJwks
from collector.rotation import rotation_notes
from collector.sources.ci import FOLDER_SUFFIXES, CiOptions, CiTally, ci_sources, read_webhook_secrets

LOOKED_FOR = ", ".join(f"*{s}" for s in FOLDER_SUFFIXES)  # the names a folder's CI event files have
UNSIGNED_NAMED = 50  # unsigned payloads named on stderr (all are counted; JSON lists the first 1,000)


def _read_input_file(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what}: {exc.strerror}", location=str(path)) from None


def build_options(jwks: Path | None, issuer: list[str], audience: list[str], webhook_secret_file: Path | None,
                  leeway: int, require_signed: bool = False) -> CiOptions:
    """Verification options from the command line; secrets are read here and never printed."""
    trusted = TrustedJwks.from_bytes(_read_input_file(jwks, "JWKS"), location=str(jwks)) if jwks else None
    secrets: tuple[bytes, ...] = ()
    if webhook_secret_file is not None:
        secrets = read_webhook_secrets(_read_input_file(webhook_secret_file, "webhook secret file"),
                                       location=str(webhook_secret_file))
    if leeway < 0 or leeway > MAX_LEEWAY_SECONDS:
        raise UsageError(f"--leeway must be between 0 and {MAX_LEEWAY_SECONDS} seconds")
    if require_signed and not secrets:
        raise UsageError("--require-signed needs a webhook secret (--webhook-secret-file): without one no payload "
                         "can be signed")
    return CiOptions(jwks=trusted, issuers=tuple(issuer) or DEFAULT_ISSUERS, audiences=tuple(audience),
                     webhook_secrets=secrets, leeway_seconds=leeway, require_signed=require_signed)


def collect_ci(ledger: Ledger, paths: list[str], options: CiOptions, *, observed: str,
               on_progress: Callable[[int], None] | None = None,
               accept_changed: list[str] | None = None) -> tuple[IngestSummary, CiTally]:
    """Ingest every CI source under *paths* (one source id and cursor per file); counts add up.

    Raises :class:`UsageError` when *paths* name no CI event file at all (folders holding none):
    run by hand, that is a wrong path. ``fedledger run`` does not go through here and accepts an
    empty inbox folder (docs/scheduling.md).
    """
    tally = CiTally()
    total = IngestSummary(source="ci", size=ledger.size)
    sources = list(ci_sources(paths, options, tally, accept_changed or ()))
    if not sources:
        passed = f"; skipped {len(tally.skipped)} other file(s), e.g. {tally.skipped[0]}" if tally.skipped else ""
        raise UsageError("no CI event files found in " + ", ".join(paths)
                         + f" (looked for {LOOKED_FOR}{passed})")
    for source in sources:
        summary = ingest(ledger, source.collect(ledger.cursors()), kind=source.kind, source_id=source.source_id,
                         observed=observed, on_progress=on_progress)
        for row in summary.notes:  # found by the ledger at commit (a delivery id it already holds): named too
            if row.reason.startswith(CONFLICT_REASON):
                tally.note_quarantine(row.location, row.line, row.reason)
        total.add(summary)
    total.size = ledger.size
    return total, tally


def register(app: typer.Typer, collect_app: typer.Typer) -> None:
    @collect_app.command("ci", epilog=exit_codes(COLLECT_FAILED))
    @run
    def collect_ci_command(
        paths: list[str] = typer.Argument(..., help="Files or folders of CI events; '-' reads JSON lines from stdin."),
        jwks: Optional[Path] = typer.Option(None, "--jwks", help="JWKS file with the OIDC issuer's public keys."),
        issuer: list[str] = typer.Option([], "--issuer", help="Allowed OIDC issuer (repeatable; default GitHub Actions and gitlab.com)."),
        audience: list[str] = typer.Option([], "--audience", help="Allowed OIDC audience (repeatable); without it no token counts as verified."),
        webhook_secret_file: Optional[Path] = typer.Option(None, "--webhook-secret-file", help="Webhook secret(s), one per line; deliveries must then verify."),
        leeway: int = typer.Option(0, "--leeway", help="Clock leeway in seconds for OIDC exp/nbf/iat (0 to 600)."),
        require_signed: bool = typer.Option(
            False, "--require-signed",
            help="Quarantine GitHub/GitLab payloads that come without a signed delivery envelope "
                 "(needs --webhook-secret-file)."),
        accept_changed: list[str] = typer.Option(
            [], "--accept-changed", metavar="FILE",
            help="A file reported TAMPERED that you have looked into: record a ci.file_replaced finding "
                 "and read it from its start (repeatable)."),
    ) -> None:
        """Collect CI job events: GitHub/GitLab webhooks, generic ci.job.* events, OIDC ID tokens."""
        for name in paths:
            if name != "-" and not Path(name).exists():
                raise UsageError("no such file or folder", location=name)
        if paths.count("-") > 1:
            raise UsageError("'-' (stdin) can be given once")
        options = build_options(jwks, issuer, audience, webhook_secret_file, leeway, require_signed)
        with open_ledger(OPTIONS.ledger) as ledger:
            with progress("collecting CI events") as advance:
                total, tally = collect_ci(ledger, paths, options, observed=OPTIONS.now_text(), on_progress=advance,
                                          accept_changed=accept_changed)
        failed = total.quarantined > 0 or bool(tally.tampered)
        if OPTIONS.json:
            emit_json("fedledger.collect.ci", {**total.to_json(), **tally.to_json(), "balanced": total.balanced,
                                               "ok": not failed})
        else:
            report_quarantined(tally.quarantined, total.quarantined)
            for line in tally.tampered:
                err(f"TAMPERED: {line}")
            for line in tally.pending:
                err(f"pending: {line}")
            for name in tally.skipped:
                err(f"note: {name}: skipped (under a folder, and not named {LOOKED_FOR})")
            for message in rotation_notes("ci", tally.rotations, tally.accepted):
                err(message)
            for note in tally.unsigned_payloads[:UNSIGNED_NAMED]:
                provider = {"github": "GitHub", "gitlab": "GitLab"}.get(str(note["provider"]), str(note["provider"]))
                where = f"{note['location']}:{note['line']}" if note["line"] is not None else str(note["location"])
                err(f"warning: {where}: a {provider} payload without a delivery signature was ingested although a "
                    "webhook secret is configured (the bundle reports it; --require-signed quarantines it)")
            if len(tally.unsigned_payloads) > UNSIGNED_NAMED:
                err(f"warning: {len(tally.unsigned_payloads) - UNSIGNED_NAMED} more unsigned payload(s) not named "
                    "here (--format json lists up to 1,000)")
            out(total.line())
            out(f"oidc tokens: {tally.tokens_verified} verified, {tally.tokens_failed} NOT verified; "
                f"webhook deliveries: {tally.webhooks_verified} signature verified, "
                f"{tally.webhooks_unchecked} not checked, {tally.webhooks_unsigned} unsigned payload(s); "
                f"{tally.redacted_records} record(s) stored redacted")
        if failed:
            raise typer.Exit(1)
