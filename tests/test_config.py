"""fedledger.toml: validation with key and line, secrets only by reference, cadences, `config check`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from collector.config import (
    CADENCE_PRESETS,
    ConfigInvalid,
    SecretRef,
    load_config,
    parse_cadence,
    parse_config,
)
from collector.config_locate import line_of, locate_keys
from collector.errors import SourceUnavailable
from tests.ops_workspace import REPO, make_workspace, manual_source, write_events

BASE = '[ledger]\npath = "l.db"\norigin = "example.gov/x"\n\n'


def problems_of(text: str, name: str = "fedledger.toml") -> list[str]:
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text, Path("/etc/fedledger") / name)
    return info.value.problems


def line_number(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_sample_config_is_valid_and_complete() -> None:
    cfg = load_config(REPO / "samples" / "fedledger.toml")
    kinds = {s.kind for s in cfg.sources}
    assert kinds == {"vault", "ci", "cloudtrail", "attestations", "manual"}
    assert cfg.ledger.origin == "example.gov/ci-evidence"
    # relative paths are relative to the config file's folder
    vault = cfg.source("vault-audit")
    assert vault.locations == (str(REPO / "samples" / "vault" / "audit.log"),)
    assert vault.cadence is not None and vault.cadence.period == timedelta(days=3)
    ci = cfg.source("ci-jobs")
    assert ci.webhook_secret == SecretRef(file=REPO / "samples" / "ci" / "webhook-secret.txt")
    assert ci.options["audiences"] == ("sts.amazonaws.com", "https://vault.agency.gov")
    assert ci.jwks == REPO / "samples" / "ci" / "keys" / "jwks.json"
    att = cfg.source("attestations")
    assert att.trusted_keys_dir == REPO / "samples" / "attestations" / "trusted-keys"
    assert att.options["min_retention_days"] == 365
    assert cfg.bundle.policies_dir == REPO / "samples" / "policies"
    assert cfg.allowed_regions == ("us-gov-west-1", "us-gov-east-1")
    assert cfg.thresholds.secret_reads_per_job == 20


def test_typo_names_the_key_and_its_line() -> None:
    text = BASE + '[[sources]]\nname = "a"\nkind = "manual"\nlocation = "a.jsonl"\ncadnce = "3d"\n'
    problems = problems_of(text)
    assert problems == [
        f"/etc/fedledger/fedledger.toml:{line_number(text, 'cadnce')}: unknown key sources[0].cadnce "
        "for kind 'manual' (did you mean 'cadence'?)"
    ]


def test_typo_in_second_source_and_in_a_table_are_both_reported_with_lines() -> None:
    text = (BASE + '[[sources]]\nname = "a"\nkind = "manual"\nlocation = "a.jsonl"\n\n'
            '[[sources]]\nname = "b"\nkind = "manual"\nlocatoins = ["b/"]\n\n[thresholds]\nsecret_read_per_job = 3\n')
    problems = problems_of(text)
    assert any(p.startswith(f"/etc/fedledger/fedledger.toml:{line_number(text, 'locatoins')}: unknown key "
                            "sources[1].locatoins") for p in problems), problems
    assert any(f":{line_number(text, 'secret_read_per_job')}: unknown key thresholds.secret_read_per_job" in p
               and "did you mean 'secret_reads_per_job'" in p for p in problems), problems


def test_wrong_types_name_key_line_and_type() -> None:
    text = BASE + '[thresholds]\nsecret_reads_per_job = "ten"\n\n[bundle]\nafter_run = 1\n'
    problems = problems_of(text)
    assert f"/etc/fedledger/fedledger.toml:{line_number(text, 'secret_reads')}: thresholds.secret_reads_per_job " \
           "must be an integer, not a string" in problems
    assert f"/etc/fedledger/fedledger.toml:{line_number(text, 'after_run')}: bundle.after_run must be true or false, " \
           "not an integer" in problems


@pytest.mark.parametrize("key", ["webhook_secret", "token", "password", "vault_token", "hmac_key"])
def test_inline_secrets_are_rejected_without_echoing_the_value(key: str) -> None:
    text = BASE + f'[[sources]]\nname = "c"\nkind = "ci"\nlocation = "ci/"\n{key} = "s3cr3t-VALUE"\n'
    problems = problems_of(text)
    assert len(problems) == 1
    assert f":{line_number(text, 's3cr3t')}: sources[0].{key} looks like a secret written in the config" in problems[0]
    assert f"{key}_file" in problems[0] and f"{key}_env" in problems[0]
    assert "s3cr3t" not in "\n".join(problems)


def test_secret_in_any_table_is_rejected() -> None:
    problems = problems_of(BASE + '[signer]\nkms_key_id = "k"\npassword = "hunter2"\n')
    assert "signer.password looks like a secret" in problems[0] and "hunter2" not in problems[0]


def test_counts_named_after_secrets_are_not_secrets() -> None:
    cfg = parse_config(BASE + "[thresholds]\nsecret_reads_per_job = 5\ntoken_renewals_per_job = 2\n", Path("/x/f.toml"))
    assert cfg.thresholds.secret_reads_per_job == 5 and cfg.thresholds.token_renewals_per_job == 2


def test_secret_references_by_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hook.secret").write_text("from-file\n")
    text = BASE + ('[[sources]]\nname = "c"\nkind = "ci"\nlocation = "ci/"\nwebhook_secret_file = "hook.secret"\n\n'
                   '[[sources]]\nname = "d"\nkind = "ci"\nlocation = "ci2/"\nwebhook_secret_env = "HOOK_SECRET"\n')
    cfg = parse_config(text, tmp_path / "fedledger.toml")
    by_file, by_env = cfg.source("c").webhook_secret, cfg.source("d").webhook_secret
    assert by_file is not None and by_env is not None
    assert by_file.read() == b"from-file"
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    assert not by_env.available()
    with pytest.raises(SourceUnavailable, match="HOOK_SECRET is not set"):
        by_env.read()
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    assert by_env.read() == b"from-env"
    assert "from" not in by_file.describe() + by_env.describe()


def test_secret_env_must_be_a_name_and_not_both() -> None:
    problems = problems_of(BASE + '[[sources]]\nname = "c"\nkind = "ci"\nlocation = "ci/"\n'
                                  'webhook_secret_env = "abc def"\nwebhook_secret_file = "x"\n')
    assert any("must be an environment variable NAME" in p for p in problems)
    assert any("not both" in p for p in problems)


def test_option_of_another_kind_says_which_kind_it_belongs_to() -> None:
    text = BASE + '[[sources]]\nname = "v"\nkind = "vault"\nlocation = "v/"\njwks = "jwks.json"\n'
    assert problems_of(text)[0].endswith("unknown key sources[0].jwks for kind 'vault' (it belongs to ci)")


def test_top_level_key_after_a_table_gets_a_hint() -> None:
    text = BASE + '[signer]\nkey_file = "k.pem"\nallowed_regions = ["us-gov-west-1"]\n'
    assert "a top-level key: move it above the first [table]" in problems_of(text)[0]


def test_missing_ledger_and_bad_kind_and_duplicate_names() -> None:
    text = ('[[sources]]\nname = "a"\nkind = "valt"\nlocation = "x"\n\n'
            '[[sources]]\nname = "a"\nkind = "manual"\nlocation = "y"\n')
    problems = problems_of(text)
    assert any("missing required table [ledger]" in p for p in problems)
    assert any(":3: sources[0].kind = 'valt' is not a source kind" in p and "did you mean 'vault'" in p for p in problems)
    assert any(":7: source name 'a' is used twice" in p for p in problems)


def test_invalid_toml_is_one_clear_problem() -> None:
    problems = problems_of(BASE + "[thresholds\n")
    assert len(problems) == 1 and "not valid TOML" in problems[0]


def test_invalid_toml_names_file_and_line_like_every_other_problem() -> None:
    # "file:line: reason", as for every other config problem (it was "file: ... (at line 7, column 24)")
    text = BASE + '[[sources]]\nname = "c"\nwebhook_secret_file = hunter2-SUPERSECRET\n'
    (problem,) = problems_of(text)
    assert problem == "/etc/fedledger/fedledger.toml:7: not valid TOML: Invalid value (column 23)"


@pytest.mark.parametrize(
    ("text", "days"),
    [("ksi-3d", 3), ("ksi-7d", 7), ("vdr-tfr-mvx-class-b", 7), ("vdr-tfr-psd-class-d", 1), ("24h", 1), ("2w", 14)],
)
def test_cadences(text: str, days: int) -> None:
    assert parse_cadence(text).period == timedelta(days=days)


def test_cadence_presets_cite_fedramp_rules() -> None:
    assert all(rule for _, rule in CADENCE_PRESETS.values())
    assert "VDR-TFR-MVX" in CADENCE_PRESETS["ksi-3d"][1]
    with pytest.raises(ValueError, match="neither a duration"):
        parse_cadence("0d")
    with pytest.raises(ValueError):
        parse_cadence("3 days")


def test_cadence_presets_match_the_fedramp_rules_file() -> None:
    from tests.conftest import shared_data

    rules = json.loads(shared_data("fedramp-rules", "fedramp-consolidated-rules.json").read_text())
    mvx = rules["FRR"]["VDR"]["data"]["20x"]["TFR"]["VDR-TFR-MVX"]["varies_by_class"]
    assert "every 3 days" in mvx["c"]["statement"] and "every 7 days" in mvx["b"]["statement"]
    assert "every month" in mvx["a"]["statement"]


def test_locator_skips_multiline_values_and_handles_quoted_and_dotted_keys() -> None:
    text = (
        'top = 1\n'
        'text = """\n'
        'fake = "not a key"\n'
        '"""\n'
        'list = [\n'
        '  "a",  # [not a table]\n'
        ']\n'
        '[a."b.c"]\n'
        'd.e = 2\n'
        "'quoted key' = 3\n"
        '[[arr]]\n'
        'x = 1\n'
        '[[arr]]\n'
        'x = 2\n'
        '[arr.sub]\n'
        'y = { z = 1 }\n'
    )
    found = locate_keys(text)
    assert ("fake",) not in found
    assert found[("top",)] == 1 and found[("list",)] == 5
    assert found[("a", "b.c", "d", "e")] == 9
    assert found[("a", "b.c", "quoted key")] == 10
    assert found[("arr", 0, "x")] == 12 and found[("arr", 1, "x")] == 14
    assert found[("arr", 1, "sub", "y")] == 16
    assert line_of(found, ("arr", 1, "sub", "y", "z")) == 16


