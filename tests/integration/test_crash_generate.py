"""kill -9 at random points of ``certstatus generate``, 50 times: pre-signed responses stay right.

Each lane serves an RSA demo CA in precomputed mode from an index.txt of
800 serials. Every iteration rewrites the index (a fifth of the serials
flip between valid and revoked, 30 new ones are issued) and runs
``certstatus generate`` (import, then sign the changed, missing and due
serials in batches of 40, each one transaction), alternately signing in the
command's own process and in a worker process; the whole process group is
SIGKILLed at a random moment: 40 % anywhere between start-up and a little
past the end of a typical run, 60 % while signing (after the import's
commit, within a typical signing time). After each kill:

* the store is whole (``PRAGMA integrity_check``) and holds exactly the old or
  the new index (the import's transaction);
* every response the request path would serve (``changed_seq <=
  signed_seq``) parses, is signed by the responder key (verified), names its
  own serial and hash algorithm, and carries the serial's current status
  (good / revoked with the index's time and reason) in the store;
* answers served by the application built on the store match the index
  it holds.

Twice per lane the interrupted job is resumed to the end (``certstatus
import`` then ``generate --no-import``): it signs exactly the serials left
to do — 2 responses (SHA-1, SHA-256) per serial whose row is missing,
outdated or due, counted from the store beforehand — and leaves every fresh
row byte for byte. ``CERTSTATUS_CRASH_ITERATIONS`` sets the kills (50).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus

from certstatus.app import build_application
from certstatus.clock import UTC, ManualClock
from certstatus.config import load_config
from certstatus.demo_pki import DemoPki
from certstatus.der import ResponseAssembler
from certstatus.model import serial_from_key
from tests.precomputed_helpers import copy_pki
from tests.sources_helpers import ocsp_query
from tests.servers import CERTSTATUS

pytestmark = pytest.mark.integration

ITERATIONS = int(os.environ.get("CERTSTATUS_CRASH_ITERATIONS", "50"))
LANES = 3
SERIALS = 800
FLIP = SERIALS // 5
NEW_PER_ITERATION = 20
BATCH = 40
REASONS = ("keyCompromise", "superseded", "cessationOfOperation", None)
HASHES = {"sha1": "SHA1", "sha256": "SHA256"}


def _index_text(statuses: dict[int, tuple[str, str | None]]) -> str:
    """index.txt: ``serial -> ("V", None) | ("R", reason)``; every revocation at 2026-01-01 00:00:00Z."""
    lines = []
    for serial, (state, reason) in sorted(statuses.items()):
        revoked = "" if state == "V" else "260101000000Z" + (f",{reason}" if reason else "")
        lines.append(f"{state}\t301231235959Z\t{revoked}\t{serial:X}\tunknown\t/CN=s{serial:x}\n")
    return "".join(lines)


def _store_statuses(db: sqlite3.Connection) -> dict[int, tuple[str, str | None]]:
    """What the store holds: serial -> ("V", None) | ("R", reason name)."""
    from certstatus.model import REASONS_BY_CODE

    issued = {serial_from_key(row[0]) for row in db.execute("SELECT serial FROM issued WHERE source = 'index'")}
    statuses = {serial: ("V", None) for serial in issued}
    for key, when, reason in db.execute("SELECT serial, revocation_time, reason FROM revoked WHERE source = 'index'"):
        assert when == int(dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp())
        statuses[serial_from_key(key)] = ("R", None if reason is None else REASONS_BY_CODE[reason].value)
    return statuses


def _check_served_rows(database: Path, statuses: dict[int, tuple[str, str | None]], signer: x509.Certificate, verified: set[bytes]) -> int:
    """Every servable pre-signed row is a verified response with the serial's current status; returns how many.

    ``verified``: responses whose signature was checked before (rows signed earlier), grown here.
    """
    key = signer.public_key()
    checked = 0
    for (serial_key, algorithm), der in _fresh_rows(database).items():
        serial = serial_from_key(serial_key)
        response = ocsp.load_der_ocsp_response(der)
        assert response.response_status is OCSPResponseStatus.SUCCESSFUL
        if der not in verified:
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), response.signature_hash_algorithm)
            verified.add(der)
        assert response.serial_number == serial and response.hash_algorithm.name == algorithm
        state, reason = statuses[serial]
        if state == "V":
            assert response.certificate_status is OCSPCertStatus.GOOD, f"{serial:#x} ({algorithm}) served as {response.certificate_status}"
        else:
            assert response.certificate_status is OCSPCertStatus.REVOKED, f"{serial:#x} ({algorithm}) served as {response.certificate_status}"
            assert response.revocation_time_utc == dt.datetime(2026, 1, 1, tzinfo=UTC)
            got = None if response.revocation_reason is None else response.revocation_reason.value
            assert got == reason, (serial, got, reason)
        checked += 1
    return checked


def _pending_serials(database: Path, now: int) -> int:
    """Serials the next generation must sign: a row missing, outdated (changed after signing) or due."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT count(*) FROM issued s WHERE s.source = 'index' AND NOT EXISTS ("
            " SELECT 1 FROM precomputed p WHERE p.issuer_id = s.issuer_id AND p.serial = s.serial"
            "  AND p.sha1 IS NOT NULL AND p.sha256 IS NOT NULL AND p.changed_seq <= p.signed_seq AND p.renew_at > ?)",
            (now,),
        ).fetchone()[0]


