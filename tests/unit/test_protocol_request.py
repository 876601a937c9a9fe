"""parse_request / decode_get_path: OCSP requests written by `cryptography` and by `openssl ocsp`.

Requests are generated at test time (the demo PKI is new every session); the
malformed ones are written byte by byte with a tiny DER helper so that each
test shows exactly which bytes are refused.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certstatus.demo_pki import DemoPki
from certstatus.model import HASH_ALGORITHM_OIDS
from certstatus.protocol import extensions
from certstatus.protocol.certid import all_issuer_hashes, issuer_hashes
from certstatus.protocol.request import (
    MalformedRequest,
    OCSPQuery,
    decode_get_path,
    parse_request,
)

HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
NONCE_OID = core.ObjectIdentifier(extensions.NONCE).dump()


# --- DER helpers -------------------------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a definite length."""
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(octets)]) + octets
    return bytes([tag]) + length + content


def der_integer(value: int) -> bytes:
    return tlv(0x02, value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True))


def cert_id_der(alg: str, name_hash: bytes, key_hash: bytes, serial: int, *, null_params: bool = True) -> bytes:
    """CertID ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING, OCTET STRING, INTEGER }."""
    algorithm = core.ObjectIdentifier(HASH_ALGORITHM_OIDS[alg]).dump() + (b"\x05\x00" if null_params else b"")
    return tlv(0x30, tlv(0x30, algorithm) + tlv(0x04, name_hash) + tlv(0x04, key_hash) + der_integer(serial))


def extension(oid: bytes, value: bytes, *, critical: bool = False) -> bytes:
    """Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }."""
    return tlv(0x30, oid + (b"\x01\x01\xff" if critical else b"") + tlv(0x04, value))


def request_der(*cert_ids: bytes, exts: tuple[bytes, ...] = (), version: bytes = b"") -> bytes:
    """OCSPRequest ::= SEQUENCE { TBSRequest ::= SEQUENCE { [0] version?, requestList, [2] exts? } }."""
    request_list = tlv(0x30, b"".join(tlv(0x30, cid) for cid in cert_ids))
    body = version + request_list
    if exts:
        body += tlv(0xA2, tlv(0x30, b"".join(exts)))
    return tlv(0x30, tlv(0x30, body))


SOME_CERT_ID = cert_id_der("sha1", b"\x01" * 20, b"\x02" * 20, 0x1A2B)


# --- fixtures ----------------------------------------------------------------------------------


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def ca(demo_pki: DemoPki) -> x509.Certificate:
    return _load_cert(demo_pki.ca_cert)


def _openssl_request(tmp_path: Path, pki: DemoPki, leaves: list[str], *options: str) -> bytes:
    """`openssl ocsp -reqout`: options (-sha256, -no_nonce) must precede the -cert they apply to."""
    out = tmp_path / "req.der"
    args = ["openssl", "ocsp", *options, "-issuer", str(pki.ca_cert)]
    for name in leaves:
        args += ["-cert", str(pki.leaves[name])]
    subprocess.run([*args, "-reqout", str(out)], check=True, capture_output=True)
    return out.read_bytes()


def _cryptography_request(leaf: x509.Certificate, issuer: x509.Certificate, alg: str, nonce: bytes | None) -> bytes:
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, HASHES[alg]())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


# --- requests written by cryptography --------------------------------------------------------------


def test_issuer_hashes_of_every_algorithm_match_those_of_client_requests(demo_pki: DemoPki, ca: x509.Certificate) -> None:
    """The registry's hashes (the issuer's name read from a copy of its certificate) are those a client's
    CertID carries, for every algorithm (cryptography's request builder hashes the issuer it is given)."""
    leaf = _load_cert(demo_pki.leaves["good"])

    hashes = all_issuer_hashes(ca)

    assert set(hashes) == set(HASH_ALGORITHM_OIDS)
    for alg, pair in hashes.items():
        (cert_id,) = parse_request(_cryptography_request(leaf, ca, alg, None)).cert_ids
        assert pair == (cert_id.issuer_name_hash, cert_id.issuer_key_hash) == issuer_hashes(ca, alg)


