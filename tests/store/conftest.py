"""Fixtures running every store test against both backends: SQLite and the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from certstatus.store.base import StatusStore
from certstatus.store.factory import open_store


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A store at the current schema, empty: an SQLite path, or the DSN of a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        database: str | Path = tmp_path / "store.sqlite3"
    else:
        database = request.getfixturevalue("postgres_dsn")
    open_store(database, upgrade=True).close()
    return database


@pytest.fixture
def store(database: str | Path) -> Iterator[StatusStore]:
    """An open store of each backend (closed after the test)."""
    opened = open_store(database)
    yield opened
    opened.close()
