"""Helpers for the source tests: CRLs signed by the demo PKI's CA, an import target, a store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certstatus.clock import UTC
from certstatus.config import CaSettings
from certstatus.demo_pki import DemoPki, PrivateKey, sign_crl
from certstatus.model import RevokedEntry
from certstatus.sources.importer import CaTarget
from certstatus.store.base import StatusStore

T0 = dt.datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


def ca_of(pki: DemoPki) -> tuple[x509.Certificate, PrivateKey]:
    """The demo PKI's issuing CA certificate and key."""
    cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    return cert, key  # type: ignore[return-value]


def crl_der(
    pki: DemoPki,
    entries: Iterable[RevokedEntry],
    *,
    number: int,
    this_update: dt.datetime = T0,
    hours: int = 24,
    delta_base: int | None = None,
    key: PrivateKey | None = None,
    freshest_crl: Iterable[str] = (),
) -> bytes:
    """A DER CRL of the demo CA (signed by ``key`` when given: mis-signed)."""
    cert, ca_key = ca_of(pki)
    crl = sign_crl(
        cert, key or ca_key, list(entries), crl_number=number, this_update=this_update,
        next_update=this_update + dt.timedelta(hours=hours), delta_base=delta_base,
        freshest_crl=freshest_crl,
    )  # fmt: skip
    return crl.public_bytes(serialization.Encoding.DER)


def revoked(serial: int, reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise, hours_before: int = 1) -> RevokedEntry:
    """A CRL entry revoked ``hours_before`` T0."""
    return RevokedEntry(serial, T0 - dt.timedelta(hours=hours_before), reason)


def target(store: StatusStore, pki: DemoPki, **settings) -> CaTarget:
    """Register the demo CA in ``store`` and return its import target (extra CaSettings in ``settings``)."""
    cert, _ = ca_of(pki)
    ca = CaSettings(
        name=settings.pop("name", "demo"), certificate=pki.ca_cert, signer_certificate=pki.ocsp_cert,
        signer_key=pki.ocsp_key, **settings,
    )  # fmt: skip
    issuer_id = store.register_issuer(ca.name, cert.public_bytes(serialization.Encoding.DER))
    return CaTarget(ca, issuer_id, cert)


def ocsp_query(app, pki: DemoPki | x509.Certificate, serial: int):
    """POST an OCSP request for ``serial`` of the demo CA (or of the CA certificate given) to ``app``
    (an Application, sans-IO).

    Returns the parsed cryptography OCSPResponse.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    cert = pki if isinstance(pki, x509.Certificate) else ca_of(pki)[0]
    # A CertID is the issuer's name and key hashes plus the serial (RFC 6960 §4.1.1): no leaf needed.
    request = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *_cert_id_hashes(cert), serial, hashes.SHA1()
    ).build()
    response = app.http.handle("POST", b"/", {b"content-type": b"application/ocsp-request"}, request.public_bytes(serialization.Encoding.DER))
    return ocsp.load_der_ocsp_response(response.body)


def _cert_id_hashes(cert: x509.Certificate) -> tuple[bytes, bytes]:
    from certstatus.protocol.certid import issuer_hashes

    return issuer_hashes(cert, "sha1")


def prepare_demo_config(config: Path, database: Path, pki: DemoPki, source: str):
    """Write ``config`` serving the demo CA from ``source`` (a TOML line, e.g. ``index = "..."``) into
    ``database``, import it with ``prepare`` at the wall-clock time; return (settings, ManualClock)."""
    from certstatus.app import prepare
    from certstatus.clock import ManualClock
    from certstatus.config import load_config

    config.write_text(
        f'[server]\ndatabase = "{database}"\n\n[ca.demo]\ncertificate = "{pki.ca_cert}"\n{source}\n'
        f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\n'
    )
    settings = load_config(config)
    clock = ManualClock(dt.datetime.now(UTC).replace(microsecond=0))
    prepare(settings, clock)
    return settings, clock
