"""One set of CAs, every kind of source, served by a fleet of two `certstatus serve` over PostgreSQL.

CAs: HTTP complete + delta CRL, LDAP CRL (a real slapd), index.txt, pushes
(admin API), a live SQL query (the real PostgreSQL). Processes A and B run
the same CA tables over one PostgreSQL schema (A also has the admin
listener); every answer comes from the real `openssl ocsp`. A push through
A's admin listener is answered by B, and a CRL that B re-imports on SIGHUP
is served by A.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import time

import httpx
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certstatus.demo_pki import DemoPki, make_demo_pki
from tests.crl_server import CrlServer
from tests.postgres import SERVER
from tests.processes import ServeProcess, free_port, run_certstatus
from tests.slapd import Slapd, crl_entry
from tests.sources_helpers import crl_der, revoked

pytestmark = pytest.mark.integration
TOKEN = "fedcba9876543210fedcba9876543210"
HOLD = x509.ReasonFlags.certificate_hold
PUSH_DEADLINE = 2.0  # seconds: a push through A is answered by B within this (the aim is < 1 s; the bound leaves room for a loaded machine)
IMPORT_DEADLINE = 15.0  # seconds: a bound for a broken SIGHUP re-import, not a speed check


def _ca_table(name: str, pki: DemoPki, extra: str) -> str:
    return (
        f'[ca.{name}]\ncertificate = "{pki.ca_cert}"\nsigner_certificate = "{pki.ocsp_cert}"\n'
        f'signer_key = "{pki.ocsp_key}"\npath = "/{name}"\n{extra}\n'
    )


def _server_table(port: int, dsn: str) -> str:
    return f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\ndatabase = "{dsn}"\n\n'


def _status(pki: DemoPki, serial: int, url: str) -> str:
    """good/revoked/unknown from `openssl ocsp` asking ``url`` about ``serial`` (response signature verified)."""
    done = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(pki.ca_cert), "-serial", str(serial), "-url", url,
         "-CAfile", str(pki.chain), "-no_nonce"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith(f"{serial}:") and "Response verify OK" in done.stderr:
            return line.split(":", 1)[1].strip()
    return f"no verified status: {done.stdout} {done.stderr}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=1)


def _der_crl(pki: DemoPki) -> bytes:
    return x509.load_pem_x509_crl(pki.crl.read_bytes()).public_bytes(serialization.Encoding.DER)


def _ca_database(dsn: str, pki: DemoPki) -> str:
    """Create the "CA's own database" table in the test schema; return its schema-qualified name."""
    with psycopg.connect(dsn, autocommit=True) as db:
        (schema,) = db.execute("SELECT current_schema()").fetchone()
        table = f"{schema}.ca_certs"
        db.execute(f"CREATE TABLE {table} (serial text PRIMARY KEY, status text, revoked_at timestamptz, reason int)")
        db.execute(
            f"INSERT INTO {table} VALUES (%s, 'good', NULL, NULL), (%s, 'revoked', now() - interval '1 hour', 4)",
            (str(pki.serials["good"]), str(pki.serials["revoked-superseded"])),
        )
    return table


def _wait_for_port(server: ServeProcess, port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert server.process.poll() is None, server.log.read_text()
            assert time.monotonic() < deadline, f"nothing listens on {port}:\n{server.log.read_text()}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def world(postgres_module_dsn: str, demo_pki: DemoPki, demo_pki_rsa: DemoPki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("all-sources")
    ldap_pki, sql_pki, index_pki = (make_demo_pki(folder / n) for n in ("ldap", "sql", "index"))
    table = _ca_database(postgres_module_dsn, sql_pki)
    with contextlib.ExitStack() as cleanup:
        http = cleanup.enter_context(CrlServer())
        http.publish("/base.crl", crl_der(demo_pki, [revoked(11, HOLD), revoked(12)], number=40, this_update=_now(), hours=48))
        delta = [revoked(11, x509.ReasonFlags.remove_from_crl), revoked(13)]
        http.publish("/delta.crl", crl_der(demo_pki, delta, number=41, delta_base=40, this_update=_now(), hours=48))
        ldap = cleanup.enter_context(Slapd(folder / "slapd", crl_entry("CA", _der_crl(ldap_pki))))
        (folder / "admin.token").write_text(TOKEN)
        (folder / "admin.token").chmod(0o600)
        # The SQL source's own DSN: its pool sets `options` (statement_timeout), so the table is schema-qualified.
        query = f"SELECT status, revoked_at, reason FROM {table} WHERE serial = %(serial_dec)s"
        cas = (
            _ca_table("http", demo_pki, f'crl = ["{http.url("/base.crl")}", "{http.url("/delta.crl")}"]\nfetch_timeout = "2s"')
            + _ca_table("ldap", ldap_pki, f'crl = "{ldap.url("cn=CA,o=Test")}"')
            + _ca_table("index", index_pki, f'index = "{index_pki.index}"')
            + _ca_table("pushed", demo_pki_rsa, "push = true")
            + _ca_table("sql", sql_pki, f'[ca.sql.sql]\ndsn = "{SERVER}"\nquery = "{query}"')
        )
        port_a, port_b, admin_port = free_port(), free_port(), free_port()
        config_a, config_b = folder / "a.toml", folder / "b.toml"
        admin = f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken_file = "admin.token"\n\n'
        config_a.write_text(_server_table(port_a, postgres_module_dsn) + admin + cas)
        config_b.write_text(_server_table(port_b, postgres_module_dsn) + cas)  # the same CAs and database
        run_certstatus("db", "upgrade", "--config", str(config_a))
        a = ServeProcess.start(config_a, port_a)
        cleanup.callback(a.stop)
        _wait_for_port(a, admin_port)
        b = ServeProcess.start(config_b, port_b)
        cleanup.callback(b.stop)
        yield {
            "a": a, "b": b, "admin": f"http://127.0.0.1:{admin_port}", "http": http,
            "pkis": {"ldap": ldap_pki, "sql": sql_pki, "index": index_pki},
        }  # fmt: skip


@pytest.mark.parametrize("process", ["a", "b"])
def test_every_source_answers_through_openssl_ocsp(world, process: str, demo_pki: DemoPki) -> None:
    url, pkis = world[process].url, world["pkis"]
    assert _status(demo_pki, 11, f"{url}http") == "good"  # hold released by the delta CRL
    assert _status(demo_pki, 12, f"{url}http") == "revoked"
    assert _status(demo_pki, 13, f"{url}http") == "revoked"  # only in the delta
    assert _status(pkis["ldap"], pkis["ldap"].serials["revoked-keycompromise"], f"{url}ldap") == "revoked"
    assert _status(pkis["ldap"], pkis["ldap"].serials["good"], f"{url}ldap") == "good"
    assert _status(pkis["index"], pkis["index"].serials["revoked-hold"], f"{url}index") == "revoked"
    assert _status(pkis["index"], pkis["index"].serials["unknown"], f"{url}index") == "unknown"
    assert _status(pkis["sql"], pkis["sql"].serials["good"], f"{url}sql") == "good"
    assert _status(pkis["sql"], pkis["sql"].serials["revoked-superseded"], f"{url}sql") == "revoked"
    assert _status(pkis["sql"], pkis["sql"].serials["good2"], f"{url}sql") == "unknown"  # no row


def test_push_through_the_admin_listener_of_a_is_answered_revoked_by_b(world, demo_pki_rsa: DemoPki) -> None:
    serial = demo_pki_rsa.serials["good"]
    on_a, on_b = f"{world['a'].url}pushed", f"{world['b'].url}pushed"
    assert _status(demo_pki_rsa, serial, on_a) == "good" and _status(demo_pki_rsa, serial, on_b) == "good"
    answer = httpx.post(
        f"{world['admin']}/v1/ca/pushed/revoke", json={"serial": f"{serial:x}", "reason": "keyCompromise"},
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    pushed = time.monotonic()
    while (on_b_now := _status(demo_pki_rsa, serial, on_b)) != "revoked" and time.monotonic() - pushed < PUSH_DEADLINE:
        time.sleep(0.05)
    assert on_b_now == "revoked", f"process B still answers {on_b_now!r} {PUSH_DEADLINE} s after the push to A"
    print(f"\nall sources: push through A answered revoked by B after {(time.monotonic() - pushed) * 1000:.0f} ms")
    assert _status(demo_pki_rsa, serial, on_a) == "revoked"
    denied = httpx.post(f"{world['admin']}/v1/ca/pushed/revoke", json={"serial": "1"}, timeout=10)
    assert denied.status_code == 401


def test_crl_reimported_on_sighup_to_b_is_served_by_a(world, demo_pki: DemoPki) -> None:
    on_a, on_b = f"{world['a'].url}http", f"{world['b'].url}http"
    assert _status(demo_pki, 14, on_a) == "good" and _status(demo_pki, 14, on_b) == "good"
    http = world["http"]
    fetches = len(http.requests("/base.crl"))
    http.publish("/base.crl", crl_der(demo_pki, [revoked(12), revoked(14)], number=42, this_update=_now(), hours=48))
    os.kill(world["b"].process.pid, signal.SIGHUP)
    deadline = time.monotonic() + IMPORT_DEADLINE
    while (on_a_now := _status(demo_pki, 14, on_a)) != "revoked" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert on_a_now == "revoked", f"process A still answers {on_a_now!r} {IMPORT_DEADLINE} s after SIGHUP to B"
    assert len(http.requests("/base.crl")) == fetches + 1  # only B fetched: A learnt it through the store
    for url in (on_a, on_b):
        assert _status(demo_pki, 14, url) == "revoked"
        assert _status(demo_pki, 13, url) == "good"  # the old delta (41) is superseded by complete CRL 42
        assert _status(demo_pki, 12, url) == "revoked"
