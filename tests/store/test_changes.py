"""Store changes reach every process: ChangeWatcher → ChangeHub → subscribers (both backends)."""

from __future__ import annotations

import datetime as dt
import queue
import time
from pathlib import Path

import psycopg
import pytest
from cryptography.x509 import ocsp

from certstatus.app import build_application
from certstatus.clock import SystemClock
from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.sources.importer import CaTarget, import_ca
from certstatus.store.base import SourceState
from certstatus.store.changes import ChangeHub, ChangeWatcher, StoreChange
from certstatus.store.factory import open_store

T0 = dt.datetime(2030, 6, 1, tzinfo=dt.timezone.utc)
DEADLINE = 10.0  # seconds; a bound for a broken watcher, not a speed check (bench/fleet.py measures)


def wait_for(predicate, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"{what} did not happen within {DEADLINE} s")
        time.sleep(0.01)


@pytest.fixture
def watched(database):
    hub = ChangeHub()
    received: queue.Queue[StoreChange] = queue.Queue()
    hub.subscribe(received.put)
    watcher = ChangeWatcher(database, hub, retry_interval=0.1).start()
    yield watcher, received
    watcher.stop()


def test_a_write_by_another_process_is_published_with_issuer_and_counter(database, watched) -> None:
    watcher, received = watched
    writer = open_store(database)
    try:
        issuer = writer.register_issuer("ca", b"cert")
        assert received.get(timeout=DEADLINE).issuer_id == issuer
        writer.replace_source(issuer, SourceState("issued", "/x", T0, 1), issued=[1])
        change = received.get(timeout=DEADLINE)
        assert change == StoreChange(issuer, writer.change_counters()[issuer])
    finally:
        writer.close()


def test_an_import_that_changes_no_status_is_published_as_a_source_change(database, watched) -> None:
    """The freshness guard must see the new nextUpdate; caches need not drop anything (statuses=False)."""
    watcher, received = watched
    writer = open_store(database)
    try:
        issuer = writer.register_issuer("ca", b"cert")
        writer.replace_source(issuer, SourceState("crl", "/crl", T0, 1, T0, T0 + dt.timedelta(hours=1)), issued=[1])
        counter = writer.change_counters()[issuer]
        wait_for(lambda: StoreChange(issuer, counter) in list(received.queue), "the status change")
        later = SourceState("crl", "/crl", T0, 1, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2))
        assert not writer.replace_source(issuer, later, issued=[1])
        wait_for(lambda: StoreChange(issuer, counter, statuses=False) in list(received.queue), "the source change")
        assert writer.change_counters()[issuer] == counter
    finally:
        writer.close()


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    hub = ChangeHub()
    seen: list[StoreChange] = []

    def broken(change: StoreChange) -> None:
        raise RuntimeError("subscriber bug")

    hub.subscribe(broken)
    unsubscribe = hub.subscribe(seen.append)
    hub.publish(StoreChange(1, 1))
    unsubscribe()
    hub.publish(StoreChange(1, 2))
    assert seen == [StoreChange(1, 1)]


def test_watcher_reconnects_and_catches_up_on_changes_made_meanwhile(postgres_dsn: str) -> None:
    open_store(postgres_dsn, upgrade=True).close()
    writer = open_store(postgres_dsn)
    issuer = writer.register_issuer("ca", b"cert")
    hub = ChangeHub()
    received: queue.Queue[StoreChange] = queue.Queue()
    hub.subscribe(received.put)
    watcher = ChangeWatcher(postgres_dsn, hub, retry_interval=0.2).start()
    try:
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            listen = f'LISTEN "{writer.channel}"%'
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE %s", (listen,)
            ).fetchall()
            assert killed == [(True,)]
        writer.replace_source(issuer, SourceState("issued", "/x", T0, 1), issued=[1])
        assert received.get(timeout=DEADLINE) == StoreChange(issuer, writer.change_counters()[issuer])
    finally:
        watcher.stop()
        writer.close()


def test_an_outage_is_one_warning_without_the_password_then_one_line_when_back(tmp_path: Path, caplog) -> None:
    """However long the store stays away, the watcher logs one warning (the DSN's password masked),
    its retries at debug, and one line once it listens again."""
    import logging
    import socket

    from certstatus.observability import JsonFormatter

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    hub = ChangeHub()
    caplog.set_level(logging.DEBUG, logger="certstatus.store.changes")
    down = ChangeWatcher(f"postgresql://certstatus:s3cret-pw@127.0.0.1:{port}/db", hub, retry_interval=0.05)
    down.start(timeout=0.01)
    try:
        wait_for(lambda: sum(r.levelno == logging.DEBUG for r in caplog.records) >= 3, "three failed retries")
    finally:
        down.stop()
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "certstatus.store.changes"]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, lines  # "not listening after ..." at start, then the loss: once
    assert any("store change watcher lost postgresql://certstatus:***@127.0.0.1" in line for line in lines), lines
    assert not any("s3cret-pw" in r.getMessage() for r in caplog.records), lines  # masked where written, not only by the formatter

    caplog.clear()
    database = tmp_path / "later" / "store.sqlite3"  # its folder does not exist yet: the watcher cannot open it
    back = ChangeWatcher(database, hub, retry_interval=0.05)
    back.start(timeout=0.01)
    try:
        wait_for(lambda: any(r.levelno == logging.DEBUG for r in caplog.records), "a failed retry")
        database.parent.mkdir()
        open_store(database, upgrade=True).close()
        wait_for(lambda: any("listening again" in r.getMessage() for r in caplog.records), "the reconnection line")
    finally:
        back.stop()
    assert [r.levelname for r in caplog.records if r.levelno >= logging.INFO and "not listening after" not in r.getMessage()] == [
        "WARNING", "INFO"]


def test_worker_learns_that_another_process_imported_its_cas_data(database, demo_pki, tmp_path: Path) -> None:
    ca = CaSettings(
        name="demo",
        certificate=demo_pki.ca_cert,
        signer_certificate=demo_pki.ocsp_cert,
        signer_key=demo_pki.ocsp_key,
        crl=(str(demo_pki.crl),),
    )
    settings = Settings(ServerSettings(database=database, workers=1), (ca,))
    app = build_application(settings)
    try:
        served = app.registry.by_name["demo"]
        assert served.has_data is False
        request = _request(demo_pki, "good")
        assert app.http.handle("POST", b"/", {}, request).status == 503  # tryLater: no data yet

        importer = open_store(database)
        try:
            results = import_ca(importer, CaTarget(ca, served.issuer_id, served.certificate), SystemClock())
            assert [r.error for r in results] == [None]
        finally:
            importer.close()
        wait_for(lambda: served.has_data, "has_data refresh")
        answer = app.http.handle("POST", b"/", {}, request)
        assert answer.status == 200
        assert ocsp.load_der_ocsp_response(answer.body).certificate_status is ocsp.OCSPCertStatus.GOOD
    finally:
        app.close()


def _request(pki, leaf: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    cert = x509.load_pem_x509_certificate(pki.leaves[leaf].read_bytes())
    issuer = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)
