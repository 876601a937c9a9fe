"""A tiny certificate authority driven by the real ``openssl`` command line.

Tests use it to obtain bytes that OpenSSL itself wrote (``index.txt``, CRLs
from ``openssl ca -gencrl``) instead of bytes our own code produced.

    ca = OpenSslCa(tmp_path)
    serial = ca.issue("leaf1")
    ca.revoke("leaf1", reason="keyCompromise", compromise_time="20240102030405Z")
    crl_pem = ca.gencrl()
    crl_der = ca.last_crl_der()
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509

_CONFIG = """\
[ca]
default_ca = demo

[demo]
dir = {folder}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 90
default_crl_days = 7
policy = policy_any
unique_subject = no
copy_extensions = none
x509_extensions = leaf_ext
crl_extensions = crl_ext

[policy_any]
commonName = supplied

[leaf_ext]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[crl_ext]
{crl_extensions}

[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = unused

[ca_ext]
{ca_extensions}
"""
#: The CA certificate's extensions (an OpenSSL extension section's lines) unless told otherwise.
CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash"""


class OpenSslCa:
    """An ``openssl ca`` database in ``folder`` with an ECDSA P-256 CA named ``common_name``,
    valid for ``days`` days.

    ``ca_extensions`` are the lines of the CA certificate's extension section
    (default :data:`CA_EXTENSIONS`: critical CA:TRUE, keyCertSign and cRLSign),
    e.g. to make a CA whose keyUsage lacks cRLSign; without any, OpenSSL writes
    a version 1 certificate. ``crl_extensions`` are those of its CRLs (OpenSSL
    adds the cRLNumber); a CA without subjectKeyIdentifier needs ``""``, as
    OpenSSL cannot write the authorityKeyIdentifier then. Every method runs the
    ``openssl`` binary and raises :class:`subprocess.CalledProcessError` (with
    OpenSSL's stderr) if it fails.
    """

    def __init__(self, folder: Path, common_name: str = "OpenSSL Test CA", *, days: int = 3650,
                 ca_extensions: str = CA_EXTENSIONS, crl_extensions: str = "authorityKeyIdentifier = keyid:always") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "newcerts").mkdir(exist_ok=True)
        (folder / "index.txt").write_text("")
        (folder / "serial").write_text("1000\n")
        (folder / "crlnumber").write_text("01\n")
        self.config = folder / "openssl.cnf"
        self.config.write_text(_CONFIG.format(folder=folder, ca_extensions=ca_extensions, crl_extensions=crl_extensions))
        self.run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days),
            "-subj", f"/CN={common_name}", "-config", str(self.config),
            "-extensions", "ca_ext",
        )  # fmt: skip

    @property
    def index_path(self) -> Path:
        """The OpenSSL CA database (``index.txt``)."""
        return self.folder / "index.txt"

    @property
    def cert_path(self) -> Path:
        """The CA certificate, PEM."""
        return self.folder / "ca.pem"

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate."""
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def run(self, *args: str) -> bytes:
        """Run ``openssl *args`` in the CA folder and return its stdout."""
        done = subprocess.run(
            ["openssl", *args], cwd=self.folder, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(
                done.returncode, done.args, done.stdout, done.stderr
            )
        return done.stdout

    def issue(self, name: str, *, days: int = 90) -> int:
        """Issue a leaf ``CN=<name>`` with ``openssl ca``; write ``<name>.pem``; return its serial."""
        self.run(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", "-config", str(self.config),
        )  # fmt: skip
        self.run(
            "ca", "-batch", "-config", str(self.config), "-days", str(days),
            "-in", f"{name}.csr", "-out", f"{name}.pem", "-notext",
        )  # fmt: skip
        cert = x509.load_pem_x509_certificate((self.folder / f"{name}.pem").read_bytes())
        return cert.serial_number

    def revoke(
        self,
        name: str,
        *,
        reason: str | None = None,
        compromise_time: str | None = None,
        ca_compromise_time: str | None = None,
        hold_instruction: str | None = None,
    ) -> None:
        """Revoke ``<name>.pem`` with ``openssl ca -revoke``.

        ``reason`` maps to ``-crl_reason``, ``compromise_time`` (GeneralizedTime
        ``YYYYMMDDHHMMSSZ``) to ``-crl_compromise``, ``ca_compromise_time`` to
        ``-crl_CA_compromise`` and ``hold_instruction`` to ``-crl_hold``.
        """
        args = ["ca", "-batch", "-config", str(self.config), "-revoke", f"{name}.pem"]
        if reason is not None:
            args += ["-crl_reason", reason]
        if compromise_time is not None:
            args += ["-crl_compromise", compromise_time]
        if ca_compromise_time is not None:
            args += ["-crl_CA_compromise", ca_compromise_time]
        if hold_instruction is not None:
            args += ["-crl_hold", hold_instruction]
        self.run(*args)

    def gencrl(self) -> bytes:
        """Generate the next CRL with ``openssl ca -gencrl`` (cRLNumber 1, 2, ...); return its PEM."""
        self.run("ca", "-batch", "-config", str(self.config), "-gencrl", "-out", "crl.pem")
        return (self.folder / "crl.pem").read_bytes()

    def last_crl_der(self) -> bytes:
        """The CRL of the last :meth:`gencrl`, converted to DER by ``openssl crl``."""
        return self.run("crl", "-in", "crl.pem", "-outform", "DER")
