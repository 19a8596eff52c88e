"""CloudTrail digest-chain validation: pure code (bytes, public keys and a time range in).

This module never does I/O and never imports boto3; :mod:`collector.cloudtrail_fetch`
lists and fetches the objects and hands their bytes here.

What is verified, as AWS defines it (and as ``aws cloudtrail validate-logs`` does):

* a digest file is one gzip member holding a JSON object with the required fields;
* it names the place it was read from (``digestS3Bucket``/``digestS3Object``), so it
  was not moved;
* its signature (hex, from the object's ``signature`` metadata, algorithm
  ``SHA256withRSA``) verifies with the CloudTrail public key whose fingerprint (hex
  MD5 of the PKCS#1 DER key) the digest names, over the string to sign
  ``digestEndTime \\n bucket/key \\n hex(SHA-256(inflated digest)) \\n previousDigestSignature``;
* the chain: each digest's ``previousDigestS3Object`` exists;
* every log file a valid digest lists has that SHA-256 over its uncompressed bytes
  (a gzip with data after its first member is invalid).

What AWS's tool does not check and this module does:

* the link's content: ``previousDigestSignature``/``previousDigestHashValue`` must be
  the predecessor's actual signature and hash (a replaced digest breaks the link);
* every digest missing in a run of deleted digests, each by name (the first from the
  successor's link, the rest from the hourly cadence);
* gaps where the chain restarts (logging or validation was off);
* a chain that ends before the requested end (deleted newest digests) or starts
  after the requested start;
* log files present in the store but listed in no digest.

What is not verified: that the public keys are CloudTrail's (the caller pins them,
from ``ListPublicKeys`` or a saved file), and anything outside the digests' windows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from collector.errors import MalformedInput

REQUIRED_FIELDS = ("digestPublicKeyFingerprint", "digestS3Bucket", "digestS3Object", "previousDigestSignature",
                   "digestEndTime", "digestStartTime")
SIGNATURE_ALGORITHM = "SHA256withRSA"
HOUR = timedelta(hours=1)
DIGEST_KEY = re.compile(
    r"^(?P<prefix>(?:.*/)?)AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<account>\d{12})/CloudTrail-Digest/(?P<region>[^/]+)/"
    r"(?P<ymd>\d{4}/\d\d/\d\d)/(?P=account)_CloudTrail-Digest_(?P=region)_(?P<trail>.+)_"
    r"(?P<home>[a-z]{2}(?:-[a-z]+)+-\d+)_(?P<stamp>\d{8}T\d{6}Z)(?P<backfill>_backfill)?\.json\.gz$"
)
LOG_KEY = re.compile(
    r"^(?P<prefix>(?:.*/)?)AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<account>\d{12})/CloudTrail/(?P<region>[^/]+)/"
    r"\d{4}/\d\d/\d\d/(?P=account)_CloudTrail_(?P=region)_(?P<stamp>\d{8}T\d{4}Z)_[^/]+\.json\.gz$"
)


class DigestFormatError(MalformedInput):
    """A digest or log file that cannot be read as what it claims to be."""


# -- keys and small pure functions --------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    """One CloudTrail public key: PKCS#1 DER bytes and its validity window."""

    fingerprint: str
    der: bytes
    valid_from: datetime | None = None
    valid_to: datetime | None = None


def fingerprint_of(der: bytes) -> str:
    """CloudTrail's key fingerprint: hex MD5 of the PKCS#1 DER public key (an identifier, not a security hash)."""
    return hashlib.md5(der, usedforsecurity=False).hexdigest()


def _key_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    return parse_utc(str(value))


