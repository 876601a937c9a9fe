"""What access control, the audit log and metrics cost per request, beside the plain path, in one run.

    .venv/bin/python bench/operations.py [--rounds 3] [--seconds 1.0]

Drives ``OCSPHttpHandler.handle`` (the whole request path behind the HTTP
parser: parse, pipeline, sign, headers) in this process with one
nonce-less POST request, for ``--seconds`` per round, and prints the median
rate (requests per CPU second of this process, the audit thread included)
over the rounds and the CPU cost per request relative to the plain path:

* ``plain``: no operations configured (resolve, freshness, local, sign);
* ``audit+metrics``: the audit log (to a file) and Prometheus metrics
  (multiprocess mode, as served);
* ``tls by_name``: a TLS client certificate chain as the handshake hands it
  over, authenticated, checked against our revocation data, authorized by
  name — plus audit and metrics;
* ``signed request``: a request signed with ``openssl ocsp -signer``, its
  signature verified each time (the signer chain verification is cached),
  ``require_signed_requests`` — plus audit and metrics;
* ``forward cache hit``: a forwarded CA whose answer is in the cache (a real
  second certstatus answered the first request) — plus audit and metrics.

Single-threaded, one core: compare the figures of one run with each other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
METRICS_DIR = tempfile.mkdtemp(prefix="bench-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR  # before prometheus_client is imported


def _rate(handle, args: tuple, kwargs: dict, seconds: float) -> float:
    """Requests per CPU second of this process (the audit writer thread included).

    CPU time, not wall time: the machine is shared, and other processes'
    load would otherwise show up as our cost.
    """
    count, deadline = 0, time.perf_counter() + seconds
    start = time.process_time()
    while time.perf_counter() < deadline:
        for _ in range(10):
            response = handle(*args, **kwargs)
        count += 10
    assert response.status == 200, response
    return count / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    options = parser.parse_args()

    from dataclasses import replace

    from certstatus.app import build_application, prepare
    from certstatus.config import CaSettings, ServerSettings, Settings
    from certstatus.config_ops import AccessSettings, AuditSettings, OperationsSettings, TlsSettings
    from certstatus.demo_pki import make_demo_pki
    from certstatus.metrics import RequestMetrics
    from certstatus.server.tls import peer_chain  # noqa: F401 - the adapters' source of tls_client_chain
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from tests.access_pki import make_access_pki
    from tests.ocsp_client import request_der
    from tests.servers import demo_ca_table, free_port, server_tables, start_server

    work = Path(tempfile.mkdtemp(prefix="bench-operations-"))
    demo = make_demo_pki(work / "pki")
    pki = make_access_pki(demo, work / "access")
    base = CaSettings("demo", demo.ca_cert, demo.ocsp_cert, demo.ocsp_key, crl=(str(pki.crl),), index=demo.index)
    plain = Settings(ServerSettings(database=work / "store.sqlite3"), (base,))
    prepare(plain)
    audit = AuditSettings(log=str(work / "audit.log"))
    tls = TlsSettings(certificate=pki.server.cert, key=pki.server.key, client_auth="optional",
                      client_trust_anchors=(pki.anchors,))
    der = request_der(demo.leaves["good"], demo.ca_cert)
    alice = pki.clients["alice"]
    chain = (alice.certificate.public_bytes(serialization.Encoding.DER),
             x509.load_pem_x509_certificate(pki.clients_root.cert.read_bytes()).public_bytes(serialization.Encoding.DER))
    signed = work / "signed.der"
    subprocess.run(["openssl", "ocsp", "-issuer", str(demo.ca_cert), "-cert", str(demo.leaves["good"]), "-no_nonce",
                    "-signer", str(alice.cert), "-signkey", str(alice.key), "-reqout", str(signed)], check=True,
                   capture_output=True)

    remote_folder = work / "remote"
    remote_port = free_port()
    remote = start_server(remote_folder, server_tables(remote_port) + demo_ca_table("demo", demo, crl=pki.crl), port=remote_port)
    forwarded = CaSettings("demo", demo.ca_cert, None, None, forward=(remote.url,))
    scenarios = {
        "plain": (plain, der, {}),
        "audit+metrics": (replace(plain, ops=OperationsSettings(audit=audit)), der, {}),
        "tls by_name": (
            replace(plain, cas=(replace(base, authorization="by_name", authorized_names=("CN=alice,O=Example Partners",)),),
                    ops=OperationsSettings(tls=tls, audit=audit)),
            der, {"tls_client_chain": chain},
        ),
        "signed request": (
            replace(plain, cas=(replace(base, require_signed_requests=True),),
                    ops=OperationsSettings(access=AccessSettings(signer_trust_anchors=(pki.anchors,)), audit=audit)),
            signed.read_bytes(), {},
        ),
        "forward cache hit": (
            Settings(ServerSettings(database=work / "front.sqlite3"), (forwarded,), ops=OperationsSettings(audit=audit)), der, {},
        ),
    }
    try:
        rates: dict[str, list[float]] = {name: [] for name in scenarios}
        applications = {}
        for name, (settings, body, kwargs) in scenarios.items():
            prepare(settings)
            metrics = None if name == "plain" else RequestMetrics()
            applications[name] = build_application(settings, metrics=metrics)
            applications[name].http.handle("POST", b"/", {}, body, "127.0.0.1", **kwargs)  # warm (the forward fetch)
        for _ in range(options.rounds):
            for name, (settings, body, kwargs) in scenarios.items():
                handle = applications[name].http.handle
                rates[name].append(_rate(handle, ("POST", b"/", {}, body, "127.0.0.1"), kwargs, options.seconds))
        plain_us = 1e6 / statistics.median(rates["plain"])
        print(f"{'scenario':<20} {'req/CPU-s':>11} {'CPU µs/req':>11} {'vs plain':>9}")
        for name, values in rates.items():
            rate = statistics.median(values)
            print(f"{name:<20} {rate:>11.0f} {1e6 / rate:>11.1f} {1e6 / rate / plain_us:>8.2f}x")
        for application in applications.values():
            application.close()
    finally:
        remote.stop()


if __name__ == "__main__":
    main()
