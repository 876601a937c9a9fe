"""Load benchmark: certstatus (live signing) against OpenSSL's own responder, measured with wrk.

    python bench/load.py [--seconds 10] [--connections 64] [--threads 2] [--key-type ec|rsa]

What it does, all on 127.0.0.1 and in a temporary folder:

1. writes a demo PKI (ECDSA P-256 by default) and appends synthesized entries
   to its index.txt, so both responders know the same valid and revoked serials;
2. writes ``--requests`` distinct nonce-less OCSP requests (one SHA-1 CertID
   each; good, revoked and never-issued serials; a few made by ``openssl ocsp
   -reqout``, the rest by ``cryptography``) and a nonce variant of the same set;
3. starts ``certstatus serve`` (1 worker, index.txt only, live signing) and then
   ``openssl ocsp -index ... -port ...`` (one process), each pinned to core 0
   with taskset when it exists and two cores are present, checks a sample of
   answers from both agree, and runs wrk pinned to core 1 with a Lua script
   that rotates POST bodies over the request set;
4. prints the median of ``--runs`` runs per figure, one figure per line.

``openssl ocsp`` answers one request per connection, so every figure is given
with keep-alive and with ``Connection: close``; OpenSSL's keep-alive figure is
in effect a close figure. Each row also gives the load generator's own CPU per
request (``wrk_cpu_us/req``, from wrk's rusage): with ``--both-cores`` wrk shares
the two cores with the server, so that is CPU the server cannot have.
Benchmarks are never timed tests (see STYLE.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from common import cpu_seconds  # bench/ is the script's folder, first on sys.path

try:
    from certstatus.demo_pki import make_demo_pki
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from certstatus.demo_pki import make_demo_pki

WRK = shutil.which("wrk") or "/usr/bin/wrk"
OPENSSL = shutil.which("openssl") or "openssl"
TASKSET = shutil.which("taskset")
HOST = "127.0.0.1"

# wrk script: init() reads the length-prefixed request file and pre-formats the POSTs
# (binary, so that 100 000 requests load in well under a second: hex decoding in Lua
# took seconds, counted in wrk's run time);
# each thread starts at its own offset; done() prints one machine-readable line.
WRK_SCRIPT = r"""
-- wrk normally opens (and closes) a probe connection before the run; OpenSSL 3.0's
-- responder then spins forever reading EOF from it, so resolve without probing.
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

