"""Shared set-up for the scheduled-operation tests (config, run, status): a folder with
a config, a ledger made by `fedledger init`, and manual event files with fixed times."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from collector.cli import app

REPO = Path(__file__).resolve().parent.parent
ORIGIN = "example.gov/ops-test"
AS_OF = "2026-01-21T00:00:00Z"


def write_events(path: Path, count: int, *, day: int = 20, pad: int = 0) -> Path:
    """*count* manual events on 2026-01-<day>, one per second; *pad* bytes of filler make lines larger."""
    path.parent.mkdir(parents=True, exist_ok=True)
    filler = "x" * pad
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            hh, rest = divmod(i % 86400, 3600)
            mm, ss = divmod(rest, 60)
            handle.write(
                f'{{"time":"2026-01-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z","kind":"manual.review",'
                f'"actor":"isso@example.gov","action":"review","resource":"job-{i}","n":{i},"note":"{filler}"}}\n'
            )
    return path


@dataclass
class Workspace:
    root: Path
    config: Path
    ledger: Path

    def cli(self, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    def subprocess_args(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "collector.cli", *args]

    def popen(self, *args: str, **kwargs):  # type: ignore[no-untyped-def]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("FEDLEDGER_LEDGER", None)
        return subprocess.Popen(self.subprocess_args(*args), cwd=self.root, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)

    def size(self) -> int:
        """Committed entries, read-only (safe while a run is writing)."""
        if not self.ledger.exists():
            return 0
        conn = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute("SELECT max(seq) FROM entries").fetchone()
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()
        return 0 if row[0] is None else int(row[0]) + 1


def make_workspace(root: Path, sources_toml: str, *, extra_toml: str = "", init: bool = True) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "fedledger.toml"
    config.write_text(
        f'[ledger]\npath = "ledger/fedledger.db"\norigin = "{ORIGIN}"\n\n{extra_toml}\n{sources_toml}', encoding="utf-8"
    )
    ws = Workspace(root, config, root / "ledger" / "fedledger.db")
    if init:
        result = ws.cli("--ledger", str(ws.ledger), "init", "--origin", ORIGIN)
        assert result.exit_code == 0, result.output
    return ws


def manual_source(name: str, location: str, cadence: str | None = "ksi-7d") -> str:
    text = f'[[sources]]\nname = "{name}"\nkind = "manual"\nlocations = ["{location}"]\n'
    if cadence:
        text += f'cadence = "{cadence}"\n'
    return text + "\n"


def rewrite_history(ws: Workspace, *, rewrite: int | None = None, keep: int | None = None,
                    delete_checkpoints: bool = True) -> None:
    """What someone who can write the ledger file but holds no key does: rewrite entry *rewrite*
    and/or cut the ledger to *keep* entries, re-hash the chain, the stored leaves and the stored
    Merkle nodes so the file is consistent again, and (*delete_checkpoints*) delete every checkpoint
    row, so the signer's own check (the newest checkpoint it signed in the ledger) finds nothing to
    hold to. With the checkpoint rows kept, that check is what refuses to sign."""
    import orjson

    from collector import merkle
    from collector.canonical import canonical_bytes

    conn = sqlite3.connect(ws.ledger)
    bodies = [bytes(b) for (b,) in conn.execute("SELECT body FROM entries ORDER BY seq")]
    if keep is not None:
        bodies = bodies[:keep]
    if rewrite is not None:
        doc = orjson.loads(bodies[rewrite])
        doc["event"]["actor"] = "mallory@example.gov"
        bodies[rewrite] = canonical_bytes(doc)
        for i in range(rewrite + 1, len(bodies)):
            doc = orjson.loads(bodies[i])
            doc["prev"] = merkle.leaf_hash(bodies[i - 1]).hex()
            bodies[i] = canonical_bytes(doc)
    rows = {seq: row for seq, *row in conn.execute("SELECT seq, raw_object, raw_offset, raw_size FROM entries")}
    conn.execute("DELETE FROM entries")
    conn.execute("DELETE FROM nodes")
    if delete_checkpoints:
        conn.execute("DELETE FROM checkpoints")

    def keep_node(level: int, idx: int, node: bytes) -> None:
        if level >= 6:  # NODE_MIN_LEVEL
            conn.execute("INSERT INTO nodes(level, idx, hash) VALUES (?, ?, ?)", (level, idx, node))

    compact = merkle.CompactRange(on_node=keep_node)
    for seq, body in enumerate(bodies):
        conn.execute("INSERT INTO entries(seq, leaf, body, raw_object, raw_offset, raw_size) VALUES (?, ?, ?, ?, ?, ?)",
                     (seq, merkle.leaf_hash(body), body, *rows[seq]))
        compact.append(merkle.leaf_hash(body))
    conn.commit()
    conn.close()


def ledger_contents(path: Path) -> tuple[list[bytes], bytes]:
    """Every entry's stored bytes and the root, for comparing two ledgers."""
    from collector.ledger import Ledger

    with Ledger.open(path) as ledger:
        return [bytes(body) for _seq, _leaf, body in ledger.entries()], ledger.root()
