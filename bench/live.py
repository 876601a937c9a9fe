"""Live signing: certstatus vs `openssl ocsp` (and -multi 2) vs the raw signing rate of the key.

    .venv/bin/python bench/live.py [--runs 3] [--seconds 10] [--keys ec,rsa]

Every request is a POST with a fresh nonce (so every response is signed),
100 000 distinct serials of one CA, rotated by wrk (bench/rotate.lua, -t2 -c64).
Two layouts, each measured ``--runs`` times, medians printed:

* one core: the server pinned to core 0 (certstatus with 1 worker,
  `openssl ocsp -multi 1`), wrk on core 1; raw rate = signatures/s of one
  process on core 0;
* both cores: certstatus with 2 workers and `openssl ocsp -multi 2`, unpinned,
  wrk unpinned; raw rate = two signing processes, one per core, at once.

`openssl ocsp` runs with -multi (its children are replaced if wrk's address
probe makes one spin: see bench/peers.py).
Targets (issue 3): ECDSA P-256 both cores ≥ 1.5× openssl -multi 2; RSA-2048
≥ 90 % of the raw signing rate on the cores used.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import (
    best_of, certstatus_command, free_port, import_store, make_fixture, need, port_config,
    raw_sign_rate, server, wrk, write_requests,
)  # fmt: skip
from peers import openssl_responder

KEY_NAMES = {"ec": "ECDSA P-256", "rsa": "RSA-2048"}


def measure(fixture, requests: Path, args) -> dict[str, object]:
    results: dict[str, list] = {}

    def run(name, start, *, cpus_load):
        def once():
            port = free_port()
            with start(port):
                return wrk(port, requests, seconds=args.seconds, cpus=cpus_load)

        results.setdefault(name, []).append(once())

    def certstatus(workers, cpus):
        def start(port):
            return server(certstatus_command(port_config(fixture, port, workers)), port, cpus=cpus)

        return start

    def openssl(multi, cpus):
        def start(port):
            return openssl_responder(fixture, port, multi=multi, cpus=cpus)

        return start

    for _ in range(args.runs):
        run("certstatus 1 core", certstatus(1, "0"), cpus_load="1")
        run("openssl ocsp -multi 1, 1 core", openssl(1, "0"), cpus_load="1")
        run("certstatus 2 workers", certstatus(2, None), cpus_load=None)
        run("openssl ocsp -multi 2", openssl(2, None), cpus_load=None)
    return {name: best_of_list(values) for name, values in results.items()}


def best_of_list(values):
    ordered = sorted(values, key=lambda r: r.rps)
    return ordered[len(ordered) // 2], values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--count", type=int, default=100_000, help="distinct serials")
    parser.add_argument("--keys", default="ec,rsa")
    args = parser.parse_args()
    need("wrk", "taskset", "openssl", "nginx")
    with tempfile.TemporaryDirectory(prefix="certstatus-live-") as tmp:
        for key_type in args.keys.split(","):
            fixture = make_fixture(Path(tmp) / key_type, key_type, args.count)
            import_store(fixture)
            requests = write_requests(fixture, Path(tmp) / key_type / "requests.txt", method="POST", nonce=True)
            raw_one = sorted(raw_sign_rate(fixture.pki.ocsp_key, ["0"]) for _ in range(args.runs))[args.runs // 2]
            raw_two = sorted(raw_sign_rate(fixture.pki.ocsp_key, ["0", "1"]) for _ in range(args.runs))[args.runs // 2]
            figures = measure(fixture, requests, args)
            report(KEY_NAMES[key_type], figures, raw_one, raw_two, args)


def report(key_name: str, figures, raw_one: float, raw_two: float, args) -> None:
    print(f"\n== live signing, {key_name} responder key, POST with nonce, {args.count} serials, "
          f"wrk -t2 -c64 -d{args.seconds}s, medians of {args.runs} runs ==")
    for name, (median_run, runs) in figures.items():
        all_runs = " / ".join(f"{r.rps:.0f}" for r in runs)
        print(f"{name:32s} {median_run}   (runs: {all_runs})")
    cs1 = figures["certstatus 1 core"][0].rps
    cs2 = figures["certstatus 2 workers"][0].rps
    os1 = figures["openssl ocsp -multi 1, 1 core"][0].rps
    os2 = figures["openssl ocsp -multi 2"][0].rps
    print(f"{'raw signing, 1 core':32s} {raw_one:9.0f} sig/s")
    print(f"{'raw signing, 2 cores':32s} {raw_two:9.0f} sig/s")
    print(f"ratio certstatus/openssl, 1 core:              {cs1 / os1:5.2f}x")
    print(f"ratio certstatus 2 workers/openssl -multi 2:   {cs2 / os2:5.2f}x")
    print(f"certstatus 1 core / raw signing 1 core:        {cs1 / raw_one:6.1%}")
    print(f"certstatus 2 workers / raw signing 2 cores:    {cs2 / raw_two:6.1%}")


if __name__ == "__main__":
    main()
