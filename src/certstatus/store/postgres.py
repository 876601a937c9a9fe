"""PostgreSQL implementation of :class:`certstatus.store.base.StatusStore`.

The store of a fleet: several ``certstatus serve`` processes, on one or more
hosts, share one database. Semantics are those of the SQLite store (rows
keyed on (issuer, serial), every write one transaction, an import that fails
half-way leaves the previous rows serving); the same contract tests run
against both (tests/store/test_store_contract.py).

What differs is speed and propagation:

* ``lookup`` is one round trip to a statement prepared once per connection;
* ``replace_source`` writes with binary ``COPY``, and only the difference when
  the source had rows (:mod:`certstatus.store.postgres_bulk`);
* every write that changes statuses bumps the issuer's ``change_counter`` and
  sends ``NOTIFY <channel>, '<issuer id>:<counter>'`` in the same transaction,
  so every responder process learns of it at commit
  (:mod:`certstatus.store.changes` listens); an import or push takes the
  issuer row's lock first, whether or not it ends up changing anything;
* pre-signed responses (:mod:`certstatus.store.postgres_precomputed`) are
  written by one generator per CA across the fleet, the holder of an
  advisory lock (:mod:`certstatus.store.postgres_lock`).

The request path never waits on PostgreSQL without bound: its reads (status
and pre-signed lookups, source states) run on per-thread reader connections
with a ``statement_timeout`` of :data:`READ_TIMEOUT_SECONDS` (unless the DSN or
the role already sets one) and TCP keepalives plus ``tcp_user_timeout``, so a
locked table, an overloaded server or a network partition becomes
:class:`StoreUnavailable` (tryLater) within seconds instead of freezing the
worker's event loop, edge-cache hits and ``/health`` included.

The schema is selected by the DSN's ``search_path`` (``?options=-csearch_path%3Dname``);
the notification channel is named after the schema, so two certstatus
schemas in one database do not hear each other.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.errors import QueryCanceled
from psycopg_pool import ConnectionPool

from certstatus.errors import StoreError, StoreUnavailable
from certstatus.sources.records import IssuedCertificate, RevokedEntry
from certstatus.store import migrations
from certstatus.store.base import (
    PUSH_KIND,
    REASON_CODES,
    REASONS_BY_CODE,
    SOURCE_COLUMNS,
    CertStatusRecord,
    ChangeCount,
    SourceState,
    StatusChange,
    archive_kinds,
    combine_revocations,
    count_changes,
    issued_entries,
    revocations_from_rows,
    serial_key,
    source_marks,
    source_state_from_row,
)
from certstatus.store.dsn import redact
from certstatus.store.postgres_bulk import CHANGED_SERIALS, replace_rows, write_counted
from certstatus.store.postgres_bulk import archive_removed as bulk_archive_removed
from certstatus.store.postgres_lock import GeneratorLockPostgres
from certstatus.store.postgres_precomputed import PrecomputedPostgres

BACKEND = "postgres"


_UTC = dt.timezone.utc
#: Longest a request-path read may take (seconds): the reader connections' ``statement_timeout``
#: when the DSN sets none (``?options=-cstatement_timeout%3D5000`` overrides it, in ms).
READ_TIMEOUT_SECONDS = 2.0
#: libpq parameters of the reader connections, unless the DSN names them: a peer that stops
#: acknowledging (a partition) fails the connection after tcp_user_timeout (ms) instead of the
#: kernel's ~15 minutes of retransmissions; idle connections are probed by keepalives.
_READER_TCP = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "3", "keepalives_count": "3"}
#: First key of the advisory lock that serialises `db upgrade` runs (the second is the schema).
_UPGRADE_LOCK = 0x63657274  # "cert"

#: One row per source that revokes the serial, plus a row with source NULL (and the certificate's hash,
#: when known) per source that lists it issued.
_LOOKUP = """
SELECT source, revocation_time, reason, invalidity_date, NULL::bytea FROM revoked WHERE issuer_id = %(issuer)s AND serial = %(serial)s
UNION ALL
SELECT NULL, NULL, NULL, NULL, cert_hash FROM issued WHERE issuer_id = %(issuer)s AND serial = %(serial)s
"""

#: The latest notAfter the sources listing a serial issued give (NULL: none gives one).
_NOT_AFTER = "SELECT max(not_after) FROM issued WHERE issuer_id = %(issuer)s AND serial = %(serial)s"

_SOURCE_STATES = f"SELECT {SOURCE_COLUMNS} FROM sources WHERE issuer_id = %(issuer)s"

#: A pushed revocation: inserted, or updated when it differs (rowcount 0: the same revocation was pushed again).
_PUSH_REVOKE = (
    "INSERT INTO revoked(issuer_id, serial, source, revocation_time, reason, invalidity_date) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (issuer_id, serial, source) DO UPDATE SET "
    "revocation_time = EXCLUDED.revocation_time, reason = EXCLUDED.reason, invalidity_date = EXCLUDED.invalidity_date "
    "WHERE (revoked.revocation_time, revoked.reason, revoked.invalidity_date) "
    "IS DISTINCT FROM (EXCLUDED.revocation_time, EXCLUDED.reason, EXCLUDED.invalidity_date)"
)

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def channel_for(schema: str, topic: str = "changes") -> str:
    """The NOTIFY channel of ``topic`` in the certstatus schema ``schema`` (an identifier, at most 63 bytes).

    ``"changes"``: writes that changed statuses (payload ``'<issuer id>:<counter>'``);
    ``"sources"``: imports that changed none, only their source state (payload ``'<issuer id>'``).
    """
    name = f"certstatus_{topic}" if schema == "public" else f"certstatus_{topic}_{schema}"
    return name.encode()[:63].decode("utf-8", "ignore")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.astimezone(_UTC)


def _problem(exc: psycopg.Error) -> str:
    """libpq's message on one line, ending with a full stop."""
    text = " ".join(str(exc).split())
    return text if text.endswith((".", "?", "!")) else text + "."


