"""Shared parts of the benchmarks: fixtures, request files, servers under taskset, wrk, RSS.

Every benchmark measures certstatus and its peers in the same run, on the
same requests (100 000 distinct serials rotated by bench/rotate.lua), with
the server pinned to core 0 and wrk to core 1 unless a figure says otherwise.
Load only ever goes to 127.0.0.1 and stops by itself (wrk -d).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from certstatus.demo_pki import DemoPki, make_demo_pki
from certstatus.der import tlv
from certstatus.protocol.certid import issuer_hashes
from certstatus.signing.keys import load_certificates

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
ROTATE_LUA = BENCH / "rotate.lua"
SERVER_CPU = "0"
LOAD_CPU = "1"
SHA1_OID = bytes.fromhex("06052b0e03021a")
NONCE_OID = bytes.fromhex("06092b0601050507300102")


def load_arguments(doc: str) -> argparse.ArgumentParser:
    """The options every load benchmark takes: --runs, --seconds (one wrk run), --count (serials)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; medians are printed")
    parser.add_argument("--seconds", type=int, default=10, help="duration of one wrk run")
    parser.add_argument("--count", type=int, default=100_000, help="distinct serials")
    return parser


def need(*programs: str) -> None:
    """Exit with a clear message when a program is missing (bench/setup installs them)."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: run bench/setup first")


def median(values) -> float:
    return statistics.median(list(values))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    """True when a socket is in LISTEN state on ``port`` (read from /proc, without connecting:
    `openssl ocsp` spins forever on a connection closed before sending anything)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_port(port: int, process: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        if listening(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def wait_answering(port: int, process: subprocess.Popen, timeout: float = 120.0, *, https: bool = False) -> None:
    """Wait until an HTTP request (over TLS with ``https``, the certificate unchecked) gets an answer
    (any status): the workers are up, not only the socket (a run started earlier counts their
    start-up in its latency)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                sock = context.wrap_socket(raw) if https else raw
                sock.sendall(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if sock.recv(16).startswith(b"HTTP/"):
                    return
        except OSError:  # ssl.SSLError too
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers HTTP on 127.0.0.1:{port} after {timeout} s")


def taskset(cpus: str | None, command: list[str]) -> list[str]:
    return command if cpus is None else ["taskset", "-c", cpus, *command]


@contextmanager
def server(command: list[str], port: int, *, cpus: str | None = SERVER_CPU, env: dict | None = None,
           cwd: Path | None = None, log: Path | None = None, https: bool = False):
    """Run ``command`` (pinned to ``cpus``) until the block ends; yield the Popen. ``https``: it speaks TLS."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        taskset(cpus, command), env={**os.environ, **(env or {})}, cwd=cwd,
        stdout=out, stderr=subprocess.STDOUT, process_group=0,
    )  # fmt: skip
    try:
        wait_port(port, process)
        wait_answering(port, process, https=https)
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        if log:
            out.close()


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    per_cpu_second: float = 0.0  # requests per CPU-second of the server: steadier on a busy machine

    def __str__(self) -> str:
        errors = f", {self.errors} errors" if self.errors else ""
        per_cpu = f"  {self.per_cpu_second:7.0f} req/cpu-s" if self.per_cpu_second else ""
        return f"{self.rps:9.0f} req/s  p99 {self.p99_ms:6.2f} ms{per_cpu}{errors}"


def wrk(port: int, requests_file: Path, *, seconds: int = 10, connections: int = 64, threads: int = 2,
        close: bool = False, cpus: str | None = LOAD_CPU, path: str = "/", server_pid: int | None = None,
        scheme: str = "http") -> LoadResult:
    """Run wrk against ``scheme``://127.0.0.1:port with the rotating requests; return req/s and latency
    (and requests per CPU-second of ``server_pid``'s process tree when given)."""
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    command = taskset(cpus, [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(ROTATE_LUA), f"{scheme}://127.0.0.1:{port}{path}", "--", str(requests_file),
        "close" if close else "keepalive",
    ])  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120).stdout
    match = re.search(r"RESULT (.*)", output)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    fields = {k: int(v) for k, v in (item.split("=") for item in match.group(1).split())}
    # Only answered requests count: non-2xx/3xx answers and timeouts are errors, reported beside.
    errors = fields["status"] + fields["timeout"] + fields["connect"] + fields["write"]
    answered = fields["requests"] - fields["status"]
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    return LoadResult(
        rps=answered / (fields["duration_us"] / 1e6),
        p50_ms=fields["p50_us"] / 1000,
        p99_ms=fields["p99_us"] / 1000,
        errors=errors,
        per_cpu_second=answered / cpu if cpu > 0 else 0.0,
    )


