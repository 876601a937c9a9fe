"""A real OpenLDAP ``slapd`` for the tests: temporary slapd.conf, mdb database, 127.0.0.1, free port.

Entries are loaded offline with ``slapadd`` before the server starts (no
bind DN or password needed), then ``slapd -d 0`` runs in the foreground as
a child process and is terminated by :meth:`Slapd.stop`.

    with Slapd(tmp_path, ldif) as ldap:
        url = ldap.url("cn=CA,o=Test")
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.servers import free_port

SUFFIX = "o=Test"
_CONF = """\
include /etc/ldap/schema/core.schema
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
directory {folder}/db
access to * by * read
"""


def crl_entry(cn: str, crl_der: bytes | None, attribute: str = "certificateRevocationList;binary") -> str:
    """LDIF of a cRLDistributionPoint entry ``cn=<cn>,o=Test`` (without the CRL when ``crl_der`` is None)."""
    lines = [f"dn: cn={cn},{SUFFIX}", "objectClass: cRLDistributionPoint", f"cn: {cn}"]
    if crl_der is not None:
        lines.append(f"{attribute}:: {base64.b64encode(crl_der).decode()}")
    return "\n".join(lines) + "\n"


class Slapd:
    """slapd serving ``entries`` (LDIF text, without the suffix entry) under ``o=Test``."""

    def __init__(self, folder: Path, entries: str) -> None:
        if shutil.which("slapd") is None:
            raise RuntimeError("slapd is not installed: run scripts/setup --test (Debian package slapd)")
        self.folder = folder
        (folder / "db").mkdir(parents=True, exist_ok=True)
        self.conf = folder / "slapd.conf"
        self.conf.write_text(_CONF.format(folder=folder, suffix=SUFFIX))
        ldif = folder / "data.ldif"
        ldif.write_text(f"dn: {SUFFIX}\nobjectClass: organization\no: Test\n\n{entries}")
        subprocess.run(["slapadd", "-f", str(self.conf), "-l", str(ldif)], check=True, capture_output=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, dn: str, attribute: str | None = None) -> str:
        """An RFC 4516 URL of ``dn`` (and ``attribute``) on this server."""
        return f"ldap://127.0.0.1:{self.port}/{dn}" + (f"?{attribute}" if attribute else "")

    def start(self) -> None:
        # The child keeps its own copy of the descriptor; ours is closed at once.
        with open(self.folder / "slapd.log", "wb") as log:
            self.process = subprocess.Popen(
                ["slapd", "-d", "0", "-f", str(self.conf), "-h", f"ldap://127.0.0.1:{self.port}/"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.folder / 'slapd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("slapd did not listen within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "Slapd":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
