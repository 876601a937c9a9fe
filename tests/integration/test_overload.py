"""Overload limits over real sockets, over plain HTTP and over TLS.

A real ``certstatus serve`` with one worker, ``max_connections = 2``,
``max_in_flight = 1`` and ``client_timeout = 3``: connections beyond the limit
get HTTP 503 with the OCSP ``tryLater`` response (parsed with cryptography)
and are closed, beyond twice the limit they are closed at once, a half-sent
request is dropped after client_timeout, and a forwarded request beyond
``max_in_flight`` gets tryLater while the remote responder stalls. No timing
is asserted: every wait is for an event (a response, a close, an accept).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from contextlib import ExitStack

import httpx
import pytest
from cryptography.x509 import ocsp

from tests.integration.test_http_server import Reader, connect, post
from tests.ocsp_client import request_der, tls_context
from tests.servers import demo_ca_table, free_port, start_server, table

pytestmark = pytest.mark.integration

CLIENT_TIMEOUT = 3


class StallingResponder:
    """A TCP listener that accepts connections, reads nothing and never answers (a hung remote responder)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(connection)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for connection in self.held:
            connection.close()


@pytest.fixture(scope="module")
def stalling():
    responder = StallingResponder()
    yield responder
    responder.close()


@pytest.fixture(scope="module", params=["plain", "tls"])
def server(request, demo_pki, demo_pki_rsa, access_pki, stalling, tmp_path_factory):
    port, admin = free_port(), free_port()
    tls = request.param == "tls"
    config = (
        table("server", listen=f"127.0.0.1:{port}", workers=1, database="store.sqlite3",
              max_connections=2, max_in_flight=1, client_timeout=CLIENT_TIMEOUT)
        + table("admin", listen=f"127.0.0.1:{admin}", token_file="admin.token")
        + (table("tls", certificate=access_pki.server.cert, key=access_pki.server.key) if tls else "")
        + demo_ca_table("ec", demo_pki)
        + table("ca.rsa", certificate=demo_pki_rsa.ca_cert, forward=[f"http://127.0.0.1:{stalling.port}/"],
                forward_timeout="20s")
    )
    running = start_server(tmp_path_factory.mktemp(f"overload-{request.param}"), config, port=port, admin_port=admin, tls=tls)
    #: What httpx verifies the server with; connect() opens a connection speaking the listener's protocol.
    running.verify = tls_context(access_pki.tls_root) if tls else True
    running.connect = (lambda: running.verify.wrap_socket(connect(port), server_hostname="localhost")) if tls else (lambda: connect(port))
    yield running
    assert running.stop() == 0, running.log_text()


@pytest.fixture(scope="module")
def good_der(demo_pki) -> bytes:
    return request_der(demo_pki.leaves["good"], demo_pki.ca_cert)


def answered(sock: socket.socket, der: bytes) -> tuple[int, dict[bytes, bytes], bytes, Reader]:
    sock.sendall(post(der))
    reader = Reader(sock)
    return (*reader.response(), reader)


def assert_try_later(status: int, headers: dict[bytes, bytes], body: bytes) -> None:
    assert status == 503
    assert headers[b"content-type"] == b"application/ocsp-response"
    assert ocsp.load_der_ocsp_response(body).response_status is ocsp.OCSPResponseStatus.TRY_LATER


