"""The HTTP edge, sans-IO: (method, raw path, headers, body) → status, headers, body.

Implements RFC 6960 Appendix A and RFC 5019 §5-§6: POST with an
``application/ocsp-request`` body, GET with the base64 DER in the path, and
the caching headers of RFC 5019 §6.2. The HTTP edge (server/connection.py)
only moves bytes; everything HTTP-visible is decided here, once (the edge
cache and the responder's fast path write byte for byte what this handler would), so
tests need no sockets.

Routing: ``GET /health`` (liveness) and ``GET /ready`` (readiness, see
:mod:`certstatus.health`) come first, for load balancers. Then
``server.common_path`` (default ``/``) serves every CA; a CA with its own
``path`` is served there for itself alone. A GET whose remainder is not
base64 is an unknown path (404); base64 that is not an OCSP request is
malformedRequest: counted (``certstatus_requests_total{response_status=
"malformedRequest"}``, by the observers) and sampled at debug level, one line
per :data:`MALFORMED_LOG_INTERVAL` saying how many came since — bad client
input never floods the log.

Who asks: adapters pass the TCP peer address and, over TLS, the client
certificate chain the handshake verified; :meth:`OCSPHttpHandler.admit_connection`
lets them refuse a connection right after the handshake (a client
certificate our own data reports revoked). Behind a trusted TLS-terminating
proxy the client address and certificate come from its headers
(:mod:`certstatus.server.proxy`).

Blocking work: with ``offload=True`` :meth:`OCSPHttpHandler.handle` may
return a :class:`Pending` instead of blocking (a forwarded request waits for
a remote responder); the adapter runs ``pending.fetch()`` in a thread and
then answers ``pending.resume()``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime
from functools import lru_cache

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.clock import Clock
from certstatus.errors import StoreUnavailable
from certstatus.health import readiness_report
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError, Route, WouldBlock
from certstatus.protocol import response as ocsp_response
from certstatus.protocol.fast_request import parse_request_fast
from certstatus.protocol.request import MalformedRequest, OCSPQuery, decode_get_path
from certstatus.server.proxy import TrustedProxies
from certstatus.sources.health import LogThrottle

log = logging.getLogger("certstatus.http")

OCSP_RESPONSE_TYPE = b"application/ocsp-response"
ALLOW = b"GET, HEAD, POST"
#: Seconds between two (debug) log lines about malformed requests; the others are counted into the next line.
MALFORMED_LOG_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP response: status code, header list (lower-case names), body bytes."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""


def _plain(status: int, text: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> HttpResponse:
    return HttpResponse(
        status,
        ((b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-cache"), *extra),
        text,
    )


NOT_FOUND = _plain(404, b"not found\n")
ALIVE = _plain(200, b"ok\n")
READY = _plain(200, b"ready\n")
METHOD_NOT_ALLOWED = _plain(405, b"method not allowed\n", ((b"allow", ALLOW),))
TOO_LARGE = _plain(413, b"request too large\n")

_ERROR_HTTP_STATUS = {OCSPResponseStatus.TRY_LATER: 503}
_NONCE_HEADERS = ((b"content-type", OCSP_RESPONSE_TYPE), (b"cache-control", b"no-store"))
_SECOND = dt.timedelta(seconds=1)


def ocsp_error(status: OCSPResponseStatus) -> HttpResponse:
    """The HTTP response carrying an unsuccessful OCSP response (never cached)."""
    return HttpResponse(
        _ERROR_HTTP_STATUS.get(status, 200),
        ((b"content-type", OCSP_RESPONSE_TYPE), (b"cache-control", b"no-cache")),
        ocsp_response.UNSUCCESSFUL[status],
    )


def readiness_response(problems: list[str]) -> HttpResponse:
    """``/ready``: 200 when there is no problem, else 503 listing them (one per line)."""
    status, text = readiness_report(problems)
    return _plain(status, text.encode())


@lru_cache(maxsize=64)
def _http_date(value: dt.datetime) -> bytes:
    # Cached: thisUpdate/nextUpdate repeat for every response signed in the same second.
    return format_datetime(value.astimezone(dt.timezone.utc), usegmt=True).encode()


class OCSPHttpHandler:
    """Turn HTTP requests into pipeline exchanges and answers into HTTP responses.

    ``routes`` maps a path prefix (leading and trailing '/') to a :class:`Route`;
    ``max_request_bytes`` bounds POST bodies and decoded GET requests.
    ``readiness()`` returns what keeps the instance from being ready (``/ready``);
    ``proxies`` names the trusted TLS-terminating proxies; ``observers`` are
    told of malformed requests (``.malformed(received_at, client, started_ns,
    reason)``), which never reach the pipeline; ``connection_gate(chain)``
    returns why a TLS client must be disconnected, or None.
    """

    def __init__(
        self,
        pipeline: Handler,
        routes: Mapping[str, Route],
        clock: Clock,
        *,
        max_request_bytes: int = 10_000,
        readiness: Callable[[], list[str]] | None = None,
        proxies: TrustedProxies | None = None,
        observers: Sequence = (),
        connection_gate: Callable[[tuple[bytes, ...]], str | None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        # Longest prefix first, so "/ca1/" wins over "/".
        self.routes = sorted(routes.items(), key=lambda item: len(item[0]), reverse=True)
        self.clock = clock
        self.max_request_bytes = max_request_bytes
        self.readiness = readiness
        self.proxies = proxies
        self.observers = tuple(observers)
        self.connection_gate = connection_gate
        self._malformed_log = LogThrottle(MALFORMED_LOG_INTERVAL)
        self._malformed_unlogged = 0  # malformed requests since the last line about them
        # The Date header of the current second (finish): formatted once per second.
        self._date_from = self._date_until = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
        self._date = (b"date", b"")

    def admit_connection(self, client_address: str | None, tls_client_chain: tuple[bytes, ...]) -> bool:
        """False when a TLS client must be disconnected now (its certificate is revoked here)."""
        if self.connection_gate is None or not tls_client_chain:
            return True
        try:
            reason = self.connection_gate(tls_client_chain)
        except Exception:
            log.exception("internal error checking the TLS client of %s", client_address)
            return False
        if reason is not None:
            log.info("disconnected TLS client %s: %s", client_address, reason, extra={"client": client_address, "reason": reason})
            return False
        return True

    def route_for(self, path: str) -> tuple[Route, str] | None:
        """Return the route of ``path`` and the rest of the path after its prefix."""
        for prefix, route in self.routes:
            if path.startswith(prefix):
                return route, path[len(prefix):]
            if path == prefix.rstrip("/"):
                return route, ""
        return None

    def handle(
        self,
        method: str,
        raw_path: bytes,
        headers: Mapping[bytes, bytes],
        body: bytes,
        client_address: str | None = None,
        *,
        tls_client_chain: tuple[bytes, ...] = (),
        offload: bool = False,
    ) -> HttpResponse | Pending:
        """Answer one HTTP request. Never raises: a bug becomes internalError.

        ``tls_client_chain`` is the client certificate chain (DER, leaf first)
        the TLS handshake verified. With ``offload`` the result may be a
        :class:`Pending` (see the module docstring).
        """
        response = self._handle(method, raw_path, headers, body, client_address, tls_client_chain, offload)
        return response if isinstance(response, Pending) else self.finish(response)

    def finish(self, response: HttpResponse) -> HttpResponse:
        """Add the Date header (RFC 9110 §6.6.1) to a response about to be sent.

        Date is read from the handler's clock after the answer was made, so it is
        never earlier than Last-Modified (thisUpdate), as a server's once-a-second
        cached Date can be (RFC 9110 §8.8.2.1).
        """
        now = self.clock.now()
        if not self._date_from <= now < self._date_until:  # a new second (or a clock moved back)
            start = now.replace(microsecond=0)
            self._date_from, self._date_until = start, start + _SECOND
            self._date = (b"date", _http_date(start))
        return HttpResponse(response.status, (*response.headers, self._date), response.body)

    def _handle(
        self,
        method: str,
        raw_path: bytes,
        headers: Mapping[bytes, bytes],
        body: bytes,
        client_address: str | None,
        tls_client_chain: tuple[bytes, ...],
        offload: bool,
    ) -> HttpResponse | Pending:
        started_ns = time.perf_counter_ns()
        found = self.ocsp_request(method, raw_path, body)
        if isinstance(found, HttpResponse):
            return found
        route, der = found
        try:
            query = parse_request_fast(der)
        except MalformedRequest as exc:
            return self.refuse_malformed(method, headers, client_address, exc, started_ns)
        return self.run_query(method, route, der, query, headers, client_address, tls_client_chain, offload, started_ns)

    def refuse_malformed(
        self, method: str, headers: Mapping[bytes, bytes], client_address: str | None, exc: MalformedRequest,
        started_ns: int,
    ) -> HttpResponse:
        """malformedRequest for DER that is not an OCSP request: logged (sampled), told to the observers."""
        if self.proxies is not None:
            client_address = self.proxies.resolve(client_address, headers)[0]
        self._log_malformed(client_address, exc)
        for observer in self.observers:
            observer.malformed(self.clock.now(), client_address, started_ns, str(exc))
        return _head(method == "HEAD", ocsp_error(OCSPResponseStatus.MALFORMED_REQUEST))

    def run_query(
        self,
        method: str,
        route: Route,
        der: bytes,
        query: OCSPQuery,
        headers: Mapping[bytes, bytes],
        client_address: str | None,
        tls_client_chain: tuple[bytes, ...],
        offload: bool,
        started_ns: int,
        *,
        ca: object | None = None,
    ) -> HttpResponse | Pending:
        """Answer a parsed request through the pipeline (the plan of its CA): the HTTP response
        without Date (:meth:`finish` adds it), or a :class:`Pending`. ``ca``: the served CA of the
        request's one CertID when the caller resolved it (allowed on ``route``), so it is not looked
        up again."""
        forwarded_cert = None
        if self.proxies is not None:
            client_address, forwarded_cert = self.proxies.resolve(client_address, headers)
        exchange = Exchange(
            query, route, self.clock.now(), client_address,
            request_der=der, tls_client_chain=tls_client_chain, forwarded_client_cert=forwarded_cert,
            started_ns=started_ns, offload=offload, method=method,
        )  # fmt: skip
        if ca is not None:
            exchange.ca = ca
            exchange.cas = [ca]
        return self._run(exchange, headers, method == "HEAD")

    def _log_malformed(self, client_address: str | None, exc: MalformedRequest) -> None:
        """A debug line for the first malformed request per :data:`MALFORMED_LOG_INTERVAL`, counting the others."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        if not self._malformed_log.allow("malformed"):
            self._malformed_unlogged += 1
            return
        log.debug("malformed request from %s: %s (%d more since the last such line)", client_address, exc,
                  self._malformed_unlogged, extra={"client": client_address, "unlogged": self._malformed_unlogged})  # fmt: skip
        self._malformed_unlogged = 0

    def ocsp_request(self, method: str, raw_path: bytes, body: bytes) -> tuple[Route, bytes] | HttpResponse:
        """The route and OCSPRequest DER of an HTTP request (RFC 6960 Appendix A), or the
        response that answers it instead: a health probe, 404 (no route, a GET path that is
        not base64), 405 (another method), 413 (over ``max_request_bytes``)."""
        path = raw_path.split(b"?", 1)[0].decode("latin-1")
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if method in ("GET", "HEAD") and path in ("/health", "/ready"):
            return _head(method == "HEAD", self._probe(path))
        found = self.route_for(path)
        if method == "POST":
            if found is None or found[1].strip("/"):
                return NOT_FOUND
            if len(body) > self.max_request_bytes:
                return TOO_LARGE
            return found[0], body
        if method in ("GET", "HEAD"):
            if found is None:
                return NOT_FOUND
            try:
                der = decode_get_path(found[1])
            except MalformedRequest:
                return NOT_FOUND
            if len(der) > self.max_request_bytes:
                return TOO_LARGE
            return found[0], der
        return METHOD_NOT_ALLOWED

    def _probe(self, path: str) -> HttpResponse:
        if path == "/health":
            return ALIVE
        return readiness_response(self.readiness() if self.readiness is not None else [])

    def _run(self, exchange: Exchange, headers: Mapping[bytes, bytes], head: bool) -> HttpResponse | Pending:
        """Run the pipeline on ``exchange`` and turn the outcome into HTTP."""
        response = self._answer(exchange, headers)
        if isinstance(response, Pending):
            response.head = head
            return response
        return _head(head, response)

    def _answer(self, exchange: Exchange, headers: Mapping[bytes, bytes]) -> HttpResponse | Pending:
        client_address = exchange.client_address
        try:
            answer = self.pipeline(exchange)
        except WouldBlock as blocked:
            return Pending(self, exchange, headers, blocked)
        except OCSPError as exc:
            level = logging.ERROR if exc.status is OCSPResponseStatus.INTERNAL_ERROR else logging.INFO
            log.log(level, "%s for %s: %s", exc.status.name, client_address, exc.reason,
                    extra={"client": client_address, "response_status": exc.status.name, "reason": exc.reason})
            return ocsp_error(exc.status)
        except StoreUnavailable as exc:  # any step that reads the store (RFC 6960 §2.3: try later)
            log.warning("tryLater for %s: %s", client_address, exc, extra={"client": client_address, "response_status": "TRY_LATER"})
            return ocsp_error(OCSPResponseStatus.TRY_LATER)
        except Exception:
            log.exception("internal error answering %s", client_address)
            return ocsp_error(OCSPResponseStatus.INTERNAL_ERROR)
        return self._success(answer, headers, exchange.restricted)

    def _success(self, answer: OCSPAnswer, headers: Mapping[bytes, bytes], restricted: bool = False) -> HttpResponse:
        """200 (or 304) with RFC 5019 §6.2 cache headers; ``private`` instead of ``public``
        when the CA answers authorized clients only, so no shared cache hands it to others."""
        if answer.has_nonce:
            # A nonce makes the response unique to one request: no cache may reuse it, nor
            # revalidate it, so it carries no ETag (and If-None-Match is not compared).
            return HttpResponse(200, _NONCE_HEADERS, answer.der)
        etag = etag_of(answer.der)
        now = self.clock.now()
        max_age = max(0, int((answer.next_update - now).total_seconds()))
        cache_headers = (
            (b"cache-control", b"max-age=%d" % max_age + CACHE_DIRECTIVES % (b"private" if restricted else b"public")),
            (b"last-modified", _http_date(answer.this_update)),
            (b"expires", _http_date(answer.next_update)),
            (b"etag", etag),
        )
        if _etag_matches(headers.get(b"if-none-match"), etag):
            return HttpResponse(304, cache_headers)
        return HttpResponse(200, ((b"content-type", OCSP_RESPONSE_TYPE), *cache_headers), answer.der)


