"""Evaluate a ledger and write a signed bundle: the library behind ``fedledger bundle``,
``fedledger run --bundle`` and ``fedledger demo``.

Evaluation settings come from a ``fedledger.toml`` when one is given (allowed
regions, thresholds, retention minimum and each source's cadence as its freshness
limit), else from the defaults of :class:`bundler.evaluate.EvaluationConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bundler.model import Assessment
from bundler.party_names import require_party_name
from collector.errors import SourceUnavailable
from collector.ledger import Ledger
from collector.checkpoint import NoteVerifier
from collector.signing import CheckpointAnchor, NoteSigner, sign_tree_head

if TYPE_CHECKING:
    from bundler.bundle import BundleResult
    from collector.run import BuiltBundle


@dataclass(frozen=True)
class BundleRequest:
    out_dir: Path
    as_of: str  # RFC 3339 UTC
    baseline: str | None = None
    controls: tuple[str, ...] | None = None
    catalog: Path | None = None
    policies: Path | None = None
    period: tuple[str | None, str | None] | None = None
    archive: str | None = None
    system: str | None = None
    organization: str | None = None  # whose system was assessed (OSCAL prepared-for), on the index
    assessor: str | None = None  # the assessment organization (OSCAL assessor), on the index
    workers: int = 2
    settings: Any = None  # an EvaluationConfig, or None for the defaults


def evaluation_settings_from_config(config: Any, base: Any = None) -> Any:
    """An :class:`EvaluationConfig` from a loaded ``fedledger.toml`` (collector.config): thresholds,
    regions, retention, each kind's strictest cadence, and the configured sources of a kind that
    has several (``freshness_sources``)."""
    from bundler.evaluate import EvaluationConfig

    settings = base or EvaluationConfig()
    changes: dict[str, Any] = {
        "secret_read_threshold": config.thresholds.secret_reads_per_job,
        "max_token_renewals": config.thresholds.token_renewals_per_job,
        "retention_min_days": config.retention_minimum_days,
    }
    if config.allowed_regions:
        changes["allowed_regions"] = tuple(config.allowed_regions)
    if config.thresholds.allowed_ai_endpoints:
        changes["allowed_ai_endpoints"] = tuple(config.thresholds.allowed_ai_endpoints)
    cadences = config.cadence_by_kind()
    if cadences:
        changes["freshness_days_per_source"] = tuple(
            sorted((kind, max(1, math.ceil(c.seconds / 86400))) for kind, c in cadences.items())
        )
    settings = replace(settings, **changes)
    # Two or more enabled sources of one kind (two Vault servers) are judged each on its own
    # locations, with its own cadence (the kind's when it has none), as `fedledger status` does.
    enabled = [s for s in config.sources if s.enabled]
    shared = {kind for kind in {s.kind for s in enabled} if sum(1 for s in enabled if s.kind == kind) > 1}
    if shared:
        settings = replace(settings, freshness_sources=tuple(
            (s.name, s.kind, tuple(s.locations),
             max(1, math.ceil(s.cadence.seconds / 86400)) if s.cadence else settings.freshness_seconds(s.kind) // 86400)
            for s in enabled if s.kind in shared))
    return settings


def location_families(settings: Any) -> frozenset[str]:
    """The source families whose entries' locations evaluation needs (``freshness_sources``)."""
    return settings.location_families if settings is not None else frozenset()


