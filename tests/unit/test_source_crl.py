"""load_crl: CRLs (RFC 5280 §5) from the demo PKI and from `openssl ca -gencrl`, good and bad."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from certstatus.clock import UTC
from certstatus.demo_pki import DemoPki, PrivateKey, new_key, sign_crl
from certstatus.errors import SourceError
from certstatus.model import RevokedEntry
from certstatus.sources.crl import load_crl
from tests.openssl_ca import OpenSslCa

NOW = dt.datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


def _ca(pki: DemoPki) -> tuple[x509.Certificate, PrivateKey]:
    cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    return cert, key  # type: ignore[return-value]


def _der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def _builder(ca: x509.Certificate) -> x509.CertificateRevocationListBuilder:
    """A CRL builder for ``ca`` without extensions, for CRLs sign_crl cannot make."""
    return x509.CertificateRevocationListBuilder(
        issuer_name=ca.subject, last_update=NOW, next_update=NOW + dt.timedelta(days=1)
    )


def _revoked(serial: int, *extensions: tuple[x509.ExtensionType, bool]) -> x509.RevokedCertificate:
    builder = x509.RevokedCertificateBuilder(serial, NOW - dt.timedelta(hours=1))
    for value, critical in extensions:
        builder = builder.add_extension(value, critical)
    return builder.build()


def test_demo_crl_yields_entries_with_reasons_times_and_crl_number(demo_pki: DemoPki) -> None:
    ca, _ = _ca(demo_pki)
    data = load_crl(demo_pki.crl.read_bytes(), ca, origin=str(demo_pki.crl))

    assert data.crl_number == 1
    assert data.delta_base is None
    assert data.next_update is not None
    assert data.next_update - data.this_update == dt.timedelta(days=7, minutes=1)
    assert data.this_update.utcoffset() == dt.timedelta(0)
    assert [e.serial_number for e in data.entries] == sorted(e.serial_number for e in data.entries)
    by_serial = {e.serial_number: e for e in data.entries}
    serials, times = demo_pki.serials, demo_pki.revocation_times
    assert set(by_serial) == {serials[name] for name in times}
    expected_reasons = {
        "revoked-keycompromise": x509.ReasonFlags.key_compromise,
        "revoked-superseded": x509.ReasonFlags.superseded,
        "revoked-hold": x509.ReasonFlags.certificate_hold,
        "revoked-unspecified": None,
    }
    for name, reason in expected_reasons.items():
        entry = by_serial[serials[name]]
        assert entry.reason is reason, name
        assert entry.revocation_time == times[name]
        assert entry.revocation_time.utcoffset() == dt.timedelta(0)
    compromised = by_serial[serials["revoked-keycompromise"]]
    assert compromised.invalidity_date == times["revoked-keycompromise"] - dt.timedelta(hours=6)
    assert by_serial[serials["revoked-superseded"]].invalidity_date is None


def test_pem_and_der_forms_of_a_crl_give_the_same_data(demo_pki: DemoPki) -> None:
    ca, _ = _ca(demo_pki)
    pem = demo_pki.crl.read_bytes()
    der = _der(x509.load_pem_x509_crl(pem))
    assert load_crl(der, ca, origin="der") == load_crl(pem, ca, origin="pem")


def test_rsa_demo_crl_verifies_with_the_rsa_ca(demo_pki_rsa: DemoPki) -> None:
    ca, _ = _ca(demo_pki_rsa)
    data = load_crl(demo_pki_rsa.crl.read_bytes(), ca, origin="rsa")
    assert {e.serial_number for e in data.entries} == {
        demo_pki_rsa.serials[name] for name in demo_pki_rsa.revocation_times
    }


def test_crl_written_by_openssl_ca_gencrl_parses_in_pem_and_der(tmp_path: Path) -> None:
    ca = OpenSslCa(tmp_path / "ca")
    names = ("compromised", "held", "superseded", "plain", "valid")
    serials = {name: ca.issue(name) for name in names}
    ca.revoke("compromised", reason="keyCompromise", compromise_time="20240102030405Z")
    ca.revoke("held", hold_instruction="holdInstructionReject")
    ca.revoke("superseded", reason="superseded")
    ca.revoke("plain")

    data = load_crl(ca.gencrl(), ca.certificate, origin="openssl")

    assert load_crl(ca.last_crl_der(), ca.certificate, origin="openssl-der") == data
    assert data.crl_number == 1
    assert data.delta_base is None
    by_serial = {e.serial_number: e for e in data.entries}
    assert set(by_serial) == {serials[n] for n in ("compromised", "held", "superseded", "plain")}
    compromised = by_serial[serials["compromised"]]
    assert compromised.reason is x509.ReasonFlags.key_compromise
    assert compromised.invalidity_date == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert by_serial[serials["held"]].reason is x509.ReasonFlags.certificate_hold
    assert by_serial[serials["superseded"]].reason is x509.ReasonFlags.superseded
    assert by_serial[serials["plain"]].reason is None
    assert by_serial[serials["plain"]].invalidity_date is None


def test_next_openssl_crl_carries_the_next_crl_number(tmp_path: Path) -> None:
    ca = OpenSslCa(tmp_path / "ca")
    ca.gencrl()
    assert load_crl(ca.gencrl(), ca.certificate, origin="openssl").crl_number == 2


def test_crl_signed_by_another_key_is_refused_for_its_signature(demo_pki: DemoPki) -> None:
    ca, _ = _ca(demo_pki)
    crl = sign_crl(ca, new_key("ec"), [], crl_number=2, this_update=NOW, next_update=NOW)
    with pytest.raises(SourceError, match="signature does not verify") as caught:
        load_crl(_der(crl), ca, origin="crl.der")
    assert caught.value.origin == "crl.der"


def test_crl_with_one_altered_byte_is_refused(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    entry = RevokedEntry(0x1234, NOW, x509.ReasonFlags.superseded)
    der = bytearray(_der(sign_crl(ca, key, [entry], crl_number=2, this_update=NOW, next_update=NOW)))
    der[der.index(b"\x12\x34")] ^= 0x01  # serial 0x1234 becomes 0x1334
    with pytest.raises(SourceError, match="signature"):
        load_crl(bytes(der), ca, origin="crl.der")


def test_crl_of_another_issuer_is_refused(demo_pki: DemoPki, tmp_path: Path) -> None:
    ca, _ = _ca(demo_pki)
    other = OpenSslCa(tmp_path / "other", common_name="Some Other CA")
    with pytest.raises(SourceError, match="CRL issuer is 'CN=Some Other CA', expected") as caught:
        load_crl(other.gencrl(), ca, origin="other.crl")
    assert "point this CA at its own CRL" in str(caught.value)


@pytest.mark.parametrize("cut", [1, 10, 100, -1])
def test_truncated_crl_is_refused(demo_pki: DemoPki, cut: int) -> None:
    ca, _ = _ca(demo_pki)
    der = _der(x509.load_pem_x509_crl(demo_pki.crl.read_bytes()))
    with pytest.raises(SourceError, match="not a readable CRL"):
        load_crl(der[:cut], ca, origin="crl.der")


def test_truncated_pem_crl_is_refused(demo_pki: DemoPki) -> None:
    ca, _ = _ca(demo_pki)
    pem = demo_pki.crl.read_bytes()
    with pytest.raises(SourceError, match="not a readable CRL"):
        load_crl(pem[: len(pem) // 2], ca, origin="crl.pem")


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"hello world",
        b"\x30\x03\x02\x01\x01",
        b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    ],
)
def test_garbage_is_refused(demo_pki: DemoPki, garbage: bytes) -> None:
    ca, _ = _ca(demo_pki)
    with pytest.raises(SourceError, match="not a readable CRL"):
        load_crl(garbage, ca, origin="garbage")


def test_certificate_instead_of_crl_is_refused(demo_pki: DemoPki) -> None:
    ca, _ = _ca(demo_pki)
    with pytest.raises(SourceError, match="not a readable CRL"):
        load_crl(demo_pki.ca_cert.read_bytes(), ca, origin="ca.pem")


def test_delta_crl_reports_its_base_crl_number_and_keeps_remove_from_crl(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    entries = [
        RevokedEntry(7, NOW - dt.timedelta(hours=2), x509.ReasonFlags.remove_from_crl),
        RevokedEntry(3, NOW - dt.timedelta(hours=1), x509.ReasonFlags.key_compromise),
    ]
    delta = sign_crl(ca, key, entries, crl_number=5, this_update=NOW,
                     next_update=NOW + dt.timedelta(hours=6), delta_base=4)  # fmt: skip

    data = load_crl(_der(delta), ca, origin="delta.crl")

    assert (data.crl_number, data.delta_base) == (5, 4)
    assert data.this_update == NOW
    assert data.entries == (entries[1], entries[0])  # sorted by serial


def test_entry_with_explicit_unspecified_reason_keeps_it(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    entry = RevokedEntry(42, NOW, x509.ReasonFlags.unspecified)
    crl = sign_crl(ca, key, [entry], crl_number=2, this_update=NOW, next_update=NOW)
    assert load_crl(_der(crl), ca, origin="crl").entries == (entry,)


def test_crl_without_crl_number_parses(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    crl = _builder(ca).add_revoked_certificate(_revoked(9)).sign(key, hashes.SHA256())
    data = load_crl(_der(crl), ca, origin="bare.crl")
    assert (data.crl_number, data.delta_base, len(data.entries)) == (None, None, 1)
    assert data.next_update == NOW + dt.timedelta(days=1)


def test_indirect_crl_by_issuing_distribution_point_is_refused(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    idp = x509.IssuingDistributionPoint(
        full_name=None, relative_name=None, only_contains_user_certs=False,
        only_contains_ca_certs=False, only_some_reasons=None, indirect_crl=True,
        only_contains_attribute_certs=False,
    )  # fmt: skip
    crl = _builder(ca).add_extension(idp, critical=True).sign(key, hashes.SHA256())
    with pytest.raises(SourceError, match="indirect CRL"):
        load_crl(_der(crl), ca, origin="indirect.crl")


def test_indirect_crl_by_certificate_issuer_entry_is_refused(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    other = x509.CertificateIssuer([x509.DirectoryName(x509.Name.from_rfc4514_string("CN=Other"))])
    crl = _builder(ca).add_revoked_certificate(_revoked(5, (other, True))).sign(key, hashes.SHA256())
    with pytest.raises(SourceError, match="indirect CRL"):
        load_crl(_der(crl), ca, origin="indirect.crl")


def test_crl_with_unknown_critical_extension_is_refused(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    crl = _builder(ca).add_extension(unknown, critical=True).sign(key, hashes.SHA256())
    with pytest.raises(SourceError, match="unsupported critical extension 1.3.6.1.4.1.55555.1"):
        load_crl(_der(crl), ca, origin="odd.crl")


def test_crl_with_unknown_non_critical_extensions_parses(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    crl = (
        _builder(ca)
        .add_extension(unknown, critical=False)
        .add_revoked_certificate(_revoked(5, (unknown, False)))
        .sign(key, hashes.SHA256())
    )
    assert [e.serial_number for e in load_crl(_der(crl), ca, origin="odd.crl").entries] == [5]


def test_crl_entry_with_unknown_critical_extension_is_refused(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.2"), b"\x05\x00")
    crl = _builder(ca).add_revoked_certificate(_revoked(5, (unknown, True))).sign(key, hashes.SHA256())
    with pytest.raises(SourceError, match="entry 0x5 has an unsupported critical extension"):
        load_crl(_der(crl), ca, origin="odd.crl")


def test_crl_listing_a_serial_twice_is_refused(demo_pki: DemoPki) -> None:
    ca, key = _ca(demo_pki)
    crl = (
        _builder(ca)
        .add_revoked_certificate(_revoked(0xABC))
        .add_revoked_certificate(_revoked(0xABC))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(SourceError, match="serial 0xabc twice"):
        load_crl(_der(crl), ca, origin="dup.crl")


def test_crl_whose_issuer_name_is_not_utf8_is_a_source_error(demo_pki: DemoPki) -> None:
    """Fuzzing finding: cryptography decodes the issuer Name lazily; a bad UTF8String raised ValueError past load_crl."""
    issuer = x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())
    der = x509.load_pem_x509_crl(demo_pki.crl.read_bytes()).public_bytes(serialization.Encoding.DER)
    broken = der.replace(b"certstatus demo CA", b"certstatus d\xe5mo CA", 1)
    assert broken != der

    with pytest.raises(SourceError, match="not a readable CRL"):
        load_crl(broken, issuer, origin="crl.der")


def test_crl_with_a_version_other_than_v1_or_v2_is_a_source_error(demo_pki: DemoPki) -> None:
    """Fuzzing finding: cryptography's InvalidVersion (not a ValueError) escaped load_crl."""
    issuer = x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())
    der = x509.load_pem_x509_crl(demo_pki.crl.read_bytes()).public_bytes(serialization.Encoding.DER)
    tbs_version = der.index(b"\x02\x01\x01")  # TBSCertList version v2 (INTEGER 1)

    with pytest.raises(SourceError, match="not a readable CRL"):
        load_crl(der[:tbs_version] + b"\x02\x01\x03" + der[tbs_version + 3 :], issuer, origin="crl.der")


