"""``fedledger collect attestations SRC``: verify and record attestation objects.

Exit codes: 0 every record is a signed attestation with sufficient retention ·
1 any attestation unsigned or invalid, any retention finding, any delete marker
(``attestation.deleted``), or any quarantined object (everything is still recorded first: evaluate, then gate) · 2 usage or
malformed input (bad key file, bad trusted root) · 3 source unavailable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from collector.attestation_verify import SigstorePolicy, TrustedKeys
from collector.cli_common import COLLECT_FAILED, OPTIONS, emit_json, exit_codes, out, progress, run
from collector.errors import SourceUnavailable, UsageError
from collector.ingest import ingest
from collector.ledger_open import open_ledger
from collector.object_source import open_provider
from collector.sources.attestations import (
    DEFAULT_MIN_RETENTION_DAYS,
    AttestationObjects,
    AttestationSettings,
    read_trusted_keys,
)


def register(app: typer.Typer, collect_app: typer.Typer) -> None:
    @collect_app.command("attestations", epilog=exit_codes(COLLECT_FAILED))
    @run
    def collect_attestations(
        src: str = typer.Argument(..., help="Folder or s3://bucket/prefix holding attestation objects."),
        endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="S3 endpoint (VPC endpoint, tests)."),
        region: Optional[str] = typer.Option(None, "--region", help="AWS region (e.g. us-gov-west-1)."),
        profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile from the shared config."),
        trusted_keys: Optional[Path] = typer.Option(None, "--trusted-keys", help="Folder of pinned PEM public keys."),
        trusted_root: Optional[Path] = typer.Option(None, "--trusted-root", help="sigstore trusted_root.json."),
        certificate_identity: Optional[str] = typer.Option(None, "--certificate-identity",
                                                           help="Expected signer identity in sigstore certificates."),
        certificate_oidc_issuer: Optional[str] = typer.Option(None, "--certificate-oidc-issuer",
                                                              help="Expected OIDC issuer in sigstore certificates."),
        min_retention_days: int = typer.Option(DEFAULT_MIN_RETENTION_DAYS, "--min-retention-days",
                                               help="Object Lock retention below this is a finding."),
        current_only: bool = typer.Option(False, "--current-only",
                                          help="S3: list only current objects (ListObjectsV2), not every version "
                                               "and delete marker (which needs s3:ListBucketVersions)."),
    ) -> None:
        """Verify DSSE / in-toto / sigstore / detached-signature attestations and record them with
        their S3 version, encryption and Object Lock retention."""
        if min_retention_days < 0:
            raise UsageError("--min-retention-days must be 0 or more")
        if certificate_oidc_issuer and not certificate_identity:
            raise UsageError("--certificate-oidc-issuer needs --certificate-identity")
        keys = read_trusted_keys(trusted_keys) if trusted_keys else TrustedKeys()
        root_bytes = None
        if trusted_root is not None:
            try:
                root_bytes = trusted_root.read_bytes()
            except OSError as exc:
                raise SourceUnavailable(f"cannot read trusted root: {exc.strerror}", location=str(trusted_root)) from None
        settings = AttestationSettings(
            as_of=OPTIONS.now(),
            keys=keys,
            sigstore=SigstorePolicy(root_bytes, certificate_identity, certificate_oidc_issuer),
            min_retention_days=min_retention_days,
            all_versions=not current_only,
        )
        provider = open_provider(src, endpoint_url=endpoint_url, region=region, profile=profile)
        source = AttestationObjects(provider, src, settings)
        with open_ledger(OPTIONS.ledger) as ledger:
            cursors = ledger.cursors()
            with progress("attestations") as advance:
                summary = ingest(ledger, source.collect(cursors), kind=source.kind, source_id=source.source_id,
                                 observed=OPTIONS.now_text(), on_progress=advance)
        tally = source.tally
        balanced = summary.balanced and tally.listed == tally.records + tally.companions
        failed = tally.unsigned + tally.invalid + tally.retention_findings + tally.deleted + summary.quarantined
        if OPTIONS.json:
            emit_json("fedledger.collect.attestations", {**summary.to_json(), "objects": tally.to_json(),
                                                         "balanced": balanced, "ok": failed == 0,
                                                         "results": source.outcomes})
        else:
            for line in source.results:
                out(line)
            out(summary.line())
            out(f"{tally.listed} objects listed: {tally.records} records, {tally.companions} companions "
                f"(.sig/.crt/bundle artifacts); {tally.signed} signed, {tally.unsigned} unsigned, "
                f"{tally.invalid} INVALID, {tally.retention_findings} retention finding(s)"
                + (f"; {tally.older_versions} older version(s), {tally.deleted} DELETED" if tally.older_versions
                   or tally.deleted else ""))
        if failed:
            raise typer.Exit(1)
