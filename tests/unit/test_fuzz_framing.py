"""Property tests of HTTP/1.1 framing: raw byte streams into the HTTP edge, and over real sockets.

Well-formed keep-alive pipelines (POST, GET, HEAD, chunked bodies, Expect:
100-continue, HTTP/1.0 keep-alive, Connection: close, odd header case) cut at
random points must be answered in order, each with the expected status and
certStatus. Hostile streams — the same pipelines with bad or duplicate
Content-Length, Transfer-Encoding tricks, bad chunk sizes, huge headers and
request targets, NULs, obs-fold, bare LF, absolute-form targets, Upgrade,
random byte edits — must keep the framing rules of tests/fuzz_framing.py:
no exception escaping, well-formed responses in order, no 5xx but an OCSP
503 tryLater, the connection closed after a refusal.

In process (HttpProtocol over a fake transport) for many examples; through a
real ``certstatus serve``, over plain and TLS sockets (each cut a TLS
record of its own), for a smaller sample. Speed per input (< 50 ms) is measured by
``bench/fuzz.py --target framing``, never here.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certstatus.demo_pki import DemoPki
from tests.fuzz_framing import Finding, Response, check_response, parse_responses
from tests.fuzz_world import FuzzWorld, config_text, cryptography_request
from tests.ocsp_client import tls_context
from tests.servers import Server, free_port, start_server

EXAMPLES = int(os.environ.get("CERTSTATUS_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SOCKETS = settings(FUZZ, max_examples=max(10, EXAMPLES // 6))


@pytest.fixture(scope="module")
def world(demo_pki: DemoPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzWorld]:
    built = FuzzWorld.build(tmp_path_factory.mktemp("framing"), demo_pki)
    yield built
    built.close()


# --- well-formed pipelines ---------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One request of a pipeline, its bytes and what it must get: HTTP status and certStatus (None: no OCSP check)."""

    raw: bytes
    method: str
    status: int
    cert_status: OCSPCertStatus | None = None
    ocsp_status: OCSPResponseStatus | None = None
    closes: bool = False
    expect_continue: bool = False


LEAVES = {"good": OCSPCertStatus.GOOD, "revoked-keycompromise": OCSPCertStatus.REVOKED, "unknown": OCSPCertStatus.UNKNOWN}


_REQUESTS: dict[tuple[str, str], bytes] = {}


def _request(pki: DemoPki, leaf: str) -> bytes:
    key = (str(pki.ca_cert), leaf)
    if key not in _REQUESTS:
        _REQUESTS[key] = cryptography_request(pki, leaf, hashes.SHA1(), None)
    return _REQUESTS[key]


def _case(draw: st.DrawFn, name: bytes) -> bytes:
    return draw(st.sampled_from((name, name.lower(), name.upper())))


