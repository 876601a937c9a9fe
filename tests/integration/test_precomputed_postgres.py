"""Precomputed mode on PostgreSQL: a fleet of `certstatus serve` sharing one database, asked by `openssl ocsp`.

`certstatus generate` signs into a PostgreSQL schema of the module's own;
two `serve` processes (A and B, same configuration, HTTP edge) serve
it. Only one process generates for the CA at a time (its advisory lock),
the other says so in its log and takes over when the holder is killed; a
pushed revocation is answered by both and re-signed within seconds; a
SIGKILLed `certstatus generate` resumes without re-signing what it did; and
a stored response at its refresh point is not served (injected clock).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import time

import httpx
import psycopg
import pytest
from cryptography.x509 import ocsp

from certstatus.app import build_application, prepare
from certstatus.clock import ManualClock
from certstatus.generator.run import Generator
from certstatus.store.base import PRECOMPUTED_HASH_ALGORITHMS
from certstatus.store.postgres import PostgresStore
from certstatus.store.postgres_lock import generator_lock_key
from tests.precomputed_helpers import answer, ca_settings, copy_pki, request_der, settings_for
from tests.processes import openssl_status, run_certstatus
from tests.servers import CERTSTATUS, demo_ca_table, free_port, start_server, table

pytestmark = pytest.mark.integration

DEADLINE = 20.0  # seconds: a bound for a broken fleet, not a speed check


def _wait(what: str, check, deadline: float = DEADLINE) -> float:
    """Call ``check`` until it returns true; return the seconds it took (fails after ``deadline``)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > deadline:
            pytest.fail(f"{what}: not within {deadline} s")
        time.sleep(0.05)
    return time.monotonic() - start