def test_config_check_prints_what_would_run(tmp_path: Path) -> None:
    write_events(tmp_path / "ev" / "a.jsonl", 3)
    ws = make_workspace(tmp_path, manual_source("reviews", "ev/") + '[[sources]]\nname = "vault"\nkind = "vault"\n'
                                                                    'location = "vault/"\n')
    result = ws.cli("config", "check", "--config", str(ws.config))
    assert result.exit_code == 0, result.output
    assert "reviews [manual], stale after ksi-7d: would collect 1 stream(s)" in result.stdout
    assert str(tmp_path / "ev" / "a.jsonl") in result.stdout
    assert "vault: no such file or folder" in result.stdout
    strict = ws.cli("config", "check", "--config", str(ws.config), "--strict")
    assert strict.exit_code == 3
    as_json = ws.cli("config", "check", "--config", str(ws.config), "--format", "json")
    doc = json.loads(as_json.stdout)
    assert doc["kind"] == "fedledger.config-check" and doc["version"] == 1
    assert doc["sources"][0]["would_collect"][0]["source_id"] == f"manual:{tmp_path / 'ev' / 'a.jsonl'}"
    assert doc["ledger"]["exists"] is True and doc["ledger"]["size"] == 0


def test_config_check_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "fedledger.toml"
    config.write_text(BASE + '[[sources]]\nname = "a"\nkind = "manual"\nlocation = "a"\ncadnce = "3d"\ntoken = "t0k"\n')
    ws = make_workspace(tmp_path / "unused", "", init=False)
    result = ws.cli("config", "check", "--config", str(config))
    assert result.exit_code == 2
    assert f"{config}:9: unknown key sources[0].cadnce" in result.stderr
    assert f"{config}:10: sources[0].token looks like a secret" in result.stderr
    assert "t0k" not in result.stderr + result.stdout


