"""PKCS#11 keys dressed as ``cryptography`` private keys.

``cryptography`` accepts any subclass of its key ABCs whose ``sign()`` it can
call (its X.509 builders call ``sign`` on foreign keys), so a PKCS#11 key
works wherever a software key does: in :class:`ResponseSigner`, and to sign
the PKCS#10 request of ``certstatus signer new``.

Mechanisms (the hash is computed on the token where a combined mechanism is
universal, in Python otherwise):

* RSA PKCS#1 v1.5: ``CKM_SHA{256,384,512}_RSA_PKCS``;
* RSASSA-PSS: ``CKM_SHA{256,384,512}_RSA_PKCS_PSS`` with MGF1 of the same hash;
* ECDSA: the digest is computed here and signed with ``CKM_ECDSA`` (tokens
  rarely offer ``CKM_ECDSA_SHA384``); PKCS#11 returns r||s, converted to the
  DER ECDSA-Sig-Value that X.509 and OCSP carry (RFC 5480 §2.2 / RFC 3279);
* Ed25519: ``CKM_EDDSA`` over the message.

Private-key export, decryption and key exchange raise ``TypeError``: the key
stays in the token.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from certstatus.errors import SignerError
from certstatus.signing.pkcs11 import Pkcs11KeyConnection, Pkcs11Library
from certstatus.signing.pkcs11_uri import Pkcs11Uri

_EC_CURVES = {
    "1.2.840.10045.3.1.7": ec.SECP256R1,
    "1.3.132.0.34": ec.SECP384R1,
    "1.3.132.0.35": ec.SECP521R1,
}


def _mechanisms():
    from pkcs11 import MGF, Mechanism  # deferred: python-pkcs11 only for keys on a token

    return Mechanism, MGF


def _not_exportable(*_args, **_kwargs):
    raise TypeError("a PKCS#11 key stays in its token: it cannot be exported or used to decrypt")


class _Pkcs11Key:
    """Shared parts: the connection, the public key, no export."""

    def __init__(self, connection: Pkcs11KeyConnection, public_key) -> None:
        self.connection = connection
        self._public_key = public_key

    def public_key(self):
        return self._public_key

    private_bytes = _not_exportable
    private_numbers = _not_exportable

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.connection.where}>"


class Pkcs11RSAPrivateKey(_Pkcs11Key, rsa.RSAPrivateKey):
    """An RSA key in a token: PKCS#1 v1.5 and PSS signatures with SHA-256/384/512."""

    decrypt = _not_exportable

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def sign(self, data: bytes, padding_: padding.AsymmetricPadding, algorithm) -> bytes:
        Mechanism, MGF = _mechanisms()
        if isinstance(algorithm, utils.Prehashed):
            raise TypeError("PKCS#11 RSA keys sign messages, not prehashed digests")
        name = algorithm.name.upper().replace("-", "")
        if isinstance(padding_, padding.PSS):
            salt = _pss_salt_length(padding_, algorithm, self.key_size)
            mechanism = getattr(Mechanism, f"{name}_RSA_PKCS_PSS")
            param = (getattr(Mechanism, name), getattr(MGF, name), salt)
            return self.connection.sign(data, mechanism, param)
        if isinstance(padding_, padding.PKCS1v15):
            return self.connection.sign(data, getattr(Mechanism, f"{name}_RSA_PKCS"))
        raise TypeError(f"unsupported RSA padding {type(padding_).__name__}")


class Pkcs11ECPrivateKey(_Pkcs11Key, ec.EllipticCurvePrivateKey):
    """An ECDSA key in a token (P-256, P-384, P-521); signatures returned as DER."""

    exchange = _not_exportable

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        return self._public_key.curve.key_size

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        Mechanism, _ = _mechanisms()
        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, utils.Prehashed):
            digest = data
        else:
            digest = hashlib.new(algorithm.name, data).digest()
        raw = self.connection.sign(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


class Pkcs11Ed25519PrivateKey(_Pkcs11Key, ed25519.Ed25519PrivateKey):
    """An Ed25519 key in a token (``CKM_EDDSA``)."""

    private_bytes_raw = _not_exportable

    def sign(self, data: bytes) -> bytes:
        Mechanism, _ = _mechanisms()
        return self.connection.sign(data, Mechanism.EDDSA)


def _pss_salt_length(padding_: padding.PSS, algorithm: hashes.HashAlgorithm, key_size: int) -> int:
    salt = padding_._salt_length  # cryptography keeps it private; there is no accessor
    if isinstance(salt, int):
        return salt
    if salt is padding.PSS.DIGEST_LENGTH:
        return algorithm.digest_size
    return (key_size + 7) // 8 - algorithm.digest_size - 2  # PSS.MAX_LENGTH


def open_pkcs11_key(
    uri: Pkcs11Uri,
    module: str | None,
    *,
    pin_file: Path | None = None,
    where: str,
    certificate_public_key=None,
    pool_size: int = 4,
):
    """Connect to the private key ``uri`` names and return a cryptography-compatible key.

    ``module`` is the PKCS#11 library path (the URI's module-path wins).
    The public key comes from the token (the RSA key itself, or the public
    key object with the same label/id); ``certificate_public_key`` is used
    when the token holds none (the caller then proves the pair by signing).
    Raises :class:`SignerError` naming ``where`` when the module, token, key
    or PIN is missing or refused.
    """
    module = uri.module_path or module
    if not module:
        raise SignerError(
            f"{where}: a pkcs11: key needs the PKCS#11 module: set pkcs11_module in the configuration, "
            "--pkcs11-module PATH, or module-path= in the URI"
        )
    connection = Pkcs11KeyConnection(Pkcs11Library.get(module), uri, pin_file=pin_file, where=where, pool_size=pool_size)
    info = connection.connect()
    public = serialization.load_der_public_key(info.public_key_der) if info.public_key_der else certificate_public_key
    if public is None:
        raise SignerError(
            f"{where}: the token holds no public key for {uri.describe()}; store the public key object "
            "with the same label/id, or give the signer certificate"
        )
    if info.key_type == "rsa":
        return Pkcs11RSAPrivateKey(connection, public)
    if info.key_type == "ed25519":
        return Pkcs11Ed25519PrivateKey(connection, public)

    curve_oid = asn1_keys.ECDomainParameters.load(info.ec_params).chosen.dotted if info.ec_params else None
    if curve_oid not in _EC_CURVES:
        raise SignerError(f"{where}: the token key's curve {curve_oid} is not supported; use P-256 or P-384")
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, _EC_CURVES[curve_oid]):
        raise SignerError(f"{where}: the token key is on curve {curve_oid} but the certificate's key is not")
    return Pkcs11ECPrivateKey(connection, public)
