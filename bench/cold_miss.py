"""Cold misses in process: µs per precomputed request whose answer no cache holds.

    .venv/bin/python bench/cold_miss.py [--count 20000] [--runs 3] [--mode precomputed|cached|live]

A CA with ``--count`` issued serials (ECDSA P-256, one in ten revoked) is generated into a SQLite
store (``certstatus generate``); then, ``--runs`` times, one worker's application is built afresh
(default configuration: ``server.response_cache_bytes`` at its default, no warm-up pass) and every
serial is asked once, POST without nonce, through :class:`~certstatus.server.connection.HttpProtocol`
on an in-memory transport: every request is a miss of the edge cache, answered from the store's
pre-signed bytes (precomputed, cached) or signed (live). Then the same requests again (edge hits,
for scale). Prints the median CPU µs per request of each pass over the runs: the process's CPU
time for the whole loop divided by the requests (CPU time, so that other load on a shared machine
adds little), with everything the worker does in the request path (HTTP parse, routing, request
parse, store read, rendering) and no sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from common import PYTHON, generate, make_fixture, request_der  # noqa: E402


class _Transport:
    """An asyncio transport that only counts what is written."""

    written = 0

    def write(self, data: bytes) -> None:
        _Transport.written += len(data)

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _state(application):
    from certstatus.server.connection import ServerState

    return ServerState(application.responder)


def child(config: Path, requests: Path) -> None:
    """One measured process: build a worker's application, send every request twice; print µs per request."""
    from certstatus.app import build_application
    from certstatus.config import load_config
    from certstatus.server.connection import HttpProtocol

    raw = requests.read_bytes().split(b"\0SEP\0")
    application = build_application(load_config(config), watch=False)
    protocol = HttpProtocol(_state(application), asyncio.new_event_loop())
    protocol.connection_made(_Transport())
    figures = []
    for _ in range(2):  # misses, then hits
        started = time.process_time()  # CPU time of this process: what other load on the machine does not add
        for request in raw:
            protocol.data_received(request)
        figures.append((time.process_time() - started) / len(raw) * 1e6)
    if _Transport.written == 0:
        sys.exit("no response was written")
    print(" ".join(f"{figure:.2f}" for figure in figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="distinct serials (default 20000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mode", choices=["precomputed", "cached", "live"], default="precomputed")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(*args.child)
        return
    from certstatus.protocol.certid import issuer_hashes
    from certstatus.signing.keys import load_certificates

    with tempfile.TemporaryDirectory(prefix="certstatus-cold-miss-") as tmp:
        fixture = make_fixture(Path(tmp) / "ec", "ec", args.count, extra_ca=f'mode = "{args.mode}"\n', revoked_every=10)
        if args.mode == "live":
            subprocess.run([PYTHON, "-m", "certstatus", "import", "--config", str(fixture.config)], check=True,
                           capture_output=True)  # fmt: skip
        else:
            generate(fixture)
        name_hash, key_hash = issuer_hashes(load_certificates(fixture.pki.ca_cert)[0], "sha1")
        raw = []
        for serial in fixture.serials:
            der = request_der(name_hash, key_hash, serial)
            raw.append(b"POST / HTTP/1.1\r\nHost: ocsp\r\nContent-Type: application/ocsp-request\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(der) + der)  # fmt: skip
        requests = Path(tmp) / "requests.bin"
        requests.write_bytes(b"\0SEP\0".join(raw))
        misses, hits = [], []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, __file__, "--child", str(fixture.config), str(requests)],
                                 check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
            misses.append(float(out[0]))
            hits.append(float(out[1]))
        print(f"{args.mode}: cold miss {statistics.median(misses):.1f} CPU µs/request (runs {', '.join(f'{m:.1f}' for m in misses)}), "
              f"edge hit {statistics.median(hits):.1f} CPU µs/request; {args.count} serials, default cache size")  # fmt: skip


if __name__ == "__main__":
    main()
