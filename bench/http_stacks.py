"""Choose the HTTP stack by measurement: the same handler under three servers, same requests.

    .venv/bin/python bench/http_stacks.py [--runs 3] [--seconds 10]

Candidates, each one worker pinned to core 0, wrk -t2 -c64 on core 1:

* ``uvicorn``: the ASGI adapter (certstatus.server.asgi) under uvicorn (httptools, uvloop);
* ``granian``: the same ASGI adapter under granian (Rust HTTP, asgi interface, uvloop);
* ``protocol``: certstatus.server.protocol, an asyncio protocol over httptools on uvloop
  (``certstatus serve``).

Workloads (100 000 distinct serials rotated by bench/rotate.lua):

* ``constant``: GET for an issuer this responder does not serve — the whole
  handler runs (GET decoding, parse, issuer lookup) and answers the constant
  unauthorized response, so the figure is the HTTP stack's cost plus the
  lightest real path;
* ``live``: POST with a nonce, ECDSA P-256, signed per request;
* ``precomputed``: GET without nonce served from pre-signed responses
  (only when the store has them: ``certstatus generate``; skipped otherwise).

Each workload with keep-alive and with ``Connection: close``.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import (
    load_arguments,
    PYTHON, Fixture, asgi_worker_env, median_result, certstatus_command, free_port, import_store, make_fixture, need, port_config,
    server, wrk, write_requests,
)  # fmt: skip


def stacks(fixture: Fixture) -> dict[str, object]:
    env = asgi_worker_env(fixture)
    bin_dir = Path(PYTHON).parent

    def uvicorn(port):
        return server([str(bin_dir / "uvicorn"), "certstatus.server.asgi:create_app", "--factory",
                       "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop",
                       "--http", "httptools", "--no-access-log", "--log-level", "warning"], port, env=env)

    def granian(port):
        return server([str(bin_dir / "granian"), "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                       "--port", str(port), "--workers", "1", "--loop", "uvloop", "--no-ws",
                       "--runtime-mode", "st", "--log-level", "warning", "--no-access-log",
                       "certstatus.server.asgi:create_app"], port, env=env)

    def protocol(port):
        return server(certstatus_command(port_config(fixture, port, 1)), port)

    found = {"uvicorn": uvicorn, "protocol": protocol}
    if (bin_dir / "granian").exists() or shutil.which("granian"):
        found = {"uvicorn": uvicorn, "granian": granian, "protocol": protocol}
    return found


def unserved_requests(fixture: Fixture, path: Path) -> Path:
    """GET requests naming an issuer nobody serves (random issuer hashes), one per serial."""
    other = Fixture(fixture.folder, fixture.pki, fixture.serials, fixture.index, fixture.config, fixture.key_type)
    rng = random.Random(1)
    from common import request_der  # noqa: PLC0415
    import base64  # noqa: PLC0415
    from urllib.parse import quote  # noqa: PLC0415

    name_hash, key_hash = rng.randbytes(20), rng.randbytes(20)
    with open(path, "wb") as out:
        for serial in other.serials:
            der = request_der(name_hash, key_hash, serial)
            out.write(f"GET /{quote(base64.b64encode(der).decode(), safe='')} 0\n\n".encode())
    return path


def has_precomputed(fixture: Fixture) -> bool:
    import sqlite3  # noqa: PLC0415

    with sqlite3.connect(fixture.folder / "store.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return any("precomputed" in t for t in tables) and any(
            db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in tables if "precomputed" in t
        )


def main() -> None:
    args = load_arguments(__doc__).parse_args()
    need("wrk", "taskset")
    with tempfile.TemporaryDirectory(prefix="certstatus-stacks-") as tmp:
        fixture = make_fixture(Path(tmp) / "ec", "ec", args.count, extra_ca=os.environ.get("BENCH_CA_EXTRA", ""))
        import_store(fixture)
        workloads = {
            "constant": unserved_requests(fixture, Path(tmp) / "unserved.txt"),
            "live": write_requests(fixture, Path(tmp) / "live.txt", method="POST", nonce=True),
        }
        if shutil.which("certstatus", path=str(Path(PYTHON).parent)) and "generate" in subprocess.run(
            [PYTHON, "-m", "certstatus", "--help"], capture_output=True, text=True
        ).stdout:
            subprocess.run([PYTHON, "-m", "certstatus", "generate", "--config", str(fixture.config)],
                           check=True, capture_output=True)
            if has_precomputed(fixture):
                workloads["precomputed"] = write_requests(fixture, Path(tmp) / "pre.txt", method="GET", nonce=False)
        candidates = stacks(fixture)
        print(f"== HTTP stacks, 1 worker on core 0, wrk -t2 -c64 -d{args.seconds}s on core 1, "
              f"{args.count} serials, medians of {args.runs} runs ==")
        for workload, requests in workloads.items():
            for close in (False, True):
                label = f"{workload}, {'Connection: close' if close else 'keep-alive'}"
                runs: dict[str, list] = {name: [] for name in candidates}
                for _ in range(args.runs):  # interleaved, so that a busy spell hits every stack
                    for name, start in candidates.items():
                        port = free_port()
                        with start(port) as process:
                            runs[name].append(wrk(port, requests, seconds=args.seconds, close=close,
                                                  server_pid=process.pid))
                line = []
                for name, results in runs.items():
                    median_run = median_result(results)
                    line.append(f"{name} {median_run.rps:7.0f} req/s p99 {median_run.p99_ms:6.2f} ms "
                                f"{median_run.per_cpu_second:6.0f} req/cpu-s"
                                + (f" ({median_run.errors} errors)" if median_run.errors else ""))
                print(f"{label:32s} " + " | ".join(line), flush=True)
        print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
