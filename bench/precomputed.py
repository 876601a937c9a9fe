"""Precomputed serving: certstatus vs CFSSL `ocspserve` vs nginx serving one static file.

    .venv/bin/python bench/precomputed.py [--runs 3] [--seconds 10] [--count 100000] [--one-thread]

``certstatus generate`` signs every status of a CA with 100 000 issued
serials (mode = "precomputed"); the SHA-1 responses it stored are exported,
unchanged, to CFSSL's response file (one base64 DER per line), and one of them
is nginx's static file. wrk (bench/rotate.lua, -t2 -c64, core 1) sends requests
without nonce for the 100 000 serials, rotated (POST: CFSSL's GET handler of that
version fails on base64 holding '+' or a leading '/'); every server runs on core 0
(certstatus with one worker). Before measuring, a sample of answers from certstatus
and CFSSL is compared byte for byte with the stored responses.

Rows, each server started afresh for each run:

* ``certstatus`` — the headline: the default configuration and no warm-up pass, as a
  user starts it (POST, and GET for the GET/POST ratio);
* ``certstatus warmed`` — labelled as such: ``server.response_cache_bytes`` sized to
  every answer (2 kB per serial) and one warm-up pass sending each request once
  (pipelined on one connection) before the measured run: the steady state of a
  server whose cache holds the whole working set;
* CFSSL (every response in memory from its start) and nginx (one file), unwarmed.

Targets (ratios in the same run, default configuration): keep-alive ≥ 4× CFSSL and
≥ 40 % of nginx, p99 < 5 ms, GET ≥ 90 % of POST; ``Connection: close`` ≥ 2× CFSSL and
≥ 60 % of nginx. The warmed ratios are printed beside. Peak RSS (VmHWM) of each
server is printed.

``--one-thread`` adds, after each keep-alive run, a run with wrk -t1 -c64 on the same
process: both wrk threads of -t2 share core 1, so a connection's latency includes the
time its thread waits while the other runs; a p99 that falls with -t1 for every server
alike was the load generator's, not the server's.
"""

from __future__ import annotations

import base64
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from common import (
    load_arguments,
    median_result, certstatus_command, children, free_port, generate, make_fixture, need, peak_rss_mb, port_config,
    check_same_bytes, server, stored_responses, warm, wrk, write_requests,
)  # fmt: skip
from peers import cfssl_ocspserve, nginx_static


#: The warmed row's ``server.response_cache_bytes`` per serial: an edge entry (request, headers, DER of
#: ~760 bytes with the responder certificate) is counted at ~1.35 kB; the working set must fit.
CACHE_BYTES_PER_SERIAL = 2000
#: Rows whose server gets a warm-up pass before each measured run.
WARMED = ("certstatus warmed",)


def with_cache_bytes(config: Path, cache_bytes: int) -> Path:
    """A copy of ``config`` (beside it) whose ``[server]`` sets ``response_cache_bytes``."""
    path = config.with_name(f"{config.stem}-cache-{cache_bytes}.toml")
    path.write_text(re.sub(r"(?m)^\[server\]\n", f"[server]\nresponse_cache_bytes = {cache_bytes}\n",
                           config.read_text(), count=1))
    return path


