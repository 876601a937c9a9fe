"""Signature algorithms: AlgorithmIdentifier bytes equal cryptography's, every algorithm verifies
(ML-DSA-44/65/87 included), and keys load or are refused with a clear message."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from certstatus.der import tlv
from certstatus.errors import SignerError
from certstatus.signing.algorithms import ALGORITHMS, BY_OID, default_algorithm
from certstatus.signing.keys import load_private_key
from certstatus.signing.signer import ResponseSigner
from tests.ocsp_reference import SingleAnswer, encode_response_data

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEYS = {
    "rsa": RSA_KEY, "ec": ec.generate_private_key(ec.SECP256R1()), "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "ml-dsa-44": mldsa.MLDSA44PrivateKey.generate(), "ml-dsa-65": mldsa.MLDSA65PrivateKey.generate(),
    "ml-dsa-87": mldsa.MLDSA87PrivateKey.generate(),
}  # fmt: skip
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _self_signed(key, hash_algorithm=None, rsa_padding=None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
    )  # fmt: skip
    return builder.sign(key, hash_algorithm, rsa_padding=rsa_padding)


def _cert_id(hash_name: str, serial: int) -> bytes:
    """A CertID DER with made-up issuer hashes (what is signed does not matter here)."""
    size = hashlib.new(hash_name).digest_size
    return asn1_ocsp.CertId({
        "hash_algorithm": {"algorithm": hash_name}, "issuer_name_hash": b"\x00" * size,
        "issuer_key_hash": b"\x01" * size, "serial_number": serial,
    }).dump()  # fmt: skip


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
    certificate = _self_signed(key, None if algorithm.hash_name is None else hashes.SHA256())
    signer = ResponseSigner(key, certificate, certificate, algorithm=algorithm)
    answer = SingleAnswer(_cert_id("sha1", 5), ocsp.OCSPCertStatus.GOOD, NOW, NOW + dt.timedelta(hours=1))
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


ML_DSA = ("ml-dsa-44", "ml-dsa-65", "ml-dsa-87")
#: FIPS 204 Table 2: signature sizes in bytes.
ML_DSA_SIGNATURE_BYTES = {"ml-dsa-44": 2420, "ml-dsa-65": 3309, "ml-dsa-87": 4627}


@pytest.mark.parametrize(("name", "last_arc"), [("ml-dsa-44", "11"), ("ml-dsa-65", "12"), ("ml-dsa-87", "13")])
def test_ml_dsa_identifiers_are_those_of_rfc_9881_without_parameters(name: str, last_arc: str) -> None:
    algorithm = ALGORITHMS[name]
    # SEQUENCE { OID 2.16.840.1.101.3.4.3.17|18|19 } and nothing else: parameters absent, not NULL.
    assert algorithm.der == bytes.fromhex("300b06096086480165030403" + last_arc)
    assert BY_OID[algorithm.oid] is algorithm and algorithm.post_quantum
    assert default_algorithm(KEYS[name]) is algorithm
    assert not any(ALGORITHMS[other].post_quantum for other in ("rsa-sha256", "ecdsa-sha256", "ed25519"))


@pytest.mark.parametrize("ca_key_type", ["ec", "rsa"])
@pytest.mark.parametrize("name", ML_DSA)
def test_ml_dsa_delegated_responder_of_a_classical_ca_signs_responses_cryptography_verifies(
    tmp_path, name: str, ca_key_type: str
) -> None:
    """The CA certifies the ML-DSA key with its own ECDSA/RSA signature; the response is checked by
    cryptography's OCSP loader and the responder certificate's own public key, not by our writer."""
    from certstatus.demo_pki import issue_cert, new_key

    ca_key = new_key(ca_key_type)
    ca = issue_cert(None, ca_key, ca_key.public_key(), common_name="classical CA", not_before=NOW,
                    not_after=NOW + dt.timedelta(days=9), ca=True)  # fmt: skip
    key = KEYS[name]
    delegated = issue_cert(ca, ca_key, key.public_key(), common_name="pq responder", not_before=NOW,
                           not_after=NOW + dt.timedelta(days=9), ocsp_signing=True)  # fmt: skip
    assert delegated.signature_algorithm_oid.dotted_string != ALGORITHMS[name].oid  # the CA's own algorithm
    signer = ResponseSigner(key, delegated, ca)
    answer = SingleAnswer(
        _cert_id("sha256", 7), ocsp.OCSPCertStatus.REVOKED, NOW, NOW + dt.timedelta(hours=1),
        revocation_time=NOW - dt.timedelta(days=1), reason=x509.ReasonFlags.key_compromise,
    )
    data = encode_response_data(responder_id=signer.responder_id, produced_at=NOW, answers=[answer])
    der = signer.sign(data)
    response = ocsp.load_der_ocsp_response(der)
    assert response.signature_algorithm_oid.dotted_string == ALGORITHMS[name].oid
    assert response.signature_hash_algorithm is None
    assert len(response.signature) == ML_DSA_SIGNATURE_BYTES[name]
    assert response.tbs_response_bytes == data
    [carried] = response.certificates
    assert carried == delegated
    carried.verify_directly_issued_by(ca)
    carried.public_key().verify(response.signature, response.tbs_response_bytes)  # raises InvalidSignature if wrong
    assert response.responder_key_hash == hashlib.sha1(key.public_key().public_bytes_raw()).digest()
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    print(f"{name} delegated responder of an {ca_key_type} CA: {len(der)} bytes "
          f"({len(der) - len(carried.public_bytes(serialization.Encoding.DER))} without its certificate)")


def test_a_tampered_ml_dsa_response_does_not_verify() -> None:
    key = KEYS["ml-dsa-65"]
    certificate = _self_signed(key)
    signer = ResponseSigner(key, certificate, certificate)
    data = b"0" * 64
    signature = signer.signature(data)
    ALGORITHMS["ml-dsa-65"].verify(key.public_key(), signature, data)
    with pytest.raises(InvalidSignature):
        ALGORITHMS["ml-dsa-65"].verify(key.public_key(), signature, data[:-1] + b"1")


def test_an_ml_dsa_key_signs_only_its_own_parameter_set() -> None:
    key = KEYS["ml-dsa-65"]
    certificate = _self_signed(key)
    with pytest.raises(SignerError, match="a ml-dsa-65 key cannot sign with ml-dsa-44"):
        ResponseSigner(key, certificate, certificate, algorithm=ALGORITHMS["ml-dsa-44"])
    with pytest.raises(SignerError, match="cannot sign with ecdsa-sha256"):
        ResponseSigner(key, certificate, certificate, algorithm=ALGORITHMS["ecdsa-sha256"])


@pytest.mark.parametrize("encoding", ["pem", "der", "encrypted-pem"])
@pytest.mark.parametrize("name", ML_DSA)
def test_ml_dsa_keys_load_from_pkcs8_files(tmp_path, name: str, encoding: str) -> None:
    key = KEYS[name]
    password = b"pq-passphrase" if encoding == "encrypted-pem" else None
    data = key.private_bytes(
        serialization.Encoding.DER if encoding == "der" else serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption(),
    )
    path = tmp_path / f"{name}.key"
    path.write_bytes(data)
    loaded = load_private_key(path, password).key
    assert loaded.public_key() == key.public_key()
    assert default_algorithm(loaded).name == name


@pytest.mark.parametrize("form", ["expanded", "both"])
def test_an_ml_dsa_key_not_in_the_seed_form_is_refused_with_the_fix(tmp_path, form: str) -> None:
    """cryptography reads the seed form only; OpenSSL 3.5 writes the both form by default."""
    seed = KEYS["ml-dsa-65"].private_bytes_raw()
    expanded = bytes(4032)  # FIPS 204: an ML-DSA-65 private key is 4032 bytes
    inner = tlv(0x04, expanded) if form == "expanded" else tlv(0x30, tlv(0x04, seed) + tlv(0x04, expanded))
    der = tlv(0x30, bytes.fromhex("020100") + ALGORITHMS["ml-dsa-65"].der + tlv(0x04, inner))
    path = tmp_path / "openssl-3.5.key"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(der) + b"-----END PRIVATE KEY-----\n")
    with pytest.raises(SignerError, match=r"openssl-3\.5\.key: it is an ML-DSA key in the expanded or both form.*seed-only"):
        load_private_key(path, None)



class _RecordingEcKey(ec.EllipticCurvePrivateKey):
    """An EC key (as the PKCS#11 adapter is one) that records what it is asked to sign."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key
        self.given: list[tuple[bytes, object]] = []

    def sign(self, data, signature_algorithm):
        self.given.append((data, signature_algorithm.algorithm))
        return self.key.sign(data, signature_algorithm)

    curve = property(lambda self: self.key.curve)
    key_size = property(lambda self: self.key.key_size)

    def public_key(self):
        return self.key.public_key()

    def exchange(self, algorithm, peer_public_key):  # pragma: no cover - not used
        raise NotImplementedError

    def private_numbers(self):  # pragma: no cover - not used
        raise NotImplementedError

    def private_bytes(self, encoding, format, encryption_algorithm):  # pragma: no cover - not used
        raise NotImplementedError

    def __copy__(self):  # pragma: no cover - not used
        return self

    def __deepcopy__(self, memo):  # pragma: no cover - not used
        return self


@pytest.mark.parametrize("name", ["ecdsa-sha256", "ecdsa-sha384", "ecdsa-sha512"])
def test_an_ecdsa_signer_signs_the_hashlib_digest_prehashed_and_the_signature_verifies_over_the_data(name: str) -> None:
    """cryptography builds a hash object per signature when it hashes the data itself; the digest from
    hashlib, signed as prehashed, is the same ECDSA signature without it."""
    from cryptography.hazmat.primitives.asymmetric import utils

    hash_name = name.split("-")[1]
    key = _RecordingEcKey(ec.generate_private_key(ec.SECP384R1()))
    data = b"ResponseData DER" * 20
    signature = ALGORITHMS[name].sign_function(key)(data)
    ((digest, given),) = key.given
    assert isinstance(given, utils.Prehashed) and given.digest_size == hashlib.new(hash_name).digest_size
    assert digest == hashlib.new(hash_name, data).digest()
    key.public_key().verify(signature, data, ec.ECDSA(getattr(hashes, hash_name.upper())()))
