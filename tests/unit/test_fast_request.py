"""The fast request parser against the asn1crypto reference (protocol/request.py).

For every input, :func:`parse_request_fast` and :func:`parse_request` return
the same OCSPQuery or both raise MalformedRequest: requests from OpenSSL's
``openssl ocsp``, from ``cryptography``'s builder, from asn1crypto with
hypothesis-chosen fields, and mutations of all of them.
"""

from __future__ import annotations

import subprocess

import pytest
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certstatus.protocol import fast_request
from certstatus.protocol.certid import HASH_ALGORITHM_OIDS
from certstatus.protocol.request import MalformedRequest, parse_request


def outcome(parse, der: bytes):
    try:
        return parse(der)
    except MalformedRequest:
        return "malformedRequest"


def assert_same(der: bytes) -> object:
    expected = outcome(parse_request, der)
    assert outcome(fast_request.parse_request_fast, der) == expected
    return expected


def fast_path_taken(der: bytes) -> bool:
    try:
        fast_request._parse(der)
        return True
    except (fast_request._Unusual, IndexError):
        return False


# --- vectors from real clients ----------------------------------------------------------------


def openssl_request(pki, *args: str) -> bytes:
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(pki.ca_cert), *args, "-reqout", "/dev/stdout"],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    return result.stdout


@pytest.fixture(scope="module")
def openssl_vectors(demo_pki) -> dict[str, bytes]:
    leaves = demo_pki.leaves
    return {
        "nonce": openssl_request(demo_pki, "-cert", str(leaves["good"])),
        "no_nonce": openssl_request(demo_pki, "-cert", str(leaves["good"]), "-no_nonce"),
        "sha256": openssl_request(demo_pki, "-sha256", "-cert", str(leaves["good"]), "-no_nonce"),
        "sha512_nonce": openssl_request(demo_pki, "-sha512", "-cert", str(leaves["good"])),
        "three_certs": openssl_request(
            demo_pki, "-cert", str(leaves["good"]), "-cert", str(leaves["good2"]),
            "-cert", str(leaves["revoked-hold"]),
        ),
        "serial_only": openssl_request(demo_pki, "-serial", "0x01", "-no_nonce"),
        "signed": openssl_request(
            demo_pki, "-cert", str(leaves["good"]), "-signer", str(leaves["good2"]),
            "-signkey", str(leaves["good2"].with_suffix(".key")),
        ),
    }  # fmt: skip


@pytest.mark.parametrize(
    "name", ["nonce", "no_nonce", "sha256", "sha512_nonce", "three_certs", "serial_only", "signed"]
)
def test_openssl_requests_parse_the_same(openssl_vectors, name):
    query = assert_same(openssl_vectors[name])
    assert query != "malformedRequest"


@pytest.mark.parametrize("name", ["nonce", "no_nonce", "sha256", "sha512_nonce", "three_certs", "serial_only"])
def test_common_openssl_requests_take_the_fast_path(openssl_vectors, name):
    assert fast_path_taken(openssl_vectors[name])


