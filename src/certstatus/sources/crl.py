"""Parse and verify a full or delta CRL (RFC 5280 §5) into a :class:`CrlData`.

The parser checks that the CRL belongs to the configured CA (issuer name and
signature) and that certstatus can use it (no indirect CRL, no unknown critical
extension); it does not look at the clock — whether thisUpdate/nextUpdate are
acceptable is the importer's decision.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from certstatus.ca_certificate import crl_signer_problem
from certstatus.clock import UTC
from certstatus.errors import SourceError
from certstatus.model import RevokedEntry
from certstatus.sources.records import CrlData

_PEM_MARKER = b"-----BEGIN X509 CRL-----"

# CRL extensions (RFC 5280 §5.2) this module reads or may safely ignore; a critical
# extension outside this set makes the CRL unusable (RFC 5280 §5.2, second paragraph).
_KNOWN_CRL_EXTENSIONS = frozenset(
    {
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.DELTA_CRL_INDICATOR,
        ExtensionOID.ISSUING_DISTRIBUTION_POINT,
        ExtensionOID.FRESHEST_CRL,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    }
)
# CRL entry extensions (RFC 5280 §5.3); certificateIssuer is recognised only to refuse it.
_KNOWN_ENTRY_EXTENSIONS = frozenset(
    {
        CRLEntryExtensionOID.CRL_REASON,
        CRLEntryExtensionOID.INVALIDITY_DATE,
        CRLEntryExtensionOID.CERTIFICATE_ISSUER,
        x509.ObjectIdentifier("2.5.29.23"),  # holdInstructionCode (RFC 5280 §5.3, obsolete)
    }
)
# Errors cryptography raises lazily when a (part of a) CRL is malformed.
_PARSE_ERRORS = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def load_crl(data: bytes, issuer: x509.Certificate, *, origin: str) -> CrlData:
    """Parse ``data`` (one CRL, DER or PEM) and verify it was issued and signed by ``issuer``.

    Returns the CRL's thisUpdate/nextUpdate (aware UTC), cRLNumber, the
    BaseCRLNumber of a delta CRL (RFC 5280 §5.2.4) and its entries sorted by
    serial number. Each entry keeps its revocationDate (whole seconds, UTC),
    reasonCode (``None`` when the entry has none; ``removeFromCRL`` entries are
    kept for delta CRLs) and invalidityDate (RFC 5280 §5.3).

    Raises :class:`SourceError` (with ``origin``) when the bytes are not a CRL,
    the CRL names another issuer, ``issuer`` may not sign CRLs (keyUsage
    without cRLSign, RFC 5280 §6.3.3 (f); basicConstraints cA=FALSE: see
    :mod:`certstatus.ca_certificate`), its signature does not verify with the
    issuer's key, it is an indirect CRL, it carries an unknown critical
    extension, or it lists a serial number twice.
    """
    crl = _parse(data, origin)
    if crl.issuer != issuer.subject:
        raise SourceError(
            origin,
            f"CRL issuer is {crl.issuer.rfc4514_string()!r}, expected "
            f"{issuer.subject.rfc4514_string()!r}: point this CA at its own CRL.",
        )
    problem = crl_signer_problem(issuer)
    if problem is not None:
        raise SourceError(
            origin,
            f"CRL refused: the CA certificate {issuer.subject.rfc4514_string()!r} may not sign CRLs: {problem}. "
            "A CRL it signed is not valid for any relying party; configure the CA certificate that asserts "
            "cRLSign (and cA=TRUE), or take this CA's status from index, issued or pushes instead.",
        )
    try:
        signature_ok = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:  # key type that cannot sign CRLs
        raise SourceError(
            origin, f"CRL signature cannot be checked with the CA key ({exc}): check the CA certificate."
        ) from exc
    if not signature_ok:
        raise SourceError(
            origin,
            "CRL signature does not verify with the CA certificate's key: the CRL was "
            "signed by another key or altered; fetch it again or check the CA certificate.",
        )
    try:
        return _extract(crl, origin)
    except _PARSE_ERRORS as exc:
        raise SourceError(origin, f"CRL has a malformed extension ({exc}): publish a valid CRL.") from exc


def _parse(data: bytes, origin: str) -> x509.CertificateRevocationList:
    """Load DER or PEM (detected by the ``BEGIN X509 CRL`` marker)."""
    try:
        crl = x509.load_pem_x509_crl(data) if _PEM_MARKER in data else x509.load_der_x509_crl(data)
        crl.issuer  # noqa: B018 - cryptography decodes the issuer Name lazily: a bad one raises here
        return crl
    except (ValueError, TypeError, x509.InvalidVersion) as exc:  # not ValueErrors: a bad version, a Name attribute of the wrong type
        raise SourceError(
            origin,
            f"not a readable CRL ({exc}): the file is truncated or is not a DER/PEM CRL; "
            "fetch or copy it again.",
        ) from exc


def _extract(crl: x509.CertificateRevocationList, origin: str) -> CrlData:
    crl_number: int | None = None
    delta_base: int | None = None
    freshest: list[str] = []
    for ext in crl.extensions:
        value = ext.value
        if isinstance(value, x509.CRLNumber):
            crl_number = value.crl_number
        elif isinstance(value, x509.DeltaCRLIndicator):
            delta_base = value.crl_number
        elif isinstance(value, x509.IssuingDistributionPoint):
            _check_scope(value, origin)
        elif isinstance(value, x509.FreshestCRL):
            freshest.extend(_delta_uris(value))
        elif ext.critical and ext.oid not in _KNOWN_CRL_EXTENSIONS:
            raise SourceError(
                origin,
                f"CRL has an unsupported critical extension {ext.oid.dotted_string}: "
                "such a CRL must not be used (RFC 5280 §5.2).",
            )

    entries: dict[int, RevokedEntry] = {}
    for revoked in crl:
        entry = _entry(revoked, origin)
        if entry.serial_number in entries:
            raise SourceError(
                origin,
                f"CRL lists serial {entry.serial_number:#x} twice: the CRL is corrupt; "
                "ask the CA operator to reissue it.",
            )
        entries[entry.serial_number] = entry

    return CrlData(
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        crl_number=crl_number,
        delta_base=delta_base,
        entries=tuple(entries[serial] for serial in sorted(entries)),
        freshest_crl=tuple(dict.fromkeys(freshest)),
    )


#: URI schemes a FreshestCRL pointer may use. Never ``file:`` or a bare path: what the
#: network hands us must not make certstatus read local files.
_DELTA_SCHEMES = ("http://", "https://", "ldap://", "ldaps://")


def _delta_uris(value: x509.FreshestCRL) -> list[str]:
    """The fetchable fullName URIs of a FreshestCRL extension (RFC 5280 §5.2.6, §4.2.1.13).

    Distribution points named relative to the issuer or by other GeneralName
    types, and URIs of other schemes, are skipped.
    """
    uris = []
    for point in value:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(_DELTA_SCHEMES):
                uris.append(name.value)
    return uris


def _check_scope(idp: x509.IssuingDistributionPoint, origin: str) -> None:
    """Refuse CRLs whose scope (RFC 5280 §5.2.5) is not "every certificate of this CA"."""
    if idp.indirect_crl:
        problem = "is an indirect CRL"
    elif idp.only_some_reasons is not None:
        problem = "covers only some revocation reasons"
    elif idp.only_contains_attribute_certs:
        problem = "covers only attribute certificates"
    else:
        return
    raise SourceError(
        origin, f"CRL {problem}, which certstatus does not support: use the CA's own complete CRL."
    )


def _entry(revoked: x509.RevokedCertificate, origin: str) -> RevokedEntry:
    """One RFC 5280 §5.3 CRL entry as a :class:`RevokedEntry`."""
    reason: x509.ReasonFlags | None = None
    invalidity: dt.datetime | None = None
    for ext in revoked.extensions:
        value = ext.value
        if isinstance(value, x509.CRLReason):
            reason = value.reason
        elif isinstance(value, x509.InvalidityDate):
            invalidity = _whole_seconds(value.invalidity_date_utc)
        elif isinstance(value, x509.CertificateIssuer):
            raise SourceError(
                origin,
                "CRL is an indirect CRL (entry with a certificateIssuer extension), which "
                "certstatus does not support: use the CA's own CRL.",
            )
        elif ext.critical and ext.oid not in _KNOWN_ENTRY_EXTENSIONS:
            raise SourceError(
                origin,
                f"CRL entry {revoked.serial_number:#x} has an unsupported critical extension "
                f"{ext.oid.dotted_string}: such a CRL must not be used (RFC 5280 §5.3).",
            )
    return RevokedEntry(
        serial_number=revoked.serial_number,
        revocation_time=_whole_seconds(revoked.revocation_date_utc),
        reason=reason,
        invalidity_date=invalidity,
    )


def _whole_seconds(when: dt.datetime) -> dt.datetime:
    # cryptography's *_utc properties are already aware UTC; DER times have whole seconds.
    if when.tzinfo is UTC and not when.microsecond:
        return when
    return when.astimezone(UTC).replace(microsecond=0)
