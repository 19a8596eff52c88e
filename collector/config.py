"""``fedledger.toml``: one file describing the ledger, signer, sources and policy inputs.

The file is read with :mod:`tomllib` and validated into frozen dataclasses. Every
problem is collected (not only the first) and reported with the key's dotted path
and its line in the file, e.g. ``fedledger.toml:27: unknown key sources[1].cadnce
(did you mean 'cadence'?)``. Unknown keys and wrong types are errors.

Secrets are never written in the file: a key that names a secret (``secret``,
``token``, ``password``, ...) must end in ``_file`` (a path to read) or ``_env``
(the name of an environment variable). A secret-like key holding a value is
rejected, and the value is never repeated in the error.

Relative paths are relative to the folder holding the config file, so a config
works the same from cron, systemd or a shell in another folder.

What is validated here: structure, types, known keys per source kind, cadence
names and durations, S3 URL shape. What is not: whether files exist or services
answer (``fedledger config check`` reports that separately, and ``fedledger run``
fails the affected source).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from collector.checkpoint import ORIGIN_RULE, is_valid_origin
from collector.config_locate import KeyPath, dotted, line_of, locate_keys
from collector.errors import MalformedInput, UsageError

CONFIG_ENV = "FEDLEDGER_CONFIG"
DEFAULT_CONFIG_NAME = "fedledger.toml"

SOURCE_KINDS = ("vault", "ci", "cloudtrail", "attestations", "manual")

# -- cadences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cadence:
    """How old the newest evidence of a source may be before it is stale."""

    name: str
    period: timedelta
    rule: str | None = None  # the FedRAMP rule the preset comes from

    @property
    def seconds(self) -> int:
        return int(self.period.total_seconds())

    def describe(self) -> str:
        text = f"{self.name} ({_format_period(self.period)})"
        return text + (f", {self.rule}" if self.rule and self.name != _format_period(self.period) else "")


# FedRAMP 20x cadences, from the consolidated rules (fedramp-consolidated-rules.json).
# VDR-TFR-MVX "Persistent Machine Verification and Validation for 20x": Class A at least
# once every month, Class B every 7 days, Class C every 3 days. VDR-TFR-PSD "Persistent
# Sample Detection": A 14 days, B 7, C 3, D 1. VDR-TFR-PDD "Persistent Drift Detection":
# A 3 months, B 1 month, C 14 days, D 7 days. A month counts as 30 days (fail closed).
CADENCE_PRESETS: Mapping[str, tuple[timedelta, str]] = MappingProxyType(
    {
        "ksi-3d": (timedelta(days=3), "FedRAMP 20x Class C machine validation (VDR-TFR-MVX)"),
        "ksi-7d": (timedelta(days=7), "FedRAMP 20x Class B machine validation (VDR-TFR-MVX)"),
        "ksi-monthly": (timedelta(days=30), "FedRAMP 20x Class A machine validation (VDR-TFR-MVX)"),
        "vdr-tfr-mvx-class-a": (timedelta(days=30), "VDR-TFR-MVX Class A: at least once every month"),
        "vdr-tfr-mvx-class-b": (timedelta(days=7), "VDR-TFR-MVX Class B: at least once every 7 days"),
        "vdr-tfr-mvx-class-c": (timedelta(days=3), "VDR-TFR-MVX Class C: at least once every 3 days"),
        "vdr-tfr-psd-class-a": (timedelta(days=14), "VDR-TFR-PSD Class A: at least once every 14 days"),
        "vdr-tfr-psd-class-b": (timedelta(days=7), "VDR-TFR-PSD Class B: at least once every 7 days"),
        "vdr-tfr-psd-class-c": (timedelta(days=3), "VDR-TFR-PSD Class C: at least once every 3 days"),
        "vdr-tfr-psd-class-d": (timedelta(days=1), "VDR-TFR-PSD Class D: at least once per day"),
        "vdr-tfr-pdd-class-a": (timedelta(days=90), "VDR-TFR-PDD Class A: at least once every 3 months"),
        "vdr-tfr-pdd-class-b": (timedelta(days=30), "VDR-TFR-PDD Class B: at least once every month"),
        "vdr-tfr-pdd-class-c": (timedelta(days=14), "VDR-TFR-PDD Class C: at least once every 14 days"),
        "vdr-tfr-pdd-class-d": (timedelta(days=7), "VDR-TFR-PDD Class D: at least once every 7 days"),
        "daily": (timedelta(days=1), "once a day"),
        "weekly": (timedelta(days=7), "once a week"),
    }
)

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def _format_period(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    for suffix, unit in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % unit == 0:
            return f"{seconds // unit}{suffix}"
    return f"{seconds}s"


def parse_cadence(text: str) -> Cadence:
    """A preset name (``ksi-3d``, ``vdr-tfr-mvx-class-b``, ...) or a duration (``24h``, ``7d``, ``2w``, ``90m``)."""
    preset = CADENCE_PRESETS.get(text)
    if preset is not None:
        return Cadence(text, preset[0], preset[1])
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        names = ", ".join(sorted(CADENCE_PRESETS))
        raise ValueError(f"cadence {text!r} is neither a duration like '24h', '3d', '2w' nor a preset ({names})")
    return Cadence(text, int(match.group(1)) * _UNITS[match.group(2)])


# -- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: a file to read or an environment variable to look up.

    Only :meth:`read` touches the secret; :meth:`describe` names where it lives and
    is safe to log.
    """

    file: Path | None = None
    env: str | None = None

    def describe(self) -> str:
        return f"file {self.file}" if self.file is not None else f"environment variable {self.env}"

    def available(self) -> bool:
        if self.file is not None:
            return self.file.is_file() and os.access(self.file, os.R_OK)
        return bool(self.env and os.environ.get(self.env))

    def read(self) -> bytes:
        """The secret's bytes (a file's trailing newline removed). Never log the result."""
        from collector.errors import SourceUnavailable

        if self.file is not None:
            try:
                return self.file.read_bytes().rstrip(b"\r\n")
            except OSError as exc:
                raise SourceUnavailable(f"cannot read secret file: {exc.strerror}", location=str(self.file)) from None
        value = os.environ.get(self.env or "")
        if not value:
            raise SourceUnavailable(f"environment variable {self.env} is not set")
        return value.encode()


