"""Traffic over the last minutes, from the workers' Prometheus counters, kept in the supervisor.

The workers count into ``PROMETHEUS_MULTIPROC_DIR`` (:mod:`certstatus.metrics`);
Prometheus keeps the history when it scrapes, but the status page must show the
last minutes without one. :class:`TrafficSampler` reads the summed registry
every :data:`SAMPLE_SECONDS` and hands the samples to a :class:`TrafficRing`,
which keeps the cumulative value of each series at the last :data:`SLOTS`
samples (5 minutes) in fixed arrays: a CA costs ~250 bytes per series whatever
the traffic, so 10 000 CAs fit in a few MiB. Rates and percentiles are
differences between samples, as Prometheus's ``rate()`` and
``histogram_quantile()`` compute them.

Series read (the names of :mod:`certstatus.metrics` and :mod:`certstatus.generator.metrics`):
``certstatus_requests_total{ca, response_status, source}``,
``certstatus_request_duration_seconds_bucket{le}`` (all sources summed),
``certstatus_overload_refused_total{reason}``,
``certstatus_generator_pending_serials{ca}`` (the newest value only) and
``certstatus_generator_responses_signed_total{ca}``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger("certstatus.admin")

#: Seconds between two samples.
SAMPLE_SECONDS = 10.0
#: Samples kept: 30 intervals of SAMPLE_SECONDS, 5 minutes.
SLOTS = 31

REQUESTS = "certstatus_requests_total"
LATENCY_BUCKET = "certstatus_request_duration_seconds_bucket"
REFUSED = "certstatus_overload_refused_total"
PENDING = "certstatus_generator_pending_serials"
SIGNED = "certstatus_generator_responses_signed_total"
#: The responseStatus label value of tryLater answers (RFC 6960 §4.2.1).
TRY_LATER = "tryLater"

_NAN = float("nan")


@dataclass(frozen=True)
class Traffic:
    """Requests over the window: ``seconds`` covered (0 before two samples), one rate per interval
    (requests per second, oldest first) in ``requests_per_second`` and ``try_later_per_second``,
    and the answers counted in the window by responseStatus and by source of the answer
    (``""``: refused before a source answered)."""

    seconds: float
    requests_per_second: tuple[float, ...]
    try_later_per_second: tuple[float, ...]
    by_status: Mapping[str, float]
    by_source: Mapping[str, float]

    @property
    def requests(self) -> float:
        return sum(self.by_status.values())

    @property
    def try_later(self) -> float:
        return self.by_status.get(TRY_LATER, 0.0)

    @property
    def rate(self) -> float:
        """Requests per second over the whole window (0 without one)."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Overall:
    """Every CA's traffic summed, with latency and the overload refusals.

    ``latency`` maps a quantile (0.5, 0.9, 0.99) to seconds over the window
    (None without requests); ``p99_seconds`` is the 0.99 quantile per interval
    (NaN for an interval without requests); ``refused_per_second`` the overload
    refusals per interval, ``refused`` their count in the window by reason.
    """

    traffic: Traffic
    latency: Mapping[float, float | None]
    p99_seconds: tuple[float, ...]
    refused_per_second: tuple[float, ...]
    refused: Mapping[str, float]


@dataclass(frozen=True)
class Generator:
    """The background generator of one CA: ``pending`` responses to sign (its newest report; None if it
    reports none) and ``signed`` responses stored in the window."""

    pending: float | None
    signed: float


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile (0..1) of a histogram given as cumulative counts per upper bound ``le``
    (seconds; ``inf`` included), interpolated linearly inside the bucket as Prometheus's
    ``histogram_quantile`` does; None when the histogram counts nothing."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # above the largest finite bound: its bound, as Prometheus answers
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 0.0)
        lower, below = bound, count
    return lower


