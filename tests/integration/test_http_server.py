"""The HTTP edge over real sockets (plain HTTP): keep-alive,
pipelining, limits, timeouts, shutdown, reload.

A real ``certstatus serve`` (2 worker processes, client_timeout 0.5 s) on a
free port; requests are written byte for byte with raw sockets.
"""

from __future__ import annotations

import base64
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.servers import Server, start_server

pytestmark = pytest.mark.integration

CLIENT_TIMEOUT = 0.5


def start(tmp: Path, pki, *, workers: int = 2, client_timeout: float = CLIENT_TIMEOUT) -> Server:
    """``certstatus serve`` (tests/servers.py) on 127.0.0.1:0, the port read from its log."""
    config = (
        "[server]\n"
        'listen = "127.0.0.1:0"\n'
        f"workers = {workers}\n"
        f'database = "{tmp / "store.sqlite3"}"\n'
        f"client_timeout = {client_timeout}\n"
        "max_request_bytes = 2000\n\n"
        "[ca.demo]\n"
        f'certificate = "{pki.ca_cert}"\n'
        f'crl = ["{pki.crl}"]\n'
        f'index = "{pki.index}"\n'
        f'signer_certificate = "{pki.ocsp_cert}"\n'
        f'signer_key = "{pki.ocsp_key}"\n'
    )
    return start_server(tmp, config, port=None, log_level=None)


@pytest.fixture(scope="module")
def server(demo_pki, tmp_path_factory):
    running = start(tmp_path_factory.mktemp("edge"), demo_pki)
    yield running.port
    assert running.stop(15) == 0, running.log_text()


@pytest.fixture(scope="module")
def request_der(demo_pki) -> bytes:
    issuer = x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(demo_pki.leaves["good"].read_bytes())
    built = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    return built.public_bytes(serialization.Encoding.DER)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


