"""What a new connection costs the HTTP edge, by part: CPU per request with ``Connection: close``
against keep-alive, and where the difference goes.

    .venv/bin/python bench/connection_cost.py [--seconds 5] [--runs 3] [--no-strace]

A precomputed CA (2 000 serials) is served by one event loop on core 0 — the worker's own
code (:func:`certstatus.server.workers.run_worker`'s parts: the application, the edge cache,
:class:`~certstatus.server.connection.HttpProtocol`) run in this script's child process, so it
can be measured from inside — after one warm-up pass, so every request is an edge hit and
what differs between the two modes is the connection. wrk (-t1 -c32, core 1) sends POST
requests rotated over the serials, keep-alive, then ``Connection: close``.

Printed, medians of ``--runs``:

1. server CPU per request (user and system, from ``/proc``) in each mode; close − keep-alive
   is what a connection costs us;
2. the Python parts of one ``Connection: close`` request, timed inside the server with
   ``perf_counter_ns`` wrappers (wall time of each call, kernel time of the system calls it
   makes included, e.g. the send in ``transport.write``; a second, instrumented server: its
   total is higher by the wrappers' cost, printed): protocol object creation (parser included), ``connection_made``
   (deadline, connection set, limit), parsing (the httptools callbacks), the edge lookup
   (its hit metrics included), the answer's write and close request, ``connection_lost``,
   the once-a-second sweep and metrics flush; the httptools parser's creation alone is
   timed apart. What is left of the server's CPU (user + system) is uvloop, libuv and the
   kernel outside those calls (accept, transport creation and teardown, epoll, the loop's
   iterations, TCP);
3. system calls per connection (``strace -c -f`` on the server during a shorter close run;
   counts only, strace's own slowdown is not a figure);
4. nginx serving one stored response as a static file under the same load: its CPU per
   request in both modes, and so per connection;
5. the protocol's Python alone, in this process on an in-memory transport (no sockets, no
   kernel, steady on a busy machine): a close request on a new connection against the same
   request on an open one.

Benchmarks are never timed tests (STYLE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    LOAD_CPU, PYTHON, ROTATE_LUA, SERVER_CPU, raw_requests, children, free_port, generate, make_fixture,
    stored_responses, taskset, wait_port, warm, write_requests,
)  # fmt: skip
from peers import nginx_static

#: Names of the timed parts, in the order printed, with what each holds.
PARTS = {
    "protocol": "HttpProtocol() (object, httptools parser, per-request fields)",
    "connection_made": "connection_made (deadline, connection set, limit check)",
    "parse": "parsing (httptools feed and callbacks, request fields)",
    "edge_lookup": "edge cache lookup (hit: key, join, hit metrics)",
    "write_close": "answer write + close request (transport.write/close)",
    "connection_lost": "connection_lost (set discard, teardown)",
    "sweep": "sweeps and metrics flush (amortised)",
}


# --- the server (child process) -------------------------------------------------------------


def child(config: Path, port: int, results: Path, instrument: bool) -> None:
    """Serve ``config``'s CAs on 127.0.0.1:``port`` in this process (one event loop) until SIGTERM;
    on SIGUSR1 write counters and CPU times to ``results`` (JSON)."""
    import asyncio
    import resource
    import socket as socketlib

    import httptools
    import uvloop

    from certstatus.app import build_application
    from certstatus.config import load_config
    from certstatus.server.listen import BACKLOG
    from certstatus.server.overload import OverloadGuard
    from certstatus.server.connection import HttpProtocol, ServerState

    settings = load_config(config)
    application = build_application(settings)
    guard = OverloadGuard(settings.server.max_connections, settings.server.max_in_flight)
    state = ServerState(application.responder, client_timeout=settings.server.client_timeout, guard=guard)
    totals = {name: 0 for name in PARTS}
    counts = {"connections": 0, "requests": 0}
    protocol_class = HttpProtocol

    if instrument:
        clock = time.perf_counter_ns

        def timed(name: str, function):
            def wrapper(*args, **kwargs):
                started = clock()
                try:
                    return function(*args, **kwargs)
                finally:
                    totals[name] += clock() - started
            return wrapper

        class Timed(HttpProtocol):
            __init__ = timed("protocol", HttpProtocol.__init__)
            connection_made = timed("connection_made", HttpProtocol.connection_made)
            data_received = timed("parse", HttpProtocol.data_received)
            connection_lost = timed("connection_lost", HttpProtocol.connection_lost)

            def _answer(self, *args):  # its time is taken out of "parse" (which holds it)
                started = clock()
                before = totals["edge_lookup"]
                HttpProtocol._answer(self, *args)
                spent = clock() - started
                totals["parse"] -= spent
                totals["write_close"] += spent - (totals["edge_lookup"] - before)

        if state.edge is not None:
            state.edge.lookup = timed("edge_lookup", state.edge.lookup)
        state.flush_metrics = timed("sweep", state.flush_metrics)
        protocol_class = Timed

    def count_connection(*args):
        counts["connections"] += 1
        return protocol_class(*args)

    def snapshot(*_):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        answered = sum(connection.answered for connection in state.connections) + closed["answered"]
        results.write_text(json.dumps({**counts, "requests": answered, "user": usage.ru_utime,
                                       "system": usage.ru_stime, "parts": totals}))

    closed = {"answered": 0}
    lost = protocol_class.connection_lost

    def connection_lost(self, exc):
        if self in state.connections:
            closed["answered"] += self.answered
        lost(self, exc)

    protocol_class.connection_lost = connection_lost

    parser_ns = min(_time_parser(httptools, HttpProtocol) for _ in range(5))
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    sock = socketlib.socket()
    sock.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(BACKLOG)
    sock.setblocking(False)

    async def serve() -> None:
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, snapshot)
        server = await loop.create_server(lambda: count_connection(state, loop), sock=sock)
        state.start_sweeping(loop)
        await stop.wait()
        server.close()
        state.stop_sweeping()

    totals["parser_alone"] = parser_ns
    loop.run_until_complete(serve())


def _time_parser(httptools, protocol_class, count: int = 20000) -> float:
    """ns to create one httptools request parser (the protocol's callbacks bound), best of a batch."""
    target = protocol_class.__new__(protocol_class)
    started = time.perf_counter_ns()
    for _ in range(count):
        httptools.HttpRequestParser(target)
    return (time.perf_counter_ns() - started) / count


# --- the measuring side ---------------------------------------------------------------------------


def proc_cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def read_snapshot(process: subprocess.Popen, results: Path) -> dict:
    results.unlink(missing_ok=True)
    process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            return json.loads(results.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.02)
    raise RuntimeError("the server wrote no counters")


def run_wrk(port: int, requests: Path, seconds: int, close: bool) -> int:
    """Run wrk -t1 -c32 (core 1); return the requests answered without an error status."""
    command = taskset(LOAD_CPU, ["wrk", "-t1", "-c32", f"-d{seconds}s", "--timeout", "10s", "-s", str(ROTATE_LUA),
                                 f"http://127.0.0.1:{port}/", "--", str(requests), "close" if close else "keepalive"])
    output = subprocess.run(command, capture_output=True, check=True, text=True, timeout=seconds + 60).stdout
    fields = dict(item.split("=") for item in re.search(r"RESULT (.*)", output).group(1).split())
    return int(fields["requests"]) - int(fields["status"])


def measure(process, results: Path, port: int, requests: Path, seconds: int, close: bool) -> dict:
    """Per request: user and system µs of the server, its parts' µs (instrumented server)."""
    before = read_snapshot(process, results)
    user0, system0 = proc_cpu(process.pid)
    run_wrk(port, requests, seconds, close)
    time.sleep(0.3)  # the last connections close
    after = read_snapshot(process, results)
    user1, system1 = proc_cpu(process.pid)
    n = after["requests"] - before["requests"]
    return {
        "requests": n,
        "connections": after["connections"] - before["connections"],
        "user": (user1 - user0) * 1e6 / n,
        "system": (system1 - system0) * 1e6 / n,
        "parts": {k: (after["parts"][k] - before["parts"][k]) / 1000 / n for k in PARTS},
        "parser_alone": after["parts"]["parser_alone"] / 1000,
    }


def start_child(folder: Path, config: Path, instrument: bool):
    port = free_port()
    results = folder / f"results-{port}.json"
    command = taskset(SERVER_CPU, [PYTHON, __file__, "--child", str(config), str(port), str(results)]
                      + (["--instrument"] if instrument else []))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port, process)
    return process, port, results


