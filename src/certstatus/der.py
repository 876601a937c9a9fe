"""DER writing (X.690) and the envelope of a successful OCSPResponse (RFC 6960 §4.2.1).

The byte-level pieces the generator's templates (:mod:`certstatus.protocol.fast_response`),
the live encoder and the store share: the store keeps each pre-signed response as its
BasicOCSPResponse body and the signer's certificates once, and splices them back into
an OCSPResponse on read (:class:`ResponseAssembler`). Imports nothing of certstatus, so
the store needs no protocol module to serve stored bytes.
"""

from __future__ import annotations

# id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1), RFC 6960 §4.2.1.
_BASIC_OID = bytes.fromhex("06092b0601050507300101")
# responseStatus successful (ENUMERATED 0).
_SUCCESSFUL = bytes.fromhex("0a0100")


def der_length(length: int) -> bytes:
    """DER length octets (X.690 §8.1.3): short form below 128, else long form."""
    if length < 0x80:
        return bytes((length,))
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag octet, length, content."""
    length = len(content)
    # The usual OCSP sizes inline (one call per element is most of the cost here).
    if length < 0x80:
        return bytes((tag, length)) + content
    if length < 0x100:
        return bytes((tag, 0x81, length)) + content
    if length < 0x10000:
        return bytes((tag, 0x82, length >> 8, length & 0xFF)) + content
    return bytes((tag,)) + der_length(length) + content


def header(tag: int, length: int) -> bytes:
    """The tag and length octets of a DER element of ``length`` content octets."""
    return bytes((tag,)) + der_length(length)


#: The length headers before a BasicOCSPResponse by the size of its content (body and certificates): they
#: depend on that size alone, so every assembler shares them. With 10 000 CAs, each signer's own cache
#: held a few sizes and most answers of a CA asked a few times a minute missed it.
_PREFIXES: dict[int, bytes] = {}


class ResponseAssembler:
    """Builds OCSPResponse{successful, BasicOCSPResponse} (RFC 6960 §4.2.1) around a stored body.

    The *body* is the BasicOCSPResponse content up to and including the
    signature: tbsResponseData, signatureAlgorithm, signature (the
    generator stores that, without the certificates, which are the same in
    every response of one signer). ``certificates_element`` is the encoded
    ``[0] EXPLICIT SEQUENCE OF Certificate`` (:func:`certificates_element`),
    or ``b""`` for a response that carries none (CA-signed). The five length
    headers are computed once per distinct size, for all assemblers (:data:`_PREFIXES`).
    """

    def __init__(self, certificates_element: bytes = b"") -> None:
        self.certificates_element = certificates_element
        self._prefixes = _PREFIXES

    def assemble(self, body: bytes) -> bytes:
        """Return the OCSPResponse DER for ``body`` (see the class) with the certificates appended."""
        certs = self.certificates_element
        size = len(body) + len(certs)
        prefix = self._prefixes.get(size)
        if prefix is None:
            basic = header(0x30, size)
            octets = header(0x04, len(basic) + size)
            response_bytes_length = len(_BASIC_OID) + len(octets) + len(basic) + size
            response_bytes = header(0x30, response_bytes_length)
            explicit = header(0xA0, len(response_bytes) + response_bytes_length)
            outer_length = len(_SUCCESSFUL) + len(explicit) + len(response_bytes) + response_bytes_length
            prefix = header(0x30, outer_length) + _SUCCESSFUL + explicit + response_bytes + _BASIC_OID + octets + basic
            self._prefixes[size] = prefix
        return prefix + body + certs


def certificates_element(certificates_der: tuple[bytes, ...] | list[bytes]) -> bytes:
    """``certs [0] EXPLICIT SEQUENCE OF Certificate`` of BasicOCSPResponse; ``b""`` when there are none."""
    return tlv(0xA0, tlv(0x30, b"".join(certificates_der))) if certificates_der else b""
