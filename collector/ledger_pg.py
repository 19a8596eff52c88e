"""The ledger in PostgreSQL: the same API, entry bytes and Merkle tree as :class:`collector.ledger.Ledger`.

Selected by a URL::

    postgresql://USER@HOST:PORT/DATABASE?ledger=NAME&store=/shared/folder/objects

* ``ledger=NAME`` (default ``fedledger``) is the PostgreSQL **schema** holding this
  ledger's tables (``meta``, ``entries``, ``nodes``, ``dedup``, ``raw_index``,
  ``cursors``, ``quarantine``, ``signers``, ``checkpoints``, and ``status_cache``, where
  ``fedledger status`` keeps its counts); several ledgers can
  share one database. NAME: lowercase letters, digits and ``_``, starting with a letter.
* ``store=/folder`` (required) is the evidence store folder for raw bytes; every
  writer must see the same folder (local disk for one host, a shared mount otherwise).
* Every other query parameter is handed to libpq (``sslmode``, ``connect_timeout``...).
  A password in the URL is refused: use ``PGPASSWORD`` or ``~/.pgpass`` so it never
  shows in logs, process lists or ``fedledger status``.

Writers: one transaction per :meth:`PostgresLedger.append` (entries, nodes, dedup
keys, raw index, quarantine, cursors together) and per :meth:`add_checkpoint`. Each
starts with ``pg_advisory_xact_lock`` on a key derived from the schema name and reads
the chain tip and Merkle right edge after taking it, so two processes (or hosts)
appending at once are serialized and never fork the chain. Entry bytes come from
:func:`collector.ledger.entry_bytes` (canonical bytes of :func:`collector.ledger.entry_document`),
so they are byte-identical to the SQLite backend's for the same input.

Not verified here: what the database returns is trusted as stored; ``fedledger
verify`` recomputes every hash from the stored bytes, and checkpoints anchored
outside the database catch a rolled-back or rewritten ledger.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from collector.checkpoint import require_valid_origin
from collector.errors import FedledgerError, MalformedInput, SourceUnavailable, UsageError
from collector.ledger import (
    NODE_MIN_LEVEL,
    ZERO_HASH,
    AppendResult,
    LedgerReads,
    NewEntry,
    PreparedEntry,
    QuarantineRow,
    RawIndexRow,
    StoredCheckpoint,
    conflict_rows,
    prepare_batch,
    prepared_items,
    stored_raw_sha256,
)
from collector.store import EvidenceStore

URL_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_LEDGER_NAME = "fedledger"
PG_FORMAT = "fedledger-ledger/1"  # the PostgreSQL tables keep dedup keys and digests as text
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PAGE = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.entries (seq BIGINT PRIMARY KEY, leaf BYTEA NOT NULL, body BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.nodes (level INTEGER NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx));
CREATE TABLE IF NOT EXISTS {s}.dedup (key TEXT PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.raw_index (sha256 TEXT PRIMARY KEY, size BIGINT NOT NULL,
    object TEXT NOT NULL, "offset" BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.cursors (source TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.quarantine (id BIGSERIAL PRIMARY KEY, source TEXT NOT NULL, location TEXT NOT NULL,
    line BIGINT, reason TEXT NOT NULL, sha256 TEXT NOT NULL, observed TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_once ON {s}.quarantine
    (source, location, coalesce(line, -1), reason, sha256);
CREATE TABLE IF NOT EXISTS {s}.signers (name TEXT NOT NULL, key_id TEXT NOT NULL, public_pem TEXT NOT NULL,
    PRIMARY KEY (name, key_id));
CREATE TABLE IF NOT EXISTS {s}.checkpoints (id BIGSERIAL PRIMARY KEY, size BIGINT NOT NULL, root BYTEA NOT NULL,
    note TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.run_holder (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL);
"""
# ``fedledger status``'s counts of the entries it has counted (collector/ledger_stats_pg.py): an operational
# shortcut, never evidence; made by ``init``, or by the first status that may, for a ledger made before it.
CREATE_STATUS_CACHE = "CREATE TABLE IF NOT EXISTS {s}.status_cache (name TEXT PRIMARY KEY, doc BYTEA NOT NULL);"


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


