#!/usr/bin/env python3
"""What one live request costs with many CAs against one CA, in-process: CPU µs, its parts, instructions.

    .venv/bin/python bench/many_cas_cost.py --dir /tmp/many-cas [--cas 10000] [--requests 60000] [--runs 3]
        [--callgrind-cas 1000] [--callgrind-requests 6] [--no-callgrind]

The CAs, CRLs, delegated signers and requests of ``bench/many_cas.py`` (the same ``--dir``: the PKI is
made there once and reused). Each configuration (one CA; ``--cas`` CAs) is imported into a SQLite store
once; then a fresh process per measurement builds a worker's Application over it (the store change
watcher included), collects and freezes the garbage collector's objects as a worker does, and feeds
POST requests, request i asking CA i mod N (every tenth a revoked serial), to
:class:`~certstatus.server.connection.HttpProtocol` with a stub transport (the socket calls and the
event loop are not counted), with no warm-up pass. ``--requests`` 60 000 is about what one 10 s run of
``bench/many_cas.py`` asks (6 requests per CA at 10 000 CAs). It prints, medians of ``--runs``:

* ``CPU``: the process's CPU µs per request (``time.process_time`` over the requests);
* the parts, timed around the calls in a separate run (``perf_counter_ns``; each timing adds ~0.2 µs):
  the signer's time window (``LocalStatusSigner._window``), a re-read of the CA's source states
  (``FreshnessGuard.refresh_state``), the store lookup (``StatusReader.lookup``), the signature (the
  key's sign function), and the rest. On a loaded machine the parts move more than the total.

Then, unless ``--no-callgrind``, instructions per request counted by ``valgrind --tool=callgrind``
with one CA and with ``--callgrind-cas`` CAs (building 10 000 CAs' workers under valgrind takes too
long; under valgrind 1 000 CAs are each asked less than once a second too), ``--callgrind-requests``
requests per CA: only the measured requests are counted (``--toggle-collect`` on the C function that
drives them), once all of them and once all but each CA's first, which tells a CA's first request (the
key's first use in the process, ...) from the later ones. Instruction counts do not move with the
machine's load; what many CAs cost in cache misses does not show in them (that is in the CPU µs).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_instructions import _Transport as _StubTransport  # noqa: E402
from many_cas import make_cas, write_requests  # noqa: E402

TOGGLE = "starmap_next"  # the C function of itertools.starmap: only the measured requests run inside it


def _requests(path: Path) -> list[bytes]:
    """The rotate.lua request file as raw HTTP POST requests."""
    data = path.read_bytes()
    raw, pos = [], 0
    while pos < len(data):
        eol = data.index(b"\n", pos)
        length = int(data[pos:eol].split()[2])
        body = data[eol + 1 : eol + 1 + length]
        raw.append(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocsp-request\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body)  # fmt: skip
        pos = eol + 1 + length + 1
    return raw


class _Transport(_StubTransport):
    """bench/live_instructions.py's stub transport, also counting the successful answers."""

    answers = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        _Transport.answers += data.startswith(b"HTTP/1.1 200")


