"""Issued serials from certificates, directories and CMS SignedData lists signed by the CA."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.app import build_application
from certstatus.demo_pki import DemoPki
from certstatus.errors import SourceError
from certstatus.sources.issuance import load_issued_certificates
from tests.openssl_ca import OpenSslCa
from tests.sources_helpers import ca_of, ocsp_query, prepare_demo_config


def load_issued(origin, issuer, **options) -> tuple[int, ...]:
    """The serials of :func:`load_issued_certificates`."""
    return tuple(entry.serial_number for entry in load_issued_certificates(origin, issuer, **options))


def _leaf_serials(pki: DemoPki) -> set[int]:
    return {pki.serials[name] for name in pki.leaves}


def test_directory_of_pem_and_der_certificates_and_serial_lists(demo_pki: DemoPki, tmp_path) -> None:
    folder = tmp_path / "issued"
    folder.mkdir()
    pems = [demo_pki.leaves[name].read_bytes() for name in ("good", "good2")]
    (folder / "two.pem").write_bytes(b"".join(pems))
    der = x509.load_pem_x509_certificate(demo_pki.leaves["expired"].read_bytes()).public_bytes(serialization.Encoding.DER)
    (folder / "one.der").write_bytes(der)
    (folder / "list.txt").write_text("# more\n0x1234\n")
    (folder / ".hidden").write_text("zz-not-read\n")
    ca, _ = ca_of(demo_pki)
    serials = load_issued(str(folder), ca)
    assert set(serials) == {demo_pki.serials["good"], demo_pki.serials["good2"], demo_pki.serials["expired"], 0x1234}


def test_certificate_of_another_ca_is_refused(demo_pki: DemoPki, demo_pki_rsa: DemoPki, tmp_path) -> None:
    path = tmp_path / "mixed.pem"
    path.write_bytes(demo_pki.leaves["good"].read_bytes() + demo_pki_rsa.leaves["good"].read_bytes())
    ca, _ = ca_of(demo_pki)
    with pytest.raises(SourceError, match="was not issued by this CA"):
        load_issued(str(path), ca)


def _signed_by_cryptography(pki: DemoPki, content: bytes, signer_pki: DemoPki | None = None) -> bytes:
    cert, key = ca_of(signer_pki or pki)
    return (
        pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )  # fmt: skip


def test_cms_list_signed_by_the_ca_with_cryptography(demo_pki: DemoPki, tmp_path) -> None:
    path = tmp_path / "issued.p7"
    path.write_bytes(_signed_by_cryptography(demo_pki, b"0a\n0b\n"))
    ca, _ = ca_of(demo_pki)
    assert load_issued(str(path), ca, signed=True) == (0x0A, 0x0B)


def test_cms_list_signed_by_openssl_cms(tmp_path) -> None:
    openssl = OpenSslCa(tmp_path / "ca")
    (tmp_path / "list.txt").write_text("1000\n1001\n")
    openssl.run(
        "cms", "-sign", "-binary", "-nodetach", "-in", str(tmp_path / "list.txt"), "-signer", "ca.pem",
        "-inkey", "ca.key", "-outform", "PEM", "-out", str(tmp_path / "list.pem"),
    )  # fmt: skip
    assert load_issued(str(tmp_path / "list.pem"), openssl.certificate, signed=True) == (0x1000, 0x1001)


def test_cms_list_of_another_signer_or_altered_is_refused(demo_pki: DemoPki, demo_pki_rsa: DemoPki, tmp_path) -> None:
    ca, _ = ca_of(demo_pki)
    foreign = tmp_path / "foreign.p7"
    foreign.write_bytes(_signed_by_cryptography(demo_pki, b"0a\n", signer_pki=demo_pki_rsa))
    with pytest.raises(SourceError, match="not signed by the CA"):
        load_issued(str(foreign), ca, signed=True)
    signed = _signed_by_cryptography(demo_pki, b"0a\n0b\n")
    altered = tmp_path / "altered.p7"
    altered.write_bytes(signed.replace(b"0a\n0b\n", b"0a\n0c\n"))
    with pytest.raises(SourceError, match="messageDigest does not match"):
        load_issued(str(altered), ca, signed=True)


def test_unsigned_list_is_refused_when_signatures_are_required(demo_pki: DemoPki) -> None:
    ca, _ = ca_of(demo_pki)
    with pytest.raises(SourceError, match="is not a CMS SignedData"):
        load_issued(str(demo_pki.issued), ca, signed=True)


def test_detached_cms_signature_is_refused(tmp_path) -> None:
    openssl = OpenSslCa(tmp_path / "ca")
    (tmp_path / "list.txt").write_text("1000\n")
    openssl.run(
        "cms", "-sign", "-binary", "-in", str(tmp_path / "list.txt"), "-signer", "ca.pem", "-inkey", "ca.key",
        "-outform", "DER", "-out", str(tmp_path / "detached.p7"),
    )  # fmt: skip
    with pytest.raises(SourceError, match="detached content"):
        load_issued(str(tmp_path / "detached.p7"), openssl.certificate, signed=True)


# --- precertificates (RFC 6962 §3.1): "assigned" serials, CA/Browser Forum BR §4.9.9 -----------------------------

PRECERT_SERIAL = 0x0DDC0FFEE


def _certificate(
    issuer: x509.Certificate, issuer_key, serial: int, name: str, *extensions: tuple[x509.ExtensionType, bool], key=None
) -> x509.Certificate:
    """A certificate of ``issuer`` for ``key`` (default: a fresh P-256 key) with ``extensions``, built with cryptography."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder().issuer_name(issuer.subject).subject_name(x509.Name.from_rfc4514_string(f"CN={name}"))
        .public_key((key or ec.generate_private_key(ec.SECP256R1())).public_key()).serial_number(serial)
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=90))
    )  # fmt: skip
    for value, critical in extensions:
        builder = builder.add_extension(value, critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _precertificate(issuer: x509.Certificate, issuer_key, serial: int = PRECERT_SERIAL) -> x509.Certificate:
    """What a CA logs to Certificate Transparency before issuing: the poison extension, critical."""
    server = x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH])
    return _certificate(issuer, issuer_key, serial, "precert.demo.test", (x509.PrecertPoison(), True), (server, False))