def test_config_from_environment(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, manual_source("reviews", "ev.jsonl"))
    write_events(tmp_path / "ev.jsonl", 1)
    result = ws.cli("config", "check", env={"FEDLEDGER_CONFIG": str(ws.config)})
    assert result.exit_code == 0 and "reviews [manual]" in result.stdout


def test_missing_config_is_a_usage_error(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, "", init=False)
    result = ws.cli("config", "check", "--config", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "no config file here" in result.stderr


def test_bundle_defaults_follow_the_bundle_command_options() -> None:
    cfg = parse_config(BASE + '[bundle]\nbaseline = "moderate"\narchive = "zip"\ncontrols = ["AU-9"]\n'
                              'catalog = "profile.json"\n', Path("/etc/fedledger/f.toml"))
    assert cfg.bundle.baseline == "moderate" and cfg.bundle.archive == "zip" and cfg.bundle.controls == ("AU-9",)
    assert cfg.bundle.catalog == Path("/etc/fedledger/profile.json")
    problems = problems_of(BASE + '[bundle]\nbaseline = "fedramp-high"\narchive = "rar"\n')
    assert any("bundle.baseline must be one of low, moderate, high, ksi" in p for p in problems)
    assert any("bundle.archive must be one of tar.gz, zip" in p for p in problems)


def test_strictest_cadence_per_kind_for_the_bundler() -> None:
    cfg = load_config(REPO / "samples" / "fedledger.toml")
    by_kind = cfg.cadence_by_kind()
    assert by_kind["vault"].period == timedelta(days=3) and by_kind["cloudtrail"].period == timedelta(days=7)
    assert "manual" not in by_kind  # disabled in the sample


def test_config_check_warns_about_a_secret_file_others_can_read(tmp_path: Path) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text("s")
    secret.chmod(0o644)
    (tmp_path / "ci").mkdir()
    ws = make_workspace(tmp_path, '[[sources]]\nname = "c"\nkind = "ci"\nlocation = "ci/"\n'
                                  'webhook_secret_file = "hook.secret"\n')
    result = ws.cli("config", "check", "--config", str(ws.config), "--format", "json")
    warnings = json.loads(result.stdout)["warnings"]
    assert any("readable by group or others" in w for w in warnings), warnings
    secret.chmod(0o600)
    result = ws.cli("config", "check", "--config", str(ws.config), "--format", "json")
    assert not any("readable" in w for w in json.loads(result.stdout)["warnings"])


@pytest.mark.parametrize("value", ['["s3cr3t-VALUE"]', '{value = "s3cr3t-VALUE"}', "[\n  \"s3cr3t-VALUE\",\n]"])
def test_inline_secret_in_an_array_or_table_is_rejected_too(value: str) -> None:
    # A secret under a secret-named key is refused whatever its TOML type; before, an array or
    # inline table slipped past both the secret scan and the unknown-key check and was ignored.
    text = BASE + f'[[sources]]\nname = "c"\nkind = "ci"\nlocation = "ci/"\nwebhook_secret = {value}\n'
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert f":{line_number(text, 'webhook_secret')}: sources[0].webhook_secret looks like a secret" in problems[0]
    assert "s3cr3t" not in "\n".join(problems)


@pytest.mark.parametrize("url", [
    "postgresql://fedledger:s3cr3t-VALUE@db.internal/evidence?ledger=ci&store=/var/lib/fedledger/objects",
    "postgresql://fedledger@db.internal/evidence?ledger=ci&store=/var/lib/fedledger/objects&password=s3cr3t-VALUE",
])
def test_a_password_in_the_ledger_url_is_a_config_error_that_does_not_echo_it(url: str, tmp_path: Path) -> None:
    # docs/postgresql.md: "A password in the URL is refused". `config check` printed the URL,
    # password included, as "valid"; a `password=` query parameter went on to every log line.
    text = f'[ledger]\npath = "{url}"\norigin = "example.gov/x"\n'
    problems = problems_of(text)
    assert len(problems) == 1 and problems[0].startswith("/etc/fedledger/fedledger.toml:2: ledger.path")
    assert "PGPASSWORD" in problems[0] and "s3cr3t" not in problems[0]
    config = tmp_path / "fedledger.toml"
    config.write_text(text)
    result = make_workspace(tmp_path / "ws", "", init=False).cli("config", "check", "--config", str(config))
    assert result.exit_code == 2 and "s3cr3t" not in result.stdout + result.stderr


def test_a_ledger_url_without_store_is_a_config_error_with_its_line() -> None:
    text = '[ledger]\npath = "postgresql://fedledger@db.internal/evidence?ledger=ci"\norigin = "example.gov/x"\n'
    problems = problems_of(text)
    assert len(problems) == 1 and problems[0].startswith("/etc/fedledger/fedledger.toml:2: ledger.path")
    assert "store=" in problems[0]


def test_config_check_prints_the_ledger_warnings_it_counts(tmp_path: Path) -> None:
    # The human report counted ledger warnings (wrong origin, no ledger yet, cannot connect)
    # in its "N warning(s)" tally but printed only the per-source ones.
    ws = make_workspace(tmp_path, manual_source("reviews", "ev/"), init=False)
    (tmp_path / "ev").mkdir()
    assert ws.cli("--ledger", str(ws.ledger), "init", "--origin", "example.gov/other").exit_code == 0
    result = ws.cli("config", "check", "--config", str(ws.config))
    assert result.exit_code == 0, result.output
    assert "  WARNING: ledger origin is 'example.gov/other', config says 'example.gov/ops-test'" in result.stdout
    assert result.stdout.splitlines()[-1].endswith(", 1 warning(s)")
    missing = make_workspace(tmp_path / "new", manual_source("reviews", "../ev/"), init=False)
    result = missing.cli("config", "check", "--config", str(missing.config))
    assert "  WARNING: no ledger yet at" in result.stdout


def test_config_check_warnings_name_the_file_and_line_of_the_source(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # An unset environment variable or a missing file is only known when checked (the scheduler's
    # environment may differ), so it is a warning, not a parse error; it still says where.
    monkeypatch.delenv("FEDLEDGER_TEST_UNSET", raising=False)
    (tmp_path / "ci").mkdir()
    ws = make_workspace(tmp_path, '[[sources]]\nname = "c"\nkind = "ci"\nlocation = "ci/"\n'
                                  'webhook_secret_env = "FEDLEDGER_TEST_UNSET"\njwks = "gone.json"\n')
    line = line_number(ws.config.read_text(), "[[sources]]")
    result = ws.cli("config", "check", "--config", str(ws.config), "--format", "json")
    warnings = json.loads(result.stdout)["warnings"]
    assert f"{ws.config}:{line}: source c: webhook secret not available (environment variable " \
           "FEDLEDGER_TEST_UNSET)" in warnings, warnings
    assert any(w.startswith(f"{ws.config}:{line}: source c: jwks not found") for w in warnings), warnings
    strict = ws.cli("config", "check", "--config", str(ws.config), "--strict")
    assert strict.exit_code == 3


@pytest.mark.parametrize("value", ["a3f9c04e1b7d22e8f0c6a9b1d3e5f70812ab34cd56ef7890a1b2c3d4e5f60718",
                                   "ghp_16C7e42F292c6912E7710c838347Ae178B4a"])
def test_a_secret_pasted_into_an_env_key_is_refused_without_echoing_it(value: str) -> None:
    # A hex webhook secret or a GitHub token has the shape of a variable name; accepted, it was
    # then printed as "environment variable <secret> is not set" by config check and in run logs.
    text = BASE + f'[[sources]]\nname = "c"\nkind = "ci"\nlocation = "ci/"\nwebhook_secret_env = "{value}"\n'
    (problem,) = problems_of(text)
    assert f":{line_number(text, 'webhook_secret_env')}: sources[0].webhook_secret_env must be " in problem
    assert value not in problem and value[:8] not in problem
