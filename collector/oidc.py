"""Pure verification of CI OIDC ID tokens (GitHub Actions, GitLab) against a JWKS.

:func:`verify_id_token` takes the token text, a :class:`TrustedJwks`, the allowed
issuers and audiences, and the time the token was *used* (the event's time, not
the collection time) and returns a :class:`TokenVerification`. It never raises for
a bad token: a forged, expired, not-yet-valid, wrong-issuer or wrong-audience token
comes back with ``verified=False`` and a one-line ``error``, so the collector can
record the failed verification as a finding.

What is verified: the JWS signature with a key from the JWKS chosen by ``kid``
(asymmetric algorithms only: ``none`` and HMAC algorithms are refused, so a public
key can never be used as an HMAC secret; a key whose ``use`` is not ``sig``, e.g. an
encryption key, or whose ``key_ops`` lacks ``verify``, never verifies: RFC 7517 §4.2, §4.3), ``iss`` in the allowed issuers, ``aud``
in the allowed audiences, ``exp`` > event time and ``nbf`` / ``iat`` <= event time
(with an explicit leeway, default 0, at most :data:`MAX_LEEWAY_SECONDS`: a token used
before it was issued, by more than the leeway, never verifies). The time claims are RFC 7519 NumericDates: an
integer or a finite fractional number of seconds, compared exactly with the event
time (to its microsecond); booleans, strings, NaN and infinities are refused. What
is not verified: that the JWKS itself is the issuer's current key set (the caller
pins it by giving the file), and any claim beyond the standard ones (``sub``
patterns are policy, evaluated later).

The token itself is never returned, logged or put in an error: only its SHA-256
(:func:`token_sha256`) and the claims that identify the job. This module does no
I/O and never reads the clock.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError, PyJWKError, PyJWKSetError

from collector.canonical import parse_json
from collector.errors import MalformedInput
from collector.timeutil import format_time

#: Asymmetric JWS algorithms a CI issuer uses. HS*/none are never accepted.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

#: The largest clock leeway for exp/nbf/iat (``collect ci --leeway``, a CI source's ``leeway``).
#: Beyond it a token used well before it was issued, or long after it expired, would verify.
MAX_LEEWAY_SECONDS = 600

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
DEFAULT_ISSUERS = (GITHUB_ISSUER, GITLAB_ISSUER)

#: Claims that identify the job and are kept (GitHub Actions, then GitLab CI).
IDENTITY_CLAIMS = (
    "sub", "iss", "aud", "jti",
    "repository", "repository_id", "repository_owner", "ref", "ref_type", "sha", "run_id", "run_number",
    "run_attempt", "job_workflow_ref", "job_workflow_sha", "workflow", "workflow_ref", "runner_environment",
    "environment", "actor", "event_name",
    "project_path", "project_id", "namespace_path", "pipeline_id", "pipeline_source", "job_id",
    "user_login", "runner_id", "deployment_tier",
)


class JwksError(MalformedInput):
    """The JWKS file cannot be used (not JSON, no usable key)."""


@dataclass(frozen=True)
class TrustedJwks:
    """Public keys from a JWKS document, by ``kid``; keys without ``kid`` are kept in order."""

    keys: tuple[jwt.PyJWK, ...]

    @staticmethod
    def from_bytes(data: bytes, *, location: str | None = None) -> TrustedJwks:
        doc = parse_json(data, location=location)
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise JwksError("not a JWKS document (an object with a 'keys' list)", location=location)
        try:
            keyset = jwt.PyJWKSet.from_dict(doc)
        except (PyJWKSetError, PyJWKError) as exc:
            raise JwksError(f"no usable key in the JWKS: {exc}", location=location) from None
        keys = tuple(k for k in keyset.keys if not _is_symmetric(k))
        if not keys:
            raise JwksError("the JWKS holds no asymmetric public key", location=location)
        if all(signature_use_refusal(k) is not None for k in keys):
            raise JwksError('the JWKS holds no key for verifying signatures (each has "use" other than "sig", '
                            'or "key_ops" without "verify")', location=location)
        return TrustedJwks(keys)

    def candidates(self, kid: str | None) -> list[jwt.PyJWK]:
        """The keys a token naming *kid* may be checked with, whatever their use (see
        :func:`signature_use_refusal`)."""
        if kid is not None:
            return [k for k in self.keys if k.key_id == kid]
        return list(self.keys)


def _is_symmetric(key: jwt.PyJWK) -> bool:
    return getattr(key, "key_type", None) == "oct"


def signature_use_refusal(key: jwt.PyJWK) -> str | None:
    """Why *key* may not verify a signature, or None when it may.

    RFC 7517 section 4.2: ``"use": "enc"`` names a key for encryption, and only ``"sig"`` one for
    signatures (an unknown use is refused too: fail closed); section 4.3: when ``key_ops`` is
    present it must include ``"verify"``. A key with neither parameter may verify."""
    data = getattr(key, "_jwk_data", None)
    data = data if isinstance(data, dict) else {}
    use = data.get("use")
    if use is not None and use != "sig":
        if use == "enc":
            return 'is for encryption ("use": "enc"), not for verifying signatures'
        return f'has "use": {str(use)[:20]!r}, not "sig"'
    ops = data.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        listed = ", ".join(str(op)[:20] for op in ops[:8]) if isinstance(ops, list) else "not a list"
        return f'does not allow "verify" (key_ops: {listed})'
    return None


@dataclass(frozen=True)
class TokenVerification:
    """The outcome for one token. ``claims`` is filled only when ``verified``.

    ``unverified_claims`` holds the same selection read from a token that did not
    verify (attacker-controlled when the signature failed; authentic but unusable
    when only the time checks failed, which ``signature_valid`` tells apart).

    ``issued_at``, ``not_before`` and ``expires`` are the claims in whole seconds, a
    fractional NumericDate rounded *up* (:func:`numeric_date_seconds`); the verdict
    was reached on the exact value.
    """

    verified: bool
    error: str | None
    token_sha256: str
    signature_valid: bool
    issuer: str | None
    audience: list[str]
    key_id: str | None
    algorithm: str | None
    claims: dict[str, Any] = field(default_factory=dict)
    unverified_claims: dict[str, Any] = field(default_factory=dict)
    issued_at: int | None = None
    not_before: int | None = None
    expires: int | None = None


def token_sha256(token: str) -> str:
    """Hex SHA-256 of the token's ASCII text (what is stored instead of the token)."""
    return hashlib.sha256(token.strip().encode("utf-8", "surrogatepass")).hexdigest()