@st.composite
def planned_requests(draw: st.DrawFn, pki: DemoPki, *, last: bool) -> Planned:
    kind = draw(st.sampled_from(("post", "post", "get", "head", "malformed", "notfound", "method", "health")))
    leaf = draw(st.sampled_from(sorted(LEAVES)))
    der = _request(pki, leaf)
    version = draw(st.sampled_from((b"1.1", b"1.1", b"1.0")))
    closes = last and draw(st.booleans())
    headers = [b"%s: ocsp.example" % _case(draw, b"Host")]
    headers += draw(st.lists(st.sampled_from((b"Accept: */*", b"User-Agent: fuzz/1.0", b"X-Empty:", b"Accept-Encoding: gzip",
                                               b"Cache-Control: no-cache", b"X-Tab:\tvalue")), max_size=3))  # fmt: skip
    if version == b"1.0" and not closes:
        headers.append(b"Connection: keep-alive")
    elif closes and version == b"1.1":
        headers.append(b"%s: close" % _case(draw, b"Connection"))
    expect = False
    body = b""
    status, cert_status, ocsp_status = 200, None, None
    if kind in ("post", "malformed"):
        body = der if kind == "post" else draw(st.sampled_from((b"\x30\x03\x02\x01\x01", b"not der", der[:-3])))
        method, target = b"POST", b"/"
        headers.append(b"%s: application/ocsp-request" % _case(draw, b"Content-Type"))
        expect = version == b"1.1" and draw(st.integers(0, 3)) == 0
        if expect:
            headers.append(b"Expect: 100-continue")
        if version == b"1.1" and draw(st.booleans()):
            headers.append(b"Transfer-Encoding: chunked")
            cut = draw(st.integers(0, len(body)))
            body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:cut], body[cut:]) if part) + b"0\r\n\r\n"
        else:
            headers.append(b"%s: %d" % (_case(draw, b"Content-Length"), len(body)))
        if kind == "post":
            cert_status = LEAVES[leaf]
        else:
            ocsp_status = OCSPResponseStatus.MALFORMED_REQUEST
    elif kind in ("get", "head"):
        method = b"GET" if kind == "get" else b"HEAD"
        encoded = base64.b64encode(der)
        target = b"/" + draw(st.sampled_from((encoded, encoded.replace(b"/", b"%2F").replace(b"+", b"%2B").replace(b"=", b"%3D"))))
        cert_status = LEAVES[leaf] if kind == "get" else None
    elif kind == "notfound":
        method, target, status = b"GET", b"/not-base64!", 404
    elif kind == "method":
        method, target, status = draw(st.sampled_from((b"PUT", b"DELETE", b"OPTIONS"))), b"/", 405
        headers.append(b"Content-Length: 0")
    else:
        method, target = b"GET", draw(st.sampled_from((b"/health", b"/ready")))
    head = b"%s %s HTTP/%s\r\n" % (method, target, version) + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    closes = closes or (version == b"1.0" and last and b"Connection: keep-alive" not in headers)
    return Planned(head + body, method.decode(), status, cert_status, ocsp_status, closes, expect)


@st.composite
def pipelines(draw: st.DrawFn, pki: DemoPki) -> list[Planned]:
    count = draw(st.integers(1, 5))
    return [draw(planned_requests(pki, last=number == count - 1)) for number in range(count)]


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    points = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=8))))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if data[a:b]]


def check_planned(plan: list[Planned], responses: list[Response]) -> None:
    """The responses are the plan's, in order."""
    finals = [r for r in responses if r.status != 100]
    assert [r.status for r in finals] == [p.status for p in plan], ([r.status for r in finals], [p.raw[:40] for p in plan])
    assert sum(r.status == 100 for r in responses) == sum(p.expect_continue for p in plan)
    for planned, response in zip(plan, finals, strict=True):
        assert response.closes == planned.closes
        if planned.cert_status is not None or planned.ocsp_status is not None:
            answer = x509_ocsp.load_der_ocsp_response(response.body)
            if planned.cert_status is not None:
                assert answer.response_status is OCSPResponseStatus.SUCCESSFUL
                assert answer.certificate_status is planned.cert_status
            else:
                assert answer.response_status is planned.ocsp_status
        if planned.method == "HEAD":
            assert response.body == b"" and int(response.headers[b"content-length"]) > 0


@FUZZ
@given(data=st.data())
def test_well_formed_pipelines_cut_anywhere_are_answered_in_order(world: FuzzWorld, data: st.DataObject) -> None:
    plan = data.draw(pipelines(world.pki))
    stream = b"".join(p.raw for p in plan)
    result = world.framing.run_stream(data.draw(cuts(stream)))  # checks the framing rules too
    assert result.methods == [p.method for p in plan]
    check_planned(plan, result.responses)
    assert result.transport.closed == plan[-1].closes


# --- hostile streams ---------------------------------------------------------------------------

