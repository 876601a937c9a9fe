"""Certificates for the access-control tests, built on the demo PKI.

* a TLS server certificate for ``localhost`` / ``127.0.0.1`` (issued by a
  "test TLS root");
* client certificates (clientAuth) issued by a "test clients root":
  ``alice`` and ``bob`` (O=Example Partners), ``mallory`` (O=Elsewhere);
* ``revoked-client``, issued by the demo CA — a CA certstatus serves — and
  revoked in :attr:`AccessPki.crl`, a CRL of the demo CA that also carries the
  demo revocations;
* ``stranger``, issued by a root nobody trusts.

``anchors`` holds the clients root, the demo root and the demo CA: the trust
anchors for TLS clients and request signers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certstatus.clock import UTC
from certstatus.demo_pki import DemoPki, issue_cert, new_key, sign_crl
from certstatus.model import RevokedEntry

CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]


def _name(cn: str, org: str | None = None) -> x509.Name:
    """``O=org, CN=cn`` in DER order, which RFC 4514 writes ``CN=cn,O=org``."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Pair:
    """A certificate and its key, written as PEM files."""

    cert: Path
    key: Path
    certificate: x509.Certificate

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


@dataclass
class AccessPki:
    demo: DemoPki
    folder: Path
    tls_root: Path
    server: Pair
    clients_root: Pair
    anchors: Path
    crl: Path
    clients: dict[str, Pair] = field(default_factory=dict)


def _write(folder: Path, name: str, cert: x509.Certificate, key) -> Pair:
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return Pair(cert_path, key_path, cert)


def make_access_pki(demo: DemoPki, folder: Path) -> AccessPki:
    """Write the access-control certificates into ``folder`` (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=365)
    ca_cert = x509.load_pem_x509_certificate(demo.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(demo.ca_key.read_bytes(), None)

    tls_root_key = new_key("ec")
    tls_root = issue_cert(None, tls_root_key, tls_root_key.public_key(), common_name="test TLS root",
                          not_before=start, not_after=end, ca=True)
    tls_root_pair = _write(folder, "tls-root", tls_root, tls_root_key)
    server_key = new_key("ec")
    server = issue_cert(tls_root, tls_root_key, server_key.public_key(), common_name="localhost",
                        not_before=start, not_after=end, dns_names=["localhost"], ip_addresses=["127.0.0.1"])

    root_key = new_key("ec")
    root = issue_cert(None, root_key, root_key.public_key(), common_name="test clients root",
                      not_before=start, not_after=end, ca=True)
    pki = AccessPki(demo, folder, tls_root_pair.cert, _write(folder, "server", server, server_key),
                    _write(folder, "clients-root", root, root_key), folder / "anchors.pem", folder / "crl.pem")
    for name, org in (("alice", "Example Partners"), ("bob", "Example Partners"), ("mallory", "Elsewhere")):
        key = new_key("ec")
        cert = issue_cert(root, root_key, key.public_key(), common_name=name, subject=_name(name, org),
                          not_before=start, not_after=end, extended_key_usage=CLIENT_AUTH)
        pki.clients[name] = _write(folder, name, cert, key)

    key = new_key("ec")
    revoked = issue_cert(ca_cert, ca_key, key.public_key(), common_name="revoked-client",
                         subject=_name("revoked-client", "Example Partners"),
                         not_before=start, not_after=end, extended_key_usage=CLIENT_AUTH)
    pki.clients["revoked-client"] = _write(folder, "revoked-client", revoked, key)

    stranger_root_key = new_key("ec")
    stranger_root = issue_cert(None, stranger_root_key, stranger_root_key.public_key(), common_name="untrusted root",
                               not_before=start, not_after=end, ca=True)
    key = new_key("ec")
    stranger = issue_cert(stranger_root, stranger_root_key, key.public_key(), common_name="stranger",
                          subject=_name("stranger", "Example Partners"), not_before=start, not_after=end,
                          extended_key_usage=CLIENT_AUTH)
    pki.clients["stranger"] = _write(folder, "stranger", stranger, key)

    entries = [
        RevokedEntry(demo.serials[name], when, None)
        for name, when in demo.revocation_times.items()
    ]
    entries.append(RevokedEntry(revoked.serial_number, now - dt.timedelta(hours=1), x509.ReasonFlags.key_compromise))
    crl = sign_crl(ca_cert, ca_key, entries, crl_number=2, this_update=now - dt.timedelta(minutes=1),
                   next_update=now + dt.timedelta(days=7))
    pki.crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    pki.anchors.write_bytes(
        root.public_bytes(serialization.Encoding.PEM) + demo.root_cert.read_bytes() + demo.ca_cert.read_bytes()
    )
    return pki
