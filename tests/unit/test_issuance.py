"""Issued serials from certificates, directories and CMS SignedData lists signed by the CA."""

from __future__ import annotations


import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from certstatus.demo_pki import DemoPki
from certstatus.errors import SourceError
from certstatus.sources.issuance import load_issued
from tests.openssl_ca import OpenSslCa
from tests.sources_helpers import ca_of


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
