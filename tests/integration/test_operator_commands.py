"""The command line as an operator meets it, with real `certstatus` processes.

* an address in use stops `serve` in one line, before the import (the store is never opened);
* `config check` fails where `serve` would (sources, admin files, listen addresses) and warns
  only for the address its own running server holds;
* listings written to a pipe are whole (`sources`, `signers`, `import`, `signer new`'s hint),
  and `--format json` is one parseable document;
* `revoke`/`issue`/`unrevoke` in the single-CA form (`--issuer`, `--name`, `--db`), served by
  `serve --issuer`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from certstatus.demo_pki import DemoPki
from tests.processes import openssl_status
from tests.servers import ADMIN_TOKEN, CERTSTATUS, demo_ca_table, free_port, start_server, table

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


# --- item: config check runs serve's checks -------------------------------------------------------


def test_config_check_fails_where_serve_would(demo_pki: DemoPki, tmp_path: Path) -> None:
    port = free_port()
    # a source file that is not there: serve would answer this CA tryLater
    missing = _config(tmp_path, demo_pki, port, issued=str(tmp_path / "no-such-issued.txt"))
    done = _run("config", "check", "--config", str(missing))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "refused" in done.stderr and str(tmp_path / "no-such-issued.txt") in done.stderr and ": ok (" not in done.stderr
    # an admin token serve cannot use
    config = _config(tmp_path, demo_pki, port, admin_port=free_port())
    (tmp_path / "admin.token").write_text("short")
    done = _run("config", "check", "--config", str(config))
    assert done.returncode == 2 and "admin.token_file" in done.stderr and "fewer than 16 characters" in done.stderr
    # an address another program listens on
    (tmp_path / "admin.token").write_text(ADMIN_TOKEN)
    with _holding(port):
        done = _run("config", "check", "--config", str(config))
    _one_line_in_use(done, str(config), "server.listen", port)
    # all well: the store is not touched
    done = _run("config", "check", "--config", str(config))
    assert done.returncode == 0 and done.stderr == f"{config}: ok (1 CA, 2 source files read)\n", done.stderr
    assert not (tmp_path / "store.sqlite3").exists()


def test_config_check_of_a_running_server_only_warns_about_its_address(demo_pki: DemoPki, tmp_path: Path) -> None:
    """`config check` before `systemctl reload`: the port is the running server's own."""
    port = free_port()
    config = _config(tmp_path, demo_pki, port)
    server = start_server(config.parent, config, port=port)
    try:
        done = _run("config", "check", str(config))
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    warning, ok = done.stderr.splitlines()
    assert warning.startswith(f"warning: server.listen: port {port} is in use by process {server.process.pid} ") and "-m certstatus serve" in warning
    assert ok == f"{config}: ok (1 CA, 2 source files read)"
    assert "with 1 worker for demo" in server.log.read_text()  # not "1 workers"


# --- item: whole tables when not on a terminal, and JSON --------------------------------------------


def test_listings_written_to_a_pipe_are_whole_and_json_parses(demo_pki: DemoPki, tmp_path: Path) -> None:
    folder = tmp_path / ("a-folder-name-long-enough-to-pass-eighty-columns-" * 2)
    folder.mkdir()
    crl = folder / "issuing-ca.crl"
    shutil.copy(demo_pki.crl, crl)
    config = _config(tmp_path, demo_pki, free_port(), crl=crl)

    imported = _run("import", "--config", str(config), "--format", "json")
    assert imported.returncode == 0, imported.stderr
    results = json.loads(imported.stdout)["results"]
    assert {(r["kind"], r["origin"], r["error"]) for r in results} == {("crl", str(crl), None), ("index", str(demo_pki.index), None)}

    listed = _run("sources", "--config", str(config))
    assert listed.returncode == 0 and "…" not in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if " crl " in line)
    assert str(crl) in row and " 6d 23h " in row  # the whole origin on its row; nextUpdate in days and hours, not seconds
    as_json = json.loads(_run("sources", "--config", str(config), "--format", "json").stdout)["sources"]
    assert {age["origin"] for age in as_json} == {str(crl), str(demo_pki.index)}
    assert all(isinstance(age["age_seconds"], float) for age in as_json)

    signers = _run("signers", "--config", str(config))
    assert signers.returncode == 0 and "…" not in signers.stdout
    assert "CN=certstatus demo OCSP responder" in signers.stdout
    signer = json.loads(_run("signers", "--config", str(config), "--format", "json").stdout)["signers"][0]
    assert (signer["ca"], signer["state"], signer["subject"]) == ("demo", "active", "CN=certstatus demo OCSP responder")


def test_signer_new_prints_the_openssl_command_on_one_line(tmp_path: Path) -> None:
    folder = tmp_path / ("signers-of-a-ca-with-a-long-name-" * 3)
    done = _run("signer", "new", "--signers-dir", str(folder), "--name", "r1")
    assert done.returncode == 0, done.stderr
    command = next(line for line in done.stdout.splitlines() if "openssl x509 -req" in line)
    assert command == (f"  openssl x509 -req -in {folder / 'r1.csr'} -CA CA.pem -CAkey CA.key -copy_extensions copyall "
                       f"-days 30 -out {folder / 'r1'}.pem")


# --- item: push commands in the single-CA form -------------------------------------------------------


def test_revoke_issue_unrevoke_work_in_the_single_ca_form(demo_pki: DemoPki, tmp_path: Path) -> None:
    database = str(tmp_path / "store.sqlite3")
    single = ["--issuer", str(demo_pki.ca_cert), "--name", "demo", "--db", database]
    source = ["--index", str(demo_pki.index), "--signer-cert", str(demo_pki.ocsp_cert), "--signer-key", str(demo_pki.ocsp_key)]
    assert _run("import", *single, *source).returncode == 0
    good = f"{demo_pki.serials['good']:X}"

    revoked = _run("revoke", *single, good, "--reason", "keyCompromise")
    assert (revoked.returncode, revoked.stdout) == (0, f"revoked {good} of CA demo\n"), revoked.stderr
    issued = _run("issue", *single, "1A2B", "1A2C")
    assert (issued.returncode, issued.stdout) == (0, "recorded 2 issued serial(s) of CA demo\n"), issued.stderr
    # The single-CA form reaches the push module, which says nothing changed for a serial never revoked (exit 1).
    unrevoked = _run("unrevoke", *single, "1A2B")
    assert (unrevoked.returncode, unrevoked.stdout) == (1, "nothing changed: 1A2B of CA demo has no pushed revocation; it is answered good.\n")

    port = free_port()
    server = start_server(tmp_path, args=["serve", *single, *source, "--listen", f"127.0.0.1:{port}", "--workers", "1"], port=port)
    try:
        status = openssl_status(demo_pki.ca_cert, demo_pki.leaves["good"], server.url, demo_pki.root_cert, verify_other=demo_pki.ca_cert)
    finally:
        server.stop()
    assert status == "revoked"
