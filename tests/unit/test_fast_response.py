"""The generator's byte templates produce exactly what the asn1crypto reference encoder produces."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from certstatus.model import serial_key
from certstatus.protocol import fast_response as fast
from certstatus.protocol.certid import issuer_hashes
from certstatus.protocol.response import EXTENDED_REVOKED_TIME
from certstatus.signing.keys import load_certificates, load_private_key
from certstatus.signing.signer import ResponseSigner
from tests import ocsp_reference
from tests.ocsp_reference import SingleAnswer, encode_basic_response, encode_response_data

OCSPCertStatus = ocsp.OCSPCertStatus
NOW = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(days=1)
SERIALS = [1, 127, 128, 255, 256, -1, -129, 0x7F << 152, (1 << 159) | 12345, 2**160 - 1]


def _reference_cert_id(algorithm: str, name_hash: bytes, key_hash: bytes, serial: int) -> bytes:
    return asn1_ocsp.CertId(
        {
            "hash_algorithm": {"algorithm": algorithm, "parameters": core.Null()},
            "issuer_name_hash": name_hash,
            "issuer_key_hash": key_hash,
            "serial_number": serial,
        }
    ).dump()


def _signer(pki, responder_id: str = "key") -> ResponseSigner:
    ca = load_certificates(pki.ca_cert)[0]
    return ResponseSigner(
        load_private_key(pki.ocsp_key, None).key, load_certificates(pki.ocsp_cert)[0], ca, responder_id=responder_id
    )


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
@pytest.mark.parametrize("serial", SERIALS)
def test_cert_id_matches_asn1crypto_with_null_parameters(demo_pki, algorithm, serial):
    ca = load_certificates(demo_pki.ca_cert)[0]
    name_hash, key_hash = issuer_hashes(ca, algorithm)
    prefix = fast.cert_id_prefix(algorithm, name_hash, key_hash)
    assert fast.encode_cert_id(prefix, serial) == _reference_cert_id(algorithm, name_hash, key_hash, serial)


CASES = {
    "good": SingleAnswer(b"", OCSPCertStatus.GOOD, NOW, LATER),
    "unknown": SingleAnswer(b"", OCSPCertStatus.UNKNOWN, NOW, LATER),
    "revoked-no-reason": SingleAnswer(b"", OCSPCertStatus.REVOKED, NOW, LATER, NOW - dt.timedelta(hours=3)),
    "revoked-key-compromise-invalidity": SingleAnswer(
        b"", OCSPCertStatus.REVOKED, NOW, LATER, NOW - dt.timedelta(days=2),
        x509.ReasonFlags.key_compromise, NOW - dt.timedelta(days=3),
    ),  # fmt: skip
    "revoked-aa-compromise": SingleAnswer(
        b"", OCSPCertStatus.REVOKED, NOW, LATER, NOW - dt.timedelta(days=2), x509.ReasonFlags.aa_compromise
    ),
    "extended-revoked": SingleAnswer(
        b"", OCSPCertStatus.REVOKED, NOW, LATER, EXTENDED_REVOKED_TIME, x509.ReasonFlags.certificate_hold
    ),
    "good-archive-cutoff": SingleAnswer(b"", OCSPCertStatus.GOOD, NOW, LATER, archive_cutoff=NOW - dt.timedelta(days=3650)),
    "revoked-invalidity-archive-cutoff": SingleAnswer(
        b"", OCSPCertStatus.REVOKED, NOW, LATER, NOW - dt.timedelta(days=2), x509.ReasonFlags.superseded,
        NOW - dt.timedelta(days=3), archive_cutoff=dt.datetime(2016, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    ),  # fmt: skip
    "good-cert-hash": SingleAnswer(b"", OCSPCertStatus.GOOD, NOW, LATER, cert_hash=bytes(range(32))),
    "revoked-invalidity-archive-cutoff-cert-hash": SingleAnswer(
        b"", OCSPCertStatus.REVOKED, NOW, LATER, NOW - dt.timedelta(days=2), x509.ReasonFlags.key_compromise,
        NOW - dt.timedelta(days=3), archive_cutoff=NOW - dt.timedelta(days=3650), cert_hash=b"\xfe" * 32,
    ),  # fmt: skip
}


def _extensions(answer: SingleAnswer) -> bytes:
    """The encoded singleExtensions after the invalidity date that ``answer`` asks for."""
    return (b"" if answer.archive_cutoff is None else fast.archive_cutoff_extension(answer.archive_cutoff)) + (
        b"" if answer.cert_hash is None else fast.cert_hash_extension(answer.cert_hash)
    )


@pytest.mark.parametrize("responder_id", ["key", "name"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_response_data_matches_asn1crypto(demo_pki, case, responder_id):
    signer = _signer(demo_pki, responder_id)
    name_hash, key_hash = issuer_hashes(signer.ca_certificate, "sha256")
    cert_id = _reference_cert_id("sha256", name_hash, key_hash, 0x1234567890ABCDEF)
    answer = CASES[case]
    extended = case == "extended-revoked"
    reference = encode_response_data(
        responder_id=signer.responder_id,
        produced_at=NOW,
        answers=[SingleAnswer(cert_id, *[getattr(answer, f) for f in SingleAnswer.__slots__[1:]])],
        extended_revoke=extended,
    )
    mine = ocsp_reference.fast_encode_response_data(
        signer.responder_id.dump(),
        fast.generalized_time(NOW),
        cert_id,
        fast.encode_cert_status(answer.status, answer.revocation_time, answer.reason),
        fast.generalized_time(answer.this_update),
        fast.generalized_time(answer.next_update),
        invalidity_date=answer.invalidity_date,
        extended_revoke=extended,
        extensions=_extensions(answer),
    )
    assert mine == reference


@pytest.mark.parametrize("pki_name", ["demo_pki", "demo_pki_rsa"])
def test_wrapped_response_matches_asn1crypto_and_verifies(request, pki_name):
    """Same signature in, same OCSPResponse out; and cryptography accepts it (RSA: the whole signer path)."""
    pki = request.getfixturevalue(pki_name)
    signer = _signer(pki)
    issuer = signer.ca_certificate
    leaf = load_certificates(pki.leaves["good"])[0]
    name_hash, key_hash = issuer_hashes(issuer, "sha1")
    cert_id = _reference_cert_id("sha1", name_hash, key_hash, leaf.serial_number)
    data = ocsp_reference.fast_encode_response_data(
        signer.responder_id.dump(), fast.generalized_time(NOW), cert_id,
        fast.encode_cert_status(OCSPCertStatus.GOOD), fast.generalized_time(NOW), fast.generalized_time(LATER),
    )  # fmt: skip
    signature = signer.signature(data)
    wrapper = fast.ResponseWrapper(signer.signature_algorithm_der, signer.certificates_der)
    mine = wrapper.wrap(data, signature)
    assert mine == encode_basic_response(data, signer.signature_algorithm_der, signature, signer.certificates_der)
    if pki_name == "demo_pki_rsa":  # PKCS#1 v1.5 signatures are deterministic
        assert mine == signer.sign(data)
    parsed = ocsp.load_der_ocsp_response(mine)
    assert parsed.certificate_status is OCSPCertStatus.GOOD
    assert parsed.serial_number == leaf.serial_number
    assert isinstance(parsed.hash_algorithm, hashes.SHA1)
    assert parsed.certificates == [signer.certificate]


def test_ca_signed_response_carries_no_certificate(demo_pki):
    wrapper = fast.ResponseWrapper(b"\x30\x00", ())
    assert wrapper.wrap(b"\x30\x00", b"sig") == encode_basic_response(b"\x30\x00", b"\x30\x00", b"sig", ())


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 65535, 65536])
def test_der_length_is_minimal(length):
    assert fast.tlv(0x04, b"x" * length) == core.OctetString(b"x" * length).dump()


def test_revoked_status_needs_a_time():
    with pytest.raises(ValueError, match="revocation_time"):
        fast.encode_cert_status(OCSPCertStatus.REVOKED)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("serial", [1, 2**159 + 7, -5])
def test_response_data_template_matches_the_function(demo_pki, case, serial):
    signer = _signer(demo_pki)
    name_hash, key_hash = issuer_hashes(signer.ca_certificate, "sha1")
    cert_id = fast.encode_cert_id(fast.cert_id_prefix("sha1", name_hash, key_hash), serial)
    answer = CASES[case]
    status = fast.encode_cert_status(answer.status, answer.revocation_time, answer.reason)
    extended = case == "extended-revoked"
    constant = b"" if answer.archive_cutoff is None else fast.archive_cutoff_extension(answer.archive_cutoff)
    own = b"" if answer.cert_hash is None else fast.cert_hash_extension(answer.cert_hash)
    template = fast.ResponseDataTemplate(signer.responder_id.dump(), NOW, answer.this_update, answer.next_update, constant)
    for _ in range(2):  # the second time from the cached headers
        assert template.encode(
            cert_id, status, invalidity_date=answer.invalidity_date, extended_revoke=extended, extensions=own
        ) == (
            ocsp_reference.fast_encode_response_data(
                signer.responder_id.dump(), fast.generalized_time(NOW), cert_id, status,
                fast.generalized_time(answer.this_update), fast.generalized_time(answer.next_update),
                invalidity_date=answer.invalidity_date, extended_revoke=extended, extensions=_extensions(answer),
            )  # fmt: skip
        )


@pytest.mark.parametrize("signature_size", [0, 64, 71, 72, 256, 512])
def test_wrapper_headers_cached_per_size_stay_exact(demo_pki, signature_size):
    signer = _signer(demo_pki)
    wrapper = fast.ResponseWrapper(signer.signature_algorithm_der, signer.certificates_der)
    data = fast.tlv(0x30, b"\x01" * 200)
    for _ in range(2):
        signature = bytes(range(256))[: signature_size % 256] * (1 + signature_size // 256)
        signature = signature[:signature_size]
        assert wrapper.wrap(data, signature) == encode_basic_response(
            data, signer.signature_algorithm_der, signature, signer.certificates_der
        )


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_cert_id_template_matches_asn1crypto(demo_pki, algorithm):
    ca = load_certificates(demo_pki.ca_cert)[0]
    name_hash, key_hash = issuer_hashes(ca, algorithm)
    template = fast.CertIdTemplate(fast.cert_id_prefix(algorithm, name_hash, key_hash))
    for _ in range(2):  # the second time from the cached headers
        for serial in SERIALS:
            assert template.encode(serial_key(serial)) == _reference_cert_id(algorithm, name_hash, key_hash, serial)


@pytest.mark.parametrize("serial", SERIALS)
def test_good_response_data_shortcut_matches_asn1crypto(demo_pki, serial):
    signer = _signer(demo_pki)
    name_hash, key_hash = issuer_hashes(signer.ca_certificate, "sha256")
    cert_id = _reference_cert_id("sha256", name_hash, key_hash, serial)
    template = fast.ResponseDataTemplate(signer.responder_id.dump(), NOW, NOW, LATER)
    reference = encode_response_data(
        responder_id=signer.responder_id, produced_at=NOW, answers=[SingleAnswer(cert_id, OCSPCertStatus.GOOD, NOW, LATER)]
    )
    assert template.encode_good(cert_id) == template.encode_good(cert_id) == reference


@pytest.mark.parametrize("cutoff", [None, NOW - dt.timedelta(days=3650)])
@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_good_head_and_tail_around_the_key_match_asn1crypto(demo_pki, algorithm, cutoff):
    """The generator's joined good ResponseData: good_head(len(key)) + key + good_tail, for every serial length,
    with and without the CA's ArchiveCutoff."""
    signer = _signer(demo_pki)
    name_hash, key_hash = issuer_hashes(signer.ca_certificate, algorithm)
    cert_ids = fast.CertIdTemplate(fast.cert_id_prefix(algorithm, name_hash, key_hash))
    extensions = b"" if cutoff is None else fast.archive_cutoff_extension(cutoff)
    template = fast.ResponseDataTemplate(signer.responder_id.dump(), NOW, NOW, LATER, extensions)
    for serial in SERIALS:
        key = serial_key(serial)
        cert_id = _reference_cert_id(algorithm, name_hash, key_hash, serial)
        reference = encode_response_data(
            responder_id=signer.responder_id, produced_at=NOW,
            answers=[SingleAnswer(cert_id, OCSPCertStatus.GOOD, NOW, LATER, archive_cutoff=cutoff)],
        )  # fmt: skip
        assert template.good_head(cert_ids, len(key)) + key + template.good_tail == reference
        assert template.encode_good(cert_id) == reference


