"""HTTPS on the HTTP edge over real sockets: handshake deadline, connection limit, client
certificates, keep-alive, ``Connection: close``, SIGTERM and SIGHUP.

A real ``certstatus serve`` with ``[tls]`` (``client_auth = "optional"``), one worker,
``client_timeout = 2`` and ``max_connections = 8``:

* ``ec`` (the demo EC CA, at ``/ec``): ``authorization = "by_authentication"``, so only a
  client whose certificate the handshake verified is answered — the chain must reach the
  access steps;
* ``rsa`` (the demo RSA CA, at ``/``): open to everyone.

Its configuration still sets ``server.http = "uvicorn"``, as a TLS configuration of an earlier
version had to: it is served by the same edge, the key ignored with a warning.

Clients are real: Python's ``ssl`` sockets written byte for byte, httpx, ``openssl ocsp``,
``openssl s_client`` and ``gnutls-cli``. No timing is asserted: every wait is for an event
(an answer, a close) with a generous bound.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import time
from contextlib import ExitStack

import httpx
import pytest

from tests.integration.test_http_server import Reader, assert_good, post, worker_pids
from tests.ocsp_client import cert_status, converse, openssl_ocsp, request_der, response_status, tls_context
from tests.servers import demo_ca_table, free_port, start_server, table

pytestmark = pytest.mark.integration

CLIENT_TIMEOUT = 2
MAX_CONNECTIONS = 8
#: How long a test waits for the server to close a connection it must close after CLIENT_TIMEOUT
#: (generous: the machine is shared; an edge that holds a silent connection for 60 s still fails).
CLOSE_WITHIN = 20


def config(pki, demo_pki_rsa, port: int, *, workers: int = 1, client_timeout: float = CLIENT_TIMEOUT,
           http: str | None = None) -> str:
    return (
        table("server", listen=f"127.0.0.1:{port}", workers=workers, database="store.sqlite3",
              client_timeout=client_timeout, max_connections=MAX_CONNECTIONS, http=http)
        + table("tls", certificate=pki.server.cert, key=pki.server.key, client_auth="optional",
                client_trust_anchors=[pki.anchors])
        + demo_ca_table("ec", pki.demo, crl=pki.crl, path="/ec", authorization="by_authentication")
        + demo_ca_table("rsa", demo_pki_rsa)
    )


@pytest.fixture(scope="module")
def pki(access_pki):
    return access_pki


@pytest.fixture(scope="module")
def server(access_pki, demo_pki_rsa, tmp_path_factory):
    port = free_port()
    # A configuration written for the earlier uvicorn TLS server: still served, the key ignored with a warning.
    running = start_server(tmp_path_factory.mktemp("tls-edge"), config(access_pki, demo_pki_rsa, port, http="uvicorn"),
                           port=port, tls=True)
    yield running
    assert running.stop() == 0, running.log_text()


@pytest.fixture(scope="module")
def rsa_der(demo_pki_rsa) -> bytes:
    return request_der(demo_pki_rsa.leaves["good"], demo_pki_rsa.ca_cert)


def tls_connect(port: int, pki, who: str | None = None, *, timeout: float = 10) -> ssl.SSLSocket:
    """A TLS connection to the server (handshake done), presenting ``who``'s certificate if given."""
    pair = pki.clients[who] if who else None
    context = tls_context(pki.tls_root, (pair.cert, pair.key) if pair else None)
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return context.wrap_socket(sock, server_hostname="localhost")


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes ``sock`` (EOF, reset, TLS close_notify or alert); False if it sends bytes."""
    try:
        data = sock.recv(65536)
    except (ConnectionResetError, ssl.SSLError):
        return True
    return data == b""


def refused_before_http(port: int, pki, who: str) -> bool:
    """Whether a TLS client presenting ``who``'s certificate is disconnected without an HTTP answer.

    In TLS 1.3 the client's handshake ends before the server has checked its certificate, so
    the refusal shows on the first read rather than in ``wrap_socket``.
    """
    try:
        with tls_connect(port, pki, who) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            return closed_by_server(sock)
    except (ssl.SSLError, ConnectionError):
        return True


def silent(port: int) -> socket.socket:
    """A TCP connection that sends nothing: it never starts its TLS handshake."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WITHIN)
    return sock


def https_post(server, pki, der: bytes, path: str = "", who: str | None = None) -> httpx.Response:
    """POST ``der`` with httpx on a new TLS connection."""
    pair = pki.clients[who] if who else None
    with httpx.Client(verify=tls_context(pki.tls_root, (pair.cert, pair.key) if pair else None), timeout=10) as client:
        return client.post(server.url + path, content=der, headers={"content-type": "application/ocsp-request"})


