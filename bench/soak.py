"""Soak: a real ``certstatus serve`` at half its peak rate for --minutes, every answer checked, worker RSS sampled.

One server (2 workers by default) serves three CAs, one per mode — ``live``
(/live), ``precomputed`` (/pre) and ``cached`` (/cached) — each a demo PKI
(ECDSA P-256) with an index.txt of --serials certificates, 30 % revoked
(keyCompromise). Traffic, in shuffled order over a fixed population: per CA
40 % good, 30 % revoked, 15 % never issued (unknown), 15 % malformed (garbage,
truncated DER, an OCSP response instead of a request, an empty body); a
fifth of the well-formed ones by GET, a tenth with a nonce. The status each
request must get is known in advance.

1. Peak, closed loop, 64 connections, --peak-seconds each: wrk on the
   well-formed POSTs, then this script's client on the whole mix, checking
   every answer. The peak is the lower of the two: on a 2-core machine the
   client shares the cores with the server, and checking answers in Python
   costs more than wrk, so the client's own figure is the one it can reach.
2. Soak: an open-loop client (asyncio + uvloop, --connections keep-alive
   connections) sends at --fraction × peak (default 50 %) for --minutes. Why
   not wrk: wrk is closed-loop — each connection sends when the previous
   answer came back, so it cannot hold a fixed rate, and a stall of the
   server lowers the load it gets (coordinated omission). Here a clock
   schedules each request at t0 + i / rate whatever the answers do; a request
   waits for a free connection when all are busy, and its latency counts
   from its scheduled time. (wrk with fewer connections and a Lua delay would
   pace per connection, still closed-loop, and wrk's Lua ``response()`` does
   not say which request an answer belongs to, so answers could not all be
   checked.)
3. Every answer is checked: HTTP 200 and ``application/ocsp-response``; a
   malformed request must get exactly malformedRequest (``30 03 0a 01 01``);
   a well-formed one a successful response whose SingleResponse for the
   request's CertID (found byte for byte) has the expected certStatus tag
   (good ``80``, revoked ``a1``, unknown ``82``). Every 200th answer is also
   parsed by ``cryptography`` and its signature verified with the CA's
   responder certificate. Anything else is "wrong"; no answer (connection
   error, timeout) is "failed".
4. RSS (VmRSS from /proc) of the supervisor and every child process, every
   5 s. Growth = median of the last 30 s against the median of the 30 s after
   warm-up (--warmup, default a tenth of the run, at least 20 s).

Exit status 1 when an answer was wrong or failed, or a worker's RSS grew 5 %
or more.

    .venv/bin/python bench/soak.py                 # 10 minutes
    .venv/bin/python bench/soak.py --minutes 1     # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from common import certstatus_command, free_port, need, request_der, server, wrk  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402

from certstatus.demo_pki import make_demo_pki  # noqa: E402
from certstatus.protocol.certid import issuer_hashes  # noqa: E402
from certstatus.signing.keys import load_certificates  # noqa: E402

MODES = {"live": "/live", "precomputed": "/pre", "cached": "/cached"}
STATUS_TAG = {"good": 0x80, "revoked": 0xA1, "unknown": 0x82}
MALFORMED = b"\x30\x03\x0a\x01\x01"


@dataclass(frozen=True)
class Planned:
    """One request: its HTTP bytes, the CA mode, the answer it must get, the CertID to find in it."""

    raw: bytes
    mode: str
    kind: str  # good | revoked | unknown | malformed
    cert_id: bytes = b""


@dataclass
class Tally:
    answers: Counter = field(default_factory=Counter)  # (mode, kind) -> count
    wrong: list[str] = field(default_factory=list)
    wrong_count: int = 0
    failed: int = 0
    verified: int = 0
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    late: int = 0  # requests that waited > 1 s for a free connection

    def bad(self, text: str) -> None:
        self.wrong_count += 1
        if len(self.wrong) < 20:
            self.wrong.append(text)


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + n.to_bytes(size, "big") + content


def build_world(folder: Path, serials: int, workers: int, port: int) -> tuple[Path, dict[str, object]]:
    """Three demo PKIs with index files, a config serving one per mode; returns (config, pkis by mode)."""
    rng = random.Random(20261121)
    expiry = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=90)).strftime("%y%m%d%H%M%SZ")
    revoked_at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).strftime("%y%m%d%H%M%SZ")
    tables = []
    pkis = {}
    for mode, path in MODES.items():
        pki = make_demo_pki(folder / mode, key_type="ec")
        population = {}
        while len(population) < serials:
            population[rng.getrandbits(120) | (1 << 119)] = "revoked" if rng.random() < 0.3 else "good"
        lines = [
            f"R\t{expiry}\t{revoked_at},keyCompromise\t{s:030X}\tunknown\t/CN=s{s:x}\n" if k == "revoked"
            else f"V\t{expiry}\t\t{s:030X}\tunknown\t/CN=s{s:x}\n"
            for s, k in population.items()
        ]  # fmt: skip
        index = folder / f"{mode}-index.txt"
        index.write_text("".join(lines))
        pkis[mode] = (pki, population)
        tables.append(
            f'[ca.{mode}]\ncertificate = "{pki.ca_cert}"\nindex = "{index}"\npath = "{path}"\n'
            f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\nmode = "{mode}"\n'
        )
    config = folder / "certstatus.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = {workers}\n'
        f'database = "{folder / "store.sqlite3"}"\ncommon_path = ""\n\n' + "\n".join(tables)
    )
    return config, pkis


def plan_requests(pkis: dict, count: int, seed: int = 6960) -> list[Planned]:
    """``count`` requests per CA in the mix of the module docstring, shuffled."""
    rng = random.Random(seed)
    planned = []
    for mode, (pki, population) in pkis.items():
        path = MODES[mode]
        name_hash, key_hash = issuer_hashes(load_certificates(pki.ca_cert)[0], "sha1")
        goods = [s for s, k in population.items() if k == "good"]
        revoked = [s for s, k in population.items() if k == "revoked"]
        for _ in range(count):
            draw = rng.random()
            if draw < 0.15:
                body = rng.choice((
                    rng.randbytes(rng.randrange(1, 120)),
                    request_der(name_hash, key_hash, rng.choice(goods))[: rng.randrange(2, 40)],
                    b"\x30\x03\x0a\x01\x01",  # an OCSP response, not a request
                    b"\x30\x00",
                    b"",
                ))  # fmt: skip
                planned.append(Planned(_post(path, body), mode, "malformed"))
                continue
            if draw < 0.55:
                kind, serial = "good", rng.choice(goods)
            elif draw < 0.85:
                kind, serial = "revoked", rng.choice(revoked)
            else:
                kind, serial = "unknown", rng.getrandbits(120) | (1 << 118)
            nonce = rng.randbytes(16) if rng.random() < 0.1 else None
            der = request_der(name_hash, key_hash, serial, nonce)
            cert_id = _cert_id_of(der)
            raw = _get(path, der) if rng.random() < 0.2 else _post(path, der)
            planned.append(Planned(raw, mode, kind, cert_id))
    rng.shuffle(planned)
    return planned


def _cert_id_of(request: bytes) -> bytes:
    """The CertID TLV of a one-CertID request from bench.common.request_der (fixed layout)."""
    # OCSPRequest SEQ > TBSRequest SEQ > requestList SEQ > Request SEQ > CertID SEQ: skip four headers.
    at = 0
    for _ in range(4):
        at += 2 if request[at + 1] < 0x80 else 2 + (request[at + 1] & 0x7F)
    length = request[at + 1]
    assert length < 0x80
    return request[at : at + 2 + length]


def _post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocsp-request\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip


def _get(path: str, der: bytes) -> bytes:
    return f"GET {path}/{base64.b64encode(der).decode()} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def wrk_file(planned: list[Planned], path: Path) -> Path:
    """The well-formed POSTs of the plan in rotate.lua's format (for the peak)."""
    with open(path, "wb") as out:
        for p in planned:
            if p.kind != "malformed" and p.raw.startswith(b"POST"):
                head, body = p.raw.split(b"\r\n\r\n", 1)
                out.write(f"POST {head.split()[1].decode()} {len(body)}\n".encode() + body + b"\n")
    return path