def _holders(dsn: str, issuer_id: int) -> list[tuple[str, int]]:
    """(application_name, backend pid) of the sessions holding the CA's generator lock."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        return conn.execute(
            "SELECT a.application_name, l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid "
            "AND l.objsubid = 2",
            (generator_lock_key(schema), issuer_id),
        ).fetchall()


def _generator_pid(application_name: str) -> int:
    return int(re.search(r"pid (\d+)$", application_name).group(1))


@pytest.fixture(scope="module")
def fleet(postgres_module_dsn, demo_pki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pg-precomputed")
    pki = copy_pki(demo_pki, folder / "pki")
    ports = free_port(), free_port()
    configs = []
    for name, port in zip("ab", ports, strict=True):
        config = folder / f"{name}.toml"
        config.write_text(
            table("server", listen=f"127.0.0.1:{port}", workers=1, database=postgres_module_dsn, common_path="")
            + demo_ca_table("demo", pki, index=True, path="/demo", mode="precomputed", push=True)
        )
        configs.append(config)
    run_certstatus("db", "upgrade", "--config", str(configs[0]))
    generated = run_certstatus("generate", "--config", str(configs[0]), "--processes", "1")
    servers = []
    try:
        for config, port in zip(configs, ports, strict=True):
            servers.append(start_server(config.parent, config, port=port))
        yield pki, configs, servers, generated.stderr
    finally:
        for server in servers:
            server.stop()


def _issuer_id(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT id FROM issuers WHERE name = 'demo'").fetchone()[0]


def test_generated_responses_are_served_by_both_processes_to_openssl(fleet, postgres_module_dsn):
    pki, _, servers, generated = fleet
    known = [serial for name, serial in pki.serials.items() if name != "unknown"]
    assert re.search(rf"{2 * (len(known) + 1)} responses in", generated), generated  # + the responder certificate
    for server in servers:
        url = server.url + "demo"
        assert openssl_status(pki.ca_cert, pki.leaves["good"], url, pki.root_cert, verify_other=pki.ca_cert) == "good"
        assert openssl_status(pki.ca_cert, pki.leaves["revoked-keycompromise"], url, pki.root_cert, verify_other=pki.ca_cert) == "revoked"
    issuer_id = _issuer_id(postgres_module_dsn)
    store = PostgresStore(postgres_module_dsn)
    try:
        for algorithm in PRECOMPUTED_HASH_ALGORITHMS:
            stored = store.precomputed(issuer_id, pki.serials["good"], algorithm)
            request = request_der(pki, "good", algorithm=algorithm)
            for server in servers:  # the stored bytes, certificates spliced back, are what is served
                body = httpx.post(server.url + "demo", content=request, headers={"content-type": "application/ocsp-request"}).content
                assert body == stored.der
    finally:
        store.close()


def test_one_process_generates_the_other_says_so_and_takes_over_when_it_is_killed(fleet, postgres_module_dsn):
    _, _, servers, _ = fleet
    issuer_id = _issuer_id(postgres_module_dsn)
    _wait("a background generator holds the lock", lambda: len(_holders(postgres_module_dsn, issuer_id)) == 1)
    _wait(
        "a serve process logs that another one generates",
        lambda: any("holds its generator lock" in server.log.read_text() for server in servers),
    )
    (name, _), = _holders(postgres_module_dsn, issuer_id)
    holder = _generator_pid(name)
    os.kill(holder, signal.SIGKILL)  # the background generator of one serve process, killed
    seconds = _wait(
        "another process takes the lock over",
        lambda: [_generator_pid(n) for n, _ in _holders(postgres_module_dsn, issuer_id)] not in ([], [holder]),
    )
    print(f"\ngenerator lock taken over {seconds * 1000:.0f} ms after its holder was killed")
    assert len(_holders(postgres_module_dsn, issuer_id)) == 1
    assert any("this process is its generator now" in server.log.read_text() for server in servers)


def test_a_pushed_revocation_is_answered_by_both_and_re_signed_within_seconds(fleet, postgres_module_dsn):
    pki, configs, servers, _ = fleet
    leaf, serial = pki.leaves["good2"], pki.serials["good2"]
    asks = [lambda s=s: openssl_status(pki.ca_cert, leaf, s.url + "demo", pki.root_cert, verify_other=pki.ca_cert) for s in servers]
    assert [ask() for ask in asks] == ["good", "good"]
    issuer_id = _issuer_id(postgres_module_dsn)
    store = PostgresStore(postgres_module_dsn)
    try:
        before = store.precomputed(issuer_id, serial, "sha1")
        run_certstatus("revoke", "demo", f"{serial:X}", "--reason", "keyCompromise", "--config", str(configs[1]))
        assert [ask() for ask in asks] == ["revoked", "revoked"]

        def re_signed() -> bool:
            stored = store.precomputed(issuer_id, serial, "sha256")
            return stored is not None and ocsp.load_der_ocsp_response(stored.der).certificate_status is ocsp.OCSPCertStatus.REVOKED

        seconds = _wait("the revocation re-signed into the store", re_signed, deadline=10)
        print(f"\npushed revocation re-signed into PostgreSQL {seconds * 1000:.0f} ms after the push command returned")
        assert store.precomputed(issuer_id, serial, "sha1").this_update >= before.this_update
        assert store.count_pending(issuer_id, "changed", now=dt.datetime.now(dt.timezone.utc)) == 0
    finally:
        store.close()


SERIALS = 1200  # RSA-2048, one signing process: a few seconds


def _stored(dsn: str) -> dict[tuple[int, str], tuple[bytes, dt.datetime]]:
    store = PostgresStore(dsn)
    try:
        return {
            (serial, algorithm): (response.der, response.this_update)
            for algorithm in PRECOMPUTED_HASH_ALGORITHMS
            for serial, response in store.stored_responses(_issuer_id(dsn), algorithm)
        }
    finally:
        store.close()


def _count(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(sha1) + count(sha256) FROM precomputed").fetchone()[0]


def test_a_sigkilled_generation_resumes_without_re_signing_what_is_fresh(postgres_dsn, demo_pki_rsa, tmp_path):
    issued = tmp_path / "issued.txt"
    issued.write_text("".join(f"{(1 << 100) + 7 * i:x}\n" for i in range(SERIALS)))
    config = tmp_path / "certstatus.toml"
    config.write_text(
        table("server", database=postgres_dsn)
        + table("ca.demo", certificate=demo_pki_rsa.ca_cert, issued=issued, signer_certificate=demo_pki_rsa.ocsp_cert,
                signer_key=demo_pki_rsa.ocsp_key, mode="precomputed")  # fmt: skip
    )
    run_certstatus("db", "upgrade", "--config", str(config))
    command = [*CERTSTATUS, "generate", "--config", str(config)]
    run = subprocess.Popen(
        [*command, "--processes", "1", "--batch-size", "25"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait("the generator signs", lambda: _count(postgres_dsn) >= 300 or run.poll() is not None, deadline=60)
        os.killpg(run.pid, signal.SIGKILL)  # the command and its signing process, mid-run
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait(30)
    assert run.returncode == -signal.SIGKILL
    done = _stored(postgres_dsn)
    assert 300 <= len(done) < 2 * SERIALS, "the kill did not land half-way"
    assert len({serial for serial, _ in done}) * 2 == len(done)  # whole batches: both hash algorithms

    resumed = run_certstatus("generate", "--config", str(config), "--no-import", "--batch-size", "200", timeout=300)
    assert "generator lock" not in resumed.stderr  # the killed run's lock went with its connection
    signed = int(re.search(r"([\d,]+) responses in", resumed.stderr).group(1).replace(",", ""))
    assert signed == 2 * SERIALS - len(done)
    after = _stored(postgres_dsn)
    assert len(after) == 2 * SERIALS
    assert {key: after[key] for key in done} == done  # nothing still fresh was signed again


def test_a_stored_response_at_its_refresh_point_is_not_served(postgres_dsn, demo_pki, tmp_path):
    """Validity 1 day: the refresh point is thisUpdate + 16 h; from then on the answer is signed live."""
    PostgresStore(postgres_dsn, upgrade=True).close()
    clock = ManualClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    settings = settings_for(postgres_dsn, ca_settings(copy_pki(demo_pki, tmp_path / "pki"), "precomputed"))
    prepare(settings, clock)
    store = PostgresStore(postgres_dsn)
    app = build_application(settings, clock, watch=False)
    try:
        with Generator(settings, store, clock=clock, processes=0) as generator:
            assert generator.run_pass().signed > 0
        request = request_der(demo_pki, "good")
        first = answer(app, request, clock)
        assert first.source == "precomputed"
        clock.advance(16 * 3600 - 1)
        assert answer(app, request_der(demo_pki, "good", algorithm="sha256"), clock).source == "precomputed"
        clock.advance(1)
        late = answer(app, request_der(demo_pki, "good", algorithm="sha256"), clock)
        assert late.source == "live" and late.this_update == clock.now()
    finally:
        app.store.close()
        store.close()