# --- handshake deadline and connection limit ------------------------------------------------


def test_silent_connection_is_closed_after_client_timeout(server):
    with silent(server.port) as sock:
        assert closed_by_server(sock)


def test_handshake_stopped_halfway_is_closed_after_client_timeout(server):
    with silent(server.port) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello, then nothing
        assert closed_by_server(sock)


def test_connections_in_the_handshake_count_towards_max_connections(server, pki, rsa_der):
    with ExitStack() as stack:
        held = [stack.enter_context(silent(server.port)) for _ in range(MAX_CONNECTIONS)]
        # The limit is reached by connections that never finished a handshake: the next client is
        # served the handshake but its request gets 503 tryLater, and the connection closes.
        refused = https_post(server, pki, rsa_der)
        assert refused.status_code == 503 and refused.headers["connection"] == "close"
        assert response_status(refused.content).name == "TRY_LATER"
        held += [stack.enter_context(silent(server.port)) for _ in range(MAX_CONNECTIONS)]
        # Twice the limit: a further connection is closed at once, before any handshake work.
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            https_post(server, pki, rsa_der)
        for sock in held:  # the server closes each at client_timeout, handshake never done
            assert closed_by_server(sock)
    # Their places are free again.
    answered = https_post(server, pki, rsa_der)
    assert answered.status_code == 200 and cert_status(answered.content) == "good"


def test_failed_handshakes_free_their_places(server, pki, rsa_der):
    for _ in range(2 * MAX_CONNECTIONS + 1):
        with silent(server.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: plain-http-on-a-tls-port\r\n\r\n")
            assert closed_by_server(sock)
        assert refused_before_http(server.port, pki, "stranger")  # a client certificate nobody trusts
    answered = https_post(server, pki, rsa_der)
    assert answered.status_code == 200 and cert_status(answered.content) == "good"


def test_server_http_of_an_older_configuration_is_ignored_with_one_warning(server):
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    warnings = [line for line in lines if "server.http" in line["message"]]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning", warnings
    assert warnings[0]["message"].endswith("is no longer used and is ignored: one HTTP server serves plain HTTP and TLS. Remove the key.")


# --- client certificates --------------------------------------------------------------------


def test_client_certificate_chain_reaches_the_authorization_step(server, pki):
    der = request_der(pki.demo.leaves["good"], pki.demo.ca_cert)
    answered = https_post(server, pki, der, "ec", who="alice")
    assert answered.status_code == 200 and cert_status(answered.content) == "good"
    anonymous = https_post(server, pki, der, "ec")
    assert response_status(anonymous.content).name == "UNAUTHORIZED"


def test_resumed_session_keeps_its_client_certificate(server, pki):
    alice = pki.clients["alice"]
    context = tls_context(pki.tls_root, (alice.cert, alice.key))
    der = request_der(pki.demo.leaves["good"], pki.demo.ca_cert)
    session = None
    for attempt in range(2):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost", session=session) as sock:
                sock.sendall(post(der, b"Connection: close\r\n").replace(b"POST / ", b"POST /ec "))
                status, _, body = Reader(sock).response()
                assert status == 200 and cert_status(body) == "good", (attempt, body)
                assert sock.session_reused == (attempt == 1)
                session = sock.session


def test_resumed_session_of_a_revoked_client_is_disconnected_too(server, pki):
    """A resumed session carries the client's certificate but not its verified chain: the
    certificate itself is still checked against our own data."""
    who = pki.clients["revoked-client"]
    context = tls_context(pki.tls_root, (who.cert, who.key))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            assert closed_by_server(sock)  # reads the session ticket, then the end
            session = sock.session
    assert session is not None and session.has_ticket
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert closed_by_server(sock)
            assert sock.session_reused


def test_client_certificate_revoked_in_our_data_is_disconnected_before_any_http(server, pki):
    assert refused_before_http(server.port, pki, "revoked-client")
    assert "disconnected TLS client" in server.log_text()


def test_openssl_ocsp_client_over_https_gets_a_verified_answer(server, pki, demo_pki_rsa):
    out = openssl_ocsp("-issuer", str(demo_pki_rsa.ca_cert), "-cert", str(demo_pki_rsa.leaves["revoked-keycompromise"]),
                       "-url", server.url, "-CAfile", str(demo_pki_rsa.chain), "-verify_other", str(pki.tls_root))
    assert "Response verify OK" in out and ": revoked" in out, out


def test_gnutls_client_gets_an_ocsp_answer_with_its_certificate(server, pki):
    if shutil.which("gnutls-cli") is None:
        pytest.skip("gnutls-cli is not installed")
    alice = pki.clients["alice"]
    der = request_der(pki.demo.leaves["revoked-keycompromise"], pki.demo.ca_cert)
    request = post(der, b"Connection: close\r\n").replace(b"POST / ", b"POST /ec ")
    out = converse(["gnutls-cli", "--port", str(server.port), "--x509cafile", str(pki.tls_root),
                    "--x509certfile", str(alice.cert), "--x509keyfile", str(alice.key), "127.0.0.1"], request)
    head, _, body = out[out.find(b"HTTP/1.1 "):].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), out
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    assert cert_status(body[:length]) == "revoked", out