def warm(port: int, requests_file: Path, *, batch: int = 64, cpus: str | None = LOAD_CPU) -> float:
    """Send every request of ``requests_file`` once, pipelined ``batch`` at a time on one
    keep-alive connection, and return the seconds it took: a server with a cache starts the
    measured run as it runs in steady state. Runs pinned to ``cpus`` (the load generator's core)."""
    if cpus is not None:
        previous = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {int(cpus)})
    started = time.monotonic()
    try:
        requests = raw_requests(requests_file, port)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            buffer = b""
            for first in range(0, len(requests), batch):
                chunk = requests[first:first + batch]
                sock.sendall(b"".join(chunk))
                for _ in chunk:
                    while b"\r\n\r\n" not in buffer:
                        buffer += _receive(sock)
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
                    while len(buffer) < length:
                        buffer += _receive(sock)
                    buffer = buffer[length:]
    finally:
        if cpus is not None:
            os.sched_setaffinity(0, previous)
    return time.monotonic() - started


def _receive(sock: socket.socket) -> bytes:
    data = sock.recv(1 << 16)
    if not data:
        raise RuntimeError("the server closed the connection during the warm-up pass")
    return data


def raw_requests(requests_file: Path, port: int) -> list[bytes]:
    """The requests of a rotate.lua file as HTTP/1.1 keep-alive requests."""
    data = requests_file.read_bytes()
    requests = []
    position = 0
    while position < len(data):
        end = data.index(b"\n", position)
        method, path, length = data[position:end].decode().split()
        body = data[end + 1:end + 1 + int(length)]
        position = end + 1 + int(length) + 1
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        if method == "POST":
            head += f"Content-Type: application/ocsp-request\r\nContent-Length: {len(body)}\r\n"
        requests.append(head.encode() + b"\r\n" + body)
    return requests


def median_result(results: list[LoadResult]) -> LoadResult:
    """Medians of several runs, field by field."""
    return LoadResult(
        rps=median(r.rps for r in results),
        p50_ms=median(r.p50_ms for r in results),
        p99_ms=median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        per_cpu_second=median(r.per_cpu_second for r in results),
    )


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a process, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants (from /proc)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


# --- fixtures ---------------------------------------------------------------------------------


@dataclass
class Fixture:
    """A demo PKI whose CA issued ``len(serials)`` certificates (index.txt), plus a config."""

    folder: Path
    pki: DemoPki
    serials: list[int]
    index: Path
    config: Path
    key_type: str


