"""TLS for the OCSP listener: the server ``ssl.SSLContext`` and the client certificate it verified.

:func:`server_context` returns a standard ``ssl.SSLContext``, which the
HTTP edge (:mod:`certstatus.server.connection`) puts on each accepted
connection with ``loop.start_tls``, and :func:`peer_chain` reads the
verified client chain from the TLS transport's ``ssl_object``.

Policy: TLS 1.2 at least (``[tls] min_version``), OpenSSL's default cipher
list for that floor, no compression, no renegotiation, ALPN ``http/1.1``.
With ``client_auth`` the handshake verifies the client's chain against
``client_trust_anchors`` (``CERT_OPTIONAL`` or ``CERT_REQUIRED``: a client
without a valid certificate never completes the handshake when required).
An intermediate CA may serve as an anchor (``VERIFY_X509_PARTIAL_CHAIN``).
Revocation against our own data is checked after the handshake (Python's
``ssl`` has no verify callback): see ``OCSPHttpHandler.admit_connection``.
The handshake's deadline and the connection limit are the edge's
(``server.client_timeout``, ``server.max_connections``).
"""

from __future__ import annotations

import _ssl
import ssl
from pathlib import Path

from certstatus.config_ops import TlsSettings
from certstatus.errors import ConfigError

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
#: _ssl.Certificate.public_bytes format code for DER (``_ssl.ENCODING_DER``).
_ENCODING_DER = getattr(_ssl, "ENCODING_DER", 2)


def server_context(tls: TlsSettings, *, where: str = "configuration") -> ssl.SSLContext | None:
    """Build the listener's SSLContext from ``[tls]``; None when TLS is off.

    Raises :class:`ConfigError` naming the ``[tls]`` key when a file cannot
    be read or the key does not match the certificate.
    """
    if not tls.enabled:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.min_version]
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    password = None
    if tls.key_password_file is not None:
        try:
            password = Path(tls.key_password_file).read_bytes().splitlines()[0]
        except (OSError, IndexError) as exc:
            raise ConfigError(
                str(tls.key_password_file), "tls.key_password_file", f"cannot read the passphrase ({exc}).", "Check the file."
            ) from None
    try:
        context.load_cert_chain(tls.certificate, tls.key, password)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            where, "tls.certificate/tls.key", f"cannot load {tls.certificate} with {tls.key} ({exc}).",
            "Give the PEM certificate chain and its matching, readable private key.",
        ) from None
    if tls.client_auth != "none":
        context.verify_mode = _CLIENT_AUTH[tls.client_auth]
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        for anchors in tls.client_trust_anchors:
            try:
                context.load_verify_locations(cafile=str(anchors))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    str(anchors), "tls.client_trust_anchors", f"cannot load the trust anchors ({exc}).", "Give CA certificates in PEM."
                ) from None
    return context


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> tuple[bytes, ...]:
    """The client certificate chain the handshake verified, DER, leaf first; () without one.

    Python 3.13 has ``get_verified_chain()``; before it, the same method of the
    underlying ``_ssl`` object. When neither exists, the leaf alone; so too on a
    resumed session, for which OpenSSL keeps the client's certificate but not the
    chain it was verified with (the method returns None).
    """
    if ssl_object is None:
        return ()
    leaf = ssl_object.getpeercert(binary_form=True)
    if not leaf:
        return ()
    chain_of = getattr(ssl_object, "get_verified_chain", None) or getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if chain_of is None:
        return (leaf,)
    try:
        chain = chain_of() or ()
    except (ssl.SSLError, ValueError):
        return (leaf,)
    ders = tuple(c if isinstance(c, bytes) else c.public_bytes(_ENCODING_DER) for c in chain)
    return ders or (leaf,)
