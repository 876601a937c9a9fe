#!/usr/bin/env python3
"""Post-quantum responses: what ML-DSA costs on the wire, in caches, in the store and per request.

    .venv/bin/python bench/post_quantum.py [--runs 3] [--requests 300] [--certificates 1000000]

Prints, for a delegated responder of an ECDSA P-256 CA whose key is ECDSA P-256, RSA-2048,
ML-DSA-44, ML-DSA-65 or ML-DSA-87 (all in one run, same machine):

1. the bytes of one `good` response (SHA-1 CertID, no nonce) with the responder certificate
   (what a delegated responder sends) and without it (what the generator stores per response, and
   what a CA-signed response weighs), the TCP segments it fills at a 1 460-byte MSS, and how many
   such answers the default 64 MiB answer cache of a worker holds (DER + CertID key + the
   cache's per-entry overhead);
2. the signing cost, CPU µs per signature in one process (median of ``--runs``);
3. for the hybrid precomputed CA (ECDSA signer stored, ML-DSA-65 signer beside it), the request path
   through the worker's HTTP handler, CPU µs per request (median of ``--runs``): an ECDSA client served
   from the store, an ML-DSA client signed live, and an ML-DSA client served from the answer cache;
4. what storing ML-DSA-65 responses beside the ECDSA ones would cost for ``--certificates``
   certificates (two responses each, SHA-1 and SHA-256): generator CPU per pass and store bytes.

Figures, not assertions (benchmarks are never timed tests). The machine may be shared: quote medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.app import build_application, prepare
from certstatus.clock import SystemClock
from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.demo_pki import issue_cert, make_demo_pki, new_key
from certstatus.pipeline.cache import ENTRY_OVERHEAD
from certstatus.protocol import fast_response as fast
from certstatus.protocol.certid import issuer_hashes
from certstatus.protocol.request import parse_request
from certstatus.signing.algorithms import ALGORITHMS
from certstatus.signing.keys import load_certificates, load_private_key
from certstatus.signing.settings import SignerSettings
from certstatus.signing.signer import ResponseSigner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: the tests' reference encoders
from tests import ocsp_reference  # noqa: E402

KEY_TYPES = ("ec", "rsa", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87")
LABELS = {"ec": "ECDSA P-256", "rsa": "RSA-2048", "ml-dsa-44": "ML-DSA-44", "ml-dsa-65": "ML-DSA-65", "ml-dsa-87": "ML-DSA-87"}
CACHE_BYTES = 64 * 2**20
MSS = 1460


def _signer(pki, key_type: str, folder: Path) -> ResponseSigner:
    """A delegated responder with a ``key_type`` key, issued by the demo (ECDSA) CA; its files in ``folder``."""
    ca = load_certificates(pki.ca_cert)[0]
    key = new_key(key_type)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    certificate = issue_cert(ca, load_private_key(pki.ca_key, None).key, key.public_key(),
                             common_name=f"{LABELS[key_type]} responder", not_before=now - dt.timedelta(hours=1),
                             not_after=now + dt.timedelta(days=30), ocsp_signing=True)  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key_type}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path = folder / f"{key_type}.key"
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ResponseSigner(key, certificate, ca)


def _good_response_data(signer: ResponseSigner, serial: int) -> tuple[bytes, bytes]:
    """(CertID DER, ResponseData DER) of a good answer for ``serial``, SHA-1 CertID, validity 1 day."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    cert_id = fast.encode_cert_id(fast.cert_id_prefix("sha1", *issuer_hashes(signer.ca_certificate, "sha1")), serial)
    data = ocsp_reference.fast_encode_response_data(
        signer.responder_id_der, fast.generalized_time(now), cert_id, fast.encode_cert_status(OCSPCertStatus.GOOD),
        fast.generalized_time(now), fast.generalized_time(now + dt.timedelta(days=1)),
    )  # fmt: skip
    return cert_id, data


