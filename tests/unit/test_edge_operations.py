"""The HTTP edge's operational routes and logging policy, sans-IO, with a clock the test moves."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from dataclasses import replace

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.app import build_application, prepare
from certstatus.clock import ManualClock
from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.config_ops import OperationsSettings
from tests.ocsp_client import request_der, response_status


@pytest.fixture
def logs(caplog):
    """caplog, attached to the ``certstatus`` logger itself (configure_logging stops propagation)."""
    logger = logging.getLogger("certstatus")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    caplog.handler.setLevel(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)
    logger.propagate = propagate


def _settings(demo_pki, tmp_path, **ops) -> Settings:
    ca = CaSettings("demo", demo_pki.ca_cert, demo_pki.ocsp_cert, demo_pki.ocsp_key, crl=(str(demo_pki.crl),), index=demo_pki.index)
    return Settings(ServerSettings(database=tmp_path / "store.sqlite3"), (ca,), ops=OperationsSettings(**ops))


def _now(demo_pki) -> dt.datetime:
    return dt.datetime.fromtimestamp(demo_pki.crl.stat().st_mtime, dt.timezone.utc)


def test_health_is_200_and_ready_turns_503_once_the_crl_is_past_its_next_update(demo_pki, tmp_path):
    settings = _settings(demo_pki, tmp_path)
    clock = ManualClock(_now(demo_pki))
    prepare(settings, clock)
    application = build_application(settings, clock)
    try:
        handle = application.http.handle
        assert handle("GET", b"/health", {}, b"").status == 200
        assert handle("GET", b"/ready", {}, b"").body == b"ready\n"
        head = handle("HEAD", b"/ready", {}, b"")
        assert head.status == 200 and head.body == b""
        clock.advance(8 * 86400)  # the demo CRL's nextUpdate is 7 days after it was made
        ready = handle("GET", b"/ready", {}, b"")
        assert ready.status == 503
        assert b"CA demo: data stale since" in ready.body
        assert handle("GET", b"/health", {}, b"").status == 200
    finally:
        application.close()


def test_a_ca_serving_stale_data_on_purpose_stays_ready(demo_pki, tmp_path):
    settings = _settings(demo_pki, tmp_path)
    settings = replace(settings, cas=(replace(settings.cas[0], on_stale="serve"),))
    clock = ManualClock(_now(demo_pki))
    prepare(settings, clock)
    application = build_application(settings, clock)
    try:
        clock.advance(8 * 86400)
        assert application.http.handle("GET", b"/ready", {}, b"").status == 200
    finally:
        application.close()


def test_public_ready_says_only_store_unreachable_and_logs_the_details_once(demo_pki, tmp_path, logs):
    """Who can reach the OCSP port learns nothing of the database; the operator reads the log."""
    settings = _settings(demo_pki, tmp_path)
    prepare(settings)
    application = build_application(settings)
    try:
        application.store.close()  # the store stops answering under the worker
        for _ in range(3):
            ready = application.http.handle("GET", b"/ready", {}, b"")
            assert (ready.status, ready.body) == (503, b"not ready:\n- store unreachable\n")
        details = [r for r in logs.records if r.name == "certstatus.health"]
        assert len(details) == 1 and details[0].levelno == logging.WARNING, details
        assert details[0].getMessage().startswith("not ready: store unreachable: ProgrammingError: ")
    finally:
        application.closers = []


def test_logging_policy_bad_input_at_info_operator_problems_at_error(demo_pki, tmp_path, logs):
    settings = _settings(demo_pki, tmp_path)
    prepare(settings)
    application = build_application(settings)
    handle = application.http.handle
    try:
        assert response_status(handle("POST", b"/", {}, b"\x30\x00").body) is OCSPResponseStatus.MALFORMED_REQUEST
        foreign = request_der(demo_pki.root_cert, demo_pki.root_cert)  # an issuer not served here
        assert response_status(handle("POST", b"/", {}, foreign).body) is OCSPResponseStatus.UNAUTHORIZED
        levels = {record.levelno for record in logs.records}
        assert levels <= {logging.DEBUG, logging.INFO}, [(r.levelname, r.getMessage()) for r in logs.records]
        logs.clear()
        application.store.close()  # the store goes away under the worker: the operator must act
        good = request_der(demo_pki.leaves["good"], demo_pki.ca_cert)
        assert response_status(handle("POST", b"/", {}, good).body) is OCSPResponseStatus.INTERNAL_ERROR
        assert [r.levelno for r in logs.records] == [logging.ERROR]
    finally:
        application.closers = []


def test_malformed_requests_are_counted_and_sampled_at_debug_not_logged_one_line_each(demo_pki, tmp_path, logs):
    """A client sending garbage in a loop costs a counter increment, not a log line per request."""
    from prometheus_client import CollectorRegistry

    from certstatus.metrics import RequestMetrics

    settings = _settings(demo_pki, tmp_path)
    prepare(settings)
    registry = CollectorRegistry()
    application = build_application(settings, metrics=RequestMetrics(registry))
    try:
        for _ in range(50):
            answer = application.http.handle("POST", b"/", {}, b"\x30\x03junk", "192.0.2.9")
            assert response_status(answer.body) is OCSPResponseStatus.MALFORMED_REQUEST
    finally:
        application.close()
    counted = registry.get_sample_value("certstatus_requests_total", {"ca": "", "response_status": "malformedRequest", "source": ""})
    assert counted == 50
    lines = [r for r in logs.records if "malformed" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG, [(r.levelname, r.getMessage()) for r in lines]
    assert "192.0.2.9" in lines[0].getMessage()


def test_a_debug_line_per_request_when_the_audit_log_is_on(demo_pki, tmp_path, logs):
    from certstatus.config_ops import AuditSettings

    settings = _settings(demo_pki, tmp_path, audit=AuditSettings(log=str(tmp_path / "audit.log")))
    prepare(settings)
    application = build_application(settings)
    try:
        application.http.handle("POST", b"/", {}, request_der(demo_pki.leaves["good"], demo_pki.ca_cert))
        debug = [r for r in logs.records if r.name == "certstatus.request"]
        assert len(debug) == 1 and debug[0].levelno == logging.DEBUG and debug[0].audit["certs"][0]["status"] == "good"
    finally:
        application.close()
    assert (tmp_path / "audit.log").read_text().count("\n") == 1


def test_a_claimed_requestor_name_is_audited_as_a_claim_never_as_the_requestor(demo_pki, tmp_path):
    """requestorName is anyone's to write (RFC 6960 §4.1.1, unsigned here): billing must not believe it."""
    import json

    from asn1crypto import ocsp as asn1_ocsp
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509

    from certstatus.config_ops import AuditSettings

    settings = _settings(demo_pki, tmp_path, audit=AuditSettings(log=str(tmp_path / "audit.log")))
    prepare(settings)
    application = build_application(settings)
    claimed = x509.Name.from_rfc4514_string("CN=Big Customer,O=Example")
    query = asn1_ocsp.OCSPRequest.load(request_der(demo_pki.leaves["good"], demo_pki.ca_cert))
    tbs = asn1_ocsp.TBSRequest({
        "requestor_name": asn1_x509.GeneralName(name="directory_name", value=asn1_x509.Name.load(claimed.public_bytes())),
        "request_list": query["tbs_request"]["request_list"],
    })  # fmt: skip
    try:
        answer = application.http.handle("POST", b"/", {}, asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump(), "192.0.2.7")
        assert response_status(answer.body) is OCSPResponseStatus.SUCCESSFUL
    finally:
        application.close()
    (record,) = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert record["requestor_name_claimed"] == "CN=Big Customer,O=Example"
    assert record["requestor"] is None and record["tls_client"] is None and record["signer"] is None
    assert "requestor_name" not in record and record["client"] == "192.0.2.7"


def test_settings_without_operations_add_no_observer_gate_or_proxy(demo_pki, tmp_path):
    settings = replace(_settings(demo_pki, tmp_path))
    prepare(settings)
    application = build_application(settings)
    try:
        assert application.http.observers == () and application.http.connection_gate is None
        assert application.http.proxies is None
    finally:
        application.close()