@pytest.mark.parametrize("signature_size", [0, 64, 71, 72, 256])
def test_signature_head_joins_the_body_as_body_does(demo_pki, signature_size):
    signer = _signer(demo_pki)
    wrapper = fast.ResponseWrapper(signer.signature_algorithm_der, signer.certificates_der)
    data, signature = fast.tlv(0x30, b"\x01" * 200), bytes(signature_size)
    assert data + wrapper.signature_head(signature_size) + signature == wrapper.body(data, signature)
    assert wrapper.signature_heads[signature_size] == wrapper.signature_head(signature_size)
    assert wrapper.assembler.assemble(wrapper.body(data, signature)) == encode_basic_response(
        data, signer.signature_algorithm_der, signature, signer.certificates_der
    )


@pytest.fixture(scope="module")
def ml_dsa_pki(tmp_path_factory):
    """The demo PKI (ECDSA CA) with an ML-DSA-65 delegated responder."""
    from certstatus.demo_pki import make_demo_pki

    return make_demo_pki(tmp_path_factory.mktemp("ml-dsa-pki"), key_type="ec", responder_key_type="ml-dsa-65")


@pytest.mark.parametrize("case", list(CASES))
def test_generator_templates_wrap_ml_dsa_signatures_as_the_reference_does(ml_dsa_pki, case):
    """ML-DSA sizes (3309-byte signature, 2 kB certificate) take the long DER length forms the
    ECDSA sizes never reach: the generator's joined body, assembled, is the reference's bytes."""
    signer = _signer(ml_dsa_pki)
    assert signer.algorithm.name == "ml-dsa-65"
    name_hash, key_hash = issuer_hashes(signer.ca_certificate, "sha256")
    serial = (1 << 159) | 12345
    cert_id = _reference_cert_id("sha256", name_hash, key_hash, serial)
    answer = dataclasses.replace(CASES[case], cert_id_der=cert_id)
    reference_data = encode_response_data(responder_id=signer.responder_id, produced_at=NOW, answers=[answer])
    template = fast.ResponseDataTemplate(signer.responder_id.dump(), NOW, NOW, LATER)
    data = template.encode(
        fast.CertIdTemplate(fast.cert_id_prefix("sha256", name_hash, key_hash)).encode(serial_key(serial)),
        fast.encode_cert_status(answer.status, answer.revocation_time, answer.reason),
        invalidity_date=answer.invalidity_date if answer.status is OCSPCertStatus.REVOKED else None,
        extensions=_extensions(answer),
    )
    assert data == reference_data
    signature = signer.signature(data)
    assert len(signature) == 3309  # FIPS 204, ML-DSA-65
    wrapper = fast.ResponseWrapper(signer.signature_algorithm_der, signer.certificates_der)
    stored_body = wrapper.body(data, signature)  # what the generator stores
    assembled = wrapper.assembler.assemble(stored_body)
    assert assembled == encode_basic_response(data, signer.signature_algorithm_der, signature, signer.certificates_der)
    parsed = ocsp.load_der_ocsp_response(assembled)
    parsed.certificates[0].public_key().verify(parsed.signature, parsed.tbs_response_bytes)
    assert parsed.signature_algorithm_oid.dotted_string == "2.16.840.1.101.3.4.3.18"
    assert parsed.serial_number == serial and parsed.certificate_status is answer.status


@pytest.mark.parametrize("year", [1, 999, 1000, 2026, 9999])
def test_generalized_time_has_four_year_digits_for_every_year(year):
    """RFC 5280 §4.1.2.5.2: YYYYMMDDHHMMSSZ, four digits even for a year below 1000 (a CRL may carry one;
    asn1crypto's own encoder, like strftime, writes fewer digits and a wrong length there)."""
    when = dt.datetime(year, 2, 3, 4, 5, 6, 789, tzinfo=dt.timezone.utc)
    encoded = fast.generalized_time(when)
    assert encoded == b"\x18\x0f" + f"{year:04d}0203040506Z".encode()
    assert len(encoded) == 17  # tag, length 15, 15 characters
