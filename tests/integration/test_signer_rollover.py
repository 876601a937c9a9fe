"""Several signers per CA: rollover across notAfter, revoked and expired signers, warnings,
preferred signature algorithms — through the real application, verified by `openssl ocsp`."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.app import build_application, prepare
from certstatus.clock import ManualClock
from certstatus.config import load_config
from certstatus.demo_pki import issue_cert, make_demo_pki, sign_crl
from certstatus.errors import SignerError
from certstatus.model import RevokedEntry
from certstatus.protocol.response import UNSUCCESSFUL
from certstatus.signing.signer_set import signer_expiry
from tests.signing_support import (
    load_cert,
    load_key,
    ocsp_request,
    openssl_verify,
    post,
    response_algorithm,
    response_signer_cn,
    write_signer,
)

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_demo_pki(tmp_path_factory.mktemp("rollover-pki"), key_type="ec")


def _config(folder: Path, pki, signers: list[tuple[Path, Path]], extra: str = "", crl: Path | None = None) -> Path:
    tables = "".join(
        f'\n[[ca.demo.signer]]\ncertificate = "{cert}"\nkey = "{key}"\n' for cert, key in signers
    )
    path = folder / "certstatus.toml"
    path.write_text(
        f'[server]\ndatabase = "{folder / "store.sqlite3"}"\n\n[ca.demo]\ncertificate = "{pki.ca_cert}"\n'
        f'crl = ["{crl or pki.crl}"]\nindex = "{pki.index}"\n{extra}{tables}'
    )
    return path


def _app(config: Path, clock: ManualClock):
    settings = load_config(config)
    prepare(settings, clock)
    return build_application(settings, clock)


def test_rollover_across_notafter_answers_every_request(tmp_path, pki) -> None:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    a = write_signer(pki, tmp_path, "signer-a", ec.generate_private_key(ec.SECP256R1()),
                     not_before=start - DAY, not_after=start + 10 * HOUR)
    b = write_signer(pki, tmp_path, "signer-b", ec.generate_private_key(ec.SECP256R1()),
                     not_before=start + 8 * HOUR, not_after=start + 30 * DAY)
    clock = ManualClock(start)
    app = _app(_config(tmp_path, pki, [a, b]), clock)
    ca = load_cert(pki.ca_cert)
    leaf = pki.leaves["good"]
    seen = []
    # Every half hour from now to past A's notAfter: B takes over the moment it is valid.
    for step in range(24):
        clock.set(start + step * HOUR / 2)
        http = post(app, ocsp_request(ca, pki.serials["good"]))
        assert http.status == 200, (step, http.body)
        seen.append(response_signer_cn(http.body))
        if step in (0, 16, 21):
            assert "Cert Status: good" in openssl_verify(tmp_path, http.body, pki, leaf, at=clock.now())
    assert seen[:16] == ["signer-a responder"] * 16  # until start + 8h
    assert seen[16:] == ["signer-b responder"] * 8  # B from its notBefore on; A expires at 10h
    states = {s.name: s.state for s in signer_expiry([app.registry.by_name["demo"].signers])}
    assert states == {"signer-a": "expired", "signer-b": "active"}


def test_expired_signer_is_never_used_and_no_signer_means_try_later(tmp_path, pki, caplog) -> None:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    a = write_signer(pki, tmp_path, "only", ec.generate_private_key(ec.SECP256R1()),
                     not_before=start - DAY, not_after=start + HOUR)
    clock = ManualClock(start)
    app = _app(_config(tmp_path, pki, [a]), clock)
    request = ocsp_request(load_cert(pki.ca_cert), pki.serials["good"])
    assert post(app, request).status == 200
    clock.set(start + 2 * HOUR)
    with caplog.at_level(logging.ERROR, logger="certstatus"):
        http = post(app, request)
    assert http.status == 503 and http.body == UNSUCCESSFUL[OCSPResponseStatus.TRY_LATER]
    assert any("has no signer valid now" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_signer_revoked_by_the_cas_own_crl_is_skipped(tmp_path, pki) -> None:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    old = write_signer(pki, tmp_path, "older", ec.generate_private_key(ec.SECP256R1()),
                       not_before=start - 2 * DAY, not_after=start + 30 * DAY)
    new = write_signer(pki, tmp_path, "newer", ec.generate_private_key(ec.SECP256R1()),
                       not_before=start - DAY, not_after=start + 30 * DAY)
    newer_serial = load_cert(new[0]).serial_number
    crl = sign_crl(load_cert(pki.ca_cert), load_key(pki.ca_key),
                   [RevokedEntry(newer_serial, start - HOUR, None)], crl_number=5,
                   this_update=start - HOUR, next_update=start + 7 * DAY)
    crl_path = tmp_path / "with-signer.crl"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    app = _app(_config(tmp_path, pki, [old, new], crl=crl_path), ManualClock(start))
    http = post(app, ocsp_request(load_cert(pki.ca_cert), pki.serials["good"]))
    assert response_signer_cn(http.body) == "older responder"
    states = {s.name: s.state for s in app.registry.by_name["demo"].signers.states()}
    assert states == {"older": "active", "newer": "revoked"}


def test_expiry_warning_without_successor_is_logged_and_counted(tmp_path, pki, caplog) -> None:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    a = write_signer(pki, tmp_path, "short", ec.generate_private_key(ec.SECP256R1()),
                     not_before=start - DAY, not_after=start + 5 * DAY)
    clock = ManualClock(start)
    app = _app(_config(tmp_path, pki, [a], extra='signer_expiry_warning = "3d"\n'), clock)
    signers = app.registry.by_name["demo"].signers
    request = ocsp_request(load_cert(pki.ca_cert), pki.serials["good"])
    post(app, request)
    assert signers.warnings_total == 0
    clock.set(start + 2 * DAY + HOUR)  # 2 days 23 hours left
    with caplog.at_level(logging.WARNING, logger="certstatus"):
        post(app, request)
    assert signers.warnings_total == 1
    assert any("no successor is installed" in r.getMessage() for r in caplog.records)
    [state] = signer_expiry([signers])
    assert state.warning and state.state == "active" and 0 < state.seconds_left < 3 * 86400


def test_preferred_signature_algorithms_choose_signer_and_algorithm(tmp_path, pki) -> None:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ec_signer = write_signer(pki, tmp_path, "ec", ec.generate_private_key(ec.SECP256R1()),
                             not_before=start - HOUR, not_after=start + 30 * DAY)
    rsa_signer = write_signer(pki, tmp_path, "rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048),
                              not_before=start - 2 * HOUR, not_after=start + 30 * DAY)
    app = _app(_config(tmp_path, pki, [ec_signer, rsa_signer]), ManualClock(start))
    ca = load_cert(pki.ca_cert)
    serial = pki.serials["good"]
    leaf = pki.leaves["good"]
    # No extension: the default (latest notBefore: the EC signer, ecdsa-with-SHA256).
    http = post(app, ocsp_request(ca, serial))
    assert (response_signer_cn(http.body), response_algorithm(http.body)) == ("ec responder", "1.2.840.10045.4.3.2")
    # Client prefers RSASSA-PSS, then SHA-384 ECDSA: the RSA signer signs with PSS.
    http = post(app, ocsp_request(ca, serial, preferred=("1.2.840.113549.1.1.10", "1.2.840.10045.4.3.3")))
    assert (response_signer_cn(http.body), response_algorithm(http.body)) == ("rsa responder", "1.2.840.113549.1.1.10")
    openssl_verify(tmp_path, http.body, pki, leaf)
    # Client prefers ecdsa-with-SHA384: the EC signer with SHA-384.
    http = post(app, ocsp_request(ca, serial, preferred=("1.2.840.10045.4.3.3",)))
    assert (response_signer_cn(http.body), response_algorithm(http.body)) == ("ec responder", "1.2.840.10045.4.3.3")
    openssl_verify(tmp_path, http.body, pki, leaf)
    # Nothing acceptable (SHA-1 RSA, an unknown OID): step 2, the CRL's algorithm (ecdsa-with-SHA256).
    http = post(app, ocsp_request(ca, serial, preferred=("1.2.840.113549.1.1.5", "1.2.3.4")))
    assert (response_signer_cn(http.body), response_algorithm(http.body)) == ("ec responder", "1.2.840.10045.4.3.2")


def test_locally_trusted_signer_needs_explicit_configuration_and_verifies_with_vafile(tmp_path, pki, caplog) -> None:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    outsider_key = ec.generate_private_key(ec.SECP256R1())
    self_signed = issue_cert(None, outsider_key, outsider_key.public_key(), common_name="local responder",
                             not_before=start - DAY, not_after=start + 30 * DAY)
    cert_path = tmp_path / "local.pem"
    key_path = tmp_path / "local.key"
    cert_path.write_bytes(self_signed.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(outsider_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    key_path.chmod(0o600)
    base = (f'[server]\ndatabase = "{tmp_path / "s.sqlite3"}"\n\n[ca.demo]\ncertificate = "{pki.ca_cert}"\n'
            f'crl = ["{pki.crl}"]\nsigner_certificate = "{cert_path}"\nsigner_key = "{key_path}"\n')
    config = tmp_path / "c.toml"
    config.write_text(base)
    with pytest.raises(SignerError, match=r"local.pem.*is not issued by the CA.*locally_trusted"):
        prepare(load_config(config), ManualClock(start))
    config.write_text(base + "signer_locally_trusted = true\n")
    with caplog.at_level(logging.WARNING, logger="certstatus"):
        app = _app(config, ManualClock(start))
    assert any("locally trusted responder" in r.getMessage() and "-VAfile" in r.getMessage() for r in caplog.records)
    http = post(app, ocsp_request(load_cert(pki.ca_cert), pki.serials["good"]))
    assert "Cert Status: good" in openssl_verify(tmp_path, http.body, pki, pki.leaves["good"], vafile=cert_path)
