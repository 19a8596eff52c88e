"""verify-bundle: the assessor's offline check of a bundle (folder, .tar.gz or .zip).

No database, no network, no clock. In order, collecting every failure with the
file it concerns:

1. the archive is read member by member without extracting unsafe members
   (:mod:`bundler.archive_reader`);
2. ``MANIFEST.sig`` is a C2SP signed note over the SHA-256 of ``MANIFEST.json``,
   signed by a trusted key under the pinned origin;
3. every file hashes as the manifest says; none is missing, none is extra;
4. the ledger slice verifies (:func:`bundler.ledger_verify.verify_ledger`) and
   one of its trusted checkpoints is the bundle's checkpoint; checkpoints the
   assessor kept (an earlier assessment's, an anchor) are checked against it too,
   catching a ledger rolled back (``rolled-back``) or rewritten (``fork``,
   ``root-mismatch``);
5. every inclusion proof in ``proofs/inclusion.jsonl`` leads from the ledger's
   own leaf hash to the checkpoint root, and every entry a control's CSV or
   report cites has such a proof with the same leaf hash;
6. every evidence hash in the OSCAL document matches the file it names.

Trusted keys vouch for the tree sizes their ``--key-range`` allows; key handovers among the ledger
slice's checkpoints (and the saved ones) are followed first (:mod:`collector.checkpoint_keys`), so
a bundle signed by a key the pinned one handed over to verifies, for trees from the handover on.

A key read from the bundle proves nothing about who made it: whoever forged the
bundle ships their own. Without both a trusted key and an origin the bundle does
not verify (``not-pinned``), unless the caller asks for an integrity-only check
with ``unpinned=True``: then the bundle's own key and origin fill in what is
missing and the report says so (``pinned: false``).
"""

from __future__ import annotations

import csv
import hashlib
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import orjson

from bundler.archive_reader import BundleFiles, ReadLimits, read_bundle, unsafe_name_reason
from bundler.bundle_format import BUNDLE_FORMAT, MANIFEST_FILE, PROOFS_FILE, SIGNATURE_FILE, manifest_note_body
from bundler.export_reader import iter_export_entries, read_export
from bundler.ledger_verify import Failure, NoteInput, verify_ledger
from collector import merkle
from collector.store import sha256_file
from collector.canonical import CanonicalizationError, canonical_bytes
from collector.checkpoint import CheckpointError, NoteVerifier, parse_verifier_key, split_note
from collector.checkpoint_keys import KeyRange, KeyRing, TrustedKey
from collector.errors import FedledgerError

REPORT_VERSION = 1
HEX_HASH = re.compile(r"[0-9a-f]{64}")
HTML_PROOF_ROW = re.compile(r'<tr><td>(\d+)</td><td class="hash">([0-9a-f]{64})</td>')


