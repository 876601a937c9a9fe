"""HTTP/1.1 framing as a fuzz target: byte streams through the HTTP edge, and what may come back.

:func:`run_stream` feeds raw client bytes, split into chunks, into one
:class:`certstatus.server.connection.HttpProtocol` over a :class:`FakeTransport`
(a real but unstarted event loop supplies the clock), then reports the
connection closed by the client. :func:`check_stream` parses every byte the
server wrote as a sequence of HTTP/1.1 responses and raises :class:`Finding`
when the edge broke a rule:

* an exception escaped ``data_received`` / ``connection_lost``;
* bytes that are not a well-formed response (status line ``HTTP/1.1 NNN
  reason``, ``name: value`` header lines, a ``content-length`` the body
  matches), or bytes written after the transport was closed;
* an HTTP 5xx other than 503, a 503 whose body is not an OCSP ``tryLater``,
  an OCSP answer ``internalError``;
* responses out of order: the final responses are exactly the handler's
  answers, in the order it gave them (HEAD answers without body), plus at most
  one refusal of the edge (400/413/414/431, or 503 from an overload limit) at
  the end;
* a refusal, or any response saying ``connection: close``, that is not the
  last one or after which the connection stays open;
* ``100 Continue`` without ``Expect: 100-continue`` in the input.

Shared by the hypothesis properties (tests/unit/test_fuzz_framing.py) and
the atheris target ``framing`` of bench/fuzz.py (through
:meth:`tests.fuzz_world.FuzzWorld.feed_framing`). :func:`parse_responses`
also reads what real sockets return (plain HTTP and TLS).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.server.connection import HttpProtocol, ServerState

_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [\x20-\x7e]*")
_HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([\x20-\x7e\t]*)")
#: Statuses the edge itself answers with before closing (framing refusals; 503 for overload limits).
REFUSALS = (400, 408, 413, 414, 431, 503)


class Finding(AssertionError):
    """The HTTP edge broke a framing rule (see the module docstring)."""


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get(b"connection", b"").lower() == b"close"


class FakeTransport(asyncio.Transport):
    """Collects what the protocol writes; records a close and any write after it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.late_write = b""

    def write(self, data: bytes) -> None:
        if self.closed:
            self.late_write += bytes(data)
        else:
            self.written += data

    def writelines(self, chunks) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class RecordingResponder:
    """The application's Responder, recording the method of every request it answers."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.methods: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def respond(self, method, url, headers, body, close, connection):
        self.methods.append(method.decode("latin-1"))
        return self._inner.respond(method, url, headers, body, close, connection)


@dataclass
class StreamResult:
    """What one connection saw: the responses, the methods the handler answered, the transport."""

    sent: bytes
    responses: list[Response] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    transport: FakeTransport | None = None


#: Most chunks one input is cut into. A read returns what the kernel has buffered, so many tiny
#: reads need a client trickling bytes one per TCP segment: that is the slow-client case
#: (``client_timeout``), paid per packet by the sender, not a parsing cost of the input
#: (feeding 17 kB one byte per call costs ~50 ms, ~3 µs per call, uninstrumented).
MAX_CHUNKS = 256


def split_points(data: bytes, selector: int) -> list[bytes]:
    """``data`` cut into chunks whose sizes follow from ``selector`` (0: whole; else 1..~200 bytes,
    varying, at least ``len(data) / MAX_CHUNKS``)."""
    if selector == 0 or not data:
        return [data]
    chunks, at, step = [], 0, selector
    smallest = max(1, -(-len(data) // MAX_CHUNKS))
    while at < len(data):
        step = (step * 1103515245 + 12345) & 0x7FFFFFFF
        size = max(smallest, 1 + step % (1 + (selector % 8) * 29))
        chunks.append(data[at : at + size])
        at += size
    return chunks


class FramingEdge:
    """One HttpProtocol per stream over the application's responder; limits as configured."""

    def __init__(self, responder, *, max_header_bytes: int = 16 * 1024) -> None:
        self.loop = asyncio.new_event_loop()  # run only for the turns of a large read
        self.handler = RecordingResponder(responder)
        self.state = ServerState(self.handler, client_timeout=10.0, max_header_bytes=max_header_bytes)

    def close(self) -> None:
        self.loop.close()

    def run_stream(self, chunks: list[bytes]) -> StreamResult:
        """Feed ``chunks`` on one fresh connection, then lose it; check and return what came back."""
        self.handler.methods = []
        transport = FakeTransport()
        protocol = HttpProtocol(self.state, self.loop)
        sent = b"".join(chunks)
        try:
            protocol.connection_made(transport)
            for chunk in chunks:
                if transport.closed:
                    break  # a real transport stops delivering data once closed
                protocol.data_received(chunk)
                while protocol.backlogged():  # a large read is answered in turns (fairness): run them
                    self.loop.run_until_complete(asyncio.sleep(0))
            protocol.connection_lost(None)
        except Exception as exc:  # noqa: BLE001 - anything escaping the protocol is a finding
            raise Finding(f"{type(exc).__name__} escaped HttpProtocol: {exc}") from exc
        if transport.late_write:
            raise Finding(f"wrote after closing the connection: {transport.late_write[:120]!r}")
        result = StreamResult(sent, methods=list(self.handler.methods), transport=transport)
        result.responses = check_stream(sent, bytes(transport.written), result.methods, closed=transport.closed)
        return result


