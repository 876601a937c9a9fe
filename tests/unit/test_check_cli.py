"""``certstatus check``: the requests it plans, and what an operator sees for bad input.

The requests are read back with ``cryptography`` and with certstatus's own
GET decoder (a tolerant reader: if it gets back the same DER, the URL is
right). Operator errors are one paragraph, exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509 import ocsp

from certstatus.check.probe import get_url, plan
from certstatus.cli import main
from certstatus.protocol.request import decode_get_path
from tests.servers import free_port


def _ca(demo_pki) -> x509.Certificate:
    return x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())


def test_each_serial_is_asked_eight_ways_with_fresh_nonces(demo_pki) -> None:
    probes = plan(_ca(demo_pki), [0x10, 0x11], [0x99])
    assert len(probes) == 24
    assert {(p.method, p.hash_algorithm, p.nonce is not None) for p in probes if p.serial_number == 0x10} == {
        (m, h, n) for m in ("GET", "POST") for h in ("sha1", "sha256") for n in (False, True)
    }
    assert [p.unassigned for p in probes].count(True) == 8
    nonces = [p.nonce for p in probes if p.nonce is not None]
    assert len(set(nonces)) == len(nonces) == 12 and all(len(n) == 32 for n in nonces)
    for probe in probes:
        request = ocsp.load_der_ocsp_request(probe.der)
        assert request.serial_number == probe.serial_number
        assert request.hash_algorithm.name == probe.hash_algorithm
        nonce = [e.value.nonce for e in request.extensions if isinstance(e.value, x509.OCSPNonce)]
        assert nonce == ([probe.nonce] if probe.nonce else [])


@pytest.mark.parametrize("url", ["http://ocsp.example/", "http://ocsp.example", "http://ocsp.example/ca1/"])
def test_get_url_appends_the_url_encoded_base64_request(demo_pki, url: str) -> None:
    for probe in plan(_ca(demo_pki), [0xFFFFFFFFFFFF], []):
        full = get_url(url, probe.der)
        prefix = url.rstrip("/") + "/"
        assert full.startswith(prefix)
        rest = full[len(prefix):]
        assert not set(rest) & set("+/="), rest  # percent-encoded (RFC 6960 Appendix A.1)
        assert decode_get_path(rest) == probe.der


def _run(*args: str):
    return CliRunner().invoke(main, ["check", *args])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--serial", "xyz"], "--serial: 'xyz' is not a hexadecimal serial number. Write it in hex"),
        ([], "--serial: no serial to ask about."),
        (["--serial", "10", "--unassigned-serial", "0x10"], "10 is also given as --serial"),
    ],
)
def test_bad_serials_are_one_paragraph_and_exit_2(demo_pki, args, words) -> None:
    result = _run("http://127.0.0.1:1/", "--issuer", str(demo_pki.ca_cert), *args)
    assert result.exit_code == 2
    assert words in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_an_issuer_file_that_is_no_certificate_names_the_file(demo_pki) -> None:
    result = _run("http://127.0.0.1:1/", "--issuer", str(demo_pki.ca_key), "--serial", "10")
    assert result.exit_code == 2
    assert f"{demo_pki.ca_key} is not a PEM or DER X.509 certificate" in " ".join(result.output.split())


def test_a_url_that_is_not_http_is_refused(demo_pki) -> None:
    result = _run("ldap://ocsp.example/", "--issuer", str(demo_pki.ca_cert), "--serial", "10")
    assert result.exit_code == 2 and "is not an http:// or https:// URL" in " ".join(result.output.split())


def test_a_responder_that_does_not_answer_at_all_is_an_operator_error(demo_pki, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = _run(f"http://127.0.0.1:{port}/", "--issuer", str(demo_pki.ca_cert), "--serial", "10", "--timeout", "2")
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"http://127.0.0.1:{port}/: no HTTP answer" in text and "Check the URL" in text


def test_a_tls_ca_file_that_cannot_be_read_names_the_option(demo_pki, tmp_path: Path) -> None:
    result = _run("https://127.0.0.1:1/", "--issuer", str(demo_pki.ca_cert), "--serial", "10", "--tls-ca-file", str(tmp_path / "missing.pem"))
    assert result.exit_code == 2 and "--tls-ca-file" in result.output and "Traceback" not in result.output