@dataclass
class BundleVerification:
    path: str
    origin: str | None = None
    pinned: bool = False
    checkpoint_size: int | None = None
    failures: list[Failure] = field(default_factory=list)
    valid: list[str] = field(default_factory=list)
    signature_valid: bool = False  # MANIFEST.sig verified under a trusted key
    files_checked: int = 0
    files_failed: int = 0  # missing, modified, unlisted or unusably named: against the manifest only
    ledger_verified: bool = False  # the slice verified against a trusted checkpoint that is the bundle's
    proofs_checked: int = 0
    entries_checked: int = 0
    citations_checked: int = 0  # CSV rows and HTML proof rows that cite a ledger entry
    citations_failed: int = 0
    keys: KeyRing | None = None  # the trusted keys and the tree sizes each may vouch for (handovers followed)
    manifest_keys: list[TrustedKey] = field(default_factory=list)  # the keys that vouched for MANIFEST.sig

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, code: str, where: str, message: str) -> None:
        self.failures.append(Failure(code, message, where=where))

    def lines(self) -> list[str]:
        keys = self.keys.describe() if self.keys is not None and self.keys.noteworthy else []
        return [f"valid: {line}" for line in self.valid] + keys + [f.line() for f in self.failures]

    def tally(self) -> str:
        """One line: the signature, files against the manifest, the ledger, proofs, citations, then
        the number of INVALID lines. Each count is of its own kind: an unproven citation
        (``controls/AU-2.csv:2``) is not a bad file."""
        signature = "valid" if self.signature_valid else "INVALID"
        if self.signature_valid and not self.pinned:
            signature += " (NOT pinned)"
        ledger = "verified" if self.ledger_verified else "NOT verified"
        return (f"signature {signature}, "
                f"{self.files_checked - self.files_failed}/{self.files_checked} files match the manifest, "
                f"{self.entries_checked} ledger entries {ledger}, {self.proofs_checked} inclusion proofs checked, "
                f"{self.citations_checked - self.citations_failed}/{self.citations_checked} citations proven, "
                f"{len(self.failures)} INVALID")

    def to_json(self) -> dict[str, object]:
        return {
            "version": REPORT_VERSION,
            "kind": "fedledger.verify-bundle",
            "ok": self.ok,
            "path": self.path,
            "origin": self.origin,
            "pinned": self.pinned,
            "checkpoint_size": self.checkpoint_size,
            "signature_valid": self.signature_valid,
            "files_checked": self.files_checked,
            "files_valid": self.files_checked - self.files_failed,
            "ledger_verified": self.ledger_verified,
            "proofs_checked": self.proofs_checked,
            "entries_checked": self.entries_checked,
            "citations_checked": self.citations_checked,
            "citations_proven": self.citations_checked - self.citations_failed,
            "valid": self.valid,
            "keys": self.keys.to_json() if self.keys is not None else [],
            "failures": [{"code": f.code, "where": f.where, "seq": f.seq, "message": f.message} for f in self.failures],
        }


def verify_bundle(
    path: Path,
    *,
    trusted_keys: Sequence[str] = (),
    origin: str | None = None,
    unpinned: bool = False,
    saved_checkpoints: Sequence[tuple[str, str]] = (),
    limits: ReadLimits = ReadLimits(),
    key_ranges: Sequence[KeyRange] = (),
    key_labels: Sequence[str] = (),
) -> BundleVerification:
    """Verify a bundle; *trusted_keys* are PEM or vkey texts (read by the caller), *key_labels*
    where they came from (for the report), *key_ranges* the tree sizes each may vouch for.

    Fails closed without *trusted_keys* and *origin* (``not-pinned``); *unpinned* accepts the
    bundle's own key and origin instead, which shows the bundle is intact, not who made it.
    *saved_checkpoints* are ``(where, signed note text)`` pairs the caller kept outside the bundle."""
    path = Path(path)
    report = BundleVerification(str(path))
    with tempfile.TemporaryDirectory(prefix="fedledger-verify-") as work:
        bundle = read_bundle(path, Path(work) / "bundle", limits)
        report.failures.extend(bundle.failures)
        if bundle.rejected_whole:
            return report
        saved = [NoteInput(where, text, saved=True) for where, text in saved_checkpoints]
        _verify_contents(strip_top_folder(bundle), report, trusted_keys, origin, unpinned, saved, key_ranges,
                         key_labels)
    return report


def strip_top_folder(bundle: BundleFiles) -> BundleFiles:
    """An archive made by zipping the bundle folder itself (``out/MANIFEST.json``…) is read from that folder."""
    if MANIFEST_FILE in bundle.files or not bundle.files:
        return bundle
    tops = {name.split("/", 1)[0] for name in bundle.files}
    if len(tops) != 1 or any("/" not in name for name in bundle.files):
        return bundle
    top = tops.pop()
    if f"{top}/{MANIFEST_FILE}" not in bundle.files:
        return bundle
    stripped = BundleFiles(bundle.root / top, failures=bundle.failures, rejected_whole=bundle.rejected_whole)
    stripped.files = {name[len(top) + 1:]: path for name, path in bundle.files.items()}
    return stripped


