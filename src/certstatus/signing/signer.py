"""The response signer: one key, its responder certificate, the CA it answers for.

:class:`ResponseSigner` turns ResponseData DER into a complete signed
OCSPResponse. It does not care where the key lives: anything with
``cryptography``'s ``sign()`` interface works (the PKCS#11 adapters of
:mod:`certstatus.signing.pkcs11_keys` included). :func:`validate_signer`
enforces RFC 6960 §4.2.2.2 when a signer is loaded (start-up and reload).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from certstatus.errors import SignerError
from certstatus.observability import config_warning
from certstatus.protocol import fast_response
from certstatus.protocol import response as ocsp_response
from certstatus.protocol.certid import public_key_bits
from certstatus.signing.algorithms import SignatureAlgorithm, default_algorithm, key_family
from certstatus.signing.keys import PrivateKey


class ResponseSigner:
    """Signs ResponseData for one CA with one key and one algorithm (RFC 6960 §4.2.1, §4.2.2.2).

    ``certificate`` is the responder certificate: the CA certificate itself
    (CA-signed responses carry no certificate) or a delegated or locally
    trusted responder certificate (carried in the response, ``chain`` after
    it). ``responder_id`` is ``"key"`` (byKey, default) or ``"name"`` (byName).
    ``algorithm`` defaults to :func:`default_algorithm` of the key; ``name``
    names the signer in logs and tables (a file or a token object).

    The interface other layers rely on: :meth:`sign`, ``responder_id``
    (asn1crypto ResponderId), ``signature_algorithm_der``, ``certificates_der``.
    """

    __slots__ = ("_not_after", "_not_before", "_sign", "_variants", "_wrapper", "algorithm", "ca_certificate", "certificate", "certificates_der", "chain", "is_delegated", "key", "key_family", "locally_trusted", "name", "responder_id", "responder_id_der", "responder_id_kind", "signature_algorithm_der", "source")

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        ca_certificate: x509.Certificate,
        *,
        responder_id: str = "key",
        chain: tuple[x509.Certificate, ...] = (),
        algorithm: SignatureAlgorithm | None = None,
        name: str | None = None,
        locally_trusted: bool = False,
    ) -> None:
        if responder_id not in ("key", "name"):
            raise ValueError("responder_id is 'key' or 'name'")
        self.key = key
        self.certificate = certificate
        self.ca_certificate = ca_certificate
        self.chain = tuple(chain)
        self.responder_id_kind = responder_id
        self.name = name or certificate.subject.rfc4514_string()
        self.locally_trusted = locally_trusted
        self.source = None  # the SignerSettings it was loaded from (certstatus.signing.loader), None when built directly
        self.is_delegated = certificate != ca_certificate
        self.key_family = key_family(key)
        # Read once: cryptography builds a new datetime on every access, and the request path bounds
        # every nextUpdate by notAfter (certstatus.next_update).
        self._not_before = certificate.not_valid_before_utc
        self._not_after = certificate.not_valid_after_utc
        self.algorithm = algorithm or default_algorithm(key)
        self._sign = self.algorithm.sign_function(key)
        self.signature_algorithm_der = self.algorithm.der
        if responder_id == "key":
            key_hash = hashlib.sha1(public_key_bits(certificate)).digest()
            self.responder_id = ocsp_response.responder_id_by_key(key_hash)
        else:
            self.responder_id = ocsp_response.responder_id_by_name(certificate.subject.public_bytes())
        #: The responderID's DER, for the direct ResponseData writer.
        self.responder_id_der = self.responder_id.dump()
        if self.is_delegated:
            self.certificates_der = tuple(
                c.public_bytes(serialization.Encoding.DER) for c in (certificate, *self.chain)
            )
        else:
            # A CA-signed response carries no certificate (golang/go#59641).
            self.certificates_der = ()
        # The wrap around each signature: certificates and length headers encoded once (per size).
        self._wrapper = fast_response.ResponseWrapper(self.signature_algorithm_der, self.certificates_der)
        self._variants: dict[str, ResponseSigner] = {self.algorithm.name: self}

    @property
    def not_before(self) -> dt.datetime:
        """The responder certificate's notBefore (aware UTC)."""
        return self._not_before

    @property
    def not_after(self) -> dt.datetime:
        """The responder certificate's notAfter (aware UTC)."""
        return self._not_after

    def valid_at(self, when: dt.datetime) -> bool:
        """True when ``when`` lies within notBefore..notAfter, both included (RFC 5280 §4.1.2.5)."""
        return self.not_before <= when <= self.not_after

    def can_sign_with(self, algorithm: SignatureAlgorithm) -> bool:
        """True when this signer's key produces ``algorithm``."""
        return algorithm.fits(self.key_family)

    def with_algorithm(self, algorithm: SignatureAlgorithm) -> "ResponseSigner":
        """The same key and certificate signing with ``algorithm`` (cached per algorithm).

        Raises :class:`SignerError` when the key cannot produce it.
        """
        variant = self._variants.get(algorithm.name)
        if variant is None:
            variant = ResponseSigner(
                self.key, self.certificate, self.ca_certificate,
                responder_id=self.responder_id_kind, chain=self.chain, algorithm=algorithm,
                name=self.name, locally_trusted=self.locally_trusted,
            )  # fmt: skip
            variant._variants = self._variants
            self._variants[algorithm.name] = variant
        return variant

    def signature(self, data: bytes) -> bytes:
        """Sign ``data`` (ResponseData DER) and return the bare signature bytes.

        For callers that wrap the response themselves (the generator's
        :class:`certstatus.protocol.fast_response.ResponseWrapper`).
        """
        return self._sign(data)

    def sign(self, response_data_der: bytes) -> bytes:
        """Sign ResponseData DER and return the complete OCSPResponse DER.

        Raises :class:`~certstatus.errors.SignerUnavailable` when an HSM
        key cannot sign right now.
        """
        # Same bytes as the reference encode_basic_response (tests/ocsp_reference.py, tests/unit/test_live_signer.py).
        return self._wrapper.wrap(response_data_der, self._sign(response_data_der))

    def __repr__(self) -> str:
        return f"<ResponseSigner {self.name} {self.algorithm.name} until {self.not_after:%Y-%m-%d}>"


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def prove_key(key: PrivateKey, certificate: x509.Certificate, *, where: str) -> None:
    """Sign a random challenge with ``key`` and verify it with ``certificate``'s public key.

    Works for keys that never leave an HSM, where comparing public keys is
    not enough to prove the token object is the certificate's key.
    Raises :class:`SignerError` naming ``where`` on a mismatch.
    """
    algorithm = default_algorithm(key)
    challenge = os.urandom(32)
    signature = algorithm.sign_function(key)(challenge)
    try:
        algorithm.verify(certificate.public_key(), signature, challenge)
    except (InvalidSignature, TypeError, ValueError):
        raise SignerError(
            f"{where}: the signer key does not belong to the signer certificate "
            f"({certificate.subject.rfc4514_string()}); give the key the certificate was issued for"
        ) from None


