"""Live-server fixtures: the real ``certstatus serve`` as a subprocess, plus client helpers.

Each server runs in its own temporary folder with its own SQLite store, on a
free 127.0.0.1 port, with 2 workers. Fixtures are session-scoped (a server
start costs about a second) and stop the server with SIGTERM at teardown,
asserting a graceful exit within 10 s.

Servers:

* ``demo_server``     the demo PKI through a config file (CRL + index.txt, delegated responder)
* ``single_server``   the single-CA command-line form (PKCS#12 key, byName responderID, ``--path /single``)
* ``multi_server``    two CAs with their own paths: ``/ca1`` (demo PKI, delegated responder)
                      and ``/ca2`` (a second PKI whose CA signs its own responses); ``/`` serves both
* ``extended_server`` the demo PKI from CRL + issued list with ``unknown_serials = "revoked"``
* ``policy_server``   the demo PKI from CRL + issued list with ``unknown_serials = "unauthorized"``
                      and ``nonce = "require"``

The helpers (:func:`run_openssl_ocsp`, :func:`verify_signed_response`,
:func:`build_request`, ...) are imported by the test modules from here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certstatus.demo_pki import DEMO_PASSWORD, DemoPki, make_demo_pki
from tests.servers import Server, free_port, start_server

OPENSSL = shutil.which("openssl")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
OCSP_REQUEST_TYPE = "application/ocsp-request"
#: id-pkix-ocsp-extended-revoke (RFC 6960 §4.4.8).
EXTENDED_REVOKE_OID = "1.3.6.1.5.5.7.48.1.9"

needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")


# --------------------------------------------------------------------------- server processes


@contextlib.contextmanager
def running_server(args: Sequence[str], folder: Path, port: int, pkis: dict[str, DemoPki] | None = None) -> Iterator[Server]:
    """``certstatus ARGS`` started by :func:`tests.servers.start_server` in ``folder``, once a worker answers HTTP on
    ``port``; at exit stopped with SIGTERM, asserting a clean exit within 10 s and that nothing listens any more."""
    server = start_server(folder, args=args, port=port, pkis=pkis)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # any HTTP answer (GET / is 404) means a worker is up, not only the socket
            try:
                httpx.get(server.origin + "/", timeout=1.0)
                break
            except httpx.TransportError:
                assert server.process.poll() is None and time.monotonic() < deadline, f"no HTTP answer:\n{server.log_text()}"
                time.sleep(0.1)
        yield server
    finally:
        code = server.stop(STOP_TIMEOUT)
    assert code == 0, f"certstatus exited with {code} after SIGTERM (-9: killed after {STOP_TIMEOUT} s):\n{server.log_text()}"
    with socket.socket() as sock, contextlib.suppress(OSError):  # the workers went with the supervisor
        sock.settimeout(1)
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still accepts connections after certstatus exited"


def _ca_table(name: str, pki: DemoPki, **extra: str | list[str]) -> str:
    """A ``[ca.NAME]`` table for ``pki`` (delegated responder unless overridden)."""
    values: dict[str, str | list[str]] = {
        "certificate": str(pki.ca_cert),
        "signer_certificate": str(pki.ocsp_cert),
        "signer_key": str(pki.ocsp_key),
        "validity": "1d",
        **extra,
    }
    lines = [f"[ca.{name}]"]
    for key, value in values.items():
        if isinstance(value, list):
            lines.append(f"{key} = [{', '.join(_toml_str(v) for v in value)}]")
        else:
            lines.append(f"{key} = {_toml_str(value)}")
    return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(folder: Path, port: int, *tables: str) -> Path:
    """Write ``folder/certstatus.toml``: 2 workers, store in ``folder``, the given CA tables."""
    config = folder / "certstatus.toml"
    server = f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 2\ndatabase = {_toml_str(str(folder / "store.sqlite3"))}\ncommon_path = "/"\n\n'
    config.write_text(server + "\n".join(tables))
    return config


@pytest.fixture(scope="session")
def second_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    """Another demo PKI (its own root, CA and keys), for the second CA of ``multi_server``."""
    return make_demo_pki(tmp_path_factory.mktemp("second-pki"), key_type="ec")


@pytest.fixture(scope="session")
def demo_server(demo_pki: DemoPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo PKI served through a config file: CRL + index.txt, delegated responder."""
    folder = tmp_path_factory.mktemp("server-demo")
    port = free_port()
    table = _ca_table("demo-issuing-ca", demo_pki, crl=[str(demo_pki.crl)], index=str(demo_pki.index))
    config = write_config(folder, port, table)
    with running_server(["serve", "--config", str(config)], folder, port, {"demo": demo_pki}) as server:
        yield server


