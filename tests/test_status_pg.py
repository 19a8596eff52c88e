"""``fedledger status`` on PostgreSQL: the counts cache in the ledger's schema, against a real PostgreSQL.

Every cached answer is compared with the same numbers computed without the cache (``use_cache=False``,
a full aggregation over every stored body), and where the content allows, with SQLite's. Skipped, with
the reason, when PostgreSQL is unreachable (tests/pg_support.py).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.ledger import Ledger, NewEntry
from collector.ledger_open import create_ledger, open_ledger
from collector.ledger_pg import PostgresLedger, connect, PostgresLocation
from collector.ledger_stats import ledger_stats, location_stats
from collector.ledger_stats_pg import ledger_stats_pg, location_stats_pg, status_snapshot
from tests.ledger_fixtures import OBSERVED, ORIGIN, manual_entry
from tests.ops_workspace import AS_OF
from tests.pg_support import NEEDS_PG, pg_url  # noqa: F401 - pg_url is a fixture

pytestmark = NEEDS_PG
REPO = Path(__file__).resolve().parent.parent
IDS = ["ci:jobs", "manual:test", "vault"]


def _entry(i: int) -> NewEntry:
    """Entries of three source ids (a fourth from entry 140), the Vault ones read from three files, the CI
    ones from two, the manual ones from one (another from entry 136)."""
    kind, sid, location = [("vault", "vault", f"/var/log/vault/audit-{i // 3 % 3}.log"),
                           ("ci", "ci:jobs", f"/spool/{i % 2}.jsonl"),
                           ("manual", "manual:test" if i < 140 else "manual:late",
                            "reviews.jsonl" if i < 136 else "reviews-2.jsonl")][i % 3]
    return manual_entry(i)._replace(source={"kind": kind, "id": sid, "location": location, "line": i + 1},
                                    dedup_key=None)


def _append(url: str, seqs: range, *, updated: str = OBSERVED) -> None:
    with open_ledger(url) as ledger:
        ledger.append([_entry(i) for i in seqs], cursors={"vault": str(seqs.stop)}, updated=updated)


def _q(url: str, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with PostgresLedger.open(url) as ledger:
        cur = ledger._q(sql, args)
        return cur.fetchall() if cur.description else []


def _cache(url: str, name: str) -> Any:
    """The ``status_cache`` document *name*, or None."""
    rows = _q(url, "SELECT doc FROM ~.status_cache WHERE name = %s", (name,))
    return orjson.loads(rows[0][0]) if rows else None


def _assert_as_recounted(url: str) -> None:
    """Cached statistics (both caches) equal the full recount, which reads every body again."""
    assert ledger_stats_pg(url) == ledger_stats_pg(url, use_cache=False)
    assert location_stats_pg(url, IDS) == location_stats_pg(url, IDS, use_cache=False)


def _roll_back(url: str, size: int) -> None:
    """The ledger as it was at *size* (a restored backup, or an operator's delete): later entries,
    their Merkle nodes and dedup keys gone; the status cache left as it was."""
    _q(url, "DELETE FROM ~.entries WHERE seq >= %s", (size,))
    _q(url, "DELETE FROM ~.nodes WHERE (idx + 1) * (1::bigint << level) > %s", (size,))
    _q(url, "DELETE FROM ~.dedup WHERE seq >= %s", (size,))


def test_status_after_appends_equals_a_full_recount_and_matches_sqlite(tmp_path: Path, pg_url: str) -> None:
    lite = Ledger.create(tmp_path / "l.db", ORIGIN, created=OBSERVED, key_type="ed25519")
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    done = 0
    for grow in (70, 1, 0, 65, 9):  # nothing new once; a new location and a new id on the way
        seqs = range(done, done + grow)
        if grow:
            _append(pg_url, seqs)
            lite.append([_entry(i) for i in seqs], cursors={"vault": str(seqs.stop)}, updated=OBSERVED)
        done += grow
        _assert_as_recounted(pg_url)
        expected = ledger_stats(tmp_path / "l.db", use_cache=False)
        assert replace(ledger_stats_pg(pg_url), path=expected.path) == expected
        assert location_stats_pg(pg_url, IDS) == location_stats(tmp_path / "l.db", IDS, use_cache=False)
        for name in ("stats", "locations"):
            assert _cache(pg_url, name)["covered"] == done
    lite.close()
    # an id asked for the first time is counted from the start, and the others stay counted
    assert location_stats_pg(pg_url, ["vault"]) == location_stats_pg(pg_url, ["vault"], use_cache=False)
    assert location_stats_pg(pg_url, IDS) == location_stats_pg(pg_url, IDS, use_cache=False)


def test_status_reads_only_the_entries_appended_since_the_cache(pg_url: str) -> None:
    """An entry counted once is not read again: edited in the database behind fedledger's back, the cached
    numbers still count it as it was, while a full recount sees the edit (status is not verification:
    `fedledger verify` reports such an edit)."""
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    _append(pg_url, range(30))
    counted = ledger_stats_pg(pg_url), location_stats_pg(pg_url, IDS)
    _q(pg_url, "UPDATE ~.entries SET body = convert_to(replace(convert_from(body, 'UTF8'), "
               "'\"id\":\"vault\"', '\"id\":\"vault:edited\"'), 'UTF8') WHERE seq = 3")
    assert (ledger_stats_pg(pg_url), location_stats_pg(pg_url, IDS)) == counted
    full = ledger_stats_pg(pg_url, use_cache=False)
    assert full != counted[0] and full.source("vault:edited") is not None


def test_a_cache_ahead_of_the_ledger_or_of_another_history_is_not_trusted(pg_url: str) -> None:
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    _append(pg_url, range(100))
    _assert_as_recounted(pg_url)
    saved = {name: _cache(pg_url, name) for name in ("stats", "locations")}
    # the ledger rolled back under a cache that counted 100 entries: the cache is ahead
    _roll_back(pg_url, 90)
    _assert_as_recounted(pg_url)
    assert ledger_stats_pg(pg_url).size == 90 and _cache(pg_url, "stats")["covered"] == 90

    def put_back(docs: dict[str, Any]) -> None:
        for name, doc in docs.items():
            _q(pg_url, "UPDATE ~.status_cache SET doc = %s WHERE name = %s", (orjson.dumps(doc), name))

    # ... then grown past it with other entries: the cache's last counted entry is not the ledger's
    with open_ledger(pg_url) as ledger:
        ledger.append([_entry(i)._replace(event={**manual_entry(i).event, "actor": "other"})
                       for i in range(90, 110)], updated=OBSERVED)
    put_back(saved)
    _assert_as_recounted(pg_url)
    # a cache that is not ours (garbage, another version, a truncated one) is ignored, never trusted
    for junk in ({"stats": b"{not json", "locations": b"[]"},
                 {name: {**doc, "v": 99} for name, doc in saved.items()},
                 {name: {**doc, "covered": 0} for name, doc in saved.items()}):
        for name, doc in junk.items():
            _q(pg_url, "UPDATE ~.status_cache SET doc = %s WHERE name = %s",
               (doc if isinstance(doc, bytes) else orjson.dumps(doc), name))
        _assert_as_recounted(pg_url)
    # a ledger emptied under its cache
    _roll_back(pg_url, 0)
    _assert_as_recounted(pg_url)
    emptied = ledger_stats_pg(pg_url)
    assert emptied.size == 0 and [s.entries for s in emptied.sources] == [0]  # the Vault cursor is kept


def test_one_status_is_one_snapshot_while_a_run_commits(pg_url: str) -> None:
    """The per-source numbers and the per-location ones (read later, after the configured sources are
    planned) come from one snapshot: a batch committed in between is in neither, and is counted once,
    by the next status."""
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    _append(pg_url, range(40))
    ledger_stats_pg(pg_url)  # a cache to start from
    with status_snapshot(pg_url) as snapshot:
        stats = snapshot.ledger_stats()
        _append(pg_url, range(40, 100))  # a run commits meanwhile
        by_location = snapshot.location_stats(IDS)
    assert stats.size == 40
    for sid in IDS:
        assert sum(loc.entries for loc in by_location[sid]) == stats.source(sid).entries  # type: ignore[union-attr]
    assert _cache(pg_url, "stats")["covered"] == _cache(pg_url, "locations")["covered"] == 40
    _assert_as_recounted(pg_url)
    assert ledger_stats_pg(pg_url).size == 100


def test_a_status_ending_after_a_newer_one_keeps_the_newer_cache(pg_url: str) -> None:
    """Each status saves the counts of its own snapshot; one that took its snapshot before another status
    saved a newer cache (PostgreSQL refuses the older write: a serialization failure) still answers, and
    the newer cache stays."""
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    _append(pg_url, range(30))
    with status_snapshot(pg_url) as older:
        assert older.ledger_stats().size == 30
        _append(pg_url, range(30, 60))
        assert ledger_stats_pg(pg_url).size == 60
        assert sum(loc.entries for locs in older.location_stats(IDS).values() for loc in locs) == 30
        assert _cache(pg_url, "stats")["covered"] == 60
    assert _cache(pg_url, "stats")["covered"] == 60
    assert _cache(pg_url, "locations")["covered"] == 30
    _assert_as_recounted(pg_url)


_WRITER = """
import sys, time
from tests.test_status_pg import _append
url, stop, i = sys.argv[1], time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < stop:
    _append(url, range(i, i + 17))
    i += 17
"""


def test_status_calls_at_once_while_a_run_commits(pg_url: str) -> None:
    """Two status callers (each bringing the cache forward) against a committing writer: every status adds
    up within itself, none fails for another's cache write, and afterwards the cache equals a recount."""
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, "3"], cwd=REPO)
    seen: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            while writer.poll() is None:
                with status_snapshot(pg_url) as snapshot:
                    stats = snapshot.ledger_stats()
                    vault = snapshot.location_stats(["vault"])["vault"]
                source = stats.source("vault")
                seen.append((stats.size, sum(s.entries for s in stats.sources),
                             sum(loc.entries for loc in vault) - (source.entries if source else 0)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=watch) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        writer.kill()
        writer.wait()
    assert errors == []
    assert len(seen) > 4 and any(size for size, _, _ in seen)
    assert [(size, counted, diff) for size, counted, diff in seen if counted != size or diff] == []
    _assert_as_recounted(pg_url)


def test_a_user_who_may_only_read_gets_the_status_without_a_cache(tmp_path: Path, pg_url: str) -> None:
    """A monitoring role with SELECT only, and a read-only session (as on a hot standby): status works,
    from the cache where there is one, and writes nothing."""
    create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519").close()
    _append(pg_url, range(20))
    read_only = pg_url + "&options=-cdefault_transaction_read_only%3Don"
    assert ledger_stats_pg(read_only) == ledger_stats_pg(read_only, use_cache=False)
    assert _cache(pg_url, "stats") is None
    ledger_stats_pg(pg_url)  # a writer's status leaves a cache ...
    _append(pg_url, range(20, 30))
    assert ledger_stats_pg(read_only) == replace(ledger_stats_pg(pg_url, use_cache=False), path=read_only)  # read,
    # not written
    assert _cache(pg_url, "stats")["covered"] == 20

    location = PostgresLocation(pg_url)
    role = f"t_reader_{secrets.token_hex(4)}"
    admin = connect(location)
    try:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT USAGE ON SCHEMA {location.schema} TO {role}")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {location.schema} TO {role}")
        as_reader = pg_url.replace("postgresql://postgres@", f"postgresql://{role}@")
        assert ledger_stats_pg(as_reader) == replace(ledger_stats_pg(pg_url, use_cache=False), path=as_reader)
        assert location_stats_pg(as_reader, IDS) == location_stats_pg(pg_url, IDS, use_cache=False)
        assert _cache(pg_url, "stats")["covered"] == 20
        # granted SELECT on the ledger's tables before a status made the cache table: not on that one
        admin.execute(f"REVOKE SELECT ON {location.schema}.status_cache FROM {role}")
        assert ledger_stats_pg(as_reader) == replace(ledger_stats_pg(pg_url, use_cache=False), path=as_reader)
        assert location_stats_pg(as_reader, IDS) == location_stats_pg(pg_url, IDS, use_cache=False)
    finally:
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")
        admin.close()