HOSTILE_HEADERS = (
    b"Content-Length: -1", b"Content-Length: 1x", b"Content-Length: 99999999999999999999999", b"Content-Length: 0x10",
    b"Content-Length: 5, 6", b"Content-Length: 5\r\nContent-Length: 6", b"Content-Length:  4 ", b"Content-Length: 100001",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: chunked, identity",
    b"Transfer-Encoding: xchunked", b"Transfer-Encoding: chunked\r\nContent-Length: 3", b"Transfer-Encoding:\x0bchunked",
    b"X-Nul: a\x00b", b"X-Folded: a\r\n b", b"X-Folded: a\r\n\tb", b"Bad Header: x", b": no-name", b"X-Only-Name",
    b"X-Huge: " + b"h" * 17000, b"X-Many: " + b"m" * 900, b"Expect: 100-continue", b"Expect: 200-ok",
    b"Connection: close", b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket", b"Connection: Upgrade\r\nUpgrade: h2c",
    b"Host: a\r\nHost: b", b"X-\xff\xfe: latin", b"X-Ctl: \x01\x7f",
)  # fmt: skip
REQUEST_LINES = (
    b"GET http://ocsp.example/ HTTP/1.1", b"GET * HTTP/1.1", b"CONNECT ocsp.example:80 HTTP/1.1", b"GET / HTTP/2.0",
    b"GET / HTTP/1.1 extra", b"GET  / HTTP/1.1", b"GET /\x00 HTTP/1.1", b"GET / HTTP/0.9", b"get / HTTP/1.1", b"GET / http/1.1",
    b"GET /" + b"A" * 45000 + b" HTTP/1.1", b"PRI * HTTP/2.0", b"\x16\x03\x01\x00\xa5\x01", b"GET /%00%ff%zz HTTP/1.1",
)  # fmt: skip


@st.composite
def hostile_streams(draw: st.DrawFn, world: FuzzWorld) -> bytes:
    base = draw(st.one_of(st.sampled_from(world.seeds["framing"]), pipelines(world.pki).map(lambda plan: b"".join(p.raw for p in plan))))
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("header", "header", "line", "lf", "chunk", "byte", "insert", "truncate", "splice")))
        heads = [i + 2 for i in range(len(data)) if data[i : i + 2] == b"\r\n"] or [0]
        at = draw(st.sampled_from(heads))
        if kind == "header":
            data[at:at] = draw(st.sampled_from(HOSTILE_HEADERS)) + b"\r\n"
        elif kind == "line":
            starts = [0] + [i + 4 for i in range(len(data)) if data[i : i + 4] == b"\r\n\r\n"]
            start = draw(st.sampled_from(starts))
            end = data.find(b"\r\n", start)
            if end >= 0:
                data[start:end] = draw(st.sampled_from(REQUEST_LINES))
        elif kind == "lf":
            end = draw(st.integers(0, len(data)))
            data[:end] = bytes(data[:end]).replace(b"\r\n", b"\n")
        elif kind == "chunk":
            data[at:at] = draw(st.sampled_from(
                (b"zz\r\n", b"-1\r\n", b"fffffffffffffffff\r\n", b"5;ext=\x00\r\nabcde\r\n", b"0\r\nTrailer: x\r\n\r\n")
            ))  # fmt: skip
        elif kind == "byte" and data:
            spot = draw(st.integers(0, len(data) - 1))
            data[spot] = draw(st.sampled_from((0x00, 0x0A, 0x0D, 0x20, 0x3A, 0x7F, 0x80, 0xFF, 0x09)))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        else:
            other = draw(st.sampled_from(world.seeds["framing"]))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


@FUZZ
@given(data=st.data())
def test_hostile_streams_keep_the_framing_rules(world: FuzzWorld, data: st.DataObject) -> None:
    stream = data.draw(hostile_streams(world))
    result = world.framing.run_stream(data.draw(cuts(stream)))  # raises Finding on a broken rule
    assert len([r for r in result.responses if r.status != 100]) >= len(result.methods)


@FUZZ
@given(stream=st.binary(max_size=600), selector=st.integers(0, 255))
def test_arbitrary_bytes_keep_the_framing_rules(world: FuzzWorld, stream: bytes, selector: int) -> None:
    result = world.feed_framing(stream, selector)
    assert result.transport is not None


# --- regressions of findings -------------------------------------------------------------------


@pytest.mark.parametrize(
    "stream",
    [
        # A refusal of the edge answers once and closes, whatever was pipelined before it.
        b"GET /health HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"GET /health HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        b"GET /health HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET /health HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
    ],
)
def test_framing_regressions(world: FuzzWorld, stream: bytes) -> None:
    result = world.framing.run_stream([stream])
    assert result.transport.closed and result.responses[-1].closes


# --- real sockets: plain HTTP and TLS ----------------------------------------------------------


