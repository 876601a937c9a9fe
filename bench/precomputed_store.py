"""Precomputed serving from PostgreSQL vs SQLite, with the answer caches off and on.

    .venv/bin/python bench/precomputed_store.py [--runs 3] [--seconds 8] [--count 100000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

One CA with ``--count`` issued serials (mode = "precomputed", ECDSA P-256) is
generated twice with ``certstatus generate``: into an SQLite file and into a
PostgreSQL schema of its own (created on ``--postgres``, dropped at the end).
Each store is served by ``certstatus serve`` (HTTP edge, one worker,
core 0) and loaded by wrk (bench/rotate.lua, -t2 -c64, core 1) with POST
requests without nonce for every serial, rotated:

* caches off (``response_cache_bytes = 0``): every request reads its
  pre-signed response from the store — PostgreSQL is a loopback round trip,
  SQLite a read of the file;
* caches on (the edge answer cache sized for every answer, one warm-up pass
  first): requests are answered from the worker's memory; the store is not
  read.

The PostgreSQL server is not pinned: it competes for the two cores with
certstatus and wrk, so the figures include its CPU. Requests per CPU-second
of certstatus are printed beside req/s. Before measuring, a sample of
answers of each server is compared byte for byte with its store.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from common import (
    PYTHON, certstatus_command, free_port, load_arguments, make_fixture, median_result, need, port_config, postgres_schema,
    check_same_bytes,
    server, warm, wrk, write_requests,
)  # fmt: skip

from certstatus.signing.keys import load_certificates
from certstatus.store.factory import open_store

#: Seconds between a server's start and its measured run: its background generator starts, checks that
#: nothing is left to sign (on core 0 too), and sleeps.
SETTLE_SECONDS = 6

#: Cache bytes per serial when the caches are on (an edge entry is ~1.35 kB with the responder certificate).
CACHE_BYTES_PER_SERIAL = 2000


def with_database(fixture, database: str | Path, name: str):
    """The fixture with a config naming ``database`` (written beside the original)."""
    config = fixture.folder / f"certstatus-{name}.toml"
    config.write_text(re.sub(r'database = "[^"]*"', f'database = "{database}"', fixture.config.read_text()))
    return replace(fixture, config=config)


def with_cache(fixture, cache_bytes: int, name: str):
    config = fixture.folder / f"certstatus-{name}.toml"
    config.write_text(re.sub(r"response_cache_bytes = \d+", f"response_cache_bytes = {cache_bytes}", fixture.config.read_text()))
    return replace(fixture, config=config)


def generate(fixture) -> None:
    done = subprocess.run([PYTHON, "-m", "certstatus", "generate", "--config", str(fixture.config)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"certstatus generate failed:\n{done.stderr}")
    match = re.search(r"([\d,]+) responses in ([\d.]+) s", done.stderr)
    print(f"# generated {match[1]} responses in {match[2]} s into {fixture.config.name}", flush=True)


def check_served_from(port: int, fixture, database) -> None:
    """:func:`check_same_bytes` against the store's responses (certificates spliced back), read as asked."""
    ca = load_certificates(fixture.pki.ca_cert)[0]
    store = open_store(database)
    try:
        issuer_id = store.register_issuer("bench", ca.public_bytes(Encoding.DER))

        def expected(serial: int) -> bytes | None:
            stored = store.precomputed(issuer_id, serial, "sha1")
            return None if stored is None else stored.der

        check_same_bytes(port, fixture, expected, str(database))
    finally:
        store.close()


def main() -> None:
    parser = load_arguments(__doc__)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL server (a schema is created there and dropped)")  # fmt: skip
    args = parser.parse_args()
    need("wrk", "taskset")
    with tempfile.TemporaryDirectory(prefix="certstatus-store-") as tmp, postgres_schema(args.postgres, "bench_store") as pg:
        base = make_fixture(Path(tmp) / "ec", "ec", args.count, extra_ca='mode = "precomputed"\n', revoked_every=10,
                            extra_server="response_cache_bytes = 0")  # fmt: skip
        subprocess.run([PYTHON, "-m", "certstatus", "db", "upgrade", "--db", pg], check=True, capture_output=True)
        stores = {"sqlite": (with_database(base, base.folder / "store.sqlite3", "sqlite"), base.folder / "store.sqlite3"),
                  "postgres": (with_database(base, pg, "postgres"), pg)}  # fmt: skip
        for fixture, _ in stores.values():
            generate(fixture)
        requests = write_requests(base, Path(tmp) / "post.txt", method="POST", nonce=False)
        variants = {
            f"{store} caches {state}": (with_cache(fixture, cache, f"{store}-{state}"), database)
            for store, (fixture, database) in stores.items()
            for state, cache in (("off", 0), ("on", CACHE_BYTES_PER_SERIAL * args.count))
        }
        for fixture, database in variants.values():
            port = free_port()
            with server(certstatus_command(port_config(fixture, port, 1)), port):
                check_served_from(port, fixture, database)
        print(f"== precomputed serving, {args.count} serials (POST, no nonce), certstatus HTTP edge on core 0, "
              f"wrk -t2 -c64 -d{args.seconds}s on core 1, PostgreSQL unpinned, medians of {args.runs} runs ==")
        print("# sanity: every variant answered its store's responses byte for byte (sample of 50)")
        runs: dict[str, list] = {name: [] for name in variants}
        for _ in range(args.runs):  # interleaved, so that a busy spell hits every variant
            for name, (fixture, _) in variants.items():
                port = free_port()
                with server(certstatus_command(port_config(fixture, port, 1)), port) as process:
                    time.sleep(SETTLE_SECONDS)  # the background generator's first pass (nothing to sign) is over
                    if name.endswith(" on"):
                        warm(port, requests)  # every answer in the edge cache before the measured run
                    runs[name].append(wrk(port, requests, seconds=args.seconds, server_pid=process.pid))
        figures = {}
        for name, results in runs.items():
            figures[name] = median_result(results)
            print(f"{name:22s} {figures[name]}   (runs: {' / '.join(f'{r.rps:.0f}' for r in results)})", flush=True)
        for state in ("off", "on"):
            pg_fig, lite = figures[f"postgres caches {state}"], figures[f"sqlite caches {state}"]
            print(f"ratio PostgreSQL/SQLite, caches {state:3s} = {pg_fig.rps / lite.rps:5.2f}  "
                  f"(per certstatus CPU-second {pg_fig.per_cpu_second / lite.per_cpu_second:5.2f})")
        print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
