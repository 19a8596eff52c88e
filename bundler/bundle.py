"""Build the assessor's bundle: a folder (and optionally one archive) that verifies offline.

Layout of DIR::

    index.html, index.pdf           cover, control summary, charts, verification transcript
    controls/<ID>.html, .pdf, .csv  per control report and every supporting entry
    oscal/assessment-results.json   OSCAL 1.1.3, evidence linked by SHA-256
    proofs/inclusion.jsonl          an inclusion proof for every cited entry
    ledger/                         the ledger export (entries, checkpoints, public keys)
    MANIFEST.json                   SHA-256 of every file above (canonical JSON)
    MANIFEST.sig                    C2SP signed note over the manifest's SHA-256, by the ledger key

The bundle is anchored to the ledger's newest checkpoint and holds exactly the
entries it covers (the CLI signs a fresh one over the whole ledger first; entries a
concurrent run appends after it are named in the transcript, not bundled). The bundler
evaluates the entries in the same pass that exports them (:mod:`bundler.ledger_slice`),
re-reads the exported bytes and hashes them (:mod:`bundler.export_hasher`), and checks
their chain and their root against that checkpoint before it writes a report that
cites them.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import shutil
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from bundler import oscal_ar, render
from bundler.bundle_format import BUNDLE_FORMAT, PROOFS_FILE, manifest_note_body
from bundler.evidence_table import TableReading
from bundler.ledger_slice import LedgerPass, SliceScan
from bundler.merkle_memory import MemoryTree
from bundler.model import Assessment, ControlResult
from bundler.party_names import require_party_name
from bundler.pdf import PdfJob, PdfWorkers
from bundler.render import (
    BundleFacts,
    ControlEvidence,
    EvidenceRow,
    InclusionProof,
    TranscriptItem,
    file_stem,
    proof_seqs_shown,
)
from collector.store import sha256_file
from collector.canonical import canonical_bytes
from collector.checkpoint import CheckpointError, verify_checkpoint
from collector.errors import IntegrityError, UsageError
from collector.export import not_empty_message
from collector.gc_pause import paused_gc
from collector.ledger import Ledger, StoredCheckpoint
from collector.signing import NoteSigner
from collector.timeutil import parse_time

CSV_COLUMNS = ["seq", "leaf_hash", "time", "kind", "source", "source_id", "location", "actor", "action",
               "resource", "outcome", "job_id"]
ARCHIVE_KINDS = ("tar.gz", "zip")
ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip member can carry


@dataclass
class BundleResult:
    out: Path
    archive: Path | None
    checkpoint_size: int
    checkpoint_root: str
    files: int
    pages: int
    cited_entries: int
    refused_urls: int
    refusals: tuple[tuple[str, str], ...] = ()  # (page, URL) the PDF renderer refused to fetch, sorted
    timings: dict[str, float] = field(default_factory=dict)
    pdf_worker_peak_rss_mb: int = 0
    pass_child_peak_rss_mb: int = 0  # the process that read the upper share of the entries
    attestations: dict[str, int] = field(default_factory=dict)  # attestation_counts() of the ledger slice


# A cell starting with one of these is a formula to a spreadsheet (OWASP CSV injection; NUL
# from ASVS 1.2.10); one starting with a quote is quoted too, so the escape can be undone.
CSV_QUOTED_STARTS = ("=", "+", "-", "@", "\t", "\r", "\x00", "'")


def csv_cell(value: object) -> str:
    """Evidence text for a spreadsheet: never a formula (OWASP CSV injection), and reversible:
    dropping one leading ``'`` from a cell that has one gives the text back exactly."""
    text = "" if value is None else str(value)
    if text.startswith(CSV_QUOTED_STARTS):
        return "'" + text
    return text


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _CitedEntries:
    """The cited entries of the export, read by line offset and parsed once each, however many
    controls cite them; :meth:`write_control` writes one control's CSV and returns its summary rows."""

    def __init__(self, entries_path: Path, scan: SliceScan, assessment: Assessment) -> None:
        cited = {seq for control in assessment.controls for seq in control.seqs}
        missing = [seq for seq in cited if seq >= scan.size or seq < 0]
        if missing:
            raise UsageError(f"the assessment cites {len(missing)} entries beyond the ledger (e.g. seq {min(missing)})")
        self._handle = open(entries_path, "rb")
        self._offsets, self._leaves = scan.offsets, scan.leaves
        self._rows: dict[int, tuple[list[object], tuple[str, str, str], str]] = {}

    def close(self) -> None:
        self._handle.close()

    def _row(self, seq: int) -> tuple[list[object], tuple[str, str, str], str]:
        found = self._rows.get(seq)
        if found is not None:
            return found
        offsets, leaves = self._offsets, self._leaves
        self._handle.seek(offsets[seq])
        body = self._handle.read(offsets[seq + 1] - offsets[seq]).rstrip(b"\n")
        doc = orjson.loads(body)
        # The stored entry is shown as it is, whatever shape `fedledger append` let through.
        event, source = _object(doc.get("event")), _object(doc.get("source"))
        kind = str(event.get("kind") or "?")
        outcome_field = event.get("outcome")
        outcome = str((outcome_field.get("status") if isinstance(outcome_field, dict) else outcome_field) or "")
        when = str(event.get("time") or "")
        row: list[object] = [seq, leaves[32 * seq : 32 * seq + 32].hex()] + [csv_cell(v) for v in (
            when, kind, source.get("kind"), source.get("id"), source.get("location"), event.get("actor"),
            event.get("action"), event.get("resource"), outcome, _object(event.get("correlation")).get("job_id"))]
        found = self._rows[seq] = (row, (kind, str(source.get("kind") or ""), outcome), when)
        return found

    def write_control(self, control: ControlResult, controls_dir: Path) -> ControlEvidence:
        """Write ``<control>.csv`` (every cited entry, in seq order) and summarize them by kind, source and outcome."""
        aggregates: dict[tuple[str, str, str], list[Any]] = {}
        count = 0
        with open(controls_dir / f"{file_stem(control.control_id)}.csv", "w", encoding="utf-8", newline="") as handle:
            # RFC 4180 line ends: the csv module quotes a field only for the characters of its line
            # terminator, so with "\n" alone a CR in evidence went out bare and split the row.
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(CSV_COLUMNS)
            for seq in sorted(set(control.seqs)):
                row, key, when = self._row(seq)
                writer.writerow(row)
                count += 1
                agg = aggregates.get(key)
                if agg is None:
                    aggregates[key] = [1, when, when]
                else:
                    agg[0] += 1
                    agg[1] = min(agg[1], when)
                    agg[2] = max(agg[2], when)
        rows = tuple(
            EvidenceRow(kind, source, outcome, n, first, last)
            for (kind, source, outcome), (n, first, last) in sorted(aggregates.items(), key=lambda kv: -kv[1][0])
        )
        return ControlEvidence(control.control_id, count, rows)


