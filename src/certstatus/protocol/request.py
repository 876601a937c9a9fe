"""Parse OCSP requests (RFC 6960 §4.1) from POST bodies and GET paths (RFC 5019 §5).

Bytes in, :class:`OCSPQuery` out, or :class:`MalformedRequest`. Nothing here
does I/O, looks anything up or knows which CAs are served.

``cryptography``'s ``load_der_ocsp_request`` refuses requests with more than
one CertID and hides the request signature, so requests are parsed with
``asn1crypto``; every field used is read here, inside one error boundary, so
that a lazily parsed field cannot fail later on the request path.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from asn1crypto import algos, core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509

from certstatus.model import HASH_ALGORITHM_NAMES, CertID
from certstatus.protocol import extensions

#: Errors asn1crypto raises for bytes it cannot decode.
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError)


class _Extension(core.Sequence):
    """Extension (RFC 5280 §4.1) with extnValue left as plain bytes.

    asn1crypto's OCSP specs parse extnValue by OID as soon as any field of the
    extension is read, which fails on values that old clients encode loosely
    (a raw nonce); here a value is only parsed where it is used.
    """

    _fields = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class _Extensions(core.SequenceOf):
    _child_spec = _Extension


class _Request(core.Sequence):
    _fields = [
        ("req_cert", asn1_ocsp.CertId),
        ("single_request_extensions", _Extensions, {"explicit": 0, "optional": True}),
    ]


class _Requests(core.SequenceOf):
    _child_spec = _Request


class _TBSRequest(core.Sequence):
    """TBSRequest (RFC 6960 §4.1.1) as asn1crypto defines it, but with :class:`_Extension`."""

    _fields = [
        ("version", asn1_ocsp.Version, {"explicit": 0, "default": "v1"}),
        ("requestor_name", asn1_x509.GeneralName, {"explicit": 1, "optional": True}),
        ("request_list", _Requests),
        ("request_extensions", _Extensions, {"explicit": 2, "optional": True}),
    ]


class _OCSPRequest(core.Sequence):
    _fields = [
        ("tbs_request", _TBSRequest),
        ("optional_signature", asn1_ocsp.Signature, {"explicit": 0, "optional": True}),
    ]


class MalformedRequest(ValueError):
    """The bytes are not an OCSP request certstatus can answer: answer malformedRequest."""


@dataclass(frozen=True, slots=True)
class RequestSignature:
    """The optionalSignature of a signed request (RFC 6960 §4.1.2), as received.

    ``tbs_request`` is the exact DER the signature covers; ``certs`` the DER of
    the certificates the request carries (the signer's first, by convention).
    """

    tbs_request: bytes
    algorithm_oid: str
    signature: bytes
    certs: tuple[bytes, ...]
    algorithm_der: bytes = b""  # the whole AlgorithmIdentifier (RSASSA-PSS carries parameters)


@dataclass(frozen=True, slots=True)
class OCSPQuery:
    """A parsed OCSPRequest (RFC 6960 §4.1.1).

    ``cert_ids`` keeps the request order; ``nonce`` is the content of the
    nonce extension's extnValue, echoed byte for byte (``None`` when absent);
    ``requestor_name`` the DER of the requestorName GeneralName;
    ``preferred_signature_algorithms`` the dotted OIDs of RFC 6960 §4.4.7, in
    the client's order.
    """

    cert_ids: tuple[CertID, ...]
    nonce: bytes | None = None
    requestor_name: bytes | None = None
    signature: RequestSignature | None = None
    preferred_signature_algorithms: tuple[str, ...] = ()


def parse_request(der: bytes) -> OCSPQuery:
    """Parse DER bytes of an OCSPRequest.

    Raises :class:`MalformedRequest` for empty, truncated or trailing bytes,
    a version other than v1, an empty requestList, a CertID that is not DER, a
    CertID hash algorithm other than SHA-1/256/384/512 or with parameters other than
    absent/NULL, a serialNumber that is not a minimal DER INTEGER, a critical extension not understood, or a
    nonce of 0 or more than 128 octets (RFC 9654 §2.1).
    """
    if not der:
        raise MalformedRequest("empty request")
    if der[0] != 0x30:
        raise MalformedRequest("not a DER SEQUENCE")
    try:
        request = _OCSPRequest.load(der, strict=True)
        return _read_request(request)
    except MalformedRequest:
        raise
    except _DECODE_ERRORS as exc:
        raise MalformedRequest(f"undecodable OCSPRequest: {exc}") from None


def _read_request(request: _OCSPRequest) -> OCSPQuery:
    tbs = request["tbs_request"]
    if tbs["version"].native != "v1":
        raise MalformedRequest("only OCSPRequest version v1 exists")
    cert_ids = []
    for single in tbs["request_list"]:
        cert_ids.append(_read_cert_id(single["req_cert"]))
        _check_extensions(single["single_request_extensions"])
    if not cert_ids:
        raise MalformedRequest("requestList is empty")

    nonce = None
    preferred: tuple[str, ...] = ()
    request_extensions = tbs["request_extensions"]
    _check_extensions(request_extensions)
    if not _absent(request_extensions):
        for ext in request_extensions:
            oid = ext["extn_id"].dotted
            if oid == extensions.NONCE:
                if nonce is not None:
                    raise MalformedRequest("nonce extension appears twice")
                nonce = _read_nonce(ext["extn_value"].native)
            elif oid == extensions.PREFERRED_SIGNATURE_ALGORITHMS:
                preferred = _read_preferred_algorithms(ext["extn_value"].native)

    requestor_name = tbs["requestor_name"]
    signature = None
    optional_signature = request["optional_signature"]
    if not _absent(optional_signature):
        signature = RequestSignature(
            tbs_request=tbs.dump(),
            algorithm_oid=optional_signature["signature_algorithm"]["algorithm"].dotted,
            algorithm_der=optional_signature["signature_algorithm"].dump(),
            signature=optional_signature["signature"].native,
            certs=tuple(cert.dump() for cert in optional_signature["certs"])
            if not _absent(optional_signature["certs"])
            else (),
        )
    return OCSPQuery(
        cert_ids=tuple(cert_ids),
        nonce=nonce,
        # untag(): the GeneralName itself, without the [1] EXPLICIT wrapper.
        requestor_name=None if _absent(requestor_name) else requestor_name.untag().dump(),
        signature=signature,
        preferred_signature_algorithms=preferred,
    )


def _read_cert_id(cert_id: asn1_ocsp.CertId) -> CertID:
    oid = cert_id["hash_algorithm"]["algorithm"].dotted
    name = HASH_ALGORITHM_NAMES.get(oid)
    if name is None:
        raise MalformedRequest(f"CertID hash algorithm {oid} is not SHA-1/256/384/512")
    algorithm = cert_id["hash_algorithm"]
    if algorithm.contents not in (algorithm["algorithm"].dump(), algorithm["algorithm"].dump() + _DER_NULL):
        # RFC 5754 §2 / RFC 3279 §2.2.1: absent or NULL. Anything else would be echoed
        # in the SingleResponse and make the whole response unreadable to clients.
        raise MalformedRequest("CertID hash algorithm parameters are neither absent nor NULL")
    serial_contents = cert_id["serial_number"].contents
    redundant_first_octet = (
        len(serial_contents) > 1 and serial_contents[0] in (0x00, 0xFF) and (serial_contents[0] ^ serial_contents[1]) & 0x80 == 0
    )
    if not serial_contents or redundant_first_octet:
        # X.690 §8.3.2: DER integers are minimal. The CertID is echoed as received, and a
        # DER client (cryptography, Go) cannot read a response that carries a non-minimal one.
        raise MalformedRequest("CertID serialNumber is not a minimal DER INTEGER")
    name_hash = cert_id["issuer_name_hash"].native
    key_hash = cert_id["issuer_key_hash"].native
    serial = cert_id["serial_number"].native
    der = cert_id.dump()
    if asn1_ocsp.CertId.load(der).dump(force=True) != der:
        # X.690 §10: the CertID is echoed as received, and one with trailing fields or
        # non-minimal lengths makes the whole response unreadable to DER clients (the fuzzer's
        # finding: cryptography reports ExtraData in ResponseData).
        raise MalformedRequest("CertID is not DER (trailing fields or non-minimal lengths)")
    return CertID(name, name_hash, key_hash, serial, der)


_DER_NULL = b"\x05\x00"


def _absent(value: core.Asn1Value) -> bool:
    """True for an OPTIONAL field that is not in the encoding."""
    return isinstance(value, core.Void)


def _check_extensions(exts: core.Asn1Value) -> None:
    # Only extnID and critical are read: extnValue stays unparsed, so a value
    # asn1crypto would misparse (a legacy raw nonce) cannot fail here.
    if _absent(exts):
        return
    for ext in exts:
        if ext["critical"].native and ext["extn_id"].dotted not in extensions.KNOWN_REQUEST_EXTENSIONS:
            raise MalformedRequest(f"critical extension {ext['extn_id'].dotted} is not understood")


def _read_nonce(extn_value: bytes) -> bytes:
    """Validate the nonce's extnValue content and return it unchanged (RFC 9654 §2.1).

    The value is an OCTET STRING; some old clients put the raw octets in
    extnValue without the inner OCTET STRING, which is accepted as well.
    """
    try:
        inner = core.OctetString.load(extn_value, strict=True).native
    except _DECODE_ERRORS:
        inner = extn_value
    if not 0 < len(inner) <= extensions.NONCE_MAX_OCTETS:
        raise MalformedRequest(f"nonce of {len(inner)} octets (RFC 9654 allows 1 to 128)")
    return extn_value


class _PreferredSignatureAlgorithm(core.Sequence):
    """RFC 6960 §4.4.7.1: only sigIdentifier is used to choose a signer."""

    _fields = [
        ("sig_identifier", algos.AnyAlgorithmIdentifier),
        ("pub_key_alg_identifier", algos.AnyAlgorithmIdentifier, {"optional": True}),
    ]


class _PreferredSignatureAlgorithms(core.SequenceOf):
    _child_spec = _PreferredSignatureAlgorithm


def _read_preferred_algorithms(extn_value: bytes) -> tuple[str, ...]:
    parsed = _PreferredSignatureAlgorithms.load(extn_value, strict=True)
    return tuple(item["sig_identifier"]["algorithm"].dotted for item in parsed)


def decode_get_path(remainder: str | bytes) -> bytes:
    """Decode the part of a GET path after the prefix into request DER (RFC 5019 §5).

    Tolerates what clients and proxies do to base64 in paths: percent-encoding,
    '+' turned into a space, leading or doubled '/', missing '=' padding and
    the URL-safe alphabet. Raises :class:`MalformedRequest` when the result is
    not base64.
    """
    try:
        raw = remainder.encode("latin-1") if isinstance(remainder, str) else remainder
    except UnicodeEncodeError:
        raise MalformedRequest("GET path has characters outside base64") from None
    text = unquote_to_bytes(raw).lstrip(b"/").replace(b" ", b"+")
    text = text.replace(b"-", b"+").replace(b"_", b"/").rstrip(b"=")
    if not text:
        raise MalformedRequest("empty GET request")
    text += b"=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRequest("GET path is not base64") from None
