"""Review of ``fedledger status``'s counts caches: odd entries, odd cache rows and a status whose
PostgreSQL transaction outlives the server's patience. Every cached answer is compared with a full
recount (``use_cache=False``), and the per-source counts with the ledger's size."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.ledger import Ledger, NewEntry
from collector.ledger_open import create_ledger, open_ledger
from collector.ledger_stats import ledger_stats, location_stats
from collector.ledger_stats_pg import ledger_stats_pg, location_stats_pg
from tests.ledger_fixtures import OBSERVED, ORIGIN, manual_entry
from tests.ops_workspace import AS_OF
from tests.pg_support import NEEDS_PG, pg_url  # noqa: F401 - pg_url is a fixture
from tests.test_status_pg import _q


def _entry(i: int, *, time: Any = "keep", **source: Any) -> NewEntry:
    entry = manual_entry(i)._replace(source={"kind": "manual", "id": "manual:test", "location": "r.jsonl",
                                             "line": i + 1, **source}, dedup_key=None)
    return entry if time == "keep" else entry._replace(event={**entry.event, "time": time})


def _append(url: str | Path, entries: list[NewEntry]) -> None:
    with open_ledger(url) as ledger:
        ledger.append(entries, updated=OBSERVED)


@NEEDS_PG
def test_an_empty_event_time_stays_the_newest_after_entries_without_one(pg_url: str) -> None:
    """max() over "" and NULL is "": the cache merged them with `or`, so "" counted as no time at all."""
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    _append(pg_url, [_entry(0, time=""), _entry(1, time="")])
    assert ledger_stats_pg(pg_url).source("manual:test").newest_event_time == ""  # type: ignore[union-attr]
    assert location_stats_pg(pg_url, ["manual:test"])  # a locations cache to start from
    _append(pg_url, [_entry(2, time=None)])
    assert ledger_stats_pg(pg_url) == ledger_stats_pg(pg_url, use_cache=False)
    assert location_stats_pg(pg_url, ["manual:test"]) == location_stats_pg(pg_url, ["manual:test"], use_cache=False)


def test_numeric_and_text_event_times_do_not_crash_a_cached_sqlite_status(tmp_path: Path) -> None:
    """SQLite's json_extract gives a number for a numeric time; merging a cached number with a newer
    text time raised TypeError (a failed status), where a recount orders numbers before text."""
    path = tmp_path / "l.db"
    Ledger.create(path, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    _append(path, [_entry(0, time=5)])
    ledger_stats(path), location_stats(path, ["manual:test"])
    _append(path, [_entry(1, time="2026-01-01T00:00:00Z"), _entry(2, time=7)])
    assert ledger_stats(path) == ledger_stats(path, use_cache=False)
    assert location_stats(path, ["manual:test"]) == location_stats(path, ["manual:test"], use_cache=False)
    assert ledger_stats(path).source("manual:test").newest_event_time == "2026-01-01T00:00:00Z"  # type: ignore[union-attr]


def _assert_every_entry_counted(stats: Any, size: int) -> None:
    assert stats.size == size and sum(s.entries for s in stats.sources) == size


@NEEDS_PG
def test_a_source_id_written_under_several_kinds_counts_all_its_entries(tmp_path: Path, pg_url: str) -> None:
    """One source id whose entries name two kinds (or none): every entry is counted once under the id,
    with the kind most of them name; one kind's entries were dropped, which one by dict order, so a
    cached status and a recount could disagree."""
    lite = tmp_path / "l.db"
    Ledger.create(lite, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    batches = [[_entry(0), _entry(1), _entry(2, kind="ci")], [_entry(3, kind=None), _entry(4, kind="zz")],
               [_entry(5, kind="ci"), _entry(6, kind="ci"), _entry(7, kind="ci")]]
    size = 0
    for batch in batches:
        _append(pg_url, batch)
        _append(lite, batch)
        size += len(batch)
        for stats in (ledger_stats_pg(pg_url), ledger_stats_pg(pg_url, use_cache=False),
                      ledger_stats(lite), ledger_stats(lite, use_cache=False)):
            _assert_every_entry_counted(stats, size)
            source = stats.source("manual:test")
            assert source is not None and source.oldest_event_time == "2026-11-20T14:00:00Z"
            assert source.newest_event_time == f"2026-11-20T14:00:{size - 1:02d}Z"
        assert ledger_stats_pg(pg_url) == ledger_stats_pg(pg_url, use_cache=False)
    assert ledger_stats_pg(pg_url).source("manual:test").kind == "ci"  # type: ignore[union-attr]


@NEEDS_PG
def test_a_cache_row_of_this_version_with_malformed_counts_is_recounted(pg_url: str) -> None:
    """A status_cache row that says v=1 and matches the ledger's last leaf, but whose counts are not
    [count, newest, oldest, observed] (another fedledger's, an operator's edit): counted again, not a crash."""
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    _append(pg_url, [_entry(i) for i in range(5)])
    ledger_stats_pg(pg_url)
    doc = orjson.loads(_q(pg_url, "SELECT doc FROM ~.status_cache WHERE name = 'stats'")[0][0])
    for bad in ([5], "abcd", [1, 2, 3], ["5", None, None, None], [True, None, None, None], [1, None, None, None, 9],
                [-3, None, None, None], [1, {"t": 1}, None, None]):
        broken = {**doc, "aggregates": [[sid, kind, bad] for sid, kind, _ in doc["aggregates"]]}
        _q(pg_url, "UPDATE ~.status_cache SET doc = %s WHERE name = 'stats'", (orjson.dumps(broken),))
        _append(pg_url, [_entry(100)]) if bad == [5] else None
        assert ledger_stats_pg(pg_url) == ledger_stats_pg(pg_url, use_cache=False), bad


@NEEDS_PG
def test_a_status_is_not_in_a_transaction_while_sources_are_planned(tmp_path: Path, pg_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning a source may take seconds (an S3 listing); the status's transaction was open meanwhile, so
    a server with idle_in_transaction_session_timeout (a common managed-PostgreSQL setting) ended the
    session and the status failed, where before the cache it answered."""
    from collector import run as run_module
    from tests.test_status_pg import two_vault_servers

    cli = two_vault_servers(tmp_path, pg_url, monkeypatch)
    impatient = pg_url + "&options=-cidle_in_transaction_session_timeout%3D300"
    vault = '[[sources]]\nname = "{}"\nkind = "vault"\nlocations = ["{}"]\ncadence = "ksi-3d"\n\n'
    config = tmp_path / "fedledger.toml"
    config.write_text(f'[ledger]\npath = "{impatient}"\norigin = "{ORIGIN}"\n\n'
                      '[signer]\nkey_file = "keys/fedledger.key"\n\n'
                      + vault.format("vault-prod", "prod/audit.log") + vault.format("vault-dr", "dr/"), encoding="utf-8")
    assert cli.invoke(app, ["run", "--config", str(config), "--as-of", AS_OF]).exit_code == 0
    plan = run_module.plan_source

    def slow_plan(*args: Any, **kwargs: Any) -> Any:  # a listing that takes its time
        time.sleep(0.5)
        return plan(*args, **kwargs)

    monkeypatch.setattr(run_module, "plan_source", slow_plan)
    status = cli.invoke(app, ["status", "--config", str(config), "--as-of", AS_OF, "--format", "json"])
    assert status.exit_code == 1, status.output  # vault-dr is stale
    assert orjson.loads(status.stdout)["stale"] == ["vault-dr"]
