"""The HTTP edge, sans-IO, driven through a real application (config → prepare → build_application).

Every test writes a TOML configuration for the demo PKI(s), imports the data
with ``prepare`` and calls ``app.http.handle(method, raw_path, headers, body)``:
real store, real signer, real bytes, no sockets. Responses are read back with
``cryptography``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import textwrap
from collections.abc import Callable, Iterator, Sequence
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus

from certstatus.app import Application, build_application, prepare
from certstatus.clock import UTC, ManualClock
from certstatus.config import load_config
from certstatus.demo_pki import DemoPki
from certstatus.protocol import extensions
from certstatus.protocol.certid import issuer_hashes
from certstatus.protocol.response import UNSUCCESSFUL
from certstatus.server.http import HttpResponse

OCSP_REQUEST = {b"content-type": b"application/ocsp-request"}
DAY = 86400


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ca_table(name: str, pki: DemoPki, **options: str) -> str:
    """A [ca.NAME] table for a demo PKI; options are TOML values written as given (None: drop the key)."""
    values = {
        "certificate": f'"{pki.ca_cert}"',
        "crl": f'"{pki.crl}"',
        "index": f'"{pki.index}"',
        "signer_certificate": f'"{pki.ocsp_cert}"',
        "signer_key": f'"{pki.ocsp_key}"',
        **options,
    }
    lines = [f"[ca.{name}]"] + [f"{key} = {value}" for key, value in values.items() if value is not None]
    return "\n".join(lines) + "\n"


AppFactory = Callable[..., Application]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[AppFactory]:
    """Write a config, import its data, build the application; closes every store at the end."""
    apps: list[Application] = []

    def factory(*tables: str, server: str = "", clock: ManualClock | None = None) -> Application:
        folder = tmp_path / f"app{len(apps)}"
        folder.mkdir()
        config = folder / "certstatus.toml"
        config.write_text(f'[server]\ndatabase = "status.sqlite3"\n{textwrap.dedent(server)}\n' + "\n".join(tables))
        settings = load_config(config)
        clock = clock or ManualClock(dt.datetime.now(UTC).replace(microsecond=0))
        prepare(settings, clock)
        app = build_application(settings, clock=clock)
        app.clock = clock  # type: ignore[attr-defined]
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()  # stops its store change watcher too


@pytest.fixture
def app(make_app: AppFactory, demo_pki: DemoPki) -> Application:
    """One CA (the EC demo) with CRL and index, served on the common path '/'."""
    return make_app(ca_table("demo", demo_pki))


@pytest.fixture
def rsa_app(make_app: AppFactory, demo_pki_rsa: DemoPki) -> Application:
    """One CA (the RSA demo) on '/': its signatures, hence its ETags, are the same for the same second."""
    return make_app(ca_table("demo", demo_pki_rsa))


# --- requests and responses ------------------------------------------------------------------------


def request(pki: DemoPki, *names: str, alg: str = "sha1", nonce: bytes | None = None) -> bytes:
    """OCSP request DER for leaves of ``pki`` (cryptography's builder for one, asn1crypto for several)."""
    ca = _cert(pki.ca_cert)
    if len(names) == 1:
        builder = x509_ocsp.OCSPRequestBuilder().add_certificate(_cert(pki.leaves[names[0]]), ca, getattr(hashes, alg.upper())())
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.build().public_bytes(serialization.Encoding.DER)
    return multi_request([cert_id(ca, pki.serials[name], alg) for name in names], nonce)


def cert_id(issuer: x509.Certificate, serial: int, alg: str = "sha1") -> asn1_ocsp.CertId:
    name_hash, key_hash = issuer_hashes(issuer, alg)
    return asn1_ocsp.CertId(
        {"hash_algorithm": {"algorithm": alg}, "issuer_name_hash": name_hash, "issuer_key_hash": key_hash, "serial_number": serial}
    )


def multi_request(cert_ids: Sequence[asn1_ocsp.CertId], nonce: bytes | None = None) -> bytes:
    tbs: dict = {"request_list": [{"req_cert": cid} for cid in cert_ids]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def post(app: Application, der: bytes, path: bytes = b"/", headers: dict | None = None) -> HttpResponse:
    return app.http.handle("POST", path, {**OCSP_REQUEST, **(headers or {})}, der, "192.0.2.1")


def get(app: Application, der: bytes, prefix: bytes = b"/", headers: dict | None = None, method: str = "GET") -> HttpResponse:
    return app.http.handle(method, prefix + quote(base64.b64encode(der), safe="").encode(), headers or {}, b"")


def headers_of(response: HttpResponse) -> dict[bytes, bytes]:
    names = [name for name, _ in response.headers]
    assert len(names) == len(set(names)), f"repeated header in {names}"
    return dict(response.headers)


def successful(response: HttpResponse) -> x509_ocsp.OCSPResponse:
    assert response.status == 200
    assert headers_of(response)[b"content-type"] == b"application/ocsp-response"
    parsed = x509_ocsp.load_der_ocsp_response(response.body)
    assert parsed.response_status is OCSPResponseStatus.SUCCESSFUL
    return parsed


def assert_unsuccessful(response: HttpResponse, status: OCSPResponseStatus, http_status: int = 200) -> None:
    assert response.status == http_status
    assert response.body == UNSUCCESSFUL[status]
    assert x509_ocsp.load_der_ocsp_response(response.body).response_status is status
    headers = headers_of(response)
    assert headers[b"content-type"] == b"application/ocsp-response"
    assert headers[b"cache-control"] == b"no-cache"
    assert b"etag" not in headers and b"expires" not in headers


def statuses(parsed: x509_ocsp.OCSPResponse) -> list[tuple[int, OCSPCertStatus]]:
    return [(single.serial_number, single.certificate_status) for single in parsed.responses]


# --- POST ----------------------------------------------------------------------------------------


def test_post_good_serial_answers_good_signed_by_the_delegated_responder(app: Application, demo_pki: DemoPki) -> None:
    parsed = successful(post(app, request(demo_pki, "good")))

    assert statuses(parsed) == [(demo_pki.serials["good"], OCSPCertStatus.GOOD)]
    assert parsed.certificates == [_cert(demo_pki.ocsp_cert)]
    now = app.clock.now()  # type: ignore[attr-defined]
    assert parsed.this_update_utc == parsed.produced_at_utc == now
    assert parsed.next_update_utc == now + dt.timedelta(seconds=DAY)


def test_post_revoked_serial_answers_revoked_with_reason_time_and_invalidity_date(app: Application, demo_pki: DemoPki) -> None:
    parsed = successful(post(app, request(demo_pki, "revoked-keycompromise", alg="sha256")))

    assert parsed.certificate_status is OCSPCertStatus.REVOKED
    assert parsed.revocation_reason is x509.ReasonFlags.key_compromise
    revoked_at = demo_pki.revocation_times["revoked-keycompromise"]
    assert parsed.revocation_time_utc == revoked_at
    invalidity = parsed.single_extensions.get_extension_for_class(x509.InvalidityDate).value
    assert invalidity.invalidity_date_utc == revoked_at - dt.timedelta(hours=6)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("revoked-superseded", x509.ReasonFlags.superseded), ("revoked-hold", x509.ReasonFlags.certificate_hold),
     ("revoked-unspecified", None)],
)  # fmt: skip
def test_post_revoked_reasons_come_from_the_data(app: Application, demo_pki: DemoPki, name: str, reason) -> None:
    parsed = successful(post(app, request(demo_pki, name)))
    assert (parsed.certificate_status, parsed.revocation_reason) == (OCSPCertStatus.REVOKED, reason)
    assert parsed.revocation_time_utc == demo_pki.revocation_times[name]


