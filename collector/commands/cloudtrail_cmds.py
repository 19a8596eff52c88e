"""CloudTrail commands: ``collect cloudtrail``, ``cloudtrail validate``, ``cloudtrail download``.

Exit codes of ``collect cloudtrail``: 0 every record became an entry or a duplicate and the
digest chain validated (or was skipped); 1 some records were quarantined or the chain has an
INVALID verdict (everything is recorded first); 2 unusable input; 3 a source is unavailable.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from collector.cli_common import (
    COLLECT_FAILED, OPTIONS, FedledgerGroup, emit_json, err, exit_codes, out, progress, report_quarantined, run,
)
from collector.cloudtrail_digest import ValidationReport, show_time
from collector.cloudtrail_fetch import (
    PublicKeySource,
    download,
    public_keys_from_cloudtrail,
    public_keys_from_file,
    validate_store,
)
from collector.ingest import ingest, ingest_source
from collector.ledger_open import open_ledger
from collector.object_source import ObjectProvider, open_provider
from collector.sources.cloudtrail import CloudTrailDigestVerdicts, CloudTrailLogs
from collector.timeutil import parse_time


def _provider(src: str, endpoint_url: str | None, region: str | None, profile: str | None) -> ObjectProvider:
    return open_provider(src, endpoint_url=endpoint_url, region=region, profile=profile)


def _keys(public_keys: list[Path], region: str | None, profile: str | None) -> PublicKeySource:
    if public_keys:
        return public_keys_from_file(*public_keys)
    return public_keys_from_cloudtrail(region=region, profile=profile)


def _time(text: str | None, name: str) -> datetime | None:
    return parse_time(text, field=name) if text is not None else None


def _print_report(report: ValidationReport, header: str) -> None:
    if OPTIONS.json:
        emit_json("fedledger.cloudtrail-validate", report.to_json())
        return
    out(header)
    for verdict in report.verdicts:
        out(verdict.line())
    out(report.tally())


def register(app: typer.Typer, collect_app: typer.Typer) -> None:
    cloudtrail_app = typer.Typer(cls=FedledgerGroup, help="CloudTrail digest validation and downloads.",
                                 no_args_is_help=True)
    app.add_typer(cloudtrail_app, name="cloudtrail")

    endpoint_opt = typer.Option(None, "--endpoint-url", help="S3 endpoint (tests, VPC endpoints).")
    region_opt = typer.Option(None, "--region", help="AWS region (GovCloud: us-gov-west-1, us-gov-east-1).")
    profile_opt = typer.Option(None, "--profile", help="AWS profile (boto3's standard credential chain otherwise).")
    keys_opt = typer.Option([], "--public-keys",
                            help="Saved `aws cloudtrail list-public-keys` output (offline; repeatable, e.g. one per "
                                 "region); else ListPublicKeys.")

    @collect_app.command("cloudtrail", epilog=exit_codes(COLLECT_FAILED))
    @run
    def collect_cloudtrail(
        src: str = typer.Argument(..., help="Folder, one log file, or s3://bucket/prefix."),
        endpoint_url: Optional[str] = endpoint_opt,
        region: Optional[str] = region_opt,
        profile: Optional[str] = profile_opt,
        public_keys: list[Path] = keys_opt,
        start: Optional[str] = typer.Option(None, "--start", help="Validate digests from (RFC 3339)."),
        end: Optional[str] = typer.Option(None, "--end", help="Validate digests until (RFC 3339)."),
        workers: Optional[int] = typer.Option(
            None, "--workers", min=0, show_default=False,
            help="Parse log files in this many worker processes (0: in this process; default: 2 for 8 MiB "
                 "or more of log files on a machine with 2+ CPUs)."),
        skip_digests: bool = typer.Option(False, "--skip-digests", help="Do not validate the digest chain."),
    ) -> None:
        """Ingest CloudTrail log records, then validate the digest chain and record the verdicts."""
        start_at, end_at = _time(start, "--start"), _time(end, "--end")
        observed = OPTIONS.now_text()
        if src.startswith("s3://"):
            source = CloudTrailLogs(_provider(src, endpoint_url, region, profile), workers=workers)
        else:
            source = CloudTrailLogs.for_path(src, workers=workers)
        report = None
        with open_ledger(OPTIONS.ledger) as ledger:
            with progress("collecting cloudtrail") as advance:
                summary = ingest_source(ledger, source, source_id=source.source_id, observed=observed,
                                        on_progress=advance)
            if not skip_digests and source.keys is None:
                report = validate_store(source.provider, _keys(public_keys, region, profile), start=start_at,
                                        end=end_at, no_digests="gap")
                requested = (show_time(start_at), show_time(end_at)) if start_at and end_at else None
                verdicts = CloudTrailDigestVerdicts(report, source.provider.uri(""), observed=observed,
                                                    requested=requested)
                summary.add(ingest(ledger, verdicts.collect({}), kind=verdicts.kind, source_id=verdicts.source_id,
                                   observed=observed))
        notes = [{"location": n.location, "line": n.line, "reason": n.reason} for n in summary.notes]
        ok = not summary.quarantined and (report is None or report.ok)
        if OPTIONS.json:
            doc = summary.to_json()
            doc["files_skipped"] = source.files_skipped
            doc["quarantined_records"] = notes
            doc["ok"] = ok
            if report is not None:
                doc["digests"] = {"ok": report.ok, "tally": report.tally(),
                                  "problems": [v.to_json() for v in report.verdicts if v.status != "valid"]}
            emit_json("fedledger.collect-cloudtrail", doc)
        else:
            report_quarantined(notes, summary.quarantined, mark="#")
            out(summary.line())
            if report is not None:
                for verdict in report.verdicts:
                    if verdict.status != "valid":
                        out(verdict.line())
                out("digests: " + report.tally())
        if not ok:  # quarantined records or an invalid chain: the good records are still committed
            raise typer.Exit(1)

    @cloudtrail_app.command("validate", epilog=exit_codes("any INVALID line"))
    @run
    def validate(
        src: str = typer.Argument(..., help="Folder (with .sig.json sidecars) or s3://bucket/prefix."),
        start: str = typer.Option(..., "--start", help="Start of the period (RFC 3339)."),
        end: str = typer.Option(..., "--end", help="End of the period (RFC 3339)."),
        public_keys: list[Path] = keys_opt,
        endpoint_url: Optional[str] = endpoint_opt,
        region: Optional[str] = region_opt,
        profile: Optional[str] = profile_opt,
    ) -> None:
        """Validate digests and log files like `aws cloudtrail validate-logs`, plus gaps; exit 1 on any INVALID."""
        start_at, end_at = parse_time(start, field="--start"), parse_time(end, field="--end")
        provider = _provider(src, endpoint_url, region, profile)
        report = validate_store(provider, _keys(public_keys, region, profile), start=start_at, end=end_at)
        _print_report(report, f"Validating log files in {provider.uri('')} between {show_time(start_at)} and "
                              f"{show_time(end_at)}")
        if not report.ok:
            raise typer.Exit(1)

    @cloudtrail_app.command("download", epilog=exit_codes())
    @run
    def download_cmd(
        src: str = typer.Argument(..., help="s3://bucket/prefix (or a folder)."),
        dest: Path = typer.Argument(..., help="Folder to write to; digests get a .sig.json sidecar."),
        endpoint_url: Optional[str] = endpoint_opt,
        region: Optional[str] = region_opt,
        profile: Optional[str] = profile_opt,
    ) -> None:
        """Copy CloudTrail logs and digests to a folder, keeping each digest's signature in a sidecar."""
        count = download(_provider(src, endpoint_url, region, profile), dest)
        if OPTIONS.json:
            emit_json("fedledger.cloudtrail-download", {"objects": count, "dest": str(dest)})
        else:
            err(f"downloaded {count} objects to {dest}")
