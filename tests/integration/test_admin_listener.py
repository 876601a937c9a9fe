"""The admin listener on real sockets: who it lets in, and what a client can hold.

Operators' client certificates (``client_ca``) must carry clientAuth and not be
revoked by a CA served here, checked on every request; requests are
authenticated before their body is read; slow or silent clients cannot hold
the slots that operators, pushes and metrics scrapes need. The API behind it
is tested sans-IO in test_push_admin.py.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certstatus.admin.api import AdminApi
from certstatus.admin.server import AdminServer, operator_policy
from certstatus.admin.slots import MAX_CONNECTIONS, MAX_PER_ADDRESS
from certstatus.app import prepare
from certstatus.clock import SystemClock
from certstatus.config import load_config
from certstatus.demo_pki import DemoPki
from certstatus.source_settings import AdminSettings
from certstatus.sources.refresh import register_targets
from certstatus.store.factory import open_configured_store
from tests.integration.test_push_admin import AUTH, TOKEN, write_config
from tests.servers import demo_ca_table, free_port, server_tables, start_server

pytestmark = pytest.mark.integration


@pytest.fixture()
def config(demo_pki: DemoPki, demo_pki_rsa: DemoPki, tmp_path) -> Path:
    return write_config(tmp_path, demo_pki, demo_pki_rsa)


@dataclass(frozen=True)
class Client:
    """A client certificate and key (PEM files) issued by the demo CA, and its serial."""

    cert: str
    key: str
    serial: int

    def context(self, pki: DemoPki) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(pki.chain))
        context.load_cert_chain(self.cert, self.key)
        return context


def _issue(folder: Path, pki: DemoPki, name: str, usages: list | None, san: x509.GeneralName) -> Client:
    """A certificate for ``CN=name`` from the demo CA (a CA the configuration serves, as "pushed"):
    extendedKeyUsage ``usages``, or none at all when None."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([san]), False)
    )  # fmt: skip
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), False)
    cert = builder.sign(ca_key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Client(str(folder / f"{name}.pem"), str(folder / f"{name}.key"), cert.serial_number)


def _tls_material(folder: Path, pki: DemoPki, **settings) -> tuple[AdminSettings, dict[str, Client]]:
    """Admin settings with TLS (server certificate for 127.0.0.1) and ``client_ca`` = the demo PKI,
    and client certificates from the demo CA: two operators (clientAuth), one without
    extendedKeyUsage, one for TLS servers only."""
    server = _issue(folder, pki, "admin-server", [ExtendedKeyUsageOID.SERVER_AUTH], x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    clients = {
        name: _issue(folder, pki, name, usages, x509.DNSName(name))
        for name, usages in (
            ("ca-operator", [ExtendedKeyUsageOID.CLIENT_AUTH]),
            ("second-operator", [ExtendedKeyUsageOID.CLIENT_AUTH]),
            ("no-eku", None),
            ("server-only", [ExtendedKeyUsageOID.SERVER_AUTH]),
        )
    }
    return AdminSettings("127.0.0.1", 0, None, Path(server.cert), Path(server.key), pki.chain, **settings), clients


def _admin_server(config: Path, admin_settings: AdminSettings, token: str | None = None, **timeouts: float) -> AdminServer:
    """A started admin listener over the configuration's store (stop it)."""
    settings = load_config(config)
    prepare(settings)
    api = AdminApi(lambda: open_configured_store(settings), lambda s: register_targets(s, settings.cas), SystemClock(), token=token,
                   operators=operator_policy(admin_settings))  # fmt: skip
    server = AdminServer(admin_settings, api, **timeouts)
    server.start()
    return server


def test_admin_listener_requires_a_client_certificate(config: Path, demo_pki: DemoPki, tmp_path) -> None:
    admin_settings, clients = _tls_material(tmp_path, demo_pki)
    server = _admin_server(config, admin_settings)
    url = f"https://127.0.0.1:{server.port}/v1/ca/pushed/revoke"
    context = ssl.create_default_context(cafile=str(demo_pki.chain))
    try:
        with pytest.raises(httpx.TransportError):  # TLS handshake refused without a client certificate
            httpx.post(url, json={"serial": "77"}, verify=context, timeout=5)
        context = clients["ca-operator"].context(demo_pki)
        answer = httpx.post(url, json={"serial": "77"}, verify=context, timeout=5)
        assert answer.status_code == 200 and answer.json()["applied"] == 1
    finally:
        server.stop()


def test_a_silent_client_does_not_stop_the_admin_listener(config: Path, demo_pki: DemoPki, tmp_path) -> None:
    """A client that connects and sends nothing (no TLS ClientHello, or half an HTTP request)
    holds one connection's thread, not the listener: everyone else is still answered."""
    admin_settings, clients = _tls_material(tmp_path, demo_pki)
    server = _admin_server(config, admin_settings)
    context = clients["ca-operator"].context(demo_pki)
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


def _admitted_upload(port: int, source: str, token: str = TOKEN) -> socket.socket:
    """A connection from ``source`` whose authenticated request head was admitted (100 Continue
    received) and that then sends none of its body: it holds an authenticated slot."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.sendall(f"POST /v1/ca/pushed/crl HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {token}\r\n"
                 "Content-Type: application/pkix-crl\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n".encode())  # fmt: skip
    assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
    return sock


def test_when_authenticated_requests_hold_every_slot_one_more_is_closed_at_once(config: Path) -> None:
    server = _admin_server(config, AdminSettings("127.0.0.1", 0), TOKEN)
    url = f"http://127.0.0.1:{server.port}/v1/sources"
    sources = [f"127.0.0.{2 + i // MAX_PER_ADDRESS}" for i in range(MAX_CONNECTIONS)]
    held = []
    try:
        held = [_admitted_upload(server.port, source) for source in sources]
        with pytest.raises(httpx.TransportError):  # one more: closed without an answer
            httpx.get(url, headers=AUTH, timeout=5)
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 10
        while True:  # their threads see the end of the stream and give their slots back
            try:
                answer = httpx.get(url, headers=AUTH, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200
    finally:
        for sock in held:
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
        assert reply.split(b" ", 2)[1] == b"200" and b'"applied": 1' in reply, reply
    finally:
        server.stop()




# --- operators' client certificates -------------------------------------------------------------


def _call(server: AdminServer, pki: DemoPki, client: Client, path: str, payload: dict | None = None) -> httpx.Response:
    """GET ``path``, or POST ``payload`` as JSON, with ``client``'s certificate."""
    url = f"https://127.0.0.1:{server.port}{path}"
    with httpx.Client(verify=client.context(pki), timeout=10) as http:
        return http.get(url) if payload is None else http.post(url, json=payload)


def _revoked_in_store(config: Path, serial: int) -> bool:
    settings = load_config(config)
    store = open_configured_store(settings)
    try:
        record = store.lookup(register_targets(store, settings.cas)["pushed"].issuer_id, serial)
        return record is not None and record.revoked is not None
    finally:
        store.close()


def test_a_revoked_operator_certificate_is_refused_and_cannot_unrevoke_itself(config: Path, demo_pki: DemoPki, tmp_path) -> None:
    """The operators' certificates come from a CA this responder serves: once that CA's data says
    one is revoked, the admin listener refuses it at its next request, as the OCSP listener does."""
    admin_settings, clients = _tls_material(tmp_path, demo_pki)
    server = _admin_server(config, admin_settings)
    mallory, alice = clients["ca-operator"], clients["second-operator"]
    try:
        assert _call(server, demo_pki, mallory, "/v1/sources").status_code == 200
        revoke = _call(server, demo_pki, alice, "/v1/ca/pushed/revoke", {"serial": f"{mallory.serial:x}", "reason": "keyCompromise"})
        assert revoke.status_code == 200
        refused = _call(server, demo_pki, mallory, "/v1/sources")
        assert refused.status_code == 403 and "revoked by CA pushed" in refused.json()["error"]
        itself = _call(server, demo_pki, mallory, "/v1/ca/pushed/unrevoke", {"serial": f"{mallory.serial:x}"})
        assert itself.status_code == 403 and _revoked_in_store(config, mallory.serial)
        assert _call(server, demo_pki, alice, "/v1/ca/pushed/unrevoke", {"serial": f"{mallory.serial:x}"}).status_code == 200
        assert _call(server, demo_pki, mallory, "/v1/sources").status_code == 200  # checked per request, nothing kept
    finally:
        server.stop()


def test_a_client_certificate_without_client_auth_is_refused(config: Path, demo_pki: DemoPki, tmp_path) -> None:
    admin_settings, clients = _tls_material(tmp_path, demo_pki)
    server = _admin_server(config, admin_settings)
    try:
        no_usage = _call(server, demo_pki, clients["no-eku"], "/v1/ca/pushed/revoke", {"serial": "1"})
        assert no_usage.status_code == 403 and "needs clientAuth" in no_usage.json()["error"]
        with pytest.raises(httpx.TransportError):  # serverAuth only: OpenSSL's client purpose check refuses it already
            _call(server, demo_pki, clients["server-only"], "/v1/ca/pushed/revoke", {"serial": "1"})
        assert not _revoked_in_store(config, 1)
    finally:
        server.stop()


def test_operator_names_let_in_only_the_subjects_listed(config: Path, demo_pki: DemoPki, tmp_path) -> None:
    admin_settings, clients = _tls_material(tmp_path, demo_pki, operator_names=("CN=second-operator",))
    server = _admin_server(config, admin_settings, TOKEN)
    try:
        refused = _call(server, demo_pki, clients["ca-operator"], "/v1/sources")
        assert refused.status_code == 403 and "not one of [admin] operator_names" in refused.json()["error"]
        with httpx.Client(verify=clients["ca-operator"].context(demo_pki), timeout=10) as http:  # the token does not override it
            assert http.get(f"https://127.0.0.1:{server.port}/v1/sources", headers=AUTH).status_code == 403
        assert _call(server, demo_pki, clients["second-operator"], "/v1/sources").status_code == 200
    finally:
        server.stop()


# --- the body is read only for an authenticated request --------------------------------------


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident size) of process ``pid``, bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM")}


def _upload_without_token(port: int, size: int) -> tuple[bytes, int]:
    """POST a CRL of ``size`` declared bytes with a wrong token, sending the body while waiting for the
    answer; return the answer's first bytes and how many body bytes the server took before closing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(b"POST /v1/ca/demo/crl HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer not-the-token\r\n"
                 b"Content-Type: application/pkix-crl\r\nContent-Length: %d\r\n\r\n" % size)  # fmt: skip
    sent = 0

    def send_body() -> None:
        nonlocal sent
        chunk = bytes(1024 * 1024)
        try:
            while sent < size:
                sent += sock.send(chunk[: size - sent])
        except OSError:  # the server closed the connection
            pass

    sender = threading.Thread(target=send_body)
    sender.start()
    try:
        answer = sock.recv(200)
    except ConnectionResetError:
        answer = b""
    sender.join(120)
    sock.close()
    return answer, sent


def test_an_unauthenticated_256_mib_upload_is_refused_before_its_body_with_flat_memory(demo_pki: DemoPki, tmp_path) -> None:
    port, admin_port = free_port(), free_port()
    config = server_tables(port, admin=admin_port) + demo_ca_table("demo", demo_pki, push=True)
    server = start_server(tmp_path / "server", config, port=port, admin_port=admin_port)
    size, uploads = 256 * 1024 * 1024, 4
    try:
        pid = server.process.pid  # the supervisor: the admin listener runs there
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak to the current size
        before = _memory(pid)["VmRSS"]
        results: list[tuple[bytes, int]] = []
        threads = [threading.Thread(target=lambda: results.append(_upload_without_token(admin_port, size))) for _ in range(uploads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        peak = _memory(pid)["VmHWM"]
        assert len(results) == uploads
        for answer, sent in results:
            assert answer.split(b" ", 2)[1] == b"401", answer
            assert sent < size  # closed long before the body was all sent
        assert peak - before < 64 * 1024 * 1024, f"the admin process grew by {(peak - before) >> 20} MiB"
        assert server.admin_get("/v1/sources").status_code == 200
    finally:
        assert server.stop() == 0


def test_an_authenticated_upload_is_spooled_and_parsed(config: Path, demo_pki: DemoPki) -> None:
    """A body larger than what is kept in memory goes through the temporary file to the CRL parser."""
    server = _admin_server(config, AdminSettings("127.0.0.1", 0), TOKEN)
    url = f"http://127.0.0.1:{server.port}/v1/ca/pushed/crl"
    try:
        junk = httpx.post(url, content=b"\x30\x82" + bytes(3 * 1024 * 1024), headers={**AUTH, "content-type": "application/pkix-crl"}, timeout=30)
        assert junk.status_code == 422 and "not a readable CRL" in junk.json()["error"]
        pem = demo_pki.crl.read_bytes()
        assert httpx.post(url, content=pem, headers={**AUTH, "content-type": "application/pkix-crl"}, timeout=30).status_code == 200
    finally:
        server.stop()


# --- slow and silent clients --------------------------------------------------------------------


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


@pytest.mark.parametrize("spread", [False, True], ids=["one-address", "sixteen-addresses"])
def test_slow_connections_do_not_lock_a_token_client_out(config: Path, spread: bool) -> None:
    """16 connections sending their request head a byte at a time held every slot; now a client with
    the token is answered while they trickle on (the oldest of them gives its slot up)."""
    server = _admin_server(config, AdminSettings("127.0.0.1", 0), TOKEN)
    slow = [
        socket.create_connection(("127.0.0.1", server.port), timeout=10, source_address=(f"127.0.0.{2 + i}" if spread else "127.0.0.2", 0))
        for i in range(MAX_CONNECTIONS)
    ]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.5):
            for sock in slow:
                try:
                    sock.send(b"a")
                except OSError:
                    pass

    for sock in slow:
        sock.sendall(b"POST /v1/reload HTTP/1.1\r\nHost: admin\r\nX-Slow: ")
    trickler = threading.Thread(target=trickle)
    trickler.start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.port}/v1/sources", headers=AUTH, timeout=10)
        assert answer.status_code == 200 and "sources" in answer.json()
        still = sum(_still_open(sock) for sock in slow)
        assert still >= (MAX_CONNECTIONS if spread else MAX_PER_ADDRESS) - 1, still
    finally:
        stop.set()
        trickler.join()
        for sock in slow:
            sock.close()
        server.stop()


def _closed_while_trickling(sock: socket.socket, data: bytes, give_up: float = 15.0) -> bool:
    """Send ``data`` a byte every 0.2 s; True once the server has closed the connection (within ``give_up`` s)."""
    sock.settimeout(0.2)
    end = time.monotonic() + give_up
    for byte in data:
        if time.monotonic() > end:
            return False
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(200) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_a_request_head_trickled_a_byte_at_a_time_is_closed_at_its_deadline(config: Path) -> None:
    """The head's deadline counts from the accept, however often bytes arrive (no per-read timeout)."""
    server = _admin_server(config, AdminSettings("127.0.0.1", 0), TOKEN, head_timeout=1.0)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port))
        assert _closed_while_trickling(sock, b"GET /v1/sources HTTP/1.1\r\nX-Slow: " + b"a" * 1000)
        sock.close()
    finally:
        server.stop()


