"""Overload: does a 1-worker certstatus keep its goodput at 4x the request rate it can sustain?

Usage (one benchmark at a time):
    .venv/bin/python bench/overload.py [--runs 3] [--seconds 10] [--calls 10]
        [--factor 4]

What it does, per run, against one worker pinned to core 0, live mode with an
ECDSA P-256 signer (every answer signed on the spot: the CPU-bound case;
precomputed answers are ~10x cheaper and leave the edge as the bottleneck):

1. peak: closed-loop ``wrk -c64`` keep-alive for --seconds → P req/s (with
   ``--calls 1``: ``Connection: close``, a new TCP connection per request).
2. overload: ``h2load`` in rate mode offers 4 x P requests per second for
   --seconds, open loop: they arrive as P x 4 / --calls new connections per
   second making --calls GETs each, one after the other (httperf's session
   model; default 10 calls). Arrivals follow the clock whatever the server
   answers; a connection refused for overload gets one 503 and makes no more
   calls. The server runs with its default limits (``max_connections = 1000``,
   ``client_timeout = 10``).
3. correctness: during the overload a checker (a thread here, on core 1)
   sends 50 requests/s of distinct serials whose status is known (good,
   revoked, unknown to the index) and checks every answer: a 200 must be a
   successful OCSP response for that serial with the expected certStatus and
   a signature that verifies with the delegated responder's key; a 503 must
   carry the OCSP tryLater body. Anything else answered is a *wrong answer*.

Printed per run and as medians: P, goodput under overload (successful answers
per second counted by the server, from its admin /metrics), goodput / P
(target >= 0.90), the same per server CPU-second, the share of 503 tryLater among the answers,
the share of requests offered that got no HTTP answer (later calls of a
refused connection, connections closed at once or never accepted in time),
and wrong answers (target 0).
h2load and wrk run on core 1, the server on core 0; load average is printed.
"""

from __future__ import annotations

import base64
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

import httpx
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from common import (
    LOAD_CPU, certstatus_command, cpu_seconds, free_port, import_store, load_arguments, make_fixture, median, need,
    port_config, request_der, server, taskset, wrk, write_requests,
)
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from certstatus.protocol.certid import issuer_hashes
from certstatus.signing.keys import load_certificates

FACTOR = 4
CHECK_RATE = 50  # checker requests per second
EXPECTED_NAMES = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
                  "unknown": ocsp.OCSPCertStatus.UNKNOWN}


@dataclass
class Checked:
    """What the checker saw: answers by kind, and the wrong ones described."""

    ok: int = 0
    try_later: int = 0
    unanswered: int = 0
    wrong: list[str] = field(default_factory=list)


class Checker:
    """Sends CHECK_RATE requests/s of known serials on new connections and checks every answer."""

    def __init__(self, port: int, fixture, unknown: list[int]) -> None:
        self.port = port
        ca = load_certificates(fixture.pki.ca_cert)[0]
        self.name_hash, self.key_hash = issuer_hashes(ca, "sha1")
        self.responder_key = x509.load_pem_x509_certificate(fixture.pki.ocsp_cert.read_bytes()).public_key()
        # make_fixture revokes every 100th serial of its list
        revoked = fixture.serials[::100]
        good = [s for i, s in enumerate(fixture.serials) if i % 100]
        rng = random.Random(9919)
        self.cases = [(s, "revoked") for s in revoked] + [(s, "good") for s in rng.sample(good, len(revoked))] + [
            (s, "unknown") for s in unknown]
        rng.shuffle(self.cases)
        self.result = Checked()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Checked:
        self._stop.set()
        self._thread.join(30)
        return self.result

    def _run(self) -> None:
        index = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            serial, expected = self.cases[index % len(self.cases)]
            index += 1
            self._check(serial, expected)
            next_at += 1 / CHECK_RATE
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _check(self, serial: int, expected: str) -> None:
        der = request_der(self.name_hash, self.key_hash, serial)
        path = "/" + quote(base64.b64encode(der).decode(), safe="")
        try:
            status, body = _get(self.port, path)
        except OSError:
            self.result.unanswered += 1
            return
        problem = self._problem(status, body, serial, expected)
        if problem is None:
            if status == 200:
                self.result.ok += 1
            else:
                self.result.try_later += 1
        else:
            self.result.wrong.append(f"serial {serial:x} ({expected}): {problem}")

    def _problem(self, status: int, body: bytes, serial: int, expected: str) -> str | None:
        try:
            response = ocsp.load_der_ocsp_response(body)
        except ValueError:
            return f"HTTP {status} without an OCSP body: {body[:60]!r}"
        if status == 503:
            ok = response.response_status is ocsp.OCSPResponseStatus.TRY_LATER
            return None if ok else f"503 with {response.response_status.name}"
        if status != 200 or response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return f"HTTP {status}, {response.response_status.name}"
        if response.serial_number != serial:
            return f"answer for serial {response.serial_number:x}"
        if response.certificate_status is not EXPECTED_NAMES[expected]:
            return f"certStatus {response.certificate_status.name}"
        try:
            self.responder_key.verify(response.signature, response.tbs_response_bytes,
                                      ec.ECDSA(response.signature_hash_algorithm))
        except Exception as exc:  # noqa: BLE001 - any failure is a wrong answer
            return f"signature does not verify: {exc!r}"
        return None


