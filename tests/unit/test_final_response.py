"""Final responses: a revoked certificate past its notAfter answered with nextUpdate 99991231235959Z.

ETSI EN 319 411-2 §6.3.10 allows a CA that keeps status after expiry to give such a certificate a
response that never needs replacing: its revocation can never change. ``final_response_after_expiry``
(with ``archive_cutoff``) turns it on per CA; every path that signs gives it — live signing in the
pipeline, the responder's fast path, the generator's pre-signed rows — and only to revoked and
expired certificates whose notAfter ``index.txt`` or an issued list gives. HTTP caches keep such an
answer no longer than any other.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from certstatus.config import ConfigError
from certstatus.config import ca_settings as parse_ca_settings
from certstatus.demo_pki import sign_crl
from certstatus.signing.keys import load_certificates, load_private_key
from certstatus.sources.records import RevokedEntry
from tests.edge_wire import post, split
from tests.precomputed_helpers import answer, copy_pki, multi_request_der, request_der
from tests.unit.test_next_update_bounds import NOW, _shorten, _world

#: GeneralizedTime 99991231235959Z as cryptography reads it.
FINAL = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
FINAL_CA = {"archive_cutoff": "ca-not-before", "final_response_after_expiry": True}


def _revoke_the_expired_certificate(pki, reason=x509.ReasonFlags.key_compromise) -> None:
    """Re-sign the demo CRL with the demo's revocations plus the certificate ``"expired"`` (whose
    index.txt line, E, gives its notAfter: yesterday), revoked with ``reason`` two days ago."""
    ca_cert = load_certificates(pki.ca_cert)[0]
    ca_key = load_private_key(pki.ca_key, None).key
    entries = []
    for old in x509.load_pem_x509_crl(pki.crl.read_bytes()):
        try:
            old_reason = old.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            old_reason = None
        entries.append(RevokedEntry(old.serial_number, old.revocation_date_utc, old_reason))
    entries.append(RevokedEntry(pki.serials["expired"], NOW - dt.timedelta(days=2), reason))
    crl = sign_crl(ca_cert, ca_key, entries, crl_number=2, this_update=NOW - dt.timedelta(minutes=1),
                   next_update=NOW + dt.timedelta(days=7))  # fmt: skip
    pki.crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))


@pytest.fixture
def final_world(demo_pki, tmp_path):
    """A worker of the demo CA with final responses, its responder certificate ending in 6 hours (the
    bound every other answer keeps) and the expired certificate revoked; returns (world, that end)."""
    made = []

    def make(mode: str, reason=x509.ReasonFlags.key_compromise, **changes):
        folder = tmp_path / f"w{len(made)}"
        folder.mkdir()
        pki = copy_pki(demo_pki, folder / "pki")
        end = _shorten(pki, "signer")
        _revoke_the_expired_certificate(pki, reason)
        made.append(_world(pki, folder, mode, **{**FINAL_CA, **changes}))
        return made[-1], end

    yield make
    for world in made:
        world.close()


def _next_updates(der: bytes) -> dict[int, dt.datetime]:
    """{serial: nextUpdate} of every SingleResponse, read with cryptography's loader."""
    parsed = ocsp.load_der_ocsp_response(der)
    assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return {single.serial_number: single.next_update_utc for single in parsed.responses}


def _cache_headers(response: bytes) -> tuple[dt.datetime, int]:
    headers = split(response)[1]
    return email.utils.parsedate_to_datetime(headers["expires"]), int(re.search(r"max-age=(\d+)", headers["cache-control"]).group(1))


def test_live_signing_gives_a_revoked_expired_certificate_a_final_response(final_world):
    world, end = final_world("live")
    serials = world.pki.serials
    names = ("expired", "revoked-keycompromise", "good")
    several = answer(world.app, multi_request_der(*(request_der(world.pki, name) for name in names)), world.clock)
    assert several.source == "live"
    assert _next_updates(several.der) == {serials["expired"]: FINAL, serials["revoked-keycompromise"]: end, serials["good"]: end}
    assert several.next_update == end  # what HTTP caching goes by
    for name, expected in (("expired", FINAL), ("revoked-keycompromise", end), ("good", end), ("unknown", end)):
        single = answer(world.app, request_der(world.pki, name, algorithm="sha256"), world.clock)
        assert _next_updates(single.der) == {serials[name]: expected}
        assert single.next_update == end


