"""The singleExtensions a CA's settings add to every SingleResponse it answers.

* **ArchiveCutoff** (RFC 6960 §4.4.4; ETSI EN 319 411-2 §6.3.10), with
  ``archive_cutoff``: the responder keeps status information of certificates
  that expired after this time. With a retention period it is producedAt −
  the period; with ``"ca-not-before"`` (as ETSI recommends) the CA
  certificate's notBefore, i.e. status is kept for every certificate the CA
  ever issued.

* **CertHash** (Common PKI / ISIS-MTT, 1.3.36.8.3.13), with ``cert_hash``:
  the SHA-256 of the certificate the answer is about, when an issued list
  holds it — a positive statement that the responder knows the certificate
  (an issued serial without it is answered ``unknown``:
  :func:`certstatus.pipeline.status.decide`).

Live signing, the responder's fast path and the generator all encode them through
:func:`constant_extensions` (the same in every response of one second) and
:func:`answer_extensions` (per certificate).
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from certstatus.config import ARCHIVE_CA_NOT_BEFORE, CaSettings
from certstatus.model import CertStatusRecord
from certstatus.protocol.fast_response import archive_cutoff_extension, cert_hash_extension


def archive_cutoff(settings: CaSettings, ca_certificate: x509.Certificate, produced_at: dt.datetime) -> dt.datetime | None:
    """The ArchiveCutoff of a response of this CA produced at ``produced_at`` (aware UTC), whole seconds;
    None when ``archive_cutoff`` is not set."""
    if settings.archive_cutoff is None:
        return None
    if settings.archive_cutoff == ARCHIVE_CA_NOT_BEFORE:
        return ca_certificate.not_valid_before_utc.replace(microsecond=0)
    return (produced_at - dt.timedelta(seconds=settings.archive_cutoff)).replace(microsecond=0)


def constant_extensions(settings: CaSettings, ca_certificate: x509.Certificate, produced_at: dt.datetime) -> bytes:
    """The encoded singleExtensions every SingleResponse of this CA produced at ``produced_at`` carries
    after a revoked answer's invalidityDate (``b""``: none), for
    :func:`certstatus.protocol.fast_response.single_extensions`."""
    cutoff = archive_cutoff(settings, ca_certificate, produced_at)
    return b"" if cutoff is None else archive_cutoff_extension(cutoff)


def answer_extensions(settings: CaSettings, record: CertStatusRecord | None) -> bytes:
    """The encoded singleExtensions of the answer about ``record``'s certificate after the constant ones:
    its CertHash when the CA has ``cert_hash`` and the certificate is known; else ``b""``."""
    if settings.cert_hash and record is not None and record.cert_hash is not None:
        return cert_hash_extension(record.cert_hash)
    return b""
