"""Staleness policy: tryLater past nextUpdate + grace (or serve with a warning), and source ages."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time

import pytest
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus

from certstatus.app import build_application, prepare
from certstatus.clock import ManualClock
from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.demo_pki import DemoPki
from certstatus.sources.health import source_ages
from certstatus.store.sqlite import SQLiteStore
from tests.openssl_ca import OpenSslCa
from tests.sources_helpers import ocsp_query


def _settings(pki: DemoPki, tmp_path, **ca_changes) -> Settings:
    ca = CaSettings(
        name="demo", certificate=pki.ca_cert, signer_certificate=pki.ocsp_cert, signer_key=pki.ocsp_key,
        crl=(str(pki.crl),),
    )  # fmt: skip
    return Settings(ServerSettings(database=tmp_path / "store.sqlite3"), (dataclasses.replace(ca, **ca_changes),))


def _crl_next_update(pki: DemoPki) -> dt.datetime:
    from cryptography import x509

    return x509.load_pem_x509_crl(pki.crl.read_bytes()).next_update_utc


def test_past_next_update_plus_grace_answers_try_later(demo_pki: DemoPki, tmp_path) -> None:
    settings = _settings(demo_pki, tmp_path, stale_grace=3600)
    prepare(settings)
    clock = ManualClock(_crl_next_update(demo_pki) + dt.timedelta(minutes=59))
    app = build_application(settings, clock)
    assert ocsp_query(app, demo_pki, demo_pki.serials["good"]).certificate_status is OCSPCertStatus.GOOD
    clock.advance(120)  # now past nextUpdate + 1 h
    assert ocsp_query(app, demo_pki, demo_pki.serials["good"]).response_status is OCSPResponseStatus.TRY_LATER


def test_a_crl_with_next_update_9999_is_never_stale_whatever_the_grace(demo_pki: DemoPki, tmp_path) -> None:
    """A CRL may say nextUpdate 99991231235959Z (no well-defined end, RFC 5280 §4.1.2.5): with
    stale_grace it is still answered, not an overflow past the last representable date."""
    from cryptography.hazmat.primitives import serialization

    from certstatus.demo_pki import sign_crl
    from certstatus.signing.keys import load_certificates, load_private_key
    from tests.precomputed_helpers import copy_pki

    pki = copy_pki(demo_pki, tmp_path / "pki")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    final = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
    crl = sign_crl(load_certificates(pki.ca_cert)[0], load_private_key(pki.ca_key, None).key, [], crl_number=2,
                   this_update=now - dt.timedelta(minutes=1), next_update=final)  # fmt: skip
    pki.crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    settings = _settings(pki, tmp_path, stale_grace=3600)
    prepare(settings)
    app = build_application(settings, ManualClock(now))
    assert ocsp_query(app, pki, pki.serials["good"]).certificate_status is OCSPCertStatus.GOOD


def test_on_stale_serve_keeps_answering_with_a_warning(demo_pki: DemoPki, tmp_path, caplog) -> None:
    settings = _settings(demo_pki, tmp_path, on_stale="serve")
    prepare(settings)
    app = build_application(settings, ManualClock(_crl_next_update(demo_pki) + dt.timedelta(days=1)))
    with caplog.at_level(logging.WARNING, logger="certstatus.freshness"):
        response = ocsp_query(app, demo_pki, demo_pki.serials["revoked-keycompromise"])
    assert response.certificate_status is OCSPCertStatus.REVOKED
    assert "past its nextUpdate" in caplog.text and "still serving" in caplog.text


def test_ca_without_data_answers_try_later_until_data_arrives(demo_pki: DemoPki, tmp_path) -> None:
    settings = _settings(demo_pki, tmp_path, crl=(str(tmp_path / "not-there.crl"),))
    prepare(settings)
    clock = ManualClock(_crl_next_update(demo_pki) - dt.timedelta(days=1))
    app = build_application(settings, clock)
    assert ocsp_query(app, demo_pki, 5).response_status is OCSPResponseStatus.TRY_LATER
    prepare(_settings(demo_pki, tmp_path))  # e.g. the refresher of another process imports it
    time.sleep(1.05)  # the guard re-reads the store at most once a second
    assert ocsp_query(app, demo_pki, 5).certificate_status is OCSPCertStatus.GOOD


def test_a_crl_refused_from_the_start_keeps_its_ca_at_try_later_and_not_ready_until_it_imports(
    demo_pki: DemoPki, tmp_path, caplog
) -> None:
    """Fail closed: the index imports, the CRL (a real `openssl ca` CRL of another CA) is refused; answering
    from the index alone would call every certificate the CRL revokes "good"."""
    other = OpenSslCa(tmp_path / "other-ca")
    other.gencrl()
    crl = tmp_path / "ca.crl"
    crl.write_bytes(other.last_crl_der())
    settings = _settings(demo_pki, tmp_path, crl=(str(crl),), index=demo_pki.index)
    with caplog.at_level(logging.INFO, logger="certstatus"):
        results = prepare(settings)
    assert [(r.kind, r.error is None) for r in results] == [("crl", False), ("index", True)]

    app = build_application(settings, ManualClock(_crl_next_update(demo_pki) - dt.timedelta(days=1)))
    try:
        for leaf in ("good", "revoked-keycompromise"):
            assert ocsp_query(app, demo_pki, demo_pki.serials[leaf]).response_status is OCSPResponseStatus.TRY_LATER
        ready = app.http.handle("GET", b"/ready", {}, b"")
        assert ready.status == 503 and f"CA demo: nothing imported yet from crl {crl}".encode() in ready.body
        [line] = [record for record in caplog.records if record.levelno >= logging.ERROR]
        assert (line.ca, line.source, line.origin) == ("demo", "crl", str(crl))
        assert "CRL issuer is" in line.reason and "answers tryLater and is not ready" in line.getMessage()

        crl.write_bytes(demo_pki.crl.read_bytes())  # the operator puts the CA's own CRL there
        prepare(settings)  # what the refresher or a SIGHUP does
        time.sleep(1.05)  # the guard re-reads the store at most once a second
        revoked = ocsp_query(app, demo_pki, demo_pki.serials["revoked-keycompromise"])
        assert revoked.certificate_status is OCSPCertStatus.REVOKED
        assert app.http.handle("GET", b"/ready", {}, b"").status == 200
    finally:
        app.close()


def test_a_source_refused_after_an_import_keeps_serving_what_it_imported(demo_pki: DemoPki, tmp_path, caplog) -> None:
    index = tmp_path / "index.txt"
    index.write_bytes(demo_pki.index.read_bytes())
    settings = _settings(demo_pki, tmp_path, index=index)
    prepare(settings)
    index.write_text("this is not an index file\n")
    with caplog.at_level(logging.ERROR, logger="certstatus"):
        assert [r.error is None for r in prepare(settings)] == [True, False]
    [line] = caplog.records
    assert (line.ca, line.source) == ("demo", "index") and "the data imported before keeps serving" in line.getMessage()
    app = build_application(settings, ManualClock(_crl_next_update(demo_pki) - dt.timedelta(days=1)))
    try:
        assert ocsp_query(app, demo_pki, demo_pki.serials["good"]).certificate_status is OCSPCertStatus.GOOD
        assert app.http.handle("GET", b"/ready", {}, b"").status == 200
    finally:
        app.close()


def test_source_ages_report_every_source(demo_pki: DemoPki, tmp_path) -> None:
    settings = _settings(demo_pki, tmp_path, index=demo_pki.index)
    prepare(settings)
    store = SQLiteStore(settings.server.database)
    try:
        issuer_id = store.register_issuer("demo", _der(demo_pki))
        now = _crl_next_update(demo_pki) + dt.timedelta(seconds=10)
        ages = {a.kind: a for a in source_ages(store, [("demo", issuer_id)], now)}
    finally:
        store.close()
    assert set(ages) == {"crl", "index"}
    assert ages["crl"].seconds_to_next_update == pytest.approx(-10)
    assert ages["crl"].age_seconds == pytest.approx((now - ages["crl"].this_update).total_seconds())
    assert ages["index"].seconds_to_next_update is None and ages["index"].entries == 8
    assert ages["crl"].as_json()["next_update"].endswith("+00:00")


def _der(pki: DemoPki) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).public_bytes(serialization.Encoding.DER)


class _States:
    """A StatusReader of source states only, counting its reads."""

    def __init__(self, states: dict) -> None:
        self.states = states
        self.reads = 0

    def source_states(self, issuer_id: int) -> dict:
        self.reads += 1
        return self.states


def test_the_guard_sets_has_data_only_when_it_reads_the_store(demo_pki: DemoPki, tmp_path) -> None:
    """refresh_state reads the store and sets the CA's has_data; current answers from what was read until
    recheck_seconds pass, leaving the flag to whoever else set it (a store change)."""
    from types import SimpleNamespace

    from certstatus.pipeline.freshness import FreshnessGuard
    from certstatus.store.base import SourceState

    settings = _settings(demo_pki, tmp_path).cas[0]
    imported = SourceState("crl", str(demo_pki.crl), dt.datetime.now(dt.timezone.utc), 3)
    store = _States({})
    ca = SimpleNamespace(issuer_id=1, settings=settings, has_data=True)
    guard = FreshnessGuard(store, ManualClock(dt.datetime.now(dt.timezone.utc)), recheck_seconds=3600)

    assert guard.refresh_state(ca, time.monotonic()).has_data is False
    assert ca.has_data is False and store.reads == 1
    store.states = {"crl": imported}
    ca.has_data = True  # a store change re-read by the issuer registry
    assert guard.current(ca).has_data is False  # within recheck_seconds: no read, the flag left alone
    assert ca.has_data is True and store.reads == 1
    ca.has_data = False
    guard.invalidate(1)  # the next read goes to the store, and sets the flag
    assert guard.current(ca).has_data is True and ca.has_data is True and store.reads == 2


def test_a_watched_worker_reads_no_source_state_on_a_cas_first_request(demo_pki: DemoPki, tmp_path) -> None:
    """A worker reads every CA's source states once at start (has_data, against the change watcher's
    baseline); the freshness guard keeps that read, so a CA's first request reads them no second time
    (with 10 000 CAs, the first request of each did), and an import still reaches the guard."""
    settings = _settings(demo_pki, tmp_path)
    prepare(settings)
    app = build_application(settings)  # watched, as a worker's
    try:
        reads = []
        read = app.store.source_states
        app.store.source_states = lambda issuer_id: reads.append(issuer_id) or read(issuer_id)
        assert ocsp_query(app, demo_pki, demo_pki.serials["good"]).certificate_status is OCSPCertStatus.GOOD
        assert reads == []
        app.pipeline.guard.invalidate(app.registry.cas[0].issuer_id)  # what the watcher does on an import
        assert ocsp_query(app, demo_pki, demo_pki.serials["good"]).certificate_status is OCSPCertStatus.GOOD
        assert reads == [app.registry.cas[0].issuer_id]
    finally:
        app.close()