def test_crl_whose_issuer_name_has_an_attribute_of_the_wrong_type_is_a_source_error(demo_pki: DemoPki) -> None:
    """Fuzzing finding: a BIT STRING commonName made cryptography raise TypeError past load_crl."""
    issuer = x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())
    der = x509.load_pem_x509_crl(demo_pki.crl.read_bytes()).public_bytes(serialization.Encoding.DER)
    common_name = b"\x06\x03\x55\x04\x03\x0c\x12certstatus demo CA"  # OID 2.5.4.3, UTF8String
    assert common_name in der
    broken = der.replace(common_name, b"\x06\x03\x55\x04\x03\x03\x12\x00ertstatus demo CA", 1)  # BIT STRING instead

    with pytest.raises(SourceError, match="not a readable CRL"):
        load_crl(broken, issuer, origin="crl.der")


# The CA certificate's profile (RFC 5280 §6.3.3 (f), §4.2.1.9): CAs made by `openssl req -x509`, CRLs by `openssl ca`.
_MAY_NOT_SIGN_CRLS = {
    "keyUsage-critical-without-cRLSign": (
        "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, digitalSignature", "lacks cRLSign"
    ),
    "keyUsage-non-critical-without-cRLSign": (
        "basicConstraints = critical, CA:TRUE\nkeyUsage = keyCertSign, digitalSignature", "lacks cRLSign"
    ),
    "cA-false": ("basicConstraints = critical, CA:FALSE\nkeyUsage = critical, keyCertSign, cRLSign", "cA=FALSE"),
}


