"""RFC 7512 pkcs11: URIs as signer keys."""

from __future__ import annotations

import pytest

from certstatus.signing.pkcs11_uri import parse_pkcs11_uri, pin_source_path


def test_path_and_query_attributes_are_percent_decoded() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=OCSP%20HSM;object=ocsp%2D2026;id=%01%02%ff;type=private"
        "?pin-source=file:/etc/certstatus/pin&module-path=/usr/lib/softhsm/libsofthsm2.so"
    )
    assert (uri.token, uri.object, uri.id, uri.type) == ("OCSP HSM", "ocsp-2026", b"\x01\x02\xff", "private")
    assert uri.pin_source == "file:/etc/certstatus/pin"
    assert uri.module_path == "/usr/lib/softhsm/libsofthsm2.so"
    assert uri.token_filter == {"token_label": "OCSP HSM"}
    assert uri.describe() == "token OCSP HSM, object ocsp-2026, id 0102ff"


def test_scheme_is_case_insensitive_and_vendor_attributes_are_ignored() -> None:
    uri = parse_pkcs11_uri("PKCS11:object=k;x-vendor=1")
    assert uri.object == "k" and uri.token is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pkcs11:token=t;object=k?pin-value=1234", "pin-value"),
        ("pkcs11:token=t;objet=k", "'objet' is not known"),
        ("pkcs11:token=t", "names no key"),
        ("pkcs11:token=t;object=a;object=b", "appears twice"),
        ("pkcs11:object", "has no '='"),
        ("pkcs11:object=k;type=secret", "type='secret'"),
        ("pkcs11:object=k;slot-id=x", "slot-id"),
        ("file:key.pem", "not a pkcs11: URI"),
    ],
)
def test_bad_uris_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pkcs11_uri(text)


def test_pin_source_names_a_file_never_a_command() -> None:
    assert pin_source_path("file:///run/pin") == "/run/pin"
    assert pin_source_path("file:/run/pin") == "/run/pin"
    assert pin_source_path("/run/pin") == "/run/pin"
    with pytest.raises(ValueError, match="not supported"):
        pin_source_path("|/usr/bin/get-pin")
    with pytest.raises(ValueError, match="not a file"):
        pin_source_path("https://example.test/pin")
