"""Single-response OCSP encoding by byte templates, for the generator.

The tests' reference encoder (tests/ocsp_reference.py) uses ``asn1crypto``;
building a ResponseData that way costs about 140 µs and the
BasicOCSPResponse wrapping about 80 µs, against 23 µs for an ECDSA P-256
signature (bench/generate.py prints the figures). A generator that must sign
at the speed of the key cannot afford that, so this module writes the same
DER by concatenating bytes: the parts that never change for one CA and
signer (responderID, the CertID prefix, the signature algorithm, the
certificates) are encoded once, the rest (serial, times, status) per
response.

The output is byte-for-byte the output of that reference
(tests/unit/test_fast_response.py checks every certStatus, reason, both
responderID forms and the extensions). Only what the generator needs is
here: one SingleResponse, no nonce (RFC 5019 §2.2: pre-signed responses
carry none).
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.der import ResponseAssembler, certificates_element, header, tlv
from certstatus.model import HASH_ALGORITHM_OIDS, REASON_CODES, serial_key

# singleExtensions: invalidityDate (2.5.29.24), RFC 5280 §5.3.2.
_INVALIDITY_DATE_OID = bytes.fromhex("0603551d18")
# singleExtensions: id-pkix-ocsp-archive-cutoff (1.3.6.1.5.5.7.48.1.6), RFC 6960 §4.4.4.
_ARCHIVE_CUTOFF_OID = bytes.fromhex("06092b0601050507300106")
# singleExtensions: id-isismtt-at-certHash (1.3.36.8.3.13), Common PKI; then the hashAlgorithm of
# CertHash, SHA-256 (2.16.840.1.101.3.4.2.1) with absent parameters (RFC 5754 §2).
_CERT_HASH_OID = bytes.fromhex("06052b2408030d")
_SHA256_ALGORITHM = bytes.fromhex("300b0609608648016503040201")
# responseExtensions: id-pkix-ocsp-extended-revoke with a NULL value, RFC 6960 §4.4.8.
_EXTENDED_REVOKE = bytes.fromhex("a1133011300f06092b060105050730010904020500")
_GOOD = bytes.fromhex("8000")
_UNKNOWN = bytes.fromhex("8200")


def generalized_time(when: dt.datetime) -> bytes:
    """GeneralizedTime ``YYYYMMDDHHMMSSZ`` of an aware datetime, seconds truncated (RFC 5280 §4.1.2.5.2)."""
    if when.tzinfo is None:
        raise ValueError("OCSP times must be aware UTC datetimes")
    t = when.astimezone(dt.timezone.utc)  # strftime's %Y does not pad years below 1000 to four digits
    return b"\x18\x0f%04d%02d%02d%02d%02d%02dZ" % (t.year, t.month, t.day, t.hour, t.minute, t.second)


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray()
    for value in [40 * parts[0] + parts[1], *parts[2:]]:
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def cert_id_prefix(hash_algorithm: str, issuer_name_hash: bytes, issuer_key_hash: bytes) -> bytes:
    """The CertID fields before serialNumber, canonical form: hashAlgorithm with NULL parameters
    (as RFC 5019 clients and OpenSSL send it), issuerNameHash, issuerKeyHash.

    Raises ``KeyError`` for a hash algorithm outside SHA-1/256/384/512.
    """
    algorithm = tlv(0x30, _oid(HASH_ALGORITHM_OIDS[hash_algorithm]) + b"\x05\x00")
    return algorithm + tlv(0x04, issuer_name_hash) + tlv(0x04, issuer_key_hash)


def encode_cert_id(prefix: bytes, serial_number: int) -> bytes:
    """The canonical CertID DER (RFC 6960 §4.1.1) of ``serial_number`` given :func:`cert_id_prefix`."""
    return tlv(0x30, prefix + tlv(0x02, serial_key(serial_number)))


class CertIdTemplate:
    """:func:`encode_cert_id` for many serials of one :func:`cert_id_prefix`: the headers once per serial length.

    ``encode(serial_key(n))`` equals ``encode_cert_id(prefix, n)`` (tested).
    """

    def __init__(self, prefix: bytes) -> None:
        self._prefix = prefix
        self._heads: dict[int, bytes] = {}

    def encode(self, key: bytes) -> bytes:
        """The CertID DER of the serial whose :func:`~certstatus.store.base.serial_key` is ``key``."""
        head = self._heads.get(len(key))
        if head is None:
            whole = tlv(0x30, self._prefix + tlv(0x02, key))  # everything before the key depends on its length only
            head = self._heads[len(key)] = whole[: len(whole) - len(key)]
        return head + key


def encode_cert_status(
    status: OCSPCertStatus, revocation_time: dt.datetime | None = None, reason: x509.ReasonFlags | None = None
) -> bytes:
    """certStatus (RFC 6960 §4.2.1): good/unknown ``[n] IMPLICIT NULL``, or revoked RevokedInfo."""
    if status is OCSPCertStatus.GOOD:
        return _GOOD
    if status is OCSPCertStatus.UNKNOWN:
        return _UNKNOWN
    if revocation_time is None:
        raise ValueError("a revoked certStatus needs revocation_time")
    content = generalized_time(revocation_time)
    if reason is not None:
        content += b"\xa0\x03\x0a\x01" + bytes((REASON_CODES[reason],))
    return tlv(0xA1, content)


def archive_cutoff_extension(cutoff: dt.datetime) -> bytes:
    """The ArchiveCutoff singleExtension (RFC 6960 §4.4.4): id-pkix-ocsp-archive-cutoff, extnValue
    an OCTET STRING holding the GeneralizedTime, not critical. One encoded Extension."""
    return tlv(0x30, _ARCHIVE_CUTOFF_OID + tlv(0x04, generalized_time(cutoff)))


def cert_hash_extension(digest: bytes) -> bytes:
    """The CertHash singleExtension (Common PKI / ISIS-MTT, 1.3.36.8.3.13) for a certificate whose
    SHA-256 hash is ``digest``: a positive statement that the responder knows the certificate. Not critical."""
    return tlv(0x30, _CERT_HASH_OID + tlv(0x04, tlv(0x30, _SHA256_ALGORITHM + tlv(0x04, digest))))


def single_extensions(invalidity_date: dt.datetime | None, extensions: bytes = b"") -> bytes:
    """``singleExtensions [1] EXPLICIT Extensions`` of a SingleResponse: the invalidityDate of a revoked
    answer (RFC 6960 §4.4, a CRL entry extension), then ``extensions`` (encoded Extension elements, e.g.
    :func:`archive_cutoff_extension`); ``b""`` when there is none."""
    if invalidity_date is not None:
        extensions = tlv(0x30, _INVALIDITY_DATE_OID + tlv(0x04, generalized_time(invalidity_date))) + extensions
    return tlv(0xA1, tlv(0x30, extensions)) if extensions else b""


class ResponseDataTemplate:
    """ResponseData (RFC 6960 §4.2.1) with one SingleResponse and no nonce, for many responses of one signer
    signed at one time: the bytes to sign.

    The responderID, producedAt, thisUpdate and nextUpdate are encoded once,
    and so are ``extensions``, the singleExtensions every response carries
    (e.g. the CA's :func:`archive_cutoff_extension`); per response only the
    CertID and the certStatus vary, and the length headers are computed once
    per distinct length. Same bytes as the reference encoder (tested).
    """

    def __init__(
        self, responder_id_der: bytes, produced_at: dt.datetime, this_update: dt.datetime, next_update: dt.datetime,
        extensions: bytes = b"",
    ) -> None:
        self._head = responder_id_der + generalized_time(produced_at)
        self._times = generalized_time(this_update) + tlv(0xA0, generalized_time(next_update))
        self._extensions = extensions
        self._headers: dict[tuple[int, int], bytes] = {}
        self._good_tail = _GOOD + self._times + single_extensions(None, extensions)
        self._good_heads: dict[int, bytes] = {}

    def encode(
        self, cert_id_der: bytes, cert_status_der: bytes, *, invalidity_date: dt.datetime | None = None,
        extended_revoke: bool = False, extensions: bytes = b"",
    ) -> bytes:
        """The ResponseData DER for one CertID and certStatus (singleExtensions in this order:
        the invalidity date, the template's own, then ``extensions`` of this response, e.g. its CertHash)."""
        single = cert_id_der + cert_status_der + self._times
        single += single_extensions(invalidity_date, self._extensions + extensions)
        tail = _EXTENDED_REVOKE if extended_revoke else b""
        key = (len(single), len(tail))
        headers = self._headers.get(key)
        if headers is None:
            # SEQUENCE { head, SEQUENCE OF { SEQUENCE single }, tail }: only lengths decide the headers.
            inner = header(0x30, len(single))
            outer = header(0x30, len(inner) + len(single))
            whole = header(0x30, len(self._head) + len(outer) + len(inner) + len(single) + len(tail))
            headers = self._headers[key] = (whole + self._head + outer + inner, tail)
        return headers[0] + single + headers[1]


    def encode_good(self, cert_id_der: bytes) -> bytes:
        """:meth:`encode` of a good certStatus without extensions (most responses): one lookup, two joins."""
        head = self._good_heads.get(len(cert_id_der))
        if head is None:
            whole = self.encode(cert_id_der, _GOOD)
            head = self._good_heads[len(cert_id_der)] = whole[: len(whole) - len(cert_id_der) - len(self._good_tail)]
        return head + cert_id_der + self._good_tail

    @property
    def good_tail(self) -> bytes:
        """What follows the CertID in every :meth:`encode_good` output: the good certStatus and the times."""
        return self._good_tail

    def good_head(self, cert_id: CertIdTemplate, key_length: int) -> bytes:
        """What precedes the serial key in ``encode_good(cert_id.encode(key))`` for every key of ``key_length`` bytes.

        ``good_head(cert_id, len(key)) + key + good_tail`` is that
        ResponseData (tested): a loop over many serials keeps one head per key
        length and makes each ResponseData with two joins, no call.
        """
        key = bytes(key_length)  # the headers depend on the key's length only
        whole = self.encode_good(cert_id.encode(key))
        return whole[: len(whole) - key_length - len(self._good_tail)]


#: signatureAlgorithm DER -> signature size -> what :meth:`ResponseWrapper.body` puts before the signature:
#: the same for every signer of that algorithm, so shared (10 000 CAs: one entry per size, not per signer).
_SIGNATURE_HEADS: dict[bytes, dict[int, bytes]] = {}


class ResponseWrapper:
    """Wraps signed ResponseData into OCSPResponse{successful, BasicOCSPResponse} (RFC 6960 §4.2.1).

    ``signature_algorithm_der`` is the signer's AlgorithmIdentifier DER and
    ``certificates_der`` the certificates the response carries (none for a
    CA-signed response); both are encoded once here, and the five length
    headers around BasicOCSPResponse once per distinct size
    (:class:`ResponseAssembler`), as the signature's header per algorithm and size: for all wrappers.
    """

    def __init__(self, signature_algorithm_der: bytes, certificates_der: tuple[bytes, ...] = ()) -> None:
        self._algorithm = signature_algorithm_der
        self.assembler = ResponseAssembler(certificates_element(certificates_der))
        # signatureAlgorithm + BIT STRING header per signature size, shared by the wrappers of one algorithm
        self._signature_heads: dict[int, bytes] = _SIGNATURE_HEADS.setdefault(signature_algorithm_der, {})

    def body(self, response_data_der: bytes, signature: bytes) -> bytes:
        """The BasicOCSPResponse content without certificates: tbsResponseData, signatureAlgorithm, signature.

        What the generator stores; :meth:`ResponseAssembler.assemble` makes the OCSPResponse of it.
        """
        head = self._signature_heads.get(len(signature))
        if head is None:
            head = self.signature_head(len(signature))
        return response_data_der + head + signature

    def signature_head(self, length: int) -> bytes:
        """What :meth:`body` puts between the ResponseData and a signature of ``length`` bytes (cached in :attr:`signature_heads`)."""
        head = self._signature_heads[length] = self._algorithm + header(0x03, length + 1) + b"\x00"
        return head

    @property
    def signature_heads(self) -> dict[int, bytes]:
        """Signature length -> :meth:`signature_head`, for loops that join the body themselves (read only)."""
        return self._signature_heads

    def wrap(self, response_data_der: bytes, signature: bytes) -> bytes:
        """Return the OCSPResponse DER for ``response_data_der`` and its ``signature``."""
        return self.assembler.assemble(self.body(response_data_der, signature))
