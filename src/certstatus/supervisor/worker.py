"""The body of one worker process of ``certstatus serve``.

The supervisor (:func:`certstatus.supervisor.run.run_server`) hands :func:`worker_main` to
:func:`certstatus.server.workers.serve_forever`, which spawns each worker with it: the worker
reads the settings the supervisor exported, builds its :class:`~certstatus.app.Application`
(which lives above the server package, so the server's worker loop only receives this function)
and serves until SIGTERM.
"""

from __future__ import annotations

import socket

from certstatus.app import build_application, watch_signers
from certstatus.server.responder import Responder
from certstatus.server.tls import server_context
from certstatus.server.worker_settings import worker_settings
from certstatus.server.workers import run_worker


def worker_main(sock: socket.socket, client_timeout: float, max_header_bytes: int, grace_seconds: float) -> None:
    """Body of a spawned worker (under :func:`~certstatus.observability.process_main`): build the application,
    serve until SIGTERM."""
    settings = worker_settings()

    built = []

    def make_responder() -> Responder:
        application = build_application(settings)
        built.append(application)
        watch_signers(application)  # rescans signers_dir, re-checks revocations; SIGHUP forces it
        return application.responder

    try:
        run_worker(sock, make_responder, client_timeout=client_timeout, max_header_bytes=max_header_bytes,
                   grace_seconds=grace_seconds, max_connections=settings.server.max_connections,
                   max_in_flight=settings.server.max_in_flight, tls=server_context(settings.ops.tls))
    finally:
        for application in built:
            application.close()  # flushes the audit log
