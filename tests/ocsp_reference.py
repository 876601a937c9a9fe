"""Reference encoders of OCSP responses, and the adapters that feed the same inputs to the hot-path writers.

:func:`encode_response_data` and :func:`encode_basic_response` build ResponseData and
OCSPResponse{successful, BasicOCSPResponse} (RFC 6960 §4.2.1) with ``asn1crypto``, structure
by structure: the specification the DER writers of :mod:`certstatus.protocol.live_response`
(live signing) and :mod:`certstatus.protocol.fast_response` (the generator's templates) are
compared with, byte for byte (tests/unit/test_live_response.py, test_fast_response.py,
test_protocol_response.py), and the peer of bench/hotpath.py. :class:`SingleAnswer` is their
input: what one SingleResponse says. :func:`live_encode_response_data` and
:func:`fast_encode_response_data` give the same inputs to the hot-path writers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from asn1crypto import algos, core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.der import tlv
from certstatus.protocol import extensions
from certstatus.protocol.fast_response import (
    _EXTENDED_REVOKE,
    archive_cutoff_extension,
    cert_hash_extension,
    encode_cert_status,
    generalized_time,
    single_extensions,
)
from certstatus.protocol.live_response import response_data, single_response

_live_time = lru_cache(maxsize=256)(generalized_time)  # as the live path encodes times: once per second


@dataclass(frozen=True, slots=True)
class SingleAnswer:
    """What one SingleResponse says (RFC 6960 §4.2.1).

    ``cert_id_der`` is the request's CertID as received. ``status`` is an
    ``OCSPCertStatus``; for REVOKED, ``revocation_time`` is required and
    ``reason`` (``x509.ReasonFlags``) and ``invalidity_date`` optional.
    ``archive_cutoff`` adds the ArchiveCutoff singleExtension (RFC 6960
    §4.4.4), ``cert_hash`` (the SHA-256 of the certificate) the CertHash
    singleExtension of Common PKI. All times aware UTC; sub-second parts are
    dropped when encoded. singleExtensions are written in this order:
    invalidityDate, ArchiveCutoff, CertHash.
    """

    cert_id_der: bytes
    status: OCSPCertStatus
    this_update: dt.datetime
    next_update: dt.datetime | None
    revocation_time: dt.datetime | None = None
    reason: x509.ReasonFlags | None = None
    invalidity_date: dt.datetime | None = None
    archive_cutoff: dt.datetime | None = None
    cert_hash: bytes | None = None


_REASON_NAMES = {
    x509.ReasonFlags.unspecified: "unspecified",
    x509.ReasonFlags.key_compromise: "key_compromise",
    x509.ReasonFlags.ca_compromise: "ca_compromise",
    x509.ReasonFlags.affiliation_changed: "affiliation_changed",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessation_of_operation",
    x509.ReasonFlags.certificate_hold: "certificate_hold",
    x509.ReasonFlags.remove_from_crl: "remove_from_crl",
    x509.ReasonFlags.privilege_withdrawn: "privilege_withdrawn",
    x509.ReasonFlags.aa_compromise: "aa_compromise",
}


def _time(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("OCSP times must be aware UTC datetimes")
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


def _single_response(answer: SingleAnswer) -> asn1_ocsp.SingleResponse:
    if answer.status is OCSPCertStatus.GOOD:
        cert_status = asn1_ocsp.CertStatus(name="good", value=core.Null())
    elif answer.status is OCSPCertStatus.UNKNOWN:
        cert_status = asn1_ocsp.CertStatus(name="unknown", value=core.Null())
    else:
        if answer.revocation_time is None:
            raise ValueError("a revoked SingleAnswer needs revocation_time")
        revoked = {"revocation_time": _time(answer.revocation_time)}
        if answer.reason is not None:
            revoked["revocation_reason"] = _REASON_NAMES[answer.reason]
        cert_status = asn1_ocsp.CertStatus(name="revoked", value=asn1_ocsp.RevokedInfo(revoked))
    single = {
        "cert_id": asn1_ocsp.CertId.load(answer.cert_id_der),
        "cert_status": cert_status,
        "this_update": _time(answer.this_update),
    }
    if answer.next_update is not None:
        single["next_update"] = _time(answer.next_update)
    single_extensions = []
    if answer.invalidity_date is not None and answer.status is OCSPCertStatus.REVOKED:
        # RFC 6960 §4.4: CRL entry extensions may be carried as singleExtensions.
        single_extensions.append({"extn_id": "invalidity_date", "extn_value": _time(answer.invalidity_date)})
    if answer.archive_cutoff is not None:
        single_extensions.append({"extn_id": "archive_cutoff", "extn_value": _time(answer.archive_cutoff)})
    if answer.cert_hash is not None:
        cert_hash = _CertHash({"hash_algorithm": {"algorithm": "sha256", "parameters": None}, "certificate_hash": answer.cert_hash})
        single_extensions.append({"extn_id": extensions.CERT_HASH, "extn_value": cert_hash.dump()})
    if single_extensions:
        single["single_extensions"] = single_extensions
    return asn1_ocsp.SingleResponse(single)


class _CertHash(core.Sequence):
    """CertHash ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, certificateHash OCTET STRING } (Common PKI).

    SHA-256 with absent parameters (RFC 5754 §2: implementations generate them absent)."""

    _fields = [("hash_algorithm", algos.DigestAlgorithm), ("certificate_hash", core.OctetString)]


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


_NONCE_OID_DER = core.ObjectIdentifier(extensions.NONCE).dump()


def _nonce_extension(extn_value: bytes) -> asn1_ocsp.ResponseDataExtension:
    """The nonce Extension with extnValue holding ``extn_value`` exactly as received.

    Encoded by hand and loaded lazily: constructing it through asn1crypto would
    parse the value as an OCTET STRING and fail on the raw nonces of old clients.
    """
    value = b"\x04" + _der_length(len(extn_value)) + extn_value
    body = _NONCE_OID_DER + value
    return asn1_ocsp.ResponseDataExtension.load(b"\x30" + _der_length(len(body)) + body)


def encode_response_data(
    *,
    responder_id: asn1_ocsp.ResponderId,
    produced_at: dt.datetime,
    answers: list[SingleAnswer] | tuple[SingleAnswer, ...],
    nonce: bytes | None = None,
    extended_revoke: bool = False,
) -> bytes:
    """Return the DER of ResponseData (RFC 6960 §4.2.1), the bytes to sign.

    ``nonce`` is the request's nonce extnValue content, echoed unchanged
    (RFC 9654); ``extended_revoke`` adds id-pkix-ocsp-extended-revoke
    (RFC 6960 §4.4.8) when an answer uses the extended revoked definition.
    """
    if not answers:
        raise ValueError("a ResponseData needs at least one SingleResponse")
    response_extensions = []
    if nonce is not None:
        response_extensions.append(_nonce_extension(nonce))
    if extended_revoke:
        response_extensions.append({"extn_id": "extended_revoke", "extn_value": core.Null()})
    data = {
        "responder_id": responder_id,
        "produced_at": _time(produced_at),
        "responses": [_single_response(answer) for answer in answers],
    }
    if response_extensions:
        data["response_extensions"] = response_extensions
    return asn1_ocsp.ResponseData(data).dump()


def encode_basic_response(
    response_data_der: bytes,
    signature_algorithm_der: bytes,
    signature: bytes,
    certificates_der: list[bytes] | tuple[bytes, ...] = (),
) -> bytes:
    """Wrap signed ResponseData into OCSPResponse{successful, BasicOCSPResponse}.

    ``signature_algorithm_der`` is the DER AlgorithmIdentifier of the
    signature; ``certificates_der`` the responder certificate (and chain) for
    a delegated responder, empty for a CA-signed response (RFC 6960 §4.2.1).
    """
    basic = {
        "tbs_response_data": asn1_ocsp.ResponseData.load(response_data_der),
        "signature_algorithm": algos.SignedDigestAlgorithm.load(signature_algorithm_der),
        "signature": signature,
    }
    if certificates_der:
        basic["certs"] = [asn1_x509.Certificate.load(der) for der in certificates_der]
    response = asn1_ocsp.OCSPResponse(
        {
            "response_status": "successful",
            "response_bytes": {
                "response_type": "basic_ocsp_response",
                "response": asn1_ocsp.BasicOCSPResponse(basic),
            },
        }
    )
    return response.dump()


def _live_single_response(answer: SingleAnswer) -> bytes:
    status = answer.status
    times = _live_time(answer.this_update)
    if answer.next_update is not None:
        times += b"\xa0\x11" + _live_time(answer.next_update)
    return single_response(
        answer.cert_id_der,
        encode_cert_status(status, answer.revocation_time, answer.reason),
        times,
        answer.invalidity_date if status is OCSPCertStatus.REVOKED else None,
        (b"" if answer.archive_cutoff is None else archive_cutoff_extension(answer.archive_cutoff))
        + (b"" if answer.cert_hash is None else cert_hash_extension(answer.cert_hash)),
    )


def live_encode_response_data(
    *,
    responder_id: asn1_ocsp.ResponderId | bytes,
    produced_at: dt.datetime,
    answers: Sequence[SingleAnswer],
    nonce: bytes | None = None,
    extended_revoke: bool = False,
) -> bytes:
    """Return the DER of ResponseData (RFC 6960 §4.2.1), the bytes to sign.

    Same arguments and bytes as :func:`encode_response_data`;
    ``responder_id`` may also be the ResponderID's DER. ``nonce`` is the
    request's nonce extnValue content, echoed unchanged (RFC 9654). Raises
    ``ValueError`` without answers, for a naive datetime, or a revoked answer
    without revocation_time.
    """
    if not answers:
        raise ValueError("a ResponseData needs at least one SingleResponse")
    if not isinstance(responder_id, bytes):
        responder_id = responder_id.dump()
    return response_data(
        responder_id, _live_time(produced_at), [_live_single_response(answer) for answer in answers], nonce, extended_revoke
    )


def fast_encode_response_data(
    responder_id_der: bytes,
    produced_at_der: bytes,
    cert_id_der: bytes,
    cert_status_der: bytes,
    this_update_der: bytes,
    next_update_der: bytes,
    *,
    invalidity_date: dt.datetime | None = None,
    extended_revoke: bool = False,
    extensions: bytes = b"",
) -> bytes:
    """ResponseData (RFC 6960 §4.2.1) with one SingleResponse and no nonce: the bytes to sign.

    The ``*_der`` arguments are encoded elements: ``responder_id_der`` the
    tagged ResponderID, the times from :func:`generalized_time`;
    ``extensions`` more singleExtensions after the invalidity date (:func:`single_extensions`).
    """
    single = cert_id_der + cert_status_der + this_update_der + tlv(0xA0, next_update_der)
    single += single_extensions(invalidity_date, extensions)
    content = responder_id_der + produced_at_der + tlv(0x30, tlv(0x30, single))
    if extended_revoke:
        content += _EXTENDED_REVOKE
    return tlv(0x30, content)