def test_post_never_issued_serial_answers_unknown(app: Application, demo_pki: DemoPki) -> None:
    parsed = successful(post(app, request(demo_pki, "unknown")))
    assert statuses(parsed) == [(demo_pki.serials["unknown"], OCSPCertStatus.UNKNOWN)]


def test_post_several_cert_ids_are_answered_in_order(app: Application, demo_pki: DemoPki) -> None:
    names = ("unknown", "good", "revoked-hold", "good2")

    parsed = successful(post(app, request(demo_pki, *names, alg="sha256")))

    assert statuses(parsed) == [
        (demo_pki.serials["unknown"], OCSPCertStatus.UNKNOWN),
        (demo_pki.serials["good"], OCSPCertStatus.GOOD),
        (demo_pki.serials["revoked-hold"], OCSPCertStatus.REVOKED),
        (demo_pki.serials["good2"], OCSPCertStatus.GOOD),
    ]


def test_post_to_a_path_below_the_common_path_is_not_found(app: Application, demo_pki: DemoPki) -> None:
    response = post(app, request(demo_pki, "good"), path=b"/somewhere/else")
    assert response.status == 404
    assert headers_of(response)[b"cache-control"] == b"no-cache"


def test_post_path_query_string_is_ignored(app: Application, demo_pki: DemoPki) -> None:
    parsed = successful(post(app, request(demo_pki, "good"), path=b"/?x=1"))
    assert parsed.certificate_status is OCSPCertStatus.GOOD


