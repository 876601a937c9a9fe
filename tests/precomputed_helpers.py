"""Helpers shared by the precomputed/cached mode tests: settings for a demo PKI, requests, answers."""

from __future__ import annotations

import shutil
from pathlib import Path

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.demo_pki import DemoPki
from certstatus.pipeline.base import Exchange, OCSPAnswer, Route
from certstatus.protocol.certid import issuer_hashes
from certstatus.protocol.request import parse_request

_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384}


def copy_pki(pki: DemoPki, folder: Path) -> DemoPki:
    """A copy of the session's demo PKI that a test may change (index, CRL)."""
    shutil.copytree(pki.folder, folder)

    def moved(path: Path) -> Path:
        return folder / path.relative_to(pki.folder)

    fields = {
        name: moved(value) if isinstance(value, Path) else value
        for name, value in vars(pki).items()
        if name not in ("leaves",)
    }
    return DemoPki(**{**fields, "leaves": {k: moved(v) for k, v in pki.leaves.items()}})


def ca_settings(pki: DemoPki, mode: str, *, name: str = "demo", crl_only: bool = False, **changes) -> CaSettings:
    """The demo CA (CRL + index, delegated responder) in ``mode``; ``changes`` override any field."""
    fields = {
        "certificate": pki.ca_cert, "signer_certificate": pki.ocsp_cert, "signer_key": pki.ocsp_key,
        "crl": (str(pki.crl),), "index": None if crl_only else pki.index,
    }  # fmt: skip
    return CaSettings(name=name, mode=mode, **{**fields, **changes})


def settings_for(database: Path, *cas: CaSettings, cache_bytes: int = 1 << 20, workers: int = 1) -> Settings:
    return Settings(ServerSettings(workers=workers, database=database, response_cache_bytes=cache_bytes), cas)


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def request_der(
    pki: DemoPki, serial: int | str, *, algorithm: str = "sha1", nonce: bytes | None = None
) -> bytes:
    """An OCSPRequest for a leaf name or a serial number of the demo CA, built by cryptography."""
    issuer = certificate(pki.ca_cert)
    builder = ocsp.OCSPRequestBuilder()
    if isinstance(serial, str):
        builder = builder.add_certificate(certificate(pki.leaves[serial]), issuer, _HASHES[algorithm]())
    else:
        name_hash, key_hash = issuer_hashes(issuer, algorithm)
        builder = builder.add_certificate_by_hash(name_hash, key_hash, serial, _HASHES[algorithm]())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def multi_request_der(*requests: bytes) -> bytes:
    """One OCSPRequest holding the CertIDs of several single requests (asn1crypto)."""
    singles = [asn1_ocsp.OCSPRequest.load(der)["tbs_request"]["request_list"][0] for der in requests]
    return asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": singles}}).dump()


def without_hash_parameters(request: bytes) -> bytes:
    """The same request with the CertID's hashAlgorithm parameters absent instead of NULL."""
    parsed = asn1_ocsp.OCSPRequest.load(request)
    cert_id = parsed["tbs_request"]["request_list"][0]["req_cert"]
    rebuilt = asn1_ocsp.CertId(
        {
            # asn1crypto writes NULL parameters unless told None explicitly.
            "hash_algorithm": {"algorithm": cert_id["hash_algorithm"]["algorithm"].native, "parameters": None},
            "issuer_name_hash": cert_id["issuer_name_hash"].native,
            "issuer_key_hash": cert_id["issuer_key_hash"].native,
            "serial_number": cert_id["serial_number"].native,
        }
    )
    der = asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": rebuilt}]}}).dump()
    assert b"\x05\x00\x04" not in der, "hashAlgorithm parameters still present"
    return der


def answer(app, der: bytes, clock) -> OCSPAnswer:
    """Run a request through the worker's pipeline and return the answer (with its source)."""
    return app.http.pipeline(Exchange(parse_request(der), Route("/"), clock.now()))


def parse(der: bytes) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(der)


def revoke_in_index(pki: DemoPki, serial_number: int, store, served, clock) -> None:
    """Mark ``serial_number`` revoked (keyCompromise, 2026-01-01) in the PKI's index.txt and import
    the file for ``served`` (a ServedCA) into ``store``, as the refresher would."""
    from certstatus.sources.importer import CaTarget, import_index

    serial = f"{serial_number:X}"
    lines = pki.index.read_text().splitlines(keepends=True)
    pki.index.write_text("".join(
        line.replace("V\t", "R\t", 1).replace("\t\t", "\t260101000000Z,keyCompromise\t", 1) if serial in line else line
        for line in lines
    ))  # fmt: skip
    import_index(store, CaTarget(served.settings, served.issuer_id, served.certificate), str(pki.index), clock)
