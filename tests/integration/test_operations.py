"""Operating a running certstatus: SIGHUP reload without refused requests, graceful SIGTERM, billing.

One server (2 workers, admin listener, audit log) over a copy of the EC
demo CA's data. A client thread keeps asking while the data and the
configuration change under SIGHUP; every one of its requests must get an
answer.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.clock import UTC
from certstatus.demo_pki import sign_crl
from certstatus.model import RevokedEntry
from tests.ocsp_client import cert_status, request_der, response_status
from tests.servers import CERTSTATUS, Asker, demo_ca_table, free_port, server_tables, start_server, table

pytestmark = pytest.mark.integration


def _config(port: int, admin: int, demo, *, with_rsa=None) -> str:
    text = server_tables(port, workers=2, admin=admin, audit=True) + demo_ca_table("ec", demo, crl="crl.pem")
    return text + (demo_ca_table("rsa", with_rsa) if with_rsa is not None else "")


@pytest.fixture(scope="module")
def server(demo_pki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("operations")
    shutil.copy(demo_pki.crl, folder / "crl.pem")
    port, admin = free_port(), free_port()
    running = start_server(folder, _config(port, admin, demo_pki), port=port, admin_port=admin)
    running.config_args = (port, admin)
    yield running
    running.stop()


def _ask(server, der: bytes) -> bytes:
    return httpx.post(server.url, content=der, timeout=10).content


def _children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(child) for child in text.split()}


def _until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_sighup_reloads_data_without_refusing_a_request(server, demo_pki):
    good = request_der(demo_pki.leaves["good"], demo_pki.ca_cert)
    assert cert_status(_ask(server, good)) == "good"
    asker = Asker(server.url, request_der(demo_pki.leaves["good2"], demo_pki.ca_cert))
    asker.start()
    try:
        ca = x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(demo_pki.ca_key.read_bytes(), None)
        now = dt.datetime.now(UTC).replace(microsecond=0)
        revoked = RevokedEntry(demo_pki.serials["good"], now - dt.timedelta(minutes=5), x509.ReasonFlags.superseded)
        crl = sign_crl(ca, ca_key, [revoked], crl_number=10, this_update=now, next_update=now + dt.timedelta(days=1))
        (server.folder / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        old = _children(server.process.pid)
        server.process.send_signal(signal.SIGHUP)
        assert _until(lambda: cert_status(_ask(server, good)) == "revoked"), server.log_text()
        # Every worker replaced (the one child left over is multiprocessing's resource tracker).
        assert _until(lambda: len(old & _children(server.process.pid)) <= 1), server.log_text()
        before = asker.answers
        assert _until(lambda: asker.answers > before + 20)
    finally:
        asker.stop.set()
        asker.join()
    assert asker.failures == [] and asker.answers > 0
    assert "reloaded configuration and data" in server.log_text()


def test_sighup_reloads_the_configuration_and_keeps_a_bad_one_out(server, demo_pki, demo_pki_rsa):
    port, admin = server.config_args
    rsa_good = request_der(demo_pki_rsa.leaves["good"], demo_pki_rsa.ca_cert)
    assert response_status(_ask(server, rsa_good)) is OCSPResponseStatus.UNAUTHORIZED
    config = server.folder / "certstatus.toml"
    config.write_text(_config(port, admin, demo_pki, with_rsa=demo_pki_rsa))
    server.process.send_signal(signal.SIGHUP)
    assert _until(lambda: response_status(_ask(server, rsa_good)) is OCSPResponseStatus.SUCCESSFUL), server.log_text()

    config.write_text(config.read_text() + "\n[ca.rsa.oops\n")
    server.process.send_signal(signal.SIGHUP)
    assert _until(lambda: "reload refused, the running configuration stays" in server.log_text())
    assert cert_status(_ask(server, rsa_good)) == "good"
    errors = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{") and "reload refused" in line]
    assert errors and errors[-1]["level"] == "error" and "is not valid TOML" in errors[-1]["message"]


def test_admin_listener_reports_readiness_and_data_age(server):
    assert httpx.get(server.admin_url + "/metrics", timeout=10).status_code == 401  # the admin token is needed
    assert server.admin_get("/health").status_code == 200
    assert server.admin_get("/ready").text == "ready\n"
    metrics = server.admin_get("/metrics").text
    assert 'certstatus_data_age_seconds{ca="ec",source="crl"}' in metrics


def test_billing_report_counts_the_certificates_each_requestor_asked(server, demo_pki, tmp_path):
    start = dt.datetime.now(UTC)
    mark = server.audit_count()
    asked = {"127.0.0.3": ["good", "revoked-keycompromise", "unknown"], "127.0.0.4": ["good2"]}
    for address, leaves in asked.items():
        with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10) as client:
            for leaf in leaves:
                client.post(server.url, content=request_der(demo_pki.leaves[leaf], demo_pki.ca_cert))
            client.post(server.url, content=b"\x30\x03\x02\x01\x01")  # not an OCSP request: refused, not billed
    end = dt.datetime.now(UTC) + dt.timedelta(seconds=1)
    sent = sum(len(leaves) + 1 for leaves in asked.values())  # the audit writer thread runs after each answer
    server.audit_records(lambda records: sum(r["client"] in asked for r in records[mark:]) >= sent)
    out = subprocess.run(
        [*CERTSTATUS, "billing", "report", "--log", str(server.folder / "audit.log"), "--from", start.isoformat(),
         "--to", end.isoformat(), "--by", "requestor", "--format", "json"],
        check=True, capture_output=True,
    ).stdout
    rows = {row["requestor"]: row for row in json.loads(out)["rows"]}
    for address, leaves in asked.items():
        assert rows[address]["certificates"] == len(leaves)
        assert rows[address]["requests"] == len(leaves) + 1 and rows[address]["refused"] == 1
    # One of the three is revoked whichever CRL is in force: the demo CRL revokes
    # revoked-keycompromise, the one of the reload test revokes good alone.
    assert rows["127.0.0.3"]["revoked"] == 1
    assert rows["127.0.0.3"]["good"] + rows["127.0.0.3"]["revoked"] + rows["127.0.0.3"]["unknown"] == 3


def test_sigterm_finishes_gracefully_and_flushes_the_audit_log(server, demo_pki):
    der = request_der(demo_pki.leaves["good2"], demo_pki.ca_cert, nonce=b"graceful-shutdown-test")
    with httpx.Client(timeout=10) as client:
        for _ in range(25):
            client.post(server.url, content=der)
    assert server.stop() == 0
    lines = [json.loads(line) for line in (server.folder / "audit.log").read_text().splitlines()]
    serial = format(demo_pki.serials["good2"], "x")
    assert sum(1 for r in lines if r["nonce"] and r["certs"] and r["certs"][0]["serial"] == serial) >= 25


def test_a_warning_about_every_ca_is_one_line_per_start_listing_the_cas(demo_pki, tmp_path):
    """Three CAs answered by a locally trusted responder, two workers, the admin listener: the supervisor
    and every worker load every CA, yet the log says it once, naming the three CAs."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from certstatus.demo_pki import issue_cert, make_demo_pki

    now = dt.datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    local = issue_cert(None, key, key.public_key(), common_name="local responder",
                       not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=30))  # fmt: skip
    (tmp_path / "local.pem").write_bytes(local.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "local.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))  # fmt: skip
    (tmp_path / "local.key").chmod(0o600)
    names = ("alpha", "beta", "gamma")
    pkis = {name: make_demo_pki(tmp_path / f"pki-{name}") for name in names}
    port, admin = free_port(), free_port()
    config = server_tables(port, workers=2, admin=admin) + "".join(
        table(f"ca.{name}", certificate=pkis[name].ca_cert, crl=[pkis[name].crl], path=f"/{name}",
              signer_certificate=tmp_path / "local.pem", signer_key=tmp_path / "local.key", signer_locally_trusted=True)
        for name in names
    )  # fmt: skip
    server = start_server(tmp_path / "server", config, port=port, admin_port=admin)
    try:
        for name in names:  # every worker has loaded every CA once one answers (two askings: both workers)
            for _ in range(2):
                der = request_der(pkis[name].leaves["good"], pkis[name].ca_cert)
                assert cert_status(httpx.post(f"{server.url}{name}/", content=der, headers={"connection": "close"}, timeout=10).content) == "good"
    finally:
        assert server.stop() == 0
    lines = [json.loads(line) for line in server.log_text().splitlines() if "locally trusted responder" in line]
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "warning" and "-VAfile" in lines[0]["message"]
    assert [item.split(":")[0] for item in lines[0]["items"]] == [f"CA {name}" for name in names]
