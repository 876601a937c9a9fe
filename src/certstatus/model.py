"""The values every layer speaks of: CertIDs, revocations, status records, serial keys, modes.

This module is the bottom of the package: it imports nothing of certstatus, so
the protocol code, the store, the sources, the signers and the request path
can all name these values without importing each other.

- :class:`CertID` — one CertID as received (RFC 6960 §4.1.1), with the
  :data:`IssuerKey` the issuer registry is keyed on.
- :class:`RevokedEntry`, :class:`IssuedCertificate` — what a source says of a
  serial (RFC 5280 §5.3 CRL entry, an ``index.txt`` line, an issued list).
- :class:`CertStatusRecord` — what the store knows of one (issuer, serial).
- :data:`REASON_CODES` — RFC 5280 §5.3.1 CRLReason codes.
- :func:`serial_key` — the one byte form of a serial number the store keys on.
- :data:`MODES` — how a CA is served (docs/precomputed.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, TypeAlias

from cryptography import x509

#: Hash algorithms a CertID may use: name -> dotted OID.
HASH_ALGORITHM_OIDS: dict[str, str] = {
    "sha1": "1.3.14.3.2.26",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}
#: Dotted OID -> name, the reverse of :data:`HASH_ALGORITHM_OIDS`.
HASH_ALGORITHM_NAMES: dict[str, str] = {v: k for k, v in HASH_ALGORITHM_OIDS.items()}

#: What the issuer registry is keyed on: (CertID hash algorithm name, issuerNameHash, issuerKeyHash).
#: A plain tuple (not a NamedTuple): one is built per request on the hot path.
IssuerKey: TypeAlias = tuple[str, bytes, bytes]

#: Per-CA serving modes (docs/precomputed.md): sign per request, serve pre-signed bytes only,
#: or pre-signed bytes with live signing for what is not pre-signed.
Mode: TypeAlias = Literal["live", "precomputed", "cached"]
MODES: tuple[Mode, ...] = ("live", "precomputed", "cached")


@dataclass(frozen=True, slots=True)
class CertID:
    """One CertID as received (RFC 6960 §4.1.1).

    ``hash_algorithm`` is a key of :data:`HASH_ALGORITHM_OIDS`; ``der`` is the
    exact encoding received, echoed unchanged in the SingleResponse so that
    clients matching on bytes (parameters NULL or absent) find their CertID.
    """

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int
    der: bytes = b""

    @property
    def issuer_key(self) -> IssuerKey:
        """The key used by the issuer registry: (hash algorithm, name hash, key hash)."""
        return (self.hash_algorithm, self.issuer_name_hash, self.issuer_key_hash)


#: RFC 5280 §5.3.1 CRLReason codes.
REASON_CODES: dict[x509.ReasonFlags, int] = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}
REASONS_BY_CODE: dict[int, x509.ReasonFlags] = {v: k for k, v in REASON_CODES.items()}


def serial_key(serial_number: int) -> bytes:
    """Encode a serial number as the minimal two's-complement big-endian bytes.

    The same bytes as the content of the DER INTEGER, so every serial, even
    a negative one from a broken CA, has exactly one key.
    """
    magnitude = serial_number if serial_number >= 0 else ~serial_number
    return serial_number.to_bytes((magnitude.bit_length() + 8) // 8, "big", signed=True)


def serial_from_key(key: bytes) -> int:
    """The serial number of a :func:`serial_key` (its inverse)."""
    return int.from_bytes(key, "big", signed=True)


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    """One revoked certificate: RFC 5280 §5.3 CRL entry, or an index.txt ``R`` line.

    ``revocation_time`` and ``invalidity_date`` are aware UTC datetimes with
    whole seconds; ``reason`` is ``None`` when the source gives no reason
    (reported as revoked without a revocationReason, RFC 6960 §4.2.1).
    """

    serial_number: int
    revocation_time: dt.datetime
    reason: x509.ReasonFlags | None = None
    invalidity_date: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A serial a source lists as issued, with what it tells of the certificate.

    ``not_after`` (aware UTC, whole seconds) is the certificate's notAfter when
    the source gives it (an ``index.txt`` expiry field, a certificate in an
    issued list), else None; ``cert_hash`` the SHA-256 of the certificate's
    DER when the source holds the certificate itself (an issued list of
    certificates), else None.
    """

    serial_number: int
    not_after: dt.datetime | None = None
    cert_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class CertStatusRecord:
    """What the store knows of one (issuer, serial).

    ``issued`` is True when a source that lists issued certificates (index
    file, issued list) has the serial; ``revoked`` is the earliest revocation
    any source reports, or None; ``cert_hash`` the SHA-256 of the certificate
    when an issued list holds the certificate itself (CertHash), else None.
    """

    issued: bool
    revoked: RevokedEntry | None
    cert_hash: bytes | None = None