def _verify_contents(bundle: BundleFiles, report: BundleVerification, trusted_keys: Sequence[str],
                     origin: str | None, unpinned: bool, saved: list[NoteInput], key_ranges: Sequence[KeyRange] = (),
                     key_labels: Sequence[str] = ()) -> None:
    files = bundle.files
    manifest_path = files.get(MANIFEST_FILE)
    if manifest_path is None:
        report.fail("manifest-missing", MANIFEST_FILE, "the bundle has no manifest; nothing in it can be trusted")
        return
    raw = manifest_path.read_bytes()
    try:
        manifest = orjson.loads(raw)
        canonical = canonical_bytes(manifest)
    except (orjson.JSONDecodeError, CanonicalizationError) as exc:
        report.fail("manifest-malformed", MANIFEST_FILE, f"not canonical JSON: {exc}")
        return
    if (not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT
            or not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("origin"), str)
            or not isinstance(manifest.get("checkpoint"), dict)):
        report.fail("manifest-malformed", MANIFEST_FILE, f"not a {BUNDLE_FORMAT} manifest")
        return
    if canonical != raw:
        report.fail("manifest-malformed", MANIFEST_FILE, "not in canonical form")
    report.origin = origin or manifest["origin"]
    report.pinned = bool(trusted_keys) and origin is not None
    if not report.pinned and not unpinned:
        report.fail("not-pinned", SIGNATURE_FILE, "no trusted key and origin given: a key or origin read from the "
                    "bundle proves nothing about who made it; pin the provider's, obtained out of band")
    if origin is not None and manifest["origin"] != origin:
        report.fail("wrong-origin", MANIFEST_FILE, f"manifest names origin {manifest['origin']!r}, pinned {origin!r}")

    verifiers = _verifiers(bundle, report, trusted_keys)
    ring = KeyRing(verifiers, key_ranges, labels=key_labels if trusted_keys else ["bundled ledger/keys"] * len(verifiers))
    report.keys = ring
    _follow_handovers(bundle, report, ring, saved)
    checkpoint = manifest["checkpoint"]
    manifest_size = checkpoint.get("size") if type(checkpoint.get("size")) is int else None
    _check_signature(bundle, report, ring, hashlib.sha256(raw).hexdigest(), manifest_size)

    # Every file, against the manifest.
    listed: dict[str, str] = manifest["files"]
    digests: dict[str, str] = {}
    for name, want in sorted(listed.items()):
        report.files_checked += 1
        reason = unsafe_name_reason(name) if isinstance(name, str) else "not a string"
        if reason is not None or name in (MANIFEST_FILE, SIGNATURE_FILE):
            report.files_failed += 1
            report.fail("manifest-malformed", str(name)[:120], f"manifest names an unusable path: {reason or 'reserved'}")
            continue
        if name not in files:
            report.files_failed += 1
            report.fail("file-missing", name, "listed in the manifest but not in the bundle")
            continue
        got = sha256_file(files[name])
        digests[name] = got
        if got != want:
            report.files_failed += 1
            report.fail("file-modified", name, f"sha256 {got}, manifest says {want}")
    for name in sorted(set(files) - set(listed) - {MANIFEST_FILE, SIGNATURE_FILE}):
        report.files_checked += 1
        report.files_failed += 1
        report.fail("file-unlisted", name, "present in the bundle but not in the manifest")
    if not any(f.code in ("file-modified", "file-missing", "file-unlisted") for f in report.failures):
        report.valid.append(f"{len(listed)} files match the manifest")

    size, root_hex = checkpoint.get("size"), checkpoint.get("root")
    if type(size) is not int or size < 0 or not isinstance(root_hex, str) or not HEX_HASH.fullmatch(root_hex):
        report.fail("manifest-malformed", MANIFEST_FILE, "checkpoint needs a non-negative integer size and a "
                    "64-digit lowercase hex root")
        return
    report.checkpoint_size = size
    leaves = _verify_ledger_slice(bundle, report, ring, size, root_hex, saved)
    _handover_lines(report, ring, saved)
    if leaves is None:
        return
    root = bytes.fromhex(root_hex)
    proven = _verify_proofs(bundle, report, ring, leaves, size, root)
    _verify_citations(bundle, report, leaves, proven)
    _verify_oscal(bundle, report, digests)