@dataclass(frozen=True)
class LedgerConfig:
    path: Path | str  # a SQLite file, or a postgresql:// URL kept as a string
    origin: str


@dataclass(frozen=True)
class SignerConfig:
    """A key file (default: beside the ledger) or an AWS KMS key (ECC_NIST_P256)."""

    key_file: Path | None = None
    kms_key_id: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    # Public keys this ledger was signed with before a key rotation: the new key signs only a tree
    # that extends the newest checkpoint any of them (or it) signed, in the ledger and anchored.
    previous_keys: tuple[Path, ...] = ()
    # The old key's private key (a file, or a KMS key in the same region): the new key's first
    # checkpoint is then a key handover, signed by both (docs/security-model.md, "Rotating the signing key").
    handover_key_file: Path | None = None
    handover_kms_key_id: str | None = None

    def describe(self) -> str:
        if self.kms_key_id:
            return f"AWS KMS key {self.kms_key_id}" + (f" in {self.region}" if self.region else "")
        return f"key file {self.key_file}" if self.key_file else "key file beside the ledger"


@dataclass(frozen=True)
class SourceConfig:
    """One configured source. ``options`` holds the kind-specific keys (validated per kind)."""

    name: str
    kind: str
    locations: tuple[str, ...]
    cadence: Cadence | None = None
    enabled: bool = True
    public_keys: tuple[Path, ...] = ()
    jwks: Path | None = None
    trusted_keys_dir: Path | None = None
    webhook_secret: SecretRef | None = None
    certificate_identity: str | None = None
    certificate_issuer: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    line: int | None = None


@dataclass(frozen=True)
class Thresholds:
    secret_reads_per_job: int = 20
    token_renewals_per_job: int = 3
    allowed_ai_endpoints: tuple[str, ...] = ()


BUNDLE_BASELINES = ("low", "moderate", "high", "ksi")
BUNDLE_ARCHIVES = ("tar.gz", "zip")


