"""What clients see when a dependency fails, and that service recovers without a restart.

=============================  ==========================================================  ==================
fault                          clients see                                                 test
=============================  ==========================================================  ==================
PostgreSQL restarted           tryLater (HTTP 503, OCSP body) while it is down, never a    here
                               wrong status; the right answers again once it is back
CRL source down                the last imported data until nextUpdate + stale_grace,      here
                               then tryLater (or stale answers with on_stale = "serve");
                               answers from the new CRL once the source is back
HSM token gone                 tryLater, one error log line; signed answers once back      test_softhsm_signing.py::
                                                                                           test_token_that_goes_away_gives_try_later_then_recovers
disk full during import        the import fails with a one-paragraph error (exit 1, no     here
                               traceback); the previous data keeps serving, unchanged
=============================  ==========================================================  ==================

PostgreSQL: a private cluster (tests/throwaway_postgres.py) is stopped and
started under a real ``certstatus serve`` — never the shared server.
Disk full: the SQLite store lives on a 4 MiB tmpfs mounted by the test and
filled up to 256 KiB (real ENOSPC on the database and its WAL, as root: ``.ci/run``); without
root, ``PRAGMA max_page_count`` gives the same SQLITE_FULL in-process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus

from certstatus.app import build_application, prepare
from certstatus.clock import UTC, ManualClock
from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.demo_pki import DemoPki, sign_crl
from certstatus.model import RevokedEntry
from certstatus.sources.importer import CaTarget, import_ca
from certstatus.sources.refresh import register_targets
from tests.crl_server import CrlServer
from tests.processes import run_certstatus
from tests.servers import CERTSTATUS, Server, free_port, start_server
from tests.sources_helpers import ocsp_query, prepare_demo_config
from tests.throwaway_postgres import throwaway_postgres

pytestmark = pytest.mark.integration

DEADLINE = 30.0  # seconds: a bound for a broken recovery, not a speed check


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _request(pki: DemoPki, leaf: str) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(_cert(pki.leaves[leaf]), _cert(pki.ca_cert), hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)


def _ask(port: int, body: bytes) -> tuple[int, str]:
    """POST one request; (HTTP status, "good"/"revoked"/"unknown" or the OCSP error status name)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", body, {"Content-Type": "application/ocsp-request"})
        reply = conn.getresponse()
        status, data = reply.status, reply.read()
    finally:
        conn.close()
    response = ocsp.load_der_ocsp_response(data)
    if response.response_status is not OCSPResponseStatus.SUCCESSFUL:
        return status, response.response_status.name
    return status, response.certificate_status.name.lower()


# --- PostgreSQL restarted under load ----------------------------------------------------------


def _serve_one_worker(postgres, pki: DemoPki, folder: Path) -> tuple[Server, int]:
    """``certstatus serve`` with one worker over ``postgres`` (schema upgraded first), the demo CA
    fed by its CRL; returns the process and its port."""
    port = free_port()
    config = folder / "certstatus.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\ndatabase = "{postgres.dsn}"\n\n'
        f'[ca.issuing]\ncertificate = "{pki.ca_cert}"\ncrl = ["{pki.crl}"]\n'
        f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\n'
    )
    run_certstatus("db", "upgrade", "--config", str(config))
    return start_server(config.parent, config, port=port), port


def test_postgres_restart_under_load_gives_try_later_then_right_answers_without_restart(demo_pki: DemoPki, tmp_path: Path) -> None:
    with throwaway_postgres() as postgres:
        server, port = _serve_one_worker(postgres, demo_pki, tmp_path)
        expected = {"good": "good", "revoked-keycompromise": "revoked"}
        bodies = {leaf: _request(demo_pki, leaf) for leaf in expected}
        _until_answered(server, port, bodies["good"])  # the socket listens before a worker has started
        seen: list[tuple[str, str, int, str]] = []  # (phase, leaf, HTTP status, answer)
        phase = ["before"]
        stop = threading.Event()

        def load() -> None:  # two clients asking in a loop, 127.0.0.1 only, until told to stop
            while not stop.is_set():
                for leaf, body in bodies.items():
                    try:
                        answer = _ask(port, body)
                    except (OSError, http.client.HTTPException) as exc:
                        answer = (0, type(exc).__name__)
                    seen.append((phase[0], leaf, *answer))  # the phase when the answer came

        clients = [threading.Thread(target=load) for _ in range(2)]
        try:
            for client in clients:
                client.start()
            time.sleep(1.0)
            phase[0] = "down"  # set before the stop: an answer labelled "before" came while PostgreSQL ran
            postgres.stop("fast")
            time.sleep(2.0)
            phase[0] = "restarted"
            postgres.start()
            deadline = time.monotonic() + DEADLINE
            while not any(p == "restarted" and a == expected[leaf] for p, leaf, _s, a in seen[-20:]):
                assert time.monotonic() < deadline, f"no right answer {DEADLINE} s after PostgreSQL came back: {seen[-6:]}"
                time.sleep(0.2)
            time.sleep(1.0)
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=20)
            server.stop()
        log = server.log.read_text(errors="replace")

    by_phase = {p: [(leaf, s, a) for q, leaf, s, a in seen if q == p] for p in ("before", "down", "restarted")}
    assert by_phase["before"] and all(a == expected[leaf] and s == 200 for leaf, s, a in by_phase["before"]), [x for x in by_phase["before"] if x[2] != expected[x[0]]]
    for _phase, answers in by_phase.items():  # never a wrong status, never a 5xx but 503 tryLater
        for leaf, status, answer in answers:
            assert answer in (expected[leaf], "TRY_LATER"), (leaf, status, answer)
            assert status == (503 if answer == "TRY_LATER" else 200)
    assert any(a == "TRY_LATER" for _l, _s, a in by_phase["down"]), by_phase["down"][:5]
    tail = by_phase["restarted"][-8:]
    assert tail and all(a == expected[leaf] for leaf, _s, a in tail), tail
    assert "Traceback" not in log