def _verifiers(bundle: BundleFiles, report: BundleVerification, trusted_keys: Sequence[str]) -> list[NoteVerifier]:
    name = report.origin or ""
    texts = list(trusted_keys)
    if not texts:
        texts = [p.read_text(encoding="ascii", errors="replace") for n, p in sorted(bundle.files.items())
                 if n.startswith("ledger/keys/") and n.endswith(".pem")]
    verifiers = []
    for text in texts:
        try:
            verifiers.append(parse_verifier_key(text, default_name=name))
        except FedledgerError as exc:
            report.fail("bad-trusted-key", "--trusted-key" if trusted_keys else "ledger/keys", str(exc))
    if not verifiers:
        report.fail("no-trusted-key", SIGNATURE_FILE, "no usable key to check signatures with")
    return verifiers


def _follow_handovers(bundle: BundleFiles, report: BundleVerification, ring: KeyRing, saved: list[NoteInput]) -> None:
    """Follow the key handovers among the ledger slice's checkpoints and the saved ones, before the
    manifest's signature is checked (it may be by a key a pinned key handed over to). Each accepted
    handover is a ``valid:`` line; one that does not hold is reported with the slice's checkpoints."""
    notes: list[tuple[str, str]] = []
    for name, path in sorted(bundle.files.items()):
        if name.startswith("ledger/checkpoints/") and name.endswith(".note"):
            try:
                notes.append((name[len("ledger/"):], path.read_bytes().decode("utf-8")))
            except (OSError, UnicodeDecodeError):
                continue  # reported as malformed-checkpoint by the ledger check
    notes += [(note.where, note.text) for note in saved]
    ring.follow_handovers(notes, origin=report.origin or "")


def _handover_lines(report: BundleVerification, ring: KeyRing, saved: list[NoteInput]) -> None:
    """A ``valid:`` line per key accepted by a handover that held against the ledger slice, and a
    failure for the manifest signature when only keys whose handover failed signed it."""
    for key in ring.keys:
        if key.pinned or key.handover_where is None or key.void is not None:
            continue
        where = key.handover_where
        shown = where if any(where == note.where for note in saved) else f"ledger/{where}"
        old = key.handover_from.hex() if key.handover_from else "?"
        report.valid.append(f"key {key.key_id} accepted by handover from key {old} at size {key.first} ({shown}); "
                            f"it may vouch for tree sizes from {key.first} on, and key {old} only up to {key.first}")
    if report.manifest_keys and all(key.void for key in report.manifest_keys):
        report.signature_valid = False
        report.valid = [line for line in report.valid if not line.startswith(f"{SIGNATURE_FILE}:")]
        report.fail("bad-handover", SIGNATURE_FILE, "the manifest is signed only by " + "; ".join(
            f"key {key.key_id}, NOT accepted: {key.void}" for key in report.manifest_keys))


def _key_words(key: TrustedKey) -> str:
    if key.pinned:
        return "a pinned key" if key.label != "bundled ledger/keys" else "a bundled (NOT pinned) key"
    return (f"key {key.key_id}, accepted by handover from key "
            f"{key.handover_from.hex() if key.handover_from else '?'} at size {key.first}")


def _check_signature(bundle: BundleFiles, report: BundleVerification, ring: KeyRing,
                     manifest_sha256: str, size: int | None) -> None:
    sig_path = bundle.files.get(SIGNATURE_FILE)
    if sig_path is None:
        report.fail("signature-missing", SIGNATURE_FILE, "the manifest is not signed")
        return
    try:
        note = sig_path.read_bytes().decode("utf-8")
        body, sigs = split_note(note)
    except (UnicodeDecodeError, CheckpointError) as exc:
        report.fail("signature-malformed", SIGNATURE_FILE, str(exc) or "not UTF-8")
        return
    want = manifest_note_body(report.origin or "", manifest_sha256)
    if body != want:
        report.fail("signature-mismatch", SIGNATURE_FILE,
                    "the signed note does not name this manifest's SHA-256 and origin")
        return
    try:
        vouching = ring.vouching(body.encode(), sigs, size)
    except CheckpointError as exc:  # bad-signature, unknown-signer, key-out-of-range (for the bundle's checkpoint size)
        what = str(exc) if exc.code != "unknown-signer" else "no signature by a trusted key"
        if exc.code == "key-out-of-range":
            what = f"the manifest is for the checkpoint of {what}"
        report.fail(exc.code, SIGNATURE_FILE, what)
        return
    report.signature_valid = True
    report.manifest_keys = vouching
    if not report.pinned:
        report.valid.append(f"{SIGNATURE_FILE}: manifest signed by a bundled (NOT pinned) key")
    else:
        report.valid.append(f"{SIGNATURE_FILE}: manifest signed by {_key_words(vouching[0])}")


