"""One-shot certstatus commands and the real `openssl ocsp` client, for the integration tests and bench/fleet.py.

Servers are started by :func:`tests.servers.start_server`. A status is read from the response
itself (its certStatus field, parsed by cryptography), never from openssl's text, where a
certificate's file name (``revoked-hold.pem``) holds the same words.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from cryptography.x509 import ocsp

from tests.servers import CERTSTATUS


def run_certstatus(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one certstatus command to completion; raise AssertionError with its output when it fails."""
    done = subprocess.run([*CERTSTATUS, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"certstatus {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


def openssl_status(issuer: Path, cert: Path, url: str, ca_file: Path, *, verify_other: Path | None = None) -> str:
    """Ask ``url`` about ``cert`` with `openssl ocsp`; return good/revoked/unknown, or trylater/... on error.

    An HTTP 503 (certstatus's tryLater) counts as ``trylater``.

    The response signature is verified against ``ca_file`` (AssertionError if not).
    """
    command = ["openssl", "ocsp", "-issuer", str(issuer), "-cert", str(cert), "-url", url, "-CAfile", str(ca_file)]
    if verify_other is not None:
        command += ["-verify_other", str(verify_other)]
    return openssl_ocsp_status(command)


def openssl_serial_status(issuer: Path, serial_text: str, url: str, ca_file: Path, *, respout: Path | None = None) -> str:
    """Ask ``url`` about serial ``serial_text`` of ``issuer`` with `openssl ocsp -serial` (no nonce), as
    :func:`openssl_status` does about a certificate.

    ``serial_text`` is what `openssl ocsp -serial` takes: decimal or ``0x`` hex, ``-`` when negative
    (``-0x01``). With ``respout`` the response DER is written there.
    """
    command = ["openssl", "ocsp", "-issuer", str(issuer), "-serial", serial_text, "-url", url, "-CAfile", str(ca_file), "-no_nonce"]
    return openssl_ocsp_status(command, respout=respout)


def openssl_ocsp_status(command: list[str], *, respout: Path | None = None) -> str:
    """Run an `openssl ocsp` command asking about one CertID; return the certStatus of the response
    (``good``, ``revoked``, ``unknown``), read from the response's DER, once openssl says
    "Response verify OK" (AssertionError with its output otherwise).

    An unsuccessful response gives its responseStatus (``unauthorized``, ``trylater``, ...; an HTTP 503,
    certstatus's tryLater, also ``trylater``). ``respout`` keeps the response there.
    """
    with tempfile.TemporaryDirectory(prefix="openssl-ocsp-") as folder:
        der_file = respout or Path(folder) / "response.der"
        done = subprocess.run([*command, "-respout", str(der_file)], capture_output=True, timeout=30)
        out = done.stdout + done.stderr
        if error := re.search(rb"Responder Error: (\w+)", out):
            return error.group(1).decode()
        if b"code=503" in out:  # certstatus sends tryLater with HTTP 503; openssl stops at the status line
            return "trylater"
        if b"Response verify OK" not in out or not der_file.exists():
            raise AssertionError(f"unexpected openssl ocsp output:\n{out.decode(errors='replace')}")
        response = ocsp.load_der_ocsp_response(der_file.read_bytes())
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return response.response_status.name.lower().replace("_", "")
    return response.certificate_status.name.lower()
