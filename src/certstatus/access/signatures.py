"""Verify a signature given its AlgorithmIdentifier, with ``cryptography``.

Used for request signatures (RFC 6960 §4.1.2, over tbsRequest) and for the
responses of remote responders (RFC 6960 §4.2.1, over tbsResponseData).
``asn1crypto`` names the algorithm (and reads RSASSA-PSS parameters);
``cryptography`` does the verification. SHA-1 and MD5 signatures are refused.
ML-DSA-44/65/87 (FIPS 204, identifiers of RFC 9881, unknown to asn1crypto)
are recognised by their OID and verified with the empty context.
"""

from __future__ import annotations

import functools

from asn1crypto import algos
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, padding, rsa

from certstatus.signing.algorithms import ML_DSA_OIDS

#: id-ml-dsa-* OID -> its family name; family -> the public key class that verifies it.
_ML_DSA_BY_OID = {oid: family for family, oid in ML_DSA_OIDS.items()}
_ML_DSA_KEYS = dict(zip(ML_DSA_OIDS, (mldsa.MLDSA44PublicKey, mldsa.MLDSA65PublicKey, mldsa.MLDSA87PublicKey), strict=True))
_HASHES = {
    "sha224": hashes.SHA224, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
    "sha3_256": hashes.SHA3_256, "sha3_384": hashes.SHA3_384, "sha3_512": hashes.SHA3_512,
}  # fmt: skip


class SignatureRejected(ValueError):
    """The signature is wrong, or made with an algorithm that is not accepted; the text says which."""


@functools.lru_cache(maxsize=64)
def _algorithm(algorithm_der: bytes) -> tuple[str, str | None, padding.PSS | None]:
    """(signature family, hash name or None, PSS padding or None) of an AlgorithmIdentifier."""
    try:
        algorithm = algos.SignedDigestAlgorithm.load(algorithm_der)
        ml_dsa = _ML_DSA_BY_OID.get(algorithm["algorithm"].dotted)
        if ml_dsa is not None:
            if algorithm["parameters"].dump():  # RFC 9881 §2: parameters absent (not even NULL)
                raise ValueError(f"{ml_dsa} with parameters")
            return ml_dsa, None, None
        family = algorithm.signature_algo
        hash_name = None if family in ("ed25519", "ed448") else algorithm.hash_algo
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureRejected(f"unsupported signature algorithm ({exc})") from None
    if hash_name is not None and hash_name not in _HASHES:
        raise SignatureRejected(f"signature hash {hash_name} is not accepted (SHA-2 or SHA-3 required)")
    return family, hash_name, _pss(algorithm) if family == "rsassa_pss" else None


def verify_signature(public_key, algorithm_der: bytes, signature: bytes, data: bytes) -> None:
    """Check ``signature`` over ``data`` with ``public_key`` (a ``cryptography`` public key).

    ``algorithm_der`` is the DER AlgorithmIdentifier that came with the
    signature. Raises :class:`SignatureRejected` when the signature does not
    verify, the algorithm is unknown, weak (SHA-1, MD5) or does not fit the key.
    """
    family, hash_name, pss = _algorithm(algorithm_der)
    try:
        if family == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), _HASHES[hash_name]())
        elif family == "rsassa_pss" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, pss, _HASHES[hash_name]())
        elif family == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(_HASHES[hash_name]()))
        elif family == "ed25519" and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        elif family == "ed448" and isinstance(public_key, ed448.Ed448PublicKey):
            public_key.verify(signature, data)
        elif isinstance(public_key, _ML_DSA_KEYS.get(family, ())):
            public_key.verify(signature, data)
        else:
            raise SignatureRejected(f"a {family} signature does not fit a {type(public_key).__name__}")
    except InvalidSignature:
        raise SignatureRejected("the signature does not verify") from None


def _pss(algorithm: algos.SignedDigestAlgorithm) -> padding.PSS:
    params = algorithm["parameters"]
    mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
    if mgf_hash not in _HASHES:
        raise SignatureRejected(f"RSASSA-PSS mask hash {mgf_hash} is not accepted")
    return padding.PSS(mgf=padding.MGF1(_HASHES[mgf_hash]()), salt_length=params["salt_length"].native)
