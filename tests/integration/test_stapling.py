"""TLS servers staple certstatus's responses: nginx (``ssl_stapling``, ``ssl_stapling_verify``) and
``openssl s_server -status``.

One ``certstatus serve`` (the demo CA, CRL + index, delegated responder,
audit log, pushes on; the CA also on its own path ``/demo``) and one nginx
with two TLS sites for the demo leaf ``good``: one finds the responder
through the leaf's AIA OCSP URL (certstatus's common path ``/``), the other
is pointed at the CA's path with ``ssl_stapling_responder``. nginx asks
with an HTTP/1.0 GET and a SHA-1 CertID (``ngx_ssl_ocsp_create_request``);
the audit log shows that such requests arrived and what they were answered.

How nginx is made to fetch again: nginx fetches a response on the first
handshake that asks for one, then refreshes it 5 minutes before its
nextUpdate but at most an hour and at least 5 minutes later (and 5 minutes
after a failed fetch). A test cannot wait for that. ``nginx -s reload``
starts new workers whose stapling cache is empty, so the next handshake
makes them fetch at once; it is also what an operator would run. (A
validity shorter than 5 minutes would not help: nginx refetches no sooner.)

What a revocation looks like through nginx: nginx staples only a response
whose certStatus is ``good``. It fetches the revoked response, verifies it,
logs ``certificate status "revoked" in the OCSP response`` and staples
nothing, so TLS clients see no stapled response rather than a revoked one.
(Without a reload it keeps stapling the previous good response until that
response's nextUpdate: the response validity bounds how long a revocation
stays hidden behind nginx.)

``openssl s_server -status`` fetches a response (from the leaf's AIA URL) on
every handshake and staples whatever it gets: there, a revocation shows
at the next handshake as ``Cert Status: revoked``.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from certstatus.demo_pki import make_demo_pki
from tests.integration.conftest import needs_openssl
from tests.nginx import Nginx, Site, Stapled, nginx_binary, s_client_status
from tests.servers import CERTSTATUS, demo_ca_table, free_port, server_tables, start_server, wait_for_port

pytestmark = [pytest.mark.integration, needs_openssl]

#: Generous: a fetch takes milliseconds, but the machine may be busy.
DEADLINE = 60.0
REVOKED_LOG = 'certificate status "revoked" in the OCSP response'


@pytest.fixture(scope="module")
def nginx_path() -> str:
    """The nginx executable; a missing nginx skips (a failure under CI, ``CI=true``)."""
    binary = nginx_binary()
    if binary is None:
        reason = "nginx is not installed (Debian package nginx-light; scripts/setup --test installs it)"
        pytest.skip(reason)  # a failure under CI=true (tests/ci_skips.py)
    return binary


@pytest.fixture(scope="module")
def stapling(nginx_path: str, tmp_path_factory: pytest.TempPathFactory):
    """(certstatus server, nginx, demo PKI, the two site ports)."""
    folder = tmp_path_factory.mktemp("stapling")
    port = free_port()
    pki = make_demo_pki(folder / "pki", ocsp_url=f"http://127.0.0.1:{port}/")
    config = server_tables(port, workers=2, audit=True) + demo_ca_table("demo", pki, index=True, push=True, path="/demo")
    server = start_server(folder / "certstatus", config, port=port)
    leaf = pki.leaves["good"]
    chain = folder / "good-chain.pem"
    chain.write_bytes(leaf.read_bytes() + pki.ca_cert.read_bytes())
    by_aia, by_path = free_port(), free_port()
    sites = [
        Site(by_aia, chain, leaf.with_suffix(".key"), pki.chain),
        Site(by_path, chain, leaf.with_suffix(".key"), pki.chain, responder=f"http://127.0.0.1:{port}/demo"),
    ]
    try:
        with Nginx(folder / "nginx", sites) as nginx:
            yield server, nginx, pki, (by_aia, by_path)
    finally:
        assert server.stop() == 0, server.log_text()


def _staple(port: int, pki, wanted) -> Stapled:
    """Handshake until ``wanted(stapled)`` holds (nginx staples from the handshake after its fetch)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        stapled = s_client_status(port, pki.chain, "good.demo.test")
        if wanted(stapled):
            return stapled
        if time.monotonic() > deadline:
            raise AssertionError(f"no such staple on port {port} within {DEADLINE} s:\n{stapled.output}")
        time.sleep(0.2)


