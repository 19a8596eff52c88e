"""Scheduled-operation commands: ``config check``, ``run``, ``status``."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer

from collector.cli_common import (
    OPTIONS, FedledgerGroup, apply_local_options, emit_json, err, exit_codes, ledger_path_for, out, party_names_text,
    report_error, run,
)
from collector.config import ConfigInvalid, FedledgerConfig, config_path_from, load_config
from collector.errors import FedledgerError, UsageError

CONFIG_HELP = "Config file (default: $FEDLEDGER_CONFIG, else ./fedledger.toml)."


def _load(config: Path | None) -> FedledgerConfig:
    path = config_path_from(config)
    try:
        return load_config(path)
    except ConfigInvalid as exc:
        raise report_error(exc, human=[*(f"error: {problem}" for problem in exc.problems),
                                       f"{len(exc.problems)} problem(s) in {path}"]) from None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 0:
        return f"-{_duration(-seconds)}"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m"


def register(app: typer.Typer, collect_app: typer.Typer) -> None:
    config_app = typer.Typer(cls=FedledgerGroup, help="Check the fedledger.toml configuration.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("check", epilog=exit_codes())
    @run
    def config_check(
        config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
        strict: bool = typer.Option(False, "--strict", help="Exit 3 when a source could not run as configured."),
        format: Optional[str] = typer.Option(None, "--format", help="Output: human or json."),
    ) -> None:
        """Validate the config (every problem with its line) and print what `fedledger run` would do."""
        apply_local_options(format)
        cfg = _load(config)
        report = describe_config(cfg, ledger_path_for(cfg), OPTIONS.now())
        if OPTIONS.json:
            emit_json("fedledger.config-check", report)
        else:
            for line in render_config_report(report):
                out(line)
        if strict and report["warnings"]:
            raise typer.Exit(3)

    @app.command("run", epilog=exit_codes(
        "a source found tampered evidence, the signer refused to sign, or the PDF "
        "renderer refused a URL"))
    @run
    def run_command(
        config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
        wait: float = typer.Option(0.0, "--wait", min=0.0, help="Wait this many seconds for another run to finish."),
        log_file: Optional[Path] = typer.Option(None, "--log-file", help="Write JSON-lines logs here (appended)."),
        source: list[str] = typer.Option([], "--source", help="Collect only this configured source; repeatable."),
        publish_checkpoint: Optional[str] = typer.Option(
            None, "--publish-checkpoint", help="Anchor the checkpoint at s3://bucket/prefix (Object Lock COMPLIANCE)."
        ),
        retention_days: Optional[int] = typer.Option(
            None, "--retention-days", min=1, help="Object Lock retention of the anchored checkpoint (default: config)."
        ),
        bundle: Optional[bool] = typer.Option(
            None, "--bundle/--no-bundle", help="Build a bundle after the run (default: \\[bundle] after_run)."
        ),
        format: Optional[str] = typer.Option(None, "--format", help="Summary on stdout: human or json."),
        as_of: Optional[str] = typer.Option(None, "--as-of", help="Observed time written into entries (RFC 3339)."),
    ) -> None:
        """Collect every configured source, sign a checkpoint, anchor it, optionally bundle (one run per ledger)."""
        from collector.run import RunRequest, execute_run

        apply_local_options(format, as_of)
        cfg = _load(config)
        if publish_checkpoint is not None and not publish_checkpoint.startswith("s3://"):
            raise UsageError("--publish-checkpoint must be an s3://bucket/prefix URL")
        request = RunRequest(
            config=cfg,
            ledger_path=ledger_path_for(cfg),
            as_of=OPTIONS.now(),
            wait_seconds=wait,
            only=tuple(source),
            publish_url=publish_checkpoint,
            publish_retention_days=retention_days,
            build_bundle=cfg.bundle.after_run if bundle is None else bundle,
        )
        if log_file is not None:
            try:
                stream = open(log_file, "a", encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot open the log file: {exc.strerror}", location=str(log_file)) from None
            with stream:
                result = execute_run(request, stream, human=False,
                                     also_human=sys.stderr if sys.stderr.isatty() else None)
        else:
            result = execute_run(request, sys.stderr, human=sys.stderr.isatty())
        if OPTIONS.json:
            emit_json("fedledger.run", result.to_json())
        else:
            for outcome in result.outcomes:
                if outcome.ok and outcome.counts is not None:
                    out(outcome.counts.line().replace(outcome.counts.source, outcome.name, 1))
                else:
                    out(f"{outcome.name}: FAILED: {outcome.message}")
            if result.checkpoint is not None:
                cp = result.checkpoint
                out(f"checkpoint: size {cp.size}, root {cp.root.hex()}" + ("" if result.checkpoint_new else " (unchanged)"))
            if result.published:
                out(f"anchored: {result.published['url']} (until {result.published['retain_until']})")
            if result.bundle:
                out(f"bundle: {result.bundle}")
            if result.bundle_summary is not None:
                from bundler.make_bundle import bundle_count_lines  # there is a summary only when bundler is

                for line in bundle_count_lines(result.bundle_summary):
                    out(line)
        if result.exit_code:
            err(f"error: {result.failure_message()}")
            raise typer.Exit(result.exit_code)

    @app.command("status", epilog=exit_codes("a source is stale"))
    @run
    def status_command(
        config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
        format: Optional[str] = typer.Option(None, "--format", help="Output: human or json."),
        as_of: Optional[str] = typer.Option(None, "--as-of", help="Judge freshness at this time (default: now)."),
    ) -> None:
        """Per source: newest evidence, last collection, counts, stale or not; exit 1 when anything is stale."""
        from collector.status import ledger_status, render_status

        apply_local_options(format, as_of)
        path = config_path_from(config)
        cfg: FedledgerConfig | None
        if config is None and not os.environ.get("FEDLEDGER_CONFIG") and not path.exists():
            cfg = None
            ledger_path = OPTIONS.ledger
        else:
            cfg = _load(config)
            ledger_path = ledger_path_for(cfg)
        report = ledger_status(ledger_path, cfg, as_of=OPTIONS.now())
        if OPTIONS.json:
            emit_json("fedledger.status", report.to_json())
        else:
            for line in render_status(report):
                out(line)
        if report.stale:
            raise typer.Exit(1)


def describe_config(cfg: FedledgerConfig, ledger_path: Path | str, as_of: datetime) -> dict[str, Any]:
    """What a run would do with *cfg*, and what would stop it (as warnings)."""
    from collector.cli_common import key_paths
    from collector.run import RunContext, plan_source

    warnings: list[str] = []
    from collector.ledger_open import is_postgres, open_ledger

    exists = is_postgres(ledger_path) or Path(ledger_path).is_file()
    ledger_problems: list[str] = []
    ledger_doc: dict[str, Any] = {"path": str(ledger_path), "origin": cfg.ledger.origin, "exists": exists,
                                  "problems": ledger_problems}
    if exists:
        try:
            with open_ledger(ledger_path) as ledger:
                ledger_doc["size"] = ledger.size
                if ledger.origin != cfg.ledger.origin:
                    ledger_problems.append(f"ledger origin is {ledger.origin!r}, config says {cfg.ledger.origin!r}")
        except FedledgerError as exc:
            ledger_problems.append(f"ledger: {exc}")
    else:
        ledger_problems.append(f"no ledger yet at {ledger_path}: "
                               f"`fedledger --ledger {ledger_path} init --origin {cfg.ledger.origin}`")
    warnings.extend(ledger_problems)
    signer = cfg.signer
    signer_doc: dict[str, Any] = {"describe": signer.describe()}
    if not signer.kms_key_id:
        try:
            key_file = signer.key_file or key_paths(ledger_path)[0]
        except UsageError as exc:
            warnings.append(f"signer: {exc}")
            signer_doc["problem"] = str(exc)
            key_file = Path("fedledger.key")
        signer_doc["key_file"] = str(key_file)
        signer_doc["present"] = key_file.is_file()
        if not key_file.is_file():
            warnings.append(f"signing key file missing: {key_file}")
    if signer.previous_keys:
        from collector.signing import load_previous_keys

        signer_doc["previous_keys"] = [str(p) for p in signer.previous_keys]
        try:
            load_previous_keys(signer.previous_keys, cfg.ledger.origin)
        except FedledgerError as exc:
            signer_doc["previous_keys_problem"] = f"signer.previous_keys: {exc}"
            warnings.append(signer_doc["previous_keys_problem"])
    if signer.handover_key_file is not None:
        from collector.signing import load_file_signer, load_previous_keys, require_previous_key

        signer_doc["handover_key"] = str(signer.handover_key_file)
        try:
            require_previous_key(load_file_signer(signer.handover_key_file, cfg.ledger.origin).verifier,
                                 load_previous_keys(signer.previous_keys, cfg.ledger.origin))
        except FedledgerError as exc:
            signer_doc["handover_key_problem"] = f"signer.handover_key_file: {exc}"
            warnings.append(signer_doc["handover_key_problem"])
    elif signer.handover_kms_key_id:
        signer_doc["handover_key"] = f"AWS KMS key {signer.handover_kms_key_id}"
    context = RunContext(cfg, ledger_path, as_of, "", "config-check")
    sources = []
    for source in cfg.sources:
        doc: dict[str, Any] = {
            "name": source.name,
            "kind": source.kind,
            "enabled": source.enabled,
            "locations": list(source.locations),
            "cadence": None if source.cadence is None else {"name": source.cadence.name, "seconds": source.cadence.seconds,
                                                            "rule": source.cadence.rule},
            "line": source.line,
            "would_collect": [],
            "problems": [],
        }
        if source.enabled:
            for label, path in _referenced_files(source):
                if not path.exists():
                    doc["problems"].append(f"{label} not found: {path}")
            secret = source.webhook_secret
            if secret is not None and not secret.available():
                doc["problems"].append(f"webhook secret not available ({secret.describe()})")
            elif secret is not None and secret.file is not None and secret.file.stat().st_mode & 0o077:
                doc["problems"].append(f"webhook secret file {secret.file} is readable by group or others (chmod 600)")
            try:
                doc["would_collect"] = [{"source_id": p.source_id, "label": p.label} for p in plan_source(source, context)]
            except FedledgerError as exc:
                doc["problems"].append(str(exc))
            skipped = context.skipped.get(source.name) or []
            if skipped:  # a file the operator expects read but named otherwise (events.JSONL): say so now
                doc["would_skip"] = list(skipped)
                doc["problems"].append(f"{len(skipped)} file(s) under its folders not named like its input files "
                                       f"are not read, e.g. {skipped[0]}")
        for problem in doc["problems"]:
            where = f"{cfg.path}:{source.line}: " if source.line else f"{cfg.path}: "
            warnings.append(f"{where}source {source.name}: {problem}")
        sources.append(doc)
    return {
        "config": str(cfg.path),
        "valid": True,
        "ledger": ledger_doc,
        "signer": signer_doc,
        "sources": sources,
        "allowed_regions": list(cfg.allowed_regions),
        "thresholds": {
            "secret_reads_per_job": cfg.thresholds.secret_reads_per_job,
            "token_renewals_per_job": cfg.thresholds.token_renewals_per_job,
            "allowed_ai_endpoints": list(cfg.thresholds.allowed_ai_endpoints),
        },
        "retention_minimum_days": cfg.retention_minimum_days,
        "bundle": {"out_dir": str(cfg.bundle.out_dir) if cfg.bundle.out_dir else None, "baseline": cfg.bundle.baseline,
                   "catalog": str(cfg.bundle.catalog) if cfg.bundle.catalog else None,
                   "controls": list(cfg.bundle.controls),
                   "policies_dir": str(cfg.bundle.policies_dir) if cfg.bundle.policies_dir else None,
                   "archive": cfg.bundle.archive, "after_run": cfg.bundle.after_run,
                   "organization": cfg.bundle.organization, "assessor": cfg.bundle.assessor},
        "publish": {"checkpoint": cfg.publish.checkpoint, "retention_days": cfg.publish_retention_days},
        "warnings": warnings,
    }


def _referenced_files(source: Any) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for path in source.public_keys:
        found.append(("public key", path))
    if source.jwks is not None:
        found.append(("jwks", source.jwks))
    if source.trusted_keys_dir is not None:
        found.append(("trusted keys dir", source.trusted_keys_dir))
    for key, value in source.options.items():
        if isinstance(value, Path):
            found.append((key, value))
    for loc in source.locations:
        if "://" not in loc:
            found.append(("location", Path(loc)))
    return found


def render_config_report(report: dict[str, Any]) -> list[str]:
    lines = [f"config {report['config']}: valid"]
    ledger = report["ledger"]
    state = (f"{ledger['size']} entries" if "size" in ledger else "cannot be read" if ledger.get("exists")
             else "not created yet")
    lines.append(f"ledger: {ledger['path']} (origin {ledger['origin']}; {state})")
    for problem in ledger.get("problems", ()):
        lines.append(f"  WARNING: {problem}")
    signer = report["signer"]
    if "problem" in signer:
        lines.append(f"signer: {signer['describe']}")
        lines.append(f"  WARNING: {signer['problem']}")
    else:
        lines.append(f"signer: {signer['describe']}" + (
            f" ({signer['key_file']}: {'present' if signer['present'] else 'MISSING'})" if "key_file" in signer else ""))
    if signer.get("previous_keys"):
        lines.append(f"  previous keys (a new tree must extend what they signed): {', '.join(signer['previous_keys'])}")
    if "previous_keys_problem" in signer:
        lines.append(f"  WARNING: {signer['previous_keys_problem']}")
    if signer.get("handover_key"):
        lines.append(f"  handover key (co-signs the new key's first checkpoint): {signer['handover_key']}")
    if "handover_key_problem" in signer:
        lines.append(f"  WARNING: {signer['handover_key_problem']}")
    lines.append(f"sources ({len(report['sources'])}):")
    for s in report["sources"]:
        cadence = f", stale after {s['cadence']['name']}" if s["cadence"] else ", no cadence"
        if not s["enabled"]:
            lines.append(f"  {s['name']} [{s['kind']}]: disabled")
            continue
        streams = len(s["would_collect"])
        lines.append(f"  {s['name']} [{s['kind']}]{cadence}: would collect {streams} stream(s)")
        for plan in s["would_collect"][:10]:
            lines.append(f"    {plan['label']}")
        if streams > 10:
            lines.append(f"    … and {streams - 10} more")
        for problem in s["problems"]:
            lines.append(f"    WARNING: {problem}")
    publish = report["publish"]
    lines.append(f"publish checkpoint: {publish['checkpoint'] or 'no'}"
                 + (f" (Object Lock COMPLIANCE, {publish['retention_days']} days)" if publish["checkpoint"] else ""))
    lines.append(f"bundle after run: {'yes' if report['bundle']['after_run'] else 'no'}")
    names = party_names_text(report["bundle"]["organization"], report["bundle"]["assessor"])
    lines.append(f"bundle names: {names}")
    lines.append(f"{len(report['sources'])} source(s), {len(report['warnings'])} warning(s)")
    return lines