def syscalls(process, results: Path, port: int, requests: Path, seconds: int, folder: Path) -> dict[str, float]:
    """System calls per connection of a close run under ``strace -c -f``."""
    output = folder / "strace.txt"
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(output), "-p", str(process.pid)],
                              stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    before = read_snapshot(process, results)
    run_wrk(port, requests, seconds, True)
    time.sleep(0.3)
    after = read_snapshot(process, results)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)
    connections = max(1, after["connections"] - before["connections"])
    calls = {}
    for line in output.read_text().splitlines():
        match = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
        if match and match.group(2) != "total":
            calls[match.group(2)] = int(match.group(1)) / connections
    return calls


def nginx_per_request(folder: Path, response: bytes, requests: Path, seconds: int) -> dict[str, dict]:
    """nginx serving ``response`` as a static file (bench/peers.py), same load: CPU µs per request
    (user and system of its master and worker) with keep-alive and with close."""
    figures = {}
    port = free_port()
    with nginx_static(folder / f"nginx-{port}", port, response) as process:
        for mode in ("keep-alive", "close"):
            before = [proc_cpu(pid) for pid in (process.pid, *children(process.pid))]
            answered = run_wrk(port, requests, seconds, mode == "close")
            time.sleep(0.3)
            after = [proc_cpu(pid) for pid in (process.pid, *children(process.pid))]
            figures[mode] = {"user": sum(a[0] - b[0] for a, b in zip(after, before)) * 1e6 / answered,
                             "system": sum(a[1] - b[1] for a, b in zip(after, before)) * 1e6 / answered}
    return figures


