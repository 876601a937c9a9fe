"""The admin listener and the background services of ``certstatus serve``'s supervisor.

:class:`AdminServer` moves bytes between a socket and
:class:`~certstatus.admin.api.AdminApi`: a thread per connection, at most
:data:`MAX_CONNECTIONS` at once (one more is closed at once), optional TLS
with required client certificates (``client_ca``), 30 s socket timeout. The
TLS handshake runs in the connection's thread under that timeout, not in
``accept``: a client that connects and sends nothing cannot stop metrics
scrapes, probes and pushes of everyone else. The API itself runs on one
thread of its own, one request at a time (its store belongs to that thread,
and pushes are serialised anyway by the store's single writer).

:func:`start_services` starts what runs beside the OCSP workers: the
:class:`~certstatus.sources.refresh.Refresher` and, when ``[admin]`` is
configured, the admin listener.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.process import BaseProcess

from certstatus.admin.api import AdminApi, AdminResponse
from certstatus.clock import Clock
from certstatus.config import Settings
from certstatus.errors import ConfigError
from certstatus.generator.schedule import start_background, stop_background
from certstatus.source_settings import AdminSettings
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.refresh import Refresher, register_targets
from certstatus.store.base import StatusStore

log = logging.getLogger("certstatus.admin")

#: Admin connections served at once; one more is closed without an answer.
MAX_CONNECTIONS = 16
#: Seconds a connection may take for its TLS handshake and each read or write.
SOCKET_TIMEOUT = 30.0


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
    """Serve :class:`AdminApi` on ``settings.host:settings.port`` (port 0: any free port)."""

    def __init__(self, settings: AdminSettings, api: AdminApi) -> None:
        self.api = api
        self.context = tls_context(settings)
        # The API runs on one thread of its own: its store was opened there (an SQLite connection
        # belongs to its thread) and pushes are serialised by the store's single writer anyway.
        self.api_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certstatus-admin-api")
        handler = _handler_class(api, self.context is not None and settings.client_ca is not None, self.api_thread)
        self.httpd = _AdminHTTPServer((settings.host, settings.port), handler, self.context)
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


class _AdminHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most :data:`MAX_CONNECTIONS`; TLS handshakes in those threads."""

    daemon_threads = True

    def __init__(self, address, handler, context: ssl.SSLContext | None) -> None:
        self.context = context
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            log.warning("admin listener: %d connections already open; closing one from %s", MAX_CONNECTIONS, client_address[0])
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def handle_error(self, request, client_address) -> None:
        """A connection's handler raised: one log line (socketserver would print the traceback as raw text)."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # the client went away or stalled
            log.info("admin listener: connection from %s ended: %s", client_address[0], sys.exc_info()[1])
            return
        log.exception("admin listener: internal error serving %s", client_address[0])

    def process_request_thread(self, request, client_address) -> None:
        try:
            request.settimeout(SOCKET_TIMEOUT)
            if self.context is not None:
                try:
                    request = self.context.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError) as exc:  # no handshake within the timeout, or a refused one
                    log.info("admin listener: TLS handshake with %s failed: %s", client_address[0], exc)
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def _numeric(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return "127.0.0.1" if host == "localhost" else "0.0.0.0"


def _handler_class(api: AdminApi, mutual_tls: bool, api_thread: ThreadPoolExecutor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 30
        server_version = "certstatus-admin"
        sys_version = ""

        def _serve(self) -> None:
            length = self.headers.get("content-length", "0")
            if not length.isdigit():
                return self._reply(400, b'{"error": "Content-Length required"}\n')
            if int(length) > api.max_body_bytes:
                return self._reply(413, b'{"error": "body too large"}\n')
            body = self.rfile.read(int(length))
            verified = mutual_tls and bool(getattr(self.connection, "getpeercert", lambda: None)())
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = api_thread.submit(api.handle, self.command, self.path, headers, body, client_certificate=verified).result()
            self._reply(answer.status, answer.encode(), answer.content_type)

        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
            log.debug("admin %s %s", self.address_string(), format % args)

    return Handler


@dataclass
class Services:
    """Background services of one supervisor; :meth:`stop` ends them."""

    refresher: Refresher
    admin: AdminServer | None
    feed: ChangeFeed
    generator: BaseProcess | None = None  # precomputed/cached CAs: certstatus.generator.schedule

    def stop(self) -> None:
        if self.generator is not None:
            stop_background(self.generator)
        if self.admin is not None:
            self.admin.stop()
        self.refresher.stop()


def start_services(
    settings: Settings, store_factory: Callable[[], StatusStore], clock: Clock, feed: ChangeFeed | None = None,
    extra_routes: Mapping[tuple[str, str], Callable[[], AdminResponse]] | None = None,
) -> Services:
    """Start the refresher, (if configured) the admin listener and, for precomputed/cached CAs, the
    background generator; raise ConfigError for a bad [admin].

    ``extra_routes`` are more admin endpoints (see :class:`AdminApi`).
    """
    feed = feed or ChangeFeed()
    refresher = Refresher(settings, store_factory, clock, feed)
    admin = None
    if settings.admin is not None:
        api = AdminApi(
            store_factory, lambda store: register_targets(store, settings.cas), clock,
            token=read_token(settings.admin), refresher=refresher, feed=feed,
            max_body_bytes=max((ca.max_crl_bytes for ca in settings.cas), default=1 << 28), extra_routes=extra_routes,
        )  # fmt: skip
        admin = AdminServer(settings.admin, api)
        admin.start()
    refresher.start()
    return Services(refresher, admin, feed, start_background(settings, feed=feed))
