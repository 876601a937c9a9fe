"""Versioned schema migrations of the status store, one SQL file per step and backend.

Files are ``<backend>/NNNN_name.sql`` beside this module (``sqlite`` and
``postgres``); version NNNN is applied once, in order, and recorded in the
table ``schema_migrations(version, name, applied_at)``. Both backends carry
the same version numbers, so ``certstatus db upgrade`` reports one number
whatever the database.

Policy (docs/database.md): PostgreSQL is upgraded only by ``certstatus db
upgrade`` — a fleet shares the database, so no responder changes it on its
own, and ``serve`` refuses an old schema. The embedded SQLite file belongs
to one host, and is created or upgraded when opened by the importing
process.

A new step: add ``NNNN_what.sql`` for both backends with the next number;
never edit a released file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from certstatus.errors import StoreError

BACKENDS = ("sqlite", "postgres")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``version`` (1, 2, ...), ``name`` (from the file name), ``sql`` (statements)."""

    version: int
    name: str
    sql: str


@cache
def migrations(backend: str) -> tuple[Migration, ...]:
    """Return the migrations of ``backend`` (``"sqlite"`` or ``"postgres"``) in version order.

    Raises ValueError for an unknown backend, or when the files skip or repeat
    a version (a packaging bug).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown store backend {backend!r}; expected one of {BACKENDS}")
    found = []
    for entry in resources.files(__package__).joinpath(backend).iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise ValueError(f"{backend} migrations are not numbered 1..N: {[m.version for m in found]}")
    return tuple(found)


def latest_version(backend: str) -> int:
    """The schema version this release of certstatus reads and writes."""
    return len(migrations(backend))


def pending(backend: str, current: int) -> tuple[Migration, ...]:
    """The migrations to apply to a database at version ``current``, in order."""
    return migrations(backend)[current:]


def check_version(backend: str, current: int, database: str) -> None:
    """Raise :class:`StoreError` unless ``current`` is the schema version this release uses.

    ``database`` names the database for the message (password masked).
    """
    latest = latest_version(backend)
    if current == latest:
        return
    if current > latest:
        raise StoreError(
            database,
            f"the schema is at version {current}, newer than this certstatus knows ({latest}).",
            "Upgrade certstatus on this host to the release that upgraded the database.",
        )
    state = "has no certstatus schema" if current == 0 else f"has schema version {current}, this certstatus needs {latest}"
    raise StoreError(
        database,
        f"{state}.",
        "Run `certstatus db upgrade --config FILE` (or `--db DSN`) once, then start the responders.",
    )
