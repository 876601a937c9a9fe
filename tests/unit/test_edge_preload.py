"""The edge cache's fill from the store at a worker's start (server/preload.py).

Each test builds one worker's application over a real store (SQLite, and PostgreSQL at
127.0.0.1:5432 where marked) with the generator's pre-signed responses, runs the fill as the
worker does once it listens, and talks HTTP/1.1 to :class:`HttpProtocol` through an in-memory
transport. The reference for a filled entry is what a miss renders and keeps: the same request
answered again with the edge emptied, at the same time.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import logging
import os
import signal
import socket
import subprocess
from urllib.parse import quote

import pytest
from cryptography.x509 import ocsp
from prometheus_client import CollectorRegistry

from certstatus.app import build_application, prepare
from certstatus.cache_size import ANSWER_BYTES, fill_fits
from certstatus.clock import ManualClock
from certstatus.config_schema import SERVER
from certstatus.errors import StoreUnavailable
from certstatus.generator.run import Generator
from certstatus.metrics import RequestMetrics
from certstatus.model import serial_key
from certstatus.server.connection import ServerState
from certstatus.server.preload import PRELOADED, request_keys
from certstatus.server.preload import request_der as fill_request_der
from certstatus.store.factory import open_configured_store
from tests.edge_wire import exchange, post, split
from tests.precomputed_helpers import ca_settings, copy_pki, request_der, revoke_in_index, settings_for

LEAVES = ("good", "good2", "revoked-keycompromise", "revoked-superseded")


class Worker:
    """One worker over a store holding the generator's responses; its fill not run yet."""

    def __init__(self, pki, database, *, cache_bytes: int | None = 1 << 20, preload: bool = True, **ca_changes) -> None:
        self.pki = pki
        self.clock = ManualClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        settings = settings_for(database, ca_settings(pki, "precomputed", path="/demo/", **ca_changes), cache_bytes=1)
        server = dataclasses.replace(settings.server, response_cache_bytes=cache_bytes, response_cache_preload=preload)
        self.settings = settings = dataclasses.replace(settings, server=server)
        if isinstance(database, str):  # PostgreSQL: the schema is made once, by `certstatus db upgrade`
            open_configured_store(settings, upgrade=True).close()
        prepare(settings, self.clock)
        self.store = open_configured_store(settings)
        self.generator = Generator(settings, self.store, clock=self.clock, processes=0)
        self.generator.run_pass()
        self.app = build_application(settings, self.clock, watch=False, metrics=RequestMetrics(CollectorRegistry()))
        self.responder = self.app.responder
        self.edge = self.responder.edge
        self.state = ServerState(self.responder)

    def fill(self) -> int:
        return asyncio.run(self.responder.preload.run())

    def send(self, raw: bytes) -> bytes:
        return exchange(self.state, raw)

    def close(self) -> None:
        self.generator.close()
        self.app.close()
        self.store.close()


def get_encoded(der: bytes, path: str = "/demo/") -> bytes:
    """A GET as RFC 6960 Appendix A.1 writes it: the base64 of the DER, URL-encoded."""
    return f"GET {path}{quote(base64.b64encode(der).decode(), safe='')} HTTP/1.1\r\nHost: ocsp\r\n\r\n".encode()


def _workers(demo_pki, tmp_path, database):
    """Make workers (``database(folder)`` names each one's store); close them at the end."""
    made = []

    def make(**changes) -> Worker:
        folder = tmp_path / f"w{len(made)}"
        folder.mkdir()
        made.append(Worker(copy_pki(demo_pki, folder / "pki"), database(folder), **changes))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture(params=["sqlite", "postgres"])
def worker(request, demo_pki, tmp_path):
    if request.param == "sqlite":
        yield from _workers(demo_pki, tmp_path, lambda folder: folder / "store.sqlite3")
    else:
        yield from _workers(demo_pki, tmp_path, lambda folder: request.getfixturevalue("postgres_dsn"))


@pytest.fixture
def sqlite_worker(demo_pki, tmp_path):
    yield from _workers(demo_pki, tmp_path, lambda folder: folder / "store.sqlite3")


def test_the_filled_key_is_the_request_openssl_and_cryptography_send(demo_pki, tmp_path):
    """The minimal nonce-less one-CertID OCSPRequest: the bytes of `openssl ocsp -no_nonce -reqout` and of
    cryptography's OCSPRequestBuilder, whose CertID the fill encodes from the stored serial."""
    from certstatus.protocol.fast_request import parse_request_fast

    out = tmp_path / "req.der"
    subprocess.run(["openssl", "ocsp", "-issuer", str(demo_pki.ca_cert), "-cert", str(demo_pki.leaves["good"]),
                    "-no_nonce", "-reqout", str(out)], check=True, capture_output=True, timeout=30)  # fmt: skip
    sent = out.read_bytes()
    assert sent == request_der(demo_pki, "good")
    cert_id = parse_request_fast(sent).cert_ids[0].der
    assert fill_request_der(cert_id) == sent
    post_key, get_key = request_keys(b"/", sent)
    assert post_key == sent and get_key == b"/" + quote(base64.b64encode(sent).decode(), safe="").encode()
    assert request_keys(b"/demo/", sent) == (b"\0/demo\0" + sent, b"/demo/" + get_key[1:])


