"""encode_response_data + ResponseSigner, checked by `cryptography` and by `openssl ocsp`.

`cryptography`'s OCSPResponseBuilder is the reference: for one SingleResponse
our ResponseData must be the very bytes it writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus

from certstatus.clock import UTC
from certstatus.demo_pki import DemoPki, issue_cert
from certstatus.errors import SignerError
from certstatus.protocol import extensions
from certstatus.protocol.certid import issuer_hashes
from certstatus.protocol.request import parse_request
from certstatus.protocol.response import EXTENDED_REVOKED_TIME, UNSUCCESSFUL
from certstatus.signing.keys import load_private_key
from certstatus.signing.signer import ResponseSigner
from tests.ocsp_reference import SingleAnswer, encode_response_data

HOUR = dt.timedelta(hours=1)
FIXED_NOW = dt.datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)  # for tests no clock-checking verifier sees
HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}


@dataclass(frozen=True)
class Pki:
    """The loaded certificates and keys of a demo PKI."""

    files: DemoPki
    root: x509.Certificate
    ca: x509.Certificate
    ca_key: object
    ocsp: x509.Certificate
    ocsp_key: object

    def leaf(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.files.leaves[name].read_bytes())

    def delegated(self, **options) -> ResponseSigner:
        return ResponseSigner(self.ocsp_key, self.ocsp, self.ca, **options)

    def ca_signed(self, **options) -> ResponseSigner:
        return ResponseSigner(self.ca_key, self.ca, self.ca, **options)


def _load(pki: DemoPki) -> Pki:
    cert = lambda p: x509.load_pem_x509_certificate(p.read_bytes())  # noqa: E731
    return Pki(
        pki,
        cert(pki.root_cert),
        cert(pki.ca_cert),
        load_private_key(pki.ca_key, None).key,
        cert(pki.ocsp_cert),
        load_private_key(pki.ocsp_key, None).key,
    )


@pytest.fixture(scope="module")
def ec_pki(demo_pki: DemoPki) -> Pki:
    return _load(demo_pki)


@pytest.fixture(scope="module")
def rsa_pki(demo_pki_rsa: DemoPki) -> Pki:
    return _load(demo_pki_rsa)


def _cert_id(issuer: x509.Certificate, serial: int, alg: str = "sha256") -> bytes:
    name_hash, key_hash = issuer_hashes(issuer, alg)
    return asn1_ocsp.CertId(
        {
            "hash_algorithm": {"algorithm": alg},
            "issuer_name_hash": name_hash,
            "issuer_key_hash": key_hash,
            "serial_number": serial,
        }
    ).dump()


def _sign(signer: ResponseSigner, answers: list[SingleAnswer], *, produced_at=FIXED_NOW, **options) -> x509_ocsp.OCSPResponse:
    der = signer.sign(encode_response_data(responder_id=signer.responder_id, produced_at=produced_at, answers=answers, **options))
    return x509_ocsp.load_der_ocsp_response(der)


def _good(cert_id: bytes, now: dt.datetime = FIXED_NOW) -> SingleAnswer:
    return SingleAnswer(cert_id, OCSPCertStatus.GOOD, now, now + HOUR)


def _ski(cert: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey bits, as cryptography computes a key identifier (RFC 5280 §4.2.1.2)."""
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _verify(cert: x509.Certificate, response: x509_ocsp.OCSPResponse) -> None:
    key = cert.public_key()
    data, signature = response.tbs_response_bytes, response.signature
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), response.signature_hash_algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(response.signature_hash_algorithm))
    else:
        assert isinstance(key, ed25519.Ed25519PublicKey)
        key.verify(signature, data)


# --- unsuccessful responses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "value"),
    [
        (OCSPResponseStatus.MALFORMED_REQUEST, 1),
        (OCSPResponseStatus.INTERNAL_ERROR, 2),
        (OCSPResponseStatus.TRY_LATER, 3),
        (OCSPResponseStatus.SIG_REQUIRED, 5),
        (OCSPResponseStatus.UNAUTHORIZED, 6),
    ],
)
def test_unsuccessful_response_is_a_bare_response_status(status: OCSPResponseStatus, value: int) -> None:
    der = UNSUCCESSFUL[status]

    assert der == bytes([0x30, 0x03, 0x0A, 0x01, value])
    assert x509_ocsp.load_der_ocsp_response(der).response_status is status


