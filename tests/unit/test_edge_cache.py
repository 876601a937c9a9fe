"""The HTTP edge's answer cache (server/edge.py), fed real bytes through HttpProtocol.

Each test builds one worker's application over a real SQLite store with the
generator's pre-signed responses, on a ManualClock, attaches the edge cache
as a worker does (the responder of :func:`build_application`), and talks HTTP/1.1 to
:class:`HttpProtocol` through an in-memory transport. The handler's answer
(the first request, which fills the cache) is the reference for every hit.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
import sys

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from prometheus_client import CollectorRegistry, Histogram

from certstatus.app import build_application, prepare
from certstatus.clock import ManualClock
from certstatus.config_ops import AuditSettings
from certstatus.generator.run import Generator
from certstatus.metrics import LATENCY_BUCKETS, RequestMetrics
from certstatus.pipeline.cache import ENTRY_OVERHEAD
from certstatus.server.edge import EDGE_ENTRY_OVERHEAD, add_observations
from certstatus.server.connection import HttpProtocol, ServerState
from certstatus.store.changes import StoreChange
from certstatus.store.sqlite import SQLiteStore
from tests.edge_wire import NONCE, Loop, Wire, get, post, split
from tests.precomputed_helpers import ca_settings, copy_pki, multi_request_der, request_der, revoke_in_index, settings_for

class Worker:
    """One worker: store, generated responses, application with its edge cache, a ManualClock."""

    def __init__(self, pki, folder, mode: str = "precomputed", *, cache_bytes: int = 1 << 20, ops=None, **ca_changes) -> None:
        self.pki = pki
        self.clock = ManualClock(ca_changes.pop("start", None) or dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        settings = settings_for(folder / "store.sqlite3", ca_settings(pki, mode, path="/demo/", **ca_changes),
                                cache_bytes=cache_bytes)
        if ops is not None:
            settings = dataclasses.replace(settings, ops=ops(settings.ops))
        self.settings = settings
        prepare(settings, self.clock)
        self.store = SQLiteStore(settings.server.database)
        self.generator = Generator(settings, self.store, clock=self.clock, processes=0)
        self.generator.run_pass()
        self.metrics = RequestMetrics(CollectorRegistry())
        self.app = build_application(settings, self.clock, watch=False, metrics=self.metrics)
        self.edge = self.app.responder.edge
        self.state = ServerState(self.app.responder)

    def send(self, raw: bytes) -> bytes:
        """Open a connection, send ``raw``, return every byte written back."""
        wire = Wire()
        protocol = HttpProtocol(self.state, Loop())
        protocol.connection_made(wire)
        protocol.data_received(raw)
        return bytes(wire.data)

    def close(self) -> None:
        self.generator.close()
        self.app.close()
        self.store.close()


@pytest.fixture
def worker(demo_pki, tmp_path):
    made = []

    def make(mode: str = "precomputed", **changes) -> Worker:
        folder = tmp_path / f"w{len(made)}"
        folder.mkdir()
        made.append(Worker(copy_pki(demo_pki, folder / "pki"), folder, mode, **changes))
        return made[-1]

    yield make
    for item in made:
        item.close()


def max_age(response: bytes) -> int:
    return int(re.search(r"max-age=(\d+)", split(response)[1]["cache-control"]).group(1))


def test_a_hit_is_byte_for_byte_what_the_handler_sends(worker):
    w = worker()
    for request in (post(request_der(w.pki, "good")), get(request_der(w.pki, "revoked-keycompromise"))):
        first = w.send(request)  # the handler answers and fills the edge
        assert w.edge.flush_metrics() == 0
        w.clock.advance(7)
        second = w.send(request)
        assert w.edge.flush_metrics() == 1  # answered by the edge
        w.edge._entries.clear()
        reference = w.send(request)  # the handler again, at the same time
        assert second == reference
        status, headers, body = split(second)
        assert status == 200 and body == split(first)[2]
        assert headers["content-length"] == str(len(body)) and headers["etag"] == split(first)[1]["etag"]
        assert headers["cache-control"].endswith(", public, no-transform, must-revalidate")


def test_connection_close_is_kept_and_the_connection_closed(worker):
    w = worker()
    request = post(request_der(w.pki, "good"), "/demo", "Connection: close")
    w.send(request)
    wire = Wire()
    protocol = HttpProtocol(w.state, Loop())
    protocol.connection_made(wire)
    protocol.data_received(request)
    assert w.edge.flush_metrics() == 1 and wire.closed
    assert split(bytes(wire.data))[1]["connection"] == "close"


def test_max_age_counts_down_and_never_exceeds_next_update_minus_now(worker):
    w = worker()
    request = post(request_der(w.pki, "good"))
    first = w.send(request)
    next_update = ocsp.load_der_ocsp_response(split(first)[2]).next_update_utc
    ages = []
    for step in (0.5, 1, 3600.25, 7200):
        w.clock.advance(step)
        response = w.send(request)
        age = max_age(response)
        assert age <= (next_update - w.clock.now()).total_seconds() < age + 1
        assert split(response)[1]["date"] == w.clock.now().strftime("%a, %d %b %Y %H:%M:%S GMT")
        ages.append(age)
    assert ages == sorted(ages, reverse=True) and len(set(ages)) == 4
    assert w.edge.flush_metrics() == 4


def test_an_entry_is_not_served_past_its_refresh_point(worker):
    """Validity 1 day: the refresh point is thisUpdate + 16 h (8 h before nextUpdate)."""
    w = worker()
    request = post(request_der(w.pki, "good"))
    stored = split(w.send(request))[2]
    w.clock.advance(16 * 3600 - 1)
    assert split(w.send(request))[2] == stored
    assert w.edge.flush_metrics() == 1
    w.clock.advance(1)
    late = split(w.send(request))[2]
    assert w.edge.flush_metrics() == 0  # the handler signed a new response
    response = ocsp.load_der_ocsp_response(late)
    assert late != stored and response.this_update_utc == w.clock.now()


def test_a_revocation_pushed_through_the_store_is_answered_at_once(worker, demo_pki):
    w = worker("cached")
    request = post(request_der(w.pki, "good"))
    w.send(request)
    w.send(request)
    assert w.edge.flush_metrics() == 1
    served = w.app.registry.cas[0]
    revoke_in_index(w.pki, demo_pki.serials["good"], w.store, served, w.clock)
    # What the worker's ChangeWatcher thread does when it sees the issuer's counter grow:
    w.app.changes.publish(StoreChange(served.issuer_id, w.store.change_counters()[served.issuer_id]))
    answer = ocsp.load_der_ocsp_response(split(w.send(request))[2])
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert w.edge.flush_metrics() == 0


def test_a_change_of_source_states_only_keeps_the_cached_answers(worker):
    """A CRL re-issued with the same entries (StoreChange statuses=False) changes no answer: both caches keep it."""
    w = worker("cached")
    request = post(request_der(w.pki, "good"))
    w.send(request)
    w.send(request)
    assert w.edge.flush_metrics() == 1
    issuer_id = w.app.registry.cas[0].issuer_id
    counter = w.store.change_counters()[issuer_id]
    w.app.changes.publish(StoreChange(issuer_id, counter, statuses=False))
    w.send(request)
    assert w.edge.flush_metrics() == 1  # still an edge hit
    w.app.changes.publish(StoreChange(issuer_id, counter + 1))
    w.send(request)
    assert w.edge.flush_metrics() == 0  # a status change drops it (the handler answered)


def test_stale_data_answers_try_later_even_when_cached(worker, demo_pki):
    crl_next_update = x509.load_pem_x509_crl(demo_pki.crl.read_bytes()).next_update_utc
    w = worker(start=crl_next_update - dt.timedelta(minutes=10), stale_grace=60)
    request = post(request_der(w.pki, "good"))
    # Within the grace: answered (nextUpdate a short floor ahead, certstatus.next_update) and kept by the edge.
    w.clock.set(crl_next_update + dt.timedelta(seconds=50))
    assert split(w.send(request))[0] == 200
    w.clock.set(crl_next_update + dt.timedelta(seconds=59))
    assert split(w.send(request))[0] == 200 and w.edge.flush_metrics() == 1
    w.clock.set(crl_next_update + dt.timedelta(seconds=61))
    w.app.pipeline.guard.invalidate(w.app.registry.cas[0].issuer_id)  # its 1 s re-read interval, in wall time
    status, headers, body = split(w.send(request))
    assert (status, headers["cache-control"]) == (503, "no-cache")
    assert ocsp.load_der_ocsp_response(body).response_status is ocsp.OCSPResponseStatus.TRY_LATER
    assert w.edge.flush_metrics() == 0


def test_on_stale_serve_keeps_serving_from_the_edge(worker, demo_pki):
    crl_next_update = x509.load_pem_x509_crl(demo_pki.crl.read_bytes()).next_update_utc
    w = worker(start=crl_next_update - dt.timedelta(minutes=10), on_stale="serve")
    request = post(request_der(w.pki, "good"))
    w.clock.set(crl_next_update + dt.timedelta(minutes=5))
    w.send(request)  # past the CRL's nextUpdate: signed with a nextUpdate a short floor ahead (certstatus.next_update)
    w.clock.advance(60)
    status, _, body = split(w.send(request))
    assert status == 200 and w.edge.flush_metrics() == 1
    assert ocsp.load_der_ocsp_response(body).next_update_utc == crl_next_update + dt.timedelta(minutes=10)


def test_nonce_head_if_none_match_and_several_certids_take_the_handlers_path(worker):
    w = worker("cached")
    plain = request_der(w.pki, "good")
    filled = w.send(post(plain))
    etag = split(filled)[1]["etag"]

    echoed = ocsp.load_der_ocsp_response(split(w.send(post(request_der(w.pki, "good", nonce=NONCE))))[2])
    assert echoed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == NONCE

    w.send(get(plain))  # fills the GET key
    status, headers, body = split(w.send(get(plain, "HEAD")))
    assert (status, body, headers["content-length"]) == (200, b"", str(len(split(filled)[2])))

    status, headers, body = split(w.send(post(plain, "/demo", f"If-None-Match: {etag}")))
    assert (status, body, headers["etag"]) == (304, b"", etag)

    several = multi_request_der(plain, request_der(w.pki, "revoked-superseded"))
    for _ in range(2):
        response = ocsp.load_der_ocsp_response(split(w.send(post(several)))[2])
        assert [r.certificate_status for r in response.responses] == [ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED]
    assert w.edge.flush_metrics() == 0
    assert len(w.edge) == 2  # the plain POST and GET only


def test_a_precomputed_nonce_request_is_answered_without_filling(worker):
    w = worker("precomputed")
    with_nonce = post(request_der(w.pki, "good", nonce=NONCE))
    first, second = w.send(with_nonce), w.send(with_nonce)
    assert split(first)[2] == split(second)[2]  # the stored response (RFC 5019 §4: nonce ignored)
    assert len(w.edge) == 0 and w.edge.flush_metrics() == 0


def test_a_post_on_the_ca_path_with_or_without_its_slash_is_one_key(worker):
    w = worker()
    der = request_der(w.pki, "good")
    w.send(post(der, "/demo"))
    w.send(post(der, "/demo/"))  # the same route: the same key, a hit
    assert w.edge.flush_metrics() == 1
    w.send(post(der, "/elsewhere"))
    assert split(w.send(post(der, "/elsewhere")))[0] == 404
    assert len(w.edge) == 1 and w.edge.flush_metrics() == 0


def test_memory_is_bounded_by_the_shared_budget_least_recently_used_out(worker, demo_pki):
    w = worker(cache_bytes=3000)
    names = ["good", "good2", "revoked-keycompromise", "revoked-superseded"]
    ders = {name: request_der(w.pki, name) for name in names}
    keys = {name: b"\0/demo\0" + der for name, der in ders.items()}  # server/connection.py _edge_key
    sizes = {}
    for name in names:
        w.send(post(ders[name]))
        sizes[name] = w.edge._entries[keys[name]][-1] + len(keys[name])  # counted besides the key, and the key
        assert w.edge.budget.used <= w.edge.budget.max_bytes == 3000
        assert w.app.pipeline.cache.cache.size == 0  # the edge took each answer over
    assert all(size > EDGE_ENTRY_OVERHEAD + 700 for size in sizes.values())
    assert len(w.edge) == 3000 // max(sizes.values()) == 2  # the oldest went out
    assert list(w.edge._entries) == [keys["revoked-keycompromise"], keys["revoked-superseded"]]
    w.send(post(ders["revoked-keycompromise"]))  # a hit makes it the most recently used
    assert w.edge.flush_metrics() == 1
    w.send(post(ders["good"]))  # not held any more: refilled, evicting the least recently used
    assert list(w.edge._entries) == [keys["revoked-keycompromise"], keys["good"]]
    assert w.edge.budget.used <= 3000 and ENTRY_OVERHEAD > 0


def test_hits_never_grow_the_table(worker):
    """A hit reorders the LRU without a delete and reinsert: those leave a dummy slot each, and the
    table is rebuilt when they fill it (a stall of ~9 ms of CPU per 100 000 entries held, with
    every connection of the worker waiting)."""
    w = worker()
    der = request_der(w.pki, "good")
    w.send(post(der))
    key = b"\0/demo\0" + der
    entry = w.edge._entries[key]
    keys = [key + i.to_bytes(2, "big") for i in range(2000)]
    for extra in keys:  # entries as the hit path sees them (the budget is not involved in a hit)
        w.edge._entries[extra] = entry
    size = sys.getsizeof(w.edge._entries)
    for _ in range(5):
        for extra in keys:
            assert w.edge.lookup(extra, False) is not None
    assert sys.getsizeof(w.edge._entries) == size
    assert list(w.edge._entries)[0] == key and list(w.edge._entries)[-1] == keys[-1]  # least recently used first
    w.edge.flush_metrics()


def test_the_edge_is_off_when_every_request_must_reach_the_pipeline(worker, tmp_path):
    with_audit = worker(ops=lambda ops: dataclasses.replace(ops, audit=AuditSettings(log=str(tmp_path / "audit.log"))))
    assert with_audit.edge is None
    assert worker("live").edge is None
    assert worker(authorization="by_name", authorized_names=("CN=alice",)).edge is None
    assert worker(cache_bytes=0).edge is None


def test_hits_reach_the_metrics_exactly_at_each_flush(worker):
    w = worker()
    request = post(request_der(w.pki, "good"))
    w.send(request)
    for _ in range(5):
        w.send(request)
    assert w.edge.flush_metrics() == 5
    requests = w.metrics.requests.labels("demo", "successful", "edge")._value.get()
    latency = w.metrics.latency.labels("edge")
    assert requests == 5 and latency._sum.get() > 0
    assert sum(bucket.get() for bucket in latency._buckets) == 5
    assert sum(bucket.get() for bucket in w.metrics.response_age.labels("edge")._buckets) == 5
    assert w.edge.flush_metrics() == 0  # nothing counted twice
    assert w.metrics.requests.labels("demo", "successful", "edge")._value.get() == 5
    assert w.app.responder.flush_metrics() == 1  # the first answer: a cold miss, the stored response
    assert w.metrics.requests.labels("demo", "successful", "precomputed")._value.get() == 1


def test_add_observations_equals_observing_one_by_one():
    values = [0.00005, 0.0001, 0.0003, 0.002, 0.002, 0.7, 12.0, 30.0]
    reference = Histogram("reference", "one by one", buckets=LATENCY_BUCKETS, registry=CollectorRegistry())
    for value in values:
        reference.observe(value)
    batched = Histogram("batched", "at once", buckets=LATENCY_BUCKETS, registry=CollectorRegistry())
    from bisect import bisect_left

    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    for value in values:
        counts[bisect_left(LATENCY_BUCKETS, value)] += 1
    add_observations(batched, counts, sum(values))

    def samples(histogram):
        return [(s.name.split("_", 1)[1], s.labels, s.value) for m in histogram.collect() for s in m.samples
                if not s.name.endswith("_created")]

    assert samples(batched) == samples(reference)


def test_a_post_body_never_matches_a_get_key(worker):
    """GET keys are request targets, POST keys DER bodies (0x30 first): bytes shaped like a
    cached GET target, POSTed, are not a request and are answered malformedRequest."""
    w = worker()
    der = request_der(w.pki, "good")
    target = f"/demo/{base64.b64encode(der).decode()}".encode()
    assert split(w.send(get(der)))[0] == 200
    assert target in w.edge._entries
    status, _, body = split(w.send(post(target, "/")))
    assert status == 200 and ocsp.load_der_ocsp_response(body).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert w.edge.flush_metrics() == 0