@dataclass(frozen=True)
class BundleConfig:
    """Defaults for ``fedledger bundle`` (its own options win)."""

    out_dir: Path | None = None
    baseline: str | None = None  # one of BUNDLE_BASELINES
    catalog: Path | None = None  # an OSCAL catalog or resolved profile
    controls: tuple[str, ...] = ()
    policies_dir: Path | None = None
    archive: str | None = None  # one of BUNDLE_ARCHIVES, or no archive
    after_run: bool = False
    organization: str | None = None  # whose system is assessed: OSCAL party, prepared-for (bundler.party_names)
    assessor: str | None = None  # the assessment organization (a 3PAO): OSCAL party, assessor


@dataclass(frozen=True)
class PublishConfig:
    """Where each new checkpoint is anchored (S3 with Object Lock COMPLIANCE)."""

    checkpoint: str | None = None
    retention_days: int | None = None
    region: str | None = None
    endpoint_url: str | None = None


@dataclass(frozen=True)
class FedledgerConfig:
    path: Path
    ledger: LedgerConfig
    signer: SignerConfig
    sources: tuple[SourceConfig, ...]
    allowed_regions: tuple[str, ...] = ()
    thresholds: Thresholds = Thresholds()
    retention_minimum_days: int = 365
    bundle: BundleConfig = BundleConfig()
    publish: PublishConfig = PublishConfig()

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise UsageError(f"no source named {name!r} in {self.path}")

    def cadence_by_kind(self) -> dict[str, Cadence]:
        """The strictest cadence configured for each source kind (for freshness checks that
        see entries by ``source.kind``, such as the bundler's); kinds without one are absent."""
        found: dict[str, Cadence] = {}
        for source in self.sources:
            if source.enabled and source.cadence is not None:
                current = found.get(source.kind)
                if current is None or source.cadence.period < current.period:
                    found[source.kind] = source.cadence
        return found

    @property
    def publish_retention_days(self) -> int:
        return self.publish.retention_days or self.retention_minimum_days


# -- validation ------------------------------------------------------------------------