# --- checking answers ---------------------------------------------------------------------------


class Checker:
    def __init__(self, pkis: dict) -> None:
        self.keys = {mode: x509.load_pem_x509_certificate(pki.ocsp_cert.read_bytes()).public_key() for mode, (pki, _) in pkis.items()}
        self.count = 0

    def check(self, planned: Planned, status: int, headers: bytes, body: bytes, tally: Tally) -> None:
        label = f"{planned.mode}/{planned.kind}"
        if status != 200 or b"application/ocsp-response" not in headers.lower():
            tally.bad(f"{label}: HTTP {status} {headers[:80]!r} {body[:40]!r}")
            return
        if planned.kind == "malformed":
            if body != MALFORMED:
                tally.bad(f"{label}: answered {body[:20].hex()} instead of malformedRequest")
                return
        else:
            at = body.find(planned.cert_id)
            if at < 0 or body[at + len(planned.cert_id)] != STATUS_TAG[planned.kind]:
                tally.bad(f"{label}: CertID not answered with {planned.kind} ({body[:16].hex()}...)")
                return
            self.count += 1
            if self.count % 200 == 0:
                self.verify(planned, body, tally)
        tally.answers[(planned.mode, planned.kind)] += 1

    def verify(self, planned: Planned, body: bytes, tally: Tally) -> None:
        """Full parse with cryptography and signature verification (a sample)."""
        try:
            answer = ocsp.load_der_ocsp_response(body)
            self.keys[planned.mode].verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm))
            if answer.certificate_status.name.lower() != planned.kind:
                raise ValueError(f"certStatus {answer.certificate_status}")
            tally.verified += 1
        except Exception as exc:  # noqa: BLE001 - any failure is a wrong answer
            tally.bad(f"{planned.mode}/{planned.kind}: full check failed: {type(exc).__name__}: {exc}")


