"""Fetch side of CloudTrail digest validation: list, fetch concurrently, hand bytes to the pure validator.

Provider roles, like aws-cli's split: :class:`DigestStore` lists digest and log
objects through an :class:`~collector.object_source.ObjectProvider` (local folder or
``s3://``) and fetches them concurrently; public keys come from a saved
``aws cloudtrail list-public-keys`` file or from CloudTrail's ``ListPublicKeys``.
:func:`validate_store` walks the chains and calls :mod:`collector.cloudtrail_digest`
(pure) for every verdict.

Signatures: S3 user metadata ``signature`` / ``signature-algorithm`` (read with the
object in one GetObject). For a local copy, a sidecar ``<digest>.sig.json``
(``{"signature": hex, "signature-algorithm": "SHA256withRSA", "bucket": ..., "key": ...}``,
written by :func:`download` and by the sample generator) or the provider's
``<digest>.meta.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from collector.cloudtrail_digest import (
    HOUR,
    LOG_KEY,
    ChainId,
    FetchedDigest,
    LogRef,
    PublicKey,
    ValidationReport,
    Verdict,
    chain_id,
    inflate_one_member,
    key_stamp,
    parse_utc,
    keys_in_window,
    load_public_keys,
    public_keys_from_list,
    select_in_range,
    show_time,
    unlisted_log_files,
    verify_chain,
    verify_log_file,
)
from collector.errors import FedledgerError, MalformedInput, SourceUnavailable, UsageError
from collector.object_source import FETCH_WORKERS, LocalFolderProvider, ObjectInfo, ObjectProvider, S3Provider

SIDECAR = ".sig.json"
KEY_WINDOW_AFTER = 2 * HOUR  # AWS asks ListPublicKeys for [start, end + 2 h]

PublicKeySource = Callable[[datetime, datetime], dict[str, PublicKey]]


def public_keys_from_file(*paths: Path) -> PublicKeySource:
    """Keys saved with ``aws cloudtrail list-public-keys > FILE`` (offline), from one file or
    several (e.g. one per region or per period). A key listed in more than one file counts
    once, valid from its earliest stated start to its latest stated end; two different keys with one
    fingerprint (an MD5 collision) are refused."""
    keys: dict[str, PublicKey] = {}
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SourceUnavailable(f"cannot read public keys: {exc.strerror}", location=str(path)) from None
        for fingerprint, key in load_public_keys(data, location=str(path)).items():
            known = keys.get(fingerprint)
            if known is None:
                keys[fingerprint] = key
            elif known.der != key.der:
                raise MalformedInput(f"key {fingerprint} differs from the key with that fingerprint in an earlier "
                                     "file (an MD5 collision)", location=str(path))
            else:
                keys[fingerprint] = PublicKey(fingerprint, key.der, _earliest(known.valid_from, key.valid_from),
                                              _latest(known.valid_to, key.valid_to))
    return lambda start, end: keys_in_window(keys, start, end)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return None if a is None or b is None else min(a, b)  # None: no start stated, valid from always


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return None if a is None or b is None else max(a, b)  # None: still valid


def public_keys_from_cloudtrail(*, region: str | None = None, profile: str | None = None,
                                endpoint_url: str | None = None) -> PublicKeySource:
    """Keys from CloudTrail's ``ListPublicKeys`` (boto3's credential chain; honours AWS_ENDPOINT_URL_CLOUDTRAIL)."""

    def load(start: datetime, end: datetime) -> dict[str, PublicKey]:
        import boto3
        from botocore.exceptions import NoRegionError

        items: list[dict[str, Any]] = []
        token = None
        try:
            session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
            client = session.client("cloudtrail", region_name=region, endpoint_url=endpoint_url)
            while True:
                answer = client.list_public_keys(StartTime=start, EndTime=end, **({"NextToken": token} if token else {}))
                items.extend(answer.get("PublicKeyList", []))
                token = answer.get("NextToken")
                if not token:
                    break
        except NoRegionError:
            raise UsageError("CloudTrail ListPublicKeys needs an AWS region: give --region (or set AWS_REGION), or "
                             "--public-keys FILE (saved `aws cloudtrail list-public-keys` output) to check "
                             "offline") from None
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise SourceUnavailable(f"CloudTrail ListPublicKeys failed: {code} (or give --public-keys FILE, saved "
                                    "`aws cloudtrail list-public-keys` output, to check offline)") from None
        return public_keys_from_list(items, location="ListPublicKeys")

    return load


class DigestStore:
    """One listing of a provider's objects, and concurrent fetches of digests and log files."""

    def __init__(self, provider: ObjectProvider, *, workers: int = FETCH_WORKERS) -> None:
        self.provider = provider
        self.workers = workers
        self.objects: dict[str, ObjectInfo] = {info.key: info for info in provider.list()}
        self.bucket = provider.bucket if isinstance(provider, S3Provider) else None

    def digest_chains(self) -> dict[ChainId, list[str]]:
        chains: dict[ChainId, list[str]] = {}
        for key in self.objects:
            cid = chain_id(key)
            if cid is not None:
                chains.setdefault(cid, []).append(key)
        return chains

    def log_keys(self) -> list[str]:
        return [k for k in self.objects if LOG_KEY.match(k)]

    def _fetch_digest(self, key: str) -> FetchedDigest:
        # A broken sidecar makes this one digest unverifiable (an INVALID verdict), not the whole run.
        sidecar = key + SIDECAR
        problem = None
        if self.bucket is None and sidecar in self.objects:
            blob = self.provider.get(key)
            try:
                meta = orjson.loads(self.provider.get(sidecar))
            except orjson.JSONDecodeError:
                meta, problem = {}, "signature sidecar is not JSON"
            meta = meta if isinstance(meta, dict) else {}
        else:
            try:
                blob, meta = self.provider.get_with_metadata(key)
            except MalformedInput as exc:  # a local copy's .meta.json that is not a JSON object
                blob, meta = self.provider.get(key), {}
                problem = str(exc).removeprefix(f"{exc.location}: ").splitlines()[0][:200]
        signature, algorithm = meta.get("signature"), meta.get("signature-algorithm")
        return FetchedDigest(key, self.provider.uri(key), blob, self.bucket,
                             str(signature) if signature is not None else None,
                             str(algorithm) if algorithm is not None else None, metadata_error=problem)

    def fetch_digests(self, keys: list[str]) -> list[FetchedDigest]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self._fetch_digest, keys))

    def local_prefix(self, digest: FetchedDigest) -> str:
        """What to strip from S3 keys in digests to get this store's keys (a local copy of bucket/prefix)."""
        if self.bucket is not None:
            return ""
        try:
            doc = orjson.loads(inflate_one_member(digest.blob))
            s3_key = str(doc.get("digestS3Object", ""))
        except (FedledgerError, orjson.JSONDecodeError, AttributeError):
            return ""
        return s3_key[: -len(digest.key)] if s3_key.endswith(digest.key) else ""

    def store_key(self, ref: LogRef, prefix: str) -> str | None:
        """The key of a listed log file in this store; None when it lives in another bucket: over S3,
        another than the one read; in a local copy (no bucket name), another than the one its digest
        names for itself, as CloudTrail delivers a trail's digests and log files to one bucket."""
        if self.bucket is not None:
            return ref.key if ref.bucket == self.bucket else None
        if ref.digest_bucket is not None and ref.bucket != ref.digest_bucket:
            return None
        return ref.key[len(prefix):] if prefix and ref.key.startswith(prefix) else ref.key

    def check_logs(self, refs: list[tuple[LogRef, str | None]]) -> Iterator[Verdict]:
        """Fetch listed log files concurrently (get_many) and verify each; missing ones are 'not found'."""
        present = [(ref, key) for ref, key in refs if key is not None and key in self.objects]
        for ref, key in refs:
            if key is None:
                reason = ("in another bucket than the one validated (not checked)" if self.bucket is not None else
                          f"in another bucket than its digest's ({ref.digest_bucket}): not checked in this copy")
                yield Verdict("log", f"s3://{ref.bucket}/{ref.key}", "invalid", reason, key=ref.key)
            elif key not in self.objects:
                yield verify_log_file(ref, None, self.provider.uri(key))
        by_key = {key: ref for ref, key in present}
        for key, blob in self.provider.get_many([k for _, k in present], workers=self.workers):  # type: ignore[misc]
            yield verify_log_file(by_key[key], blob, self.provider.uri(key))


