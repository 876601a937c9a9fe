"""kill -9 at random points of an import and of admin-API push batches; the store stays whole.

Import: ``certstatus import`` of an index.txt alternating between a small file
(the demo PKI's) and a large one (tens of thousands of revoked lines) is
SIGKILLed at a random moment of its run, over and over. After each kill the
store must hold exactly one of the two files, entirely (rows and source state
agree), answers served from it must match that file, and an import run to
the end afterwards (the job resumed) must succeed.

Push: a real ``certstatus serve`` with the admin listener takes batches of
revocations (``POST /v1/ca/NAME/changes``, one transaction each) from a
client; the server is SIGKILLed at a random moment. Every batch it
acknowledged (HTTP 200) must be in the store entirely, the batch in flight
entirely or not at all, and answers served after the restart must match.

Lanes run in parallel (each its own folder and store) to keep the test near
half a minute; ``CERTSTATUS_CRASH_ITERATIONS`` sets the kills per test (50).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.app import build_application
from certstatus.clock import UTC, ManualClock
from certstatus.config import load_config
from certstatus.demo_pki import DemoPki
from tests.processes import free_port
from tests.sources_helpers import ocsp_query, prepare_demo_config

pytestmark = pytest.mark.integration

ITERATIONS = int(os.environ.get("CERTSTATUS_CRASH_ITERATIONS", "50"))
LANES = 3
BIG = 25_000  # revoked lines of the large index.txt (an import of a few hundred ms)
BIG_FIRST = 0x7000_0000
TOKEN = "crash-test-token-0123456789abcdef"
CERTSTATUS = [sys.executable, "-m", "certstatus"]


def _index_line(serial: int, revoked: bool) -> str:
    return f"R\t301231235959Z\t260101000000Z,keyCompromise\t{serial:X}\tunknown\t/CN=x{serial}\n" if revoked else f"V\t301231235959Z\t\t{serial:X}\tunknown\t/CN=x{serial}\n"


def _store_version(database: Path, small_entries: int) -> tuple[str, int, int]:
    """("small" | "big", revoked rows, issued rows) of what the store holds, checked against its source state."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        (entries,) = db.execute("SELECT entries FROM sources WHERE kind = 'index'").fetchone()
        revoked = db.execute("SELECT count(*) FROM revoked WHERE source = 'index'").fetchone()[0]
        issued = db.execute("SELECT count(*) FROM issued WHERE source = 'index'").fetchone()[0]
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    version = "big" if entries == BIG + 1 else "small"
    assert entries in (small_entries, BIG + 1), entries
    return version, revoked, issued