def _entries(ledger: Ledger, size: int) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(seq, event, source) triples of entries 0..size-1, streamed (for :func:`bundler.evaluate.evaluate`
    on its own; :func:`make_bundle` reads the entries once, in the bundle's pass)."""
    loads = orjson.loads
    for seq, _leaf, body in ledger.entries(0, size):
        doc = loads(body)
        yield int(seq), doc.get("event") or {}, doc.get("source") or {}


def make_bundle(ledger: Ledger, signer: NoteSigner, request: BundleRequest, *,
                anchor: CheckpointAnchor | None = None,
                previous: Sequence[NoteVerifier] = (),
                handover: NoteSigner | None = None,
                on_note: Callable[[str], None] = lambda _m: None,
                on_stage: Callable[[str], None] = lambda _s: None,
                timings: dict[str, float] | None = None) -> tuple[Any, Assessment]:
    """Sign a checkpoint if the newest does not cover the ledger, evaluate, and write the bundle.

    With *anchor* (the publish target), that checkpoint must extend the newest one anchored there
    (:func:`collector.signing.sign_tree_head`); with *handover* (the old key after a rotation), the
    new key's first checkpoint is a key handover signed by both.

    *timings*, if given, receives evaluation's phases (the bundle's own are in the result)."""
    from bundler.bundle import BundleBuilder
    from bundler.catalog import load_builtin_catalog, load_oscal_catalog, select_controls
    from bundler.evaluate import evaluate_reading

    # names are checked before anything is signed
    for name, what in ((request.organization, "organization"), (request.assessor, "assessor")):
        if name is not None:
            require_party_name(name, what=what)
    newest = ledger.latest_checkpoint()
    if newest is None or newest.size != ledger.size:
        newest = sign_tree_head(ledger, signer, request.as_of, anchor=anchor, previous=previous, handover=handover)
        on_note(f"signed a fresh checkpoint at size {newest.size}")
    wanted = list(request.controls) if request.controls else None
    baseline = request.baseline or (None if (request.catalog or wanted) else "moderate")
    loaded = load_oscal_catalog(request.catalog) if request.catalog else load_builtin_catalog()
    selected = select_controls(loaded, baseline=baseline, controls=wanted)
    policies: tuple[Any, ...] = ()
    if request.policies is not None:
        from bundler.rego import load_policies

        if not request.policies.is_dir():
            raise SourceUnavailable("not a folder", location=str(request.policies))
        policies = tuple(load_policies(request.policies))
    # One pass reads the entries for the export and for evaluation (split over two processes);
    # the PDF workers then start beside the evaluation.
    builder = BundleBuilder.start(ledger, request.out_dir, signer, workers=request.workers,
                                  location_families=location_families(request.settings))
    on_note(f"evaluating {newest.size} entries against {len(selected)} controls")
    try:
        on_stage("read")
        reading = builder.read_evidence()
        on_stage("evaluate")
        assessment = evaluate_reading(
            reading,
            as_of=request.as_of,
            origin=ledger.origin,
            config=request.settings,
            catalog=loaded,
            controls=selected,
            policies=policies,
            period=request.period,
            baseline=baseline or "custom",
            timings=timings,
        )
        del reading
    except BaseException:
        builder.abort()
        raise
    result = builder.finish(assessment, system=request.system, archive=request.archive, on_stage=on_stage,
                            organization=request.organization, assessor=request.assessor)
    return result, assessment


def status_tally(assessment: Assessment) -> dict[str, int]:
    return {s: sum(1 for c in assessment.controls if c.status == s) for s in ("satisfied", "not-satisfied", "not-assessed")}


def bundle_summary(result: BundleResult, assessment: Assessment,
                   request: BundleRequest) -> dict[str, Any]:
    """What a bundle holds and found: the body of `fedledger bundle`'s JSON output, and
    ``bundle_summary`` in `fedledger run --bundle`'s. ``organization`` and ``assessor`` are the
    names the bundle gives its OSCAL parties (edge spaces trimmed, as written), or None."""
    return {
        "out": str(result.out), "archive": str(result.archive) if result.archive else None,
        "index_pdf": str(result.out / "index.pdf"), "checkpoint_size": result.checkpoint_size,
        "checkpoint_root": result.checkpoint_root, "controls": status_tally(assessment), "files": result.files,
        "pages": result.pages, "cited_entries": result.cited_entries,
        "attestations": dict(result.attestations),
        "organization": None if request.organization is None else request.organization.strip(),
        "assessor": None if request.assessor is None else request.assessor.strip(),
        "refused_urls": [{"page": page, "url": url} for page, url in result.refusals],
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
    }


def bundle_count_lines(summary: Mapping[str, Any]) -> list[str]:
    """The counts of a :func:`bundle_summary` as `fedledger bundle` and `fedledger run --bundle` print
    them: the controls by status with the checkpoint size, then the attestations of the ledger slice
    by outcome (the verification transcript's counts)."""
    tally = summary["controls"]
    att = summary["attestations"]
    return [
        f"{sum(tally.values())} controls: {tally['satisfied']} satisfied, {tally['not-satisfied']} not satisfied, "
        f"{tally['not-assessed']} not assessed; checkpoint size {summary['checkpoint_size']}",
        f"attestations: {att['signed']} signed (signature verified), {att['unsigned']} unsigned, "
        f"{att['invalid']} invalid, {att['deleted']} deleted",
    ]


def bundle_after_run(config: Any, ledger_path: Path | str, *, as_of: Any, run_id: str,
                     anchor: CheckpointAnchor | None = None) -> BuiltBundle:
    """``fedledger run --bundle``: a bundle per run under ``[bundle] out_dir`` (default beside the ledger);
    a checkpoint it signs must extend the run's publish target (*anchor*). Returns the bundle and the
    URLs its PDF renderer refused, which the run turns into exit 1 as ``fedledger bundle`` does."""
    from collector.commands.ledger_cmds import open_signer
    from collector.run import BuiltBundle, config_handover_signer, config_previous_keys
    from collector.timeutil import format_time

    b = config.bundle
    from collector.ledger_open import local_anchor, open_ledger

    out_root = b.out_dir or local_anchor(ledger_path).with_name("bundles")
    out = Path(out_root) / run_id
    with open_ledger(ledger_path) as ledger:
        s = config.signer
        signer = open_signer(ledger, getattr(s, "key_file", None), getattr(s, "kms_key_id", None),
                             getattr(s, "endpoint_url", None), getattr(s, "region", None))
        request = BundleRequest(
            out_dir=out, as_of=format_time(as_of), baseline=b.baseline, controls=tuple(b.controls) or None,
            catalog=b.catalog, policies=b.policies_dir, archive=b.archive,
            organization=b.organization, assessor=b.assessor,
            settings=evaluation_settings_from_config(config),
        )
        result, assessment = make_bundle(ledger, signer, request, anchor=anchor,
                                         previous=config_previous_keys(ledger, config),
                                         handover=config_handover_signer(ledger, config))
    return BuiltBundle(Path(result.archive or result.out), tuple(result.refusals),
                       bundle_summary(result, assessment, request))
