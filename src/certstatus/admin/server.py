"""The admin listener of ``certstatus serve``'s supervisor.

:class:`AdminServer` moves bytes between a socket and
:class:`~certstatus.admin.api.AdminApi`, a thread per connection, with
optional TLS and required client certificates (``client_ca``). What one
client can hold is bounded, so that nobody who cannot authenticate keeps an
operator, a push or a metrics scrape out:

* the connections are slots of :class:`~certstatus.admin.slots.ConnectionSlots`:
  16 at most, 8 from one address; a connection not yet authenticated gives
  its slot up to a newer one when they are all taken;
* deadlines on whole phases, not on single reads (a byte a second extends
  nothing): the TLS handshake and the request head within :data:`HEAD_SECONDS`
  of the accept; the body of an authenticated request within
  :data:`BODY_SECONDS` plus a second per MiB it declares;
* a request is authenticated right after its head (:meth:`AdminApi.admit`);
  a refused one is answered and closed without a byte of its body read
  (``Expect: 100-continue`` is answered only once the request is admitted);
* an admitted body is spooled (kept in memory up to :data:`SPOOL_BYTES`, then
  in an unlinked temporary file), so a large upload does not sit in memory
  while it arrives; the API reads it once.

The API itself runs on one thread of its own, one request at a time (its
store was opened there: an SQLite connection belongs to its thread; pushes
are serialised by the store's single writer anyway), so at most one CRL
upload is in memory at a time.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import BinaryIO

from certstatus.access.names import NameTable
from certstatus.admin.api import AdminApi, AdminResponse
from certstatus.admin.operators import OperatorPolicy
from certstatus.admin.slots import ConnectionSlots, Slot
from certstatus.errors import ConfigError
from certstatus.server.tls import peer_chain
from certstatus.source_settings import AdminSettings

log = logging.getLogger("certstatus.admin")

#: Seconds from the accept to a complete request head (TLS handshake, request line, headers).
HEAD_SECONDS = 10.0
#: Seconds an authenticated request has for its body, plus one per MiB it declares (slots.BODY_BYTES_PER_SECOND).
BODY_SECONDS = 30.0
#: Seconds a single socket read or write may block (a backstop under the deadlines; the answer's writes).
SOCKET_TIMEOUT = 30.0
#: Body bytes kept in memory; beyond, the body goes to a temporary file.
SPOOL_BYTES = 1024 * 1024
#: Bytes read from the socket at a time.
READ_BYTES = 64 * 1024


def read_token(settings: AdminSettings) -> str | None:
    """The bearer token from ``token_file`` (stripped), None when not configured."""
    if settings.token_file is None:
        return None
    try:
        token = settings.token_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            str(settings.token_file), "admin.token_file", f"cannot read it: {exc.strerror}.", "Create the file with a long random token."
        ) from None
    if len(token) < 16:
        raise ConfigError(
            str(settings.token_file), "admin.token_file", "holds fewer than 16 characters.",
            "Write a long random token (e.g. openssl rand -hex 32).",
        )  # fmt: skip
    return token


def operator_policy(settings: AdminSettings) -> OperatorPolicy | None:
    """The checks on operators' client certificates; None without ``client_ca``."""
    if settings.client_ca is None:
        return None
    names = NameTable.parse(settings.operator_names, key="admin.operator_names") if settings.operator_names else None
    return OperatorPolicy(names)


def tls_context(settings: AdminSettings) -> ssl.SSLContext | None:
    """Server TLS context (client certificates required when ``client_ca`` is set), or None."""
    if settings.tls_certificate is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
        if settings.client_ca is not None:
            context.load_verify_locations(settings.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            str(settings.tls_certificate), "admin.tls_certificate", f"cannot load the TLS files: {exc}.",
            "Check tls_certificate, tls_key and client_ca.",
        ) from None
    return context


class AdminServer:
    """Serve :class:`AdminApi` on ``settings.host:settings.port`` (port 0: any free port).

    ``head_timeout`` and ``body_timeout`` (seconds) are :data:`HEAD_SECONDS`
    and :data:`BODY_SECONDS` unless given.
    """

    def __init__(
        self, settings: AdminSettings, api: AdminApi, *, head_timeout: float = HEAD_SECONDS, body_timeout: float = BODY_SECONDS
    ) -> None:
        self.api = api
        self.context = tls_context(settings)
        self.api_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certstatus-admin-api")
        handler = _handler_class(api, self.context is not None and settings.client_ca is not None, self.api_thread)
        self.httpd = _AdminHTTPServer((settings.host, settings.port), handler, self.context, head_timeout, body_timeout)
        if self.context is None and not ipaddress.ip_address(_numeric(settings.host)).is_loopback:
            log.warning("admin API on %s without TLS: the token crosses the network in clear", settings.host)
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="certstatus-admin", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.api_thread.shutdown(wait=True)


