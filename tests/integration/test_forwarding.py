"""Forwarding to a second certstatus, and the client certificate header of a TLS-terminating proxy.

Two real processes: a *remote* certstatus serving the RSA demo CA, and a
*front* certstatus that

* forwards the RSA CA to ``[dead port, remote]`` (failover in order);
* forwards a ``partner`` CA to a dead port only (→ tryLater);
* serves the EC demo CA itself, ``by_name`` for alice, reading the client
  certificate from ``X-SSL-Client-Cert`` when the request comes from the
  trusted proxy address 127.0.0.2.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPResponseStatus

from tests.ocsp_client import cert_status, request_der, response_status
from tests.processes import openssl_ocsp_status
from tests.servers import demo_ca_table, free_port, server_tables, start_server, table

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(access_pki):
    return access_pki


@pytest.fixture(scope="module")
def remote(demo_pki_rsa, tmp_path_factory):
    folder = tmp_path_factory.mktemp("remote")
    port = free_port()
    running = start_server(folder, server_tables(port, audit=True) + demo_ca_table("rsa", demo_pki_rsa, index=True), port=port)
    yield running
    assert running.stop() == 0, running.log_text()


@pytest.fixture(scope="module")
def front(pki, demo_pki_rsa, remote, tmp_path_factory):
    folder = tmp_path_factory.mktemp("front")
    port, dead = free_port(), free_port()
    config = (
        server_tables(port, workers=2, audit=True)
        + table("tls", client_cert_header="X-SSL-Client-Cert", trusted_proxies=["127.0.0.2"], client_trust_anchors=[pki.anchors])
        + demo_ca_table("ec", pki.demo, crl=pki.crl, authorization="by_name", authorized_names=["CN=alice,O=Example Partners"])
        + table("ca.rsa", certificate=demo_pki_rsa.ca_cert, forward=[f"http://127.0.0.1:{dead}/", remote.url], forward_timeout="2s")
        + table("ca.partner", certificate=pki.clients_root.cert, forward=[f"http://127.0.0.1:{dead}/"])
    )
    running = start_server(folder, config, port=port)
    yield running
    assert running.stop() == 0, running.log_text()


def _about(serial: str, count: int = 1):
    """An audit-log condition: at least ``count`` records about ``serial`` (hex)."""
    return lambda records: len(_records_about(records, serial)) >= count


def _records_about(records: list[dict], serial: str) -> list[dict]:
    return [r for r in records if r["certs"] and r["certs"][0]["serial"] == serial]


def test_forwarded_request_is_answered_by_the_remote_after_failover(front, remote, demo_pki_rsa, tmp_path):
    respout = tmp_path / "response.der"
    status = openssl_ocsp_status(["openssl", "ocsp", "-issuer", str(demo_pki_rsa.ca_cert), "-cert", str(demo_pki_rsa.leaves["revoked-hold"]),
                                  "-url", front.url, "-CAfile", str(demo_pki_rsa.root_cert), "-verify_other", str(demo_pki_rsa.ca_cert)],
                                 respout=respout)  # fmt: skip
    response = ocsp.load_der_ocsp_response(respout.read_bytes())
    assert status == "revoked" and response.revocation_reason is x509.ReasonFlags.certificate_hold
    assert response.this_update_utc <= dt.datetime.now(dt.UTC) < response.next_update_utc  # current, as openssl checks
    serial = format(demo_pki_rsa.serials["revoked-hold"], "x")
    mine = _records_about(front.audit_records(_about(serial)), serial)
    assert mine[-1]["source"] == "forwarded" and mine[-1]["issuer"] == "rsa" and mine[-1]["nonce"] is True
    theirs = _records_about(remote.audit_records(_about(serial)), serial)
    assert theirs[-1]["nonce"] is True  # the request went on as it was, nonce included


def test_nonce_less_request_is_cached_until_next_update(front, demo_pki_rsa):
    der = request_der(demo_pki_rsa.leaves["good"], demo_pki_rsa.ca_cert)
    serial = format(demo_pki_rsa.serials["good"], "x")
    before = len(_records_about(front.audit_records(lambda records: True), serial))
    with httpx.Client(timeout=10) as client:  # one connection: one worker, one cache
        first = client.post(front.url, content=der).content
        second = client.post(front.url, content=der).content
    assert cert_status(first) == "good" and second == first
    sources = [r["source"] for r in _records_about(front.audit_records(_about(serial, before + 2)), serial)]
    assert sources[-2:] == ["forwarded", "cache"]


def test_requests_with_a_nonce_are_forwarded_every_time(front, demo_pki_rsa):
    der = request_der(demo_pki_rsa.leaves["good2"], demo_pki_rsa.ca_cert, nonce=b"0123456789abcdef")
    serial = format(demo_pki_rsa.serials["good2"], "x")
    before = len(_records_about(front.audit_records(lambda records: True), serial))
    with httpx.Client(timeout=10) as client:
        for _ in range(2):
            assert cert_status(client.post(front.url, content=der).content) == "good"
    sources = [r["source"] for r in _records_about(front.audit_records(_about(serial, before + 2)), serial)]
    assert sources[-2:] == ["forwarded", "forwarded"]


def test_remote_failure_answers_try_later(front, pki):
    reply = httpx.post(front.url, content=request_der(pki.clients["alice"].cert, pki.clients_root.cert), timeout=10)
    assert reply.status_code == 503 and response_status(reply.content) is OCSPResponseStatus.TRY_LATER
    assert "no remote responder of CA partner answered" in front.log_text()


def _pem(pair) -> str:
    return quote(pair.cert.read_text(), safe="")  # as nginx's $ssl_client_escaped_cert


def _via(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def test_client_certificate_header_from_the_trusted_proxy_authenticates(front, pki):
    der = request_der(pki.demo.leaves["good"], pki.demo.ca_cert)
    headers = {"X-SSL-Client-Cert": _pem(pki.clients["alice"]), "X-Forwarded-For": "198.51.100.7"}
    with _via("127.0.0.2") as client:
        answer = client.post(front.url, content=der, headers=headers).content
    assert cert_status(answer) == "good"
    alice = pki.clients["alice"].subject
    record = [r for r in front.audit_records(lambda records: any(r["tls_client"] == alice for r in records)) if r["tls_client"] == alice][-1]
    assert record["client"] == "198.51.100.7" and record["requestor"] == pki.clients["alice"].subject


def test_client_certificate_header_from_anyone_else_is_ignored(front, pki):
    der = request_der(pki.demo.leaves["good"], pki.demo.ca_cert)
    with _via("127.0.0.1") as client:
        answer = client.post(front.url, content=der, headers={"X-SSL-Client-Cert": _pem(pki.clients["alice"])}).content
    assert response_status(answer) is OCSPResponseStatus.UNAUTHORIZED
    assert "ignored x-ssl-client-cert header from 127.0.0.1" in front.log_text()


def test_untrusted_certificate_in_the_header_is_unauthorized(front, pki):
    der = request_der(pki.demo.leaves["good"], pki.demo.ca_cert)
    with _via("127.0.0.2") as client:
        answer = client.post(front.url, content=der, headers={"X-SSL-Client-Cert": _pem(pki.clients["stranger"])}).content
    assert response_status(answer) is OCSPResponseStatus.UNAUTHORIZED
    assert "client certificate from the proxy not trusted" in front.log_text()