def _verify_ledger_slice(bundle: BundleFiles, report: BundleVerification, ring: KeyRing,
                         size: int, root_hex: str, saved: list[NoteInput]) -> bytearray | None:
    if "ledger/MANIFEST.json" not in bundle.files:
        report.fail("file-missing", "ledger/MANIFEST.json", "the bundle has no ledger export")
        return None
    # Only safe members were copied out of an archive; a folder is read in place and
    # the export reader reports links itself.
    try:
        contents = read_export(bundle.root / "ledger")
    except FedledgerError as exc:
        report.fail("ledger-malformed", "ledger/MANIFEST.json", str(exc).replace(str(bundle.root), "."))
        return None
    leaves = bytearray()

    def capture() -> Iterator[tuple[bytes, bytes | None]]:
        for body, stored in iter_export_entries(contents):
            leaves.extend(merkle.leaf_hash(body))
            yield body, stored

    ledger_report = verify_ledger(capture(), origin=report.origin or "", keys=ring, notes=contents.notes + saved)
    kept = {note.where for note in saved}
    for failure in contents.failures + ledger_report.failures:
        if failure.where in kept:
            where = failure.where
        else:
            where = f"ledger/{failure.where}" if failure.where and failure.where != "body" else "ledger/entries.jsonl"
        report.failures.append(Failure(failure.code, failure.message, seq=failure.seq, where=where))
    report.entries_checked = ledger_report.size
    if contents.origin != report.origin:
        report.fail("wrong-origin", "ledger/MANIFEST.json", f"export names origin {contents.origin!r}")
    match = [cp for cp in ledger_report.checkpoints_valid if cp.size == size and cp.root.hex() == root_hex]
    if not match:
        report.fail("checkpoint-not-found", "ledger/checkpoints",
                    f"no trusted checkpoint in the ledger slice signs size {size} with root {root_hex}")
    elif ledger_report.ok and not contents.failures:
        report.ledger_verified = True
        report.valid.append(f"ledger: {ledger_report.size} entries, chain and root verified against the signed "
                            f"checkpoint of size {size}")
        for note in saved:
            report.valid.append(f"{note.where}: anchored checkpoint agrees with the ledger slice")
    if len(leaves) // 32 < size:
        report.fail("truncated", "ledger/entries.jsonl", f"{len(leaves) // 32} entries, the checkpoint covers {size}")
        return None
    return leaves


