"""The HTTP edge of the live server, seen by an HTTP client (httpx): GET/POST, errors, cache headers.

Every exchange uses a 2 s client timeout: the server must answer malformed
input at once instead of waiting for bytes a lying DER length promises.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from certstatus.demo_pki import DemoPki
from tests.integration.conftest import (
    build_request,
    cryptography_request,
    load_cert,
    octet_string,
    post,
    verify_signed_response,
)
from tests.servers import Server

pytestmark = pytest.mark.integration

CLIENT_TIMEOUT = 2.0
MALFORMED_REQUEST = bytes.fromhex("3003 0a01 01")
UNAUTHORIZED = bytes.fromhex("3003 0a01 06")
OCSP_RESPONSE_TYPE = "application/ocsp-response"
CACHE_CONTROL = re.compile(r"^max-age=(\d+), public, no-transform, must-revalidate$")


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One keep-alive client for the module; every request must be answered within 2 s."""
    with httpx.Client(timeout=CLIENT_TIMEOUT) as http:
        yield http


def _good_request(pki: DemoPki, nonce: bytes | None = None) -> bytes:
    return cryptography_request(pki.leaves["good"], pki.ca_cert, nonce=nonce)


def _check_good(answer: httpx.Response, pki: DemoPki) -> ocsp.OCSPResponse:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == OCSP_RESPONSE_TYPE
    response = verify_signed_response(answer.content, issuer=load_cert(pki.ca_cert), delegated=load_cert(pki.ocsp_cert))
    (single,) = list(response.responses)
    assert single.serial_number == pki.serials["good"]
    assert single.certificate_status is ocsp.OCSPCertStatus.GOOD
    return response


def _assert_error(answer: httpx.Response, status: int, body: bytes | None = None) -> None:
    assert answer.status_code == status, (answer.status_code, answer.content)
    assert answer.headers["cache-control"] == "no-cache"
    assert "etag" not in answer.headers and "expires" not in answer.headers
    if body is not None:
        assert answer.headers["content-type"] == OCSP_RESPONSE_TYPE
        assert answer.content == body


# --------------------------------------------------------------------------- POST and GET


def test_post_answers_a_signed_response(demo_server: Server, demo_pki: DemoPki, client: httpx.Client) -> None:
    _check_good(post(client, demo_server.origin + "/", _good_request(demo_pki)), demo_pki)


@pytest.fixture(scope="module")
def awkward_get_request(demo_pki: DemoPki) -> tuple[bytes, bytes, str]:
    """(request DER, its nonce, base64) where the base64 holds '+', '/' and '=' — the characters paths mangle."""
    for _ in range(10_000):
        nonce = os.urandom(16)
        der = _good_request(demo_pki, nonce)
        text = base64.b64encode(der).decode()
        if "+" in text and "/" in text and text.endswith("="):
            return der, nonce, text
    raise AssertionError("no request with '+', '/' and '=' in its base64 found")


@pytest.mark.parametrize(
    "variant",
    ["raw", "percent-encoded", "plus-as-space", "doubled-slash", "url-safe-unpadded"],
)
def test_get_decodes_base64_as_clients_and_proxies_send_it(
    demo_server: Server, demo_pki: DemoPki, client: httpx.Client, awkward_get_request, variant: str
) -> None:
    _, nonce, text = awkward_get_request
    path = {
        "raw": "/" + text,
        "percent-encoded": "/" + urllib.parse.quote(text, safe=""),
        "plus-as-space": "/" + text.replace("+", "%20"),
        "doubled-slash": "//" + text,
        "url-safe-unpadded": "/" + base64.urlsafe_b64encode(base64.b64decode(text)).decode().rstrip("="),
    }[variant]
    request = client.build_request("GET", demo_server.origin + path)
    assert request.url.raw_path == path.encode()  # the bytes on the wire are the variant's
    response = _check_good(client.send(request), demo_pki)
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_get_on_a_ca_path(multi_server: Server, client: httpx.Client) -> None:
    ca1 = multi_server.pkis["ca1"]
    text = base64.b64encode(_good_request(ca1)).decode()
    _check_good(client.get(f"{multi_server.origin}/ca1/{urllib.parse.quote(text, safe='')}"), ca1)


# --------------------------------------------------------------------------- malformed and refused requests


