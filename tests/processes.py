"""Real `certstatus serve` processes and the real `openssl ocsp` client, for fleet tests and bench/fleet.py."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CERTSTATUS = [sys.executable, "-m", "certstatus"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_certstatus(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one certstatus command to completion; raise AssertionError with its output when it fails."""
    done = subprocess.run([*CERTSTATUS, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"certstatus {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


@dataclass
class ServeProcess:
    """A `certstatus serve` subprocess listening on 127.0.0.1:``port``: ``--config FILE``, or the
    single-CA form (``config`` None)."""

    config: Path | None
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @classmethod
    def start(cls, config: Path, port: int, *, timeout: float = 60, command: Sequence[str] = CERTSTATUS) -> "ServeProcess":
        """Start the server and wait until it accepts connections (AssertionError with its log if it dies).

        ``command`` runs certstatus (default ``python -m certstatus``; a test may name a script that
        wraps its ``main``).
        """
        server = cls.launch(["serve", "--config", str(config)], config.with_suffix(f".{port}.log"), port, command=command)
        server.wait_listening(timeout)
        return server

    @classmethod
    def launch(cls, args: Sequence[str], log: Path, port: int, *, command: Sequence[str] = CERTSTATUS) -> "ServeProcess":
        """Start ``certstatus ARGS --log-level info`` (a serve that listens on ``port``), output to ``log``;
        do not wait (:meth:`wait_listening`)."""
        handle = open(log, "wb")
        process = subprocess.Popen(
            [*command, *args, "--log-level", "info"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        handle.close()
        config = Path(args[args.index("--config") + 1]) if "--config" in args else None
        return cls(config, port, process, log)

    def wait_listening(self, timeout: float = 60) -> None:
        """Return once the port accepts connections; AssertionError with the log if the process exits or
        does not listen within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"certstatus serve exited {self.process.returncode}:\n{self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"certstatus serve did not listen on {self.port}:\n{self.log.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_STATUS = re.compile(rb": (good|revoked|unknown)\b")


def openssl_status(issuer: Path, cert: Path, url: str, ca_file: Path, *, verify_other: Path | None = None) -> str:
    """Ask ``url`` about ``cert`` with `openssl ocsp`; return good/revoked/unknown, or trylater/... on error.

    An HTTP 503 (certstatus's tryLater) counts as ``trylater``.

    The response signature is verified against ``ca_file`` (AssertionError if not).
    """
    command = ["openssl", "ocsp", "-issuer", str(issuer), "-cert", str(cert), "-url", url, "-CAfile", str(ca_file)]
    if verify_other is not None:
        command += ["-verify_other", str(verify_other)]
    return _openssl_ocsp_status(command)


def openssl_serial_status(issuer: Path, serial_text: str, url: str, ca_file: Path, *, respout: Path | None = None) -> str:
    """Ask ``url`` about serial ``serial_text`` of ``issuer`` with `openssl ocsp -serial` (no nonce), as
    :func:`openssl_status` does about a certificate.

    ``serial_text`` is what `openssl ocsp -serial` takes: decimal or ``0x`` hex, ``-`` when negative
    (``-0x01``). With ``respout`` the response DER is written there.
    """
    command = ["openssl", "ocsp", "-issuer", str(issuer), "-serial", serial_text, "-url", url, "-CAfile", str(ca_file), "-no_nonce"]
    if respout is not None:
        command += ["-respout", str(respout)]
    return _openssl_ocsp_status(command)


def _openssl_ocsp_status(command: list[str]) -> str:
    """Run an `openssl ocsp` command asking about one CertID; its status (see :func:`openssl_status`)."""
    done = subprocess.run(command, capture_output=True, timeout=30)
    out = done.stdout + done.stderr
    if error := re.search(rb"Responder Error: (\w+)", out):
        return error.group(1).decode()
    if b"code=503" in out:  # certstatus sends tryLater with HTTP 503; openssl stops at the status line
        return "trylater"
    match = _STATUS.search(done.stdout)
    if match is None or b"Response verify OK" not in out:
        raise AssertionError(f"unexpected openssl ocsp output:\n{out.decode(errors='replace')}")
    return match.group(1).decode()