def _verify_proofs(bundle: BundleFiles, report: BundleVerification, ring: KeyRing,
                   leaves: bytearray, size: int, root: bytes) -> set[int]:
    proven: set[int] = set()
    path = bundle.files.get(PROOFS_FILE)
    if path is None:
        report.fail("file-missing", PROOFS_FILE, "no inclusion proofs in the bundle")
        return proven
    failures_before = len(report.failures)
    with open(path, "rb") as handle:
        header_line = handle.readline()
        try:
            header = orjson.loads(header_line)
            if not isinstance(header["checkpoint"], str):
                raise TypeError("checkpoint is not a signed note")
            cp, _vouching = ring.verify(header["checkpoint"], origin=report.origin or "")
        except (orjson.JSONDecodeError, KeyError, TypeError, CheckpointError) as exc:
            report.fail("proofs-malformed", PROOFS_FILE, f"header line: {exc}")
            return proven
        if cp.size != size or cp.root != root or header.get("tree_size") != size or header.get("root") != root.hex():
            report.fail("proofs-wrong-checkpoint", PROOFS_FILE, f"proofs are against size {cp.size}, the bundle's checkpoint is {size}")
            return proven
        for number, line in enumerate(handle, start=2):
            try:
                doc = orjson.loads(line)
                seq, leaf, audit = doc["seq"], bytes.fromhex(doc["leaf_hash"]), [bytes.fromhex(h) for h in doc["path"]]
                if type(seq) is not int:
                    raise TypeError("seq is not an integer")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                report.fail("proofs-malformed", f"{PROOFS_FILE}:{number}", str(exc))
                continue
            report.proofs_checked += 1
            if not 0 <= seq < size:
                report.fail("proof-invalid", f"{PROOFS_FILE}:{number}", f"seq {seq} outside the tree of size {size}")
                continue
            if bytes(leaves[32 * seq : 32 * seq + 32]) != leaf:
                report.fail("proof-invalid", f"{PROOFS_FILE}:{number}", f"leaf hash of seq {seq} is not the ledger entry's")
                continue
            try:
                merkle.verify_inclusion(seq, size, leaf, audit, root)
            except merkle.ProofError as exc:
                report.fail("proof-invalid", f"{PROOFS_FILE}:{number}", f"seq {seq}: {exc}")
                continue
            proven.add(seq)
    if len(report.failures) == failures_before:
        report.valid.append(f"{PROOFS_FILE}: {report.proofs_checked} inclusion proofs lead to the checkpoint root")
    return proven


def _verify_citations(bundle: BundleFiles, report: BundleVerification, leaves: bytearray, proven: set[int]) -> None:
    size = len(leaves) // 32
    before = len(report.failures)
    cited = 0
    # No proof could be checked at all (wrong key, proofs against another checkpoint): every
    # citation is unproven for that one reason, said once per report instead of once per row.
    unproven: Counter[str] | None = Counter() if report.proofs_checked == 0 else None
    for name, path in sorted(bundle.files.items()):
        if not name.startswith("controls/"):
            continue
        if name.endswith(".csv"):
            try:
                with open(path, encoding="utf-8", newline="") as handle:
                    for number, row in enumerate(csv.DictReader(handle), start=2):
                        cited += 1
                        if not _check_cited(report, f"{name}:{number}", row.get("seq"), row.get("leaf_hash"), leaves,
                                            size, proven, unproven, name):
                            report.citations_failed += 1
            except (UnicodeDecodeError, csv.Error) as exc:
                report.fail("citation-malformed", name, f"not a readable UTF-8 CSV: {type(exc).__name__}")
        elif name.endswith(".html"):
            for match in HTML_PROOF_ROW.finditer(path.read_text(encoding="utf-8", errors="replace")):
                cited += 1
                if not _check_cited(report, name, match.group(1), match.group(2), leaves, size, proven, unproven, name):
                    report.citations_failed += 1
    for name, count in sorted((unproven or {}).items()):
        report.fail("citation-unproven", name, f"{count} citation(s) have no valid inclusion proof: no proof in "
                    f"{PROOFS_FILE} could be checked")
    report.citations_checked = cited
    if len(report.failures) == before:
        report.valid.append(f"controls: {cited} citations each match a ledger entry with a valid inclusion proof")


def _check_cited(report: BundleVerification, where: str, seq_text: str | None, leaf_hex: str | None,
                 leaves: bytearray, size: int, proven: set[int], unproven: Counter[str] | None, name: str) -> bool:
    """Whether one citation names a ledger entry with its leaf hash and a valid proof (else one
    failure; an unproven one is counted in *unproven* under the report's *name* when given)."""
    if not seq_text or not seq_text.isdigit() or not leaf_hex:
        report.fail("citation-malformed", where, "row has no seq or leaf hash")
        return False
    seq = int(seq_text)
    if seq >= size:
        report.fail("citation-invalid", where, f"cites seq {seq}, beyond the ledger of {size}")
    elif bytes(leaves[32 * seq : 32 * seq + 32]).hex() != leaf_hex:
        report.fail("citation-invalid", where, f"leaf hash of seq {seq} is not the ledger entry's")
    elif seq not in proven:
        if unproven is not None:
            unproven[name] += 1
        else:
            report.fail("citation-unproven", where, f"seq {seq} has no valid inclusion proof in {PROOFS_FILE}")
    else:
        return True
    return False


