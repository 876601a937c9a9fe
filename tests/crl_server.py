"""A real HTTP server (Python's http.server, in a thread) publishing CRLs for the tests.

Each path serves what the test put there: bytes (with an ETag and a
Last-Modified, answering conditional requests with 304), an HTTP error
status, a redirect, a stall longer than the client's timeout, or the whole
answer (status line, headers, body) trickled one byte at a time. Every
request is counted and its conditional headers recorded.

    with CrlServer() as server:
        server.publish("/ca.crl", der)
        url = server.url("/ca.crl")
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class _Entry:
    body: bytes = b""
    status: int = 200
    stall: float = 0.0
    trickle: float = 0.0  # seconds between two bytes of the answer (0: all at once)
    trickling: int = 0  # answers being trickled now
    location: str = ""  # a redirect (302) to this URL
    etag: str = ""
    last_modified: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request


class CrlServer:
    """HTTP server on 127.0.0.1, free port; a context manager."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                with server._lock:
                    entry = server._entries.get(self.path)
                    if entry is not None:
                        entry.requests.append({k.lower(): v for k, v in self.headers.items()})
                        entry.arrivals.append(time.monotonic())
                if entry is None:
                    self.send_error(404)
                    return
                if entry.stall:
                    time.sleep(entry.stall)
                if entry.location:
                    self.send_response(302)
                    self.send_header("Location", entry.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if entry.trickle:
                    self._trickle(entry)
                    return
                if entry.status != 200:
                    self.send_error(entry.status)
                    return
                if self.headers.get("If-None-Match") == entry.etag:
                    self.send_response(304)
                    self.send_header("ETag", entry.etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(entry.body)))
                self.send_header("ETag", entry.etag)
                self.send_header("Last-Modified", entry.last_modified)
                self.end_headers()
                try:
                    self.wfile.write(entry.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _trickle(self, entry: _Entry) -> None:
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\n"
                    f"Content-Length: {len(entry.body)}\r\nConnection: close\r\n\r\n"
                ).encode()
                with server._lock:
                    entry.trickling += 1
                try:
                    for byte in head + entry.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(entry.trickle)
                except OSError:  # the client gave up
                    pass
                finally:
                    with server._lock:
                        entry.trickling -= 1
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "CrlServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def publish(self, path: str, body: bytes) -> None:
        """Serve ``body`` at ``path`` with 200 (and 304 to a matching If-None-Match)."""
        with self._lock:
            entry = self._entries.setdefault(path, _Entry())
            entry.body, entry.status, entry.stall, entry.trickle, entry.location = body, 200, 0.0, 0.0, ""
            entry.etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            entry.last_modified = formatdate(usegmt=True)

    def fail(self, path: str, status: int = 500) -> None:
        """Answer ``status`` at ``path``."""
        with self._lock:
            self._entries.setdefault(path, _Entry()).status = status

    def stall(self, path: str, seconds: float) -> None:
        """Wait ``seconds`` before answering at ``path`` (longer than the client timeout)."""
        with self._lock:
            self._entries.setdefault(path, _Entry()).stall = seconds

    def trickle(self, path: str, seconds_per_byte: float = 1.0) -> None:
        """Send the whole answer at ``path`` (status line, headers, body) one byte every ``seconds_per_byte``."""
        with self._lock:
            self._entries.setdefault(path, _Entry()).trickle = seconds_per_byte

    def trickling(self, path: str) -> bool:
        """True while an answer at ``path`` is being trickled (its client has not given up)."""
        with self._lock:
            return self._entries.get(path, _Entry()).trickling > 0

    def redirect(self, path: str, location: str) -> None:
        """Answer 302 with ``Location: location`` at ``path``."""
        with self._lock:
            self._entries.setdefault(path, _Entry()).location = location

    def arrivals(self, path: str) -> list[float]:
        """When each request to ``path`` arrived (``time.monotonic()``)."""
        with self._lock:
            return list(self._entries.get(path, _Entry()).arrivals)

    def requests(self, path: str) -> list[dict[str, str]]:
        """Headers of every request to ``path`` so far (lower-case names)."""
        with self._lock:
            return list(self._entries.get(path, _Entry()).requests)
