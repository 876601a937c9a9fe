"""Checks of a remote responder's answer before the proxy passes it on (RFC 6960 §3.2).

Responses are real: signed with ``cryptography``'s OCSPResponseBuilder by the
demo PKI's keys, right or wrong.
"""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certstatus.access.response_check import ResponseRejected, check_response
from certstatus.protocol.request import parse_request
from tests.ocsp_client import request_der

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _now() -> dt.datetime:
    """The checking time: the wall clock, as producedAt is (cryptography's builder stamps it at signing);
    NOW, taken at import, is minutes old when a long suite reaches these tests."""
    return dt.datetime.now(dt.timezone.utc)


def _load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def _key(path):
    return serialization.load_pem_private_key(path.read_bytes(), None)


@pytest.fixture(scope="module")
def parts(demo_pki):
    return {
        "ca": _load(demo_pki.ca_cert), "ca_key": _key(demo_pki.ca_key),
        "ocsp": _load(demo_pki.ocsp_cert), "ocsp_key": _key(demo_pki.ocsp_key),
        "good": _load(demo_pki.leaves["good"]), "good_key": _key(demo_pki.leaves["good"].with_suffix(".key")),
        "good2": _load(demo_pki.leaves["good2"]),
    }


def _response(parts, *, cert="good", signer="ocsp", signer_key="ocsp_key", this_update=NOW, next_update=NOW + dt.timedelta(hours=4),
              nonce=None, include=True, tamper=False) -> bytes:
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=parts[cert], issuer=parts["ca"], algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=this_update, next_update=next_update, revocation_time=None, revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, parts[signer])
    if include and signer != "ca":
        builder = builder.certificates([parts[signer]])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    der = builder.sign(parts[signer_key], hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    if tamper:  # flip one bit of the signature
        response = asn1_ocsp.OCSPResponse.load(der)
        basic = response["response_bytes"]["response"].parsed
        signature = bytearray(basic["signature"].native)
        signature[-1] ^= 1
        basic["signature"] = bytes(signature)
        response["response_bytes"]["response"] = basic
        der = response.dump(force=True)
    return der


def _query(demo_pki, leaf="good", nonce=None):
    return parse_request(request_der(demo_pki.leaves[leaf], demo_pki.ca_cert, nonce=nonce))


def test_response_of_the_delegated_responder_passes(demo_pki, parts):
    checked = check_response(_response(parts), _query(demo_pki), parts["ca"], _now())
    assert checked.statuses == ("good",) and checked.next_update == NOW + dt.timedelta(hours=4)


def test_response_signed_by_the_ca_itself_passes(demo_pki, parts):
    checked = check_response(_response(parts, signer="ca", signer_key="ca_key"), _query(demo_pki), parts["ca"], _now())
    assert checked.statuses == ("good",)


def test_response_with_the_nonce_echoed_passes_and_a_different_nonce_fails(demo_pki, parts):
    nonce = b"\x01" * 16
    assert check_response(_response(parts, nonce=nonce), _query(demo_pki, nonce=nonce), parts["ca"], _now()).has_nonce
    with pytest.raises(ResponseRejected, match="nonce differs"):
        check_response(_response(parts, nonce=b"\x02" * 16), _query(demo_pki, nonce=nonce), parts["ca"], _now())


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"signer": "good", "signer_key": "good_key"}, "lacks id-kp-OCSPSigning"),
        ({"tamper": True}, "signature does not verify"),
        ({"include": False}, "neither the CA nor a delegated responder"),
        ({"cert": "good2"}, "not asked"),
        ({"next_update": NOW - dt.timedelta(minutes=1), "this_update": NOW - dt.timedelta(hours=4)}, "has passed"),
        ({"this_update": NOW + dt.timedelta(hours=1)}, "in the future"),
    ],
)
def test_response_failing_a_check_is_rejected_with_the_reason(demo_pki, parts, changes, words):
    with pytest.raises(ResponseRejected, match=words):
        check_response(_response(parts, **changes), _query(demo_pki), parts["ca"], _now())


def test_response_signed_for_another_ca_is_rejected(demo_pki, demo_pki_rsa, parts):
    rsa_ca = _load(demo_pki_rsa.ca_cert)
    with pytest.raises(ResponseRejected, match="not issued by the CA"):
        check_response(_response(parts), _query(demo_pki), rsa_ca, _now())


def test_unsuccessful_response_is_returned_as_its_status(demo_pki, parts):
    unauthorized = bytes((0x30, 0x03, 0x0A, 0x01, 6))
    assert check_response(unauthorized, _query(demo_pki), parts["ca"], _now()).status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    with pytest.raises(ResponseRejected, match="not an OCSP response"):
        check_response(b"<html>", _query(demo_pki), parts["ca"], _now())