# --- open-loop client ---------------------------------------------------------------------------

TIMEOUT = 10.0  # seconds an answer may take before it counts as failed


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request in flight; answers are parsed as they arrive."""

    def __init__(self, client: "Client") -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.item: tuple[Planned, float] | None = None
        self.sent_at = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, item: tuple[Planned, float]) -> None:
        self.item = item
        self.sent_at = time.monotonic()
        self.transport.write(item[0].raw)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.item is None:
            return
        head = self.buffer[:end]
        length = 0
        at = head.lower().find(b"content-length:")
        if at >= 0:
            length = int(head[at + 15 :].split(b"\r\n", 1)[0])
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        (planned, scheduled), self.item = self.item, None
        self.client.answered(planned, scheduled, int(head[9:12]), head, body)
        if b"connection: close" in head.lower():
            self.transport.close()
        else:
            self.client.free(self)

    def connection_lost(self, exc) -> None:
        self.client.lost(self)


class Client:
    """Sends the plan over ``connections`` connections: at a fixed rate (open loop) or as fast as answered."""

    def __init__(self, port: int, planned: list[Planned], checker: Checker, tally: Tally, connections: int) -> None:
        self.port = port
        self.planned = planned
        self.checker = checker
        self.tally = tally
        self.connections = connections
        self.index = 0
        self.idle: deque[Connection] = deque()
        self.backlog: deque[tuple[Planned, float]] = deque()
        self.open: set[Connection] = set()
        self.closed_loop = False

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        while len(self.open) < self.connections:
            _transport, connection = await loop.create_connection(lambda: Connection(self), "127.0.0.1", self.port)
            self.open.add(connection)
            self.free(connection)

    def next_item(self, scheduled: float) -> tuple[Planned, float]:
        planned = self.planned[self.index]
        self.index = (self.index + 1) % len(self.planned)
        self.tally.sent += 1
        return planned, scheduled

    def submit(self, item: tuple[Planned, float]) -> None:
        if self.idle:
            self.idle.popleft().send(item)
        else:
            self.backlog.append(item)

    def free(self, connection: Connection) -> None:
        if self.closed_loop:
            connection.send(self.next_item(time.monotonic()))
        elif self.backlog:
            connection.send(self.backlog.popleft())
        else:
            self.idle.append(connection)

    def answered(self, planned: Planned, scheduled: float, status: int, head: bytes, body: bytes) -> None:
        latency = time.monotonic() - scheduled
        self.tally.latencies.append(latency)
        if latency > 1.0:
            self.tally.late += 1
        self.checker.check(planned, status, head, body, self.tally)

    def lost(self, connection: Connection) -> None:
        self.open.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.item is not None:
            planned = connection.item[0]
            self.tally.failed += 1
            if len(self.tally.wrong) < 20:
                self.tally.wrong.append(f"{planned.mode}/{planned.kind}: connection lost before the answer")
            connection.item = None
        asyncio.get_running_loop().create_task(self.connect())

    def watchdog(self) -> None:
        """Abort connections whose answer is overdue (counted failed by :meth:`lost`)."""
        now = time.monotonic()
        for connection in list(self.open):
            if connection.item is not None and now - connection.sent_at > TIMEOUT:
                connection.transport.abort()

    def busy(self) -> int:
        return len(self.backlog) + sum(c.item is not None for c in self.open)

    async def drain(self, limit: float = 30.0) -> None:
        deadline = time.monotonic() + limit
        while self.busy() and time.monotonic() < deadline:
            self.watchdog()
            await asyncio.sleep(0.01)
        for connection in list(self.open):
            connection.transport.close()


async def closed_loop_peak(client: Client, seconds: float) -> float:
    """Answers per second with every connection sending again as soon as answered (closed loop)."""
    await client.connect()
    before = sum(client.tally.answers.values()) + client.tally.wrong_count
    client.closed_loop = True
    started = time.monotonic()
    for connection in list(client.idle):
        client.idle.remove(connection)
        client.free(connection)
    while time.monotonic() - started < seconds:
        client.watchdog()
        await asyncio.sleep(0.05)
    client.closed_loop = False
    answered = sum(client.tally.answers.values()) + client.tally.wrong_count - before
    elapsed = time.monotonic() - started
    await client.drain()
    return answered / elapsed


async def open_loop(client: Client, rate: float, seconds: float, progress) -> None:
    """Send at ``rate`` for ``seconds`` (request i at t0 + i / rate), then wait for the last answers."""
    await client.connect()
    started = time.monotonic()
    sent = 0
    next_report = started + 10
    next_watch = started + 1
    while True:
        now = time.monotonic()
        if now - started >= seconds:
            break
        due = int((now - started) * rate)
        while sent < due:
            client.submit(client.next_item(started + sent / rate))
            sent += 1
        if now >= next_watch:
            client.watchdog()
            next_watch += 1
        if now >= next_report:
            progress(now - started, len(client.backlog))
            next_report += 10
        await asyncio.sleep(0.002)
    await client.drain()


# --- RSS ----------------------------------------------------------------------------------------


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def processes(root: int) -> dict[int, str]:
    """The server's processes: pid -> short name (supervisor, worker-N, other child)."""
    found = {root: "supervisor"}
    pending = [root]
    while pending:
        pid = pending.pop()
        try:
            kids = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                cmdline = Path(f"/proc/{kid}/cmdline").read_bytes()
            except OSError:
                continue
            try:
                nice = int(Path(f"/proc/{kid}/stat").read_text().rsplit(")", 1)[1].split()[16])
            except (OSError, IndexError, ValueError):
                continue
            if b"resource_tracker" in cmdline:
                name = "resource-tracker"
            elif nice > 0:
                name = "generator"  # the background generator runs at nice 10 (generator/schedule.py)
            elif b"spawn_main" in cmdline or b"multiprocessing" in cmdline:
                name = "worker"
            else:
                name = "child"
            found[kid] = name
            pending.append(kid)
    return found


