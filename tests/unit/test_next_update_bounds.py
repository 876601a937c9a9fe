"""nextUpdate never outlives the signer certificate nor the CA's CRL, on every path that answers.

Mozilla Root Store Policy and RFC 6960 §2.4: a response's nextUpdate is at most the signer
certificate's notAfter, and for a CA whose status comes from a CRL at most that CRL's
nextUpdate (newer information is due then). The demo PKI is changed so that one bound comes
before thisUpdate + validity (1 day): a delegated responder certificate ending in 6 hours, or a
CRL whose nextUpdate is 3 hours away. Every path is walked — the responder's fast path (live),
the pipeline with several CertIDs, a cached CA's live signing, the precomputed generator, an
edge cache hit — and the responses are read with cryptography's parser; the RFC 5019 headers
(Expires, max-age) must follow.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from certstatus.demo_pki import issue_cert, sign_crl
from certstatus.model import RevokedEntry
from certstatus.next_update import STALE_FLOOR, next_update_limit
from certstatus.pipeline.base import OCSPError
from certstatus.signing.keys import load_certificates, load_private_key
from tests.edge_wire import NONCE, post, split
from tests.precomputed_helpers import answer, copy_pki, multi_request_der, request_der
from tests.unit.test_edge_cache import Worker

HOUR = dt.timedelta(hours=1)
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _shorten(pki, bound: str) -> dt.datetime:
    """Re-issue the responder certificate (``"signer"``) or re-sign the CRL (``"crl"``) so that it ends
    before NOW + 1 day; return that end."""
    ca_cert = load_certificates(pki.ca_cert)[0]
    ca_key = load_private_key(pki.ca_key, None).key
    if bound == "signer":
        end = NOW + 6 * HOUR
        responder_key = load_private_key(pki.ocsp_key, None).key
        responder = issue_cert(ca_cert, ca_key, responder_key.public_key(), common_name="short responder",
                               not_before=NOW - 24 * HOUR, not_after=end, ocsp_signing=True)  # fmt: skip
        pki.ocsp_cert.write_bytes(responder.public_bytes(serialization.Encoding.PEM))
        return end
    end = NOW + 3 * HOUR
    old = x509.load_pem_x509_crl(pki.crl.read_bytes())
    entries = [RevokedEntry(r.serial_number, r.revocation_date_utc) for r in old]
    crl = sign_crl(ca_cert, ca_key, entries, crl_number=2, this_update=NOW - dt.timedelta(minutes=1), next_update=end)
    pki.crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return end


def _world(pki, folder, mode: str, **ca_changes) -> Worker:
    """One worker on a ManualClock at NOW: store, generated responses, its responder with the edge cache."""
    return Worker(pki, folder, mode, start=NOW, **ca_changes)


def _has_nonce(parsed: ocsp.OCSPResponse) -> bool:
    return any(isinstance(extension.value, x509.OCSPNonce) for extension in parsed.extensions)


def _live_fast_path(world):
    response = world.send(post(request_der(world.pki, "good")))
    assert world.app.responder.counts["live"].flush(None) == 1  # the fast path answered, not the handler
    return [response]


def _pipeline_several_certids(world):
    der = multi_request_der(*(request_der(world.pki, name) for name in ("good", "revoked-keycompromise", "good2")))
    found = answer(world.app, der, world.clock)
    assert found.source == "live" and len(found.statuses) == 3
    return [found.der]


def _cached_live_signing(world):
    response = world.send(post(request_der(world.pki, "revoked-superseded", nonce=NONCE)))
    body = split(response)[2]
    assert ocsp.load_der_ocsp_response(body).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == NONCE
    return [response]


def _precomputed_generator(world):
    issuer_id = world.app.registry.cas[0].issuer_id
    stored = [response.der for _, response in world.store.stored_responses(issuer_id, "sha256")]
    assert len(stored) >= 8  # every issued serial of the demo CA
    served = answer(world.app, request_der(world.pki, "good", algorithm="sha256"), world.clock)
    assert served.source == "precomputed"
    return stored


def _edge_cache_hit(world):
    request = post(request_der(world.pki, "revoked-keycompromise"))
    world.send(request)  # the handler answers and fills the edge cache
    world.clock.advance(30)
    hit = world.send(request)
    assert world.edge.flush_metrics() == 1
    return [hit]


PATHS = {
    "live fast path": ("live", _live_fast_path),
    "pipeline, several CertIDs": ("live", _pipeline_several_certids),
    "cached, live signing": ("cached", _cached_live_signing),
    "precomputed generator": ("precomputed", _precomputed_generator),
    "edge cache hit": ("precomputed", _edge_cache_hit),
}


@pytest.mark.parametrize("bound", ["signer", "crl"])
@pytest.mark.parametrize("path", list(PATHS))
def test_next_update_is_within_the_signer_and_crl_bounds_on_every_path(demo_pki, tmp_path, path, bound):
    pki = copy_pki(demo_pki, tmp_path / "pki")
    end = _shorten(pki, bound)
    signer_not_after = load_certificates(pki.ocsp_cert)[0].not_valid_after_utc
    crl_next_update = x509.load_pem_x509_crl(pki.crl.read_bytes()).next_update_utc
    mode, walk = PATHS[path]
    world = _world(pki, tmp_path, mode)
    try:
        for item in walk(world):
            http = item.startswith(b"HTTP/1.1")
            parsed = ocsp.load_der_ocsp_response(split(item)[2] if http else item)
            assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
            for single in parsed.responses:
                assert single.this_update_utc < single.next_update_utc <= signer_not_after
                assert single.next_update_utc <= crl_next_update
                assert single.next_update_utc == end  # the bound, not thisUpdate + 1 day
            headers = split(item)[1] if http else {}
            if http and _has_nonce(parsed):
                assert headers["cache-control"] == "no-store"  # unique to its request: no cache headers
            elif http:  # RFC 5019 §6.2: the cache headers derive from nextUpdate
                assert email.utils.parsedate_to_datetime(headers["expires"]) == end
                max_age = int(re.search(r"max-age=(\d+)", headers["cache-control"]).group(1))
                assert max_age <= (end - world.clock.now()).total_seconds()
    finally:
        world.close()


def test_past_the_crl_next_update_within_the_grace_responses_live_a_short_floor(demo_pki, tmp_path):
    """The next CRL is late: within stale_grace the CA answers, with a nextUpdate STALE_FLOOR ahead
    (a nextUpdate at or before the CRL's would leave no validity); past the grace it answers tryLater."""
    pki = copy_pki(demo_pki, tmp_path / "pki")
    crl_next_update = x509.load_pem_x509_crl(pki.crl.read_bytes()).next_update_utc
    world = _world(pki, tmp_path, "live", stale_grace=3600)
    try:
        world.clock.set(crl_next_update + dt.timedelta(minutes=20))
        world.app.pipeline.guard.invalidate(world.app.registry.cas[0].issuer_id)
        single = ocsp.load_der_ocsp_response(answer(world.app, request_der(pki, "good"), world.clock).der)
        assert single.next_update_utc == world.clock.now() + STALE_FLOOR
        world.clock.set(crl_next_update + dt.timedelta(minutes=61))
        world.app.pipeline.guard.invalidate(world.app.registry.cas[0].issuer_id)
        with pytest.raises(OCSPError, match="stale"):
            answer(world.app, request_der(pki, "good"), world.clock)
    finally:
        world.close()


def test_the_limit_rule():
    """next_update_limit: None when validity ends first; the earlier bound otherwise; never before
    thisUpdate + STALE_FLOOR for the CRL; the signer's notAfter even when it ends this second."""
    this, validity_end = NOW, NOW + 24 * HOUR
    assert next_update_limit(this, validity_end, NOW + 400 * 24 * HOUR, NOW + 7 * 24 * HOUR) is None
    assert next_update_limit(this, validity_end, NOW + 6 * HOUR, NOW + 3 * HOUR) == NOW + 3 * HOUR
    assert next_update_limit(this, validity_end, NOW + 2 * HOUR, NOW + 3 * HOUR) == NOW + 2 * HOUR
    assert next_update_limit(this, validity_end, NOW + 400 * 24 * HOUR, NOW - HOUR) == NOW + STALE_FLOOR
    assert next_update_limit(this, validity_end, NOW + 400 * 24 * HOUR, NOW + dt.timedelta(seconds=10)) == NOW + STALE_FLOOR
    assert next_update_limit(this, validity_end, NOW + dt.timedelta(minutes=1), NOW - HOUR) == NOW + dt.timedelta(minutes=1)
    assert next_update_limit(this, validity_end, NOW, None) == NOW  # callers answer tryLater: no validity left