def _inclusion_proof(tree: MemoryTree, seq: int) -> InclusionProof:
    return InclusionProof(seq, tree.leaf(seq).hex(), tuple(h.hex() for h in tree.inclusion_proof(seq)))


def _write_proofs(path: Path, tree: MemoryTree, seqs: list[int], header: dict[str, object]) -> None:
    """Every cited entry's proof, one JSON line each, after a header line naming the checkpoint."""
    with open(path, "wb") as handle:
        handle.write(canonical_bytes(header) + b"\n")
        for seq in seqs:
            leaf = tree.leaf(seq).hex()
            audit = [h.hex() for h in tree.inclusion_proof(seq)]
            handle.write(orjson.dumps({"seq": seq, "leaf_hash": leaf, "path": audit}) + b"\n")


def attestation_counts(kinds: Mapping[str, int]) -> dict[str, int]:
    """Attestation entries in the bundle's ledger slice by outcome: objects ``signed``, ``unsigned``,
    ``invalid``, and ``deleted`` (``attestation.deleted``: S3 delete markers, which are no objects)."""
    return {name: int(kinds.get(f"attestation.{name}", 0)) for name in ("signed", "unsigned", "invalid", "deleted")}


def _transcript(scan: SliceScan, *, size: int, root_ok: bool, checkpoint_results: list[tuple[str, bool, str]],
                later_entries: int = 0) -> tuple[TranscriptItem, ...]:
    items = []
    if later_entries:
        items.append(TranscriptItem(
            "Entries after the checkpoint", "not-verified",
            f"{later_entries:,} {'entry' if later_entries == 1 else 'entries'} appended after the checkpoint at size "
            f"{size:,} (a collection running while this "
            "bundle was made) are not signed yet and are not in this bundle; the next bundle covers them"))
    if scan.chain_breaks:
        items.append(TranscriptItem("Ledger hash chain", "failed",
                                    f"{len(scan.chain_breaks)} entries do not link to the one before (first at seq {scan.chain_breaks[0]})"))
    else:
        items.append(TranscriptItem("Ledger hash chain", "verified",
                                    f"{size:,} exported entries re-hashed from their stored bytes; every seq and prev link matches"))
    items.append(TranscriptItem("Merkle root", "verified" if root_ok else "failed",
                                "root of entries 0.."f"{size - 1} equals the bundle checkpoint's signed root" if root_ok
                                else "the exported entries do not hash to the bundle checkpoint's root"))
    good = sum(1 for _, ok, _ in checkpoint_results if ok)
    bad = [f"{where}: {why}" for where, ok, why in checkpoint_results if not ok]
    items.append(TranscriptItem("Checkpoint signatures", "failed" if bad else "verified",
                                f"{good} of {len(checkpoint_results)} checkpoints verify under the ledger key"
                                + (f"; {'; '.join(bad[:3])}" if bad else "")))
    k = scan.kinds
    valid, invalid, gaps = k["aws.digest_valid"], k["aws.digest_invalid"], k["aws.digest_gap"]
    if invalid or gaps:
        items.append(TranscriptItem("CloudTrail digest chain", "failed",
                                    f"{valid:,} digests valid, {invalid:,} invalid, {gaps:,} gaps", "cloudtrail collector"))
    elif valid:
        items.append(TranscriptItem("CloudTrail digest chain", "verified",
                                    f"{valid:,} digest files verified (signature, previous-digest link, log-file hashes)",
                                    "cloudtrail collector"))
    else:
        items.append(TranscriptItem("CloudTrail digest chain", "not-verified", "no digest validation evidence in the ledger",
                                    "cloudtrail collector"))
    counts = attestation_counts(k)
    signed, unsigned, bad_att, deleted = counts["signed"], counts["unsigned"], counts["invalid"], counts["deleted"]
    # A delete marker is no signature to verify (it leaves the state alone) but it is counted beside the
    # signatures, so the line never reads as every attestation being there: attestation-retention judges it.
    gone = (f"; {deleted:,} attestation{'s' if deleted != 1 else ''} deleted (S3 delete "
            f"{'markers: each' if deleted != 1 else 'marker:'} an attestation-retention finding)") if deleted else ""
    if unsigned or bad_att:
        items.append(TranscriptItem("Attestation signatures", "failed",
                                    f"{signed:,} verified, {unsigned:,} unsigned, {bad_att:,} invalid{gone}",
                                    "attestation collector"))
    elif signed:
        items.append(TranscriptItem("Attestation signatures", "verified",
                                    f"{signed:,} attestation signatures verified against trusted keys{gone}",
                                    "attestation collector"))
    else:
        items.append(TranscriptItem("Attestation signatures", "not-verified",
                                    f"no attestation object in the ledger{gone}" if deleted
                                    else "no attestation evidence in the ledger", "attestation collector"))
    if scan.oidc_failed:
        items.append(TranscriptItem("OIDC ID tokens", "failed",
                                    f"{scan.oidc_verified:,} verified, {scan.oidc_failed:,} failed verification", "ci collector"))
    elif scan.oidc_verified:
        items.append(TranscriptItem("OIDC ID tokens", "verified", f"{scan.oidc_verified:,} tokens verified against the JWKS",
                                    "ci collector"))
    else:
        items.append(TranscriptItem("OIDC ID tokens", "not-verified", "no verified OIDC token evidence", "ci collector"))
    if k["ci.webhook_invalid"]:
        items.append(TranscriptItem("CI webhook signatures", "failed", f"{k['ci.webhook_invalid']:,} webhooks with a bad signature",
                                    "ci collector"))
    else:
        items.append(TranscriptItem("CI webhook signatures", "not-verified",
                                    "no bad signature recorded; webhooks are verified only where a secret was configured",
                                    "ci collector"))
    if k["vault.unpaired"]:
        items.append(TranscriptItem("Vault request/response pairing", "failed",
                                    f"{k['vault.unpaired']:,} unpaired audit records", "vault collector"))
    else:
        items.append(TranscriptItem("Vault request/response pairing", "not-verified" if not any(x.startswith("vault.") for x in k) else "verified",
                                    "every Vault audit request has its response" if any(x.startswith("vault.") for x in k)
                                    else "no Vault evidence in the ledger", "vault collector"))
    items.append(TranscriptItem("Raw source objects", "not-verified",
                                "the bundler does not re-verify raw source files; collectors verified them at ingest and "
                                "the ledger proves the recorded results have not changed since"))
    items.append(TranscriptItem("Key and origin pinning", "not-verified",
                                "an assessor must pin the ledger public key and origin: "
                                "fedledger verify-bundle PATH --trusted-key PUB --origin NAME"))
    return tuple(items)