def test_signed_request_goes_to_the_reference_parser(openssl_vectors):
    assert not fast_path_taken(openssl_vectors["signed"])
    assert fast_request.parse_request_fast(openssl_vectors["signed"]).signature is not None


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
@pytest.mark.parametrize("nonce", [None, b"\x01", b"n" * 32, b"n" * 128, b"n" * 129])
def test_cryptography_requests_parse_the_same(demo_pki, algorithm, nonce):
    issuer = x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(demo_pki.leaves["good"].read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    der = builder.build().public_bytes(serialization.Encoding.DER)
    query = assert_same(der)
    if nonce is not None and len(nonce) > 128:
        assert query == "malformedRequest"
    else:
        assert query.cert_ids[0].serial_number == leaf.serial_number
        assert fast_path_taken(der)


# --- hypothesis: requests built field by field ------------------------------------------------

_HASH_NAMES = list(HASH_ALGORITHM_OIDS) + ["md5", "1.2.3.4"]


@st.composite
def cert_ids(draw):
    name = draw(st.sampled_from(_HASH_NAMES))
    algorithm = {"algorithm": HASH_ALGORITHM_OIDS.get(name, name)}
    if draw(st.booleans()):
        algorithm["parameters"] = core.Null()
    return asn1_ocsp.CertId(
        {
            "hash_algorithm": algorithm,
            "issuer_name_hash": draw(st.binary(min_size=0, max_size=70)),
            "issuer_key_hash": draw(st.binary(min_size=0, max_size=70)),
            "serial_number": draw(st.integers(min_value=-(2**200), max_value=2**200)),
        }
    )


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV (definite, minimal length)."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


def oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


@st.composite
def extensions(draw) -> bytes | None:
    """requestExtensions content: a mix of nonces (well-formed or raw), other and critical ones."""
    items = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["nonce", "nonce", "raw_nonce", "other", "critical_other", "pref"]))
        if kind in ("nonce", "raw_nonce"):
            value = draw(st.binary(min_size=0, max_size=140))
            value = core.OctetString(value).dump() if kind == "nonce" else value[:40]
            critical = draw(st.sampled_from([b"", b"", b"\x01\x01\xff", b"\x01\x01\x00"]))
            items.append(tlv(0x30, oid("1.3.6.1.5.5.7.48.1.2") + critical + tlv(0x04, value)))
        elif kind == "pref":
            value = bytes.fromhex("300d300b06092a864886f70d01010b")
            items.append(tlv(0x30, oid("1.3.6.1.5.5.7.48.1.8") + tlv(0x04, value)))
        else:
            critical = b"\x01\x01\xff" if kind == "critical_other" else b""
            items.append(tlv(0x30, oid("1.2.3.4.5") + critical + tlv(0x04, b"\x05\x00")))
    return tlv(0x30, b"".join(items)) if items else None


@st.composite
def requests(draw) -> bytes:
    version = b""
    if draw(st.integers(0, 9)) == 0:
        version = tlv(0xA0, tlv(0x02, bytes([draw(st.sampled_from([0, 1]))])))
    requestor = b""
    if draw(st.integers(0, 9)) == 0:
        requestor = tlv(0xA1, tlv(0x82, b"client.example"))
    singles = b""
    for cert_id in draw(st.lists(cert_ids(), min_size=0, max_size=4)):
        single_exts = b""
        if draw(st.integers(0, 19)) == 0:
            single_exts = tlv(0xA0, tlv(0x30, tlv(0x30, oid("1.2.3.4.5") + tlv(0x04, b"\x05\x00"))))
        singles += tlv(0x30, cert_id.dump() + single_exts)
    exts = draw(extensions())
    tbs = tlv(0x30, version + requestor + tlv(0x30, singles) + (tlv(0xA2, exts) if exts else b""))
    return tlv(0x30, tbs)


@st.composite
def common_requests(draw) -> bytes:
    """The shape the fast path reads: supported hashes, 1-4 CertIDs, an optional valid nonce."""
    singles = b""
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(list(HASH_ALGORITHM_OIDS)))
        params = draw(st.sampled_from([b"", b"\x05\x00"]))
        algorithm = tlv(0x30, oid(HASH_ALGORITHM_OIDS[name]) + params)
        serial = draw(st.integers(min_value=-(2**170), max_value=2**170))
        serial_der = core.Integer(serial).dump()
        hashes_der = tlv(0x04, draw(st.binary(max_size=64))) + tlv(0x04, draw(st.binary(max_size=64)))
        singles += tlv(0x30, tlv(0x30, algorithm + hashes_der + serial_der))
    exts = b""
    if draw(st.booleans()):
        critical = draw(st.sampled_from([b"", b"\x01\x01\xff"]))
        nonce = tlv(0x04, draw(st.binary(min_size=1, max_size=128)))
        exts = tlv(0xA2, tlv(0x30, tlv(0x30, oid("1.3.6.1.5.5.7.48.1.2") + critical + tlv(0x04, nonce))))
    return tlv(0x30, tlv(0x30, tlv(0x30, singles) + exts))


@settings(max_examples=500, deadline=None)
@given(common_requests())
def test_common_shape_takes_the_fast_path_with_the_reference_result(der):
    assert fast_path_taken(der)
    assert assert_same(der) != "malformedRequest"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_generated_requests_parse_the_same(der):
    assert_same(der)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(requests(), common_requests()), st.data())
