"""Open the status store named by ``[server] database``: a ``postgresql://`` URI or an SQLite path."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from certstatus.errors import ConfigError, StoreError
from certstatus.store.base import StatusStore
from certstatus.store.dsn import is_dsn, redact
from certstatus.store.sqlite import SQLiteStore


def describe(database: str | Path) -> str:
    """The database for messages: the path, or the DSN with its password masked."""
    return redact(str(database))


def open_store(database: str | Path, *, upgrade: bool | None = None, check: bool = True) -> StatusStore:
    """Open the PostgreSQL store for a DSN, the SQLite store for a path.

    ``upgrade`` None takes each backend's policy (docs/database.md): SQLite
    creates or upgrades its file, PostgreSQL only checks the schema version.
    Raises :class:`certstatus.errors.StoreError` when the database cannot be
    reached or (unless ``check`` is False) its schema is not the one this
    release uses.
    """
    if is_dsn(database):
        from certstatus.store.postgres import PostgresStore  # deferred: psycopg only for a PostgreSQL store

        return PostgresStore(str(database), upgrade=bool(upgrade), check=check)
    return SQLiteStore(database, upgrade=True if upgrade is None else upgrade, check=check)


class _ServerSettings(Protocol):
    database: str
    where: str
    database_key: str


class _Settings(Protocol):
    @property
    def server(self) -> _ServerSettings: ...


def open_configured_store(settings: _Settings, *, upgrade: bool | None = None) -> StatusStore:
    """Open ``server.database`` of ``settings`` (a :class:`certstatus.config.Settings`), as :func:`open_store`.

    Raises :class:`ConfigError` naming the setting when the database is
    unreachable or its schema is not current.
    """
    try:
        return open_store(settings.server.database, upgrade=upgrade)
    except StoreError as exc:
        raise ConfigError(settings.server.where, settings.server.database_key, str(exc)) from None
