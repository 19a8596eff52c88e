"""OIDC ID token verification: pure, evaluated at the event's time, fail closed."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from collector.errors import MalformedInput
from collector.oidc import TrustedJwks, token_sha256, verify_id_token
from tests.conftest import shared_data

KEYS = Path(__file__).resolve().parent.parent / "samples" / "ci" / "keys"
KID = "fedledger-sample-ci-1"
ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
IAT = int(datetime(2026, 11, 20, 14, 0, 25, tzinfo=timezone.utc).timestamp())
USED = datetime(2026, 11, 20, 14, 0, 27, tzinfo=timezone.utc)


def private_key(name: str) -> Any:
    return serialization.load_pem_private_key((KEYS / name).read_bytes(), password=None)


@pytest.fixture(scope="module")
def jwks() -> TrustedJwks:
    return TrustedJwks.from_bytes((KEYS / "jwks.json").read_bytes())


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "repo:agency-gov/claims-model:environment:production",
        "repository": "agency-gov/claims-model", "ref": "refs/heads/main", "sha": "9f2c4e1b",
        "run_id": "9876543210", "job_workflow_ref": "agency-gov/claims-model/.github/workflows/deploy.yml@refs/heads/main",
        "runner_environment": "self-hosted", "iat": IAT, "nbf": IAT, "exp": IAT + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(key_file: str = "oidc-test-key.pem", kid: str = KID, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), private_key(key_file), algorithm="RS256", headers={"kid": kid})


def verify(tok: str, jwks: TrustedJwks | None, at: datetime = USED, **kwargs: Any):
    kwargs.setdefault("audiences", (AUDIENCE,))
    kwargs.setdefault("issuers", (ISSUER,))
    return verify_id_token(tok, jwks, at=at, **kwargs)


def test_valid_token_verifies_and_keeps_identity_claims(jwks: TrustedJwks) -> None:
    tok = token()
    result = verify(tok, jwks)
    assert result.verified and result.error is None and result.signature_valid
    assert result.claims["sub"] == "repo:agency-gov/claims-model:environment:production"
    for name in ("repository", "ref", "sha", "run_id", "job_workflow_ref", "runner_environment"):
        assert name in result.claims
    assert result.token_sha256 == token_sha256(tok)
    assert tok not in repr(result)


def test_expiry_is_evaluated_at_the_event_time_not_the_clock(jwks: TrustedJwks) -> None:
    tok = token()  # issued in 2026-11-20, long before or after "now": only the event time matters
    assert verify(tok, jwks, at=USED).verified
    late = verify(tok, jwks, at=USED + timedelta(hours=1))
    assert not late.verified and late.error and late.error.startswith("expired at")
    assert late.signature_valid and late.claims == {} and late.unverified_claims["sub"]
    at_exp = verify(tok, jwks, at=datetime.fromtimestamp(IAT + 300, tz=timezone.utc))
    assert not at_exp.verified
    assert verify(tok, jwks, at=datetime.fromtimestamp(IAT + 299, tz=timezone.utc)).verified
    assert verify(tok, jwks, at=USED + timedelta(minutes=5), leeway_seconds=60).verified


def test_not_before_is_evaluated_at_the_event_time(jwks: TrustedJwks) -> None:
    tok = token(nbf=IAT + 600, iat=IAT + 600, exp=IAT + 900)
    early = verify(tok, jwks)
    assert not early.verified and early.error and early.error.startswith("not valid before")
    assert verify(tok, jwks, at=USED + timedelta(minutes=11)).verified


def test_issued_after_use_is_refused(jwks: TrustedJwks) -> None:
    tok = token(nbf=None, iat=IAT + 600, exp=IAT + 900)
    result = verify(tok, jwks)
    assert not result.verified and "issued at" in (result.error or "")


def test_wrong_audience(jwks: TrustedJwks) -> None:
    result = verify(token(aud="https://evil.example"), jwks)
    assert not result.verified and "audience" in (result.error or "")


def test_wrong_issuer(jwks: TrustedJwks) -> None:
    result = verify(token(iss="https://token.actions.evil.example"), jwks)
    assert not result.verified and "issuer" in (result.error or "")


def test_forged_with_another_key_under_the_real_kid(jwks: TrustedJwks) -> None:
    result = verify(token("attacker-wrong-key.pem"), jwks)
    assert not result.verified and not result.signature_valid
    assert result.error == "signature does not verify"
    assert result.claims == {}


def test_unknown_kid(jwks: TrustedJwks) -> None:
    result = verify(token(kid="other"), jwks)
    assert not result.verified and "no key with kid" in (result.error or "")


def test_alg_none_and_hmac_with_the_public_key_are_refused(jwks: TrustedJwks) -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": KID})  # type: ignore[arg-type]
    assert not verify(unsigned, jwks).verified
    public_pem = private_key("oidc-test-key.pem").public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": KID}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims()).encode())
    import hashlib
    import hmac

    mac = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    confused = (header + b"." + payload + b"." + jwt.utils.base64url_encode(mac)).decode()
    result = verify(confused, jwks)
    assert not result.verified and "not an allowed" in (result.error or "")


def test_tampered_payload(jwks: TrustedJwks) -> None:
    head, _payload, sig = token().split(".")
    other = jwt.utils.base64url_encode(json.dumps(claims(sub="repo:evil/evil:ref:main")).encode()).decode()
    result = verify(f"{head}.{other}.{sig}", jwks)
    assert not result.verified and not result.signature_valid


def test_fail_closed_without_jwks_or_audience(jwks: TrustedJwks) -> None:
    assert verify(token(), None).error == "no JWKS given: the signature was not checked"
    no_aud = verify(token(), jwks, audiences=())
    assert not no_aud.verified and no_aud.signature_valid and "audience was not checked" in (no_aud.error or "")


def test_garbage_token() -> None:
    result = verify("eyJnot.a.token", None)
    assert not result.verified and result.error and result.error.startswith("not a JWS")


def test_gitlab_claims_are_kept(jwks: TrustedJwks) -> None:
    gitlab = jwt.encode(
        claims(iss="https://gitlab.com", aud="https://vault.agency.gov", project_path="agency-gov/mirror",
               pipeline_id="1520046611", job_id="8452210377"),
        private_key("gitlab-oidc-test-key.pem"), algorithm="RS256", headers={"kid": "fedledger-sample-gitlab-1"})
    result = verify(gitlab, jwks, issuers=("https://gitlab.com",), audiences=("https://vault.agency.gov",))
    assert result.verified
    assert result.claims["project_path"] == "agency-gov/mirror"
    assert result.claims["pipeline_id"] == "1520046611" and result.claims["job_id"] == "8452210377"


def test_naive_time_is_rejected(jwks: TrustedJwks) -> None:
    with pytest.raises(ValueError):
        verify_id_token(token(), jwks, at=datetime(2026, 11, 20, 14, 0, 27))


def test_bad_jwks_files() -> None:
    with pytest.raises(MalformedInput):
        TrustedJwks.from_bytes(b"not json")
    with pytest.raises(MalformedInput):
        TrustedJwks.from_bytes(b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    with pytest.raises(MalformedInput):
        TrustedJwks.from_bytes(b'{"nokeys": []}')


def test_github_docs_example_token_claims_are_selected() -> None:
    path = shared_data("ci_events", "github_oidc", "github_docs_example_oidc_token.json")
    doc = json.loads(path.read_text())
    from collector.oidc import select_claims

    selected = select_claims(doc["payload"])
    assert selected["sub"] == "repo:octo-org/octo-repo:environment:prod"
    assert selected["job_workflow_ref"].endswith("@refs/heads/main")
    assert selected["runner_environment"] == "github-hosted"
    # The docs example is unsigned: made into a token with a key not in the JWKS, it never verifies.
    forged = jwt.encode(doc["payload"], private_key("attacker-wrong-key.pem"), algorithm="RS256",
                        headers={"kid": KID})
    at = datetime.fromtimestamp(doc["payload"]["iat"], tz=timezone.utc)
    jwks = TrustedJwks.from_bytes((KEYS / "jwks.json").read_bytes())
    result = verify_id_token(forged, jwks, at=at, audiences=("https://github.com/octo-org",))
    assert not result.verified


def test_verifier_imports_no_boto3() -> None:
    code = "import sys, collector.oidc, collector.sources.ci; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False"


# -- RFC 7519 NumericDate: fractional seconds are allowed -------------------------------------------


def at_epoch(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)


def test_fractional_exp_is_compared_exactly_and_recorded_as_the_next_whole_second(jwks: TrustedJwks) -> None:
    tok = token(exp=IAT + 300.5)
    valid = verify(tok, jwks, at=at_epoch(IAT + 300))  # still valid during the second it expires in
    assert valid.verified and valid.error is None
    assert valid.expires == IAT + 301 and type(valid.expires) is int
    assert verify(tok, jwks, at=at_epoch(IAT + 300.4)).verified
    for late in (IAT + 300.5, IAT + 300.6, IAT + 301):
        result = verify(tok, jwks, at=at_epoch(late))
        assert not result.verified and (result.error or "").startswith("expired at 2026-11-20T14:05:25.500000Z")
    assert verify(tok, jwks, at=at_epoch(IAT + 301), leeway_seconds=1).verified  # leeway as for integers
    assert not verify(tok, jwks, at=at_epoch(IAT + 301.5), leeway_seconds=1).verified


def test_fractional_nbf_and_iat_are_compared_exactly(jwks: TrustedJwks) -> None:
    tok = token(nbf=IAT + 0.5, iat=IAT + 0.25)
    early = verify(tok, jwks, at=at_epoch(IAT))
    assert not early.verified and (early.error or "").startswith("not valid before 2026-11-20T14:00:25.500000Z")
    assert early.not_before == IAT + 1 and early.issued_at == IAT + 1
    assert verify(tok, jwks, at=at_epoch(IAT), leeway_seconds=1).verified
    assert verify(tok, jwks, at=at_epoch(IAT + 0.5)).verified
    issued_late = verify(token(nbf=None, iat=IAT + 0.75), jwks, at=at_epoch(IAT + 0.5))
    assert not issued_late.verified and "issued at 2026-11-20T14:00:25.750000Z" in (issued_late.error or "")


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [True, "1795183525", "1795183525.5", float("nan"), float("inf"), float("-inf"),
                                   [1795183525], {"t": 1795183525}])
def test_a_time_claim_that_is_not_a_finite_number_is_refused(jwks: TrustedJwks, name: str, value: Any) -> None:
    result = verify(token(**{name: value}), jwks)  # NaN / Infinity: PyJWT writes and reads them as JSON
    assert not result.verified and result.signature_valid
    assert result.error == f"{name} is not a NumericDate (a finite JSON number)"
    assert result.expires is None if name == "exp" else result.expires == IAT + 300


def test_negative_fractional_exp_is_expired(jwks: TrustedJwks) -> None:
    result = verify(token(exp=-0.5, nbf=None, iat=None), jwks)
    assert not result.verified and (result.error or "").startswith("expired at 1969-12-31T23:59:59.500000Z")
    assert result.expires == 0


def test_fractional_times_reach_the_event_as_text_never_as_floats(jwks: TrustedJwks) -> None:
    from collector.canonical import canonical_bytes
    from collector.sources.ci import CiOptions, record_for

    options = CiOptions(jwks=jwks, audiences=(AUDIENCE,), issuers=(ISSUER,))
    tok = token(iat=IAT + 0.5, nbf=IAT + 0.5, exp=IAT + 300.5)
    line = json.dumps({"event_type": "ci.oidc_token", "token": tok, "time": "2026-11-20T14:00:27Z"}).encode()
    event = record_for(line, "t.jsonl", 1, options).event
    assert event is not None and event["attrs"]["verified"] is True
    assert event["attrs"]["issued_at"] == "2026-11-20T14:00:26Z" and event["attrs"]["expires"] == "2026-11-20T14:05:26Z"
    canonical_bytes(event)
    # A bare token has no time of use: it is evaluated at its own iat, rounded up to the whole second
    # (the recorded issued_at), where it verifies; before, a fractional iat quarantined it as missing-time.
    bare = record_for(tok.encode(), "t.jwt", None, options)
    assert bare.reason is None and bare.event is not None
    assert bare.event["time"] == "2026-11-20T14:00:26Z" == bare.event["attrs"]["issued_at"]
    assert bare.event["attrs"]["time_source"] == "iat" and bare.event["attrs"]["verified"] is True
    canonical_bytes(bare.event)


# -- used before it was issued: collector and evaluation agree -------------------------------------


def _token_record(jwks: TrustedJwks, tok: str, extra: dict[str, Any], leeway: int = 0):  # type: ignore[no-untyped-def]
    from collector.sources.ci import CiOptions, record_for

    options = CiOptions(jwks=jwks, audiences=(AUDIENCE,), issuers=(ISSUER,), leeway_seconds=leeway)
    line = json.dumps({"event_type": "ci.oidc_token", "token": tok, "job_id": "42", **extra}).encode()
    return record_for(line, "t.jsonl", 1, options)


def test_a_time_of_use_of_zero_is_a_time_not_a_missing_one(jwks: TrustedJwks) -> None:
    """`"time": 0` (epoch 0) is a time of use decades before the token was issued. It was taken for
    "no time given" (falsy) and the token was evaluated at its own iat, where it verified."""
    tok = token(nbf=None)
    for key in ("time", "timestamp"):
        rec = _token_record(jwks, tok, {key: 0})
        assert rec.reason is None and rec.event is not None
        attrs = rec.event["attrs"]
        assert rec.event["time"] == "1970-01-01T00:00:00Z" and attrs["time_source"] == "event"
        assert attrs["verified"] is False and attrs["signature_valid"] is True
        assert attrs["verification_error"] == "issued at 2026-11-20T14:00:25Z, after its use at 1970-01-01T00:00:00Z"
        assert rec.event["outcome"]["status"] == "failure"


@pytest.mark.parametrize("value", [False, True, 0.0, 1795183527.0, [], {}, ["2026-11-20T14:00:27Z"]])
def test_a_time_of_use_that_is_not_a_time_is_quarantined_not_replaced_by_iat(jwks: TrustedJwks, value: Any) -> None:
    rec = _token_record(jwks, token(), {"time": value})
    assert rec.reason == "bad-time" and rec.event is None


def test_no_time_of_use_still_evaluates_at_iat(jwks: TrustedJwks) -> None:
    for extra in ({}, {"time": None}, {"time": ""}):
        rec = _token_record(jwks, token(), extra)
        assert rec.event is not None and rec.event["attrs"]["time_source"] == "iat", extra


def test_the_leeway_is_bounded_and_recorded(jwks: TrustedJwks) -> None:
    """The leeway decides `verified` for a token used before its iat: it is bounded everywhere
    (0..600 s, as `collect ci --leeway`) and recorded in the entry, so the verdict can be re-judged."""
    from collector.config import INT_MAXIMA
    from collector.oidc import MAX_LEEWAY_SECONDS

    assert MAX_LEEWAY_SECONDS == 600 == INT_MAXIMA[("ci", "leeway")]
    early = token(nbf=None, iat=IAT + 30)  # used 28 s before it was issued
    within = _token_record(jwks, early, {"time": "2026-11-20T14:00:27Z"}, leeway=60)
    assert within.event is not None and within.event["attrs"]["verified"] is True
    assert within.event["attrs"]["leeway_s"] == 60
    exact = _token_record(jwks, early, {"time": "2026-11-20T14:00:27Z"})
    assert exact.event is not None and exact.event["attrs"]["verified"] is False
    assert exact.event["attrs"]["leeway_s"] == 0
    assert (exact.event["attrs"]["verification_error"]
            == "issued at 2026-11-20T14:00:55Z, after its use at 2026-11-20T14:00:27Z")
    for bad in (-1, MAX_LEEWAY_SECONDS + 1, 86400):
        with pytest.raises(ValueError, match="leeway"):
            verify(early, jwks, leeway_seconds=bad)


@pytest.mark.parametrize("leeway", ["-1", "601", "86400"])
def test_a_config_leeway_outside_the_bound_is_a_config_error_with_its_line(leeway: str) -> None:
    from collector.config import ConfigInvalid, parse_config

    text = ('[ledger]\npath = "l.db"\norigin = "example.gov/x"\n\n[[sources]]\nname = "ci"\nkind = "ci"\n'
            f'locations = ["ci/"]\naudiences = ["sts.amazonaws.com"]\nleeway = {leeway}\n')
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text, Path("/etc/fedledger/fedledger.toml"))
    (problem,) = info.value.problems
    assert problem == f"/etc/fedledger/fedledger.toml:10: sources[0].leeway must be between 0 and 600, not {leeway}"


def _workload_findings(event: dict[str, Any]) -> list[Any]:
    from bundler.evaluate import evaluate
    from tests.synthetic_jobs import as_entries

    assessment = evaluate(as_entries([event]), as_of="2026-11-21T00:00:00Z", origin="test.example/ledger")
    check = next(c for c in assessment.checks if c.check == "workload-identity")
    return list(check.findings)


# Event times around iat = IAT + d (integer and fractional), with and without leeway: whatever the
# collector records, the evaluation reads the same verdict from the entry (verified and its times).
EDGES = [(d, used, leeway) for d in (0, 0.25, 0.5, 1, 30, 61) for used in (-1, -0.5, 0, 0.000001, 0.5, 0.75, 1, 29, 30)
         for leeway in (0, 1, 60)]


@pytest.mark.parametrize("d,used,leeway", EDGES)
def test_collector_and_evaluation_agree_on_a_token_used_around_its_iat(jwks: TrustedJwks, d: float, used: float,
                                                                     leeway: int) -> None:
    from collector.timeutil import format_time

    tok = token(nbf=None, iat=IAT + d, exp=IAT + 900)
    at = format_time(at_epoch(IAT + used))
    rec = _token_record(jwks, tok, {"time": at}, leeway=leeway)
    assert rec.event is not None
    attrs = rec.event["attrs"]
    assert attrs["verified"] is (used + leeway >= d), (attrs["verification_error"], at)
    findings = _workload_findings(rec.event)
    if attrs["verified"]:
        assert findings == [], findings  # nothing in the entry contradicts the verdict
    else:
        assert attrs["verification_error"].startswith("issued at ")
        assert [f.id.split(":")[1] for f in findings] == ["oidc-unverified"], findings
