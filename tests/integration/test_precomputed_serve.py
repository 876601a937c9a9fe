"""`certstatus serve` in precomputed and cached mode, asked by the real `openssl ocsp` client.

One server for the module: the ECDSA demo CA in cached mode at /cached/, the
RSA demo CA in precomputed mode at /precomputed/, two worker processes of the
HTTP edge (with its edge answer cache) and
the background generator, and the admin listener (metrics). The server
listens at once and generates in the background; the fixture waits for that
first pass, so the tests' answers are the stored bytes (a request before it
would be signed live and kept in the worker's caches).
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography.x509 import ocsp
from prometheus_client.parser import text_string_to_metric_families

from certstatus.store.sqlite import SQLiteStore
from tests.ocsp_client import request_der
from tests.precomputed_helpers import copy_pki
from tests.servers import CERTSTATUS, demo_ca_table, free_port, start_server, table

pytestmark = pytest.mark.integration

class PrecomputedServer:
    """The module's server (tests/servers.py) and what the tests read beside it: store rows, openssl."""

    def __init__(self, folder: Path, cached, precomputed) -> None:
        port, admin = free_port(), free_port()
        self.folder = folder
        self.cached, self.precomputed = cached, precomputed
        self.database = folder / "store.sqlite3"
        config = (
            table("server", listen=f"127.0.0.1:{port}", workers=2, database=self.database, common_path="")
            + table("admin", listen=f"127.0.0.1:{admin}", token_file="admin.token")
            + demo_ca_table("cached", cached, index=True, path="/cached", mode="cached")
            + demo_ca_table("precomputed", precomputed, index=True, path="/precomputed", mode="precomputed")
        )
        self.server = start_server(folder, config, port=port, admin_port=admin)
        deadline = time.monotonic() + 60
        while "first generation pass done" not in self.server.log_text():
            if time.monotonic() > deadline:
                self.server.stop()
                raise RuntimeError(f"no first generation pass within 60 s:\n{self.server.log_text()}")
            time.sleep(0.05)
        self.port = port
        self.config = folder / "certstatus.toml"

    def stop(self) -> None:
        assert self.server.stop() == 0

    def stored(self, ca: str, serial: int, algorithm: str = "sha1") -> bytes | None:
        """The served (current) stored response, read as the request path reads it."""
        with sqlite3.connect(self.database) as db:
            issuer_id = db.execute("SELECT id FROM issuers WHERE name = ?", (ca,)).fetchone()[0]
        store = SQLiteStore(self.database)  # compact rows: the complete DER as the request path gets it
        try:
            stored = store.precomputed(issuer_id, serial, algorithm)
        finally:
            store.close()
        return None if stored is None else stored.der

    def openssl(self, ca: str, leaf: str, *, nonce: bool, out: Path) -> str:
        pki = self.cached if ca == "cached" else self.precomputed
        command = [
            "openssl", "ocsp", "-issuer", str(pki.ca_cert), "-cert", str(pki.leaves[leaf]),
            "-url", f"http://127.0.0.1:{self.port}/{ca}/", "-CAfile", str(pki.chain), "-respout", str(out),
        ]  # fmt: skip
        if not nonce:
            command.append("-no_nonce")
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr


@pytest.fixture(scope="module")
def server(demo_pki, demo_pki_rsa, tmp_path_factory):
    folder = tmp_path_factory.mktemp("precomputed-serve")
    running = PrecomputedServer(folder, copy_pki(demo_pki, folder / "ec"), copy_pki(demo_pki_rsa, folder / "rsa"))
    yield running
    running.stop()


def test_precomputed_mode_answers_openssl_with_the_stored_bytes_and_no_nonce(server, tmp_path):
    out = tmp_path / "resp.der"
    text = server.openssl("precomputed", "good", nonce=True, out=out)
    assert "Response verify OK" in text
    assert "WARNING: no nonce in response" in text  # RFC 5019 §4: nonce ignored
    assert f"{server.precomputed.leaves['good']}: good" in text
    assert out.read_bytes() == server.stored("precomputed", server.precomputed.serials["good"])

    text = server.openssl("precomputed", "revoked-keycompromise", nonce=False, out=out)
    assert "WARNING" not in text and "Response verify OK" in text
    assert "revoked" in text and "keyCompromise" in text
    assert out.read_bytes() == server.stored("precomputed", server.precomputed.serials["revoked-keycompromise"])


