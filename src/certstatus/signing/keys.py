"""Load signing keys and responder certificates from files.

PEM (PKCS#8 or traditional, optionally encrypted) and PKCS#12 are read with
``cryptography``. ML-DSA keys (FIPS 204) come as PKCS#8 in the seed form of
RFC 9881 (what ``cryptography`` and ``certstatus signer new`` write):
``cryptography`` reads no other form, and its PKCS#12 cannot carry them. A
passphrase comes from a file or an environment variable, never from the
command line (it would show in ``ps``), and is never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import parser, pem
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certstatus.errors import SignerError

#: Environment variable holding the signer key passphrase (RFC-less convention).
PASSWORD_ENV = "CERTSTATUS_SIGNER_PASSWORD"

PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    | mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
)  # fmt: skip
_KEY_CLASSES = (
    rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey,
    mldsa.MLDSA44PrivateKey, mldsa.MLDSA65PrivateKey, mldsa.MLDSA87PrivateKey,
)  # fmt: skip
#: The PKCS#8 AlgorithmIdentifier of id-ml-dsa-44/65/87 (RFC 9881), up to its last OID octet.
_ML_DSA_PKCS8_PREFIX = bytes.fromhex("300b06096086480165030403")


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
        if _ml_dsa_not_seed(data):
            raise SignerError(
                f"cannot load signer key {path}: it is an ML-DSA key in the expanded or both form; certstatus "
                "(through cryptography) reads the seed form of RFC 9881 only. Write it again in the seed form "
                "(OpenSSL 3.5 or later: the provider parameter ml-dsa.output_formats = seed-only), or make a new "
                "key with certstatus signer new --key-type ml-dsa-65"
            ) from None
        given = "the passphrase given is wrong" if password is not None else "no passphrase was given"
        raise SignerError(
            f"cannot load signer key {path}: {given}, or the file is not a PEM, DER or PKCS#12 key. "
            f"Give the passphrase with --signer-password-file FILE (signer_password_file in the "
            f"configuration) or the environment variable {PASSWORD_ENV}"
        ) from None
    if not isinstance(loaded.key, _KEY_CLASSES):
        raise SignerError(f"signer key {path}: only RSA, ECDSA, Ed25519 and ML-DSA keys can sign OCSP responses")
    return loaded


def _ml_dsa_not_seed(data: bytes) -> bool:
    """True when ``data`` (PEM or DER) is an unencrypted PKCS#8 ML-DSA key whose privateKey is not the seed.

    RFC 9881, private key format: ``seed [0] IMPLICIT``, ``expandedKey OCTET STRING`` or
    ``both SEQUENCE``; only the first loads.
    """
    try:
        der = pem.unarmor(data)[2] if pem.detect(data) else data
        body = parser.parse(der, strict=True)[4]
        fields = []  # version, privateKeyAlgorithm, privateKey
        while body and len(fields) < 3:
            length = parser.peek(body)
            fields.append(body[:length])
            body = body[length:]
        algorithm, private_key = fields[1], parser.parse(fields[2])[4]
    except (ValueError, IndexError):
        return False
    return algorithm[:-1] == _ML_DSA_PKCS8_PREFIX and algorithm[-1] in (0x11, 0x12, 0x13) and private_key[:1] != b"\x80"


def _load_pkcs12(data: bytes, password: bytes | None) -> LoadedKey:
    key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    if key is None:
        raise ValueError("PKCS#12 without a private key")
    return LoadedKey(key, cert, tuple(extra or ()))
