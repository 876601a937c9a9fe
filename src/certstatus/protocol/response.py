"""The constant parts of OCSP responses (RFC 6960 §4.2): unsuccessful responses, certStatus names, responderID.

Unsuccessful responses are constants (a bare responseStatus, §4.2.1), one per
status in :data:`UNSUCCESSFUL`. Successful responses are written by
:mod:`certstatus.protocol.live_response` (live signing) and
:mod:`certstatus.protocol.fast_response` (the generator's templates), byte for
byte as the ``asn1crypto`` encoder the tests keep as the reference
(tests/ocsp_reference.py).
"""

from __future__ import annotations

import datetime as dt

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus


def _unsuccessful(status: OCSPResponseStatus) -> bytes:
    # OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED } with no responseBytes.
    return bytes((0x30, 0x03, 0x0A, 0x01, status.value))


#: responseStatus -> the constant DER of that unsuccessful response.
UNSUCCESSFUL: dict[OCSPResponseStatus, bytes] = {
    status: _unsuccessful(status)
    for status in OCSPResponseStatus
    if status is not OCSPResponseStatus.SUCCESSFUL
}

#: certStatus -> the name used in logs, audit lines and OCSPAnswer.statuses (RFC 6960 §4.2.1).
CERT_STATUS_NAMES: dict[OCSPCertStatus, str] = {
    OCSPCertStatus.GOOD: "good",
    OCSPCertStatus.REVOKED: "revoked",
    OCSPCertStatus.UNKNOWN: "unknown",
}

#: RFC 6960 §2.2: the revocationTime of an "extended revoked" answer.
EXTENDED_REVOKED_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def responder_id_by_key(key_hash: bytes) -> asn1_ocsp.ResponderId:
    """responderID byKey: SHA-1 of the signer's subjectPublicKey bits (RFC 6960 §4.2.1)."""
    return asn1_ocsp.ResponderId(name="by_key", value=key_hash)


def responder_id_by_name(subject_der: bytes) -> asn1_ocsp.ResponderId:
    """responderID byName: the signer certificate's subject Name (RFC 6960 §4.2.1)."""
    return asn1_ocsp.ResponderId(name="by_name", value=asn1_x509.Name.load(subject_der))