def test_cached_mode_echoes_a_nonce_and_serves_stored_bytes_without_one(server, tmp_path):
    out = tmp_path / "resp.der"
    text = server.openssl("cached", "good2", nonce=True, out=out)
    assert "Response verify OK" in text and "WARNING" not in text
    signed_live = out.read_bytes()
    stored = server.stored("cached", server.cached.serials["good2"])
    assert signed_live != stored

    text = server.openssl("cached", "good2", nonce=False, out=out)
    assert "Response verify OK" in text and ": good" in text
    assert out.read_bytes() == stored


def test_an_imported_revocation_is_served_at_once_and_resigned_within_seconds(server, tmp_path):
    pki = server.cached
    serial = pki.serials["good"]
    before = server.stored("cached", serial)
    assert ocsp.load_der_ocsp_response(before).certificate_status is ocsp.OCSPCertStatus.GOOD
    hex_serial = f"{serial:X}"
    lines = pki.index.read_text().splitlines(keepends=True)
    pki.index.write_text(
        "".join(
            line.replace("V\t", "R\t", 1).replace("\t\t", "\t250101000000Z,keyCompromise\t", 1) if hex_serial in line else line
            for line in lines
        )
    )
    imported = subprocess.run([*CERTSTATUS, "import", "--config", str(server.config)], capture_output=True, timeout=60)
    assert imported.returncode == 0, imported.stderr

    out = tmp_path / "resp.der"
    text = server.openssl("cached", "good", nonce=False, out=out)  # before or after the re-sign: revoked
    assert "revoked" in text and "keyCompromise" in text, text

    deadline = time.monotonic() + 30
    while (stored := server.stored("cached", serial, "sha256")) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored is not None, "not re-signed within 30 s"
    assert ocsp.load_der_ocsp_response(stored).certificate_status is ocsp.OCSPCertStatus.REVOKED
    # A worker that signed it live after the import keeps that (correct) answer in its cache
    # until its refresh point; the others read the re-signed one. Revoked either way.
    time.sleep(1.1)
    text = server.openssl("cached", "good", nonce=False, out=out)
    assert "revoked" in text and "Response verify OK" in text
    assert '"logger": "certstatus.generator", "message": "signed 2 responses' in server.server.log_text()


def _requests_by_source(server, ca: str) -> dict[str, float]:
    text = server.server.admin_get("/metrics").text
    return {
        sample.labels["source"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "certstatus_requests_total" and sample.labels.get("ca") == ca
        and sample.labels.get("response_status") == "successful"
    }


def test_edge_hits_are_counted_exactly_across_the_workers(server):
    """Each worker answers its first request for a CertID through the pipeline (which fills its
    edge cache) and the next ones from the edge; /metrics sums both workers, hits flushed once a second."""
    pki = server.precomputed
    der = request_der(pki.leaves["good2"], pki.ca_cert)
    before = _requests_by_source(server, "precomputed")
    count = 12
    for _ in range(count):  # a new connection each time lands on either worker
        reply = httpx.post(f"http://127.0.0.1:{server.port}/precomputed/", content=der,
                           headers={"content-type": "application/ocsp-request", "connection": "close"}, timeout=10)
        assert reply.status_code == 200 and reply.content == server.stored("precomputed", pki.serials["good2"])
    deadline = time.monotonic() + 15
    while sum((after := _requests_by_source(server, "precomputed")).values()) < sum(before.values()) + count:
        assert time.monotonic() < deadline, (before, after)
        time.sleep(0.2)
    assert sum(after.values()) == sum(before.values()) + count
    edge = after.get("edge", 0.0) - before.get("edge", 0.0)
    assert count - 2 <= edge <= count  # at most one pipeline answer per worker
