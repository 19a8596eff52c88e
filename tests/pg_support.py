"""PostgreSQL test plumbing shared by the PG ledger tests: the server URL, a skip marker with
the reason when it cannot be reached, and a fixture giving each test its own ledger schema."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER = os.environ.get("FEDLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(SERVER, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL unreachable at {SERVER}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
    return None


_WHY = _reachable()
NEEDS_PG = pytest.mark.skipif(_WHY is not None, reason=_WHY or "")


@pytest.fixture()
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh ledger URL (its own schema and store folder); the schema is dropped afterwards."""
    from collector.ledger_pg import drop_ledger

    url = f"{SERVER}?ledger=t_{secrets.token_hex(6)}&store={tmp_path / 'objects'}"
    yield url
    drop_ledger(url)
