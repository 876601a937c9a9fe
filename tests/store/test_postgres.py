"""What only the PostgreSQL store does: NOTIFY on the wire, lost connections, an unreachable server."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import psycopg.conninfo
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.app import load_ca
from certstatus.clock import SystemClock
from certstatus.config import CaSettings
from certstatus.errors import StoreUnavailable
from certstatus.model import CertStatusRecord
from certstatus.pipeline.base import Exchange, OCSPError, Route
from certstatus.pipeline.issuers import IssuerRegistry
from certstatus.pipeline.steps import LocalStatusSigner, ResolveIssuers
from certstatus.protocol.request import parse_request
from certstatus.store.base import SourceState
from certstatus.store.postgres import PostgresStore, channel_for
from tests.servers import free_port

T0 = dt.datetime(2030, 6, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def pg_store(postgres_dsn: str):
    store = PostgresStore(postgres_dsn, upgrade=True)
    yield store
    store.close()


def test_every_write_notifies_issuer_and_counter_at_commit(pg_store: PostgresStore, postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as listener:
        listener.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(pg_store.channel)))
        issuer = pg_store.register_issuer("ca", b"cert")
        pg_store.replace_source(issuer, SourceState("issued", "/x", T0, 1), issued=[1])
        payloads = [note.payload for note in listener.notifies(timeout=5, stop_after=2)]
    assert payloads == [f"{issuer}:1", f"{issuer}:2"]
    assert pg_store.change_counters() == {issuer: 2}


def test_an_import_that_changes_no_status_notifies_only_the_sources_channel(pg_store: PostgresStore, postgres_dsn: str) -> None:
    issuer = pg_store.register_issuer("ca", b"cert")
    pg_store.replace_source(issuer, SourceState("issued", "/x", T0, 1), issued=[1])
    with psycopg.connect(postgres_dsn, autocommit=True) as listener:
        for channel in (pg_store.channel, pg_store.sources_channel):
            listener.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
        pg_store.replace_source(issuer, SourceState("issued", "/x", T0 + dt.timedelta(hours=1), 1), issued=[1])
        assert pg_store.change_counters() == {issuer: 2}
        pg_store.replace_source(issuer, SourceState("issued", "/x", T0 + dt.timedelta(hours=2), 2), issued=[1, 2])
        notes = [(note.channel, note.payload) for note in listener.notifies(timeout=5, stop_after=2)]
    assert notes == [(pg_store.sources_channel, str(issuer)), (pg_store.channel, f"{issuer}:3")]


def test_a_failed_write_notifies_nothing(pg_store: PostgresStore, postgres_dsn: str) -> None:
    issuer = pg_store.register_issuer("ca", b"cert")
    with psycopg.connect(postgres_dsn, autocommit=True) as listener:
        listener.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(pg_store.channel)))

        def broken():
            yield 1
            raise ValueError("parser failed")

        with pytest.raises(ValueError):
            pg_store.replace_source(issuer, SourceState("issued", "/x", T0, 1), issued=broken())
        assert list(listener.notifies(timeout=0.5)) == []


def test_channel_is_named_after_the_schema() -> None:
    assert channel_for("public") == "certstatus_changes"
    assert channel_for("ocsp") == "certstatus_changes_ocsp"
    assert channel_for("ocsp", "sources") == "certstatus_sources_ocsp"
    assert len(channel_for("x" * 80).encode()) == 63


def test_lookup_survives_its_connection_being_terminated(pg_store: PostgresStore, postgres_dsn: str) -> None:
    issuer = pg_store.register_issuer("ca", b"cert")
    pg_store.replace_source(issuer, SourceState("issued", "/x", T0, 1), issued=[5])
    assert pg_store.lookup(issuer, 5) == CertStatusRecord(True, None)
    backend = pg_store._reader().connection.info.backend_pid
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (backend,)).fetchone() == (True,)
    assert pg_store.lookup(issuer, 5) == CertStatusRecord(True, None)


def test_unreachable_server_while_serving_answers_try_later(pg_store: PostgresStore, postgres_dsn: str, demo_pki) -> None:
    ca = CaSettings("demo", demo_pki.ca_cert, demo_pki.ocsp_cert, demo_pki.ocsp_key, crl=(str(demo_pki.crl),))
    served = load_ca(ca, pg_store, SystemClock())
    pg_store.replace_source(served.issuer_id, SourceState("crl", "/x", T0, 0, T0, T0, 1))
    served.has_data = True
    leaf = x509.load_pem_x509_certificate(demo_pki.leaves["good"].read_bytes())
    issuer = x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())
    der = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)
    exchange = Exchange(parse_request(der), Route("/"), T0)
    ResolveIssuers(IssuerRegistry([served])).handle(exchange, lambda e: None)
    step = LocalStatusSigner(pg_store, SystemClock())
    assert step(exchange).statuses == ("good",)

    port = free_port()  # a port nothing listens on: the "server" is gone
    pg_store.dsn = f"postgresql://postgres@127.0.0.1:{port}/test"
    backend = pg_store._reader().connection.info.backend_pid
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    with pytest.raises(StoreUnavailable):
        pg_store.lookup(served.issuer_id, 1)
    with pytest.raises(OCSPError) as refused:
        step(exchange)
    assert refused.value.status is OCSPResponseStatus.TRY_LATER


class _TableLock:
    """Hold ACCESS EXCLUSIVE on ``table`` in another session (a migration or a stuck transaction
    would); released at exit, or by a timer after ``seconds`` so a failing test cannot hang."""

    def __init__(self, dsn: str, table: str, seconds: float = 20.0) -> None:
        self.conn = psycopg.connect(dsn)
        self.conn.execute(psycopg.sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(psycopg.sql.Identifier(table)))
        self.timer = threading.Timer(seconds, self.conn.cancel_safe)

    def __enter__(self) -> _TableLock:
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()
        self.conn.rollback()
        self.conn.close()


def test_a_lookup_on_a_locked_table_is_unavailable_after_the_read_timeout(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn, upgrade=True, read_timeout=0.3)
    try:
        issuer = store.register_issuer("ca", b"cert")
        store.replace_source(issuer, SourceState("issued", "/x", T0, 1), issued=[5])
        assert store.lookup(issuer, 5) == CertStatusRecord(True, None)
        with _TableLock(postgres_dsn, "revoked"):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="statement_timeout \\(300ms\\)"):
                store.lookup(issuer, 5)
            # Without the timeout the lookup would wait for the lock, i.e. the 20 s timer.
            assert time.monotonic() - started < 10
        assert store.lookup(issuer, 5) == CertStatusRecord(True, None)  # the same reader, usable again
    finally:
        store.close()


def test_source_states_on_a_locked_table_are_unavailable_after_the_read_timeout(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn, upgrade=True, read_timeout=0.3)
    try:
        issuer = store.register_issuer("ca", b"cert")
        store.replace_source(issuer, SourceState("issued", "/x", T0, 1), issued=[5])
        with _TableLock(postgres_dsn, "sources"):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                store.source_states(issuer)
            assert time.monotonic() - started < 10
        assert list(store.source_states(issuer)) == ["issued"]
    finally:
        store.close()


def test_a_statement_timeout_from_the_dsn_is_kept(postgres_dsn: str) -> None:
    options = psycopg.conninfo.conninfo_to_dict(postgres_dsn).get("options", "")
    dsn = psycopg.conninfo.make_conninfo(postgres_dsn, options=f"{options} -cstatement_timeout=12345".strip())
    store = PostgresStore(dsn, upgrade=True)
    try:
        conn = store._reader().connection
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "12345ms"
        assert conn.info.get_parameters()["tcp_user_timeout"] == str(round((store.read_timeout + 5) * 1000))
    finally:
        store.close()
    # Without it, the reader gets READ_TIMEOUT_SECONDS.
    store = PostgresStore(postgres_dsn)
    try:
        assert store._reader().connection.execute("SHOW statement_timeout").fetchone()[0] == "2s"
    finally:
        store.close()
