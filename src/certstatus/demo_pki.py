"""A complete demo PKI (root, issuing CA, delegated OCSP responder, leaves, CRL, index.txt).

Used by ``certstatus demo`` and by the tests. :func:`make_demo_pki` writes every
file into one folder; :func:`issue_cert` and :func:`sign_crl` are the building
blocks tests reuse to make extra certificates, delta CRLs or mis-signed CRLs.
All times are aware UTC datetimes with whole seconds.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certstatus.clock import UTC
from certstatus.model import RevokedEntry
from certstatus.signing.lifecycle import generate_file_key

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey

#: Key types of a post-quantum delegated responder (``make_demo_pki(responder_key_type=...)``).
ML_DSA_KEY_TYPES = ("ml-dsa-44", "ml-dsa-65", "ml-dsa-87")
DEMO_PASSWORD = b"demo-password"
"""Password of ``ocsp.p12`` and ``ocsp-encrypted.key``."""
DEFAULT_OCSP_URL = "http://127.0.0.1:8080/"
LEAF_NAMES = (
    "good", "good2", "revoked-keycompromise", "revoked-superseded",
    "revoked-hold", "revoked-unspecified", "expired", "unknown",
)  # fmt: skip
# name -> (CRL reasonCode, hours before now it was revoked); None = entry without reasonCode.
_REVOCATIONS: dict[str, tuple[x509.ReasonFlags | None, int]] = {
    "revoked-keycompromise": (x509.ReasonFlags.key_compromise, 2),
    "revoked-superseded": (x509.ReasonFlags.superseded, 3),
    "revoked-hold": (x509.ReasonFlags.certificate_hold, 4),
    "revoked-unspecified": (None, 5),
}
# index.txt reason names are ReasonFlags values (compared case-insensitively) but for this one.
_OPENSSL_REASON = {x509.ReasonFlags.ca_compromise: "CACompromise"}


@dataclass(frozen=True)
class DemoPki:
    """Paths of a demo PKI written by :func:`make_demo_pki` (PEM unless noted).

    ``index`` and ``issued`` list every certificate the CA issued — the leaves
    except ``"unknown"``, plus the responder certificate — consistently with
    ``crl``. Each leaf ``leaves[name]`` has its key next to it (``<name>.key``).
    """

    folder: Path
    root_cert: Path
    root_key: Path
    ca_cert: Path
    ca_key: Path
    ocsp_cert: Path
    ocsp_key: Path
    crl: Path
    index: Path
    issued: Path
    leaves: dict[str, Path]
    serials: dict[str, int]
    revocation_times: dict[str, dt.datetime]
    chain: Path  # CA + root, for `openssl ocsp -CAfile` / `-VAfile`
    ocsp_p12: Path | None  # PKCS#12 of the responder key + cert (+ CA), password DEMO_PASSWORD; None for ML-DSA
    ocsp_encrypted_key: Path  # PKCS#8 PEM encrypted with DEMO_PASSWORD


def new_key(key_type: str) -> PrivateKey:
    """A fresh key: ``"ec"`` = ECDSA P-256, ``"rsa"`` = RSA-2048, ``"ml-dsa-44|65|87"`` = ML-DSA (FIPS 204);
    ValueError otherwise."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type in ML_DSA_KEY_TYPES:
        return generate_file_key(key_type)
    raise ValueError(f"key_type must be 'ec', 'rsa' or one of {', '.join(ML_DSA_KEY_TYPES)}, not {key_type!r}")