def validate_store(provider: ObjectProvider, keys: PublicKeySource, *, start: datetime | None = None,
                   end: datetime | None = None, no_digests: str = "invalid",
                   workers: int = FETCH_WORKERS, tail_tolerance: timedelta = HOUR + timedelta(minutes=30)) -> ValidationReport:
    """Validate every digest chain under *provider* for [start, end]: digests, links, log files, gaps.

    Without *start*/*end*, the range is what the digest names span (no tail check then).
    A store with no digest files at all gets one verdict of status *no_digests*
    ("invalid" for `cloudtrail validate`; "gap" when collecting logs of a trail without validation).
    """
    store = DigestStore(provider, workers=workers)
    chains = store.digest_chains()
    report = ValidationReport()
    if not chains:
        report.verdicts.append(Verdict("chain", provider.uri(""), no_digests,
                                       "no CloudTrail digest files found: the log files are not verified"))
        return report
    stamps = [t for ks in chains.values() for t in (key_stamp(k) for k in ks) if t is not None]
    start = start if start is not None else min(stamps) - HOUR
    end = end if end is not None else max(stamps)
    if start > end:
        raise MalformedInput("--start must be before --end")
    public_keys = keys(start, end + KEY_WINDOW_AFTER)
    selected = {cid: select_in_range(ks, start, end) for cid, ks in chains.items()}
    fetched = store.fetch_digests([k for ks in selected.values() for k in ks])
    by_key = {d.key: d for d in fetched}
    store_keys = set(store.objects)
    refs: list[tuple[LogRef, str | None]] = []
    windows: dict[tuple[str, str, str], list[tuple[datetime, datetime]]] = {}
    prefixes: dict[ChainId, str] = {}
    for cid in sorted(selected, key=lambda c: (c.account, c.region, c.trail, c.backfill)):
        digests = [by_key[k] for k in selected[cid]]
        prefix = store.local_prefix(digests[0]) if digests else ""
        prefixes[cid] = prefix
        part = verify_chain(cid, digests, public_keys, start=start, end=end, store_keys=store_keys,
                            locate=provider.uri,
                            local_prefix=prefix, tail_tolerance=tail_tolerance)
        report.verdicts.extend(part.verdicts)
        refs.extend((ref, store.store_key(ref, prefix)) for ref in part.logs_to_check)
        spans = [(parse_utc(v.start), parse_utc(v.end)) for v in part.verdicts
                 if v.subject == "digest" and v.status == "valid" and v.start and v.end]
        if spans:  # the hours of deleted digests (found from a link or the cadence) belong to the stretch too
            spans += [(parse_utc(v.end) - HOUR, parse_utc(v.end)) for v in part.verdicts
                      if v.subject == "digest" and v.status == "invalid" and v.end
                      and (v.reason or "").startswith("not found")]
        if spans and not cid.backfill:  # the whole stretch the chain covers, holes included
            windows.setdefault((cid.prefix, cid.account, cid.region), []).append(
                (min(s for s, _ in spans), max(e for _, e in spans)))
    seen: set[str] = set()
    unique = []
    for ref, key in refs:
        marker = key or f"{ref.bucket}/{ref.key}"
        if marker not in seen:
            seen.add(marker)
            unique.append((ref, key))
    report.verdicts.extend(store.check_logs(unique))
    listed = {key for _, key in unique if key is not None}
    for (prefix, account, region), spans in windows.items():
        logs = [k for k in store.log_keys() if k.startswith(f"{prefix}AWSLogs/") and f"/{account}/CloudTrail/{region}/" in k]
        for key in unlisted_log_files(logs, listed, spans):
            report.verdicts.append(Verdict("log", provider.uri(key), "invalid",
                                           "listed in no digest (not covered by the signed chain)", key=key))
    report.verdicts.extend(_logs_without_chain(store, chains, start, end, no_digests))
    return report


