"""Per operation on the live path: the library (reference) against certstatus's own code.

    .venv/bin/python bench/hotpath.py [--runs 3]

Same inputs for both sides; µs per call, median of ``--runs`` timings (each
the best of 5 repeats), pinned to core 0. Own code stays on the hot path only
where this shows it wins; the tests compare it byte for byte with the reference
(tests/unit/test_fast_request.py, tests/unit/test_live_response.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import sys
import timeit
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.demo_pki import make_demo_pki
from certstatus.der import tlv
from certstatus.protocol.fast_request import parse_request_fast
from certstatus.protocol.fast_response import ResponseWrapper
from certstatus.protocol.request import parse_request
from certstatus.signing.keys import load_certificates, load_private_key
from certstatus.signing.signer import ResponseSigner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: the tests' reference encoders
from tests import ocsp_reference  # noqa: E402
from tests.ocsp_reference import SingleAnswer  # noqa: E402


def per_call_us(function, runs: int) -> float:
    timer = timeit.Timer(function)
    number = max(1, int(0.05 / max(timer.timeit(5) / 5, 1e-7)))
    samples = [min(timer.repeat(repeat=5, number=number)) / number * 1e6 for _ in range(runs)]
    return statistics.median(samples)


def requests(pki) -> dict[str, bytes]:
    ca = load_certificates(pki.ca_cert)[0]
    leaves = [x509.load_pem_x509_certificate(pki.leaves["good"].read_bytes())]

    def build(certs, nonce):
        builder = ocsp.OCSPRequestBuilder()
        for cert in certs:
            builder = builder.add_certificate(cert, ca, hashes.SHA1())
        if nonce:
            builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
        return builder.build().public_bytes(serialization.Encoding.DER)

    one = build(leaves[:1], False)
    # cryptography's builder writes one CertID only: three are spliced by hand.
    cert_id = parse_request(one).cert_ids[0].der
    three = tlv(0x30, tlv(0x30, tlv(0x30, b"".join(tlv(0x30, cert_id) for _ in range(3)))))
    return {"1 CertID": one, "1 CertID + nonce": build(leaves[:1], True), "3 CertIDs": three}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        os.sched_setaffinity(0, {0})
    except OSError:
        pass
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="certstatus-hotpath-") as tmp:
        for key_type in ("ec", "rsa"):
            pki = make_demo_pki(Path(tmp) / key_type, key_type=key_type)
            key = load_private_key(pki.ocsp_key, None).key
            responder = load_certificates(pki.ocsp_cert)[0]
            ca = load_certificates(pki.ca_cert)[0]
            signer = ResponseSigner(key, responder, ca)
            name = "ECDSA P-256" if key_type == "ec" else "RSA-2048"
            if key_type == "ec":
                for label, der in requests(pki).items():
                    assert parse_request_fast(der) == parse_request(der)
                    rows.append((f"parse OCSPRequest, {label}", per_call_us(lambda: parse_request(der), args.runs),
                                 per_call_us(lambda: parse_request_fast(der), args.runs)))
            now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            query = parse_request(requests(pki)["1 CertID + nonce"])
            good = [SingleAnswer(query.cert_ids[0].der, OCSPCertStatus.GOOD, now, now + dt.timedelta(days=1))]
            revoked = [SingleAnswer(query.cert_ids[0].der, OCSPCertStatus.REVOKED, now, now + dt.timedelta(days=1),
                                    revocation_time=now - dt.timedelta(days=2),
                                    reason=x509.ReasonFlags.key_compromise)]  # fmt: skip
            cases = {"good + nonce": (good, query.nonce), "revoked, reason": (revoked, None)}
            for label, (answers, nonce) in cases.items():
                kwargs = dict(responder_id=signer.responder_id, produced_at=now, answers=answers, nonce=nonce)
                assert ocsp_reference.live_encode_response_data(**kwargs) == ocsp_reference.encode_response_data(**kwargs)
                if key_type == "ec":
                    rows.append((f"encode ResponseData, {label}",
                                 per_call_us(lambda: ocsp_reference.encode_response_data(**kwargs), args.runs),
                                 per_call_us(lambda: ocsp_reference.live_encode_response_data(**kwargs), args.runs)))
            data = ocsp_reference.live_encode_response_data(responder_id=signer.responder_id, produced_at=now,
                                                      answers=good, nonce=query.nonce)
            signature = signer._sign(data)
            certs = signer.certificates_der
            algorithm = signer.signature_algorithm_der
            wrapper = ResponseWrapper(algorithm, certs)  # what ResponseSigner.sign wraps with
            if key_type == "ec":
                rows.append(("wrap BasicOCSPResponse + cert",
                             per_call_us(lambda: ocsp_reference.encode_basic_response(data, algorithm, signature, certs),
                                         args.runs),
                             per_call_us(lambda: wrapper.wrap(data, signature), args.runs)))
            # Whole response: reference pipeline vs own code, both signing once.
            request_der = requests(pki)["1 CertID + nonce"]

            def reference():
                q = parse_request(request_der)
                rd = ocsp_reference.encode_response_data(responder_id=signer.responder_id, produced_at=now,
                                                   answers=good, nonce=q.nonce)
                return ocsp_reference.encode_basic_response(rd, algorithm, signer._sign(rd), certs)

            def own():
                q = parse_request_fast(request_der)
                rd = ocsp_reference.live_encode_response_data(responder_id=signer.responder_id_der, produced_at=now,
                                                        answers=good, nonce=q.nonce)
                return wrapper.wrap(rd, signer._sign(rd))

            rows.append((f"parse+encode+sign+wrap, {name}", per_call_us(reference, args.runs),
                         per_call_us(own, args.runs)))
            if isinstance(key, ec.EllipticCurvePrivateKey):
                raw = per_call_us(lambda: key.sign(data, ec.ECDSA(hashes.SHA256())), args.runs)
            else:
                raw = per_call_us(lambda: key.sign(data, padding.PKCS1v15(), hashes.SHA256()), args.runs)
            leaf = x509.load_pem_x509_certificate(pki.leaves["good"].read_bytes())

            def builder():
                b = ocsp.OCSPResponseBuilder().add_response(
                    cert=leaf, issuer=ca, algorithm=hashes.SHA1(), cert_status=OCSPCertStatus.GOOD,
                    this_update=now, next_update=now + dt.timedelta(days=1), revocation_time=None,
                    revocation_reason=None,
                ).responder_id(ocsp.OCSPResponderEncoding.HASH, responder).certificates([responder])
                return b.sign(key, hashes.SHA256())

            rows.append((f"cryptography OCSPResponseBuilder, {name}", per_call_us(builder, args.runs), float("nan")))
            rows.append((f"raw signature only, {name}", raw, float("nan")))
    print(f"== hot path, µs per call (median of {args.runs}, core 0) ==")
    print(f"{'operation':46s} {'library':>9s} {'own code':>9s} {'speed-up':>8s}")
    for label, library, own in rows:
        speedup = f"{library / own:7.1f}x" if own == own else ""
        own_text = f"{own:9.1f}" if own == own else f"{'':9s}"
        print(f"{label:46s} {library:9.1f} {own_text} {speedup}")
    print(f"(load average during the run: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
