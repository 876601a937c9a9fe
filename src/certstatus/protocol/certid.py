"""CertID (RFC 6960 §4.1.1) and the issuer hashes it is matched on.

A CertID names a certificate by ``hashAlgorithm``, ``issuerNameHash`` (hash of
the DER of the issuer's subject Name), ``issuerKeyHash`` (hash of the value of
the issuer's subjectPublicKey BIT STRING, without tag, length and unused-bits
octet) and ``serialNumber``. Clients use SHA-1 (RFC 5019) or SHA-256 (RFC 9919
§3.1.1); SHA-384 and SHA-512 are accepted as well.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from asn1crypto import parser
from cryptography import x509
from cryptography.hazmat.primitives import serialization

#: Hash algorithms a CertID may use: name -> dotted OID.
HASH_ALGORITHM_OIDS: dict[str, str] = {
    "sha1": "1.3.14.3.2.26",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}
#: Dotted OID -> name, the reverse of :data:`HASH_ALGORITHM_OIDS`.
HASH_ALGORITHM_NAMES: dict[str, str] = {v: k for k, v in HASH_ALGORITHM_OIDS.items()}


@dataclass(frozen=True, slots=True)
class CertID:
    """One CertID as received (RFC 6960 §4.1.1).

    ``hash_algorithm`` is a key of :data:`HASH_ALGORITHM_OIDS`; ``der`` is the
    exact encoding received, echoed unchanged in the SingleResponse so that
    clients matching on bytes (parameters NULL or absent) find their CertID.
    """

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int
    der: bytes = b""

    @property
    def issuer_key(self) -> tuple[str, bytes, bytes]:
        """The key used by the issuer registry: (hash algorithm, name hash, key hash)."""
        return (self.hash_algorithm, self.issuer_name_hash, self.issuer_key_hash)


def public_key_bits(certificate: x509.Certificate) -> bytes:
    """Return the value of the subjectPublicKey BIT STRING of ``certificate`` (bytes).

    This is what issuerKeyHash and responderID byKey (RFC 6960 §4.2.1) hash.
    """
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }, read
    # without a per-algorithm spec (asn1crypto's PublicKeyInfo refuses algorithms it does not know: ML-DSA).
    body = parser.parse(spki, strict=True)[4]
    return parser.parse(body[parser.peek(body) :], strict=True)[4][1:]


def issuer_hashes(issuer: x509.Certificate, hash_algorithm: str) -> tuple[bytes, bytes]:
    """Return (issuerNameHash, issuerKeyHash) of ``issuer`` for ``hash_algorithm``.

    Raises ``ValueError`` for a hash algorithm not in :data:`HASH_ALGORITHM_OIDS`.
    """
    if hash_algorithm not in HASH_ALGORITHM_OIDS:
        raise ValueError(f"unsupported CertID hash algorithm {hash_algorithm!r}")
    name_hash = hashlib.new(hash_algorithm, issuer.subject.public_bytes()).digest()
    key_hash = hashlib.new(hash_algorithm, public_key_bits(issuer)).digest()
    return name_hash, key_hash


def all_issuer_hashes(issuer: x509.Certificate) -> dict[str, tuple[bytes, bytes]]:
    """:func:`issuer_hashes` of ``issuer`` for every algorithm of :data:`HASH_ALGORITHM_OIDS`, the name and
    key encoded once (the issuer registry holds all four for every CA it serves)."""
    name, key = issuer.subject.public_bytes(), public_key_bits(issuer)
    return {alg: (hashlib.new(alg, name).digest(), hashlib.new(alg, key).digest()) for alg in HASH_ALGORITHM_OIDS}
