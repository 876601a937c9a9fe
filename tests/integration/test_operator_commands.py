"""The command line as an operator meets it, with real `certstatus` processes.

* an address in use stops `serve` in one line, before the import (the store is never opened).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from certstatus.demo_pki import DemoPki
from tests.processes import CERTSTATUS, free_port
from tests.servers import ADMIN_TOKEN, demo_ca_table, table

pytestmark = pytest.mark.integration


def _run(*args: str) -> subprocess.CompletedProcess:
    """``certstatus ARGS`` with standard output and error to pipes (not a terminal)."""
    return subprocess.run([*CERTSTATUS, *args], capture_output=True, text=True, timeout=120)


def _holding(port: int) -> socket.socket:
    """A socket of this process listening on 127.0.0.1:``port``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _config(folder: Path, pki: DemoPki, port: int, *, admin_port: int | None = None, **ca_keys) -> Path:
    config = folder / "certstatus.toml"
    text = table("server", listen=f"127.0.0.1:{port}", workers=1, database=str(folder / "store.sqlite3"))
    if admin_port is not None:
        token = folder / "admin.token"
        token.write_text(ADMIN_TOKEN)
        token.chmod(0o600)
        text += table("admin", listen=f"127.0.0.1:{admin_port}", token_file=str(token))
    config.write_text(text + demo_ca_table("demo", pki, index=True, **ca_keys))
    return config


def _one_line_in_use(done: subprocess.CompletedProcess, where: str, key: str, port: int) -> None:
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {where}: {key}: 127.0.0.1:{port} is already in use by process {os.getpid()} "), lines[0]
    assert lines[0].endswith(f"Stop that process, or choose another port for {key}."), lines[0]


# --- item: an address in use ------------------------------------------------------------------


def test_ocsp_port_in_use_stops_serve_in_one_line_before_the_import(demo_pki: DemoPki, tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, demo_pki, port)
    with _holding(port):
        done = _run("serve", "--config", str(config))
    _one_line_in_use(done, str(config), "server.listen", port)
    assert not (tmp_path / "store.sqlite3").exists()  # stopped before the store was opened: nothing imported


def test_admin_port_in_use_stops_serve_in_one_line_before_the_import(demo_pki: DemoPki, tmp_path: Path) -> None:
    admin_port = free_port()
    config = _config(tmp_path, demo_pki, free_port(), admin_port=admin_port)
    with _holding(admin_port):
        done = _run("serve", "--config", str(config))
    _one_line_in_use(done, str(config), "admin.listen", admin_port)
    assert not (tmp_path / "store.sqlite3").exists()


def test_the_single_ca_form_names_its_listen_option(demo_pki: DemoPki, tmp_path: Path) -> None:
    port = free_port()
    with _holding(port):
        done = _run("serve", "--issuer", str(demo_pki.ca_cert), "--index", str(demo_pki.index), "--signer-cert", str(demo_pki.ocsp_cert),
                    "--signer-key", str(demo_pki.ocsp_key), "--db", str(tmp_path / "store.sqlite3"), "--listen", f"127.0.0.1:{port}")
    _one_line_in_use(done, "command line", "--listen", port)
    assert not (tmp_path / "store.sqlite3").exists()