class TrafficRing:
    """The cumulative value of each series at the last ``slots`` samples (thread-safe).

    :meth:`add` takes the metric families of one read of the registry
    (``prometheus_client`` ``Metric`` objects, as ``MultiProcessCollector.collect()``
    yields them) and the Unix time of the read.
    """

    def __init__(self, slots: int = SLOTS) -> None:
        if slots < 2:
            raise ValueError("a traffic ring needs at least 2 slots")
        self.slots = slots
        self._lock = threading.Lock()
        self._count = 0
        self._times = array("d", [_NAN] * slots)
        self._requests: dict[tuple[str, str, str], array] = {}
        self._by_ca: dict[str, list[tuple[str, str, str]]] = {}
        self._buckets: dict[float, array] = {}
        self._refused: dict[str, array] = {}
        self._signed: dict[str, array] = {}
        self._pending: dict[str, float] = {}

    def add(self, when: float, families: Iterable) -> None:
        """Record one sample of ``families`` read at ``when`` (Unix seconds)."""
        requests: dict[tuple[str, str, str], float] = {}
        buckets: dict[float, float] = {}
        refused: dict[str, float] = {}
        signed: dict[str, float] = {}
        pending: dict[str, float] = {}
        for family in families:
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                if name == REQUESTS:
                    key = (labels.get("ca", ""), labels.get("response_status", ""), labels.get("source", ""))
                    requests[key] = requests.get(key, 0.0) + value
                elif name == LATENCY_BUCKET:
                    le = float(labels.get("le", "inf"))
                    buckets[le] = buckets.get(le, 0.0) + value
                elif name == REFUSED:
                    reason = labels.get("reason", "")
                    refused[reason] = refused.get(reason, 0.0) + value
                elif name == SIGNED:
                    signed[labels.get("ca", "")] = signed.get(labels.get("ca", ""), 0.0) + value
                elif name == PENDING:
                    pending[labels.get("ca", "")] = pending.get(labels.get("ca", ""), 0.0) + value
        with self._lock:
            slot = self._count % self.slots
            self._times[slot] = when
            for table, values in ((self._requests, requests), (self._buckets, buckets), (self._refused, refused), (self._signed, signed)):
                for key, column in table.items():
                    column[slot] = values.pop(key, _NAN)
                for key, value in values.items():  # first seen now
                    column = table[key] = array("d", [_NAN] * self.slots)
                    column[slot] = value
                    if table is self._requests:
                        self._by_ca.setdefault(key[0], []).append(key)
            self._pending = pending
            self._count += 1

    # -- reading ------------------------------------------------------------------------

    def _order(self) -> list[int]:
        """Slots from the oldest sample kept to the newest."""
        return [k % self.slots for k in range(max(0, self._count - self.slots), self._count)]

    def _window(self) -> tuple[list[int], list[float], float]:
        order = self._order()
        times = [self._times[s] for s in order]
        seconds = times[-1] - times[0] if len(times) > 1 else 0.0
        return order, times, seconds

    @staticmethod
    def _deltas(order: list[int], columns: Iterable[array]) -> list[float]:
        """Per interval, the growth of the sum of ``columns`` (a series seen first counts from 0; a reset, as 0)."""
        growth = [0.0] * max(0, len(order) - 1)
        for column in columns:
            for i in range(1, len(order)):
                now, before = column[order[i]], column[order[i - 1]]
                if math.isnan(now):
                    continue
                step = now - (0.0 if math.isnan(before) else before)
                if step > 0:
                    growth[i - 1] += step
        return growth

    def _traffic(self, order: list[int], times: list[float], seconds: float, keys: Iterable[tuple[str, str, str]]) -> Traffic:
        gaps = [times[i] - times[i - 1] for i in range(1, len(times))]
        total = [0.0] * len(gaps)
        later = [0.0] * len(gaps)
        by_status: dict[str, float] = {}
        by_source: dict[str, float] = {}
        for key in keys:
            growth = self._deltas(order, (self._requests[key],))
            for i, step in enumerate(growth):
                total[i] += step
                if key[1] == TRY_LATER:
                    later[i] += step
            count = sum(growth)
            if count:
                by_status[key[1]] = by_status.get(key[1], 0.0) + count
                by_source[key[2]] = by_source.get(key[2], 0.0) + count
        return Traffic(
            seconds=seconds,
            requests_per_second=tuple(g / d if d > 0 else 0.0 for g, d in zip(total, gaps)),
            try_later_per_second=tuple(g / d if d > 0 else 0.0 for g, d in zip(later, gaps)),
            by_status=by_status,
            by_source=by_source,
        )

    def ca(self, name: str) -> Traffic:
        """The traffic of CA ``name`` over the window (with its per-interval rates)."""
        with self._lock:
            order, times, seconds = self._window()
            return self._traffic(order, times, seconds, self._by_ca.get(name, ()))

    def totals(self) -> dict[str, tuple[float, float]]:
        """``{CA name: (requests, tryLater answers)}`` in the window, for every CA with a counted request:
        the newest sample less the oldest (cheap enough for every CA at every look)."""
        with self._lock:
            order = self._order()
            if len(order) < 2:
                return {}
            first, last = order[0], order[-1]
            totals: dict[str, tuple[float, float]] = {}
            for key, column in self._requests.items():
                newest, oldest = column[last], column[first]
                if math.isnan(newest):
                    continue
                count = max(0.0, newest - (0.0 if math.isnan(oldest) else oldest))
                requests, later = totals.get(key[0], (0.0, 0.0))
                totals[key[0]] = (requests + count, later + (count if key[1] == TRY_LATER else 0.0))
            return totals

    def overall(self) -> Overall:
        """Every CA's requests summed, latency percentiles and overload refusals over the window."""
        with self._lock:
            order, times, seconds = self._window()
            traffic = self._traffic(order, times, seconds, list(self._requests))
            gaps = [times[i] - times[i - 1] for i in range(1, len(times))]
            refused_growth = self._deltas(order, self._refused.values())
            refused = {reason: sum(self._deltas(order, (column,))) for reason, column in self._refused.items()}
            per_bucket = {le: self._deltas(order, (column,)) for le, column in self._buckets.items()}
        window = {le: sum(growth) for le, growth in per_bucket.items()}
        p99 = tuple(
            _nan_if_none(quantile(0.99, {le: growth[i] for le, growth in per_bucket.items()})) for i in range(len(gaps))
        )
        return Overall(
            traffic=traffic,
            latency={q: quantile(q, window) for q in (0.5, 0.9, 0.99)},
            p99_seconds=p99,
            refused_per_second=tuple(g / d if d > 0 else 0.0 for g, d in zip(refused_growth, gaps)),
            refused={reason: count for reason, count in refused.items() if count},
        )

    def generators(self) -> dict[str, Generator]:
        """The background generator's backlog and recent work, by CA name (CAs it reported on)."""
        with self._lock:
            order = self._order()
            names = set(self._pending) | set(self._signed)
            return {
                name: Generator(
                    self._pending.get(name),
                    sum(self._deltas(order, (self._signed[name],))) if name in self._signed else 0.0,
                )
                for name in names
            }


