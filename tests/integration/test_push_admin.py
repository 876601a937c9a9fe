"""Pushed status: the admin API (sans-IO and on a real TLS listener) and the revoke/unrevoke/issue CLI."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.admin.api import AdminApi
from certstatus.admin.server import MAX_CONNECTIONS, AdminServer
from certstatus.app import build_application, open_store, prepare
from certstatus.clock import SystemClock
from certstatus.config import load_config
from certstatus.demo_pki import DemoPki
from certstatus.source_settings import AdminSettings
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.refresh import register_targets
from tests.sources_helpers import crl_der, ocsp_query, revoked

TOKEN = "0123456789abcdef0123456789abcdef"
CERTSTATUS = str(Path(sys.executable).with_name("certstatus"))


@pytest.fixture()
def config(demo_pki: DemoPki, demo_pki_rsa: DemoPki, tmp_path) -> Path:
    """A config with a push-fed CA (demo_pki), a CRL-fed CA without pushes (demo_pki_rsa), a token file."""
    (tmp_path / "admin.token").write_text(TOKEN + "\n")
    (tmp_path / "admin.token").chmod(0o600)
    path = tmp_path / "certstatus.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:18080"
database = "{tmp_path / 'store.sqlite3'}"
[admin]
listen = "127.0.0.1:18081"
token_file = "admin.token"
[ca.pushed]
certificate = "{demo_pki.ca_cert}"
signer_certificate = "{demo_pki.ocsp_cert}"
signer_key = "{demo_pki.ocsp_key}"
push = true
path = "/pushed"
[ca.crl-only]
certificate = "{demo_pki_rsa.ca_cert}"
signer_certificate = "{demo_pki_rsa.ocsp_cert}"
signer_key = "{demo_pki_rsa.ocsp_key}"
crl = "{demo_pki_rsa.crl}"
path = "/crl-only"
"""
    )
    return path


def _api(settings, feed=None) -> AdminApi:
    return AdminApi(
        lambda: open_store(settings), lambda store: register_targets(store, settings.cas), SystemClock(),
        token=TOKEN, feed=feed,
    )  # fmt: skip


AUTH = {"authorization": f"Bearer {TOKEN}"}


def _post(api: AdminApi, path: str, payload, headers=AUTH):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return api.handle("POST", path, headers, body)