# --- GET (RFC 5019 §5) -----------------------------------------------------------------------------


def _awkward_request(pki: DemoPki) -> tuple[bytes, str]:
    """A request whose base64 holds '+', '/' and '=' (the characters URLs and proxies mangle)."""
    for size in (16, 17, 18):
        for value in range(256):
            der = request(pki, "good", nonce=bytes([value]) * size)
            text = base64.b64encode(der).decode()
            if "+" in text and "/" in text and text.endswith("="):
                return der, text
    raise AssertionError("no request with '+', '/' and '=' in its base64")


def test_get_with_raw_base64_answers(app: Application, demo_pki: DemoPki) -> None:
    der, text = _awkward_request(demo_pki)
    response = app.http.handle("GET", b"/" + text.encode(), {}, b"")
    assert successful(response).certificate_status is OCSPCertStatus.GOOD


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: quote(t, safe=""),  # %2B %2F %3D
        lambda t: t.replace("+", " "),  # '+' turned into a space ...
        lambda t: t.replace("+", "%20"),  # ... and the space percent-encoded
        lambda t: "/" + t,  # doubled '/'
        lambda t: "//" + quote(t, safe=""),
        lambda t: t.rstrip("="),  # padding dropped
        lambda t: t.replace("+", "-").replace("/", "_"),  # URL-safe alphabet
    ],
    ids=["percent-encoded", "plus-as-space", "plus-as-%20", "doubled-slash", "tripled-slash-encoded", "no-padding", "url-safe"],
)
def test_get_tolerates_what_clients_and_proxies_do_to_the_path(app: Application, demo_pki: DemoPki, mangle) -> None:
    der, text = _awkward_request(demo_pki)

    response = app.http.handle("GET", b"/" + mangle(text).encode(), {}, b"")

    parsed = successful(response)
    assert parsed.certificate_status is OCSPCertStatus.GOOD
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == (
        x509_ocsp.load_der_ocsp_request(der).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    )


