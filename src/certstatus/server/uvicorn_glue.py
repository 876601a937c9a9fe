"""What uvicorn needs from certstatus: TLS context, client certificates, SIGHUP reload, JSON logs.

* :func:`ssl_context_factory` gives uvicorn the listener's context from
  :mod:`certstatus.server.tls` (built in each worker from the settings).
* :class:`ClientCertHttpToolsProtocol` is uvicorn's httptools protocol plus
  the TLS client: after the handshake it asks
  ``OCSPHttpHandler.admit_connection`` and closes the connection of a client
  whose certificate our own data reports revoked; it puts the verified chain
  in each request's scope as the ASGI TLS extension. It also enforces the
  worker's connection limit (:mod:`certstatus.server.overload`: a connection
  over ``server.max_connections`` gets 503 ``tryLater`` with the OCSP body,
  where uvicorn's own ``limit_concurrency`` would answer plain text) and
  ``server.client_timeout`` for a whole request (uvicorn alone only times out
  idle keep-alive connections: a half-sent request would hold its socket for ever).
* :class:`Supervisor` is uvicorn's multiprocess supervisor whose SIGHUP first
  runs :meth:`Lifecycle.reload <certstatus.server.lifecycle.Lifecycle.reload>`,
  then uvicorn's rolling restart (a new worker is ready before an old one is
  told to finish its requests and exit).
"""

from __future__ import annotations

import asyncio
import ssl

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from certstatus.server.asgi import try_later_app
from certstatus.server.lifecycle import Lifecycle, worker_settings
from certstatus.server.protocol import DRAIN_QUIET_SECONDS
from certstatus.server.tls import peer_chain, server_context


def ssl_context_factory(config, default_factory) -> ssl.SSLContext:
    """uvicorn ``ssl_context_factory``: the ``[tls]`` context of the settings in the environment."""
    settings = worker_settings()
    context = server_context(settings.ops.tls)
    assert context is not None, "ssl_context_factory is only configured with [tls]"
    return context


class ClientCertHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the TLS client certificate checked and passed on.

    Also fixes a race of graceful shutdown: uvicorn closes every connection
    without a request in progress, including one accepted an instant before
    whose request is still on its way — that client sees the connection drop
    unanswered. Here a connection that has not yet sent a request gets
    :data:`~certstatus.server.protocol.DRAIN_QUIET_SECONDS` seconds to send it; it is answered, then closed.
    """

    _closing_after_first: asyncio.TimerHandle | None = None
    _deadline: asyncio.TimerHandle | None = None
    _over_limit = False
    _extensions: dict = {}  # the ASGI TLS extension of a TLS client (replaced, never changed in place)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = getattr(self.app, "guard", None)
        if guard is not None:
            verdict = guard.admit(len(self.connections))
            if verdict == "connections_hard":
                transport.close()
                return
            self._over_limit = verdict is not None
        self._arm_deadline()
        chain = peer_chain(transport.get_extra_info("ssl_object"))
        self._extensions = {}
        if chain:
            self._extensions = {"tls": {"client_cert_chain": [ssl.DER_cert_to_PEM_cert(der) for der in chain]}}
            handler = getattr(self.app, "handler", None)
            if handler is not None and not handler.admit_connection(self.client[0] if self.client else None, chain):
                transport.close()

    def connection_lost(self, exc) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        """The next request must be complete within client_timeout (uvicorn's ``timeout_keep_alive``)."""
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.timeout_keep_alive, self._time_out)

    def _time_out(self) -> None:
        """No complete request within client_timeout: close without an answer."""
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _start_asgi_task(self, cycle, app) -> None:
        super()._start_asgi_task(cycle, try_later_app if self._over_limit else app)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_deadline()
        if self._extensions:
            self.scope["extensions"] = self._extensions

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._closing_after_first is not None and self.cycle is not None:
            self._closing_after_first.cancel()
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        if self.cycle is None and self._closing_after_first is None:
            self._closing_after_first = self.loop.call_later(DRAIN_QUIET_SECONDS, self.transport.close)
            return
        super().shutdown()


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor with certstatus's reload on SIGHUP."""

    def __init__(self, config, sockets, lifecycle: Lifecycle) -> None:
        super().__init__(config, sockets)
        self.lifecycle = lifecycle

    def handle_hup(self) -> None:
        if self.lifecycle.reload():
            self.restart_all()


def log_config(level: str) -> dict:
    """``logging.config`` dict sending uvicorn's own messages through certstatus's JSON formatter."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "certstatus.observability.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