def test_a_worker_that_cannot_start_while_postgresql_is_down_is_started_again_once_it_is_back(
    demo_pki: DemoPki, tmp_path: Path
) -> None:
    """A worker that dies while the database is down cannot start either (it opens the store at
    start-up); the supervisor starts it again with a back-off instead of giving up."""
    with throwaway_postgres() as postgres:
        server, port = _serve_one_worker(postgres, demo_pki, tmp_path)
        body = _request(demo_pki, "good")
        try:
            _until_answered(server, port, body)
            (worker,) = _worker_pids(server.process.pid)
            postgres.stop("fast")
            os.kill(worker, signal.SIGKILL)  # its replacement starts while the database is down
            deadline = time.monotonic() + DEADLINE
            while "failure 2 at start-up in a row" not in server.log.read_text(errors="replace"):
                assert time.monotonic() < deadline and server.process.poll() is None, server.log.read_text(errors="replace")
                time.sleep(0.2)
            postgres.start()
            _until_answered(server, port, body)
        finally:
            server.stop()
        log = server.log.read_text(errors="replace")
    # A failed start is one JSON line naming the database (no raw traceback).
    served = log[log.index("certstatus listening on"):].splitlines()[1:]
    entries = [json.loads(line) for line in served]  # every line after start-up is JSON
    stopped = [e for e in entries if e["message"].startswith("certstatus-worker stopped: ")]
    assert stopped and all(e["level"] == "error" and "exception" not in e for e in stopped), stopped
    assert all("cannot connect to PostgreSQL" in e["message"] for e in stopped), stopped


def _until_answered(server: Server, port: int, body: bytes) -> None:
    """Wait (at most :data:`DEADLINE`) until ``body`` (the "good" leaf's request) is answered good."""
    deadline = time.monotonic() + DEADLINE
    while _try(port, body) != (200, "good"):
        assert time.monotonic() < deadline and server.process.poll() is None, server.log.read_text(errors="replace")
        time.sleep(0.2)


def _try(port: int, body: bytes) -> tuple[int, str] | None:
    try:
        return _ask(port, body)
    except (OSError, http.client.HTTPException):
        return None


