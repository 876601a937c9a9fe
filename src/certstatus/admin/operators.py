"""Operators: who may use the admin API with a client certificate (``[admin] client_ca``).

The TLS handshake has verified the client's chain to ``client_ca``. That says
who issued the certificate, not that its holder is still an operator, so every
admin request also checks, in this order:

1. the leaf's extendedKeyUsage lists id-kp-clientAuth (RFC 5280 §4.2.1.12). A
   certificate without the extension (good for any purpose) is refused too: an
   operator certificate says what it is for, and a server or signer
   certificate from the same CA must not open the admin API;
2. with ``[admin] operator_names``, the leaf's subject matches one entry (the
   syntax of ``access.authorized_names``: :class:`~certstatus.access.names.NameTable`);
3. no certificate of the chain is revoked by the data of a CA served here
   (:class:`~certstatus.access.trust.OwnRevocationCheck`, the check of the OCSP
   listener): revoking an operator's certificate at its CA (CRL, index, push)
   closes the admin API to it at the next request, without a restart or a CRL
   for the TLS library. A certificate whose CA is not served here has no such
   data; remove its holder with ``operator_names`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certstatus.access.names import NameTable
from certstatus.access.trust import CertificateCache, NotAuthenticated, OwnRevocationCheck


class OperatorPolicy:
    """The checks above; ``names`` is the ``operator_names`` table (None: any subject)."""

    def __init__(self, names: NameTable | None = None) -> None:
        self.names = names
        self.certificates = CertificateCache(size=256)

    def refusal(self, chain: Sequence[bytes], revocation: OwnRevocationCheck) -> str | None:
        """Why the verified client ``chain`` (DER, leaf first) may not use the admin API, or None.

        ``revocation`` reads the store: call from the thread that owns it.
        """
        try:
            certificates = [self.certificates.load(der) for der in chain]
        except NotAuthenticated as exc:
            return f"client certificate: {exc}"
        leaf = certificates[0]
        subject = leaf.subject.rfc4514_string()
        try:
            usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return f"{subject} has no extendedKeyUsage; an operator certificate needs clientAuth"
        except ValueError as exc:  # a malformed or duplicated extension
            return f"{subject} has unreadable extensions ({exc})"
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            return f"{subject} is not a client certificate (its extendedKeyUsage lacks clientAuth)"
        if self.names is not None and self.names.match(leaf.subject) is None:
            return f"{subject} is not one of [admin] operator_names"
        return revocation.revoked(certificates)
