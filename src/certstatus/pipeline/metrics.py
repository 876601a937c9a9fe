"""Metrics step: count every answer and refusal, time it, and note the response's age.

Wraps every other step (like the audit step), so refusals raised by any
step are counted with their responseStatus. See :mod:`certstatus.metrics`.
"""

from __future__ import annotations

import datetime as dt
import time

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.clock import Clock
from certstatus.metrics import RequestMetrics
from certstatus.pipeline.audit import RESPONSE_STATUS_NAMES
from certstatus.pipeline.base import Exchange, OCSPAnswer
from certstatus.pipeline.observe import Observer


class ObserveMetrics(Observer):
    """Pipeline step recording :class:`RequestMetrics` for each exchange."""

    def __init__(self, metrics: RequestMetrics, clock: Clock) -> None:
        self.metrics = metrics
        self.clock = clock

    def answered(self, exchange: Exchange, answer: OCSPAnswer) -> None:
        metrics = self.metrics
        ca = exchange.ca.name
        metrics.requests.labels(ca, "successful", answer.source).inc()
        for status in answer.statuses:
            metrics.certificates.labels(ca, status).inc()
        metrics.latency.labels(answer.source).observe((time.perf_counter_ns() - exchange.started_ns) / 1e9)
        metrics.response_age.labels(answer.source).observe(max(0.0, (self.clock.now() - answer.this_update).total_seconds()))

    def refused(self, exchange: Exchange, status: OCSPResponseStatus, reason: str) -> None:
        ca = getattr(exchange.ca, "name", "")
        self.metrics.requests.labels(ca, RESPONSE_STATUS_NAMES[status], "").inc()
        self.metrics.latency.labels("").observe((time.perf_counter_ns() - exchange.started_ns) / 1e9)

    def malformed(self, received_at: dt.datetime, client_address: str | None, started_ns: int, reason: str) -> None:
        """Count bytes that were not an OCSP request (called by the HTTP edge)."""
        self.metrics.requests.labels("", "malformedRequest", "").inc()
