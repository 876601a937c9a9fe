"""ASGI adapter of the HTTP edge, served by uvicorn (httptools parser, uvloop loop).

Only moves bytes between the ASGI server and :class:`OCSPHttpHandler`. It
reads ``raw_path`` (the ASGI ``path`` is already percent-decoded, which would
corrupt base64 GET requests) and refuses bodies over the limit from the
Content-Length header, or while reading, without buffering them.

The pipeline runs inline on the event loop: an SQLite point lookup costs
tens of microseconds and an ECDSA signature a few tens more, less than a
hop to a thread pool; throughput comes from one worker process per core.
Only a request forwarded to a remote responder waits for the network: the
handler returns a :class:`~certstatus.server.http.Pending` and its fetch
runs in the threads of the worker's :class:`~certstatus.server.overload.OverloadGuard`,
at most ``server.max_in_flight`` at once; one more gets 503 ``tryLater`` at
once rather than a place in a queue.

The TLS client certificate comes from the ASGI TLS extension
(``scope["extensions"]["tls"]["client_cert_chain"]``, PEM, leaf first),
which :mod:`certstatus.server.uvicorn_glue` adds to uvicorn's scopes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable

from certstatus.server.http import TOO_LARGE, HttpResponse, OCSPHttpHandler, Pending
from certstatus.server.lifecycle import worker_settings
from certstatus.server.overload import TRY_LATER, TRY_LATER_CLOSE, OverloadGuard, refused_counter

log = logging.getLogger("certstatus.asgi")


class OCSPApp:
    """An ASGI application answering OCSP over HTTP; ``on_shutdown`` runs at lifespan shutdown.

    ``guard`` holds the worker's overload limits (None: blocking work runs in
    the loop's default thread pool, without a limit).
    """

    def __init__(self, handler: OCSPHttpHandler, on_shutdown: Callable[[], None] | None = None,
                 guard: OverloadGuard | None = None) -> None:
        self.handler = handler
        self.on_shutdown = on_shutdown
        self.guard = guard
        self._chains: dict[tuple[str, ...], tuple[bytes, ...]] = {}

    def _tls_chain(self, scope) -> tuple[bytes, ...]:
        tls = (scope.get("extensions") or {}).get("tls")
        pems = tuple(tls.get("client_cert_chain") or ()) if tls else ()
        if not pems:
            return ()
        chain = self._chains.get(pems)
        if chain is None:
            chain = tuple(ssl.PEM_cert_to_DER_cert(pem) for pem in pems)
            if len(self._chains) > 1024:
                self._chains.clear()
            self._chains[pems] = chain
        return chain

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {name.lower(): value for name, value in scope["headers"]}
        body = b""
        response = None
        content_length = headers.get(b"content-length")
        if content_length is not None and content_length.isdigit():
            if not self.handler.content_length_ok(int(content_length)):
                response = self.handler.finish(TOO_LARGE)
        if response is None and scope["method"] == "POST":
            body, too_large = await _read_body(receive, self.handler.max_request_bytes)
            if too_large:
                response = self.handler.finish(TOO_LARGE)
        if response is None:
            client = scope.get("client")
            response = self.handler.handle(
                scope["method"],
                scope.get("raw_path") or scope["path"].encode(),
                headers,
                body,
                client[0] if client else None,
                tls_client_chain=self._tls_chain(scope),
                offload=True,
            )
            while isinstance(response, Pending):
                response = await self._fetch(response)
        await _send(send, response)

    async def _fetch(self, pending: Pending) -> HttpResponse | Pending:
        """Run the blocking part of ``pending`` in a thread and resume it; tryLater when
        ``max_in_flight`` requests already wait."""
        loop = asyncio.get_running_loop()
        if self.guard is None:
            future = loop.run_in_executor(None, pending.fetch)
        else:
            future = self.guard.run_blocking(loop, pending.fetch)
            if future is None:
                return self.handler.finish(TRY_LATER)
        await future
        return pending.resume()

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    self.on_shutdown()
                if self.guard is not None:
                    self.guard.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive, limit: int) -> tuple[bytes, bool]:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


async def try_later_app(scope, receive, send) -> None:
    """ASGI app answering any request with 503 ``tryLater`` and ``Connection: close``
    (a connection over ``server.max_connections``; see :mod:`certstatus.server.overload`)."""
    if scope["type"] == "http":
        await _send(send, TRY_LATER_CLOSE)


async def _send(send, response: HttpResponse) -> None:
    headers = list(response.headers)
    if not any(name == b"content-length" for name, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def create_app() -> OCSPApp:
    """uvicorn factory for worker processes: settings come from the file ``$CERTSTATUS_SETTINGS_FILE`` names."""
    from certstatus.app import build_application, watch_signers
    from certstatus.observability import configure_logging

    configure_logging(os.environ.get("CERTSTATUS_LOG_LEVEL", "info"))
    settings = worker_settings()
    application = build_application(settings)
    watch_signers(application)
    guard = OverloadGuard(settings.server.max_connections, settings.server.max_in_flight, counter=refused_counter())
    return OCSPApp(application.http, on_shutdown=application.close, guard=guard)
