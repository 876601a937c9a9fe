"""A delegated responder certificate the CA revokes stops signing in every process of a running
`certstatus serve`, on SQLite and on PostgreSQL: the successor signs (or tryLater when none is
left), one log line says so, `/metrics` and `/ready` follow, and pre-signed responses of the
revoked signer are neither served nor kept."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.app import prepare
from certstatus.clock import ManualClock
from certstatus.config import load_config
from certstatus.demo_pki import DemoPki, make_demo_pki, sign_crl
from certstatus.model import RevokedEntry
from certstatus.protocol.response import UNSUCCESSFUL
from certstatus.server.worker_settings import SETTINGS_ENV
from certstatus.signing.revocation import RECHECK_SECONDS
from certstatus.store.factory import open_store
from certstatus.supervisor.lifecycle import Lifecycle
from tests.processes import run_certstatus
from tests.servers import ADMIN_TOKEN, Server, free_port, signer_states, start_server, table
from tests.signing_support import load_cert, load_key, ocsp_request, openssl_verify, response_signer_cn, write_signer

pytestmark = pytest.mark.integration

DEADLINE = 15.0  # seconds: a bound for a server that never notices, not a speed check
AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Pki:
    """The demo PKI and two delegated responders of its CA, "older" and "newer" (the default signer: latest
    notBefore), as (certificate, key) paths."""

    demo: DemoPki
    responders: dict[str, tuple[Path, Path]]

    def serial(self, name: str) -> int:
        return load_cert(self.responders[name][0]).serial_number


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("revocation-pki")
    demo = make_demo_pki(folder, key_type="ec")
    now = dt.datetime.now(dt.timezone.utc)
    responders = {
        name: write_signer(demo, folder / "signers", name, ec.generate_private_key(ec.SECP256R1()),
                           not_before=now - age, not_after=now + 30 * DAY)
        for name, age in (("older", 2 * DAY), ("newer", DAY))
    }  # fmt: skip
    return Pki(demo, responders)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path) -> str:
    """The store of the test's server: an SQLite file, or a fresh schema of the real PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return request.getfixturevalue("postgres_dsn")


def _config(pki: Pki, database: str, port: int, admin_port: int, token_file: Path | str = "admin.token", *,
            mode: str = "live") -> str:
    signers = "".join(
        f"\n[[ca.demo.signer]]\ncertificate = {json.dumps(str(cert))}\nkey = {json.dumps(str(key))}\n"
        for cert, key in pki.responders.values()
    )
    demo = pki.demo
    return (
        table("server", listen=f"127.0.0.1:{port}", workers=2, database=database)
        + table("admin", listen=f"127.0.0.1:{admin_port}", token_file=token_file)
        + table("ca.demo", certificate=demo.ca_cert, crl=[demo.crl], index=demo.index, push=True, mode=mode)
        + signers
    )


def _serve(folder: Path, pki: Pki, database: str, **options) -> Server:
    port, admin_port = free_port(), free_port()
    text = _config(pki, database, port, admin_port, **options)
    if database.startswith("postgresql://"):  # PostgreSQL schemas are upgraded by the operator
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "certstatus.toml").write_text(text)
        run_certstatus("db", "upgrade", "--config", str(folder / "certstatus.toml"))
    return start_server(folder, text, port=port, admin_port=admin_port)


def _ask(server: Server, pki: Pki) -> httpx.Response:
    der = ocsp_request(load_cert(pki.demo.ca_cert), pki.demo.serials["good"])
    return httpx.post(server.url, content=der, headers={"content-type": "application/ocsp-request"}, timeout=10)


def _signer_of(reply: httpx.Response) -> str:
    """The CN of the responder that signed the answer, or "tryLater"."""
    if reply.status_code == 503 and reply.content == UNSUCCESSFUL[OCSPResponseStatus.TRY_LATER]:
        return "tryLater"
    assert reply.status_code == 200, reply
    return response_signer_cn(reply.content)


