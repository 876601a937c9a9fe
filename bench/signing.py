"""Signing rate: a software key beside the same key in SoftHSM2 (PKCS#11), in one run.

    .venv/bin/python bench/signing.py [--rounds 3] [--seconds 1.0] [--threads 2]

For ECDSA P-256 and RSA-2048, signs one realistic ResponseData (one
SingleResponse, a nonce) with :class:`ResponseSigner` — the code the request
path runs — for ``--seconds`` per round, and prints the median rate over the
rounds for the software key, for the SoftHSM2 key from one thread, and for the
SoftHSM2 key from ``--threads`` threads through the session pool, with the
ratio to the software key. The token is made in a temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.ocsp import OCSPCertStatus
from cryptography.x509.oid import NameOID

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "1234"


def _certificate(key) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench responder")])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip


def _response_data(signer) -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: the tests' reference encoders
    from tests.ocsp_reference import SingleAnswer, encode_response_data

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    cert_id = asn1_ocsp.CertId({
        "hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": os.urandom(20),
        "issuer_key_hash": os.urandom(20), "serial_number": int.from_bytes(os.urandom(16), "big"),
    }).dump()  # fmt: skip
    answer = SingleAnswer(cert_id, OCSPCertStatus.GOOD, now, now + dt.timedelta(days=1))
    return encode_response_data(responder_id=signer.responder_id, produced_at=now, answers=[answer],
                                nonce=b"\x04\x10" + os.urandom(16))


def _rate(sign, data: bytes, seconds: float, threads: int) -> float:
    """Signatures per second over ``seconds`` (wall clock), from ``threads`` threads."""
    stop = time.perf_counter() + seconds

    def loop() -> int:
        count = 0
        while time.perf_counter() < stop:
            sign(data)
            count += 1
        return count

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        total = sum(pool.map(lambda _: loop(), range(threads)))
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    module = next((m for m in MODULES if Path(m).exists()), None)
    if module is None:
        sys.exit("SoftHSM2 is not installed (scripts/setup --test installs it)")

    folder = Path(tempfile.mkdtemp(prefix="certstatus-bench-hsm-"))
    (folder / "tokens").mkdir()
    (folder / "softhsm2.conf").write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(folder / "softhsm2.conf")
    os.environ["CERTSTATUS_PKCS11_PIN"] = PIN
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", "12345678", "--pin", PIN],
                   check=True, capture_output=True)

    from certstatus.signing.pkcs11_keys import open_pkcs11_key
    from certstatus.signing.pkcs11_uri import parse_pkcs11_uri
    from certstatus.signing.signer import ResponseSigner

    keys = {
        "ecdsa-p256": ec.generate_private_key(ec.SECP256R1()),
        "rsa-2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    print(f"signing one ResponseData, {args.seconds:g} s per round, median of {args.rounds} rounds, "
          f"SoftHSM2 {module}, {os.cpu_count()} cores")
    for index, (name, key) in enumerate(keys.items(), 1):
        pem = folder / f"{name}.pem"
        pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
        subprocess.run(["softhsm2-util", "--import", str(pem), "--token", "bench", "--label", name,
                        "--id", f"{index:02x}", "--pin", PIN], check=True, capture_output=True)
        certificate = _certificate(key)
        hsm_key = open_pkcs11_key(parse_pkcs11_uri(f"pkcs11:token=bench;object={name}"), module, where=name,
                                  pool_size=max(4, args.threads))
        software = ResponseSigner(key, certificate, certificate)
        hsm = ResponseSigner(hsm_key, certificate, certificate)
        data = _response_data(software)
        runs = {"software": [], "softhsm2": [], f"softhsm2 x{args.threads} threads": []}
        for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits all alike
            runs["software"].append(_rate(software.sign, data, args.seconds, 1))
            runs["softhsm2"].append(_rate(hsm.sign, data, args.seconds, 1))
            runs[f"softhsm2 x{args.threads} threads"].append(_rate(hsm.sign, data, args.seconds, args.threads))
        baseline = statistics.median(runs["software"])
        for label, rates in runs.items():
            median = statistics.median(rates)
            print(f"{name:10s} {label:22s} {median:9.0f} signatures/s   ratio to software {median / baseline:5.2f}")


if __name__ == "__main__":
    main()
