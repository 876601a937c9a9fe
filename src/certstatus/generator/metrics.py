"""The background generator's Prometheus metrics, summed by the admin listener with the workers'.

The background generator of ``certstatus serve`` (:mod:`certstatus.generator.schedule`)
inherits ``PROMETHEUS_MULTIPROC_DIR`` from the supervisor and counts into it:

* ``certstatus_generator_pending_serials{ca}`` — serials whose responses wait to be signed again:
  their status changed since they were signed, or they are due for renewal
  (:meth:`GeneratorStore.count_pending` ``"changed"`` + ``"due"``, two index counts). Counted after
  each pass and every :data:`COUNT_SECONDS` in between; serials never signed (``"missing"``)
  are left out, since counting them walks every serial of the CA;
* ``certstatus_generator_responses_signed_total{ca}`` — responses signed and stored, per batch.

The gauge belongs to the generator's process (``livesum``): the supervisor drops its file when
it stops the process (:func:`certstatus.generator.schedule.stop_background`).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from certstatus.metrics import MULTIPROC_ENV

if TYPE_CHECKING:
    from certstatus.generator.run import Generator
    from certstatus.generator.signing import BatchResult

#: Seconds between two counts of the pending serials while no pass runs.
COUNT_SECONDS = 10.0


class GeneratorMetrics:
    """The generator's series in ``registry`` (a private one by default: multiprocess mode writes files anyway)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry(auto_describe=False)
        self.pending = Gauge(
            "certstatus_generator_pending_serials", "Serials whose pre-signed responses changed status or are due for renewal.",
            ["ca"], multiprocess_mode="livesum", registry=registry,
        )  # fmt: skip
        self.signed = Counter(
            "certstatus_generator_responses_signed", "Pre-signed responses signed and stored by the generator.", ["ca"],
            registry=registry,
        )
        self._counted_at = float("-inf")

    def start(self, generator: "Generator") -> None:
        """Make every CA's series exist (0) before the first pass: ``increase()`` then sees its first batch."""
        for ca in generator.cas:
            self.signed.labels(ca.name)

    def batch(self, result: "BatchResult") -> None:
        """Count the responses one finished batch stored."""
        if result.signed:
            self.signed.labels(result.ca).inc(result.signed)

    def count(self, generator: "Generator", *, now: bool = False) -> None:
        """Set the pending serials of every CA ``generator`` signs for; at most every COUNT_SECONDS unless ``now``."""
        if not now and time.monotonic() - self._counted_at < COUNT_SECONDS:
            return
        self._counted_at = time.monotonic()
        at = generator.clock.now()
        for ca in generator.mine():
            issuer_id = generator.issuer_ids[ca.name]
            pending = sum(generator.store.count_pending(issuer_id, kind, now=at) for kind in ("changed", "due"))
            self.pending.labels(ca.name).set(pending)


def generator_metrics() -> GeneratorMetrics | None:
    """The metrics of a background generator whose supervisor collects them (``PROMETHEUS_MULTIPROC_DIR`` set), else None."""
    return GeneratorMetrics() if os.environ.get(MULTIPROC_ENV) else None
