"""Run the OCSP listener: uvicorn with N worker processes over the prepared store."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

import uvicorn
from uvicorn.supervisors import Multiprocess

from certstatus.config import Settings
from certstatus.server.asgi import SETTINGS_ENV


def serve(settings: Settings, *, log_level: str = "info", on_reload: Callable[[], object] | None = None) -> None:
    """Serve until SIGINT/SIGTERM (graceful: open requests finish first).

    Workers are separate processes (``settings.server.worker_count``) that
    share the listening socket; each builds its own application from the
    settings handed over in the environment. ``on_reload`` is called on
    SIGHUP (re-import the revocation data now), before uvicorn's own SIGHUP
    action (with several workers: replace them, which reloads their signers).
    """
    os.environ[SETTINGS_ENV] = settings.to_json()
    os.environ["CERTSTATUS_LOG_LEVEL"] = log_level
    if on_reload is not None:
        _on_hangup(on_reload)
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


def _on_hangup(on_reload: Callable[[], object]) -> None:
    """Route SIGHUP to ``on_reload``, in the single-process server and in uvicorn's supervisor."""

    def reload(*_args) -> None:
        logging.getLogger("certstatus.refresh").info("SIGHUP: re-importing every source now")
        on_reload()

    signal.signal(signal.SIGHUP, reload)  # single worker: uvicorn leaves SIGHUP alone (the signer watcher chains it)
    restart_workers = Multiprocess.handle_hup  # several workers: the supervisor's queue calls handle_hup

    def handle_hup(self) -> None:
        reload()
        restart_workers(self)

    Multiprocess.handle_hup = handle_hup
