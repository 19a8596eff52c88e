"""CloudTrail log files (``.json.gz`` / ``.json`` with a ``Records`` array) → normalized events.

Fetch: objects come from an :class:`~collector.object_source.ObjectProvider` (a local
folder tree or ``s3://bucket/prefix``, the layout
``AWSLogs/[o-id/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/...``), listed with pagination.

Walk: each file is decompressed (first gzip member; trailing data is quarantined) and
its ``Records`` array is cut into records by a small structural scanner, so only one
record at a time becomes a Python object: :func:`scan_records` yields the exact JSON
bytes of each record, which are kept as the raw evidence and parsed with orjson.

Normalize: :func:`normalize_record` maps one record to the event contract of
``docs/events.md``. What is verified here: the record is a JSON object with an
RFC 3339 ``eventTime``, an ``eventName`` and an ``eventSource``. What is not: that
AWS wrote it — that is the digest chain's job (:mod:`collector.cloudtrail_digest`).

Idempotent: entries are deduplicated by ``eventID``; each object has a cursor
(its ETag, or size and mtime for local files, plus the next record index).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from collector.canonical import canonical_bytes_of_text_tree
from collector.errors import MalformedInput
from collector.evidence import CursorMark, Source, SourceItem, SourceRecord
from collector.object_source import LocalFolderProvider, ObjectInfo, ObjectProvider
from collector.timeutil import normalize_time

KIND = "cloudtrail"
CURSOR_EVERY = 5000  # records between cursor marks inside one file (bounds a batch)
LOG_SUFFIXES = (".json.gz", ".json")
# Tampering with the audit trail itself (docs/events.md: aws.trail_change). StartLogging,
# CreateTrail and the like stay aws.api_call (with attrs.trail), so a stop without a later
# start can be found by the bundler.
TRAIL_CHANGES = frozenset({"StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"})
OBJECT_LOCK_CALLS = frozenset({"PutObjectRetention", "PutObjectLegalHold", "PutObjectLockConfiguration",
                               "GetObjectRetention", "GetObjectLegalHold", "GetObjectLockConfiguration"})
_PARTITION = re.compile(r"^arn:(aws[a-z-]*):")


# -- scanner: the exact bytes of each element of the Records array -----------------------

# Everything up to the next structural byte, skipping whole strings (with escapes).
_SKIP = re.compile(rb'[^"{}\[\]]*(?:"[^"\\]*(?:\\.[^"\\]*)*"[^"{}\[\]]*)*', re.DOTALL)
_WS = re.compile(rb"[ \t\r\n]*")
_KEY = re.compile(rb'"((?:[^"\\]|\\.)*)"[ \t\r\n]*:[ \t\r\n]*', re.DOTALL)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SCALAR = re.compile(rb"[^,}\]\s]*")
_CLOSER = {ord("{"): ord("}"), ord("["): ord("]")}
# Where a record most likely ends: a '}' followed by the next record's first member (CloudTrail
# writes "eventVersion" first) or by the end of the Records array and document. `{"eventVersion"`
# cannot occur inside a JSON string (its quotes would be escaped), so a candidate is always a
# structural '}'; it is the record's end exactly when the slice parses as one JSON value.
_BOUNDARY = re.compile(rb'\}[ \t\r\n]*(?:,[ \t\r\n]*\{[ \t\r\n]*"eventVersion"|\][ \t\r\n]*\}[ \t\r\n]*\Z)')


class ScanError(ValueError):
    """The bytes are not a well-formed JSON structure at *offset*."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


class RecordsNotAList(ScanError):
    """The top-level ``Records`` holds something other than an array."""

    def __init__(self, what: str, offset: int) -> None:
        ValueError.__init__(self, f"Records is not a list (it is {what})")
        self.offset = offset


_JSON_TYPES = {ord("{"): "an object", ord('"'): "a string", ord("n"): "null", ord("t"): "a boolean",
               ord("f"): "a boolean"}


@dataclass(frozen=True)
class RecordSlice:
    index: int  # 0-based position in the Records array
    start: int
    end: int
    doc: Any = None  # the parsed record when the fast path already parsed it