def child(config: Path, requests: Path, count: int, mode: str) -> None:
    """One measured process; prints a JSON line of its figures."""
    import asyncio
    import gc
    import itertools

    from certstatus.app import build_application
    from certstatus.config import load_config
    from certstatus.pipeline.freshness import FreshnessGuard
    from certstatus.pipeline.steps import LocalStatusSigner
    from certstatus.server.connection import HttpProtocol, ServerState

    raw = _requests(requests)
    raw = (raw * (count // len(raw) + 1))[:count]
    application = build_application(load_config(config))  # as a worker's (supervisor/worker.py)
    loop = asyncio.new_event_loop()
    protocol = HttpProtocol(ServerState(application.responder), loop)
    protocol.connection_made(_Transport())
    gc.collect()  # as a worker does once start-up is done (server/workers.py)
    gc.freeze()
    parts: dict[str, int] = {}
    if mode == "parts":
        perf = time.perf_counter_ns

        def timed(name, function):
            parts[name] = 0

            def wrapper(*args, **kwargs):
                started = perf()
                try:
                    return function(*args, **kwargs)
                finally:
                    parts[name] += perf() - started

            return wrapper

        LocalStatusSigner._window = timed("window", LocalStatusSigner._window)
        FreshnessGuard.refresh_state = timed("states", FreshnessGuard.refresh_state)
        store = application.store
        store.lookup = timed("lookup", store.lookup)
        for ca in application.registry.cas:
            for signer in ca.signers.signers:
                signer._sign = timed("signature", signer._sign)
    if mode.startswith("callgrind"):
        skip = int(mode.partition(":")[2] or 0)  # requests answered first, not counted
        for request in raw[:skip]:
            protocol.data_received(request)
        list(itertools.starmap(protocol.data_received, ((request,) for request in raw[skip:])))
        print(json.dumps({"answers": _Transport.answers}))
        return
    started = time.process_time()
    for request in raw:
        protocol.data_received(request)
    cpu = time.process_time() - started
    print(json.dumps({"cpu_us": cpu / count * 1e6, "answers": _Transport.answers,
                      **{name: ns / count / 1000 for name, ns in parts.items()}}))  # fmt: skip


def run_child(config: Path, requests: Path, count: int, mode: str, out: Path | None = None) -> tuple[dict, int | None]:
    command = [sys.executable, __file__, "--child", str(config), str(requests), "--requests", str(count), "--mode", mode]
    if mode.startswith("callgrind"):
        command = ["valgrind", "--tool=callgrind", "--collect-atstart=no", f"--toggle-collect={TOGGLE}",
                   f"--callgrind-out-file={out}", *command]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"child failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["answers"] != count:
        raise SystemExit(f"{figures['answers']} of {count} answers successful")
    instructions = None
    if mode.startswith("callgrind"):
        instructions = int(re.search(r"Collected : (\d+)", result.stderr).group(1))
    return figures, instructions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cas", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, required=False)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--callgrind-cas", type=int, default=1000)
    parser.add_argument("--callgrind-requests", type=int, default=6,
                        help="requests per CA under callgrind (6: what a 10 s run of bench/many_cas.py asks of 10 000 CAs)")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--tag", default="", help="added to the names of the callgrind files written into --dir")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(*args.child, args.requests, args.mode)
        return
    if args.dir is None:
        parser.error("--dir is required (the PKI of bench/many_cas.py is made there once and reused)")
    from certstatus.app import prepare
    from certstatus.config import load_config

    pki = args.dir / f"pki-{args.cas}"
    pki.mkdir(parents=True, exist_ok=True)
    cas = make_cas(pki, args.cas)
    tables = (pki / "cas.toml").read_text().split("\n[ca.")[1:]

    def setup(count: int) -> tuple[Path, Path]:
        config = args.dir / f"cost-{count}.toml"
        store = args.dir / f"cost-store-{count}.sqlite3"
        requests = args.dir / f"cost-requests-{count}.txt"
        if not store.exists():
            config.write_text(f'[server]\nworkers = 1\ndatabase = "{store}"\n' + "".join("\n[ca." + t for t in tables[:count]))
            prepare(load_config(config), log_refusals=True)
            write_requests(requests, cas[:count])
        return config, requests

    counts = [1, args.cas]
    setups = {count: setup(count) for count in counts}
    if args.runs:
        print(f"== in-process cost of a live request, {args.requests:,} requests per run, request i asks CA i mod N ==",
              flush=True)  # fmt: skip
        results: dict[int, dict[str, list[float]]] = {count: {} for count in counts}
        for run in range(args.runs):
            for count in counts:
                cpu, _ = run_child(*setups[count], args.requests, "cpu")
                parts, _ = run_child(*setups[count], args.requests, "parts")
                figures = {"cpu_us": cpu["cpu_us"], **{k: v for k, v in parts.items() if k not in ("answers", "cpu_us")}}
                figures["rest"] = parts["cpu_us"] - sum(parts[k] for k in ("window", "states", "lookup", "signature"))
                for name, value in figures.items():
                    results[count].setdefault(name, []).append(value)
                print(f"run {run + 1} {count:>6} CAs: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()), flush=True)
        print(f"== medians of {args.runs} runs, µs per request ==")
        print(f"{'':>12} {'CPU':>7} {'window':>7} {'states':>7} {'lookup':>7} {'sign':>7} {'rest':>7}")
        medians = {count: {k: statistics.median(v) for k, v in results[count].items()} for count in counts}
        for count in counts:
            m = medians[count]
            print(f"{count:>6} CAs: {m['cpu_us']:7.1f} {m['window']:7.1f} {m['states']:7.1f} {m['lookup']:7.1f} {m['signature']:7.1f} {m['rest']:7.1f}")
        one, many = medians[1], medians[args.cas]
        print(f"difference: {many['cpu_us'] - one['cpu_us']:7.1f} {many['window'] - one['window']:7.1f} {many['states'] - one['states']:7.1f} "
              f"{many['lookup'] - one['lookup']:7.1f} {many['signature'] - one['signature']:7.1f} {many['rest'] - one['rest']:7.1f}")
        print(f"CPU per request, 1 CA / {args.cas} CAs = {one['cpu_us'] / many['cpu_us']:.2f}")
    if args.no_callgrind:
        return
    print(f"== callgrind: {args.callgrind_requests} requests per CA, request i asking CA i mod N ==", flush=True)
    counted = {}
    for count in (1, args.callgrind_cas):
        config, requests = setup(count)
        total = args.callgrind_requests * count if count > 1 else args.callgrind_requests * args.callgrind_cas
        _, every = run_child(config, requests, total, "callgrind", args.dir / f"callgrind{args.tag}.{count}.out")
        _, later = run_child(config, requests, total, f"callgrind:{count}", args.dir / f"callgrind{args.tag}.{count}.later.out")
        counted[count] = (every / total, later / (total - count), (every - later) / count)
        print(f"{count:>6} CAs: {counted[count][0]:10,.0f} instructions per request; after each CA's first request "
              f"{counted[count][1]:10,.0f}; a CA's first request {counted[count][2]:10,.0f}", flush=True)  # fmt: skip
    one, many = counted[1], counted[args.callgrind_cas]
    print(f"difference: {many[0] - one[0]:10,.0f} per request; {many[1] - one[1]:10,.0f} after each CA's first")

if __name__ == "__main__":
    main()
