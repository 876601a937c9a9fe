"""Authenticate step: who is asking — a TLS client certificate, a request signature, or nobody.

Three kinds of evidence, each checked before any other step runs:

* a TLS client certificate chain verified by our handshake: trusted as
  verified, then checked against our own revocation data (a connection may
  outlive a revocation);
* a client certificate passed by a trusted TLS-terminating proxy: decoded,
  verified against the TLS client trust anchors, checked for revocation;
* a request signature (RFC 6960 §4.1.2): verified over tbsRequest with the
  first certificate the request carries, that certificate's chain verified
  against the signer trust anchors, checked for revocation.

Presented evidence that fails refuses the request with ``unauthorized``
(the reason goes to the log and the audit line, never to the client).
Absent evidence is no error here: whether it is needed is the authorize
step's decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.access.header import BadCertificateHeader, decode_certificate_header
from certstatus.access.signatures import SignatureRejected, verify_signature
from certstatus.access.trust import CertificateCache, ChainVerifier, NotAuthenticated, OwnRevocationCheck
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated certificate: ``how`` is ``"tls"``, ``"proxy"`` or ``"signature"``."""

    how: str
    certificate: x509.Certificate
    subject_text: str

    @property
    def subject(self) -> x509.Name:
        return self.certificate.subject


@dataclass(frozen=True, slots=True)
class Authentication:
    """What the authenticate step established: the TLS client and the request signer, if any."""

    tls_client: Principal | None = None
    signer: Principal | None = None

    @property
    def principals(self) -> tuple[Principal, ...]:
        return tuple(p for p in (self.tls_client, self.signer) if p is not None)


NOBODY = Authentication()


def _refuse(reason: str) -> OCSPError:
    return OCSPError(OCSPResponseStatus.UNAUTHORIZED, reason)


class Authenticate:
    """Pipeline step setting ``exchange.auth``.

    ``tls_verifier`` checks certificates passed by a proxy (the handshake
    checked the others); ``signer_verifier`` checks request signers, and
    without it request signatures are not looked at. ``revocation`` checks
    every authenticated chain against our own data.
    """

    def __init__(
        self,
        *,
        tls_verifier: ChainVerifier | None,
        signer_verifier: ChainVerifier | None,
        revocation: OwnRevocationCheck,
    ) -> None:
        self.tls_verifier = tls_verifier
        self.signer_verifier = signer_verifier
        self.revocation = revocation
        self.certificates = CertificateCache()

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        tls_client = None
        if exchange.tls_client_chain:
            tls_client = self._handshake_client(exchange.tls_client_chain)
        elif exchange.forwarded_client_cert is not None and self.tls_verifier is not None:
            tls_client = self._proxied_client(exchange.forwarded_client_cert)
        signer = None
        if exchange.query.signature is not None and self.signer_verifier is not None:
            signer = self._signer(exchange)
        exchange.auth = Authentication(tls_client, signer) if tls_client or signer else NOBODY
        return call_next(exchange)

    def _chain(self, ders) -> list[x509.Certificate]:
        try:
            return [self.certificates.load(der) for der in ders]
        except NotAuthenticated as exc:
            raise _refuse(f"client certificate: {exc}") from None

    def _handshake_client(self, ders: tuple[bytes, ...]) -> Principal:
        chain = self._chain(ders)
        revoked = self.revocation.revoked(chain)
        if revoked:
            raise _refuse(f"TLS client certificate revoked: {revoked}")
        return Principal("tls", chain[0], chain[0].subject.rfc4514_string())

    def _proxied_client(self, header: bytes) -> Principal:
        try:
            chain = self._chain(decode_certificate_header(header))
        except BadCertificateHeader as exc:
            raise _refuse(f"client certificate header from the proxy: {exc}") from None
        return self._authenticated("proxy", chain, self.tls_verifier, "client certificate from the proxy")

    def _signer(self, exchange: Exchange) -> Principal:
        signature = exchange.query.signature
        if not signature.certs:
            raise _refuse("signed request carries no certificate to verify the signature with")
        chain = self._chain(signature.certs)
        try:
            verify_signature(chain[0].public_key(), signature.algorithm_der, signature.signature, signature.tbs_request)
        except SignatureRejected as exc:
            raise _refuse(f"request signature by {chain[0].subject.rfc4514_string()}: {exc}") from None
        return self._authenticated("signature", chain, self.signer_verifier, "request signer")

    def _authenticated(self, how: str, chain: list[x509.Certificate], verifier: ChainVerifier, what: str) -> Principal:
        """Verify ``chain`` to an anchor and against our revocation data; refuse naming ``what``."""
        try:
            verified = verifier.verify(chain[0], chain[1:])
        except NotAuthenticated as exc:
            raise _refuse(f"{what} not trusted: {exc}") from None
        revoked = self.revocation.revoked(verified)
        if revoked:
            raise _refuse(f"{what} revoked: {revoked}")
        return Principal(how, verified[0], verified[0].subject.rfc4514_string())
