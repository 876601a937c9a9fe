"""Run the OCSP listener: uvicorn with N worker processes over the prepared store."""

from __future__ import annotations

import os

import uvicorn

from certstatus.config import Settings
from certstatus.server.asgi import SETTINGS_ENV


def serve(settings: Settings, *, log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM (graceful: open requests finish first).

    Workers are separate processes (``settings.server.worker_count``) that
    share the listening socket; each builds its own application from the
    settings handed over in the environment.
    """
    os.environ[SETTINGS_ENV] = settings.to_json()
    os.environ["CERTSTATUS_LOG_LEVEL"] = log_level
    uvicorn.run(
        "certstatus.server.asgi:create_app",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.worker_count,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning" if log_level == "info" else log_level,
        server_header=False,
        date_header=False,  # OCSPHttpHandler writes Date from its own clock
        timeout_keep_alive=10,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=16 * 1024,
    )