@pytest.mark.parametrize("alg", sorted(HASHES))
@pytest.mark.parametrize("nonce", [None, b"\x17" * 16, b"\x00" * 32], ids=["no-nonce", "nonce16", "nonce32"])
def test_cryptography_request_yields_its_cert_id_and_nonce(demo_pki: DemoPki, ca: x509.Certificate, alg: str, nonce: bytes | None) -> None:
    leaf = _load_cert(demo_pki.leaves["good"])
    der = _cryptography_request(leaf, ca, alg, nonce)

    query = parse_request(der)

    assert isinstance(query, OCSPQuery)
    (cert_id,) = query.cert_ids
    name_hash, key_hash = issuer_hashes(ca, alg)
    assert cert_id.hash_algorithm == alg
    assert (cert_id.issuer_name_hash, cert_id.issuer_key_hash) == (name_hash, key_hash)
    assert cert_id.serial_number == leaf.serial_number == demo_pki.serials["good"]
    assert cert_id.issuer_key == (alg, name_hash, key_hash)
    # cryptography writes the hash AlgorithmIdentifier with NULL parameters.
    assert cert_id.der == cert_id_der(alg, name_hash, key_hash, leaf.serial_number)
    assert cert_id.der in der
    # The nonce is the extnValue content: the inner OCTET STRING, echoed byte for byte.
    assert query.nonce == (None if nonce is None else tlv(0x04, nonce))
    assert query.signature is None and query.requestor_name is None
    assert query.preferred_signature_algorithms == ()


def test_cryptography_reads_the_same_fields_as_parse_request(demo_pki: DemoPki, ca: x509.Certificate) -> None:
    leaf = _load_cert(demo_pki.leaves["revoked-hold"])
    der = _cryptography_request(leaf, ca, "sha256", b"abcdefgh")
    reference = x509_ocsp.load_der_ocsp_request(der)

    (cert_id,) = parse_request(der).cert_ids

    assert cert_id.issuer_name_hash == reference.issuer_name_hash
    assert cert_id.issuer_key_hash == reference.issuer_key_hash
    assert cert_id.serial_number == reference.serial_number
    assert isinstance(reference.hash_algorithm, hashes.SHA256)
    assert parse_request(der).nonce == tlv(0x04, reference.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce)


# --- requests written by openssl ocsp ------------------------------------------------------------


@pytest.mark.parametrize("alg", ["sha1", "sha256"])
def test_openssl_request_with_nonce_yields_cert_id_and_16_octet_nonce(tmp_path: Path, demo_pki: DemoPki, ca: x509.Certificate, alg: str) -> None:
    options = ["-sha256"] if alg == "sha256" else []
    der = _openssl_request(tmp_path, demo_pki, ["good"], *options)

    query = parse_request(der)

    (cert_id,) = query.cert_ids
    name_hash, key_hash = issuer_hashes(ca, alg)
    assert (cert_id.hash_algorithm, cert_id.issuer_name_hash, cert_id.issuer_key_hash) == (alg, name_hash, key_hash)
    assert cert_id.serial_number == demo_pki.serials["good"]
    assert cert_id.der == cert_id_der(alg, name_hash, key_hash, demo_pki.serials["good"])
    # OpenSSL sends a 16-octet nonce wrapped in an OCTET STRING: 04 10 <16 octets>.
    assert query.nonce is not None and query.nonce[:2] == b"\x04\x10" and len(query.nonce) == 18
    assert tlv(0x04, query.nonce) in der


def test_openssl_request_without_nonce_has_no_nonce(tmp_path: Path, demo_pki: DemoPki) -> None:
    der = _openssl_request(tmp_path, demo_pki, ["good"], "-no_nonce", "-sha256")

    query = parse_request(der)

    assert query.nonce is None
    assert [c.hash_algorithm for c in query.cert_ids] == ["sha256"]


def test_openssl_request_with_two_certs_keeps_both_cert_ids_in_order(tmp_path: Path, demo_pki: DemoPki, ca: x509.Certificate) -> None:
    names = ["revoked-keycompromise", "good", "unknown"]
    der = _openssl_request(tmp_path, demo_pki, names, "-sha256")

    query = parse_request(der)

    assert [c.serial_number for c in query.cert_ids] == [demo_pki.serials[n] for n in names]
    name_hash, key_hash = issuer_hashes(ca, "sha256")
    for cert_id, name in zip(query.cert_ids, names, strict=True):
        assert cert_id.der == cert_id_der("sha256", name_hash, key_hash, demo_pki.serials[name])
    position = [der.index(c.der) for c in query.cert_ids]
    assert position == sorted(position)


