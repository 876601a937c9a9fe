"""``client_auth = "required"``: clients without a trusted certificate never get to speak HTTP.

Real TLS clients: ``openssl s_client`` and ``gnutls-cli``, each with and
without a client certificate, an untrusted one, one revoked in our own data,
and a protocol below the TLS 1.2 floor.
"""

from __future__ import annotations

import shutil

import pytest

from tests.ocsp_client import converse, run
from tests.servers import demo_ca_table, free_port, server_tables, start_server, table

pytestmark = pytest.mark.integration

HTTP_GET = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def pki(access_pki):
    return access_pki


@pytest.fixture(scope="module")
def server(pki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("required-server")
    port = free_port()
    config = (
        server_tables(port)
        + table("tls", certificate=pki.server.cert, key=pki.server.key, client_auth="required", client_trust_anchors=[pki.anchors])
        + demo_ca_table("ec", pki.demo, crl=pki.crl)
    )
    running = start_server(folder, config, port=port, tls=True)
    yield running
    assert running.stop() == 0, running.log_text()


def s_client(server, pki, who: str | None, *extra: str) -> bytes:
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-CAfile", str(pki.tls_root), "-quiet", *extra]
    if who:
        args += ["-cert", str(pki.clients[who].cert), "-key", str(pki.clients[who].key)]
    return run(args, stdin=HTTP_GET).stdout


def gnutls(server, pki, who: str | None) -> bytes:
    if shutil.which("gnutls-cli") is None:
        pytest.skip("gnutls-cli is not installed")
    args = ["gnutls-cli", "--port", str(server.port), "--x509cafile", str(pki.tls_root), "--verify-hostname", "localhost"]
    if who:
        args += ["--x509certfile", str(pki.clients[who].cert), "--x509keyfile", str(pki.clients[who].key)]
    return converse(args + ["127.0.0.1"], HTTP_GET)


def test_openssl_client_with_a_trusted_certificate_gets_http(server, pki):
    out = s_client(server, pki, "alice")
    assert b"HTTP/1.1 200" in out and b"ok" in out, out


# The server aborts the handshake; depending on the TLS version the client sees
# an alert or, in TLS 1.3 (where the client finishes first), the connection end or reset.
REFUSED = (b"certificate required", b"handshake failure", b"unexpected eof", b"unknown ca", b"alert", b"errno=104")


def refused(out: bytes) -> bool:
    return b"HTTP/1.1" not in out and any(sign in out.lower() for sign in REFUSED)


def test_openssl_client_without_certificate_fails_the_handshake(server, pki):
    assert refused(s_client(server, pki, None))
    assert refused(s_client(server, pki, None, "-tls1_2"))


def test_openssl_client_with_an_untrusted_certificate_fails_the_handshake(server, pki):
    out = s_client(server, pki, "stranger")
    assert refused(out), out


def test_client_certificate_revoked_in_our_data_is_disconnected_before_any_http(server, pki):
    out = s_client(server, pki, "revoked-client")
    assert b"HTTP/1.1" not in out, out
    assert "disconnected TLS client" in server.log_text()


def test_protocols_below_tls_1_2_are_refused(server, pki):
    out = s_client(server, pki, "alice", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert b"HTTP/1.1" not in out, out
    out = s_client(server, pki, "alice", "-tls1_2")
    assert b"HTTP/1.1 200" in out, out


def test_gnutls_client_with_a_trusted_certificate_gets_http(server, pki):
    out = gnutls(server, pki, "bob")
    assert b"HTTP/1.1 200" in out, out


def test_gnutls_client_without_certificate_gets_no_http(server, pki):
    out = gnutls(server, pki, None)
    assert b"HTTP/1.1" not in out, out