local counter = 1
local threads = {}
local requests = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path, connection = args[1], args[2]
  local headers = { ["Content-Type"] = "application/ocsp-request" }
  if connection == "close" then headers["Connection"] = "close" end
  -- One request per record: its length in decimal, a newline, the DER bytes.
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  local pos = 1
  while pos <= #data do
    local eol = data:find("\n", pos, true)
    local length = tonumber(data:sub(pos, eol - 1))
    requests[#requests + 1] = wrk.format("POST", "/", headers, data:sub(eol + 1, eol + length))
    pos = eol + length + 1
  end
  counter = ((id or 0) * 7919) % #requests + 1
end

function request()
  local r = requests[counter]
  counter = counter % #requests + 1
  return r
end

function done(summary, latency, requests)
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
"""


@dataclass
class RequestSet:
    """The request bodies and the certStatus each one should get (by serial)."""

    plain: list[bytes] = field(default_factory=list)
    nonce: list[bytes] = field(default_factory=list)
    expected: dict[int, str] = field(default_factory=dict)  # serial -> good|revoked|unknown


@dataclass
class Measurement:
    rps: float
    p50_ms: float
    p99_ms: float
    problems: list[str]
    per_cpu_second: float = 0.0
    client_us: float = 0.0  # CPU of the load generator (wrk) per request, µs


# --------------------------------------------------------------------------- data


def _index_time(when: dt.datetime) -> str:
    return f"{when:%y%m%d%H%M%SZ}" if when.year < 2050 else f"{when:%Y%m%d%H%M%SZ}"


def _hex_serial(serial: int) -> str:
    text = f"{serial:X}"
    return text.zfill(len(text) + len(text) % 2)


def extend_index(index: Path, good: list[int], revoked: list[int]) -> None:
    """Append V lines for ``good`` and R lines (keyCompromise) for ``revoked`` to an index.txt."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    expiry = _index_time(now + dt.timedelta(days=90))
    lines = [f"V\t{expiry}\t\t{_hex_serial(s)}\tunknown\t/CN=bench-good-{i}\n" for i, s in enumerate(good)]
    revoked_at = _index_time(now - dt.timedelta(hours=1))
    lines += [f"R\t{expiry}\t{revoked_at},keyCompromise\t{_hex_serial(s)}\tunknown\t/CN=bench-revoked-{i}\n" for i, s in enumerate(revoked)]
    with open(index, "a") as handle:
        handle.writelines(lines)


def make_requests(pki, count: int, folder: Path) -> RequestSet:
    """Write the index additions and return ``count`` distinct requests (and their nonce twins)."""
    rng = random.Random(20240601)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(pki.leaves["good"].read_bytes())
    reference = ocsp.load_der_ocsp_request(
        ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)
    )
    name_hash, key_hash = reference.issuer_name_hash, reference.issuer_key_hash

    requests = RequestSet()
    seen: set[bytes] = set()

    def add(der: bytes, serial: int, status: str, nonce_der: bytes) -> None:
        if der in seen:
            return
        seen.add(der)
        requests.plain.append(der)
        requests.nonce.append(nonce_der)
        requests.expected[serial] = status

    # A few requests written by OpenSSL's client, for the demo leaves (not "expired":
    # OpenSSL's responder leaves E lines out of its answer).
    for name, status in (("good", "good"), ("good2", "good"), ("revoked-keycompromise", "revoked"),
                         ("revoked-superseded", "revoked"), ("revoked-hold", "revoked"),
                         ("revoked-unspecified", "revoked"), ("unknown", "unknown")):  # fmt: skip
        out, out_nonce = folder / f"openssl-{name}.der", folder / f"openssl-{name}-nonce.der"
        base = [OPENSSL, "ocsp", "-issuer", str(pki.ca_cert), "-cert", str(pki.leaves[name])]
        subprocess.run([*base, "-no_nonce", "-reqout", str(out)], check=True, capture_output=True)
        subprocess.run([*base, "-reqout", str(out_nonce)], check=True, capture_output=True)
        add(out.read_bytes(), pki.serials[name], status, out_nonce.read_bytes())

    remaining = max(0, count - len(requests.plain))
    n_good, n_revoked = int(remaining * 0.35), int(remaining * 0.30)
    serials = set()
    while len(serials) < remaining:
        serials.add(rng.getrandbits(127) | (1 << 126))  # positive, 16 bytes, like real CAs' serials
    serials_list = sorted(serials)
    rng.shuffle(serials_list)
    good = serials_list[:n_good]
    revoked = serials_list[n_good : n_good + n_revoked]
    unknown = serials_list[n_good + n_revoked :]
    extend_index(pki.index, good, revoked)
    for group, status in ((good, "good"), (revoked, "revoked"), (unknown, "unknown")):
        for serial in group:
            builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1())
            plain = builder.build().public_bytes(serialization.Encoding.DER)
            with_nonce = (
                builder.add_extension(x509.OCSPNonce(rng.randbytes(16)), critical=False)
                .build().public_bytes(serialization.Encoding.DER)
            )  # fmt: skip
            add(plain, serial, status, with_nonce)
    # Interleave statuses, as real traffic does.
    order = list(range(len(requests.plain)))
    rng.shuffle(order)
    requests.plain = [requests.plain[i] for i in order]
    requests.nonce = [requests.nonce[i] for i in order]
    return requests


def write_bodies(path: Path, bodies: list[bytes]) -> Path:
    """The request file the wrk script reads: per request its length, a newline, the DER."""
    path.write_bytes(b"".join(b"%d\n" % len(body) + body for body in bodies))
    return path


# --------------------------------------------------------------------------- processes


def serve_command(folder: Path, pki, port: int, workers: int) -> list[str]:
    """``certstatus serve`` of the benchmark's CA (live signing, from the index.txt OpenSSL reads) on ``port``."""
    config = folder / "certstatus.toml"
    config.write_text(
        f'[server]\nlisten = "{HOST}:{port}"\nworkers = {workers}\ndatabase = "store.sqlite3"\n\n'
        f'[ca.bench]\ncertificate = "{pki.ca_cert}"\nindex = "{pki.index}"\n'
        f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\nvalidity = "1d"\n'
    )
    return [sys.executable, "-m", "certstatus", "serve", "--config", str(config), "--log-level", "warning"]