def load_public_keys(data: bytes, *, location: str = "public keys") -> dict[str, PublicKey]:
    """Keys from ``aws cloudtrail list-public-keys`` output (or a ListPublicKeys answer).

    A key whose stated fingerprint is not the MD5 of its value is rejected: it
    would let a file claim any fingerprint.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedInput(f"not JSON: {exc}", location=location) from None
    items = doc.get("PublicKeyList") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise MalformedInput("no PublicKeyList array (expected `aws cloudtrail list-public-keys` output)",
                             location=location)
    return public_keys_from_list(items, location=location)


def public_keys_from_list(items: Iterable[Mapping[str, Any]], *, location: str = "public keys") -> dict[str, PublicKey]:
    keys: dict[str, PublicKey] = {}
    for index, item in enumerate(items):
        der = _der_from_value(item.get("Value"))
        if der is None:
            raise MalformedInput(f"PublicKeyList[{index}].Value is not a base64 PKCS#1 key", location=location)
        fingerprint = fingerprint_of(der)
        stated = str(item.get("Fingerprint", fingerprint)).lower()
        if stated != fingerprint:
            raise MalformedInput(f"PublicKeyList[{index}]: Fingerprint {stated} is not the MD5 of its key "
                                 f"({fingerprint})", location=location)
        keys[fingerprint] = PublicKey(fingerprint, der, _key_time(item.get("ValidityStartTime")),
                                      _key_time(item.get("ValidityEndTime")))
    return keys


def _der_from_value(value: Any) -> bytes | None:
    """DER bytes from a key ``Value``: base64 text (CLI output), or bytes that are DER or base64 text
    (botocore decodes the JSON blob once; CloudTrail's blob holds the base64 text of the key)."""
    raw: bytes
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        if raw[:1] == b"\x30":
            return raw
    elif isinstance(value, str):
        raw = value.encode()
    else:
        return None
    try:
        der = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    if der[:1] != b"\x30":  # base64 of base64 text: decode once more
        try:
            der = base64.b64decode(der, validate=True)
        except (binascii.Error, ValueError):
            return None
    return der


def keys_in_window(keys: Mapping[str, PublicKey], start: datetime, end: datetime) -> dict[str, PublicKey]:
    """The keys ListPublicKeys would return for [start, end]: validity overlapping the window."""
    return {fp: k for fp, k in keys.items()
            if (k.valid_from is None or k.valid_from <= end) and (k.valid_to is None or k.valid_to >= start)}


def parse_utc(text: str) -> datetime:
    """A UTC datetime from CloudTrail's ``YYYY-MM-DDTHH:MM:SSZ`` (or any RFC 3339 with a zone)."""
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise MalformedInput(f"not an RFC 3339 time: {text[:40]!r}") from None
    if value.tzinfo is None:
        raise MalformedInput(f"time without a zone: {text[:40]!r}")
    return value.astimezone(timezone.utc)


def show_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def string_to_sign(end_time: str, bucket: str, key: str, inflated: bytes, previous_signature: str | None) -> bytes:
    """AWS's digest signing string; a JSON null previous signature is the text ``null``."""
    previous = "null" if previous_signature is None else previous_signature
    return f"{end_time}\n{bucket}/{key}\n{hashlib.sha256(inflated).hexdigest()}\n{previous}".encode()


def inflate_one_member(blob: bytes) -> bytes:
    """The uncompressed bytes of a gzip file with exactly one member; else :class:`DigestFormatError`."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        data = inflater.decompress(blob) + inflater.flush()
    except zlib.error as exc:
        raise DigestFormatError(f"not gzip: {exc}") from None
    if not inflater.eof:
        raise DigestFormatError("truncated gzip")
    if inflater.unused_data:
        raise DigestFormatError("unexpected data after end of compressed stream")
    return data


def key_stamp(key: str) -> datetime | None:
    """The time in a digest key's name (AWS orders and windows digests by it)."""
    m = DIGEST_KEY.match(key)
    if not m:
        return None
    return datetime.strptime(m.group("stamp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ChainId:
    """Digests of one chain: one trail's digests for one account and region."""

    prefix: str
    org: str | None
    account: str
    region: str
    trail: str
    home: str
    backfill: bool

    def digest_key(self, stamp: datetime) -> str:
        org = f"{self.org}/" if self.org else ""
        ymd = stamp.strftime("%Y/%m/%d")
        tail = "_backfill" if self.backfill else ""
        return (f"{self.prefix}AWSLogs/{org}{self.account}/CloudTrail-Digest/{self.region}/{ymd}/{self.account}"
                f"_CloudTrail-Digest_{self.region}_{self.trail}_{self.home}_{stamp.strftime('%Y%m%dT%H%M%SZ')}"
                f"{tail}.json.gz")

    def label(self) -> str:
        return f"{self.account}/{self.region}/{self.trail}" + (" (backfill)" if self.backfill else "")


def chain_id(key: str) -> ChainId | None:
    m = DIGEST_KEY.match(key)
    if not m:
        return None
    return ChainId(m.group("prefix"), m.group("org"), m.group("account"), m.group("region"), m.group("trail"),
                   m.group("home"), bool(m.group("backfill")))


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One line of the result: a digest, a log file or the chain between digests."""

    subject: str  # "digest", "log", "chain"
    location: str  # s3://bucket/key (or the local path)
    status: str  # "valid", "invalid", "gap"
    reason: str | None = None
    key: str = ""
    start: str | None = None
    end: str | None = None

    def line(self) -> str:
        label = {"digest": "Digest file", "log": "Log file", "chain": "Digest chain"}[self.subject]
        if self.status == "valid":
            return f"{label}\t{self.location}\tvalid"
        word = "INVALID" if self.status == "invalid" else "GAP"
        return f"{label}\t{self.location}\t{word}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "location": self.location, "status": self.status, "reason": self.reason,
                "key": self.key, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class LogRef:
    """A log file as a digest lists it (``s3Bucket``, ``s3Object``, ``hashValue``).

    ``digest_bucket`` is the bucket the listing digest names for itself (its signed
    ``digestS3Bucket``): for a local copy, whose folder carries no bucket name, the only
    bucket a listed log file can be compared with.
    """

    bucket: str
    key: str
    sha256: str
    listed_by: str
    digest_bucket: str | None = None


@dataclass(frozen=True)
class FetchedDigest:
    """A digest object as fetched: where it was read, its bytes and its signature metadata."""

    key: str  # the key in the store (S3 key, or path relative to the folder)
    location: str  # s3://bucket/key or local path, for messages
    blob: bytes
    bucket: str | None  # None: a local copy whose bucket is unknown (only the key is checked)
    signature: str | None
    algorithm: str | None
    metadata_error: str | None = None  # why the signature metadata could not be read (e.g. a broken sidecar)


@dataclass(frozen=True)
class DigestFile:
    """The parsed content of a digest that passed its own checks."""

    key: str
    start: datetime
    end: datetime
    end_text: str
    inflated_sha256: str
    signature: str
    previous_bucket: str | None
    previous_key: str | None
    previous_signature: str | None
    previous_hash: str | None
    log_files: tuple[LogRef, ...]
    s3_bucket: str
    s3_object: str


@dataclass
class ValidationReport:
    """Every verdict, in order; counts for the tally. Fails closed: ok only with no invalid."""

    verdicts: list[Verdict] = field(default_factory=list)
    logs_to_check: list[LogRef] = field(default_factory=list)

    def count(self, subject: str, status: str) -> int:
        return sum(1 for v in self.verdicts if v.subject == subject and v.status == status)

    @property
    def ok(self) -> bool:
        return not any(v.status == "invalid" for v in self.verdicts)

    def tally(self) -> str:
        parts = []
        for subject, name in (("digest", "digest files"), ("log", "log files")):
            valid, invalid = self.count(subject, "valid"), self.count(subject, "invalid")
            total = valid + invalid
            parts.append(f"{valid}/{total} {name} valid" + (f", {invalid} INVALID" if invalid else ""))
        chain_invalid = self.count("chain", "invalid")
        if chain_invalid:
            parts.append(f"{chain_invalid} chain problem(s) INVALID")
        parts.append(f"{self.count('chain', 'gap') + self.count('digest', 'gap')} gap(s)")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "tally": self.tally(), "verdicts": [v.to_json() for v in self.verdicts]}


# -- one digest ---------------------------------------------------------------------------


def _matches_location(doc_bucket: str, doc_key: str, fetched: FetchedDigest) -> bool:
    if fetched.bucket is not None:
        return doc_bucket == fetched.bucket and doc_key == fetched.key
    # A local copy: the folder stands for the bucket (or bucket/prefix); the key must match.
    return doc_key == fetched.key or doc_key.endswith("/" + fetched.key)


def verify_digest(fetched: FetchedDigest, public_keys: Mapping[str, PublicKey]) -> tuple[Verdict, DigestFile | None]:
    """Verify one digest file on its own: format, location, key, signature."""

    def bad(reason: str) -> tuple[Verdict, None]:
        return Verdict("digest", fetched.location, "invalid", reason, key=fetched.key), None

    try:
        inflated = inflate_one_member(fetched.blob)
        doc = orjson.loads(inflated)
    except (DigestFormatError, orjson.JSONDecodeError):
        return bad("invalid format")
    if not isinstance(doc, dict) or any(name not in doc for name in REQUIRED_FIELDS):
        return bad("invalid format")
    if fetched.metadata_error is not None:
        return bad(f"signature verification failed ({fetched.metadata_error})")
    if fetched.signature is None or fetched.algorithm is None:
        return bad("signature verification failed (no signature metadata)")
    doc_bucket, doc_key = str(doc["digestS3Bucket"]), str(doc["digestS3Object"])
    if not _matches_location(doc_bucket, doc_key, fetched):
        return bad("has been moved from its original location")
    fingerprint = str(doc["digestPublicKeyFingerprint"])
    key = public_keys.get(fingerprint)
    if key is None:
        return bad(f"public key not found for fingerprint {fingerprint}")
    if fetched.algorithm != SIGNATURE_ALGORITHM:
        return bad(f"unsupported signature algorithm {fetched.algorithm[:40]!r}")
    try:
        public = load_der_public_key(key.der)
    except ValueError:
        return bad(f"Unable to load PKCS #1 key with fingerprint {fingerprint}")
    if not isinstance(public, rsa.RSAPublicKey):
        return bad(f"key {fingerprint} is not an RSA key")
    try:
        signature = bytes.fromhex(fetched.signature)
        message = string_to_sign(str(doc["digestEndTime"]), doc_bucket, doc_key, inflated,
                                 doc["previousDigestSignature"])
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, InvalidSignature):
        return bad("signature verification failed")
    try:
        start, end = parse_utc(str(doc["digestStartTime"])), parse_utc(str(doc["digestEndTime"]))
        logs = tuple(LogRef(str(item["s3Bucket"]), str(item["s3Object"]), str(item["hashValue"]).lower(), fetched.key,
                            doc_bucket)
                     for item in doc.get("logFiles") or [])
    except (MalformedInput, KeyError, TypeError):
        return bad("invalid format")
    parsed = DigestFile(
        key=fetched.key, start=start, end=end, end_text=str(doc["digestEndTime"]),
        inflated_sha256=hashlib.sha256(inflated).hexdigest(), signature=fetched.signature.lower(),
        previous_bucket=doc.get("previousDigestS3Bucket"), previous_key=doc.get("previousDigestS3Object"),
        previous_signature=doc.get("previousDigestSignature"), previous_hash=doc.get("previousDigestHashValue"),
        log_files=logs, s3_bucket=doc_bucket, s3_object=doc_key,
    )
    return Verdict("digest", fetched.location, "valid", key=fetched.key, start=show_time(start),
                   end=show_time(end)), parsed


def verify_log_file(ref: LogRef, blob: bytes | None, location: str) -> Verdict:
    """A listed log file: present, one gzip member, SHA-256 of the uncompressed bytes as listed."""
    if blob is None:
        return Verdict("log", location, "invalid", "not found", key=ref.key)
    try:
        data = inflate_one_member(blob)
    except DigestFormatError as exc:
        reason = str(exc) if "after end" in str(exc) else "invalid format"
        return Verdict("log", location, "invalid", reason, key=ref.key)
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        return Verdict("log", location, "invalid", "hash value doesn't match", key=ref.key)
    return Verdict("log", location, "valid", key=ref.key)


# -- the chain ----------------------------------------------------------------------------


def select_in_range(keys: Iterable[str], start: datetime, end: datetime) -> list[str]:
    """Digest keys whose name time is in [start - 1 min, end + 1 h], as AWS selects them (sorted by time)."""
    low, high = start - timedelta(minutes=1), end + HOUR
    chosen = []
    for key in keys:
        stamp = key_stamp(key)
        if stamp is not None and low <= stamp <= high:
            chosen.append((stamp, key))
    return [k for _, k in sorted(chosen)]


def verify_chain(
    chain: ChainId,
    digests: list[FetchedDigest],
    public_keys: Mapping[str, PublicKey],
    *,
    start: datetime,
    end: datetime,
    store_keys: set[str],
    locate: Callable[[str], str] | None = None,
    local_prefix: str = "",
    tail_tolerance: timedelta = HOUR + timedelta(minutes=30),
) -> ValidationReport:
    """Verify one chain's digests (already selected for [start, end] and fetched).

    *store_keys* are all keys present in the store (to tell "deleted" from "not
    fetched"); *local_prefix* is what to strip from a digest's S3 key to get the
    store key (a local copy of ``s3://bucket/prefix``). *locate* maps a store key to
    the location shown in messages.
    """
    report = ValidationReport()

    def loc(key: str) -> str:
        return locate(key) if locate is not None else key

    def store_key(s3_key: str) -> str:
        return s3_key[len(local_prefix):] if local_prefix and s3_key.startswith(local_prefix) else s3_key

    parsed: dict[str, DigestFile] = {}
    ordered = sorted(digests, key=lambda d: (key_stamp(d.key) or start, d.key))
    for fetched in ordered:
        verdict, info = verify_digest(fetched, public_keys)
        report.verdicts.append(verdict)
        if info is not None:
            parsed[fetched.key] = info
    by_time = [d.key for d in ordered]
    if chain.backfill:  # backfill digests are validated one by one; they form no hourly chain
        for info in parsed.values():
            report.logs_to_check.extend(info.log_files)
        return report

    reported_missing: set[str] = set()
    for position, key in enumerate(by_time):
        info = parsed.get(key)
        if info is None:
            continue
        report.logs_to_check.extend(info.log_files)
        older = by_time[position - 1] if position > 0 else None
        if info.previous_key is None or info.previous_bucket is None:
            if older is not None or info.start > start + tail_tolerance:
                since = parsed[older].end if older in parsed else None
                span = f"between {show_time(since)} and {show_time(info.start)}" if since else \
                    f"before {show_time(info.start)}"
                report.verdicts.append(Verdict(
                    "chain", loc(key), "gap",
                    f"the chain restarts here (no previous digest): no log files were delivered, or logging or "
                    f"log file validation was off, {span}", key=key, start=show_time(since) if since else None,
                    end=show_time(info.start)))
            continue
        previous = store_key(info.previous_key)
        if info.start < start:
            continue  # the predecessor lies before the requested range (AWS stops here too)
        if previous not in store_keys:
            stamp = key_stamp(previous)
            floor = max((t for t in (key_stamp(k) for k in by_time) if t is not None and stamp is not None
                         and t < stamp), default=None)
            # no older digest present: the run of deleted digests reaches back to the requested start
            report.verdicts.extend(_missing_run(chain, info, previous, floor if floor is not None else start, loc,
                                                reported_missing))
            continue
        before = parsed.get(previous)
        if before is not None:
            if info.previous_signature is not None and info.previous_signature.lower() != before.signature:
                report.verdicts.append(Verdict(
                    "chain", loc(previous), "invalid",
                    f"its signature is not the one {key.rsplit('/', 1)[-1]} recorded for its predecessor "
                    "(digest replaced)", key=previous))
            elif info.previous_hash is not None and info.previous_hash.lower() != before.inflated_sha256:
                report.verdicts.append(Verdict(
                    "chain", loc(previous), "invalid",
                    f"its SHA-256 is not the one {key.rsplit('/', 1)[-1]} recorded for its predecessor", key=previous))
            if older is not None and older != previous and older in parsed and parsed[older].end > before.end:
                report.verdicts.append(Verdict(
                    "chain", loc(older), "invalid", "a digest that is not part of the chain (its successor "
                    f"links to {previous.rsplit('/', 1)[-1]})", key=older))
    # The newest digest must reach the requested end; the oldest must reach back to the start.
    newest = next((parsed[k] for k in reversed(by_time) if k in parsed), None)
    if newest is None and not by_time:
        report.verdicts.append(Verdict("chain", chain.label(), "invalid",
                                       f"no digest files between {show_time(start)} and {show_time(end)}",
                                       start=show_time(start), end=show_time(end)))
    elif newest is not None and newest.end < end - tail_tolerance:
        report.verdicts.append(Verdict(
            "chain", chain.label(), "invalid",
            f"the chain ends at {show_time(newest.end)}, before the requested end {show_time(end)}: the newest "
            "digests are missing (deleted, or logging stopped)", key=newest.key, start=show_time(newest.end),
            end=show_time(end)))
    return report


def _missing_run(chain: ChainId, info: DigestFile, previous: str, floor: datetime | None, loc: Any,
                 reported: set[str]) -> list[Verdict]:
    """The deleted predecessor, by the link's name, and the deleted digests before it, by the hourly cadence."""
    verdicts: list[Verdict] = []
    if previous not in reported:
        reported.add(previous)
        verdicts.append(Verdict("digest", loc(previous), "invalid", "not found", key=previous,
                                end=show_time(info.start)))
    stamp = key_stamp(previous)
    if stamp is None or floor is None:
        return verdicts
    step = stamp - HOUR
    while step > floor + timedelta(minutes=30):
        name = chain.digest_key(step)
        if name not in reported:
            reported.add(name)
            verdicts.append(Verdict("digest", loc(name), "invalid",
                                    "not found (deleted: inferred from the hourly digest cadence)", key=name,
                                    end=show_time(step)))
        step -= HOUR
    return verdicts


def unlisted_log_files(log_keys: Iterable[str], listed: set[str], windows: list[tuple[datetime, datetime]],
                       *, margin: timedelta = timedelta(minutes=2)) -> list[str]:
    """Log files in the store, inside a window some digest covers, that no digest lists."""
    found = []
    for key in log_keys:
        if key in listed:
            continue
        m = LOG_KEY.match(key)
        if not m:
            continue
        stamp = datetime.strptime(m.group("stamp"), "%Y%m%dT%H%MZ").replace(tzinfo=timezone.utc)
        if any(low + margin <= stamp <= high - margin for low, high in windows):
            found.append(key)
    return found