def test_pushed_revocation_is_served_at_once_and_notified(config: Path, demo_pki: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    app = build_application(settings)
    serial = demo_pki.serials["good"]
    assert ocsp_query(app, demo_pki, serial).certificate_status is OCSPCertStatus.GOOD
    seen: list = []
    feed = ChangeFeed()
    feed.subscribe(lambda issuer_id, serials: seen.append(serials))
    api = _api(settings, feed)
    answer = _post(api, "/v1/ca/pushed/revoke", {"serial": f"{serial:x}", "reason": "keyCompromise", "revocation_time": "2026-01-02T03:04:05Z"})
    assert (answer.status, answer.body) == (200, {"ca": "pushed", "applied": 1})
    response = ocsp_query(app, demo_pki, serial)
    assert response.certificate_status is OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.key_compromise
    assert response.revocation_time_utc == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert seen == [(serial,)]  # the hook precomputed mode re-signs from
    assert _post(api, "/v1/ca/pushed/unrevoke", {"serial": f"0x{serial:X}"}).status == 200
    assert ocsp_query(app, demo_pki, serial).certificate_status is OCSPCertStatus.GOOD


def test_batch_is_one_transaction_and_a_bad_item_writes_nothing(config: Path, demo_pki: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    api = _api(settings)
    bad = _post(api, "/v1/ca/pushed/changes", {"changes": [{"action": "revoke", "serial": "1A"}, {"action": "revoke", "serial": "xyz"}]})
    assert bad.status == 400 and "serial 'xyz' is not a hexadecimal serial" in bad.body["error"]
    store = open_store(settings)
    issuer_id = register_targets(store, settings.cas)["pushed"].issuer_id
    assert store.lookup(issuer_id, 0x1A) is None
    ok = _post(api, "/v1/ca/pushed/issue", {"serials": ["1A", "1B", "1c"]})
    assert ok.body["applied"] == 3
    assert all(store.lookup(issuer_id, s).issued for s in (0x1A, 0x1B, 0x1C))
    store.close()


@pytest.mark.parametrize(
    "path, payload, headers, status, message",
    [
        ("/v1/ca/nobody/revoke", {"serial": "1"}, AUTH, 404, "no CA named 'nobody'"),
        ("/v1/ca/crl-only/revoke", {"serial": "1"}, AUTH, 403, "does not accept pushes"),
        ("/v1/ca/pushed/revoke", {"serial": "12G"}, AUTH, 400, "not a hexadecimal serial"),
        ("/v1/ca/pushed/revoke", {"serial": "1", "reason": "sloppy"}, AUTH, 400, "not an RFC 5280 reason"),
        ("/v1/ca/pushed/revoke", {"serial": "1", "revocation_time": "2026-01-02"}, AUTH, 400, "has no time zone"),
        ("/v1/ca/pushed/revoke", b"{not json", AUTH, 400, "not JSON"),
        ("/v1/ca/pushed/revoke", {"serial": "1"}, {"authorization": "Bearer wrong"}, 401, "authenticate"),
        ("/v1/ca/pushed/revoke", {"serial": "1"}, {}, 401, "authenticate"),
        ("/v1/nothing", {}, AUTH, 404, "no such admin endpoint"),
    ],
)
def test_bad_pushes_get_a_clear_error(config: Path, path, payload, headers, status, message) -> None:
    settings = load_config(config)
    prepare(settings)
    answer = _post(_api(settings), path, payload, headers)
    assert answer.status == status and message in answer.body["error"]


def test_crl_upload_imports_and_a_refused_one_is_422(config: Path, demo_pki_rsa: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    api = _api(settings)
    newer = crl_der(demo_pki_rsa, [revoked(0x55)], number=2, this_update=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    assert _post(api, "/v1/ca/crl-only/crl", newer).body["entries"] == 1
    older = crl_der(demo_pki_rsa, [], number=1)
    refused = _post(api, "/v1/ca/crl-only/crl", older)
    assert refused.status == 422 and "older than the imported 2" in refused.body["error"]
    sources = api.handle("GET", "/v1/sources", AUTH, b"").body["sources"]
    assert {(s["ca"], s["kind"], s["crl_number"]) for s in sources} >= {("crl-only", "crl", 2), ("pushed", "push", None)}


def _tls_material(folder: Path, pki: DemoPki) -> tuple[AdminSettings, tuple[str, str]]:
    """Server cert for 127.0.0.1 and a client cert (clientAuth), both from the demo CA."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    now = dt.datetime.now(dt.timezone.utc)

    def make(name: str, usage, san) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), False)
            .add_extension(x509.SubjectAlternativeName(san), False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return folder / f"{name}.pem", folder / f"{name}.key"

    server = make("admin-server", ExtendedKeyUsageOID.SERVER_AUTH, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client = make("admin-client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("ca-operator")])
    settings = AdminSettings("127.0.0.1", 0, None, server[0], server[1], pki.chain)
    return settings, (str(client[0]), str(client[1]))


def _admin_server(config: Path, admin_settings: AdminSettings, token: str | None = None) -> AdminServer:
    """A started admin listener over the configuration's store (stop it)."""
    settings = load_config(config)
    prepare(settings)
    api = AdminApi(lambda: open_store(settings), lambda s: register_targets(s, settings.cas), SystemClock(), token=token)
    server = AdminServer(admin_settings, api)
    server.start()
    return server


def test_admin_listener_requires_a_client_certificate(config: Path, demo_pki: DemoPki, tmp_path) -> None:
    admin_settings, client = _tls_material(tmp_path, demo_pki)
    server = _admin_server(config, admin_settings)
    url = f"https://127.0.0.1:{server.port}/v1/ca/pushed/revoke"
    context = ssl.create_default_context(cafile=str(demo_pki.chain))
    try:
        with pytest.raises(httpx.TransportError):  # TLS handshake refused without a client certificate
            httpx.post(url, json={"serial": "77"}, verify=context, timeout=5)
        context.load_cert_chain(*client)
        answer = httpx.post(url, json={"serial": "77"}, verify=context, timeout=5)
        assert answer.status_code == 200 and answer.json()["applied"] == 1
    finally:
        server.stop()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CERTSTATUS, *args], capture_output=True, text=True, timeout=60)


def test_cli_push_commands_and_their_errors(config: Path, demo_pki: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    app = build_application(settings)
    serial = demo_pki.serials["good2"]
    done = _cli("revoke", "pushed", f"{serial:x}", "--reason", "superseded", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert ocsp_query(app, demo_pki, serial).revocation_reason is x509.ReasonFlags.superseded
    assert _cli("unrevoke", "pushed", f"{serial:x}", "--config", str(config)).returncode == 0
    assert ocsp_query(app, demo_pki, serial).certificate_status is OCSPCertStatus.GOOD
    assert _cli("issue", "pushed", "aa", "bb", "--config", str(config)).returncode == 0

    unknown = _cli("revoke", "nobody", "1", "--config", str(config))
    malformed = _cli("revoke", "pushed", "not-hex", "--config", str(config))
    refused = _cli("revoke", "crl-only", "1", "--config", str(config))
    for result, text in ((unknown, "no CA named 'nobody'"), (malformed, "not a hexadecimal serial"), (refused, "does not accept pushes")):
        assert result.returncode == 2 and text in " ".join(result.stderr.split()) and "Traceback" not in result.stderr


def test_a_silent_client_does_not_stop_the_admin_listener(config: Path, demo_pki: DemoPki, tmp_path) -> None:
    """A client that connects and sends nothing (no TLS ClientHello, or half an HTTP request)
    holds one connection's thread, not the listener: everyone else is still answered."""
    admin_settings, client = _tls_material(tmp_path, demo_pki)
    server = _admin_server(config, admin_settings)
    context = ssl.create_default_context(cafile=str(demo_pki.chain))
    context.load_cert_chain(*client)
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    silent[1].sendall(b"POST /v1/ca/pushed/revoke HTTP/1.1\r\nContent-Length: 100\r\n")  # never finished
    try:
        url = f"https://127.0.0.1:{server.port}/v1/ca/pushed/revoke"
        answer = httpx.post(url, json={"serial": "78"}, verify=context, timeout=5)  # was: blocked in accept()
        assert answer.status_code == 200 and answer.json()["applied"] == 1
    finally:
        for sock in silent:
            sock.close()
        server.stop()


def test_admin_connections_beyond_the_limit_are_closed_at_once(config: Path, demo_pki: DemoPki, tmp_path) -> None:
    admin_settings, client = _tls_material(tmp_path, demo_pki)
    server = _admin_server(config, admin_settings)
    context = ssl.create_default_context(cafile=str(demo_pki.chain))
    context.load_cert_chain(*client)
    url = f"https://127.0.0.1:{server.port}/v1/ca/pushed/revoke"
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.5)  # every one accepted and holding its slot
        with pytest.raises(httpx.TransportError):  # one more: closed without an answer
            httpx.post(url, json={"serial": "79"}, verify=context, timeout=5)
        for sock in silent:
            sock.close()
        deadline = time.monotonic() + 10
        while True:  # their threads see the end of the stream and give their slots back
            try:
                answer = httpx.post(url, json={"serial": "79"}, verify=context, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["applied"] == 1
    finally:
        for sock in silent:
            sock.close()
        server.stop()


def test_the_admin_api_runs_on_one_thread_whatever_thread_reads_the_request(config: Path) -> None:
    """Connections are read in threads of their own, but the API's store (an SQLite connection
    belongs to the thread that opened it) must always be used from one thread."""
    server = _admin_server(config, AdminSettings("127.0.0.1", 0, None, None, None, None), TOKEN)
    body = json.dumps({"serial": "7b"}).encode()
    head = (f"POST /v1/ca/pushed/revoke HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    try:
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.sendall(head + body[:3])  # its thread now waits for the rest of the body
        first = httpx.post(f"http://127.0.0.1:{server.port}/v1/ca/pushed/revoke", json={"serial": "7c"},
                           headers={"authorization": f"Bearer {TOKEN}"}, timeout=5)  # fmt: skip
        assert first.status_code == 200, first.text  # the store is opened for this one
        slow.sendall(body[3:])  # answered by the other, older thread: the same store
        reply = slow.makefile("rb").read()
        slow.close()
        assert reply.startswith(b"HTTP/1.0 200") and b'"applied": 1' in reply, reply
    finally:
        server.stop()
