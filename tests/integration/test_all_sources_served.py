"""One configuration, every kind of source, served by a real `certstatus serve` and asked by `openssl ocsp`.

CAs: HTTP complete + delta CRL, LDAP CRL (a real slapd), index.txt, pushes
(admin API), a live SQL query (the real PostgreSQL). Then a new CRL is
published and SIGHUP makes the running server import it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography import x509

from certstatus.demo_pki import DemoPki, make_demo_pki
from tests.crl_server import CrlServer
from tests.slapd import Slapd, crl_entry
from tests.sources_helpers import crl_der, revoked

pytestmark = pytest.mark.integration
DSN = "postgresql://postgres@127.0.0.1:5432/test"
TOKEN = "fedcba9876543210fedcba9876543210"
HOLD = x509.ReasonFlags.certificate_hold


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ca_table(name: str, pki: DemoPki, extra: str) -> str:
    return (
        f'[ca.{name}]\ncertificate = "{pki.ca_cert}"\nsigner_certificate = "{pki.ocsp_cert}"\n'
        f'signer_key = "{pki.ocsp_key}"\npath = "/{name}"\n{extra}\n'
    )


def _status(pki: DemoPki, serial: int, url: str) -> str:
    done = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(pki.ca_cert), "-serial", str(serial), "-url", url,
         "-CAfile", str(pki.chain), "-no_nonce"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith(f"{serial}:"):
            return line.split(":", 1)[1].strip()
    return f"no status: {done.stdout} {done.stderr}"


@pytest.fixture(scope="module")
def world(demo_pki: DemoPki, demo_pki_rsa: DemoPki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("all-sources")
    ldap_pki, sql_pki, index_pki = (make_demo_pki(folder / n) for n in ("ldap", "sql", "index"))
    schema = f"certstatus_all_{uuid.uuid4().hex[:12]}"
    db = psycopg.connect(DSN, autocommit=True)
    db.execute(f"CREATE SCHEMA {schema}")
    db.execute(f"CREATE TABLE {schema}.certs (serial text PRIMARY KEY, status text, revoked_at timestamptz, reason int)")
    db.execute(f"INSERT INTO {schema}.certs VALUES ('{sql_pki.serials['good']}', 'good', NULL, NULL), "
               f"('{sql_pki.serials['revoked-superseded']}', 'revoked', now() - interval '1 hour', 4)")
    http = CrlServer().__enter__()
    http.publish("/base.crl", crl_der(demo_pki, [revoked(11, HOLD), revoked(12)], number=40, this_update=_now(), hours=48))
    delta = [revoked(11, x509.ReasonFlags.remove_from_crl), revoked(13)]
    http.publish("/delta.crl", crl_der(demo_pki, delta, number=41, delta_base=40, this_update=_now(), hours=48))
    ldap = Slapd(folder / "slapd", crl_entry("CA", _der_crl(ldap_pki))).__enter__()
    (folder / "admin.token").write_text(TOKEN)
    query = f"SELECT status, revoked_at, reason FROM {schema}.certs WHERE serial = %(serial_dec)s"
    port, admin_port = _port(), _port()
    config = folder / "certstatus.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 2\ndatabase = "{folder / "store.sqlite3"}"\n\n'
        f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken_file = "admin.token"\n\n'
        + _ca_table("http", demo_pki, f'crl = ["{http.url("/base.crl")}", "{http.url("/delta.crl")}"]\nfetch_timeout = "2s"')
        + _ca_table("ldap", ldap_pki, f'crl = "{ldap.url("cn=CA,o=Test")}"')
        + _ca_table("index", index_pki, f'index = "{index_pki.index}"')
        + _ca_table("pushed", demo_pki_rsa, "push = true")
        + _ca_table("sql", sql_pki, f'[ca.sql.sql]\ndsn = "{DSN}"\nquery = "{query}"')
    )
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("certstatus")), "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            socket.create_connection(("127.0.0.1", admin_port), timeout=0.2).close()
            break
        except OSError:
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.1)
    yield {
        "url": f"http://127.0.0.1:{port}", "admin": f"http://127.0.0.1:{admin_port}", "server": server,
        "http": http, "pkis": {"ldap": ldap_pki, "sql": sql_pki, "index": index_pki},
    }  # fmt: skip
    server.send_signal(signal.SIGTERM)
    server.wait(20)
    ldap.stop()
    http.__exit__(None)
    db.execute(f"DROP SCHEMA {schema} CASCADE")
    db.close()


def _now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=1)


def _der_crl(pki: DemoPki) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_crl(pki.crl.read_bytes()).public_bytes(serialization.Encoding.DER)


def test_every_source_answers_through_openssl_ocsp(world, demo_pki: DemoPki) -> None:
    url, pkis = world["url"], world["pkis"]
    assert _status(demo_pki, 11, f"{url}/http") == "good"  # hold released by the delta CRL
    assert _status(demo_pki, 12, f"{url}/http") == "revoked"
    assert _status(demo_pki, 13, f"{url}/http") == "revoked"  # only in the delta
    assert _status(pkis["ldap"], pkis["ldap"].serials["revoked-keycompromise"], f"{url}/ldap") == "revoked"
    assert _status(pkis["ldap"], pkis["ldap"].serials["good"], f"{url}/ldap") == "good"
    assert _status(pkis["index"], pkis["index"].serials["revoked-hold"], f"{url}/index") == "revoked"
    assert _status(pkis["index"], pkis["index"].serials["unknown"], f"{url}/index") == "unknown"
    assert _status(pkis["sql"], pkis["sql"].serials["good"], f"{url}/sql") == "good"
    assert _status(pkis["sql"], pkis["sql"].serials["revoked-superseded"], f"{url}/sql") == "revoked"
    assert _status(pkis["sql"], pkis["sql"].serials["good2"], f"{url}/sql") == "unknown"  # no row


def test_push_through_the_admin_listener_is_served(world, demo_pki_rsa: DemoPki) -> None:
    serial = demo_pki_rsa.serials["good"]
    url = f"{world['url']}/pushed"
    assert _status(demo_pki_rsa, serial, url) == "good"
    answer = httpx.post(
        f"{world['admin']}/v1/ca/pushed/revoke", json={"serial": f"{serial:x}", "reason": "keyCompromise"},
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
    )  # fmt: skip
    assert answer.status_code == 200
    assert _status(demo_pki_rsa, serial, url) == "revoked"
    denied = httpx.post(f"{world['admin']}/v1/ca/pushed/revoke", json={"serial": "1"}, timeout=10)
    assert denied.status_code == 401


def test_sighup_reimports_a_newly_published_crl(world, demo_pki: DemoPki) -> None:
    url = f"{world['url']}/http"
    assert _status(demo_pki, 14, url) == "good"
    world["http"].publish("/base.crl", crl_der(demo_pki, [revoked(12), revoked(14)], number=42, this_update=_now(), hours=48))
    os.kill(world["server"].pid, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while _status(demo_pki, 14, url) != "revoked" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _status(demo_pki, 14, url) == "revoked"
    assert _status(demo_pki, 13, url) == "good"  # the old delta (41) is superseded by complete CRL 42
