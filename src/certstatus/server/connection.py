"""The HTTP/1.1 edge as an asyncio protocol over ``httptools`` (llhttp), for uvloop.

Moves bytes between sockets and the worker's :class:`~certstatus.server.responder.Responder`
(which answers every complete request, with :class:`~certstatus.server.http.OCSPHttpHandler`'s
HTTP rules) and enforces what a public listener needs (RFC 9112):

* keep-alive and pipelining: requests are answered in order, as they are
  parsed; ``Connection: close`` (or HTTP/1.0 without keep-alive) closes after
  the response;
* limits: a declared or streamed body over ``max_request_bytes`` gets 413, header
  fields over ``max_header_bytes`` get 431, a request target over
  :func:`url_limit` gets 414, unparseable bytes 400; each then closes;
* timeouts: a request must be complete within ``client_timeout`` seconds of its
  first byte, and an idle keep-alive connection is closed after the same time.
  A slow client costs one socket, never a worker: a sweep every
  :data:`SWEEP_SECONDS` (or a quarter of the timeout) closes overdue connections;
* back-pressure: a client that pipelines without reading stops being read
  until its responses drain;
* fairness: one read holding many pipelined requests (up to the event loop's
  read size, 256 KiB: a thousand requests) is answered :data:`TURN_REQUESTS`
  at a time, and the loop serves the other connections in between, so one
  pipelining client cannot stall a worker's other clients for the length of
  its whole read;
* TLS (``[tls]``): each accepted connection is counted and admitted first, then
  its handshake runs (:meth:`asyncio.loop.start_tls` with the context of
  :mod:`certstatus.server.tls`), so a connection still in the handshake counts
  towards ``max_connections`` and one beyond twice the limit is closed before
  any handshake work; a handshake not finished within ``client_timeout`` is
  abandoned and the socket closed. After it the verified client chain is read
  once (:func:`~certstatus.server.tls.peer_chain`), a client certificate our
  own data reports revoked is disconnected
  (:meth:`OCSPHttpHandler.admit_connection`), and the chain is handed to the
  handler with every request of the connection;
* overload: a connection beyond ``max_connections`` of the worker gets 503
  ``tryLater`` to its first request and is closed, beyond twice the limit it is
  closed at once (:mod:`certstatus.server.overload`);
* blocking work: a forwarded request waits for its remote responder in one of
  the guard's ``max_in_flight`` threads, not on the event loop (the handler is
  called with ``offload``); one more gets 503 ``tryLater`` at once. The
  connection's later pipelined requests are held, in order, until its answer
  is written; other connections are served meanwhile.

Why an own protocol rather than an ASGI server: measured against the same
handler under uvicorn and granian, the ASGI hop per
request cost more than the rest of the precomputed path.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque

import httptools

from certstatus.server.http import TOO_LARGE, HttpResponse, Pending
from certstatus.server.responder import Responder
from certstatus.server.overload import TRY_LATER, OverloadGuard
from certstatus.server.tls import peer_chain

log = logging.getLogger("certstatus.server")

#: Longest interval between two sweeps for overdue connections (seconds).
SWEEP_SECONDS = 1.0
#: Bytes given to the parser at a time when one read holds more than this (about 16 requests).
TURN_BYTES = 4096
#: Requests a connection has answered before it yields the event loop to the others (fairness).
TURN_REQUESTS = 32
#: Seconds a connection without a request in progress must have been quiet (since it was accepted
#: or last answered) before a graceful shutdown closes it: a request may be on its way.
DRAIN_QUIET_SECONDS = 2.0

_REASONS = {
    100: b"Continue", 200: b"OK", 304: b"Not Modified", 400: b"Bad Request", 404: b"Not Found",
    405: b"Method Not Allowed", 408: b"Request Timeout", 413: b"Content Too Large",
    414: b"URI Too Long", 431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
    503: b"Service Unavailable",
}  # fmt: skip


def _plain(status: int, text: bytes) -> HttpResponse:
    return HttpResponse(
        status, ((b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-cache")), text
    )


BAD_REQUEST = _plain(400, b"bad request\n")
URI_TOO_LONG = _plain(414, b"request target too long\n")
HEADERS_TOO_LARGE = _plain(431, b"request header fields too large\n")


def url_limit(max_request_bytes: int) -> int:
    """Longest request target accepted (bytes): a GET of ``max_request_bytes`` base64-
    and percent-encoded (4/3 × 3), plus room for the CA's path."""
    return max_request_bytes * 4 + 1024


