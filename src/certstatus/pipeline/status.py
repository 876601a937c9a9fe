"""From store rows to certStatus: the status semantics of RFC 6960 §2.2.

* Revoked when any source says so (a certificateHold is reported as revoked
  with reason certificateHold; removeFromCRL rows never reach the store).
* For a CA whose issued serials are known (an index file or an issued
  list): good when listed as issued, otherwise what ``unknown_serials``
  says — ``unknown``; "extended revoked" (revoked, certificateHold,
  revocationTime 1970-01-01T00:00:00Z, id-pkix-ocsp-extended-revoke in the
  response); or no answer at all, ``unauthorized`` (RFC 5019 §2.2.3: the
  responder has no authoritative record), in every mode. Never good for a
  serial the data says was never issued.
* For a CA configured with CRLs only, issuance is unknowable: every serial
  not on the CRL is good (the CRL's own promise, RFC 5280 §5).
* For a CA with ``cert_hash`` (Common PKI), good is a positive statement
  that the responder knows the certificate, carried by its CertHash: an
  issued serial whose certificate is not known (no hash) is ``unknown``: no
  positive statement can be made without it. Revoked stays revoked.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.config import CaSettings
from certstatus.protocol.response import EXTENDED_REVOKED_TIME
from certstatus.sources.records import RevokedEntry
from certstatus.store.base import CertStatusRecord


@dataclass(frozen=True, slots=True)
class Decision:
    """The certStatus of one serial; ``extended`` marks an extended revoked answer, ``refused`` a
    serial never issued by a CA with ``unknown_serials = "unauthorized"`` (answered with no certStatus:
    the whole request gets ``unauthorized``)."""

    status: OCSPCertStatus
    revoked: RevokedEntry | None = None
    extended: bool = False
    refused: bool = False


GOOD = Decision(OCSPCertStatus.GOOD)
UNKNOWN = Decision(OCSPCertStatus.UNKNOWN)
REFUSED = Decision(OCSPCertStatus.UNKNOWN, refused=True)


def decide(record: CertStatusRecord | None, settings: CaSettings, serial_number: int) -> Decision:
    """Return the certStatus for ``serial_number`` given what the store holds."""
    if record is not None and record.revoked is not None:
        return Decision(OCSPCertStatus.REVOKED, record.revoked)
    if not settings.knows_issuance:
        return GOOD
    if record is not None and record.issued:
        if settings.cert_hash and record.cert_hash is None:
            return UNKNOWN
        return GOOD
    if settings.unknown_serials == "revoked":
        entry = RevokedEntry(serial_number, EXTENDED_REVOKED_TIME, x509.ReasonFlags.certificate_hold)
        return Decision(OCSPCertStatus.REVOKED, entry, extended=True)
    if settings.unknown_serials == "unauthorized":
        return REFUSED
    return UNKNOWN
