"""Test helpers for signers: responder certificates, OCSP requests, `openssl ocsp` verification."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
from pathlib import Path

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certstatus.demo_pki import DemoPki, issue_cert
from certstatus.protocol.certid import public_key_bits


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def load_key(path: Path):
    return serialization.load_pem_private_key(Path(path).read_bytes(), None)


def write_signer(
    pki: DemoPki, folder: Path, name: str, key, *, not_before: dt.datetime, not_after: dt.datetime,
    ocsp_signing: bool = True, issuer: tuple[x509.Certificate, object] | None = None, write_key: bool = True,
) -> tuple[Path, Path]:
    """Issue a responder certificate for ``key`` by the demo CA (or ``issuer``); write NAME.pem (+ NAME.key)."""
    issuer_cert, issuer_key = issuer or (load_cert(pki.ca_cert), load_key(pki.ca_key))
    cert = issue_cert(issuer_cert, issuer_key, key.public_key(), common_name=f"{name} responder",
                      not_before=not_before, not_after=not_after, ocsp_signing=ocsp_signing)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if write_key:
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
    return cert_path, key_path


def ocsp_request(issuer: x509.Certificate, serial: int, *, nonce: bool = False, preferred: tuple[str, ...] = ()) -> bytes:
    """DER OCSPRequest for one SHA-1 CertID, optionally with a nonce and preferred signature algorithms."""
    cert_id = {
        "hash_algorithm": {"algorithm": "sha1"},
        "issuer_name_hash": hashlib.sha1(issuer.subject.public_bytes()).digest(),
        "issuer_key_hash": hashlib.sha1(public_key_bits(issuer)).digest(),
        "serial_number": serial,
    }
    extensions = []
    if nonce:
        extensions.append({"extn_id": "nonce", "extn_value": os.urandom(16)})
    if preferred:
        extensions.append({
            "extn_id": "preferred_signature_algorithms",
            "extn_value": [{"sig_identifier": {"algorithm": oid}} for oid in preferred],
        })
    tbs = {"request_list": [{"req_cert": cert_id}]}
    if extensions:
        tbs["request_extensions"] = extensions
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def post(app, der: bytes, path: bytes = b"/"):
    """POST ``der`` through the sans-IO HTTP handler of a built application."""
    return app.http.handle("POST", path, {b"content-type": b"application/ocsp-request"}, der)


def openssl_verify(
    tmp_path: Path, response_der: bytes, pki: DemoPki, leaf: Path, *, vafile: Path | None = None,
    at: dt.datetime | None = None,
) -> str:
    """Run `openssl ocsp -respin` on the response; return its output (asserting "Response verify OK").

    ``at`` verifies the signer's chain at that time (``-attime``), for responses of a moved clock.
    """
    respin = tmp_path / f"resp-{hashlib.sha1(response_der).hexdigest()[:12]}.der"
    respin.write_bytes(response_der)
    command = ["openssl", "ocsp", "-respin", str(respin), "-issuer", str(pki.ca_cert), "-cert", str(leaf), "-resp_text", "-no_nonce"]
    if vafile is not None:
        command += ["-VAfile", str(vafile)]
    else:
        command += ["-CAfile", str(pki.root_cert), "-verify_other", str(pki.ca_cert)]
    if at is not None:
        command += ["-attime", str(int(at.timestamp()))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    output = result.stdout + result.stderr
    assert "Response verify OK" in output, output
    return output


def response_signer_cn(response_der: bytes) -> str:
    """The CN of the first certificate in a BasicOCSPResponse ('' when it carries none)."""
    response = asn1_ocsp.OCSPResponse.load(response_der)
    certs = response["response_bytes"]["response"].parsed["certs"]
    if not certs:
        return ""
    return certs[0].subject.native["common_name"]


def response_algorithm(response_der: bytes) -> str:
    """The dotted OID of the response's signatureAlgorithm."""
    response = asn1_ocsp.OCSPResponse.load(response_der)
    return response["response_bytes"]["response"].parsed["signature_algorithm"]["algorithm"].dotted
