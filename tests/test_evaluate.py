"""Evaluation on synthetic entries: a complete job passes; each violation fails the right controls
with the right entries; stale evidence fails; no evidence is not assessed; results are deterministic."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import pytest

from bundler.evaluate import EvaluationConfig, evaluate, parse_utc
from bundler.model import NOT_ASSESSED, NOT_SATISFIED, SATISFIED, Assessment
from collector.errors import UsageError
from samples.make import story
from tests.synthetic_jobs import BASE, as_entries, complete_story, digest_events, event, find, job_events

AS_OF = "2026-11-21T00:00:00Z"
ALL = ("ac-2", "ac-6", "au-2", "au-3", "au-6", "au-8", "au-9", "au-10", "au-11", "au-12", "cm-3", "cm-5", "cm-14",
       "ia-2", "ia-5", "sa-10", "sc-8", "sc-12", "sc-13", "sc-28", "si-7", "sr-4")


def run(events: list[dict], **kwargs) -> tuple[Assessment, list]:
    entries = as_entries(events)
    kwargs.setdefault("as_of", AS_OF)
    return evaluate(entries, origin="test.example/ledger", **kwargs), entries


def seq_of(entries: list, target: dict) -> int:
    return next(seq for seq, item, _ in entries if item is target)


def failing(assessment: Assessment) -> set[str]:
    return {c.control_id for c in assessment.controls if c.status == NOT_SATISFIED}


def test_complete_jobs_satisfy_every_builtin_control() -> None:
    assessment, entries = run(complete_story(3))
    assert {c.control_id: c.status for c in assessment.controls} == {c: SATISFIED for c in ALL}
    assert assessment.entries_considered == len(entries)
    assert len(assessment.custody) == 3 and all(s.complete for s in assessment.custody)
    assert {f.source for f in assessment.freshness} == {"vault", "cloudtrail", "ci", "attestations"}
    au9 = assessment.control("au-9")
    assert au9.ksi[0] == "KSI-MLA-OSM" and au9.seqs and "aws.digest_gap" in au9.evidence_kinds
    # the allowlist check has no allowlist by default: not assessed, and never counted as a pass
    allowlist = next(c for c in assessment.checks if c.check == "ai-endpoint-allowlist")
    assert allowlist.status == NOT_ASSESSED


def test_results_are_deterministic_and_independent_of_input_order() -> None:
    events = complete_story(2)
    first, entries = run(events)
    second = evaluate(list(reversed(entries)), as_of=AS_OF, origin="test.example/ledger")
    assert first == second
    assert first == run(complete_story(2))[0]


def test_long_term_key_fails_identification_controls_with_its_entry() -> None:
    events = complete_story(1)
    call = find(events, "aws.api_call", 1)
    call["correlation"]["access_key_id"] = story.LONG_TERM_ACCESS_KEY_ID
    call["attrs"]["access_key_class"] = "long-term"
    assessment, entries = run(events)
    bad = seq_of(entries, call)
    assert {"ia-2", "ia-5", "ac-6"} <= failing(assessment)
    finding = next(f for f in assessment.control("ia-2").findings if f.check == "short-lived-credentials")
    assert finding.seqs == (bad,) and finding.severity == "high"
    assert story.LONG_TERM_ACCESS_KEY_ID in finding.id
    assert assessment.control("si-7").status == SATISFIED
    # an explained exception (key id listed) passes
    explained, _ = run(events, config=EvaluationConfig(allowed_long_term_key_ids=(story.LONG_TERM_ACCESS_KEY_ID,)))
    assert explained.control("ia-2").status == SATISFIED


def test_job_without_web_identity_fails() -> None:
    events = [e for e in complete_story(1) if e["kind"] != "aws.assume_role_web_identity"]
    for item in events:
        if item["kind"] == "aws.api_call":
            item["correlation"]["job_id"] = str(story.JOB_ID)
    assessment, _ = run(events)
    assert any(f.id.startswith("short-lived-credentials:no-web-identity") for f in assessment.control("ia-5").findings)


def test_unsigned_artifact_fails_integrity_controls() -> None:
    events = complete_story(2)
    attestation = find(events, "attestation.signed", 1)
    attestation["kind"] = "attestation.invalid"
    attestation["attrs"]["verification_error"] = "signature does not match"
    assessment, entries = run(events)
    assert {"si-7", "cm-14", "sr-4"} <= failing(assessment)
    findings = {f.id: f for f in assessment.control("si-7").findings}
    unattested = next(f for k, f in findings.items() if k.startswith("signed-attestation:unattested"))
    assert seq_of(entries, attestation) in unattested.seqs
    assert seq_of(entries, find(events, "ci.inference_call", 1)) in unattested.seqs
    assert unattested.job_id == str(story.JOB_ID + 1)


def test_artifact_with_no_attestation_fails() -> None:
    events = [e for e in complete_story(1) if e["kind"] != "attestation.signed"]
    assessment, _ = run(events)
    assert assessment.control("si-7").status == NOT_SATISFIED
    assert assessment.control("au-11").status == NOT_ASSESSED  # no attestation at all: retention not assessed


def test_certificate_longer_than_job_fails_key_management() -> None:
    events = complete_story(1)
    cert = find(events, "vault.pki_issue")
    cert["attrs"]["ttl"] = 7 * 3600
    assessment, entries = run(events)
    assert {"sc-12", "ia-5"} <= failing(assessment)
    finding = next(f for f in assessment.control("sc-12").findings if f.check == "certificate-ttl")
    assert finding.seqs == (seq_of(entries, cert),) and finding.job_id == str(story.JOB_ID)
    assert run(events, config=EvaluationConfig(max_job_seconds=8 * 3600))[0].control("sc-12").status == SATISFIED


@pytest.mark.parametrize("mutation", ["raw-payload", "no-hash"])
def test_inference_call_must_carry_only_hashes(mutation: str) -> None:
    events = complete_story(1)
    call = find(events, "ci.inference_call")
    if mutation == "raw-payload":
        call["attrs"]["prompt"] = "summarize claim 42"
    else:
        del call["attrs"]["response_hash"]
    assessment, entries = run(events)
    assert {"au-3", "sc-28"} <= failing(assessment)
    finding = assessment.control("au-3").findings[0]
    assert finding.id.startswith(f"inference-redaction:{mutation}") and finding.seqs == (seq_of(entries, call),)


def test_calls_outside_allowed_regions_fail_boundary_controls() -> None:
    events = complete_story(1)
    call = find(events, "aws.api_call", 2)
    call["attrs"]["region"] = "us-east-1"
    assessment, entries = run(events)
    assert {"sc-8", "ac-6"} <= failing(assessment)
    finding = next(f for f in assessment.control("sc-8").findings if f.check == "allowed-regions")
    assert finding.seqs == (seq_of(entries, call),) and "us-east-1" in finding.title
    widened = EvaluationConfig(allowed_regions=("us-gov-west-1", "us-gov-east-1", "us-east-1"))
    assert run(events, config=widened)[0].control("sc-8").status == SATISFIED


def test_runner_labelled_for_another_region_fails() -> None:
    events = complete_story(1)
    started = find(events, "ci.job_started")
    started["attrs"]["runner_labels"] = ["self-hosted", "us-west-2"]
    started["attrs"]["runner_region"] = "us-west-2"
    assessment, entries = run(events)
    ids = {f.id for f in assessment.control("sc-8").findings}
    assert "allowed-regions:region:us-west-2" in ids and f"allowed-regions:runner-label:job-{story.JOB_ID}" in ids


def test_a_job_with_no_runner_region_at_all_is_a_low_finding() -> None:
    # It passed silently: nothing said where the job ran, so nothing was outside the allowed regions.
    events = complete_story(2)
    started = find(events, "ci.job_started")  # the first job's
    del started["attrs"]["runner_region"]
    started["attrs"]["runner_labels"] = ["self-hosted", "linux", "x64"]
    assessment, entries = run(events)
    assert {"sc-8", "ac-6"} <= failing(assessment)
    findings = [f for f in assessment.control("sc-8").findings if f.check == "allowed-regions"]
    assert [f.id for f in findings] == [f"allowed-regions:region-unknown:job-{story.JOB_ID}"]
    job_seqs = tuple(s for s, e, _ in entries if e["kind"].startswith("ci.job_")
                     and e["correlation"].get("job_id") == str(story.JOB_ID))
    assert findings[0].severity == "low" and findings[0].seqs == job_seqs and findings[0].job_id == str(story.JOB_ID)
    # either a region-named runner label or a runner region is enough to say where it ran
    started["attrs"]["runner_labels"] = ["self-hosted", "us-gov-east-1"]
    assert run(events)[0].control("sc-8").status == SATISFIED
    started["attrs"]["runner_labels"] = ["self-hosted"]
    started["attrs"]["runner_region"] = "us-gov-east-1"
    assert run(events)[0].control("sc-8").status == SATISFIED


def test_secret_reads_above_threshold_fail_review() -> None:
    events = job_events(0, secret_reads=25) + job_events(1, secret_reads=3)
    assessment, entries = run(events)
    assert "au-6" in failing(assessment)
    finding = next(f for f in assessment.control("au-6").findings if f.check == "secret-read-volume")
    reads = tuple(s for s, e, _ in entries if e["kind"] == "vault.secret_read" and
                  e["correlation"]["vault_entity_id"] == story.VAULT_ENTITY_ID)
    assert finding.seqs == reads and finding.job_id == str(story.JOB_ID)
    assert run(events, config=EvaluationConfig(secret_read_threshold=30))[0].control("au-6").status == SATISFIED


def test_ai_endpoint_outside_allowlist() -> None:
    events = complete_story(1)
    config = EvaluationConfig(allowed_ai_endpoints=(story.AI_ENDPOINT,))
    assert run(events, config=config)[0].control("au-6").status == SATISFIED
    find(events, "ci.inference_call")["attrs"]["ai_endpoint"] = "api.public-ai.example.com/v1"
    assessment, entries = run(events, config=config)
    assert {"au-6", "sc-8"} <= failing(assessment)
    finding = next(f for f in assessment.control("au-6").findings if f.check == "ai-endpoint-allowlist")
    assert finding.seqs == (seq_of(entries, find(events, "ci.inference_call")),)


def test_repeated_token_renewals_fail() -> None:
    events = complete_story(1)
    login = find(events, "vault.login")
    start = datetime.strptime(login["time"], "%Y-%m-%dT%H:%M:%SZ")
    renewals = [event("vault.token_renew", start + timedelta(seconds=10 + k), correlation={"job_id": str(story.JOB_ID)},
                      attrs={"token_ttl": 1800}) for k in range(5)]
    assessment, entries = run(events + renewals)
    assert {"ia-5", "au-6"} <= failing(assessment)
    finding = next(f for f in assessment.control("ia-5").findings if f.check == "token-renewals")
    assert finding.seqs == tuple(seq_of(entries, r) for r in renewals)


@pytest.mark.parametrize("kind", ["aws.digest_gap", "aws.digest_invalid", "vault.unpaired"])
def test_audit_trail_gaps_fail_protection_of_audit_information(kind: str) -> None:
    events = complete_story(1)
    problem = event(kind, datetime(2026, 11, 20, 15, 30), attrs={"reason": "missing digest", "request_id": "r1"})
    assessment, entries = run(events + [problem])
    assert {"au-9", "au-12"} <= failing(assessment)
    finding = next(f for f in assessment.control("au-9").findings if f.check == "audit-trail-integrity")
    assert finding.seqs == (seq_of(entries, problem),)


def test_stop_logging_fails_unless_explained() -> None:
    events = complete_story(1)
    stop = event("aws.trail_change", datetime(2026, 11, 20, 15, 0), action="StopLogging",
                 resource="arn:aws-us-gov:cloudtrail:us-gov-west-1:123456789012:trail/org-trail",
                 attrs={"event_name": "StopLogging", "region": "us-gov-west-1", "access_key_class": "temporary"})
    assessment, entries = run(events + [stop])
    stop_seq = seq_of(entries, stop)
    assert assessment.control("au-9").status == NOT_SATISFIED
    assert any(f.seqs == (stop_seq,) for f in assessment.control("au-9").findings)
    explained, _ = run(events + [stop], config=EvaluationConfig(explained_seqs=(stop_seq,)))
    assert explained.control("au-9").status == SATISFIED
    note = event("manual.explanation", datetime(2026, 11, 20, 16, 0), attrs={"explains": [stop_seq]})
    by_entry, _ = run(events + [stop, note])
    assert by_entry.control("au-9").status == SATISFIED


def test_vault_audit_device_disabled_fails() -> None:
    events = complete_story(1)
    change = event("vault.audit_change", datetime(2026, 11, 20, 15, 0), action="delete", resource="sys/audit/file",
                   attrs={"operation": "delete", "path": "sys/audit/file"})
    assessment, entries = run(events + [change])
    assert any(f.seqs == (seq_of(entries, change),) for f in assessment.control("au-9").findings)


def test_cloudtrail_without_digest_validation_fails() -> None:
    events = [e for e in complete_story(1) if e["kind"] != "aws.digest_valid"]
    assessment, _ = run(events)
    assert any(f.id == "audit-trail-integrity:no-digest-validation" for f in assessment.control("au-9").findings)


@pytest.mark.parametrize("change", ["governance", "no-lock", "short", "expired"])
def test_attestation_retention(change: str) -> None:
    events = complete_story(1)
    attrs = find(events, "attestation.signed")["attrs"]
    if change == "governance":
        attrs["object_lock_mode"] = "GOVERNANCE"
    elif change == "no-lock":
        attrs["object_lock_mode"] = None
    elif change == "short":
        attrs["retain_until"] = "2027-01-01T00:00:00Z"
        attrs["retention_days"] = 42
    else:
        attrs["retain_until"] = "2026-11-20T20:00:00Z"
    assessment, entries = run(events)
    assert "au-11" in failing(assessment)
    assert assessment.control("au-11").findings[0].seqs == (seq_of(entries, find(events, "attestation.signed")),)


def test_attestation_without_kms_encryption_fails_at_rest_protection() -> None:
    events = complete_story(1)
    find(events, "attestation.signed")["attrs"]["sse"] = "AES256"
    assert {"sc-28", "sc-13"} <= failing(run(events)[0])


def test_inference_after_denied_policy_fails_change_control() -> None:
    events = complete_story(1)
    find(events, "ci.policy_decision")["attrs"]["decision"] = "deny"
    assessment, entries = run(events)
    assert {"cm-3", "cm-5"} <= failing(assessment)
    finding = assessment.control("cm-3").findings[0]
    assert finding.id == f"policy-gate:denied-but-ran:job-{story.JOB_ID}" and finding.severity == "high"
    assert seq_of(entries, find(events, "ci.inference_call")) in finding.seqs


def test_unverified_oidc_token_fails_account_controls() -> None:
    events = complete_story(1)
    token = find(events, "ci.oidc_token")
    token["attrs"]["verified"] = False
    token["attrs"]["verification_error"] = "token expired at event time"
    assessment, entries = run(events)
    assert {"ac-2", "ia-2"} <= failing(assessment)
    assert any(f.seqs == (seq_of(entries, token),) for f in assessment.control("ac-2").findings)


def test_verified_token_without_its_time_of_use_is_a_low_finding() -> None:
    """A token collected bare (no time of use) was checked at its own iat: its validity when used is not shown."""
    events = complete_story(1)
    assert not failing(run(events)[0]) & {"ac-2", "ia-2"}
    token = find(events, "ci.oidc_token")
    token["attrs"]["time_source"] = "iat"
    assessment, entries = run(events)
    assert {"ac-2", "ia-2"} <= failing(assessment)
    (finding,) = [f for f in assessment.control("ia-2").findings if f.id.startswith("workload-identity:oidc-time-unknown")]
    assert finding.severity == "low" and finding.seqs == (seq_of(entries, token),)


def _token_used_at(events: list[dict], used: str, **attrs: object) -> dict:
    token = find(events, "ci.oidc_token")
    token["time"] = used
    token["attrs"].update({"issued_at": "2026-11-20T14:00:55Z", "not_before": None,
                           "expires": "2026-11-20T14:10:55Z", "verification_error": None, **attrs})
    return token


def _time_findings(assessment: Assessment) -> list:
    return [f for f in assessment.control("ia-2").findings if f.id.startswith("workload-identity:oidc-time-contradicts")]


def test_a_verified_token_whose_own_times_show_use_before_issue_fails() -> None:
    """The entry is the evidence: `verified` true with a time of use before `issued_at` (beyond the
    leeway the entry records, 0 when it records none) is not taken on trust. A collector that ran with
    an unbounded leeway (a fedledger.toml `leeway` of a day) recorded such tokens as verified."""
    events = complete_story(1)
    token = _token_used_at(events, "2026-11-20T14:00:25Z", verified=True)
    assessment, entries = run(events)
    (finding,) = _time_findings(assessment)
    assert {"ac-2", "ia-2"} <= failing(assessment)
    assert finding.severity == "high" and finding.seqs == (seq_of(entries, token),)
    assert "2026-11-20T14:00:25Z" in finding.description and "issued at 2026-11-20T14:00:55Z" in finding.description
    assert "leeway 0 s" in finding.description
    # 30 s early, within the 60 s leeway the collector recorded using: the verdict stands
    token["attrs"]["leeway_s"] = 60
    assert _time_findings(run(events)[0]) == []
    token["attrs"]["leeway_s"] = 29
    assert len(_time_findings(run(events)[0])) == 1


def test_a_verified_token_used_after_expiry_or_before_nbf_by_its_own_times_fails() -> None:
    events = complete_story(1)
    token = _token_used_at(events, "2026-11-20T14:10:55Z", verified=True)  # at exp: expired
    (finding,) = _time_findings(run(events)[0])
    assert "expires 2026-11-20T14:10:55Z" in finding.description
    token["time"] = "2026-11-20T14:10:54.999999Z"
    assert _time_findings(run(events)[0]) == []
    token["time"], token["attrs"]["not_before"] = "2026-11-20T14:01:00Z", "2026-11-20T14:01:01Z"
    (finding,) = _time_findings(run(events)[0])
    assert "not before 2026-11-20T14:01:01Z" in finding.description


def test_within_the_rounded_second_the_collectors_exact_verdict_stands() -> None:
    """Stored times are whole seconds, a fractional iat rounded up (docs/collect-ci.md): a token issued
    at :54.5 and used at :54.75 is valid, yet its entry says issued_at :55. Only a use a whole second
    before the stored time is certainly before the claim."""
    events = complete_story(1)
    _token_used_at(events, "2026-11-20T14:00:54.750000Z", verified=True)
    assert _time_findings(run(events)[0]) == []
    find(events, "ci.oidc_token")["time"] = "2026-11-20T14:00:54Z"
    assert len(_time_findings(run(events)[0])) == 1


def test_root_policy_login_fails() -> None:
    events = complete_story(1)
    find(events, "vault.login")["attrs"]["policies"] = ["root"]
    assert "ac-2" in failing(run(events)[0])


def test_unreadable_time_fails_time_stamps_and_is_not_dropped() -> None:
    events = complete_story(1)
    find(events, "vault.secret_read")["time"] = "yesterday"
    assessment, entries = run(events)
    assert "au-8" in failing(assessment)
    assert assessment.entries_considered == len(entries)


def test_stale_source_fails_its_controls() -> None:
    events = complete_story(1)
    assessment, _ = run(events, as_of="2026-12-10T00:00:00Z")
    assert {f.source for f in assessment.freshness if f.stale} == {"vault", "cloudtrail", "ci", "attestations"}
    assert failing(assessment) == set(ALL)
    finding = next(f for f in assessment.control("au-11").findings if f.check.startswith("freshness:attestations"))
    assert finding.seqs  # cites the newest entry of the stale source
    longer = EvaluationConfig(freshness_days=30)
    assert not failing(run(events, as_of="2026-12-10T00:00:00Z", config=longer)[0])


def test_per_source_and_per_ksi_cadence() -> None:
    events = complete_story(1)
    as_of = "2026-11-23T00:00:00Z"  # about 2.4 days after the job
    per_source = EvaluationConfig(freshness_days_per_source=(("attestations", 1),))
    assessment, _ = run(events, as_of=as_of, config=per_source)
    assert "au-11" in failing(assessment) and "ac-2" not in failing(assessment)
    per_ksi = EvaluationConfig.from_mapping({"freshness_days_per_ksi": {"KSI-SVC-ASM": 2}})
    assessment, _ = run(events, as_of=as_of, config=per_ksi)
    assert "sc-12" in failing(assessment)  # SC-12 maps to KSI-SVC-ASM: 2-day cadence, vault evidence is older
    assert "au-9" not in failing(assessment)


def test_no_evidence_is_not_assessed_never_satisfied() -> None:
    assessment, _ = run([])
    assert {c.status for c in assessment.controls} == {NOT_ASSESSED}
    assert all(f.stale and f.newest is None for f in assessment.freshness)
    only_vault = [e for e in complete_story(1) if e["kind"].startswith("vault.")]
    assessment, _ = run(only_vault)
    assert assessment.control("si-7").status == NOT_ASSESSED
    assert assessment.control("au-11").status == NOT_ASSESSED


def test_controls_selection_and_period() -> None:
    events = complete_story(2)
    assessment, _ = run(events, controls=["AU-9", "si-7"])
    assert [c.control_id for c in assessment.controls] == ["au-9", "si-7"]
    # the second job (20 minutes later) is outside a period that ends before it
    narrowed, _ = run(events, period=("2026-11-20T13:00:00Z", "2026-11-20T14:15:00Z"))
    assert [s.job_id for s in narrowed.custody] == [str(story.JOB_ID)]
    assert narrowed.period_end == "2026-11-20T14:15:00Z"
    assert any("outside the period" in note for note in narrowed.notes)


def test_events_after_as_of_are_left_out() -> None:
    assessment, entries = run(complete_story(2), as_of="2026-11-20T14:15:00Z")
    assert assessment.entries_considered < len(entries)
    assert any("after as-of" in note for note in assessment.notes)


def test_time_and_config_inputs_are_checked() -> None:
    with pytest.raises(UsageError):
        parse_utc("2026-11-20T14:00:00")
    with pytest.raises(UsageError):
        parse_utc(datetime(2026, 11, 20))
    with pytest.raises(UsageError):
        EvaluationConfig.from_mapping({"secret_reads": 3})
    with pytest.raises(UsageError):
        run([], period=("2026-11-21T00:00:00Z", "2026-11-20T00:00:00Z"))


def test_evaluation_modules_do_not_import_boto3() -> None:
    import subprocess

    code = "import sys, bundler.evaluate, bundler.custody, bundler.rego, bundler.catalog; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_forged_webhook_fails_audit_protection() -> None:
    events = complete_story(1)
    forged = event("ci.webhook_invalid", datetime(2026, 11, 20, 14, 30), attrs={"reason": "bad signature"})
    assessment, entries = run(events + [forged])
    finding = next(f for f in assessment.control("au-9").findings if f.id == "audit-trail-integrity:ci.webhook_invalid")
    assert finding.seqs == (seq_of(entries, forged),)


def test_config_from_json_and_toml_files(tmp_path) -> None:
    json_path = tmp_path / "evaluation.json"
    json_path.write_text('{"secret_read_threshold": 5, "freshness_days_per_source": {"vault": 2}}')
    assert EvaluationConfig.from_file(json_path).freshness_seconds("vault") == 2 * 86400
    toml_path = tmp_path / "fedledger.toml"
    toml_path.write_text('[evaluation]\nallowed_ai_endpoints = ["fedramp-ai.gov/infer"]\nmax_token_renewals = 1\n')
    config = EvaluationConfig.from_file(toml_path)
    assert config.allowed_ai_endpoints == ("fedramp-ai.gov/infer",) and config.max_token_renewals == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"secret_read_threshold": "many"}')
    with pytest.raises(UsageError, match="bad.json"):
        EvaluationConfig.from_file(bad)


def test_assessment_names_catalog_and_jobs() -> None:
    assessment, _ = run(complete_story(2))
    assert assessment.catalog == "fedledger built-in catalog" and assessment.jobs == 2


def test_unreadable_events_are_counted_not_dropped() -> None:
    entries = as_entries(complete_story(1))
    entries.append((len(entries), ["not", "an", "object"], {"kind": "manual"}))  # type: ignore[arg-type]
    entries.append((len(entries), {"time": "2026-11-20T14:30:00Z"}, {"kind": "manual"}))
    assessment = evaluate(entries, as_of=AS_OF, origin="t")
    assert assessment.entries_considered == len(entries)
    assert any("2 entr" in note and "invalid" in note for note in assessment.notes)
    assert assessment.control("au-8").status == NOT_SATISFIED  # the first has no time at all


def test_stored_entry_objects_become_triples() -> None:
    from bundler.evidence_table import entry_triples

    stored = [{"v": 1, "seq": seq, "prev": "0" * 64, "source": source, "observed": "2026-11-20T15:00:00Z",
               "event": item, "raw": {"sha256": "0" * 64, "size": 1}}
              for seq, item, source in as_entries(complete_story(1))]
    direct, _ = run(complete_story(1))
    assert evaluate(entry_triples(stored), as_of=AS_OF, origin="test.example/ledger") == direct


def test_observations_cite_at_most_the_limit_and_say_so() -> None:
    assessment, entries = run(complete_story(2), config=EvaluationConfig(cite_limit=3))
    timestamps = next(c for c in assessment.checks if c.check == "timestamps")
    (observation,) = timestamps.observations
    assert len(observation.seqs) == 3 and f"(3 of {len(entries)} cited)" in observation.description


def test_custody_steps_can_be_made_optional() -> None:
    events = [e for e in complete_story(1) if e["kind"] != "ci.inference_call"]
    strict, _ = run(events)
    assert strict.control("au-10").status == NOT_SATISFIED
    relaxed_steps = tuple(s for s in EvaluationConfig().required_custody_steps if s != "inference_call")
    relaxed, _ = run(events, config=EvaluationConfig(required_custody_steps=relaxed_steps))
    assert relaxed.control("au-10").status == SATISFIED


def test_unsigned_attestation_is_not_provenance() -> None:
    """An attestation whose signature is absent proves nothing about an artifact: with no other evidence it
    must not satisfy SI-7, CM-14 or SR-4, and it is a finding beside signed ones."""
    unsigned = find(complete_story(1), "attestation.signed")
    unsigned["kind"] = "attestation.unsigned"
    unsigned["attrs"]["key_id"] = None
    assessment, entries = run([unsigned])
    assert {"si-7", "cm-14", "sr-4"} <= failing(assessment)
    finding = next(f for f in assessment.control("sr-4").findings if f.check == "signed-attestation")
    assert finding.id == f"signed-attestation:unsigned:{seq_of(entries, unsigned)}"
    assert finding.seqs == (seq_of(entries, unsigned),)
    # beside a complete, signed story the unsigned copy is still reported
    assessment, entries = run(complete_story(1) + [unsigned])
    assert "si-7" in failing(assessment)
    assert [f.id for f in assessment.control("si-7").findings] == [f"signed-attestation:unsigned:{seq_of(entries, unsigned)}"]


@pytest.mark.parametrize("change", ["missing", "refused", "after-call"])
def test_deploy_without_a_granted_approval_fails_change_control(change: str) -> None:
    """A job that called the AI endpoint must show who approved it, before the call (PIPELINE-PATTERNS:
    'every job records who approved it'); a refused approval is not one."""
    events = complete_story(1)
    approval = find(events, "ci.approval")
    call = find(events, "ci.inference_call")
    if change == "missing":
        events.remove(approval)
    elif change == "refused":
        approval["outcome"] = {"status": "failure", "error": "not approved"}
    else:
        approval["time"] = "2026-11-20T14:10:30Z"
    assessment, entries = run(events)
    assert {"cm-3", "cm-5"} <= failing(assessment)
    key = {"missing": "no-approval", "refused": "approval-refused", "after-call": "approval-after-call"}[change]
    (finding,) = [f for f in assessment.control("cm-3").findings if f.check == "policy-gate"]
    assert finding.id == f"policy-gate:{key}:job-{story.JOB_ID}" and finding.job_id == str(story.JOB_ID)
    assert seq_of(entries, call) in finding.seqs
    if change != "missing":
        assert seq_of(entries, approval) in finding.seqs
    if change == "refused":
        assert finding.severity == "high"
    if change == "missing":  # an explained choice: approvals not required
        relaxed, _ = run(events, config=EvaluationConfig.from_mapping({"require_approval": False}))
        assert relaxed.control("cm-3").status == SATISFIED


def test_allow_decision_whose_gate_failed_is_not_an_allow() -> None:
    """A gate that reported 'allow' with outcome failure (it errored) did not let the job through."""
    events = complete_story(1)
    decision = find(events, "ci.policy_decision")
    decision["outcome"] = {"status": "failure", "error": "policy evaluation error"}
    assessment, entries = run(events)
    assert "cm-3" in failing(assessment)
    (finding,) = [f for f in assessment.control("cm-3").findings if f.check == "policy-gate"]
    assert finding.id == f"policy-gate:no-gate:job-{story.JOB_ID}"


@pytest.mark.parametrize(("reads", "over"), [(25, True), (5, False)])
def test_secret_reads_that_cannot_be_attributed_still_count_against_the_threshold(reads: int, over: bool) -> None:
    """Vault JWT logins share one entity per role and subject: when two jobs with that entity overlap in time,
    their secret reads cannot be split between them. They must not vanish from the per-job volume."""
    first = job_events(0, secret_reads=reads)
    second = job_events(1, spacing=timedelta(minutes=1), secret_reads=reads)
    for item in second:
        if "vault_entity_id" in item["correlation"]:
            item["correlation"]["vault_entity_id"] = story.VAULT_ENTITY_ID
    assessment, entries = run(first + second)
    check = next(c for c in assessment.checks if c.check == "secret-read-volume")
    all_reads = {s for s, e, _ in entries if e["kind"] == "vault.secret_read"}
    assert all_reads <= set(check.seqs)  # every read was examined
    if not over:
        assert check.status == SATISFIED
        return
    assert check.status == NOT_SATISFIED and "au-6" in failing(assessment)
    jobs = {str(story.JOB_ID), str(story.JOB_ID + 1)}
    assert {f.job_id for f in check.findings} == jobs
    for finding in check.findings:
        assert finding.id == f"secret-read-volume:unattributed:job-{finding.job_id}"
        assert set(finding.seqs) == all_reads and f"up to {2 * reads}" in finding.title


def test_consecutive_periods_leave_no_event_out_and_count_none_twice() -> None:
    """Monthly periods written as docs/evaluation.md shows them (…T23:59:59Z, then …T00:00:00Z): a Vault event
    in the last, fractional second of a month belongs to that month; one at the next midnight to the next."""
    late = event("vault.secret_read", datetime(2026, 11, 30, 23, 59, 59), correlation={"vault_entity_id": "e"})
    late["time"] = "2026-11-30T23:59:59.500000Z"
    midnight = event("vault.secret_read", datetime(2026, 12, 1, 0, 0, 0), correlation={"vault_entity_id": "e"})
    november, _ = run([late, midnight], as_of="2026-12-02T00:00:00Z",
                      period=("2026-11-01T00:00:00Z", "2026-11-30T23:59:59Z"))
    december, _ = run([late, midnight], as_of="2026-12-02T00:00:00Z",
                      period=("2026-12-01T00:00:00Z", "2026-12-31T23:59:59Z"))
    assert november.entries_considered == 1 and december.entries_considered == 1
    # an end written with a fraction is taken exactly
    exact, _ = run([late], as_of="2026-12-02T00:00:00Z", period=(None, "2026-11-30T23:59:59.250Z"))
    assert exact.entries_considered == 0


@pytest.mark.parametrize("edge", ["end", "start"])
def test_job_crossing_the_period_edge_is_judged_whole(edge: str) -> None:
    """A compliant job that runs across a period's edge (a monthly bundle's midnight) is not missing its
    certificate, gate and attestation in either period: its events just outside the period are read as
    its context. Events outside the period that belong to no such job stay out."""
    events = complete_story(1)
    cut = "2026-11-20T14:09:30Z"  # between the approval and the inference call
    period = (None, cut) if edge == "end" else (cut, None)
    assessment, entries = run(events, period=period)
    findings = {f.id for c in assessment.controls for f in c.findings}
    assert not findings, findings
    assert assessment.control("au-10").status == SATISFIED and assessment.control("sc-8").status == SATISFIED
    assert any("context" in note and "1 job(s)" in note for note in assessment.notes)
    # the digests of the following hours (15:00, 16:00) belong to no job: still outside
    if edge == "end":
        digests = {s for s, e, _ in entries if e["kind"] == "aws.digest_valid" and e["time"] > cut}
        assert digests and not digests & {s for c in assessment.checks for s in c.seqs}
    # a problem in the job's part outside the period is still the job's problem
    find(events, "vault.pki_issue")["attrs"]["ttl"] = 7 * 3600
    assert "sc-12" in failing(run(events, period=(cut, None))[0])


def test_collector_verdicts_typed_in_by_hand_are_not_evidence() -> None:
    """'fedledger append' stores any kind it is given. A line claiming 'attestation.signed' or
    'aws.digest_valid' was verified by nobody: it must not stand in for the attestations collector's
    signature check or the CloudTrail digest chain."""
    events = complete_story(1)
    attestation = find(events, "attestation.signed")
    events.remove(attestation)
    events = [e for e in events if e["kind"] != "aws.digest_valid"]
    digest = digest_events(BASE, 1)[0]
    entries = as_entries(events)
    for item in (attestation, digest):
        entries.append((len(entries), item, {"kind": "manual", "id": "manual:claims.jsonl",
                                             "location": "claims.jsonl", "line": len(entries)}))
    assessment = evaluate(entries, as_of=AS_OF, origin="t")
    si7 = {f.id for f in assessment.control("si-7").findings}
    assert any(f.startswith("signed-attestation:unattested:") for f in si7)
    assert "audit-trail-integrity:no-digest-validation" in {f.id for f in assessment.control("au-9").findings}
    custody = {s.step: s for s in assessment.custody[0].steps}
    assert not custody["attestation_stored"].present
    # alone, the hand-typed attestation satisfies nothing
    alone = evaluate([entries[-2]], as_of=AS_OF, origin="t")
    assert {alone.control(c).status for c in ("si-7", "sr-4", "au-11", "cm-14")} == {NOT_ASSESSED}


@pytest.mark.parametrize("kind", ["ci.explanation", "vault.explanation", "attestation.explanation"])
def test_an_audited_system_cannot_explain_away_audit_tampering(kind: str) -> None:
    """Only out-of-band evidence (a 'fedledger append' line, the explained_seqs setting) explains a
    StopLogging: a generic 'ci.job.explanation' webhook event, sent from the very pipeline being audited,
    must not."""
    events = complete_story(1)
    stop = event("aws.trail_change", datetime(2026, 11, 20, 15, 0), action="StopLogging",
                 attrs={"event_name": "StopLogging", "region": "us-gov-west-1"})
    events.append(stop)
    stop_seq = len(events) - 1
    events.append(event(kind, datetime(2026, 11, 20, 16, 0), attrs={"explains": [stop_seq]}))
    assessment, _ = run(events)
    assert f"audit-trail-integrity:tamper:{stop_seq}" in {f.id for f in assessment.control("au-9").findings}


def test_inference_call_with_an_expired_certificate_fails_transmission_protection() -> None:
    """A call that succeeded with a client certificate past its TTL shows the endpoint did not enforce mTLS."""
    events = complete_story(1)
    cert = find(events, "vault.pki_issue")
    cert["attrs"]["ttl"] = 120  # 14:00:33 + 2 minutes (+ 5 minutes of clock skew); the call is at 14:10:05
    assessment, entries = run(events)
    assert {"sc-8", "sc-12"} <= failing(assessment)
    call = seq_of(entries, find(events, "ci.inference_call"))
    (finding,) = [f for f in assessment.control("sc-8").findings if f.check == "mtls-inference"]
    assert finding.id == f"mtls-inference:cert-expired:{call}" and finding.seqs == (seq_of(entries, cert), call)
    cert["attrs"]["ttl"] = 1800
    assert run(events)[0].control("sc-8").status == SATISFIED


def test_deleted_attestation_is_a_retention_finding_only() -> None:
    """A delete marker (attestation.deleted) is an AU-11/AU-9 finding, never an unsigned attestation
    or one stored without Object Lock or KMS (it has no such attrs)."""
    events = complete_story(1)
    deleted = event("attestation.deleted", datetime(2026, 11, 20, 16, 0), action="s3:DeleteObject",
                    resource="s3://att/prov.dsse.json", status="failure",
                    attrs={"object_key": "prov.dsse.json", "version_id": "m1", "delete_marker_version_id": "m1",
                           "previous_version_id": "v1", "deleted_by": None})
    before, _ = run(events)
    assessment, entries = run(events + [deleted])
    findings = [f for f in assessment.control("au-11").findings if f.id.startswith("attestation-retention:deleted")]
    assert len(findings) == 1 and findings[0].seqs == (seq_of(entries, deleted),)
    assert "v1" in findings[0].description and "CloudTrail" in findings[0].description
    assert any(f.id == findings[0].id for f in assessment.control("au-9").findings)
    for control in ("si-7", "sc-28", "sc-13"):
        assert assessment.control(control).status == before.control(control).status, control
    for control in ("si-7", "sc-28"):
        assert not [f for f in assessment.control(control).findings
                    if f.id.startswith(("signed-attestation:", "attestation-encryption:"))], control


@pytest.mark.parametrize(("settings", "message"), [
    ({"freshness_days_per_ksi": {"KSI-SVC-ASN": 2}}, "unknown KSI KSI-SVC-ASN"),  # a typo of KSI-SVC-ASM
    ({"freshness_days_per_ksi": {"KSI-SVC-ASM": 0}}, "KSI-SVC-ASM must be a whole number of days, at least 1"),
    ({"freshness_days_per_ksi": {"KSI-SVC-ASM": 1.5}}, "KSI-SVC-ASM must be a whole number of days"),
    ({"freshness_days_per_source": {"vault": "2"}}, "vault must be a whole number of days"),
    ({"freshness_days_per_source": {"vault": True}}, "vault must be a whole number of days"),
    ({"freshness_days_per_source": {"vault": -1}}, "vault must be a whole number of days, at least 1"),
    ({"freshness_days": 0}, "freshness_days must be a whole number of days, at least 1"),
])
def test_cadence_settings_refuse_what_would_be_ignored_or_truncated(settings, message) -> None:
    # An unknown KSI named no control, so its cadence was silently never applied; 1.5 days became 1.
    with pytest.raises(UsageError, match=message):
        EvaluationConfig.from_mapping(settings)


def test_cadence_settings_accept_every_known_ksi_in_any_case() -> None:
    config = EvaluationConfig.from_mapping({"freshness_days_per_ksi": {"ksi-svc-asm": 2, "KSI-CED-RAT": 3}})
    assert dict(config.freshness_days_per_ksi) == {"KSI-SVC-ASM": 2, "KSI-CED-RAT": 3}


def test_pki_ca_change_needs_an_explanation_and_never_comes_from_a_job() -> None:
    """Signing an intermediate outside the pipeline must be explained; the pipeline itself doing it
    is a high finding whatever explains it."""
    from tests.synthetic_jobs import job_ids

    events = complete_story(1)
    admin = event("vault.pki_ca_change", datetime(2026, 11, 20, 15, 0), actor="entity-admin", action="update",
                  resource="pki/root/sign-intermediate", correlation={"vault_entity_id": "entity-admin"},
                  attrs={"ca_operation": "sign-intermediate", "mount": "pki"})
    assessment, entries = run(events + [admin])
    admin_seq = seq_of(entries, admin)
    (finding,) = [f for f in assessment.control("sc-12").findings if f.check == "pki-ca-changes"]
    assert finding.seqs == (admin_seq,) and finding.severity == "moderate" and "sign-intermediate" in finding.description
    assert "cm-5" in failing(assessment)
    explained, _ = run(events + [admin], config=EvaluationConfig(explained_seqs=(admin_seq,)))
    check = next(c for c in explained.checks if c.check == "pki-ca-changes")
    assert check.status == SATISFIED and not check.findings
    failed = dict(admin, outcome={"status": "failure", "error": "permission denied"})
    refused, _ = run(events + [failed])
    assert next(c for c in refused.checks if c.check == "pki-ca-changes").status == SATISFIED
    by_job = event("vault.pki_ca_change", datetime(2026, 11, 20, 14, 2), actor=job_ids(0)["vault_entity_id"],
                   action="update", resource="pki/root/generate/internal",
                   correlation={"vault_entity_id": job_ids(0)["vault_entity_id"]},
                   attrs={"ca_operation": "generate-root", "mount": "pki"})
    assessment, entries = run(events + [by_job])
    job_seq = seq_of(entries, by_job)
    explained_job, _ = run(events + [by_job], config=EvaluationConfig(explained_seqs=(job_seq,)))
    for result in (assessment, explained_job):
        (finding,) = [f for f in result.control("sc-12").findings if f.check == "pki-ca-changes"]
        assert finding.seqs == (job_seq,) and finding.severity == "high" and finding.job_id == str(story.JOB_ID)


def test_pki_ca_changes_not_assessed_without_pki_evidence() -> None:
    events = [e for e in complete_story(1) if e["kind"] != "vault.pki_issue"]
    assessment, _ = run(events)
    assert next(c for c in assessment.checks if c.check == "pki-ca-changes").status == NOT_ASSESSED


def test_an_inference_call_placed_in_no_job_is_a_gate_finding() -> None:
    """A call nobody can tie to a job has no gate to show: a finding, never an unjudged 'not assessed'."""
    events = complete_story(1)
    stray = event("ci.inference_call", datetime(2026, 11, 22, 3, 0), actor="someone", action="inference_call",
                  resource="https://ai.example.gov/v1/infer", attrs={"ai_endpoint": "https://ai.example.gov/v1/infer"})
    assessment, entries = run(events + [stray], as_of="2026-11-23T00:00:00Z")
    gate = next(c for c in assessment.checks if c.check == "policy-gate")
    (finding,) = [f for f in gate.findings if f.id == "policy-gate:unattributed-calls"]
    assert finding.seqs == (seq_of(entries, stray),) and finding.job_id is None
    alone, _ = run([stray], as_of="2026-11-23T00:00:00Z")
    assert next(c for c in alone.checks if c.check == "policy-gate").status == NOT_SATISFIED
    clean, _ = run(events, as_of="2026-11-23T00:00:00Z")
    assert not [f for f in next(c for c in clean.checks if c.check == "policy-gate").findings]
