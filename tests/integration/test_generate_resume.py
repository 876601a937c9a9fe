"""A real `certstatus generate` killed with SIGKILL half-way resumes without re-signing what it did."""

from __future__ import annotations

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

from certstatus.store.base import PRECOMPUTED_HASH_ALGORITHMS
from certstatus.store.sqlite import SQLiteStore
from tests.precomputed_helpers import copy_pki
from tests.servers import CERTSTATUS

pytestmark = pytest.mark.integration

SERIALS = 3000  # RSA-2048, one process: a few seconds of signing


def _rows(database: Path) -> dict[tuple[int, str], tuple[bytes, dt.datetime]]:
    """Every stored response, complete DER as served: (serial, hash algorithm) -> (der, thisUpdate)."""
    store = SQLiteStore(database)
    try:
        return {
            (serial, algorithm): (response.der, response.this_update)
            for algorithm in PRECOMPUTED_HASH_ALGORITHMS
            for serial, response in store.stored_responses(1, algorithm)
        }
    finally:
        store.close()


def _count(database: Path) -> int:
    """Responses stored so far (read while the generator writes)."""
    try:
        with sqlite3.connect(database, timeout=1) as db:
            return db.execute("SELECT count(sha1) + count(sha256) FROM precomputed").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_generation_killed_half_way_resumes_where_it_stopped(demo_pki_rsa, tmp_path):
    pki = copy_pki(demo_pki_rsa, tmp_path / "pki")
    issued = tmp_path / "issued.txt"
    rng = random.Random(5019)
    issued.write_text("".join(f"{rng.getrandbits(120) | 1 << 120:x}\n" for _ in range(SERIALS)))
    database = tmp_path / "store.sqlite3"
    config = tmp_path / "certstatus.toml"
    config.write_text(
        f"""
[server]
database = "{database}"

[ca.big]
certificate = "{pki.ca_cert}"
issued = "{issued}"
signer_certificate = "{pki.ocsp_cert}"
signer_key = "{pki.ocsp_key}"
mode = "precomputed"
"""
    )
    command = [*CERTSTATUS, "generate", "--config", str(config)]
    run = subprocess.Popen(
        [*command, "--processes", "1", "--batch-size", "25"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while _count(database) < 400 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.02)
        children = _children(run.pid)  # the signing process and multiprocessing's resource tracker
        os.kill(run.pid, signal.SIGKILL)  # the command alone: its workers are orphaned mid-batch
        run.wait(30)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert children and not any(_alive(pid) for pid in children), "workers outlived the killed generator"
    finally:
        for pid in [run.pid, *children]:  # nothing of it survives a failed assertion
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        run.wait(30)
    assert run.returncode == -signal.SIGKILL
    done = _rows(database)
    assert 400 <= len(done) < 2 * SERIALS, "the kill did not land half-way"
    assert len({serial for serial, _ in done}) * 2 == len(done)  # whole batches: both hash algorithms

    resumed = subprocess.run([*command, "--batch-size", "100"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    signed = int(re.search(r"([\d,]+) responses in", resumed.stderr).group(1).replace(",", ""))
    assert signed == 2 * SERIALS - len(done)
    after = _rows(database)
    assert len(after) == 2 * SERIALS
    assert {key: after[key] for key in done} == done  # nothing still fresh was signed again