# --- CertID encodings --------------------------------------------------------------------------


def test_cert_id_without_null_parameters_is_echoed_as_received() -> None:
    raw = cert_id_der("sha256", b"\x0a" * 32, b"\x0b" * 32, 77, null_params=False)

    (cert_id,) = parse_request(request_der(raw)).cert_ids

    assert cert_id.der == raw
    assert (cert_id.hash_algorithm, cert_id.serial_number) == ("sha256", 77)


@pytest.mark.parametrize("parameters", [b"\x05\x01\x00", b"\x05\x00\x05\x00", b"\x05\x00\x02\x01\x00"])
def test_cert_id_hash_parameters_other_than_absent_or_null_are_malformed(parameters: bytes) -> None:
    """Fuzzing finding: such a CertID was echoed into a response that cryptography and OpenSSL cannot read."""
    algorithm = core.ObjectIdentifier(HASH_ALGORITHM_OIDS["sha1"]).dump() + parameters
    raw = tlv(0x30, tlv(0x30, algorithm) + tlv(0x04, b"\x01" * 20) + tlv(0x04, b"\x02" * 20) + der_integer(5))

    with pytest.raises(MalformedRequest, match="parameters"):
        parse_request(request_der(raw))


@pytest.mark.parametrize("contents", [b"", b"\x00\x01", b"\x00\x11\xfb", b"\xff\x80", b"\xff\xff\x01"])
def test_cert_id_serial_that_is_not_minimal_der_is_malformed(contents: bytes) -> None:
    """Fuzzing finding: a non-minimal INTEGER was echoed into a response cryptography cannot read."""
    algorithm = core.ObjectIdentifier(HASH_ALGORITHM_OIDS["sha1"]).dump() + b"\x05\x00"
    raw = tlv(0x30, tlv(0x30, algorithm) + tlv(0x04, b"\x01" * 20) + tlv(0x04, b"\x02" * 20) + tlv(0x02, contents))

    with pytest.raises(MalformedRequest):
        parse_request(request_der(raw))


@pytest.mark.parametrize("serial", [0, 1, 127, 128, -1, -127, -129, 2**159 - 1])
def test_minimal_serials_of_every_sign_are_accepted(serial: int) -> None:
    (cert_id,) = parse_request(request_der(cert_id_der("sha1", b"\x01" * 20, b"\x02" * 20, serial))).cert_ids
    assert cert_id.serial_number == serial


def test_serial_numbers_keep_their_sign_and_size() -> None:
    serials = [0, 1, 127, 128, 2**159, 2**160 - 1, -1]

    query = parse_request(request_der(*(cert_id_der("sha1", b"\1" * 20, b"\2" * 20, s) for s in serials)))

    assert [c.serial_number for c in query.cert_ids] == serials


