"""Two `certstatus serve` processes over one PostgreSQL database, queried with the real `openssl ocsp`.

A change pushed or imported into the shared store (`certstatus revoke`, the
push CLI, and `certstatus import` of a new CRL: other processes writing the
database the two servers share) is answered by both servers: a new
revocation (read from PostgreSQL on the request path) and a CA's first data
(per-process state refreshed by LISTEN/NOTIFY). The propagation times are
printed (`pytest -s`); bench/fleet.py measures medians.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certstatus.demo_pki import sign_crl
from certstatus.model import RevokedEntry
from tests.processes import openssl_status, run_certstatus
from tests.servers import Server, free_port, start_server

pytestmark = pytest.mark.integration

DEADLINE = 20.0  # seconds: a bound for a broken fleet, not a speed check


def _load(pem: Path):
    return x509.load_pem_x509_certificate(pem.read_bytes())


def _key(pem: Path):
    return serialization.load_pem_private_key(pem.read_bytes(), password=None)


def _write_crl(path: Path, ca_pem: Path, key_pem: Path, entries, number: int) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    crl = sign_crl(_load(ca_pem), _key(key_pem), entries, crl_number=number, this_update=now - dt.timedelta(seconds=1),
                   next_update=now + dt.timedelta(days=1))  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(path)


def _config(folder: Path, name: str, port: int, dsn: str, pki, cas=("issuing", "root")) -> Path:
    tables = {
        "issuing": f'[ca.issuing]\ncertificate = "{pki.ca_cert}"\ncrl = ["{folder / "issuing.crl"}"]\n'
        f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\npath = "/issuing"\npush = true\n',
        "root": f'[ca.root]\ncertificate = "{pki.root_cert}"\ncrl = ["{folder / "root.crl"}"]\n'
        f'signer_certificate = "{pki.root_cert}"\nsigner_key = "{pki.root_key}"\npath = "/root"\n',
    }
    path = folder / f"{name}.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\ndatabase = "{dsn}"\n\n'
        + "\n".join(tables[ca] for ca in cas)
    )
    return path


@pytest.fixture(scope="module")
def fleet(postgres_module_dsn: str, demo_pki, tmp_path_factory):
    """Processes A and B serving CA "issuing" (its demo CRL) and CA "root" (no CRL yet)."""
    folder = tmp_path_factory.mktemp("fleet")
    (folder / "issuing.crl").write_bytes(demo_pki.crl.read_bytes())
    configs = [_config(folder, name, free_port(), postgres_module_dsn, demo_pki) for name in ("a", "b")]
    imports = {ca: _config(folder, f"import-{ca}", 1, postgres_module_dsn, demo_pki, (ca,)) for ca in ("issuing", "root")}
    run_certstatus("db", "upgrade", "--config", str(configs[0]))
    servers = []
    try:
        for config in configs:
            port = int(config.read_text().split("127.0.0.1:")[1].split('"')[0])
            servers.append(start_server(config.parent, config, port=port))
        yield folder, imports, servers
    finally:
        for server in servers:
            server.stop()


def _wait_for_status(ask, expected: str) -> float:
    """Ask until the answer is ``expected``; return the seconds it took."""
    start = time.monotonic()
    while (answer := ask()) != expected:
        if time.monotonic() - start > DEADLINE:
            pytest.fail(f"still {answer!r}, not {expected!r}, after {DEADLINE} s")
    return time.monotonic() - start


def _asker(pki, leaf: Path):
    """openssl ocsp about ``leaf`` of the issuing CA, asked of one server of the fleet."""

    def ask(server: Server) -> str:
        return openssl_status(pki.ca_cert, leaf, server.url + "issuing", pki.root_cert, verify_other=pki.ca_cert)

    return ask


def test_revocation_pushed_through_the_store_is_answered_revoked_by_both(fleet, demo_pki) -> None:
    folder, imports, (a, b) = fleet
    leaf = demo_pki.leaves["good"]
    ask = _asker(demo_pki, leaf)
    assert ask(a) == "good" and ask(b) == "good"
    serial = f"{demo_pki.serials['good']:X}"
    run_certstatus("revoke", "issuing", serial, "--reason", "keyCompromise", "--config", str(imports["issuing"]))
    seconds = _wait_for_status(lambda: ask(b), "revoked")
    print(f"\nfleet: revocation pushed, answered revoked by process B after {seconds * 1000:.0f} ms")
    assert ask(a) == "revoked"


def test_crl_imported_with_a_new_revocation_is_answered_revoked_by_both(fleet, demo_pki) -> None:
    folder, imports, (a, b) = fleet
    leaf = demo_pki.leaves["good2"]
    ask = _asker(demo_pki, leaf)
    assert ask(a) == "good" and ask(b) == "good"
    serial = x509.load_pem_x509_certificate(leaf.read_bytes()).serial_number
    crl = x509.load_pem_x509_crl(demo_pki.crl.read_bytes())
    entries = [RevokedEntry(r.serial_number, r.revocation_date_utc) for r in crl if r.serial_number != serial]
    entries.append(RevokedEntry(serial, dt.datetime.now(dt.timezone.utc).replace(microsecond=0), x509.ReasonFlags.key_compromise))
    _write_crl(folder / "issuing.crl", demo_pki.ca_cert, demo_pki.ca_key, entries, number=1000)
    run_certstatus("import", "--config", str(imports["issuing"]))
    seconds = _wait_for_status(lambda: ask(b), "revoked")
    print(f"\nfleet: CRL with a new revocation imported, answered revoked by process B after {seconds * 1000:.0f} ms")
    assert ask(a) == "revoked"


def test_ca_data_imported_after_start_reaches_both_processes_by_notify(fleet, demo_pki) -> None:
    folder, imports, (a, b) = fleet

    def ask(server: Server) -> str:
        return openssl_status(demo_pki.root_cert, demo_pki.ca_cert, server.url + "root", demo_pki.root_cert)

    assert ask(a) == "trylater" and ask(b) == "trylater"  # no CRL of the root imported yet
    _write_crl(folder / "root.crl", demo_pki.root_cert, demo_pki.root_key, [], number=1)
    run_certstatus("import", "--config", str(imports["root"]))
    seconds = _wait_for_status(lambda: ask(b), "good")
    print(f"\nfleet: first CRL of a CA imported, served by the other process after {seconds * 1000:.0f} ms")
    assert ask(a) == "good"