def test_the_fast_path_gives_the_final_response_with_the_usual_cache_headers(final_world):
    world, end = final_world("live")
    for name, expected in (("expired", FINAL), ("revoked-keycompromise", end), ("good", end)):
        response = world.send(post(request_der(world.pki, name)))
        assert world.app.responder.counts["live"].flush(None) == 1  # the fast path answered, not the handler
        assert _next_updates(split(response)[2]) == {world.pki.serials[name]: expected}
        expires, max_age = _cache_headers(response)
        assert expires == end and 0 < max_age <= (end - world.clock.now()).total_seconds()


@pytest.mark.parametrize("mode", ["precomputed", "cached"])
def test_the_generator_stores_final_responses_that_are_served_and_cached_as_any_other(final_world, mode):
    world, end = final_world(mode)
    serials = world.pki.serials
    issuer_id = world.app.registry.cas[0].issuer_id
    for algorithm in ("sha1", "sha256"):
        stored = {}
        for _, response in world.store.stored_responses(issuer_id, algorithm):
            stored.update(_next_updates(response.der))
        assert stored.pop(serials["expired"]) == FINAL
        assert set(stored.values()) == {end}  # every other answer keeps the signer's bound
        assert len(stored) >= 7
        row = world.store.precomputed(issuer_id, serials["expired"], algorithm)
        assert row.next_update == end  # the row is renewed on the usual schedule
    request = post(request_der(world.pki, "expired", algorithm="sha256"))
    first = world.send(request)  # the handler serves the pre-signed bytes and fills the edge cache
    world.clock.advance(30)
    hit = world.send(request)
    assert world.edge.flush_metrics() == 1
    for response in (first, hit):
        assert _next_updates(split(response)[2]) == {serials["expired"]: FINAL}
        expires, max_age = _cache_headers(response)
        assert expires == end and 0 < max_age <= (end - world.clock.now()).total_seconds() + 30


@pytest.mark.parametrize("changes", [{"reason": x509.ReasonFlags.certificate_hold}, {"final_response_after_expiry": False}])
def test_a_hold_or_a_ca_without_the_option_keeps_the_bounded_next_update(final_world, changes):
    world, end = final_world("live", **changes)
    for send in (lambda der: split(world.send(post(der)))[2], lambda der: answer(world.app, der, world.clock).der):
        got = _next_updates(send(request_der(world.pki, "expired")))
        assert got == {world.pki.serials["expired"]: end}
        revoked = ocsp.load_der_ocsp_response(send(request_der(world.pki, "expired")))
        assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED


_TABLE = {"certificate": "ca.pem", "signer_certificate": "o.pem", "signer_key": "o.key", "index": "index.txt"}


def test_final_responses_are_off_by_default_and_on_with_archive_cutoff(tmp_path):
    assert not parse_ca_settings("ca1", _TABLE, where="t.toml", base=tmp_path).final_response_after_expiry
    table = {**_TABLE, "archive_cutoff": "ca-not-before", "final_response_after_expiry": True}
    assert parse_ca_settings("ca1", table, where="t.toml", base=tmp_path).final_response_after_expiry


@pytest.mark.parametrize(
    "changes, message, fix",
    [
        ({}, "needs archive_cutoff", 'archive_cutoff = "ca-not-before"'),
        ({"archive_cutoff": "7y", "index": None, "crl": ["c.crl"]}, "notAfter", 'index = "FILE"'),
        ({"archive_cutoff": "7y", "final_response_after_expiry": "yes"}, "true or false", "true or false"),
    ],
)
def test_a_final_response_without_what_it_needs_names_the_file_key_and_fix(tmp_path, changes, message, fix):
    table = {**_TABLE, "final_response_after_expiry": True, **changes}
    table = {key: value for key, value in table.items() if value is not None}
    with pytest.raises(ConfigError, match=message) as error:
        parse_ca_settings("ca1", table, where="t.toml", base=tmp_path)
    assert (error.value.file, error.value.key) == ("t.toml", "ca.ca1.final_response_after_expiry")
    assert fix in error.value.fix
