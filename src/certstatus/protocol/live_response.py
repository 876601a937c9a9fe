"""Direct DER writers for ResponseData, the live-signing hot path.

Byte for byte the output of the ``asn1crypto`` reference encoder kept in the tests
(tests/ocsp_reference.py; tests/unit/test_live_response.py compares them on generated inputs), written by concatenating TLVs instead of
building asn1crypto objects. The signed ResponseData is wrapped into the
OCSPResponse by :class:`certstatus.protocol.fast_response.ResponseWrapper`
(compared with the reference's ``encode_basic_response`` there).
``bench/hotpath.py`` measures the reference at ~190 µs per ResponseData and ~65 µs
per wrapper against a few µs here — more than the ECDSA P-256 signature itself (~23 µs).

Structures (RFC 6960 §4.2.1)::

    OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT SEQUENCE {
        responseType OID, response OCTET STRING (BasicOCSPResponse) } }
    BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm,
        signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
    ResponseData ::= SEQUENCE { responderID, producedAt GeneralizedTime,
        responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
    SingleResponse ::= SEQUENCE { certID, certStatus CHOICE { good [0] IMPLICIT NULL,
        revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT NULL }, thisUpdate,
        nextUpdate [0] EXPLICIT OPTIONAL, singleExtensions [1] EXPLICIT OPTIONAL }
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from certstatus.der import tlv
from certstatus.protocol.fast_response import generalized_time, single_extensions

# Extension { extnID id-pkix-ocsp-nonce } up to the extnValue OCTET STRING.
_NONCE_OID = bytes.fromhex("06092b0601050507300102")
# Extension { id-pkix-ocsp-extended-revoke, extnValue OCTET STRING { NULL } } (RFC 6960 §4.4.8).
_EXTENDED_REVOKE = bytes.fromhex("300f06092b06010505073001090402 0500".replace(" ", ""))

# thisUpdate/producedAt/nextUpdate repeat for every response signed in the same second.
_SECOND = dt.timedelta(seconds=1)


def single_response(cert_id_der: bytes, cert_status_der: bytes, times_der: bytes,
                    invalidity_date: dt.datetime | None = None, extensions: bytes = b"") -> bytes:
    """One SingleResponse from encoded parts: ``times_der`` is thisUpdate's GeneralizedTime, then
    (optionally) ``[0] EXPLICIT`` nextUpdate — :meth:`ResponseTimes.times_der`; the invalidity
    date (a revoked answer's singleExtension, RFC 6960 §4.4) is given as a datetime, and
    ``extensions`` are further encoded singleExtensions after it (the CA's ArchiveCutoff, ...)."""
    if invalidity_date is None and not extensions:
        return tlv(0x30, cert_id_der + cert_status_der + times_der)
    return tlv(0x30, cert_id_der + cert_status_der + times_der + single_extensions(invalidity_date, extensions))


class ResponseTimes:
    """producedAt/thisUpdate/nextUpdate of live responses signed within one second, encoded once.

    ``now`` is the whole second (aware UTC), ``next_update`` = now + ``validity`` seconds, or
    ``next_update`` when given (a bound of :func:`certstatus.next_update.next_update_limit`);
    :meth:`covers` says whether a clock reading falls within that second.
    """

    __slots__ = ("now", "end", "next_update", "this_update_der", "times_der")

    def __init__(self, when: dt.datetime, validity: int, next_update: dt.datetime | None = None) -> None:
        self.now = when.replace(microsecond=0)
        self.end = self.now + _SECOND
        self.next_update = self.now + dt.timedelta(seconds=validity) if next_update is None else next_update
        self.this_update_der = generalized_time(self.now)
        self.times_der = self.this_update_der + b"\xa0\x11" + generalized_time(self.next_update)

    def covers(self, when: dt.datetime) -> bool:
        """True when ``when`` (aware) lies within this second."""
        return self.now <= when < self.end


def response_data(
    responder_id_der: bytes,
    produced_at_der: bytes,
    singles: Sequence[bytes],
    nonce: bytes | None = None,
    extended_revoke: bool = False,
) -> bytes:
    """ResponseData DER from encoded parts (:func:`single_response`); the bytes to sign."""
    body = responder_id_der + produced_at_der + tlv(0x30, singles[0] if len(singles) == 1 else b"".join(singles))
    if nonce is not None or extended_revoke:
        extensions = b""
        if nonce is not None:
            extensions = tlv(0x30, _NONCE_OID + tlv(0x04, nonce))
        if extended_revoke:
            extensions += _EXTENDED_REVOKE
        body += tlv(0xA1, tlv(0x30, extensions))
    return tlv(0x30, body)