def _fresh_rows(database: Path) -> dict[tuple[bytes, str], bytes]:
    """(serial key, hash algorithm) -> complete response DER of every servable pre-signed row.

    Rows hold both responses without the delegated responder certificate (schema 4); it is
    spliced back as the store does when serving.
    """
    rows: dict[tuple[bytes, str], bytes] = {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        certs = {row[0]: ResponseAssembler(row[1]) for row in db.execute("SELECT id, der FROM precomputed_certs")}
        for serial, sha1, sha256, certs_id in db.execute(
            "SELECT serial, sha1, sha256, certs_id FROM precomputed WHERE changed_seq <= signed_seq"
        ):
            for algorithm, body in (("sha1", sha1), ("sha256", sha256)):
                if body is not None:
                    rows[(serial, algorithm)] = body if certs_id is None else certs[certs_id].assemble(body)
    return rows


def _run(config: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*CERTSTATUS, *args, "--config", str(config)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _resume_and_count(config: Path, database: Path) -> int:
    """Run the interrupted job to the end; check it signed exactly what was left and nothing fresh again."""
    _run(config, "import")
    pending = _pending_serials(database, int(time.time()))
    fresh = _fresh_rows(database)
    done = _run(config, "generate", "--no-import", "--processes", "1", "--batch-size", str(BATCH))
    signed = int(re.search(r"([\d,]+) responses in", done.stdout + done.stderr).group(1).replace(",", ""))
    assert signed == 2 * pending, (signed, pending)
    after = _fresh_rows(database)
    assert {key: after[key] for key in fresh} == fresh  # nothing still fresh was signed again
    assert _pending_serials(database, int(time.time())) == 0
    return signed


def _change_counter(database: Path) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT max(change_counter) FROM issuers").fetchone()[0] or 0
    except sqlite3.OperationalError:  # locked for a moment by the writer
        return -1


def _signing_started(database: Path, before: int, process: subprocess.Popen) -> float:
    """Wait until the run's import committed (the change counter grew); return when (monotonic)."""
    while process.poll() is None and _change_counter(database) in (before, -1):
        time.sleep(0.005)
    return time.monotonic()


def _lane(lane: int, pki: DemoPki, root: Path, kills: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    folder = root / f"lane{lane}"
    folder.mkdir()
    index = folder / "index.txt"
    database = folder / "store.sqlite3"
    config = folder / "certstatus.toml"
    config.write_text(
        f'[server]\ndatabase = "{database}"\n\n[ca.demo]\ncertificate = "{pki.ca_cert}"\nindex = "{index}"\n'
        f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\nmode = "precomputed"\n'
    )
    signer = x509.load_pem_x509_certificate(pki.ocsp_cert.read_bytes())
    next_serial = (lane + 1) << 80
    statuses: dict[int, tuple[str, str | None]] = {}
    for _ in range(SERIALS):
        statuses[next_serial] = ("V", None) if rng.random() < 0.8 else ("R", rng.choice(REASONS))
        next_serial += rng.randrange(1, 1 << 20)

    def change() -> dict[int, tuple[str, str | None]]:
        nonlocal next_serial
        changed = dict(statuses)
        for serial in rng.sample(sorted(changed), FLIP):
            changed[serial] = ("R", rng.choice(REASONS)) if changed[serial][0] == "V" else ("V", None)
        for _ in range(NEW_PER_ITERATION):
            changed[next_serial] = ("V", None)
            next_serial += rng.randrange(1, 1 << 20)
        return changed

    index.write_text(_index_text(statuses))
    _run(config, "generate", "--processes", "0", "--batch-size", str(BATCH))  # the initial, complete generation
    statuses = change()  # one typical iteration, unkilled: it times the window kills fall in
    index.write_text(_index_text(statuses))
    before = _change_counter(database)
    started = time.monotonic()
    process = subprocess.Popen([*CERTSTATUS, "generate", "--config", str(config), "--processes", "0", "--batch-size", str(BATCH)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    signing = _signing_started(database, before, process)
    assert process.wait(timeout=300) == 0
    typical, typical_signing = time.monotonic() - started, time.monotonic() - signing
    outcome = {"kills": 0, "old index": 0, "mid-signing": 0, "done": 0, "resumed responses": 0, "rows checked": 0}
    settings = load_config(config)
    verified: set[bytes] = set()
    for number in range(kills):
        new = change()
        index.write_text(_index_text(new))
        before = _change_counter(database)
        processes = rng.choice(("0", "1"))  # signing in the command's process, or in a worker process
        process = subprocess.Popen(
            [*CERTSTATUS, "generate", "--config", str(config), "--processes", processes, "--batch-size", str(BATCH)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        if rng.random() < 0.4:  # anywhere: start-up, import, signing, the end
            time.sleep(rng.uniform(0.1, 1.1) * typical)
        else:  # while signing: the import has committed
            _signing_started(database, before, process)
            time.sleep(rng.uniform(0.0, 1.0) * typical_signing + (0.5 if processes == "1" else 0.0))  # a worker starts first
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        outcome["kills"] += 1
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            held = _store_statuses(db)
        assert held in (statuses, new), "the store holds neither the old nor the new index"
        if held == statuses:
            outcome["old index"] += 1
        statuses = held
        outcome["rows checked"] += _check_served_rows(database, statuses, signer, verified)
        if held == new:
            outcome["mid-signing" if _pending_serials(database, int(time.time())) else "done"] += 1
        app = build_application(settings, ManualClock(dt.datetime.now(UTC)), watch=False)
        try:  # served answers (pre-signed or signed live) match the committed index
            for serial in rng.sample(sorted(statuses), 4):
                answer = ocsp_query(app, pki, serial).certificate_status
                assert answer is (OCSPCertStatus.GOOD if statuses[serial][0] == "V" else OCSPCertStatus.REVOKED), (serial, answer)
        finally:
            app.close()
        if number in (kills // 2, kills - 1):
            statuses = new  # the resumed job imports the index on disk first
            outcome["resumed responses"] += _resume_and_count(config, database)
            outcome["rows checked"] += _check_served_rows(database, statuses, signer, verified)
    return outcome


def test_generation_killed_at_random_points_serves_only_right_answers_and_resumes(demo_pki_rsa: DemoPki, tmp_path: Path) -> None:
    pki = copy_pki(demo_pki_rsa, tmp_path / "pki")
    per_lane = [ITERATIONS // LANES + (1 if lane < ITERATIONS % LANES else 0) for lane in range(LANES)]
    with concurrent.futures.ThreadPoolExecutor(LANES) as pool:
        lanes = [pool.submit(_lane, lane, pki, tmp_path, kills, 3000 + lane) for lane, kills in enumerate(per_lane)]
        outcomes = [lane.result() for lane in lanes]
    total = {key: sum(o[key] for o in outcomes) for key in outcomes[0]}
    print(f"\n{total['kills']} SIGKILLed generations: {total['old index']} before the import committed, "
          f"{total['mid-signing']} mid-signing, {total['done']} after the last batch; "
          f"{total['rows checked']} served rows verified; {LANES * 2} resumed runs signed {total['resumed responses']} "
          "responses, exactly what was left")  # fmt: skip
    assert total["kills"] >= ITERATIONS
    assert total["mid-signing"] > 0, "no kill landed while signing: the timing window is off"
