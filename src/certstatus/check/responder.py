"""Who signed a response, whether the signature verifies, and the delegated responder's profile.

RFC 6960 §4.2.2.2: a response is signed by the CA itself or by a delegated
responder whose certificate the CA issued with id-kp-OCSPSigning, included in
the response (RFC 5019 §2.2.2). The profile of such a certificate follows the
CA/Browser Forum Baseline Requirements §7.1.2.8 (OCSP responder certificate):
id-kp-OCSPSigning as its only extended key usage, id-pkix-ocsp-nocheck, a
keyUsage with digitalSignature, no cRLDistributionPoints, and preferably no
authorityInformationAccess (§7.1.2.8.2; RFC 5019 §2.2.2 recommends neither).
The signature is verified with the signer's public key (``cryptography``)
over tbsResponseData as received.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from certstatus.access.response_check import responder_id_names
from certstatus.access.signatures import SignatureRejected, verify_signature


@dataclass(frozen=True, slots=True)
class Signer:
    """The certificate that signed a response: ``certificate`` is the CA's own (``by_ca``) or a
    delegated responder certificate included in the response; None when the responderID names
    neither (``problem`` says so)."""

    certificate: x509.Certificate | None
    by_ca: bool
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    """One observation: ``result`` is ``ok``, ``note``, ``warning`` or ``violation``."""

    result: str
    detail: str


def find_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> Signer:
    """The CA, or the included certificate the responderID names (byKey or byName)."""
    if responder_id_names(response, issuer):
        return Signer(issuer, by_ca=True)
    for cert in response.certificates:
        if responder_id_names(response, cert):
            return Signer(cert, by_ca=False)
    return Signer(None, by_ca=False, problem="the responderID names neither the CA nor a certificate in the response")


def signature(der: bytes, response: ocsp.OCSPResponse, signer: Signer) -> Judgement:
    """Whether the signature over tbsResponseData verifies with the signer's public key."""
    if signer.certificate is None:
        return Judgement("violation", f"cannot verify: {signer.problem}")
    algorithm = asn1_ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed["signature_algorithm"].dump()
    try:
        verify_signature(signer.certificate.public_key(), algorithm, response.signature, response.tbs_response_bytes)
    except SignatureRejected as exc:
        return Judgement("violation", str(exc))
    return Judgement("ok", f"{response.signature_algorithm_oid._name}, verified with {_who(signer)}'s key")


def responder(response: ocsp.OCSPResponse, signer: Signer, issuer: x509.Certificate, now: dt.datetime) -> Judgement:
    """Signed by the CA itself (noted), or by a delegated responder the CA issued and valid at ``now``."""
    cert = signer.certificate
    if cert is None:
        return Judgement("violation", signer.problem or "no signer")
    if signer.by_ca:
        if any(included == issuer for included in response.certificates):
            return Judgement("warning", "signed by the CA itself, and includes the CA's own certificate (Go's x/crypto/ocsp refuses that)")
        return Judgement("note", "signed by the CA itself")
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception as exc:  # ValueError, TypeError, InvalidSignature: no common base
        return Judgement("violation", f"delegated responder {_name(cert)} is not issued by the CA ({str(exc) or type(exc).__name__})")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return Judgement("violation", f"delegated responder {_name(cert)} is not valid now (notAfter {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ})")
    return Judgement("ok", f"delegated responder {_name(cert)}, issued by the CA")


def profile(signer: Signer) -> dict[str, Judgement]:
    """The delegated responder certificate's profile, by rule key: ``responder_eku``,
    ``responder_nocheck``, ``responder_key_usage``, ``responder_aia_crldp``. Empty for a
    CA-signed response (the CA's certificate follows the CA profile, not this one)."""
    cert = signer.certificate
    if cert is None or signer.by_ca:
        return {}
    extensions = {ext.oid: ext.value for ext in cert.extensions}
    usages = list(extensions.get(ExtensionOID.EXTENDED_KEY_USAGE, []))
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        eku = Judgement("violation", "extendedKeyUsage lacks id-kp-OCSPSigning")
    elif len(usages) > 1:
        others = ", ".join(_oid_name(oid) for oid in usages if oid != ExtendedKeyUsageOID.OCSP_SIGNING)
        eku = Judgement("violation", f"extendedKeyUsage has more than id-kp-OCSPSigning: {others}")
    else:
        eku = Judgement("ok", "id-kp-OCSPSigning only")
    nocheck = (
        Judgement("ok", "id-pkix-ocsp-nocheck present")
        if ExtensionOID.OCSP_NO_CHECK in extensions
        else Judgement("violation", "id-pkix-ocsp-nocheck is missing: clients must check the responder's own revocation")
    )
    key_usage = extensions.get(ExtensionOID.KEY_USAGE)
    if key_usage is None:
        usage = Judgement("violation", "keyUsage is missing")
    elif not key_usage.digital_signature:
        usage = Judgement("violation", "keyUsage lacks digitalSignature")
    else:
        usage = Judgement("ok", "digitalSignature")
    if ExtensionOID.CRL_DISTRIBUTION_POINTS in extensions:
        also = " and authorityInfoAccess" if ExtensionOID.AUTHORITY_INFORMATION_ACCESS in extensions else ""
        aia = Judgement("violation", f"has cRLDistributionPoints{also}")
    elif ExtensionOID.AUTHORITY_INFORMATION_ACCESS in extensions:
        aia = Judgement("warning", "has authorityInfoAccess (not recommended)")
    else:
        aia = Judgement("ok", "neither AIA nor CRLDP")
    return {"responder_eku": eku, "responder_nocheck": nocheck, "responder_key_usage": usage, "responder_aia_crldp": aia}


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    return oid._name if oid._name != "Unknown OID" else oid.dotted_string


def _who(signer: Signer) -> str:
    return "the CA" if signer.by_ca else f"delegated responder {_name(signer.certificate)}"


def _name(cert: x509.Certificate | None) -> str:
    return cert.subject.rfc4514_string() if cert is not None else "?"
