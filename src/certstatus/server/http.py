"""The HTTP edge, sans-IO: (method, raw path, headers, body) → status, headers, body.

Implements RFC 6960 Appendix A and RFC 5019 §5-§6: POST with an
``application/ocsp-request`` body, GET with the base64 DER in the path, and
the caching headers of RFC 5019 §6.2. Server adapters (ASGI, raw protocol)
only move bytes; everything HTTP-visible is decided here, once, so every
adapter answers alike and tests need no sockets.

Routing: ``server.common_path`` (default ``/``) serves every CA; a CA with
its own ``path`` is served there for itself alone. A GET whose remainder is
not base64 is an unknown path (404); base64 that is not an OCSP request is
malformedRequest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import format_datetime
from functools import lru_cache

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.clock import Clock
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError, Route
from certstatus.protocol import response as ocsp_response
from certstatus.protocol.fast_request import parse_request_fast
from certstatus.protocol.request import MalformedRequest, decode_get_path

log = logging.getLogger("certstatus.http")

OCSP_RESPONSE_TYPE = b"application/ocsp-response"
ALLOW = b"GET, HEAD, POST"


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
METHOD_NOT_ALLOWED = _plain(405, b"method not allowed\n", ((b"allow", ALLOW),))
TOO_LARGE = _plain(413, b"request too large\n")

_ERROR_HTTP_STATUS = {OCSPResponseStatus.TRY_LATER: 503}


def ocsp_error(status: OCSPResponseStatus) -> HttpResponse:
    """The HTTP response carrying an unsuccessful OCSP response (never cached)."""
    return HttpResponse(
        _ERROR_HTTP_STATUS.get(status, 200),
        ((b"content-type", OCSP_RESPONSE_TYPE), (b"cache-control", b"no-cache")),
        ocsp_response.UNSUCCESSFUL[status],
    )


@lru_cache(maxsize=64)
def _http_date(value: dt.datetime) -> bytes:
    # Cached: thisUpdate/nextUpdate repeat for every response signed in the same second.
    return format_datetime(value.astimezone(dt.timezone.utc), usegmt=True).encode()


class OCSPHttpHandler:
    """Turn HTTP requests into pipeline exchanges and answers into HTTP responses.

    ``routes`` maps a path prefix (leading and trailing '/') to a :class:`Route`;
    ``max_request_bytes`` bounds POST bodies and decoded GET requests.
    """

    def __init__(
        self,
        pipeline: Handler,
        routes: Mapping[str, Route],
        clock: Clock,
        *,
        max_request_bytes: int = 10_000,
    ) -> None:
        self.pipeline = pipeline
        # Longest prefix first, so "/ca1/" wins over "/".
        self.routes = sorted(routes.items(), key=lambda item: len(item[0]), reverse=True)
        self.clock = clock
        self.max_request_bytes = max_request_bytes

    def route_for(self, path: str) -> tuple[Route, str] | None:
        """Return the route of ``path`` and the rest of the path after its prefix."""
        for prefix, route in self.routes:
            if path.startswith(prefix):
                return route, path[len(prefix):]
            if path == prefix.rstrip("/"):
                return route, ""
        return None

    def content_length_ok(self, content_length: int | None) -> bool:
        """False when a declared body is over the limit (answer 413 before reading it)."""
        return content_length is None or content_length <= self.max_request_bytes

    def handle(
        self,
        method: str,
        raw_path: bytes,
        headers: Mapping[bytes, bytes],
        body: bytes,
        client_address: str | None = None,
    ) -> HttpResponse:
        """Answer one HTTP request. Never raises: a bug becomes internalError."""
        return self.finish(self._handle(method, raw_path, headers, body, client_address))

    def finish(self, response: HttpResponse) -> HttpResponse:
        """Add the Date header (RFC 9110 §6.6.1) to a response about to be sent.

        Date is read from the handler's clock after the answer was made, so it is
        never earlier than Last-Modified (thisUpdate), as a server's once-a-second
        cached Date can be (RFC 9110 §8.8.2.1).
        """
        date = _http_date(self.clock.now().replace(microsecond=0))  # whole seconds: the cache hits
        return HttpResponse(response.status, (*response.headers, (b"date", date)), response.body)

    def _handle(
        self,
        method: str,
        raw_path: bytes,
        headers: Mapping[bytes, bytes],
        body: bytes,
        client_address: str | None,
    ) -> HttpResponse:
        path = raw_path.split(b"?", 1)[0].decode("latin-1")
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        found = self.route_for(path)
        if method == "POST":
            if found is None or found[1].strip("/"):
                return NOT_FOUND
            if len(body) > self.max_request_bytes:
                return TOO_LARGE
            der = body
        elif method in ("GET", "HEAD"):
            if found is None:
                return NOT_FOUND
            try:
                der = decode_get_path(found[1])
            except MalformedRequest:
                return NOT_FOUND
            if len(der) > self.max_request_bytes:
                return TOO_LARGE
        else:
            return METHOD_NOT_ALLOWED
        response = self._answer(der, found[0], headers, client_address)
        if method == "HEAD":
            # RFC 9110 §9.3.2: the GET headers, Content-Length included, without the body.
            length = (b"content-length", b"%d" % len(response.body))
            return HttpResponse(response.status, (*response.headers, length), b"")
        return response

    def _answer(
        self, der: bytes, route: Route, headers: Mapping[bytes, bytes], client_address: str | None
    ) -> HttpResponse:
        try:
            query = parse_request_fast(der)
        except MalformedRequest as exc:
            log.info("malformed request from %s: %s", client_address, exc)
            return ocsp_error(OCSPResponseStatus.MALFORMED_REQUEST)
        exchange = Exchange(query, route, self.clock.now(), client_address)
        try:
            answer = self.pipeline(exchange)
        except OCSPError as exc:
            level = logging.ERROR if exc.status is OCSPResponseStatus.INTERNAL_ERROR else logging.INFO
            log.log(level, "%s for %s: %s", exc.status.name, client_address, exc.reason)
            return ocsp_error(exc.status)
        except Exception:
            log.exception("internal error answering %s", client_address)
            return ocsp_error(OCSPResponseStatus.INTERNAL_ERROR)
        return self._success(answer, headers)

    def _success(self, answer: OCSPAnswer, headers: Mapping[bytes, bytes]) -> HttpResponse:
        etag = b'"' + hashlib.sha256(answer.der).hexdigest().encode() + b'"'
        if answer.has_nonce:
            # A nonce makes the response unique to one request: no cache may reuse it.
            cache_headers: tuple[tuple[bytes, bytes], ...] = ((b"cache-control", b"no-store"),)
        else:
            now = self.clock.now()
            max_age = max(0, int((answer.next_update - now).total_seconds()))
            cache_headers = (
                (b"cache-control", b"max-age=%d, public, no-transform, must-revalidate" % max_age),
                (b"last-modified", _http_date(answer.this_update)),
                (b"expires", _http_date(answer.next_update)),
                (b"etag", etag),
            )
        if not answer.has_nonce and _etag_matches(headers.get(b"if-none-match"), etag):
            return HttpResponse(304, cache_headers)
        return HttpResponse(200, ((b"content-type", OCSP_RESPONSE_TYPE), *cache_headers), answer.der)


def _etag_matches(header: bytes | None, etag: bytes) -> bool:
    if not header:
        return False
    if header.strip() == b"*":
        return True
    return any(tag.strip().removeprefix(b"W/") == etag for tag in header.split(b","))