def test_named_unsuccessful_constants_match_the_table() -> None:
    assert set(UNSUCCESSFUL) == set(OCSPResponseStatus) - {OCSPResponseStatus.SUCCESSFUL}
    assert UNSUCCESSFUL[OCSPResponseStatus.MALFORMED_REQUEST] == bytes.fromhex("3003 0a01 01")
    assert UNSUCCESSFUL[OCSPResponseStatus.INTERNAL_ERROR] == bytes.fromhex("3003 0a01 02")
    assert UNSUCCESSFUL[OCSPResponseStatus.TRY_LATER] == bytes.fromhex("3003 0a01 03")
    assert UNSUCCESSFUL[OCSPResponseStatus.SIG_REQUIRED] == bytes.fromhex("3003 0a01 05")
    assert UNSUCCESSFUL[OCSPResponseStatus.UNAUTHORIZED] == bytes.fromhex("3003 0a01 06")


# --- good / revoked / unknown --------------------------------------------------------------------


def test_good_response_from_delegated_signer_carries_its_certificate_and_key_hash(ec_pki: Pki) -> None:
    leaf = ec_pki.leaf("good")
    cert_id = _cert_id(ec_pki.ca, leaf.serial_number)

    response = _sign(ec_pki.delegated(), [_good(cert_id)])

    assert response.response_status is OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is OCSPCertStatus.GOOD
    assert response.serial_number == leaf.serial_number
    assert isinstance(response.hash_algorithm, hashes.SHA256)
    assert (response.issuer_name_hash, response.issuer_key_hash) == issuer_hashes(ec_pki.ca, "sha256")
    assert response.this_update_utc == FIXED_NOW
    assert response.next_update_utc == FIXED_NOW + HOUR
    assert response.produced_at_utc == FIXED_NOW
    assert response.responder_key_hash == _ski(ec_pki.ocsp) == hashlib.sha1(_spk_bits(ec_pki.ocsp)).digest()
    assert response.responder_name is None
    assert response.certificates == [ec_pki.ocsp]
    assert response.revocation_time_utc is None and response.revocation_reason is None
    assert list(response.extensions) == []
    assert isinstance(response.signature_hash_algorithm, hashes.SHA256)
    assert response.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    _verify(ec_pki.ocsp, response)