def build_bundle(
    ledger: Ledger,
    assessment: Assessment,
    out: Path,
    signer: NoteSigner,
    *,
    system: str | None = None,
    archive: str | None = None,
    workers: int | None = None,
    on_stage: Callable[[str], None] | None = None,
    organization: str | None = None,
    assessor: str | None = None,
) -> BundleResult:
    """Write the bundle to *out* (new or empty) and optionally one archive beside it.

    The same as ``BundleBuilder.start(...).finish(assessment, ...)`` for an assessment
    made elsewhere; callers that evaluate the same ledger should use
    :meth:`BundleBuilder.read_evidence` instead, so the entries are read once.
    """
    if assessment.origin != ledger.origin:
        raise UsageError(f"the assessment is of {assessment.origin!r}, the ledger is {ledger.origin!r}")
    builder = BundleBuilder.start(ledger, out, signer, workers=workers)
    return builder.finish(assessment, system=system, archive=archive, on_stage=on_stage,
                          organization=organization, assessor=assessor)


class BundleBuilder:
    """A bundle in three steps: :meth:`start` (checks, the pass's child process),
    :meth:`read_evidence` (the pass: export, chain fields, table rows for evaluation), then
    the caller evaluates and calls :meth:`finish`.

    Verified before anything is written that cites them: the newest checkpoint
    verifies under *signer*'s key and origin and covers no more than the ledger holds; the
    exported entries hash to its root and form an unbroken chain. Not verified
    here: the raw source objects (see the transcript).
    """

    def __init__(self, ledger: Ledger, out: Path, signer: NoteSigner, checkpoint: StoredCheckpoint,
                 checkpoint_results: list[tuple[str, bool, str]], pdf_workers: PdfWorkers, ledger_pass: LedgerPass) -> None:
        self.ledger = ledger
        self.out = out
        self.signer = signer
        self.checkpoint = checkpoint
        self.checkpoint_results = checkpoint_results
        self.pdf_workers = pdf_workers
        self.ledger_pass = ledger_pass
        self.scan: SliceScan | None = None
        self.timings: dict[str, float] = {}
        self.later_entries = 0  # appended after the bundle's checkpoint (not signed yet, not in the bundle)

    @classmethod
    def start(cls, ledger: Ledger, out: Path, signer: NoteSigner, *, workers: int | None = None,
              location_families: frozenset[str] = frozenset()) -> BundleBuilder:
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(not_empty_message("bundle", out), location=str(out))
        checkpoint = ledger.latest_checkpoint()
        if checkpoint is None:
            raise UsageError("the ledger has no checkpoint: run `fedledger checkpoint` first")
        if checkpoint.size > ledger.size:
            raise IntegrityError(f"the newest checkpoint covers {checkpoint.size} entries, the ledger holds only "
                                 f"{ledger.size}: entries were removed; run `fedledger verify`")
        # Entries after the checkpoint (a run collecting while this bundle is made: the CLI signs a
        # checkpoint over the whole ledger first) are not signed yet: the bundle is anchored to the
        # checkpoint and covers exactly its entries; the transcript says how many came after.
        results: list[tuple[str, bool, str]] = []
        for cp in ledger.checkpoints():
            try:
                verify_checkpoint(cp.note, origin=ledger.origin, verifiers=[signer.verifier])
                results.append((f"checkpoint #{cp.id}", True, ""))
            except CheckpointError as exc:
                results.append((f"checkpoint #{cp.id}", False, str(exc)))
        if not results[-1][1]:
            raise IntegrityError(f"the newest checkpoint does not verify under the signing key: {results[-1][2]}")
        out.mkdir(parents=True, exist_ok=True)
        for sub in ("controls", "oscal", "proofs"):
            (out / sub).mkdir()
        # The pass's child starts reading its share of the entries now; the PDF workers
        # start after the pass (read_evidence), so their start-up overlaps evaluation,
        # not the pass, which already keeps both cores busy.
        ledger_pass = LedgerPass(ledger, out / "ledger", checkpoint.size, location_families=location_families)
        builder = cls(ledger, out, signer, checkpoint, results, PdfWorkers(workers), ledger_pass)
        builder.later_entries = ledger.size - checkpoint.size
        return builder

    def read_evidence(self) -> TableReading:
        """The one pass over entries ``[0, checkpoint size)``: writes the export, scans it, starts
        hashing it (finished in :meth:`finish`), and returns the entries read into table rows for
        :func:`bundler.evaluate.evaluate_reading`. Starts the PDF workers when done."""
        if self.scan is not None:
            raise UsageError("the evidence was read already")
        try:
            with paused_gc():  # millions of small containers and no cycles (see bundler.evaluate)
                self.scan, reading = self.ledger_pass.run()
        except BaseException:
            self.abort()
            raise
        for name, seconds in self.scan.seconds.items():
            self.timings[f"pass: {name}"] = seconds
        self.pdf_workers.start()
        return reading

    def finish(self, assessment: Assessment, *, system: str | None = None, archive: str | None = None,
               on_stage: Callable[[str], None] | None = None, organization: str | None = None,
               assessor: str | None = None) -> BundleResult:
        """Write the bundle. *organization* (whose system was assessed) and *assessor* (the
        assessment organization), when given, are named on the index and as OSCAL parties."""
        try:
            if self.scan is None:
                self.read_evidence()  # an assessment made elsewhere: the rows are not needed
            return self._finish(assessment, system=system, archive=archive, stage=on_stage or (lambda _s: None),
                                organization=organization, assessor=assessor)
        except BaseException:
            self.ledger_pass.cancel()
            self.pdf_workers.close(abort=True)
            raise
        finally:
            self.pdf_workers.close()

    def abort(self) -> None:
        """Stop the pass's child and the workers (evaluation failed); the folder is left as it is."""
        self.ledger_pass.cancel()
        self.pdf_workers.close(abort=True)

    def _finish(self, assessment: Assessment, *, system: str | None, archive: str | None,
                stage: Callable[[str], None], organization: str | None, assessor: str | None) -> BundleResult:
        if archive is not None and archive not in ARCHIVE_KINDS:
            raise UsageError(f"--archive must be one of {', '.join(ARCHIVE_KINDS)}")
        organization = None if organization is None else require_party_name(organization, what="organization")
        assessor = None if assessor is None else require_party_name(assessor, what="assessor")
        if assessment.origin != self.ledger.origin:
            raise UsageError(f"the assessment is of {assessment.origin!r}, the ledger is {self.ledger.origin!r}")
        out, checkpoint, ledger, scan = self.out, self.checkpoint, self.ledger, self.scan
        assert scan is not None
        # The as-of stands in for the clock wherever a tool would write one (fonts in the PDFs,
        # archive members), so the same ledger and as-of give the same bytes.
        as_of_epoch = int(parse_time(assessment.as_of, field="as_of").timestamp())
        timings: dict[str, float] = dict(self.timings)
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - clock
            clock = now

        stage("export")
        self.ledger_pass.wait_export()  # leaf hashes, Merkle levels and chain check of the exported bytes
        for name, seconds in scan.seconds.items():
            timings.setdefault(f"pass: {name}", seconds)
        lap("export hashes wait")
        known: dict[str, str] = {f"ledger/{name}": digest for name, digest in scan.export_files.items()}
        tree = MemoryTree(scan.leaves, scan.levels)
        scan.levels = []
        root_ok = tree.size == checkpoint.size and tree.root() == checkpoint.root
        if not root_ok:
            raise IntegrityError("the exported entries do not hash to the newest checkpoint's root",
                                 location=str(out / "ledger"))
        if scan.chain_breaks:
            raise IntegrityError(f"the exported ledger's hash chain breaks at seq {scan.chain_breaks[0]}",
                                 location=str(out / "ledger"))
        lap("tree")

        # Pages go to the PDF workers as soon as they are written: the index (it needs no
        # cited entries) while the CSVs are read, the controls before the proofs file and OSCAL.
        stage("html")
        facts = BundleFacts(
            system=system or ledger.origin,
            origin=ledger.origin,
            checkpoint_size=checkpoint.size,
            checkpoint_root=checkpoint.root.hex(),
            checkpoint_note=checkpoint.note,
            proofs_file=PROOFS_FILE,
            transcript=_transcript(scan, size=checkpoint.size, root_ok=root_ok,
                                   checkpoint_results=self.checkpoint_results, later_entries=self.later_entries),
            organization=organization,
            assessor=assessor,
        )
        (out / "index.html").write_text(render.render_index(assessment, facts), encoding="utf-8")
        self.pdf_workers.submit(PdfJob(out / "index.html", out / "index.pdf", as_of_epoch))
        pages = 1
        lap("html")

        # Control by control (most cited first, a proxy for the largest page): its CSV, its
        # page, and the page goes to a worker while the next control's CSV is written.
        stage("csv")
        cited_entries = _CitedEntries(out / "ledger" / "entries.jsonl", scan, assessment)
        try:
            for control in sorted(assessment.controls, key=lambda c: -len(set(c.seqs))):
                mine = cited_entries.write_control(control, out / "controls")
                shown = tuple(_inclusion_proof(tree, s) for s in proof_seqs_shown(control))
                evidence = {control.control_id: ControlEvidence(mine.control_id, mine.cited, mine.rows, shown)}
                stem = file_stem(control.control_id)
                html = render.render_control(assessment, control, replace(facts, evidence=evidence))
                (out / "controls" / f"{stem}.html").write_text(html, encoding="utf-8")
                self.pdf_workers.submit(PdfJob(out / "controls" / f"{stem}.html", out / "controls" / f"{stem}.pdf",
                                               as_of_epoch))
                pages += 1
        finally:
            cited_entries.close()
        lap("csv and html")

        stage("proofs")
        cited = sorted({seq for control in assessment.controls for seq in control.seqs})
        header = {"kind": "fedledger.inclusion-proofs", "origin": ledger.origin, "tree_size": checkpoint.size,
                  "root": checkpoint.root.hex(), "checkpoint": checkpoint.note}
        _write_proofs(out / PROOFS_FILE, tree, cited, header)
        del tree
        lap("proofs")

        stage("oscal")
        known["ledger/MANIFEST.json"] = sha256_file(out / "ledger" / "MANIFEST.json")
        for name in [f"controls/{file_stem(c.control_id)}.csv" for c in assessment.controls] + [PROOFS_FILE]:
            known[name] = sha256_file(out / name)
        evidence_files = {name: known[name] for name in
                          [f"controls/{file_stem(c.control_id)}.csv" for c in assessment.controls]
                          + [PROOFS_FILE, "ledger/entries.jsonl", "ledger/MANIFEST.json"]}
        doc = oscal_ar.build_assessment_results(assessment, checkpoint_size=checkpoint.size,
                                                checkpoint_root=checkpoint.root.hex(), evidence_files=evidence_files,
                                                organization=organization, assessor=assessor)
        (out / "oscal" / "assessment-results.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        lap("oscal")

        stage("pdf")
        refused = self.pdf_workers.wait()
        refusals = tuple(sorted((_bundle_name(out, pdf), url) for pdf, url in self.pdf_workers.refusals))
        if refusals:
            # Known only once every page is rendered: the index says so, and its PDF is rendered again.
            facts = replace(facts, transcript=facts.transcript + (_refusals_item(refusals),))
            (out / "index.html").write_text(render.render_index(assessment, facts), encoding="utf-8")
            self.pdf_workers.submit(PdfJob(out / "index.html", out / "index.pdf", as_of_epoch))
            self.pdf_workers.wait()
        lap("pdf")
        if self.pdf_workers.first_submitted is not None:
            timings["pdf phase (first page sent to last page done)"] = \
                time.perf_counter() - self.pdf_workers.first_submitted

        stage("manifest")
        files = {}
        for path in sorted(out.rglob("*")):
            if path.is_file():
                name = path.relative_to(out).as_posix()
                # Files this run wrote and already hashed (the ledger export, the CSVs) are not read twice.
                files[name] = known.get(name) or sha256_file(path)
        manifest = {"format": BUNDLE_FORMAT, "origin": ledger.origin,
                    "checkpoint": {"size": checkpoint.size, "root": checkpoint.root.hex()},
                    "files": files}
        manifest_bytes = canonical_bytes(manifest)
        (out / "MANIFEST.json").write_bytes(manifest_bytes)
        note = self.signer.sign_note(manifest_note_body(ledger.origin, hashlib.sha256(manifest_bytes).hexdigest()))
        (out / "MANIFEST.sig").write_text(note, encoding="utf-8")
        lap("manifest")

        archive_path = None
        if archive is not None:
            stage("archive")
            archive_path = write_archive(out, archive, mtime=as_of_epoch)
            lap("archive")
        return BundleResult(out, archive_path, checkpoint.size, checkpoint.root.hex(), len(files) + 2, pages,
                            len(cited), refused, refusals, timings, self.pdf_workers.peak_rss_mb,
                            scan.child_peak_rss_mb, attestation_counts(scan.kinds))


REFUSALS_SHOWN = 10  # refused URLs named in the index; the command's output lists them all


def _bundle_name(out: Path, pdf: str) -> str:
    try:
        return Path(pdf).relative_to(out).as_posix()
    except ValueError:
        return pdf


def _refusals_item(refusals: tuple[tuple[str, str], ...]) -> TranscriptItem:
    """The transcript line for URLs the PDF renderer refused: nothing was fetched, but our templates
    reference no URL outside the package's assets, so each one is a page holding markup it should not."""
    shown = "; ".join(f"{page}: {url}" for page, url in refusals[:REFUSALS_SHOWN])
    more = f"; and {len(refusals) - REFUSALS_SHOWN} more" if len(refusals) > REFUSALS_SHOWN else ""
    return TranscriptItem("PDF renderer fetches", "failed",
                          f"{len(refusals)} URL(s) refused and not fetched; the report templates reference none, so "
                          f"evidence or a template put markup into these pages: {shown}{more}")


def write_archive(folder: Path, kind: str, *, mtime: int = ZIP_EPOCH) -> Path:
    """One archive of *folder* beside it; members are relative paths, regular files only, sorted.

    The archive's bytes depend only on the files' names and contents and *mtime* (seconds
    since 1970, the time every member and the gzip header carry): owners, permissions
    (0644) and the files' own times are not copied."""
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    target = folder.with_name(folder.name + (".tar.gz" if kind == "tar.gz" else ".zip"))
    mtime = max(int(mtime), ZIP_EPOCH)
    if kind == "tar.gz":
        with open(target, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=mtime) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in names:
                tar_info = tarfile.TarInfo(name)
                tar_info.size = (folder / name).stat().st_size
                tar_info.mtime = mtime
                tar_info.mode = 0o644
                with open(folder / name, "rb") as handle:
                    tar.addfile(tar_info, handle)
    else:
        date_time = time.gmtime(mtime)[:6]
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in names:
                zip_info = zipfile.ZipInfo(name, date_time)
                zip_info.compress_type = zipfile.ZIP_DEFLATED
                zip_info.create_system = 3  # Unix, whatever this platform is: the mode below is a Unix mode
                zip_info.external_attr = (stat.S_IFREG | 0o644) << 16
                zip_info.file_size = (folder / name).stat().st_size  # lets a large member get its zip64 header
                with open(folder / name, "rb") as handle, zf.open(zip_info, "w") as member:
                    shutil.copyfileobj(handle, member, 1 << 20)
    return target
