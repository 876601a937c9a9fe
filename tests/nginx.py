"""A real nginx for the tests: its own prefix, configuration, logs and ports in a test folder.

nginx runs in the foreground (``-g 'daemon off;'``) as a child process of the
test, in a session of its own, with one worker; every path it writes (pid,
error log, temporary files) is in its folder, so the system's nginx and its
configuration are never touched. Each :class:`Site` is one TLS ``server``
block on 127.0.0.1 with OCSP stapling on and verified
(``ssl_stapling_verify``, trusting ``trusted``).

    with Nginx(folder, [Site(port, chain, key, trusted)]) as nginx:
        nginx.reload()            # nginx -s reload: new workers, stapling caches dropped
        nginx.error_log()

:func:`nginx_binary` finds the executable (Debian package nginx-light);
:func:`s_client_status` asks a site for its stapled response with
``openssl s_client -status``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.servers import wait_for_port

_CONF = """\
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {folder}/temp/body;
    proxy_temp_path {folder}/temp/proxy;
    fastcgi_temp_path {folder}/temp/fastcgi;
    uwsgi_temp_path {folder}/temp/uwsgi;
    scgi_temp_path {folder}/temp/scgi;
{servers}}}
"""
_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {chain};
        ssl_certificate_key {key};
        ssl_stapling on;
        ssl_stapling_verify on;
        ssl_trusted_certificate {trusted};
{responder}        return 200 "stapled\\n";
    }}
"""


def nginx_binary() -> str | None:
    """The nginx executable (also looked for in /usr/sbin, which is not on every user's PATH), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


@dataclass(frozen=True)
class Site:
    """A TLS server block: ``chain`` (leaf then issuer, PEM), its ``key``, the ``trusted`` certificates
    nginx verifies OCSP responses against, and ``responder`` (``ssl_stapling_responder``; None: the
    leaf's AIA OCSP URL)."""

    port: int
    chain: Path
    key: Path
    trusted: Path
    responder: str | None = None


class Nginx:
    """nginx serving ``sites`` from ``folder`` (created); :meth:`start` returns once every port accepts."""

    def __init__(self, folder: Path, sites: list[Site]) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed: run scripts/setup --test (Debian package nginx-light)")
        self.binary = binary
        self.folder = folder
        self.sites = sites
        (folder / "temp").mkdir(parents=True, exist_ok=True)
        servers = "".join(
            _SERVER.format(port=site.port, chain=site.chain, key=site.key, trusted=site.trusted,
                           responder=f"        ssl_stapling_responder {site.responder};\n" if site.responder else "")
            for site in sites
        )  # fmt: skip
        self.conf = folder / "nginx.conf"
        self.conf.write_text(_CONF.format(folder=folder, servers=servers))
        self.process: subprocess.Popen | None = None

    def _command(self, *args: str) -> list[str]:
        return [self.binary, "-p", str(self.folder), "-c", str(self.conf), *args]

    def start(self) -> None:
        with open(self.folder / "nginx.out", "wb") as out:
            self.process = subprocess.Popen(
                self._command("-g", "daemon off;"), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        for site in self.sites:
            try:
                wait_for_port(site.port, self.process, timeout=15)
            except RuntimeError as exc:
                self.stop()
                raise RuntimeError(f"{exc}:\n{self.output()}") from None

    def reload(self) -> None:
        """``nginx -s reload``: the master re-reads the configuration and starts new workers, whose
        stapling caches start empty; the old workers finish their connections and exit."""
        subprocess.run(self._command("-s", "reload"), check=True, capture_output=True, timeout=15)

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def output(self) -> str:
        out = self.folder / "nginx.out"
        return (out.read_text(errors="replace") if out.exists() else "") + self.error_log()

    def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown), then SIGKILL to nginx's own process group after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the session started for it: master and workers
            self.process.wait(5)

    def __enter__(self) -> "Nginx":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass(frozen=True)
class Stapled:
    """What ``openssl s_client -status`` printed about the stapled OCSP response: ``response_status``
    (``successful``) and ``cert_status`` (``good``, ``revoked``) or None when nothing was stapled,
    ``verified`` whether the TLS chain verified."""

    response_status: str | None
    cert_status: str | None
    verified: bool
    output: str


def s_client_status(port: int, ca_file: Path, server_name: str) -> Stapled:
    """Handshake with 127.0.0.1:``port`` asking for a stapled response (``-status``)."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", server_name, "-status",
         "-CAfile", str(ca_file)],
        input=b"", capture_output=True, timeout=30,
    )  # fmt: skip
    text = (done.stdout + done.stderr).decode(errors="replace")
    response = re.search(r"OCSP Response Status: (\w+)", text)
    status = re.search(r"Cert Status: (\w+)", text)
    return Stapled(
        response.group(1) if response else None,
        status.group(1) if status else None,
        "Verify return code: 0 (ok)" in text,
        text,
    )
