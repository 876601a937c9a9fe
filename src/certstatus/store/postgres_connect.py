"""Connections to PostgreSQL for the store: one autocommit connection in UTC, and libpq's errors in one line.

Used by the store itself (:mod:`certstatus.store.postgres`), its generator lock
(:mod:`certstatus.store.postgres_lock`) and the change watcher's LISTEN
connection (:mod:`certstatus.store.changes`).
"""

from __future__ import annotations

from typing import Any

import psycopg

from certstatus.errors import StoreError
from certstatus.store.dsn import redact


def connection_problem(exc: psycopg.Error) -> str:
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
            f"cannot connect to PostgreSQL: {connection_problem(exc)}",
            "Check the DSN (host, port, database, user), that the server runs and that it accepts this client.",
        ) from None
    conn.execute("SET TIME ZONE 'UTC'")
    return conn
