"""Authenticate certificates: chains to configured trust anchors, then our own revocation data.

:class:`ChainVerifier` builds and checks a path from a leaf to one of the
trust anchors with ``cryptography``'s X.509 verifier (RFC 5280 path
validation with the Web PKI profile for CA certificates; any end-entity
extensions are accepted, since client and request-signer certificates vary).
Verified chains are remembered for :data:`CHAIN_CACHE_SECONDS` so a busy
client costs one verification per minute, not one per request.

:class:`OwnRevocationCheck` then asks this responder's own store about every
certificate of the chain whose issuer is a CA served here — a client
certificate revoked by one of our CAs is refused even when no CRL reached
the TLS library.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from certstatus.clock import Clock
from certstatus.errors import ConfigError
from certstatus.model import CertID
from certstatus.protocol.certid import issuer_hashes
from certstatus.store.base import StatusReader

#: Seconds a verified chain is trusted without verifying it again.
CHAIN_CACHE_SECONDS = 60.0
#: Verified chains remembered per verifier.
CHAIN_CACHE_ENTRIES = 4096


class _Forwarding(Protocol):
    forward: object  # the remote responder the CA's requests go to; falsy when answered here


class ServedIssuer(Protocol):
    """What :class:`OwnRevocationCheck` reads of a CA served here (:class:`certstatus.pipeline.issuers.ServedCA`)."""

    certificate: x509.Certificate
    issuer_id: int
    settings: _Forwarding

    @property
    def name(self) -> str: ...


class ServedIssuers(Protocol):
    """The CAs served here and how a CertID finds one (:class:`certstatus.pipeline.issuers.IssuerRegistry`)."""

    @property
    def cas(self) -> Sequence[ServedIssuer]: ...

    def find(self, cert_id: CertID) -> ServedIssuer | None: ...


class NotAuthenticated(Exception):
    """A certificate could not be authenticated; ``str()`` says why (for logs, not clients)."""


def load_anchors(paths: Sequence[Path], *, key: str) -> list[x509.Certificate]:
    """Load every certificate of the PEM files ``paths``; ConfigError naming ``key`` otherwise."""
    anchors = []
    for path in paths:
        try:
            anchors.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
        except OSError as exc:
            raise ConfigError(str(path), key, f"cannot read the trust anchors: {exc.strerror}.", "Check the path.") from None
        except ValueError as exc:
            raise ConfigError(str(path), key, f"is not a PEM file of certificates ({exc}).", "Give the CA certificates in PEM.") from None
    return anchors


class CertificateCache:
    """Parse certificate DER once: a bounded map from DER to ``x509.Certificate``."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._certs: OrderedDict[bytes, x509.Certificate] = OrderedDict()

    def load(self, der: bytes) -> x509.Certificate:
        """Return the certificate; raises :class:`NotAuthenticated` for bytes that are not one."""
        cert = self._certs.get(der)
        if cert is None:
            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError:
                raise NotAuthenticated("not a DER X.509 certificate") from None
            self._certs[der] = cert
            if len(self._certs) > self.size:
                self._certs.popitem(last=False)
        return cert


class ChainVerifier:
    """Verify a leaf and its intermediates against fixed trust anchors at the clock's time."""

    def __init__(self, anchors: Sequence[x509.Certificate], clock: Clock, *, max_chain_depth: int = 8) -> None:
        if not anchors:
            raise ValueError("a ChainVerifier needs at least one trust anchor")
        self.store = verification.Store(list(anchors))
        self.clock = clock
        self.max_chain_depth = max_chain_depth
        self._verified: OrderedDict[bytes, tuple[float, tuple[x509.Certificate, ...]]] = OrderedDict()

    def verify(self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate] = ()) -> tuple[x509.Certificate, ...]:
        """Return the verified chain, leaf first, ending with the trust anchor.

        Raises :class:`NotAuthenticated` when no valid path to an anchor exists
        (unknown issuer, bad signature, expired or not yet valid, CA
        constraints broken).
        """
        now = self.clock.now()
        key = hashlib.sha256(b"".join(c.public_bytes(serialization.Encoding.DER) for c in (leaf, *intermediates))).digest()
        cached = self._verified.get(key)
        if cached is not None and cached[0] > now.timestamp():
            return cached[1]
        policy = (
            verification.PolicyBuilder()
            .store(self.store)
            .time(now)
            .max_chain_depth(self.max_chain_depth)
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
        )
        try:
            chain = tuple(policy.build_client_verifier().verify(leaf, list(intermediates)).chain)
        except verification.VerificationError as exc:
            raise NotAuthenticated(f"{leaf.subject.rfc4514_string()}: {exc}") from None
        until = min(now.timestamp() + CHAIN_CACHE_SECONDS, min(c.not_valid_after_utc.timestamp() for c in chain))
        self._verified[key] = (until, chain)
        if len(self._verified) > CHAIN_CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return chain


class OwnRevocationCheck:
    """Refuse a chain holding a certificate that a CA served here reports revoked."""

    def __init__(self, registry: ServedIssuers, store: StatusReader) -> None:
        self.registry = registry
        self.store = store
        # (certificate, its issuer in the chain or None) -> the served CA that issued it, or None
        self._issuers: dict[tuple[x509.Certificate, x509.Certificate | None], ServedIssuer | None] = {}
        self._by_subject: dict[bytes, list[ServedIssuer]] = {}
        for ca in registry.cas:
            if not ca.settings.forward:
                self._by_subject.setdefault(ca.certificate.subject.public_bytes(), []).append(ca)

    def revoked(self, chain: Sequence[x509.Certificate]) -> str | None:
        """Return why the chain is refused (a revoked certificate), or None.

        ``chain`` starts with the leaf; each certificate's issuer is the next
        one, or, for the last, a served CA that signed it (so a bare leaf is
        checked too). A certificate whose issuer is not served here, or of
        which the store holds no revocation, passes (a never-issued serial is
        not a reason: the chain itself was verified).
        """
        for position, cert in enumerate(chain):
            key = (cert, chain[position + 1] if position + 1 < len(chain) else None)
            if key in self._issuers:
                ca = self._issuers[key]
            else:
                ca = self._served_issuer(*key)
                if len(self._issuers) < 4096:
                    self._issuers[key] = ca
            if ca is None:
                continue
            record = self.store.lookup(ca.issuer_id, cert.serial_number)
            if record is not None and record.revoked is not None:
                when = record.revoked.revocation_time.astimezone(dt.timezone.utc)
                return (f"{cert.subject.rfc4514_string()} (serial {cert.serial_number:x}) was revoked by CA "
                        f"{ca.name} at {when:%Y-%m-%d %H:%M:%SZ}")
        return None

    def _served_issuer(self, cert: x509.Certificate, issuer: x509.Certificate | None) -> ServedIssuer | None:
        if issuer is not None:
            name_hash, key_hash = issuer_hashes(issuer, "sha1")
            ca = self.registry.find(CertID("sha1", name_hash, key_hash, cert.serial_number))
            return None if ca is None or ca.settings.forward else ca
        for ca in self._by_subject.get(cert.issuer.public_bytes(), ()):
            if cert != ca.certificate:
                try:
                    cert.verify_directly_issued_by(ca.certificate)
                    return ca
                except (ValueError, TypeError, InvalidSignature):
                    continue
        return None
