"""Peak RSS per worker with 1 M and 10 M certificates in the store, under load.

    .venv/bin/python bench/memory.py [--sizes 1000000,10000000] [--seconds 10] [--mode live]

For each size: a demo PKI and ``certstatus serve`` with 2 workers; then that
many issued serials (1 % of them also revoked) are written straight into the
SQLite store's ``issued``/``revoked`` tables (an import of the same rows would
take minutes and measure the importer, not the server); wrk
sends 100 000 distinct requests spread over the whole serial range (GET, no
nonce) for ``--seconds``; then VmHWM (peak resident set) of every worker is
read from /proc. With ``--mode precomputed`` (or cached) the store is first
filled by ``certstatus generate`` (needs the precomputed mode).

Target (issue 3): ≤ 200 MB RSS per worker with 10 M certificates.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from common import (
    PYTHON, Fixture, certstatus_command, children, free_port, make_fixture, need, peak_rss_mb,
    port_config, server, wrk, write_requests,
)  # fmt: skip

from certstatus.store.base import serial_key

_MASK = (1 << 126) - 1
_ODD = 0x9E3779B97F4A7C15F39CC0605CEDC835 & _MASK | 1  # multiplying by an odd number mod 2^126: distinct serials


def serial(i: int) -> int:
    """The i-th synthesized serial: 127-bit positive, spread over the range, all distinct."""
    return (1 << 126) | ((i * _ODD) & _MASK)


def synthesize(store: Path, issuer_id: int, count: int, chunk: int = 1_000_000) -> None:
    """Insert ``count`` issued serials (1 in 100 revoked) for ``issuer_id`` straight into the store."""
    db = sqlite3.connect(store, isolation_level=None)
    db.execute("PRAGMA cache_size = -1000000")  # 1 GB page cache while writing
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    revoked_at = int(time.time()) - 86400
    for start in range(0, count, chunk):
        keys = sorted(serial_key(serial(i)) for i in range(start, min(count, start + chunk)))
        db.executemany("INSERT OR IGNORE INTO issued(issuer_id, serial, source) VALUES (?, ?, 'index')",
                       ((issuer_id, key) for key in keys))  # fmt: skip
        db.executemany(
            "INSERT OR IGNORE INTO revoked(issuer_id, serial, source, revocation_time, reason) "
            "VALUES (?, ?, 'index', ?, 1)",
            ((issuer_id, key, revoked_at) for key in keys[::100]),
        )
    db.execute("UPDATE sources SET entries = ? WHERE issuer_id = ? AND kind = 'index'", (count, issuer_id))
    db.execute("COMMIT")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--mode", default="live", choices=["live", "precomputed", "cached"])
    parser.add_argument("--keep", help="write the stores in this folder and keep them")
    args = parser.parse_args()
    need("wrk")
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="certstatus-memory-"))
    extra = "" if args.mode == "live" else f'mode = "{args.mode}"\n'
    print(f"== peak RSS per worker (VmHWM), 2 workers, mode {args.mode}, GET without nonce, "
          f"wrk -t2 -c64 -d{args.seconds}s over 100000 distinct serials ==")
    for size in (int(s) for s in args.sizes.split(",")):
        fixture = make_fixture(folder / f"n{size}", "ec", 1000, workers=2, extra_ca=extra)
        store = fixture.folder / "store.sqlite3"
        step = max(1, size // 100_000)
        sample = Fixture(fixture.folder, fixture.pki, [serial(i) for i in range(0, size, step)][:100_000],
                         fixture.index, fixture.config, "ec")  # fmt: skip
        requests = write_requests(sample, fixture.folder / "requests.txt", method="GET", nonce=False)
        port = free_port()
        # `serve` imports the 1000-line index first; the synthesized rows go in after it, so that
        # the start-up import (which replaces the index rows) does not remove them.
        with server(certstatus_command(port_config(fixture, port, 2)), port, cpus=None) as process:
            with sqlite3.connect(store) as db:
                issuer_id = db.execute("SELECT id FROM issuers WHERE name = 'bench'").fetchone()[0]
            started = time.monotonic()
            synthesize(store, issuer_id, size)
            written = time.monotonic() - started
            if args.mode != "live":
                subprocess.run([PYTHON, "-m", "certstatus", "generate", "--config", str(fixture.config)], check=True)
            workers = [pid for pid in children(process.pid)
                       if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # fmt: skip
            result = wrk(port, requests, seconds=args.seconds, cpus=None)
            rss = [peak_rss_mb(pid) for pid in workers]
            supervisor = peak_rss_mb(process.pid)
        size_mb = sum(p.stat().st_size for p in fixture.folder.glob("store.sqlite3*")) / 1e6
        print(f"{size:>10} certificates: store {size_mb:7.0f} MB (written in {written:.0f} s); "
              f"workers peak RSS {' / '.join(f'{r:.0f}' for r in rss)} MB, supervisor {supervisor:.0f} MB; "
              f"{result}")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f}; stores in {folder})" if args.keep else
          f"(load average at the end: {os.getloadavg()[0]:.1f})")
    if not args.keep:
        import shutil  # noqa: PLC0415

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