class _Transport:
    """An in-memory transport: the protocol's Python alone, without sockets or the kernel."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def python_side(config: Path, requests: Path, rounds: int = 7) -> dict[str, float]:
    """µs of the protocol's own Python (best of ``rounds`` passes over the requests, edge hits, an
    in-memory transport, this process): a ``Connection: close`` request on a new connection (object,
    connection_made, the request, connection_lost), the same request on an open connection, and
    the protocol object alone."""
    import asyncio

    from certstatus.app import build_application
    from certstatus.config import load_config
    from certstatus.server.overload import OverloadGuard
    from certstatus.server.connection import HttpProtocol, ServerState

    settings = load_config(config)
    application = build_application(settings, watch=False)
    try:
        state = ServerState(application.responder, guard=OverloadGuard(settings.server.max_connections, 64))
        loop = asyncio.new_event_loop()
        keep = raw_requests(requests, 8080)
        close = [r.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1) for r in keep]
        transport = _Transport()

        def new_connection(request: bytes) -> None:
            protocol = HttpProtocol(state, loop)
            protocol.connection_made(transport)
            protocol.data_received(request)
            protocol.connection_lost(None)

        open_connection = HttpProtocol(state, loop)
        open_connection.connection_made(transport)

        def best(function, items) -> float:
            times = []
            for _ in range(rounds):
                started = time.perf_counter_ns()
                for item in items:
                    function(item)
                times.append((time.perf_counter_ns() - started) / len(items) / 1000)
            return min(times)

        for request in close:  # every answer into the edge cache
            new_connection(request)
        return {"new connection, close": best(new_connection, close),
                "open connection": best(open_connection.data_received, keep),
                "object alone": best(lambda _: HttpProtocol(state, loop), keep)}
    finally:
        application.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=2000, help="distinct serials")
    parser.add_argument("--no-strace", dest="strace", action="store_false")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--instrument", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config, port, results = args.child
        child(Path(config), int(port), Path(results), args.instrument)
        return
    with tempfile.TemporaryDirectory(prefix="certstatus-connection-") as tmp:
        folder = Path(tmp)
        fixture = make_fixture(folder / "ec", "ec", args.count, extra_ca='mode = "precomputed"\n', revoked_every=10)
        generate(fixture)
        requests = write_requests(fixture, folder / "post.txt", method="POST", nonce=False)
        plain: dict[str, list[dict]] = {"keep-alive": [], "close": []}
        timed: list[dict] = []
        calls: dict[str, float] = {}
        for run in range(args.runs):
            for instrument in (False, True):
                process, port, results = start_child(folder, fixture.config, instrument)
                try:
                    warm(port, requests)  # every answer in the edge cache: the request itself is a hit
                    if instrument:
                        timed.append(measure(process, results, port, requests, args.seconds, True))
                    else:
                        for mode in plain:
                            plain[mode].append(measure(process, results, port, requests, args.seconds, mode == "close"))
                        if run == 0 and args.strace and shutil.which("strace"):
                            calls = syscalls(process, results, port, requests, max(1, args.seconds // 2), folder)
                finally:
                    process.terminate()
                    process.wait(timeout=15)
        python = python_side(fixture.config, requests)
        nginx = []
        if shutil.which("nginx"):
            os.chmod(tmp, 0o755)  # nginx's workers (another user) read the static response below it
            response = next(iter(stored_responses(fixture).values()))
            nginx = [nginx_per_request(folder, response, requests, args.seconds) for _ in range(args.runs)]
        report(plain, timed, calls, python, nginx, args)


def report(plain: dict, timed: list[dict], calls: dict[str, float], python: dict[str, float], nginx: list[dict],
           args) -> None:
    def med(rows, key):
        return statistics.median(row[key] for row in rows)

    print(f"== per-connection cost of the HTTP edge: edge hits, POST, server on core 0, wrk -t1 -c32 "
          f"-d{args.seconds}s on core 1, medians of {args.runs} runs ==")
    for mode, rows in plain.items():
        print(f"{mode:10s} server CPU per request: user {med(rows, 'user'):6.1f} µs + system {med(rows, 'system'):6.1f} µs "
              f"= {med(rows, 'user') + med(rows, 'system'):6.1f} µs   ({med(rows, 'requests'):.0f} requests, "
              f"{med(rows, 'connections'):.0f} connections)")
    user = med(plain["close"], "user") - med(plain["keep-alive"], "user")
    system = med(plain["close"], "system") - med(plain["keep-alive"], "system")
    print(f"per connection (close − keep-alive): user {user:6.1f} µs + system {system:6.1f} µs = {user + system:6.1f} µs")
    if nginx:
        cpu = {mode: statistics.median(run[mode]["user"] + run[mode]["system"] for run in nginx) for mode in nginx[0]}
        print(f"nginx static, same load: keep-alive {cpu['keep-alive']:6.1f} µs, close {cpu['close']:6.1f} µs per request"
              f" -> per connection {cpu['close'] - cpu['keep-alive']:6.1f} µs")
    print("-- the protocol's Python alone (in-memory transport, best of 7 passes, µs) --")
    print(f"  Connection: close request on a new connection {python['new connection, close']:6.2f}; the same request on "
          f"an open connection {python['open connection']:6.2f}; per connection "
          f"{python['new connection, close'] - python['open connection']:6.2f} (HttpProtocol() alone "
          f"{python['object alone']:5.2f})")
    print("-- one Connection: close request, by part (instrumented server, µs per request) --")
    total_parts = 0.0
    for name, label in PARTS.items():
        value = statistics.median(row["parts"][name] for row in timed)
        total_parts += value
        print(f"  {label:62s} {value:6.2f}")
    print(f"  {'  of which: one httptools parser created, alone':62s} {med(timed, 'parser_alone'):6.2f}")
    instrumented = med(timed, "user") + med(timed, "system")
    print(f"  {'Python parts together (kernel time of their own calls included)':62s} {total_parts:6.2f}")
    print(f"  {'rest: uvloop/libuv and kernel outside them (see below)':62s} {instrumented - total_parts:6.2f}")
    print("    (accept4, TCPTransport with its setsockopt/getsockname/getpeername, epoll registration, "
          "loop iterations, TCP handshake and teardown, close)")
    print(f"  (instrumented server: user + system {instrumented:.1f} µs per request against "
          f"{med(plain['close'], 'user') + med(plain['close'], 'system'):.1f} µs uninstrumented: the wrappers' own cost)")
    if calls:
        shown = sorted(calls.items(), key=lambda item: -item[1])
        print("-- system calls per connection (strace -c -f, close run) --")
        print("  " + ", ".join(f"{name} {count:.2f}" for name, count in shown if count >= 0.05)
              + f"   (total {sum(calls.values()):.1f})")


if __name__ == "__main__":
    sys.exit(main())
