"""Verify a CMS SignedData (RFC 5652 §5) signed by the CA and return what it encapsulates.

Used for issued-serial lists signed by the CA, so that a list fetched from
anywhere is trusted like a CRL: the signature must verify with the CA
certificate's key and the signer must name the CA certificate (by issuer and
serial number, or by subjectKeyIdentifier). cryptography can sign CMS but not
verify it, so asn1crypto parses the structure and cryptography checks the
signature.

    openssl cms -sign -binary -nodetach -in issued.txt -signer ca.pem -inkey ca.key \\
        -outform DER -out issued.p7
"""

from __future__ import annotations

from asn1crypto import cms, pem
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from certstatus.errors import SourceError

_HASHES = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_PEM_LABELS = ("PKCS7", "CMS")


def looks_like_cms(data: bytes) -> bool:
    """True for PEM ``PKCS7``/``CMS`` or DER whose outer ContentInfo is signedData."""
    if pem.detect(data):
        return any(f"-----BEGIN {label}-----".encode() in data for label in _PEM_LABELS)
    try:
        return cms.ContentInfo.load(data)["content_type"].native == "signed_data"
    except (ValueError, TypeError, KeyError):
        return False


def verify_signed_content(data: bytes, ca: x509.Certificate, *, origin: str) -> bytes:
    """Return the encapsulated content of ``data`` (DER or PEM CMS) after checking the CA signed it.

    With signedAttrs the messageDigest must equal the content's digest and
    the signature covers the DER SET of the attributes (RFC 5652 §5.4);
    without them it covers the content. RSA PKCS#1 v1.5, RSA-PSS and ECDSA
    are accepted. Raises :class:`SourceError` (naming ``origin``) when the
    bytes are not CMS SignedData, the content is detached, no SignerInfo
    names the CA, or the signature or digest does not match.
    """
    if pem.detect(data):
        try:
            _, _, data = pem.unarmor(data)
        except ValueError as exc:
            raise SourceError(origin, f"is not a readable PEM CMS file ({exc}).") from None
    try:
        info = cms.ContentInfo.load(data)
        if info["content_type"].native != "signed_data":
            raise SourceError(origin, "is CMS but not SignedData: sign the list with openssl cms -sign.")
        signed = info["content"]
        encap = signed["encap_content_info"]
        content = encap["content"].native if encap["content"] else None
        signer_infos = list(signed["signer_infos"])
    except (ValueError, TypeError, KeyError) as exc:
        raise SourceError(origin, f"is not a readable CMS SignedData ({exc}): sign the list again.") from None
    if content is None:
        raise SourceError(origin, "CMS SignedData has detached content: sign with -nodetach so the list is inside.")
    ours = [si for si in signer_infos if _names_ca(si["sid"], ca)]
    if not ours:
        raise SourceError(origin, "is not signed by the CA: no SignerInfo names the CA certificate.")
    problems = []
    for signer_info in ours:
        try:
            _verify(signer_info, content, encap["content_type"], ca)
            return content
        except (InvalidSignature, ValueError, TypeError, KeyError) as exc:
            problems.append(str(exc) or "signature does not verify")
    raise SourceError(
        origin,
        f"CMS signature by the CA does not verify ({'; '.join(problems)}): the list was altered or signed "
        "with another key; sign it again with the CA key.",
    )


def _names_ca(sid: cms.SignerIdentifier, ca: x509.Certificate) -> bool:
    if sid.name == "issuer_and_serial_number":
        value = sid.chosen
        return value["serial_number"].native == ca.serial_number and value["issuer"].dump() == ca.issuer.public_bytes()
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest  # type: ignore[arg-type]
    return sid.chosen.native == ski


def _verify(signer_info: cms.SignerInfo, content: bytes, content_type: cms.ContentType, ca: x509.Certificate) -> None:
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise ValueError(f"digest algorithm {digest_name} is not supported")
    algorithm = _HASHES[digest_name]()
    attrs = signer_info["signed_attrs"]
    if attrs.native is not None and len(attrs):
        values = {attr["type"].native: attr["values"][0] for attr in attrs}
        digest = hashes.Hash(algorithm)
        digest.update(content)
        if values.get("message_digest") is None or values["message_digest"].native != digest.finalize():
            raise ValueError("messageDigest does not match the content")
        if values.get("content_type") is not None and values["content_type"].native != content_type.native:
            raise ValueError("contentType attribute does not match the content")
        to_verify = b"\x31" + attrs.dump()[1:]  # [0] IMPLICIT → SET OF (RFC 5652 §5.4)
    else:
        to_verify = content
    signature = signer_info["signature"].native
    key = ca.public_key()
    scheme = signer_info["signature_algorithm"].signature_algo
    if isinstance(key, ec.EllipticCurvePublicKey) and scheme == "ecdsa":
        key.verify(signature, to_verify, ec.ECDSA(algorithm))
    elif isinstance(key, rsa.RSAPublicKey) and scheme == "rsassa_pkcs1v15":
        key.verify(signature, to_verify, padding.PKCS1v15(), algorithm)
    elif isinstance(key, rsa.RSAPublicKey) and scheme == "rsassa_pss":
        params = signer_info["signature_algorithm"]["parameters"]
        mgf_hash = _HASHES[params["mask_gen_algorithm"]["parameters"]["algorithm"].native]()
        pss = padding.PSS(mgf=padding.MGF1(mgf_hash), salt_length=params["salt_length"].native)
        key.verify(signature, to_verify, pss, algorithm)
    else:
        raise ValueError(f"signature algorithm {scheme} does not fit the CA key")
