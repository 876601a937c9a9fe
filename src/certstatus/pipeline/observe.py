"""Base of the steps that watch outcomes without changing them (audit, metrics).

Such a step wraps the rest of the pipeline: it passes the exchange on and
is told how it ended — :meth:`Observer.answered` with the answer, or
:meth:`Observer.refused` with the responseStatus and the reason — then
returns or re-raises exactly what came back. A
:class:`~certstatus.pipeline.base.WouldBlock` is not an outcome (the
exchange runs again) and passes unobserved.
"""

from __future__ import annotations

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError, WouldBlock


class Observer:
    """A pipeline step calling :meth:`answered` or :meth:`refused` once per exchange."""

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        try:
            answer = call_next(exchange)
        except WouldBlock:
            raise
        except OCSPError as exc:
            self.refused(exchange, exc.status, exc.reason)
            raise
        except Exception as exc:
            self.refused(exchange, OCSPResponseStatus.INTERNAL_ERROR, f"internal error: {type(exc).__name__}")
            raise
        self.answered(exchange, answer)
        return answer

    def answered(self, exchange: Exchange, answer: OCSPAnswer) -> None:
        """The exchange got ``answer``."""

    def refused(self, exchange: Exchange, status: OCSPResponseStatus, reason: str) -> None:
        """The exchange was refused with ``status`` for ``reason``."""
