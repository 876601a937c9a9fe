"""validate_signer (RFC 6960 §4.2.2.2) and the key loaders, on the demo PKI's real files."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from certstatus.demo_pki import DEMO_PASSWORD, DemoPki, issue_cert, new_key
from certstatus.errors import SignerError
from certstatus.signing.keys import PASSWORD_ENV, load_certificates, load_private_key, read_password
from certstatus.signing.signer import validate_signer

WRONG_PASSWORD = b"not-the-demo-secret-4711"


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _spki(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _now(cert: x509.Certificate) -> dt.datetime:
    """A moment inside the validity of ``cert``."""
    return cert.not_valid_before_utc + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def ca(demo_pki: DemoPki):
    return _cert(demo_pki.ca_cert), load_private_key(demo_pki.ca_key, None).key


@pytest.fixture(scope="module")
def delegated(demo_pki: DemoPki):
    return _cert(demo_pki.ocsp_cert), load_private_key(demo_pki.ocsp_key, None).key


# --- validate_signer ---------------------------------------------------------------------------


def test_ca_signing_for_itself_is_accepted(ca) -> None:
    ca_cert, ca_key = ca
    validate_signer(ca_key, ca_cert, ca_cert, _now(ca_cert), where="CA demo")


def test_delegated_responder_with_ocsp_signing_is_accepted(ca, delegated) -> None:
    ca_cert, _ = ca
    ocsp_cert, ocsp_key = delegated
    validate_signer(ocsp_key, ocsp_cert, ca_cert, _now(ocsp_cert), where="CA demo")


def test_delegated_responder_without_ocsp_signing_eku_is_refused(ca) -> None:
    ca_cert, ca_key = ca
    key = new_key("ec")
    start = ca_cert.not_valid_before_utc
    server_cert = issue_cert(ca_cert, ca_key, key.public_key(), common_name="not a responder",
                             not_before=start, not_after=start + dt.timedelta(days=30), ocsp_signing=False)  # fmt: skip

    with pytest.raises(SignerError, match="id-kp-OCSPSigning") as raised:
        validate_signer(key, server_cert, ca_cert, _now(server_cert), where="CA demo (resp.pem, resp.key)")

    assert str(raised.value).startswith("CA demo (resp.pem, resp.key): ")


def test_sub_ca_without_any_eku_is_refused_as_responder(ca) -> None:
    ca_cert, ca_key = ca
    key = new_key("ec")
    start = ca_cert.not_valid_before_utc
    sub_ca = issue_cert(ca_cert, ca_key, key.public_key(), common_name="sub CA", ca=True,
                        not_before=start, not_after=start + dt.timedelta(days=30))  # fmt: skip

    with pytest.raises(SignerError, match="id-kp-OCSPSigning"):
        validate_signer(key, sub_ca, ca_cert, _now(sub_ca), where="CA demo")


def test_responder_of_another_ca_with_the_same_name_is_refused(ca, demo_pki_rsa: DemoPki) -> None:
    ca_cert, _ = ca
    other_cert, other_key = _cert(demo_pki_rsa.ocsp_cert), load_private_key(demo_pki_rsa.ocsp_key, None).key
    assert other_cert.issuer == ca_cert.subject  # both demo CAs are "CN=certstatus demo CA"

    with pytest.raises(SignerError, match="is not issued by the CA CN=certstatus demo CA"):
        validate_signer(other_key, other_cert, ca_cert, _now(other_cert), where="CA demo")


def test_responder_issued_by_the_root_is_refused_for_the_ca(ca, demo_pki: DemoPki) -> None:
    ca_cert, _ = ca
    root_cert, root_key = _cert(demo_pki.root_cert), load_private_key(demo_pki.root_key, None).key
    key = new_key("ec")
    start = ca_cert.not_valid_before_utc
    root_responder = issue_cert(root_cert, root_key, key.public_key(), common_name="root responder",
                                not_before=start, not_after=start + dt.timedelta(days=30), ocsp_signing=True)  # fmt: skip

    with pytest.raises(SignerError, match="not issued by"):
        validate_signer(key, root_responder, ca_cert, _now(root_responder), where="CA demo")


def test_key_not_matching_the_certificate_is_refused(ca, delegated) -> None:
    ca_cert, ca_key = ca
    ocsp_cert, _ = delegated
    with pytest.raises(SignerError, match="does not belong"):
        validate_signer(ca_key, ocsp_cert, ca_cert, _now(ocsp_cert), where="CA demo")
    with pytest.raises(SignerError, match="does not belong"):
        validate_signer(new_key("ec"), ca_cert, ca_cert, _now(ca_cert), where="CA demo")


@pytest.mark.parametrize("moment", ["after", "before"])
def test_signer_certificate_outside_its_validity_is_refused(ca, delegated, moment: str) -> None:
    ca_cert, _ = ca
    ocsp_cert, ocsp_key = delegated
    second = dt.timedelta(seconds=1)
    now = ocsp_cert.not_valid_after_utc + second if moment == "after" else ocsp_cert.not_valid_before_utc - second

    with pytest.raises(SignerError, match="not now; install a current one") as raised:
        validate_signer(ocsp_key, ocsp_cert, ca_cert, now, where="CA demo")

    assert f"{ocsp_cert.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}" in str(raised.value)


def test_signer_is_valid_on_the_last_second(ca, delegated) -> None:
    ca_cert, _ = ca
    ocsp_cert, ocsp_key = delegated
    validate_signer(ocsp_key, ocsp_cert, ca_cert, ocsp_cert.not_valid_after_utc, where="CA demo")


# --- load_private_key --------------------------------------------------------------------------


def test_unencrypted_pem_key_loads(demo_pki: DemoPki, delegated) -> None:
    loaded = load_private_key(demo_pki.ocsp_key, None)

    assert isinstance(loaded.key, ec.EllipticCurvePrivateKey)
    assert _spki(loaded.key) == _spki(delegated[1])
    assert (loaded.certificate, loaded.chain) == (None, ())


def test_rsa_pem_key_loads(demo_pki_rsa: DemoPki) -> None:
    assert isinstance(load_private_key(demo_pki_rsa.ca_key, None).key, rsa.RSAPrivateKey)


def test_der_pkcs8_key_loads(tmp_path: Path, delegated) -> None:
    _, key = delegated
    path = tmp_path / "ocsp.der"
    path.write_bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    assert _spki(load_private_key(path, None).key) == _spki(key)


def test_encrypted_pem_with_password_loads(demo_pki: DemoPki, delegated) -> None:
    assert b"ENCRYPTED PRIVATE KEY" in demo_pki.ocsp_encrypted_key.read_bytes()
    assert _spki(load_private_key(demo_pki.ocsp_encrypted_key, DEMO_PASSWORD).key) == _spki(delegated[1])


def test_encrypted_pem_without_password_says_how_to_give_one(demo_pki: DemoPki) -> None:
    with pytest.raises(SignerError) as raised:
        load_private_key(demo_pki.ocsp_encrypted_key, None)

    message = str(raised.value)
    assert str(demo_pki.ocsp_encrypted_key) in message
    assert "--signer-password-file" in message and PASSWORD_ENV in message


@pytest.mark.parametrize("kind", ["pem", "p12"])
def test_wrong_password_is_refused_without_echoing_it(demo_pki: DemoPki, kind: str) -> None:
    path = demo_pki.ocsp_encrypted_key if kind == "pem" else demo_pki.ocsp_p12
    with pytest.raises(SignerError, match="passphrase given is wrong") as raised:
        load_private_key(path, WRONG_PASSWORD)

    message = str(raised.value)
    assert str(path) in message
    assert WRONG_PASSWORD.decode() not in message and DEMO_PASSWORD.decode() not in message


@pytest.mark.parametrize(
    ("kind", "password"), [("pem", WRONG_PASSWORD), ("p12", WRONG_PASSWORD), ("p12", None)],
    ids=["pem-wrong", "p12-wrong", "p12-none"],
)  # fmt: skip
def test_passphrase_errors_say_how_to_give_the_passphrase(demo_pki: DemoPki, kind: str, password: bytes | None) -> None:
    path = demo_pki.ocsp_encrypted_key if kind == "pem" else demo_pki.ocsp_p12
    with pytest.raises(SignerError) as raised:
        load_private_key(path, password)
    assert "--signer-password-file" in str(raised.value)


def test_password_for_an_unencrypted_key_is_refused(demo_pki: DemoPki) -> None:
    with pytest.raises(SignerError, match="is not encrypted") as raised:
        load_private_key(demo_pki.ocsp_key, WRONG_PASSWORD)
    assert WRONG_PASSWORD.decode() not in str(raised.value)


def test_pkcs12_with_demo_password_gives_key_certificate_and_chain(demo_pki: DemoPki, ca, delegated) -> None:
    loaded = load_private_key(demo_pki.ocsp_p12, b"demo-password")

    assert _spki(loaded.key) == _spki(delegated[1])
    assert loaded.certificate == delegated[0]
    assert loaded.chain == (ca[0],)


def test_pkcs12_is_recognised_without_its_suffix(tmp_path: Path, demo_pki: DemoPki, delegated) -> None:
    path = tmp_path / "responder.bin"
    shutil.copy(demo_pki.ocsp_p12, path)

    loaded = load_private_key(path, DEMO_PASSWORD)

    assert loaded.certificate == delegated[0]


def test_missing_and_garbage_key_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SignerError, match="cannot read signer key"):
        load_private_key(tmp_path / "absent.key", None)
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"\x01\x02 this is no key")
    with pytest.raises(SignerError, match="cannot load signer key"):
        load_private_key(garbage, None)


def test_dsa_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dsa.key"
    key = dsa.generate_private_key(2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    with pytest.raises(SignerError, match="only RSA, ECDSA, Ed25519 and ML-DSA"):
        load_private_key(path, None)


def test_load_certificates_reads_pem_bundle_and_der(tmp_path: Path, demo_pki: DemoPki, ca) -> None:
    chain = load_certificates(demo_pki.chain)
    assert chain == [ca[0], _cert(demo_pki.root_cert)]
    der = tmp_path / "ca.der"
    der.write_bytes(ca[0].public_bytes(serialization.Encoding.DER))
    assert load_certificates(der) == [ca[0]]
    with pytest.raises(SignerError, match="not a PEM or DER X.509 certificate"):
        load_certificates(demo_pki.ca_key)


# --- read_password -----------------------------------------------------------------------------


def test_password_comes_from_the_first_line_of_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-the-environment")
    path = tmp_path / "password"
    path.write_bytes(b"demo-password\r\nsecond line\n")

    assert read_password(path) == b"demo-password"


def test_password_file_without_newline_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_bytes(b"  spaced secret  ")
    assert read_password(path) == b"  spaced secret  "
    path.write_bytes(b"")
    assert read_password(path) == b""


def test_unreadable_password_file_is_a_signer_error(tmp_path: Path) -> None:
    with pytest.raises(SignerError, match="cannot read the signer password file"):
        read_password(tmp_path / "absent")


def test_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, demo_pki: DemoPki, delegated) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "demo-password")

    password = read_password(None)

    assert password == DEMO_PASSWORD
    assert _spki(load_private_key(demo_pki.ocsp_encrypted_key, password).key) == _spki(delegated[1])


def test_no_password_when_neither_file_nor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert read_password(None) is None
    monkeypatch.setenv(PASSWORD_ENV, "")
    assert read_password(None) is None
    monkeypatch.setenv("OTHER_VARIABLE", "secret")
    assert read_password(None, env="OTHER_VARIABLE") == b"secret"
