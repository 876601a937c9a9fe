#!/usr/bin/env python3
"""Where a live request's server CPU goes, part by part: certstatus against ``openssl ocsp``.

    .venv/bin/python bench/live_profile.py                       # ECDSA P-256, Connection: close, ~2 minutes
    .venv/bin/python bench/live_profile.py --key-type rsa --connection keep-alive

The set-up of ``bench/load.py`` (the same demo PKI, index.txt and request mix, one
certstatus worker or one ``openssl ocsp`` process on core 0, wrk on core 1 rotating the
requests), then per responder and run:

1. a wrk run of ``--seconds`` with nothing else attached: the server's CPU time per request
   (user + system of the serving process, from /proc, over wrk's requests);
2. a second wrk run under ``perf record -e cpu-clock --call-graph dwarf`` on the serving
   process: every sample is given to the first part (below) found anywhere on its call
   stack, kernel frames included, so a system call counts in the part that made it.

The figure of a part is its share of the samples times the CPU per request of the run
before it; each figure is the median of ``--runs`` runs, the parts of each responder add
up to its whole. ``kernel`` is the part of it spent in the kernel. The parts are read
from symbols: certstatus's from uvloop's, httptools', sqlite3's and cryptography's
(``__pymethod_sign__``); OpenSSL's from libcrypto's exported functions (the ``openssl``
binary is stripped: its own code shows as the calls it makes). Needs ``perf`` and the
right to profile the processes (root, or ``kernel.perf_event_paranoid`` ≤ 1).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import children, cpu_seconds  # bench/ is the script's folder, first on sys.path
from load import (
    HOST,
    TASKSET,
    WRK,
    WRK_SCRIPT,
    Server,
    free_port,
    make_requests,
    openssl_command,
    pinned,
    serve_command,
    write_bodies,
)

try:
    from certstatus.demo_pki import make_demo_pki
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from certstatus.demo_pki import make_demo_pki

PERF = shutil.which("perf") or "/usr/bin/perf"

#: certstatus's parts: (name, a regular expression over a sample's whole call stack); the first that matches takes the sample.
OURS = [
    ("signature (cryptography's sign: hash + ECDSA/RSA)", r"__pymethod_sign__"),
    ("store lookup (sqlite3, its system calls)", r"_pysqlite_query_execute|pysqlite_cursor_"),
    ("response write (uvloop, kernel TCP send)", r"UVStream_write|UVStream__exec_write"),
    ("close (connection_lost, uvloop, kernel close)", r"_call_connection_lost|UVStream__close|uv__stream_close|UVHandle__close"),
    ("accept, connection_made (uvloop, kernel, protocol)", r"uv__server_io|streamserver_on_listen|StreamServer__on_listen"),
    ("answer path in Python (responder: parse, plan, encode, render)", r"cb_on_message_complete"),
    ("HTTP parse (httptools, header callbacks)", r"HttpParser_13feed_data"),
    ("read (uvloop, kernel)", r"uv__read"),
    ("event loop (epoll, io_uring, handles, timers)", r"uv__io_poll|uv_run|uv__run_|epoll|io_uring"),
]
#: OpenSSL's responder (apps/ocsp.c): the same parts, by libcrypto's exported functions and system calls.
THEIRS = [
    ("signature (OCSP_basic_sign_ctx: ResponseData DER, hash, ECDSA/RSA)", r"OCSP_basic_sign"),
    ("response write (BIO_write, kernel TCP send)", r"BIO_write|ksys_write|tcp_sendmsg"),
    ("close (BIO_free, kernel close)", r"__x64_sys_close|BIO_free|closesocket"),
    ("accept (BIO_accept, kernel)", r"accept"),
    ("request read + parse (BIO_read, HTTP, d2i)", r"ASN1_item_d2i_bio|BIO_read|ksys_read|BIO_gets|OSSL_HTTP"),
    ("index.txt check per request (stat)", r"fstatat|__x64_sys_stat|newfstatat"),
    ("response build (OCSP_*, X509_*, i2d, TXT_DB lookup)", r"OCSP_|i2d|X509_|TXT_DB"),
    ("HTTP headers (BIO_printf)", r"BIO_printf|BIO_vprintf"),
]


def serving_pid(process: subprocess.Popen, is_ours: bool) -> int:
    """The process that serves: OpenSSL's own, or certstatus's worker (the supervisor's spawned child)."""
    if not is_ours:
        return process.pid
    for pid in children(process.pid):
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise SystemExit("no certstatus worker process found")


def wrk(port: int, folder: Path, connection: str, seconds: float) -> subprocess.Popen:
    command = pinned([WRK, "-t2", "-c64", f"-d{round(seconds)}s", "--timeout", "5s", "-s", str(folder / "rotate.lua"),
                      f"http://{HOST}:{port}/", "--", str(folder / "requests.bin"), connection], 1, bool(TASKSET))  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def requests_of(run: subprocess.Popen) -> int:
    output = run.communicate()[0]
    match = re.search(r"WRK_RESULT requests=(\d+)", output)
    if run.returncode != 0 or not match:
        raise SystemExit(f"wrk failed ({run.returncode}):\n{output}")
    return int(match.group(1))


def classify(data: Path, parts: list[tuple[str, str]]) -> tuple[collections.Counter, collections.Counter, int]:
    """Samples per part (whole, and with a kernel frame at the top) of one perf recording."""
    script = subprocess.run([PERF, "script", "-i", str(data), "-F", "ip,sym,dso"], capture_output=True, text=True, check=True)
    whole: collections.Counter = collections.Counter()
    kernel: collections.Counter = collections.Counter()
    total = 0
    rules = [(name, re.compile(pattern)) for name, pattern in parts]
    for sample in script.stdout.split("\n\n"):
        frames = sample.strip()
        if not frames:
            continue
        total += 1
        name = next((name for name, rule in rules if rule.search(frames)), "other")
        whole[name] += 1
        if "kernel.kallsyms" in frames.splitlines()[0]:
            kernel[name] += 1
    return whole, kernel, total


def profile(server: Server, is_ours: bool, parts, folder: Path, args) -> dict[str, list[tuple[float, float]]]:
    """Per part, per run: (µs per request, of which kernel µs)."""
    figures: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for run in range(args.runs):
        # A fresh process for each wrk run: OpenSSL 3.0's responder spins on the connections a finished
        # wrk run leaves in its listen backlog (bench/load.py); certstatus is started the same way.
        server.start()
        try:
            pid = serving_pid(server.process, is_ours)
            before = cpu_seconds(pid)
            count = requests_of(wrk(server.port, folder, args.connection, args.seconds))
            per_request = (cpu_seconds(pid) - before) / max(count, 1) * 1e6
            server.check_alive()
        finally:
            server.stop()
        server.start()
        try:
            pid = serving_pid(server.process, is_ours)
            load = wrk(server.port, folder, args.connection, args.seconds + 2)
            time.sleep(1)
            data = folder / f"perf-{server.name.split()[0]}-{run}.data"
            subprocess.run([PERF, "record", "-q", "-e", "cpu-clock", "-F", "999", "--call-graph", "dwarf,16384",
                            "-p", str(pid), "-o", str(data), "--", "sleep", str(args.seconds)],
                           capture_output=True, check=True)  # fmt: skip
            requests_of(load)
            server.check_alive()
        finally:
            server.stop()
        whole, kernel, total = classify(data, parts)
        data.unlink()
        for name, _ in [*parts, ("other", "")]:
            figures[name].append((whole[name] / total * per_request, kernel[name] / total * per_request))
        figures["whole request"].append((per_request, sum(kernel.values()) / total * per_request))
        print(f"# {server.name} run {run + 1}: {per_request:.1f} µs CPU per request, {total} samples", flush=True)
    return figures


def report(name: str, figures: dict[str, list[tuple[float, float]]]) -> None:
    print(f"{name}: µs of server CPU per request, median of {len(figures['whole request'])} runs (kernel part)")
    for part, values in figures.items():
        whole = statistics.median(v[0] for v in values)
        kernel = statistics.median(v[1] for v in values)
        print(f"  {part:<68} {whole:6.1f}  ({kernel:5.1f})   runs: {', '.join(f'{v[0]:.1f}' for v in values)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--key-type", choices=["ec", "rsa"], default="ec", help="demo PKI keys (default ec = P-256)")
    parser.add_argument("--connection", choices=["close", "keep-alive"], default="close",
                        help="wrk's requests (default close: one connection per request)")  # fmt: skip
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="runs per responder (default 3)")
    parser.add_argument("--requests", type=int, default=2000, help="distinct request bodies (default 2000)")
    args = parser.parse_args()
    for program in (WRK, PERF):
        if not Path(program).exists():
            print(f"{program} is not installed", file=sys.stderr)
            return 2
    folder = Path(tempfile.mkdtemp(prefix="certstatus-live-profile-"))
    try:
        pki = make_demo_pki(folder / "pki", key_type=args.key_type)
        requests = make_requests(pki, args.requests, folder)
        write_bodies(folder / "requests.bin", requests.plain)
        (folder / "rotate.lua").write_text(WRK_SCRIPT)
        print(f"# {len(requests.plain)} distinct requests, {args.key_type} keys, {args.connection}; server on core 0, "
              f"wrk -t2 -c64 on core 1; {args.runs} runs of {args.seconds} s per responder", flush=True)  # fmt: skip
        port = free_port()
        ours = profile(Server("certstatus", pinned(serve_command(folder, pki, port, 1), 0, bool(TASKSET)), port, folder,
                              requests.plain[0]), True, OURS, folder, args)  # fmt: skip
        port = free_port()
        theirs = profile(Server("openssl ocsp", pinned(openssl_command(pki, port), 0, bool(TASKSET)), port, folder,
                                requests.plain[0]), False, THEIRS, folder, args)  # fmt: skip
        report("certstatus", ours)
        report("openssl ocsp", theirs)
        mine = statistics.median(v[0] for v in ours["whole request"])
        other = statistics.median(v[0] for v in theirs["whole request"])
        print(f"ratio of CPU per request certstatus/openssl = {mine / other:.2f}   (requests per CPU-second: {other / mine:.2f})")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
