"""PostgreSQL ledger append speed against the SQLite ledger (the floor), same entries, same run.

Appends N manual entries in batches of B to a fresh SQLite file and to a fresh
PostgreSQL schema, checks the roots agree, and prints entries/s and the ratio.
Usage: python -m bench.bench_ledger_pg [N] [B]   (default 20000 1000)
Server: $FEDLEDGER_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from collector.ledger import Ledger, NewEntry
from collector.ledger_open import create_ledger
from collector.ledger_pg import drop_ledger
from tests.ledger_fixtures import OBSERVED, manual_entry


def _timed(ledger: Ledger, batches: list[list[NewEntry]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        ledger.append(batch, updated=OBSERVED)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 20000
    b = int(argv[1]) if len(argv) > 1 else 1000
    server = os.environ.get("FEDLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    entries = [replace(manual_entry(i), dedup_key=f"k{i}") for i in range(n)]
    batches = [entries[i : i + b] for i in range(0, n, b)]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"{server}?ledger=bench_{secrets.token_hex(4)}&store={tmp}/objects"
        try:
            with Ledger.create(Path(tmp) / "l.db", "bench.example/x", created=OBSERVED, key_type="ed25519") as lite:
                t_lite = _timed(lite, batches)
                root = lite.root()
            with create_ledger(url, "bench.example/x", created=OBSERVED, key_type="ed25519") as pg:
                t_pg = _timed(pg, batches)
                assert pg.root() == root, "roots differ"
        finally:
            drop_ledger(url)
    print(f"append {n} entries in batches of {b}: sqlite {n / t_lite:,.0f}/s, postgresql {n / t_pg:,.0f}/s, "
          f"postgresql/sqlite time ratio {t_pg / t_lite:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
