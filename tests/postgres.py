"""PostgreSQL for the tests: the real server at 127.0.0.1:5432, database ``test``, trust auth.

Every test (or module) gets its own schema, named ``cstest_<pid>_<random>``
and dropped afterwards, so runs of other engineers on the same server never
meet. Schemas left by killed runs (their pid no longer alive) are dropped at
session start. Under CI (``CI=true``) an unreachable server fails the tests;
elsewhere they are skipped with the reason.

Override the server with ``CERTSTATUS_TEST_POSTGRES`` (a ``postgresql://`` URI).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

SERVER = os.environ.get("CERTSTATUS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PREFIX = "cstest_"


def dsn_for(schema: str) -> str:
    """The DSN of ``schema`` on the test server (search_path selects it)."""
    separator = "&" if "?" in SERVER else "?"
    return f"{SERVER}{separator}options={quote(f'-csearch_path={schema}')}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_stale(conn: psycopg.Connection) -> None:
    rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (PREFIX + "%",)).fetchall()
    for (name,) in rows:
        pid = name[len(PREFIX):].split("_", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(name)))


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """Create an empty uniquely named schema; yield its DSN; drop it (and its rows) afterwards."""
    name = f"{PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    ident = psycopg.sql.Identifier(name)
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(ident))
    try:
        yield dsn_for(name)
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident))


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test server's DSN, once it answers; skips when it does not (a failure under CI)."""
    try:
        with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
            _drop_stale(conn)
    except psycopg.Error as exc:
        reason = f"PostgreSQL at {SERVER} is not reachable ({' '.join(str(exc).split())}); scripts/test starts it"
        pytest.skip(reason)  # a failure under CI=true (tests/ci_skips.py)
    return SERVER


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    """The DSN of an empty schema of its own for one test (no certstatus tables yet)."""
    with fresh_schema() as dsn:
        yield dsn


@pytest.fixture(scope="module")
def postgres_module_dsn(postgres_server: str) -> Iterator[str]:
    """The DSN of an empty schema shared by the tests of one module."""
    with fresh_schema() as dsn:
        yield dsn
