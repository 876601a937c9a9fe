"""The admin listener: a small HTTP server for operators, in a thread of the supervisor.

It runs beside the OCSP workers, in the supervising process, so it sees the
whole instance (every worker's metrics, the store, the configuration) and
keeps answering while workers restart. Routes are registered by method and
exact path; a handler takes an :class:`AdminRequest` and returns an
:class:`~certstatus.server.http.HttpResponse`. Other modules add their own
routes (``server.route("POST", "/status", handler)``).

It is the standard library's ``ThreadingHTTPServer``: operator traffic is a
scrape every few seconds, not a load worth an event loop. Bind it to a
private address: it has no authentication of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from certstatus.server.http import HttpResponse

log = logging.getLogger("certstatus.admin")

#: Largest request body accepted (bytes).
MAX_BODY = 10 * 1024 * 1024


@dataclass(frozen=True)
class AdminRequest:
    """One request: method, path (no query), query string, headers (lower-case names), body."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client_address: str


AdminHandler = Callable[[AdminRequest], HttpResponse]


def _text(status: int, text: str) -> HttpResponse:
    return HttpResponse(status, ((b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-cache")), text.encode())


class AdminServer:
    """The admin listener on (host, port); port 0 picks a free one (see :attr:`address`)."""

    def __init__(self, host: str, port: int) -> None:
        self.routes: dict[tuple[str, str], AdminHandler] = {}
        routes = self.routes

        class _Handler(BaseHTTPRequestHandler):
            server_version = "certstatus-admin"
            protocol_version = "HTTP/1.1"

            def _dispatch(self) -> None:
                path, _, query = self.path.partition("?")
                handler = routes.get((self.command, path))
                if handler is None:
                    known = any(p == path for _, p in routes)
                    response = _text(405 if known else 404, "method not allowed\n" if known else "not found\n")
                else:
                    length = int(self.headers.get("content-length") or 0)
                    if length > MAX_BODY:
                        response = _text(413, "request too large\n")
                    else:
                        body = self.rfile.read(length) if length else b""
                        request = AdminRequest(self.command, path, query, {k.lower(): v for k, v in self.headers.items()},
                                               body, self.client_address[0])
                        try:
                            response = handler(request)
                        except Exception:
                            log.exception("admin %s %s failed", self.command, path)
                            response = _text(500, "internal error\n")
                self.send_response(response.status)
                for name, value in response.headers:
                    self.send_header(name.decode("latin-1"), value.decode("latin-1"))
                self.send_header("content-length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
                log.debug("admin %s: " + format, self.client_address[0], *args)

        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        return self.httpd.server_address[:2]

    def route(self, method: str, path: str, handler: AdminHandler) -> None:
        """Serve ``method path`` with ``handler`` (replacing an earlier one)."""
        self.routes[(method.upper(), path)] = handler
        if method.upper() == "GET":
            self.routes[("HEAD", path)] = handler

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="certstatus-admin", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()
