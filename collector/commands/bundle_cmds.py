"""``fedledger bundle`` (evaluate, render, sign a bundle) and ``fedledger verify-bundle`` (check one offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from collector.cli_common import (
    OPTIONS, apply_local_options, emit_json, err, exit_codes, ledger_path_for, out, parse_as_of, party_names_text,
    progress, run,
)
from collector.commands.ledger_cmds import KEY_RANGE_HELP
from collector.errors import MalformedInput, SourceUnavailable, UsageError
from collector.export import not_empty_message
from collector.ledger_open import open_ledger
from collector.timeutil import format_time, parse_time

BASELINE_CHOICES = ("moderate", "high", "low", "ksi", "catalog")


def register(app: typer.Typer, collect_app: typer.Typer) -> None:
    @app.command(epilog=exit_codes(
        "a control not satisfied (with --strict), a URL the PDF renderer refused, or a "
        "ledger that fails a check"))
    @run
    def bundle(
        out_dir: Path = typer.Option(..., "--out", help="New or empty folder for the bundle."),
        baseline: Optional[str] = typer.Option(None, "--baseline", help="moderate (default), high, low, ksi, or catalog."),
        controls: Optional[str] = typer.Option(None, "--controls", help="Comma-separated control ids, e.g. AU-2,AU-9."),
        catalog: Optional[Path] = typer.Option(None, "--catalog", help="OSCAL catalog or resolved profile (titles, statements, parameters)."),
        policies: Optional[Path] = typer.Option(None, "--policies", help="Folder of .rego policies."),
        period_from: Optional[str] = typer.Option(None, "--from", help="Period start (RFC 3339 UTC)."),
        period_to: Optional[str] = typer.Option(None, "--to", help="Period end (RFC 3339 UTC)."),
        as_of: Optional[str] = typer.Option(None, "--as-of", help="Reference time (RFC 3339 UTC); default the global --as-of or now."),
        archive: Optional[str] = typer.Option(None, "--archive", help="Also write one archive: tar.gz or zip."),
        key: Optional[Path] = typer.Option(None, "--key", help="Private key file (default: the --config \\[signer], else "
                                           "the key beside the ledger)."),
        kms_key_id: Optional[str] = typer.Option(None, "--kms-key-id", help="Sign with this AWS KMS key (ECC_NIST_P256)."),
        endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="KMS endpoint (tests, VPC endpoints)."),
        region: Optional[str] = typer.Option(None, "--region", help="AWS region for KMS."),
        system: Optional[str] = typer.Option(None, "--system", help="System name for the cover (default: the ledger origin)."),
        organization: Optional[str] = typer.Option(
            None, "--organization", help="The organization whose system is assessed (the CSP), named on the index and "
                                         "as the OSCAL party prepared-for (default: the --config \\[bundle] organization)."),
        assessor: Optional[str] = typer.Option(
            None, "--assessor", help="The assessment organization (e.g. the 3PAO), named on the index and as the OSCAL "
                                     "party assessor (default: the --config \\[bundle] assessor)."),
        workers: int = typer.Option(2, "--workers", help="Processes rendering PDFs."),
        strict: bool = typer.Option(False, "--strict", help="Exit 1 when any control is not satisfied."),
        config: Optional[Path] = typer.Option(None, "--config", help="fedledger.toml: cadences, thresholds, regions and bundle defaults."),
        settings: Optional[Path] = typer.Option(None, "--settings", help="Evaluation settings (JSON or TOML, EvaluationConfig fields)."),
    ) -> None:
        """Evaluate the ledger against controls and write a signed, offline-verifiable bundle."""
        from bundler.evaluate import EvaluationConfig
        from bundler.make_bundle import (
            BundleRequest, bundle_count_lines, bundle_summary, evaluation_settings_from_config, make_bundle,
        )
        from bundler.party_names import require_party_name
        from collector.commands.ledger_cmds import open_signer
        from collector.run import config_anchor, config_handover_signer, config_previous_keys, config_signer

        if archive is not None and archive not in ("tar.gz", "zip"):
            raise UsageError("--archive must be tar.gz or zip")
        if baseline is not None and baseline.lower() not in BASELINE_CHOICES:
            raise UsageError(f"--baseline must be one of {', '.join(BASELINE_CHOICES)}")
        if organization is not None:
            organization = require_party_name(organization, what="--organization")
        if assessor is not None:
            assessor = require_party_name(assessor, what="--assessor")
        reference = parse_as_of(as_of) or OPTIONS.now()
        # usage errors before anything is signed: the bundle signs a fresh checkpoint when the ledger grew
        for text, name in ((period_from, "--from"), (period_to, "--to")):
            if text is not None:
                parse_time(text, field=name)
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
            raise UsageError(not_empty_message("bundle", out_dir), location=str(out_dir))
        wanted = tuple(c.strip() for c in controls.split(",") if c.strip()) if controls else None
        settings_obj = EvaluationConfig.from_file(settings) if settings else None
        anchor = None
        loaded_config = None
        ledger_location: Path | str = OPTIONS.ledger
        if config is not None:
            from collector.config import load_config

            loaded_config = load_config(config)
            ledger_location = ledger_path_for(loaded_config)
            settings_obj = evaluation_settings_from_config(loaded_config, settings_obj)
            b = loaded_config.bundle
            baseline = baseline or b.baseline
            wanted = wanted or (tuple(b.controls) or None)
            catalog = catalog or b.catalog
            policies = policies or b.policies_dir
            archive = archive or b.archive
            organization = organization or b.organization
            assessor = assessor or b.assessor
            anchor = config_anchor(loaded_config)  # a checkpoint this bundle signs must extend the anchor
        request = BundleRequest(
            out_dir=out_dir, as_of=format_time(reference), baseline=baseline.lower() if baseline else None,
            controls=wanted, catalog=catalog, policies=policies,
            period=(period_from, period_to) if (period_from or period_to) else None,
            archive=archive, system=system, organization=organization, assessor=assessor, workers=workers,
            settings=settings_obj,
        )
        with open_ledger(ledger_location) as ledger:
            # with a config and no --key/--kms-key-id: the signer `run` signs with
            signer = (config_signer(ledger, loaded_config, ledger_location)
                      if loaded_config is not None and key is None and kms_key_id is None
                      else open_signer(ledger, key, kms_key_id, endpoint_url, region))
            with progress("bundling") as advance:
                result, assessment = make_bundle(ledger, signer, request, anchor=anchor, on_note=err,
                                                 on_stage=lambda _s: advance(1),
                                                 previous=config_previous_keys(ledger, loaded_config),
                                                 handover=config_handover_signer(ledger, loaded_config))
        summary = bundle_summary(result, assessment, request)
        if OPTIONS.json:
            emit_json("fedledger.bundle", summary)
        else:
            out(f"bundle written to {result.out}" + (f" and {result.archive}" if result.archive else ""))
            out(f"index: {result.out / 'index.pdf'}")
            for line in bundle_count_lines(summary):
                out(line)
            out(f"bundle names: {party_names_text(summary['organization'], summary['assessor'])}")
        if result.refusals:
            # Our templates reference no URL outside the package's assets: a refusal means a page
            # held markup it should not (docs/bundle.md). Nothing was fetched; the bundle says so.
            err(f"WARNING: the PDF renderer refused {len(result.refusals)} URL(s) and fetched nothing; the report "
                "templates reference none, so evidence or a template put markup into these pages "
                "(listed in the index's verification transcript):")
            for page, url in result.refusals:
                err(f"  refused: {page}: {ascii(url)}")
            raise typer.Exit(1)
        if strict and summary["controls"]["not-satisfied"]:
            raise typer.Exit(1)

    @app.command("verify-bundle", epilog=exit_codes("any INVALID line"))
    @run
    def verify_bundle_cmd(
        path: Path = typer.Argument(..., help="Bundle folder, .tar.gz or .zip."),
        trusted_key: list[Path] = typer.Option([], "--trusted-key", help="Trusted public key (PEM or vkey); repeatable."),
        origin: Optional[str] = typer.Option(None, "--origin", help="Pinned ledger origin."),
        unpinned: bool = typer.Option(False, "--unpinned", help="Without --trusted-key/--origin, check against the "
                                      "bundle's own key and origin: shows the bundle is intact, not who made it."),
        checkpoint: list[str] = typer.Option(
            [], "--checkpoint",
            help="A signed checkpoint kept outside the bundle (an earlier assessment's, or an anchor: a file, or "
                 "s3://bucket/key or prefix) the ledger slice must agree with; catches a rolled-back or rewritten "
                 "ledger. Repeatable."),
        format: Optional[str] = typer.Option(None, "--format", help="human or json (default: the global --format)."),
        key_range: list[str] = typer.Option([], "--key-range", help=KEY_RANGE_HELP),
    ) -> None:
        """Check a bundle offline: signature, every hash, the ledger slice, every proof, OSCAL evidence hashes.

        Needs the provider's public key and origin, obtained out of band (--trusted-key, --origin).
        Key handovers among the ledger slice's checkpoints are followed: a bundle signed by a key
        the pinned key handed over to verifies, for trees from the handover's size on."""
        import tempfile

        from bundler.bundle_verify import verify_bundle
        from collector.checkpoint_fetch import materialize_checkpoints
        from collector.checkpoint_keys import parse_key_range

        apply_local_options(format)
        ranges = [parse_key_range(text) for text in key_range]
        if not path.exists():
            raise SourceUnavailable("no such bundle", location=str(path))
        keys = []
        for key_path in trusted_key:
            try:
                keys.append(key_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise SourceUnavailable(f"cannot read trusted key: {exc}", location=str(key_path)) from None
        if not keys or not origin:
            if not unpinned:
                raise UsageError("verify-bundle needs --trusted-key and --origin: the provider's public key and origin, "
                                 "obtained out of band (a key read from the bundle proves nothing about who made "
                                 "it); --unpinned checks against the bundle's own (integrity, not authorship)")
            err("note: key or origin not pinned; checking against the bundle's own (integrity, not authorship). "
                "Pin them with --trusted-key and --origin.")
        saved = []
        with tempfile.TemporaryDirectory(prefix="fedledger-checkpoints-") as fetched:
            for note_path in materialize_checkpoints(checkpoint, Path(fetched)):
                try:
                    saved.append((str(note_path), note_path.read_text(encoding="utf-8")))
                except (OSError, UnicodeDecodeError) as exc:
                    raise SourceUnavailable(f"cannot read saved checkpoint: {exc}", location=str(note_path)) from None
        report = verify_bundle(path, trusted_keys=keys, origin=origin, unpinned=unpinned, saved_checkpoints=saved,
                               key_ranges=ranges, key_labels=[str(p) for p in trusted_key])
        if [f.code for f in report.failures] == ["not-a-bundle"]:
            raise MalformedInput(report.failures[0].message, location=str(path))
        if OPTIONS.json:
            emit_json("fedledger.verify-bundle", {k: v for k, v in report.to_json().items() if k not in ("version", "kind")})
        else:
            for line in report.lines():
                out(line)
            out(report.tally())
        if not report.ok:
            raise typer.Exit(1)