def test_mutated_requests_parse_the_same(der, data):
    mutation = data.draw(st.sampled_from(["flip", "truncate", "insert", "append", "delete"]))
    position = data.draw(st.integers(0, len(der) - 1))
    if mutation == "flip":
        der = der[:position] + bytes([der[position] ^ data.draw(st.integers(1, 255))]) + der[position + 1:]
    elif mutation == "truncate":
        der = der[:position]
    elif mutation == "insert":
        der = der[:position] + data.draw(st.binary(min_size=1, max_size=3)) + der[position:]
    elif mutation == "append":
        der = der + data.draw(st.binary(min_size=1, max_size=3))
    else:
        der = der[:position] + der[position + 1:]
    assert_same(der)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_parse_the_same(der):
    assert_same(der)


def test_non_minimal_length_goes_to_the_reference_parser(demo_pki):
    issuer = x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(demo_pki.leaves["good"].read_bytes())
    der = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER
    )
    assert der[1] < 0x80
    long_form = b"\x30\x81" + der[1:2] + der[2:]  # same content, length in long form
    assert not fast_path_taken(long_form)
    assert_same(long_form)


def _one_cert_id_request(serial_tlv: bytes) -> bytes:
    """An OCSPRequest of one SHA-1 CertID whose serialNumber is ``serial_tlv`` as given."""

    def tlv(tag: int, content: bytes) -> bytes:
        return bytes([tag, len(content)]) + content

    cert_id = tlv(0x30, tlv(0x30, bytes.fromhex("06052b0e03021a0500")) + tlv(0x04, b"n" * 20) + tlv(0x04, b"k" * 20) + serial_tlv)
    return tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x30, cert_id))))


@pytest.mark.parametrize("content", ["0000", "0001", "007f", "ff80", "ffff", "00" * 20, "0028109cdf8c4ef2dd9ddf5b8e69ecbc946e7d29"])
def test_serial_that_is_not_a_minimal_integer_is_malformed_on_both_paths(content):
    # Fuzzing finding (bench/fuzz.py --target framing): the fast path took a serialNumber with a
    # redundant leading octet, and the response echoed that CertID, which strict DER readers
    # (cryptography, Go) cannot parse. The reference parser refuses it: so must the fast one.
    der = _one_cert_id_request(b"\x02" + bytes([len(content) // 2]) + bytes.fromhex(content))
    assert not fast_path_taken(der)
    assert assert_same(der) == "malformedRequest"


@pytest.mark.parametrize("content", ["00", "7f", "0080", "ff7f", "80", "01" * 20])
def test_minimal_serials_stay_on_the_fast_path(content):
    der = _one_cert_id_request(b"\x02" + bytes([len(content) // 2]) + bytes.fromhex(content))
    assert fast_path_taken(der)
    assert assert_same(der).cert_ids[0].serial_number == int.from_bytes(bytes.fromhex(content), "big", signed=True)


@pytest.mark.parametrize(
    "cert_id_content",
    [
        # Fuzzing finding (bench/fuzz.py --target framing): a CertID with a trailing
        # field was accepted by the reference parser and echoed, and cryptography read the
        # response as "ExtraData in ResponseData". The same for a non-minimal length inside it.
        bytes.fromhex("300906052b0e03021a0500") + b"\x04\x14" + b"n" * 20 + b"\x04\x14" + b"k" * 20 + b"\x02\x01\x05\x05\x00",
        bytes.fromhex("300906052b0e03021a0500") + b"\x04\x81\x14" + b"n" * 20 + b"\x04\x14" + b"k" * 20 + b"\x02\x01\x05",
    ],
    ids=["trailing-field", "non-minimal-length"],
)
def test_a_cert_id_that_is_not_der_is_malformed_on_both_paths(cert_id_content):
    cert_id = b"\x30" + bytes([len(cert_id_content)]) + cert_id_content
    der = b"\x30" + bytes([len(cert_id) + 4]) + b"\x30" + bytes([len(cert_id) + 2]) + b"\x30" + bytes([len(cert_id)]) + cert_id
    der = b"\x30" + bytes([len(der)]) + der
    assert not fast_path_taken(der)
    assert assert_same(der) == "malformedRequest"