def verify_id_token(
    token: str,
    jwks: TrustedJwks | None,
    *,
    at: datetime,
    issuers: Iterable[str] = DEFAULT_ISSUERS,
    audiences: Iterable[str] = (),
    leeway_seconds: int = 0,
) -> TokenVerification:
    """Verify *token* as it stood at time *at* (aware datetime: the event's time).

    An empty *audiences* means the audience was not checked, which is reported as
    not verified (fail closed); a missing *jwks* likewise.
    """
    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime (UTC)")
    if isinstance(leeway_seconds, bool) or not isinstance(leeway_seconds, int) \
            or not 0 <= leeway_seconds <= MAX_LEEWAY_SECONDS:
        raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY_SECONDS} seconds, not {leeway_seconds!r}")
    token = token.strip()
    digest = token_sha256(token)
    issuers = tuple(issuers)
    audiences = tuple(audiences)
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except (InvalidTokenError, ValueError, TypeError) as exc:
        return TokenVerification(False, f"not a JWS compact token: {_safe(exc)}", digest, False, None, [], None, None)
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    alg = header.get("alg") if isinstance(header.get("alg"), str) else None
    selected = select_claims(unverified)
    iss = unverified.get("iss") if isinstance(unverified.get("iss"), str) else None
    aud = _audience_list(unverified.get("aud"))
    times = {name: unverified.get(name) for name in ("iat", "nbf", "exp")}

    def failed(error: str, signature_valid: bool = False) -> TokenVerification:
        return TokenVerification(
            False, error, digest, signature_valid, iss, aud, kid, alg, {}, selected,
            numeric_date_seconds(times["iat"]), numeric_date_seconds(times["nbf"]), numeric_date_seconds(times["exp"]),
        )

    if alg not in ALLOWED_ALGORITHMS:
        return failed(f"algorithm {str(alg)[:20]!r} is not an allowed asymmetric JWS algorithm")
    if jwks is None:
        return failed("no JWKS given: the signature was not checked")
    candidates = jwks.candidates(kid)
    if not candidates:
        return failed(f"no key with kid {str(kid)[:80]!r} in the JWKS")
    refused = [(key, signature_use_refusal(key)) for key in candidates]
    candidates = [key for key, reason in refused if reason is None]
    if not candidates:  # an encryption key must never vouch for a signature (RFC 7517 section 4.2)
        named = f"the JWKS key with kid {str(kid)[:80]!r}" if kid is not None else "the JWKS key"
        return failed("; ".join(sorted({f"{named} {reason}" for _, reason in refused if reason})))
    if not issuers:
        return failed("no issuer allowed: the issuer was not checked")
    signature_error = "signature does not verify"
    payload: dict[str, Any] | None = None
    for key in candidates:
        try:
            payload = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                issuer=issuers,
                audience=audiences or None,
                options={
                    "verify_signature": True,
                    "verify_exp": False,  # evaluated below at the event's time
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": bool(audiences),
                    "verify_iss": True,
                    "require": ["iss", "exp", "sub"],
                },
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidIssuerError:
            return failed(f"issuer {str(iss)[:120]!r} is not allowed", True)
        except jwt.InvalidAudienceError:
            return failed(f"audience {aud!r} is not allowed"[:200], True)
        except jwt.MissingRequiredClaimError as exc:
            return failed(f"missing required claim: {exc.claim}", True)
        except (InvalidTokenError, PyJWKError, ValueError, TypeError) as exc:
            signature_error = f"token rejected: {_safe(exc)}"
            continue
    if payload is None:
        return failed(signature_error)
    if not audiences:
        return failed("no audience allowed: the audience was not checked (give --audience)", True)
    # Exact arithmetic: a float claim converts to Fraction without loss, and the event time
    # counts in whole microseconds. For integer claims this decides as the former whole-second
    # comparison did (t >= n holds exactly when floor(t) >= n, for an integer n).
    moment = Fraction((at - EPOCH) // timedelta(microseconds=1), 1_000_000)
    exact = {name: _numeric_date(payload.get(name)) for name in ("exp", "nbf", "iat")}
    for name in ("exp", "nbf", "iat"):
        if (name == "exp" or payload.get(name) is not None) and exact[name] is None:
            return failed(f"{name} is not a NumericDate (a finite JSON number)", True)
    exp, nbf, iat = exact["exp"], exact["nbf"], exact["iat"]
    assert exp is not None
    used = _instant(moment)
    if moment >= exp + leeway_seconds:
        return failed(f"expired at {_instant(exp)}, used at {used}", True)
    if nbf is not None and moment + leeway_seconds < nbf:
        return failed(f"not valid before {_instant(nbf)}, used at {used}", True)
    if iat is not None and moment + leeway_seconds < iat:
        return failed(f"issued at {_instant(iat)}, after its use at {used}", True)
    iat_s, nbf_s, exp_s = (None if v is None else math.ceil(v) for v in (iat, nbf, exp))
    return TokenVerification(True, None, digest, True, iss, aud, kid, alg, selected, {}, iat_s, nbf_s, exp_s)


def select_claims(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The job-identifying claims, as strings (lists of strings for ``aud``); no floats."""
    selected: dict[str, Any] = {}
    for name in IDENTITY_CLAIMS:
        value = payload.get(name)
        if value is None:
            continue
        if name == "aud":
            selected[name] = _audience_list(value)
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            selected[name] = str(value)[:512]
    return selected


def _audience_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value[:256]]
    if isinstance(value, list):
        return [str(v)[:256] for v in value if isinstance(v, str)][:16]
    return []


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _numeric_date(value: Any) -> Fraction | None:
    """An RFC 7519 NumericDate claim as an exact number: an integer or a finite float
    (fractional seconds allowed); None for anything else (booleans, strings, NaN, infinities,
    which Python's JSON reader lets through as floats)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return Fraction(value)
    return None


def numeric_date_seconds(value: Any) -> int | None:
    """A NumericDate claim as whole seconds, or None when it is not one.

    A fractional value is rounded *up*, to the first whole second at or after it. Records
    and the ledger hold times in whole seconds (the canonical form holds no floats), and
    rounding up keeps the stored value telling the verdict for a whole-second event time t:
    ``t < ceil(exp)`` exactly when ``t < exp`` (exp = T+0.5 is valid at T, expired at T+1),
    and likewise ``t >= ceil(nbf)`` exactly when ``t >= nbf``.
    """
    exact = _numeric_date(value)
    return None if exact is None else math.ceil(exact)


def _instant(epoch: Fraction) -> str:
    """RFC 3339 UTC text of an exact time, for messages: fractions of a second when it has one."""
    if epoch.denominator == 1:
        return _rfc3339(int(epoch))
    try:
        return format_time(EPOCH + timedelta(microseconds=round(epoch * 1_000_000)))
    except OverflowError:
        return str(float(epoch))


def _rfc3339(epoch: int) -> str:
    try:
        return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(epoch)


def _safe(exc: BaseException) -> str:
    """An exception's text, one line, bounded; PyJWT errors never echo the token."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def epoch_to_rfc3339(epoch: int | None) -> str | None:
    """RFC 3339 UTC text of a claim time, for attrs."""
    return None if epoch is None else _rfc3339(epoch)
