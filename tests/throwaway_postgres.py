"""A private PostgreSQL server for tests that stop and restart it (never the shared one at :5432).

``initdb`` a cluster into a temporary folder, start it with ``pg_ctl`` on a free
127.0.0.1 port (trust auth, unix socket in the same folder), and let the test
stop, start or restart it. initdb refuses to run as root, so under root
(``.ci/run``) the cluster is created and run as the ``postgres`` user
(``runuser``) in a folder it owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.servers import free_port


def _bin(name: str) -> str:
    """The newest PostgreSQL server binary ``name`` (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise FileNotFoundError(f"{name} not found under /usr/lib/postgresql/*/bin: apt-get install postgresql")
    return found[-1]


class ThrowawayPostgres:
    """One PostgreSQL cluster in ``folder``, on 127.0.0.1:``port``; ``dsn`` reaches database ``postgres``."""

    def __init__(self, folder: Path, password: str | None = None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._password = password
        self._user = "postgres" if os.geteuid() == 0 else None
        entry = pwd.getpwnam(self._user) if self._user is not None else None
        if entry is not None:
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        auth = ["-A", "trust"]
        if password is not None:  # TCP clients must give it (SCRAM); the unix socket stays trusted
            pwfile = folder / "pwfile"
            pwfile.write_text(password + "\n")
            if entry is not None:
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", *auth, "--no-sync", "-E", "UTF8")

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        if self._user is not None:
            command = ("runuser", "-u", self._user, "--", *command)
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=self.folder)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done

    def start(self) -> None:
        """Start the server and wait until it accepts connections (fsync off: a test cluster)."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options, "-w", "-t", "30", "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.dsn, connect_timeout=2, password=self._password):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres(password: str | None = None) -> Iterator[ThrowawayPostgres]:
    """A started :class:`ThrowawayPostgres` (TCP clients need ``password`` when given), destroyed at exit."""
    server = ThrowawayPostgres(Path(tempfile.mkdtemp(prefix="certstatus-pg-")), password)
    try:
        server.start()
        yield server
    finally:
        server.destroy()