class RssSampler(threading.Thread):
    def __init__(self, root: int, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.every = every
        self.samples: list[tuple[float, dict[int, tuple[str, int]]]] = []
        self.halt = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.halt.is_set():
            sample = {}
            for pid, name in processes(self.root).items():
                kb = rss_kb(pid)
                if kb is not None:
                    sample[pid] = (name, kb)
            self.samples.append((time.monotonic() - self.started, sample))
            self.halt.wait(self.every)

    def growth(self, warmup: float, window: float = 30.0) -> list[tuple[str, int, float, float, float]]:
        """(name, pid, start MB, end MB, growth %) per process alive through the run."""
        end_time = self.samples[-1][0]
        rows = []
        pids = set(self.samples[-1][1])
        for pid in sorted(pids):
            start = [s[pid][1] for t, s in self.samples if warmup <= t <= warmup + window and pid in s]
            end = [s[pid][1] for t, s in self.samples if t >= end_time - window and pid in s]
            if not start or not end:
                continue
            first, last = statistics.median(start) / 1024, statistics.median(end) / 1024
            rows.append((self.samples[-1][1][pid][0], pid, first, last, (last / first - 1) * 100))
        return rows


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of the measured peak to send (default 0.5)")
    parser.add_argument("--rate", type=float, help="requests/s to send instead of --fraction × peak (skips the peak run)")
    parser.add_argument("--peak-seconds", type=int, default=8, help="wrk run measuring the peak")
    parser.add_argument("--warmup", type=float, help="seconds before RSS is taken as the start (default: a tenth, >= 20 s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--serials", type=int, default=3000, help="certificates per CA")
    parser.add_argument("--requests", type=int, default=4000, help="distinct requests per CA (rotated)")
    parser.add_argument("--connections", type=int, default=24, help="keep-alive connections of the soak client")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    need("wrk")
    seconds = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else max(20.0, seconds / 10)
    if seconds < warmup + 40:
        parser.error(f"--minutes too short for a {warmup:.0f} s warm-up and two 30 s RSS windows")
    folder = Path(tempfile.mkdtemp(prefix="certstatus-soak-"))
    try:
        import uvloop

        port = free_port()
        config, pkis = build_world(folder, args.serials, args.workers, port)
        planned = plan_requests(pkis, args.requests)
        print(f"# soak: {args.minutes:g} min, {args.workers} workers, CAs live /live, precomputed /pre, "
              f"cached /cached, {args.serials} certificates each, {len(planned)} distinct requests; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        peak_tally = Tally()
        with server(certstatus_command(config), port, cpus=None, log=folder / "serve.log") as process:
            checker = Checker(pkis)
            if args.rate:
                rate, peak = args.rate, None
            else:
                result = wrk(port, wrk_file(planned, folder / "peak.requests"), seconds=args.peak_seconds, connections=64,
                             threads=2, cpus=None, path="", server_pid=process.pid)  # fmt: skip
                client_peak = uvloop.run(closed_loop_peak(Client(port, planned, checker, peak_tally, 64), args.peak_seconds))
                peak = min(result.rps, client_peak)
                rate = peak * args.fraction
                print(f"# peak, closed loop, 64 connections, {args.peak_seconds} s: wrk {result.rps:.0f} req/s (well-formed POSTs, "
                      f"p99 {result.p99_ms:.1f} ms, {result.errors} errors); this client {client_peak:.0f} req/s (whole mix, "
                      f"every answer checked: {peak_tally.wrong_count} wrong, {peak_tally.failed} failed) "
                      f"-> soak at {args.fraction:.0%} of {peak:.0f} = {rate:.0f} req/s", flush=True)  # fmt: skip
            tally = Tally()
            sampler = RssSampler(process.pid)
            sampler.start()

            def progress(elapsed: float, backlog: int) -> None:
                latest = sampler.samples[-1][1] if sampler.samples else {}
                workers = " ".join(f"{kb / 1024:.1f}" for _pid, (name, kb) in sorted(latest.items()) if name == "worker")
                answered = sum(tally.answers.values())
                print(f"  {elapsed:5.0f} s  sent {tally.sent}  answered {answered} ({answered / elapsed:.0f}/s)  "
                      f"wrong {tally.wrong_count}  failed {tally.failed}  queued {backlog}  worker RSS MB {workers}", flush=True)  # fmt: skip

            began = time.monotonic()
            uvloop.run(open_loop(Client(port, planned, checker, tally, args.connections), rate, seconds, progress))
            elapsed = time.monotonic() - began
            time.sleep(0.1)
            sampler.halt.set()
            sampler.join()
        answered = sum(tally.answers.values())
        lat = sorted(tally.latencies)
        p50 = lat[len(lat) // 2] * 1000 if lat else 0
        p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else 0
        print(f"\nsoak {args.minutes:g} min at {rate:.0f} req/s target"
              + (f" ({args.fraction:.0%} of the {peak:.0f} req/s peak)" if peak else "")
              + f": sent {tally.sent}, answered {answered} ({answered / elapsed:.0f}/s), wrong {tally.wrong_count}, "
              f"failed {tally.failed}, late (answered > 1 s after scheduled) {tally.late}; latency from the scheduled "
              f"time p50 {p50:.1f} ms, p99 {p99:.1f} ms; signatures verified (sample) {tally.verified}")  # fmt: skip
        print(f"{'mode':<12} {'good':>8} {'revoked':>8} {'unknown':>8} {'malformed':>10}")
        for mode in MODES:
            print(f"{mode:<12} " + " ".join(f"{tally.answers[(mode, kind)]:>{w}}" for kind, w in
                                             (("good", 8), ("revoked", 8), ("unknown", 8), ("malformed", 10))))  # fmt: skip
        for line in tally.wrong + peak_tally.wrong:
            print(f"  WRONG/FAILED {line}")
        print(f"RSS (MB, VmRSS) after a {warmup:.0f} s warm-up: median of the 30 s after it -> median of the last 30 s")
        worst = 0.0
        for name, pid, first, last, growth in sampler.growth(warmup):
            print(f"  {name:<16} pid {pid:<7} {first:8.1f} -> {last:8.1f}  {growth:+6.2f} %")
            if name == "worker":
                worst = max(worst, growth)
        print(f"largest worker RSS growth {worst:+.2f} % (target < 5 %); load average {os.getloadavg()[0]:.2f}")
        if not args.rate:
            print(f"peak run: {sum(peak_tally.answers.values())} answers checked, {peak_tally.wrong_count} wrong, {peak_tally.failed} failed")
            tally.wrong_count += peak_tally.wrong_count
            tally.failed += peak_tally.failed
        ok = tally.wrong_count == 0 and tally.failed == 0 and worst < 5.0 and answered > 0
        print("RESULT " + ("pass" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
