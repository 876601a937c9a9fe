#!/usr/bin/env python3
"""What a re-issued CRL costs the background generator: the same entries, then one more entry.

    .venv/bin/python bench/reimport.py --serials 200000 --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/reimport.py --serials 200000          # an SQLite file

Set-up (not timed): the demo PKI, a synthesized index.txt of N certificates
(1 % revoked, as bench/generate.py) and a CRL of its revoked serials, both
imported; one generator pass signs every response. Then ``--rounds`` times
each, with medians printed:

1. the CRL re-issued with the same entries (next cRLNumber and thisUpdate,
   what a CA publishes every few minutes or hours), imported; then one
   ``GenerationLoop.tick`` — what the background generator runs once a
   second: a full pass when the issuer's change counter moved;
2. the CRL with one more entry, imported, and the tick after it.

Per line: the import's wall time, whether the counter moved, the tick's wall
time and the responses it signed; then what a change watcher reads more per
poll (SQLite, every 0.2 s) or resync (PostgreSQL, every 5 s) to notice
source-only changes. The machine may be shared: run one benchmark at a
time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from generate import _store, synthesize_index

from certstatus.app import prepare
from certstatus.clock import SystemClock
from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.demo_pki import make_demo_pki, sign_crl
from certstatus.generator.run import Generator
from certstatus.generator.schedule import GenerationLoop
from certstatus.sources.importer import CaTarget, import_crls
from certstatus.sources.records import RevokedEntry
from certstatus.store.factory import open_store

REVOKED_AT = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)


class Crl:
    """The CA's CRL file: re-signed with the next cRLNumber on every :meth:`publish`."""

    def __init__(self, pki, entries: list[RevokedEntry]) -> None:
        self.path = pki.crl
        self.cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        self.key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
        self.entries = entries
        self.number = 1
        self.start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)

    def publish(self) -> None:
        self.number += 1
        this_update = self.start + dt.timedelta(seconds=self.number)  # a second later each time
        crl = sign_crl(self.cert, self.key, self.entries, crl_number=self.number,
                       this_update=this_update, next_update=this_update + dt.timedelta(days=7))  # fmt: skip
        self.path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serials", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", type=int, default=2, help="generator processes (the first pass and every tick)")
    parser.add_argument("--database", metavar="URI", help="a postgresql:// database (a schema of its own, dropped after)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="certstatus-bench-") as tmp, _store(args.database, Path(tmp)) as database:
        folder = Path(tmp)
        pki = make_demo_pki(folder / "pki")
        serials = synthesize_index(pki.index, args.serials)
        crl = Crl(pki, [RevokedEntry(s, REVOKED_AT, x509.ReasonFlags.key_compromise) for s in serials[::100]])
        crl.publish()
        ca = CaSettings(name="big", certificate=pki.ca_cert, signer_certificate=pki.ocsp_cert, signer_key=pki.ocsp_key,
                        crl=(str(pki.crl),), index=pki.index, mode="precomputed")  # fmt: skip
        settings = Settings(ServerSettings(workers=1, database=database), (ca,))
        open_store(database, upgrade=True).close()
        prepare(settings)
        store = open_store(database)
        clock = SystemClock()
        print(f"certstatus from {sys.modules['certstatus'].__file__}")
        with Generator(settings, store, clock=clock, processes=args.processes) as generator:
            loop = GenerationLoop(generator)
            started = time.perf_counter()
            first = loop.tick()
            print(f"set-up: {args.serials:,} certificates, {len(crl.entries):,} CRL entries; first pass signed "
                  f"{first.signed:,} responses in {time.perf_counter() - started:.1f} s")
            issuer_id = generator.issuer_ids["big"]
            target = CaTarget(ca, issuer_id, crl.cert)
            extra = iter(range(1, 1 << 20))
            for label, grow in (("same entries", False), ("one more entry", True)):
                imports, ticks, moved, signed = [], [], [], []
                for _ in range(args.rounds):
                    if grow:
                        crl.entries.append(RevokedEntry(next(extra), REVOKED_AT, x509.ReasonFlags.key_compromise))
                    crl.publish()
                    before = store.change_counters()[issuer_id]
                    started = time.perf_counter()
                    results = import_crls(store, target, [str(pki.crl)], clock)
                    imports.append(time.perf_counter() - started)
                    assert [r.error for r in results] == [None], results
                    moved.append(store.change_counters()[issuer_id] != before)
                    started = time.perf_counter()
                    summary = loop.tick()
                    ticks.append(time.perf_counter() - started)
                    signed.append(0 if summary is None else summary.signed)
                print(f"CRL re-issued, {label}: import {statistics.median(imports) * 1e3:,.1f} ms, counter moved "
                      f"{sum(moved)}/{len(moved)}, generator tick {statistics.median(ticks) * 1e3:,.1f} ms "
                      f"(min {min(ticks) * 1e3:,.1f}, max {max(ticks) * 1e3:,.1f}), signed {statistics.median(signed):.0f} "
                      f"responses (median of {args.rounds})")
            if hasattr(store, "source_marks"):  # what each worker's change watcher reads more per poll/resync
                reads = []
                for _ in range(101):
                    started = time.perf_counter()
                    store.source_marks()
                    reads.append(time.perf_counter() - started)
                print(f"change watcher: source_marks() {statistics.median(reads) * 1e6:,.0f} us (median of 101)")
        store.close()


if __name__ == "__main__":
    main()
