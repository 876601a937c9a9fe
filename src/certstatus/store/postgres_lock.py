"""The one-generator-per-CA lock of a fleet sharing one PostgreSQL store.

Several ``certstatus serve`` processes and ``certstatus generate`` runs may
share one database; one of them at a time signs a CA's pre-signed responses.
:meth:`GeneratorLockPostgres.claim_generator` takes a session advisory lock
(``pg_try_advisory_lock``) keyed on the schema and the issuer id, on a
connection of its own named ``certstatus generator <host> pid <pid>``
(``application_name``), so another process can say who holds it. PostgreSQL
releases it when that connection ends: a killed or crashed holder at once, a
vanished host when the server's TCP keepalives give up on it. Why a lock and
not a lease row: no expiry to tune, no clock to trust, released by the server
itself; the cost is one idle connection per generating process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import zlib

import psycopg

from certstatus.errors import StoreUnavailable
from certstatus.store.postgres_connect import connect

log = logging.getLogger("certstatus.store.postgres")

#: Prefix of the first key of the generator lock (the second is the issuer id).
_LOCK_NAME = b"certstatus generator "


def generator_lock_key(schema: str) -> int:
    """The first key of the generator advisory lock of ``schema`` (a non-negative int4; the second key is the issuer id).

    Keyed on the schema so that two certstatus schemas of one database do
    not exclude each other's generators.
    """
    return zlib.crc32(_LOCK_NAME + schema.encode()) & 0x7FFFFFFF


class GeneratorLockPostgres:
    """The generator claim of ``PostgresStore`` (a mixin; see :meth:`certstatus.store.base.StatusStore.claim_generator`).

    Expects ``self.dsn``, ``self.schema`` and ``self.label``; :meth:`_release_generator` is called by ``close()``.
    """

    dsn: str
    schema: str
    label: str
    _lock_conn: psycopg.Connection | None = None
    _claimed: set[int] | None = None
    _claim_guard: threading.Lock | None = None

    def claim_generator(self, issuer_id: int) -> str | None:
        """Become, or stay, the one process that generates for ``issuer_id``; None when this store holds it.

        Otherwise return who holds it (``application_name``, client address
        and backend pid, as far as ``pg_stat_activity`` shows them), for the
        log. A lost lock connection (PostgreSQL restarted) loses every claim
        of this store; the next call tries again on a new connection. Raises
        :class:`~certstatus.errors.StoreError` when PostgreSQL cannot be
        reached, :class:`~certstatus.errors.StoreUnavailable` when it stops
        answering during the call.
        """
        try:
            return self._claim(issuer_id)
        except psycopg.OperationalError as exc:
            self._release_generator()
            raise StoreUnavailable(self.label, f"PostgreSQL stopped answering: {' '.join(str(exc).split())}") from None

    def _claim(self, issuer_id: int) -> str | None:
        if self._claim_guard is None:
            self._claim_guard = threading.Lock()
        key = generator_lock_key(self.schema)
        with self._claim_guard:
            conn = self._lock_conn
            if conn is not None:
                try:
                    conn.execute("SELECT 1")  # alive: a session lock cannot be taken from us
                except psycopg.Error:
                    if self._claimed:
                        log.warning("lost the generator lock connection to %s; claiming again", self.label)
                    self._release_generator()
                    conn = None
            if conn is None:
                name = f"certstatus generator {socket.gethostname()} pid {os.getpid()}"
                conn = self._lock_conn = connect(self.dsn, application_name=name[:63])
                self._claimed = set()
            if issuer_id in self._claimed:
                return None
            if conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (key, issuer_id)).fetchone()[0]:
                self._claimed.add(issuer_id)
                return None
            row = conn.execute(
                "SELECT a.application_name, a.client_addr::text, l.pid FROM pg_locks l "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 2",
                (key, issuer_id),
            ).fetchone()
            if row is None:  # released between the two statements
                return "another process (it has just released it)"
            name, address, pid = row
            where = f" from {address}" if address else ""
            return f"{name or 'another process'}{where} (PostgreSQL backend pid {pid})"

    def _release_generator(self) -> None:
        """Close the lock connection: PostgreSQL releases every generator lock of this store."""
        conn, self._lock_conn, self._claimed = self._lock_conn, None, set()
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass
