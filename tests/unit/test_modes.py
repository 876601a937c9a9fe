"""Modes per CA through the real pipeline and store, with an injected clock.

live signs every request (nonce echoed); precomputed serves the generator's
bytes whatever the nonce; cached serves them to nonce-less single requests
and signs the rest live. Misses, multi-CertID requests, non-canonical
CertIDs, the never-expired rule, the cache and its invalidation.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from prometheus_client import REGISTRY

from certstatus.app import build_application, prepare
from certstatus.clock import ManualClock
from certstatus.config import ConfigError, check_settings
from certstatus.config import ca_settings as parse_ca_settings
from certstatus.generator.run import Generator
from certstatus.generator.schedule import GenerationLoop
from certstatus.pipeline.base import OCSPAnswer, OCSPError
from certstatus.pipeline.cache import ENTRY_OVERHEAD, AnswerCache
from certstatus.store.changes import StoreChange
from certstatus.store.sqlite import SQLiteStore
from tests.signing_support import ocsp_request
from tests.precomputed_helpers import (
    certificate,
    answer,
    ca_settings,
    copy_pki,
    multi_request_der,
    parse,
    request_der,
    revoke_in_index,
    settings_for,
    without_hash_parameters,
)

NONCE = b"0123456789abcdef"


class Responder:
    """A store, a generated pass, and one worker's application, all on one ManualClock."""

    def __init__(self, pki, tmp_path, mode: str, **ca_changes) -> None:
        self.pki = pki
        self.clock = ManualClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        cache_bytes = ca_changes.pop("cache_bytes", 1 << 20)
        self.settings = settings_for(
            tmp_path / "store.sqlite3", ca_settings(pki, mode, **ca_changes), cache_bytes=cache_bytes
        )
        prepare(self.settings, self.clock)
        self.store = SQLiteStore(self.settings.server.database)
        self.generator = Generator(self.settings, self.store, clock=self.clock, processes=0)
        # No watcher thread: tests publish store changes themselves (deterministic).
        self.app = build_application(self.settings, self.clock, watch=False)
        self.issuer_id = self.app.registry.cas[0].issuer_id

    def generate(self):
        return self.generator.run_pass()

    def ask(self, der: bytes):
        return answer(self.app, der, self.clock)

    def stored(self, serial: int, algorithm: str = "sha1"):
        return self.store.precomputed(self.issuer_id, serial, algorithm)

    def close(self) -> None:
        self.generator.close()
        self.app.store.close()
        self.store.close()


@pytest.fixture
def responder(demo_pki, tmp_path):
    made = []

    def make(mode: str, **changes) -> Responder:
        made.append(Responder(copy_pki(demo_pki, tmp_path / f"pki{len(made)}"), tmp_path / f"r{len(made)}", **{"mode": mode, **changes}))
        return made[-1]

    (tmp_path / "r0").mkdir()
    for i in range(1, 4):
        (tmp_path / f"r{i}").mkdir()
    yield make
    for item in made:
        item.close()


def test_live_mode_signs_every_request_and_echoes_the_nonce(responder):
    live = responder("live")
    first = live.ask(request_der(live.pki, "good", nonce=NONCE))
    assert first.source == "live"
    assert parse(first.der).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == NONCE
    assert live.ask(request_der(live.pki, "good")).source == "live"
    assert live.generate().signed == 0  # nothing to pre-sign for a live CA


def test_generator_signs_every_known_status_for_sha1_and_sha256(responder, demo_pki):
    pre = responder("precomputed")
    summary = pre.generate()
    known = [s for name, s in demo_pki.serials.items() if name != "unknown"] + [
        pre.app.registry.cas[0].signer.certificate.serial_number
    ]
    assert summary.signed == 2 * len(known)
    for serial in known:
        for algorithm, hash_class in (("sha1", hashes.SHA1), ("sha256", hashes.SHA256)):
            response = parse(pre.stored(serial, algorithm).der)
            assert response.serial_number == serial
            assert isinstance(response.hash_algorithm, hash_class)
            assert response.this_update_utc == response.produced_at_utc == pre.clock.now()
    revoked = parse(pre.stored(demo_pki.serials["revoked-keycompromise"]).der)
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    assert pre.stored(demo_pki.serials["unknown"]) is None
    assert pre.generate().signed == 0  # all fresh: nothing signed twice


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_precomputed_mode_serves_stored_bytes_and_ignores_the_nonce(responder, demo_pki, algorithm):
    pre = responder("precomputed")
    pre.generate()
    got = pre.ask(request_der(pre.pki, "good", algorithm=algorithm, nonce=NONCE))
    assert got.source == "precomputed"
    assert got.der == pre.stored(demo_pki.serials["good"], algorithm).der
    assert not got.has_nonce
    with pytest.raises(x509.ExtensionNotFound):
        parse(got.der).extensions.get_extension_for_class(x509.OCSPNonce)
    assert pre.ask(request_der(pre.pki, "good", algorithm=algorithm)).source == "cache"


def test_cached_mode_serves_stored_without_nonce_and_signs_nonce_requests(responder, demo_pki):
    cached = responder("cached")
    cached.generate()
    plain = cached.ask(request_der(cached.pki, "revoked-superseded"))
    assert plain.source == "precomputed"
    assert plain.der == cached.stored(demo_pki.serials["revoked-superseded"]).der
    with_nonce = cached.ask(request_der(cached.pki, "revoked-superseded", nonce=NONCE))
    assert with_nonce.source == "live" and with_nonce.has_nonce
    response = parse(with_nonce.der)
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == NONCE
    assert response.revocation_reason is x509.ReasonFlags.superseded


@pytest.mark.parametrize("mode", ["precomputed", "cached"])
def test_a_miss_is_signed_live_then_served_from_the_cache(responder, demo_pki, mode):
    shared = responder(mode)
    shared.generate()
    unknown = request_der(shared.pki, demo_pki.serials["unknown"], nonce=None)
    first = shared.ask(unknown)
    assert first.source == "live"
    assert parse(first.der).certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    second = shared.ask(unknown)
    assert (second.source, second.der) == ("cache", first.der)


def test_precomputed_miss_unauthorized_refuses_only_serials_the_store_does_not_know(responder, demo_pki):
    strict = responder("precomputed", precomputed_miss="unauthorized")
    with pytest.raises(OCSPError) as refused:
        strict.ask(request_der(strict.pki, demo_pki.serials["unknown"]))
    assert refused.value.status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    # Known but not generated yet: signed live, not refused.
    assert strict.ask(request_der(strict.pki, "good")).source == "live"


def test_precomputed_miss_unauthorized_is_refused_for_a_crl_only_ca(tmp_path):
    table = {"certificate": "ca.pem", "crl": ["crl.pem"], "signer_certificate": "o.pem", "signer_key": "o.key",
             "mode": "precomputed", "precomputed_miss": "unauthorized"}  # fmt: skip
    with pytest.raises(ConfigError, match="precomputed_miss"):
        parse_ca_settings("crl-only", table, where="test.toml", base=tmp_path)


def test_multi_certid_request_is_signed_live_in_one_response(responder, demo_pki):
    pre = responder("precomputed")
    pre.generate()
    both = multi_request_der(request_der(pre.pki, "good"), request_der(pre.pki, "revoked-hold"))
    got = pre.ask(both)
    assert got.source == "live"
    singles = list(parse(got.der).responses)
    assert [s.serial_number for s in singles] == [demo_pki.serials["good"], demo_pki.serials["revoked-hold"]]
    assert [s.certificate_status for s in singles] == [ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED]
    assert pre.ask(both).source == "live"  # multi-CertID answers are not cached


def test_a_certid_without_hash_parameters_is_signed_live_echoing_its_bytes(responder, demo_pki):
    pre = responder("precomputed")
    pre.generate()
    request = without_hash_parameters(request_der(pre.pki, "good"))
    got = pre.ask(request)
    assert got.source == "live"
    cert_id = bytes.fromhex("3007") + bytes.fromhex("06052b0e03021a")  # SEQUENCE { sha1 OID } (no NULL)
    assert cert_id in got.der
    assert pre.ask(request_der(pre.pki, "good", algorithm="sha384")).source == "live"


def _expired_count(reason: str) -> float:
    return REGISTRY.get_sample_value("certstatus_precomputed_expired_total", {"ca": "demo", "reason": reason}) or 0.0


def test_a_stored_response_is_never_served_past_its_refresh_point(responder, demo_pki, caplog):
    """Validity 1 day: due at thisUpdate + 16 h (8 h before nextUpdate); then signed live, logged, counted."""
    cached = responder("cached")
    cached.generate()
    start = cached.clock.now()
    request = request_der(cached.pki, "good")
    cached.clock.advance(16 * 3600 - 1)
    assert cached.ask(request).source == "precomputed"  # one second before the deadline: still served
    before = _expired_count("past_refresh_point")
    cached.clock.advance(1)
    with caplog.at_level(logging.WARNING, logger="certstatus.precomputed"):
        late = cached.ask(request)
    assert late.source == "live"
    assert late.this_update == start + dt.timedelta(hours=16)
    assert _expired_count("past_refresh_point") == before + 1
    assert any("past refresh point" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    before = _expired_count("past_next_update")
    cached.clock.set(start + dt.timedelta(days=1, seconds=1))
    past = cached.ask(request_der(cached.pki, "good", algorithm="sha256"))
    assert past.source == "live" and past.next_update > cached.clock.now()
    assert _expired_count("past_next_update") == before + 1


def test_the_first_answer_in_a_fresh_worker_is_the_stored_one(responder):
    cached = responder("cached")
    cached.generate()
    cached.clock.advance(3600)
    assert cached.ask(request_der(cached.pki, "good")).source == "precomputed"


def test_cache_entries_expire_at_the_refresh_point(responder):
    pre = responder("precomputed")
    pre.generate()
    request = request_der(pre.pki, "good")
    assert pre.ask(request).source == "precomputed"
    pre.clock.advance(16 * 3600 - 1)
    assert pre.ask(request).source == "cache"
    pre.clock.advance(1)
    assert pre.ask(request).source == "live"


@pytest.mark.parametrize(
    "validity, renew_after, due_after",
    [(86400, 12 * 3600, 16 * 3600), (8 * 3600, 3 * 3600, 4 * 3600)],
    ids=["1d: 8h before nextUpdate", "8h: half the validity"],
)
def test_generator_renews_before_the_ca_b_forum_deadline(responder, validity, renew_after, due_after):
    pre = responder("precomputed", validity=validity)
    first = pre.generate().signed
    start = pre.clock.now()
    pre.clock.advance(renew_after - 1)
    assert pre.generate().signed == 0
    pre.clock.advance(1)
    assert pre.generate().signed == first
    serial = parse(pre.ask(request_der(pre.pki, "good")).der)
    assert serial.this_update_utc == start + dt.timedelta(seconds=renew_after)
    assert renew_after < due_after


def test_an_imported_revocation_is_served_at_once_and_resigned_on_the_next_tick(responder, demo_pki):
    cached = responder("cached")
    loop = GenerationLoop(cached.generator)
    assert loop.tick().signed > 0  # first tick: a full pass
    assert loop.tick() is None  # nothing changed, nothing due
    request = request_der(cached.pki, "good")
    assert parse(cached.ask(request).der).certificate_status is ocsp.OCSPCertStatus.GOOD

    revoke_in_index(cached.pki, demo_pki.serials["good"], cached.store, cached.app.registry.cas[0], cached.clock)
    # What the worker's ChangeWatcher thread does when it sees the issuer's counter grow:
    cached.app.changes.publish(StoreChange(cached.issuer_id, cached.store.change_counters()[cached.issuer_id]))
    live = cached.ask(request)
    assert live.source == "live"
    assert parse(live.der).certificate_status is ocsp.OCSPCertStatus.REVOKED

    summary = loop.tick()
    assert summary.signed == 2  # SHA-1 and SHA-256 of the one changed serial
    resigned = cached.ask(request_der(cached.pki, "good", algorithm="sha256"))
    assert resigned.source == "precomputed"
    assert parse(resigned.der).certificate_status is ocsp.OCSPCertStatus.REVOKED


def test_crl_only_ca_pre_signs_revoked_serials_and_signs_good_ones_live(responder, demo_pki):
    crl_only = responder("precomputed", crl_only=True)
    summary = crl_only.generate()
    assert summary.signed == 2 * 4  # the four revoked leaves of the CRL
    assert crl_only.ask(request_der(crl_only.pki, "revoked-hold")).source == "precomputed"
    good = crl_only.ask(request_der(crl_only.pki, "good", nonce=NONCE))
    assert good.source == "live" and not good.has_nonce
    assert parse(good.der).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert crl_only.ask(request_der(crl_only.pki, "good")).source == "cache"


def test_cache_is_bounded_in_bytes_least_recently_used_out(responder, demo_pki):
    """Entries of ~1.2 kB (748-byte response + key + overhead): 3 000 bytes hold two."""
    pre = responder("precomputed", cache_bytes=3000)
    pre.generate()
    names = ["good", "good2", "revoked-hold"]
    for name in names:
        assert pre.ask(request_der(pre.pki, name)).source == "precomputed"
    assert pre.ask(request_der(pre.pki, "revoked-hold")).source == "cache"
    assert pre.ask(request_der(pre.pki, "good2")).source == "cache"
    assert pre.ask(request_der(pre.pki, "good")).source == "precomputed"  # least recently used: evicted


def test_answer_cache_accounts_bytes_and_invalidates_by_issuer_and_serial():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    answer_of = lambda size: OCSPAnswer(b"x" * size, now, now + dt.timedelta(days=1), now)  # noqa: E731
    cache = AnswerCache(max_bytes=10_000)
    cache.put(b"k1", answer_of(1000), 1, 10)
    cache.put(b"k2", answer_of(1000), 1, 11)
    cache.put(b"k3", answer_of(1000), 2, 10)
    assert cache.size == 3 * (1000 + 2 + ENTRY_OVERHEAD)
    cache.put(b"big", answer_of(20_000), 1, 12)  # larger than the whole cache: not kept
    assert len(cache) == 3
    cache.invalidate([(1, 10)])
    assert [cache.get(k, now) is None for k in (b"k1", b"k2", b"k3")] == [True, False, False]
    cache.invalidate([(2, None)])
    assert cache.get(b"k3", now) is None and cache.get(b"k2", now) is not None
    cache.invalidate(None)
    assert len(cache) == 0 and cache.size == 0
    cache.put(b"k1", answer_of(10), 1, 10)
    assert cache.get(b"k1", now + dt.timedelta(hours=16)) is None  # refresh point of a 1-day response
    assert cache.size == 0


@pytest.mark.parametrize("archive_cutoff", ["ca-not-before", 7 * 365 * 86400])
def test_settings_survive_the_trip_to_worker_processes(demo_pki, tmp_path, archive_cutoff):
    policies = {"archive_cutoff": archive_cutoff, "nonce": "require", "include_signer_chain": True, "cert_hash": True,
                "issued": demo_pki.issued, "unknown_serials": "unauthorized", "final_response_after_expiry": True}  # fmt: skip
    settings = settings_for(tmp_path / "s.sqlite3", ca_settings(demo_pki, "cached", precomputed_miss="unauthorized", **policies))
    again = type(settings).from_json(settings.to_json())
    assert again == settings
    assert (again.cas[0].mode, again.cas[0].precomputed_miss) == ("cached", "unauthorized")
    assert again.cas[0].signing_profile == settings.cas[0].signing_profile  # the generator's processes sign alike


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"mode": "fast"}, "is not a mode"),
        ({"mode": "cached", "sql": {"dsn": "postgresql://x/y", "query": "select 1 where %(serial)s = 1"}}, "live SQL source"),
        ({"precomputed_miss": "refuse", "index": "index.txt"}, "is not sign or unauthorized"),
    ],
)
def test_mode_settings_errors_name_the_key_and_the_fix(tmp_path, changes, message):
    table = {"certificate": "ca.pem", "signer_certificate": "o.pem", "signer_key": "o.key", "crl": ["c.crl"], **changes}
    if "sql" in changes:
        del table["crl"]
    with pytest.raises(ConfigError, match=message) as error:
        parse_ca_settings("ca1", table, where="test.toml", base=tmp_path)
    assert error.value.key.startswith("ca.ca1.") and error.value.fix


