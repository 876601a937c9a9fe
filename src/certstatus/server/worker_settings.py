"""How the supervising process hands its settings to the worker processes.

The supervisor (:class:`certstatus.supervisor.lifecycle.Lifecycle`) writes the
settings to a private file (:func:`write_private`, mode 0600 in a folder of
mode 0700) with every database password moved into a libpq passfile
(:func:`without_passwords`) and names that file in :data:`SETTINGS_ENV`; a
worker reads them back with :func:`worker_settings`. This is the only
settings any child process gets.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from certstatus.config import Settings
from certstatus.store.dsn import is_dsn, pgpass_line, split_password, with_passfile

#: Environment variable naming the file through which the supervisor hands settings to workers.
#: The settings travel in a file of mode 0600 in a private folder, not in the environment:
#: they may hold a database password, and a process environment is copied into every child
#: process and shown by /proc/PID/environ and crash reports.
SETTINGS_ENV = "CERTSTATUS_SETTINGS_FILE"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) by an atomic rename: a reader sees the old or the new file, whole."""
    fresh = path.with_suffix(".new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    fresh.replace(path)


def worker_settings() -> Settings:
    """The settings the supervisor exported (in a worker process): without passwords (:func:`without_passwords`)."""
    return Settings.from_json(Path(os.environ[SETTINGS_ENV]).read_text())


def _passfile_dsn(dsn: str, passfile: Path) -> str:
    """``dsn`` without its password, naming ``passfile`` (written, mode 0600) that holds it; as is without one."""
    bare, password = split_password(dsn)
    if password is None:
        return dsn
    write_private(passfile, pgpass_line(password))
    return with_passfile(bare, str(passfile))


def without_passwords(settings: Settings, folder: Path) -> Settings:
    """``settings`` with every PostgreSQL password moved into a libpq passfile in ``folder``.

    Covers ``server.database`` (file ``pgpass``) and each ``[ca.NAME.sql]`` DSN
    (file ``pgpass-sql-N``, N the CA's position: one file per DSN, since a
    passfile line here matches any host). The DSNs handed on name their file
    with ``passfile=``; libpq reads the password from it when it connects, so
    the settings text (and whatever logs or dumps it) holds no password.
    """
    database = settings.server.database
    if is_dsn(database):
        settings = dataclasses.replace(
            settings, server=dataclasses.replace(settings.server, database=_passfile_dsn(str(database), folder / "pgpass"))
        )
    cas = []
    for number, ca in enumerate(settings.cas):
        if ca.sql is not None:
            sql = dataclasses.replace(ca.sql, dsn=_passfile_dsn(ca.sql.dsn, folder / f"pgpass-sql-{number}"))
            ca = dataclasses.replace(ca, sql=sql)
        cas.append(ca)
    return dataclasses.replace(settings, cas=tuple(cas))