def main() -> None:
    parser = load_arguments(__doc__)
    parser.add_argument("--servers", help="comma-separated names of the servers to measure (default: all; "
                                          "the ratios are printed when certstatus, CFSSL and nginx are among them)")
    parser.add_argument("--one-thread", action="store_true",
                        help="after each keep-alive run, also measure the same process with wrk -t1 (module docstring)")
    args = parser.parse_args()
    need("wrk", "taskset", "nginx", "cfssl")
    with tempfile.TemporaryDirectory(prefix="certstatus-precomputed-") as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers (another user) read the static response below it
        fixture = make_fixture(Path(tmp) / "ec", "ec", args.count, extra_ca='mode = "precomputed"\n', revoked_every=10)
        generate(fixture)
        stored = stored_responses(fixture)
        missing = [s for s in fixture.serials if s not in stored]
        if missing:
            sys.exit(f"the generator left {len(missing)} serials without a response")
        responses_file = Path(tmp) / "cfssl-responses.txt"
        responses_file.write_text("".join(base64.b64encode(stored[s]).decode() + "\n" for s in fixture.serials))
        posts = write_requests(fixture, Path(tmp) / "post.txt", method="POST", nonce=False)
        gets = write_requests(fixture, Path(tmp) / "get.txt", method="GET", nonce=False)

        logs: dict[int, Path] = {}  # port -> the certstatus server's log (its edge cache fill's figures)

        def certstatus(cache_bytes: int | None):
            def start(port):
                config = port_config(fixture, port, 1)
                if cache_bytes is not None:
                    config = with_cache_bytes(config, cache_bytes)
                logs[port] = Path(tmp) / f"certstatus-{port}.log"
                return server(certstatus_command(config), port, log=logs[port])
            return start

        candidates = {
            "certstatus": certstatus(None),
            "certstatus warmed": certstatus(CACHE_BYTES_PER_SERIAL * args.count),
            "cfssl ocspserve": lambda port: cfssl_ocspserve(responses_file, port),
            "nginx static": lambda port: nginx_static(Path(tmp) / f"nginx-{port}", port, stored[fixture.serials[0]]),
        }
        if args.servers:
            chosen = [name.strip() for name in args.servers.split(",")]
            unknown = [name for name in chosen if name not in candidates]
            if unknown:
                sys.exit(f"unknown server(s) {', '.join(unknown)}: choose among {', '.join(candidates)}")
            candidates = {n: c for n, c in candidates.items() if n in chosen}
        for name in [n for n in candidates if n not in ("nginx static", "certstatus warmed")]:
            port = free_port()
            with candidates[name](port):
                check_same_bytes(port, fixture, stored.get, name)
        print(f"== precomputed serving, {args.count} serials (no nonce), server on core 0, "
              f"wrk -t2 -c64 -d{args.seconds}s on core 1, medians of {args.runs} runs ==")
        print("# sanity: certstatus and CFSSL answered the stored responses byte for byte (sample of 50)")
        print("# certstatus: default configuration, no warm-up; 'certstatus warmed': cache sized to every "
              f"answer ({CACHE_BYTES_PER_SERIAL} B/serial) and one warm-up pass; peers unwarmed")
        # (row label, server, mode, requests file)
        rows = [(name, name, "keep-alive", posts) for name in candidates]
        if "certstatus" in candidates:
            rows.insert(1, ("certstatus GET", "certstatus", "keep-alive", gets))
        rows += [(name, name, "Connection: close", posts) for name in candidates]
        figures = {}
        runs: dict[tuple, list] = {(label, mode): [] for label, _, mode, _ in rows}
        one_thread: dict[str, list] = {}
        rss: dict[str, list[float]] = {}
        fills: dict[str, list[tuple[float, float] | None]] = {}
        for _ in range(args.runs):  # interleaved, so that a busy spell hits every server
            for label, name, mode, requests in rows:
                port = free_port()
                with candidates[name](port) as process:
                    if name in WARMED:
                        warm(port, requests)  # every request once: the cache starts the measured run warm
                    close = mode == "Connection: close"
                    runs[(label, mode)].append(wrk(port, requests, seconds=args.seconds, close=close,
                                                   server_pid=process.pid))
                    if args.one_thread and not close:
                        one_thread.setdefault(label, []).append(
                            wrk(port, requests, seconds=args.seconds, threads=1, server_pid=process.pid))
                    pids = [pid for pid in children(process.pid)
                            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()] or [process.pid]
                    rss.setdefault(label, []).append(max(peak_rss_mb(pid) for pid in pids))
                if port in logs:
                    fills.setdefault(label, []).append(fill_figures(logs.pop(port)))
        for (label, mode), results in runs.items():
            figure = figures[(label, mode)] = median_result(results)
            print(f"{label:18s} {mode:18s} {figure}   p50 {figure.p50_ms:5.2f} ms   "
                  f"peak RSS {max(rss[label]):5.0f} MB   (runs: {' / '.join(f'{r.rps:.0f}' for r in results)}; "
                  f"p99 {' / '.join(f'{r.p99_ms:.2f}' for r in results)})", flush=True)
        for label, found in fills.items():
            done = [figure for figure in found if figure is not None]
            if done:
                print(f"{label:18s} edge cache fill (beside the run, which starts at the first answer): "
                      f"{statistics.median(f[0] for f in done):.2f} s, {statistics.median(f[1] for f in done):.2f} CPU-s "
                      f"(runs: {' / '.join(f'{f[0]:.2f} s {f[1]:.2f} CPU-s' for f in done)}; "
                      f"{len(found) - len(done)} runs without a finished fill)", flush=True)
        for label, results in one_thread.items():
            single = median_result(results)
            print(f"{label:18s} {'keep-alive wrk -t1':18s} {single}   p50 {single.p50_ms:5.2f} ms   "
                  f"(runs: {' / '.join(f'{r.rps:.0f}' for r in results)}; "
                  f"p99 {' / '.join(f'{r.p99_ms:.2f}' for r in results)})", flush=True)
        if all(n in candidates for n in ("certstatus", "cfssl ocspserve", "nginx static")):
            print_ratios(figures, warmed="certstatus warmed" in candidates)
        print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


