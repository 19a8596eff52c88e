"""The bundler's split pass over a PostgreSQL ledger: the child process opens the ledger by URL.

Skipped when no PostgreSQL answers at ``FEDLEDGER_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``), like ``tests/test_ledger_pg.py``.
"""

from __future__ import annotations

from pathlib import Path

from bundler.ledger_slice import LedgerPass
from bundler.merkle_memory import MemoryTree
from collector.ledger_open import create_ledger
from collector.signing import FileSigner
from tests.ledger_fixtures import OBSERVED, fixed_ed25519, manual_entry, sign_checkpoint
from tests.pg_support import NEEDS_PG, pg_url  # noqa: F401 - pg_url is a fixture

ORIGIN = "example.gov/pg-pass-test"
pytestmark = NEEDS_PG


def test_split_pass_over_a_postgresql_ledger_matches_one_process(tmp_path: Path, pg_url: str) -> None:
    ledger = create_ledger(pg_url, ORIGIN, created=OBSERVED, key_type="ed25519")
    try:
        ledger.append([manual_entry(i) for i in range(300)])
        sign_checkpoint(ledger, FileSigner(ORIGIN, fixed_ed25519()))
        checkpoint = ledger.latest_checkpoint()
        results = []
        for name, split in (("one", None), ("two", 128)):
            ledger_pass = LedgerPass(ledger, tmp_path / name, ledger.size, split=split)
            _scan, reading = ledger_pass.run()
            results.append((ledger_pass.wait_export(), reading))
    finally:
        ledger.close()
    (one, one_rows), (two, two_rows) = results
    assert (tmp_path / "one" / "entries.jsonl").read_bytes() == (tmp_path / "two" / "entries.jsonl").read_bytes()
    assert one.leaves == two.leaves and one.export_files == two.export_files and not two.chain_breaks
    assert MemoryTree(two.leaves, two.levels).root() == checkpoint.root
    assert one_rows.total == two_rows.total == 300 and set(one_rows.kept) == set(two_rows.kept)
