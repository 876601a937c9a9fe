"""10 000 000 certificates in the store, requests spread uniformly over 1 000 000 of them, against 100 000.

    flock /work/bench.lock .venv/bin/python bench/big_store.py [--size 10000000] [--spread 1000000]
        [--base 100000] [--runs 3] [--seconds 10] [--keep /tmp/big-store]

Two servers, one CA each (ECDSA P-256 delegated responder, live mode, the default; SQLite store),
one worker each, both pinned to core 0, wrk -t2 -c64 on core 1:

* base: ``--base`` (100 000) issued certificates in the store, requests over all of them;
* big: ``--size`` (10 000 000) issued certificates, requests spread uniformly over ``--spread``
  (1 000 000) of them (every tenth serial of the range).

1 in 100 serials is also revoked. The issued and revoked rows go into the store's ``issued`` and
``revoked`` tables with SQL (sorted executemany in one transaction, progress printed), as
bench/memory.py writes them, after ``serve`` imported the fixture's small index.txt: ``serve``'s
start-up import would replace rows of an index it did not read. Live mode, because there every
request reads its status rows from the store (one lookup on the primary key of a 10 M-row table):
a store lookup that grows with the store shows in req/s; precomputed mode would need 20 M signed
responses first.

Printed: per run and as medians of ``--runs`` (alternating between the two servers, so a busy
spell hits both), req/s, p99 and requests per CPU-second; the worker's peak RSS (VmHWM) after the
load; the ratio big/base. Targets: ratio ≥ 0.70, worker ≤ 200 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from common import (
    Fixture, certstatus_command, children, free_port, make_fixture, median_result, need, peak_rss_mb, port_config,
    server, wrk, write_requests,
)  # fmt: skip
from memory import serial, synthesize


def fill(store: Path, issuer_id: int, count: int) -> float:
    """Insert ``count`` issued serials (1 in 100 also revoked) for ``issuer_id``; print progress; return seconds."""
    started = time.monotonic()

    def progress(done: int) -> None:
        elapsed = time.monotonic() - started
        print(f"  {done:,}/{count:,} rows ({elapsed:.0f} s, {done / max(elapsed, 1e-9):,.0f} rows/s)", flush=True)

    synthesize(store, issuer_id, count, progress=progress)
    with sqlite3.connect(store, isolation_level=None, timeout=60) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the worker reads the file, not a WAL of gigabytes
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--spread", type=int, default=1_000_000)
    parser.add_argument("--base", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--keep", help="write the stores in this folder and keep them")
    args = parser.parse_args()
    need("wrk", "taskset")
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="certstatus-big-store-"))
    setups = {"base": (args.base, args.base), "big": (args.size, args.spread)}
    print(f"== live ECDSA P-256, one worker on core 0, POST without nonce, wrk -t2 -c64 -d{args.seconds}s on core 1; "
          f"base: {args.base:,} certificates, requests over all; big: {args.size:,} certificates, requests over "
          f"{args.spread:,} of them ==", flush=True)  # fmt: skip
    servers, contexts = {}, []
    try:
        for name, (size, spread) in setups.items():
            fixture = make_fixture(folder / name, "ec", 1000, workers=1)
            step = max(1, size // spread)
            sample = Fixture(fixture.folder, fixture.pki, [serial(i) for i in range(0, size, step)][:spread],
                             fixture.index, fixture.config, "ec")  # fmt: skip
            requests = write_requests(sample, fixture.folder / "requests.txt", method="POST", nonce=False)
            port = free_port()
            context = server(certstatus_command(port_config(fixture, port, 1)), port)
            process = context.__enter__()
            contexts.append(context)
            with sqlite3.connect(fixture.folder / "store.sqlite3") as db:
                issuer_id = db.execute("SELECT id FROM issuers WHERE name = 'bench'").fetchone()[0]
            print(f"# {name}: writing {size:,} issued rows", flush=True)
            seconds = fill(fixture.folder / "store.sqlite3", issuer_id, size)
            size_mb = sum(p.stat().st_size for p in fixture.folder.glob("store.sqlite3*")) / 1e6
            print(f"# {name}: {size:,} rows in {seconds:.0f} s ({size / seconds:,.0f} rows/s), store {size_mb:,.0f} MB",
                  flush=True)  # fmt: skip
            workers = [pid for pid in children(process.pid)
                       if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # fmt: skip
            servers[name] = (port, requests, process, workers)
        results: dict[str, list] = {name: [] for name in setups}
        for run in range(args.runs):
            for name, (port, requests, process, _) in servers.items():
                result = wrk(port, requests, seconds=args.seconds, server_pid=process.pid)
                results[name].append(result)
                print(f"run {run + 1} {name:4s}: {result}", flush=True)
        figures = {}
        for name, (port, requests, process, workers) in servers.items():
            figures[name] = median_result(results[name])
            rss = " / ".join(f"{peak_rss_mb(pid):.0f}" for pid in workers)
            print(f"{name:4s} ({setups[name][0]:>10,} certificates, requests over {setups[name][1]:>9,}): "
                  f"{figures[name]}  worker peak RSS {rss} MB, supervisor {peak_rss_mb(process.pid):.0f} MB")
        big, base = figures["big"], figures["base"]
        print(f"ratio big/base = {big.rps / base.rps:.2f} (per CPU-second "
              f"{big.per_cpu_second / max(base.per_cpu_second, 1e-9):.2f})  target >= 0.70")
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)
    print(f"(load average at the end: {os.getloadavg()[0]:.1f})")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
