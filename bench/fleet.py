"""Fleet over PostgreSQL: change propagation between processes, and lookup latency against SQLite.

Three figures, each printed beside its baseline from the same run:

1. lookup: ``StatusStore.lookup`` in µs per call (median of ``--runs`` runs of
   ``--lookups`` random serials, half present), PostgreSQL vs SQLite holding the
   same ``--rows`` revoked + issued rows; the ratio PostgreSQL/SQLite.
2. notify: a write committed in this process → the :class:`ChangeWatcher` of
   another process publishes it (ms; median, p95, max of ``--changes``), over
   PostgreSQL LISTEN/NOTIFY, beside SQLite's counter polling (every 0.2 s).
3. import (with ``--import-rows N``): ``replace_source`` of N revoked entries (s),
   first import and re-import of a changed list, PostgreSQL (COPY) beside SQLite.
4. fleet: a revocation committed to the shared store → a second
   ``certstatus serve`` process answers ``revoked`` over HTTP (ms; median of
   ``--changes`` toggles of one serial between revoked and good).

Uses a schema of its own on the test server (created and dropped here).

    .venv/bin/python bench/fleet.py [--server postgresql://postgres@127.0.0.1:5432/test]
        [--rows 100000] [--lookups 5000] [--changes 20] [--runs 3] [--import-rows 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.postgres import SERVER, fresh_schema  # noqa: E402
from tests.servers import free_port, start_server  # noqa: E402

from certstatus.demo_pki import make_demo_pki  # noqa: E402
from certstatus.model import RevokedEntry
from certstatus.store.base import SourceState  # noqa: E402
from certstatus.store.factory import open_store  # noqa: E402

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

_WATCHER = """
import sys, time
from certstatus.store.changes import ChangeHub, ChangeWatcher
hub = ChangeHub()
hub.subscribe(lambda c: print(c.issuer_id, c.counter, repr(time.time()), flush=True))
ChangeWatcher(sys.argv[1], hub).start()
print("ready", flush=True)
sys.stdin.read()
"""


def _fill(store, rows: int) -> int:
    issuer = store.register_issuer("bench", b"bench-ca")
    revoked = [RevokedEntry(2 * i, NOW - dt.timedelta(hours=1), x509.ReasonFlags.key_compromise) for i in range(rows)]
    store.replace_source(issuer, SourceState("index", "bench", NOW, rows), issued=range(0, 4 * rows, 2), revoked=revoked)
    return issuer


def bench_lookup(databases: dict[str, object], rows: int, lookups: int, runs: int) -> None:
    rng = random.Random(1)
    serials = [rng.randrange(0, 4 * rows) for _ in range(lookups)]  # even ones exist, odd ones do not
    figures: dict[str, list[float]] = {}
    for name, database in databases.items():
        store = open_store(database)
        issuer = _fill(store, rows)
        for serial in serials[:200]:  # warm caches and prepared statements
            store.lookup(issuer, serial)
        for _ in range(runs):
            start = time.perf_counter()
            for serial in serials:
                store.lookup(issuer, serial)
            figures.setdefault(name, []).append((time.perf_counter() - start) / lookups * 1e6)
        store.close()
    for name, values in figures.items():
        print(f"lookup {name:10s}: {statistics.median(values):7.1f} µs/lookup (runs: {', '.join(f'{v:.1f}' for v in values)})")
    ratio = statistics.median(figures["postgresql"]) / statistics.median(figures["sqlite"])
    print(f"lookup ratio postgresql/sqlite: {ratio:.2f}")


def bench_import(databases: dict[str, object], rows: int) -> None:
    entries = [RevokedEntry(0x10_0000_0000 + 7919 * i, NOW - dt.timedelta(days=1), x509.ReasonFlags.key_compromise) for i in range(rows)]
    changed = entries[rows // 100 :] + [RevokedEntry(7, NOW)]  # 1 % dropped, one added
    for name, database in databases.items():
        store = open_store(database)
        issuer = store.register_issuer("import", b"import-ca")
        times = []
        for revoked in (entries, changed):
            start = time.perf_counter()
            store.replace_source(issuer, SourceState("crl", "bench", NOW, len(revoked), NOW, NOW, 1), revoked=revoked)
            times.append(time.perf_counter() - start)
        store.close()
        print(f"import {name:10s}: {rows} entries first import {times[0]:.1f} s, re-import {times[1]:.1f} s")


def bench_notify(name: str, database, changes: int) -> None:
    writer = open_store(database)
    issuer = writer.register_issuer("notify", b"notify-ca")
    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert watcher.stdout.readline().strip() == "ready"
    delays = []
    try:
        for i in range(changes):
            writer.replace_source(issuer, SourceState("issued", "bench", NOW, 1), issued=[i])
            committed = time.time()
            counter = writer.change_counters()[issuer]
            while True:
                got_issuer, got_counter, at = watcher.stdout.readline().split()
                if int(got_issuer) == issuer and int(got_counter) >= counter:
                    break
            delays.append((float(at) - committed) * 1000)
            time.sleep(random.uniform(0.02, 0.08))
    finally:
        watcher.stdin.close()
        watcher.wait(10)
        writer.close()
    delays.sort()
    p95 = delays[min(len(delays) - 1, int(len(delays) * 0.95))]
    print(f"notify {name:10s}: median {statistics.median(delays):6.1f} ms, p95 {p95:6.1f} ms, max {delays[-1]:6.1f} ms ({changes} changes)")


def _request(pki, leaf: str) -> bytes:
    cert = x509.load_pem_x509_certificate(pki.leaves[leaf].read_bytes())
    issuer = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    return ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)


def bench_fleet(dsn: str, changes: int, folder: Path) -> None:
    pki = make_demo_pki(folder / "pki")
    port_a, port_b = free_port(), free_port()
    configs = []
    for name, port in (("a", port_a), ("b", port_b)):
        config = folder / f"{name}.toml"
        config.write_text(
            f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\ndatabase = "{dsn}"\n\n'
            f'[ca.demo]\ncertificate = "{pki.ca_cert}"\ncrl = ["{pki.crl}"]\n'
            f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\n'
        )
        configs.append(config)
    servers = [start_server(configs[0].parent, configs[0], port=port_a), start_server(configs[1].parent, configs[1], port=port_b)]
    store = open_store(dsn)
    ca_der = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    issuer = store.register_issuer("demo", ca_der)
    serial = pki.serials["good"]
    request = _request(pki, "good")
    delays = []
    try:
        with httpx.Client(base_url=servers[1].url, headers={"content-type": "application/ocsp-request"}) as client:
            for i in range(changes):
                revoke = i % 2 == 0
                entries = [RevokedEntry(serial, NOW, x509.ReasonFlags.key_compromise)] if revoke else []
                store.replace_source(issuer, SourceState("crl", "bench", NOW, len(entries), NOW, NOW + dt.timedelta(days=1), 10 + i), revoked=entries)
                committed = time.perf_counter()
                want = ocsp.OCSPCertStatus.REVOKED if revoke else ocsp.OCSPCertStatus.GOOD
                while ocsp.load_der_ocsp_response(client.post("/", content=request).content).certificate_status is not want:
                    if time.perf_counter() - committed > 10:
                        raise SystemExit("the other process did not answer the change within 10 s")
                delays.append((time.perf_counter() - committed) * 1000)
    finally:
        store.close()
        for server in servers:
            server.stop()
    print(
        f"fleet      : commit → other serve process answers the new status: "
        f"median {statistics.median(delays):.1f} ms, max {max(delays):.1f} ms ({changes} changes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server (a schema is created there and dropped)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--import-rows", type=int, default=0, help="also time replace_source of this many entries")
    args = parser.parse_args()
    if args.server != SERVER:
        import tests.postgres

        tests.postgres.SERVER = args.server
    with tempfile.TemporaryDirectory() as folder, fresh_schema() as dsn:
        open_store(dsn, upgrade=True).close()
        sqlite_path = Path(folder) / "bench.sqlite3"
        bench_lookup({"postgresql": dsn, "sqlite": sqlite_path}, args.rows, args.lookups, args.runs)
        if args.import_rows:
            bench_import({"postgresql": dsn, "sqlite": sqlite_path}, args.import_rows)
        bench_notify("postgresql", dsn, args.changes)
        bench_notify("sqlite", sqlite_path, args.changes)
        bench_fleet(dsn, args.changes, Path(folder))


if __name__ == "__main__":
    main()
