"""Versioned schema migrations: `certstatus db upgrade`/`status`, and refusing an old schema."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from certstatus.cli import main
from certstatus.errors import StoreError
from certstatus.store import migrations
from certstatus.store.factory import open_store
from certstatus.store.postgres import PostgresStore
from certstatus.store.sqlite import PAGE_SIZE, SQLiteStore
from tests.servers import free_port


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _text(result) -> str:
    """The command's output without rich's line wrapping."""
    return " ".join(result.output.split())


def _config(tmp_path: Path, pki, database: str) -> Path:
    path = tmp_path / "certstatus.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:1"\nworkers = 1\ndatabase = "{database}"\n\n'
        f'[ca.demo]\ncertificate = "{pki.ca_cert}"\ncrl = ["{pki.crl}"]\n'
        f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\n'
    )
    return path


def test_both_backends_have_the_same_numbered_steps() -> None:
    sqlite_steps = [(m.version, m.name) for m in migrations.migrations("sqlite")]
    postgres_steps = [(m.version, m.name) for m in migrations.migrations("postgres")]
    assert sqlite_steps == postgres_steps
    assert [v for v, _ in sqlite_steps] == list(range(1, len(sqlite_steps) + 1))


def test_postgres_without_schema_is_refused_with_the_command_to_run(postgres_dsn: str) -> None:
    with pytest.raises(StoreError, match=r"has no certstatus schema.*certstatus db upgrade"):
        open_store(postgres_dsn)


def test_db_upgrade_creates_the_postgres_schema_once(postgres_dsn: str) -> None:
    status = _run("db", "status", "--db", postgres_dsn)
    assert status.exit_code == 1 and "pending: 0001_initial, 0002_change_counter" in _text(status)
    first = _run("db", "upgrade", "--db", postgres_dsn)
    assert first.exit_code == 0 and "applied 0001_initial" in _text(first) and "applied 0002_change_counter" in _text(first)
    again = _run("db", "upgrade", "--db", postgres_dsn)
    assert again.exit_code == 0 and "applied" not in again.output
    assert _run("db", "status", "--db", postgres_dsn).exit_code == 0
    store = open_store(postgres_dsn)
    assert store.schema_version() == migrations.latest_version("postgres")
    store.close()


def test_concurrent_upgrades_apply_each_step_once(postgres_dsn: str) -> None:
    errors = []

    def upgrade() -> None:
        try:
            PostgresStore(postgres_dsn, upgrade=True, pool_size=1).close()
        except Exception as exc:  # collected: asserted below
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(postgres_dsn) as conn:
        applied = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert applied == [(v,) for v in range(1, migrations.latest_version("postgres") + 1)]


def test_old_postgres_schema_upgrades_keeping_its_rows(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(migrations.migrations("postgres")[0].sql)
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO schema_migrations(version, name) VALUES (1, 'initial')")
        conn.execute("INSERT INTO issuers(name, certificate) VALUES ('old', 'der')")
    with pytest.raises(StoreError, match=f"schema version 1, this certstatus needs {migrations.latest_version('postgres')}"):
        open_store(postgres_dsn)
    assert [m.version for m in PostgresStore(postgres_dsn, upgrade=True).upgrade()] == []
    store = open_store(postgres_dsn)
    assert store.register_issuer("old", b"der") in store.change_counters()
    store.close()


def test_schema_newer_than_this_release_is_refused(postgres_dsn: str) -> None:
    PostgresStore(postgres_dsn, upgrade=True).close()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations(version, name) VALUES (99, 'future')")
    with pytest.raises(StoreError, match="newer than this certstatus knows"):
        open_store(postgres_dsn)
    assert _run("db", "status", "--db", postgres_dsn).exit_code == 1


def test_serve_refuses_an_old_postgres_schema_naming_the_setting(postgres_dsn: str, demo_pki, tmp_path: Path) -> None:
    config = _config(tmp_path, demo_pki, postgres_dsn)
    for command in ("serve", "import"):
        result = _run(command, "--config", str(config))
        text = _text(result)
        assert result.exit_code == 2
        assert f"{config}: server.database:" in text and "certstatus db upgrade" in text


def test_serve_config_with_unreachable_postgres_names_the_setting(postgres_server, demo_pki, tmp_path: Path) -> None:
    port = free_port()  # a local port nothing listens on
    config = _config(tmp_path, demo_pki, f"postgresql://postgres:secret@127.0.0.1:{port}/test")
    result = _run("import", "--config", str(config))
    text = _text(result)
    assert result.exit_code == 2
    assert f"{config}: server.database:" in text and "cannot connect to PostgreSQL" in text
    assert "secret" not in text and "postgres:***@" in text


def test_sqlite_file_from_before_migrations_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "legacy.sqlite3"
    legacy = sqlite3.connect(path)
    legacy.executescript(migrations.migrations("sqlite")[0].sql)
    legacy.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    legacy.execute("INSERT INTO issuers(name, certificate) VALUES ('old', x'00')")
    legacy.commit()
    legacy.close()
    with pytest.raises(StoreError, match="schema version 1"):
        SQLiteStore(path, upgrade=False)
    store = SQLiteStore(path)  # the embedded store upgrades itself
    assert store.schema_version() == migrations.latest_version("sqlite")
    assert store.register_issuer("old", b"\x00") == 1
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall() == [
            (1, "initial"),
            (2, "change_counter"),
            (3, "precomputed"),
            (4, "precomputed_compact"),
            (5, "source_fingerprint"),
            (6, "precomputed_profile"),
            (7, "issued_not_after"),
            (8, "issued_cert_hash"),
        ]


def test_new_sqlite_file_has_large_pages_and_an_old_file_keeps_its_own(tmp_path: Path) -> None:
    new = SQLiteStore(tmp_path / "new.sqlite3")
    assert new._db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16384
    new.close()
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.execute("PRAGMA page_size = 4096")
        old.executescript(migrations.migrations("sqlite")[0].sql)
    store = SQLiteStore(path)  # upgraded in place, not rebuilt: a file keeps the page size it was made with
    assert store.schema_version() == migrations.latest_version("sqlite")
    assert store._db.execute("PRAGMA page_size").fetchone()[0] == 4096
    store.close()


def test_db_commands_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    missing = _run("db", "status", "--db", str(path))
    assert missing.exit_code == 2 and "does not exist" in _text(missing)
    assert _run("db", "upgrade", "--db", str(path)).exit_code == 0
    status = _run("db", "status", "--db", str(path))
    assert status.exit_code == 0 and f"schema version {migrations.latest_version('sqlite')}, current" in _text(status)


def test_db_commands_need_exactly_one_of_config_and_db(tmp_path: Path) -> None:
    assert _run("db", "upgrade").exit_code == 2
    assert _run("db", "upgrade", "--db", "x", "--config", "y").exit_code == 2