def test_head_returns_the_get_headers_without_body(rsa_app: Application, demo_pki_rsa: DemoPki) -> None:
    # RSA PKCS#1 v1.5 signatures are deterministic: at the same clock second GET and HEAD sign the same bytes.
    der = request(demo_pki_rsa, "good")

    head = get(rsa_app, der, method="HEAD")
    full = get(rsa_app, der)

    assert head.status == 200 and head.body == b""
    # The GET headers, plus the Content-Length the GET body would have (RFC 9110 §9.3.2).
    assert tuple(h for h in head.headers if h[0] != b"content-length") == full.headers
    assert headers_of(head)[b"content-length"] == b"%d" % len(full.body)
    assert headers_of(head)[b"etag"] == b'"%s"' % hashlib.sha256(full.body).hexdigest().encode()
    assert successful(full).certificate_status is OCSPCertStatus.GOOD


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow(app: Application, demo_pki: DemoPki, method: str) -> None:
    response = app.http.handle(method, b"/", OCSP_REQUEST, request(demo_pki, "good"))

    assert response.status == 405
    assert headers_of(response)[b"allow"] == b"GET, HEAD, POST"


@pytest.mark.parametrize("path", [b"/not-base64!", b"/favicon.ico", b"/%FF%FE", b"/robots.txt?x"])
def test_get_path_that_is_not_base64_is_not_found(app: Application, path: bytes) -> None:
    assert app.http.handle("GET", path, {}, b"").status == 404


def test_get_of_the_bare_root_is_not_found(app: Application) -> None:
    assert app.http.handle("GET", b"/", {}, b"").status == 404


def test_get_base64_that_is_not_a_request_is_malformed(app: Application) -> None:
    response = app.http.handle("GET", b"/" + base64.b64encode(b"not an OCSP request"), {}, b"")
    assert_unsuccessful(response, OCSPResponseStatus.MALFORMED_REQUEST)


def test_the_audit_log_records_the_http_method_of_each_request(make_app: AppFactory, demo_pki: DemoPki, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    app = make_app(ca_table("demo", demo_pki), f'[audit]\nlog = "{log}"\n')
    der = request(demo_pki, "good")
    successful(post(app, der))
    successful(get(app, der))
    assert get(app, der, method="HEAD").status == 200
    app.http.handle("GET", b"/" + base64.b64encode(b"not an OCSP request"), {}, b"")
    app.close()  # flushes the audit log
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["method"], r["response_status"]) for r in records] == [
        ("POST", "successful"), ("GET", "successful"), ("HEAD", "successful"), (None, "malformedRequest")
    ]


# --- size limits, malformed requests, refusals ----------------------------------------------------


def test_post_over_max_request_bytes_is_413(app: Application, demo_pki: DemoPki) -> None:
    limit = app.settings.server.max_request_bytes
    assert post(app, b"\x30" * (limit + 1)).status == 413
    # At the limit the body is read and refused as an OCSP error, not as HTTP 413.
    assert_unsuccessful(post(app, b"\x30" * limit), OCSPResponseStatus.MALFORMED_REQUEST)


def test_get_over_max_request_bytes_is_413(app: Application) -> None:
    limit = app.settings.server.max_request_bytes
    assert app.http.handle("GET", b"/" + base64.b64encode(b"\x30" * (limit + 1)), {}, b"").status == 413


def test_small_limit_from_config_applies(make_app: AppFactory, demo_pki: DemoPki) -> None:
    small = make_app(ca_table("demo", demo_pki), server="max_request_bytes = 64")
    der = request(demo_pki, "good", alg="sha256")
    assert len(der) > 64
    assert post(small, der).status == 413
    assert get(small, der).status == 413


@pytest.mark.parametrize(
    "body",
    [b"", b"\x00", b"garbage", b"\x30\x03\x02\x01\x05"],
    ids=["empty", "zero", "garbage", "not-a-request"],
)
def test_post_of_bytes_that_are_not_a_request_answers_malformed(app: Application, body: bytes) -> None:
    assert_unsuccessful(post(app, body), OCSPResponseStatus.MALFORMED_REQUEST)