class _OscalShape(Exception):
    """The OSCAL document has the wrong shape at a JSON path."""


def _objects(value: object, path: str) -> list[dict[str, object]]:
    """The objects of an optional OSCAL array at *path* (absent means none)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _OscalShape(f"{path} is not an array of objects")
    return value


def _text(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _OscalShape(f"{path} is not a string")
    return value


def _verify_oscal(bundle: BundleFiles, report: BundleVerification, digests: dict[str, str]) -> None:
    name = "oscal/assessment-results.json"
    path = bundle.files.get(name)
    if path is None:
        report.fail("file-missing", name, "no OSCAL assessment results")
        return
    before = len(report.failures)
    try:
        doc = orjson.loads(path.read_bytes())
        ar = doc.get("assessment-results") if isinstance(doc, dict) else None
        if not isinstance(ar, dict):
            raise _OscalShape("no assessment-results object")
        back_matter = ar.get("back-matter") or {}
        if not isinstance(back_matter, dict):
            raise _OscalShape("back-matter is not an object")
        checked = _check_oscal_evidence(bundle, report, digests, ar, back_matter, name)
    except orjson.JSONDecodeError as exc:
        report.fail("oscal-malformed", name, f"not an assessment-results document: {exc}")
        return
    except _OscalShape as exc:
        report.fail("oscal-malformed", name, f"not an assessment-results document: {exc}")
        return
    if len(report.failures) == before:
        report.valid.append(f"{name}: {checked} evidence hashes match the bundled files")


def _check_oscal_evidence(bundle: BundleFiles, report: BundleVerification, digests: dict[str, str],
                          ar: dict[str, object], back_matter: dict[str, object], name: str) -> int:
    uuids = set()
    checked = 0
    for r, resource in enumerate(_objects(back_matter.get("resources"), "back-matter.resources")):
        uuids.add(resource.get("uuid"))
        for l, rlink in enumerate(_objects(resource.get("rlinks"), f"resources[{r}].rlinks")):
            href = _text(rlink.get("href", ""), f"resources[{r}].rlinks[{l}].href")
            target = PurePosixPath("oscal", href)
            parts: list[str] = []
            for part in target.parts:
                if part == "..":
                    if not parts:
                        parts = ["<outside>"]
                        break
                    parts.pop()
                else:
                    parts.append(part)
            rel = "/".join(parts)
            if "<outside>" in parts or unsafe_name_reason(rel) is not None:
                report.fail("oscal-evidence", name, f"evidence link {href[:80]!r} points outside the bundle")
                continue
            for h in _objects(rlink.get("hashes"), f"resources[{r}].rlinks[{l}].hashes"):
                checked += 1
                if h.get("algorithm") != "SHA-256":
                    continue
                actual = digests.get(rel) or (sha256_file(bundle.files[rel]) if rel in bundle.files else None)
                if actual is None:
                    report.fail("oscal-evidence", name, f"evidence {rel} is not in the bundle")
                elif actual != h.get("value"):
                    report.fail("oscal-evidence", name, f"evidence {rel} has sha256 {actual}, the OSCAL document says {h.get('value')}")
    for n, result in enumerate(_objects(ar.get("results"), "results")):
        for o, obs in enumerate(_objects(result.get("observations"), f"results[{n}].observations")):
            for e, ev in enumerate(_objects(obs.get("relevant-evidence"),
                                            f"results[{n}].observations[{o}].relevant-evidence")):
                href = _text(ev.get("href", ""), f"results[{n}].observations[{o}].relevant-evidence[{e}].href")
                if href.startswith("#") and href[1:] not in uuids:
                    report.fail("oscal-evidence", name, f"observation {obs.get('uuid')} links to missing resource {href}")
    return checked