def _import_lane(lane: int, pki: DemoPki, root: Path, kills: int, seed: int) -> list[str]:
    """One lane: ``kills`` SIGKILLed imports, each followed by the consistency checks; returns the versions seen."""
    rng = random.Random(seed)
    folder = root / f"lane{lane}"
    folder.mkdir()
    small = pki.index.read_bytes()
    small_entries = small.count(b"\n")
    big = "".join(_index_line(BIG_FIRST + i, True) for i in range(BIG)) + _index_line(pki.serials["good"], False)
    index = folder / "index.txt"
    index.write_bytes(small)
    config = folder / "certstatus.toml"
    settings, clock = prepare_demo_config(config, folder / "store.sqlite3", pki, f'index = "{index}"')
    expected = {"small": (4, small_entries), "big": (BIG, BIG + 1)}  # (revoked rows, issued rows)
    full_run = None
    seen = []
    for _ in range(kills):
        target = "big" if full_run is None or rng.random() < 0.5 else "small"  # the timed first run imports the large file
        index.write_text(big) if target == "big" else index.write_bytes(small)
        started = time.monotonic()
        process = subprocess.Popen([*CERTSTATUS, "import", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if full_run is None:  # the first import runs to the end: it times the window kills fall in
            assert process.wait(timeout=120) == 0
            full_run = time.monotonic() - started
        else:
            time.sleep(rng.uniform(0.25, 1.2) * full_run)  # past most of the interpreter start-up, to just after the commit
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        version, revoked, issued = _store_version(folder / "store.sqlite3", small_entries)
        assert (revoked, issued) == expected[version], (version, revoked, issued)
        seen.append(version)
        app = build_application(settings, clock, watch=False)
        try:  # answers match the committed file: revoked-keycompromise only in the small one, BIG_FIRST only in the big one
            small_listed = ocsp_query(app, pki, pki.serials["revoked-keycompromise"]).certificate_status
            big_listed = ocsp_query(app, pki, BIG_FIRST + rng.randrange(BIG)).certificate_status
        finally:
            app.close()
        assert (small_listed is OCSPCertStatus.REVOKED) == (version == "small")
        assert (big_listed is OCSPCertStatus.REVOKED) == (version == "big")
    index.write_text(big)  # the interrupted job, run again to the end, completes
    done = subprocess.run([*CERTSTATUS, "import", "--config", str(config)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _store_version(folder / "store.sqlite3", small_entries)[0] == "big"
    return seen


def test_import_killed_at_random_points_leaves_old_or_new_data_entirely(demo_pki: DemoPki, tmp_path: Path) -> None:
    per_lane = [ITERATIONS // LANES + (1 if lane < ITERATIONS % LANES else 0) for lane in range(LANES)]
    with concurrent.futures.ThreadPoolExecutor(LANES) as pool:
        lanes = [pool.submit(_import_lane, lane, demo_pki, tmp_path, kills + 1, 1000 + lane) for lane, kills in enumerate(per_lane)]
        seen = [version for lane in lanes for version in lane.result()[1:]]  # [0]: the full, unkilled run
    print(f"\n{len(seen)} SIGKILLed imports: {seen.count('big')} left the large index, {seen.count('small')} the small one")
    assert len(seen) >= ITERATIONS


# --- admin API pushes -------------------------------------------------------------------------


def _start_server(folder: Path, config: Path, admin_port: int) -> subprocess.Popen:
    log = open(folder / "server.log", "ab")  # noqa: SIM115 - handed to the process
    process = subprocess.Popen(
        [*CERTSTATUS, "serve", "--config", str(config)], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{admin_port}/v1/sources", headers={"authorization": f"Bearer {TOKEN}"}, timeout=1.0)
            return process
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()
            time.sleep(0.05)


def _push_lane(lane: int, pki: DemoPki, root: Path, kills: int, seed: int) -> tuple[int, int]:
    """One lane: ``kills`` server runs SIGKILLed while batches are pushed; returns (acknowledged, in flight) batches."""
    rng = random.Random(seed)
    folder = root / f"push{lane}"
    folder.mkdir()
    (folder / "admin.token").write_text(TOKEN + "\n")
    (folder / "admin.token").chmod(0o600)
    port, admin_port = free_port(), free_port()
    config = folder / "certstatus.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\ndatabase = "store.sqlite3"\n\n'
        f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken_file = "admin.token"\n\n'
        f'[ca.demo]\ncertificate = "{pki.ca_cert}"\npush = true\n'
        f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\n'
    )
    acknowledged: list[list[int]] = []
    in_flight: list[list[int]] = []
    next_serial = 0x1000 * (lane + 1) << 32
    for _ in range(kills):
        process = _start_server(folder, config, admin_port)
        stop = threading.Event()

        def push() -> None:
            nonlocal next_serial
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    batch = list(range(next_serial, next_serial + 25))
                    next_serial += 25
                    body = {"changes": [{"action": "revoke", "serial": f"{s:x}", "reason": "keyCompromise"} for s in batch]}
                    try:
                        answer = client.post(f"http://127.0.0.1:{admin_port}/v1/ca/demo/changes", json=body,
                                             headers={"authorization": f"Bearer {TOKEN}"})  # fmt: skip
                    except httpx.TransportError:
                        in_flight.append(batch)
                        return
                    assert answer.status_code == 200, answer.text
                    acknowledged.append(batch)

        client = threading.Thread(target=push)
        client.start()
        time.sleep(rng.uniform(0.02, 0.4))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        stop.set()
        client.join(timeout=30)
    with sqlite3.connect(folder / "store.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {int.from_bytes(row[0], "big", signed=True) if isinstance(row[0], bytes) else int(row[0])
                  for row in db.execute("SELECT serial FROM revoked WHERE source = 'push'")}  # fmt: skip
    for batch in acknowledged:  # no acknowledged change is lost
        assert set(batch) <= stored, f"acknowledged batch {batch[0]:#x}.. lost"
    for batch in in_flight:  # a batch is one transaction: all or nothing
        assert set(batch) <= stored or not set(batch) & stored, f"batch {batch[0]:#x}.. partly stored"
    settings = load_config(config)
    app = build_application(settings, ManualClock(dt.datetime.now(UTC)), watch=False)
    try:  # served answers match the store: an acknowledged serial is revoked, a never-pushed one is not
        if acknowledged:
            assert ocsp_query(app, pki, rng.choice(acknowledged)[0]).certificate_status is OCSPCertStatus.REVOKED
        assert ocsp_query(app, pki, next_serial + 1).certificate_status is OCSPCertStatus.GOOD
    finally:
        app.close()
    return len(acknowledged), len(in_flight)


def test_server_killed_during_admin_pushes_loses_no_acknowledged_batch(demo_pki: DemoPki, tmp_path: Path) -> None:
    kills = ITERATIONS  # at least 50 kills of each job
    per_lane = [kills // 2 + (1 if lane < kills % 2 else 0) for lane in range(2)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = [f.result() for f in [pool.submit(_push_lane, lane, demo_pki, tmp_path, n, 2000 + lane) for lane, n in enumerate(per_lane)]]
    acknowledged = sum(a for a, _ in results)
    print(f"\n{sum(per_lane)} SIGKILLed servers: {acknowledged} acknowledged batches kept, {sum(f for _, f in results)} in flight all-or-nothing")
    assert acknowledged > 0