class ServerState:
    """What the connections of one worker share: the responder (:mod:`certstatus.server.responder`:
    every complete request goes to it) with its handler, limits, open connections.

    Sizes in bytes, ``client_timeout`` in seconds; ``guard`` holds the
    connection limit and the threads of blocking work (None: no limit, blocking
    work in the loop's default executor); ``tls`` is the listener's server
    context (None: plain HTTP).
    """

    def __init__(
        self,
        responder: Responder,
        *,
        client_timeout: float = 10.0,
        max_header_bytes: int = 16 * 1024,
        guard: OverloadGuard | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.responder = responder
        self.handler = handler = responder.handler
        self.tls = tls
        self.guard = guard
        self.client_timeout = client_timeout
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = handler.max_request_bytes
        self.max_url_bytes = url_limit(handler.max_request_bytes)
        self.connections: set[HttpProtocol] = set()
        #: The TLS handshakes in progress (each a future that is done when its handshake ends).
        self.handshakes: set[asyncio.Future] = set()
        self.draining = False
        self._sweeper: asyncio.TimerHandle | None = None

    def start_sweeping(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close overdue connections periodically until :meth:`stop_sweeping`."""
        interval = min(SWEEP_SECONDS, max(0.05, self.client_timeout / 4))

        def sweep() -> None:
            now = loop.time()
            # A connection waiting for a forwarded answer is bounded by the forward timeout instead.
            for connection in [c for c in self.connections if c.deadline < now and c.held is None]:
                connection.time_out()
            self.flush_metrics()
            self._sweeper = loop.call_later(interval, sweep)

        self._sweeper = loop.call_later(interval, sweep)

    def stop_sweeping(self) -> None:
        """Stop the sweeps and add the edge's last counts to the metrics (shutdown)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self.flush_metrics()

    def flush_metrics(self) -> None:
        """Add what the responder answered without the pipeline to the metrics (each sweep, and at shutdown)."""
        self.responder.flush_metrics()


def encode_response(response: HttpResponse, *, close: bool, body: bool = True) -> bytes:
    """Serialise an HTTP/1.1 response: status line, headers, Content-Length, body.

    The handler has added Date (:meth:`OCSPHttpHandler.finish`).
    """
    parts = [b"HTTP/1.1 %d %s\r\n" % (response.status, _REASONS.get(response.status, b"Unknown"))]
    length = response.status != 304  # HEAD answers carry the GET's length from the handler
    for name, value in response.headers:
        parts.append(b"%s: %s\r\n" % (name, value))
        if name == b"content-length":
            length = False
    if length:
        parts.append(b"content-length: %d\r\n" % len(response.body))
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if body:
        parts.append(response.body)
    return b"".join(parts)


class HttpProtocol(asyncio.Protocol):
    """One client connection: httptools callbacks → Responder → transport.

    The responder is synchronous, so a request is answered inside the callback
    that completes it; pipelined requests are therefore answered in order.

    A new connection costs this object (three attributes of its own), its
    httptools parser and one entry in the worker's connection set: no timer
    (deadlines are plain floats the sweep reads), no log line, no metric
    label lookup. Where the rest of a connection's CPU goes (uvloop, the
    kernel): ``bench/connection_cost.py``.
    """

    # A new connection costs one object with three attributes of its own and its parser: the
    # other fields start as these class-level values (immutable) and become the object's own
    # when first set. The per-request fields are set by _reset when a request begins.
    transport: asyncio.Transport | None = None
    _client: str | None | bool = False  # False: not read yet (see client)
    deadline = 0.0
    in_request = False
    closing = False
    #: The client certificate chain the TLS handshake verified (DER, leaf first); () without one.
    tls_client_chain: tuple[bytes, ...] = ()
    answered = 0  # requests answered on this connection (fairness turns)
    # Bytes read but not yet parsed: the rest of a large read, waiting for this connection's
    # next turn (reading is paused meanwhile, so later reads queue behind it in order); a list once used.
    _backlog: list[bytes | memoryview] | tuple = ()
    _write_paused = False
    #: Requests completed while a forwarded answer is awaited (None: none awaited); answered in order after it.
    held: deque | None = None
    url = b""
    header_bytes = 0
    body_bytes = 0
    refused: HttpResponse | None = None

    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.refused: HttpResponse | None = None

    @property
    def client(self) -> str | None:
        """The peer's address, read from the socket the first time it is needed (an edge
        hit never needs it: a short connection saves the call)."""
        if self._client is False:
            peer = self.transport.get_extra_info("peername") if self.transport is not None else None
            self._client = peer[0] if peer else None
        return self._client  # type: ignore[return-value]

    @client.setter
    def client(self, address: str | None) -> None:
        self._client = address

    # asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A TCP connection was accepted: count it, apply the connection limit, start TLS if configured."""
        state = self.state
        self.transport = transport  # type: ignore[assignment]
        self.deadline = self.loop.time() + state.client_timeout
        connections = state.connections
        connections.add(self)
        guard = state.guard
        if guard is not None and len(connections) > guard.max_connections:  # admit() decides and counts
            self._over_limit(guard.admit(len(connections)))
        if state.tls is not None and not self.closing:
            self._start_tls(transport)

    def _start_tls(self, raw: asyncio.BaseTransport) -> None:
        """Put TLS on the TCP transport ``raw`` (``loop.start_tls``); :meth:`_handshake_done` follows.

        The handshake must end within ``client_timeout`` seconds, and so must the closing
        exchange (close_notify) of a TLS connection. ``start_tls`` is a coroutine; its first
        step, which puts the TLS protocol on the socket, runs here, inside ``connection_made``:
        uvloop starts reading a new connection as soon as ``connection_made`` returns (whatever
        it paused), so in a task started from here the ClientHello could reach the HTTP parser
        first. The rest of the coroutine (its wait for the handshake) resumes when the
        handshake ends, as a task would resume it, without a task per connection.
        """
        state = self.state
        steps = self.loop.start_tls(raw, self, state.tls, server_side=True,  # type: ignore[arg-type]
                                    ssl_handshake_timeout=state.client_timeout,
                                    ssl_shutdown_timeout=state.client_timeout)
        try:
            waiter = steps.send(None)  # runs up to its wait for the handshake
        except BaseException as exc:  # noqa: BLE001 - refused before the handshake: the connection ends here
            self._handshake_failed(raw, exc)
            return
        state.handshakes.add(waiter)
        waiter.add_done_callback(lambda _: self._handshake_done(raw, steps, waiter))

    def _handshake_done(self, raw: asyncio.BaseTransport, steps, waiter: asyncio.Future) -> None:
        """The handshake ended: take the TLS transport, or close. Then check the client.

        A failed or abandoned handshake closes the socket (logged at debug: it is the
        client's doing). A client certificate our own data reports revoked is disconnected
        (:meth:`OCSPHttpHandler.admit_connection` logs it). Afterwards the connection has
        ``client_timeout`` seconds for its first request, as a new plain one has.
        """
        self.state.handshakes.discard(waiter)
        try:
            steps.send(None)
        except StopIteration as done:
            transport = done.value
        except BaseException as exc:  # noqa: BLE001 - the handshake failed or timed out
            self._handshake_failed(raw, exc)
            return
        else:  # pragma: no cover - start_tls waits once
            steps.close()
            self._handshake_failed(raw, RuntimeError("start_tls did not return after the handshake"))
            return
        if self.closing or transport.is_closing():  # timed out, or the client left during the handshake
            transport.close()
            self.connection_lost(None)
            return
        self.transport = transport
        try:
            chain = peer_chain(transport.get_extra_info("ssl_object"))
        except Exception:  # noqa: BLE001 - a client that cannot be checked is not served
            log.exception("internal error reading the TLS client certificate of %s", self.client)
            chain = None
        if chain is None or (chain and not self.state.handler.admit_connection(self.client, chain)):
            self.closing = True
            transport.close()
            return
        self.tls_client_chain = chain
        self.deadline = self.loop.time() + self.state.client_timeout

    def _handshake_failed(self, raw: asyncio.BaseTransport, exc: BaseException) -> None:
        if isinstance(exc, (OSError, asyncio.TimeoutError, asyncio.CancelledError)):  # ssl.SSLError, ConnectionError
            log.debug("TLS handshake with %s failed: %s", self.client, exc)
        else:
            log.error("internal error in the TLS handshake with %s", self.client, exc_info=exc)
        raw.close()
        self.connection_lost(None)

    def connection_lost(self, exc: Exception | None) -> None:
        # Also called for a TLS connection whose handshake failed (maybe twice: idempotent).
        self.state.connections.discard(self)
        self.closing = True
        self._backlog = ()
        # The parser holds this protocol (its callbacks): break the cycle so the connection is
        # freed by reference counting now, not by a garbage collection later.
        self.parser = None

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self._backlog:  # keep the order: this comes after what is still queued
            self._backlog.append(data)
            return
        if len(data) <= TURN_BYTES:  # the usual read: one or a few requests
            self._feed(data)
            return
        self._backlog = [memoryview(data)]  # sliced per turn without copying the rest
        self.transport.pause_reading()
        self._take_turn()

    def _take_turn(self) -> None:
        """Parse queued bytes until :data:`TURN_REQUESTS` more requests are answered, then
        let the loop serve other connections and continue in a later iteration."""
        backlog = self._backlog
        limit = self.answered + TURN_REQUESTS
        while backlog and not self.closing and not self._write_paused and self.held is None:
            data = backlog[0]
            if len(data) > TURN_BYTES:
                backlog[0] = data[TURN_BYTES:]
                data = data[:TURN_BYTES]
            else:
                del backlog[0]
            self._feed(data)
            if self.answered >= limit and backlog:
                self.loop.call_soon(self._take_turn)
                return
        if self.closing:
            self._backlog = ()
        elif not backlog and not self._write_paused and self.held is None:
            self.transport.resume_reading()

    def backlogged(self) -> bool:
        """Whether bytes already read wait for this connection's next turn."""
        return bool(self._backlog) and not self.closing

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refusal(BAD_REQUEST)
        except httptools.HttpParserError:
            if self.refused is not None:
                self._refusal(self.refused)
            elif not self.closing:
                log.debug("unparseable HTTP from %s", self.client)
                self._refusal(BAD_REQUEST)

    def pause_writing(self) -> None:
        # The client does not read its responses: stop reading (and answering) its requests.
        self._write_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.closing or self.held is not None:  # a forwarded answer resumes reading when written
            return
        if self._backlog:
            self.loop.call_soon(self._take_turn)  # answers the queued requests, then resumes reading
        else:
            self.transport.resume_reading()

    # httptools callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.in_request = True
        self.deadline = self.loop.time() + self.state.client_timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.state.max_url_bytes:
            self._refuse(URI_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.state.max_header_bytes:
            self._refuse(HEADERS_TOO_LARGE)
            return
        name = name.lower()
        previous = self.headers.get(name)
        self.headers[name] = value if previous is None else previous + b", " + value

    def on_headers_complete(self) -> None:
        length = self.headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.state.max_body_bytes:
            self._refuse(TOO_LARGE)
        elif self.headers.get(b"expect", b"").lower() == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.state.max_body_bytes:
            self._refuse(TOO_LARGE)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.closing:
            return
        self.in_request = False
        self.answered += 1
        state = self.state
        close = state.draining or not self.parser.should_keep_alive()
        method = self.parser.get_method()
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        if self.held is not None:  # a forwarded answer comes first: keep the order
            self.held.append((method, self.url, self.headers, body, close))
            return
        self._answer(method, self.url, self.headers, body, close)

    def _answer(self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes, close: bool) -> None:
        """Answer one complete request through the responder (a forwarded one waits in a thread)."""
        state = self.state
        response = state.responder.respond(method, url, headers, body, close, self)
        if isinstance(response, bytes):  # rendered whole, connection: close included when asked
            self.transport.write(response)
            if close:
                self.closing = True
                self.transport.close()
            else:
                self.deadline = self.loop.time() + state.client_timeout
            return
        head = method == b"HEAD"
        if isinstance(response, Pending):  # a forwarded request: wait in a thread, hold what follows
            self.held = deque()
            self.transport.pause_reading()
            self._fetch(response, close, head)
            return
        self._respond(response, close=close, body=not head)
        self.deadline = self.loop.time() + state.client_timeout

    def _fetch(self, pending: Pending, close: bool, head: bool) -> None:
        """Run ``pending``'s blocking part in one of the guard's threads; tryLater when all are taken."""
        guard = self.state.guard
        if guard is None:
            future = self.loop.run_in_executor(None, pending.fetch)
        else:
            future = guard.run_blocking(self.loop, pending.fetch)
            if future is None:
                self._answered_held(self.state.handler.finish(TRY_LATER), close, head)
                return
        future.add_done_callback(lambda _: self._fetched(pending, close, head))

    def _fetched(self, pending: Pending, close: bool, head: bool) -> None:
        if self.closing:  # the client went away meanwhile
            return
        response = pending.resume()
        if isinstance(response, Pending):
            self._fetch(response, close, head)
        else:
            self._answered_held(response, close, head)

    def _answered_held(self, response: HttpResponse, close: bool, head: bool) -> None:
        """Write the awaited answer, then the requests held behind it, in order; read again."""
        self._respond(response, close=close, body=not head)
        self.deadline = self.loop.time() + self.state.client_timeout
        held, self.held = self.held, None
        while held and not self.closing:
            self._answer(*held.popleft())
            if self.held is not None:  # another forwarded one: the rest waits behind it
                self.held.extend(held)
                return
        if self.closing:
            return
        if self._backlog:
            self.loop.call_soon(self._take_turn)
        elif not self._write_paused:
            self.transport.resume_reading()

    # helpers ---------------------------------------------------------------

    def _refuse(self, response: HttpResponse) -> None:
        """Answer ``response`` and close: raising stops httptools in mid-message."""
        self.refused = response
        raise httptools.HttpParserError("limit exceeded")

    def _refusal(self, response: HttpResponse) -> None:
        self._respond(self.state.handler.finish(response), close=True)

    def _respond(self, response: HttpResponse, *, close: bool, body: bool = True) -> None:
        if self.closing:
            return
        self.transport.write(encode_response(response, close=close, body=body))
        if close:
            self.closing = True
            self.transport.close()

    def _over_limit(self, verdict: str | None) -> None:
        """Apply :meth:`OverloadGuard.admit`'s verdict on this new connection.

        Refused connections stay in ``state.connections`` (they hold a socket)
        until closed; the sweep drops one that never completes a request.
        """
        if verdict == "connections":
            self.parser = httptools.HttpRequestParser(_TryLater(self))
        elif verdict is not None:
            self.closing = True
            self.transport.close()

    def time_out(self) -> None:
        """The deadline passed: drop the connection (no response: the request never ended)."""
        log.debug("closing connection from %s: no complete request within %.1f s", self.client,
                  self.state.client_timeout)
        self.closing = True
        self.transport.close()

    def close_if_idle(self, now: float) -> bool:
        """Close when no request is in progress and the connection has been quiet for
        :data:`DRAIN_QUIET_SECONDS` (graceful shutdown, at loop time ``now``, seconds); True if closed.

        A connection accepted or answered less than that ago is not idle: a client that
        connected an instant before the shutdown, or a busy keep-alive client, has its next
        request on its way. Closing then would drop that request unanswered, or reset the
        connection with the request unread (a new connection's client does not retry, and a
        POST is not retried on a reused one, RFC 9112 §9.3.1), so it is left to send it; the
        answer carries ``Connection: close``.
        """
        if self.in_request or self.held is not None or self.closing:
            return self.closing
        if now < self.deadline - self.state.client_timeout + DRAIN_QUIET_SECONDS:  # accepted or last answered then
            return False
        self.closing = True
        self.transport.close()
        return True


class _TryLater:
    """httptools callbacks of a connection over the limit: nothing is kept of the request;
    once it is complete it gets 503 ``tryLater`` and the connection is closed."""

    __slots__ = ("protocol",)

    def __init__(self, protocol: HttpProtocol) -> None:
        self.protocol = protocol

    def on_message_complete(self) -> None:
        protocol = self.protocol
        protocol._respond(protocol.state.handler.finish(TRY_LATER), close=True)