def check_key_and_dates(
    key: PrivateKey, certificate: x509.Certificate, now: dt.datetime, *, where: str, allow_not_yet_valid: bool = False
) -> None:
    """The cheap part of :func:`validate_signer`: ``key`` is the key of ``certificate`` (public keys
    compared), which is not expired at ``now`` (nor not yet valid, unless ``allow_not_yet_valid``).
    Raises :class:`SignerError` naming ``where``."""
    if _spki(certificate.public_key()) != _spki(key.public_key()):
        raise SignerError(
            f"{where}: the signer key does not belong to the signer certificate "
            f"({certificate.subject.rfc4514_string()}); give the key the certificate was issued for"
        )
    span = (
        f"valid from {certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%SZ} "
        f"to {certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}"
    )
    if now > certificate.not_valid_after_utc:
        raise SignerError(
            f"{where}: the signer certificate is {span}, not now; install a current one "
            "(it expired: remove it from the configuration or the signers directory)"
        )
    if now < certificate.not_valid_before_utc and not allow_not_yet_valid:
        raise SignerError(f"{where}: the signer certificate is {span}, not now; install a current one (not valid yet)")


def validate_signer(
    key: PrivateKey,
    certificate: x509.Certificate,
    ca_certificate: x509.Certificate,
    now: dt.datetime,
    *,
    where: str,
    locally_trusted: bool = False,
    allow_not_yet_valid: bool = False,
) -> None:
    """Refuse a signer that RFC 6960 §4.2.2.2 would not let clients accept.

    The certificate must match the key, not be expired at ``now`` (nor be
    not yet valid, unless ``allow_not_yet_valid``: a successor waiting for
    its notBefore), and be the CA certificate or be issued by it (signature
    checked) with id-kp-OCSPSigning and, when keyUsage is present,
    digitalSignature. A ``locally_trusted`` signer (RFC 6960 §2.2 "trusted
    responder") skips the issuer and EKU checks: clients trust it out of band.
    ``where`` names the files or token object in the message.
    Raises :class:`SignerError`.
    """
    check_key_and_dates(key, certificate, now, where=where, allow_not_yet_valid=allow_not_yet_valid)
    if certificate == ca_certificate or locally_trusted:
        return
    try:
        certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise SignerError(
            f"{where}: the signer certificate ({certificate.subject.rfc4514_string()}) is not issued by "
            f"the CA {ca_certificate.subject.rfc4514_string()} ({str(exc) or type(exc).__name__}); "
            "use a delegated responder certificate issued by this CA, the CA's own key, or configure "
            "it as locally_trusted for this CA if clients trust it out of band"
        ) from None
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = []
    if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        raise SignerError(
            f"{where}: a delegated responder certificate needs the id-kp-OCSPSigning extended key usage "
            "(RFC 6960 §4.2.2.2); issue one with extendedKeyUsage = OCSPSigning"
        )
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise SignerError(
            f"{where}: the signer certificate's keyUsage lacks digitalSignature (RFC 5280 §4.2.1.3); "
            "issue one with keyUsage = digitalSignature"
        )
    try:
        certificate.extensions.get_extension_for_class(x509.OCSPNoCheck)
    except x509.ExtensionNotFound:
        config_warning(
            "delegated responder certificates without id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): clients may "
            "try to check their own revocation status; issue the next one with the extension", where,
        )
