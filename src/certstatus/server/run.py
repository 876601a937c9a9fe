"""Run the OCSP listener: the httptools/uvloop protocol edge in N worker processes.

The stack was chosen by measurement (``bench/http_stacks.py``, figures in
``bench/README.md``); :mod:`certstatus.server.asgi` stays as the ASGI form of
the same handler for embedding under any ASGI server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from certstatus.config import Settings
from certstatus.server.workers import bind, serve_forever

#: Largest total size of the header fields of one request (bytes); more gets 431.
MAX_HEADER_BYTES = 16 * 1024


def serve(
    settings: Settings,
    *,
    log_level: str = "info",
    on_reload: Callable[[], object] | None = None,
    on_listening: Callable[[str, int], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (graceful: requests in progress are answered first).

    Binds ``settings.server.host:port`` (port 0: a free port) in this process,
    starts ``settings.server.worker_count`` workers sharing the socket (each
    builds its own application), then calls ``on_listening(host, port)``.
    SIGHUP calls ``on_reload`` (re-import the revocation data now) and
    replaces the workers, which reloads their signers. Raises ``OSError``
    when the address cannot be bound.
    """
    sock = bind(settings.server.host, settings.server.port)
    host, port = sock.getsockname()[:2]
    logging.getLogger("certstatus.server").debug("listening on %s:%d", host, port)
    serve_forever(
        sock,
        settings.to_json(),
        workers=settings.server.worker_count,
        client_timeout=settings.server.client_timeout,
        max_header_bytes=MAX_HEADER_BYTES,
        log_level=log_level,
        on_ready=None if on_listening is None else lambda: on_listening(host, port),
        on_reload=on_reload,
    )