def fill_figures(log: Path) -> tuple[float, float] | None:
    """(seconds, CPU seconds) of the edge cache fill the server logged, None when it logged none."""
    found = re.search(r"edge cache fill done in ([\d.]+) s \(([\d.]+) CPU-s\)", log.read_text(errors="replace"))
    return (float(found.group(1)), float(found.group(2))) if found else None


def print_ratios(figures: dict, *, warmed: bool) -> None:
    """The targets' ratios of the default row, each with the warmed row's beside it when measured."""
    keep, close = "keep-alive", "Connection: close"

    def ratio(ours: str, peer: str, mode: str) -> float:
        return figures[(ours, mode)].rps / figures[(peer, mode)].rps

    def line(text: str, value: float, target: str, warm_value: float | None = None, unit: str = "") -> None:
        beside = f"   (warmed {warm_value:5.2f}{unit})" if warm_value is not None else ""
        print(f"{text:44s} = {value:5.2f}{unit}  target {target}{beside}")

    def warmed_ratio(ours_peer_mode) -> float | None:
        return ratio("certstatus warmed", *ours_peer_mode) if warmed else None

    line("ratio certstatus/CFSSL keep-alive", ratio("certstatus", "cfssl ocspserve", keep), ">= 4",
         warmed_ratio(("cfssl ocspserve", keep)))
    line("ratio certstatus/nginx keep-alive", ratio("certstatus", "nginx static", keep), ">= 0.40",
         warmed_ratio(("nginx static", keep)))
    line("certstatus p99 keep-alive", figures[("certstatus", keep)].p99_ms, "< 5",
         figures[("certstatus warmed", keep)].p99_ms if warmed else None, " ms")
    line("ratio certstatus GET/POST keep-alive", figures[("certstatus GET", keep)].rps / figures[("certstatus", keep)].rps,
         ">= 0.90")
    line("ratio certstatus/CFSSL Connection: close", ratio("certstatus", "cfssl ocspserve", close), ">= 2",
         warmed_ratio(("cfssl ocspserve", close)))
    line("ratio certstatus/nginx Connection: close", ratio("certstatus", "nginx static", close), ">= 0.60",
         warmed_ratio(("nginx static", close)))


if __name__ == "__main__":
    main()