def _malformed_bodies(pki: DemoPki) -> dict[str, bytes]:
    valid = _good_request(pki)
    return {
        "empty": b"",
        "garbage": b"this is not DER at all",
        # The outer SEQUENCE claims its full length; Content-Length is the half actually sent.
        "truncated": valid[: len(valid) // 2],
        "trailing-bytes": valid + b"\x00\x00",
        "not-a-request": x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).tbs_certificate_bytes,
        "nonce-of-0-octets": build_request(pki.leaves["good"], pki.ca_cert, nonce_extn_value=octet_string(b"")),
        "nonce-of-129-octets": build_request(pki.leaves["good"], pki.ca_cert, nonce_extn_value=octet_string(b"n" * 129)),
        "md5-cert-id": build_request(pki.leaves["good"], pki.ca_cert, hash_oid="1.2.840.113549.2.5"),
        "unregistered-hash-oid": build_request(pki.leaves["good"], pki.ca_cert, hash_oid="1.2.3.4.5"),
    }


@pytest.mark.parametrize(
    "case",
    ["empty", "garbage", "truncated", "trailing-bytes", "not-a-request", "nonce-of-0-octets",
     "nonce-of-129-octets", "md5-cert-id", "unregistered-hash-oid"],
)  # fmt: skip
def test_malformed_request_is_answered_at_once(demo_server: Server, demo_pki: DemoPki, client: httpx.Client, case: str) -> None:
    body = _malformed_bodies(demo_pki)[case]
    started = time.monotonic()
    answer = post(client, demo_server.origin + "/", body)
    assert time.monotonic() - started < CLIENT_TIMEOUT
    _assert_error(answer, 200, MALFORMED_REQUEST)


@pytest.mark.parametrize("size", [1, 128])
def test_nonce_of_allowed_length_is_echoed(demo_server: Server, demo_pki: DemoPki, client: httpx.Client, size: int) -> None:
    """RFC 9654 §2.1 bounds: 1 and 128 octets are answered (malformed just outside, above)."""
    nonce = os.urandom(size)
    body = build_request(demo_pki.leaves["good"], demo_pki.ca_cert, nonce_extn_value=octet_string(nonce))
    response = _check_good(post(client, demo_server.origin + "/", body), demo_pki)
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_get_of_base64_garbage_is_malformed(demo_server: Server, client: httpx.Client) -> None:
    _assert_error(client.get(demo_server.origin + "/" + base64.b64encode(b"garbage!").decode()), 200, MALFORMED_REQUEST)


def test_body_over_the_limit_is_413(demo_server: Server, client: httpx.Client) -> None:
    _assert_error(post(client, demo_server.origin + "/", b"\x30" * 10_001), 413)
    # Without Content-Length (chunked), the server stops reading at the limit.
    chunks = (b"\x30" * 1000 for _ in range(12))
    answer = client.post(demo_server.origin + "/", content=chunks, headers={"content-type": "application/ocsp-request"})
    _assert_error(answer, 413)
    # At the limit, the bytes are read and judged.
    _assert_error(post(client, demo_server.origin + "/", b"\x30" * 10_000), 200, MALFORMED_REQUEST)


@pytest.mark.parametrize(("method", "path"), [("POST", "/no/such/path"), ("GET", "/favicon.ico"), ("POST", "/ca3/")])
def test_unknown_path_is_404(multi_server: Server, client: httpx.Client, method: str, path: str) -> None:
    _assert_error(client.request(method, multi_server.origin + path, content=b"" if method == "POST" else None), 404)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(demo_server: Server, client: httpx.Client, method: str) -> None:
    answer = client.request(method, demo_server.origin + "/", content=b"x")
    _assert_error(answer, 405)
    assert {m.strip() for m in answer.headers["allow"].split(",")} == {"GET", "HEAD", "POST"}


def test_other_cas_certificate_on_a_ca_path_is_unauthorized(multi_server: Server, client: httpx.Client) -> None:
    ca2 = multi_server.pkis["ca2"]
    _assert_error(post(client, multi_server.origin + "/ca1/", _good_request(ca2)), 200, UNAUTHORIZED)
    text = base64.b64encode(_good_request(ca2)).decode()
    _assert_error(client.get(f"{multi_server.origin}/ca1/{text}"), 200, UNAUTHORIZED)


