"""Run the OCSP listener: N worker processes of the HTTP edge over the prepared store.

The supervising process binds the socket, runs the :class:`Lifecycle`
services (source refresher, admin listener, background generator) and keeps
the worker processes of :mod:`certstatus.server.workers` running; each serves
plain HTTP or, with ``[tls]``, HTTPS through :mod:`certstatus.server.connection`.
SIGHUP reloads configuration and data and replaces the workers, SIGTERM/SIGINT
stop gracefully (workers finish the requests in progress, flush the audit log
and exit).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from certstatus.config import Settings
from certstatus.observability import configure_logging
from certstatus.server.listen import bind_listener, listen_key, start_listening
from certstatus.server.workers import serve_forever
from certstatus.supervisor.lifecycle import Lifecycle
from certstatus.supervisor.worker import worker_main

log = logging.getLogger("certstatus.server")

#: Seconds workers get to finish their requests after SIGTERM.
GRACE_SECONDS = 10
#: Largest total size of the header fields of one request (bytes); more gets 431.
MAX_HEADER_BYTES = 16 * 1024


def serve(
    settings: Settings,
    *,
    log_level: str = "info",
    reload_settings: Callable[[], Settings] | None = None,
    on_listening: Callable[[str, int], None] | None = None,
    sock: socket.socket | None = None,
    loaded: list | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (graceful: open requests finish first).

    Workers are separate processes (``settings.server.worker_count``, one at
    least, always under the supervisor so SIGHUP works) that share the
    listening socket; each builds its own application from the settings
    :meth:`Lifecycle.start` exported (no database password: a passfile).
    ``reload_settings()`` reads the settings again on SIGHUP (default: the
    same settings, data re-imported). ``sock`` is the OCSP socket bound at
    start-up (:func:`certstatus.server.listen.open_listener`); without it the
    address is bound here. Either way a bind error is a
    :class:`~certstatus.errors.ConfigError` naming the address.
    ``on_listening(host, port)`` is called with the bound address (port 0: a
    free port) once the workers are started. ``loaded``: the CAs
    :func:`certstatus.app.prepare` loaded for these settings (its ``loaded``
    list), kept as the supervisor's own signers instead of loaded again.
    """
    if sock is None:
        sock = bind_listener(settings.server.host, settings.server.port, where=settings.server.where, key=listen_key(settings))
    start_listening(sock)
    configure_logging(log_level)
    for notice in settings.server.deprecated:
        log.warning(notice)
    lifecycle = Lifecycle(settings, reload_settings, loaded=loaded)
    try:
        lifecycle.start()
    except BaseException:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    try:
        serve_forever(
            sock,  # the workers read the settings lifecycle.start() exported
            workers=settings.server.worker_count,
            client_timeout=settings.server.client_timeout,
            max_header_bytes=MAX_HEADER_BYTES,
            log_level=log_level,
            grace_seconds=GRACE_SECONDS,
            on_ready=None if on_listening is None else lambda: on_listening(host, port),
            on_reload=lifecycle.reload,
            worker_main=worker_main,
        )
    finally:
        lifecycle.stop()  # serve_forever closed the socket