def make_fixture(folder: Path, key_type: str, count: int = 100_000, *, workers: int = 1,
                 extra_server: str = "", extra_ca: str = "", revoked_every: int = 100) -> Fixture:
    """Write a PKI, an index.txt of ``count`` random serials (1 in ``revoked_every`` revoked)
    and a certstatus.toml serving it from ``folder/store.sqlite3``."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = make_demo_pki(folder / "pki", key_type=key_type)
    rng = random.Random(6960)
    serials = sorted({rng.getrandbits(127) | (1 << 126) for _ in range(count)})
    while len(serials) < count:
        serials.append(rng.getrandbits(127) | (1 << 126))
    rng.shuffle(serials)
    expiry = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=90)).strftime("%y%m%d%H%M%SZ")
    revoked_at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).strftime("%y%m%d%H%M%SZ")
    lines = []
    for i, serial in enumerate(serials):
        if i % revoked_every == 0:
            lines.append(f"R\t{expiry}\t{revoked_at},keyCompromise\t{serial:032X}\tunknown\t/CN=leaf{i}\n")
        else:
            lines.append(f"V\t{expiry}\t\t{serial:032X}\tunknown\t/CN=leaf{i}\n")
    index = folder / "index.txt"
    index.write_text("".join(lines))
    (folder / "index.txt.attr").write_text("unique_subject = no\n")
    config = folder / "certstatus.toml"
    config.write_text(
        "[server]\n"
        'listen = "127.0.0.1:0"\n'
        f"workers = {workers}\n"
        f'database = "{folder / "store.sqlite3"}"\n'
        f"{extra_server}\n"
        "[ca.bench]\n"
        f'certificate = "{pki.ca_cert}"\n'
        f'index = "{index}"\n'
        f'signer_certificate = "{pki.ocsp_cert}"\n'
        f'signer_key = "{pki.ocsp_key}"\n'
        f"{extra_ca}\n"
    )
    return Fixture(folder, pki, serials, index, config, key_type)


def request_der(name_hash: bytes, key_hash: bytes, serial: int, nonce: bytes | None = None) -> bytes:
    """An OCSPRequest for one SHA-1 CertID, as `openssl ocsp` sends it (RFC 6960 §4.1.1)."""
    serial_der = tlv(0x02, serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True))
    cert_id = tlv(0x30, tlv(0x30, SHA1_OID + b"\x05\x00") + tlv(0x04, name_hash) + tlv(0x04, key_hash) + serial_der)
    request_list = tlv(0x30, tlv(0x30, cert_id))  # SEQUENCE OF Request { reqCert }
    extensions = b""
    if nonce is not None:
        extension = tlv(0x30, NONCE_OID + tlv(0x04, tlv(0x04, nonce)))
        extensions = tlv(0xA2, tlv(0x30, extension))
    return tlv(0x30, tlv(0x30, request_list + extensions))


def write_requests(fixture: Fixture, path: Path, *, method: str, nonce: bool, prefix: str = "/") -> Path:
    """Write one request per serial for rotate.lua: GET with the base64 path, or POST with the DER body."""
    ca = load_certificates(fixture.pki.ca_cert)[0]
    name_hash, key_hash = issuer_hashes(ca, "sha1")
    rng = random.Random(5019)
    with open(path, "wb") as out:
        for serial in fixture.serials:
            der = request_der(name_hash, key_hash, serial, rng.randbytes(16) if nonce else None)
            if method == "GET":
                out.write(f"GET {prefix}{quote(base64.b64encode(der).decode(), safe='')} 0\n\n".encode())
            else:
                out.write(f"POST {prefix} {len(der)}\n".encode() + der + b"\n")
    return path


def certstatus_command(config: Path, *extra: str) -> list[str]:
    return [PYTHON, "-m", "certstatus", "serve", "--config", str(config), *extra]


def port_config(fixture: Fixture, port: int, workers: int, extra: str = "") -> Path:
    """A copy of the fixture's config listening on ``port`` with ``workers`` workers, ``extra``
    (TOML tables, e.g. ``[tls]``) appended."""
    text = fixture.config.read_text()
    text = re.sub(r'listen = "[^"]*"', f'listen = "127.0.0.1:{port}"', text)
    text = re.sub(r"workers = \d+", f"workers = {workers}", text)
    path = fixture.folder / f"certstatus-{port}.toml"
    path.write_text(text + extra)
    return path


def generate(fixture: Fixture) -> None:
    """Sign every status of the fixture's CA into its store (``certstatus generate``)."""
    subprocess.run([PYTHON, "-m", "certstatus", "generate", "--config", str(fixture.config)],
                   check=True, capture_output=True)  # fmt: skip


def stored_responses(fixture: Fixture) -> dict[int, bytes]:
    """serial -> the SHA-1 CertID response the generator stored (complete DER)."""
    from certstatus.store.sqlite import SQLiteStore

    with sqlite3.connect(fixture.folder / "store.sqlite3") as db:
        issuer_id = db.execute("SELECT id FROM issuers WHERE name = 'bench'").fetchone()[0]
    store = SQLiteStore(fixture.folder / "store.sqlite3")  # complete DER (the store keeps the certificates apart)
    try:
        return {serial: response.der for serial, response in store.stored_responses(issuer_id, "sha1")}
    finally:
        store.close()


def import_store(fixture: Fixture) -> None:
    """Import the fixture's data into its store once (serve would do it at every start)."""
    subprocess.run([PYTHON, "-m", "certstatus", "import", "--config", str(fixture.config)],
                   check=True, capture_output=True)


@contextmanager
def postgres_schema(server_uri: str, prefix: str):
    """A fresh schema named ``PREFIX_PID`` on ``server_uri``; yield the URI that selects it
    (libpq ``options=-csearch_path=…``); drop it with everything in it afterwards."""
    import psycopg

    schema = f"{prefix}_{os.getpid()}"
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{server_uri}{'&' if '?' in server_uri else '?'}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(server_uri, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def check_same_bytes(port: int, fixture, expected, name: str, *, tls: ssl.SSLContext | None = None) -> None:
    """POST a sample of the fixture's requests (one SHA-1 CertID each) to ``port`` (over HTTPS with
    the client context ``tls``) and compare each answer with ``expected(serial)`` (the stored
    response's DER, None when none is stored); exit naming ``name`` and the serial at the first difference."""
    import urllib.request

    ca = load_certificates(fixture.pki.ca_cert)[0]
    name_hash, key_hash = issuer_hashes(ca, "sha1")
    for serial in fixture.serials[:: max(1, len(fixture.serials) // 50)]:
        request = urllib.request.Request(
            f"{'https' if tls else 'http'}://127.0.0.1:{port}/", data=request_der(name_hash, key_hash, serial),
            headers={"Content-Type": "application/ocsp-request"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10, context=tls) as answer:
            stored = expected(serial)
            if stored is None or answer.read() != stored:
                sys.exit(f"{name} did not answer the stored response for serial {serial:x}")
