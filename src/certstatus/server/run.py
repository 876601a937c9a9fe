"""Run the OCSP listener: uvicorn with N worker processes over the prepared store.

The supervising process binds the socket, starts the admin listener and
keeps the worker processes running (:class:`~certstatus.server.uvicorn_glue.Supervisor`):
SIGHUP reloads configuration and data and replaces the workers one by one,
SIGTERM/SIGINT stop gracefully (workers finish the requests in progress,
flush the audit log and exit).

With ``server.http = "protocol"`` the workers run :mod:`certstatus.server.protocol`
instead (plain HTTP: an asyncio protocol over httptools, with a whole-request
client timeout), under :mod:`certstatus.server.workers`, with the same
:class:`Lifecycle` in the supervisor. ``bench/http_stacks.py`` measures both.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import uvicorn

from certstatus.config import Settings
from certstatus.server.lifecycle import Lifecycle
from certstatus.server.uvicorn_glue import ClientCertHttpToolsProtocol, Supervisor, log_config, ssl_context_factory

#: Seconds workers get to finish their requests after SIGTERM.
GRACE_SECONDS = 10


#: Largest total size of the header fields of one request for the protocol edge (bytes); more gets 431.
MAX_HEADER_BYTES = 16 * 1024


def serve(
    settings: Settings,
    *,
    log_level: str = "info",
    reload_settings: Callable[[], Settings] | None = None,
    on_listening: Callable[[str, int], None] | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (graceful: open requests finish first).

    Workers are separate processes (``settings.server.worker_count``, one at
    least, always under the supervisor so SIGHUP works) that share the
    listening socket; each builds its own application from the settings
    handed over in the environment. ``reload_settings()`` reads the settings
    again on SIGHUP (default: the same settings, data re-imported). ``sock``
    is the OCSP socket bound at start-up (:func:`certstatus.server.listen.open_listener`);
    without it the address is bound here. Either way a bind error is a
    :class:`~certstatus.errors.ConfigError` naming the address.
    """
    from certstatus.observability import configure_logging
    from certstatus.server.listen import bind_listener, listen_key, start_listening

    if sock is None:
        sock = bind_listener(settings.server.host, settings.server.port, where=settings.server.where, key=listen_key(settings))
    start_listening(sock)
    configure_logging(log_level)
    lifecycle = Lifecycle(settings, reload_settings)
    try:
        lifecycle.start()
    except BaseException:
        sock.close()
        raise
    if settings.http_server == "protocol":
        _serve_protocol(settings, lifecycle, log_level, on_listening, sock)
        return
    os.environ["CERTSTATUS_LOG_LEVEL"] = log_level
    config = uvicorn.Config(
        "certstatus.server.asgi:create_app",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.worker_count,
        loop="uvloop",
        http=f"{ClientCertHttpToolsProtocol.__module__}:{ClientCertHttpToolsProtocol.__name__}",
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # clients behind proxies: [tls] trusted_proxies, see server/proxy.py
        log_level="warning" if log_level == "info" else log_level,
        log_config=log_config("warning" if log_level == "info" else log_level),
        server_header=False,
        date_header=False,  # OCSPHttpHandler writes Date from its own clock
        timeout_keep_alive=settings.server.client_timeout,  # and a whole request's deadline (uvicorn_glue)
        timeout_graceful_shutdown=GRACE_SECONDS,
        h11_max_incomplete_event_size=16 * 1024,
        ssl_context_factory=ssl_context_factory if settings.ops.tls.enabled else None,
    )
    try:
        Supervisor(config, [sock], lifecycle).run()
    finally:
        sock.close()
        lifecycle.stop()


def _serve_protocol(settings: Settings, lifecycle: Lifecycle, log_level: str,
                    on_listening: Callable[[str, int], None] | None, sock: socket.socket) -> None:
    """Run the protocol workers on ``sock`` until SIGTERM/SIGINT; SIGHUP reloads and replaces them.

    ``on_listening(host, port)`` is called with the bound address (port 0: a free port)
    once the workers are started.
    """
    from certstatus.server.workers import serve_forever

    host, port = sock.getsockname()[:2]
    try:
        serve_forever(
            sock,  # the workers read the settings lifecycle.start() exported (no password: a passfile)
            workers=settings.server.worker_count,
            client_timeout=settings.server.client_timeout,
            max_header_bytes=MAX_HEADER_BYTES,
            log_level=log_level,
            grace_seconds=GRACE_SECONDS,
            on_ready=None if on_listening is None else lambda: on_listening(host, port),
            on_reload=lifecycle.reload,
        )
    finally:
        lifecycle.stop()