def _nan_if_none(value: float | None) -> float:
    return _NAN if value is None else value


class TrafficSampler:
    """A daemon thread that adds ``collect()`` (metric families) to ``ring`` every ``interval`` seconds
    until :meth:`stop`; the first sample is taken at :meth:`start`."""

    def __init__(self, ring: TrafficRing, collect: Callable[[], Iterable], interval: float = SAMPLE_SECONDS) -> None:
        self.ring = ring
        self.collect = collect
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Take one sample now (a failed read is logged, and the ring keeps what it had)."""
        try:
            families = list(self.collect())
        except Exception:  # noqa: BLE001 - a torn metrics file must not end the sampling
            log.exception("status page: cannot read the workers' metrics")
            return
        self.ring.add(time.time(), families)

    def start(self) -> "TrafficSampler":
        self._thread = threading.Thread(target=self._run, name="certstatus-traffic-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)


def traffic_sampler(metrics_dir: str, interval: float = SAMPLE_SECONDS) -> TrafficSampler:
    """A sampler (not started) of the workers' metrics in ``metrics_dir`` (``PROMETHEUS_MULTIPROC_DIR``),
    summed as the admin listener's ``/metrics`` sums them, into a new :class:`TrafficRing`."""
    collector = MultiProcessCollector(None, path=metrics_dir)
    return TrafficSampler(TrafficRing(), collector.collect, interval)