def test_filled_entries_are_byte_identical_to_what_a_miss_renders(worker):
    """Good, revoked and (with cert_hash, a certificate the issued list lacks) unknown stored answers, POST
    and GET: the first request is an edge hit, and its bytes are those a miss renders at the same time."""
    w = worker()
    assert w.edge is not None and len(w.edge) == 0
    kept = w.fill()
    assert kept == len(w.edge) // 2 >= len(LEAVES)  # two keys per entry, SHA-1 and SHA-256 (the budget holds both)
    statuses = set()
    for name in LEAVES:
        for algorithm in ("sha1", "sha256"):
            der = request_der(w.pki, name, algorithm=algorithm)
            for request in (post(der), post(der, "/demo/"), get_encoded(der)):
                w.clock.advance(3)
                filled = w.send(request)
                assert w.responder.flush_metrics() == 1 and w.edge.flush_metrics() == 0  # the edge answered
                entries = dict(w.edge._entries)
                w.edge._entries.clear()
                reference = w.send(request)  # a miss: the stored response, rendered and kept
                assert w.responder.counts["precomputed"].flush(None) == 1
                assert filled == reference
                w.edge._entries.update(entries)
            statuses.add(ocsp.load_der_ocsp_response(split(filled)[2]).certificate_status)
    assert statuses == {ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED}


def test_a_stored_unknown_answer_is_filled_as_a_miss_renders_it(sqlite_worker, tmp_path):
    w = sqlite_worker(cert_hash=True, issued=None)
    issued = tmp_path / "issued.pem"
    issued.write_bytes(w.pki.leaves["good"].read_bytes())
    w.close()
    w = sqlite_worker(cert_hash=True, issued=issued)
    w.fill()
    der = request_der(w.pki, "good2")  # issued (index.txt) without its certificate: unknown, and stored
    filled = w.send(post(der))
    assert w.responder.flush_metrics() == 1
    assert ocsp.load_der_ocsp_response(split(filled)[2]).certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    w.edge._entries.clear()
    assert w.send(post(der)) == filled


def test_the_setting_off_fills_nothing(sqlite_worker):
    w = sqlite_worker(preload=False)
    assert w.responder.preload is None
    assert SERVER.keys[[key.name for key in SERVER.keys].index("response_cache_preload")].default == "true"


def test_a_set_that_does_not_fit_is_not_filled_and_the_default_size_holds_the_fill(sqlite_worker):
    w = sqlite_worker(cache_bytes=None)  # the sized default: every pre-signed serial fits
    assert w.responder.preload is not None
    w.fill()
    assert w.edge.budget.used <= w.edge.budget.max_bytes
    served = w.responder.preload.answers
    assert served >= len(LEAVES) and w.edge.budget.max_bytes >= served * ANSWER_BYTES
    small = sqlite_worker(cache_bytes=served * ANSWER_BYTES - 1)  # configured below the whole set
    assert not fill_fits(served, small.edge.budget.max_bytes) and small.responder.preload is None


def test_the_fill_never_evicts_an_entry_a_client_asked_for_and_stops_when_full(sqlite_worker):
    w = sqlite_worker()
    asked = post(request_der(w.pki, "revoked-superseded"))
    w.send(asked)  # a miss: kept by the edge
    held = dict(w.edge._entries)
    first_entry_size = w.edge.size
    w.edge.budget.max_bytes = w.edge.size + 2 * first_entry_size + 400  # room for about two filled serials
    kept = w.fill()
    assert 1 <= kept <= 3 and w.edge.budget.used <= w.edge.budget.max_bytes
    assert all(key in w.edge._entries for key in held)  # not evicted
    assert list(w.edge._entries)[-1] in held  # filled entries go in as the least recently used


def test_nothing_past_its_refresh_point_is_filled(sqlite_worker):
    w = sqlite_worker()
    w.clock.advance(16 * 3600)  # validity 1 day: the refresh point is thisUpdate + 16 h
    assert w.fill() == 0 and len(w.edge) == 0


