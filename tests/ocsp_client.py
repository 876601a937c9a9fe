"""Client-side helpers for integration tests: OCSP requests, TLS contexts, openssl runs."""

from __future__ import annotations

import ssl
import subprocess
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp


def request_der(cert: Path, issuer: Path, *, nonce: bytes | None = None) -> bytes:
    """An OCSPRequest for ``cert`` (SHA-1 CertID), built by ``cryptography``."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_pem_x509_certificate(Path(cert).read_bytes()),
        x509.load_pem_x509_certificate(Path(issuer).read_bytes()),
        hashes.SHA1(),
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def tls_context(ca_file: Path, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A client context trusting ``ca_file``, presenting ``client`` (cert, key) when given."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    return context


def response_status(der: bytes) -> ocsp.OCSPResponseStatus:
    return ocsp.load_der_ocsp_response(der).response_status


def cert_status(der: bytes) -> str:
    """certStatus of a one-CertID successful response: good, revoked or unknown."""
    return ocsp.load_der_ocsp_response(der).certificate_status.name.lower()


def run(args: list[str], *, stdin: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a command, capturing output as text (stdout and stderr together)."""
    return subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def converse(args: list[str], data: bytes, *, timeout: float = 30) -> bytes:
    """Write ``data`` to a command and read its output to the end, keeping stdin open meanwhile.

    For clients such as ``gnutls-cli`` that hang up as soon as their input
    ends, before the server answered. The command is killed after ``timeout``.
    """
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        process.stdin.write(data)
        process.stdin.flush()
        out = process.stdout.read()
    finally:
        killer.cancel()
        process.stdin.close()
        process.wait()
    return out


def openssl_ocsp(*args: str) -> str:
    """``openssl ocsp ARGS``; returns its combined output as text."""
    return run(["openssl", "ocsp", *args]).stdout.decode(errors="replace")
