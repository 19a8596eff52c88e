"""`fedledger status`: freshness per source against its cadence, exit 1 when anything is stale."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from collector import run as run_module
from collector.config import SourceConfig
from collector.ledger_stats import ledger_stats
from collector.run import PlannedCollection, RunContext
from tests.ops_workspace import AS_OF, make_workspace, manual_source, write_events


def _two_sources(tmp_path: Path):  # type: ignore[no-untyped-def]
    write_events(tmp_path / "recent.jsonl", 20, day=20)  # newest 2026-01-20T00:00:19Z
    write_events(tmp_path / "old.jsonl", 10, day=5)  # newest 2026-01-05T00:00:09Z
    ws = make_workspace(tmp_path, manual_source("recent", "recent.jsonl", "ksi-3d")
                        + manual_source("old", "old.jsonl", "ksi-7d") + manual_source("uncadenced", "old.jsonl", None))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    return ws


def test_stale_source_makes_status_exit_1(tmp_path: Path) -> None:
    ws = _two_sources(tmp_path)
    result = ws.cli("status", "--config", str(ws.config), "--as-of", AS_OF)
    assert result.exit_code == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("  STALE old [manual] 10 entries") and "newest evidence is older than ksi-7d" in line
               for line in lines), lines
    assert any(line.startswith("  ok    recent [manual] 20 entries") for line in lines), lines
    assert lines[-1] == "3 source(s): 1 fresh, 1 STALE, 1 not checked"


def test_all_fresh_exits_0_and_json_for_monitoring(tmp_path: Path) -> None:
    ws = _two_sources(tmp_path)
    result = ws.cli("status", "--config", str(ws.config), "--as-of", "2026-01-08T00:00:00Z", "--format", "json")
    assert result.exit_code == 0, result.stdout
    doc = json.loads(result.stdout)
    assert doc["kind"] == "fedledger.status" and doc["version"] == 1 and doc["ok"] is True and doc["stale"] == []
    by_name = {s["name"]: s for s in doc["sources"]}
    assert by_name["old"]["entries"] == 10 and by_name["old"]["newest_evidence"] == "2026-01-05T00:00:09Z"
    assert by_name["old"]["newest_evidence_age_s"] == 3 * 86400 - 9
    assert by_name["old"]["cadence_seconds"] == 7 * 86400 and by_name["old"]["last_collection"] == AS_OF
    assert by_name["old"]["last_run_ok"] is True and by_name["old"]["matched_by"] == "plan"
    assert by_name["uncadenced"]["stale"] is False and by_name["uncadenced"]["reason"] == "no cadence configured"
    ledger = doc["ledger"]
    assert ledger["size"] == 30 and ledger["latest_checkpoint"]["size"] == 30
    assert ledger["latest_checkpoint"]["unsigned_entries"] == 0
    # the checkpoint was created "at" the run's as_of; age is measured from the status as_of
    assert ledger["latest_checkpoint"]["age_s"] == -13 * 86400


def test_source_with_no_evidence_is_stale_and_failed_run_reported(tmp_path: Path) -> None:
    write_events(tmp_path / "a.jsonl", 3)
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl") + manual_source("never", "missing/", "24h"))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 3
    result = ws.cli("status", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 1
    never = {s["name"]: s for s in json.loads(result.stdout)["sources"]}["never"]
    assert never["stale"] is True and never["reason"] == "no evidence collected yet"
    assert never["last_run_ok"] is False and never["last_error"] == "SourceUnavailable"
    assert never["last_collection"] is None


def test_global_options_before_the_command_work_too(tmp_path: Path) -> None:
    ws = _two_sources(tmp_path)
    result = ws.cli("--format", "json", "--as-of", "2026-01-08T00:00:00Z", "status", "--config", str(ws.config))
    assert result.exit_code == 0 and json.loads(result.stdout)["as_of"] == "2026-01-08T00:00:00Z"


def test_status_without_a_config_lists_ledger_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _two_sources(tmp_path)
    monkeypatch.chdir(tmp_path / "ledger")
    monkeypatch.delenv("FEDLEDGER_CONFIG", raising=False)
    result = ws.cli("--ledger", str(ws.ledger), "status", "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["sources"] == [] and len(doc["unconfigured_sources"]) == 2


def test_unavailable_collector_matches_ledger_sources_by_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_run import _OneShot

    def factory(source: SourceConfig, context: RunContext) -> Sequence[PlannedCollection]:
        return [PlannedCollection(_OneShot(), "fake:x", "mem")]

    ws = make_workspace(tmp_path, '[[sources]]\nname = "v"\nkind = "vault"\nlocation = "x"\ncadence = "3d"\n')
    monkeypatch.setitem(run_module.SOURCE_FACTORIES, "vault", factory)
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    monkeypatch.setitem(run_module.SOURCE_FACTORIES, "vault", "collector.sources.not_here:build_sources")
    result = ws.cli("status", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    v = json.loads(result.stdout)["sources"][0]
    assert v["entries"] == 1 and v["quarantined"] == 1 and v["source_ids"] == ["fake:x"]
    assert result.exit_code == 0


def test_ledger_stats_are_read_only_aggregates(tmp_path: Path) -> None:
    ws = _two_sources(tmp_path)
    stats = ledger_stats(ws.ledger)
    assert stats.size == 30 and stats.checkpoints == 1 and stats.origin == "example.gov/ops-test"
    old = stats.source(f"manual:{tmp_path / 'old.jsonl'}")
    assert old is not None and old.entries == 10 and old.oldest_event_time == "2026-01-05T00:00:00Z"
    assert old.last_cursor_update == AS_OF


def test_stats_cache_counts_only_new_entries_and_survives_rollback(tmp_path: Path) -> None:
    import shutil

    from collector.ledger_stats import stats_cache_path

    events = write_events(tmp_path / "a.jsonl", 20)
    ws = make_workspace(tmp_path / "ws", manual_source("a", str(events)))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    first = ledger_stats(ws.ledger)
    assert stats_cache_path(ws.ledger).exists()
    shutil.copytree(ws.ledger.parent, tmp_path / "old")
    with open(events, "a") as handle:
        handle.write('{"time":"2026-01-20T23:59:59Z","kind":"manual.review","n":"late"}\n')
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    grown = ledger_stats(ws.ledger)
    assert grown == ledger_stats(ws.ledger, use_cache=False)
    (only,) = grown.sources
    assert only.entries == 21 and only.newest_event_time == "2026-01-20T23:59:59Z"
    # roll the ledger back but keep the newer cache: the cache no longer matches and is ignored
    cache = stats_cache_path(ws.ledger).read_bytes()
    shutil.rmtree(ws.ledger.parent)
    shutil.copytree(tmp_path / "old", ws.ledger.parent)
    stats_cache_path(ws.ledger).write_bytes(cache)
    assert ledger_stats(ws.ledger).sources == first.sources


def _vault_log(path: Path, day: int, tag: str) -> None:
    """The sample Vault audit log with every time moved to 2026-01-<day> and request ids made unique by *tag*."""
    import re

    text = (Path(__file__).resolve().parent.parent / "samples" / "vault" / "audit.log").read_text()
    text = re.sub(r'"time":"\d{4}-\d\d-\d\dT', f'"time":"2026-01-{day:02d}T', text)
    text = re.sub(r'"id":"([0-9a-f]{8})-', lambda m: f'"id":"{tag}{m.group(1)[len(tag):]}-', text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_two_sources_of_one_kind_sharing_a_source_id_are_told_apart_by_location(tmp_path: Path) -> None:
    # Every Vault entry has source.id "vault": with two Vault servers configured, each source was
    # credited with both servers' entries, so one that stopped logging never showed as stale.
    _vault_log(tmp_path / "prod" / "audit.log", 20, "aa")
    _vault_log(tmp_path / "dr" / "audit.log", 10, "bb")
    vault = '[[sources]]\nname = "{}"\nkind = "vault"\nlocations = ["{}"]\ncadence = "ksi-3d"\n\n'
    ws = make_workspace(tmp_path, vault.format("vault-prod", "prod/audit.log") + vault.format("vault-dr", "dr/"))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    result = ws.cli("status", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    doc = json.loads(result.stdout)
    by_name = {s["name"]: s for s in doc["sources"]}
    assert by_name["vault-prod"]["entries"] == 28 and by_name["vault-dr"]["entries"] == 28
    assert by_name["vault-prod"]["newest_evidence"].startswith("2026-01-20T")
    assert by_name["vault-dr"]["newest_evidence"].startswith("2026-01-10T")
    assert doc["stale"] == ["vault-dr"] and result.exit_code == 1


def test_status_splitting_a_shared_id_reads_only_what_was_appended_since_the_last_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the CLI: the second status after a run reads the new entries only, and its numbers
    # are those of a status without caches.
    from collector.ledger_stats import locations_cache_path, stats_cache_path

    _vault_log(tmp_path / "prod" / "audit.log", 20, "aa")
    _vault_log(tmp_path / "dr" / "audit.log", 10, "bb")
    vault = '[[sources]]\nname = "{}"\nkind = "vault"\nlocations = ["{}"]\ncadence = "ksi-3d"\n\n'
    ws = make_workspace(tmp_path, vault.format("vault-prod", "prod/audit.log") + vault.format("vault-dr", "dr/"))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    status = ("status", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert ws.cli(*status).exit_code == 1
    _vault_log(tmp_path / "dr" / "audit2.log", 19, "dd")  # the DR server logs again
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    spy = _ReadSpy()
    spy.install(monkeypatch)
    second = ws.cli(*status)
    scans = spy.entry_scans()
    assert scans and all("seq >= 56 AND seq < 84" in s for s in scans), scans
    assert second.exit_code == 0, second.stdout
    by_name = {s["name"]: s for s in json.loads(second.stdout)["sources"]}
    assert by_name["vault-dr"]["entries"] == 56 and by_name["vault-prod"]["entries"] == 28
    assert by_name["vault-dr"]["newest_evidence"].startswith("2026-01-19T")
    stats_cache_path(ws.ledger).unlink()
    locations_cache_path(ws.ledger).unlink()
    spy.statements.clear()
    uncached = ws.cli(*status)
    assert all("seq >= 0 AND seq < 84" in s for s in spy.entry_scans())
    assert json.loads(uncached.stdout)["sources"] == json.loads(second.stdout)["sources"]


def test_what_a_configured_location_covers() -> None:
    from collector.rotation import covers_location as _covers

    named = ("/var/log/vault/audit.log",)
    for seen in ("/var/log/vault/audit.log", "/var/log/vault/audit.log.1", "/var/log/vault/audit.log-20261125",
                 "/var/log/vault/audit.log.1.gz"):
        assert _covers(named, seen), seen
    for other in ("/var/log/vault/audit.log2", "/var/log/vault-dr/audit.log", "/var/log/vault/other.log"):
        assert not _covers(named, other), other
    assert _covers(("/var/log/vault-dr/",), "/var/log/vault-dr/sub/audit.log")
    assert not _covers(("/var/log/vault-dr",), "/var/log/vault-dr2/audit.log")


def test_a_disabled_source_is_not_marked_ok(tmp_path: Path) -> None:
    # It was marked "ok" while the tally counted it as "not checked".
    write_events(tmp_path / "a.jsonl", 2)
    off = manual_source("off", "gone/", "ksi-3d").replace("cadence", "enabled = false\ncadence")
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl") + off)
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    lines = ws.cli("status", "--config", str(ws.config), "--as-of", AS_OF).stdout.splitlines()
    assert any(line.startswith("  -     off [manual] 0 entries") and "disabled" in line for line in lines), lines
    assert lines[-1] == "2 source(s): 1 fresh, 0 STALE, 1 not checked"


def test_last_collection_of_a_vault_source_without_a_journal_line(tmp_path: Path) -> None:
    # A run killed after committing batches writes no journal line; Vault keeps its cursors per
    # file ("vault:<file>") while its entries say "vault", so status said "last collection never".
    _vault_log(tmp_path / "v" / "audit.log", 20, "cc")
    ws = make_workspace(tmp_path, '[[sources]]\nname = "vault"\nkind = "vault"\nlocations = ["v/audit.log"]\n'
                                  'cadence = "ksi-3d"\n')
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    (ws.ledger.parent / "fedledger.db.runs.jsonl").unlink()  # as if the run had been killed before its end
    doc = json.loads(ws.cli("status", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json").stdout)
    assert doc["sources"][0]["entries"] == 28 and doc["sources"][0]["last_collection"] == AS_OF


# -- per-location counts of a shared source id: counted once, then only what was appended ---------

class _ReadSpy:
    """Every statement the status readers run (read-only connections only), with its bound values,
    and an optional hook run just before a statement executes (to append behind its back)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.before: Any = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import sqlite3

        spy = self
        real_connect = sqlite3.connect

        class Traced(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
                if spy.before is not None:
                    spy.before(sql)
                return super().execute(sql, *args)

        def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
            if "mode=ro" not in str(database):
                return real_connect(database, *args, **kwargs)
            conn = real_connect(database, *args, factory=Traced, **kwargs)
            conn.set_trace_callback(spy.statements.append)
            return conn

        monkeypatch.setattr(sqlite3, "connect", connect)

    def entry_scans(self) -> list[str]:
        """The statements that read entry bodies (what costs time on a large ledger)."""
        return [" ".join(s.split()) for s in self.statements if "FROM entries" in s and "body" in s]


def _vault_entries(start: int, count: int, location: str, day: int = 20) -> list[Any]:
    from collector.ledger import NewEntry

    return [NewEntry({"kind": "vault", "id": "vault", "location": location, "line": i + 1},
                     "2026-01-20T00:00:00Z",
                     {"time": f"2026-01-{day:02d}T00:{i // 60 % 60:02d}:{i % 60:02d}Z", "kind": "vault.login",
                      "actor": "a", "action": "login", "resource": "r", "outcome": {"status": "success", "error": None},
                      "correlation": {}, "attrs": {"n": i}},
                     hashlib.sha256(f"{location}:{i}".encode()).hexdigest(), 10)
            for i in range(start, start + count)]


def _shared_ledger(tmp_path: Path) -> Path:
    from collector.ledger import Ledger

    path = tmp_path / "l.db"
    with Ledger.create(path, "example.gov/ops-test", created="2026-01-20T00:00:00Z", key_type="ed25519") as ledger:
        ledger.append(_vault_entries(0, 30, "/var/log/vault/audit.log")
                      + _vault_entries(0, 20, "/var/log/vault-dr/audit.log", day=10))
    return path


def test_second_location_count_reads_only_entries_after_the_last_counted_seq(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from collector.ledger import Ledger
    from collector.ledger_stats import location_stats

    path = _shared_ledger(tmp_path)
    spy = _ReadSpy()
    spy.install(monkeypatch)
    first = location_stats(path, ["vault"])
    assert [(x.location, x.entries) for x in first["vault"]] == [
        ("/var/log/vault-dr/audit.log", 20), ("/var/log/vault/audit.log", 30)]
    assert spy.entry_scans() and all("seq >= 0 AND seq < 50" in s for s in spy.entry_scans()), spy.entry_scans()
    # Behind status's back, move an already counted entry to another location: a second call that
    # rescanned would see it; one that reads only entries after the last counted seq cannot.
    conn = sqlite3.connect(path)
    body = conn.execute("SELECT body FROM entries WHERE seq = 3").fetchone()[0]
    conn.execute("UPDATE entries SET body = ? WHERE seq = 3",
                 (bytes(body).replace(b"/var/log/vault/audit.log", b"/var/log/elsewhere.log"),))
    conn.commit()
    conn.close()
    with Ledger.open(path) as ledger:
        ledger.append(_vault_entries(30, 5, "/var/log/vault/audit.log"))
    spy.statements.clear()
    second = location_stats(path, ["vault"])
    assert [(x.location, x.entries) for x in second["vault"]] == [
        ("/var/log/vault-dr/audit.log", 20), ("/var/log/vault/audit.log", 35)]
    scans = spy.entry_scans()
    assert len(scans) == 1 and "seq >= 50 AND seq < 55" in scans[0], scans
    spy.statements.clear()
    assert location_stats(path, ["vault"]) == second and spy.entry_scans() == []  # nothing new: nothing read
    # the full scan does see the edited entry: the saving above came from not reading it
    full = location_stats(path, ["vault"], use_cache=False)
    assert ("/var/log/elsewhere.log", 1) in [(x.location, x.entries) for x in full["vault"]]


def test_location_counts_equal_a_full_scan_after_appends_rollback_and_a_new_id(tmp_path: Path) -> None:
    import shutil

    from collector.ledger import Ledger
    from collector.ledger_stats import location_stats, locations_cache_path

    path = _shared_ledger(tmp_path)
    assert location_stats(path, ["vault"]) == location_stats(path, ["vault"], use_cache=False)
    assert locations_cache_path(path).exists()
    shutil.copy(path, tmp_path / "before.db")
    with Ledger.open(path) as ledger:
        ledger.append(_vault_entries(30, 7, "/var/log/vault/audit.log.1"))
        ledger.append(_vault_entries(20, 3, "/var/log/vault-dr/audit.log", day=11))
    grown = location_stats(path, ["vault"])
    assert grown == location_stats(path, ["vault"], use_cache=False)
    dr = {x.location: x for x in grown["vault"]}["/var/log/vault-dr/audit.log"]
    assert dr.entries == 23 and dr.newest_event_time == "2026-01-11T00:00:22Z"
    # An id asked for the first time is counted from seq 0, the others only from where they stopped.
    both = location_stats(path, ["vault", "ci:jobs"])
    assert both == location_stats(path, ["vault", "ci:jobs"], use_cache=False) and both["ci:jobs"] == []
    # Roll the ledger back under the newer cache, then append other entries: the cache's last counted
    # entry is gone or different, so everything is counted again.
    cache = locations_cache_path(path).read_bytes()
    shutil.copy(tmp_path / "before.db", path)
    locations_cache_path(path).write_bytes(cache)
    assert location_stats(path, ["vault"]) == location_stats(path, ["vault"], use_cache=False)
    with Ledger.open(path) as ledger:
        ledger.append(_vault_entries(50, 12, "/var/log/vault/other.log"))
    locations_cache_path(path).write_bytes(cache)
    assert location_stats(path, ["vault"]) == location_stats(path, ["vault"], use_cache=False)
    # A cache that is not ours (garbage, another version) is ignored, never trusted.
    for junk in (b"{", b'{"v": 99}', b'{"v": 1, "covered": 5, "leaf": "00", "ids": {}}'):
        locations_cache_path(path).write_bytes(junk)
        assert location_stats(path, ["vault"]) == location_stats(path, ["vault"], use_cache=False)


def test_entries_committed_while_status_reads_are_counted_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run committing between status's reading of the ledger size and its scans: the scans
    # counted the new entries and the cache recorded the old size, so the next call counted
    # them a second time.
    from collector.ledger import Ledger
    from collector.ledger_stats import location_stats

    spy = _ReadSpy()
    spy.install(monkeypatch)
    for count in (lambda path: location_stats(path, ["vault"]), ledger_stats):
        path = _shared_ledger(tmp_path / count.__name__)
        appended: list[int] = []

        def append_once(sql: str) -> None:
            if "FROM entries" in sql and "body" in sql and not appended:
                appended.append(1)
                with Ledger.open(path) as ledger:
                    ledger.append(_vault_entries(30, 4, "/var/log/vault/audit.log"))

        spy.before = append_once
        count(path)
        spy.before = None
        assert appended
        assert location_stats(path, ["vault"]) == location_stats(path, ["vault"], use_cache=False)
        assert ledger_stats(path) == ledger_stats(path, use_cache=False)


def test_location_counts_after_a_killed_writer_equal_a_full_scan(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from collector.ledger import Ledger
    from collector.ledger_stats import location_stats

    path = _shared_ledger(tmp_path)
    assert location_stats(path, ["vault", "manual:test"])["manual:test"] == []
    # tests.crash_appender writes "manual:test" entries batch by batch; kill it midway, reading
    # status while it writes.
    proc = subprocess.Popen([sys.executable, "-m", "tests.crash_appender", str(path), "k", "400", "25"],
                            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(3):
        proc.stdout.readline()
        location_stats(path, ["vault", "manual:test"])
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    with Ledger.open(path) as ledger:
        size = ledger.size
    assert 50 < size < 50 + 400 * 25, size
    counted = location_stats(path, ["vault", "manual:test"])
    assert counted == location_stats(path, ["vault", "manual:test"], use_cache=False)
    assert sum(x.entries for x in counted["manual:test"]) == size - 50
