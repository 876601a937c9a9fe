"""Overload limits of one worker: open connections and blocking work in flight.

Beyond a limit a request is answered at once with HTTP 503 and the OCSP
``tryLater`` response (RFC 6960 §2.3, §4.2.1) instead of waiting in a queue
that has no bound; relying parties retry later or use the answer they cached.

* ``max_connections``: a connection accepted while the worker already has
  that many open is *refused*: its first request gets the tryLater response
  and ``Connection: close`` (the connections already open keep being served:
  work in progress is not thrown away). Beyond twice the limit a new
  connection is closed at once, without reading it: a flood of connections
  that send nothing costs one accept each, not a socket for
  ``client_timeout`` seconds.
* ``max_in_flight``: requests whose answer waits for blocking work in a
  thread (a forwarded request waiting for its remote responder). One more
  gets tryLater at once; the threads (:attr:`OverloadGuard.executor`) are
  exactly as many as the limit, so nothing queues behind them.

Every refusal is counted in ``certstatus_overload_refused_total{reason}``
(``reason`` is ``connections``, ``connections_hard`` or ``in_flight``; no
client address or serial in a label) and logged at most once per
:data:`LOG_INTERVAL` seconds per reason, with the count since the last line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cryptography.x509.ocsp import OCSPResponseStatus
from prometheus_client import CollectorRegistry, Counter

from certstatus.metrics import MULTIPROC_ENV
from certstatus.server.http import HttpResponse, ocsp_error

log = logging.getLogger("certstatus.overload")

#: Seconds between two log lines about refusals of the same reason (per worker).
LOG_INTERVAL = 10.0
#: HTTP 503 with the OCSP tryLater body, never cached (RFC 5019 §5: tryLater is not cached).
TRY_LATER = ocsp_error(OCSPResponseStatus.TRY_LATER)
#: The same with ``Connection: close``, for adapters that take the header from the response.
TRY_LATER_CLOSE = HttpResponse(TRY_LATER.status, (*TRY_LATER.headers, (b"connection", b"close")), TRY_LATER.body)
REASONS = ("connections", "connections_hard", "in_flight")


def refused_counter(registry=None):
    """The ``certstatus_overload_refused_total{reason}`` counter; None when metrics are off.

    Metrics are on when ``registry`` is given, or when the supervisor set
    ``PROMETHEUS_MULTIPROC_DIR`` (the admin listener sums the workers' files).
    """
    if registry is None:
        if not os.environ.get(MULTIPROC_ENV):
            return None
        registry = CollectorRegistry(auto_describe=False)
    counter = Counter("certstatus_overload_refused", "Requests or connections refused with tryLater for overload, by limit.",
                      ["reason"], registry=registry)
    for reason in REASONS:  # every series exists from the start, at 0: rate() and alerts see the first refusal
        counter.labels(reason)
    return counter


class OverloadGuard:
    """The limits of one worker and what happens beyond them (see the module docstring).

    ``max_connections`` and ``max_in_flight`` are per worker process;
    ``counter`` is a prometheus Counter with a ``reason`` label (or None);
    ``monotonic`` is the clock of the log rate limit (seconds). Used from
    the event loop only, except :meth:`leave`, which is called there too.
    """

    def __init__(self, max_connections: int, max_in_flight: int, *, counter=None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if max_connections < 1 or max_in_flight < 1:
            raise ValueError("max_connections and max_in_flight must be at least 1")
        self.max_connections = max_connections
        self.max_in_flight = max_in_flight
        self.counter = counter
        self.monotonic = monotonic
        self.in_flight = 0
        #: Refusals by reason since start (for tests and the log line).
        self.refused_total = dict.fromkeys(REASONS, 0)
        self._unlogged = dict.fromkeys(REASONS, 0)
        self._logged_at = dict.fromkeys(REASONS, float("-inf"))
        self._executor: ThreadPoolExecutor | None = None

    # -- connections -------------------------------------------------------

    def admit(self, open_connections: int) -> str | None:
        """Decide on a connection just accepted; ``open_connections`` counts it.

        Returns None (serve it), ``"connections"`` (answer its first request
        with :data:`TRY_LATER_CLOSE`) or ``"connections_hard"`` (close it now).
        The refusal is counted and logged here.
        """
        if open_connections <= self.max_connections:
            return None
        reason = "connections" if open_connections <= 2 * self.max_connections else "connections_hard"
        self.refused(reason, open_connections)
        return reason

    # -- blocking work in threads -------------------------------------------

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The threads blocking work runs in: ``max_in_flight`` of them, started on demand."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="certstatus-blocking")
        return self._executor

    def enter(self) -> bool:
        """Take a place for blocking work; False (counted, logged) when all ``max_in_flight`` are taken."""
        if self.in_flight >= self.max_in_flight:
            self.refused("in_flight", self.in_flight)
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        """Give back the place taken by :meth:`enter`."""
        self.in_flight -= 1

    def run_blocking(self, loop: asyncio.AbstractEventLoop, work: Callable[[], object]) -> asyncio.Future | None:
        """Run ``work`` in one of the :attr:`executor` threads and return its future, or None (counted,
        logged) when all ``max_in_flight`` places are taken. The place is given back when the future
        is done (the work ended, or the future was cancelled). Call from the event loop."""
        if not self.enter():
            return None
        future = loop.run_in_executor(self.executor, work)
        future.add_done_callback(lambda _: self.leave())
        return future

    def close(self) -> None:
        """Stop the threads (worker shutdown; work in progress finishes first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- accounting ----------------------------------------------------------

    def refused(self, reason: str, load: int) -> None:
        """Count one refusal; log at most once per :data:`LOG_INTERVAL` seconds per reason."""
        self.refused_total[reason] += 1
        if self.counter is not None:
            self.counter.labels(reason).inc()
        self._unlogged[reason] += 1
        now = self.monotonic()
        if now - self._logged_at[reason] >= LOG_INTERVAL:
            limit = self.max_in_flight if reason == "in_flight" else self.max_connections
            what = "forwarded requests in flight" if reason == "in_flight" else "open connections"
            log.warning("overload: %d refused (%s: %d %s, limit %d per worker)",
                        self._unlogged[reason], reason, load, what, limit,
                        extra={"reason": reason, "refused": self._unlogged[reason], "limit": limit})
            self._unlogged[reason] = 0
            self._logged_at[reason] = now
