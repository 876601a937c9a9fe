"""Many CAs in one configuration: time to listen, worker RSS, and req/s against the same server with one CA.

    flock /work/bench.lock .venv/bin/python bench/many_cas.py [--cas 10000] [--runs 3] [--seconds 10]
        [--dir /tmp/many-cas]   # keep the PKI there and reuse it in the next run (made once per --cas)

Makes ``--cas`` CAs (ECDSA P-256 keys; each CA self-signed, with its own delegated responder
certificate — id-kp-OCSPSigning, id-pkix-ocsp-nocheck, its own key — and its own CRL listing 10
revoked serials) and one ``[ca.caNNNNN]`` table per CA in one certstatus.toml (live mode, the
default; one worker; SQLite store). The one-CA configuration is the first table alone, over a
store of its own.

Figures, medians of ``--runs`` fresh starts of ``certstatus serve --config`` (unpinned, as an
operator starts it; a fresh store per start, so every CRL is imported as at a first start):

* ``socket bound``: seconds from the start until the OCSP port is in LISTEN state (the socket is
  bound before the import);
* ``first answer``: seconds until a POSTed request for the LAST configured CA gets a successful
  OCSP answer (the worker is up and has every CA): the operator's "listening". Target < 60 s.
  Beside it, the CPU seconds the server's processes used until then (steadier than wall time on
  a shared machine: the supervisor and the worker overlap only while the worker starts);
* ``worker RSS``: VmHWM (peak resident set) of the worker after the load below, and of the
  supervisor. Target ≤ 300 MB per worker;
* ``req/s``: wrk -t2 -c64 on core 1, the server on core 0, POST without nonce, 100 000 distinct
  requests rotated (bench/rotate.lua): with many CAs request i asks CA i mod N (spread over every
  CA, a good or revoked serial), with one CA all ask that CA. Live signing (ECDSA P-256, the
  delegated key) per request. Target: the many-CA figure within 10 % of the one-CA figure.

Runs of both configurations alternate. A sample answer per configuration is checked: status
successful, signed by the CA's delegated responder (its certificate embedded).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from common import (
    PYTHON, children, cpu_seconds, free_port, listening, median, median_result, need, peak_rss_mb, request_der, wrk,
)  # fmt: skip

from certstatus.clock import UTC
from certstatus.demo_pki import issue_cert, sign_crl
from certstatus.protocol.certid import issuer_hashes
from certstatus.sources.records import RevokedEntry

REVOKED_PER_CA = 10
REQUESTS = 100_000


def make_cas(folder: Path, count: int) -> list[tuple[bytes, bytes, list[int]]]:
    """Write ``count`` CAs under ``folder`` (kept: reused when already there); return per CA its SHA-1
    issuerNameHash, issuerKeyHash and revoked serials, and write ``folder/cas.toml`` (the TOML tables)."""
    marker = folder / f"made-{count}"
    now = dt.datetime.now(UTC).replace(microsecond=0)
    cas = []
    tables = []
    reused = marker.exists()
    started = time.perf_counter()
    for i in range(count):
        name = f"ca{i:05d}"
        ca_path, crl_path = folder / f"{name}.pem", folder / f"{name}.crl"
        signer_path, key_path = folder / f"{name}-ocsp.pem", folder / f"{name}-ocsp.key"
        rng = random.Random(i)
        revoked = [rng.getrandbits(63) | (1 << 62) for _ in range(REVOKED_PER_CA)]
        if reused:
            ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        else:
            ca_key = ec.generate_private_key(ec.SECP256R1())
            signer_key = ec.generate_private_key(ec.SECP256R1())
            ca = issue_cert(None, ca_key, ca_key.public_key(), common_name=f"bench CA {i}",
                            not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=3650), ca=True)
            signer = issue_cert(ca, ca_key, signer_key.public_key(), common_name=f"bench CA {i} OCSP",
                                not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=365),
                                ocsp_signing=True)  # fmt: skip
            entries = [RevokedEntry(serial, now - dt.timedelta(days=2), x509.ReasonFlags.key_compromise, None)
                       for serial in revoked]  # fmt: skip
            crl = sign_crl(ca, ca_key, entries, crl_number=1, this_update=now - dt.timedelta(hours=1),
                           next_update=now + dt.timedelta(days=30))  # fmt: skip
            ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
            signer_path.write_bytes(signer.public_bytes(serialization.Encoding.PEM))
            key_path.write_bytes(signer_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))  # fmt: skip
            key_path.chmod(0o600)
            crl_path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
        cas.append((*issuer_hashes(ca, "sha1"), revoked))
        tables.append(f'\n[ca.{name}]\ncertificate = "{ca_path}"\nsigner_certificate = "{signer_path}"\n'
                      f'signer_key = "{key_path}"\ncrl = ["{crl_path}"]\n')  # fmt: skip
        if (i + 1) % 1000 == 0:
            print(f"  {'read' if reused else 'made'} {i + 1}/{count} CAs ({time.perf_counter() - started:.0f} s)",
                  flush=True)  # fmt: skip
    (folder / "cas.toml").write_text("".join(tables))
    marker.touch()
    return cas


def write_requests(path: Path, cas: list[tuple[bytes, bytes, list[int]]]) -> Path:
    """REQUESTS POST requests for rotate.lua: request i asks CA i mod len(cas); every tenth a revoked serial."""
    rng = random.Random(6960)
    with open(path, "wb") as out:
        for i in range(REQUESTS):
            name_hash, key_hash, revoked = cas[i % len(cas)]
            serial = revoked[i % REVOKED_PER_CA] if i % 10 == 0 else rng.getrandbits(63) | (1 << 62)
            der = request_der(name_hash, key_hash, serial)
            out.write(f"POST / {len(der)}\n".encode() + der + b"\n")
    return path


def config_text(folder: Path, port: int, tables: str, store: Path) -> str:
    return (f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\ndatabase = "{store}"\n' + tables)


def ask(port: int, der: bytes) -> bytes | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=der,
                                     headers={"Content-Type": "application/ocsp-request"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.read()
    except OSError:
        return None


def check_answer(body: bytes, serial: int, revoked: bool) -> None:
    """Exit unless ``body`` is a successful OCSP answer for ``serial`` with the expected status, signed by a delegated
    responder whose certificate it carries."""
    answer = ocsp.load_der_ocsp_response(body)
    if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise SystemExit(f"answer for {serial:x}: {answer.response_status}")
    want = ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD
    if answer.serial_number != serial or answer.certificate_status != want or not answer.certificates:
        raise SystemExit(f"answer for {serial:x}: {answer.certificate_status}, {len(answer.certificates)} certificates")


def start_run(folder: Path, name: str, tables: str, last: tuple[bytes, bytes, list[int]], log: Path):
    """Start serve on a fresh store; return (process, port, seconds to bound socket, seconds to first answer,
    CPU seconds its processes used until then)."""
    port = free_port()
    store = folder / f"store-{name}.sqlite3"
    for stale in folder.glob(f"store-{name}.sqlite3*"):
        stale.unlink()
    config = folder / f"certstatus-{name}.toml"
    config.write_text(config_text(folder, port, tables, store))
    der = request_der(last[0], last[1], last[2][0])
    out = open(log, "wb")
    started = time.perf_counter()
    process = subprocess.Popen([PYTHON, "-m", "certstatus", "serve", "--config", str(config)],
                               stdout=out, stderr=subprocess.STDOUT, process_group=0)  # fmt: skip
    bound = None
    while True:
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}; see {log}")
        if bound is None and listening(port):
            bound = time.perf_counter() - started
        if bound is not None and (body := ask(port, der)) is not None:
            answered = time.perf_counter() - started
            cpu = cpu_seconds(process.pid)
            check_answer(body, last[2][0], revoked=True)
            return process, port, bound, answered, cpu
        if time.perf_counter() - started > 1800:
            raise SystemExit(f"serve did not answer in 30 minutes; see {log}")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cas", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--dir", type=Path, help="keep the PKI here and reuse it (default: a temporary folder)")
    parser.add_argument("--startup-only", action="store_true", help="measure start-up and RSS, no wrk load")
    args = parser.parse_args()
    need("wrk", "taskset")
    folder = args.dir or Path(tempfile.mkdtemp(prefix="certstatus-many-cas-"))
    pki = folder / f"pki-{args.cas}"
    pki.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"== {args.cas} CAs, each with a delegated responder and a CRL (ECDSA P-256) ==", flush=True)
    cas = make_cas(pki, args.cas)
    print(f"# PKI ready in {time.perf_counter() - started:.1f} s ({pki})", flush=True)
    tables = (pki / "cas.toml").read_text()
    one_table = tables.split("\n[ca.", 2)[1]
    setups = {
        "1 CA": ("\n[ca." + one_table, cas[0], write_requests(folder / "requests-1.txt", cas[:1])),
        f"{args.cas} CAs": (tables, cas[-1], write_requests(folder / f"requests-{args.cas}.txt", cas)),
    }
    results: dict[str, dict[str, list]] = {name: {"bound": [], "answered": [], "cpu": [], "rss": [], "sup": [], "load": []}
                                           for name in setups}  # fmt: skip
    for run in range(args.runs):
        for name, (text, last, requests) in setups.items():
            log = folder / f"serve-{name.replace(' ', '')}.log"
            process, port, bound, answered, cpu = start_run(folder, name.replace(" ", ""), text, last, log)
            try:
                workers = [pid for pid in children(process.pid)
                           if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # fmt: skip
                line = (f"run {run + 1} {name:>9}: socket bound {bound:6.2f} s, first answer {answered:6.2f} s "
                        f"({cpu:.1f} CPU-s)")  # fmt: skip
                if not args.startup_only:
                    for pid in [process.pid, *workers]:  # started unpinned; loaded on core 0 as the others
                        subprocess.run(["taskset", "-a", "-p", "-c", "0", str(pid)], capture_output=True, check=True)
                    result = wrk(port, requests, seconds=args.seconds, server_pid=process.pid)
                    results[name]["load"].append(result)
                    line += f", {result}"
                rss = [peak_rss_mb(pid) for pid in workers]
                supervisor = peak_rss_mb(process.pid)
                results[name]["rss"].append(max(rss) if rss else 0.0)
                results[name]["sup"].append(supervisor)
                line += f", worker peak RSS {' / '.join(f'{r:.0f}' for r in rss)} MB, supervisor {supervisor:.0f} MB"
                results[name]["bound"].append(bound)
                results[name]["answered"].append(answered)
                results[name]["cpu"].append(cpu)
                print(line, flush=True)
            finally:
                stop(process)
    print(f"== medians of {args.runs} runs ==")
    for name, figures in results.items():
        line = (f"{name:>9}: socket bound {median(figures['bound']):.2f} s, first answer "
                f"{median(figures['answered']):.2f} s ({median(figures['cpu']):.1f} CPU-s), worker peak RSS {median(figures['rss']):.0f} MB, "
                f"supervisor {median(figures['sup']):.0f} MB")  # fmt: skip
        if figures["load"]:
            line += f", {median_result(figures['load'])}"
        print(line)
    many = results[f"{args.cas} CAs"]
    print(f"time to first answer with {args.cas} CAs = {median(many['answered']):.1f} s   target < 60   "
          f"({median(many['cpu']):.1f} CPU-seconds of its processes until then)")
    print(f"worker peak RSS with {args.cas} CAs     = {median(many['rss']):.0f} MB  target <= 300")
    if many["load"]:
        ratio = median_result(many["load"]).rps / median_result(results["1 CA"]["load"]).rps
        per_cpu = (median_result(many["load"]).per_cpu_second
                   / max(median_result(results["1 CA"]["load"]).per_cpu_second, 1e-9))  # fmt: skip
        print(f"req/s {args.cas} CAs / 1 CA             = {ratio:.2f} (per CPU-second {per_cpu:.2f})  target >= 0.90")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f})")
    if args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
