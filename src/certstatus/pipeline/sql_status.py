"""Pipeline step: status of a CA with a live SQL source, queried per request.

Runs after issuer resolution and before local status + signing. For a CA
configured with ``[ca.NAME.sql]`` it queries every CertID of the request
and hands the records to the signer in ``exchange.records``; other CAs pass
through untouched. A failure of the database answers tryLater (RFC 6960
§2.3) — never a guess — and is logged at error level (at most every 10 s
per CA: the operator must fix the database or the query).

The query runs on the worker's event loop, bounded by the source timeout:
a healthy local database answers in well under a millisecond, but an
unreachable one stalls that worker's other requests for up to the timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError
from certstatus.sources.health import LogThrottle
from certstatus.sources.sql import SqlStatusSource, SqlUnavailable

log = logging.getLogger("certstatus.sql")


class LiveSqlStatus:
    """Look up the CertIDs of SQL-sourced CAs in their databases (``sources`` by CA name)."""

    def __init__(self, sources: Mapping[str, SqlStatusSource]) -> None:
        self.sources = dict(sources)
        self._throttle = LogThrottle(10.0)

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        source = self.sources.get(exchange.ca.name)
        if source is None:
            return call_next(exchange)
        records = []
        for cert_id, cert_ca in zip(exchange.query.cert_ids, exchange.cas, strict=True):
            if cert_ca is None:
                records.append(None)
                continue
            try:
                records.append(source.record(cert_id.serial_number))
            except SqlUnavailable as exc:
                if self._throttle.allow(source.ca_name):
                    log.error(
                        "CA %s: the SQL status source failed (%s); answering tryLater. Check the database "
                        "and the query in [ca.%s.sql].", source.ca_name, exc, source.ca_name,
                    )  # fmt: skip
                raise OCSPError(OCSPResponseStatus.TRY_LATER, f"SQL source of CA {source.ca_name}: {exc}") from None
        exchange.records = records
        return call_next(exchange)

    def close(self) -> None:
        """Close every pool."""
        for source in self.sources.values():
            source.close()