@dataclass(frozen=True)
class BadSlice:
    """Bytes that could not be cut into records (quarantined as one piece)."""

    index: int
    start: int
    end: int
    reason: str


def _skip_ws(data: bytes, pos: int) -> int:
    m = _WS.match(data, pos)
    return m.end() if m else pos


def _match_close(data: bytes, pos: int) -> int:
    """*pos* is at ``{`` or ``[``; return the offset after its matching closer."""
    stack = [_CLOSER[data[pos]]]
    pos += 1
    n = len(data)
    while stack:
        m = _SKIP.match(data, pos)
        pos = m.end() if m else pos
        if pos >= n:
            raise ScanError("unterminated object or array", pos)
        c = data[pos]
        if c in _CLOSER:
            stack.append(_CLOSER[c])
        elif c == ord('"'):
            raise ScanError("unterminated string", pos)
        elif c != stack.pop():
            raise ScanError(f"unbalanced {chr(c)!r}", pos)
        pos += 1
    return pos


def _skip_value(data: bytes, pos: int) -> int:
    if pos >= len(data):
        raise ScanError("missing value", pos)
    c = data[pos]
    if c in _CLOSER:
        return _match_close(data, pos)
    if c == ord('"'):
        m = _STRING.match(data, pos)
        if not m:
            raise ScanError("unterminated string", pos)
        return m.end()
    m = _SCALAR.match(data, pos)
    end = m.end() if m else pos
    if end == pos:
        raise ScanError("missing value", pos)
    return end


def _find_records_array(data: bytes) -> int | None:
    """Offset just after the ``[`` of the top-level ``Records``; None for a single-record file."""
    pos = _skip_ws(data, 0)
    if pos >= len(data) or data[pos] != ord("{"):
        raise ScanError("not a JSON object", pos)
    pos = _skip_ws(data, pos + 1)
    while pos < len(data) and data[pos] != ord("}"):
        m = _KEY.match(data, pos)
        if not m:
            raise ScanError("expected a member name", pos)
        pos = m.end()
        if m.group(1) == b"Records" and pos < len(data):
            if data[pos] == ord("["):
                return pos + 1
            raise RecordsNotAList(_JSON_TYPES.get(data[pos], "a number"), pos)
        pos = _skip_ws(data, _skip_value(data, pos))
        if pos < len(data) and data[pos] == ord(","):
            pos = _skip_ws(data, pos + 1)
        elif pos < len(data) and data[pos] != ord("}"):
            raise ScanError("expected ',' or '}'", pos)
    return None


def scan_records(data: bytes) -> Iterator[RecordSlice | BadSlice]:
    """Cut a CloudTrail document into its records without parsing them.

    A document with a top-level ``Records`` array yields one slice per element; a
    document that is one JSON object without ``Records`` (a single record, as AWS
    documentation prints them) yields one slice for the whole object; a ``Records``
    that is not an array is one :class:`BadSlice` for the whole document. Where the
    structure breaks, the rest of the document is yielded as one :class:`BadSlice`.
    Whether each slice is valid JSON is left to the caller (orjson).
    """
    try:
        pos = _find_records_array(data)
    except RecordsNotAList as exc:  # e.g. {"Records": null}: not one record missing its eventTime
        yield BadSlice(0, 0, len(data), str(exc))
        return
    except ScanError as exc:
        yield BadSlice(0, 0, len(data), f"malformed JSON document: {exc}")
        return
    if pos is None:  # a single record
        start = _skip_ws(data, 0)
        end = len(data.rstrip(b" \t\r\n"))
        yield RecordSlice(0, start, end)
        return
    index = 0
    n = len(data)
    pos = _skip_ws(data, pos)
    if pos < n and data[pos] == ord("]"):
        return
    while True:
        start = pos
        doc, end = None, -1
        if pos >= n:  # the document ends inside Records (a truncated file)
            yield BadSlice(index, pos, n, f"malformed JSON in Records: the document ends at byte {pos}")
            return
        if data[pos] == ord("{"):  # fast path: guess the end, let orjson confirm it
            m = _BOUNDARY.search(data, pos)
            if m is not None:
                try:
                    doc = orjson.loads(data[start:m.start() + 1])
                    end = m.start() + 1
                except orjson.JSONDecodeError:
                    doc = None
        if end < 0:  # careful path: walk the structure
            try:
                end = _skip_value(data, pos)
            except ScanError as exc:
                yield BadSlice(index, start, n, f"malformed JSON in Records: {exc}")
                return
        yield RecordSlice(index, start, end, doc)
        index += 1
        pos = _skip_ws(data, end)
        if pos < n and data[pos] == ord(","):
            pos = _skip_ws(data, pos + 1)
            continue
        if pos < n and data[pos] == ord("]"):
            return
        yield BadSlice(index, pos, n, f"malformed JSON in Records: expected ',' or ']' at byte {pos}")
        return