class ConfigInvalid(MalformedInput):
    """The config has problems; ``problems`` lists every one as ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)


# A key whose last word names a secret (``webhook_secret``, ``vault_token``, ``hmac_key``,
# ``password``). ``secret_reads_per_job`` is a count, not a secret: the word must end the key.
_SECRET_WORDS = re.compile(r"(^|_)(secret|token|password|passwd|passphrase|credentials?|key|pat)$")


TOP_LEVEL_KEYS = ("ledger", "signer", "sources", "allowed_regions", "thresholds", "retention", "bundle", "publish")


class _Reader:
    """Typed access to one TOML table that remembers which keys were used."""

    def __init__(self, doc: Mapping[str, Any], path: KeyPath, ctx: _Context) -> None:
        self.doc = doc
        self.path = path
        self.ctx = ctx
        self.used: set[str] = set()

    def _get(self, key: str, kinds: tuple[type, ...], what: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.doc:
            if required:
                self.ctx.problem(self.path, f"missing required key {dotted(self.path + (key,))} ({what})")
            return None
        value = self.doc[key]
        # bool is an int in Python; TOML keeps them apart, so do we.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            self.ctx.problem(self.path + (key,), f"{dotted(self.path + (key,))} must be {what}, not {_toml_type(value)}")
            return None
        return value

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, (str,), "a string", required)
        if value is not None and not value.strip():
            self.ctx.problem(self.path + (key,), f"{dotted(self.path + (key,))} must not be empty")
            return None
        return value

    def integer(self, key: str, *, required: bool = False, minimum: int = 0, maximum: int | None = None) -> int | None:
        value = self._get(key, (int,), "an integer", required)
        if value is not None and maximum is not None and not minimum <= value <= maximum:
            self.ctx.problem(self.path + (key,), f"{dotted(self.path + (key,))} must be between {minimum} and "
                                                 f"{maximum}, not {value}")
            return None
        if value is not None and value < minimum:
            self.ctx.problem(self.path + (key,), f"{dotted(self.path + (key,))} must be at least {minimum}")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        return self._get(key, (bool,), "true or false", False)

    def str_list(self, key: str, *, single: str | None = None) -> tuple[str, ...]:
        """A list of strings; with *single*, a one-string key of that name is also accepted."""
        values: list[str] = []
        if single is not None and single in self.doc:
            one = self.text(single)
            if one is not None:
                values.append(one)
            if key in self.doc:
                self.ctx.problem(self.path + (key,), f"give {dotted(self.path + (single,))} or {dotted(self.path + (key,))}, not both")
        raw = self._get(key, (list,), "a list of strings", False)
        for i, item in enumerate(raw or []):
            if not isinstance(item, str) or not item.strip():
                self.ctx.problem(self.path + (key,), f"{dotted(self.path + (key, i))} must be a non-empty string")
            else:
                values.append(item)
        return tuple(values)

    def path_value(self, key: str, *, required: bool = False) -> Path | None:
        text = self.text(key, required=required)
        return None if text is None else self.ctx.resolve(text)

    def path_list(self, key: str) -> tuple[Path, ...]:
        return tuple(self.ctx.resolve(p) for p in self.str_list(key))

    def table(self, key: str) -> _Reader | None:
        value = self._get(key, (dict,), "a table", False)
        return None if value is None else _Reader(value, self.path + (key,), self.ctx)

    def secret_ref(self, stem: str) -> SecretRef | None:
        file = self.path_value(stem + "_file")
        env = self.text(stem + "_env")
        if file is not None and env is not None:
            self.ctx.problem(self.path + (stem + "_env",), f"give {stem}_file or {stem}_env, not both")
        # Capitals only: a hex webhook secret or a GitHub token pasted here has the shape of a
        # lower- or mixed-case name, and would be printed back as "environment variable ... is not set".
        if env is not None and not re.match(r"^[A-Z_][A-Z0-9_]*$", env):
            self.ctx.problem(self.path + (stem + "_env",), f"{dotted(self.path + (stem + '_env',))} must be an environment "
                             "variable NAME in capitals, digits and _ (e.g. FEDLEDGER_CI_WEBHOOK_SECRET), not the secret")
            return None
        if file is None and env is None:
            return None
        return SecretRef(file=file, env=env)

    def finish(self, *, allowed_extra: tuple[str, ...] = (), hint: str = "") -> None:
        """Report every key not read (typos, keys of another source kind)."""
        known = sorted(self.used | set(allowed_extra))
        for key in self.doc:
            if key in self.used or key in allowed_extra:
                continue
            if _is_inline_secret(key):
                continue  # reported by the secret scan, with the better message
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            if self.path and key in TOP_LEVEL_KEYS:
                suggestion = " (a top-level key: move it above the first [table])"
            self.ctx.problem(self.path + (key,), f"unknown key {dotted(self.path + (key,))}{hint}{suggestion}")


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _is_inline_secret(key: str) -> bool:
    return bool(_SECRET_WORDS.search(key.lower()))


class _Context:
    def __init__(self, config_path: Path, text: str) -> None:
        self.config_path = config_path
        self.base = config_path.parent
        self.lines = locate_keys(text)
        self.problems: list[tuple[int, str]] = []

    def problem(self, path: KeyPath, message: str) -> None:
        line = line_of(self.lines, path)
        self.problems.append((line or 0, message))

    def resolve(self, text: str) -> Path:
        path = Path(os.path.expanduser(text))
        return Path(os.path.normpath(path if path.is_absolute() else self.base / path))

    def rendered(self) -> list[str]:
        return [f"{self.config_path}:{line}: {msg}" if line else f"{self.config_path}: {msg}"
                for line, msg in sorted(self.problems, key=lambda p: p[0])]


def _scan_inline_secrets(doc: Any, path: KeyPath, ctx: _Context) -> None:
    if isinstance(doc, dict):
        for key, value in doc.items():
            # Whatever the TOML type: an array or inline table under a secret's name holds
            # the secret just the same (and no reader would use the key, so it would be ignored).
            if _is_inline_secret(key):
                ctx.problem(path + (key,), f"{dotted(path + (key,))} looks like a secret written in the config; "
                            f"secrets are referenced, never inline: use {key}_file (a path) or {key}_env "
                            "(an environment variable name)")
            else:
                _scan_inline_secrets(value, path + (key,), ctx)
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            _scan_inline_secrets(item, path + (i,), ctx)


# Keys each source kind accepts beyond the common ones (name, kind, location(s), cadence, enabled).
# Value: the expected type of each kind-specific option. The lead extends this table when a
# collector needs a new option; an option not listed here is an "unknown key" error.
COMMON_SOURCE_KEYS = ("name", "kind", "location", "locations", "cadence", "enabled")
# Integer options with an upper bound: (kind, key) -> maximum. A CI source's `leeway` decides whether
# a token used before its iat (or after its exp) verifies: collector.oidc.MAX_LEEWAY_SECONDS, as
# `collect ci --leeway` (tests/test_ci_oidc.py pins the two equal).
INT_MAXIMA: Mapping[tuple[str, str], int] = MappingProxyType({("ci", "leeway"): 600})
KIND_KEYS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        # Named after the options of `fedledger collect <kind>` so a factory maps them 1:1.
        "vault": {"pair_window": "int", "max_open": "int", "final": "bool", "non_hmac_keys": "strs",
                  "batch_size": "int"},
        "ci": {
            "jwks": "path",
            "issuers": "strs",
            "audiences": "strs",
            "webhook_secret": "secret",
            "leeway": "int",
            "require_signed": "bool",
        },
        "cloudtrail": {
            "public_keys": "paths",
            "region": "str",
            "endpoint_url": "str",
            "profile": "str",
            "workers": "int",
            "skip_digests": "bool",
        },
        "attestations": {
            "trusted_keys_dir": "path",
            "trusted_root": "path",
            "certificate_identity": "str",
            "certificate_issuer": "str",
            "min_retention_days": "int",
            "current_only": "bool",
            "region": "str",
            "endpoint_url": "str",
            "profile": "str",
        },
        "manual": {},
    }
)
_PROMOTED = ("public_keys", "jwks", "trusted_keys_dir", "webhook_secret", "certificate_identity", "certificate_issuer")


def _read_source(reader: _Reader, ctx: _Context, index: int, names: set[str]) -> SourceConfig | None:
    path = reader.path
    name = reader.text("name", required=True)
    kind = reader.text("kind", required=True)
    if kind is not None and kind not in SOURCE_KINDS:
        close = difflib.get_close_matches(kind, SOURCE_KINDS, n=1)
        ctx.problem(path + ("kind",), f"{dotted(path + ('kind',))} = {kind!r} is not a source kind "
                    f"({', '.join(SOURCE_KINDS)})" + (f"; did you mean {close[0]!r}?" if close else ""))
        kind = None
    if name is not None:
        if name in names:
            ctx.problem(path + ("name",), f"source name {name!r} is used twice")
        names.add(name)
    locations = reader.str_list("locations", single="location")
    for loc in locations:
        if loc.startswith("s3:/") and not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", loc):
            ctx.problem(path + ("locations",), f"{loc!r} is not an s3://bucket/prefix URL")
    if not locations and kind is not None:
        ctx.problem(path, f"{dotted(path)} ({name or kind}) needs location or locations")
    cadence: Cadence | None = None
    cadence_text = reader.text("cadence")
    if cadence_text is not None:
        try:
            cadence = parse_cadence(cadence_text)
        except ValueError as exc:
            ctx.problem(path + ("cadence",), f"{dotted(path + ('cadence',))}: {exc}")
    enabled = reader.boolean("enabled")
    options: dict[str, Any] = {}
    promoted: dict[str, Any] = {}
    if kind is not None:
        for key, typ in KIND_KEYS[kind].items():
            if typ == "secret":
                value: Any = reader.secret_ref(key)
            elif typ == "path":
                value = reader.path_value(key)
            elif typ == "paths":
                value = reader.path_list(key)
            elif typ == "strs":
                value = reader.str_list(key)
            elif typ == "bool":
                value = reader.boolean(key)
            elif typ == "int":
                value = reader.integer(key, maximum=INT_MAXIMA.get((kind, key)))
            elif typ == "cadence":
                text = reader.text(key)
                value = None
                if text is not None:
                    try:
                        value = parse_cadence(text)
                    except ValueError as exc:
                        ctx.problem(path + (key,), f"{dotted(path + (key,))}: {exc}")
            else:
                value = reader.text(key)
            if value is None or value == ():
                continue
            (promoted if key in _PROMOTED else options)[key] = value
        if kind == "ci" and options.get("require_signed") and promoted.get("webhook_secret") is None:
            ctx.problem(path + ("require_signed",), f"{dotted(path + ('require_signed',))} needs a webhook secret "
                        "(webhook_secret_file or webhook_secret_env): without one no payload can be signed")
        other_kinds = {k for k, keys in KIND_KEYS.items() for key in keys if key in reader.doc and key not in KIND_KEYS[kind]}
        hint = f" for kind {kind!r}" if not other_kinds else f" for kind {kind!r} (it belongs to {', '.join(sorted(other_kinds))})"
        reader.finish(allowed_extra=COMMON_SOURCE_KEYS, hint=hint)
    if name is None or kind is None:
        return None
    return SourceConfig(
        name=name,
        kind=kind,
        locations=tuple(loc if loc.startswith("s3://") else str(ctx.resolve(loc)) for loc in locations),
        cadence=cadence,
        enabled=True if enabled is None else enabled,
        options=MappingProxyType(options),
        line=line_of(ctx.lines, path),
        **promoted,
    )


def _party_name(table: _Reader, key: str) -> str | None:
    """``[bundle] organization`` / ``assessor``: plain text on one line, edge spaces trimmed."""
    from bundler.party_names import party_name_problem

    value = table.text(key)  # a string, not blank
    if value is None:
        return None
    problem = party_name_problem(value)
    if problem is not None:
        table.ctx.problem(table.path + (key,), f"{dotted(table.path + (key,))} {problem}")
        return None
    return value.strip()


def parse_config(text: str, config_path: Path) -> FedledgerConfig:
    """Validate *text* (the contents of *config_path*); raise :class:`ConfigInvalid` listing every problem."""
    config_path = Path(config_path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib ends its message with "(at line L, column C)": say it as file:line like every other problem
        where = re.match(r"^(?P<msg>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$", str(exc))
        if where is None:
            raise ConfigInvalid([f"{config_path}: not valid TOML: {exc}"]) from None
        raise ConfigInvalid([f"{config_path}:{where['line']}: not valid TOML: {where['msg']} "
                             f"(column {where['col']})"]) from None
    ctx = _Context(config_path, text)
    _scan_inline_secrets(doc, (), ctx)
    top = _Reader(doc, (), ctx)

    ledger_path: Path | str | None = None
    origin: str | None = None
    ledger_t = top.table("ledger")
    if ledger_t is None:
        if "ledger" not in doc:
            ctx.problem((), "missing required table [ledger] (path, origin)")
    else:
        ledger_text = ledger_t.text("path", required=True)
        if ledger_text is not None:
            from collector.ledger_pg import PostgresLocation, is_postgres_url, refuse_connection_string

            if is_postgres_url(ledger_text):
                try:
                    PostgresLocation(ledger_text)  # its rules (no password, store=, schema name), checked here
                    ledger_path = ledger_text
                except UsageError as exc:
                    # The reason only: the URL itself may hold the very password being refused.
                    reason = str(exc)
                    if exc.location and reason.startswith(exc.location + ": "):
                        reason = reason[len(exc.location) + 2:]
                    ctx.problem(("ledger", "path"), f"ledger.path: {reason}")
            else:
                try:
                    refuse_connection_string(ledger_text)  # a password in it is not repeated as a file path
                    ledger_path = ledger_t.ctx.resolve(ledger_text)
                except UsageError as exc:
                    ctx.problem(("ledger", "path"), f"ledger.path: {exc}")
        origin = ledger_t.text("origin", required=True)
        if origin is not None and not is_valid_origin(origin):
            ctx.problem(("ledger", "origin"), f"ledger.origin must be {ORIGIN_RULE}")
        ledger_t.finish()

    signer = SignerConfig()
    signer_t = top.table("signer")
    if signer_t is not None:
        key_file = signer_t.path_value("key_file")
        kms = signer_t.text("kms_key_id")
        if key_file is not None and kms is not None:
            ctx.problem(("signer", "kms_key_id"), "give signer.key_file or signer.kms_key_id, not both")
        previous_keys = signer_t.path_list("previous_keys")
        handover_key = signer_t.path_value("handover_key_file")
        handover_kms = signer_t.text("handover_kms_key_id")
        if handover_key is not None and handover_kms is not None:
            ctx.problem(("signer", "handover_kms_key_id"), "give signer.handover_key_file or signer.handover_kms_key_id, not both")
        if (handover_key is not None or handover_kms is not None) and not previous_keys:
            ctx.problem(("signer", "handover_key_file" if handover_key is not None else "handover_kms_key_id"),
                        "a handover key needs the old key's public key in signer.previous_keys")
        signer = SignerConfig(key_file, kms, signer_t.text("region"), signer_t.text("endpoint_url"), previous_keys,
                              handover_key, handover_kms)
        signer_t.finish()

    sources: list[SourceConfig] = []
    raw_sources = top._get("sources", (list,), "an array of tables ([[sources]])", False) or []
    names: set[str] = set()
    for i, item in enumerate(raw_sources):
        if not isinstance(item, dict):
            ctx.problem(("sources", i), f"sources[{i}] must be a table ([[sources]])")
            continue
        source = _read_source(_Reader(item, ("sources", i), ctx), ctx, i, names)
        if source is not None:
            sources.append(source)

    allowed_regions = top.str_list("allowed_regions")

    thresholds = Thresholds()
    th = top.table("thresholds")
    if th is not None:
        thresholds = Thresholds(
            secret_reads_per_job=th.integer("secret_reads_per_job", minimum=1) or Thresholds.secret_reads_per_job,
            token_renewals_per_job=th.integer("token_renewals_per_job", minimum=1) or Thresholds.token_renewals_per_job,
            allowed_ai_endpoints=th.str_list("allowed_ai_endpoints"),
        )
        th.finish()

    retention_days = 365
    rt = top.table("retention")
    if rt is not None:
        retention_days = rt.integer("minimum_days", minimum=1) or retention_days
        rt.finish()

    bundle = BundleConfig()
    bt = top.table("bundle")
    if bt is not None:
        baseline = bt.text("baseline")
        if baseline is not None and baseline not in BUNDLE_BASELINES:
            ctx.problem(("bundle", "baseline"), f"bundle.baseline must be one of {', '.join(BUNDLE_BASELINES)} "
                        "(give an OSCAL file as bundle.catalog)")
        archive = bt.text("archive")
        if archive is not None and archive not in BUNDLE_ARCHIVES:
            ctx.problem(("bundle", "archive"), f"bundle.archive must be one of {', '.join(BUNDLE_ARCHIVES)}")
        bundle = BundleConfig(
            out_dir=bt.path_value("out_dir"),
            baseline=baseline,
            catalog=bt.path_value("catalog"),
            controls=bt.str_list("controls"),
            policies_dir=bt.path_value("policies_dir"),
            archive=archive,
            after_run=bool(bt.boolean("after_run")),
            organization=_party_name(bt, "organization"),
            assessor=_party_name(bt, "assessor"),
        )
        bt.finish()

    publish = PublishConfig()
    pt = top.table("publish")
    if pt is not None:
        target = pt.text("checkpoint")
        if target is not None and not target.startswith("s3://"):
            ctx.problem(("publish", "checkpoint"), "publish.checkpoint must be an s3://bucket/prefix URL")
        publish = PublishConfig(target, pt.integer("retention_days", minimum=1), pt.text("region"), pt.text("endpoint_url"))
        pt.finish()

    top.finish()
    if ctx.problems:
        raise ConfigInvalid(ctx.rendered())
    assert ledger_path is not None and origin is not None
    return FedledgerConfig(
        path=config_path,
        ledger=LedgerConfig(ledger_path, origin),
        signer=signer,
        sources=tuple(sources),
        allowed_regions=allowed_regions,
        thresholds=thresholds,
        retention_minimum_days=retention_days,
        bundle=bundle,
        publish=publish,
    )


def config_path_from(option: Path | None) -> Path:
    """``--config``, else ``$FEDLEDGER_CONFIG``, else ``./fedledger.toml``."""
    if option is not None:
        return Path(option)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else Path(DEFAULT_CONFIG_NAME)


def load_config(path: Path) -> FedledgerConfig:
    """Read and validate the config file at *path*."""
    from collector.errors import SourceUnavailable

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no config file here (give --config or set {CONFIG_ENV})", location=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceUnavailable(f"cannot read config: {exc}", location=str(path)) from None
    return parse_config(text, Path(path).absolute())