# A URL of any other scheme (POSTGRESQL://, postgresql+psycopg:// as SQLAlchemy writes it) or a libpq
# keyword string naming a password: not a file path, though it would be taken for one.
_CONNECTION_STRING = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|(?:^|\s)password\s*=", re.IGNORECASE)


def refuse_connection_string(location: str) -> None:
    """Refuse a ledger location that is no ``postgresql://`` URL fedledger reads but has the shape of a
    connection string: taken for a file path, it was repeated in every error (and made into a file name by
    ``init``), password and all. The refusal does not repeat it."""
    if not is_postgres_url(location) and _CONNECTION_STRING.search(location):
        raise UsageError("the ledger location looks like a database connection string that fedledger does not "
                         "read: a PostgreSQL ledger is a postgresql:// URL (the scheme in lowercase, no password: "
                         "use PGPASSWORD or ~/.pgpass), anything else a file path; it is not repeated here, as "
                         "it may hold a password")


class PostgresLocation:
    """A parsed ``postgresql://`` ledger URL: libpq conninfo, schema name, store folder."""

    def __init__(self, url: str) -> None:
        if not is_postgres_url(url):
            raise UsageError("a PostgreSQL ledger URL starts with postgresql://", location=url)
        # No message below repeats the URL until it is known to hold no password (it is refused unrepeated).
        refused = UsageError("do not put a password in the ledger URL (it would show in logs and process lists): "
                             "use PGPASSWORD or ~/.pgpass")
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. user:[secret]@ reads as a malformed IPv6 host
            raise UsageError("not a valid postgresql:// URL (brackets outside an IPv6 host?); "
                             "the URL is not repeated here, as it may hold a password") from None
        params = parse_qsl(parts.query, keep_blank_values=True)
        # libpq reads a password from the query string (``?password=``, ``sslpassword=`` for the client
        # key) as well as from user:password@. A password holding '/', '?', '#' or '[' ends the
        # authority early for urlsplit (and libpq), so it was not seen as one and was echoed in the
        # errors that followed: any ':' before the first '@' counts (name the user to use a port then).
        authority = url.split("://", 1)[1]
        if (parts.password is not None or ("@" in authority and ":" in authority.split("@", 1)[0])
                or any("password" in k.lower() for k, _ in params)):
            raise refused
        rest = [(k, v) for k, v in params if k not in ("ledger", "store")]
        found = dict(params)
        self.url = url
        self.name = found.get("ledger") or DEFAULT_LEDGER_NAME
        if not _NAME.match(self.name):
            raise UsageError(f"ledger={self.name!r}: use lowercase letters, digits and _ (starting with a letter), "
                             "at most 63 characters; it names the PostgreSQL schema", location=url)
        self.schema = f'"{self.name}"'  # quoted in SQL, so reserved words (user, order) are fine names too
        store = found.get("store")
        if not store:
            raise UsageError("the ledger URL needs store=/folder (where raw evidence objects are kept), e.g. "
                             "postgresql://postgres@127.0.0.1/fedledger?ledger=ci&store=/var/lib/fedledger/objects",
                             location=url)
        self.store = Path(store).expanduser()
        # %20 for a space: libpq decodes %XX only, and would read urlencode's '+' as a '+'
        self.conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest, quote_via=quote), ""))
        digest = hashlib.sha256(b"fedledger-ledger-lock:" + self.name.encode()).digest()
        self.lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self.run_lock_key = int.from_bytes(hashlib.sha256(b"fedledger-run-lock:" + self.name.encode()).digest()[:8],
                                           "big", signed=True)
        self.status_cache_lock_key = int.from_bytes(
            hashlib.sha256(b"fedledger-status-cache-lock:" + self.name.encode()).digest()[:8], "big", signed=True)


