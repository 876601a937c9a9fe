"""Which serials a CA issued, from a file, a URL or a directory (what makes a never-issued serial known).

Each file may hold

* a list of hexadecimal serials (:func:`certstatus.sources.issued.parse_issued`),
* issued certificates, PEM (any number) or DER (one), each checked to be
  issued and signed by the CA. Precertificates (RFC 6962 §3.1: the critical
  poison extension 1.3.6.1.4.1.11129.2.4.3) count as issued: their serial is
  "assigned" (CA/Browser Forum BR §4.9.9) and may not be answered as
  unassigned (§4.9.10), whether the CA signed them or a Precertificate Signing
  Certificate did (issued by the CA, extendedKeyUsage
  1.3.6.1.4.1.11129.2.4.4) that is in the same PEM file,
* a CMS SignedData signed by the CA (:mod:`certstatus.sources.signed_list`)
  encapsulating either of the above — required for every file when the CA
  is configured with ``issued_signed = true``.

A directory contributes every regular file in it not starting with ``.``,
in name order. Serials are deduplicated and sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from certstatus.errors import SourceError
from certstatus.sources.fetch import FetchPolicy, fetch, is_remote
from certstatus.sources.issued import parse_issued
from certstatus.sources.records import IssuedCertificate
from certstatus.sources.signed_list import looks_like_cms, verify_signed_content

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"


def load_issued_certificates(
    origin: str, issuer: x509.Certificate, *, policy: FetchPolicy | None = None, signed: bool = False
) -> tuple[IssuedCertificate, ...]:
    """Return what ``origin`` says ``issuer`` issued, one :class:`IssuedCertificate` per serial, sorted.

    ``origin`` is a file, a directory or an http(s)/ldap URL. Raises
    :class:`SourceError` naming the file for unreadable data, a certificate
    of another CA, a bad serial line, or (with ``signed``) a file that is
    not CMS SignedData by the CA.
    """
    policy = policy or FetchPolicy()
    found: dict[int, IssuedCertificate] = {}
    if not is_remote(origin) and Path(origin).is_dir():
        files = sorted(p for p in Path(origin).iterdir() if p.is_file() and not p.name.startswith("."))
        for path in files:
            data = fetch(str(path), policy).data or b""
            _merge(found, certificates_in(data, issuer, origin=str(path), signed=signed))
    else:
        data = fetch(origin, policy).data or b""
        _merge(found, certificates_in(data, issuer, origin=origin, signed=signed))
    return tuple(found[serial] for serial in sorted(found))


def _merge(found: dict[int, IssuedCertificate], more: dict[int, IssuedCertificate]) -> None:
    """Add ``more`` to ``found``; of two entries of one serial, the one that knows more wins."""
    for serial, entry in more.items():
        if _known(entry) >= _known(found.get(serial)):
            found[serial] = entry


def _known(entry: IssuedCertificate | None) -> int:
    return -1 if entry is None else (entry.not_after is not None) + (entry.cert_hash is not None)


def certificates_in(
    data: bytes, issuer: x509.Certificate, *, origin: str, signed: bool = False
) -> dict[int, IssuedCertificate]:
    """The issued serials of one file's bytes (see the module docstring for the forms), each with what
    the file tells of its certificate: a certificate's notAfter and SHA-256 hash; a precertificate, or a
    serial line, tells nothing more (a precertificate is not the certificate a relying party holds)."""
    if looks_like_cms(data):
        content = verify_signed_content(data, issuer, origin=origin)
        return certificates_in(content, issuer, origin=origin, signed=False)
    if signed:
        raise SourceError(
            origin,
            "is not a CMS SignedData, and issued_signed = true requires every issued list to be signed "
            "by the CA (openssl cms -sign -nodetach -binary -outform DER).",
        )
    if _PEM_CERT in data:
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise SourceError(origin, f"holds an unreadable PEM certificate ({exc}).") from None
        signers = [cert for cert in certificates if _is_precertificate_signer(cert, issuer)]
        found: dict[int, IssuedCertificate] = {}
        for cert in certificates:
            _merge(found, {_checked_serial(cert, issuer, origin, signers): _entry(cert)})
        return found
    if data[:1] == b"\x30" and data[1:2] in (b"\x81", b"\x82", b"\x83"):  # DER SEQUENCE, long form ("0" is 0x30 too)
        try:
            certificate = x509.load_der_x509_certificate(data)
        except ValueError:
            raise SourceError(
                origin, "is binary but neither a DER certificate nor CMS SignedData: write serials as text."
            ) from None
        return {_checked_serial(certificate, issuer, origin): _entry(certificate)}
    return {serial: IssuedCertificate(serial) for serial in parse_issued(data, origin=origin)}


def _entry(cert: x509.Certificate) -> IssuedCertificate:
    """What a certificate of an issued list tells: its notAfter and hash (CertHash, Common PKI), unless it
    is a precertificate."""
    if _is_precertificate(cert):
        return IssuedCertificate(cert.serial_number)
    return IssuedCertificate(cert.serial_number, cert.not_valid_after_utc, cert.fingerprint(hashes.SHA256()))


def _checked_serial(
    cert: x509.Certificate, issuer: x509.Certificate, origin: str, precertificate_signers: Sequence[x509.Certificate] = ()
) -> int:
    """The serial of ``cert`` when the CA issued it, or it is a precertificate of one of ``precertificate_signers``."""
    if _issued_by(cert, issuer) or (
        _is_precertificate(cert) and any(_issued_by(cert, signer) for signer in precertificate_signers)
    ):
        return cert.serial_number
    raise SourceError(
        origin,
        f"holds certificate {cert.serial_number:#x} ({cert.subject.rfc4514_string()}) that was not issued "
        "by this CA: remove it, or configure it under its own CA.",
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_precertificate(cert: x509.Certificate) -> bool:
    """True for an RFC 6962 §3.1 precertificate (it carries the poison extension)."""
    try:
        cert.extensions.get_extension_for_oid(ExtensionOID.PRECERT_POISON)
    except (x509.ExtensionNotFound, ValueError):
        return False
    return True


def _is_precertificate_signer(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True for a Precertificate Signing Certificate of ``issuer`` (RFC 6962 §3.1)."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY in usages and _issued_by(cert, issuer)