def _get(port: int, path: str, timeout: float = 15.0) -> tuple[int, bytes]:
    """One GET on a new connection (Connection: close); (status, body). Raises OSError if unanswered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ConnectionError(f"no HTTP response: {data[:60]!r}")
    return int(head.split()[1]), body


@dataclass
class Offered:
    """h2load's figures for the open-loop part."""

    seconds: float
    total: int
    ok_2xx: int
    status_5xx: int
    other: int
    failed: int


TOKEN = "overload-bench-admin-token-0123456789"


def successful_answers(admin_port: int) -> float:
    """certstatus_requests_total{response_status="successful"} summed over the workers (admin /metrics)."""
    reply = httpx.get(f"http://127.0.0.1:{admin_port}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    reply.raise_for_status()
    return sum(float(line.rsplit(" ", 1)[1]) for line in reply.text.splitlines()
               if line.startswith("certstatus_requests_total{") and 'response_status="successful"' in line)


def h2load(port: int, uris: Path, rate: int, seconds: int, admin_port: int, calls: int,
           server_pid: int) -> tuple[Offered, float, float]:
    """Open loop: ``rate`` requests per second for ``seconds``, arriving as ``rate / calls`` new
    connections per second that make ``calls`` GETs each, one after the other (h2load rate mode).

    Returns h2load's figures and the server's goodput: successful answers per second counted by the
    server itself from 1 s after the start to 1 s before the end of the offered load (h2load's own
    duration includes waiting for the connections that timed out), and per CPU-second of the server.
    """
    connections = rate * seconds // calls
    per_tick = max(1, round(rate / calls / 100))  # every 10 ms: arrivals spread over each second
    command = taskset(LOAD_CPU, [
        "h2load", "--h1", "-t1", f"-c{connections}", f"-n{connections * calls}", f"-r{per_tick}",
        "--rate-period=10ms", "-N10s", "-T20s", "-i", str(uris),
    ])  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)
    before, started_at, cpu_before = successful_answers(admin_port), time.monotonic(), cpu_seconds(server_pid)
    time.sleep(seconds - 2.0)
    after, ended_at, cpu_after = successful_answers(admin_port), time.monotonic(), cpu_seconds(server_pid)
    output = process.communicate(timeout=seconds + 120)[0]
    goodput = (after - before) / (ended_at - started_at)
    per_cpu = (after - before) / (cpu_after - cpu_before) if cpu_after > cpu_before else 0.0
    finished = re.search(r"finished in ([\d.]+)(m?s)", output)
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                         r"(\d+) errored, (\d+) timeout", output)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    if not (finished and requests and codes):
        raise RuntimeError(f"h2load printed no result:\n{output}")
    print("  h2load: " + " | ".join(line.strip() for line in output.splitlines()
                                    if line.startswith(("finished", "requests:", "status codes:"))), flush=True)
    duration = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    total = int(requests.group(1))
    ok, c3, c4, c5 = (int(v) for v in codes.groups())
    # Requests offered that got no HTTP answer: the later calls of a refused or reset connection, timeouts.
    return Offered(duration, total, ok, c5, c3 + c4, total - (ok + c3 + c4 + c5)), goodput, per_cpu


def unknown_serials(fixture, count: int) -> list[int]:
    known = set(fixture.serials)
    rng = random.Random(2560)
    found = []
    while len(found) < count:
        serial = rng.getrandbits(127) | (1 << 126)
        if serial not in known:
            found.append(serial)
    return found


