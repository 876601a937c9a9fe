"""Read the client certificate a TLS-terminating proxy passes in a header.

Proxies write it in one of these forms, all accepted:

* URL-encoded PEM — nginx ``$ssl_client_escaped_cert``, Traefik;
* PEM with its line breaks turned into spaces or tabs — Apache
  ``%{SSL_CLIENT_CERT}s``, nginx's older ``$ssl_client_cert``;
* base64 DER, optionally as an RFC 9440 ``Client-Cert`` byte sequence
  (``:MIIB...:``) — HAProxy ``%[ssl_c_der,base64]``, RFC 9440 proxies.

Several PEM blocks (leaf first) are read as the leaf and its chain.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote_to_bytes

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


class BadCertificateHeader(ValueError):
    """The header value is not a certificate in any accepted form."""


def decode_certificate_header(value: bytes) -> tuple[bytes, ...]:
    """Return the DER certificates in ``value``, leaf first.

    Raises :class:`BadCertificateHeader` when no certificate can be read.
    """
    text = value.strip()
    if b"%" in text:
        text = unquote_to_bytes(text)
    blocks = _PEM.findall(text)
    try:
        if blocks:
            return tuple(base64.b64decode(b"".join(block.split()), validate=True) for block in blocks)
        text = text.strip(b":")
        der = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadCertificateHeader("neither PEM nor base64 DER") from None
    if not der.startswith(b"\x30"):
        raise BadCertificateHeader("the decoded bytes are not a DER certificate")
    return (der,)