# --------------------------------------------------------------------------- cache headers (RFC 5019 §6.2)


def _cacheable_get(server: Server, pki: DemoPki, client: httpx.Client) -> tuple[httpx.Response, str]:
    path = "/" + urllib.parse.quote(base64.b64encode(_good_request(pki)).decode(), safe="")
    return client.get(server.origin + path), path


def test_nonce_less_response_carries_rfc5019_cache_headers(demo_server: Server, demo_pki: DemoPki, client: httpx.Client) -> None:
    answer, _ = _cacheable_get(demo_server, demo_pki, client)
    response = _check_good(answer, demo_pki)
    (single,) = list(response.responses)
    match = CACHE_CONTROL.match(answer.headers["cache-control"])
    assert match, answer.headers["cache-control"]
    max_age = int(match.group(1))
    assert parsedate_to_datetime(answer.headers["last-modified"]) == single.this_update_utc
    assert parsedate_to_datetime(answer.headers["expires"]) == single.next_update_utc
    # max-age counts down to nextUpdate from the moment the response is sent.
    remaining = (single.next_update_utc - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert abs(max_age - remaining) <= 3
    date = parsedate_to_datetime(answer.headers["date"])
    assert abs(max_age - (single.next_update_utc - date).total_seconds()) <= 3
    assert re.fullmatch(r'(W/)?"[^"]+"', answer.headers["etag"])


def test_post_without_nonce_carries_the_same_cache_headers(demo_server: Server, demo_pki: DemoPki, client: httpx.Client) -> None:
    answer = post(client, demo_server.origin + "/", _good_request(demo_pki))
    _check_good(answer, demo_pki)
    assert CACHE_CONTROL.match(answer.headers["cache-control"])
    assert {"last-modified", "expires", "etag"} <= set(answer.headers)


def test_if_none_match_star_is_304(demo_server: Server, demo_pki: DemoPki, client: httpx.Client) -> None:
    _, path = _cacheable_get(demo_server, demo_pki, client)
    again = client.get(demo_server.origin + path, headers={"if-none-match": "*"})
    assert again.status_code == 304 and again.content == b""
    assert CACHE_CONTROL.match(again.headers["cache-control"])


def test_response_with_nonce_is_no_store(demo_server: Server, demo_pki: DemoPki, client: httpx.Client) -> None:
    nonce = os.urandom(32)
    for answer in (
        post(client, demo_server.origin + "/", _good_request(demo_pki, nonce)),
        client.get(demo_server.origin + "/" + urllib.parse.quote(base64.b64encode(_good_request(demo_pki, nonce)).decode(), safe="")),
    ):
        response = _check_good(answer, demo_pki)
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert answer.headers["cache-control"] == "no-store"
        assert "etag" not in answer.headers
        # A nonce response is for one client only: If-None-Match must not turn it into a 304.
    again = post(client, demo_server.origin + "/", _good_request(demo_pki, nonce), **{"if-none-match": "*"})
    assert again.status_code == 200


def test_head_reports_the_get_headers_without_a_body(demo_server: Server, demo_pki: DemoPki, client: httpx.Client) -> None:
    answer, path = _cacheable_get(demo_server, demo_pki, client)
    head = client.head(demo_server.origin + path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == OCSP_RESPONSE_TYPE
    assert CACHE_CONTROL.match(head.headers["cache-control"])
    if "content-length" in head.headers:
        # Live signing: the ECDSA signature's DER length varies by a byte or two between responses.
        assert abs(int(head.headers["content-length"]) - len(answer.content)) <= 2


def test_last_modified_is_never_later_than_date(demo_server: Server, demo_pki: DemoPki, client: httpx.Client) -> None:
    body = _good_request(demo_pki)
    for _ in range(2):
        # Just after a second boundary, where a lagging Date shows.
        time.sleep(1.005 - time.time() % 1)
        for _ in range(4):
            with httpx.Client(timeout=CLIENT_TIMEOUT) as fresh:  # new connections reach both workers
                answer = post(fresh, demo_server.origin + "/", body)
            assert parsedate_to_datetime(answer.headers["last-modified"]) <= parsedate_to_datetime(answer.headers["date"])