def two_vault_servers(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A PostgreSQL ledger made by `fedledger init` from *tmp_path*, and two Vault servers' audit logs
    (prod/ 20 lines, dr/ 10 lines) beside it; returns the CLI runner."""
    from tests.test_status import _vault_log

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEDLEDGER_LEDGER", raising=False)
    cli = CliRunner()
    assert cli.invoke(app, ["--ledger", pg_url, "init", "--origin", ORIGIN, "--key-dir", "keys"]).exit_code == 0
    _vault_log(tmp_path / "prod" / "audit.log", 20, "aa")
    _vault_log(tmp_path / "dr" / "audit.log", 10, "bb")
    return cli


def test_status_of_two_vault_servers_through_the_cli(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fedledger status --config` on PostgreSQL, two Vault sources sharing the source id "vault": after
    another run, the cached per-source and per-location numbers are those of a status without caches."""
    from tests.test_status import _vault_log

    cli = two_vault_servers(tmp_path, pg_url, monkeypatch)
    vault = '[[sources]]\nname = "{}"\nkind = "vault"\nlocations = ["{}"]\ncadence = "ksi-3d"\n\n'
    config = tmp_path / "fedledger.toml"
    config.write_text(f'[ledger]\npath = "{pg_url}"\norigin = "{ORIGIN}"\n\n[signer]\nkey_file = "keys/fedledger.key"\n\n'
                      + vault.format("vault-prod", "prod/audit.log") + vault.format("vault-dr", "dr/"), encoding="utf-8")
    run = ("run", "--config", str(config), "--as-of", AS_OF)
    status = ("status", "--config", str(config), "--as-of", AS_OF, "--format", "json")
    assert cli.invoke(app, run).exit_code == 0
    first = cli.invoke(app, status)
    assert first.exit_code == 1 and json.loads(first.stdout)["stale"] == ["vault-dr"], first.output
    _vault_log(tmp_path / "dr" / "audit2.log", 19, "dd")  # the DR server logs again
    assert cli.invoke(app, run).exit_code == 0
    second = cli.invoke(app, status)
    assert second.exit_code == 0, second.output
    by_name = {s["name"]: s for s in json.loads(second.stdout)["sources"]}
    assert by_name["vault-dr"]["entries"] == 56 and by_name["vault-prod"]["entries"] == 28
    assert _cache(pg_url, "stats")["covered"] == _cache(pg_url, "locations")["covered"] == 84
    _q(pg_url, "DELETE FROM ~.status_cache")
    uncached = cli.invoke(app, status)
    assert json.loads(uncached.stdout)["sources"] == json.loads(second.stdout)["sources"]
