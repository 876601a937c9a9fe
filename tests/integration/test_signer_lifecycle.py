"""`certstatus signer new` / `signer add`: key + CSR with the OCSP responder profile, a certificate
issued by real `openssl x509 -req`, checked and installed, picked up by a running server."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certstatus.cli import main
from certstatus.demo_pki import make_demo_pki
from tests.processes import openssl_ocsp_status
from tests.servers import free_port, signer_states, start_server, table


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_demo_pki(tmp_path_factory.mktemp("lifecycle-pki"), key_type="ec")


def _config(folder: Path, pki, extra: str = "") -> Path:
    path = folder / "certstatus.toml"
    path.write_text(
        f'[server]\ndatabase = "{folder / "store.sqlite3"}"\n\n[ca.demo]\ncertificate = "{pki.ca_cert}"\n'
        f'crl = ["{pki.crl}"]\nindex = "{pki.index}"\nsigner_certificate = "{pki.ocsp_cert}"\n'
        f'signer_key = "{pki.ocsp_key}"\nsigners_dir = "signers"\nsigners_rescan = "1s"\n{extra}'
    )
    return path


def _issue(pki, csr: Path, out: Path, *, copy_extensions: bool = True) -> None:
    """The CA issues the request with real OpenSSL, copying the requested extensions."""
    command = ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
               "-days", "30", "-out", str(out), "-set_serial", str(int(time.time() * 1000))]
    if copy_extensions:
        command += ["-copy_extensions", "copyall"]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def _invoke(*args: str, env: dict | None = None):
    result = CliRunner().invoke(main, list(args), env={"COLUMNS": "250", **(env or {})})
    return result, result.output.replace("\n", " ")


def test_signer_new_writes_a_key_and_a_request_with_the_responder_profile(tmp_path, pki) -> None:
    config = _config(tmp_path, pki)
    result, output = _invoke("signer", "new", "--config", str(config), "--name", "r1", "--key-type", "ec-p384")
    assert result.exit_code == 0, output
    csr = x509.load_pem_x509_csr((tmp_path / "signers" / "r1.csr").read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string().startswith("CN=certstatus demo CA OCSP Responder ")
    extensions = {ext.oid: ext for ext in csr.extensions}
    assert extensions[x509.ExtendedKeyUsage.oid].value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
    usage = extensions[x509.KeyUsage.oid]
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert x509.OCSPNoCheck.oid in extensions
    assert set(extensions) == {x509.ExtendedKeyUsage.oid, x509.KeyUsage.oid, x509.OCSPNoCheck.oid}
    assert (tmp_path / "signers" / "r1.key").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "signers" / "r1.toml").exists()  # not a signer until its certificate is added


@pytest.mark.parametrize("name", ["../escaped", "..", "sub/r1", "{tmp}/absolute", ".hidden", "a\\b", ""])
def test_signer_name_that_is_not_a_plain_file_name_is_refused_before_anything_is_written(tmp_path, pki, name) -> None:
    name = name.format(tmp=tmp_path)  # an absolute path, inside this test's folder should the refusal fail
    config = _config(tmp_path, pki)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for command in (["signer", "new", "--config", str(config)], ["signer", "add", "--config", str(config), str(pki.ocsp_cert)]):
        result, output = _invoke(*command, "--name", name)
        assert result.exit_code == 2 and "--name" in output and "is not a signer name" in output, output
        assert "Traceback" not in output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written, inside or out


def test_signer_add_refuses_a_certificate_without_the_eku_or_for_another_key(tmp_path, pki) -> None:
    config = _config(tmp_path, pki)
    assert _invoke("signer", "new", "--config", str(config), "--name", "r2")[0].exit_code == 0
    plain = tmp_path / "plain.pem"
    _issue(pki, tmp_path / "signers" / "r2.csr", plain, copy_extensions=False)
    result, output = _invoke("signer", "add", "--config", str(config), str(plain))
    assert result.exit_code == 2 and "id-kp-OCSPSigning" in output and "plain.pem" in output
    result, output = _invoke("signer", "add", "--config", str(config), str(pki.ocsp_cert))
    assert result.exit_code == 2 and "is not any pending key" in output
    assert not list((tmp_path / "signers").glob("*.toml"))


def test_new_signer_is_added_and_picked_up_by_the_running_server_without_restart(tmp_path, pki) -> None:
    port = free_port()
    config = _config(tmp_path, pki).read_text().replace("[server]\n", f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\n')
    server = start_server(tmp_path, config, port=port)
    respout = tmp_path / "response.der"

    def ask() -> tuple[str, str]:
        """The certStatus of the response about the good leaf (verified by openssl), and the subject of the
        delegated responder certificate it carries."""
        status = openssl_ocsp_status(["openssl", "ocsp", "-issuer", str(pki.ca_cert), "-cert", str(pki.leaves["good"]), "-url",
                                      server.url, "-CAfile", str(pki.root_cert), "-verify_other", str(pki.ca_cert)], respout=respout)
        (signer, *_) = ocsp.load_der_ocsp_response(respout.read_bytes()).certificates
        return status, signer.subject.rfc4514_string()

    try:
        assert ask() == ("good", "CN=certstatus demo OCSP responder")

        assert _invoke("signer", "new", "--config", str(tmp_path / "certstatus.toml"), "--name", "next-year")[0].exit_code == 0
        issued = tmp_path / "issued.pem"
        _issue(pki, tmp_path / "signers" / "next-year.csr", issued)
        result, output = _invoke("signer", "add", "--config", str(tmp_path / "certstatus.toml"), str(issued))
        assert result.exit_code == 0, output
        assert "installed signer next-year for CA demo" in output

        deadline = time.monotonic() + 20  # signers_rescan is 1 s
        while not (answer := ask())[1].startswith("CN=certstatus demo CA OCSP Responder "):  # the new signer's subject
            assert time.monotonic() < deadline, f"the new signer was not picked up ({answer}):\n{server.log_text()}"
            time.sleep(0.3)
        assert answer[0] == "good"
    finally:
        assert server.stop() == 0, server.log_text()


def test_metrics_show_a_signer_added_with_signer_add_without_sighup(tmp_path, pki) -> None:
    port, admin_port = free_port(), free_port()
    config = _config(tmp_path, pki).read_text().replace("[server]\n", f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 2\n')
    server = start_server(tmp_path, config + table("admin", listen=f"127.0.0.1:{admin_port}", token_file="admin.token"),
                          port=port, admin_port=admin_port)
    try:
        assert signer_states(server.admin_get("/metrics").text) == {"ocsp": "active"}
        config_path = str(tmp_path / "certstatus.toml")
        assert _invoke("signer", "new", "--config", config_path, "--name", "next-year")[0].exit_code == 0
        issued = tmp_path / "issued.pem"
        _issue(pki, tmp_path / "signers" / "next-year.csr", issued)
        result, output = _invoke("signer", "add", "--config", config_path, str(issued))
        assert result.exit_code == 0, output
        deadline = time.monotonic() + 20  # signers_rescan is 1 s
        while (states := signer_states(server.admin_get("/metrics").text)) != {"ocsp": "standby", "next-year": "active"}:
            assert time.monotonic() < deadline, f"{states}\n{server.log_text()}"
            time.sleep(0.2)
        time.sleep(2)  # every worker's re-scan too
        installed = [line for line in server.log_text().splitlines() if "signer next-year installed" in line]
        assert len(installed) == 1, installed  # once per server, not once per worker
    finally:
        assert server.stop() == 0


def test_signer_new_in_a_pkcs11_token_then_add(tmp_path, pki, softhsm) -> None:
    config = _config(tmp_path, pki, f'pkcs11_module = "{softhsm.module}"\npkcs11_pin_file = "{softhsm.pin_file}"\n')
    result, output = _invoke("signer", "new", "--config", str(config), "--name", "hsm-new",
                             "--pkcs11", f"pkcs11:token={softhsm.token}", "--key-type", "ec-p256")
    assert result.exit_code == 0, output
    assert (tmp_path / "signers" / "hsm-new.pkcs11").read_text().strip() == f"pkcs11:token={softhsm.token};object=hsm-new"
    assert not (tmp_path / "signers" / "hsm-new.key").exists()
    issued = tmp_path / "hsm-issued.pem"
    _issue(pki, tmp_path / "signers" / "hsm-new.csr", issued)
    result, output = _invoke("signer", "add", "--config", str(config), str(issued))
    assert result.exit_code == 0, output
    toml = (tmp_path / "signers" / "hsm-new.toml").read_text()
    assert f'key = "pkcs11:token={softhsm.token};object=hsm-new"' in toml
    result, output = _invoke("signers", "--config", str(config))
    assert result.exit_code == 0, output
    row = next(line for line in result.output.splitlines() if "hsm-new" in line)
    assert "active" in row
    # The same name twice is refused by the token (no silent second key).
    result, output = _invoke("signer", "new", "--config", str(config), "--name", "hsm-new",
                             "--pkcs11", f"pkcs11:token={softhsm.token}")
    assert result.exit_code == 2 and "already holds an object" in output


@pytest.mark.parametrize("key_type", ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87"])
def test_signer_new_makes_an_ml_dsa_key_and_a_request_signed_with_it(tmp_path, pki, key_type) -> None:
    from certstatus.signing.algorithms import ALGORITHMS
    from certstatus.signing.keys import load_private_key

    config = _config(tmp_path, pki)
    result, output = _invoke("signer", "new", "--config", str(config), "--name", "pq", "--key-type", key_type)
    assert result.exit_code == 0, output
    assert "an ML-DSA request needs OpenSSL 3.5 or later" in output
    csr = x509.load_pem_x509_csr((tmp_path / "signers" / "pq.csr").read_bytes())
    assert csr.is_signature_valid
    assert csr.signature_algorithm_oid.dotted_string == ALGORITHMS[key_type].oid
    assert {ext.oid for ext in csr.extensions} == {x509.ExtendedKeyUsage.oid, x509.KeyUsage.oid, x509.OCSPNoCheck.oid}
    key = load_private_key(tmp_path / "signers" / "pq.key", None).key  # PKCS#8, seed form
    assert key.public_key() == csr.public_key()


def test_signer_new_refuses_an_ml_dsa_key_in_a_token(tmp_path, pki, softhsm) -> None:
    """python-pkcs11 and SoftHSM2 know no ML-DSA mechanism (PKCS#11 3.2): one clear sentence, nothing written."""
    config = _config(tmp_path, pki, f'pkcs11_module = "{softhsm.module}"\npkcs11_pin_file = "{softhsm.pin_file}"\n')
    result, output = _invoke("signer", "new", "--config", str(config), "--name", "pq-token", "--key-type", "ml-dsa-65",
                             "--pkcs11", f"pkcs11:token={softhsm.token}")
    assert result.exit_code == 2 and "key type ml-dsa-65 is not generated in tokens" in output, output
    assert not list((tmp_path / "signers").glob("pq-token*"))
