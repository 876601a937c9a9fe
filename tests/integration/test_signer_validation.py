"""Validation at start-up and on reload (RFC 6960 §4.2.2.2), and passphrases that never reach a log."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from certstatus.app import build_application, prepare
from certstatus.cli import main
from certstatus.config import Settings, load_config
from certstatus.demo_pki import DEMO_PASSWORD, issue_cert, make_demo_pki
from certstatus.errors import SignerError
from certstatus.signing.loader import SignerWatcher
from tests.signing_support import load_cert, ocsp_request, post, response_signer_cn, write_signer

DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_demo_pki(tmp_path_factory.mktemp("validation-pki"), key_type="ec")


def _config(folder: Path, pki, signer_lines: str) -> Path:
    path = folder / "certstatus.toml"
    path.write_text(
        f'[server]\ndatabase = "{folder / "store.sqlite3"}"\n\n[ca.demo]\ncertificate = "{pki.ca_cert}"\n'
        f'crl = ["{pki.crl}"]\n{signer_lines}'
    )
    return path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def test_signer_without_ocsp_signing_eku_is_refused_naming_the_file(tmp_path, pki) -> None:
    cert, key = write_signer(pki, tmp_path, "no-eku", ec.generate_private_key(ec.SECP256R1()),
                             not_before=_now() - DAY, not_after=_now() + DAY, ocsp_signing=False)
    config = _config(tmp_path, pki, f'signer_certificate = "{cert}"\nsigner_key = "{key}"\n')
    with pytest.raises(SignerError, match=r"no-eku\.pem.*id-kp-OCSPSigning"):
        prepare(load_config(config))


def test_signer_issued_by_another_ca_is_refused(tmp_path, pki) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = issue_cert(None, other_key, other_key.public_key(), common_name="other CA",
                          not_before=_now() - DAY, not_after=_now() + DAY, ca=True)
    cert, key = write_signer(pki, tmp_path, "foreign", ec.generate_private_key(ec.SECP256R1()),
                             not_before=_now() - DAY, not_after=_now() + DAY, issuer=(other_ca, other_key))
    config = _config(tmp_path, pki, f'signer_certificate = "{cert}"\nsigner_key = "{key}"\n')
    with pytest.raises(SignerError, match=r"foreign\.pem.*not issued by the CA CN=certstatus demo CA"):
        prepare(load_config(config))


def test_signer_key_not_matching_the_certificate_is_refused(tmp_path, pki) -> None:
    cert, _ = write_signer(pki, tmp_path, "mismatch", ec.generate_private_key(ec.SECP256R1()),
                           not_before=_now() - DAY, not_after=_now() + DAY)
    config = _config(tmp_path, pki, f'signer_certificate = "{cert}"\nsigner_key = "{pki.ocsp_key}"\n')
    with pytest.raises(SignerError, match=r"mismatch\.pem, .*ocsp\.key.*does not belong"):
        prepare(load_config(config))


def test_a_worker_skips_the_checks_prepare_made_but_still_refuses_a_key_of_another_certificate(tmp_path, pki) -> None:
    """Workers load what prepare() validated (``checked``): no second issuer-signature or extension check,
    but a key file swapped since then is still caught by the public key comparison."""
    from certstatus.clock import SystemClock
    from certstatus.loading import load_ca
    from certstatus.store.factory import open_configured_store as open_store

    cert, key = write_signer(pki, tmp_path, "no-eku", ec.generate_private_key(ec.SECP256R1()),
                             not_before=_now() - DAY, not_after=_now() + DAY, ocsp_signing=False)
    settings = load_config(_config(tmp_path, pki, f'signer_certificate = "{cert}"\nsigner_key = "{key}"\n'))
    store = open_store(settings)
    try:
        with pytest.raises(SignerError, match="id-kp-OCSPSigning"):
            load_ca(settings.cas[0], store, SystemClock())  # as prepare() loads it
        served = load_ca(settings.cas[0], store, SystemClock(), checked=True)  # as a worker does
        assert served.signer.certificate == load_cert(cert)
        key.write_bytes(pki.ocsp_key.read_bytes())  # the key file replaced by another certificate's key
        with pytest.raises(SignerError, match=r"no-eku\.pem, .*no-eku\.key.*does not belong"):
            load_ca(settings.cas[0], store, SystemClock(), checked=True)
    finally:
        store.close()


def test_expired_signer_is_refused_but_its_successor_serves(tmp_path, pki, caplog) -> None:
    old = write_signer(pki, tmp_path, "old", ec.generate_private_key(ec.SECP256R1()),
                       not_before=_now() - 10 * DAY, not_after=_now() - DAY)
    lines = f'[[ca.demo.signer]]\ncertificate = "{old[0]}"\nkey = "{old[1]}"\n'
    config = _config(tmp_path, pki, lines)
    with pytest.raises(SignerError, match=r"no usable signer.*old\.pem.*expired"):
        prepare(load_config(config))
    lines += f'[[ca.demo.signer]]\ncertificate = "{pki.ocsp_cert}"\nkey = "{pki.ocsp_key}"\n'
    config = _config(tmp_path, pki, lines)
    with caplog.at_level(logging.ERROR, logger="certstatus"):
        prepare(load_config(config))
    assert any("old.pem" in r.getMessage() and "expired" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("source", ["env", "file"])
@pytest.mark.parametrize("kind", ["p12", "pkcs8"])
def test_passphrases_are_never_logged(tmp_path, pki, monkeypatch, caplog, capsys, source, kind) -> None:
    key = pki.ocsp_p12 if kind == "p12" else pki.ocsp_encrypted_key
    certificate = pki.ocsp_p12 if kind == "p12" else pki.ocsp_cert
    secret = DEMO_PASSWORD.decode()
    lines = f'signer_certificate = "{certificate}"\nsigner_key = "{key}"\n'
    password_file = tmp_path / "password"
    if source == "env":
        monkeypatch.setenv("CERTSTATUS_SIGNER_PASSWORD", secret)
    else:
        monkeypatch.delenv("CERTSTATUS_SIGNER_PASSWORD", raising=False)
        password_file.write_text(secret + "\n")
        password_file.chmod(0o600)
        lines += f'signer_password_file = "{password_file}"\n'
    config = _config(tmp_path, pki, lines)
    with caplog.at_level(logging.DEBUG):
        settings = load_config(config)
        prepare(settings)
        app = build_application(settings)
        assert post(app, ocsp_request(load_cert(pki.ca_cert), pki.serials["good"])).status == 200
        # The settings handed to worker processes carry the file's path, never its content.
        assert secret not in settings.to_json() and secret not in repr(Settings.from_json(settings.to_json()))
        # A wrong passphrase: the error names the file, not what was tried.
        if source == "env":
            monkeypatch.setenv("CERTSTATUS_SIGNER_PASSWORD", secret + "-wrong")
        else:
            password_file.write_text(secret + "-wrong\n")
        result = CliRunner().invoke(main, ["import", "--config", str(config)])
    output = "".join(result.output.split())  # rich wraps lines
    assert result.exit_code == 2 and "passphrasegiveniswrong" in output and "".join(str(key).split()) in output
    logged = "\n".join(r.getMessage() for r in caplog.records) + output + str(capsys.readouterr())
    assert secret not in logged


def test_signers_command_lists_validity_and_the_active_signer(tmp_path, pki) -> None:
    nxt = write_signer(pki, tmp_path, "next", ec.generate_private_key(ec.SECP256R1()),
                       not_before=_now() + DAY, not_after=_now() + 60 * DAY)
    lines = (f'signers_dir = "{tmp_path / "signers"}"\n[[ca.demo.signer]]\ncertificate = "{pki.ocsp_cert}"\n'
             f'key = "{pki.ocsp_key}"\n[[ca.demo.signer]]\ncertificate = "{nxt[0]}"\nkey = "{nxt[1]}"\n')
    (tmp_path / "signers").mkdir()
    (tmp_path / "signers" / "broken.toml").write_text('certificate = "missing.pem"\n')
    config = _config(tmp_path, pki, lines)
    result = CliRunner().invoke(main, ["signers", "--config", str(config)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[2].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    assert "active" in rows["ocsp"] and "ecdsa-sha256" in rows["ocsp"]
    assert "next" in rows["next"] and f"{_now() + 60 * DAY:%Y-%m-%d}" in rows["next"]
    assert "refused" in rows["broken"] and "key: is missing" in rows["broken"]


def test_watcher_reload_installs_a_new_signer_and_skips_a_bad_one(tmp_path, pki, caplog) -> None:
    signers_dir = tmp_path / "signers"
    signers_dir.mkdir()
    config = _config(tmp_path, pki, f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\n'
                                    f'signers_dir = "{signers_dir}"\n')
    settings = load_config(config)
    prepare(settings)
    app = build_application(settings)
    watcher = SignerWatcher(app.registry.cas)
    request = ocsp_request(load_cert(pki.ca_cert), pki.serials["good"])
    assert response_signer_cn(post(app, request).body) == "certstatus demo OCSP responder"
    write_signer(pki, signers_dir, "fresh", ec.generate_private_key(ec.SECP256R1()),
                 not_before=_now() - dt.timedelta(minutes=1), not_after=_now() + 30 * DAY)
    (signers_dir / "fresh.toml").write_text('certificate = "fresh.pem"\nkey = "fresh.key"\n')
    write_signer(pki, signers_dir, "noeku", ec.generate_private_key(ec.SECP256R1()),
                 not_before=_now(), not_after=_now() + 30 * DAY, ocsp_signing=False)
    (signers_dir / "noeku.toml").write_text('certificate = "noeku.pem"\nkey = "noeku.key"\n')
    with caplog.at_level(logging.ERROR, logger="certstatus"):
        watcher.check()
    assert response_signer_cn(post(app, request).body) == "fresh responder"
    assert any("noeku.pem" in r.getMessage() and "OCSPSigning" in r.getMessage() for r in caplog.records)
    # A second look with nothing changed reloads nothing (same signer objects).
    before = app.registry.by_name["demo"].signers.signers
    watcher.check()
    assert app.registry.by_name["demo"].signers.signers == before
