"""The HTTP edge's operational routes and logging policy, sans-IO, with a clock the test moves."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.app import build_application, prepare
from certstatus.clock import ManualClock
from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.config_ops import AdminSettings, OperationsSettings
from tests.ocsp_client import request_der, response_status


def _settings(demo_pki, tmp_path, **ops) -> Settings:
    ca = CaSettings("demo", demo_pki.ca_cert, demo_pki.ocsp_cert, demo_pki.ocsp_key, crl=(str(demo_pki.crl),), index=demo_pki.index)
    return Settings(ServerSettings(database=tmp_path / "store.sqlite3"), (ca,), OperationsSettings(**ops))


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
        assert b"CA demo: crl" in ready.body and b"past its nextUpdate" in ready.body
        assert handle("GET", b"/health", {}, b"").status == 200
    finally:
        application.close()


def test_ready_reports_data_older_than_max_data_age(demo_pki, tmp_path):
    settings = _settings(demo_pki, tmp_path, admin=AdminSettings(max_data_age=3600.0))
    clock = ManualClock(_now(demo_pki))
    prepare(settings, clock)
    clock.advance(2 * 3600)
    application = build_application(settings, clock)
    try:
        body = application.http.handle("GET", b"/ready", {}, b"").body
        assert b"index" in body and b"older than max_data_age" in body
    finally:
        application.close()


def test_logging_policy_bad_input_at_info_operator_problems_at_error(demo_pki, tmp_path, caplog):
    settings = _settings(demo_pki, tmp_path)
    prepare(settings)
    application = build_application(settings)
    handle = application.http.handle
    caplog.set_level(logging.DEBUG, logger="certstatus")
    try:
        assert response_status(handle("POST", b"/", {}, b"\x30\x00").body) is OCSPResponseStatus.MALFORMED_REQUEST
        foreign = request_der(demo_pki.root_cert, demo_pki.root_cert)  # an issuer not served here
        assert response_status(handle("POST", b"/", {}, foreign).body) is OCSPResponseStatus.UNAUTHORIZED
        levels = {record.levelno for record in caplog.records}
        assert levels == {logging.INFO}, [(r.levelname, r.getMessage()) for r in caplog.records]
        caplog.clear()
        application.store.close()  # the store goes away under the worker: the operator must act
        good = request_der(demo_pki.leaves["good"], demo_pki.ca_cert)
        assert response_status(handle("POST", b"/", {}, good).body) is OCSPResponseStatus.INTERNAL_ERROR
        assert [r.levelno for r in caplog.records] == [logging.ERROR]
    finally:
        application.closers = []


def test_a_debug_line_per_request_when_the_audit_log_is_on(demo_pki, tmp_path, caplog):
    from certstatus.config_ops import AuditSettings

    settings = _settings(demo_pki, tmp_path, audit=AuditSettings(log=str(tmp_path / "audit.log")))
    prepare(settings)
    application = build_application(settings)
    caplog.set_level(logging.DEBUG, logger="certstatus")
    try:
        application.http.handle("POST", b"/", {}, request_der(demo_pki.leaves["good"], demo_pki.ca_cert))
        debug = [r for r in caplog.records if r.name == "certstatus.request"]
        assert len(debug) == 1 and debug[0].levelno == logging.DEBUG and debug[0].audit["certs"][0]["status"] == "good"
    finally:
        application.close()
    assert (tmp_path / "audit.log").read_text().count("\n") == 1


def test_settings_without_operations_add_no_observer_gate_or_proxy(demo_pki, tmp_path):
    settings = replace(_settings(demo_pki, tmp_path))
    prepare(settings)
    application = build_application(settings)
    try:
        assert application.http.observers == () and application.http.connection_gate is None
        assert application.http.proxies is None
    finally:
        application.close()