def uri_file(fixture, port: int, path: Path, count: int = 1000) -> Path:
    """GET URIs for h2load (each connection takes the first of its list: one serial per run is fine
    in live mode, where every answer is signed)."""
    ca = load_certificates(fixture.pki.ca_cert)[0]
    name_hash, key_hash = issuer_hashes(ca, "sha1")
    rng = random.Random(1)
    lines = []
    for serial in rng.sample(fixture.serials, count):
        der = request_der(name_hash, key_hash, serial)
        lines.append(f"http://127.0.0.1:{port}/{quote(base64.b64encode(der).decode(), safe='')}")
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = load_arguments(__doc__)
    parser.add_argument("--calls", type=int, default=10,
                        help="requests per connection in the open-loop part (1: a new connection per request)")
    parser.add_argument("--factor", type=float, default=FACTOR, help="offered rate / peak")
    parser.set_defaults(count=20_000)
    args = parser.parse_args()
    need("wrk", "h2load", "taskset")
    os.sched_setaffinity(0, {int(LOAD_CPU)})  # the checker thread runs here, beside the load generators
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="certstatus-overload-") as tmp:
        fixture = make_fixture(Path(tmp) / "live-ec", "ec", args.count, workers=1)
        import_store(fixture)
        port = free_port()
        config = port_config(fixture, port, 1)
        admin_port = free_port()
        token = Path(tmp) / "admin.token"
        token.write_text(TOKEN + "\n")
        token.chmod(0o600)
        config.write_text(config.read_text() + f'\n[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken_file = "{token}"\n')
        requests_file = write_requests(fixture, Path(tmp) / "get.txt", method="GET", nonce=False)
        uris = uri_file(fixture, port, Path(tmp) / "uris.txt")
        unknown = unknown_serials(fixture, 200)
        rows = []
        for run in range(1, args.runs + 1):
            with server(certstatus_command(config), port) as process:
                peak = wrk(port, requests_file, seconds=args.seconds, close=args.calls == 1, server_pid=process.pid)
                rate = max(1, round(peak.rps * args.factor / 100)) * 100
                print(f"run {run}: peak {peak.rps:7.0f} req/s; offering {rate} req/s open loop as "
                      f"{rate / args.calls:.0f} connections/s of {args.calls} requests for {args.seconds} s", flush=True)
                checker = Checker(port, fixture, unknown)
                checker.start()
                offered, goodput, per_cpu = h2load(port, uris, rate, args.seconds, admin_port, args.calls, process.pid)
                checked = checker.stop()
            answered = offered.ok_2xx + offered.status_5xx + offered.other
            row = {
                "peak": peak.rps, "offered": rate, "goodput": goodput,
                "ratio": goodput / peak.rps,
                "cpu_ratio": per_cpu / peak.per_cpu_second if peak.per_cpu_second else 0.0,
                "try_later": offered.status_5xx / answered if answered else 0.0,
                "failed": offered.failed / offered.total if offered.total else 0.0,
                "other": offered.other, "wrong": len(checked.wrong), "checked": checked,
            }
            rows.append(row)
            print(f"run {run}: goodput {goodput:7.0f} req/s = {row['ratio']:.2f} x peak "
                  f"({row['cpu_ratio']:.2f} per server CPU-second); "
                  f"503 tryLater {row['try_later']:.1%} of answers; unanswered {row['failed']:.1%} of "
                  f"requests offered; other statuses {offered.other}; checker: {checked.ok} correct, "
                  f"{checked.try_later} tryLater, {checked.unanswered} unanswered, {len(checked.wrong)} WRONG",
                  flush=True)
            for line in checked.wrong[:10]:
                print(f"  wrong: {line}")
        load = os.getloadavg()
        print(f"\noverload (bench/overload.py --calls {args.calls} --factor {args.factor:g}; "
              f"1 worker, live ECDSA P-256, {args.runs} runs of {args.seconds} s, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}): medians")
        regime = "a new connection per request" if args.calls == 1 else "keep-alive"
        print(f"  peak (closed loop, wrk -c64, {regime:>28}) {median(r['peak'] for r in rows):9.0f} req/s")
        print(f"  offered (open loop, h2load, {args.factor:g}x, {args.calls} per connection) "
              f"{median(r['offered'] for r in rows):9.0f} req/s")
        print(f"  goodput under overload (server's count)       {median(r['goodput'] for r in rows):9.0f} req/s")
        print(f"  goodput / peak                                {median(r['ratio'] for r in rows):9.2f}   (target >= 0.90)")
        print(f"  goodput / peak per server CPU-second          {median(r['cpu_ratio'] for r in rows):9.2f}   "
              "(steadier on a shared machine)")
        print(f"  503 tryLater share of answers                 {median(r['try_later'] for r in rows):9.1%}")
        print(f"  requests offered without an HTTP answer       {median(r['failed'] for r in rows):9.1%}")
        print(f"  wrong answers (checker, all runs)             {sum(r['wrong'] for r in rows):9d}   (target 0)")
        met = median(r["ratio"] for r in rows) >= 0.9 and sum(r["wrong"] for r in rows) == 0
        print("  target met" if met else "  TARGET NOT MET")
        return 0 if sum(r["wrong"] for r in rows) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
