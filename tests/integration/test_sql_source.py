"""Live status from a CA database: the real PostgreSQL at 127.0.0.1:5432, database ``test``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import psycopg
import pytest
from cryptography import x509
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus

from certstatus.app import build_application
from certstatus.clock import UTC, SystemClock
from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.demo_pki import DemoPki
from certstatus.source_settings import SqlSettings
from certstatus.sources.sql import SqlStatusSource, SqlUnavailable
from tests.servers import free_port
from tests.sources_helpers import ocsp_query

pytestmark = pytest.mark.integration
DSN = "postgresql://postgres@127.0.0.1:5432/test"
REVOKED_AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def schema():
    """A uniquely named schema with a CA's certificate table, dropped afterwards."""
    name = f"certstatus_sql_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DSN, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {name}")
        db.execute(
            f"CREATE TABLE {name}.certs (serial_hex text PRIMARY KEY, status text NOT NULL, "
            "revoked_at timestamptz, reason text)"
        )
        db.execute(
            f"INSERT INTO {name}.certs VALUES ('0A', 'V', NULL, NULL), ('0B', 'R', %s, 'keyCompromise'), "
            "('0C', 'R', %s, NULL), ('0D', 'maybe', NULL, NULL), ('0E', 'revoked', NULL, NULL), "
            "('-01', 'R', %s, 'superseded'), ('00', 'V', NULL, NULL), ('FF', 'V', NULL, NULL)",
            (REVOKED_AT, REVOKED_AT, REVOKED_AT),
        )
        yield name
        db.execute(f"DROP SCHEMA {name} CASCADE")


def _settings(schema: str, **changes) -> SqlSettings:
    query = f"SELECT status, revoked_at, reason FROM {schema}.certs WHERE serial_hex = %(serial_hex)s"
    return dataclasses.replace(SqlSettings(DSN, query, timeout=2.0, pool_size=2), **changes)


def test_rows_become_status_records(schema: str) -> None:
    source = SqlStatusSource("db-ca", _settings(schema))
    try:
        assert source.record(0x0A).revoked is None and source.record(0x0A).issued
        revoked = source.record(0x0B).revoked
        assert (revoked.revocation_time, revoked.reason) == (REVOKED_AT, x509.ReasonFlags.key_compromise)
        assert source.record(0x0C).revoked.reason is None
        assert source.record(0x99) is None  # no row: not issued
        with pytest.raises(SqlUnavailable, match="status 'maybe' is not good, revoked or unknown"):
            source.record(0x0D)
        with pytest.raises(SqlUnavailable, match="has no revocation_time"):
            source.record(0x0E)
    finally:
        source.close()


def test_serial_hex_is_written_as_openssl_writes_negative_and_zero_serials(schema: str) -> None:
    """-1 is looked up as '-01' (OpenSSL's BN_bn2hex), 0 as '00', 255 as 'FF'."""
    source = SqlStatusSource("db-ca", _settings(schema))
    try:
        assert source.record(-1).revoked.reason is x509.ReasonFlags.superseded
        assert source.record(0) == source.record(255) and source.record(0).issued
        assert source.record(1) is None and source.record(-255) is None
    finally:
        source.close()


def test_schema_chosen_by_the_dsn_options_is_kept_beside_the_timeout(schema: str) -> None:
    # The statement timeout is added to the DSN's own options, not put in their place.
    from tests.postgres import dsn_for

    unqualified = "SELECT status, revoked_at, reason FROM certs WHERE serial_hex = %(serial_hex)s"
    source = SqlStatusSource("db-ca", _settings(schema, dsn=dsn_for(schema), query=unqualified))
    try:
        assert source.record(0x0B).revoked.reason is x509.ReasonFlags.key_compromise
    finally:
        source.close()


def test_slow_query_is_cut_at_the_timeout(schema: str) -> None:
    source = SqlStatusSource("db-ca", _settings(schema, query="SELECT 'good' FROM pg_sleep(3) WHERE %(serial)s > 0", timeout=1.0))
    try:
        with pytest.raises(SqlUnavailable, match="query exceeded 1 s"):
            source.record(1)
    finally:
        source.close()


def _app(demo_pki: DemoPki, tmp_path, sql: SqlSettings, unknown_serials: str = "unknown"):
    ca = CaSettings(
        name="db-ca", certificate=demo_pki.ca_cert, signer_certificate=demo_pki.ocsp_cert,
        signer_key=demo_pki.ocsp_key, sql=sql, unknown_serials=unknown_serials,
    )  # fmt: skip
    return build_application(Settings(ServerSettings(database=tmp_path / "store.sqlite3"), (ca,)), SystemClock())


def test_ocsp_answers_come_from_the_database_live(schema: str, demo_pki: DemoPki, tmp_path) -> None:
    app = _app(demo_pki, tmp_path, _settings(schema), unknown_serials="revoked")
    good, revoked, missing = (ocsp_query(app, demo_pki, s) for s in (0x0A, 0x0B, 0x77))
    assert good.certificate_status is OCSPCertStatus.GOOD
    assert revoked.certificate_status is OCSPCertStatus.REVOKED
    assert revoked.revocation_time_utc == REVOKED_AT and revoked.revocation_reason is x509.ReasonFlags.key_compromise
    assert missing.certificate_status is OCSPCertStatus.REVOKED  # extended revoked: never issued
    with psycopg.connect(DSN, autocommit=True) as db:  # a change in the CA database is answered at once
        db.execute(f"UPDATE {schema}.certs SET status = 'R', revoked_at = %s WHERE serial_hex = '0A'", (REVOKED_AT,))
    try:
        assert ocsp_query(app, demo_pki, 0x0A).certificate_status is OCSPCertStatus.REVOKED
    finally:
        with psycopg.connect(DSN, autocommit=True) as db:
            db.execute(f"UPDATE {schema}.certs SET status = 'V', revoked_at = NULL WHERE serial_hex = '0A'")


def test_database_down_or_bad_query_answers_try_later(schema: str, demo_pki: DemoPki, tmp_path) -> None:
    closed = free_port()
    down = _app(demo_pki, tmp_path, _settings(schema, dsn=f"postgresql://postgres@127.0.0.1:{closed}/test", timeout=1.0))
    broken = _app(demo_pki, tmp_path, _settings(schema, query="SELECT status FROM no_such_table WHERE %(serial)s > 0"))
    for app in (down, broken):
        response = ocsp_query(app, demo_pki, 0x0A)
        assert response.response_status is OCSPResponseStatus.TRY_LATER