def test_precomputed_answers_revalidate_with_their_etag(responder):
    """Stable bytes: the ETag a client got matches again, so If-None-Match gets 304 (RFC 5019 §6.2)."""
    pre = responder("precomputed")
    pre.generate()
    path = b"/" + base64.b64encode(request_der(pre.pki, "good"))
    first = pre.app.http.handle("GET", path, {}, b"")
    assert first.status == 200
    etag = dict(first.headers)[b"etag"]
    again = pre.app.http.handle("GET", path, {b"if-none-match": etag}, b"")
    assert again.status == 304 and again.body == b""


ECDSA_SHA256 = "1.2.840.10045.4.3.2"


def test_preferred_signature_algorithms_are_ignored_by_precomputed_and_honoured_live_by_cached(responder, demo_pki):
    pre, cached = responder("precomputed"), responder("cached")
    for shared in (pre, cached):
        shared.generate()
    issuer = certificate(demo_pki.ca_cert)
    request = ocsp_request(issuer, demo_pki.serials["good"], preferred=(ECDSA_SHA256,))
    assert pre.ask(request).source == "precomputed"
    live = cached.ask(request)
    assert live.source == "live"
    assert cached.ask(request).source == "live"  # never cached: another client may prefer another algorithm


def test_precomputed_and_cached_modes_are_accepted_on_a_postgresql_store(demo_pki):
    """The PostgreSQL store keeps pre-signed responses (tests/integration/test_precomputed_postgres.py serves them)."""
    for mode in ("precomputed", "cached", "live"):
        settings = settings_for("postgresql://ocsp@db.example/certstatus", ca_settings(demo_pki, mode))
        assert check_settings(settings, "certstatus.toml") is settings


