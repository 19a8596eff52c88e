"""Open or create a ledger by location: a file path (SQLite, the default) or a ``postgresql://`` URL.

:func:`open_ledger` and :func:`create_ledger` return an object with the public API
of :class:`collector.ledger.Ledger`; for a URL it is a
:class:`collector.ledger_pg.PostgresLedger` (same methods, same entry bytes, same
roots). Its ``path`` is then the URL string, not a :class:`~pathlib.Path`: code that
needs a *file* beside the ledger (key files, run lock, run journal) asks
:func:`local_anchor` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union, cast

from collector.ledger import Ledger
from collector.ledger_pg import PostgresLedger, PostgresLocation, is_postgres_url, refuse_connection_string

LedgerLocation = Union[Path, str]
"""A ledger file path, or a ``postgresql://`` URL kept as a string."""


def ledger_location(text: str | Path) -> LedgerLocation:
    """A URL stays a string; anything else is a file path (a connection string fedledger does not read
    is refused, unrepeated: :func:`collector.ledger_pg.refuse_connection_string`)."""
    if isinstance(text, str) and is_postgres_url(text):
        return text
    if isinstance(text, str):
        refuse_connection_string(text)
    return Path(text)


def is_postgres(location: object) -> bool:
    return is_postgres_url(location)


def open_ledger(location: str | Path) -> Ledger:
    """Open an existing ledger (SQLite file or PostgreSQL URL)."""
    if is_postgres_url(location):
        return cast(Ledger, PostgresLedger.open(str(location)))
    return Ledger.open(Path(location))


def create_ledger(location: str | Path, origin: str, *, created: str, key_type: str) -> Ledger:
    """Create a new ledger (SQLite file or PostgreSQL URL); an existing one is a usage error."""
    if is_postgres_url(location):
        return cast(Ledger, PostgresLedger.create(str(location), origin, created=created, key_type=key_type))
    return Ledger.create(Path(location), origin, created=created, key_type=key_type)


def local_anchor(location: str | Path) -> Path:
    """The file path that local companions of the ledger are named after.

    For a SQLite ledger: the ledger file itself (``x.db.lock``, ``x.db.runs.jsonl``,
    ``bundles/`` beside it). For a PostgreSQL ledger: ``<store>/../<ledger name>``, i.e.
    beside the evidence store folder named in the URL (``ci.runs.jsonl``, ``bundles/``);
    its run lock is in PostgreSQL (:class:`collector.ledger_pg.PostgresRunLock`).
    """
    if is_postgres_url(location):
        where = PostgresLocation(str(location))
        return where.store.parent / where.name
    return Path(location)
