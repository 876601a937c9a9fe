"""Precomputed serving: certstatus vs CFSSL `ocspserve` vs nginx serving one static file.

    .venv/bin/python bench/precomputed.py [--runs 3] [--seconds 10] [--count 100000]

``certstatus generate`` signs every status of a CA with 100 000 issued
serials (mode = "precomputed"); the SHA-1 responses it stored are exported,
unchanged, to CFSSL's response file (one base64 DER per line), and one of them
is nginx's static file. wrk (bench/rotate.lua, -t2 -c64, core 1) sends POST
requests without nonce for the 100 000 serials, rotated (POST: CFSSL's GET
handler of that version fails on base64 holding '+' or a leading '/'); every server runs on
core 0 (certstatus with one worker). Before measuring, a sample of answers from
certstatus and CFSSL is compared byte for byte with the stored responses.

Steady state: before each measured run, every server gets one warm-up pass sending
each request once (pipelined on one connection), and certstatus's ``server.response_cache_bytes``
is sized to hold every answer (2 kB per serial; CFSSL holds every response in
memory too, nginx one file). Peak RSS is printed beside each figure.

Targets: keep-alive ≥ 4× CFSSL and ≥ 50 % of nginx, p99 < 5 ms;
``Connection: close`` ≥ 2× CFSSL. Peak RSS (VmHWM) of each server is printed.

The headline keep-alive figures are wrk -t2 -c64, as the targets are stated. Both wrk threads
share core 1, so a connection's latency includes the time its thread waits while the other
runs; after each keep-alive run, every server is therefore also measured, on the same warm
process, with wrk -t1 -c64 (one thread, no such wait), printed as an extra line: a p99 that
falls with -t1 for every server alike was the load generator's, not the server's.
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from pathlib import Path

from common import (
    load_arguments,
    median_result, certstatus_command, children, free_port, generate, make_fixture, need, peak_rss_mb, port_config,
    check_same_bytes, server, stored_responses, warm, wrk, write_requests,
)  # fmt: skip
from peers import cfssl_ocspserve, nginx_static


#: certstatus's ``server.response_cache_bytes`` per serial: an edge entry (request, headers, DER of
#: ~760 bytes with the responder certificate) is counted at ~1.35 kB; the working set must fit.
CACHE_BYTES_PER_SERIAL = 2000


def main() -> None:
    parser = load_arguments(__doc__)
    parser.add_argument("--servers", help="comma-separated names of the servers to measure (default: all; "
                                          "the ratios are printed when certstatus, CFSSL and nginx are among them)")
    args = parser.parse_args()
    need("wrk", "taskset", "nginx", "cfssl")
    with tempfile.TemporaryDirectory(prefix="certstatus-precomputed-") as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers (another user) read the static response below it
        fixture = make_fixture(
            Path(tmp) / "ec", "ec", args.count, extra_ca='mode = "precomputed"\n', revoked_every=10,
            extra_server=f"response_cache_bytes = {CACHE_BYTES_PER_SERIAL * args.count}",  # every answer fits, as in CFSSL
        )
        generate(fixture)
        stored = stored_responses(fixture)
        missing = [s for s in fixture.serials if s not in stored]
        if missing:
            sys.exit(f"the generator left {len(missing)} serials without a response")
        responses_file = Path(tmp) / "cfssl-responses.txt"
        responses_file.write_text("".join(base64.b64encode(stored[s]).decode() + "\n" for s in fixture.serials))
        requests = write_requests(fixture, Path(tmp) / "post.txt", method="POST", nonce=False)

        candidates = {
            "certstatus": lambda port: server(certstatus_command(port_config(fixture, port, 1)), port),
            "cfssl ocspserve": lambda port: cfssl_ocspserve(responses_file, port),
            "nginx static": lambda port: nginx_static(Path(tmp) / f"nginx-{port}", port, stored[fixture.serials[0]]),
        }
        if args.servers:
            chosen = [name.strip() for name in args.servers.split(",")]
            unknown = [name for name in chosen if name not in candidates]
            if unknown:
                sys.exit(f"unknown server(s) {', '.join(unknown)}: choose among {', '.join(candidates)}")
            candidates = {n: c for n, c in candidates.items() if n in chosen}
        for name in [n for n in candidates if n != "nginx static"]:
            port = free_port()
            with candidates[name](port):
                check_same_bytes(port, fixture, stored.get, name)
        print(f"== precomputed serving, {args.count} serials (POST, no nonce), server on core 0, "
              f"wrk -t2 -c64 -d{args.seconds}s on core 1 (keep-alive also -t1), medians of {args.runs} runs ==")
        print("# sanity: certstatus (every server) and CFSSL answered the stored responses byte for byte (sample of 50)")
        figures = {}
        for close in (False, True):
            mode = "Connection: close" if close else "keep-alive"
            runs: dict[str, list] = {name: [] for name in candidates}
            one_thread: dict[str, list] = {name: [] for name in candidates}
            rss: dict[str, list[float]] = {name: [] for name in candidates}
            for _ in range(args.runs):  # interleaved, so that a busy spell hits every server
                for name, start in candidates.items():
                    port = free_port()
                    with start(port) as process:
                        warm(port, requests)  # every request once: caches start the measured run warm
                        runs[name].append(wrk(port, requests, seconds=args.seconds, close=close,
                                              server_pid=process.pid))
                        if not close:  # the same server, warm, with one wrk thread (module docstring)
                            one_thread[name].append(wrk(port, requests, seconds=args.seconds, threads=1,
                                                        server_pid=process.pid))
                        pids = [pid for pid in children(process.pid)
                                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()] or [process.pid]
                        rss[name].append(max(peak_rss_mb(pid) for pid in pids))
            for name, results in runs.items():
                figures[(name, close)] = median_result(results)
                print(f"{name:18s} {mode:18s} {figures[(name, close)]}   p50 {figures[(name, close)].p50_ms:5.2f} ms   "
                      f"peak RSS {max(rss[name]):5.0f} MB   (runs: {' / '.join(f'{r.rps:.0f}' for r in results)}; "
                      f"p99 {' / '.join(f'{r.p99_ms:.2f}' for r in results)})", flush=True)
            for name, results in one_thread.items():
                if results:
                    single = figures[(name, "-t1")] = median_result(results)
                    print(f"{name:18s} {'keep-alive wrk -t1':18s} {single}   p50 {single.p50_ms:5.2f} ms   "
                          f"(runs: {' / '.join(f'{r.rps:.0f}' for r in results)}; "
                          f"p99 {' / '.join(f'{r.p99_ms:.2f}' for r in results)})", flush=True)
        if not all(n in candidates for n in ("certstatus", "cfssl ocspserve", "nginx static")):
            print(f"(load average at the end: {os.getloadavg()[0]:.1f})")
            return
        ours, cfssl, nginx = (figures[(n, False)] for n in ("certstatus", "cfssl ocspserve", "nginx static"))
        ours_close, cfssl_close = figures[("certstatus", True)], figures[("cfssl ocspserve", True)]

        def ratio(a, b) -> str:
            per_cpu = a.per_cpu_second / b.per_cpu_second if b.per_cpu_second else float("nan")
            return f"{a.rps / b.rps:5.2f}  (per CPU-second {per_cpu:5.2f})"

        print(f"ratio certstatus/CFSSL keep-alive          = {ratio(ours, cfssl)}  target >= 4")
        print(f"ratio certstatus/nginx keep-alive          = {ratio(ours, nginx)}  target >= 0.5")
        print(f"certstatus p99 keep-alive                  = {ours.p99_ms:5.2f} ms  target < 5   "
              f"(nginx {nginx.p99_ms:.2f} ms; wrk -t1: certstatus {figures[('certstatus', '-t1')].p99_ms:.2f} ms, "
              f"nginx {figures[('nginx static', '-t1')].p99_ms:.2f} ms)")
        print(f"ratio certstatus/CFSSL Connection: close   = {ratio(ours_close, cfssl_close)}  target >= 2")
        print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