def test_responses_signed_under_other_settings_are_signed_live_until_resigned(responder, demo_pki):
    """A configuration change that alters what a response says (here the validity) leaves the rows
    signed under the old settings in the store: they are never served, and the generator's next
    start makes them due first and signs them again (CaSettings.signing_profile)."""
    before = responder("precomputed")
    first = before.generate()
    good = demo_pki.serials["good"]
    assert before.ask(request_der(before.pki, "good")).source == "precomputed"
    changed = dataclasses.replace(before.settings.cas[0], validity=2 * 86400)
    assert changed.signing_profile != before.settings.cas[0].signing_profile
    settings = dataclasses.replace(before.settings, cas=(changed,))
    app = build_application(settings, before.clock, watch=False)
    try:
        got = answer(app, request_der(before.pki, "good"), before.clock)
        assert got.source == "live"  # the stored row says validity 1 day: a miss
        assert got.next_update - got.this_update == dt.timedelta(days=2)
        assert before.stored(good) is not None  # still in the store (served by nothing)
        with Generator(settings, before.store, clock=before.clock, processes=0) as generator:
            assert before.store.count_pending(before.issuer_id, "due", now=before.clock.now()) == 0
            summary = generator.run_pass()  # claims the CA: every row of the old profile falls due
            assert summary.signed == first.signed  # every serial again, both hashes
        app.pipeline.cache.cache.invalidate(None)
        again = answer(app, request_der(before.pki, "good"), before.clock)
        assert again.source == "precomputed"
        assert parse(again.der).next_update_utc - parse(again.der).this_update_utc == dt.timedelta(days=2)
    finally:
        app.close()
