#!/usr/bin/env python3
"""Instructions per live-signed request, counted by callgrind: the whole HTTP edge, then its parts.

    .venv/bin/python bench/live_instructions.py                  # ECDSA P-256, 2 000 requests, ~3 minutes
    .venv/bin/python bench/live_instructions.py --key-type rsa --requests 500

Wall and CPU time move with whatever else a shared machine runs; instruction
counts do not. The same demo PKI and request mix as ``bench/load.py`` (good,
revoked and never-issued serials, one SHA-1 CertID each, nonce-less) is
imported into a fresh store; then one Python process is run under
``valgrind --tool=callgrind`` twice: start-up plus 50 warm-up requests, and
the same plus N more requests. The difference over N is what one request
costs: HTTP bytes fed to :class:`~certstatus.server.connection.HttpProtocol`
(httptools parse, the handler, the pipeline, SQLite, encoding, signing, the
HTTP response) up to the ``transport.write`` call — the socket system calls
and the event loop are not counted (a stub transport). The same is done with
the signature replaced by a constant (``--no-sign`` rows), which isolates the
signature's share, and once more with the responder's fast path off (every request
through the CA's whole plan: the handler and the pipeline's objects), for comparison.

Note: under valgrind OpenSSL sees a CPU without some extensions (ADX/BMI2),
so the signature's count runs a slower code path than on the real machine;
the rest of the request is unaffected. Compare counts of the same row
between commits, not rows with wall-clock figures.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import make_requests, write_bodies  # noqa: E402

from certstatus.demo_pki import make_demo_pki  # noqa: E402

WARM_UP = 50


def _read_bodies(path: Path) -> list[bytes]:
    data = path.read_bytes()
    bodies, pos = [], 0
    while pos < len(data):
        eol = data.index(b"\n", pos)
        length = int(data[pos:eol])
        bodies.append(data[eol + 1 : eol + 1 + length])
        pos = eol + 1 + length
    return bodies


class _Transport:
    """Enough of an asyncio transport for HttpProtocol: writes are counted and dropped."""

    written = 0

    def write(self, data: bytes) -> None:
        _Transport.written += len(data)

    def get_extra_info(self, name: str):
        return ("127.0.0.1", 40000) if name == "peername" else None

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def child(folder: Path, count: int, no_sign: bool, handler_only: bool = False) -> None:
    """One measured process: start-up, warm-up, then ``count`` requests through the HTTP edge."""
    from certstatus.app import build_application
    from certstatus.config import load_config
    from certstatus.server.connection import HttpProtocol, ServerState
    from certstatus.server.responder import Responder

    bodies = _read_bodies(folder / "requests.bin")
    raw = [b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocsp-request\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body) + body for body in bodies]  # fmt: skip
    application = build_application(load_config(folder / "certstatus.toml"), watch=False)
    responder = application.responder  # as a worker's (server/workers.py): its fast path answers these requests
    if handler_only:
        responder = Responder(application.http, registry=application.registry)  # every request through the plan
    if no_sign:
        for ca in application.registry.cas:
            for signer in ca.signers.signers:
                signature = signer.signature(b"constant")
                for variant in signer._variants.values():
                    variant._sign = lambda data, signature=signature: signature
    loop = asyncio.new_event_loop()
    protocol = HttpProtocol(ServerState(responder), loop)
    protocol.connection_made(_Transport())
    for request in raw[:WARM_UP] + raw[WARM_UP : WARM_UP + count]:
        protocol.data_received(request)
    if _Transport.written == 0:
        sys.exit("no response was written")


def callgrind(folder: Path, count: int, no_sign: bool, handler_only: bool = False) -> int:
    """Total instructions of :func:`child` under callgrind."""
    command = ["valgrind", "--tool=callgrind",
               f"--callgrind-out-file={folder}/callgrind.{count}.{int(no_sign)}.{int(handler_only)}",
               sys.executable, __file__, "--child", str(folder), "--requests", str(count)]  # fmt: skip
    if no_sign:
        command.append("--no-sign")
    if handler_only:
        command.append("--handler-only")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--key-type", choices=["ec", "rsa"], default="ec")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests (default 2000)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-sign", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--handler-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.requests, args.no_sign, args.handler_only)
        return
    from certstatus.app import prepare
    from certstatus.config import load_config

    with tempfile.TemporaryDirectory(prefix="certstatus-live-instructions-") as tmp:
        folder = Path(tmp)
        pki = make_demo_pki(folder / "pki", key_type=args.key_type)
        requests = make_requests(pki, args.requests + WARM_UP, folder)
        write_bodies(folder / "requests.bin", requests.plain)
        (folder / "certstatus.toml").write_text(
            f'[server]\ndatabase = "{folder}/store.sqlite3"\n\n'
            f'[ca.bench]\ncertificate = "{pki.ca_cert}"\nindex = "{pki.index}"\n'
            f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\nvalidity = "1d"\n'
        )
        prepare(load_config(folder / "certstatus.toml"))
        name = "ECDSA P-256" if args.key_type == "ec" else "RSA-2048"
        print(f"callgrind, {args.requests:,} live {name} requests (nonce-less, one CertID), HTTP edge "
              "to transport.write", flush=True)  # fmt: skip
        rows = []
        for no_sign, handler_only in ((False, False), (True, False), (True, True)):
            base = callgrind(folder, 0, no_sign, handler_only)
            total = callgrind(folder, args.requests, no_sign, handler_only)
            rows.append((total - base) / args.requests)
        print(f"{'per request, whole edge':34s} {rows[0]:12,.0f} instructions")
        print(f"{'per request, signature a constant':34s} {rows[1]:12,.0f} instructions")
        print(f"{'the signature (difference)':34s} {rows[0] - rows[1]:12,.0f} instructions")
        print(f"{'the same, fast path off (whole plan)':34s} {rows[2]:12,.0f} instructions   "
              f"(the fast path saves {1 - rows[1] / rows[2]:.1%} of the non-signature work)")


if __name__ == "__main__":
    main()
