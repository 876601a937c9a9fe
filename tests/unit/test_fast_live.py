"""The responder's fast path for live CAs (server/responder.py), fed real bytes through HttpProtocol.

Each test builds one worker's application over a real SQLite store, on a
ManualClock, with its responder as a worker has it, and talks HTTP/1.1 to
:class:`HttpProtocol` through an in-memory transport. The reference is the
same request answered by the CA's whole plan (a responder without fast plans)
at the same instant: with the RSA demo PKI signatures are deterministic, so
whole HTTP responses compare byte for byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from prometheus_client import CollectorRegistry

from certstatus.app import build_application, prepare
from certstatus.clock import ManualClock
from certstatus.config_ops import AuditSettings
from certstatus.metrics import RequestMetrics
from certstatus.server.responder import Responder
from certstatus.server.connection import ServerState
from certstatus.store.sqlite import SQLiteStore
from tests.edge_wire import NONCE, exchange, get, post, split
from tests.precomputed_helpers import ca_settings, copy_pki, multi_request_der, request_der, revoke_in_index, settings_for


class Worker:
    """One worker with a live CA, its responder, and a second state whose requests all follow the whole plan."""

    def __init__(self, pki, folder, *, ops=None, more_cas=(), **ca_changes) -> None:
        self.pki = pki
        self.clock = ManualClock(ca_changes.pop("start", None) or dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        mode = ca_changes.pop("mode", "live")
        settings = settings_for(folder / "store.sqlite3", ca_settings(pki, mode, path="/demo/", **ca_changes), *more_cas)
        if ops is not None:
            settings = dataclasses.replace(settings, ops=ops(settings.ops))
        prepare(settings, self.clock)
        self.store = SQLiteStore(settings.server.database)
        self.registry = CollectorRegistry()
        self.metrics = RequestMetrics(self.registry)
        self.app = build_application(settings, self.clock, watch=False, metrics=self.metrics)
        self.responder = self.app.responder
        self.state = ServerState(self.responder)
        self.reference = ServerState(Responder(self.app.http, registry=self.app.registry))  # every CA's whole plan

    def send(self, raw: bytes, *, fast: bool = True) -> bytes:
        """Open a connection, send ``raw``, return every byte written back."""
        return exchange(self.state if fast else self.reference, raw)

    def counted(self) -> int:
        """Answers the fast path gave since the last call (its metrics flushed)."""
        return self.responder.flush_metrics()

    def close(self) -> None:
        self.app.close()
        self.store.close()


@pytest.fixture
def worker(demo_pki_rsa, tmp_path):
    made = []

    def make(**changes) -> Worker:
        folder = tmp_path / f"w{len(made)}"
        folder.mkdir()
        made.append(Worker(copy_pki(demo_pki_rsa, folder / "pki"), folder, **changes))
        return made[-1]

    yield make
    for item in made:
        item.close()


def status_of(response: bytes) -> ocsp.OCSPCertStatus:
    return ocsp.load_der_ocsp_response(split(response)[2]).certificate_status


def test_the_fast_path_sends_byte_for_byte_what_the_whole_plan_sends(worker):
    w = worker(unknown_serials="revoked")
    requests = [
        post(request_der(w.pki, "good")),
        post(request_der(w.pki, "revoked-keycompromise", algorithm="sha256")),
        post(request_der(w.pki, "revoked-superseded")),
        post(request_der(w.pki, 0x7FFF_0001)),  # never issued: extended revoked (RFC 6960 §2.2)
        get(request_der(w.pki, "good")),
        post(request_der(w.pki, "good", nonce=NONCE)),
        post(request_der(w.pki, "good"), "/demo", "Connection: close"),
    ]
    for request in requests:
        for step in (0.25, 3600.5):
            w.clock.advance(step)
            answered = w.send(request)
            assert w.counted() == 1  # by the fast path
            assert answered == w.send(request, fast=False)
            assert w.counted() == 0
    assert status_of(w.send(requests[3])) is ocsp.OCSPCertStatus.REVOKED
    nonce = ocsp.load_der_ocsp_response(split(w.send(requests[5]))[2]).extensions.get_extension_for_class(x509.OCSPNonce)
    assert nonce.value.nonce == NONCE
    assert split(w.send(requests[5]))[1]["cache-control"] == "no-store"
    assert split(w.send(requests[6]))[1]["connection"] == "close"


def test_every_other_request_takes_the_handlers_path(worker):
    w = worker()
    plain = request_der(w.pki, "good")
    etag = split(w.send(post(plain)))[1]["etag"]
    w.counted()
    several = multi_request_der(plain, request_der(w.pki, "revoked-superseded"))
    others = [
        get(plain, "HEAD"),
        post(plain, "/demo", f"If-None-Match: {etag}"),  # RSA: the same bytes within the second, so 304
        post(several),
        post(b"\x30\x03\x02\x01\x01"),  # malformed
        post(plain, "/elsewhere"),  # no route
        get(b"", "GET").replace(b"/demo/", b"/health"),
    ]
    statuses = [split(w.send(request))[0] for request in others]
    assert statuses == [200, 304, 200, 200, 404, 200]
    assert w.counted() == 0
    response = ocsp.load_der_ocsp_response(split(w.send(post(several)))[2])
    assert [r.certificate_status for r in response.responses] == [ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED]
    malformed = ocsp.load_der_ocsp_response(split(w.send(post(b"\x30\x03\x02\x01\x01")))[2])
    assert malformed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_a_revocation_in_the_store_is_answered_at_once(worker, demo_pki_rsa):
    w = worker()
    request = post(request_der(w.pki, "good"))
    assert status_of(w.send(request)) is ocsp.OCSPCertStatus.GOOD
    revoke_in_index(w.pki, demo_pki_rsa.serials["good"], w.store, w.app.registry.cas[0], w.clock)
    assert status_of(w.send(request)) is ocsp.OCSPCertStatus.REVOKED  # no change notice needed: nothing is cached
    assert w.counted() == 2


def test_stale_data_takes_the_handlers_path_which_answers_try_later(worker, demo_pki_rsa):
    crl_next_update = x509.load_pem_x509_crl(demo_pki_rsa.crl.read_bytes()).next_update_utc
    w = worker(start=crl_next_update - dt.timedelta(minutes=10), stale_grace=60)
    request = post(request_der(w.pki, "good"))
    assert split(w.send(request))[0] == 200 and w.counted() == 1
    w.clock.set(crl_next_update + dt.timedelta(seconds=61))
    w.app.pipeline.guard.invalidate(w.app.registry.cas[0].issuer_id)  # its 1 s re-read interval, in wall time
    status, headers, body = split(w.send(request))
    assert (status, headers["cache-control"]) == (503, "no-cache")
    assert ocsp.load_der_ocsp_response(body).response_status is ocsp.OCSPResponseStatus.TRY_LATER
    assert w.counted() == 0


def test_fast_answers_reach_the_metrics_as_the_pipelines_do(worker):
    w = worker()
    requests = [post(request_der(w.pki, name)) for name in ("good", "good", "revoked-keycompromise")]
    for request in requests:
        w.send(request)
    assert w.counted() == 3
    reference = worker()
    for request in requests:
        reference.send(request, fast=False)
    samples = {}
    for name, registry in (("fast", w.registry), ("pipeline", reference.registry)):
        samples[name] = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for metric in registry.collect() for sample in metric.samples
            if sample.name.endswith(("_total", "_count")) and "latency" not in sample.name and "age" not in sample.name
        }  # fmt: skip
    assert samples["fast"] == samples["pipeline"] and samples["fast"]
    requests_total = [value for (name, labels), value in samples["fast"].items() if name == "certstatus_requests_total"]
    assert requests_total == [3.0]


def test_the_fast_path_is_off_when_the_pipeline_must_see_every_request(worker, tmp_path):
    with_audit = worker(ops=lambda ops: dataclasses.replace(ops, audit=AuditSettings(log=str(tmp_path / "audit.log"))))
    named = worker(authorization="by_name", authorized_names=("CN=alice",))
    forwarded = worker(forward=("http://127.0.0.1:9/",))
    for w in (with_audit, named, forwarded):
        assert w.responder.fast == {} and not w.app.pipeline.plans["demo"].fast
    assert split(with_audit.send(post(request_der(with_audit.pki, "good"))))[0] == 200
    assert with_audit.counted() == 0  # the whole plan answered: the audit log saw it
    assert worker(mode="cached").responder.fast  # a cached CA's plan is fast too


def test_a_ca_is_answered_on_its_own_path_only(worker, demo_pki, tmp_path):
    other = copy_pki(demo_pki, tmp_path / "other-pki")
    w = worker(more_cas=(ca_settings(other, "live", name="other", path="/other/"),))
    mine = request_der(w.pki, "good")
    assert status_of(w.send(post(mine))) is ocsp.OCSPCertStatus.GOOD and w.counted() == 1
    refused = w.send(post(mine, "/other"))  # the route of another CA: the pipeline refuses it
    assert ocsp.load_der_ocsp_response(split(refused)[2]).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert refused == w.send(post(mine, "/other"), fast=False) and w.counted() == 0
    assert status_of(w.send(post(request_der(other, "good"), "/other"))) is ocsp.OCSPCertStatus.GOOD
    assert w.counted() == 1
