"""PKCS#11 signing through SoftHSM2: responses verify with `openssl ocsp`, the session pool
signs in parallel, a token that goes away gives tryLater and signing resumes when it is back."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.app import build_application, prepare
from certstatus.clock import SystemClock
from certstatus.config import load_config
from certstatus.demo_pki import make_demo_pki
from certstatus.protocol.response import UNSUCCESSFUL
from certstatus.signing.pkcs11 import Pkcs11KeyConnection
from tests.processes import openssl_status
from tests.servers import free_port, start_server
from tests.signing_support import load_cert, ocsp_request, openssl_verify, post, response_algorithm, write_signer

DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_demo_pki(tmp_path_factory.mktemp("hsm-pki"), key_type="rsa")


@pytest.fixture(scope="module")
def hsm_signers(softhsm, pki, tmp_path_factory):
    """Four responder keys in the token (RSA-2048, RSA-2048 for PSS, P-256, P-384) with certificates."""
    folder = tmp_path_factory.mktemp("hsm-signers")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    keys = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
    }
    found = {}
    for index, (name, key) in enumerate(keys.items(), 1):
        uri = softhsm.import_key(key, f"ocsp-{name}", f"{index:02x}")
        cert, _ = write_signer(pki, folder, f"hsm-{name}", key, not_before=now - DAY, not_after=now + 30 * DAY,
                               write_key=False)
        found[name] = (uri, cert)
    return found


def _config(folder: Path, pki, softhsm, uri: str, cert: Path, extra: str = "") -> Path:
    path = folder / "certstatus.toml"
    path.write_text(
        f'[server]\ndatabase = "{folder / "store.sqlite3"}"\npkcs11_module = "{softhsm.module}"\n\n'
        f'[ca.demo]\ncertificate = "{pki.ca_cert}"\ncrl = ["{pki.crl}"]\nindex = "{pki.index}"\n'
        f'pkcs11_pin_file = "{softhsm.pin_file}"\n\n[[ca.demo.signer]]\ncertificate = "{cert}"\nkey = "{uri}"\n{extra}'
    )
    return path


def _app(config: Path):
    settings = load_config(config)
    prepare(settings, SystemClock())
    return build_application(settings, SystemClock())


@pytest.mark.parametrize(
    ("name", "algorithm", "oid"),
    [
        ("rsa", "rsa-sha256", "1.2.840.113549.1.1.11"),
        ("rsa", "rsa-pss-sha384", "1.2.840.113549.1.1.10"),
        ("p256", "ecdsa-sha256", "1.2.840.10045.4.3.2"),
        ("p384", "ecdsa-sha384", "1.2.840.10045.4.3.3"),
    ],
)
def test_response_signed_in_softhsm_verifies_with_openssl(tmp_path, pki, softhsm, hsm_signers, name, algorithm, oid) -> None:
    uri, cert = hsm_signers[name]
    app = _app(_config(tmp_path, pki, softhsm, uri, cert, f'signature_algorithm = "{algorithm}"\n'))
    ca = load_cert(pki.ca_cert)
    for leaf, status in (("good", "good"), ("revoked-keycompromise", "revoked")):
        http = post(app, ocsp_request(ca, pki.serials[leaf], nonce=True))
        assert http.status == 200
        assert response_algorithm(http.body) == oid
        assert f"Cert Status: {status}" in openssl_verify(tmp_path, http.body, pki, pki.leaves[leaf])


def test_session_pool_signs_in_parallel(tmp_path, pki, softhsm, hsm_signers) -> None:
    uri, cert = hsm_signers["p256"]
    app = _app(_config(tmp_path, pki, softhsm, uri, cert))
    signer = app.registry.by_name["demo"].signer
    connection = signer.key.connection
    data = [b"response data %d" % i for i in range(2000)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        signatures = list(pool.map(signer._sign, data))
    for payload, signature in zip(data, signatures, strict=True):
        signer.algorithm.verify(signer.certificate.public_key(), signature, payload)
    assert 1 < connection._open <= connection.pool_size  # several sessions were really used at once


def test_token_that_goes_away_gives_try_later_then_recovers(tmp_path, pki, softhsm, hsm_signers, monkeypatch, caplog) -> None:
    monkeypatch.setattr(Pkcs11KeyConnection, "retry_seconds", 0.0)
    uri, cert = hsm_signers["rsa"]
    app = _app(_config(tmp_path, pki, softhsm, uri, cert))
    request = ocsp_request(load_cert(pki.ca_cert), pki.serials["good"])
    assert post(app, request).status == 200
    [token_dir] = softhsm.token_dirs
    away = tmp_path / "token-removed"
    shutil.move(token_dir, away)
    try:
        with caplog.at_level(logging.INFO, logger="certstatus"):
            answers = [post(app, request) for _ in range(3)]
    finally:
        shutil.move(away, token_dir)
    for http in answers:
        assert (http.status, http.body) == (503, UNSUCCESSFUL[OCSPResponseStatus.TRY_LATER])
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "cannot sign with the PKCS#11 key" in r.getMessage()]
    assert len(errors) == 1  # one error line per outage, not one per request
    assert "token certstatus-test, object ocsp-rsa" in errors[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="certstatus"):
        http = post(app, request)
    assert http.status == 200
    assert "Cert Status: good" in openssl_verify(tmp_path, http.body, pki, pki.leaves["good"])
    assert any("token is back" in r.getMessage() for r in caplog.records)


def test_single_ca_server_with_pkcs11_signer_key_answers_openssl(tmp_path, pki, softhsm, hsm_signers) -> None:
    uri, cert = hsm_signers["p384"]
    port = free_port()
    args = [
        "serve", "--issuer", str(pki.ca_cert), "--crl", str(pki.crl),
        "--index", str(pki.index), "--signer-cert", str(cert), "--signer-key", uri,
        "--pkcs11-module", softhsm.module, "--pkcs11-pin-file", str(softhsm.pin_file),
        "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "s.sqlite3"), "--workers", "1",
    ]  # fmt: skip
    server = start_server(tmp_path, args=args, port=port)
    try:
        status = openssl_status(pki.ca_cert, pki.leaves["revoked-keycompromise"], server.url, pki.root_cert, verify_other=pki.ca_cert)
        assert status == "revoked", server.log_text()
    finally:
        assert server.stop() == 0, server.log_text()
