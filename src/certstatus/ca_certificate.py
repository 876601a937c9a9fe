"""What certstatus requires of a configured CA certificate (RFC 5280 §4.2.1.3, §4.2.1.9, §6.3.3).

The CA certificate (``certificate`` of ``[ca.NAME]``, ``--issuer``) names the
issuer whose certificates are answered and verifies the CA's CRLs. Where
the certificate says no, certstatus refuses; where it says nothing (an old
CA or a version 1 certificate without the extension), the configuration is
taken as the out-of-band assertion RFC 5280 §6.1.4 (k) allows, with a
warning:

============================  ===========================================  ==========================
the certificate               as the configured CA (:func:`not_a_ca`)     as the CRL issuer
============================  ===========================================  ==========================
basicConstraints cA=FALSE     refused at start-up (a leaf or a responder   every CRL refused
                              certificate given instead of the CA's)
no basicConstraints           served, warning                              CRLs accepted
keyUsage without cRLSign      served (index, issued lists, pushes)         every CRL refused (§6.3.3 (f))
no keyUsage                   served                                       CRLs accepted, warning
============================  ===========================================  ==========================
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

# What cryptography raises when it decodes a malformed or repeated extension.
_EXTENSION_ERRORS = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def not_a_ca(certificate: x509.Certificate) -> str | None:
    """Why ``certificate`` cannot be a CA's certificate, or None.

    A certificate whose basicConstraints extension says cA=FALSE is not a CA
    (RFC 5280 §4.2.1.9); one whose extensions cannot be decoded cannot be
    checked. A certificate without basicConstraints passes (see
    :func:`profile_warnings`).
    """
    constraints, _, error = _profile(certificate)
    if error is not None:
        return error
    if constraints is not None and not constraints.ca:
        return "its basicConstraints extension says cA=FALSE: it is not a CA certificate (RFC 5280 §4.2.1.9)"
    return None


def crl_signer_problem(certificate: x509.Certificate) -> str | None:
    """Why CRLs verified with ``certificate`` must be refused, or None.

    Refused: a certificate that is not a CA (:func:`not_a_ca`), and one whose
    keyUsage extension, critical or not, lacks cRLSign (RFC 5280 §6.3.3 (f),
    §4.2.1.3). A certificate without keyUsage passes: §6.3.3 (f) checks
    cRLSign only when the extension is present.
    """
    problem = not_a_ca(certificate)
    if problem is not None:
        return problem
    _, usage, _ = _profile(certificate)
    if usage is not None and not usage.crl_sign:
        return "its keyUsage extension lacks cRLSign, so its key may not sign CRLs (RFC 5280 §4.2.1.3, §6.3.3 (f))"
    return None


def profile_warnings(certificate: x509.Certificate, *, signs_crls: bool) -> list[str]:
    """What ``certificate`` leaves unsaid that RFC 5280 requires of a CA certificate (one sentence each).

    ``signs_crls``: the CA's CRLs are imported, so a missing keyUsage matters.
    Empty for a certificate whose extensions cannot be decoded (refused by :func:`not_a_ca`).
    """
    constraints, usage, error = _profile(certificate)
    if error is not None:
        return []
    warnings = []
    if constraints is None:
        warnings.append(
            "the CA certificate has no basicConstraints extension (RFC 5280 §4.2.1.9 requires cA=TRUE in CA "
            "certificates); it is served as a CA because the configuration says so"
        )
    if usage is None and signs_crls:
        warnings.append(
            "the CA certificate has no keyUsage extension (RFC 5280 §4.2.1.3 requires one with cRLSign in CA "
            "certificates that sign CRLs); its CRLs are accepted, as RFC 5280 §6.3.3 (f) checks cRLSign only "
            "when keyUsage is present"
        )
    return warnings


def _profile(certificate: x509.Certificate) -> tuple[x509.BasicConstraints | None, x509.KeyUsage | None, str | None]:
    """basicConstraints and keyUsage (None when absent), or why the extensions cannot be read."""
    try:
        return _extension(certificate, x509.BasicConstraints), _extension(certificate, x509.KeyUsage), None
    except _EXTENSION_ERRORS as exc:
        return None, None, f"its extensions cannot be decoded ({exc})"


def _extension(certificate: x509.Certificate, kind: type) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