def _median_us(runs: int, count: int, call) -> float:
    """Median over ``runs`` of the CPU µs (this process) per call of ``count`` calls: the cost of the code,
    which other load on a shared machine barely moves (wall time would)."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        for _ in range(count):
            call()
        times.append((time.process_time() - start) / count * 1e6)
    return statistics.median(times)


def sizes_and_signing(pki, folder: Path, runs: int) -> dict[str, tuple[int, int, float]]:
    """key type -> (bytes with the responder certificate, bytes without, µs per signature)."""
    found = {}
    print("| responder key | response bytes with its certificate | without (stored body, CA-signed) | signature | "
          "TCP segments (MSS 1460) | answers per 64 MiB cache | CPU µs per signature |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key_type in KEY_TYPES:
        signer = _signer(pki, key_type, folder)
        cert_id, data = _good_response_data(signer, (1 << 159) | 4711)
        signature = signer.signature(data)
        wrapper = fast.ResponseWrapper(signer.signature_algorithm_der, signer.certificates_der)
        whole, body = len(wrapper.wrap(data, signature)), len(fast.ResponseWrapper(signer.signature_algorithm_der).wrap(data, signature))
        per_signature = _median_us(runs, 300 if key_type.startswith("ml-dsa") or key_type == "rsa" else 3000,
                                   lambda: signer.signature(data))  # fmt: skip
        entries = CACHE_BYTES // (whole + len(cert_id) + ENTRY_OVERHEAD)
        found[key_type] = (whole, body, per_signature)
        print(f"| {LABELS[key_type]} | {whole:,} | {body:,} | {len(signature):,} | {-(-whole // MSS)} | {entries:,} | {per_signature:,.0f} |")
    return found


def request_path(pki, folder: Path, runs: int, requests: int) -> dict[str, float]:
    """µs per request through the worker's HTTP handler for the hybrid precomputed CA (see the module doc)."""
    pq_signer = SignerSettings(folder / "ml-dsa-65.pem", str(folder / "ml-dsa-65.key"), name="ml-dsa-65")
    ca = CaSettings(name="hybrid", certificate=pki.ca_cert, signer_certificate=pki.ocsp_cert, signer_key=pki.ocsp_key,
                    index=pki.index, crl=(str(pki.crl),), mode="precomputed", signers=(pq_signer,))  # fmt: skip
    from certstatus.generator.run import Generator
    from certstatus.store.factory import open_store

    clock = SystemClock()
    issuer = load_certificates(pki.ca_cert)[0]
    name_hash, key_hash = issuer_hashes(issuer, "sha1")
    serial = pki.serials["good"]
    cert_id = fast.encode_cert_id(fast.cert_id_prefix("sha1", name_hash, key_hash), serial)
    plain = fast.tlv(0x30, fast.tlv(0x30, fast.tlv(0x30, fast.tlv(0x30, cert_id))))
    from asn1crypto import ocsp as asn1_ocsp

    preferring = asn1_ocsp.OCSPRequest({"tbs_request": {
        "request_list": [{"req_cert": asn1_ocsp.CertId.load(cert_id)}],
        "request_extensions": [{"extn_id": "preferred_signature_algorithms",
                                "extn_value": [{"sig_identifier": {"algorithm": ALGORITHMS["ml-dsa-65"].oid}}]}],
    }}).dump()  # fmt: skip
    assert parse_request(preferring).preferred_signature_algorithms == (ALGORITHMS["ml-dsa-65"].oid,)
    found = {}
    for cache_bytes in (0, CACHE_BYTES):
        settings = Settings(ServerSettings(workers=1, database=folder / f"store-{cache_bytes}.sqlite3", response_cache_bytes=cache_bytes), (ca,))
        prepare(settings, clock)
        store = open_store(settings.server.database)
        with Generator(settings, store, clock=clock, processes=0) as generator:
            generator.run_pass()
        store.close()
        app = build_application(settings, clock, watch=False)
        headers = {b"content-type": b"application/ocsp-request"}

        def ask(der: bytes) -> bytes:
            reply = app.http.handle("POST", b"/", headers, der)
            assert reply.status == 200
            return reply.body

        assert ALGORITHMS["ml-dsa-65"].der in ask(preferring) and ALGORITHMS["ecdsa-sha256"].der in ask(plain)
        if cache_bytes == 0:
            found["ecdsa client, stored response (cache off)"] = _median_us(runs, requests * 10, lambda: ask(plain))
            found["ml-dsa-65 client, signed live (cache off)"] = _median_us(runs, requests, lambda: ask(preferring))
        else:
            found["ml-dsa-65 client, from the answer cache"] = _median_us(runs, requests * 10, lambda: ask(preferring))
        app.store.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="requests per run for live ML-DSA signing")
    parser.add_argument("--certificates", type=int, default=1_000_000, help="CA size for the store-both estimate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="certstatus-pq-") as tmp:
        folder = Path(tmp)
        pki = make_demo_pki(folder / "pki", key_type="ec")
        print("## Responses by responder key (delegated responder of an ECDSA P-256 CA, good, SHA-1 CertID, no nonce)\n")
        found = sizes_and_signing(pki, folder / "signers", args.runs)
        print("\n## Hybrid precomputed CA: the request path through the worker's HTTP handler\n")
        for label, micros in request_path(pki, folder / "signers", args.runs, args.requests).items():
            print(f"{label}: {micros:,.0f} CPU us per request")
        n = args.certificates
        _, ecdsa_body, ecdsa_us = found["ec"]
        _, pq_body, pq_us = found["ml-dsa-65"]
        print(f"\n## Storing ML-DSA-65 responses beside the ECDSA ones, {n:,} certificates (2 responses each)\n")
        print(f"generator CPU per full pass: ECDSA {2 * n * ecdsa_us / 1e6:,.0f} s, ML-DSA-65 {2 * n * pq_us / 1e6:,.0f} s more "
              f"({pq_us / ecdsa_us:.0f}x per response)")
        print(f"store: ECDSA {2 * n * ecdsa_body / 2**30:,.1f} GiB, ML-DSA-65 {2 * n * pq_body / 2**30:,.1f} GiB more "
              f"(bodies without certificates, before the store's own overhead)")


if __name__ == "__main__":
    main()
