"""Pipeline step: refuse with tryLater when a CA has no data, a configured source never imported, or stale data.

Runs after issuer resolution. Reads the CA's source states from the store
at most once per ``recheck_seconds`` per CA (so the request path stays a
point lookup), which also notices data imported after the worker started
(by the refresher, a push, or another process of the fleet).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.clock import Clock
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError
from certstatus.pipeline.issuers import ServedCA
from certstatus.sources.health import Freshness, LogThrottle, freshness
from certstatus.store.base import StatusReader

log = logging.getLogger("certstatus.freshness")


class FreshnessGuard:
    """tryLater (RFC 6960 §2.3) for a CA without imported data or with a configured source never imported
    (:func:`~certstatus.sources.health.missing_sources`), or past nextUpdate + stale_grace.

    A CA configured with ``on_stale = "serve"`` keeps answering from stale
    data, with a warning in the log at most once a minute. A CA with a live
    SQL source is never checked here (its freshness is the query's).
    """

    def __init__(self, store: StatusReader, clock: Clock, *, recheck_seconds: float = 1.0) -> None:
        self.store = store
        self.clock = clock
        self.recheck_seconds = recheck_seconds
        self._cache: dict[int, tuple[float, Freshness]] = {}
        self._throttle = LogThrottle(60.0)

    def current(self, ca: ServedCA) -> Freshness:
        """The CA's :class:`Freshness` as last read; read again when older than ``recheck_seconds``
        through :meth:`refresh_state`, which also sets ``ca.has_data``.

        Raises :class:`~certstatus.errors.StoreUnavailable` when the states must be re-read and cannot be.
        """
        now = time.monotonic()
        cached = self._cache.get(ca.issuer_id)
        if cached is None or now - cached[0] >= self.recheck_seconds:
            return self.refresh_state(ca, now)
        return cached[1]

    def refresh_state(self, ca: ServedCA, now: float) -> Freshness:
        """Read the CA's source states from the store, keep their :class:`Freshness` (read at ``now``,
        ``time.monotonic()`` seconds) for ``recheck_seconds``, and set ``ca.has_data`` from it: the
        signer step, which checks that flag, then agrees with what this guard just read.

        Raises :class:`~certstatus.errors.StoreUnavailable` when the store cannot be read.
        """
        state = freshness(self.store.source_states(ca.issuer_id), ca.settings)
        self._cache[ca.issuer_id] = (now, state)
        ca.has_data = state.has_data
        return state

    def invalidate(self, issuer_id: int) -> None:
        """Forget the issuer's state: the next request re-reads it (a store change subscriber, any thread)."""
        self._cache.pop(issuer_id, None)

    def crl_due(self, ca: ServedCA) -> dt.datetime | None:
        """The earliest nextUpdate of the CA's CRLs (:attr:`Freshness.due`), which bounds the
        nextUpdate of its responses; None for a CA without CRLs or with a live SQL source.

        Raises :class:`~certstatus.errors.StoreUnavailable` when the states must be re-read and cannot be.
        """
        if ca.settings.sql is not None:  # never read here: its has_data is not the store's
            return None
        return self.current(ca).due

    def fresh(self, ca: ServedCA) -> bool:
        """True when ``ca`` has data that is not stale: :meth:`handle` would pass it on without a word.

        Raises :class:`~certstatus.errors.StoreUnavailable` when the states must be re-read and cannot be.
        """
        state = self.current(ca)
        return state.has_data and not state.stale(self.clock.now(), ca.settings.stale_grace)

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        ca: ServedCA = exchange.ca
        if ca.settings.sql is None:
            self.check(ca)
        return call_next(exchange)

    def check(self, ca: ServedCA) -> None:
        """Pass a CA that may answer from its data now (stale data only with ``on_stale = "serve"``,
        logged); raise :class:`OCSPError` tryLater otherwise (class docstring), or
        :class:`~certstatus.errors.StoreUnavailable` when the states cannot be re-read."""
        state = self.current(ca)
        if state.missing:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, f"CA {ca.name}: nothing imported yet from {'; '.join(state.missing)}")
        if not state.has_data:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, f"no revocation data imported for CA {ca.name}")
        if state.stale(self.clock.now(), ca.settings.stale_grace):
            serve = ca.settings.on_stale == "serve"
            if self._throttle.allow(ca.name):
                log.warning(
                    "CA %s: revocation data is past its nextUpdate %s (+ %d s grace) and no newer CRL could be "
                    "imported; %s. Check the CRL source (certstatus sources).",
                    ca.name, state.next_update.isoformat(), ca.settings.stale_grace,
                    "still serving it (on_stale = serve)" if serve else "answering tryLater",
                )  # fmt: skip
            if not serve:
                raise OCSPError(OCSPResponseStatus.TRY_LATER, f"revocation data of CA {ca.name} is stale")
