"""A fast path for the common OCSPRequest, falling back to :func:`parse_request`.

Almost every request on the wire has one shape (RFC 5019 §2.1): an unsigned
v1 request without requestorName, one CertID (rarely a few) whose
hashAlgorithm parameters are NULL or absent, no singleRequestExtensions, and
at most one request extension, a nonce (RFC 9654). :func:`parse_request_fast`
reads exactly that shape, in strict DER, with index arithmetic over the
bytes; anything else — a signature, a requestor name, other extensions,
a long-form length that is not minimal, an unsupported hash — goes to the
asn1crypto parser, which stays the reference: for every input both give the
same :class:`OCSPQuery` or both raise :class:`MalformedRequest`
(tests/unit/test_fast_request.py checks it with hypothesis and real vectors).

Why own code: ``bench/hotpath.py`` measures asn1crypto at ~45 µs per request
(~75 µs with a nonce) against a few µs here, on a path whose whole budget at
the targets is ~100 µs.
"""

from __future__ import annotations

from certstatus.model import CertID
from certstatus.protocol.extensions import NONCE_MAX_OCTETS
from certstatus.protocol.request import OCSPQuery, parse_request

# DER of the AlgorithmIdentifier OIDs accepted on the fast path (content octets only).
_HASH_OIDS: dict[bytes, str] = {
    bytes.fromhex("2b0e03021a"): "sha1",
    bytes.fromhex("608648016503040201"): "sha256",
    bytes.fromhex("608648016503040202"): "sha384",
    bytes.fromhex("608648016503040203"): "sha512",
}
# Full TLV of id-pkix-ocsp-nonce (1.3.6.1.5.5.7.48.1.2).
_NONCE_OID_TLV = bytes.fromhex("06092b0601050507300102")


class _Unusual(Exception):
    """Not the common shape: let the reference parser decide."""


def _header(der: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """Check the tag at ``pos`` and read a minimal DER length: return (content start, content end)."""
    if pos + 2 > end or der[pos] != tag:
        raise _Unusual
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        if length == 0x81:
            if pos >= end or der[pos] < 0x80:
                raise _Unusual
            length = der[pos]
            pos += 1
        elif length == 0x82:
            if pos + 2 > end or der[pos] == 0:
                raise _Unusual
            length = (der[pos] << 8) | der[pos + 1]
            if length < 0x100:
                raise _Unusual
            pos += 2
        else:
            raise _Unusual
    if pos + length > end:
        raise _Unusual
    return pos, pos + length


def _cert_id(der: bytes, start: int, end: int) -> CertID:
    pos, stop = _header(der, start, end, 0x30)  # CertID
    if stop != end:
        raise _Unusual
    alg, alg_end = _header(der, pos, stop, 0x30)  # AlgorithmIdentifier
    oid, oid_end = _header(der, alg, alg_end, 0x06)
    name = _HASH_OIDS.get(der[oid:oid_end])
    if name is None:
        raise _Unusual
    if oid_end != alg_end and der[oid_end:alg_end] != b"\x05\x00":
        raise _Unusual  # parameters other than NULL
    name_hash, pos = _header(der, alg_end, stop, 0x04)
    key_hash, key_end = _header(der, pos, stop, 0x04)
    serial, serial_end = _header(der, key_end, stop, 0x02)
    if serial_end != stop or serial == serial_end:
        raise _Unusual
    if serial_end - serial > 1 and der[serial] in (0x00, 0xFF) and (der[serial] ^ der[serial + 1]) & 0x80 == 0:
        raise _Unusual  # not a minimal DER INTEGER: the reference refuses it (it would be echoed, unreadable)
    return CertID(
        name,
        der[name_hash:pos],
        der[key_hash:key_end],
        int.from_bytes(der[serial:serial_end], "big", signed=True),
        der[start:end],
    )


def _nonce(der: bytes, pos: int, end: int) -> bytes:
    """Read requestExtensions [2] holding exactly one nonce extension; return its extnValue content."""
    ext_list, list_end = _header(der, pos, end, 0xA2)
    if list_end != end:
        raise _Unusual
    exts, exts_end = _header(der, ext_list, list_end, 0x30)
    ext, ext_end = _header(der, exts, exts_end, 0x30)
    if ext_end != exts_end or exts_end != list_end:
        raise _Unusual  # more than one extension
    if der[ext:ext + len(_NONCE_OID_TLV)] != _NONCE_OID_TLV:
        raise _Unusual
    pos = ext + len(_NONCE_OID_TLV)
    if der[pos:pos + 3] == b"\x01\x01\xff":  # critical TRUE: the nonce is understood
        pos += 3
    value, value_end = _header(der, pos, ext_end, 0x04)
    if value_end != ext_end:
        raise _Unusual
    inner, inner_end = _header(der, value, value_end, 0x04)  # the nonce OCTET STRING (RFC 9654)
    if inner_end != value_end or not 0 < inner_end - inner <= NONCE_MAX_OCTETS:
        raise _Unusual
    return der[value:value_end]


def _parse(der: bytes) -> OCSPQuery:
    end = len(der)
    pos, stop = _header(der, 0, end, 0x30)  # OCSPRequest
    if stop != end:
        raise _Unusual  # trailing bytes, or an optionalSignature after tbsRequest
    tbs, tbs_end = _header(der, pos, stop, 0x30)  # TBSRequest
    if tbs_end != stop:
        raise _Unusual
    requests, requests_end = _header(der, tbs, tbs_end, 0x30)  # requestList (no version, no requestorName)
    cert_ids = []
    pos = requests
    while pos < requests_end:
        single, single_end = _header(der, pos, requests_end, 0x30)  # Request
        cert_ids.append(_cert_id(der, single, single_end))
        pos = single_end
    if not cert_ids:
        raise _Unusual
    nonce = None
    if requests_end != tbs_end:
        nonce = _nonce(der, requests_end, tbs_end)
    return OCSPQuery(cert_ids=tuple(cert_ids), nonce=nonce)


def parse_request_fast(der: bytes) -> OCSPQuery:
    """Parse DER bytes of an OCSPRequest (RFC 6960 §4.1.1): same result as :func:`parse_request`.

    Reads the common shape directly; for anything else calls the reference
    parser, so it raises :class:`MalformedRequest` exactly when
    :func:`parse_request` does.
    """
    try:
        return _parse(der)
    except (_Unusual, IndexError):
        return parse_request(der)
