"""The signature algorithms a responder signs with, and how a key produces each.

One :class:`SignatureAlgorithm` per sigIdentifier certstatus can write:
RSA PKCS#1 v1.5 and RSASSA-PSS with SHA-256/384/512 (RFC 4055), ECDSA with
SHA-256/384/512 (RFC 5758), Ed25519 (RFC 8410) and ML-DSA-44/65/87 (FIPS 204;
the X.509 identifiers of RFC 9881: id-ml-dsa-44/65/87, parameters absent,
pure ML-DSA over the whole message with the empty context string). SHA-1 is
never used to sign. The AlgorithmIdentifier DER is written by ``asn1crypto``
(which takes the ML-DSA OIDs in dotted form) and is the same, byte for byte,
as what ``cryptography`` writes in certificates (tested).

Configuration names: ``rsa-sha256``, ``rsa-sha384``, ``rsa-sha512``,
``rsa-pss-sha256``, ``rsa-pss-sha384``, ``rsa-pss-sha512``, ``ecdsa-sha256``,
``ecdsa-sha384``, ``ecdsa-sha512``, ``ed25519``, ``ml-dsa-44``, ``ml-dsa-65``,
``ml-dsa-87``.

An ML-DSA key produces one algorithm only (its parameter set is its family).
ML-DSA signers are *post-quantum*: a CA that also has a signer of another
algorithm uses them only for clients that ask for ML-DSA
(:mod:`certstatus.signing.signer_set`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from asn1crypto import algos
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa, utils

from certstatus.errors import SignerError

#: The key families a signer key belongs to.
RSA, EC, ED25519 = "rsa", "ec", "ed25519"
#: The ML-DSA families: one per parameter set (FIPS 204 §4), each with one algorithm of the same name.
ML_DSA_44, ML_DSA_65, ML_DSA_87 = "ml-dsa-44", "ml-dsa-65", "ml-dsa-87"
#: ML-DSA private key class -> its family.
_ML_DSA_KEYS = (
    (mldsa.MLDSA44PrivateKey, ML_DSA_44),
    (mldsa.MLDSA65PrivateKey, ML_DSA_65),
    (mldsa.MLDSA87PrivateKey, ML_DSA_87),
)
#: id-ml-dsa-44/65/87 (RFC 9881 §2; NIST CSOR sigAlgs 17, 18, 19).
ML_DSA_OIDS = {
    ML_DSA_44: "2.16.840.1.101.3.4.3.17",
    ML_DSA_65: "2.16.840.1.101.3.4.3.18",
    ML_DSA_87: "2.16.840.1.101.3.4.3.19",
}

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class SignatureAlgorithm:
    """One signature algorithm: its configuration name, sigIdentifier OID and DER.

    ``hash_name`` is ``sha256``/``sha384``/``sha512`` (None for Ed25519 and
    ML-DSA, which sign the message itself); ``pss`` marks RSASSA-PSS (MGF1
    with the same hash, salt = hash length, RFC 4055 §3.1). ``der`` is the
    DER of the AlgorithmIdentifier.
    """

    name: str
    oid: str
    family: str
    hash_name: str | None
    pss: bool = False
    der: bytes = field(default=b"", compare=False)

    def fits(self, key_family: str) -> bool:
        """True when a key of ``key_family`` can produce this algorithm."""
        return self.family == key_family

    @property
    def post_quantum(self) -> bool:
        """True for ML-DSA (FIPS 204): answered only to clients that ask for it while the CA has another signer."""
        return self.family in ML_DSA_OIDS

    def verify(self, public_key, signature: bytes, data: bytes) -> None:
        """Verify ``signature`` over ``data``; raises ``InvalidSignature`` (or TypeError for a wrong key)."""
        if self.hash_name is None:  # Ed25519, ML-DSA (empty context, RFC 9881 §3)
            public_key.verify(signature, data)
            return
        hash_algorithm = _HASHES[self.hash_name]()
        if self.family == EC:
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif self.pss:
            pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
            public_key.verify(signature, data, pss, hash_algorithm)
        else:
            public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)

    def sign_function(self, key) -> Callable[[bytes], bytes]:
        """Return ``data -> signature`` for ``key`` (a cryptography key or an HSM adapter).

        Raises :class:`SignerError` when the key cannot produce this algorithm.
        """
        if not self.fits(key_family(key)):
            raise SignerError(f"a {key_family(key)} key cannot sign with {self.name}")
        if self.hash_name is None:  # Ed25519, ML-DSA: the message itself, ML-DSA with the empty context
            return key.sign
        hash_algorithm = _HASHES[self.hash_name]()
        if self.family == EC:
            # The digest from hashlib, signed as prehashed: the same ECDSA signature, without the hash
            # object cryptography builds per call (~0.8 us of a P-256 signature's ~17 us; bench/README.md,
            # "Live signing"). The PKCS#11 EC adapter takes a prehashed digest too.
            ecdsa = ec.ECDSA(utils.Prehashed(hash_algorithm))
            digest = getattr(hashlib, self.hash_name)
            return lambda data: key.sign(digest(data).digest(), ecdsa)
        if self.pss:
            pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
            return lambda data: key.sign(data, pss, hash_algorithm)
        pkcs1 = padding.PKCS1v15()
        return lambda data: key.sign(data, pkcs1, hash_algorithm)


def _algorithm(name: str, asn1_name: str, family: str, hash_name: str | None, pss: bool = False) -> SignatureAlgorithm:
    if pss:
        parameters = {
            "hash_algorithm": {"algorithm": hash_name},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": hash_name}},
            "salt_length": _HASHES[hash_name].digest_size,
        }
        identifier = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": parameters})
    else:
        identifier = algos.SignedDigestAlgorithm({"algorithm": asn1_name})
    return SignatureAlgorithm(name, identifier["algorithm"].dotted, family, hash_name, pss, identifier.dump())


#: Every algorithm certstatus signs with, by configuration name.
ALGORITHMS: dict[str, SignatureAlgorithm] = {
    a.name: a
    for a in (
        _algorithm("rsa-sha256", "sha256_rsa", RSA, "sha256"),
        _algorithm("rsa-sha384", "sha384_rsa", RSA, "sha384"),
        _algorithm("rsa-sha512", "sha512_rsa", RSA, "sha512"),
        _algorithm("rsa-pss-sha256", "rsassa_pss", RSA, "sha256", pss=True),
        _algorithm("rsa-pss-sha384", "rsassa_pss", RSA, "sha384", pss=True),
        _algorithm("rsa-pss-sha512", "rsassa_pss", RSA, "sha512", pss=True),
        _algorithm("ecdsa-sha256", "sha256_ecdsa", EC, "sha256"),
        _algorithm("ecdsa-sha384", "sha384_ecdsa", EC, "sha384"),
        _algorithm("ecdsa-sha512", "sha512_ecdsa", EC, "sha512"),
        _algorithm("ed25519", "ed25519", ED25519, None),
        *(_algorithm(family, oid, family, None) for family, oid in ML_DSA_OIDS.items()),
    )
}

#: sigIdentifier OID -> the algorithm chosen for it. RSASSA-PSS has one OID for
#: every hash (the hash is in the parameters): a client naming it gets SHA-256.
BY_OID: dict[str, SignatureAlgorithm] = {}
for _alg in ALGORITHMS.values():
    BY_OID.setdefault(_alg.oid, _alg)

_EC_DEFAULTS = {"secp256r1": "ecdsa-sha256", "secp384r1": "ecdsa-sha384", "secp521r1": "ecdsa-sha512"}


def key_family(key) -> str:
    """Return ``"rsa"``, ``"ec"``, ``"ed25519"`` or ``"ml-dsa-44|65|87"`` for a private key (or HSM adapter).

    Raises :class:`SignerError` for any other key type.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        return RSA
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _EC_DEFAULTS:
            raise SignerError(f"ECDSA curve {key.curve.name} is not supported; use P-256 or P-384")
        return EC
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return ED25519
    for key_class, family in _ML_DSA_KEYS:
        if isinstance(key, key_class):
            return family
    raise SignerError(f"{type(key).__name__} keys cannot sign OCSP responses; use RSA, ECDSA, Ed25519 or ML-DSA")


def is_post_quantum_key(public_key) -> bool:
    """True for an ML-DSA public key (FIPS 204), e.g. of a responder certificate."""
    return isinstance(public_key, (mldsa.MLDSA44PublicKey, mldsa.MLDSA65PublicKey, mldsa.MLDSA87PublicKey))


def default_algorithm(key) -> SignatureAlgorithm:
    """The algorithm used when neither configuration nor client asks otherwise.

    RSA → sha256WithRSAEncryption; ECDSA → the hash matching the curve
    (P-256: SHA-256, P-384: SHA-384); Ed25519 → Ed25519; ML-DSA → its parameter set.
    """
    family = key_family(key)
    if family == RSA:
        return ALGORITHMS["rsa-sha256"]
    if family == EC:
        return ALGORITHMS[_EC_DEFAULTS[key.curve.name]]
    return ALGORITHMS[family]


def algorithm_named(name: str) -> SignatureAlgorithm:
    """Return the algorithm of a configuration name; ValueError names the choices."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a signature algorithm; use one of {', '.join(ALGORITHMS)}") from None