def _precertificate_signer(pki: DemoPki, usage=x509.oid.ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY):
    """A Precertificate Signing Certificate of the demo CA (RFC 6962 §3.1: CA:TRUE, the CT EKU) and its key."""
    ca, ca_key = ca_of(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    signer = _certificate(
        ca, ca_key, x509.random_serial_number(), "demo Precertificate Signing",
        (x509.BasicConstraints(ca=True, path_length=0), True), (x509.ExtendedKeyUsage([usage]), False), key=key,
    )  # fmt: skip
    return signer, key


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


def test_precertificate_signed_by_the_ca_counts_as_issued(demo_pki: DemoPki, tmp_path) -> None:
    ca, ca_key = ca_of(demo_pki)
    precertificate = _precertificate(ca, ca_key)
    assert precertificate.extensions.get_extension_for_class(x509.PrecertPoison).critical
    path = tmp_path / "issued.pem"
    path.write_bytes(demo_pki.leaves["good"].read_bytes() + _pem(precertificate))

    assert set(load_issued(str(path), ca)) == {demo_pki.serials["good"], PRECERT_SERIAL}
    # A certificate tells its notAfter; a precertificate is not the certificate relying parties hold.
    good = x509.load_pem_x509_certificate(demo_pki.leaves["good"].read_bytes())
    found = {entry.serial_number: entry.not_after for entry in load_issued_certificates(str(path), ca)}
    assert found == {good.serial_number: good.not_valid_after_utc, PRECERT_SERIAL: None}


def test_precertificate_answered_good_and_an_unlisted_serial_never(demo_pki: DemoPki, tmp_path) -> None:
    """Through the responder: the precertificate's serial is good, an unassigned one never (BR §4.9.10)."""
    ca, ca_key = ca_of(demo_pki)
    path = tmp_path / "issued.pem"
    path.write_bytes(_pem(_precertificate(ca, ca_key)))
    source = f'crl = "{demo_pki.crl}"\nissued = "{path}"\nunknown_serials = "revoked"'
    settings, clock = prepare_demo_config(tmp_path / "certstatus.toml", tmp_path / "store.sqlite3", demo_pki, source)
    app = build_application(settings, clock, watch=False)
    try:
        assert ocsp_query(app, demo_pki, PRECERT_SERIAL).certificate_status is OCSPCertStatus.GOOD
        unused = ocsp_query(app, demo_pki, PRECERT_SERIAL + 1)
        assert unused.certificate_status is OCSPCertStatus.REVOKED  # extended revoked (RFC 6960 §2.2)
        assert unused.revocation_reason is x509.ReasonFlags.certificate_hold
    finally:
        app.close()


def test_precertificate_of_a_precertificate_signing_certificate_in_the_file_counts(demo_pki: DemoPki, tmp_path) -> None:
    signer, signer_key = _precertificate_signer(demo_pki)
    path = tmp_path / "issued.pem"
    path.write_bytes(_pem(signer, _precertificate(signer, signer_key)))

    assert set(load_issued(str(path), ca_of(demo_pki)[0])) == {signer.serial_number, PRECERT_SERIAL}


def test_precertificates_of_other_signers_are_refused(demo_pki: DemoPki, tmp_path) -> None:
    ca, _ = ca_of(demo_pki)
    signer, signer_key = _precertificate_signer(demo_pki)
    alone = tmp_path / "alone.pem"  # its signing certificate is not in the file
    alone.write_bytes(_pem(_precertificate(signer, signer_key)))
    not_ct, not_ct_key = _precertificate_signer(demo_pki, x509.oid.ExtendedKeyUsageOID.CODE_SIGNING)
    wrong_usage = tmp_path / "wrong-usage.pem"  # a certificate of the CA, but not for precertificates
    wrong_usage.write_bytes(_pem(not_ct, _precertificate(not_ct, not_ct_key)))
    not_precertificate = tmp_path / "plain.pem"  # a certificate the signing certificate may not sign
    not_precertificate.write_bytes(_pem(signer, _certificate(signer, signer_key, 7, "plain.demo.test")))

    for path in (alone, wrong_usage, not_precertificate):
        with pytest.raises(SourceError, match="was not issued by this CA"):
            load_issued(str(path), ca)
