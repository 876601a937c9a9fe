"""What the HTTP edge needs to answer without the handler: rendered 200 responses and plain counts.

Both the edge answer cache (:mod:`certstatus.server.edge`) and the responder's fast path
(:mod:`certstatus.server.responder`) write a successful OCSP answer as one
``bytes.join`` of fixed parts, byte for byte what
:class:`~certstatus.server.http.OCSPHttpHandler` plus
:func:`~certstatus.server.connection.encode_response` would send (tests
compare): the headers of RFC 5019 §6.2 for a shareable answer, ``no-store``
for a nonce answer, then Date (RFC 9110 §6.6.1, formatted once per second)
and Content-Length.

They also count what they answered in plain integers, which
:meth:`AnswerCounts.flush` adds to the worker's Prometheus metrics once a
second (a ``labels().inc()`` per request costs more than an edge hit).
"""

from __future__ import annotations

import datetime as dt
import time
from bisect import bisect_left
from collections.abc import Callable

from certstatus.clock import UTC, Clock, SystemClock
from certstatus.metrics import AGE_BUCKETS, LATENCY_BUCKETS, RequestMetrics
from certstatus.pipeline.metrics import ObserveMetrics
from certstatus.server.http import CACHE_DIRECTIVES, OCSP_RESPONSE_TYPE, _http_date

#: Start of a shareable 200 answer, up to its max-age value.
SHARED_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: " + OCSP_RESPONSE_TYPE + b"\r\ncache-control: max-age="
#: Start of a nonce answer (never stored by caches), up to its Date value.
NONCE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: " + OCSP_RESPONSE_TYPE + b"\r\ncache-control: no-store\r\ndate: "


def unix_time(clock: Clock) -> Callable[[], float]:
    """``clock``'s now as Unix seconds: :func:`time.time` itself for the wall clock (the hit
    path's cheapest reading), else derived from ``clock.now()`` (tests' ManualClock)."""
    return time.time if isinstance(clock, SystemClock) else lambda: clock.now().timestamp()


def pipeline_metrics(pipeline) -> RequestMetrics | None:
    """The worker's request metrics (those of the pipeline's metrics step), None without them."""
    return next((o.metrics for o in pipeline.observers if isinstance(o, ObserveMetrics)), None)


def shared_dates(this_update: dt.datetime, next_update: dt.datetime) -> bytes:
    """The headers of a shareable answer between its max-age value and its ETag value (the same for
    every answer of one second); the ETag value and :data:`ETAG_END` follow."""
    return (
        CACHE_DIRECTIVES % b"public" + b"\r\nlast-modified: " + _http_date(this_update)
        + b"\r\nexpires: " + _http_date(next_update) + b"\r\netag: "
    )  # fmt: skip


#: From the end of the ETag value to the Date value.
ETAG_END = b"\r\ndate: "


class HeadLines:
    """The Date value of the current second and the Content-Length lines of each body length."""

    __slots__ = ("_second", "_date", "_lengths")

    def __init__(self) -> None:
        self._second = -1
        self._date = b""
        self._lengths: dict[int, tuple[bytes, bytes]] = {}

    def date(self, now: float) -> bytes:
        """The HTTP-date of the whole second of ``now`` (Unix seconds)."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._date = _http_date(dt.datetime.fromtimestamp(second, UTC))
        return self._date

    def lengths(self, length: int) -> tuple[bytes, bytes]:
        """From the end of the Date value to the body: (keep-alive form, ``connection: close`` form)."""
        lines = self._lengths.get(length)
        if lines is None:
            lines = self._lengths[length] = (
                b"\r\ncontent-length: %d\r\n\r\n" % length,
                b"\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % length,
            )
        return lines


class AnswerCounts:
    """Answers given without the pipeline, counted per (CA, certStatus names) and in the
    latency and response-age buckets, until :meth:`flush` adds them to the metrics under
    ``source``. Not thread-safe (the worker's event loop only)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._stats: list[tuple[str, tuple[str, ...]]] = []
        self._index: dict[tuple[str, tuple[str, ...]], int] = {}
        self.hits: list[int] = []
        self._latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum_ns = 0
        self._age = [0] * (len(AGE_BUCKETS) + 1)
        self._age_sum = 0.0

    def slot(self, ca: str, statuses: tuple[str, ...]) -> int:
        """The index in :attr:`hits` of answers of ``ca`` with these certStatus names."""
        key = (ca, statuses)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._stats)
            self._stats.append(key)
            self.hits.append(0)
        return index

    def count(self, slot: int, elapsed_ns: int, age: float) -> None:
        """One answer: ``elapsed_ns`` from its request's arrival, ``age`` seconds since its thisUpdate."""
        self.hits[slot] += 1
        self._age[bisect_left(AGE_BUCKETS, age)] += 1
        self._age_sum += age
        self._latency[bisect_left(LATENCY_BUCKETS, elapsed_ns / 1e9)] += 1
        self._latency_sum_ns += elapsed_ns

    def flush(self, metrics: RequestMetrics | None) -> int:
        """Add the answers counted since the last flush to ``metrics`` (None: drop them); return how many."""
        hits = sum(self.hits)
        if not hits:
            return 0
        counts = list(zip(self._stats, self.hits, strict=True))
        self.hits = [0] * len(self.hits)
        latency, self._latency = self._latency, [0] * len(self._latency)
        latency_sum, self._latency_sum_ns = self._latency_sum_ns / 1e9, 0
        age, self._age = self._age, [0] * len(self._age)
        age_sum, self._age_sum = self._age_sum, 0.0
        if metrics is None:
            return hits
        for (ca, statuses), count in counts:
            if not count:
                continue
            metrics.requests.labels(ca, "successful", self.source).inc(count)
            for status in statuses:
                metrics.certificates.labels(ca, status).inc(count)
        add_observations(metrics.latency.labels(self.source), latency, latency_sum)
        add_observations(metrics.response_age.labels(self.source), age, age_sum)
        return hits


def add_observations(histogram, bucket_counts: list[int], total: float) -> None:
    """Add many observations to a labelled ``prometheus_client`` Histogram at once:
    ``bucket_counts[i]`` values fell in bucket ``i`` (the last: +Inf), summing to ``total``.

    The same result as ``observe()`` once per value (tests compare), at one increment per
    bucket instead of one call per value.
    """
    for bucket, count in zip(histogram._buckets, bucket_counts, strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(total)