def connect(location: PostgresLocation) -> Any:
    """An autocommit psycopg connection; connection failures are SourceUnavailable (exit 3)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a runtime dependency
        raise SourceUnavailable("PostgreSQL ledgers need the psycopg package (pip install 'psycopg[binary]')") from None
    try:
        return psycopg.connect(location.conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise SourceUnavailable(f"cannot connect to PostgreSQL: {_first_line(exc)}", location=location.url) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def pg_failure(exc: BaseException, url: str) -> FedledgerError:
    """The fedledger error for a PostgreSQL error met while using the ledger at *url*.

    A table, column or schema that is missing, or a value the ledger's own queries cannot read
    (an attacker's ALTER or DROP, an edit that is not UTF-8 or not JSON), is a ledger that is not
    readable (MalformedInput, exit 2, as for a SQLite file with a dropped table); anything else
    (the server shut down or restarted, the connection lost, a permission missing, the database
    read-only) is the ledger being unavailable (SourceUnavailable, exit 3). The message is the
    server's first line: it names objects, never the connection's password.
    """
    import psycopg
    from psycopg import errors as pg_errors

    unreadable = (pg_errors.UndefinedTable, pg_errors.UndefinedColumn, pg_errors.InvalidSchemaName,
                  pg_errors.UndefinedFunction, psycopg.DataError)
    if isinstance(exc, unreadable):
        return MalformedInput(f"not a readable fedledger ledger: {_first_line(exc)}", location=url)
    return SourceUnavailable(f"PostgreSQL: {_first_line(exc)}", location=url)


@contextmanager
def pg_errors_translated(url: str) -> Iterator[None]:
    """Raise :func:`pg_failure` of any psycopg error inside the block (chained to nothing)."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise pg_failure(exc, url) from None


def as_bytes(value: object) -> bytes:
    """A stored BYTEA value as bytes, whatever an ALTER made of its column: NULL is empty and TEXT its
    UTF-8 bytes (as SQLite's ``CAST(x AS BLOB)``), so the edit is hashed and reported, not a TypeError."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


class PostgresLedger(LedgerReads):
    """A ledger in one PostgreSQL schema plus its evidence store folder.

    Same public API and semantics as :class:`collector.ledger.Ledger`; ``path`` is
    the URL (it holds no password) and ``store`` the :class:`EvidenceStore`.
    """

    def __init__(self, location: PostgresLocation, conn: Any) -> None:
        self.location = location
        self.path = location.url
        self._conn = conn
        self._s = location.schema
        self.store = EvidenceStore(location.store)
        self.origin = self._meta("origin")

    # -- opening -------------------------------------------------------------------
    @classmethod
    def create(cls, url: str, origin: str, *, created: str, key_type: str) -> PostgresLedger:
        location = PostgresLocation(url)
        require_valid_origin(origin)
        conn = connect(location)
        try:
            with pg_errors_translated(url), conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (location.lock_key,))
                if _has_meta(conn, location.schema):
                    raise UsageError("a ledger already exists here", location=url)
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {location.schema}")
                conn.execute(_SCHEMA.format(s=location.schema) + CREATE_STATUS_CACHE.format(s=location.schema))
                with conn.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO {location.schema}.meta(key, value) VALUES (%s, %s)",
                        [("format", PG_FORMAT), ("origin", origin), ("created", created), ("key_type", key_type)],
                    )
        except BaseException:
            conn.close()
            raise
        location.store.mkdir(parents=True, exist_ok=True)
        return cls(location, conn)

    @classmethod
    def open(cls, url: str) -> PostgresLedger:
        location = PostgresLocation(url)
        conn = connect(location)
        try:
            with pg_errors_translated(url):
                if not _has_meta(conn, location.schema):
                    raise SourceUnavailable("no ledger here (run `fedledger init` first)", location=url)
                row = conn.execute(f"SELECT value FROM {location.schema}.meta WHERE key='format'").fetchone()
                if row is None or row[0] != PG_FORMAT:
                    raise MalformedInput(f"unknown ledger format {row[0] if row else None!r}", location=url)
                return cls(location, conn)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _q(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with pg_errors_translated(self.path):
            return self._conn.execute(sql.replace("~.", self._s + "."), args)

    def _meta(self, key: str) -> str:
        row = self._q("SELECT value FROM ~.meta WHERE key=%s", (key,)).fetchone()
        if row is None:
            raise MalformedInput(f"ledger metadata {key!r} missing", location=self.path)
        return str(row[0])

    @property
    def key_type(self) -> str:
        return self._meta("key_type")

    # -- reading -------------------------------------------------------------------
    @property
    def size(self) -> int:
        row = self._q("SELECT max(seq) FROM ~.entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """(seq, stored leaf hash, stored body bytes) in seq order, read in pages of 10,000."""
        seq = start
        while end is None or seq < end:
            stop = seq + _PAGE if end is None else min(seq + _PAGE, end)
            rows = self._q("SELECT seq, leaf, body FROM ~.entries WHERE seq >= %s AND seq < %s ORDER BY seq",
                           (seq, stop)).fetchall()
            if not rows:
                if end is None:
                    more = self._q("SELECT min(seq) FROM ~.entries WHERE seq >= %s", (stop,)).fetchone()
                    if more[0] is None:
                        return
                    seq = int(more[0])
                    continue
                seq = stop
                continue
            for s, leaf, body in rows:
                yield int(s), as_bytes(leaf), as_bytes(body)
            seq = stop

    def entry(self, seq: int) -> bytes:
        row = self._q("SELECT body FROM ~.entries WHERE seq=%s", (seq,)).fetchone()
        if row is None:
            raise UsageError(f"no entry with seq {seq} (ledger size {self.size})")
        return as_bytes(row[0])

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        rows = self._q("SELECT leaf FROM ~.entries WHERE seq >= %s AND seq < %s ORDER BY seq", (start, end)).fetchall()
        if len(rows) != end - start:
            raise MalformedInput(f"ledger is missing leaves in [{start}, {end})", location=self.path)
        return [as_bytes(r[0]) for r in rows]

    def _stored_node(self, level: int, idx: int) -> bytes | None:
        row = self._q("SELECT hash FROM ~.nodes WHERE level=%s AND idx=%s", (level, idx)).fetchone()
        return None if row is None else as_bytes(row[0])

    def cursor(self, source: str) -> str | None:
        row = self._q("SELECT cursor FROM ~.cursors WHERE source=%s", (source,)).fetchone()
        return None if row is None else str(row[0])

    def cursors(self) -> dict[str, str]:
        return {str(s): str(c) for s, c in self._q("SELECT source, cursor FROM ~.cursors").fetchall()}

    def raw_location(self, seq: int) -> RawIndexRow | None:
        body = self._q("SELECT body FROM ~.entries WHERE seq=%s", (seq,)).fetchone()
        return None if body is None else self.raw_locations([(seq, as_bytes(body[0]))])[0]

    def raw_locations(self, entries: Sequence[tuple[int, bytes]]) -> list[RawIndexRow | None]:
        """Where the raw bytes of each (seq, stored body) of *entries* live: the raw index is keyed by the
        raw SHA-256 each body holds, looked up for all of them in one query (per 5,000)."""
        digests = [stored_raw_sha256(body) for _seq, body in entries]
        found = self.raw_index_rows(sorted(set(digests)))
        return [found.get(sha256) for sha256 in digests]

    def raw_index_rows(self, digests: Sequence[str]) -> dict[str, RawIndexRow]:
        """Where the raw bytes with each of *digests* (raw SHA-256 hex) live, for those the index holds."""
        found: dict[str, RawIndexRow] = {}
        for i in range(0, len(digests), 5000):
            for sha, size, obj, offset in self._q('SELECT sha256, size, object, "offset" FROM ~.raw_index '
                                                  "WHERE sha256 = ANY(%s)", (list(digests[i : i + 5000]),)):
                found[str(sha)] = RawIndexRow(str(sha), int(size), str(obj), int(offset))
        return found

    def quarantined(self) -> list[QuarantineRow]:
        return [
            QuarantineRow(str(r[0]), str(r[1]), None if r[2] is None else int(r[2]), str(r[3]), str(r[4]), str(r[5]))
            for r in self._q("SELECT source, location, line, reason, sha256, observed FROM ~.quarantine ORDER BY id")
        ]

    def checkpoints(self) -> list[StoredCheckpoint]:
        return [
            StoredCheckpoint(int(r[0]), int(r[1]), as_bytes(r[2]), "" if r[3] is None else str(r[3]), str(r[4]))
            for r in self._q("SELECT id, size, root, note, created FROM ~.checkpoints ORDER BY id")
        ]

    def signers(self) -> list[tuple[str, str, str]]:
        """(name, key ID hex, public key PEM) of every key that signed a checkpoint here."""
        return [(str(a), str(b), str(c))
                for a, b, c in self._q("SELECT name, key_id, public_pem FROM ~.signers ORDER BY name, key_id")]

    # -- writing -------------------------------------------------------------------
    def append(
        self,
        batch: Sequence[NewEntry] = (),
        *,
        prepared: Sequence[PreparedEntry] = (),
        cursors: Mapping[str, str] | None = None,
        raw_index: Iterable[tuple[str, int, str, int]] = (),
        quarantine: Iterable[QuarantineRow] = (),
        updated: str = "",
    ) -> AppendResult:
        """Append *batch* or *prepared* (skipping entries whose ``dedup_key`` is already known) in one
        transaction; as :meth:`collector.ledger.Ledger.append`."""
        items = prepared_items(batch, prepared)
        s = self._s
        with pg_errors_translated(self.path), self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (self.location.lock_key,))
            size = self.size
            tip = self._q("SELECT leaf FROM ~.entries WHERE seq=%s", (size - 1,)).fetchone() if size else None
            prev = as_bytes(tip[0]).hex() if tip else ZERO_HASH
            keys = [item[0] for item in items if item[0] is not None]
            known = self._known_keys(keys)
            chained = prepare_batch(items, size=size, prev=prev, known=known, edge=self._right_edge(size).hashes)
            rows, nodes, dedup_rows, seqs = chained.rows, chained.nodes, chained.dedup_rows, chained.seqs
            duplicates, seq = chained.duplicates, chained.next_seq
            conflicts = conflict_rows(items, chained.conflicts)
            if rows:
                with cur.copy(f"COPY {s}.entries (seq, leaf, body) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            if nodes:
                cur.executemany(f"INSERT INTO {s}.nodes(level, idx, hash) VALUES (%s, %s, %s)", nodes)
            if dedup_rows:
                with cur.copy(f"COPY {s}.dedup (key, seq) FROM STDIN") as copy:
                    for drow in dedup_rows:
                        copy.write_row(drow)
            index_rows = [tuple(r) for r in raw_index]
            if index_rows:
                cur.executemany(f'INSERT INTO {s}.raw_index(sha256, size, object, "offset") VALUES (%s, %s, %s, %s) '
                                "ON CONFLICT DO NOTHING", index_rows)
            quarantine_rows = [(q.source, q.location, q.line, q.reason, q.sha256, q.observed)
                               for q in (*quarantine, *conflicts)]
            if quarantine_rows:
                cur.executemany(
                    f"INSERT INTO {s}.quarantine(source, location, line, reason, sha256, observed) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", quarantine_rows)
            for source, value in (cursors or {}).items():
                cur.execute(
                    f"INSERT INTO {s}.cursors(source, cursor, updated) VALUES (%s, %s, %s) "
                    "ON CONFLICT (source) DO UPDATE SET cursor=excluded.cursor, updated=excluded.updated",
                    (source, value, updated),
                )
        return AppendResult(size, len(rows), duplicates, seq, tuple(seqs), conflicts)

    def _known_keys(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """The *keys* the ledger holds already, each with the seq and raw SHA-256 of the entry
        holding it. Entry bodies are read for those keys only (a second, seq-indexed query),
        so a batch of new keys costs one dedup probe per key, as before."""
        holders: dict[int, str] = {}
        for i in range(0, len(keys), 5000):
            chunk = list(keys[i : i + 5000])
            holders.update((int(r[1]), str(r[0]))
                           for r in self._q("SELECT key, seq FROM ~.dedup WHERE key = ANY(%s)", (chunk,)))
        known: dict[str, tuple[int, str]] = {}
        seqs = sorted(holders)
        for i in range(0, len(seqs), 5000):
            for seq, body in self._q("SELECT seq, body FROM ~.entries WHERE seq = ANY(%s)", (seqs[i : i + 5000],)):
                known[holders.pop(int(seq))] = (int(seq), stored_raw_sha256(as_bytes(body)))
        if holders:
            seq = min(holders)
            raise MalformedInput(f"a dedup key points at entry {seq}, which is missing", location=self.path)
        return known

    def add_checkpoint(
        self, make_note: Callable[[int, bytes], str], created: str, *, signer: tuple[str, str, str] | None = None
    ) -> StoredCheckpoint:
        """Sign the tree head as it stands inside the write lock, and keep the note.

        *make_note(size, root)* returns the signed note text; it runs while the
        advisory lock is held, so no append can slip between reading the head and storing it.
        """
        with pg_errors_translated(self.path), self._conn.transaction():
            self._q("SELECT pg_advisory_xact_lock(%s)", (self.location.lock_key,))
            size = self.size
            root = self.root(size)
            note = make_note(size, root)
            row = self._q("INSERT INTO ~.checkpoints(size, root, note, created) VALUES (%s, %s, %s, %s) RETURNING id",
                          (size, root, note, created)).fetchone()
            if signer is not None:
                self._q("INSERT INTO ~.signers(name, key_id, public_pem) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        signer)
        return StoredCheckpoint(int(row[0]), size, root, note, created)

    def integrity_check(self) -> str:
        """"ok" when seqs are dense from 0 and every node below the tip exists; else what is wrong.

        PostgreSQL has no ``PRAGMA integrity_check``: page checksums and ``amcheck``
        are the operator's; this checks the ledger's own shape.
        """
        row = self._q("SELECT count(*), coalesce(max(seq), -1), coalesce(min(seq), 0) FROM ~.entries").fetchone()
        count, top, bottom = int(row[0]), int(row[1]), int(row[2])
        if count != top + 1 or bottom != 0:
            return f"entries are not dense: {count} rows, seq {bottom}..{top}"
        expected = sum((top + 1) >> level for level in range(NODE_MIN_LEVEL, max(top + 1, 1).bit_length()))
        nodes = int(self._q("SELECT count(*) FROM ~.nodes").fetchone()[0])
        if nodes != expected:
            return f"{nodes} stored Merkle nodes, expected {expected}"
        return "ok"

    def drop(self) -> None:
        """Drop this ledger's schema and everything in it (tests and tear-down only)."""
        self._q(f"DROP SCHEMA IF EXISTS {self._s} CASCADE")


def _has_meta(conn: Any, schema: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"{schema}.meta",)).fetchone()
    if row[0] is None:
        return False
    return conn.execute(f"SELECT 1 FROM {schema}.meta WHERE key='format'").fetchone() is not None