def test_post_of_truncated_request_answers_malformed(app: Application, demo_pki: DemoPki) -> None:
    der = request(demo_pki, "good", nonce=b"n" * 16)
    for length in (1, 2, len(der) // 2, len(der) - 1):
        assert_unsuccessful(post(app, der[:length]), OCSPResponseStatus.MALFORMED_REQUEST)


def test_unserved_issuer_answers_unauthorized(app: Application, demo_pki_rsa: DemoPki) -> None:
    assert_unsuccessful(post(app, request(demo_pki_rsa, "good")), OCSPResponseStatus.UNAUTHORIZED)


def test_head_of_an_error_has_no_body(app: Application, demo_pki_rsa: DemoPki) -> None:
    response = get(app, request(demo_pki_rsa, "good"), method="HEAD")
    assert response.status == 200 and response.body == b""
    assert headers_of(response)[b"cache-control"] == b"no-cache"


# --- several CAs ---------------------------------------------------------------------------------


@pytest.fixture
def two_cas(make_app: AppFactory, demo_pki: DemoPki, demo_pki_rsa: DemoPki) -> Application:
    """The EC demo CA at /ec, the RSA demo CA at /rsa, both at '/'. Both CAs are 'CN=certstatus demo CA'."""
    return make_app(ca_table("ec", demo_pki, path='"/ec"'), ca_table("rsa", demo_pki_rsa, path='"/rsa/"'))


def test_each_ca_answers_on_its_own_path_and_on_the_common_path(two_cas: Application, demo_pki: DemoPki, demo_pki_rsa: DemoPki) -> None:
    for pki, path in ((demo_pki, b"/ec"), (demo_pki_rsa, b"/rsa")):
        der = request(pki, "revoked-superseded")
        for response in (post(two_cas, der, path), post(two_cas, der, path + b"/"), post(two_cas, der), get(two_cas, der, path + b"/")):
            parsed = successful(response)
            assert statuses(parsed) == [(pki.serials["revoked-superseded"], OCSPCertStatus.REVOKED)]
            assert parsed.certificates == [_cert(pki.ocsp_cert)]


def test_other_cas_cert_on_a_ca_path_answers_unauthorized(two_cas: Application, demo_pki: DemoPki, demo_pki_rsa: DemoPki) -> None:
    assert_unsuccessful(post(two_cas, request(demo_pki_rsa, "good"), b"/ec"), OCSPResponseStatus.UNAUTHORIZED)
    assert_unsuccessful(post(two_cas, request(demo_pki, "good"), b"/rsa/"), OCSPResponseStatus.UNAUTHORIZED)
    assert_unsuccessful(get(two_cas, request(demo_pki, "good"), b"/rsa/"), OCSPResponseStatus.UNAUTHORIZED)


def test_cert_ids_of_two_served_cas_in_one_request_answer_unauthorized(two_cas: Application, demo_pki: DemoPki, demo_pki_rsa: DemoPki) -> None:
    der = multi_request(
        [cert_id(_cert(demo_pki.ca_cert), demo_pki.serials["good"]), cert_id(_cert(demo_pki_rsa.ca_cert), demo_pki_rsa.serials["good"])]
    )
    assert_unsuccessful(post(two_cas, der), OCSPResponseStatus.UNAUTHORIZED)


def test_served_and_unserved_issuer_in_one_request_answer_the_unserved_unknown(
    two_cas: Application, demo_pki: DemoPki, demo_pki_rsa: DemoPki
) -> None:
    stranger = asn1_ocsp.CertId(
        {"hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": b"\x11" * 20, "issuer_key_hash": b"\x22" * 20,
         "serial_number": demo_pki.serials["revoked-hold"]}
    )  # fmt: skip
    der = multi_request([stranger, cert_id(_cert(demo_pki.ca_cert), demo_pki.serials["revoked-hold"])])

    parsed = successful(post(two_cas, der))

    assert statuses(parsed) == [
        (demo_pki.serials["revoked-hold"], OCSPCertStatus.UNKNOWN),
        (demo_pki.serials["revoked-hold"], OCSPCertStatus.REVOKED),
    ]
    # On the EC path the RSA CA is not served either: its CertID is answered unknown.
    mixed = multi_request(
        [cert_id(_cert(demo_pki.ca_cert), demo_pki.serials["good"]), cert_id(_cert(demo_pki_rsa.ca_cert), demo_pki_rsa.serials["good"])]
    )
    assert statuses(successful(post(two_cas, mixed, b"/ec"))) == [
        (demo_pki.serials["good"], OCSPCertStatus.GOOD),
        (demo_pki_rsa.serials["good"], OCSPCertStatus.UNKNOWN),
    ]


def test_ca_paths_only_when_common_path_is_off(make_app: AppFactory, demo_pki: DemoPki) -> None:
    app = make_app(ca_table("demo", demo_pki, path='"/demo"'), server='common_path = ""')
    der = request(demo_pki, "good")

    assert post(app, der).status == 404
    assert get(app, der).status == 404
    assert post(app, der, b"/other").status == 404
    assert successful(post(app, der, b"/demo")).certificate_status is OCSPCertStatus.GOOD
    assert successful(get(app, der, b"/demo/")).certificate_status is OCSPCertStatus.GOOD
    assert successful(get(app, der, b"/demo//")).certificate_status is OCSPCertStatus.GOOD


# --- caching headers (RFC 5019 §6.2) ---------------------------------------------------------------


def test_successful_response_carries_rfc5019_cache_headers(app: Application, demo_pki: DemoPki) -> None:
    response = get(app, request(demo_pki, "good"))
    parsed = successful(response)
    headers = headers_of(response)

    assert headers[b"cache-control"] == b"max-age=%d, public, no-transform, must-revalidate" % DAY
    assert headers[b"last-modified"] == format_datetime(parsed.this_update_utc, usegmt=True).encode()
    assert headers[b"expires"] == format_datetime(parsed.next_update_utc, usegmt=True).encode()
    assert headers[b"etag"] == b'"%s"' % hashlib.sha256(response.body).hexdigest().encode()
    assert headers[b"last-modified"].endswith(b" GMT")


def test_max_age_counts_down_to_next_update_with_the_clock(make_app: AppFactory, demo_pki: DemoPki) -> None:
    clock = ManualClock(dt.datetime.now(UTC).replace(microsecond=0))
    app = make_app(ca_table("demo", demo_pki, validity='"2h"'), clock=clock)
    response = get(app, request(demo_pki, "good"))
    assert headers_of(response)[b"cache-control"].startswith(b"max-age=7200,")
    parsed = successful(response)
    assert parsed.next_update_utc - parsed.this_update_utc == dt.timedelta(hours=2)


@pytest.mark.parametrize(
    "if_none_match",
    [b"{etag}", b'"other", {etag}', b"W/{etag}", b'W/"nope",W/{etag}', b"*"],
    ids=["exact", "list", "weak", "weak-list", "star"],
)
def test_if_none_match_answers_304_without_body(rsa_app: Application, demo_pki_rsa: DemoPki, if_none_match: bytes) -> None:
    der = request(demo_pki_rsa, "good")
    first = get(rsa_app, der)
    etag = headers_of(first)[b"etag"]

    again = get(rsa_app, der, headers={b"if-none-match": if_none_match.replace(b"{etag}", etag)})

    assert again.status == 304 and again.body == b""
    headers = headers_of(again)
    assert headers[b"etag"] == etag
    assert headers[b"cache-control"].startswith(b"max-age=")


def test_if_none_match_with_another_tag_answers_200(app: Application, demo_pki: DemoPki) -> None:
    response = get(app, request(demo_pki, "good"), headers={b"if-none-match": b'"0000", W/"1111"'})
    assert successful(response)


def test_if_none_match_of_a_response_from_an_earlier_second_answers_200(rsa_app: Application, demo_pki_rsa: DemoPki) -> None:
    der = request(demo_pki_rsa, "good")
    etag = headers_of(get(rsa_app, der))[b"etag"]
    rsa_app.clock.advance(1)  # type: ignore[attr-defined]

    response = get(rsa_app, der, headers={b"if-none-match": etag})

    assert successful(response)
    assert headers_of(response)[b"etag"] != etag


@pytest.mark.parametrize("mode", ["cached", "precomputed"])
def test_revalidating_with_the_etag_just_received_answers_304(make_app: AppFactory, demo_pki: DemoPki, mode: str) -> None:
    # Modes that reuse a signed response keep its bytes, so the ETag a client (or a CDN)
    # received revalidates to 304. Live mode signs every request anew by definition, so
    # its ETag changes (docs/architecture.md); see the two tests above.
    app = make_app(ca_table("demo", demo_pki, mode=f'"{mode}"'))
    der = request(demo_pki, "good")
    first = get(app, der)
    etag = headers_of(first)[b"etag"]

    again = get(app, der, headers={b"if-none-match": etag})

    assert successful(first).certificate_status is OCSPCertStatus.GOOD
    assert again.status == 304 and again.body == b""
    assert headers_of(again)[b"etag"] == etag


def test_nonce_response_is_no_store_and_never_304(app: Application, demo_pki: DemoPki) -> None:
    nonce = b"\x42" * 16
    der = request(demo_pki, "good", nonce=nonce)

    response = post(app, der, headers={b"if-none-match": b"*"})

    parsed = successful(response)
    headers = headers_of(response)
    assert headers[b"cache-control"] == b"no-store"
    assert b"etag" not in headers and b"expires" not in headers and b"last-modified" not in headers
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_date_header_follows_the_clock_forward_and_back(app: Application, demo_pki: DemoPki) -> None:
    # The handler formats Date once per second: every response must still carry its own second,
    # also when the clock moves back (an injected clock, or a wall clock stepped by NTP).
    der = request(demo_pki, "good")
    start = app.clock.now()
    expected = []
    for step in (0, 0.4, 1, 3600, -7200):
        app.clock.advance(step)  # type: ignore[attr-defined]
        response = post(app, der)
        now = app.clock.now().replace(microsecond=0)
        expected.append(format_datetime(now, usegmt=True).encode())
        assert headers_of(response)[b"date"] == expected[-1]
        assert headers_of(response)[b"last-modified"] == expected[-1]  # thisUpdate: this second too
    assert len(set(expected)) == 4 and expected[0] == format_datetime(start, usegmt=True).encode()


def test_legacy_raw_nonce_is_echoed_byte_for_byte(app: Application, demo_pki: DemoPki) -> None:
    raw = bytes(range(0xA0, 0xB0))  # extnValue content without the inner OCTET STRING (old clients)
    nonce_extension = b"\x30\x1d\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x02\x04\x10" + raw
    plain = request(demo_pki, "good", nonce=b"\x00" * 14)  # same length: 04 0e + 14 octets = 16 octets
    der = plain.replace(b"\x04\x10\x04\x0e" + b"\x00" * 14, b"\x04\x10" + raw)
    assert der != plain and nonce_extension in der

    response = post(app, der)

    parsed = successful(response)
    assert parsed.certificate_status is OCSPCertStatus.GOOD
    assert nonce_extension in parsed.tbs_response_bytes
    assert headers_of(response)[b"cache-control"] == b"no-store"


def test_moving_the_clock_moves_this_update_and_produced_at(app: Application, demo_pki: DemoPki) -> None:
    der = request(demo_pki, "good")
    first = successful(post(app, der))

    app.clock.advance(3600)  # type: ignore[attr-defined]
    second_response = post(app, der)
    second = successful(second_response)

    assert second.this_update_utc == first.this_update_utc + dt.timedelta(hours=1)
    assert second.produced_at_utc == first.produced_at_utc + dt.timedelta(hours=1)
    assert second.next_update_utc == first.next_update_utc + dt.timedelta(hours=1)
    assert headers_of(second_response)[b"last-modified"] == format_datetime(second.this_update_utc, usegmt=True).encode()


def test_stale_crl_answers_try_later(app: Application, demo_pki: DemoPki) -> None:
    app.clock.advance(8 * DAY)  # type: ignore[attr-defined]
    assert_unsuccessful(post(app, request(demo_pki, "good")), OCSPResponseStatus.TRY_LATER, 503)


# --- status semantics per configured data ----------------------------------------------------------


def test_extended_revoked_config_answers_never_issued_serials_revoked(make_app: AppFactory, demo_pki: DemoPki) -> None:
    app = make_app(ca_table("demo", demo_pki, unknown_serials='"revoked"'))

    parsed = successful(post(app, request(demo_pki, "unknown")))

    assert parsed.certificate_status is OCSPCertStatus.REVOKED
    assert parsed.revocation_reason is x509.ReasonFlags.certificate_hold
    assert parsed.revocation_time_utc == dt.datetime(1970, 1, 1, tzinfo=UTC)
    oids = [ext.oid.dotted_string for ext in parsed.extensions]
    assert oids == [extensions.EXTENDED_REVOKE]
    # Issued serials keep their real status, without the extension.
    good = successful(post(app, request(demo_pki, "good")))
    assert good.certificate_status is OCSPCertStatus.GOOD
    assert list(good.extensions) == []


def test_crl_only_ca_answers_good_for_a_serial_not_on_the_crl(make_app: AppFactory, demo_pki: DemoPki) -> None:
    app = make_app(ca_table("demo", demo_pki, index=None))

    assert successful(post(app, request(demo_pki, "unknown"))).certificate_status is OCSPCertStatus.GOOD
    assert successful(post(app, request(demo_pki, "revoked-hold"))).certificate_status is OCSPCertStatus.REVOKED


def test_index_only_ca_answers_unknown_for_a_never_issued_serial(make_app: AppFactory, demo_pki: DemoPki) -> None:
    app = make_app(ca_table("demo", demo_pki, crl=None))

    assert successful(post(app, request(demo_pki, "unknown"))).certificate_status is OCSPCertStatus.UNKNOWN
    assert successful(post(app, request(demo_pki, "good"))).certificate_status is OCSPCertStatus.GOOD
    revoked = successful(post(app, request(demo_pki, "revoked-keycompromise")))
    assert revoked.certificate_status is OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise


def test_crl_and_issued_list_ca_answers_unknown_for_a_never_issued_serial(make_app: AppFactory, demo_pki: DemoPki) -> None:
    app = make_app(ca_table("demo", demo_pki, index=None, issued=f'"{demo_pki.issued}"'))
    der = request(demo_pki, "unknown", "good", "revoked-superseded")

    assert [s for _, s in statuses(successful(post(app, der)))] == [
        OCSPCertStatus.UNKNOWN, OCSPCertStatus.GOOD, OCSPCertStatus.REVOKED,
    ]  # fmt: skip


def test_ca_signed_config_answers_without_certificates(make_app: AppFactory, demo_pki: DemoPki) -> None:
    app = make_app(ca_table("demo", demo_pki, signer_certificate=f'"{demo_pki.ca_cert}"', signer_key=f'"{demo_pki.ca_key}"', responder_id='"name"'))

    parsed = successful(post(app, request(demo_pki, "good")))

    assert parsed.certificates == []
    assert parsed.responder_name == _cert(demo_pki.ca_cert).subject


def test_ca_whose_import_failed_answers_try_later_with_503(make_app: AppFactory, demo_pki: DemoPki, tmp_path: Path) -> None:
    app = make_app(ca_table("demo", demo_pki, crl=f'"{tmp_path / "missing.crl"}"', index=None))

    response = post(app, request(demo_pki, "good"))

    assert_unsuccessful(response, OCSPResponseStatus.TRY_LATER, http_status=503)
    assert get(app, request(demo_pki, "good")).status == 503
