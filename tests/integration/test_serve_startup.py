"""`certstatus serve` answers from the stored responses before its background generation pass has run.

The store is generated (`certstatus generate`), then a certificate is revoked in
the index while the responder is "down". `serve` is started through a wrapper
script that holds every generation pass (``Generator.run_pass``) until the test
creates a file: the wrapper is the spawned processes' main module too, so the
hold reaches the background generator. The server must listen and answer
meanwhile — the untouched serial with the stored bytes, the revoked one signed
live as revoked (its stored "good" is never served) — and, once released, the
background pass re-signs the revoked serial. A server that generated before
listening would never listen here. SQLite and PostgreSQL: their stores differ.

The single-CA form (``serve --issuer … --mode precomputed``) is the exception
issue 3 asks for: it generates before it listens, so with the same hold it must
not listen until the pass is released, and its first answer is the stored one.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from certstatus.store.factory import open_store
from tests.precomputed_helpers import certificate, copy_pki, request_der
from tests.processes import CERTSTATUS, ServeProcess, free_port, run_certstatus
from tests.servers import demo_ca_table, table

pytestmark = pytest.mark.integration

DEADLINE = 60.0  # seconds: a bound for a broken server, not a speed check

HOLD = '''\
"""certstatus's main, with every generation pass held until {release} exists (tests/integration/test_serve_startup.py)."""
import pathlib
import time

from certstatus.generator import run

_run_pass = run.Generator.run_pass


def held_run_pass(self, *args, **kwargs):
    pathlib.Path({started!r}).touch()
    while not pathlib.Path({release!r}).exists():
        time.sleep(0.05)
    return _run_pass(self, *args, **kwargs)


run.Generator.run_pass = held_run_pass  # also in the processes multiprocessing spawns: they run this module first

if __name__ == "__main__":
    from certstatus.cli import main

    main()
'''


def _wait(what: str, check) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {DEADLINE} s")
        time.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return request.getfixturevalue("postgres_dsn")


def test_serve_answers_from_the_store_while_its_first_generation_pass_is_held(database, demo_pki, tmp_path):
    pki = copy_pki(demo_pki, tmp_path / "pki")
    port = free_port()
    config = tmp_path / "certstatus.toml"
    config.write_text(
        table("server", listen=f"127.0.0.1:{port}", workers=1, database=database)
        + demo_ca_table("demo", pki, index=True, mode="precomputed")
    )
    if database.startswith("postgresql"):
        run_certstatus("db", "upgrade", "--config", str(config))
    run_certstatus("generate", "--config", str(config), "--processes", "1")
    store = open_store(database)
    issuer_id = store.register_issuer("demo", certificate(pki.ca_cert).public_bytes(serialization.Encoding.DER))

    def stored(leaf: str):
        return store.precomputed(issuer_id, pki.serials[leaf], "sha1")

    try:
        kept = stored("good").der
        assert stored("good2") is not None
        # While the responder is down, good2 is revoked in the index; serve imports that before it listens.
        hex_serial = f"{pki.serials['good2']:X}"
        pki.index.write_text("".join(
            line.replace("V\t", "R\t", 1).replace("\t\t", "\t260101000000Z,keyCompromise\t", 1) if hex_serial in line else line
            for line in pki.index.read_text().splitlines(keepends=True)
        ))  # fmt: skip
        started, release = tmp_path / "pass-started", tmp_path / "pass-release"
        wrapper = tmp_path / "held_certstatus.py"
        wrapper.write_text(HOLD.format(started=str(started), release=str(release)))

        server = ServeProcess.start(config, port, command=[CERTSTATUS[0], str(wrapper)])
        try:
            _wait("the background generator starts its first pass", started.exists)
            assert stored("good2") is None, "good2's stale response must stay unserved until re-signed"
            ask = lambda leaf: httpx.post(server.url, content=request_der(pki, leaf), timeout=10)  # noqa: E731
            answer = ask("good")
            assert answer.status_code == 200 and answer.content == kept  # the stored bytes, pass still held
            live = ocsp.load_der_ocsp_response(ask("good2").content)
            assert live.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
            assert live.certificate_status is ocsp.OCSPCertStatus.REVOKED  # signed live, not the stored "good"
            assert "first generation pass done" not in server.log.read_text()

            release.touch()
            _wait("the background pass re-signs good2", lambda: stored("good2") is not None)
            resigned = ocsp.load_der_ocsp_response(stored("good2").der)
            assert resigned.certificate_status is ocsp.OCSPCertStatus.REVOKED
            assert resigned.revocation_reason is not None and resigned.revocation_reason.name == "key_compromise"
            _wait("the first pass's log line", lambda: "first generation pass done" in server.log.read_text())
            assert stored("good").der == kept  # still fresh: not signed again
        finally:
            server.stop()
    finally:
        store.close()


def test_the_single_ca_form_generates_before_it_listens(demo_pki, tmp_path):
    """``serve --issuer … --mode precomputed`` (issue 3): the pass runs first, then the listener opens."""
    pki = copy_pki(demo_pki, tmp_path / "pki")
    port = free_port()
    database = tmp_path / "store.sqlite3"
    started, release = tmp_path / "pass-started", tmp_path / "pass-release"
    wrapper = tmp_path / "held_certstatus.py"
    wrapper.write_text(HOLD.format(started=str(started), release=str(release)))
    server = ServeProcess.launch(
        ["serve", "--issuer", str(pki.ca_cert), "--index", str(pki.index), "--signer-cert", str(pki.ocsp_cert),
         "--signer-key", str(pki.ocsp_key), "--mode", "precomputed", "--name", "demo", "--db", str(database),
         "--listen", f"127.0.0.1:{port}", "--workers", "1"],
        tmp_path / "serve.log", port, command=[CERTSTATUS[0], str(wrapper)],
    )  # fmt: skip
    try:
        _wait("the pass before listening starts", started.exists)
        with pytest.raises(OSError):  # held in the pass: not listening yet
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        release.touch()
        server.wait_listening(DEADLINE)
        assert "pre-signed responses" in server.log.read_text()  # the pass's summary, printed before the listener opened
        store = open_store(database)
        try:
            issuer_id = store.register_issuer("demo", certificate(pki.ca_cert).public_bytes(serialization.Encoding.DER))
            stored = store.precomputed(issuer_id, pki.serials["good"], "sha1")
        finally:
            store.close()
        assert stored is not None
        answer = httpx.post(server.url, content=request_der(pki, "good"), timeout=10)
        assert answer.status_code == 200 and answer.content == stored.der  # the first answer is the stored one
    finally:
        server.stop()