def issue_cert(
    issuer_cert: x509.Certificate | None,
    issuer_key: PrivateKey,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    *,
    common_name: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
    serial_number: int | None = None,
    ca: bool = False,
    path_length: int | None = None,
    ocsp_signing: bool = False,
    ocsp_url: str | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    extended_key_usage: Sequence[x509.ObjectIdentifier] | None = None,
    subject: x509.Name | None = None,
) -> x509.Certificate:
    """Sign an RFC 5280 v3 certificate for ``public_key`` with SHA-256 (ML-DSA issuer keys: ML-DSA).

    ``issuer_cert=None`` makes a self-signed certificate (``public_key`` must
    then belong to ``issuer_key``). ``ca`` adds CA:TRUE and keyCertSign/cRLSign;
    ``ocsp_signing`` makes a delegated responder (id-kp-OCSPSigning,
    id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2); otherwise a TLS server leaf,
    or a leaf with ``extended_key_usage`` (e.g. clientAuth) when given.
    ``dns_names`` and ``ip_addresses`` (text, v4 or v6) go into subjectAltName;
    ``subject`` replaces the subject ``CN=common_name``.
    ``serial_number`` defaults to a random positive 159-bit number.
    """
    usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "encipher_only", "decipher_only"), False)
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), True),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca, **usage), True),
        (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False),
    ]  # fmt: skip
    if ocsp_signing:
        extensions.append((x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False))
        extensions.append((x509.OCSPNoCheck(), False))
    elif not ca:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if extended_key_usage is None else list(extended_key_usage)
        extensions.append((x509.ExtendedKeyUsage(usages), False))
    if dns_names or ip_addresses:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
        extensions.append((x509.SubjectAlternativeName(names), False))
    if ocsp_url:
        url = x509.UniformResourceIdentifier(ocsp_url)
        access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, url)
        extensions.append((x509.AuthorityInformationAccess([access]), False))
    if subject is None:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = x509.CertificateBuilder(
        issuer_name=subject if issuer_cert is None else issuer_cert.subject,
        subject_name=subject,
        public_key=public_key,
        serial_number=x509.random_serial_number() if serial_number is None else serial_number,
        not_valid_before=not_before,
        not_valid_after=not_after,
    )
    for value, critical in extensions:
        builder = builder.add_extension(value, critical)
    return builder.sign(issuer_key, _signature_hash(issuer_key))


def _signature_hash(issuer_key: PrivateKey) -> hashes.HashAlgorithm | None:
    """SHA-256 for ECDSA and RSA; None for ML-DSA, which signs the message itself (RFC 9881)."""
    return None if isinstance(issuer_key, (mldsa.MLDSA44PrivateKey, mldsa.MLDSA65PrivateKey, mldsa.MLDSA87PrivateKey)) else hashes.SHA256()


