"""``certstatus db``: versioned schema migrations of the status store (docs/database.md).

``certstatus db upgrade`` applies the pending migrations (PostgreSQL: in one
transaction, serialised by an advisory lock, so running it from two hosts at
once is safe); ``certstatus db status`` prints the version without changing
anything (exit code 1 when an upgrade is due).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from certstatus.config import database_setting, load_config
from certstatus.errors import ConfigError, StoreError
from certstatus.store import migrations
from certstatus.store.base import SchemaAdmin
from certstatus.store.factory import describe, open_store

console = Console(stderr=True)
CLI = "command line"


def _options(func):
    func = click.option("--db", help="The database itself: an SQLite path or a postgresql:// URI.")(func)
    return click.option("--config", type=click.Path(dir_okay=False), help="Configuration file: its [server] database.")(func)


def _open(config: str | None, db: str | None, *, create: bool) -> tuple[SchemaAdmin, str]:
    """Open the database named by exactly one of --config and --db, without the version check.

    ``create``: an SQLite file that does not exist yet is created (empty).
    """
    if bool(config) == bool(db):
        raise ConfigError(CLI, "--config/--db", "give exactly one of them.", "Name the configuration file or the database.")
    if config:
        server = load_config(Path(config)).server
        database, where, key = server.database, server.where, server.database_key
    else:
        database, where, key = database_setting(db, base=Path("."), file=CLI, key="--db"), CLI, "--db"
    if not create and isinstance(database, Path) and not database.exists():
        raise ConfigError(where, key, f"{database} does not exist.", "Run `certstatus db upgrade` or `certstatus import` to create it.")
    try:
        return open_store(database, upgrade=False, check=False), describe(database)
    except StoreError as exc:
        raise ConfigError(where, key, str(exc)) from None


@click.group()
def db() -> None:
    """The status store's schema: status, upgrade."""


@db.command()
@_options
def upgrade(config: str | None, db: str | None) -> None:
    """Apply the pending schema migrations (once per database, before starting responders)."""
    store, label = _open(config, db, create=True)
    try:
        applied = store.upgrade()
        version = store.schema_version()
    finally:
        store.close()
    for migration in applied:
        console.print(f"applied {migration.version:04d}_{migration.name}", highlight=False)
    console.print(f"{label}: schema version {version}, current", highlight=False)


@db.command()
@_options
def status(config: str | None, db: str | None) -> None:
    """Print the schema version; exit code 1 when `certstatus db upgrade` is due."""
    store, label = _open(config, db, create=False)
    try:
        version = store.schema_version()
    finally:
        store.close()
    latest = migrations.latest_version(store.backend)
    todo = migrations.pending(store.backend, version)
    if version > latest:
        console.print(f"{label}: schema version {version}, newer than this certstatus ({latest})", highlight=False)
        sys.exit(1)
    if todo:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in todo)
        console.print(f"{label}: schema version {version}; pending: {names}. Run `certstatus db upgrade`.", highlight=False)
        sys.exit(1)
    console.print(f"{label}: schema version {version}, current", highlight=False)
