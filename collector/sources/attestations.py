"""Attestations stored as objects under a prefix (a local folder or ``s3://bucket/prefix``).

Fetch and walk only: objects are listed, their bytes and store metadata fetched
through :mod:`collector.object_source`, and verification is delegated to the pure
:mod:`collector.attestation_verify`.

Which objects are records
    Every listed object is either a record (an entry or a quarantined record) or a
    *companion* consumed by one: ``<name>.sig`` (detached signature of ``<name>``),
    ``<name>.crt`` / ``.pem`` / ``.pub`` / ``.cert`` (a certificate or key published
    beside ``<name>``; kept as a fact, never trusted), and ``<name>`` itself when it
    is the artifact of a sigstore bundle ``<name>.sigstore[.json]`` and has no
    ``.sig`` of its own. A companion whose ``<name>`` is missing is quarantined.
    ``listed == records + companions`` and ``records == appended + duplicates +
    quarantined`` (per run: :attr:`AttestationObjects.tally`).

Retention
    ``retention_days`` is measured from the object's put time (S3 ``LastModified``;
    for folders the ``last_modified`` of the ``.meta.json`` sidecar, else the file's
    mtime) to its retain-until date: the retention the object was *given*, which is
    what a records-retention control asks. When the put time is unknown, ``as_of``
    is used and ``attrs.retention_measured_from`` says so. ``retention_ok`` is false
    (with ``retention_reason``) when there is no Object Lock retention, the mode is
    unknown, retention expired by ``as_of``, or it is shorter than the minimum.

Idempotence
    The dedup key is location + version id + SHA-256 of the bytes, so a re-run adds
    nothing and a new version (or changed bytes under a non-versioned key) is a new
    entry. The null version (put before versioning) has the empty version id in the
    key however S3 names it (:func:`version_identity`). Every run lists the whole prefix; the cursor only records progress.

Versions
    For S3 every version and delete marker is listed (ListObjectVersions; ``all_versions``),
    each version read by its own version id; a delete marker is an ``attestation.deleted``
    entry keyed by its version id. Folders, and the current object of an unversioned key,
    are read exactly as without versions. See docs/attestations.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from collector.attestation_verify import (
    SIGNED,
    AttestationFacts,
    NotAnAttestation,
    RetentionAssessment,
    SigstorePolicy,
    TrustedKeys,
    Verdict,
    assess_retention,
    load_trusted_key,
    verify_attestation,
)
from collector.errors import MalformedInput, SourceUnavailable
from collector.evidence import CursorMark, Source, SourceItem, SourceRecord
from collector.ingest import safe_reason
from collector.object_source import (
    FETCH_WORKERS,
    NULL_VERSION_ID,
    DeleteMarker,
    ObjectHead,
    ObjectInfo,
    ObjectProvider,
    ObjectUnreadable,
)
from collector.timeutil import format_time, parse_time

SIGNATURE_SUFFIX = ".sig"
CERTIFICATE_SUFFIXES = (".crt", ".pem", ".pub", ".cert")
BUNDLE_SUFFIXES = (".sigstore.json", ".sigstore")
MAX_OBJECT_BYTES = 16 << 20
DEFAULT_MIN_RETENTION_DAYS = 365
KEY_FILE_SUFFIXES = (".pem", ".pub", ".crt", ".cert")


def read_trusted_keys(folder: Path) -> TrustedKeys:
    """Every PEM public key or certificate in *folder* (``.pem``, ``.pub``, ``.crt``, ``.cert``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceUnavailable("trusted-keys folder not found", location=str(folder))
    files = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name.endswith(KEY_FILE_SUFFIXES):
            files.append((path.name, path.read_bytes()))
    if not files:
        raise MalformedInput("no PEM key files (.pem/.pub/.crt) in the trusted-keys folder", location=str(folder))
    keys = []
    for name, data in files:
        try:
            keys.append(load_trusted_key(name, data))
        except MalformedInput as exc:
            raise MalformedInput(safe_reason(exc), location=str(folder / name)) from None
    return TrustedKeys(keys)


@dataclass(frozen=True)
class AttestationSettings:
    """Everything verification needs, fixed for one run."""

    as_of: datetime
    keys: TrustedKeys = field(default_factory=TrustedKeys)
    sigstore: SigstorePolicy = field(default_factory=SigstorePolicy)
    min_retention_days: int = DEFAULT_MIN_RETENTION_DAYS
    all_versions: bool = True  # S3: every version and delete marker (ListObjectVersions), not only the current


@dataclass
class AttestationTally:
    """Per-run counts beyond the ingest summary."""

    listed: int = 0
    records: int = 0
    companions: int = 0
    signed: int = 0
    unsigned: int = 0
    invalid: int = 0
    retention_findings: int = 0
    older_versions: int = 0  # listed versions that are not the current one (records or companions)
    deleted: int = 0  # delete markers (attestation.deleted); counted in listed and records

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Plan:
    records: list[ObjectInfo]
    orphans: dict[str, str]  # key -> reason
    companions: set[str]


def plan_objects(infos: list[ObjectInfo]) -> _Plan:
    """Split listed objects into records, consumed companions and orphaned companions."""
    names = {info.key for info in infos}
    companions: set[str] = set()
    orphans: dict[str, str] = {}
    for info in infos:
        key = info.key
        if key.endswith(SIGNATURE_SUFFIX):
            if key[: -len(SIGNATURE_SUFFIX)] in names:
                companions.add(key)
            else:
                orphans[key] = "detached signature without its signed object"
            continue
        suffix = next((s for s in CERTIFICATE_SUFFIXES if key.endswith(s)), None)
        if suffix is not None:
            if key[: -len(suffix)] in names:
                companions.add(key)
            else:
                orphans[key] = "certificate or key file, not an attestation"
            continue
        if key.endswith(BUNDLE_SUFFIXES):
            continue
        if any(key + s in names for s in BUNDLE_SUFFIXES) and key + SIGNATURE_SUFFIX not in names:
            companions.add(key)  # the artifact a sigstore bundle signs
    records = [info for info in infos if info.key not in companions]
    return _Plan(records, orphans, companions)


_ABSENT: Any = object()  # no such companion


def version_identity(version_id: str | None) -> str:
    """The version id as it enters a dedup key: ``""`` for the null version (an object put before
    versioning was enabled), whether S3 reported it as ``"null"`` (ListObjectVersions, and HeadObject
    on some stores) or not at all (HeadObject on an unversioned bucket, and on moto), so that one
    version is one entry however it was read; every other version id as it is. The null version's key
    is the one an unversioned bucket always had, so ledgers made before versioning keep their keys."""
    return "" if version_id in (None, "", NULL_VERSION_ID) else str(version_id)


def _read_version(info: ObjectInfo) -> str | None:
    """The version id to read *info* by: None (the current object, as read before versions were
    listed) for the current entry of an unversioned key; else its own version id."""
    if info.is_latest and version_identity(info.version_id) == "":
        return None
    return info.version_id


class _Companions:
    """Which version(s) of a companion key go with a record: version ids to read (None: current)."""

    def candidates(self, key: str) -> list[Any]:
        raise NotImplementedError


class _CurrentCompanions(_Companions):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def candidates(self, key: str) -> list[Any]:
        return [None] if key in self.names else []


class _OlderCompanions(_Companions):
    def __init__(self, record: ObjectInfo, versions: Mapping[str, list[ObjectInfo]]) -> None:
        self.record = record
        self.versions = versions

    def candidates(self, key: str) -> list[Any]:
        found = self.versions.get(key, [])
        put = parse_time(self.record.last_modified) if self.record.last_modified else None

        def distance(version: ObjectInfo) -> float:
            if put is None or version.last_modified is None:
                return float("inf")
            return abs((parse_time(version.last_modified) - put).total_seconds())

        ordered = sorted(range(len(found)), key=lambda i: (distance(found[i]), i))  # ties: newest first
        return [found[i].version_id if found[i].version_id is not None else None for i in ordered]


def _result_line(event: Mapping[str, Any]) -> str:
    """``signed LOCATION`` / ``INVALID LOCATION: reason`` (+ ``; RETENTION: reason``)."""
    status = str(event["kind"]).rsplit(".", 1)[-1]
    attrs = event["attrs"]
    line = f"signed {event['resource']}" if status == SIGNED else (
        f"{status.upper()} {event['resource']}: {attrs.get('verification_error')}")
    if not attrs.get("retention_ok"):
        line += f"; RETENTION: {attrs.get('retention_reason')}"
    return line


_HEAD_TEXT_FIELDS = ("etag", "version_id", "sse", "kms_key_id", "object_lock_mode", "retain_until", "legal_hold",
                     "bucket", "last_modified")


def _check_head(head: ObjectHead) -> None:
    """Store metadata (an S3 answer or a folder sidecar) must hold strings where strings belong."""
    for name in _HEAD_TEXT_FIELDS:
        value = getattr(head, name)
        if value is not None and not isinstance(value, str):
            raise MalformedInput(f"{name} is not a string")
    if head.retain_until is not None:
        parse_time(head.retain_until, field="retain_until")


class AttestationObjects(Source):
    """Attestation objects under one prefix, verified and normalized to ``attestation.*`` events."""

    kind = "attestations"

    def __init__(self, provider: ObjectProvider, src: str, settings: AttestationSettings) -> None:
        self.provider = provider
        self.src = src
        self.settings = settings
        where = src if src.startswith("s3://") else os.path.abspath(src)
        self.source_id = f"{self.kind}:{where}"
        self.tally = AttestationTally()
        self.results: list[str] = []  # one grep-friendly line per record, in listing order
        self.outcomes: list[dict[str, Any]] = []  # the same, as objects (for --format json)

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        listed = list(self.provider.list_versions() if self.settings.all_versions else self.provider.list())
        infos = [e for e in listed if isinstance(e, ObjectInfo) and e.is_latest]
        plan = plan_objects(infos)
        names = {info.key for info in infos}
        # Older versions (and keys whose current entry is a delete marker) are classified by the keys
        # that ever held a version, so that a deleted x.sig stays the companion of x's older versions.
        versions: dict[str, list[ObjectInfo]] = {}
        for entry in listed:
            if isinstance(entry, ObjectInfo):
                versions.setdefault(entry.key, []).append(entry)  # newest first (the listing's order)
        history = plan_objects([found[0] for found in versions.values()])
        older_companions = sum(1 for e in listed if isinstance(e, ObjectInfo) and not e.is_latest
                               and e.key in history.companions)
        self.tally.listed = len(listed)
        self.tally.companions = len(plan.companions) + older_companions
        self.tally.older_versions = sum(1 for e in listed if isinstance(e, ObjectInfo) and not e.is_latest)

        def build(entry: ObjectInfo | DeleteMarker) -> SourceRecord:
            if isinstance(entry, DeleteMarker):
                return self._deleted(entry, versions.get(entry.key, []))
            if entry.is_latest:
                reason = plan.orphans.get(entry.key)
                return self._quarantine(entry, reason, raw=None) if reason is not None else self._record(
                    entry, _CurrentCompanions(names))
            reason = history.orphans.get(entry.key)
            return self._quarantine(entry, reason, raw=None) if reason is not None else self._record(
                entry, _OlderCompanions(entry, versions))

        def is_record(entry: ObjectInfo | DeleteMarker) -> bool:
            if isinstance(entry, DeleteMarker):
                return True
            return entry.key not in (plan.companions if entry.is_latest else history.companions)

        # Fetch and verify up to FETCH_WORKERS objects at once (S3 round trips dominate);
        # records are yielded in listing order, so cursors and entries stay deterministic.
        pending: deque[tuple[ObjectInfo | DeleteMarker, Future[SourceRecord]]] = deque()
        with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
            count = 0
            for entry in filter(is_record, listed):
                pending.append((entry, pool.submit(build, entry)))
                if len(pending) >= FETCH_WORKERS * 2:
                    count += 1
                    yield from self._emit(count, *pending.popleft())
            while pending:
                count += 1
                yield from self._emit(count, *pending.popleft())

    def _emit(self, count: int, info: ObjectInfo | DeleteMarker, future: Future[SourceRecord]) -> Iterator[SourceItem]:
        record = future.result()
        self.tally.records += 1
        if isinstance(info, DeleteMarker):
            self.tally.deleted += 1
            self.results.append(f"DELETED {record.location}: delete marker {info.version_id} at {info.last_modified}")
            self.outcomes.append({"location": record.location, "status": "deleted",
                                  "reason": f"delete marker {info.version_id}", "retention_ok": None,
                                  "retention_reason": None})
        elif record.event is not None:
            self._count(record.event)
            self.results.append(_result_line(record.event))
            attrs = record.event["attrs"]
            self.outcomes.append({"location": record.location, "status": str(record.event["kind"]).rsplit(".", 1)[-1],
                                  "reason": attrs.get("verification_error"), "retention_ok": attrs.get("retention_ok"),
                                  "retention_reason": attrs.get("retention_reason")})
        else:
            self.results.append(f"QUARANTINED {record.location}: {record.reason}")
            self.outcomes.append({"location": record.location, "status": "quarantined", "reason": record.reason,
                                  "retention_ok": None, "retention_reason": None})
        yield record
        yield CursorMark(self.source_id, orjson.dumps({"objects": count, "last_key": info.key}).decode())

    def _location(self, key: str) -> str:
        uri = self.provider.uri(key)
        return uri if uri.startswith("s3://") else os.path.abspath(uri)

    def _deleted(self, marker: DeleteMarker, versions: list[ObjectInfo]) -> SourceRecord:
        """``attestation.deleted``: a delete marker, recorded once (its version id is in the dedup key,
        and its raw statement holds only what never changes: location, marker version id, time)."""
        location = self._location(marker.key)
        time = marker.last_modified or format_time(self.settings.as_of)
        raw = orjson.dumps({"deleted": location, "delete_marker_version_id": marker.version_id, "time": time},
                           option=orjson.OPT_SORT_KEYS)
        # the version the marker hid: the newest version put before it (none if it was deleted for good)
        hidden = next((v for v in versions if v.last_modified is not None and marker.last_modified is not None
                       and parse_time(v.last_modified) <= parse_time(marker.last_modified)), None)
        event = {
            "time": time,
            "kind": "attestation.deleted",
            "actor": None,  # S3 does not name who deleted; CloudTrail data events (DeleteObject) do
            "action": "s3:DeleteObject",
            "resource": location,
            "outcome": {"status": "failure", "error": "attestation deleted (delete marker)"},
            "correlation": {},
            "attrs": {
                "object_key": marker.key,
                "bucket": getattr(self.provider, "bucket", None),
                "version_id": marker.version_id,
                "delete_marker_version_id": marker.version_id,
                "deleted_at": marker.last_modified,
                "deleted_by": None,
                "marker_owner_id": marker.owner_id,
                "previous_version_id": hidden.version_id if hidden else None,
            },
        }
        return SourceRecord(location=location, line=None, raw=raw, event=event,
                            source_extra={"version_id": marker.version_id},
                            dedup_key=f"attestation.deleted:{location}@{marker.version_id}")

    def _quarantine(self, info: ObjectInfo, reason: str, raw: bytes | None) -> SourceRecord:
        """A quarantined object with the SHA-256 of its bytes, or an empty hash (unknown) when they
        were not read: over the size limit, or unreadable. Never a hash of something else (such as
        its name), which would read as the hash of its content. An older version is located as
        ``LOCATION?versionId=V``."""
        digest = hashlib.sha256(raw).hexdigest() if raw is not None else ""
        version = _read_version(info)
        if raw is None and info.size <= MAX_OBJECT_BYTES:
            try:
                digest = hashlib.sha256(self.provider.get_version(info.key, version)).hexdigest()
            except SourceUnavailable:
                pass
        location = self._location(info.key) + (f"?versionId={version}" if not info.is_latest else "")
        return SourceRecord(location=location, line=None, raw=b"", reason=reason, raw_sha256=digest)

    def _record(self, info: ObjectInfo, companions: _Companions) -> SourceRecord:
        try:
            return self._read_record(info, companions)
        except ObjectUnreadable as exc:  # this object only: record it and go on (a later run tries it again)
            return self._quarantine(info, f"unreadable: {exc}", raw=None)

    def _read_record(self, info: ObjectInfo, companions: _Companions) -> SourceRecord:
        key = info.key
        if info.size > MAX_OBJECT_BYTES:
            return self._quarantine(info, f"object too large: {info.size} bytes, over the {MAX_OBJECT_BYTES >> 20} "
                                          "MiB limit (not read, SHA-256 unknown)", raw=None)
        try:
            head = self.provider.head_version(key, _read_version(info))
            _check_head(head)
            put_time_text = head.last_modified or info.last_modified
            put_time = parse_time(put_time_text, field="last_modified") if put_time_text else None
        except MalformedInput as exc:
            return self._quarantine(info, f"bad object metadata: {safe_reason(exc)}", raw=None)
        if head.version_id is None and _read_version(info) is not None:  # an older "null" version (moto omits it)
            head = dataclasses.replace(head, version_id=_read_version(info))
        content = self.provider.get_version(key, head.version_id)  # the bytes of the version recorded
        signature_key = key + SIGNATURE_SUFFIX
        artifact_key = next((key[: -len(s)] for s in BUNDLE_SUFFIXES if key.endswith(s)), None)
        # One candidate per companion for the current version (the current companion, as listed);
        # an older version tries each version of its companions, nearest in time first, and keeps
        # the first that verifies: which .sig version went with which version is not recorded by S3.
        options = [(s, a) for s in companions.candidates(signature_key) or [_ABSENT]
                   for a in (companions.candidates(artifact_key) if artifact_key else []) or [_ABSENT]]
        outcome: Verdict | Exception | None = None
        signature = None
        for option_signature, option_artifact in options:
            signature_bytes = self.provider.get_version(signature_key, option_signature) \
                if option_signature is not _ABSENT else None
            artifact = self.provider.get_version(artifact_key, option_artifact) \
                if option_artifact is not _ABSENT and artifact_key else None
            try:
                verdict = verify_attestation(content, signature_object=signature_bytes, artifact=artifact,
                                             keys=self.settings.keys, policy=self.settings.sigstore)
            except (NotAnAttestation, MalformedInput) as exc:
                outcome = exc if outcome is None else outcome
                continue
            if outcome is None or isinstance(outcome, Exception) or verdict.status == SIGNED:
                outcome, signature = verdict, signature_bytes
            if verdict.status == SIGNED:
                break
        if isinstance(outcome, NotAnAttestation):
            return self._quarantine(info, f"not an attestation: {safe_reason(outcome)}", raw=content)
        if isinstance(outcome, MalformedInput):
            return self._quarantine(info, f"malformed: {safe_reason(outcome)}", raw=content)
        assert isinstance(outcome, Verdict)
        verdict = outcome
        certificate_key = next((key + s for s in CERTIFICATE_SUFFIXES if companions.candidates(key + s)), None)
        certificate = self.provider.get_version(certificate_key, companions.candidates(certificate_key)[0]) \
            if certificate_key else None
        retention = assess_retention(mode=head.object_lock_mode, retain_until=head.retain_until, put_time=put_time,
                                     as_of=self.settings.as_of, minimum_days=self.settings.min_retention_days)
        sha256 = hashlib.sha256(content).hexdigest()
        event = self._event(info, head, verdict, retention, content, sha256, signature, certificate=certificate)
        location = self._location(key)
        extra = {"version_id": head.version_id} if head.version_id else {}
        return SourceRecord(location=location, line=None, raw=content, event=event, source_extra=extra,
                            dedup_key=f"attestation:{location}@{version_identity(head.version_id)}#{sha256}")

    def _count(self, event: Mapping[str, Any]) -> None:
        status = str(event["kind"]).rsplit(".", 1)[-1]
        if status == SIGNED:
            self.tally.signed += 1
        elif status == "unsigned":
            self.tally.unsigned += 1
        else:
            self.tally.invalid += 1
        if not event["attrs"]["retention_ok"]:
            self.tally.retention_findings += 1

    def _event(self, info: ObjectInfo, head: ObjectHead, verdict: Verdict, retention: RetentionAssessment,
               content: bytes, sha256: str, signature: bytes | None, certificate: bytes | None) -> dict[str, Any]:
        facts = verdict.facts
        signer = verdict.signer or facts.signer
        time_text = head.last_modified or info.last_modified or facts.build_finished
        try:
            time = format_time(parse_time(time_text)) if time_text else format_time(self.settings.as_of)
        except MalformedInput:
            time = format_time(self.settings.as_of)
        correlation: dict[str, str] = {}
        if facts.job_id:
            correlation["job_id"] = facts.job_id
        if facts.run_id:
            correlation["run_id"] = facts.run_id
        if facts.repository:
            correlation["repository"] = facts.repository
        if facts.git_sha:
            correlation["git_sha"] = facts.git_sha
        artifact = next((s.digest for s in facts.subjects if s.digest.startswith("sha256:")), None)
        if artifact:
            correlation["artifact_digest"] = artifact
        attrs: dict[str, Any] = {
            "format": verdict.format,
            "predicate_type": facts.predicate_type,
            "payload_type": verdict.payload_type,
            "subjects": [s.to_json() for s in facts.subjects],
            "builder": facts.builder_id,
            "build_id": facts.build_id,
            "signer": signer,
            "key_id": verdict.key_id,
            "signature_valid": verdict.signature_valid,
            "verification_error": verdict.error,
            "object_key": info.key,
            "bucket": head.bucket,
            "version_id": head.version_id,
            "etag": head.etag or info.etag,
            "size": len(content),
            "sha256": sha256,
            "sse": head.sse,
            "kms_key_id": head.kms_key_id,
            "object_lock_mode": head.object_lock_mode,
            "retain_until": head.retain_until,
            "legal_hold": head.legal_hold,
            "put_time": head.last_modified or info.last_modified,
            "retention_days": retention.retention_days,
            "retention_remaining_days": retention.remaining_days,
            "retention_measured_from": retention.measured_from,
            "min_retention_days": self.settings.min_retention_days,
            "retention_ok": retention.ok,
            "retention_reason": retention.reason,
        }
        attempt = run_attempt_of(facts)
        if attempt is not None:  # as the CI events record it (attrs.run_attempt): custody tells attempts apart
            attrs["run_attempt"] = attempt
        for name, value in verdict.details.items():
            attrs.setdefault(name, value)
        if signature is not None:
            attrs["detached_signature_sha256"] = hashlib.sha256(signature).hexdigest()
            if len(signature) <= 4096 and signature.isascii():
                attrs["detached_signature"] = signature.decode("ascii", "replace").strip()
        if certificate is not None:
            attrs["published_certificate_sha256"] = hashlib.sha256(certificate).hexdigest()
        if not info.is_latest:
            attrs["is_latest"] = False  # already replaced (or deleted) when recorded
        kind = f"attestation.{verdict.status}"
        return {
            "time": time,
            "kind": kind,
            "actor": signer,
            "action": f"attest:{verdict.format}",
            "resource": self._location(info.key),
            "outcome": {"status": "success" if verdict.status == SIGNED else "failure", "error": verdict.error},
            "correlation": correlation,
            "attrs": attrs,
        }


# GitHub's invocation URL for a run attempt (SLSA v1 runDetails.metadata.invocationId, v0.2
# metadata.buildInvocationId): https://github.com/ORG/REPO/actions/runs/RUN/attempts/N
_RUN_ATTEMPT_URL = re.compile(r"/actions/runs/(\d+)/attempts/(\d{1,6})(?:[/?#]|$)")


def run_attempt_of(facts: AttestationFacts) -> int | None:
    """The run attempt the provenance's invocation names (a re-run keeps its run id: attempt 2, 3, …), or
    None when it names none, or names a run other than the one the provenance gives (``facts.run_id``)."""
    match = _RUN_ATTEMPT_URL.search(facts.build_id or "")
    if match is None or (facts.run_id is not None and facts.run_id != match.group(1)):
        return None
    attempt = int(match.group(2))
    return attempt if attempt >= 1 else None


def build_sources(source: Any, context: Any) -> list[Any]:
    """``fedledger run`` factory for ``kind = "attestations"`` (see collector.run).

    Options mirror ``fedledger collect attestations``: ``trusted_keys_dir``,
    ``trusted_root``, ``certificate_identity``, ``certificate_issuer``,
    ``min_retention_days`` (default: the config's retention minimum), ``current_only``
    (S3: current objects only, not every version), ``region``, ``endpoint_url``, ``profile``.
    """
    from collector.attestation_verify import SigstorePolicy
    from collector.errors import SourceUnavailable
    from collector.object_source import open_provider
    from collector.run import PlannedCollection

    opts = source.options
    keys = read_trusted_keys(source.trusted_keys_dir) if source.trusted_keys_dir else TrustedKeys()
    root_bytes = None
    if opts.get("trusted_root") is not None:
        try:
            root_bytes = Path(opts["trusted_root"]).read_bytes()
        except OSError as exc:
            raise SourceUnavailable(f"cannot read trusted root: {exc.strerror}", location=str(opts["trusted_root"])) from None
    minimum = opts.get("min_retention_days") or context.config.retention_minimum_days
    settings = AttestationSettings(
        as_of=context.as_of,
        keys=keys,
        sigstore=SigstorePolicy(root_bytes, source.certificate_identity, source.certificate_issuer),
        min_retention_days=minimum,
        all_versions=not opts.get("current_only", False),
    )
    plans = []
    for location in source.locations:
        provider = open_provider(location, endpoint_url=opts.get("endpoint_url"), region=opts.get("region"),
                                 profile=opts.get("profile"))
        objects = AttestationObjects(provider, location, settings)
        plans.append(PlannedCollection(objects, objects.source_id, location))
    return plans