def _logs_without_chain(store: DigestStore, chains: dict[ChainId, list[str]], start: datetime, end: datetime,
                        status: str) -> Iterator[Verdict]:
    """One verdict per account and region whose log files in [start, end] have no digest chain at all
    (nothing verifies them), with the same status as a store with no digest files."""
    covered = {(cid.prefix, cid.account, cid.region) for cid in chains}
    orphans: dict[tuple[str, str, str], list[datetime]] = {}
    for key in store.log_keys():
        m = LOG_KEY.match(key)
        if m is None or (m.group("prefix"), m.group("account"), m.group("region")) in covered:
            continue
        stamp = datetime.strptime(m.group("stamp"), "%Y%m%dT%H%MZ").replace(tzinfo=timezone.utc)
        if start <= stamp <= end:
            org = f"{m.group('org')}/" if m.group("org") else ""
            where = f"{m.group('prefix')}AWSLogs/{org}{m.group('account')}/CloudTrail/{m.group('region')}/"
            orphans.setdefault((m.group("prefix"), m.group("account"), where), []).append(stamp)
    for (_, _, where), stamps in sorted(orphans.items()):
        yield Verdict("chain", store.provider.uri(where), status,
                      f"{len(stamps)} log file(s) between {show_time(min(stamps))} and {show_time(max(stamps))} "
                      "and no digest chain for this account and region: the log files are not verified",
                      key=where, start=show_time(min(stamps)), end=show_time(max(stamps)))


def download(provider: ObjectProvider, dest: Path, *, workers: int = FETCH_WORKERS) -> int:
    """Copy every object under *provider* to *dest* at its whole key (``DEST/AWSLogs/...``, the layout
    the validator reads, whatever prefix was given), with a ``.sig.json`` sidecar beside each digest."""
    count = 0
    infos = list(provider.list())
    bucket = provider.bucket if isinstance(provider, S3Provider) else None

    def one(info: ObjectInfo) -> None:
        blob, meta = provider.get_with_metadata(info.key) if chain_id(info.key) else (provider.get(info.key), {})
        target = (dest / info.key).resolve()
        if dest.resolve() not in target.parents:
            raise MalformedInput("object key escapes the destination folder", location=info.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
        if chain_id(info.key):
            side = {"signature": meta.get("signature"), "signature-algorithm": meta.get("signature-algorithm"),
                    "bucket": bucket, "key": info.key}
            target.with_name(target.name + SIDECAR).write_bytes(orjson.dumps(side, option=orjson.OPT_INDENT_2))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(one, infos):
            count += 1
    return count


def is_local(provider: ObjectProvider) -> bool:
    return isinstance(provider, LocalFolderProvider)