@pytest.fixture(scope="session")
def single_server(demo_pki: DemoPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The single-CA command-line form: PKCS#12 key with a password file, byName, path /single."""
    folder = tmp_path_factory.mktemp("server-single")
    port = free_port()
    password = folder / "password.txt"
    password.write_bytes(DEMO_PASSWORD + b"\n")
    password.chmod(0o600)
    args = [
        "serve", "--issuer", str(demo_pki.ca_cert), "--crl", str(demo_pki.crl), "--index", str(demo_pki.index),
        "--signer-cert", str(demo_pki.ocsp_cert), "--signer-key", str(demo_pki.ocsp_p12),
        "--signer-password-file", str(password), "--listen", f"127.0.0.1:{port}",
        "--db", str(folder / "store.sqlite3"), "--workers", "2", "--path", "/single",
        "--responder-id", "name", "--validity", "1d",
    ]  # fmt: skip
    with running_server(args, folder, port, {"demo": demo_pki}) as server:
        yield server


@pytest.fixture(scope="session")
def multi_server(demo_pki: DemoPki, second_pki: DemoPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two CAs: ``/ca1`` (demo PKI, delegated) and ``/ca2`` (second PKI, CA-signed); ``/`` serves both."""
    folder = tmp_path_factory.mktemp("server-multi")
    port = free_port()
    ca1 = _ca_table("ca1", demo_pki, crl=[str(demo_pki.crl)], index=str(demo_pki.index), path="/ca1")
    ca2 = _ca_table(
        "ca2", second_pki, crl=[str(second_pki.crl)], index=str(second_pki.index), path="/ca2",
        signer_certificate=str(second_pki.ca_cert), signer_key=str(second_pki.ca_key),
    )  # fmt: skip
    config = write_config(folder, port, ca1, ca2)
    pkis = {"ca1": demo_pki, "ca2": second_pki}
    with running_server(["serve", "--config", str(config)], folder, port, pkis) as server:
        yield server


@pytest.fixture(scope="session")
def extended_server(demo_pki: DemoPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo PKI from its CRL and issued list, never-issued serials extended revoked."""
    folder = tmp_path_factory.mktemp("server-extended")
    port = free_port()
    table = _ca_table("extended", demo_pki, crl=[str(demo_pki.crl)], issued=str(demo_pki.issued), unknown_serials="revoked")
    config = write_config(folder, port, table)
    with running_server(["serve", "--config", str(config)], folder, port, {"demo": demo_pki}) as server:
        yield server


@pytest.fixture(scope="session")
def policy_server(demo_pki: DemoPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo PKI from its CRL and issued list: never-issued serials refused, a nonce required."""
    folder = tmp_path_factory.mktemp("server-policy")
    port = free_port()
    table = _ca_table("policy", demo_pki, crl=[str(demo_pki.crl)], issued=str(demo_pki.issued),
                      unknown_serials="unauthorized", nonce="require")  # fmt: skip
    config = write_config(folder, port, table)
    with running_server(["serve", "--config", str(config)], folder, port, {"demo": demo_pki}) as server:
        yield server


# --------------------------------------------------------------------------- openssl client


@dataclass(frozen=True)
class OpensslResult:
    """What ``openssl ocsp`` printed: per certificate path, its status lines."""

    returncode: int
    stdout: str
    stderr: str
    statuses: dict[str, dict[str, str]]

    @property
    def verified(self) -> bool:
        return "Response verify OK" in self.stderr + self.stdout


def run_openssl_ocsp(
    issuer: Path,
    certs: Sequence[Path],
    *,
    url: str | None = None,
    ca_file: Path | None = None,
    verify_other: Path | None = None,
    extra: Sequence[str] = (),
    digest: str | None = None,
    timeout: float = 20,
) -> OpensslResult:
    """Run ``openssl ocsp [-DIGEST] -issuer ISSUER -cert C... [-url] [-CAfile] [-verify_other] EXTRA``.

    The digest option must come before ``-cert`` (OpenSSL applies it to the
    CertIDs that follow). ``statuses`` maps each certificate path printed to
    ``{"status": "good", "Reason": ..., "Revocation Time": ..., ...}``.
    """
    assert OPENSSL is not None
    command = [OPENSSL, "ocsp"]
    if digest:
        command.append(f"-{digest}")
    command += ["-issuer", str(issuer)]
    for cert in certs:
        command += ["-cert", str(cert)]
    if url:
        command += ["-url", url]
    if ca_file:
        command += ["-CAfile", str(ca_file)]
    if verify_other:
        command += ["-verify_other", str(verify_other)]
    command += list(extra)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    return OpensslResult(done.returncode, done.stdout, done.stderr, _parse_statuses(done.stdout, certs))


def _parse_statuses(stdout: str, certs: Sequence[Path]) -> dict[str, dict[str, str]]:
    statuses: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    names = {str(cert) for cert in certs}
    for line in stdout.splitlines():
        head, sep, rest = line.partition(": ")
        if sep and head in names and not line.startswith("\t"):
            current = statuses[head] = {"status": rest.strip()}
        elif current is not None and line.startswith("\t") and ":" in line:
            key, _, value = line.strip().partition(": ")
            current[key.rstrip(":")] = value.strip()
        else:
            current = None
    return statuses


def openssl_time(text: str) -> dt.datetime:
    """Parse the time format ``openssl ocsp`` prints (``Nov  1 09:34:28 2026 GMT``)."""
    return dt.datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=dt.timezone.utc)


# --------------------------------------------------------------------------- response checks


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def verify_signed_response(der: bytes, *, issuer: x509.Certificate, delegated: x509.Certificate | None) -> ocsp.OCSPResponse:
    """Check a successful response with ``cryptography``, independently of OpenSSL.

    The signature over tbsResponseData must verify with the responder's key;
    a delegated responder (``delegated``) must be the first certificate
    included, be issued by ``issuer`` and carry id-kp-OCSPSigning; a CA-signed
    response (``delegated=None``) must include no certificate (golang/go#59641).
    The responderID must name the signer. Returns the parsed response.
    """
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    if delegated is None:
        assert response.certificates == [], "a CA-signed response must not include certificates"
        signer = issuer
    else:
        assert response.certificates, "a delegated responder's certificate must be included"
        assert response.certificates[0] == delegated
        delegated.verify_directly_issued_by(issuer)
        eku = delegated.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.OCSP_SIGNING in eku
        signer = delegated
    if response.responder_key_hash is not None:
        assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(signer.public_key()).digest
    else:
        assert response.responder_name == signer.subject
    public_key = signer.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
    elif isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), response.signature_hash_algorithm)
    else:  # pragma: no cover - the demo PKIs use EC or RSA
        raise AssertionError(f"unexpected responder key {type(public_key).__name__}")
    now = dt.datetime.now(dt.timezone.utc)
    for single in response.responses:
        assert single.this_update_utc <= now + dt.timedelta(seconds=5)
        assert single.next_update_utc is not None and single.next_update_utc > now
    return response


# --------------------------------------------------------------------------- request building


def cryptography_request(cert: Path, issuer: Path, *, algorithm: hashes.HashAlgorithm | None = None, nonce: bytes | None = None) -> bytes:
    """A one-CertID OCSPRequest DER built with ``cryptography`` (SHA-1 CertID by default)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(load_cert(cert), load_cert(issuer), algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def build_request(
    cert: Path,
    issuer: Path,
    *,
    hash_oid: str = "1.3.14.3.2.26",
    nonce_extn_value: bytes | None = None,
) -> bytes:
    """An OCSPRequest DER built with ``asn1crypto``, for requests ``cryptography`` will not build.

    ``hash_oid`` is the CertID hashAlgorithm (the hashes are SHA-1 whatever it
    says); ``nonce_extn_value`` is the raw content of the nonce extension's
    extnValue OCTET STRING (normally an inner OCTET STRING).
    """
    reference = ocsp.load_der_ocsp_request(cryptography_request(cert, issuer))
    cert_id = asn1_ocsp.CertId(
        {
            "hash_algorithm": {"algorithm": hash_oid},
            "issuer_name_hash": reference.issuer_name_hash,
            "issuer_key_hash": reference.issuer_key_hash,
            "serial_number": reference.serial_number,
        }
    )
    tbs: dict = {"request_list": [{"req_cert": cert_id}]}
    request = asn1_ocsp.OCSPRequest({"tbs_request": tbs})
    if nonce_extn_value is not None:
        extension = asn1_ocsp.TBSRequestExtension({"extn_id": "nonce", "critical": False, "extn_value": core.OctetString(b"")})
        # Replace extnValue's content verbatim (asn1crypto would re-wrap a nonce value otherwise).
        extension["extn_value"] = core.ParsableOctetString(nonce_extn_value)
        request["tbs_request"]["request_extensions"] = asn1_ocsp.TBSRequestExtensions([extension])
    return request.dump(force=True)


def octet_string(content: bytes) -> bytes:
    """DER of an OCTET STRING holding ``content`` (the nonce's usual extnValue content)."""
    return core.OctetString(content).dump()


def post(client: httpx.Client, url: str, body: bytes, **headers: str) -> httpx.Response:
    """POST ``body`` as application/ocsp-request."""
    return client.post(url, content=body, headers={"content-type": OCSP_REQUEST_TYPE, **headers})