def _audit(server, serial: int, status: str) -> list[dict]:
    """Audit records of requests about ``serial`` answered ``status``, once there is one (the writer thread
    runs after the answer)."""

    def about(records: list[dict]) -> list[dict]:
        return [r for r in records if r["certs"] and r["certs"][0]["serial"] == f"{serial:x}" and r["certs"][0]["status"] == status]

    return about(server.audit_records(about))


def test_nginx_staples_a_verified_good_response_via_the_aia_url_and_the_ca_path(stapling) -> None:
    server, nginx, pki, ports = stapling
    for port in ports:
        stapled = _staple(port, pki, lambda s: s.response_status is not None)
        assert stapled.response_status == "successful", stapled.output
        assert stapled.cert_status == "good", stapled.output
        assert stapled.verified, stapled.output
    assert "OCSP_basic_verify() failed" not in nginx.error_log()
    # nginx's requests, as certstatus saw them: GET, SHA-1 CertID, no nonce, answered good.
    asked = _audit(server, pki.serials["good"], "good")
    assert asked, server.log_text()
    assert {(r["method"], r["certs"][0]["cert_id_hash"], r["nonce"], r["response_status"]) for r in asked} == {("GET", "sha1", False, "successful")}


def test_after_a_revocation_and_a_reload_nginx_fetches_revoked_and_staples_nothing(stapling) -> None:
    server, nginx, pki, ports = stapling
    serial = pki.serials["good"]
    for port in ports:  # nginx staples good first (already fetched, or fetched now)
        _staple(port, pki, lambda s: s.cert_status == "good")
    revoke = subprocess.run(
        [*CERTSTATUS, "revoke", "demo", f"{serial:X}", "--reason", "keyCompromise", "--config", str(server.folder / "certstatus.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert revoke.returncode == 0, revoke.stdout + revoke.stderr
    nginx.reload()
    for fetched, port in enumerate(ports, start=1):
        # The first handshakes after the reload may still reach the old worker (its good staple) or
        # come before the new worker's fetch (which the first handshake starts); then nothing is stapled.
        def refused(stapled, fetched=fetched) -> bool:
            return stapled.response_status is None and nginx.error_log().count(REVOKED_LOG) >= fetched

        stapled = _staple(port, pki, refused)
        assert stapled.cert_status is None and stapled.verified, stapled.output
    # One line per site: nginx verified the revoked response (ssl_stapling_verify) and refused to staple it.
    assert nginx.error_log().count(REVOKED_LOG) == 2, nginx.error_log()
    asked = _audit(server, serial, "revoked")
    assert asked, server.log_text()
    assert {(r["method"], r["certs"][0]["cert_id_hash"], r["nonce"]) for r in asked} == {("GET", "sha1", False)}


def test_openssl_s_server_staples_the_revoked_response_at_the_next_handshake(stapling, tmp_path) -> None:
    server, _, pki, _ = stapling
    leaf, serial = pki.leaves["good2"], pki.serials["good2"]
    chain = tmp_path / "good2-chain.pem"
    chain.write_bytes(leaf.read_bytes() + pki.ca_cert.read_bytes())
    port = free_port()
    log = tmp_path / "s_server.log"
    with open(log, "wb") as out:
        s_server = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(chain), "-key", str(leaf.with_suffix(".key")),
             "-CAfile", str(pki.chain), "-status", "-www"],  # -CAfile: where it finds the issuer for the CertID
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        wait_for_port(port, s_server, timeout=15)
        before = s_client_status(port, pki.chain, "good2.demo.test")
        assert (before.response_status, before.cert_status, before.verified) == ("successful", "good", True), before.output
        revoke = subprocess.run(
            [*CERTSTATUS, "revoke", "demo", f"{serial:X}", "--reason", "superseded", "--config", str(server.folder / "certstatus.toml")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert revoke.returncode == 0, revoke.stdout + revoke.stderr
        after = s_client_status(port, pki.chain, "good2.demo.test")
        assert (after.response_status, after.cert_status, after.verified) == ("successful", "revoked", True), after.output
    finally:
        s_server.terminate()
        s_server.wait(10)
    assert _audit(server, serial, "revoked"), server.log_text()
