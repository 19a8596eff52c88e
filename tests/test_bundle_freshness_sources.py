"""The bundle's freshness per configured source: two Vault servers in ``fedledger.toml`` are judged on
their own, as ``fedledger status`` judges them, so a server that stopped logging is not hidden by the
other (every Vault entry's source kind and id are ``vault``; where it was read from tells them apart)."""

from __future__ import annotations

import json
from pathlib import Path

from bundler.catalog import load_builtin_catalog, select_controls
from bundler.evaluate import EvaluationConfig, evaluate
from bundler.make_bundle import _entries, evaluation_settings_from_config
from collector.config import load_config
from collector.ledger import Ledger
from tests.ops_workspace import AS_OF, make_workspace
from tests.test_status import _vault_log

VAULT = '[[sources]]\nname = "{}"\nkind = "vault"\nlocations = ["{}"]\ncadence = "{}"\n\n'


def _two_vaults(tmp_path: Path, dr_cadence: str = "ksi-3d"):  # type: ignore[no-untyped-def]
    _vault_log(tmp_path / "prod" / "audit.log", 20, "aa")  # newest 2026-01-20: fresh at AS_OF
    _vault_log(tmp_path / "dr" / "audit.log", 10, "bb")  # newest 2026-01-10: stopped logging
    _vault_log(tmp_path / "elsewhere" / "audit.log", 20, "cc")  # collected by hand, in no configured source
    ws = make_workspace(tmp_path, VAULT.format("vault-prod", "prod/audit.log", "ksi-3d")
                        + VAULT.format("vault-dr", "dr/", dr_cadence))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    assert ws.cli("--ledger", str(ws.ledger), "collect", "vault", str(tmp_path / "elsewhere" / "audit.log")).exit_code == 0
    return ws


def _assess(ws, settings: EvaluationConfig):  # type: ignore[no-untyped-def]
    catalog = load_builtin_catalog()
    with Ledger.open(ws.ledger) as ledger:
        return evaluate(_entries(ledger, ledger.size), as_of=AS_OF, origin=ledger.origin, config=settings,
                        catalog=catalog, controls=select_controls(catalog, controls=["AU-9", "AU-12"]))


def test_a_vault_server_that_stopped_logging_is_stale_in_the_bundle(tmp_path: Path) -> None:
    ws = _two_vaults(tmp_path)
    settings = evaluation_settings_from_config(load_config(ws.config))
    assert [(name, kind, days) for name, kind, _locs, days in settings.freshness_sources] == \
        [("vault-prod", "vault", 3), ("vault-dr", "vault", 3)]
    assessment = _assess(ws, settings)
    states = {f.source: f for f in assessment.freshness}
    assert "vault" not in states  # not pooled: the prod server's entries would hide the silent one
    assert states["vault/vault-prod"].entries == 28 and not states["vault/vault-prod"].stale
    assert states["vault/vault-dr"].entries == 28 and states["vault/vault-dr"].stale
    assert states["vault/vault-dr"].newest.startswith("2026-01-10T")
    checks = {c.check: c for c in assessment.checks if c.kind == "freshness"}
    assert checks["freshness:vault/vault-prod"].status == "satisfied"
    dr = checks["freshness:vault/vault-dr"]
    assert dr.status == "not-satisfied" and "vault-dr" in dr.findings[0].description
    assert {c.status for c in assessment.controls} == {"not-satisfied"}  # AU-9 and AU-12 both speak for Vault
    assert any("28 vault entr(y/ies) were read from locations no configured vault source names" in n
               for n in assessment.notes), assessment.notes


def test_each_source_keeps_its_own_cadence(tmp_path: Path) -> None:
    ws = _two_vaults(tmp_path, dr_cadence="14d")  # dr's 11 days are within its own cadence
    assessment = _assess(ws, evaluation_settings_from_config(load_config(ws.config)))
    states = {f.source: f for f in assessment.freshness}
    assert not states["vault/vault-dr"].stale and states["vault/vault-dr"].cadence_seconds == 14 * 86400
    assert not states["vault/vault-prod"].stale and states["vault/vault-prod"].cadence_seconds == 3 * 86400


def test_without_the_config_the_kind_is_pooled_as_before(tmp_path: Path) -> None:
    ws = _two_vaults(tmp_path)
    states = {f.source: f for f in _assess(ws, EvaluationConfig()).freshness}
    assert states["vault"].entries == 84 and not states["vault"].stale


def test_settings_file_spelling(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"freshness_sources": [
        {"name": "a", "kind": "vault", "locations": ["/var/log/a/"], "days": 1}]}), encoding="utf-8")
    assert EvaluationConfig.from_file(path).freshness_sources == (("a", "vault", ("/var/log/a/",), 1),)


def test_bundle_index_shows_each_configured_source(tmp_path: Path) -> None:
    ws = _two_vaults(tmp_path)
    result = ws.cli("--ledger", str(ws.ledger), "bundle", "--out", str(tmp_path / "out"), "--config", str(ws.config),
                    "--controls", "AU-9", "--as-of", AS_OF, "--workers", "1")
    assert result.exit_code == 0, result.output
    index = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "vault/vault-dr" in index and "vault/vault-prod" in index


def test_the_split_pass_keeps_locations_in_both_processes(tmp_path: Path) -> None:
    import orjson
    import pytest

    from bench.synthetic import ORIGIN, build_ledger
    from bundler.evaluate import evaluate_reading
    from bundler.ledger_slice import LedgerPass
    from collector.errors import UsageError

    world = build_ledger(tmp_path / "l.db", entries=600, jobs=3)  # every entry's location is synthetic:<seq>
    with Ledger.open(world.path) as ledger:
        docs = [orjson.loads(body) for _seq, _leaf, body in ledger.entries()]
        vault = [d["source"]["location"] for d in docs if d["source"]["kind"] == "vault"]
        early = tuple(loc for loc in vault if int(loc.split(":")[1]) < 300)  # one "server" in each process's share
        late = tuple(loc for loc in vault if int(loc.split(":")[1]) >= 300)
        settings = EvaluationConfig(freshness_sources=(("early", "vault", early, 30), ("late", "vault", late, 30)))
        ledger_pass = LedgerPass(ledger, tmp_path / "out", ledger.size, split=256,
                                 location_families=settings.location_families)
        _scan, rows = ledger_pass.run()
        ledger_pass.wait_export()
        plain = LedgerPass(ledger, tmp_path / "plain", ledger.size)
        _scan, plain_rows = plain.run()
        plain.wait_export()
    kwargs = {"as_of": "2026-12-31T00:00:00Z", "origin": ORIGIN, "config": settings}
    one = evaluate([(d["seq"], d["event"], d["source"]) for d in docs], **kwargs)
    assert evaluate_reading(rows, **kwargs) == one
    states = {f.source: f.entries for f in one.freshness}
    assert states["vault/early"] == len(early) and states["vault/late"] == len(late) and early and late
    with pytest.raises(UsageError, match="without their locations"):
        evaluate_reading(plain_rows, **kwargs)