def sign_crl(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    entries: Iterable[RevokedEntry],
    *,
    crl_number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
    delta_base: int | None = None,
    freshest_crl: Iterable[str] = (),
) -> x509.CertificateRevocationList:
    """Sign a v2 CRL (RFC 5280 §5) naming ``ca_cert`` as issuer, with SHA-256 (ML-DSA keys: ML-DSA).

    Carries authorityKeyIdentifier (of ``ca_cert``'s key) and cRLNumber, plus a
    critical deltaCRLIndicator when ``delta_base`` is given and a FreshestCRL
    extension (§5.2.6) pointing at the ``freshest_crl`` URIs when given. Each entry gets a
    reasonCode only when ``reason`` is set and an invalidityDate when set.
    Signing with a key other than ``ca_cert``'s yields a mis-signed CRL (for tests).
    """
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    builder = (
        x509.CertificateRevocationListBuilder(
            issuer_name=ca_cert.subject, last_update=this_update, next_update=next_update
        )
        .add_extension(aki, False)
        .add_extension(x509.CRLNumber(crl_number), False)
    )
    if delta_base is not None:
        builder = builder.add_extension(x509.DeltaCRLIndicator(delta_base), True)
    uris = [x509.UniformResourceIdentifier(uri) for uri in freshest_crl]
    if uris:
        point = x509.DistributionPoint(full_name=uris, relative_name=None, reasons=None, crl_issuer=None)
        builder = builder.add_extension(x509.FreshestCRL([point]), False)
    for entry in entries:
        revoked = x509.RevokedCertificateBuilder(entry.serial_number, entry.revocation_time)
        if entry.reason is not None:
            revoked = revoked.add_extension(x509.CRLReason(entry.reason), False)
        if entry.invalidity_date is not None:
            revoked = revoked.add_extension(x509.InvalidityDate(entry.invalidity_date), False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(ca_key, _signature_hash(ca_key))


def make_demo_pki(
    folder: Path,
    *,
    key_type: str = "ec",
    now: dt.datetime | None = None,
    ocsp_url: str = DEFAULT_OCSP_URL,
    responder_key_type: str | None = None,
) -> DemoPki:
    """Create the demo PKI in ``folder`` (created if missing; files overwritten).

    ``key_type`` (``"ec"``, ``"rsa"``) is every key's; ``responder_key_type``
    (e.g. ``"ml-dsa-65"``) gives the delegated responder another one, which
    the CA certifies with its own ``key_type`` signature (no ``ocsp.p12`` then
    for ML-DSA, which PKCS#12 cannot carry in ``cryptography``).

    Root and CA are valid for 10 years from ``now`` - 1 day, the responder for
    1 year, leaves for 90 days; ``"expired"`` ended yesterday. The CRL (cRLNumber
    1) has thisUpdate ``now`` - 1 minute and nextUpdate ``now`` + 7 days. Keys
    are unencrypted PKCS#8 PEM, mode 0600. ``now`` (aware; default: the wall
    clock) is cut to whole seconds. ValueError for a naive ``now`` or bad ``key_type``.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("make_demo_pki needs an aware datetime (UTC) for now")
    now = (now or dt.datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    start, day = now - dt.timedelta(days=1), dt.timedelta(days=1)
    (folder / "leaves").mkdir(parents=True, exist_ok=True)

    root_key, ca_key, ocsp_key = new_key(key_type), new_key(key_type), new_key(responder_key_type or key_type)
    root = issue_cert(None, root_key, root_key.public_key(), common_name="certstatus demo root",
                      not_before=start, not_after=start + 3650 * day, ca=True)
    ca = issue_cert(root, root_key, ca_key.public_key(), common_name="certstatus demo CA",
                    not_before=start, not_after=start + 3650 * day, ca=True, path_length=0)
    ocsp = issue_cert(ca, ca_key, ocsp_key.public_key(), common_name="certstatus demo OCSP responder",
                      not_before=start, not_after=start + 365 * day, ocsp_signing=True)
    for name, cert, key in (("root", root, root_key), ("ca", ca, ca_key), ("ocsp", ocsp, ocsp_key)):
        _save(folder / f"{name}.pem", cert, key)

    leaves: dict[str, Path] = {}
    serials: dict[str, int] = {}
    revocation_times: dict[str, dt.datetime] = {}
    index_lines = [_index_line(ocsp, "V")]
    entries: list[RevokedEntry] = []
    for name in LEAF_NAMES:
        key = new_key(key_type)
        begins = now - 91 * day if name == "expired" else start
        cert = issue_cert(ca, ca_key, key.public_key(), common_name=f"{name}.demo.test",
                          not_before=begins, not_after=begins + 90 * day, ocsp_url=ocsp_url,
                          dns_names=[f"{name}.demo.test"])
        leaves[name] = _save(folder / "leaves" / f"{name}.pem", cert, key)
        serials[name] = cert.serial_number
        if name in _REVOCATIONS:
            reason, hours = _REVOCATIONS[name]
            revoked_at = revocation_times[name] = now - dt.timedelta(hours=hours)
            invalidity = revoked_at - dt.timedelta(hours=6) if name == "revoked-keycompromise" else None
            entries.append(RevokedEntry(cert.serial_number, revoked_at, reason, invalidity))
            index_lines.append(_index_line(cert, "R", entries[-1]))
        elif name != "unknown":
            index_lines.append(_index_line(cert, "E" if name == "expired" else "V"))

    crl = sign_crl(ca, ca_key, entries, crl_number=1, this_update=now - dt.timedelta(minutes=1),
                   next_update=now + 7 * day)
    _write(folder / "crl.pem", crl.public_bytes(serialization.Encoding.PEM))
    _write(folder / "index.txt", "".join(index_lines).encode())
    issued = [ocsp.serial_number] + [s for n, s in serials.items() if n != "unknown"]
    issued_text = "# serials issued by CN=certstatus demo CA\n" + "".join(f"{s:x}\n" for s in issued)
    _write(folder / "issued.txt", issued_text.encode())
    _write(folder / "chain.pem", _pem(ca) + _pem(root))
    encryption = serialization.BestAvailableEncryption(DEMO_PASSWORD)
    p12_path: Path | None = folder / "ocsp.p12"
    if (responder_key_type or key_type) in ML_DSA_KEY_TYPES:
        p12_path = None
    else:
        p12 = pkcs12.serialize_key_and_certificates(b"ocsp", ocsp_key, ocsp, [ca], encryption)
        _write(p12_path, p12, private=True)
    _write(folder / "ocsp-encrypted.key", _key_pem(ocsp_key, encryption), private=True)

    return DemoPki(
        folder=folder, root_cert=folder / "root.pem", root_key=folder / "root.key",
        ca_cert=folder / "ca.pem", ca_key=folder / "ca.key",
        ocsp_cert=folder / "ocsp.pem", ocsp_key=folder / "ocsp.key",
        crl=folder / "crl.pem", index=folder / "index.txt", issued=folder / "issued.txt",
        leaves=leaves, serials=serials, revocation_times=revocation_times,
        chain=folder / "chain.pem", ocsp_p12=p12_path,
        ocsp_encrypted_key=folder / "ocsp-encrypted.key",
    )  # fmt: skip


def _index_line(cert: x509.Certificate, status: str, revoked: RevokedEntry | None = None) -> str:
    """One index.txt line as ``openssl ca`` writes it (apps/ca.c), revocation field included."""
    revocation = ""
    if revoked is not None:
        revocation = _openssl_time(revoked.revocation_time)
        if revoked.reason is x509.ReasonFlags.key_compromise and revoked.invalidity_date:
            revocation += f",keyTime,{revoked.invalidity_date:%Y%m%d%H%M%SZ}"
        elif revoked.reason is not None:
            revocation += f",{_OPENSSL_REASON.get(revoked.reason, revoked.reason.value)}"
    serial = f"{cert.serial_number:X}"
    serial = serial.zfill(len(serial) + len(serial) % 2)  # OpenSSL writes whole bytes
    subject = "/" + "/".join(f"CN={a.value!s}" for a in cert.subject)
    expiry = _openssl_time(cert.not_valid_after_utc)
    return f"{status}\t{expiry}\t{revocation}\t{serial}\tunknown\t{subject}\n"


def _openssl_time(when: dt.datetime) -> str:
    """UTCTime before 2050, GeneralizedTime after (RFC 5280 §4.1.2.5)."""
    return f"{when:%y%m%d%H%M%SZ}" if when.year < 2050 else f"{when:%Y%m%d%H%M%SZ}"


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey, encryption: serialization.KeySerializationEncryption) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _save(path: Path, cert: x509.Certificate, key: PrivateKey) -> Path:
    """Write ``cert`` to ``path`` and its unencrypted key next to it (``.key``); return ``path``."""
    _write(path, _pem(cert))
    _write(path.with_suffix(".key"), _key_pem(key, serialization.NoEncryption()), private=True)
    return path


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data``; ``private`` files are created (or reset to) mode 0600 before writing."""
    if private:
        path.touch(mode=0o600)
        path.chmod(0o600)
    path.write_bytes(data)
