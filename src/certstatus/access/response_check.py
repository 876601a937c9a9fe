"""Check an OCSP response from another responder before passing it on (RFC 6960 §3.2).

What a careful client checks, done by the proxy on its clients' behalf:

1. the response is a BasicOCSPResponse signed by the CA itself or by a
   delegated responder whose certificate the CA issued with id-kp-OCSPSigning
   and which is valid now (§4.2.2.2), the signature verified;
2. it answers exactly the CertIDs asked (same hash algorithm, issuer hashes
   and serial), no more, no less;
3. it is current: thisUpdate and producedAt not in the future (beyond
   :data:`CLOCK_SKEW`), nextUpdate, when present, not in the past;
4. a nonce, when the response carries one, equals the request's (RFC 9654).

``cryptography`` parses the response; ``asn1crypto`` supplies the signature
AlgorithmIdentifier, which ``cryptography`` does not expose whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certstatus.access.signatures import SignatureRejected, verify_signature
from certstatus.protocol.certid import public_key_bits
from certstatus.protocol.request import OCSPQuery
from certstatus.protocol.response import CERT_STATUS_NAMES

#: Tolerated difference between our clock and the remote responder's.
CLOCK_SKEW = dt.timedelta(minutes=5)

class ResponseRejected(ValueError):
    """The remote response fails a check; ``str()`` says which."""


@dataclass(frozen=True, slots=True)
class CheckedResponse:
    """A remote response that passed :func:`check_response`.

    ``status`` is the responseStatus; for a successful response the times
    are the earliest thisUpdate/nextUpdate of its SingleResponses (aware
    UTC; ``next_update`` None when one has none) and ``statuses`` the
    certStatus names in request order.
    """

    der: bytes
    status: ocsp.OCSPResponseStatus
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    produced_at: dt.datetime | None = None
    statuses: tuple[str, ...] = ()
    has_nonce: bool = False


def check_response(der: bytes, query: OCSPQuery, ca_certificate: x509.Certificate, now: dt.datetime) -> CheckedResponse:
    """Check the DER ``der`` answering ``query`` for the CA ``ca_certificate`` at ``now``.

    An unsuccessful response is returned as such (nothing to verify). Raises
    :class:`ResponseRejected` naming the failed check otherwise.
    """
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise ResponseRejected(f"not an OCSP response ({exc})") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return CheckedResponse(der, response.response_status)
    basic = asn1_ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed
    signer = _responder_certificate(response, ca_certificate, now)
    try:
        verify_signature(signer.public_key(), basic["signature_algorithm"].dump(), response.signature, response.tbs_response_bytes)
    except SignatureRejected as exc:
        raise ResponseRejected(f"response signature: {exc}") from None

    asked = {(c.hash_algorithm, c.issuer_name_hash, c.issuer_key_hash, c.serial_number): c for c in query.cert_ids}
    answered: dict[tuple, ocsp.OCSPSingleResponse] = {}
    for single in response.responses:
        key = (single.hash_algorithm.name, single.issuer_name_hash, single.issuer_key_hash, single.serial_number)
        if key not in asked:
            raise ResponseRejected(f"answers a CertID that was not asked (serial {single.serial_number:x})")
        answered[key] = single
    if len(answered) != len(asked):
        raise ResponseRejected("does not answer every CertID asked")

    this_updates, next_updates = [], []
    for single in answered.values():
        if single.this_update_utc > now + CLOCK_SKEW:
            raise ResponseRejected(f"thisUpdate {single.this_update_utc:%Y-%m-%d %H:%M:%SZ} is in the future")
        if single.next_update_utc is not None and single.next_update_utc < now:
            raise ResponseRejected(f"nextUpdate {single.next_update_utc:%Y-%m-%d %H:%M:%SZ} has passed")
        this_updates.append(single.this_update_utc)
        next_updates.append(single.next_update_utc)
    if response.produced_at_utc > now + CLOCK_SKEW:
        raise ResponseRejected("producedAt is in the future")

    nonce = _nonce(response)
    if nonce is not None and nonce != query.nonce:
        raise ResponseRejected("the nonce differs from the request's")
    keys = [(c.hash_algorithm, c.issuer_name_hash, c.issuer_key_hash, c.serial_number) for c in query.cert_ids]
    return CheckedResponse(
        der,
        response.response_status,
        this_update=min(this_updates),
        next_update=None if None in next_updates else min(next_updates),
        produced_at=response.produced_at_utc,
        statuses=tuple(CERT_STATUS_NAMES[answered[k].certificate_status] for k in keys),
        has_nonce=nonce is not None,
    )


def _responder_certificate(response: ocsp.OCSPResponse, ca: x509.Certificate, now: dt.datetime) -> x509.Certificate:
    """The certificate that signed the response: the CA, or a delegated responder of it (§4.2.2.2)."""
    if responder_id_names(response, ca):
        return ca
    for cert in response.certificates:
        if not responder_id_names(response, cert):
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, Exception) as exc:  # InvalidSignature has no common base
            reason = str(exc) or type(exc).__name__
            raise ResponseRejected(f"responder certificate {cert.subject.rfc4514_string()} is not issued by the CA ({reason})") from None
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = []
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise ResponseRejected(f"responder certificate {cert.subject.rfc4514_string()} lacks id-kp-OCSPSigning")
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ResponseRejected(f"responder certificate {cert.subject.rfc4514_string()} is not valid now")
        return cert
    raise ResponseRejected("signed by neither the CA nor a delegated responder certificate it includes")


def responder_id_names(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    """True when the response's responderID names ``cert`` (RFC 6960 §4.2.2.3: byKey, the SHA-1 of
    its subjectPublicKey, or byName, its subject)."""
    if response.responder_key_hash is not None:
        return response.responder_key_hash == hashlib.sha1(public_key_bits(cert)).digest()
    return response.responder_name == cert.subject


def _nonce(response: ocsp.OCSPResponse) -> bytes | None:
    """The response's nonce as the request holds it: the DER of the OCTET STRING in extnValue."""
    try:
        nonce = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        raise ResponseRejected(f"undecodable response extensions ({exc})") from None
    return core.OctetString(nonce).dump()