# --- malformed requests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "der",
    [b"", b"\x00", b"\x30", b"\x30\x00", b"\x30\x03\x30\x01\x00", b"garbage that is not DER at all", b"\xff" * 64],
    ids=["empty", "zero", "bare-tag", "empty-sequence", "nested-junk", "text", "ff"],
)
def test_bytes_that_are_not_a_request_are_malformed(der: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(der)


def test_every_truncation_of_a_valid_request_is_malformed(tmp_path: Path, demo_pki: DemoPki) -> None:
    der = _openssl_request(tmp_path, demo_pki, ["good", "good2"], "-sha256")
    parse_request(der)  # the whole request is fine

    for length in range(len(der)):
        with pytest.raises(MalformedRequest):
            parse_request(der[:length])


@pytest.mark.parametrize("trailer", [b"\x00", b"\x30\x00", b"x" * 10])
def test_trailing_bytes_after_the_request_are_malformed(trailer: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(request_der(SOME_CERT_ID) + trailer)


def test_version_v2_is_malformed() -> None:
    v2 = tlv(0xA0, der_integer(1))
    with pytest.raises(MalformedRequest, match="v1"):
        parse_request(request_der(SOME_CERT_ID, version=v2))


def test_explicit_version_v1_is_accepted() -> None:
    v1 = tlv(0xA0, der_integer(0))
    assert parse_request(request_der(SOME_CERT_ID, version=v1)).cert_ids[0].serial_number == 0x1A2B


def test_empty_request_list_is_malformed() -> None:
    der = asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": []}}).dump()
    assert der == bytes.fromhex("30043002 3000")
    with pytest.raises(MalformedRequest, match="requestList"):
        parse_request(der)


def test_md5_cert_id_is_malformed() -> None:
    md5 = core.ObjectIdentifier("1.2.840.113549.2.5").dump() + b"\x05\x00"
    raw = tlv(0x30, tlv(0x30, md5) + tlv(0x04, b"\1" * 16) + tlv(0x04, b"\2" * 16) + der_integer(5))
    with pytest.raises(MalformedRequest, match="1.2.840.113549.2.5"):
        parse_request(request_der(raw))


def test_unknown_critical_request_extension_is_malformed() -> None:
    unknown = extension(core.ObjectIdentifier("1.2.3.4").dump(), b"\x05\x00", critical=True)
    with pytest.raises(MalformedRequest, match="1.2.3.4"):
        parse_request(request_der(SOME_CERT_ID, exts=(unknown,)))


def test_unknown_non_critical_request_extension_is_ignored() -> None:
    unknown = extension(core.ObjectIdentifier("1.2.3.4").dump(), b"\x05\x00")
    query = parse_request(request_der(SOME_CERT_ID, exts=(unknown,)))
    assert query.nonce is None and len(query.cert_ids) == 1


def test_unknown_critical_single_request_extension_is_malformed() -> None:
    unknown = extension(core.ObjectIdentifier("1.2.3.4").dump(), b"\x05\x00", critical=True)
    single = tlv(0x30, SOME_CERT_ID + tlv(0xA0, tlv(0x30, unknown)))
    der = tlv(0x30, tlv(0x30, tlv(0x30, single)))
    with pytest.raises(MalformedRequest, match="1.2.3.4"):
        parse_request(der)


def test_critical_nonce_is_understood() -> None:
    nonce = tlv(0x04, b"n" * 8)
    query = parse_request(request_der(SOME_CERT_ID, exts=(extension(NONCE_OID, nonce, critical=True),)))
    assert query.nonce == nonce


@pytest.mark.parametrize("size", [1, 32, 128])
def test_nonce_of_1_to_128_octets_is_echoed_whole(size: int) -> None:
    nonce = tlv(0x04, bytes(range(size)))
    assert parse_request(request_der(SOME_CERT_ID, exts=(extension(NONCE_OID, nonce),))).nonce == nonce


@pytest.mark.parametrize("size", [0, 129, 1000])
def test_nonce_of_0_or_more_than_128_octets_is_malformed(size: int) -> None:
    nonce = tlv(0x04, b"\x42" * size)
    with pytest.raises(MalformedRequest, match=f"{size} octets"):
        parse_request(request_der(SOME_CERT_ID, exts=(extension(NONCE_OID, nonce),)))


def test_legacy_raw_nonce_without_inner_octet_string_is_accepted_and_echoed() -> None:
    raw = bytes(range(0x90, 0xA0))  # 16 octets that are not an OCTET STRING TLV
    query = parse_request(request_der(SOME_CERT_ID, exts=(extension(NONCE_OID, raw),)))
    assert query.nonce == raw


@pytest.mark.parametrize("raw", [b"", b"\x99" * 129], ids=["empty", "129-octets"])
def test_legacy_raw_nonce_of_0_or_more_than_128_octets_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedRequest, match="octets"):
        parse_request(request_der(SOME_CERT_ID, exts=(extension(NONCE_OID, raw),)))


def test_duplicate_nonce_extension_is_malformed() -> None:
    first = extension(NONCE_OID, tlv(0x04, b"a" * 8))
    second = extension(NONCE_OID, tlv(0x04, b"b" * 8))
    with pytest.raises(MalformedRequest, match="twice"):
        parse_request(request_der(SOME_CERT_ID, exts=(first, second)))


# --- request extensions and signatures -----------------------------------------------------------


def test_preferred_signature_algorithms_are_read_in_client_order() -> None:
    ecdsa = algorithm_der("1.2.840.10045.4.3.2")  # ecdsa-with-SHA256, no parameters
    rsa = algorithm_der("1.2.840.113549.1.1.11", b"\x05\x00")  # sha256WithRSAEncryption
    ed25519 = algorithm_der("1.3.101.112")
    value = tlv(0x30, tlv(0x30, ecdsa) + tlv(0x30, rsa + algorithm_der("1.2.840.113549.1.1.1", b"\x05\x00")) + tlv(0x30, ed25519))
    oid = core.ObjectIdentifier(extensions.PREFERRED_SIGNATURE_ALGORITHMS).dump()

    query = parse_request(request_der(SOME_CERT_ID, exts=(extension(oid, value),)))

    assert query.preferred_signature_algorithms == ("1.2.840.10045.4.3.2", "1.2.840.113549.1.1.11", "1.3.101.112")


def test_undecodable_preferred_signature_algorithms_are_malformed() -> None:
    oid = core.ObjectIdentifier(extensions.PREFERRED_SIGNATURE_ALGORITHMS).dump()
    with pytest.raises(MalformedRequest):
        parse_request(request_der(SOME_CERT_ID, exts=(extension(oid, b"\x05\x00"),)))


def algorithm_der(oid: str, params: bytes = b"") -> bytes:
    return tlv(0x30, core.ObjectIdentifier(oid).dump() + params)


def test_signed_request_exposes_signature_over_exact_tbs_request(demo_pki: DemoPki, ca: x509.Certificate) -> None:
    requestor_cert = _load_cert(demo_pki.leaves["good2"])
    requestor_key = serialization.load_pem_private_key(demo_pki.leaves["good2"].with_suffix(".key").read_bytes(), None)
    assert isinstance(requestor_key, ec.EllipticCurvePrivateKey)
    name_hash, key_hash = issuer_hashes(ca, "sha256")
    cid = cert_id_der("sha256", name_hash, key_hash, demo_pki.serials["good"])
    requestor_name = asn1_x509.GeneralName(name="directory_name", value=asn1_x509.Name.load(requestor_cert.subject.public_bytes()))
    tbs = asn1_ocsp.TBSRequest({"requestor_name": requestor_name, "request_list": [{"req_cert": asn1_ocsp.CertId.load(cid)}]})
    tbs_der = tbs.dump()
    signature = requestor_key.sign(tbs_der, ec.ECDSA(hashes.SHA256()))
    requestor_der = requestor_cert.public_bytes(serialization.Encoding.DER)
    der = asn1_ocsp.OCSPRequest(
        {
            "tbs_request": tbs,
            "optional_signature": {
                "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                "signature": signature,
                "certs": [asn1_x509.Certificate.load(requestor_der)],
            },
        }
    ).dump()

    query = parse_request(der)

    assert query.signature is not None
    assert query.signature.tbs_request == tbs_der
    assert tbs_der in der
    assert query.signature.algorithm_oid == "1.2.840.10045.4.3.2"
    assert query.signature.signature == signature
    assert query.signature.certs == (requestor_der,)
    signer = x509.load_der_x509_certificate(query.signature.certs[0]).public_key()
    assert isinstance(signer, ec.EllipticCurvePublicKey)
    signer.verify(query.signature.signature, query.signature.tbs_request, ec.ECDSA(hashes.SHA256()))
    assert query.cert_ids[0].der == cid


def test_requestor_name_is_the_der_of_the_general_name(demo_pki: DemoPki) -> None:
    subject = _load_cert(demo_pki.leaves["good2"]).subject.public_bytes()
    requestor_name = asn1_x509.GeneralName(name="directory_name", value=asn1_x509.Name.load(subject))
    tbs = asn1_ocsp.TBSRequest({"requestor_name": requestor_name, "request_list": [{"req_cert": asn1_ocsp.CertId.load(SOME_CERT_ID)}]})
    der = asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()
    general_name = tlv(0xA4, subject)  # directoryName [4] EXPLICIT Name

    assert tlv(0xA1, general_name) in der
    assert parse_request(der).requestor_name == general_name


def test_signed_request_without_certs_has_empty_certs() -> None:
    tbs = asn1_ocsp.TBSRequest({"request_list": [{"req_cert": asn1_ocsp.CertId.load(SOME_CERT_ID)}]})
    der = asn1_ocsp.OCSPRequest(
        {
            "tbs_request": tbs,
            "optional_signature": {"signature_algorithm": {"algorithm": "sha256_ecdsa"}, "signature": b"\x30\x00"},
        }
    ).dump()

    signature = parse_request(der).signature

    assert signature is not None
    assert (signature.tbs_request, signature.certs, signature.signature) == (tbs.dump(), (), b"\x30\x00")


# --- GET paths (RFC 5019 §5) -------------------------------------------------------------------

PAYLOAD = b"\xfb\xff\xbf\xfe"  # base64 "+/+//g==": every character that needs care in a URL


def test_get_path_raw_base64_decodes(demo_pki: DemoPki, ca: x509.Certificate) -> None:
    der = _cryptography_request(_load_cert(demo_pki.leaves["good"]), ca, "sha1", None)
    assert decode_get_path(base64.b64encode(der).decode()) == der
    assert decode_get_path(base64.b64encode(der)) == der


@pytest.mark.parametrize(
    "path",
    [
        "+/+//g==",
        "%2B%2F%2B%2F%2Fg%3D%3D",  # percent-encoded
        "%2b%2f%2b%2f%2fg%3d%3d",  # lower-case hex
        " /+//g==",  # '+' turned into a space by a proxy
        "%20/%20//g==",  # ... and that space percent-encoded
        "/+/+//g==",  # leading '/'
        "//+/+//g==",  # doubled '/'
        "+/+//g",  # padding dropped
        "+/+//g%3D",  # padding half dropped
        "-_-__g",  # URL-safe alphabet, no padding
        "-_-__g==",  # URL-safe alphabet with padding
    ],
)
def test_get_path_tolerates_what_clients_and_proxies_do(path: str) -> None:
    assert decode_get_path(path) == PAYLOAD
    assert decode_get_path(path.encode()) == PAYLOAD


@pytest.mark.parametrize("path", ["", "/", "//", "=", "!!!!", "AAAA*", "A", "abc%ZZ", "%00%00%00%00", "A\nAA"])
def test_get_path_that_is_not_base64_is_malformed(path: str) -> None:
    with pytest.raises(MalformedRequest):
        decode_get_path(path)


def test_get_path_str_with_non_latin1_character_is_malformed() -> None:
    with pytest.raises(MalformedRequest):
        decode_get_path("MEIw€")


def test_get_path_of_openssl_request_parses(tmp_path: Path, demo_pki: DemoPki) -> None:
    der = _openssl_request(tmp_path, demo_pki, ["good"], "-sha256")
    encoded = quote(base64.b64encode(der).decode(), safe="")

    assert parse_request(decode_get_path(encoded)).cert_ids[0].serial_number == demo_pki.serials["good"]


# --- properties ----------------------------------------------------------------------------------


def _only_malformed(der: bytes) -> None:
    try:
        result = parse_request(der)
    except MalformedRequest:
        return
    assert isinstance(result, OCSPQuery)
    assert result.cert_ids


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_query_or_malformed_request(der: bytes) -> None:
    _only_malformed(der)


VALID_FOR_MUTATION = request_der(
    SOME_CERT_ID,
    cert_id_der("sha256", b"\3" * 32, b"\4" * 32, 2**100),
    exts=(extension(NONCE_OID, tlv(0x04, b"n" * 16)),),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID_FOR_MUTATION) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_valid_request_gives_a_query_or_malformed_request(changes: list[tuple[int, int]]) -> None:
    der = bytearray(VALID_FOR_MUTATION)
    for position, value in changes:
        der[position] = value
    _only_malformed(bytes(der))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_get_path_bytes_decode_or_raise_malformed_request(path: bytes) -> None:
    try:
        decode_get_path(path)
    except MalformedRequest:
        pass