def refused_metric(server, reason: str) -> float:
    metrics = server.admin_get("/metrics").text
    for line in metrics.splitlines():
        if line.startswith(f'certstatus_overload_refused_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def answered_once_room_again(server, der: bytes) -> int:
    """The status of a request on a new connection, once the server has seen the client's last
    connections close (it learns of a close asynchronously: over TLS a few loop turns later)."""
    for _ in range(50):
        with server.connect() as sock:
            status = answered(sock, der)[0]
        if status != 503:
            return status
        time.sleep(0.1)
    return status


def test_connection_over_the_limit_gets_try_later_then_close(server, good_der):
    with ExitStack() as stack:
        held = [stack.enter_context(server.connect()) for _ in range(2)]
        for sock in held:  # both within the limit: served, and kept open (keep-alive)
            status, _, body, _ = answered(sock, good_der)
            assert status == 200 and ocsp.load_der_ocsp_response(body).certificate_status is ocsp.OCSPCertStatus.GOOD
        with server.connect() as third:
            status, headers, body, reader = answered(third, good_der)
            assert_try_later(status, headers, body)
            assert headers[b"connection"] == b"close"
            assert reader.closed()
        status, _, _, _ = answered(held[0], good_der)  # the connections within the limit go on being served
        assert status == 200
    assert answered_once_room_again(server, good_der) == 200  # the others closed
    assert refused_metric(server, "connections") >= 1
    assert "overload:" in server.log_text()


def test_connection_beyond_twice_the_limit_is_closed_at_once(server, good_der):
    with ExitStack() as stack:
        held = [stack.enter_context(server.connect()) for _ in range(4)]
        for sock in held[:2]:
            assert answered(sock, good_der)[0] == 200  # these two are surely accepted first
        assert closed_at_once(server, good_der)
        status, headers, body, _ = answered(held[3], good_der)
        assert_try_later(status, headers, body)
    assert refused_metric(server, "connections_hard") >= 1


def closed_at_once(server, der: bytes) -> bool:
    """Whether a new connection is closed without an answer (over TLS: during the handshake)."""
    try:
        sock = server.connect()
    except (ssl.SSLError, ConnectionError):  # the server closed the TCP connection before any handshake work
        return True
    with sock:
        try:
            sock.sendall(post(der))
        except (BrokenPipeError, ConnectionResetError):
            pass
        return Reader(sock).closed()


def test_half_sent_request_is_dropped_after_client_timeout(server, good_der):
    with server.connect() as sock:
        sock.settimeout(CLIENT_TIMEOUT * 5)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123")
        assert Reader(sock).closed()
    with connect(server.port) as silent:  # a TCP connection that sends nothing at all (over TLS: no handshake)
        silent.settimeout(CLIENT_TIMEOUT * 5)
        assert Reader(silent).closed()


def test_forwarded_request_beyond_max_in_flight_gets_try_later(server, stalling, demo_pki_rsa):
    der = request_der(demo_pki_rsa.leaves["good"], demo_pki_rsa.ca_cert)
    stalling.accepted.clear()
    first: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: first.append(httpx.post(server.url, content=der, timeout=60, verify=server.verify)))
    waiting.start()
    try:
        assert stalling.accepted.wait(30), "the forwarded request never reached the remote responder"
        second = httpx.post(server.url, content=der, timeout=60, verify=server.verify)  # the only place is taken
        assert second.headers["content-type"] == "application/ocsp-response"
        assert_try_later(second.status_code, {b"content-type": b"application/ocsp-response"}, second.content)
        assert refused_metric(server, "in_flight") >= 1
    finally:
        for connection in stalling.held:  # let the first one fail fast: the remote hangs up
            connection.close()
        waiting.join(60)
    assert first and first[0].status_code == 503  # the remote gave no answer: tryLater too
    assert "overload:" in server.log_text()


def test_requests_behind_a_forwarded_one_wait_in_order_while_other_connections_are_served(
    server, stalling, good_der, demo_pki_rsa
):
    forwarded = request_der(demo_pki_rsa.leaves["good"], demo_pki_rsa.ca_cert)
    stalling.accepted.clear()
    with server.connect() as sock:
        sock.settimeout(60)
        sock.sendall(post(forwarded) + post(good_der))  # pipelined: the local one must come second
        assert stalling.accepted.wait(30), "the forwarded request never reached the remote responder"
        with server.connect() as other:  # the worker is not blocked by the waiting forward
            other.settimeout(30)
            status, _, body, _ = answered(other, good_der)
            assert status == 200 and ocsp.load_der_ocsp_response(body).certificate_status is ocsp.OCSPCertStatus.GOOD
        for connection in stalling.held:  # the remote hangs up: the forwarded request gets tryLater
            connection.close()
        reader = Reader(sock)
        first, second = reader.response(), reader.response()
    assert_try_later(*first)
    assert second[0] == 200 and ocsp.load_der_ocsp_response(second[2]).certificate_status is ocsp.OCSPCertStatus.GOOD
