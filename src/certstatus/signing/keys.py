"""Load signing keys and responder certificates from files.

PEM (PKCS#8 or traditional, optionally encrypted) and PKCS#12 are read with
``cryptography``. A passphrase comes from a file or an environment variable,
never from the command line (it would show in ``ps``), and is never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certstatus.errors import SignerError

#: Environment variable holding the signer key passphrase (RFC-less convention).
PASSWORD_ENV = "CERTSTATUS_SIGNER_PASSWORD"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class LoadedKey:
    """A private key and, when the file carried them (PKCS#12), its certificates."""

    key: PrivateKey
    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()


def read_password(password_file: Path | None, env: str = PASSWORD_ENV) -> bytes | None:
    """Return the passphrase from ``password_file`` (first line) or ``$env``, else None.

    Raises :class:`SignerError` when the file cannot be read.
    """
    if password_file is not None:
        try:
            text = Path(password_file).read_bytes()
        except OSError as exc:
            raise SignerError(
                f"cannot read the signer password file {password_file}: {exc.strerror}"
            ) from None
        return text.splitlines()[0] if text.strip() else b""
    value = os.environ.get(env)
    return value.encode() if value else None


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Load every certificate of a PEM or DER file, first one first.

    Raises :class:`SignerError` naming the file when it holds no certificate.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SignerError(f"cannot read certificate file {path}: {exc.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise SignerError(
            f"{path} is not a PEM or DER X.509 certificate ({exc}); "
            "give the certificate file, not the key or a CSR"
        ) from None
    return certs


def load_private_key(path: Path, password: bytes | None) -> LoadedKey:
    """Load a private key from PEM (optionally encrypted), DER PKCS#8 or PKCS#12.

    PKCS#12 is recognised by the ``.p12``/``.pfx`` suffix or by failing PEM/DER.
    Raises :class:`SignerError` for a missing passphrase, a wrong one, an
    unsupported key type or unreadable bytes; the passphrase is never echoed.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SignerError(f"cannot read signer key {path}: {exc.strerror}") from None
    is_p12 = Path(path).suffix.lower() in (".p12", ".pfx")
    try:
        if is_p12:
            loaded = _load_pkcs12(data, password)
        elif b"-----BEGIN" in data:
            loaded = LoadedKey(serialization.load_pem_private_key(data, password))
        else:
            try:
                loaded = LoadedKey(serialization.load_der_private_key(data, password))
            except ValueError:
                loaded = _load_pkcs12(data, password)
    except TypeError:
        if password is None:
            raise SignerError(
                f"signer key {path} is encrypted: give its passphrase with "
                f"--signer-password-file FILE or the environment variable {PASSWORD_ENV}"
            ) from None
        raise SignerError(f"signer key {path} is not encrypted: remove the passphrase setting") from None
    except ValueError:
        given = "the passphrase given is wrong" if password is not None else "no passphrase was given"
        raise SignerError(
            f"cannot load signer key {path}: {given}, or the file is not a PEM, DER or PKCS#12 key. "
            f"Give the passphrase with --signer-password-file FILE (signer_password_file in the "
            f"configuration) or the environment variable {PASSWORD_ENV}"
        ) from None
    if not isinstance(loaded.key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise SignerError(f"signer key {path}: only RSA, ECDSA and Ed25519 keys can sign OCSP responses")
    return loaded


def _load_pkcs12(data: bytes, password: bytes | None) -> LoadedKey:
    key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    if key is None:
        raise ValueError("PKCS#12 without a private key")
    return LoadedKey(key, cert, tuple(extra or ()))