def _spk_bits(cert: x509.Certificate) -> bytes:
    """subjectPublicKey BIT STRING value, read from the SPKI DER by hand (uncompressed EC point)."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    point = cert.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert spki.endswith(b"\x00" + point)
    return point


def test_ca_signed_response_carries_no_certificate(ec_pki: Pki) -> None:
    cert_id = _cert_id(ec_pki.ca, ec_pki.leaf("good").serial_number)

    response = _sign(ec_pki.ca_signed(), [_good(cert_id)])

    assert response.certificates == []
    assert response.responder_key_hash == _ski(ec_pki.ca)
    _verify(ec_pki.ca, response)
    with pytest.raises(InvalidSignature):
        _verify(ec_pki.ocsp, response)


def test_responder_id_by_name_is_the_signer_subject(ec_pki: Pki) -> None:
    cert_id = _cert_id(ec_pki.ca, 5)

    delegated = _sign(ec_pki.delegated(responder_id="name"), [_good(cert_id)])
    ca_signed = _sign(ec_pki.ca_signed(responder_id="name"), [_good(cert_id)])

    assert (delegated.responder_name, delegated.responder_key_hash) == (ec_pki.ocsp.subject, None)
    assert (ca_signed.responder_name, ca_signed.responder_key_hash) == (ec_pki.ca.subject, None)


def test_responder_id_must_be_key_or_name(ec_pki: Pki) -> None:
    with pytest.raises(ValueError, match="responder_id"):
        ec_pki.delegated(responder_id="hash")


@pytest.mark.parametrize("reason", list(x509.ReasonFlags))
def test_revoked_response_reports_reason_and_revocation_time(ec_pki: Pki, reason: x509.ReasonFlags) -> None:
    revoked_at = FIXED_NOW - 5 * HOUR
    answer = SingleAnswer(_cert_id(ec_pki.ca, 1234), OCSPCertStatus.REVOKED, FIXED_NOW, FIXED_NOW + HOUR, revoked_at, reason)

    response = _sign(ec_pki.delegated(), [answer])

    assert response.certificate_status is OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == revoked_at
    assert response.revocation_reason is reason
    assert list(response.single_extensions) == []


def test_revoked_without_reason_has_no_revocation_reason(ec_pki: Pki) -> None:
    answer = SingleAnswer(_cert_id(ec_pki.ca, 7), OCSPCertStatus.REVOKED, FIXED_NOW, FIXED_NOW + HOUR, FIXED_NOW - HOUR)

    response = _sign(ec_pki.delegated(), [answer])

    assert (response.certificate_status, response.revocation_reason) == (OCSPCertStatus.REVOKED, None)
    assert response.revocation_time_utc == FIXED_NOW - HOUR
    revoked_info = asn1_ocsp.ResponseData.load(response.tbs_response_bytes)["responses"][0]["cert_status"].chosen
    assert revoked_info["revocation_reason"].native is None


def test_invalidity_date_is_a_single_extension_of_a_revoked_answer(ec_pki: Pki) -> None:
    invalid_since = FIXED_NOW - 30 * HOUR
    answer = SingleAnswer(
        _cert_id(ec_pki.ca, 8), OCSPCertStatus.REVOKED, FIXED_NOW, FIXED_NOW + HOUR,
        FIXED_NOW - 2 * HOUR, x509.ReasonFlags.key_compromise, invalid_since,
    )  # fmt: skip

    response = _sign(ec_pki.delegated(), [answer])

    extension = response.single_extensions.get_extension_for_class(x509.InvalidityDate)
    assert extension.critical is False
    assert extension.value.invalidity_date_utc == invalid_since


def test_invalidity_date_is_left_out_of_a_good_answer(ec_pki: Pki) -> None:
    answer = SingleAnswer(_cert_id(ec_pki.ca, 8), OCSPCertStatus.GOOD, FIXED_NOW, FIXED_NOW + HOUR, invalidity_date=FIXED_NOW)
    assert list(_sign(ec_pki.delegated(), [answer]).single_extensions) == []


def test_unknown_response(ec_pki: Pki) -> None:
    answer = SingleAnswer(_cert_id(ec_pki.ca, 99), OCSPCertStatus.UNKNOWN, FIXED_NOW, FIXED_NOW + HOUR)

    response = _sign(ec_pki.delegated(), [answer])

    assert response.certificate_status is OCSPCertStatus.UNKNOWN
    assert response.revocation_time_utc is None


def test_response_without_next_update_omits_it(ec_pki: Pki) -> None:
    answer = SingleAnswer(_cert_id(ec_pki.ca, 99), OCSPCertStatus.GOOD, FIXED_NOW, None)
    assert _sign(ec_pki.delegated(), [answer]).next_update_utc is None


def test_sub_second_parts_are_dropped_and_times_converted_to_utc(ec_pki: Pki) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    this_update = (FIXED_NOW + dt.timedelta(microseconds=987654)).astimezone(plus_two)
    answer = SingleAnswer(
        _cert_id(ec_pki.ca, 3), OCSPCertStatus.REVOKED, this_update, this_update + HOUR,
        this_update - HOUR, x509.ReasonFlags.superseded,
    )  # fmt: skip

    response = _sign(ec_pki.delegated(), [answer], produced_at=this_update)

    assert response.this_update_utc == response.produced_at_utc == FIXED_NOW
    assert response.next_update_utc == FIXED_NOW + HOUR
    assert response.revocation_time_utc == FIXED_NOW - HOUR


def test_several_single_responses_keep_order_status_and_cert_id_bytes(ec_pki: Pki) -> None:
    statuses = [OCSPCertStatus.GOOD, OCSPCertStatus.REVOKED, OCSPCertStatus.UNKNOWN, OCSPCertStatus.GOOD]
    cert_ids = [_cert_id(ec_pki.ca, 100 + i, alg) for i, alg in enumerate(["sha1", "sha256", "sha1", "sha256"])]
    answers = [
        SingleAnswer(cid, status, FIXED_NOW, FIXED_NOW + HOUR, FIXED_NOW - HOUR if status is OCSPCertStatus.REVOKED else None)
        for cid, status in zip(cert_ids, statuses, strict=True)
    ]

    response = _sign(ec_pki.delegated(), answers)

    singles = list(response.responses)
    assert [s.certificate_status for s in singles] == statuses
    assert [s.serial_number for s in singles] == [100, 101, 102, 103]
    assert [type(s.hash_algorithm) for s in singles] == [hashes.SHA1, hashes.SHA256, hashes.SHA1, hashes.SHA256]
    parsed = asn1_ocsp.ResponseData.load(response.tbs_response_bytes)["responses"]
    assert [single["cert_id"].dump() for single in parsed] == cert_ids
    _verify(ec_pki.ocsp, response)


def test_cert_id_without_null_parameters_is_echoed_unchanged(ec_pki: Pki) -> None:
    with_null = _cert_id(ec_pki.ca, 42, "sha256")
    without_null = with_null.replace(b"\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00",
                                     b"\x30\x0b\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01")  # fmt: skip
    without_null = bytes([0x30, len(without_null) - 2]) + without_null[2:]
    assert len(without_null) == len(with_null) - 2

    response = _sign(ec_pki.delegated(), [_good(without_null)])

    assert asn1_ocsp.ResponseData.load(response.tbs_response_bytes)["responses"][0]["cert_id"].dump() == without_null


def test_empty_answers_and_revoked_without_time_and_naive_times_are_refused(ec_pki: Pki) -> None:
    signer = ec_pki.delegated()
    cert_id = _cert_id(ec_pki.ca, 1)
    with pytest.raises(ValueError, match="at least one"):
        encode_response_data(responder_id=signer.responder_id, produced_at=FIXED_NOW, answers=[])
    with pytest.raises(ValueError, match="revocation_time"):
        encode_response_data(
            responder_id=signer.responder_id,
            produced_at=FIXED_NOW,
            answers=[SingleAnswer(cert_id, OCSPCertStatus.REVOKED, FIXED_NOW, None)],
        )
    with pytest.raises(ValueError, match="aware"):
        encode_response_data(
            responder_id=signer.responder_id,
            produced_at=FIXED_NOW.replace(tzinfo=None),
            answers=[_good(cert_id)],
        )


# --- extensions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("nonce", [b"\x01", b"\xaa" * 16, bytes(range(128))])
def test_nonce_extension_echoes_the_request_nonce(ec_pki: Pki, nonce: bytes) -> None:
    request_der = (
        x509_ocsp.OCSPRequestBuilder()
        .add_certificate(ec_pki.leaf("good"), ec_pki.ca, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    query = parse_request(request_der)

    response = _sign(ec_pki.delegated(), [_good(query.cert_ids[0].der)], nonce=query.nonce)

    extension = response.extensions.get_extension_for_class(x509.OCSPNonce)
    assert extension.value.nonce == nonce
    assert extension.critical is False
    request_ext = x509_ocsp.load_der_ocsp_request(request_der).extensions.get_extension_for_class(x509.OCSPNonce)
    assert extension.value == request_ext.value


def test_nonce_bytes_are_echoed_as_received_even_without_inner_octet_string(ec_pki: Pki) -> None:
    raw = b"\x99" * 16  # a legacy client's extnValue content
    response = _sign(ec_pki.delegated(), [_good(_cert_id(ec_pki.ca, 1))], nonce=raw)
    # Extension { extnID id-pkix-ocsp-nonce, extnValue OCTET STRING { the 16 octets as received } }
    nonce_oid = bytes.fromhex("06092b0601050507300102")
    expected = b"\x30\x1d" + nonce_oid + b"\x04\x10" + raw
    assert response.tbs_response_bytes.endswith(b"\xa1\x21\x30\x1f" + expected)


def test_extended_revoke_extension_marks_an_extended_revoked_answer(ec_pki: Pki) -> None:
    answer = SingleAnswer(
        _cert_id(ec_pki.ca, 0xDEAD), OCSPCertStatus.REVOKED, FIXED_NOW, FIXED_NOW + HOUR,
        EXTENDED_REVOKED_TIME, x509.ReasonFlags.certificate_hold,
    )  # fmt: skip

    response = _sign(ec_pki.delegated(), [answer], extended_revoke=True, nonce=b"\x04\x02ab")

    assert response.revocation_time_utc == dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert response.revocation_reason is x509.ReasonFlags.certificate_hold
    by_oid = {ext.oid.dotted_string: ext for ext in response.extensions}
    assert set(by_oid) == {extensions.NONCE, extensions.EXTENDED_REVOKE}
    assert by_oid[extensions.EXTENDED_REVOKE].value.value == b"\x05\x00"  # NULL
    assert by_oid[extensions.EXTENDED_REVOKE].critical is False


# --- cryptography's OCSPResponseBuilder is the reference -----------------------------------------------


@pytest.mark.parametrize("alg", ["sha1", "sha256"])
@pytest.mark.parametrize("status", list(OCSPCertStatus))
@pytest.mark.parametrize("with_nonce", [False, True], ids=["no-nonce", "nonce"])
@pytest.mark.parametrize("delegated", [True, False], ids=["delegated", "ca-signed"])
def test_response_data_equals_cryptography_builder_output(ec_pki: Pki, alg: str, status: OCSPCertStatus, with_nonce: bool, delegated: bool) -> None:
    leaf = ec_pki.leaf("revoked-keycompromise")
    signer_cert, signer_key = (ec_pki.ocsp, ec_pki.ocsp_key) if delegated else (ec_pki.ca, ec_pki.ca_key)
    revoked_at = FIXED_NOW - 3 * HOUR
    revoked = status is OCSPCertStatus.REVOKED
    builder = (
        x509_ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf, issuer=ec_pki.ca, algorithm=HASHES[alg](), cert_status=status,
            this_update=FIXED_NOW, next_update=FIXED_NOW + HOUR,
            revocation_time=revoked_at if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(x509_ocsp.OCSPResponderEncoding.HASH, signer_cert)
    )  # fmt: skip
    if delegated:
        builder = builder.certificates([signer_cert])
    nonce = b"\x5a" * 20
    if with_nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    reference = builder.sign(signer_key, hashes.SHA256())
    request_der = (
        x509_ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, ec_pki.ca, HASHES[alg]())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    query = parse_request(request_der)
    answer = SingleAnswer(
        query.cert_ids[0].der, status, FIXED_NOW, FIXED_NOW + HOUR,
        revoked_at if revoked else None, x509.ReasonFlags.key_compromise if revoked else None,
    )  # fmt: skip
    signer = ResponseSigner(signer_key, signer_cert, ec_pki.ca)

    ours = _sign(signer, [answer], produced_at=reference.produced_at_utc, nonce=query.nonce if with_nonce else None)

    assert ours.tbs_response_bytes == reference.tbs_response_bytes
    assert ours.certificates == reference.certificates
    assert ours.signature_algorithm_oid == reference.signature_algorithm_oid
    for field in ("certificate_status", "serial_number", "issuer_name_hash", "issuer_key_hash", "this_update_utc",
                  "next_update_utc", "revocation_time_utc", "revocation_reason", "responder_key_hash"):  # fmt: skip
        assert getattr(ours, field) == getattr(reference, field), field
    assert list(ours.extensions) == list(reference.extensions)
    _verify(signer_cert, ours)


def test_signature_algorithm_identifier_equals_cryptography_for_rsa_and_ecdsa(ec_pki: Pki, rsa_pki: Pki) -> None:
    for pki in (ec_pki, rsa_pki):
        reference = (
            x509_ocsp.OCSPResponseBuilder()
            .add_response(
                cert=pki.leaf("good"), issuer=pki.ca, algorithm=hashes.SHA1(), cert_status=OCSPCertStatus.GOOD,
                this_update=FIXED_NOW, next_update=FIXED_NOW + HOUR, revocation_time=None, revocation_reason=None,
            )
            .responder_id(x509_ocsp.OCSPResponderEncoding.HASH, pki.ocsp)
            .sign(pki.ocsp_key, hashes.SHA256())
        )  # fmt: skip
        expected = asn1_ocsp.OCSPResponse.load(reference.public_bytes(serialization.Encoding.DER))
        assert pki.delegated().signature_algorithm_der == expected.basic_ocsp_response["signature_algorithm"].dump()


# --- key types ---------------------------------------------------------------------------------


@pytest.mark.parametrize("delegated", [True, False], ids=["delegated", "ca-signed"])
def test_rsa_signed_response_verifies(rsa_pki: Pki, delegated: bool) -> None:
    signer = rsa_pki.delegated() if delegated else rsa_pki.ca_signed()
    cert_id = _cert_id(rsa_pki.ca, rsa_pki.leaf("good").serial_number, "sha1")

    response = _sign(signer, [_good(cert_id)])

    assert response.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.RSA_WITH_SHA256
    assert response.responder_key_hash == _ski(signer.certificate)
    assert response.certificates == ([rsa_pki.ocsp] if delegated else [])
    _verify(signer.certificate, response)


def _own_ca(pki: Pki, key, name: str) -> x509.Certificate:
    start = FIXED_NOW.replace(year=2020)
    root_key = load_private_key(pki.files.root_key, None).key
    return issue_cert(pki.root, root_key, key.public_key(), common_name=name, ca=True,
                      not_before=start, not_after=start + dt.timedelta(days=3650 * 2))  # fmt: skip


@pytest.fixture(scope="module")
def ed25519_ca(ec_pki: Pki) -> tuple[ed25519.Ed25519PrivateKey, x509.Certificate]:
    key = ed25519.Ed25519PrivateKey.generate()
    return key, _own_ca(ec_pki, key, "certstatus Ed25519 CA")


def test_ed25519_ca_signed_response_verifies(ed25519_ca) -> None:
    key, ca = ed25519_ca
    signer = ResponseSigner(key, ca, ca)

    response = _sign(signer, [_good(_cert_id(ca, 77))])

    assert response.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ED25519
    assert signer.signature_algorithm_der == bytes.fromhex("300506032b6570")  # no parameters (RFC 8410)
    assert response.signature_hash_algorithm is None
    assert response.certificates == []
    assert response.responder_key_hash == _ski(ca)
    _verify(ca, response)


def test_p384_key_signs_with_ecdsa_sha384(ec_pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    ca = _own_ca(ec_pki, key, "certstatus P-384 CA")

    response = _sign(ResponseSigner(key, ca, ca), [_good(_cert_id(ca, 1))])

    assert response.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ECDSA_WITH_SHA384
    _verify(ca, response)


def test_unsupported_curve_is_refused(ec_pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    ca = _own_ca(ec_pki, key, "secp256k1 CA")
    with pytest.raises(SignerError, match="secp256k1"):
        ResponseSigner(key, ca, ca)


def test_signer_not_after_is_the_responder_certificate_not_after(ec_pki: Pki) -> None:
    assert ec_pki.delegated().not_after == ec_pki.ocsp.not_valid_after_utc
    assert ec_pki.delegated().is_delegated and not ec_pki.ca_signed().is_delegated


# --- openssl ocsp verifies what we sign ----------------------------------------------------------


def _openssl_check(tmp_path: Path, pki: Pki, signer: ResponseSigner, *, leaf: str | Path, status: OCSPCertStatus,
                   ca_pem: Path | None = None, tamper: bool = False, wrong_nonce: bool = False) -> subprocess.CompletedProcess:  # fmt: skip
    """Sign an answer to a real `openssl ocsp` request and hand both to `openssl ocsp` to verify."""
    ca_pem = ca_pem or pki.files.ca_cert
    leaf_pem = leaf if isinstance(leaf, Path) else pki.files.leaves[leaf]
    request_path, response_path = tmp_path / "req.der", tmp_path / "resp.der"
    subprocess.run(
        ["openssl", "ocsp", "-sha256", "-issuer", str(ca_pem), "-cert", str(leaf_pem), "-reqout", str(request_path)],
        check=True, capture_output=True,
    )  # fmt: skip
    query = parse_request(request_path.read_bytes())
    now = dt.datetime.now(UTC)
    revoked = status is OCSPCertStatus.REVOKED
    answer = SingleAnswer(
        query.cert_ids[0].der, status, now - dt.timedelta(minutes=1), now + HOUR,
        now - 2 * HOUR if revoked else None, x509.ReasonFlags.key_compromise if revoked else None,
    )  # fmt: skip
    nonce = b"\x04\x10" + b"\x00" * 16 if wrong_nonce else query.nonce
    der = signer.sign(encode_response_data(responder_id=signer.responder_id, produced_at=now, answers=[answer], nonce=nonce))
    if tamper:
        der = der[:-1] + bytes([der[-1] ^ 1])
    response_path.write_bytes(der)
    return subprocess.run(
        ["openssl", "ocsp", "-respin", str(response_path), "-reqin", str(request_path),
         "-CAfile", str(pki.files.root_cert), "-verify_other", str(ca_pem), "-resp_text"],
        capture_output=True, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
@pytest.mark.parametrize("delegated", [True, False], ids=["delegated", "ca-signed"])
def test_openssl_verifies_signed_response(tmp_path: Path, ec_pki: Pki, rsa_pki: Pki, key_type: str, delegated: bool) -> None:
    pki = ec_pki if key_type == "ec" else rsa_pki
    signer = pki.delegated() if delegated else pki.ca_signed()

    result = _openssl_check(tmp_path, pki, signer, leaf="revoked-keycompromise", status=OCSPCertStatus.REVOKED)

    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert "Cert Status: revoked" in result.stdout
    assert "Revocation Reason: keyCompromise (0x1)" in result.stdout
    assert "OCSP Nonce" in result.stdout


def test_openssl_verifies_ed25519_ca_signed_response(tmp_path: Path, ec_pki: Pki, ed25519_ca) -> None:
    key, ca = ed25519_ca
    ca_pem, leaf_pem = tmp_path / "ed25519-ca.pem", tmp_path / "ed25519-leaf.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    now = dt.datetime.now(UTC).replace(microsecond=0)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder(issuer_name=ca.subject, subject_name=x509.Name.from_rfc4514_string("CN=ed25519 leaf"),
                                public_key=leaf_key.public_key(), serial_number=x509.random_serial_number(),
                                not_valid_before=now - HOUR, not_valid_after=now + 24 * HOUR)
        .sign(key, None)  # Ed25519 signs without a separate hash
    )  # fmt: skip
    leaf_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))

    result = _openssl_check(tmp_path, ec_pki, ResponseSigner(key, ca, ca), leaf=leaf_pem, status=OCSPCertStatus.GOOD, ca_pem=ca_pem)

    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert "Cert Status: good" in result.stdout


def test_openssl_rejects_a_tampered_signature(tmp_path: Path, ec_pki: Pki) -> None:
    result = _openssl_check(tmp_path, ec_pki, ec_pki.delegated(), leaf="good", status=OCSPCertStatus.GOOD, tamper=True)
    assert "Response verify OK" not in result.stderr
    assert "Response Verify Failure" in result.stderr


def test_openssl_notices_a_nonce_that_is_not_the_request_nonce(tmp_path: Path, ec_pki: Pki) -> None:
    result = _openssl_check(tmp_path, ec_pki, ec_pki.delegated(), leaf="good", status=OCSPCertStatus.GOOD, wrong_nonce=True)
    assert result.returncode != 0
    assert "Nonce Verify error" in result.stderr
