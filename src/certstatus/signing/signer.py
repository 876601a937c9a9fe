"""The response signer: one key, its responder certificate, the CA it answers for.

:class:`ResponseSigner` turns ResponseData DER into a complete signed
OCSPResponse. It does not care where the key lives: anything with
``cryptography``'s ``sign()`` interface works (a PKCS#11 adapter included).
:func:`validate_signer` enforces RFC 6960 §4.2.2.2 at start-up.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from asn1crypto import algos
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from certstatus.errors import SignerError
from certstatus.protocol import response as ocsp_response
from certstatus.protocol.certid import public_key_bits
from certstatus.signing.keys import PrivateKey

_EC_ALGORITHMS = {
    "secp256r1": ("sha256_ecdsa", hashes.SHA256),
    "secp384r1": ("sha384_ecdsa", hashes.SHA384),
    "secp521r1": ("sha512_ecdsa", hashes.SHA512),
}


def _signature_scheme(key: PrivateKey):
    """Return (asn1crypto algorithm name, a function bytes -> signature) for ``key``."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "sha256_rsa", lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        try:
            name, hash_class = _EC_ALGORITHMS[key.curve.name]
        except KeyError:
            raise SignerError(f"ECDSA curve {key.curve.name} is not supported; use P-256 or P-384") from None
        algorithm = ec.ECDSA(hash_class())
        return name, lambda data: key.sign(data, algorithm)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519", key.sign
    raise SignerError(f"{type(key).__name__} keys cannot sign OCSP responses")


class ResponseSigner:
    """Signs ResponseData for one CA with one key (RFC 6960 §4.2.1, §4.2.2.2).

    ``certificate`` is the responder certificate: the CA certificate itself
    (CA-signed responses carry no certificate) or a delegated responder
    certificate (carried in the response, with ``chain`` after it).
    ``responder_id`` is ``"key"`` (byKey, default) or ``"name"`` (byName).
    """

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        ca_certificate: x509.Certificate,
        *,
        responder_id: str = "key",
        chain: tuple[x509.Certificate, ...] = (),
    ) -> None:
        if responder_id not in ("key", "name"):
            raise ValueError("responder_id is 'key' or 'name'")
        self.key = key
        self.certificate = certificate
        self.ca_certificate = ca_certificate
        self.is_delegated = certificate != ca_certificate
        algorithm_name, self._sign = _signature_scheme(key)
        self.signature_algorithm_der = algos.SignedDigestAlgorithm({"algorithm": algorithm_name}).dump()
        if responder_id == "key":
            key_hash = hashlib.sha1(public_key_bits(certificate)).digest()
            self.responder_id = ocsp_response.responder_id_by_key(key_hash)
        else:
            self.responder_id = ocsp_response.responder_id_by_name(certificate.subject.public_bytes())
        if self.is_delegated:
            self.certificates_der = tuple(
                c.public_bytes(serialization.Encoding.DER) for c in (certificate, *chain)
            )
        else:
            # A CA-signed response carries no certificate (golang/go#59641).
            self.certificates_der = ()

    @property
    def not_after(self) -> dt.datetime:
        """The responder certificate's notAfter (aware UTC)."""
        return self.certificate.not_valid_after_utc

    def signature(self, data: bytes) -> bytes:
        """Sign ``data`` (ResponseData DER) and return the bare signature bytes.

        For callers that wrap the response themselves (the generator's
        :class:`certstatus.protocol.fast_response.ResponseWrapper`).
        """
        return self._sign(data)

    def sign(self, response_data_der: bytes) -> bytes:
        """Sign ResponseData DER and return the complete OCSPResponse DER."""
        signature = self._sign(response_data_der)
        return ocsp_response.encode_basic_response(
            response_data_der, self.signature_algorithm_der, signature, self.certificates_der
        )


def validate_signer(
    key: PrivateKey,
    certificate: x509.Certificate,
    ca_certificate: x509.Certificate,
    now: dt.datetime,
    *,
    where: str,
) -> None:
    """Refuse a signer that RFC 6960 §4.2.2.2 would not let clients accept.

    The certificate must be the CA certificate or be issued by it (signature
    checked), carry id-kp-OCSPSigning when delegated, match the key, and be
    valid at ``now``. ``where`` names the files or token in the message.
    Raises :class:`SignerError`.
    """
    public = certificate.public_key()
    if public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise SignerError(f"{where}: the signer key does not belong to the signer certificate")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SignerError(
            f"{where}: the signer certificate is valid from {certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%SZ} "
            f"to {certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}, not now; install a current one"
        )
    if certificate == ca_certificate:
        return
    try:
        certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, TypeError, Exception) as exc:  # InvalidSignature has no common base
        raise SignerError(
            f"{where}: the signer certificate ({certificate.subject.rfc4514_string()}) is not issued by "
            f"the CA {ca_certificate.subject.rfc4514_string()} ({exc or type(exc).__name__}); "
            "use a delegated responder certificate issued by this CA, or the CA's own key"
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
