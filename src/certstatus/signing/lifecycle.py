"""Delegated responder lifecycle: new key + PKCS#10 request, then check and install the certificate.

``certstatus signer new`` makes a key (a file, or a key pair generated inside
a PKCS#11 token) and a certificate request with the CA/Browser Forum OCSP
responder profile (Baseline Requirements §7.1.2.8): extendedKeyUsage
id-kp-OCSPSigning, keyUsage digitalSignature (critical), id-pkix-ocsp-nocheck,
and no cRLDistributionPoints or authorityInformationAccess.

``certstatus signer add`` checks the certificate the CA issued (issued by
the CA, the EKU, the key it certifies is the pending key, not expired) and
installs it in the CA's ``signers_dir`` as ``NAME.pem`` + ``NAME.toml``; running
servers pick it up at their next re-scan (no restart).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certstatus.errors import SignerError
from certstatus.signing.algorithms import default_algorithm
from certstatus.signing.pkcs11_uri import Pkcs11Uri
from certstatus.signing.signer import validate_signer

#: ``--key-type`` choices.
KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87")
_CURVES = {"ec-p256": ("secp256r1", ec.SECP256R1), "ec-p384": ("secp384r1", ec.SECP384R1)}
#: ML-DSA parameter sets (FIPS 204): software keys only (PKCS#11 3.2 tokens with CKK_ML_DSA are not read yet).
_ML_DSA = {"ml-dsa-44": mldsa.MLDSA44PrivateKey, "ml-dsa-65": mldsa.MLDSA65PrivateKey, "ml-dsa-87": mldsa.MLDSA87PrivateKey}
#: Suffix of the file that records a pending PKCS#11 key (its URI, one line).
PKCS11_REF_SUFFIX = ".pkcs11"


def generate_file_key(key_type: str):
    """A new software key of ``key_type`` (one of :data:`KEY_TYPES`)."""
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type][1]())
    if key_type.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type in _ML_DSA:
        return _ML_DSA[key_type].generate()
    raise ValueError(f"key type {key_type!r} is not one of {', '.join(KEY_TYPES)}")


def write_key_file(key, path: Path, password: bytes | None) -> None:
    """Write ``key`` as PKCS#8 PEM, mode 0600, encrypted when ``password`` is given (ML-DSA: the seed form).

    Refuses (SignerError) to overwrite an existing file.
    """
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SignerError(f"{path} exists already; choose another --name") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def generate_pkcs11_key(uri: Pkcs11Uri, module: str, pin: str, key_type: str, *, where: str) -> None:
    """Generate a key pair inside the token ``uri`` names (label ``object``, CKA_ID ``id``).

    The private key is sensitive, not extractable, and may only sign.
    Refuses (SignerError) when an object with that label or id exists already,
    and for key types other than ``ec-*`` and ``rsa-*`` (Ed25519, ML-DSA).
    """
    # deferred: python-pkcs11 only for a key generated on a token
    import pkcs11
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    from certstatus.signing.pkcs11 import Pkcs11Library

    library = Pkcs11Library.get(module)
    try:
        token = library.lib.get_token(**uri.token_filter)
        try:
            session = token.open(rw=True, user_pin=pin)
        except pkcs11.UserAlreadyLoggedIn:  # another session of this process is logged in
            session = token.open(rw=True)
    except pkcs11.PKCS11Error as exc:
        raise SignerError(f"{where}: cannot open the token: {type(exc).__name__} {exc}".strip()) from None
    try:
        existing = list(session.get_objects({Attribute.LABEL: uri.object} if uri.object else {Attribute.ID: uri.id}))
        if existing:
            raise SignerError(f"{where}: the token already holds an object {uri.describe()}; choose another name")
        key_id = uri.id or os.urandom(8)
        private = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                   Attribute.DECRYPT: False, Attribute.UNWRAP: False, Attribute.DERIVE: False}  # fmt: skip
        public = {Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False}
        common = {"store": True, "label": uri.object, "id": key_id,
                  "private_template": private, "public_template": public}  # fmt: skip
        if key_type in _CURVES:
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[key_type][0])}, local=True
            )
            params.generate_keypair(**common)
        elif key_type.startswith("rsa-"):
            session.generate_keypair(KeyType.RSA, int(key_type[4:]), **common)
        else:
            raise SignerError(f"{where}: key type {key_type} is not generated in tokens; use ec-p256, ec-p384 or rsa-*")
    except pkcs11.PKCS11Error as exc:
        raise SignerError(f"{where}: the token refused to generate the key: {type(exc).__name__} {exc}".strip()) from None
    finally:
        session.close()


def build_csr(key, subject: x509.Name) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for a delegated OCSP responder certificate (CA/B BR §7.1.2.8 profile).

    Requested extensions: keyUsage digitalSignature (critical), extendedKeyUsage
    id-kp-OCSPSigning, id-pkix-ocsp-nocheck; nothing else (no CRL DP, no AIA).
    Signed with the key's default algorithm (the key may be a PKCS#11 adapter;
    an ML-DSA key signs its own request with ML-DSA).
    """
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
    )
    algorithm = default_algorithm(key)
    hash_algorithm = None if algorithm.hash_name is None else getattr(hashes, algorithm.hash_name.upper())()
    return builder.sign(key, hash_algorithm)


