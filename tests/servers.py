"""Start real ``certstatus serve`` processes for integration tests.

Each server listens on 127.0.0.1 on a port found free by binding port 0,
writes its output to files in its folder, and is stopped with SIGTERM (its
exit status is checked: a graceful shutdown exits 0).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.x509.ocsp import OCSPResponseStatus

from tests.ocsp_client import response_status

CERTSTATUS = str(Path(sys.executable).with_name("certstatus"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Return once ``port`` accepts connections; raise if ``process`` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{Path(str(process.args[0])).name} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@dataclass
class Server:
    """A running certstatus; ``admin_port`` is None without an admin listener."""

    process: subprocess.Popen
    folder: Path
    port: int
    admin_port: int | None
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def admin_get(self, path: str) -> httpx.Response:
        """GET an admin endpoint with the admin token."""
        return httpx.get(self.admin_url + path, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)

    def log_text(self) -> str:
        return (self.folder / "serve.err").read_text() + (self.folder / "serve.out").read_text()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, return the exit status (the process is killed if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(folder: Path, config: str, *, port: int, admin_port: int | None = None, tls: bool = False,
                 log_level: str = "info") -> Server:
    """Write ``config`` to ``folder/certstatus.toml`` and serve it; returns once the port accepts."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "certstatus.toml"
    path.write_text(config)
    (folder / "admin.token").write_text(ADMIN_TOKEN + "\n")
    (folder / "admin.token").chmod(0o600)  # secret files must not be readable by others
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "CERTSTATUS_SETTINGS_JSON", "CERTSTATUS_SETTINGS_FILE")}
    process = subprocess.Popen(
        [CERTSTATUS, "serve", "--config", str(path), "--log-level", log_level],
        cwd=folder, env=env,
        stdout=open(folder / "serve.out", "wb"), stderr=open(folder / "serve.err", "wb"),
    )
    server = Server(process, folder, port, admin_port, "https" if tls else "http")
    try:
        wait_for_port(port, process)
        if admin_port is not None:
            wait_for_port(admin_port, process)
    except RuntimeError:
        server.stop()
        raise RuntimeError(server.log_text()) from None
    return server


def signer_states(metrics: str) -> dict[str, str]:
    """signer → state (active, standby, next, expired, revoked) from the text of ``/metrics``
    (the ``certstatus_signer_state`` series whose value is 1)."""
    states = {}
    for line in metrics.splitlines():
        if line.startswith("certstatus_signer_state{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
            if float(line.rsplit(" ", 1)[1]) == 1:
                states[labels["signer"].strip('"')] = labels["state"].strip('"')
    return states


def toml_path(path: Path) -> str:
    """A path as a TOML string."""
    return '"' + str(path).replace("\\", "\\\\") + '"'


def toml_value(value) -> str:
    """A Python value (str, Path, bool, number, list) as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return toml_path(value)


def table(name: str, **keys) -> str:
    """A TOML table ``[name]`` with ``keys`` (None values left out)."""
    lines = [f"[{name}]"] + [f"{key} = {toml_value(value)}" for key, value in keys.items() if value is not None]
    return "\n" + "\n".join(lines) + "\n"


#: The admin token the servers of the tests use (written to ``admin.token`` beside their configuration).
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def server_tables(port: int, *, workers: int = 1, admin: int | None = None, audit: bool = False) -> str:
    """``[server]`` on 127.0.0.1:port with a store in the server's folder, plus ``[admin]``/``[audit]``."""
    text = table("server", listen=f"127.0.0.1:{port}", workers=workers, database="store.sqlite3")
    if audit:
        text += table("audit", log="audit.log")
    if admin is not None:
        text += table("admin", listen=f"127.0.0.1:{admin}", token_file="admin.token")
    return text


def demo_ca_table(name: str, demo, *, crl=None, index: bool = False, **keys) -> str:
    """``[ca.NAME]`` for a demo PKI: its CA and delegated responder, ``crl`` (default its own CRL)."""
    return table(f"ca.{name}", certificate=demo.ca_cert, crl=[crl or demo.crl], index=demo.index if index else None,
                 signer_certificate=demo.ocsp_cert, signer_key=demo.ocsp_key, **keys)


class Asker(threading.Thread):
    """POST one OCSP request over and over until ``stop`` is set: a new connection each time
    (``Connection: close``), or with ``close=False`` one keep-alive connection. Counts the
    answers (HTTP 200, OCSP successful) and keeps each failure's text."""

    def __init__(self, url: str, der: bytes, *, close: bool = True) -> None:
        super().__init__(daemon=True)
        self.url, self.der = url, der
        self.headers = {"connection": "close"} if close else {}
        self.stop = threading.Event()
        self.answers = 0
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    reply = client.post(self.url, content=self.der, headers=self.headers)
                    if reply.status_code == 200 and response_status(reply.content) is OCSPResponseStatus.SUCCESSFUL:
                        self.answers += 1
                    else:
                        self.failures.append(f"HTTP {reply.status_code}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
