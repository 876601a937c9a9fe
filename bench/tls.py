"""TLS: certstatus over HTTPS against nginx serving the same response over HTTPS, and against
certstatus's own plain-HTTP figure, in the same run.

    .venv/bin/python bench/tls.py [--runs 3] [--seconds 10] [--count 100000]

The CA is precomputed (``certstatus generate`` signs every status of ``--count`` issued serials
first, as in bench/precomputed.py); apart from that and ``[tls]`` certstatus runs its default
configuration (default answer cache, one worker) and every measured run starts a fresh server,
with no warm-up pass (the load starts once the background generator's first pass, which walks
every serial after a start, is through: its CPU is no request's). nginx serves one of the stored responses as a static file, with nginx's
defaults (session tickets on, no session cache) except that TLS 1.3 is enabled as in certstatus
(Debian's nginx 1.22 leaves it off). Both use the same ECDSA P-256 certificate. Servers run on
core 0, the load on core 1.

Regimes:

* keep-alive: wrk -t2 -c64, POST without nonce for the serials rotated (bench/rotate.lua),
  over HTTPS and over plain HTTP;
* a new connection per request, session resumed: the same with ``Connection: close`` — wrk keeps
  the TLS session of a closed connection and resumes it on the next (TLS 1.3 tickets);
* a new connection per request, full handshake: ``openssl s_time -new`` (a full handshake per
  connection, ``GET`` of one request's base64 path over HTTP/1.0), 8 processes at once; the
  figure is their connections per second. The client's half of each handshake costs about what
  the server's does and all 8 share core 1, so the server CPU-seconds per connection are
  printed beside it: that ratio is the server's own.

Targets: TLS keep-alive >= 50 % of the same server's plain-HTTP figure and >= 50 % of nginx TLS;
TLS new connections >= 50 % of nginx TLS. Every figure is a median of ``--runs``; the ratios are
of the same run's medians, with requests per server CPU-second beside (steadier on a shared machine).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import ssl
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from common import (
    LOAD_CPU, SERVER_CPU, LoadResult, certstatus_command, check_same_bytes, cpu_seconds, free_port, generate,
    load_arguments, make_fixture, median_result, need, port_config, server, stored_responses, taskset, wrk,
    write_requests,
)  # fmt: skip
from cryptography.hazmat.primitives import serialization
from peers import nginx_static

from certstatus.demo_pki import issue_cert, new_key

#: Concurrent ``openssl s_time`` processes of the full-handshake regime.
S_TIME_PROCESSES = 8


def tls_pair(folder: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 and its key, as PEM files."""
    key = new_key("ec")
    now = dt.datetime.now(dt.timezone.utc)
    cert = issue_cert(None, key, key.public_key(), common_name="localhost", not_before=now - dt.timedelta(days=1),
                      not_after=now + dt.timedelta(days=30), dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    cert_path, key_path = folder / "tls.pem", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def s_time(port: int, page: str, *, seconds: int, server_pid: int) -> LoadResult:
    """Full handshakes per second: ``S_TIME_PROCESSES`` concurrent ``openssl s_time -new`` on the load core."""
    cpu_before = cpu_seconds(server_pid)
    command = taskset(LOAD_CPU, ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(seconds),
                                 "-www", page])  # fmt: skip
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(S_TIME_PROCESSES)]
    connections = 0
    for process in processes:
        output = process.communicate(timeout=seconds + 60)[0]
        match = re.search(r"(\d+) connections in \d+ real seconds", output)
        if match is None:
            raise RuntimeError(f"openssl s_time printed no count:\n{output}")
        connections += int(match.group(1))
    cpu = cpu_seconds(server_pid) - cpu_before
    # s_time stops starting connections after -time seconds; its real-time figure is whole seconds
    return LoadResult(rps=connections / seconds, p50_ms=0.0, p99_ms=0.0, errors=0,
                      per_cpu_second=connections / cpu if cpu > 0 else 0.0)