def default_subject(ca_certificate: x509.Certificate | None, now: dt.datetime) -> x509.Name:
    """``CN=<CA common name> OCSP Responder <date>`` (or ``certstatus OCSP Responder <date>``)."""
    base = "certstatus"
    if ca_certificate is not None:
        names = ca_certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names:
            base = str(names[0].value)
    common_name = f"{base} OCSP Responder {now:%Y-%m-%d}"[:64]
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def check_issued_certificate(
    certificate: x509.Certificate, ca_certificate: x509.Certificate, public_key, now: dt.datetime, *, where: str
) -> list[str]:
    """Check a delegated responder certificate before installing it; return warnings.

    Refuses (SignerError naming ``where``) a certificate not issued by the CA,
    without id-kp-OCSPSigning, for another key, or expired. Warns about a
    missing id-pkix-ocsp-nocheck and about CRL DP / AIA (not in the CA/B profile).
    """
    class _Public:  # validate_signer compares key.public_key() with the certificate's
        def public_key(self):
            return public_key

    validate_signer(_Public(), certificate, ca_certificate, now, where=where, allow_not_yet_valid=True)  # type: ignore[arg-type]
    warnings = []
    extensions = {ext.oid for ext in certificate.extensions}
    if x509.OCSPNoCheck.oid not in extensions:
        warnings.append("no id-pkix-ocsp-nocheck: clients may try to check the responder's own status")
    if x509.CRLDistributionPoints.oid in extensions:
        warnings.append("carries cRLDistributionPoints, which the CA/B Forum OCSP responder profile excludes")
    if x509.AuthorityInformationAccess.oid in extensions:
        warnings.append("carries authorityInformationAccess, which the CA/B Forum OCSP responder profile excludes")
    return warnings


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file and rename (readers never see half a file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def signer_toml(certificate_name: str, key: str, *, password_file: Path | None, pin_file: Path | None,
                signature_algorithm: str | None) -> str:
    """The ``NAME.toml`` of an installed signer (TOML strings escaped via JSON rules)."""
    lines = [
        "# Installed by `certstatus signer add`.",
        f"certificate = {json.dumps(certificate_name)}",
        f"key = {json.dumps(key)}",
    ]
    if password_file is not None:
        lines.append(f"password_file = {json.dumps(str(password_file))}")
    if pin_file is not None:
        lines.append(f"pin_file = {json.dumps(str(pin_file))}")
    if signature_algorithm is not None:
        lines.append(f"signature_algorithm = {json.dumps(signature_algorithm)}")
    return "\n".join(lines) + "\n"