def inflate_log(blob: bytes) -> tuple[bytes, bytes]:
    """(decompressed first gzip member, trailing bytes) for gzip; (blob, b"") for plain JSON."""
    if blob[:2] != b"\x1f\x8b":
        return blob, b""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        data = inflater.decompress(blob) + inflater.flush()
    except zlib.error as exc:
        raise MalformedInput(f"not a valid gzip file: {exc}") from None
    if not inflater.eof:
        raise MalformedInput("truncated gzip file")
    return data, inflater.unused_data


# -- normalization ---------------------------------------------------------------------


def access_key_class(key_id: object) -> str | None:
    """``temporary`` for ASIA… (STS) keys, ``long-term`` for AKIA… (IAM user) keys."""
    if not isinstance(key_id, str):
        return None
    if key_id.startswith("ASIA"):
        return "temporary"
    if key_id.startswith("AKIA"):
        return "long-term"
    return None


def _s(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _d(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _session_from_arn(arn: str | None) -> str | None:
    # arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION
    if arn and ":assumed-role/" in arn:
        parts = arn.split("/")
        if len(parts) >= 3:
            return parts[-1]
    return None


def _partition(*arns: str | None) -> str | None:
    for arn in arns:
        if arn:
            m = _PARTITION.match(arn)
            if m:
                return m.group(1)
    return None


def _kind(source: str, name: str) -> str:
    if name == "AssumeRoleWithWebIdentity":
        return "aws.assume_role_web_identity"
    if source == "cloudtrail.amazonaws.com" and name in TRAIL_CHANGES:
        return "aws.trail_change"
    return "aws.api_call"


def _resource(source: str, name: str, params: dict[str, Any], resources: list[Any]) -> str | None:
    if source == "s3.amazonaws.com":
        bucket = _s(params.get("bucketName"))
        key = _s(params.get("key"))
        if bucket and key:
            return f"s3://{bucket}/{key}"
        if bucket:
            return f"s3://{bucket}"
    if name.startswith("AssumeRole"):
        return _s(params.get("roleArn"))
    if source == "cloudtrail.amazonaws.com":
        trail = _s(params.get("name")) or _s(params.get("trailName"))
        if trail:
            return trail
    for item in resources:
        arn = _s(_d(item).get("ARN"))
        if arn:
            return arn
    if source == "kms.amazonaws.com":
        return _s(params.get("keyId"))
    return None


_CT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_EMPTY: dict[str, Any] = {}


def _event_time(value: Any, location: str) -> str:
    # CloudTrail writes YYYY-MM-DDTHH:MM:SSZ: keep it once it is a real date; anything else goes
    # through the general RFC 3339 parser.
    if type(value) is str and len(value) == 20 and _CT_TIME.fullmatch(value):
        try:
            datetime.fromisoformat(value[:-1])
            return value
        except ValueError:
            pass
    try:
        return normalize_time(value, field="eventTime")
    except MalformedInput:
        raise MalformedInput("bad eventTime (not RFC 3339 with a zone)", location=location) from None


def normalize_record(doc: Any, *, location: str) -> tuple[dict[str, Any], str | None]:
    """The normalized event of one CloudTrail record and its dedup key (``eventID``).

    The event holds only strings, booleans and None under fixed ASCII keys (whatever the
    record holds), so its canonical bytes need no type walk (``canonical_bytes_of_text_tree``);
    ``tests/test_cloudtrail_source.py`` checks that on samples and on generated records.

    Raises :class:`MalformedInput` with the quarantine reason when the record lacks
    what an entry needs (a JSON object with ``eventTime``, ``eventName``, ``eventSource``).
    Unknown fields are ignored here (the raw bytes keep them).
    """
    if type(doc) is not dict:
        raise MalformedInput("record is not a JSON object", location=location)
    get = doc.get
    if get("eventTime") is None:
        raise MalformedInput("missing eventTime", location=location)
    time = _event_time(get("eventTime"), location)
    name = _s(get("eventName"))
    source = _s(get("eventSource"))
    if name is None or source is None:
        raise MalformedInput("missing eventName or eventSource", location=location)
    ident = _d(get("userIdentity"))
    params = _d(get("requestParameters"))
    response = _d(get("responseElements"))
    extra = _d(get("additionalEventData"))
    listed = get("resources")
    resources: list[Any] = listed if type(listed) is list else []
    context = _d(ident.get("sessionContext")) if ident else _EMPTY
    issuer = _d(context.get("sessionIssuer")) if context else _EMPTY
    attributes = _d(context.get("attributes")) if context else _EMPTY
    arn = _s(ident.get("arn"))
    key_id = _s(ident.get("accessKeyId"))
    error_code = _s(get("errorCode"))

    mfa = str(attributes.get("mfaAuthenticated", "")).lower() == "true" or extra.get("MFAUsed") == "Yes"
    failed = error_code is not None or (name == "ConsoleLogin" and response.get("ConsoleLogin") == "Failure")
    error = (error_code or (_s(get("errorMessage")) or "ConsoleLogin failure")[:200]) if failed else None

    actor = (arn or _s(ident.get("principalId")) or _s(ident.get("invokedBy"))
             or _s(ident.get("userName")) or _s(ident.get("accountId")))
    correlation: dict[str, str] = {}
    session = _session_from_arn(arn)
    role_arn = _s(issuer.get("arn")) if issuer.get("type") == "Role" else None
    if key_id:
        correlation["access_key_id"] = key_id
    attrs: dict[str, Any] = {"event_source": source, "event_name": name, "mfa": mfa}
    for attr, value in (("region", get("awsRegion")), ("identity_type", ident.get("type")),
                        ("error_code", error_code), ("account_id", ident.get("accountId")),
                        ("recipient_account_id", get("recipientAccountId")), ("event_id", get("eventID")),
                        ("event_type", get("eventType")), ("source_ip", get("sourceIPAddress"))):
        if type(value) is str and value:
            attrs[attr] = value
    key_class = access_key_class(key_id)
    if key_class:
        attrs["access_key_class"] = key_class
    agent = get("userAgent")
    if type(agent) is str and agent:
        attrs["user_agent"] = agent[:200]
    if type(get("readOnly")) is bool:
        attrs["read_only"] = get("readOnly")
    if name.startswith("AssumeRole"):
        role_arn = _s(params.get("roleArn")) or role_arn
        assumed = _d(response.get("assumedRoleUser"))
        session = _session_from_arn(_s(assumed.get("arn"))) or _s(params.get("roleSessionName")) or session
        issued = _s(_d(response.get("credentials")).get("accessKeyId"))
        if issued:
            attrs["issued_access_key_id"] = issued
            issued_class = access_key_class(issued)
            if issued_class:
                attrs["issued_access_key_class"] = issued_class
            correlation["access_key_id"] = issued
        if _s(assumed.get("arn")):
            attrs["assumed_role_arn"] = assumed["arn"]
    if name == "AssumeRoleWithWebIdentity":
        provider = _s(response.get("provider")) or _s(ident.get("identityProvider"))
        subject = _s(response.get("subjectFromWebIdentityToken"))
        if provider:
            attrs["provider"] = provider
        if _s(response.get("audience")):
            attrs["audience"] = response["audience"]
        if subject:
            correlation["oidc_subject"] = subject
        if actor is None or actor == _s(ident.get("principalId")):
            actor = f"{provider}:{subject}" if provider and subject else actor
    if session:
        correlation["role_session"] = session
        attrs["session_name"] = session
    if role_arn:
        correlation["role_arn"] = role_arn
        attrs["role_arn"] = role_arn
    partition = _partition(arn, role_arn, *(_s(_d(r).get("ARN")) for r in resources))
    if partition:
        attrs["partition"] = partition
    if source == "cloudtrail.amazonaws.com":
        trail = _s(params.get("name")) or _s(params.get("trailName"))
        if trail:
            attrs["trail"] = trail
    elif source == "s3.amazonaws.com":
        _s3_attrs(name, params, extra, attrs)
    elif source == "kms.amazonaws.com":
        for src, dst in (("keyId", "key_id"), ("signingAlgorithm", "signing_algorithm"),
                         ("encryptionAlgorithm", "encryption_algorithm"), ("keySpec", "key_spec")):
            if _s(params.get(src)):
                attrs[dst] = params[src]
    event = {
        "time": time,
        "kind": _kind(source, name),
        "actor": actor,
        "action": name,
        "resource": _resource(source, name, params, resources),
        "outcome": {"status": "failure" if failed else "success", "error": error},
        "correlation": correlation,
        "attrs": attrs,
    }
    event_id = get("eventID")
    return event, event_id if type(event_id) is str and event_id else None


def _s3_attrs(name: str, params: dict[str, Any], extra: dict[str, Any], attrs: dict[str, Any]) -> None:
    mapping = (("x-amz-object-lock-mode", "object_lock_mode"),
               ("x-amz-object-lock-retain-until-date", "retain_until"),
               ("x-amz-object-lock-legal-hold", "legal_hold"),
               ("x-amz-server-side-encryption", "sse"),
               ("x-amz-server-side-encryption-aws-kms-key-id", "kms_key_id"),
               ("x-amz-bypass-governance-retention", "bypass_governance"))
    for src, dst in mapping:
        value = params.get(src)
        if isinstance(value, (str, bool)):
            attrs[dst] = value
    retention = _d(params.get("Retention") or params.get("retention"))
    if _s(retention.get("Mode")):
        attrs["object_lock_mode"] = retention["Mode"]
    if _s(retention.get("RetainUntilDate")):
        attrs["retain_until"] = retention["RetainUntilDate"]
    hold = _d(params.get("LegalHold") or params.get("legalHold"))
    if _s(hold.get("Status")):
        attrs["legal_hold"] = hold["Status"]
    if _s(extra.get("SSEApplied")):
        attrs["sse_applied"] = extra["SSEApplied"]
    if name in OBJECT_LOCK_CALLS:
        attrs["object_lock_call"] = True


# -- the source ------------------------------------------------------------------------


def is_log_key(key: str) -> bool:
    """A CloudTrail log file (not a digest, not a signature sidecar)."""
    return (key.endswith(LOG_SUFFIXES) and "/CloudTrail-Digest/" not in f"/{key}"
            and not key.endswith((".sig.json", ".meta.json")) and "/CloudTrail-Insight/" not in f"/{key}")


def object_tag(info: ObjectInfo) -> str:
    """What identifies one version of an object: its ETag, else size and mtime."""
    return info.etag or f"{info.size}:{info.last_modified}"


def parse_log_bytes(blob: bytes, *, location: str, skip: int = 0) -> Iterator[SourceRecord]:
    """Records of one log file's bytes: events, or quarantined records with reasons.

    Records with index < *skip* were ingested before (the cursor) and are passed over.
    """
    try:
        data, trailing = inflate_log(blob)
    except MalformedInput as exc:
        yield SourceRecord(location=location, line=None, raw=blob, reason=str(exc))
        return
    for item in scan_records(data):
        if item.index < skip:
            continue
        raw = data[item.start:item.end]
        if isinstance(item, BadSlice):
            yield SourceRecord(location=location, line=item.index, raw=raw, reason=item.reason)
            continue
        where = f"{location}#{item.index}"
        doc = item.doc
        if doc is None:
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield SourceRecord(location=location, line=item.index, raw=raw,
                                   reason=f"malformed JSON record: {str(exc).splitlines()[0][:150]}")
                continue
        try:
            event, event_id = normalize_record(doc, location=where)
            # normalize_record builds events from strings, booleans and None only
            event_bytes = canonical_bytes_of_text_tree(event)
        except MalformedInput as exc:
            yield SourceRecord(location=location, line=item.index, raw=raw,
                               reason=str(exc).removeprefix(f"{where}: "))
            continue
        yield SourceRecord(location=location, line=item.index, raw=raw, event=event,
                           dedup_key=f"aws.cloudtrail:{event_id}" if event_id else None, event_bytes=event_bytes)
    if trailing:
        yield SourceRecord(location=location, line=None, raw=trailing,
                           reason="data after the end of the first gzip member")


def file_items(info: ObjectInfo, skip: int, cursor_id: str, records: Iterator[SourceRecord]) -> Iterator[SourceItem]:
    """One file's records with its cursor marks: every :data:`CURSOR_EVERY` records, and done at the end."""
    tag = object_tag(info)
    count = skip
    for rec in records:
        yield rec
        if rec.line is not None:
            count = rec.line + 1
            if count % CURSOR_EVERY == 0:
                yield CursorMark(cursor_id, orjson.dumps({"tag": tag, "next": count, "done": False}).decode())
    yield CursorMark(cursor_id, orjson.dumps({"tag": tag, "next": count, "done": True}).decode())


def _stage_file_job(job: tuple[bytes, ObjectInfo, int, str, str, str, str, str, int]) -> list[Any]:
    """Worker side: parse one file and stage its records (raw bytes stored, entries in
    canonical parts), so the ledger process only chains, hashes and inserts."""
    from collector.ingest import staged_batches
    from collector.store import EvidenceStore

    blob, info, skip, cursor_id, store_root, kind, source_id, observed, batch_size = job
    items = file_items(info, skip, cursor_id, parse_log_bytes(blob, location=info.uri, skip=skip))
    return list(staged_batches(items, kind=kind, source_id=source_id, observed=observed,
                               store=EvidenceStore(Path(store_root)), batch_size=batch_size, parts=True))


class CloudTrailLogs(Source):
    """CloudTrail log files under one provider root (folder or ``s3://bucket/prefix``).

    ``workers`` None (the default) picks 2 worker processes on a machine with 2+ CPUs when the
    files to read hold 8 MiB or more, else 0 (see :func:`collector.pipeline.auto_workers`).
    With ``workers`` > 0, files are parsed and normalized in that many worker processes
    while the caller appends in one (results come back in file order). At most
    ``2 * fetch_workers`` fetched files (and ``2 * workers`` parsed ones) wait in memory.
    """

    kind = KIND

    def __init__(self, provider: ObjectProvider, *, keys: list[str] | None = None, workers: int | None = None,
                 fetch_workers: int = 4) -> None:
        self.provider = provider
        self.keys = keys
        self.workers = workers
        self.fetch_workers = fetch_workers
        self.source_id = f"{KIND}:{provider.uri('')}"
        self.files_skipped = 0  # objects that are not log files (digests, sidecars, other)

    @classmethod
    def for_path(cls, src: str, provider: ObjectProvider | None = None, **kwargs: Any) -> CloudTrailLogs:
        """A source for a folder, ``s3://`` root, or one local file (any suffix)."""
        path = Path(src)
        if provider is None and not src.startswith("s3://") and path.is_file():
            return cls(LocalFolderProvider(path.parent), keys=[path.name], **kwargs)
        if provider is None:
            from collector.object_source import open_provider

            provider = open_provider(src)
        return cls(provider, **kwargs)

    def cursor_id(self, key: str) -> str:
        return f"{KIND}:{self.provider.uri(key)}"

    def objects(self) -> Iterator[ObjectInfo]:
        if self.keys is not None and isinstance(self.provider, LocalFolderProvider):
            from collector.timeutil import format_time

            for key in self.keys:  # named files: no need to walk the whole folder
                path = self.provider.root / key
                stat = path.stat()
                yield ObjectInfo(key, stat.st_size, str(path), last_modified=format_time(
                    datetime.fromtimestamp(stat.st_mtime).astimezone()))
            return
        if self.keys is not None:
            wanted = set(self.keys)
            for info in self.provider.list():
                if info.key in wanted:
                    yield info
            return
        for info in self.provider.list():
            if is_log_key(info.key):
                yield info
            else:
                self.files_skipped += 1

    def _plan(self, cursors: Mapping[str, str]) -> Iterator[tuple[ObjectInfo, int]]:
        for info in self.objects():
            skip = 0
            text = cursors.get(self.cursor_id(info.key))
            if text:
                state = orjson.loads(text)
                if state.get("tag") == object_tag(info):
                    if state.get("done"):
                        continue
                    skip = int(state.get("next", 0))
            yield info, skip

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        plan = list(self._plan(cursors))
        blobs = self.provider.get_many([info.key for info, _ in plan], workers=self.fetch_workers)
        for (info, skip), (_, blob) in zip(plan, blobs):
            yield from file_items(info, skip, self.cursor_id(info.key),
                                  parse_log_bytes(blob, location=info.uri, skip=skip))

    def staged(self, cursors: Mapping[str, str], *, store: Any, kind: str, source_id: str, observed: str,
               batch_size: int) -> Iterator[Any] | None:
        """With workers: each file parsed and staged in a worker process (results in file
        order, a bounded window of files in flight); else None (use :meth:`collect`)."""
        from collector.pipeline import auto_workers, require_worker_temp_dir

        plan = list(self._plan(cursors))
        workers = self.workers if self.workers is not None else auto_workers(sum(i.size or 0 for i, _ in plan))
        if workers <= 0:
            return None
        require_worker_temp_dir()  # asked for workers (auto_workers already checked this)
        return self._staged_parallel(plan, workers, str(store.root), kind, source_id, observed, batch_size)

    def _staged_parallel(self, plan: list[tuple[ObjectInfo, int]], workers: int, store_root: str, kind: str,
                         source_id: str, observed: str, batch_size: int) -> Iterator[Any]:
        import multiprocessing
        from collections import deque

        blobs = self.provider.get_many([info.key for info, _ in plan], workers=self.fetch_workers)
        ctx = multiprocessing.get_context("forkserver")
        window: deque[Any] = deque()
        with ctx.Pool(workers) as pool:
            for (info, skip), (_, blob) in zip(plan, blobs):
                job = (blob, info, skip, self.cursor_id(info.key), store_root, kind, source_id, observed, batch_size)
                window.append(pool.apply_async(_stage_file_job, (job,)))
                if len(window) >= max(2, workers * 2):  # bounded read-ahead keeps memory flat
                    yield from window.popleft().get()
            while window:
                yield from window.popleft().get()


# -- digest verdicts as ledger entries ---------------------------------------------------

VERDICT_KINDS = {"valid": "aws.digest_valid", "invalid": "aws.digest_invalid", "gap": "aws.digest_gap"}


def verdict_event(verdict: Any, *, observed: str, requested: tuple[str, str] | None) -> dict[str, Any]:
    """The normalized event of one digest-validation verdict (:class:`collector.cloudtrail_digest.Verdict`).

    A broken chain (ends early, restarts) is ``aws.digest_gap``; an invalid digest or
    listed log file is ``aws.digest_invalid``; a digest whose signature, location and
    links verified is ``aws.digest_valid``.
    """
    kind = VERDICT_KINDS[verdict.status]
    if verdict.subject == "chain":
        kind = "aws.digest_gap"
    attrs: dict[str, Any] = {"subject": verdict.subject, "digest_key": verdict.key if verdict.subject != "log" else None,
                             "start": verdict.start, "end": verdict.end, "reason": verdict.reason}
    if verdict.subject == "log":
        attrs["log_key"] = verdict.key
    if requested is not None:
        attrs["requested_start"], attrs["requested_end"] = requested
    problem = verdict.status != "valid"
    return {
        "time": verdict.end or observed,
        "kind": kind,
        "actor": None,
        "action": "validate-digest" if verdict.subject == "digest" else f"validate-{verdict.subject}",
        "resource": verdict.location,
        "outcome": {"status": "failure" if problem else "success", "error": verdict.reason if problem else None},
        "correlation": {},
        "attrs": {k: v for k, v in attrs.items() if v is not None},
    }


class CloudTrailDigestVerdicts(Source):
    """The verdicts of one digest validation run, as entries (valid log files are not entries)."""

    kind = KIND

    def __init__(self, report: Any, root_uri: str, *, observed: str,
                 requested: tuple[str, str] | None = None) -> None:
        self.report = report
        self.source_id = f"{KIND}-digest:{root_uri}"
        self.observed = observed
        self.requested = requested

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        for index, verdict in enumerate(self.report.verdicts):
            if verdict.subject == "log" and verdict.status == "valid":
                continue
            event = verdict_event(verdict, observed=self.observed, requested=self.requested)
            raw = orjson.dumps(verdict.to_json(), option=orjson.OPT_SORT_KEYS)
            dedup = f"aws.digest:{verdict.status}:{verdict.subject}:{verdict.location}:{verdict.reason}"
            yield SourceRecord(location=verdict.location, line=None, raw=raw, event=event, dedup_key=dedup)
        yield CursorMark(self.source_id, orjson.dumps({"validated": self.observed}).decode())


class _DigestValidation(Source):
    """Validates the digest chain when collected (after the log files), yielding the verdicts."""

    kind = KIND

    def __init__(self, provider: Any, keys: Any, *, observed: str) -> None:
        self.provider = provider
        self.keys = keys
        self.observed = observed
        self.source_id = f"{KIND}-digest:{provider.uri('')}"
        self.report: Any = None

    def collect(self, cursors: Mapping[str, str]) -> Iterator[SourceItem]:
        from collector.cloudtrail_fetch import validate_store

        self.report = validate_store(self.provider, self.keys, start=None, end=None, no_digests="gap")
        yield from CloudTrailDigestVerdicts(self.report, self.provider.uri(""), observed=self.observed).collect(cursors)


def build_sources(source: Any, context: Any) -> list[Any]:
    """``fedledger run`` factory for ``kind = "cloudtrail"`` (see collector.run).

    Per location: the log files, then the digest chain (unless ``skip_digests``),
    whose verdicts become entries; an invalid chain fails the source after its
    verdicts are recorded. Options: ``public_keys`` (files saved from
    ``aws cloudtrail list-public-keys``; else ``ListPublicKeys``), ``region``,
    ``endpoint_url``, ``profile``, ``workers``, ``skip_digests``.
    """
    from collector.cloudtrail_fetch import public_keys_from_cloudtrail, public_keys_from_file
    from collector.errors import IntegrityError
    from collector.object_source import open_provider
    from collector.run import PlannedCollection

    opts = source.options
    workers = None if opts.get("workers") is None else int(opts["workers"])
    plans = []
    for location in source.locations:
        if location.startswith("s3://"):
            logs = CloudTrailLogs(open_provider(location, endpoint_url=opts.get("endpoint_url"), region=opts.get("region"),
                                                profile=opts.get("profile")), workers=workers)
        else:
            logs = CloudTrailLogs.for_path(location, workers=workers)
        plans.append(PlannedCollection(logs, logs.source_id, location))
        if opts.get("skip_digests") or logs.keys is not None:
            continue
        if source.public_keys:
            keys = public_keys_from_file(*source.public_keys)
        else:
            keys = public_keys_from_cloudtrail(region=opts.get("region"), profile=opts.get("profile"))
        validation = _DigestValidation(logs.provider, keys, observed=context.observed)

        def finish(_summary: Any, validation: _DigestValidation = validation) -> None:
            if validation.report is not None and not validation.report.ok:
                raise IntegrityError(f"CloudTrail digest chain does not validate: {validation.report.tally()}",
                                     location=validation.provider.uri(""))

        plans.append(PlannedCollection(validation, validation.source_id, f"{location} (digests)", finish=finish))
    return plans