#: The Cache-Control directives after max-age (RFC 5019 §6.2), ``%s`` being ``public`` or ``private``;
#: also in the edge's pre-rendered heads (:mod:`certstatus.server.rendered`).
CACHE_DIRECTIVES = b", %s, no-transform, must-revalidate"


def etag_of(der: bytes) -> bytes:
    """The strong ETag (RFC 9110 §8.8.3) of a response body: its SHA-256 in hex, quoted."""
    return b'"' + hashlib.sha256(der).hexdigest().encode() + b'"'


def _head(head: bool, response: HttpResponse) -> HttpResponse:
    """RFC 9110 §9.3.2: a HEAD request gets the GET headers, Content-Length included, without the body."""
    if not head:
        return response
    return HttpResponse(response.status, (*response.headers, (b"content-length", b"%d" % len(response.body))), b"")


@dataclass(eq=False)
class Pending:
    """An answer waiting for blocking I/O (a forwarded request).

    Call :meth:`fetch` where blocking is harmless (a thread), then
    :meth:`resume` where the handler normally runs; ``resume`` may return
    another :class:`Pending` if a later step blocks too.
    """

    handler: OCSPHttpHandler
    exchange: Exchange
    headers: Mapping[bytes, bytes]
    blocked: WouldBlock
    head: bool = False
    result: object = field(default=None, repr=False)

    def fetch(self) -> None:
        """Do the blocking work; its exception, if any, is kept for :meth:`resume`."""
        try:
            self.result = self.blocked.fetch()
        except Exception as exc:  # noqa: BLE001 - handed back to the step that asked
            self.result = exc

    def resume(self) -> HttpResponse | Pending:
        """Run the pipeline again with the fetched result."""
        self.exchange.prefetched[self.blocked.key] = self.result
        response = self.handler._run(self.exchange, self.headers, self.head)
        return response if isinstance(response, Pending) else self.handler.finish(response)


def _etag_matches(header: bytes | None, etag: bytes) -> bool:
    if not header:
        return False
    if header.strip() == b"*":
        return True
    return any(tag.strip().removeprefix(b"W/") == etag for tag in header.split(b","))
