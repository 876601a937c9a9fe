"""The one way the tests start a real ``certstatus serve``: :func:`start_server`.

Each server runs in its own folder (its working directory: relative paths in
its configuration and the store are there), listens on 127.0.0.1 on a port
found free by :func:`free_port` (or reported in its log when the
configuration asks for port 0), writes stdout and stderr to one log file in
that folder, gets its own session (so a hung server is killed with its
workers) and is stopped with SIGTERM (a graceful shutdown exits 0).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.x509.ocsp import OCSPResponseStatus

from tests.ocsp_client import response_status

#: The certstatus command line, run with the interpreter running the tests.
CERTSTATUS = [sys.executable, "-m", "certstatus"]
#: Variables a test process may carry that would change what a server it starts does.
_INHERITED_NOT = ("PROMETHEUS_MULTIPROC_DIR", "CERTSTATUS_SETTINGS_JSON", "CERTSTATUS_SETTINGS_FILE", "CERTSTATUS_SIGNER_PASSWORD")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
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
    """A running ``certstatus serve``; ``admin_port`` is None without an admin listener, ``log`` its
    stdout and stderr, ``pkis`` what a fixture wants to hand its tests with it."""

    process: subprocess.Popen
    folder: Path
    port: int
    log: Path
    admin_port: int | None = None
    scheme: str = "http"
    pkis: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT/``."""
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    @property
    def origin(self) -> str:
        """``http(s)://127.0.0.1:PORT``, for a path to be appended."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def admin_get(self, path: str) -> httpx.Response:
        """GET an admin endpoint with the admin token."""
        return httpx.get(self.admin_url + path, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def audit_records(self, until: Callable[[list[dict]], object], *, log: str = "audit.log", timeout: float = 10.0) -> list[dict]:
        """The records of the server's audit log (``folder/log``) once ``until(records)`` is true.

        The audit writer thread runs after the answer, so a test polls for
        the record it expects; AssertionError with the records read after
        ``timeout`` seconds.
        """
        path = self.folder / log
        deadline = time.monotonic() + timeout
        while True:
            lines = path.read_text().splitlines() if path.exists() else []
            records = [json.loads(line) for line in lines if line.endswith("}")]  # a line being written is not whole yet
            if until(records):
                return records
            if time.monotonic() > deadline:
                raise AssertionError(f"the audit log {path} lacks the record expected after {timeout} s: {records[-5:]}")
            time.sleep(0.05)

    def wait_listening(self, timeout: float = 60.0) -> None:
        """Return once the server (and its admin listener) accept connections; AssertionError with the log,
        the server stopped, when it exits first or does not listen within ``timeout`` seconds."""
        try:
            if not self.port:
                self.port = _reported_port(self, timeout)
            wait_for_port(self.port, self.process, timeout)
            if self.admin_port is not None:
                wait_for_port(self.admin_port, self.process, timeout)
        except RuntimeError as exc:
            self.stop()
            raise AssertionError(f"certstatus serve did not start ({exc}):\n{self.log_text()}") from None

    def audit_count(self, *, log: str = "audit.log") -> int:
        """How many whole records the audit log holds now (a mark for :meth:`audit_record`)."""
        return len(self.audit_records(lambda records: True, log=log))

    def audit_record(self, match: Callable[[dict], object], *, after: int = 0, log: str = "audit.log", timeout: float = 10.0) -> dict:
        """The last record past the first ``after`` (:meth:`audit_count` before the request) that ``match``
        accepts, once one is written; AssertionError after ``timeout`` seconds."""
        records = self.audit_records(lambda records: any(match(r) for r in records[after:]), log=log, timeout=timeout)
        return [r for r in records[after:] if match(r)][-1]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, return the exit status (the process group is killed if it hangs: -9)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)  # the server's own session: it and its workers
                except ProcessLookupError:
                    pass
                self.process.wait()
        return self.process.returncode


_LISTENING = re.compile(r"listening on https?://127\.0\.0\.1:(\d+)/")


def start_server(folder: Path, config: str | Path | None = None, *, port: int | None, admin_port: int | None = None,
                 tls: bool = False, log_level: str | None = "info", args: Sequence[str] = (), env: dict[str, str] | None = None,
                 command: Sequence[str] = CERTSTATUS, timeout: float = 60.0, pkis: dict | None = None,
                 wait: bool = True) -> Server:
    """Start ``certstatus serve`` in ``folder`` and return once it listens (``wait`` False: at once;
    :meth:`Server.wait_listening` then).

    ``config``: the text of a configuration (written to ``folder/certstatus.toml``), or the path of one;
    None runs ``certstatus ARGS`` (the single-CA command line, ``args`` starting with ``serve``).
    ``port``: where it listens; None when the configuration says port 0 (the port is read from the log).
    With ``admin_port`` it also waits for the admin listener. ``env`` adds variables; ``command`` runs
    certstatus (default ``python -m certstatus``). An ``admin.token`` (:data:`ADMIN_TOKEN`) is written
    beside the configuration unless one is there. AssertionError with the log when it exits or does not listen in ``timeout`` s.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "admin.token").exists():  # a test may have written its own
        (folder / "admin.token").write_text(ADMIN_TOKEN + "\n")
        (folder / "admin.token").chmod(0o600)  # secret files must not be readable by others
    if isinstance(config, str):
        (folder / "certstatus.toml").write_text(config)
        config = folder / "certstatus.toml"
    argv = [*command, *(["serve", "--config", str(config)] if config is not None else args)]
    argv += ["--log-level", log_level] if log_level else []
    log = folder / f"serve-{port or 'auto'}-{time.monotonic_ns()}.log"
    environment = {k: v for k, v in os.environ.items() if k not in _INHERITED_NOT}
    environment.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})})
    with open(log, "wb") as handle:
        process = subprocess.Popen(argv, cwd=folder, env=environment, stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    server = Server(process, folder, port or 0, log, admin_port, "https" if tls else "http", dict(pkis or {}))
    if wait:
        server.wait_listening(timeout)
    return server


def _reported_port(server: Server, timeout: float) -> int:
    """The port a server listening on port 0 reports in its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        if match := _LISTENING.search(server.log_text()):
            return int(match.group(1))
        time.sleep(0.05)
    raise RuntimeError("no 'listening on' line in its log")


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
