"""Run the OCSP listener: N worker processes of the protocol edge over the prepared store.

The supervising process binds the socket, runs the :class:`Lifecycle`
services (source refresher, admin listener, background generator) and keeps
the worker processes of :mod:`certstatus.server.workers` running; each serves
plain HTTP or, with ``[tls]``, HTTPS through :mod:`certstatus.server.protocol`.
SIGHUP reloads configuration and data and replaces the workers, SIGTERM/SIGINT
stop gracefully (workers finish the requests in progress, flush the audit log
and exit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from certstatus.config import Settings
from certstatus.server.lifecycle import Lifecycle

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
) -> None:
    """Serve until SIGINT/SIGTERM (graceful: open requests finish first).

    Workers are separate processes (``settings.server.worker_count``, one at
    least, always under the supervisor so SIGHUP works) that share the
    listening socket; each builds its own application from the settings.
    ``reload_settings()`` reads the settings again on SIGHUP (default: the
    same settings, data re-imported). ``on_listening(host, port)`` is called
    with the bound address (port 0: a free port) once the workers are started.
    Raises ``OSError`` when the address cannot be bound.
    """
    from certstatus.observability import configure_logging
    from certstatus.server.workers import bind, serve_forever

    configure_logging(log_level)
    for notice in settings.server.deprecated:
        log.warning(notice)
    lifecycle = Lifecycle(settings, reload_settings)
    lifecycle.start()
    try:
        sock = bind(settings.server.host, settings.server.port)
        host, port = sock.getsockname()[:2]
        serve_forever(
            sock,
            lambda: lifecycle.settings.to_json(),
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