def parse_responses(data: bytes, head: list[bool] | None = None, *, partial_ok: bool = False) -> list[Response]:
    """Every HTTP/1.1 response in ``data``; ``head[i]``: the i-th final response answers a HEAD (no body).

    Raises :class:`Finding` on anything else, including trailing bytes (unless
    ``partial_ok``: a read that ended inside a response, from a real socket).
    """
    head = head or []
    responses: list[Response] = []
    at = 0
    finals = 0
    while at < len(data):
        end = data.find(b"\r\n\r\n", at)
        if end < 0:
            if partial_ok:
                break
            raise Finding(f"response head not terminated: {data[at:at + 200]!r}")
        lines = data[at:end].split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise Finding(f"bad status line {lines[0][:120]!r}")
        status = int(match.group(1))
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            header = _HEADER_LINE.fullmatch(line)
            if header is None:
                raise Finding(f"bad header line {line[:120]!r} in a {status} response")
            name = header.group(1).lower()
            if name in headers:
                raise Finding(f"header {name!r} twice in a {status} response")
            headers[name] = header.group(2).strip()
        at = end + 4
        if status == 100:
            if headers:
                raise Finding(f"100 Continue with headers {headers}")
            responses.append(Response(status, headers, b""))
            continue
        length = headers.get(b"content-length")
        if status == 304:
            length = length or b"0"
        if length is None or not length.isdigit():
            raise Finding(f"{status} response without a valid content-length: {headers}")
        size = 0 if (finals < len(head) and head[finals]) or status == 304 else int(length)
        if at + size > len(data):
            if partial_ok:
                break
            raise Finding(f"{status} response body cut: content-length {int(length)}, {len(data) - at} bytes follow")
        responses.append(Response(status, headers, data[at : at + size]))
        at += size
        finals += 1
    return responses


def check_response(response: Response, *, head: bool = False) -> None:
    """One final response: no 5xx but an OCSP tryLater 503, no internalError, OCSP bodies readable."""
    status = response.status
    content_type = response.headers.get(b"content-type", b"")
    if status >= 500 and status != 503:
        raise Finding(f"HTTP {status}: {response.body[:200]!r}")
    if head or status == 304:
        return
    if content_type == b"application/ocsp-response":
        try:
            answer = x509_ocsp.load_der_ocsp_response(response.body)
        except ValueError as exc:
            raise Finding(f"HTTP {status} with an unreadable OCSP body: {exc}") from exc
        if answer.response_status is OCSPResponseStatus.INTERNAL_ERROR:
            raise Finding(f"HTTP {status} answered internalError")
        if status == 503 and answer.response_status is not OCSPResponseStatus.TRY_LATER:
            raise Finding(f"503 with OCSP status {answer.response_status}, not tryLater")
    elif status == 503:
        raise Finding(f"503 without an OCSP tryLater body: {content_type!r} {response.body[:100]!r}")


def check_stream(sent: bytes, written: bytes, methods: list[str], *, closed: bool) -> list[Response]:
    """Check what the edge wrote for ``sent`` (rules in the module docstring); return the responses."""
    responses = parse_responses(written, [method == "HEAD" for method in methods])
    finals = [r for r in responses if r.status != 100]
    if len(responses) > len(finals) and b"100-continue" not in sent.lower():
        raise Finding("100 Continue without Expect: 100-continue")
    if not len(methods) <= len(finals) <= len(methods) + 1:
        raise Finding(f"{len(finals)} responses for {len(methods)} requests answered by the handler: {[r.status for r in finals]}")
    for number, response in enumerate(finals):
        check_response(response, head=number < len(methods) and methods[number] == "HEAD")
        last = number == len(finals) - 1
        if response.closes and not last:
            raise Finding(f"response {number} says connection: close but {len(finals) - number - 1} follow")
        if response.closes and not closed:
            raise Finding(f"response {number} says connection: close, the connection stays open")
    if len(finals) == len(methods) + 1:
        refusal = finals[-1]
        if refusal.status not in REFUSALS or not refusal.closes:
            raise Finding(f"edge answer {refusal.status} {refusal.headers} is not a refusal that closes")
    if any(r.status in (400, 431, 414) for r in finals[len(methods):]) and not closed:
        raise Finding("a framing refusal left the connection open")
    return responses