def drop_ledger(url: str) -> None:
    """Drop the schema named by *url* if it exists (tests and tear-down only)."""
    location = PostgresLocation(url)
    conn = connect(location)
    try:
        conn.execute(f"DROP SCHEMA IF EXISTS {location.schema} CASCADE")
    finally:
        conn.close()


class PostgresRunLock:
    """``fedledger run``'s one-run-at-a-time lock for a PostgreSQL ledger, across hosts.

    A session-level ``pg_try_advisory_lock`` (its own key, not the append lock) held on
    a dedicated connection for the whole run; PostgreSQL drops it when that session
    ends, so a killed run (or a lost host) leaves no lock, only a holder record in
    ``run_holder``, reported as a stale lock taken over. Same interface as
    :class:`collector.runlock.RunLock`.
    """

    def __init__(self, url: str, run_id: str, *, started: str) -> None:
        self.location = PostgresLocation(url)
        self.run_id = run_id
        self.started = started
        self.took_over: Any = None
        self._conn: Any = None

    def acquire(self, wait_seconds: float = 0.0, *, poll_seconds: float = 0.2,
                on_wait: Callable[[Any], None] | None = None) -> PostgresRunLock:
        import time

        conn = connect(self.location)
        start = time.monotonic()
        try:
            with pg_errors_translated(self.location.url):
                self._acquire(conn, wait_seconds, poll_seconds, on_wait, start)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return self

    def _acquire(self, conn: Any, wait_seconds: float, poll_seconds: float,
                 on_wait: Callable[[Any], None] | None, start: float) -> None:
        import os
        import socket
        import time

        import orjson

        from collector.runlock import LedgerLocked, LockHolder

        s = self.location.schema
        if not _has_meta(conn, s):  # its holder table would go into a schema `init` has not made
            raise SourceUnavailable("no ledger here (run `fedledger init` first)", location=self.location.url)
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (self.location.run_lock_key,)).fetchone()[0]:
            waited = time.monotonic() - start
            if on_wait is not None and waited < wait_seconds:
                on_wait(LockHolder.parse(self._record(conn).encode()))
                on_wait = None
            if waited >= wait_seconds:
                raise LedgerLocked(LockHolder.parse(self._record(conn).encode()), waited)
            time.sleep(min(poll_seconds, max(wait_seconds - waited, 0.0)))
        self.took_over = LockHolder.parse(self._record(conn).encode())
        record = orjson.dumps({"pid": os.getpid(), "hostname": socket.gethostname(), "since": self.started,
                               "run_id": self.run_id}).decode()
        conn.execute(f"CREATE TABLE IF NOT EXISTS {s}.run_holder "
                     "(id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL)")
        conn.execute(f"INSERT INTO {s}.run_holder(id, record) VALUES (1, %s) "
                     "ON CONFLICT (id) DO UPDATE SET record = excluded.record", (record,))

    def _record(self, conn: Any) -> str:
        if conn.execute("SELECT to_regclass(%s)", (f"{self.location.schema}.run_holder",)).fetchone()[0] is None:
            return ""
        row = conn.execute(f"SELECT record FROM {self.location.schema}.run_holder WHERE id = 1").fetchone()
        return "" if row is None else str(row[0])

    def release(self) -> None:
        """Clear the holder record and drop the lock (closing the session drops it too)."""
        if self._conn is None:
            return
        import psycopg

        conn, self._conn = self._conn, None
        try:
            conn.execute(f"UPDATE {self.location.schema}.run_holder SET record = '' WHERE id = 1")
            conn.execute("SELECT pg_advisory_unlock(%s)", (self.location.run_lock_key,))
        except psycopg.Error:
            pass  # the session is gone (server restarted, connection lost): so is its lock; the record is stale
        finally:
            conn.close()

    @property
    def held(self) -> bool:
        return self._conn is not None
