"""Peak RSS per worker with 1 M and 10 M certificates in the store, under load.

    .venv/bin/python bench/memory.py [--sizes 1000000,10000000] [--seconds 10] [--mode live]

For each size: a demo PKI and ``certstatus serve`` with 2 workers; then that
many issued serials (1 % of them also revoked) are written straight into the
SQLite store's ``issued``/``revoked`` tables (an import of the same rows would
take minutes and measure the importer, not the server); wrk
sends 100 000 distinct requests spread over the whole serial range (GET, no
nonce) for ``--seconds``; then VmHWM (peak resident set) of every worker is
read from /proc.

With ``--mode precomputed`` (or cached) every serial also gets its row of
pre-signed responses: the 100 000 serials wrk asks for are signed for real
by ``certstatus generate --no-import`` (real responses, served byte for
byte); the other rows are SYNTHESIZED — each one a copy of the SHA-1 and
SHA-256 responses of one real serial of the same CA (compact form, the same
size as a real row, never requested), written with one INSERT ... SELECT.
Signing 20 M responses for real would take ~15 minutes of both cores;
what the figure is about — a store of that size under the serving
workers — is the same. The line per size gives the served req/s too, and
the last line the ratio of the largest size to the smallest (serving speed
must not drop with the store's size).

Target: ≤ 200 MB RSS per worker with 10 M certificates.
"""

from __future__ import annotations

import argparse
import os
import re
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


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[16])


def synthesize_precomputed(store: Path, issuer_id: int, real: list[int]) -> int:
    """Give every issued serial of ``issuer_id`` a row of pre-signed responses, except ``real``.

    Each synthesized row copies the responses of one serial the server
    already signed (its start-up generation of the fixture's index), so it
    has the size and form of a real row; its renewal is a year away, so no
    generator touches it. The serials in ``real`` are left missing for
    ``certstatus generate`` to sign for real. Returns the rows written.
    """
    db = sqlite3.connect(store, isolation_level=None, timeout=60)
    db.execute("PRAGMA cache_size = -1000000")
    db.execute("BEGIN IMMEDIATE")
    template = db.execute(
        "SELECT sha1, sha256, certs_id, this_update, next_update, signed_seq FROM precomputed "
        "WHERE issuer_id = ? AND certs_id IS NOT NULL AND changed_seq <= signed_seq LIMIT 1",
        (issuer_id,),
    ).fetchone()
    renew = int(time.time()) + 365 * 86400
    written = db.execute(
        "INSERT OR IGNORE INTO precomputed(issuer_id, serial, sha1, sha256, certs_id, this_update, next_update, "
        "renew_at, signed_seq, changed_seq) SELECT DISTINCT ?, serial, ?, ?, ?, ?, ?, ?, ?, 0 FROM issued "
        "WHERE issuer_id = ? ORDER BY serial",
        (issuer_id, *template[:5], renew, template[5], issuer_id),
    ).rowcount
    db.executemany("DELETE FROM precomputed WHERE issuer_id = ? AND serial = ?",
                   ((issuer_id, serial_key(number)) for number in real))  # fmt: skip
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the workers read the file, not a WAL of gigabytes
    db.close()
    return written - len(real)


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
    rates: list[tuple[int, float]] = []
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
            presigned = ""
            if args.mode != "live":
                started = time.monotonic()
                synthesized = synthesize_precomputed(store, issuer_id, sample.serials)
                # --no-import: an import of the fixture's index would replace the synthesized serials.
                done = subprocess.run(
                    [PYTHON, "-m", "certstatus", "generate", "--config", str(fixture.config), "--no-import"],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                signed = re.search(r"([\d,]+) responses in", done.stderr)
                presigned = (f"; pre-signed rows: {signed[1] if signed else '?'} responses signed for the requested "
                             f"serials, {synthesized:,} rows synthesized ({time.monotonic() - started:.0f} s)")
            rates.append((size, 0.0))
            spawned = [pid for pid in children(process.pid)
                       if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # fmt: skip
            # The background generator is spawned too; it runs at nice 10 (generator.schedule.NICENESS).
            generators = [pid for pid in spawned if _nice(pid) > 0]
            workers = [pid for pid in spawned if pid not in generators]
            result = wrk(port, requests, seconds=args.seconds, cpus=None)
            rates[-1] = (size, result.rps)
            rss = [peak_rss_mb(pid) for pid in workers]
            supervisor = peak_rss_mb(process.pid)
            generator = " / ".join(f"{peak_rss_mb(pid):.0f}" for pid in generators)
        size_mb = sum(p.stat().st_size for p in fixture.folder.glob("store.sqlite3*")) / 1e6
        print(f"{size:>10} certificates: store {size_mb:7.0f} MB (written in {written:.0f} s); "
              f"workers peak RSS {' / '.join(f'{r:.0f}' for r in rss)} MB, supervisor {supervisor:.0f} MB"
              f"{f', background generator {generator} MB' if generator else ''}; "
              f"{result}{presigned}")
    if len(rates) > 1:
        (small, small_rate), (large, large_rate) = min(rates), max(rates)
        print(f"served req/s with {large:,} certificates / with {small:,}: {large_rate / small_rate:.2f}")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f}; stores in {folder})" if args.keep else
          f"(load average at the end: {os.getloadavg()[0]:.1f})")
    if not args.keep:
        import shutil  # noqa: PLC0415

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
