"""The issuer hashes a CertID (RFC 6960 §4.1.1, :class:`certstatus.model.CertID`) is matched on.

A CertID names a certificate by ``hashAlgorithm``, ``issuerNameHash`` (hash of
the DER of the issuer's subject Name), ``issuerKeyHash`` (hash of the value of
the issuer's subjectPublicKey BIT STRING, without tag, length and unused-bits
octet) and ``serialNumber``. Clients use SHA-1 (RFC 5019) or SHA-256 (RFC 9919
§3.1.1); SHA-384 and SHA-512 are accepted as well.
"""

from __future__ import annotations

import hashlib

from asn1crypto import parser
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certstatus.model import HASH_ALGORITHM_OIDS


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
    key encoded once (the issuer registry holds all four for every CA it serves).

    The name is read from a copy of ``issuer`` dropped at once: cryptography keeps a certificate's parsed
    subject for the certificate's life (~0.9 KB per CA in every worker), and the request path never needs it.
    """
    name = x509.load_der_x509_certificate(issuer.public_bytes(serialization.Encoding.DER)).subject.public_bytes()
    key = public_key_bits(issuer)
    return {alg: (hashlib.new(alg, name).digest(), hashlib.new(alg, key).digest()) for alg in HASH_ALGORITHM_OIDS}