def openssl_command(pki, port: int) -> list[str]:
    """OpenSSL's responder on the same PKI and index.txt, on ``port`` (one process)."""
    return [OPENSSL, "ocsp", "-index", str(pki.index), "-port", str(port), "-rsigner", str(pki.ocsp_cert),
            "-rkey", str(pki.ocsp_key), "-CA", str(pki.ca_cert), "-nmin", "60", "-ignore_err"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def pinned(command: list[str], core: int, pin: bool) -> list[str]:
    return [TASKSET, "-c", str(core), *command] if pin else command


def post(port: int, body: bytes, timeout: float = 5.0) -> bytes:
    """One POST on a fresh connection; returns the response body."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("POST", "/", body, {"Content-Type": "application/ocsp-request"})
        return connection.getresponse().read()
    finally:
        connection.close()


def wait_until_answering(process: subprocess.Popen, port: int, body: bytes, name: str, log: Path) -> None:
    """Poll with a real OCSP request until a successful response comes back (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode} during start-up:\n{log.read_text(errors='replace')}")
        try:
            if ocsp.load_der_ocsp_response(post(port, body, 2.0)).response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not answer within 30 s:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


def stop(process: subprocess.Popen | None) -> None:
    """SIGTERM to the process group, then SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # `openssl ocsp -multi` children too
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def start(command: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "ab") as handle:
        return subprocess.Popen(
            command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            process_group=0,  # not a new session: `openssl ocsp -multi` calls setpgid(0, 0), refused to a session leader
        )  # fmt: skip


@dataclass
class Server:
    """A responder command on ``port``; ``restart_each_run`` gives every wrk run a fresh process.

    OpenSSL's responder needs that: when wrk stops, connections it opened but
    never wrote to are left in the listen backlog, and OpenSSL 3.0 spins on the
    first of them forever (reading EOF in a loop) instead of taking the next.
    """

    name: str
    command: list[str]
    port: int
    folder: Path
    probe: bytes
    restart_each_run: bool = False
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name.split()[0]}.log"

    def start(self) -> None:
        self.process = start(self.command, self.log, self.folder)
        wait_until_answering(self.process, self.port, self.probe, self.name, self.log)

    def stop(self) -> None:
        stop(self.process)
        self.process = None

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise SystemExit(f"{self.name} exited ({code}) during the measurement:\n{self.log.read_text(errors='replace')[-2000:]}")


# --------------------------------------------------------------------------- measuring


def statuses(der: bytes) -> dict[int, str]:
    response = ocsp.load_der_ocsp_response(der)
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return {}
    return {single.serial_number: single.certificate_status.name.lower() for single in response.responses}


def sanity_check(port: int, requests: RequestSet, name: str, sample: int = 40) -> list[str]:
    """POST a sample of the set; return a description of every answer that is not the expected status."""
    problems = []
    rng = random.Random(7)
    for body in rng.sample(requests.plain, min(sample, len(requests.plain))) + requests.nonce[:3]:
        serial = ocsp.load_der_ocsp_request(body).serial_number
        got = statuses(post(port, body)).get(serial)
        if got != requests.expected[serial]:
            problems.append(f"{name}: serial {serial:x} answered {got}, expected {requests.expected[serial]}")
    return problems


_WRK_RESULT = re.compile(r"WRK_RESULT (.*)")


def run_wrk(port: int, script: Path, bodies: Path, connection: str, args: argparse.Namespace, pin: bool, seconds: float) -> Measurement:
    command = pinned(
        [WRK, f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script),
         f"http://{HOST}:{port}/", "--", str(bodies), connection],
        1, pin,
    )  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    match = _WRK_RESULT.search(done.stdout)
    if done.returncode != 0 or not match:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    values = {k: int(v) for k, v in (item.split("=") for item in match.group(1).split())}
    problems = [line.strip() for line in done.stdout.splitlines() if "Non-2xx or 3xx responses" in line or "Socket errors" in line]
    return Measurement(
        rps=values["requests"] / (values["duration_us"] / 1e6),
        p50_ms=values["p50_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        problems=problems,
        client_us=client_cpu / max(values["requests"], 1) * 1e6,
    )


def measure(label: str, server: Server, bodies: Path, connection: str, script: Path, args: argparse.Namespace,
            pin: bool) -> Measurement:  # fmt: skip
    """Run wrk ``args.runs`` times and return the medians (problems of every run kept)."""
    runs = []
    per_cpu = []  # requests per CPU-second of the server's processes: steadier than req/s on a busy machine
    for _ in range(args.runs):
        if server.restart_each_run:
            server.start()
        cpu_before = cpu_seconds(server.process.pid)
        runs.append(run_wrk(server.port, script, bodies, connection, args, pin, args.seconds))
        cpu = cpu_seconds(server.process.pid) - cpu_before
        per_cpu.append(runs[-1].rps * args.seconds / cpu if cpu > 0 else 0.0)
        server.check_alive()
        if server.restart_each_run:
            server.stop()
    result = Measurement(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        problems=[f"run {i + 1}: {p}" for i, r in enumerate(runs) for p in r.problems],
        per_cpu_second=statistics.median(per_cpu),
        client_us=statistics.median(r.client_us for r in runs),
    )
    print(f"{label:<34} req/s={result.rps:8.0f}  p50_ms={result.p50_ms:7.2f}  p99_ms={result.p99_ms:8.2f}"
          f"  req/cpu-s={result.per_cpu_second:7.0f}  wrk_cpu_us/req={result.client_us:5.1f}"
          f"   (runs: {', '.join(f'{r.rps:.0f}' for r in runs)})", flush=True)  # fmt: skip
    for problem in result.problems:
        print(f"    {label}: {problem}", flush=True)
    return result


def bench_server(server: Server, requests: RequestSet, files: dict[str, Path], script: Path, args: argparse.Namespace,
                 pin: bool) -> tuple[dict[str, Measurement], list[str]]:  # fmt: skip
    """Sanity-check, warm up and measure one responder; return its figures and sanity problems."""
    server.start()
    try:
        problems = sanity_check(server.port, requests, server.name)
        run_wrk(server.port, script, files["plain"], "keep-alive", args, pin, min(2, args.seconds))  # warm-up
        server.check_alive()
    finally:
        if server.restart_each_run:
            server.stop()
    results = {}
    try:
        for connection in ("keep-alive", "close"):
            results[connection] = measure(f"{server.name:<16} {connection}", server, files["plain"], connection, script, args, pin)
        if args.nonce_variant:
            results["nonce"] = measure(f"{server.name:<16} keep-alive+nonce", server, files["nonce"], "keep-alive", script, args, pin)
    finally:
        server.stop()
    return results, problems


_SIGN_LOOP = """
import sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
data = bytes(range(256)) * 2  # about the size of a ResponseData with a nonce
if isinstance(key, rsa.RSAPrivateKey):
    sign = lambda: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
else:
    algorithm = ec.ECDSA(hashes.SHA256())
    sign = lambda: key.sign(data, algorithm)
for _ in range(20):
    sign()
count, start, cpu_start = 0, time.perf_counter(), time.process_time()
while time.perf_counter() - start < float(sys.argv[2]):
    for _ in range(20):
        sign()
    count += 20
print(count / (time.perf_counter() - start), count / (time.process_time() - cpu_start))
"""


def raw_signing_rate(key: Path, cores: list[int], seconds: float = 3.0) -> tuple[float, float]:
    """Signatures of ``key`` with ``cryptography``, one process pinned per core, at once:
    (per second summed over the processes, per CPU-second of one process)."""
    processes = [
        subprocess.Popen(pinned([sys.executable, "-c", _SIGN_LOOP, str(key), str(seconds)], core, bool(TASKSET)),
                         stdout=subprocess.PIPE, text=True)
        for core in cores
    ]  # fmt: skip
    rates = [tuple(float(v) for v in process.communicate()[0].split()) for process in processes]
    return sum(wall for wall, _ in rates), statistics.mean(cpu for _, cpu in rates)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="duration of one wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--key-type", choices=["ec", "rsa"], default="ec", help="demo PKI keys (default ec = P-256)")
    parser.add_argument("--requests", type=int, default=2000, help="distinct request bodies (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is printed (default 3)")
    parser.add_argument("--workers", type=int, default=1, help="certstatus worker processes (default 1: one core each)")
    parser.add_argument("--both-cores", action="store_true",
                        help="certstatus with 2 workers against openssl ocsp -multi 2, nothing pinned "
                             "(raw signing then measured on both cores at once)")  # fmt: skip
    parser.add_argument("--no-nonce-variant", dest="nonce_variant", action="store_false", help="skip the nonce figures")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    args = parser.parse_args()
    if not Path(WRK).exists():
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    pin = bool(TASKSET) and (os.cpu_count() or 1) >= 2 and not args.both_cores
    if args.both_cores:
        args.workers = 2
    folder = Path(tempfile.mkdtemp(prefix="certstatus-bench-"))
    servers: list[Server] = []
    try:
        pki = make_demo_pki(folder / "pki", key_type=args.key_type)
        requests = make_requests(pki, args.requests, folder)
        files = {"plain": write_bodies(folder / "requests.bin", requests.plain),
                 "nonce": write_bodies(folder / "requests-nonce.bin", requests.nonce)}  # fmt: skip
        script = folder / "rotate.lua"
        script.write_text(WRK_SCRIPT)
        counts = {s: list(requests.expected.values()).count(s) for s in ("good", "revoked", "unknown")}
        print(f"# {len(requests.plain)} distinct requests ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
              f"{args.key_type} keys; wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, "
              f"median of {args.runs}; "
              + ("server on core 0, wrk on core 1" if pin else
                 "both cores, nothing pinned" if args.both_cores else "not pinned (needs taskset and 2 cores)"),
              flush=True)  # fmt: skip

        # certstatus, live signing, from the same index.txt OpenSSL reads.
        port = free_port()
        ours_server = Server("certstatus", pinned(serve_command(folder, pki, port, args.workers), 0, pin), port, folder,
                             requests.plain[0])  # fmt: skip
        servers.append(ours_server)
        ours, problems = bench_server(ours_server, requests, files, script, args, pin)

        # OpenSSL's responder on the same PKI, index and requests (one process).
        port = free_port()
        command = openssl_command(pki, port)
        name = "openssl ocsp"
        if args.both_cores:
            command += ["-multi", "2"]
            name = "openssl -multi 2"
        theirs_server = Server(name, pinned(command, 0, pin), port, folder, requests.plain[0], restart_each_run=True)
        servers.append(theirs_server)
        theirs, more = bench_server(theirs_server, requests, files, script, args, pin)
        problems += more

        # Targets: Connection: close >= 1.0x OpenSSL (one core, and -multi 2 on both), keep-alive >= 1.3x
        # -multi 2 on both cores; OpenSSL answers one request per connection whatever the client asks.
        targets = {"close": ">= 1.0", "keep-alive": ">= 1.3" if args.both_cores else None}
        for key, label in (("keep-alive", "keep-alive"), ("close", "close"), ("nonce", "keep-alive+nonce")):
            if key in ours and key in theirs and theirs[key].rps:
                target = f"  target {targets[key]}" if targets.get(key) else ""
                print(f"ratio certstatus/openssl {label:<17} = {ours[key].rps / theirs[key].rps:.2f}{target}"
                      f"   (per CPU-second: {ours[key].per_cpu_second / max(theirs[key].per_cpu_second, 1e-9):.2f})")
        cores = [0, 1] if args.both_cores else [0]
        measured = [raw_signing_rate(pki.ocsp_key, cores) for _ in range(args.runs)]
        raw = statistics.median(wall for wall, _ in measured)
        raw_cpu = statistics.median(cpu for _, cpu in measured)
        print(f"{'raw signing ' + ('2 cores' if args.both_cores else 'core 0'):<34} sig/s={raw:8.0f}"
              f"  sig/cpu-s={raw_cpu:7.0f}   (cryptography, {len(cores)} process{'es' if len(cores) > 1 else ''})",
              flush=True)  # fmt: skip
        for key, label in (("keep-alive", "keep-alive"), ("nonce", "keep-alive+nonce")):
            if key in ours:
                print(f"ratio certstatus/raw signing {label:<13} = {ours[key].rps / raw:.2f}"
                      f"   (per CPU-second: {ours[key].per_cpu_second / raw_cpu:.2f})")
        for problem in problems:
            print(f"# sanity: {problem}")
        if not problems:
            print("# sanity: both responders gave the expected status for every sampled request")
        return 0
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"# files kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