# --- keep-alive and Connection: close -------------------------------------------------------


def test_keep_alive_over_tls_answers_sequential_and_pipelined_requests_on_one_connection(server, pki, rsa_der):
    with tls_connect(server.port, pki) as sock:
        reader = Reader(sock)
        for _ in range(3):
            sock.sendall(post(rsa_der))
            status, headers, body = reader.response()
            assert status == 200 and b"connection" not in headers
            assert_good(body)
        sock.sendall(post(rsa_der) * 3)
        for _ in range(3):
            status, _, body = reader.response()
            assert status == 200
            assert_good(body)


def test_connection_close_over_tls_closes_after_the_response(server, pki, rsa_der):
    with tls_connect(server.port, pki) as sock:
        sock.sendall(post(rsa_der, b"Connection: close\r\n") + post(rsa_der))
        reader = Reader(sock)
        status, headers, body = reader.response()
        assert status == 200 and headers[b"connection"] == b"close"
        assert_good(body)
        assert reader.buffer == b"" and closed_by_server(sock)  # the pipelined second request is not answered


def test_idle_tls_connection_is_closed_after_client_timeout(server, pki, rsa_der):
    with tls_connect(server.port, pki, timeout=CLOSE_WITHIN) as sock:
        sock.sendall(post(rsa_der))
        assert Reader(sock).response()[0] == 200
        assert closed_by_server(sock)


def test_half_sent_request_over_tls_is_dropped_after_client_timeout(server, pki):
    with tls_connect(server.port, pki, timeout=CLOSE_WITHIN) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123")
        assert closed_by_server(sock)


# --- SIGTERM and SIGHUP ---------------------------------------------------------------------


def _own_server(tmp_path, pki, demo_pki_rsa, *, workers: int = 1):
    port = free_port()
    return start_server(tmp_path, config(pki, demo_pki_rsa, port, workers=workers, client_timeout=5.0), port=port, tls=True)


def test_sigterm_over_tls_finishes_the_request_in_progress_then_exits(tmp_path, access_pki, demo_pki_rsa, rsa_der):
    running = _own_server(tmp_path, access_pki, demo_pki_rsa)
    idle = tls_connect(running.port, access_pki)
    busy = tls_connect(running.port, access_pki)
    message = post(rsa_der)
    busy.sendall(message[:20])
    idle.sendall(post(rsa_der))
    assert Reader(idle).response()[0] == 200
    running.process.send_signal(signal.SIGTERM)
    assert closed_by_server(idle)  # quiet since its answer: closed once the drain wait is over
    busy.sendall(message[20:])
    status, headers, body = Reader(busy).response()
    assert status == 200 and headers[b"connection"] == b"close"
    assert_good(body)
    assert running.process.wait(timeout=30) == 0, running.log_text()
    idle.close()
    busy.close()


def test_sighup_over_tls_replaces_the_workers_and_keeps_serving(tmp_path, access_pki, demo_pki_rsa, rsa_der):
    running = _own_server(tmp_path, access_pki, demo_pki_rsa, workers=2)
    try:
        before = set()
        deadline = time.monotonic() + 30
        while len(before) < 2 and time.monotonic() < deadline:
            before = worker_pids(running.process.pid)
            time.sleep(0.1)
        kept = tls_connect(running.port, access_pki)  # a keep-alive client of an old worker
        kept.sendall(post(rsa_der))
        reader = Reader(kept)
        assert reader.response()[0] == 200
        running.process.send_signal(signal.SIGHUP)
        kept.sendall(post(rsa_der))  # its next request, while the old worker drains
        status, _, body = reader.response()
        assert status == 200
        assert_good(body)
        while not ((after := worker_pids(running.process.pid)) and len(after) == 2 and not after & before):
            assert time.monotonic() < deadline + 30, f"workers {before} still there: {after}"
            time.sleep(0.1)
        answered = https_post(running, access_pki, rsa_der)
        assert answered.status_code == 200 and cert_status(answered.content) == "good"
        kept.close()
    finally:
        assert running.stop() == 0, running.log_text()
