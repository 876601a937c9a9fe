"""Audit step: one record per request for the audit/billing log (see :mod:`certstatus.audit`).

It wraps every other step, so it sees answers and refusals alike, and
writes last, once the answer (or the refusal) is known. The record:

``time`` (UTC) · ``method`` (GET, POST or HEAD; None for bytes that were not an
OCSP request) · ``client`` (address) · ``tls_client`` (subject) ·
``requestor_name_claimed`` (RFC 6960 requestorName: what the request says of
itself, verified by nothing) · ``signer`` (verified request signer subject) ·
``requestor`` (who is billed: the authenticated identity, tls_client else
signer; null for an unauthenticated request — never the claimed name nor the
address) · ``issuer`` (CA name) · ``certs``
(``serial`` hex, ``cert_id_hash``, ``status``) · ``response_status`` ·
``source`` (cache, precomputed, live, forwarded) · ``nonce`` · ``reason``
(why a request was refused) · ``latency_us``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.access.names import general_name_text
from certstatus.audit import AuditLog
from certstatus.pipeline.base import Exchange, OCSPAnswer
from certstatus.pipeline.observe import Observer

log = logging.getLogger("certstatus.request")

#: RFC 6960 §4.2.1 names of the responseStatus values.
RESPONSE_STATUS_NAMES = {
    OCSPResponseStatus.SUCCESSFUL: "successful",
    OCSPResponseStatus.MALFORMED_REQUEST: "malformedRequest",
    OCSPResponseStatus.INTERNAL_ERROR: "internalError",
    OCSPResponseStatus.TRY_LATER: "tryLater",
    OCSPResponseStatus.SIG_REQUIRED: "sigRequired",
    OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}


def audit_record(
    exchange: Exchange, answer: OCSPAnswer | None, status: OCSPResponseStatus, reason: str | None
) -> dict:
    """Build the audit record of an exchange that ended with ``answer`` or refusal ``status``."""
    auth = exchange.auth
    tls_client = auth.tls_client.subject_text if auth is not None and auth.tls_client else None
    signer = auth.signer.subject_text if auth is not None and auth.signer else None
    query = exchange.query
    requestor_name = general_name_text(query.requestor_name) if query.requestor_name is not None else None
    statuses = answer.statuses if answer is not None else ()
    certs = [
        {
            "serial": format(cert_id.serial_number, "x"),
            "cert_id_hash": cert_id.hash_algorithm,
            "status": statuses[i] if i < len(statuses) else None,
        }
        for i, cert_id in enumerate(query.cert_ids)
    ]
    return {
        "time": exchange.received_at,
        "method": exchange.method,
        "client": exchange.client_address,
        "tls_client": tls_client,
        "requestor_name_claimed": requestor_name,
        "signer": signer,
        "requestor": tls_client or signer,  # authenticated only: a requestorName is anyone's to write
        "issuer": getattr(exchange.ca, "name", None),
        "certs": certs,
        "response_status": RESPONSE_STATUS_NAMES[status],
        "source": answer.source if answer is not None else None,
        "nonce": query.nonce is not None,
        "reason": reason,
        "latency_us": (time.perf_counter_ns() - exchange.started_ns) // 1000,
    }


def malformed_record(received_at: dt.datetime, client_address: str | None, started_ns: int, reason: str) -> dict:
    """The audit record of bytes that were not an OCSP request (no certificate asked, nothing billed)."""
    return {
        "time": received_at, "method": None, "client": client_address, "tls_client": None, "requestor_name_claimed": None,
        "signer": None, "requestor": None, "issuer": None, "certs": [],
        "response_status": "malformedRequest", "source": None, "nonce": False, "reason": reason,
        "latency_us": (time.perf_counter_ns() - started_ns) // 1000,
    }  # fmt: skip


class Audit(Observer):
    """Pipeline step writing one :func:`audit_record` per request to an :class:`AuditLog`."""

    def __init__(self, audit_log: AuditLog) -> None:
        self.audit_log = audit_log

    def answered(self, exchange: Exchange, answer: OCSPAnswer) -> None:
        self._write(audit_record(exchange, answer, OCSPResponseStatus.SUCCESSFUL, None))

    def refused(self, exchange: Exchange, status: OCSPResponseStatus, reason: str) -> None:
        self._write(audit_record(exchange, None, status, reason))

    def malformed(self, received_at: dt.datetime, client_address: str | None, started_ns: int, reason: str) -> None:
        """Record a request that never reached the pipeline (called by the HTTP edge)."""
        self._write(malformed_record(received_at, client_address, started_ns, reason))

    def _write(self, record: dict) -> None:
        self.audit_log.write(record)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s for %s", record["response_status"], record["issuer"], record["requestor"], extra={"audit": record})