@dataclass
class Live:
    """A running server and the client context of its TLS listener (None: plain HTTP)."""

    server: Server
    tls: ssl.SSLContext | None


@pytest.fixture(scope="module", params=["plain", "tls"])
def live(request: pytest.FixtureRequest, demo_pki: DemoPki, access_pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp(f"framing-{request.param}")
    port, admin_port = free_port(), free_port()
    tls = request.param == "tls"
    config = config_text(demo_pki, folder / "status.sqlite3")
    config = config.replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{port}"\nworkers = 1\nclient_timeout = 2')
    config = config.replace('listen = "127.0.0.1:8081"', f'listen = "127.0.0.1:{admin_port}"')
    if tls:
        config += f'\n[tls]\ncertificate = "{access_pki.server.cert}"\nkey = "{access_pki.server.key}"\n'
    server = start_server(folder, config, port=port, admin_port=admin_port, tls=tls)
    yield Live(server, tls_context(access_pki.tls_root) if tls else None)
    assert server.stop() == 0, server.log_text()[-3000:]
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


def exchange(live: Live, chunks: list[bytes], *, half_close: bool, want: int | None = None) -> bytes:
    """Send ``chunks`` on one connection; read until ``want`` final responses came or the server closed."""
    if live.tls is not None:
        return _exchange_tls(live, chunks, half_close=half_close, want=want)
    received = b""
    with socket.create_connection(("127.0.0.1", live.server.port), timeout=10) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # EPIPE, ECONNRESET, ENOTCONN: the server closed first (after a refusal)
            pass  # read what it answered
        while True:
            if _finals(received) >= (want or 1 << 30):
                return received
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:  # closed with unread input: what arrived before counts
                return received
            if not chunk:
                return received
            received += chunk


def _finals(received: bytes) -> int:
    return len([r for r in parse_responses(received, partial_ok=True) if r.status != 100])


def _exchange_tls(live: Live, chunks: list[bytes], *, half_close: bool, want: int | None) -> bytes:
    """:func:`exchange` over TLS, through memory BIOs so that each chunk is a TLS record of its own
    and a half-close is a close_notify after which the answers are still read (an ``ssl`` socket's
    ``unwrap`` would wait for the server's close_notify and drop them)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = live.tls.wrap_bio(incoming, outgoing, server_hostname="localhost")
    received = b""
    with socket.create_connection(("127.0.0.1", live.server.port), timeout=10) as sock:

        def pump() -> bool:  # one read from the socket into the TLS layer; False at its end
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                incoming.write(chunk)
            else:
                incoming.write_eof()
            return bool(chunk)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                if not pump():
                    return b""
        try:
            sock.sendall(outgoing.read())
            for chunk in chunks:
                tls.write(chunk)
                sock.sendall(outgoing.read())
            if half_close:
                try:
                    tls.unwrap()
                except ssl.SSLWantReadError:  # close_notify sent; the server's comes after its answers
                    pass
                sock.sendall(outgoing.read())
        except OSError:  # the server closed first (after a refusal): read what it answered
            pass
        while _finals(received) < (want or 1 << 30):
            try:
                received += tls.read(65536)
            except ssl.SSLWantReadError:
                if not pump():
                    return received
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # the server's close_notify, or its TCP end
                return received
    return received


@SOCKETS
@given(data=st.data())
def test_well_formed_pipelines_over_real_sockets(live: Live, demo_pki: DemoPki, data: st.DataObject) -> None:
    plan = [p for p in data.draw(pipelines(demo_pki)) if p.method != "HEAD"]  # a HEAD answer's length depends on the request
    if not plan:
        return
    stream = b"".join(p.raw for p in plan)
    received = exchange(live, data.draw(cuts(stream)), half_close=False, want=len(plan))
    responses = parse_responses(received)
    for response in responses:
        check_response(response)
    check_planned(plan, responses)


@SOCKETS
@given(data=st.data())
def test_hostile_streams_over_real_sockets(live: Live, world: FuzzWorld, data: st.DataObject) -> None:
    stream = data.draw(hostile_streams(world))
    if b"HEAD " in stream:
        stream = stream.replace(b"HEAD ", b"GET ")  # without the handler's record, a HEAD answer's body is unknowable
    received = exchange(live, data.draw(cuts(stream)), half_close=True)
    responses = parse_responses(received, partial_ok=True)  # a half-closed client may miss the rest of an answer
    finals = [r for r in responses if r.status != 100]
    for number, response in enumerate(finals):
        check_response(response)
        if response.closes and number != len(finals) - 1:
            raise Finding(f"response {number} says connection: close but more follow")


# --- fairness: a large pipelined read is answered in turns -----------------------------------------


def test_large_pipelined_read_is_answered_in_turns_while_other_connections_are_served(world: FuzzWorld) -> None:
    import asyncio

    from certstatus.server.connection import TURN_BYTES, TURN_REQUESTS, HttpProtocol
    from tests.fuzz_framing import FakeTransport

    der = cryptography_request(world.pki, "good", hashes.SHA1(), None)
    one = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/ocsp-request\r\nContent-Length: %d\r\n\r\n%s" % (len(der), der)
    count = 10 * TURN_REQUESTS
    edge = world.framing
    loop = edge.loop
    pipelining, pipelining_out = HttpProtocol(edge.state, loop), FakeTransport()
    other, other_out = HttpProtocol(edge.state, loop), FakeTransport()
    pipelining.connection_made(pipelining_out)
    other.connection_made(other_out)

    pipelining.data_received(one * count)  # one read holding every request
    first_turn = len(parse_responses(bytes(pipelining_out.written), partial_ok=True))
    # a turn ends with the parser slice in which its TURN_REQUESTS-th request completed
    assert TURN_REQUESTS <= first_turn <= TURN_REQUESTS + TURN_BYTES // len(one) + 1 and pipelining.backlogged()
    pipelining.data_received(one)  # read while backlogged: queued behind the rest, in order
    other.data_received(one)  # another client is answered before the pipelining client's next turn
    assert len(parse_responses(bytes(other_out.written))) == 1
    assert len(parse_responses(bytes(pipelining_out.written), partial_ok=True)) == first_turn

    turns = []
    take_turn = pipelining._take_turn
    pipelining._take_turn = lambda: (turns.append(1), take_turn())  # count the later turns
    while pipelining.backlogged():
        loop.run_until_complete(asyncio.sleep(0))
    responses = parse_responses(bytes(pipelining_out.written))
    assert len(responses) == count + 1 and len(turns) >= count // first_turn - 1
    for response in responses:
        check_response(response)
        parsed = x509_ocsp.load_der_ocsp_response(response.body)
        assert parsed.response_status == OCSPResponseStatus.SUCCESSFUL and parsed.certificate_status == OCSPCertStatus.GOOD
    pipelining.connection_lost(None)
    other.connection_lost(None)


def test_a_connection_lost_with_pipelined_requests_queued_drops_them_and_its_next_turn_does_nothing(
    world: FuzzWorld,
) -> None:
    import asyncio

    from certstatus.server.connection import TURN_REQUESTS, HttpProtocol
    from tests.fuzz_framing import FakeTransport

    der = cryptography_request(world.pki, "good", hashes.SHA1(), None)
    one = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/ocsp-request\r\nContent-Length: %d\r\n\r\n%s" % (len(der), der)
    edge = world.framing
    protocol, out = HttpProtocol(edge.state, edge.loop), FakeTransport()
    protocol.connection_made(out)
    protocol.data_received(one * (10 * TURN_REQUESTS))  # answered in turns: the rest is queued
    assert protocol.backlogged()
    answered = len(parse_responses(bytes(out.written), partial_ok=True))
    protocol.connection_lost(None)  # the client went away with its next turn scheduled
    errors = []
    previous = edge.loop.get_exception_handler()
    edge.loop.set_exception_handler(lambda loop, context: errors.append(context))
    try:
        edge.loop.run_until_complete(asyncio.sleep(0))  # that turn runs
    finally:
        edge.loop.set_exception_handler(previous)
    assert errors == []
    assert not protocol.backlogged() and protocol not in edge.state.connections
    assert len(parse_responses(bytes(out.written), partial_ok=True)) == answered