def test_a_store_change_during_the_fill_never_leaves_a_stale_answer(sqlite_worker):
    """The race of a slice's read and a change notification, both orders: (a) the change is committed
    and announced while a slice is read, and a request's lookup drops the issuer's entries before the
    slice is kept (the slice is read again), (b) it is committed during the read and announced after
    the slice was kept (the edge drops the issuer before its next lookup). Neither serves the old "good"."""
    for announce_during_read in (True, False):
        w = sqlite_worker()
        w.responder.preload.slice_rows = 1  # one serial per slice: the change lands between slices
        served = w.app.registry.by_name["demo"]
        leaf = w.pki.leaves["good2"]
        from cryptography import x509

        serial = x509.load_pem_x509_certificate(leaf.read_bytes()).serial_number
        store = w.responder.preload.store
        reads = {"n": 0}
        real = store.servable_responses

        def read(*args, **kwargs):
            rows = real(*args, **kwargs)  # read before the change: its "good" row included
            reads["n"] += 1
            if reads["n"] == 1:
                revoke_in_index(w.pki, serial, store, served, w.clock)  # committed after the read began
                if announce_during_read:
                    w.edge.issuer_changed(served.issuer_id)
                    w.send(post(request_der(w.pki, "good")))  # a request between: its lookup drains the change
                else:
                    asyncio.get_running_loop().call_soon(w.edge.issuer_changed, served.issuer_id)
            return rows

        store.servable_responses = read
        w.fill()
        response = w.send(post(request_der(w.pki, "good2")))
        status = ocsp.load_der_ocsp_response(split(response)[2]).certificate_status
        assert status is ocsp.OCSPCertStatus.REVOKED, announce_during_read
        w.close()


def test_a_failing_store_stops_the_fill_with_one_line_and_requests_are_answered(sqlite_worker, caplog):
    w = sqlite_worker()
    preload = w.responder.preload

    def unavailable(*args, **kwargs):
        raise StoreUnavailable("store", "PostgreSQL stopped answering: gone")

    preload.store = type("Broken", (), {"servable_responses": staticmethod(unavailable)})()
    with caplog.at_level(logging.INFO, logger="certstatus.server.preload"):
        assert w.fill() == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "edge cache fill stopped after 0 entries" in errors[0] and "gone" in errors[0]
    response = w.send(post(request_der(w.pki, "good")))
    assert split(response)[0] == 200 and w.responder.flush_metrics() == 1  # a miss, answered from the store


def test_a_corrupt_row_stops_the_fill_and_the_worker_serves_on(sqlite_worker, caplog):
    from cryptography import x509

    w = sqlite_worker()
    broken = x509.load_pem_x509_certificate(w.pki.leaves["good"].read_bytes()).serial_number
    w.store._db.execute("UPDATE precomputed SET certs_id = 999 WHERE serial = ?", (serial_key(broken),))
    assert w.store._db.execute("SELECT changes()").fetchone()[0] == 1  # no such certificates row
    with caplog.at_level(logging.INFO, logger="certstatus.server.preload"):
        assert w.fill() == 0  # one slice holds every row
    assert any(r.levelno == logging.ERROR and "fill stopped" in r.getMessage() for r in caplog.records)
    assert split(w.send(get_encoded(request_der(w.pki, "good2"))))[0] == 200  # another serial: a miss, answered


def test_the_fill_logs_one_line_at_start_and_one_at_the_end_and_counts(sqlite_worker, caplog):
    w = sqlite_worker()
    w.responder.preload.slice_rows = 2  # several slices
    before = PRELOADED._value.get()
    with caplog.at_level(logging.INFO, logger="certstatus.server.preload"):
        kept = w.fill()
    lines = [r.getMessage() for r in caplog.records if r.name == "certstatus.server.preload"]
    assert len(lines) == 2 and lines[0].startswith("edge cache fill started") and lines[1].startswith("edge cache fill done")
    assert f"{kept} entries" in lines[1] and w.responder.preload.slices > 2
    assert PRELOADED._value.get() - before == kept


def _serve_once(w, monkeypatch, head_start: float) -> dict:
    """Run the worker's serving coroutine on a listening socket until it accepts, then stop it;
    return what the fill had done when the worker began accepting."""
    from certstatus.server import workers

    monkeypatch.setattr(workers, "HEAD_START_SECONDS", head_start)
    preload = w.responder.preload
    preload.slice_rows = 2  # several slices, each a turn of the event loop
    loop = asyncio.new_event_loop()
    seen: dict = {}
    create_server = loop.create_server

    async def recording_create_server(*args, **kwargs):
        seen.update(kept=preload.kept)
        server = await create_server(*args, **kwargs)
        loop.call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)  # the worker's stop, as the supervisor sends it
        return server

    loop.create_server = recording_create_server
    with socket.create_server(("127.0.0.1", 0)) as sock:
        try:
            loop.run_until_complete(workers._serve(loop, sock, w.state, 0.1))
        finally:
            loop.close()
    return seen


def test_a_worker_accepts_its_first_connection_once_its_cache_is_filled(sqlite_worker, monkeypatch):
    w = sqlite_worker()
    seen = _serve_once(w, monkeypatch, head_start=30.0)
    assert seen["kept"] > 0 and seen["kept"] == w.responder.preload.kept  # all of it before the first accept
    assert w.responder.preload.slices > 2


def test_a_fill_longer_than_the_head_start_goes_on_between_requests(sqlite_worker, monkeypatch):
    w = sqlite_worker()
    seen = _serve_once(w, monkeypatch, head_start=0.0)
    assert seen["kept"] < w.responder.preload.kept  # accepting began before the fill ended
    assert w.responder.preload.paced is True