class _AdminHTTPServer(HTTPServer):
    """Accept connections into :class:`ConnectionSlots`; each is served in a thread of its own (TLS handshake included)."""

    def __init__(self, address, handler, context: ssl.SSLContext | None, head_timeout: float, body_timeout: float) -> None:
        self.context = context
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self.slots = ConnectionSlots()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        slot = self.slots.take(client_address[0], request.fileno(), self.head_timeout)
        if slot is None:
            self.shutdown_request(request)
            return
        threading.Thread(
            target=self._connection, args=(request, client_address, slot), name="certstatus-admin-connection", daemon=True
        ).start()

    def _connection(self, sock: socket.socket, client_address, slot: Slot) -> None:
        try:
            sock.settimeout(SOCKET_TIMEOUT)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                try:
                    sock.do_handshake()
                except ssl.SSLError as exc:  # a refused certificate, not TLS at all, or closed by the listener
                    level = logging.INFO if self.slots.holds(slot) else logging.DEBUG
                    log.log(level, "admin listener: TLS handshake with %s failed: %s", client_address[0], exc)
                    return
            self.RequestHandlerClass(sock, client_address, self, slot)
        except _ApiFailed as failed:  # a bug: one error line (with the traceback inside the JSON), never raw stderr
            log.error("admin listener: internal error serving %s", client_address[0], exc_info=failed.__cause__)
        except _Stopping as exc:  # the API's thread is gone: the listener is stopping
            log.debug("admin listener: connection from %s dropped while stopping: %s", client_address[0], exc)
        except (OSError, ValueError) as exc:  # the client went away, or a deadline shut the connection down
            log.debug("admin listener: connection from %s ended: %s", client_address[0], exc)
        finally:
            self.slots.release(slot)
            self.shutdown_request(sock)

    def service_actions(self) -> None:  # serve_forever calls it every half second
        self.slots.sweep()


def _numeric(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return "127.0.0.1" if host == "localhost" else "0.0.0.0"


class _Stopping(Exception):
    """The admin API's thread no longer takes work: the listener is stopping."""


class _ApiFailed(Exception):
    """The admin API raised (a bug); the exception is the ``__cause__``."""


def _on_api_thread(api_thread: ThreadPoolExecutor, method: Callable, *args):
    """``method(*args)`` on the API's thread (its store belongs to that thread); raise :class:`_Stopping`
    when the thread is gone and :class:`_ApiFailed` when the method raised."""
    try:
        future = api_thread.submit(method, *args)
    except RuntimeError as exc:  # cannot schedule new futures after shutdown
        raise _Stopping(str(exc)) from exc
    try:
        return future.result()
    except Exception as exc:
        raise _ApiFailed() from exc


def _handler_class(api: AdminApi, mutual_tls: bool, api_thread: ThreadPoolExecutor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = SOCKET_TIMEOUT
        server_version = "certstatus-admin"
        sys_version = ""
        protocol_version = "HTTP/1.1"  # for 100 Continue; every answer still closes the connection
        server: _AdminHTTPServer

        def __init__(self, request, client_address, server: _AdminHTTPServer, slot: Slot) -> None:
            self.slot = slot
            self.expects_continue = False
            super().__init__(request, client_address, server)

        def handle_expect_100(self) -> bool:
            """``Expect: 100-continue`` is answered once the request is admitted, not before (curl then
            sends a large upload at once, and learns of a refusal before sending any of it)."""
            self.expects_continue = True
            return True

        def _serve(self) -> None:
            slots = self.server.slots
            if len(self.headers.get_all("content-length", ())) > 1:
                return self._answer(AdminResponse(400, {"error": "more than one Content-Length"}))
            headers = {k.lower(): v for k, v in self.headers.items()}
            chain = peer_chain(self.connection) if mutual_tls else ()
            slots.wait(self.slot)
            refusal = _on_api_thread(api_thread, api.admit, self.command, self.path, headers, chain)
            if refusal is not None:
                return self._answer(refusal)  # and close: the body is never read
            length = int(headers.get("content-length", "0").strip())
            slots.authenticated(self.slot, length, self.server.body_timeout)
            if self.expects_continue:
                self.send_response_only(100)
                self.end_headers()
            body = self._body(length)
            if body is None:
                return
            slots.wait(self.slot)
            with body:
                answer = _on_api_thread(api_thread, api.respond, self.command, self.path, body)
            self._answer(answer)

        def _body(self, length: int) -> BinaryIO | None:
            """The body spooled, positioned at its start; None when the connection ended first
            (or the spool failed: then answered 503 here)."""
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
            left = length
            while left:
                try:
                    chunk = self.rfile.read(min(left, READ_BYTES))
                except OSError:  # a deadline shut it down, or the client reset it
                    chunk = b""
                if not chunk:
                    spool.close()
                    return None
                try:
                    spool.write(chunk)
                except OSError as exc:
                    spool.close()
                    log.error("admin listener: cannot keep a %d-byte request body in %s: %s; free space there or set TMPDIR",
                              length, tempfile.gettempdir(), exc)  # fmt: skip
                    self._answer(AdminResponse(503, {"error": "the server cannot store the body now; try again later"}))
                    return None
                left -= len(chunk)
            spool.seek(0)
            return spool

        def _answer(self, answer: AdminResponse) -> None:
            body = answer.encode()
            self.close_connection = True
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
            log.debug("admin %s %s", self.address_string(), format % args)

    return Handler