def test_a_body_trickled_a_byte_at_a_time_is_closed_at_its_deadline(config: Path) -> None:
    server = _admin_server(config, AdminSettings("127.0.0.1", 0), TOKEN, body_timeout=1.0)
    try:
        sock = _admitted_upload(server.port, "127.0.0.1")
        assert _closed_while_trickling(sock, b"x" * 1000)
        sock.close()
        assert not _revoked_in_store(config, 1)
    finally:
        server.stop()


def test_one_address_holds_at_most_its_share_of_the_slots(config: Path) -> None:
    """An address whose authenticated requests hold MAX_PER_ADDRESS slots gets no more; others still do."""
    server = _admin_server(config, AdminSettings("127.0.0.1", 0), TOKEN)
    held = []
    try:
        held = [_admitted_upload(server.port, "127.0.0.2") for _ in range(MAX_PER_ADDRESS)]
        one_more = socket.create_connection(("127.0.0.1", server.port), timeout=10, source_address=("127.0.0.2", 0))
        one_more.sendall(f"GET /v1/sources HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        try:
            assert one_more.recv(200) == b""  # closed unanswered
        except ConnectionResetError:
            pass
        one_more.close()
        assert httpx.get(f"http://127.0.0.1:{server.port}/v1/sources", headers=AUTH, timeout=10).status_code == 200
    finally:
        for sock in held:
            sock.close()
        server.stop()


# --- the status page: the same authentication ------------------------------------------------------


def test_status_page_admits_operator_certificates_and_a_refused_one_overrides_a_session(config: Path, demo_pki: DemoPki, tmp_path) -> None:
    """Over TLS with ``client_ca``: an operator's certificate opens the page; a certificate refused
    by ``operator_names`` gets no session and is refused even with one (the cookie is ``Secure``
    under the ``__Host-`` prefix)."""
    from certstatus.admin.page_routes import PageRoutes

    admin_settings, clients = _tls_material(tmp_path, demo_pki, operator_names=("CN=second-operator",))
    server = _admin_server(config, admin_settings, TOKEN)
    api = server.api
    api.pages = PageRoutes(lambda query: "<p>the status page</p>", api.authenticate, api.clock, token=TOKEN, secure=True)
    base = f"https://127.0.0.1:{server.port}"
    try:
        with httpx.Client(verify=clients["second-operator"].context(demo_pki), timeout=10) as operator:
            page = operator.get(base + "/")
            assert page.status_code == 200 and page.text == "<p>the status page</p>"
            assert page.headers["content-type"] == "text/html; charset=utf-8" and page.headers["x-frame-options"] == "DENY"
            login = operator.post(base + "/login", data={"token": TOKEN})
            cookie = login.headers["set-cookie"]
            assert login.status_code == 303 and cookie.startswith("__Host-certstatus-session=") and "; Secure" in cookie
        with httpx.Client(verify=clients["ca-operator"].context(demo_pki), timeout=10) as refused:
            assert refused.post(base + "/login", data={"token": TOKEN}).status_code == 403  # no session for it either
            answer = refused.get(base + "/", headers={"cookie": cookie.split(";", 1)[0]})  # a session someone else got
            assert answer.status_code == 403 and "not one of [admin] operator_names" in answer.text
    finally:
        server.stop()