def _wait_for(what: str, check, server: Server):
    """Call ``check`` until it returns something true; return it (fails with the server log after DEADLINE)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {DEADLINE} s\n{server.log_text()[-6000:]}")
        time.sleep(0.05)


def _signer_states(admin_get) -> dict[str, str]:
    """signer → state, from ``/metrics``."""
    return signer_states(admin_get("/metrics").text)


def _log_lines_naming(server: Server, text: str) -> list[dict]:
    """The JSON log lines of every process of the server whose message contains ``text``."""
    found = []
    for line in server.log_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and text in str(entry.get("message", "")):
            found.append(entry)
    return found


def _revoke(admin_url: str, serial: int) -> None:
    reply = httpx.post(f"{admin_url}/v1/ca/demo/revoke", headers=AUTH, timeout=10,
                       json={"serial": f"{serial:X}", "reason": "keyCompromise"})
    assert reply.status_code == 200, reply.text


def test_a_revoked_responder_certificate_stops_signing_in_every_worker_and_is_logged_once(tmp_path, pki, database) -> None:
    server = _serve(tmp_path / "serve", pki, database)
    try:
        assert _signer_of(_ask(server, pki)) == "newer responder"
        newer, older = pki.serial("newer"), pki.serial("older")

        # Pushed through the admin API: the successor signs, in both workers (new connection each time).
        _revoke(server.admin_url, newer)
        _wait_for("the successor signs", lambda: all(_signer_of(_ask(server, pki)) == "older responder" for _ in range(20)), server)
        reply = _ask(server, pki)
        assert "Cert Status: good" in openssl_verify(tmp_path, reply.content, pki.demo, pki.demo.leaves["good"])
        _wait_for("/metrics shows it revoked", lambda: _signer_states(server.admin_get) == {"older": "active", "newer": "revoked"}, server)

        # Revoked by `certstatus revoke`, another process: none is left, so tryLater, and /ready says why.
        run_certstatus("revoke", "demo", f"{older:X}", "--reason", "keyCompromise", "--config", str(server.folder / "certstatus.toml"))
        _wait_for("tryLater", lambda: all(_signer_of(_ask(server, pki)) == "tryLater" for _ in range(20)), server)
        _wait_for("/metrics shows both revoked", lambda: _signer_states(server.admin_get) == {"older": "revoked", "newer": "revoked"}, server)
        ready = server.admin_get("/ready")
        assert ready.status_code == 503 and "CA demo: no signer is valid now" in ready.text

        time.sleep(1.0)  # what a second look of any process would add to the log
        [about_newer] = _log_lines_naming(server, f"serial {newer:X}")
        assert about_newer["level"] == "warning"
        assert "signer newer" in about_newer["message"] and "signer older signs from now on" in about_newer["message"]
        [about_older] = _log_lines_naming(server, f"serial {older:X}")
        assert about_older["level"] == "error" and "answering tryLater" in about_older["message"]
        # Said once, by the line above (each tryLater answer has its own info line, as any tryLater has).
        assert not [line for line in _log_lines_naming(server, "has no signer valid now") if line["level"] != "info"]
        assert not _log_lines_naming(server, "cannot check whether signer")
    finally:
        assert server.stop() == 0


def test_pre_signed_responses_of_a_revoked_signer_are_not_served_and_are_signed_again(tmp_path, pki, database) -> None:
    server = _serve(tmp_path / "serve", pki, database, mode="precomputed")
    ca = load_cert(pki.demo.ca_cert)
    good = pki.demo.serials["good"]

    def stored_signer() -> str | None:
        store = open_store(database, upgrade=False)
        try:
            issuer_id = store.register_issuer("demo", ca.public_bytes(serialization.Encoding.DER))
            stored = dict(store.stored_responses(issuer_id, "sha1"))
        finally:
            store.close()
        return response_signer_cn(stored[good].der) if good in stored else None

    try:
        _wait_for("the generator signs", lambda: stored_signer() == "newer responder", server)
        assert _signer_of(_ask(server, pki)) == "newer responder"
        # Revoked by a CRL import (uploaded to the admin API), as a CA publishes it.
        now = dt.datetime.now(dt.timezone.utc)
        crl = sign_crl(ca, load_key(pki.demo.ca_key), [RevokedEntry(pki.serial("newer"), now, None)],
                       crl_number=100, this_update=now, next_update=now + DAY)
        reply = httpx.post(f"{server.admin_url}/v1/ca/demo/crl", headers={**AUTH, "content-type": "application/pkix-crl"},
                           content=crl.public_bytes(serialization.Encoding.DER), timeout=10)
        assert reply.status_code == 200, reply.text
        _wait_for("the stored response is not served", lambda: all(_signer_of(_ask(server, pki)) == "older responder" for _ in range(20)), server)
        _wait_for("the generator signs it again with the successor", lambda: stored_signer() == "older responder", server)
        assert "Cert Status: good" in openssl_verify(tmp_path, _ask(server, pki).content, pki.demo, pki.demo.leaves["good"])

        # The last signer revoked: its stored responses are not served either, and the generator stops quietly.
        _revoke(server.admin_url, pki.serial("older"))
        _wait_for("tryLater", lambda: all(_signer_of(_ask(server, pki)) == "tryLater" for _ in range(20)), server)
        time.sleep(2.0)  # the generator's next ticks
        assert len(_log_lines_naming(server, f"serial {pki.serial('newer'):X}")) == 1
        [about_older] = _log_lines_naming(server, f"serial {pki.serial('older'):X}")
        assert about_older["level"] == "error"
        assert not _log_lines_naming(server, "generation pass failed")
    finally:
        assert server.stop() == 0


def test_metrics_and_ready_follow_a_revocation_past_the_recheck_period(tmp_path, pki, database, monkeypatch, caplog) -> None:
    """The supervisor's /metrics and /ready, scraped on the admin thread, against an injected clock."""
    for name in ("PROMETHEUS_MULTIPROC_DIR", SETTINGS_ENV):  # Lifecycle.start exports them; restored afterwards
        monkeypatch.delenv(name, raising=False)
    port, admin_port = free_port(), free_port()
    token = tmp_path / "admin.token"
    token.write_text(ADMIN_TOKEN + "\n")
    token.chmod(0o600)
    config = tmp_path / "certstatus.toml"
    config.write_text(_config(pki, database, port, admin_port, token))
    open_store(database, upgrade=True).close()
    settings = load_config(config)
    clock = ManualClock(dt.datetime.now(dt.timezone.utc))
    prepare(settings, clock)
    lifecycle = Lifecycle(settings, clock=clock)
    lifecycle.start()  # the supervisor's services in this process (no workers): its admin listener answers
    admin_url = f"http://127.0.0.1:{admin_port}"

    def admin_get(path: str) -> httpx.Response:
        return httpx.get(admin_url + path, headers=AUTH, timeout=10)

    try:
        assert _signer_states(admin_get) == {"older": "standby", "newer": "active"}
        _revoke(admin_url, pki.serial("newer"))
        deadline = time.monotonic() + DEADLINE
        while _signer_states(admin_get) != {"older": "active", "newer": "revoked"}:
            assert time.monotonic() < deadline, _signer_states(admin_get)
            time.sleep(0.05)
        for _ in range(3):  # scrapes past the re-check period: the state holds, no store is used from the wrong thread
            clock.advance(RECHECK_SECONDS + 1)
            assert _signer_states(admin_get) == {"older": "active", "newer": "revoked"}
            assert admin_get("/ready").status_code == 200
        _revoke(admin_url, pki.serial("older"))
        deadline = time.monotonic() + DEADLINE
        while admin_get("/ready").status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        clock.advance(RECHECK_SECONDS + 1)
        assert _signer_states(admin_get) == {"older": "revoked", "newer": "revoked"}
    finally:
        lifecycle.stop()
    assert not [r for r in caplog.records if "ProgrammingError" in r.getMessage() or "cannot check" in r.getMessage()]
