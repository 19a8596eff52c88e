"""``fedledger demo``: the whole pipeline on the samples shipped with fedledger.

Copies the samples to ``OUT/samples``, creates a ledger in ``OUT/ledger``, runs every
source of ``samples/fedledger.toml`` (Vault, CI, CloudTrail, attestations), signs a
checkpoint, builds the bundle (``OUT/bundle`` and ``OUT/bundle.tar.gz``) and checks
it the way an assessor would, offline, with the key and origin pinned. Works from a
plain ``pip install`` (the samples are package data) and from a checkout.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from collector.cli_common import OPTIONS, emit_json, err, exit_codes, key_paths, out, run
from collector.errors import UsageError
from collector.timeutil import format_time, parse_time

DEMO_MARK = ".fedledger-demo"
# The sample story happens on 2026-11-20; judging it a day later keeps the demo's
# freshness verdicts the same whenever it is run. --as-of overrides it.
DEMO_AS_OF = "2026-11-21T00:00:00Z"
SKIP = shutil.ignore_patterns("make", "package", "__init__.py", "__pycache__", "*.pyc")


@contextmanager
def shipped_samples() -> Iterator[Path]:
    """The samples folder: package data when installed, the checkout's samples/ otherwise."""
    from importlib import resources

    try:
        files = resources.files("collector.samples")
    except ModuleNotFoundError:
        files = None
    if files is not None and files.joinpath("fedledger.toml").is_file():
        with resources.as_file(files) as path:
            yield Path(path)
            return
    checkout = Path(__file__).resolve().parents[2] / "samples"
    if not (checkout / "fedledger.toml").is_file():
        raise UsageError("the samples are not installed with this copy of fedledger")
    yield checkout


def prepare_out(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / DEMO_MARK).is_file():
            raise UsageError("folder exists, is not empty and is not an earlier demo: choose another --out",
                             location=str(out_dir))
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARK).write_text("made by fedledger demo; removed by the next demo run here\n")


def register(app: typer.Typer, collect_app: typer.Typer) -> None:
    @app.command(epilog=exit_codes("the demo bundle does not verify"))
    @run
    def demo(
        out_dir: Path = typer.Option(Path("build/demo"), "--out", help="Folder for the demo (replaced if an earlier demo)."),
    ) -> None:
        """Run the whole pipeline on the shipped samples and verify the bundle offline."""
        from bundler.bundle_verify import verify_bundle
        from bundler.make_bundle import BundleRequest, bundle_summary, evaluation_settings_from_config, make_bundle
        from collector.commands.ledger_cmds import open_signer
        from collector.config import load_config
        from collector.ledger import Ledger
        from collector.run import RunRequest, execute_run
        from collector.signing import generate_private_key, write_private_key, write_public_key

        as_of = OPTIONS.as_of or parse_time(DEMO_AS_OF)
        as_of_text = format_time(as_of)
        out_dir = out_dir.resolve()
        prepare_out(out_dir)
        with shipped_samples() as samples:
            shutil.copytree(samples, out_dir / "samples", ignore=SKIP)
        config = load_config(out_dir / "samples" / "fedledger.toml")
        ledger_path = out_dir / "ledger" / "fedledger.db"
        private, public = key_paths(ledger_path)
        Ledger.create(ledger_path, config.ledger.origin, created=as_of_text, key_type="ecdsa-p256").close()
        key = generate_private_key("ecdsa-p256")
        write_private_key(private, key)
        write_public_key(public, key.public_key())
        err(f"collecting the samples into {ledger_path}")
        result = execute_run(RunRequest(config=config, ledger_path=ledger_path, as_of=as_of),
                             log_stream=sys.stderr, human=True)
        bundle_dir = out_dir / "bundle"
        with Ledger.open(ledger_path) as ledger:
            signer = open_signer(ledger, private, None, None, None)
            request = BundleRequest(
                out_dir=bundle_dir, as_of=as_of_text, baseline=config.bundle.baseline,
                controls=tuple(config.bundle.controls) or None, catalog=config.bundle.catalog,
                policies=config.bundle.policies_dir, archive="tar.gz",
                settings=evaluation_settings_from_config(config),
            )
            bundled, assessment = make_bundle(ledger, signer, request, on_note=err)
        archive = bundled.archive or bundle_dir
        report = verify_bundle(archive, trusted_keys=[public.read_text()], origin=config.ledger.origin)
        counts = bundle_summary(bundled, assessment, request)
        summary = {
            "ledger": str(ledger_path), "public_key": str(public), "origin": config.ledger.origin, "as_of": as_of_text,
            "sources_failed": result.failed_sources, "bundle": str(bundle_dir), "archive": str(archive),
            "index_pdf": str(bundle_dir / "index.pdf"), "controls": counts["controls"],
            "checkpoint_size": counts["checkpoint_size"], "attestations": counts["attestations"],
            "verify_bundle": report.tally(), "verified": report.ok,
        }
        if OPTIONS.json:
            emit_json("fedledger.demo", summary)
        else:
            for line in demo_lines(summary):
                out(line)
        if not report.ok or result.failed_sources:
            raise typer.Exit(1)


def demo_lines(summary: dict[str, Any]) -> list[str]:
    """The demo's human output from its JSON summary: where everything is, the bundle's counts as
    `fedledger bundle` prints them, the offline check and the command an assessor runs."""
    from bundler.make_bundle import bundle_count_lines

    controls, attestations = bundle_count_lines(summary)
    return [
        f"ledger:   {summary['ledger']} ({summary['origin']}, key {summary['public_key']})",
        f"bundle:   {summary['bundle']}",
        f"archive:  {summary['archive']}",
        f"PDF:      {summary['index_pdf']}",
        f"{controls} (the samples include planted violations)",
        attestations,
        f"verify-bundle (offline, key and origin pinned): {summary['verify_bundle']}",
        f"assessors: fedledger verify-bundle {summary['archive']} --trusted-key {summary['public_key']} "
        f"--origin {summary['origin']}",
    ]
