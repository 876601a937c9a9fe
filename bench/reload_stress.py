#!/usr/bin/env python3
"""Requests lost while `certstatus serve` is reloaded (SIGHUP) over and over; expected: none.

A server over the EC demo CA (2 protocol-edge workers, admin listener, audit log) on
127.0.0.1; three client threads (the tests' ``Asker``, httpx) POST the same OCSP request in a loop, each on one
keep-alive connection, or with ``--close`` a new connection per request
(``Connection: close``); the server gets SIGHUP every ``--every`` seconds, ``--sighups`` times
(each replaces every worker). Prints the answers, the failed requests and their kinds. A
failure is a request that got no OCSP answer: a drop, a reset, an HTTP error.

    .venv/bin/python bench/reload_stress.py [--sighups 20] [--every 3] [--close]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' helpers

from certstatus.demo_pki import make_demo_pki  # noqa: E402
from tests.ocsp_client import request_der  # noqa: E402
from tests.servers import Asker, demo_ca_table, free_port, server_tables, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sighups", type=int, default=20)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between two SIGHUPs")
    parser.add_argument("--close", action="store_true", help="a new connection per request")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-reload-"))
    try:
        pki = make_demo_pki(folder / "pki", key_type="ec")
        shutil.copy(pki.crl, folder / "crl.pem")
        port, admin = free_port(), free_port()
        config = server_tables(port, workers=2, admin=admin, audit=True) + demo_ca_table("ec", pki, crl="crl.pem")
        server = start_server(folder, config, port=port, admin_port=admin)
        clients = [Asker(server.url, request_der(pki.leaves["good"], pki.ca_cert), close=args.close) for _ in range(3)]
        for client in clients:
            client.start()
        try:
            for number in range(args.sighups):
                server.process.send_signal(signal.SIGHUP)
                time.sleep(args.every)
                print(f"SIGHUP {number + 1}/{args.sighups}: {sum(c.answers for c in clients)} answers, "
                      f"{sum(len(c.failures) for c in clients)} failed", flush=True)
        finally:
            for client in clients:
                client.stop.set()
            for client in clients:
                client.join()
            server.stop()
        failures = Counter(f for c in clients for f in c.failures)
        kind = "Connection: close" if args.close else "keep-alive"
        print(f"{kind}, {args.sighups} SIGHUPs: {sum(c.answers for c in clients)} answers, "
              f"{sum(failures.values())} failed requests (expected: 0)")
        for text, count in failures.most_common():
            print(f"  {count} x {text}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