@pytest.mark.parametrize("case", sorted(_MAY_NOT_SIGN_CRLS))
def test_crl_of_a_ca_certificate_that_may_not_sign_crls_is_refused(tmp_path: Path, case: str) -> None:
    extensions, reason = _MAY_NOT_SIGN_CRLS[case]
    ca = OpenSslCa(tmp_path / "ca", ca_extensions=extensions)
    ca.issue("leaf")
    ca.revoke("leaf", reason="keyCompromise")
    crl = ca.gencrl()
    assert x509.load_pem_x509_crl(crl).is_signature_valid(ca.certificate.public_key())  # signed all right

    with pytest.raises(SourceError) as caught:
        load_crl(crl, ca.certificate, origin="/pki/ca.crl")

    assert caught.value.origin == "/pki/ca.crl"
    assert reason in caught.value.problem and "may not sign CRLs" in caught.value.problem
    assert "CN=OpenSSL Test CA" in caught.value.problem


@pytest.mark.parametrize(
    "extensions",
    ["basicConstraints = critical, CA:TRUE\nsubjectKeyIdentifier = hash", "keyUsage = critical, keyCertSign, cRLSign", ""],
    ids=["no-keyUsage", "no-basicConstraints", "version-1"],
)
def test_crl_of_a_ca_certificate_silent_on_its_use_is_accepted(tmp_path: Path, extensions: str) -> None:
    """RFC 5280 §6.3.3 (f) checks cRLSign only when keyUsage is present; a CA without basicConstraints is
    served as configured (the warnings are certstatus.ca_certificate.profile_warnings')."""
    ca = OpenSslCa(tmp_path / "ca", ca_extensions=extensions, crl_extensions="")
    assert (ca.certificate.version is x509.Version.v1) == (extensions == "")
    ca.index_path.write_text("R\t300101000000Z\t250101000000Z,superseded\t1A2B\tunknown\t/CN=leaf\n")

    entries = load_crl(ca.gencrl(), ca.certificate, origin="ca.crl").entries

    assert [(entry.serial_number, entry.reason) for entry in entries] == [(0x1A2B, x509.ReasonFlags.superseded)]
