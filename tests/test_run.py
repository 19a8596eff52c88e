"""`fedledger run`: independent sources, idempotent re-runs, logs, checkpoints, the factory registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from collector import run as run_module
from collector.config import SourceConfig
from collector.errors import SourceUnavailable
from collector.ledger import Ledger
from collector.run import PlannedCollection, RunContext, resolve_factory
from tests.ops_workspace import (AS_OF, ORIGIN, ledger_contents, make_workspace, manual_source, rewrite_history,
                                 write_events)


def log_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_twice_adds_nothing_the_second_time(tmp_path: Path) -> None:
    write_events(tmp_path / "ev" / "a.jsonl", 120)
    write_events(tmp_path / "ev" / "b.jsonl", 30, day=19)
    ws = make_workspace(tmp_path, manual_source("reviews", "ev/"))
    first = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert first.exit_code == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["kind"] == "fedledger.run" and doc["ok"] is True
    counts = doc["sources"][0]["counts"]
    assert counts == {"read": 150, "appended": 150, "duplicate": 0, "quarantined": 0, "reasons": {}}
    assert doc["checkpoint"]["size"] == 150 and doc["checkpoint"]["new"] is True
    entries, root = ledger_contents(ws.ledger)

    second = ws.cli("run", "--config", str(ws.config), "--as-of", "2026-01-22T00:00:00Z", "--format", "json")
    assert second.exit_code == 0, second.stderr
    doc2 = json.loads(second.stdout)
    assert doc2["sources"][0]["counts"]["appended"] == 0
    assert doc2["checkpoint"] == {**doc["checkpoint"], "new": False}
    assert ledger_contents(ws.ledger) == (entries, root)
    with Ledger.open(ws.ledger) as ledger:
        assert len(ledger.checkpoints()) == 1


def test_appended_lines_are_collected_by_the_next_run(tmp_path: Path) -> None:
    events = write_events(tmp_path / "a.jsonl", 10)
    ws = make_workspace(tmp_path, manual_source("reviews", "a.jsonl"))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    with open(events, "a") as handle:
        handle.write('{"time":"2026-01-20T23:00:00Z","kind":"manual.review","n":"late"}\n')
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF)
    assert result.exit_code == 0
    assert "reviews: 1 read, 1 appended, 0 duplicate, 0 quarantined" in result.stdout
    assert ws.size() == 11


def test_a_failing_source_does_not_stop_the_others_and_is_named(tmp_path: Path) -> None:
    write_events(tmp_path / "good.jsonl", 5)
    (tmp_path / "bad.jsonl").write_text('{"time":"2026-01-20T00:00:00Z","kind":"manual.review"}\nnot json\n')
    sources = (manual_source("broken", "bad.jsonl") + manual_source("missing", "gone/")
               + manual_source("reviews", "good.jsonl")
               + '[[sources]]\nname = "vault-audit"\nkind = "vault"\nlocation = "vault/"\n')
    ws = make_workspace(tmp_path, sources)
    log = tmp_path / "run.log"
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--log-file", str(log))
    assert result.exit_code == 3
    assert "error: 3 source(s) failed: broken, missing, vault-audit" in result.stderr
    assert "reviews: 5 read, 5 appended" in result.stdout
    assert ws.size() == 5  # the broken file is all-or-nothing: its good first line is not appended
    events = log_events(log)
    failed = {e["source"]: e for e in events if e["event"] == "source.failed"}
    assert set(failed) == {"broken", "missing", "vault-audit"}
    assert failed["broken"]["error"] == "MalformedInput" and "bad.jsonl:2" in failed["broken"]["message"]
    assert failed["missing"]["error"] == "SourceUnavailable"
    assert "no such file or folder" in failed["vault-audit"]["message"]  # vault/ does not exist
    assert [e["event"] for e in events][-2:] == ["checkpoint", "run.end"]
    assert events[-1]["exit_code"] == 3


def test_structured_logs_carry_run_id_counts_durations_and_checkpoint(tmp_path: Path) -> None:
    write_events(tmp_path / "a.jsonl", 7)
    ws = make_workspace(tmp_path, manual_source("reviews", "a.jsonl"))
    log = tmp_path / "run.log"
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--log-file", str(log)).exit_code == 0
    events = log_events(log)
    assert [e["event"] for e in events] == ["run.start", "source.done", "checkpoint", "run.end"]
    assert len({e["run_id"] for e in events}) == 1 and all(e["v"] == 1 for e in events)
    done = events[1]
    assert done["source"] == "reviews" and done["counts"]["read"] == 7 and done["counts"]["appended"] == 7
    assert {"duplicate", "quarantined"} <= set(done["counts"]) and done["duration_s"] >= 0
    assert events[2]["size"] == 7 and events[2]["note"].startswith("example.gov/ops-test\n7\n")


def test_json_logs_go_to_stderr_when_not_a_terminal(tmp_path: Path) -> None:
    write_events(tmp_path / "a.jsonl", 2)
    ws = make_workspace(tmp_path, manual_source("reviews", "a.jsonl"))
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines[0]["event"] == "run.start" and lines[-1]["event"] == "run.end"


def test_human_log_lines_on_a_terminal() -> None:
    import io

    stream = io.StringIO()
    log = run_module.RunLog(stream, human=True, run_id="r1")
    log.emit("source.done", source="vault", counts={"read": 3, "appended": 2, "duplicate": 1, "quarantined": 0},
             duration_s=0.5)
    log.emit("source.failed", source="ci", error="SourceUnavailable", message="no such folder")
    assert stream.getvalue().splitlines() == [
        "  vault: 3 read, 2 appended, 1 duplicate, 0 quarantined (0.5s)",
        "  ci: FAILED (SourceUnavailable): no such folder",
    ]


def test_only_selected_sources_and_disabled_ones_skipped(tmp_path: Path) -> None:
    write_events(tmp_path / "a.jsonl", 3)
    write_events(tmp_path / "b.jsonl", 4, day=19)
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl") + manual_source("b", "b.jsonl")
                        + manual_source("c", "gone.jsonl").replace('cadence', 'enabled = false\ncadence'))
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--source", "b")
    assert result.exit_code == 0 and ws.size() == 4
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--source", "nope").exit_code == 2
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0  # c disabled: not a failure
    assert ws.size() == 7


def test_run_without_ledger_or_with_wrong_origin(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl"), init=False)
    result = ws.cli("run", "--config", str(ws.config))
    assert result.exit_code == 3 and "init --origin example.gov/ops-test" in result.stderr
    other = ws.cli("--ledger", str(ws.ledger), "init", "--origin", "example.gov/other")
    assert other.exit_code == 0
    result = ws.cli("run", "--config", str(ws.config))
    assert result.exit_code == 2 and "wrong ledger or wrong config" in result.stderr


def test_checkpoint_verifies_with_the_ledger_key(tmp_path: Path) -> None:
    write_events(tmp_path / "a.jsonl", 9)
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl"))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    result = ws.cli("--ledger", str(ws.ledger), "verify", "--origin", "example.gov/ops-test",
                    "--trusted-key", str(ws.ledger.with_suffix(".pub")))
    assert result.exit_code == 0, result.stdout + result.stderr


def test_bundle_hook_missing_fails_the_step_with_exit_3(tmp_path: Path) -> None:
    write_events(tmp_path / "a.jsonl", 2)
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl"))
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--bundle", "--format", "json")
    doc = json.loads(result.stdout)
    try:
        import bundler.bundle  # noqa: F401
    except ModuleNotFoundError:
        assert result.exit_code == 3 and doc["failed_steps"][0]["step"] == "bundle"
        assert "bundle failed" in result.stderr
        assert ws.size() == 2  # collection and checkpoint happened before the bundle step
    else:  # after the merge the hook exists; its own tests cover it
        assert doc["failed_sources"] == []


class _OneShot(run_module.Source):
    kind = "fake"

    def collect(self, cursors):  # type: ignore[no-untyped-def]
        from collector.evidence import CursorMark, SourceRecord

        if "fake:x" in cursors:
            return
        yield SourceRecord(location="mem", line=1, raw=b"r1", event={"time": "2026-01-20T00:00:00Z", "kind": "fake.e"})
        yield SourceRecord(location="mem", line=2, raw=b"r2", reason="unparseable")
        yield CursorMark("fake:x", "done")


def test_registered_factory_is_used_and_quarantine_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[SourceConfig] = []

    def factory(source: SourceConfig, context: RunContext) -> Sequence[PlannedCollection]:
        calls.append(source)
        assert context.observed == AS_OF
        return [PlannedCollection(_OneShot(), "fake:x", "in memory")]

    monkeypatch.setitem(run_module.SOURCE_FACTORIES, "vault", factory)
    ws = make_workspace(tmp_path, '[[sources]]\nname = "v"\nkind = "vault"\nlocation = "x"\n')
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 0, result.stderr
    counts = json.loads(result.stdout)["sources"][0]["counts"]
    assert counts == {"read": 2, "appended": 1, "duplicate": 0, "quarantined": 1, "reasons": {"unparseable": 1}}
    assert calls[0].name == "v"


def test_lazy_factory_import_failure_is_source_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(run_module.SOURCE_FACTORIES, "vault", "collector.sources.no_such_module:build_sources")
    with pytest.raises(SourceUnavailable, match="not available in this build"):
        resolve_factory("vault")
    monkeypatch.setitem(run_module.SOURCE_FACTORIES, "vault", "collector.sources.manual:no_such_factory")
    with pytest.raises(SourceUnavailable, match="has no no_such_factory"):
        resolve_factory("vault")


def test_a_crashing_collector_is_isolated_without_its_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def factory(source: SourceConfig, context: RunContext) -> Sequence[PlannedCollection]:
        raise KeyError("secret-value-that-must-not-be-logged")

    monkeypatch.setitem(run_module.SOURCE_FACTORIES, "ci", factory)
    write_events(tmp_path / "a.jsonl", 2)
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl") + '[[sources]]\nname = "c"\nkind = "ci"\nlocation = "x"\n')
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF)
    assert result.exit_code == 3 and ws.size() == 2
    assert "secret-value" not in result.stdout + result.stderr
    assert "KeyError in the ci collector" in result.stdout


def test_run_signs_checkpoints_with_aws_kms(tmp_path: Path, moto_endpoint: str) -> None:
    import boto3
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-east-1")
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public = tmp_path / "kms.pub"
    public.write_bytes(load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"]).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    write_events(tmp_path / "a.jsonl", 4)
    signer = f'[signer]\nkms_key_id = "{key_id}"\nregion = "us-east-1"\nendpoint_url = "{moto_endpoint}"\n'
    ws = make_workspace(tmp_path / "ws", manual_source("a", str(tmp_path / "a.jsonl")), extra_toml=signer, init=False)
    assert ws.cli("--ledger", str(ws.ledger), "init", "--origin", "example.gov/ops-test", "--no-key").exit_code == 0
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    verify = ws.cli("--ledger", str(ws.ledger), "verify", "--origin", "example.gov/ops-test", "--trusted-key", str(public))
    assert verify.exit_code == 0, verify.stdout


def test_finish_hook_can_fail_a_source_after_its_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collector.errors import IntegrityError

    def tampered(summary):  # type: ignore[no-untyped-def]
        assert summary.appended == 1
        raise IntegrityError("audit.log: the first 120 bytes changed since they were read")

    def factory(source: SourceConfig, context: RunContext) -> Sequence[PlannedCollection]:
        return [PlannedCollection(_OneShot(), "fake:x", "mem", finish=tampered, batch_size=1)]

    monkeypatch.setitem(run_module.SOURCE_FACTORIES, "vault", factory)
    ws = make_workspace(tmp_path, '[[sources]]\nname = "v"\nkind = "vault"\nlocation = "x"\n')
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    doc = json.loads(result.stdout)
    # tampering found by a source: 1, as `fedledger collect` exits (a retry will not clear it)
    assert result.exit_code == 1 and doc["failed_sources"] == ["v"]
    assert doc["sources"][0]["error"] == "IntegrityError" and doc["sources"][0]["counts"]["appended"] == 1
    assert ws.size() == 1


def test_a_vault_rotation_is_followed_by_the_scheduled_run_and_logged(tmp_path: Path) -> None:
    lines = (Path(__file__).resolve().parent.parent / "samples" / "vault" / "audit.log").read_bytes().splitlines(
        keepends=True)
    logs = tmp_path / "vault"
    logs.mkdir()
    live = logs / "audit.log"
    live.write_bytes(b"".join(lines[:14]))
    ws = make_workspace(tmp_path, f'[[sources]]\nname = "vault-audit"\nkind = "vault"\nlocations = ["{live}"]\n\n')
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF).exit_code == 0
    with open(live, "ab") as handle:
        handle.write(b"".join(lines[14:20]))
    live.rename(logs / "audit.log.1")
    live.write_bytes(b"".join(lines[20:]))
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    source = doc["sources"][0]
    assert source["ok"] and source["counts"]["duplicate"] == 0 and source["counts"]["quarantined"] == 0
    assert source["rotations"] == [{"file": str(live), "moved_to": str(logs / "audit.log.1"),
                                    "offset": len(b"".join(lines[:14]))}]
    done = next(e for e in log_events_of(result.stderr) if e["event"] == "source.done")
    assert done["rotations"] == source["rotations"]
    assert ws.size() == 28


def log_events_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_human_run_line_names_a_followed_rotation() -> None:
    import io

    stream = io.StringIO()
    log = run_module.RunLog(stream, human=True, run_id="r1")
    log.emit("source.done", source="vault", counts={"read": 3, "appended": 3, "duplicate": 0, "quarantined": 0},
             duration_s=0.5, rotations=[{"file": "/l/audit.log", "moved_to": "/l/audit.log.1", "offset": 9}])
    assert stream.getvalue() == ("  vault: 3 read, 3 appended, 0 duplicate, 0 quarantined (0.5s); followed the "
                                 "rotation of /l/audit.log to /l/audit.log.1\n")


def test_cloudtrail_source_uses_every_public_keys_file(tmp_path: Path) -> None:
    """Offline key lists given as several files (one per region, say): a digest signed by a key in the
    second file validates (only the first file used to count)."""
    samples = Path(__file__).resolve().parent.parent / "samples" / "cloudtrail"
    empty = tmp_path / "other-region-keys.json"
    empty.write_text('{"PublicKeyList": []}')
    sources = (f'[[sources]]\nname = "cloudtrail"\nkind = "cloudtrail"\nlocations = ["{samples / "valid"}/"]\n'
               f'public_keys = ["{empty}", "{samples / "public-keys.json"}"]\n\n')
    ws = make_workspace(tmp_path, sources)
    result = ws.cli("run", "--config", str(ws.config), "--as-of", "2026-11-21T00:00:00Z", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert all(source["ok"] for source in doc["sources"])


def test_a_scheduled_ci_source_with_an_empty_inbox_is_fine(tmp_path: Path) -> None:
    """A CI inbox folder with nothing new on a schedule is normal, unlike ``collect ci`` by hand
    (exit 2, "no CI event files found"): the run succeeds and logs the source with 0 read. A CI
    location that does not exist still fails the source."""
    (tmp_path / "inbox").mkdir()
    ws = make_workspace(tmp_path, '[[sources]]\nname = "c"\nkind = "ci"\nlocation = "inbox/"\n')
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (source,) = doc["sources"]
    assert source["ok"] is True and source["counts"]["read"] == 0
    (tmp_path / "inbox").rmdir()
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 3


def test_an_unusable_signer_fails_the_checkpoint_step_and_the_run_still_ends_logged(tmp_path: Path) -> None:
    # The signer is one step of the run: before, a missing key file escaped the run after the
    # sources committed, with no run.end line, no journal line and no per-source summary.
    write_events(tmp_path / "a.jsonl", 3)
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl"), extra_toml='[signer]\nkey_file = "gone.key"\n')
    log = tmp_path / "run.log"
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--log-file", str(log))
    assert result.exit_code == 3, result.output
    assert "a: 3 read, 3 appended" in result.stdout
    assert "checkpoint failed" in result.stderr
    assert ws.size() == 3  # the evidence is kept; the next run with a key signs it
    events = log_events(log)
    assert [e["event"] for e in events][-2:] == ["step.failed", "run.end"]
    assert events[-2]["step"] == "checkpoint" and "gone.key" in events[-2]["message"]
    assert events[-1]["exit_code"] == 3 and events[-1]["failed_steps"] == ["checkpoint"]
    journal = [json.loads(line) for line in (ws.ledger.parent / "fedledger.db.runs.jsonl").read_text().splitlines()]
    assert journal[-1]["exit_code"] == 3 and journal[-1]["sources"]["a"]["ok"] is True


def test_a_refusal_to_sign_fails_the_run_with_exit_1_like_checkpoint_does(tmp_path: Path) -> None:
    """A signer that refuses (the tree does not extend the checkpoint this key signed) found tampering:
    exit 1 (verification failure), as `fedledger checkpoint` does, not 3 (unavailable, retry later).
    It outranks a source that could not be read in the same run; the log and the journal say both."""
    events = write_events(tmp_path / "a.jsonl", 50)
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl") + manual_source("gone", "gone/"))
    assert ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--source", "a").exit_code == 0
    rewrite_history(ws, rewrite=5, delete_checkpoints=False)  # the ledger's own checkpoint now contradicts it
    with open(events, "a") as handle:
        handle.write('{"time":"2026-01-20T23:00:00Z","kind":"manual.review","n":"late"}\n')
    log = tmp_path / "run.log"
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--format", "json", "--log-file", str(log))
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 1 and doc["failed_sources"] == ["gone"]
    (step,) = doc["failed_steps"]
    assert step["step"] == "checkpoint" and step["error"] == "IntegrityError" and step["exit_code"] == 1
    assert step["message"].startswith("refusing to sign: entries 0..49 now hash to "), step
    assert "error: 1 source(s) failed: gone; checkpoint: refusing to sign: entries 0..49 now hash to " in result.stderr
    assert ws.size() == 51  # collected and kept; nothing signed over the rewritten history
    with Ledger.open(ws.ledger) as ledger:
        assert [cp.size for cp in ledger.checkpoints()] == [50]
    logged = log_events(log)
    failed = [e for e in logged if e["event"] == "step.failed"]
    assert [(e["step"], e["error"], e["exit_code"]) for e in failed] == [("checkpoint", "IntegrityError", 1)]
    assert logged[-1]["event"] == "run.end" and logged[-1]["exit_code"] == 1
    assert logged[-1]["failed_steps"] == ["checkpoint"] and logged[-1]["failed_sources"] == ["gone"]
    journal = [json.loads(line) for line in (ws.ledger.parent / "fedledger.db.runs.jsonl").read_text().splitlines()]
    assert journal[-1]["exit_code"] == 1
    assert journal[-1]["failed_steps"] == [{"step": "checkpoint", "error": "IntegrityError", "exit_code": 1}]
    # the same ledger, signed by hand, is refused with the same code
    by_hand = ws.cli("--ledger", str(ws.ledger), "checkpoint")
    assert by_hand.exit_code == 1 and "refusing to sign: entries 0..49" in by_hand.stderr


def test_a_log_file_that_cannot_be_opened_is_a_usage_error_not_a_bug(tmp_path: Path) -> None:
    # e.g. the cron example's /var/log/fedledger/ not created yet: it was "internal error: FileNotFoundError", exit 4
    write_events(tmp_path / "a.jsonl", 1)
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl"))
    result = ws.cli("run", "--config", str(ws.config), "--as-of", AS_OF, "--log-file", str(tmp_path / "no" / "run.jsonl"))
    assert result.exit_code == 2, result.output
    assert f"error: {tmp_path / 'no' / 'run.jsonl'}: cannot open the log file: No such file or directory" in result.stderr
    assert ws.size() == 0


# -- which ledger a command with --config opens ---------------------------------------------------

def _fedledger_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FEDLEDGER_LEDGER"}
    return subprocess.run([sys.executable, "-m", "collector.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_an_explicit_ledger_option_wins_over_the_config_even_when_it_is_the_default_name(tmp_path: Path) -> None:
    """`fedledger --ledger fedledger.db status --config C` opened C's ledger.path instead: a given
    --ledger equal to the default name was taken for "not given"."""
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl"), init=False)
    write_events(tmp_path / "a.jsonl", 3)
    assert _fedledger_in(tmp_path, "--ledger", "fedledger.db", "init", "--origin", ORIGIN).returncode == 0
    done = _fedledger_in(tmp_path, "--ledger", "fedledger.db", "--as-of", AS_OF, "run", "--config", str(ws.config))
    assert done.returncode == 0, done.stderr[-2000:]
    assert not ws.ledger.exists()  # the config's ledger.path was not used
    status = _fedledger_in(tmp_path, "--ledger", "./fedledger.db", "--as-of", AS_OF, "status", "--config", str(ws.config))
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("ledger fedledger.db (") and "3 entries" in status.stdout


def test_bundle_and_checkpoint_with_config_open_the_configs_ledger_like_run_does(tmp_path: Path) -> None:
    """README's flow: `run --config C` collects into C's ledger.path; `checkpoint --config C` and
    `bundle --config C` opened ./fedledger.db instead (no ledger here, exit 3)."""
    ws = make_workspace(tmp_path, manual_source("a", "a.jsonl"))
    write_events(tmp_path / "a.jsonl", 3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = _fedledger_in(elsewhere, "--as-of", AS_OF, "run", "--config", str(ws.config))
    assert run.returncode == 0, run.stderr[-2000:]
    write_events(tmp_path / "more.jsonl", 2, day=21)
    assert _fedledger_in(elsewhere, "--ledger", str(ws.ledger), "append", str(tmp_path / "more.jsonl")).returncode == 0
    checkpoint = _fedledger_in(elsewhere, "checkpoint", "--config", str(ws.config))
    assert checkpoint.returncode == 0, checkpoint.stderr
    assert checkpoint.stdout.splitlines()[:2] == [ORIGIN, "5"]
    bundle = _fedledger_in(elsewhere, "--as-of", AS_OF, "bundle", "--out", "bundle", "--config", str(ws.config))
    assert bundle.returncode in (0, 1), bundle.stderr[-2000:]
    assert (elsewhere / "bundle" / "MANIFEST.json").exists()
    assert not (elsewhere / "fedledger.db").exists()


def test_checkpoint_with_config_signs_with_the_configs_signer(tmp_path: Path) -> None:
    """`checkpoint --config C` and `bundle --config C` sign with C's [signer] (as `run` does), not
    with whatever key file lies beside the ledger."""
    from collector.checkpoint import parse_verifier_key, verify_checkpoint

    other = tmp_path / "other-keys"
    made = _fedledger_in(tmp_path, "--ledger", str(tmp_path / "throwaway.db"), "init", "--origin", ORIGIN,
                         "--key-dir", str(other))
    assert made.returncode == 0, made.stderr
    ws = make_workspace(tmp_path / "ws", manual_source("a", "a.jsonl"),
                        extra_toml=f'[signer]\nkey_file = "{other / "fedledger.key"}"\n')
    write_events(tmp_path / "ws" / "a.jsonl", 3)
    assert _fedledger_in(tmp_path, "--ledger", str(ws.ledger), "append", str(tmp_path / "ws" / "a.jsonl")).returncode == 0

    def signed_by(note: str, public: Path) -> bool:
        verifier = parse_verifier_key(public.read_text(encoding="utf-8"), default_name=ORIGIN)
        try:
            verify_checkpoint(note, origin=ORIGIN, verifiers=[verifier])
        except Exception:  # noqa: BLE001 - any refusal means: not signed by this key
            return False
        return True

    configured = _fedledger_in(tmp_path, "checkpoint", "--config", str(ws.config))
    assert configured.returncode == 0, configured.stderr
    note = configured.stdout
    assert signed_by(note, other / "fedledger.pub")
    assert not signed_by(note, ws.ledger.with_name("fedledger.pub"))
    bundled = _fedledger_in(tmp_path, "--as-of", AS_OF, "bundle", "--out", "b", "--config", str(ws.config))
    assert bundled.returncode in (0, 1), bundled.stderr[-2000:]  # 1: controls not satisfied by 3 manual events
    pinned = ["verify-bundle", str(tmp_path / "b"), "--origin", ORIGIN, "--trusted-key"]
    assert _fedledger_in(tmp_path, *pinned, str(other / "fedledger.pub")).returncode == 0
    assert _fedledger_in(tmp_path, *pinned, str(ws.ledger.with_name("fedledger.pub"))).returncode != 0
