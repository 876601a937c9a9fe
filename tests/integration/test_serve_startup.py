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

The single-CA form (``serve --issuer … --mode precomputed``, a CA tried by hand) is
the exception: it generates before it listens, so with the same hold it must
not listen until the pass is released, and its first answer is the stored one.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from certstatus.store.factory import open_store
from tests.openssl_ca import OpenSslCa
from tests.precomputed_helpers import certificate, copy_pki, request_der
from tests.processes import openssl_status, run_certstatus
from tests.servers import CERTSTATUS, demo_ca_table, free_port, start_server, table

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

        server = start_server(config.parent, config, port=port, command=[CERTSTATUS[0], str(wrapper)])
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
    """``serve --issuer … --mode precomputed``: the pass runs first, then the listener opens."""
    pki = copy_pki(demo_pki, tmp_path / "pki")
    port = free_port()
    database = tmp_path / "store.sqlite3"
    started, release = tmp_path / "pass-started", tmp_path / "pass-release"
    wrapper = tmp_path / "held_certstatus.py"
    wrapper.write_text(HOLD.format(started=str(started), release=str(release)))
    server = start_server(
        tmp_path, port=port, wait=False, command=[CERTSTATUS[0], str(wrapper)],
        args=["serve", "--issuer", str(pki.ca_cert), "--index", str(pki.index), "--signer-cert", str(pki.ocsp_cert),
              "--signer-key", str(pki.ocsp_key), "--mode", "precomputed", "--name", "demo", "--db", str(database),
              "--listen", f"127.0.0.1:{port}", "--workers", "1"],
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


@pytest.mark.parametrize("mode, pick_up, store", [
    ("live", "refresher", "sqlite"), ("live", "refresher", "postgresql"), ("precomputed", "SIGHUP", "sqlite"),
])  # fmt: skip
def test_a_crl_refused_at_start_keeps_its_ca_at_try_later_until_it_imports(request, demo_pki, tmp_path, mode, pick_up, store):
    """Fail closed: the index imports, the CRL (a real `openssl ca` CRL of another CA) is refused. The server
    starts, the CA answers tryLater (`openssl ocsp`; the responder's fast path and edge cache included, on the default edge),
    /ready is 503 naming it, and one JSON error line names CA, source and reason. Once the CA's own CRL is in
    place, the refresher (file poll) or a SIGHUP imports it and the CA answers: the worker learns it from the
    store's change propagation (SQLite: polled; PostgreSQL: NOTIFY), or is replaced (SIGHUP)."""
    pki = copy_pki(demo_pki, tmp_path / "pki")
    other = OpenSslCa(tmp_path / "other-ca")
    other.gencrl()
    crl = tmp_path / "ca.crl"
    crl.write_bytes(other.last_crl_der())
    port = free_port()
    database = request.getfixturevalue("postgres_dsn") if store == "postgresql" else str(tmp_path / "store.sqlite3")
    config = tmp_path / "certstatus.toml"
    config.write_text(
        table("server", listen=f"127.0.0.1:{port}", workers=1, database=database)
        + demo_ca_table("demo", pki, crl=crl, index=True, mode=mode)
    )
    if store == "postgresql":
        run_certstatus("db", "upgrade", "--config", str(config))
    server = start_server(config.parent, config, port=port)
    try:
        def status(leaf: str) -> str:
            return openssl_status(pki.ca_cert, pki.leaves[leaf], server.url, pki.root_cert, verify_other=pki.ca_cert)

        assert [status("good"), status("revoked-keycompromise")] == ["trylater", "trylater"]
        assert [status("good"), status("revoked-keycompromise")] == ["trylater", "trylater"]  # no cached answer either
        ready = httpx.get(f"{server.url}ready", timeout=10)
        assert ready.status_code == 503 and f"CA demo: nothing imported yet from crl {crl}" in ready.text
        assert httpx.get(f"{server.url}health", timeout=10).status_code == 200  # started, alive, not ready
        errors = [line for line in _json_lines(server.log) if line["level"] == "error"]
        assert len(errors) == 1, errors
        assert (errors[0]["ca"], errors[0]["source"], errors[0]["origin"]) == ("demo", "crl", str(crl))
        assert "CRL issuer is" in errors[0]["reason"]

        crl.write_bytes(pki.crl.read_bytes())  # the operator puts the CA's own CRL in place
        if pick_up == "SIGHUP":
            server.process.send_signal(signal.SIGHUP)
        _wait("the CA answers", lambda: status("revoked-keycompromise") == "revoked")
        assert status("good") == "good"
        assert httpx.get(f"{server.url}ready", timeout=10).status_code == 200
    finally:
        server.stop()


def _json_lines(log) -> list[dict]:
    """The JSON log lines of a server's output (the import table and other text left out)."""
    lines = []
    for text in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            if isinstance(entry := json.loads(text), dict):
                lines.append(entry)
    return lines