def connect(dsn: str, *, connect_timeout: int = 5, **params: Any) -> psycopg.Connection:
    """Open one autocommit connection in UTC; raise :class:`StoreError` naming the reason on failure.

    ``params`` are more libpq parameters (``application_name=...``).
    """
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout, **params)
    except psycopg.OperationalError as exc:
        raise StoreError(
            redact(dsn),
            f"cannot connect to PostgreSQL: {_problem(exc)}",
            "Check the DSN (host, port, database, user), that the server runs and that it accepts this client.",
        ) from None
    conn.execute("SET TIME ZONE 'UTC'")
    return conn


class PostgresStore(PrecomputedPostgres, GeneratorLockPostgres):
    """Status store in a PostgreSQL schema, shared by any number of processes.

    ``dsn`` is a ``postgresql://`` URI. Thread-safe: :meth:`lookup` uses one
    connection per calling thread, every other call takes a connection from
    a pool of at most ``pool_size``. Opening checks the
    schema version; an old or missing schema raises :class:`StoreError`
    telling to run ``certstatus db upgrade`` (or pass ``upgrade=True``,
    which is what that command does; ``check=False`` skips the check, for
    ``certstatus db status``). An unreachable server raises
    :class:`StoreError` at once; a server lost while serving raises
    :class:`StoreUnavailable` from :meth:`lookup` (answered tryLater).
    """

    backend = BACKEND

    def __init__(
        self,
        dsn: str,
        *,
        upgrade: bool = False,
        check: bool = True,
        pool_size: int = 4,
        connect_timeout: int = 5,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        self.dsn = dsn
        self.read_timeout = read_timeout
        self.label = redact(dsn)
        with connect(dsn, connect_timeout=connect_timeout) as conn:
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            if schema is None:
                raise StoreError(
                    self.label,
                    "its search_path names no existing schema.",
                    "Create the schema (CREATE SCHEMA name) or fix options=-csearch_path in the DSN.",
                )
            self.schema: str = schema
            self.channel = channel_for(schema)
            self.sources_channel = channel_for(schema, "sources")
            if upgrade:
                self._upgrade(conn)
            if check:
                migrations.check_version(BACKEND, _schema_version(conn), self.label)
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout},
            configure=_configure,
            name=f"certstatus-{schema}",
            open=False,
        )
        self._pool.open(wait=True, timeout=connect_timeout + 5)
        # Lookups use one connection per thread, outside the pool: the pool's
        # check-out costs more than the lookup itself (bench/fleet.py).
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._readers: list[psycopg.Connection] = []
        self._readers_lock = threading.Lock()

    # -- schema -------------------------------------------------------------

    def schema_version(self) -> int:
        """The applied schema version (0: no certstatus schema here)."""
        with self._connection() as conn:
            return _schema_version(conn)

    def upgrade(self) -> list[migrations.Migration]:
        """Apply the pending migrations in one transaction; return those applied."""
        with self._connection() as conn:
            return self._upgrade(conn)

    def _upgrade(self, conn: psycopg.Connection) -> list[migrations.Migration]:
        with conn.transaction():
            # Two `db upgrade` at once: the second waits, then finds nothing to do.
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (_UPGRADE_LOCK,))
            conn.execute(_MIGRATIONS_TABLE)
            todo = migrations.pending(BACKEND, _schema_version(conn))
            for migration in todo:
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations(version, name) VALUES (%s, %s)", (migration.version, migration.name)
                )
        return list(todo)

    # -- StatusStore ----------------------------------------------------------

    def register_issuer(self, name: str, certificate_der: bytes) -> int:
        with self._connection() as conn, conn.transaction():
            row = conn.execute(
                "INSERT INTO issuers(name, certificate) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING RETURNING id",
                (name, certificate_der),
            ).fetchone()
            if row is not None:
                self._bump(conn, row[0])
                return row[0]
            issuer_id, current = conn.execute(
                "SELECT id, certificate FROM issuers WHERE name = %s FOR UPDATE", (name,)
            ).fetchone()
            if bytes(current) != certificate_der:
                # Same name, new certificate: the old rows belong to another key.
                for table in ("revoked", "issued", "sources", "precomputed"):
                    conn.execute(sql.SQL("DELETE FROM {} WHERE issuer_id = %s").format(sql.Identifier(table)), (issuer_id,))
                conn.execute("UPDATE issuers SET certificate = %s WHERE id = %s", (certificate_der, issuer_id))
                self._bump(conn, issuer_id)
            return issuer_id

    def lookup(self, issuer_id: int, serial_number: int) -> CertStatusRecord | None:
        rows = self._read(_LOOKUP, {"issuer": issuer_id, "serial": serial_key(serial_number)})
        if not rows:
            return None
        issued = any(row[0] is None for row in rows)
        cert_hash = next((bytes(row[4]) for row in rows if row[4] is not None), None)
        revoked = combine_revocations(
            serial_number,
            (
                (row[0], _utc(row[1]), None if row[2] is None else REASONS_BY_CODE[row[2]], _utc(row[3]))
                for row in rows
                if row[0] is not None
            ),
        )
        if revoked is None and not issued:
            return None
        return CertStatusRecord(issued=issued, revoked=revoked, cert_hash=cert_hash)

    def certificate_not_after(self, issuer_id: int, serial_number: int) -> dt.datetime | None:
        rows = self._read(_NOT_AFTER, {"issuer": issuer_id, "serial": serial_key(serial_number)})
        return _utc(rows[0][0]) if rows else None

    def revocations(self, issuer_id: int, serial_number: int) -> dict[str, RevokedEntry]:
        rows = self._read(_LOOKUP, {"issuer": issuer_id, "serial": serial_key(serial_number)})
        return revocations_from_rows(serial_number, (row for row in rows if row[0] is not None), _utc)

    def replace_source(
        self,
        issuer_id: int,
        state: SourceState,
        *,
        issued: Iterable[int | IssuedCertificate] = (),
        revoked: Iterable[RevokedEntry] = (),
        drop_kinds: Sequence[str] = (),
        archive_removed: bool = False,
    ) -> ChangeCount:
        # Duplicates are dropped first, as SQLite's INSERT OR IGNORE / OR REPLACE
        # do (COPY has no conflict clause): the last revocation of a serial wins.
        # The rows are written by COPY and a diff (store/postgres_bulk.py).
        issued_keys = issued_entries(issued)
        revoked_rows = {serial_key(entry.serial_number): entry for entry in revoked}
        kind = state.kind
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            counter = self._lock_issuer(cur, issuer_id) + 1  # first: orders us with generator writes
            kinds_before = self._source_kinds(cur, issuer_id)
            # The serials whose rows change are collected only when they have pre-signed responses to stop.
            track = self._has_precomputed(cur, issuer_id)
            if track:
                cur.execute(CHANGED_SERIALS)
            rows = 0
            replaced, remaining = archive_kinds(kind, drop_kinds)
            if archive_removed and replaced:  # before the rows it keeps are replaced or dropped
                rows += bulk_archive_removed(
                    cur, issuer_id, state.this_update or state.imported_at, replaced, remaining, revoked_rows
                )
            rows += sum(self._delete_source(cur, issuer_id, other, track=track) for other in drop_kinds)
            rows += replace_rows(cur, issuer_id, kind, issued_keys, revoked_rows, track=track)
            self._save_state(cur, issuer_id, state)
            changed = count_changes(rows, kinds_before, kind, drop_kinds)
            if changed:
                self._bump(conn, issuer_id)  # = counter: the row is locked
                if track:
                    self._mark_changed(cur, issuer_id, counter)
            else:
                self._sources_changed(conn, issuer_id)
        return changed

    def apply_changes(self, issuer_id: int, changes: Sequence[StatusChange], *, at: dt.datetime) -> ChangeCount:
        unknown = [change.action for change in changes if change.action not in ("issue", "unrevoke", "revoke")]
        if unknown:
            raise ValueError(f"unknown change action {unknown[0]!r}")
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            counter = self._lock_issuer(cur, issuer_id) + 1
            kinds_before = self._source_kinds(cur, issuer_id)
            written: list[bytes] = []
            for change in changes:
                key = serial_key(change.serial_number)
                if change.action == "issue":
                    cur.execute(
                        "INSERT INTO issued(issuer_id, serial, source) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        (issuer_id, key, PUSH_KIND),
                    )
                elif change.action == "unrevoke":
                    cur.execute(
                        "DELETE FROM revoked WHERE issuer_id = %s AND serial = %s AND source = %s", (issuer_id, key, PUSH_KIND)
                    )
                else:
                    cur.execute(
                        _PUSH_REVOKE,
                        (
                            issuer_id,
                            key,
                            PUSH_KIND,
                            change.revocation_time,
                            None if change.reason is None else REASON_CODES[change.reason],
                            change.invalidity_date,
                        ),
                    )
                if cur.rowcount:
                    written.append(key)
            self._save_state(cur, issuer_id, SourceState(kind=PUSH_KIND, origin="push", imported_at=at, entries=len(changes)))
            changed = count_changes(len(written), kinds_before, PUSH_KIND)
            if changed:
                self._bump(conn, issuer_id)  # = counter: the row is locked
                self._mark_changed(cur, issuer_id, counter, written)
            else:
                self._sources_changed(conn, issuer_id)
        return changed

    @staticmethod
    def _delete_source(cur: psycopg.Cursor, issuer_id: int, kind: str, *, track: bool = False) -> int:
        """Delete the rows and state of the issuer's source ``kind``; return how many status rows went.

        With ``track`` their serials go to changed_serials (a complete CRL dropping the delta CRL).
        """
        rows = 0
        for table in ("revoked", "issued"):  # constant table names
            rows += write_counted(cur, f"DELETE FROM {table} WHERE issuer_id = %s AND source = %s", (issuer_id, kind), track=track)
        cur.execute("DELETE FROM sources WHERE issuer_id = %s AND kind = %s", (issuer_id, kind))
        return rows

    @staticmethod
    def _source_kinds(cur: psycopg.Cursor, issuer_id: int) -> set[str]:
        return {row[0] for row in cur.execute("SELECT kind FROM sources WHERE issuer_id = %s", (issuer_id,))}

    @staticmethod
    def _save_state(cur: psycopg.Cursor, issuer_id: int, state: SourceState) -> None:
        cur.execute(
            "INSERT INTO sources(issuer_id, kind, origin, imported_at, entries, this_update, next_update, crl_number, "
            "fingerprint) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (issuer_id, kind) DO UPDATE SET origin = EXCLUDED.origin, "
            "imported_at = EXCLUDED.imported_at, entries = EXCLUDED.entries, this_update = EXCLUDED.this_update, "
            "next_update = EXCLUDED.next_update, crl_number = EXCLUDED.crl_number, fingerprint = EXCLUDED.fingerprint",
            (issuer_id, state.kind, state.origin, state.imported_at, state.entries, state.this_update,
             state.next_update, state.crl_number, state.fingerprint),
        )  # fmt: skip

    def source_states(self, issuer_id: int) -> dict[str, SourceState]:
        # On the request path (the freshness guard): a reader connection, bounded like lookups.
        rows = self._read(_SOURCE_STATES, {"issuer": issuer_id})
        return {row[0]: source_state_from_row(row, _utc) for row in rows}

    def change_counters(self) -> dict[int, int]:
        """Return {issuer id: change counter}; a counter grows with every write to that issuer."""
        with self._connection() as conn:
            return dict(conn.execute("SELECT id, change_counter FROM issuers").fetchall())

    def source_marks(self) -> dict[int, tuple]:
        with self._connection() as conn:
            return source_marks(conn.execute("SELECT issuer_id, kind, imported_at, this_update, next_update FROM sources"))

    def close(self) -> None:
        self._release_generator()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._pool.close()

    # -- internals ------------------------------------------------------------

    @staticmethod
    def _lock_issuer(cur: psycopg.Cursor, issuer_id: int) -> int:
        """Take the issuer row's write lock for this transaction (as the counter's UPDATE would) and
        return its change counter: an import holds it from its first statement, so a generator
        batch (``FOR SHARE``) is stored either before it or after it, never in between."""
        return cur.execute(
            "SELECT change_counter FROM issuers WHERE id = %s FOR NO KEY UPDATE", (issuer_id,)
        ).fetchone()[0]

    def _bump(self, conn: psycopg.Connection, issuer_id: int) -> int:
        """Count a write to ``issuer_id`` and announce it at commit (NOTIFY is transactional)."""
        counter = conn.execute(
            "UPDATE issuers SET change_counter = change_counter + 1 WHERE id = %s RETURNING change_counter",
            (issuer_id,),
        ).fetchone()[0]
        conn.execute("SELECT pg_notify(%s, %s)", (self.channel, f"{issuer_id}:{counter}"))
        return counter

    def _sources_changed(self, conn: psycopg.Connection, issuer_id: int) -> None:
        """Announce at commit an import that changed only the issuer's source state (no counter to bump)."""
        conn.execute("SELECT pg_notify(%s, %s)", (self.sources_channel, str(issuer_id)))

    def _read(self, query: str, params: dict[str, Any], *, binary: bool = False) -> list[tuple]:
        """Run a read on this thread's connection, prepared once; retry once on a fresh connection.

        ``binary``: results in PostgreSQL's binary format (bytea arrives as is, not hex-encoded).
        """
        for attempt in (1, 2):
            try:
                cursor = self._reader()
                cursor.execute(query, params, prepare=True, binary=binary)
                return cursor.fetchall()
            except QueryCanceled:  # statement_timeout: the server is there but too slow
                raise StoreUnavailable(
                    self.label, f"PostgreSQL did not answer a lookup within its statement_timeout ({self._local.timeout})."
                ) from None
            except psycopg.OperationalError as exc:
                self._drop_reader()
                if attempt == 2:
                    raise StoreUnavailable(self.label, f"PostgreSQL stopped answering: {_problem(exc)}") from None
            except StoreError as exc:
                raise StoreUnavailable(self.label, exc.problem) from None
        raise AssertionError("unreachable")

    def _reader(self) -> psycopg.Cursor:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None or cursor.connection.closed:
            conn = connect(self.dsn, connect_timeout=self._connect_timeout, **self._reader_params())
            timeout = conn.execute("SHOW statement_timeout").fetchone()[0]
            if timeout == "0":  # neither the DSN nor the role sets one
                timeout = f"{max(1, round(self.read_timeout * 1000))}ms"
                conn.execute(f"SET statement_timeout = '{timeout}'")
            self._local.timeout = timeout
            with self._readers_lock:
                self._readers.append(conn)
            cursor = self._local.cursor = conn.cursor()
        return cursor

    def _reader_params(self) -> dict[str, str]:
        """libpq parameters of a reader connection: :data:`_READER_TCP` and ``tcp_user_timeout``
        (the read timeout plus the connect timeout, in ms), each unless the DSN names it."""
        given = conninfo_to_dict(self.dsn)
        wanted = {**_READER_TCP, "tcp_user_timeout": str(round((self.read_timeout + self._connect_timeout) * 1000))}
        return {key: value for key, value in wanted.items() if key not in given}

    def _drop_reader(self) -> None:
        cursor = getattr(self._local, "cursor", None)
        self._local.cursor = None
        if cursor is not None:
            with self._readers_lock:
                if cursor.connection in self._readers:
                    self._readers.remove(cursor.connection)
            cursor.connection.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(self.label, f"PostgreSQL stopped answering: {_problem(exc)}") from None


def _configure(conn: psycopg.Connection) -> None:
    conn.execute("SET TIME ZONE 'UTC'")


def _schema_version(conn: psycopg.Connection) -> int:
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