@contextmanager
def certstatus(fixture, port: int, tls: tuple[Path, Path] | None):
    """certstatus serving the fixture on ``port`` (over TLS with ``tls``: certificate, key), once its
    background generator's first pass is through: that pass walks every serial once after a start
    (nothing is left to sign here), CPU of the server's process tree that is no request's."""
    extra = f'\n[tls]\ncertificate = "{tls[0]}"\nkey = "{tls[1]}"\n' if tls else ""
    log = fixture.folder / f"serve-{port}.log"
    with server(certstatus_command(port_config(fixture, port, 1, extra)), port, https=tls is not None, log=log) as process:
        deadline = time.monotonic() + 300
        while "first generation pass done" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no first generation pass within 300 s; see {log}")
            time.sleep(0.2)
        yield process


def main() -> None:
    parser = load_arguments(__doc__)
    args = parser.parse_args()
    need("wrk", "taskset", "nginx", "openssl")
    with tempfile.TemporaryDirectory(prefix="certstatus-tls-") as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers (another user) read the files below it
        folder = Path(tmp)
        fixture = make_fixture(folder / "ec", "ec", args.count, extra_ca='mode = "precomputed"\n', revoked_every=10)
        generate(fixture)
        stored = stored_responses(fixture)
        pair = tls_pair(folder)
        (folder / "nginx-tls").mkdir()
        requests = write_requests(fixture, folder / "post.txt", method="POST", nonce=False)
        page = write_requests(fixture, folder / "get.txt", method="GET", nonce=False).read_text().split("\n", 1)[0].split()[1]
        client = ssl.create_default_context(cafile=str(pair[0]))
        for name, tls in (("plain", None), ("tls", pair)):
            port = free_port()
            with certstatus(fixture, port, tls):
                check_same_bytes(port, fixture, stored.get, f"certstatus {name}", tls=client if tls else None)

        servers = {
            "certstatus TLS": lambda port: certstatus(fixture, port, pair),
            "certstatus plain": lambda port: certstatus(fixture, port, None),
            "nginx TLS": lambda port: nginx_static(folder / f"nginx-{port}", port, stored[fixture.serials[0]], tls=pair),
        }
        regimes = {  # regime -> (the servers measured, how: (port, server pid, scheme) -> LoadResult)
            "keep-alive": (servers, lambda port, pid, scheme: wrk(port, requests, seconds=args.seconds,
                                                                  server_pid=pid, scheme=scheme)),
            "new connection (TLS resumed)": (servers, lambda port, pid, scheme: wrk(port, requests, seconds=args.seconds,
                                                                               close=True, server_pid=pid, scheme=scheme)),
            "new connection, full handshake": ({n: s for n, s in servers.items() if "TLS" in n},
                                               lambda port, pid, scheme: s_time(port, page, seconds=args.seconds, server_pid=pid)),
        }
        print(f"== TLS: precomputed CA, {args.count} serials, default configuration, no warm-up; server on core "
              f"{SERVER_CPU} (one worker), load on core {LOAD_CPU}; {args.seconds} s runs, medians of {args.runs} ==",
              flush=True)
        figures: dict[tuple[str, str], LoadResult] = {}
        for regime, (chosen, measure) in regimes.items():
            runs: dict[str, list[LoadResult]] = {name: [] for name in chosen}
            for _ in range(args.runs):  # interleaved, so that a busy spell hits every server
                for name, start in chosen.items():
                    port = free_port()
                    with start(port) as process:
                        runs[name].append(measure(port, process.pid, "https" if "TLS" in name else "http"))
            for name, results in runs.items():
                figures[(name, regime)] = result = median_result(results)
                print(f"{name:17s} {regime:31s} {result}   (runs: {' / '.join(f'{r.rps:.0f}' for r in results)})",
                      flush=True)

        def ratio(a: LoadResult, b: LoadResult) -> str:
            per_cpu = a.per_cpu_second / b.per_cpu_second if b.per_cpu_second else float("nan")
            return f"{a.rps / b.rps:5.2f}  (per server CPU-second {per_cpu:5.2f})"

        ours = {regime: figures[("certstatus TLS", regime)] for regime in regimes}
        print(f"ratio certstatus TLS / plain, keep-alive           = {ratio(ours['keep-alive'], figures[('certstatus plain', 'keep-alive')])}"
              "  target >= 0.5")
        for regime, result in ours.items():
            print(f"ratio certstatus / nginx TLS, {regime:31s} = {ratio(result, figures[('nginx TLS', regime)])}  target >= 0.5")
        print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
