"""Signature algorithms: AlgorithmIdentifier bytes equal cryptography's, every algorithm verifies."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from certstatus.errors import SignerError
from certstatus.protocol.response import SingleAnswer, encode_response_data
from certstatus.signing.algorithms import ALGORITHMS, BY_OID, default_algorithm
from certstatus.signing.signer import ResponseSigner

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEYS = {"rsa": RSA_KEY, "ec": ec.generate_private_key(ec.SECP256R1()), "ed25519": ed25519.Ed25519PrivateKey.generate()}
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _self_signed(key, hash_algorithm=None, rsa_padding=None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
    )  # fmt: skip
    return builder.sign(key, hash_algorithm, rsa_padding=rsa_padding)


def _cryptography_identifier(algorithm) -> bytes:
    """The signatureAlgorithm cryptography itself writes for ``algorithm`` (in a certificate)."""
    key = KEYS[algorithm.family]
    hash_algorithm = None if algorithm.hash_name is None else getattr(hashes, algorithm.hash_name.upper())()
    rsa_padding = None
    if algorithm.pss:
        rsa_padding = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.DIGEST_LENGTH)
    der = _self_signed(key, hash_algorithm, rsa_padding).public_bytes(serialization.Encoding.DER)
    return asn1_x509.Certificate.load(der)["signature_algorithm"].dump()


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_algorithm_identifier_is_byte_for_byte_what_cryptography_writes(name: str) -> None:
    algorithm = ALGORITHMS[name]
    assert algorithm.der == _cryptography_identifier(algorithm)


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_response_signed_with_each_algorithm_verifies_with_cryptography(name: str) -> None:
    algorithm = ALGORITHMS[name]
    key = KEYS[algorithm.family]
    certificate = _self_signed(key, None if algorithm.family == "ed25519" else hashes.SHA256())
    signer = ResponseSigner(key, certificate, certificate, algorithm=algorithm)
    answer = SingleAnswer(
        cert_id_der=asn1_ocsp.CertId({
            "hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": b"\x00" * 20,
            "issuer_key_hash": b"\x01" * 20, "serial_number": 5,
        }).dump(),
        status=ocsp.OCSPCertStatus.GOOD, this_update=NOW, next_update=NOW + dt.timedelta(hours=1),
    )  # fmt: skip
    data = encode_response_data(responder_id=signer.responder_id, produced_at=NOW, answers=[answer])
    response = ocsp.load_der_ocsp_response(signer.sign(data))
    assert response.signature_algorithm_oid.dotted_string == algorithm.oid
    assert response.tbs_response_bytes == data
    algorithm.verify(key.public_key(), response.signature, data)


def test_default_algorithm_follows_the_key() -> None:
    assert default_algorithm(RSA_KEY).name == "rsa-sha256"
    assert default_algorithm(KEYS["ec"]).name == "ecdsa-sha256"
    assert default_algorithm(ec.generate_private_key(ec.SECP384R1())).name == "ecdsa-sha384"
    assert default_algorithm(KEYS["ed25519"]).name == "ed25519"


def test_pss_oid_from_a_client_means_pss_with_sha256() -> None:
    assert BY_OID["1.2.840.113549.1.1.10"].name == "rsa-pss-sha256"


def test_an_ec_key_cannot_be_given_an_rsa_algorithm() -> None:
    key = KEYS["ec"]
    certificate = _self_signed(key, hashes.SHA256())
    with pytest.raises(SignerError, match="cannot sign with rsa-sha256"):
        ResponseSigner(key, certificate, certificate, algorithm=ALGORITHMS["rsa-sha256"])
