"""The worker's one answer path (server/responder.py): the fast plan against the whole plan.

Each test builds one worker's application over a real SQLite store (the generator's pre-signed
responses for precomputed and cached CAs), on a ManualClock, and talks HTTP/1.1 to
:class:`HttpProtocol` through an in-memory transport. The reference is the same request answered
by the CA's whole plan (a responder without fast plans: handler, pipeline steps, HTTP response
object) at the same instant: with the RSA demo PKI signatures are deterministic, so whole HTTP
responses compare byte for byte in every mode, live-signed misses included.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

import certstatus.protocol.fast_request as fast_request
import certstatus.server.http as http_module
import certstatus.server.responder as responder_module
from certstatus.server.connection import ServerState
from certstatus.server.responder import Responder
from tests.edge_wire import NONCE, exchange, get, post, split
from tests.precomputed_helpers import copy_pki, multi_request_der, request_der
from tests.unit.test_edge_cache import Worker

NEVER_ISSUED = 0x7FFF_0001


class Compared(Worker):
    """A worker (tests.unit.test_edge_cache) with a second state whose requests all follow the whole plan."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reference = ServerState(Responder(self.app.http, registry=self.app.registry))

    def send(self, raw: bytes, *, fast: bool = True) -> bytes:
        return exchange(self.state if fast else self.reference, raw)

    def answered_fast(self) -> int:
        """Answers the fast path gave (stored or signed, not edge hits) since the last call."""
        return sum(counts.flush(None) for counts in self.app.responder.counts.values())


@pytest.fixture
def worker(demo_pki_rsa, tmp_path):
    made = []

    def make(mode: str, **changes) -> Compared:
        folder = tmp_path / f"w{len(made)}"
        folder.mkdir()
        made.append(Compared(copy_pki(demo_pki_rsa, folder / "pki"), folder, mode, **changes))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.mark.parametrize("mode", ["live", "precomputed", "cached"])
def test_the_fast_plan_sends_byte_for_byte_what_the_whole_plan_sends(worker, mode):
    w = worker(mode, unknown_serials="revoked")
    assert w.app.pipeline.plans["demo"].fast
    requests = [
        post(request_der(w.pki, "good")),
        post(request_der(w.pki, "revoked-keycompromise", algorithm="sha256")),
        post(request_der(w.pki, "revoked-superseded")),
        post(request_der(w.pki, NEVER_ISSUED)),  # not pre-signed: extended revoked, signed live (RFC 6960 §2.2)
        get(request_der(w.pki, "good2")),
        post(request_der(w.pki, "good", nonce=NONCE)),  # live, cached: echoed; precomputed: ignored
        post(request_der(w.pki, "good", algorithm="sha384")),  # not the stored CertID form: signed live
        post(request_der(w.pki, "good"), "/demo", "Connection: close"),
    ]
    for request in requests:
        for step in (0.25, 3600.5):
            w.clock.advance(step)
            if w.edge is not None:
                w.edge._entries.clear()  # a cold cache each time: the fast path, not an edge hit
            answered = w.send(request)
            assert w.answered_fast() == 1
            assert answered == w.send(request, fast=False)
            assert w.answered_fast() == 0
            assert split(answered)[0] == 200


def test_a_cold_precomputed_miss_is_the_stored_bytes_without_the_handler_or_a_signature(worker, monkeypatch):
    w = worker("precomputed")
    issuer_id = w.app.registry.cas[0].issuer_id

    def refuse(*args, **kwargs):
        raise AssertionError("the fast plan must not reach this")

    monkeypatch.setattr(w.app.http, "run_query", refuse)
    monkeypatch.setattr(w.app.http, "pipeline", refuse)
    monkeypatch.setattr(w.app.pipeline.signer, "answer_single", refuse)
    assert len(w.edge) == 0  # a worker just started: nothing cached
    for name in ("good", "revoked-keycompromise"):
        stored = w.store.precomputed(issuer_id, w.pki.serials[name], "sha1", w.app.registry.cas[0].settings.signing_profile)
        status, headers, body = split(w.send(post(request_der(w.pki, name))))
        assert status == 200 and body == stored.der
        assert headers["cache-control"].endswith(", public, no-transform, must-revalidate")
    assert len(w.edge) == 2 and w.edge.flush_metrics() == 0  # each filled the edge cache, none was a hit
    assert w.send(post(request_der(w.pki, "good"))) and w.edge.flush_metrics() == 1


@pytest.mark.parametrize("mode", ["live", "precomputed", "cached"])
def test_no_request_is_parsed_twice(worker, monkeypatch, mode, demo_pki_rsa):
    crl_next_update = x509.load_pem_x509_crl(demo_pki_rsa.crl.read_bytes()).next_update_utc
    w = worker(mode, start=crl_next_update - dt.timedelta(minutes=10), stale_grace=60)
    calls = []
    real = fast_request.parse_request_fast

    def counted(der):
        calls.append(der)
        return real(der)

    monkeypatch.setattr(responder_module, "parse_request_fast", counted)
    monkeypatch.setattr(http_module, "parse_request_fast", counted)
    plain = request_der(w.pki, "good")
    etag = split(w.send(post(plain)))[1]["etag"]
    requests = [
        post(plain),  # fast plan (or an edge hit: no parse at all)
        get(plain, "HEAD"),  # the whole plan
        post(plain, "/demo", f"If-None-Match: {etag}"),
        post(multi_request_der(plain, request_der(w.pki, "revoked-superseded"))),
        post(request_der(w.pki, "good2", nonce=NONCE)),
        post(b"\x30\x03\x02\x01\x01"),  # malformed
    ]
    for request in requests:
        before = len(calls)
        w.send(request)
        assert len(calls) - before <= 1
    w.clock.set(crl_next_update + dt.timedelta(seconds=61))  # stale: the fast plan hands over to the whole plan
    w.app.pipeline.guard.invalidate(w.app.registry.cas[0].issuer_id)
    before = len(calls)
    status, _, body = split(w.send(post(request_der(w.pki, "good2"))))
    assert len(calls) - before == 1
    assert status == 503 and ocsp.load_der_ocsp_response(body).response_status is ocsp.OCSPResponseStatus.TRY_LATER
