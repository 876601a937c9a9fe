"""Fixtures running every store test against both backends: SQLite and the real PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from certstatus.store.base import StatusStore
from certstatus.store.factory import open_store


@pytest.fixture(params=["sqlite", "sqlite-4k-pages", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A store at the current schema, empty: an SQLite path, or the DSN of a fresh PostgreSQL schema.

    "sqlite-4k-pages" is an SQLite file made with 4 KiB pages, as every store
    was before new files got :data:`certstatus.store.sqlite.PAGE_SIZE`: such a
    file keeps its page size, and must behave the same.
    """
    if request.param.startswith("sqlite"):
        database: str | Path = tmp_path / "store.sqlite3"
        if request.param == "sqlite-4k-pages":
            with contextlib.closing(sqlite3.connect(database)) as old:
                old.execute("PRAGMA page_size = 4096")
                old.execute("PRAGMA journal_mode = WAL")  # writes the header: the page size is fixed from here on
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
