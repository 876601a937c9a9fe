"""Key providers: where a signer's private key and certificates come from.

A :class:`KeyProvider` returns a :class:`SignerKey`: a ``cryptography``
private key object (for a PKCS#11 token, an adapter whose ``sign()`` calls
the HSM) and the responder certificate with its chain. One
:class:`~certstatus.signing.signer.ResponseSigner` signs for every backend.

* :class:`FileKeyProvider`: PEM (PKCS#8 or traditional, optionally
  encrypted), DER PKCS#8 or PKCS#12; passphrase from the signer's
  ``password_file`` or ``$CERTSTATUS_SIGNER_PASSWORD``, never logged;
* :class:`Pkcs11KeyProvider`: an RFC 7512 ``pkcs11:`` URI in a token of the
  configured module; PIN from the URI's pin-source, ``pin_file`` or
  ``$CERTSTATUS_PKCS11_PIN``, never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509

from certstatus.errors import SignerError
from certstatus.signing.keys import PrivateKey, load_certificates, load_private_key, read_password
from certstatus.signing.pkcs11_keys import open_pkcs11_key
from certstatus.signing.pkcs11_uri import parse_pkcs11_uri
from certstatus.signing.settings import SignerSettings


@dataclass(frozen=True)
class SignerKey:
    """A private key (or HSM adapter), its responder certificate and the chain after it."""

    key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


class KeyProvider(Protocol):
    """Loads one signer's key and certificates; ``where`` names them in messages."""

    where: str

    def load(self) -> SignerKey:
        """Return the key and certificates; raises :class:`SignerError` naming ``where``."""


class FileKeyProvider:
    """A key file (PEM, DER PKCS#8, PKCS#12) and a certificate file.

    When the certificate setting names the PKCS#12 file itself, the
    certificate and chain come from inside it.
    """

    def __init__(self, settings: SignerSettings) -> None:
        self.settings = settings
        self.where = f"{settings.where} ({settings.certificate}, {settings.key})"

    def load(self) -> SignerKey:
        key_path = Path(self.settings.key)
        try:
            loaded = load_private_key(key_path, read_password(self.settings.password_file))
        except SignerError as exc:
            raise SignerError(f"{self.settings.where}: {exc}") from None
        if Path(self.settings.certificate) == key_path and loaded.certificate is not None:
            return SignerKey(loaded.key, loaded.certificate, loaded.chain)
        certificates = load_certificates(self.settings.certificate)
        return SignerKey(loaded.key, certificates[0], tuple(certificates[1:]))


class Pkcs11KeyProvider:
    """A private key object in a PKCS#11 token and a certificate file."""

    def __init__(self, settings: SignerSettings, *, pool_size: int = 4) -> None:
        self.settings = settings
        try:
            self.uri = parse_pkcs11_uri(settings.key)
        except ValueError as exc:
            raise SignerError(f"{settings.where}: {exc}") from None
        self.pool_size = pool_size
        self.where = f"{settings.where} ({settings.certificate}, {self.uri.describe()})"

    def load(self) -> SignerKey:
        certificates = load_certificates(self.settings.certificate)
        key = open_pkcs11_key(
            self.uri,
            self.settings.pkcs11_module,
            pin_file=self.settings.pin_file,
            where=self.where,
            certificate_public_key=certificates[0].public_key(),
            pool_size=self.pool_size,
        )
        return SignerKey(key, certificates[0], tuple(certificates[1:]))


def provider_for(settings: SignerSettings) -> KeyProvider:
    """The provider for a signer: PKCS#11 for a ``pkcs11:`` key, files otherwise."""
    if settings.is_pkcs11:
        return Pkcs11KeyProvider(settings)
    return FileKeyProvider(settings)
