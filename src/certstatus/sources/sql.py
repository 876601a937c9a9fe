"""Live status from a CA's own database, queried per request (no import, nothing stored).

The operator's query gets the named parameters ``issuer`` (the CA name),
``serial`` (numeric), ``serial_hex`` (upper-case hex, even length, ``-``
before a negative serial, as OpenSSL prints it) and ``serial_dec`` (decimal string), and returns at most
one row ``(status, revocation_time, reason)``:

* ``status``: ``good``/``valid``/``V``/``E``/``expired`` → good;
  ``revoked``/``R`` → revoked; ``unknown`` → unknown (case-insensitive);
* ``revocation_time``: timestamp (naive = UTC) or seconds since the epoch;
* ``reason``: RFC 5280 reasonCode (integer) or its name (``keyCompromise``),
  or NULL.

No row means the serial was not issued (unknown, or extended revoked with
``unknown_serials = "revoked"``). Connections come from a psycopg_pool pool
per worker process, opened on first use; waiting for a connection and the
statement are both bounded by the source's ``timeout``. Any failure raises
:class:`SqlUnavailable` — the request gets tryLater, never a guess.
"""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict
from cryptography import x509

from certstatus.clock import UTC
from certstatus.source_settings import SqlSettings
from certstatus.sources.issued import serial_hex
from certstatus.sources.push import REASON_NAMES
from certstatus.sources.records import RevokedEntry
from certstatus.store.base import REASONS_BY_CODE, CertStatusRecord
from certstatus.store.dsn import redact

_GOOD = {"good", "valid", "v", "e", "expired", "issued"}
_REVOKED = {"revoked", "r"}


class SqlUnavailable(Exception):
    """The SQL source could not answer (connection, timeout, query error, unusable row)."""


class SqlStatusSource:
    """Query one CA's database for the status of a serial (one instance per CA per process)."""

    def __init__(self, ca_name: str, settings: SqlSettings) -> None:
        self.ca_name = ca_name
        self.settings = settings
        milliseconds = max(1, int(settings.timeout * 1000))
        # Add the statement timeout to the DSN's own options (a search_path, say)
        # rather than replacing them.
        dsn_options = conninfo_to_dict(settings.dsn).get("options") or ""
        options = f"{dsn_options} -c statement_timeout={milliseconds}".strip()
        self._pool = psycopg_pool.ConnectionPool(
            settings.dsn,
            min_size=1,
            max_size=settings.pool_size,
            timeout=settings.timeout,
            open=False,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(round(settings.timeout))),
                "options": options,
            },
            name=f"certstatus-sql-{ca_name}",
        )
        self._opened = False
        self._lock = threading.Lock()

    def record(self, serial_number: int) -> CertStatusRecord | None:
        """The status of ``serial_number`` as a store record (None: not issued).

        Raises :class:`SqlUnavailable` with the cause on any failure.
        """
        self._open()
        params = {
            "issuer": self.ca_name,
            "serial": serial_number,
            "serial_hex": serial_hex(serial_number),
            "serial_dec": str(serial_number),
        }
        try:
            with self._pool.connection(timeout=self.settings.timeout) as connection:
                rows = connection.execute(self.settings.query, params).fetchmany(2)
        except psycopg_pool.PoolTimeout:
            raise SqlUnavailable(f"no database connection within {self.settings.timeout:g} s") from None
        except psycopg.errors.QueryCanceled:
            raise SqlUnavailable(f"query exceeded {self.settings.timeout:g} s") from None
        except psycopg.Error as exc:
            raise SqlUnavailable(f"query failed: {exc.__class__.__name__}: {redact(str(exc).strip())}") from None
        if len(rows) > 1:
            raise SqlUnavailable(f"query returned several rows for serial {serial_number:#x}; it must return at most one")
        return None if not rows else _record(serial_number, rows[0])

    def close(self) -> None:
        """Close the pool's connections."""
        if self._opened:
            self._pool.close()

    def _open(self) -> None:
        if not self._opened:
            with self._lock:
                if not self._opened:
                    self._pool.open(wait=False)
                    self._opened = True


def _record(serial_number: int, row: tuple) -> CertStatusRecord | None:
    if len(row) < 1:
        raise SqlUnavailable("query returned no column; it must return status, revocation_time, reason")
    status = str(row[0]).strip().lower()
    if status in _GOOD:
        return CertStatusRecord(issued=True, revoked=None)
    if status == "unknown":
        return None
    if status not in _REVOKED:
        raise SqlUnavailable(f"status {row[0]!r} is not good, revoked or unknown")
    if len(row) < 2 or row[1] is None:
        raise SqlUnavailable(f"revoked serial {serial_number:#x} has no revocation_time")
    reason = _reason(row[2] if len(row) > 2 else None)
    return CertStatusRecord(issued=True, revoked=RevokedEntry(serial_number, _time(row[1]), reason))


def _time(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(microsecond=0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(int(value), UTC)
    raise SqlUnavailable(f"revocation_time {value!r} is not a timestamp")


def _reason(value: object) -> x509.ReasonFlags | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value in REASONS_BY_CODE and value != 8:
            return REASONS_BY_CODE[value]
    elif isinstance(value, str):
        flag = REASON_NAMES.get(value.strip().lower().replace("_", "").replace(" ", ""))
        if flag is not None:
            return flag
    raise SqlUnavailable(f"reason {value!r} is not an RFC 5280 reasonCode")