def _worker_pids(supervisor: int) -> list[int]:
    """The supervisor's worker processes (multiprocessing's resource tracker left out)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


# --- CRL source down: staleness policy ----------------------------------------------------------


def test_crl_source_down_serves_old_data_until_stale_then_try_later_then_recovers(demo_pki: DemoPki, tmp_path: Path) -> None:
    ca_cert = _cert(demo_pki.ca_cert)
    ca_key = serialization.load_pem_private_key(demo_pki.ca_key.read_bytes(), None)
    t0 = dt.datetime.now(UTC).replace(microsecond=0)
    revoked = demo_pki.serials["revoked-superseded"]
    entry = RevokedEntry(revoked, t0 - dt.timedelta(hours=2), x509.ReasonFlags.superseded)

    def publish(server: CrlServer, number: int, this_update: dt.datetime) -> None:
        crl = sign_crl(ca_cert, ca_key, [entry], crl_number=number, this_update=this_update, next_update=this_update + dt.timedelta(hours=6))
        server.publish("/ca.crl", crl.public_bytes(serialization.Encoding.DER))

    with CrlServer() as server:
        publish(server, 1, t0)
        ca = CaSettings(
            name="demo", certificate=demo_pki.ca_cert, signer_certificate=demo_pki.ocsp_cert, signer_key=demo_pki.ocsp_key,
            crl=(server.url("/ca.crl"),), stale_grace=3600, fetch_timeout=1.0, fetch_retries=0,
        )  # fmt: skip
        settings = Settings(ServerSettings(database=tmp_path / "store.sqlite3"), (ca,))
        clock = ManualClock(t0)
        prepare(settings, clock)
        app = build_application(settings, clock, watch=False)
        try:
            target = register_targets(app.store, settings.cas)["demo"]
            assert ocsp_query(app, demo_pki, revoked).certificate_status is OCSPCertStatus.REVOKED

            server.fail("/ca.crl", 503)  # the CA's CRL distribution point is down
            clock.advance(5 * 3600)
            failed = import_ca(app.store, target, clock)
            assert failed[0].error is not None and "503" in failed[0].error
            assert ocsp_query(app, demo_pki, revoked).certificate_status is OCSPCertStatus.REVOKED  # before nextUpdate
            clock.advance(3600 + 1800)  # past nextUpdate (6 h) but within stale_grace (1 h)
            assert ocsp_query(app, demo_pki, demo_pki.serials["good"]).certificate_status is OCSPCertStatus.GOOD
            clock.advance(3600)  # past nextUpdate + stale_grace
            _wait_recheck()
            assert ocsp_query(app, demo_pki, revoked).response_status is OCSPResponseStatus.TRY_LATER

            publish(server, 2, clock.now())  # the source is back
            assert import_ca(app.store, target, clock)[0].error is None
            _wait_recheck()
            assert ocsp_query(app, demo_pki, revoked).certificate_status is OCSPCertStatus.REVOKED
            assert ocsp_query(app, demo_pki, demo_pki.serials["good"]).certificate_status is OCSPCertStatus.GOOD
        finally:
            app.close()


def _wait_recheck() -> None:
    time.sleep(1.05)  # FreshnessGuard re-reads source states at most once a second (monotonic)


# --- disk full during import ------------------------------------------------------------------


@contextlib.contextmanager
def _small_tmpfs(size: str) -> "contextlib.AbstractContextManager[Path | None]":
    """A tmpfs of ``size`` mounted on a fresh folder (root only), or None when mounting is not allowed."""
    folder = Path(tempfile.mkdtemp(prefix="certstatus-full-"))
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode == 0
    try:
        yield folder if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir() if not any(folder.iterdir()) else None


def _big_crl(pki: DemoPki, path: Path, entries: int) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    revoked = [RevokedEntry(0x10_0000 + i, now - dt.timedelta(hours=1), x509.ReasonFlags.key_compromise) for i in range(entries)]
    revoked.append(RevokedEntry(pki.serials["revoked-superseded"], now - dt.timedelta(hours=1), x509.ReasonFlags.superseded))
    crl = sign_crl(_cert(pki.ca_cert), serialization.load_pem_private_key(pki.ca_key.read_bytes(), None), revoked,
                   crl_number=2, this_update=now, next_update=now + dt.timedelta(days=1))  # fmt: skip
    path.write_bytes(crl.public_bytes(serialization.Encoding.DER))


def test_disk_full_during_import_fails_cleanly_and_old_data_serves(demo_pki: DemoPki, tmp_path: Path) -> None:
    crl = tmp_path / "ca.crl"
    crl.write_bytes(demo_pki.crl.read_bytes())
    with _small_tmpfs("4m") as disk:
        database = (disk or tmp_path) / "store.sqlite3"
        config = tmp_path / "certstatus.toml"
        settings, clock = prepare_demo_config(config, database, demo_pki, f'crl = "{crl}"')
        _big_crl(demo_pki, crl, 20_000)  # ~1 MB of rows
        if disk is not None:  # leave 256 KiB free: the import cannot fit
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            (disk / "filler").write_bytes(b"\0" * (free - 256 * 1024))
            done = subprocess.run([*CERTSTATUS, "import", "--config", str(config)], capture_output=True, text=True, timeout=300)
            output = done.stdout + done.stderr
            assert done.returncode != 0, output
            assert "full" in output and "Traceback" not in output, output
        else:  # not root: the same SQLITE_FULL from a page limit on the importing connection
            from certstatus.store.sqlite import SQLiteStore

            store = SQLiteStore(database)
            store._db.execute(f"PRAGMA max_page_count = {store._db.execute('PRAGMA page_count').fetchone()[0] + 50}")
            target = CaTarget(settings.cas[0], register_targets(store, settings.cas)["demo"].issuer_id, _cert(demo_pki.ca_cert))
            result = import_ca(store, target, clock)
            store.close()
            assert result[0].error is not None and "full" in result[0].error

        with sqlite3.connect(database) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        app = build_application(settings, clock, watch=False)
        try:  # the demo CRL's data, unchanged: revoked-keycompromise listed, the big CRL's serials not
            assert ocsp_query(app, demo_pki, demo_pki.serials["revoked-keycompromise"]).certificate_status is OCSPCertStatus.REVOKED
            assert ocsp_query(app, demo_pki, 0x10_0000).certificate_status is OCSPCertStatus.GOOD
        finally:
            app.close()
        if disk is not None:  # room again: the same import now succeeds and is served
            (disk / "filler").unlink()
            run_certstatus("import", "--config", str(config), timeout=300)
            app = build_application(settings, clock, watch=False)
            try:
                assert ocsp_query(app, demo_pki, 0x10_0000).certificate_status is OCSPCertStatus.REVOKED
                assert ocsp_query(app, demo_pki, demo_pki.serials["revoked-keycompromise"]).certificate_status is OCSPCertStatus.GOOD
            finally:
                app.close()
