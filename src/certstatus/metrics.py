"""Prometheus metrics, correct across worker processes (``prometheus_client`` multiprocess mode).

Worker processes count requests into memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor before it starts them,
see :mod:`certstatus.supervisor.lifecycle`); the admin listener sums every
worker's files at scrape time (:func:`admin_registry`), and adds figures it
reads itself: data age per source, signer expiry, cache hit ratio.

Names, for what an operator asks:

* ``certstatus_requests_total{ca, response_status, source}`` — requests answered (``source="edge"``:
  by the HTTP edge's answer cache, :mod:`certstatus.server.edge`, added once a second);
* ``certstatus_certificates_total{ca, cert_status}`` — certStatus answered per CertID;
* ``certstatus_request_duration_seconds{source}`` — latency from parsed request to answer;
* ``certstatus_response_age_seconds{source}`` — now − thisUpdate of the response served;
* ``certstatus_forward_attempts_total{ca, result}`` — tries of remote responders;
* ``certstatus_data_age_seconds{ca, source}`` — now − the data's date (a CRL's thisUpdate,
  else its import time; :func:`certstatus.sources.health.source_ages`);
  ``certstatus_data_next_update_timestamp_seconds{ca, source}``;
* ``certstatus_signer_not_after_timestamp_seconds{ca, signer}`` — notAfter of every signer (Unix time),
  ``certstatus_signer_state{ca, signer, state}`` — 1 for its state (:data:`SIGNER_STATES`), 0 for the others,
  ``certstatus_signer_expiry_warning{ca, signer}`` — 1 when the active signer expires soon
  without a successor (:func:`certstatus.signing.signer_set.signer_expiry`), from the
  supervisor's signers, which follow ``signers_dir`` re-scans and revocations
  (:class:`certstatus.supervisor.lifecycle.SupervisorSigners`);
* ``certstatus_cache_hit_ratio`` — answers from a cache or precomputed / all successful answers;
* ``certstatus_precomputed_expired_total{ca, reason}`` — pre-signed responses found past their refresh
  point or nextUpdate and signed live instead (:mod:`certstatus.pipeline.precomputed`);
* ``certstatus_ready`` — 1 when ``/ready`` would answer 200;
* ``certstatus_overload_refused_total{reason}`` — connections or requests refused for overload,
  counted by the HTTP edge (:mod:`certstatus.server.overload`);
* ``certstatus_store_up`` — 1 when the admin listener could read the store at this scrape;
* ``certstatus_worker_restarts_total`` — workers that exited on their own and were started again,
  counted by the supervisor (:data:`SUPERVISOR`);
* ``certstatus_generator_pending_serials{ca}``, ``certstatus_generator_responses_signed_total{ca}`` —
  the background generator's backlog and work (:mod:`certstatus.generator.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

#: Environment variable naming the folder of the workers' metric files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
AGE_BUCKETS = (1, 60, 600, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400)
_CACHE_SOURCES = frozenset({"cache", "precomputed", "edge"})
#: The states of a signer (:class:`certstatus.signing.signer_set.SignerState`), one series each.
SIGNER_STATES = ("active", "standby", "next", "expired", "revoked")


class RequestMetrics:
    """The per-request metrics of one worker (registered in their own registry).

    In multiprocess mode the values go to files whatever the registry; the
    private registry only keeps two instances in one process (tests) apart.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "certstatus_requests", "OCSP requests answered, by CA, responseStatus and source of the answer.",
            ["ca", "response_status", "source"], registry=registry,
        )
        self.certificates = Counter(
            "certstatus_certificates", "certStatus answered per CertID.", ["ca", "cert_status"], registry=registry,
        )
        self.latency = Histogram(
            "certstatus_request_duration_seconds", "Time from parsed request to answer.", ["source"],
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.response_age = Histogram(
            "certstatus_response_age_seconds", "Age of the responses served: now - thisUpdate.", ["source"],
            buckets=AGE_BUCKETS, registry=registry,
        )
        self.forward_attempts = Counter(
            "certstatus_forward_attempts", "Requests sent to remote responders, by result.", ["ca", "result"],
            registry=registry,
        )

    def forward_attempt(self, ca: str, url: str, result: str) -> None:
        """Count one try of a remote responder (the URL is left out: labels stay few)."""
        self.forward_attempts.labels(ca, result).inc()


@dataclass(frozen=True)
class Snapshot:
    """Figures the admin listener reads at scrape time."""

    sources: tuple  # certstatus.sources.health.SourceAge
    signers: tuple  # certstatus.signing.signer_set.SignerState
    ready: bool
    store_up: bool = True


class OperationsCollector:
    """Gauges computed at scrape time from the store, the signers and the workers' counters."""

    def __init__(self, snapshot: Callable[[], Snapshot], metrics_dir: str) -> None:
        self.snapshot = snapshot
        self.metrics_dir = metrics_dir

    def collect(self) -> Iterable:
        snapshot = self.snapshot()
        age = GaugeMetricFamily("certstatus_data_age_seconds", "Age of each CA's data: now - CRL thisUpdate or import time.",
                                labels=["ca", "source"])
        next_update = GaugeMetricFamily("certstatus_data_next_update_timestamp_seconds",
                                        "nextUpdate of each CA's CRL (Unix time).", labels=["ca", "source"])
        for source in snapshot.sources:
            age.add_metric([source.ca, source.kind], source.age_seconds)
            if source.next_update is not None:
                next_update.add_metric([source.ca, source.kind], source.next_update.timestamp())
        not_after = GaugeMetricFamily("certstatus_signer_not_after_timestamp_seconds", "notAfter of each signer (Unix time).",
                                      labels=["ca", "signer"])
        states = GaugeMetricFamily("certstatus_signer_state", "1 for the state each signer is in, 0 for the others.",
                                   labels=["ca", "signer", "state"])
        warning = GaugeMetricFamily("certstatus_signer_expiry_warning",
                                    "1 when the active signer expires within the warning time and has no successor.",
                                    labels=["ca", "signer"])
        for state in snapshot.signers:
            not_after.add_metric([state.ca, state.name], state.not_after.timestamp())
            for name in SIGNER_STATES:
                states.add_metric([state.ca, state.name, name], 1 if state.state == name else 0)
            warning.add_metric([state.ca, state.name], 1 if state.warning else 0)
        ready = GaugeMetricFamily("certstatus_ready", "1 when /ready answers 200.", value=1 if snapshot.ready else 0)
        store_up = GaugeMetricFamily("certstatus_store_up", "1 when the store could be read at this scrape.",
                                     value=1 if snapshot.store_up else 0)
        restarts = CounterMetricFamily("certstatus_worker_restarts", "Worker processes that exited on their own and were started again.",
                                       value=SUPERVISOR.worker_restarts)
        yield from (age, next_update, not_after, states, warning, ready, store_up, restarts, self._cache_hit_ratio())

    def _cache_hit_ratio(self) -> GaugeMetricFamily:
        hits = total = 0.0
        for family in MultiProcessCollector(None, path=self.metrics_dir).collect():
            if family.name != "certstatus_requests":
                continue
            for sample in family.samples:
                if sample.name == "certstatus_requests_total" and sample.labels.get("response_status") == "successful":
                    total += sample.value
                    if sample.labels.get("source") in _CACHE_SOURCES:
                        hits += sample.value
        return GaugeMetricFamily("certstatus_cache_hit_ratio",
                                 "Successful answers from a cache or precomputed, over all successful answers.",
                                 value=hits / total if total else 0.0)


class SupervisorCounts:
    """What the supervisor counts in its own memory and the admin listener (in the same process)
    exports: its ``prometheus_client`` was imported before ``PROMETHEUS_MULTIPROC_DIR`` was set,
    so its own Counter objects would not reach the workers' files."""

    def __init__(self) -> None:
        self.worker_restarts = 0

    def worker_restarted(self) -> None:
        """A worker exited on its own and another is started (``certstatus_worker_restarts_total``)."""
        self.worker_restarts += 1


#: The counts of this process when it supervises workers.
SUPERVISOR = SupervisorCounts()


def admin_registry(metrics_dir: str, snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """The registry the admin listener serves: every worker's metrics, summed, plus the gauges."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)
    registry.register(OperationsCollector(snapshot, metrics_dir))
    return registry