class Reader:
    """Read HTTP/1.1 responses (Content-Length framed) from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed before a response; got {self.buffer!r}"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            assert self._fill(), "connection closed inside a body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self) -> bool:
        """True when the server closes the connection (within the socket's 5 s timeout); over TLS
        a fatal alert counts as closing too."""
        try:
            return not self._fill() and not self.buffer
        except (ConnectionResetError, ssl.SSLError):
            return True


def post(der: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/ocsp-request\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(der)
        + der
    )


def get(der: bytes, extra: bytes = b"") -> bytes:
    return b"GET /%s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (base64.b64encode(der), extra)


def assert_good(body: bytes) -> None:
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD


def test_keep_alive_answers_several_requests_on_one_connection(server, request_der):
    with connect(server) as sock:
        reader = Reader(sock)
        for _ in range(3):
            sock.sendall(post(request_der))
            status, headers, body = reader.response()
            assert status == 200 and b"connection" not in headers
            assert headers[b"content-type"] == b"application/ocsp-response"
            assert_good(body)


def test_pipelined_requests_are_answered_in_order(server, request_der):
    with connect(server) as sock:
        sock.sendall(post(request_der) + b"GET /not-base64! HTTP/1.1\r\nHost: t\r\n\r\n" + get(request_der))
        reader = Reader(sock)
        first, second, third = reader.response(), reader.response(), reader.response()
    assert first[0] == 200 and second[0] == 404 and third[0] == 200
    assert_good(first[2])
    assert_good(third[2])


def test_connection_close_closes_after_the_response(server, request_der):
    with connect(server) as sock:
        sock.sendall(post(request_der, b"Connection: close\r\n") + post(request_der))
        reader = Reader(sock)
        status, headers, body = reader.response()
        assert status == 200 and headers[b"connection"] == b"close"
        assert_good(body)
        assert reader.closed()  # the pipelined second request is not answered


def test_http_1_0_without_keep_alive_closes(server, request_der):
    with connect(server) as sock:
        sock.sendall(b"GET /%s HTTP/1.0\r\n\r\n" % base64.b64encode(request_der))
        reader = Reader(sock)
        status, _, body = reader.response()
        assert status == 200
        assert_good(body)
        assert reader.closed()


def test_half_request_is_dropped_after_client_timeout_without_blocking_others(server, request_der):
    # More stalled clients than workers: each would block a worker if it held one.
    stalled = [connect(server) for _ in range(4)]
    for sock in stalled:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123")
    with connect(server) as sock:
        sock.sendall(post(request_der))
        status, _, body = Reader(sock).response()
        assert status == 200
        assert_good(body)
    for sock in stalled:
        assert Reader(sock).closed()
        sock.close()


def test_slow_headers_do_not_extend_the_deadline(server):
    """Header bytes trickling in (one per 0.1 s) do not keep a connection open: the server closes it,
    without an answer, once client_timeout (0.5 s) has passed since the first byte. The client keeps
    sending for four times that; a server that never times out keeps it open and fails here."""
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.settimeout(CLIENT_TIMEOUT / 5)
        closed = False
        for _ in range(20):  # 2 s in all
            try:
                sock.sendall(b"X")
                received = sock.recv(100)
            except socket.timeout:
                continue  # still open, nothing said: send the next byte
            except (BrokenPipeError, ConnectionResetError):
                closed = True  # closed while bytes were on their way
                break
            assert received == b"", f"the server answered a request it never received whole: {received!r}"
            closed = True  # end of stream: closed without an answer
            break
        assert closed, f"the connection was still open {20 * CLIENT_TIMEOUT / 5:.0f} s after its first byte"


def test_idle_keep_alive_connection_is_closed_after_client_timeout(server, request_der):
    with connect(server) as sock:
        sock.sendall(post(request_der))
        reader = Reader(sock)
        assert reader.response()[0] == 200
        assert reader.closed()


def refused_and_closed(port: int, raw: bytes) -> int:
    """Send ``raw``; check the answer says Connection: close and the server closes; return its status."""
    with connect(port) as sock:
        sock.sendall(raw)
        reader = Reader(sock)
        status, headers, _ = reader.response()
        assert headers[b"connection"] == b"close"
        assert reader.closed()
        return status


def test_oversize_headers_get_431_and_close(server):
    filler = b"X-Filler: %s\r\n" % (b"a" * 8000)
    assert refused_and_closed(server, b"GET / HTTP/1.1\r\nHost: t\r\n" + filler * 3 + b"\r\n") == 431


def test_declared_oversize_body_gets_413_before_it_is_sent(server):
    assert refused_and_closed(server, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2001\r\n\r\n") == 413


def test_chunked_oversize_body_gets_413(server):
    with connect(server) as sock:
        chunk = b"a" * 1500
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 2 + b"0\r\n\r\n")
        status, _, _ = Reader(sock).response()
        assert status == 413


def test_overlong_request_target_gets_414(server):
    with connect(server) as sock:
        sock.sendall(b"GET /" + b"A" * 20000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, _ = Reader(sock).response()
        assert status == 414


def test_garbage_gets_400_and_close(server):
    assert refused_and_closed(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n") == 400


def test_expect_100_continue_is_answered(server, request_der):
    with connect(server) as sock:
        head, body = post(request_der, b"Expect: 100-continue\r\n").split(b"\r\n\r\n", 1)
        sock.sendall(head + b"\r\n\r\n")
        reader = Reader(sock)
        assert reader.response()[0] == 100
        sock.sendall(body)
        status, _, answer = reader.response()
        assert status == 200
        assert_good(answer)


def test_openssl_client_gets_a_verified_answer(server, demo_pki):
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(demo_pki.ca_cert), "-cert", str(demo_pki.leaves["revoked-keycompromise"]),
         "-url", f"http://127.0.0.1:{server}/", "-CAfile", str(demo_pki.chain)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "Response verify OK" in result.stderr + result.stdout
    assert ": revoked" in result.stdout


def worker_count(pid: int) -> int:
    """Worker processes of the supervisor ``pid``, once they have started Python (exec'd)."""
    deadline = time.monotonic() + 20
    while True:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        commands = []
        for child in children:
            try:
                commands.append(Path(f"/proc/{child}/cmdline").read_bytes())
            except FileNotFoundError:
                continue
        count = sum(b"spawn_main" in command for command in commands)
        if count >= 2 or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def test_workers_are_separate_processes_sharing_the_port(demo_pki, tmp_path, request_der):
    server = start(tmp_path, demo_pki, workers=2)
    process, port = server.process, server.port
    try:
        assert worker_count(process.pid) == 2
        for _ in range(4):
            with connect(port) as sock:
                sock.sendall(post(request_der, b"Connection: close\r\n"))
                assert_good(Reader(sock).response()[2])
    finally:
        assert server.stop(15) == 0, server.log_text()


def test_sigterm_finishes_the_request_in_progress_then_exits(demo_pki, tmp_path, request_der):
    server = start(tmp_path, demo_pki, workers=1, client_timeout=5.0)
    process, port = server.process, server.port  # a partial request outlives the 2 s drain wait
    idle = connect(port)
    busy = connect(port)
    message = post(request_der)
    busy.sendall(message[:20])
    # Both connections are accepted by the worker before the signal.
    idle.sendall(post(request_der))
    assert Reader(idle).response()[0] == 200
    process.send_signal(signal.SIGTERM)
    assert Reader(idle).closed()  # quiet for DRAIN_QUIET_SECONDS (2 s) since its answer: closed
    busy.sendall(message[20:])
    reader = Reader(busy)
    status, headers, body = reader.response()
    assert status == 200 and headers[b"connection"] == b"close"
    assert_good(body)
    assert process.wait(timeout=15) == 0
    idle.close()
    busy.close()


def test_sigterm_answers_the_requests_on_their_way(demo_pki, tmp_path, request_der):
    """A client that connected an instant before the shutdown and has not sent its request yet,
    and a keep-alive client whose next request follows at once, are not idle: both requests are
    answered with ``Connection: close``, not dropped."""
    server = start(tmp_path, demo_pki, workers=1, client_timeout=5.0)
    process, port = server.process, server.port
    fresh = connect(port)
    busy = connect(port)
    # One worker accepts in the order of the listen queue: once ``busy`` is answered,
    # ``fresh`` (connected first) has been accepted too.
    busy.sendall(post(request_der))
    assert Reader(busy).response()[0] == 200
    process.send_signal(signal.SIGTERM)
    wait_for_line(server, "draining")  # the worker has stopped accepting: what follows arrives while it drains
    for connection in (fresh, busy):
        connection.sendall(post(request_der))
        status, headers, body = Reader(connection).response()
        assert status == 200 and headers[b"connection"] == b"close"
        assert_good(body)
    assert process.wait(timeout=15) == 0
    busy.close()
    fresh.close()


def wait_for_line(server: Server, text: str, timeout: float = 15.0) -> None:
    """Return once the server's log holds ``text`` (AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while text not in server.log_text():
        assert time.monotonic() < deadline, f"no output with {text!r} within {timeout} s:\n{server.log_text()}"
        time.sleep(0.02)


def worker_pids(pid: int) -> set[int]:
    pids = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                pids.add(int(child))
        except FileNotFoundError:
            pass
    return pids


def test_sighup_replaces_the_workers_and_keeps_serving(demo_pki, tmp_path, request_der):
    server = start(tmp_path, demo_pki, workers=2)
    process, port = server.process, server.port
    try:
        assert worker_count(process.pid) == 2
        before = worker_pids(process.pid)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while not (len(after := worker_pids(process.pid)) == 2 and not after & before):
            assert time.monotonic() < deadline, f"workers {before} still there: {after}"
            time.sleep(0.1)
        with connect(port) as sock:
            sock.sendall(post(request_der))
            assert_good(Reader(sock).response()[2])
    finally:
        assert server.stop(15) == 0, server.log_text()
