"""Post-quantum responses from a running `certstatus serve`, checked by a client of our own.

OpenSSL 3.0 (Debian 12) cannot verify ML-DSA, so the client is httpx + cryptography: it parses each
response with ``load_der_ocsp_response`` and verifies the signature over tbsResponseData with the
public key of the responder certificate the response carries, after checking that the CA issued
that certificate. One server serves three CAs, each an ECDSA CA:

* ``pq-live`` — an ML-DSA-65 delegated responder, live mode;
* ``pq-pre`` — an ML-DSA-65 delegated responder, precomputed mode (the background generator signs);
* ``hybrid`` — its ECDSA delegated responder, precomputed mode, to which an ML-DSA-65 responder is
  added while serving with ``certstatus signer new --key-type ml-dsa-65`` and ``signer add``.

Each test prints the sizes of the responses it got.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from certstatus.cli import main
from certstatus.demo_pki import make_demo_pki
from certstatus.signing.algorithms import ALGORITHMS
from certstatus.store.sqlite import SQLiteStore
from tests.ocsp_client import run
from tests.servers import CERTSTATUS, demo_ca_table, free_port, start_server, table
from tests.signing_support import load_cert, load_key, ocsp_request

pytestmark = pytest.mark.integration

ML_DSA_65 = ALGORITHMS["ml-dsa-65"].oid
ECDSA_SHA256 = ALGORITHMS["ecdsa-sha256"].oid
#: The parts of a client that can verify ML-DSA: it names ML-DSA-65 first, ECDSA as its fallback.
PQ_CLIENT = (ML_DSA_65, ECDSA_SHA256)


@pytest.fixture(scope="module")
def pkis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pq-pkis")
    return {
        "pq-live": make_demo_pki(folder / "live", key_type="ec", responder_key_type="ml-dsa-65"),
        "pq-pre": make_demo_pki(folder / "pre", key_type="ec", responder_key_type="ml-dsa-65"),
        "hybrid": make_demo_pki(folder / "hybrid", key_type="ec"),
    }


@pytest.fixture(scope="module")
def server(pkis, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pq-server")
    port = free_port()
    config = (
        table("server", listen=f"127.0.0.1:{port}", workers=2, database="store.sqlite3", common_path="")
        + demo_ca_table("pq-live", pkis["pq-live"], index=True, path="/pq-live", mode="live")
        + demo_ca_table("pq-pre", pkis["pq-pre"], index=True, path="/pq-pre", mode="precomputed")
        + demo_ca_table("hybrid", pkis["hybrid"], index=True, path="/hybrid", mode="precomputed",
                        signers_dir=folder / "signers", signers_rescan="1s")
    )  # fmt: skip
    running = start_server(folder, config, port=port)
    deadline = time.monotonic() + 120
    while "first generation pass done" not in running.log_text():
        assert time.monotonic() < deadline, f"no first generation pass within 120 s:\n{running.log_text()}"
        time.sleep(0.1)
    yield running
    assert running.stop() == 0, running.log_text()


def _ask(server, ca: str, pki, serial: int, *, preferred: tuple[str, ...] = (), nonce: bool = False, get: bool = False):
    """One OCSP request over HTTP (POST, or GET as RFC 5019 §5 clients and CDNs use); the response DER."""
    der = ocsp_request(load_cert(pki.ca_cert), serial, nonce=nonce, preferred=preferred)
    with httpx.Client(timeout=30) as client:
        if get:
            import base64
            from urllib.parse import quote

            reply = client.get(f"{server.url}{ca}/{quote(base64.b64encode(der).decode(), safe='')}")
        else:
            reply = client.post(f"{server.url}{ca}/", content=der, headers={"content-type": "application/ocsp-request"})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/ocsp-response", reply.text
    return reply.content


def _verified(der: bytes, pki, serial: int) -> ocsp.OCSPResponse:
    """The response, after an independent check: cryptography parses it, the carried delegated responder
    certificate was issued by the CA and holds id-kp-OCSPSigning, and its public key verifies the
    signature over tbsResponseData (ML-DSA: the message itself, empty context; ECDSA: with its hash)."""
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    [responder] = response.certificates
    responder.verify_directly_issued_by(load_cert(pki.ca_cert))
    assert x509.ExtendedKeyUsageOID.OCSP_SIGNING in responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    public_key = responder.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
    else:
        public_key.verify(response.signature, response.tbs_response_bytes)
    assert response.serial_number == serial
    assert response.responder_key_hash is not None
    return response


def _stored(server, ca: str, serial: int) -> bytes | None:
    """The pre-signed SHA-1 response of ``serial``, read as the request path reads it."""
    database = server.folder / "store.sqlite3"
    with sqlite3.connect(database) as db:
        issuer_id = db.execute("SELECT id FROM issuers WHERE name = ?", (ca,)).fetchone()[0]
    store = SQLiteStore(database)
    try:
        stored = store.precomputed(issuer_id, serial, "sha1")
    finally:
        store.close()
    return None if stored is None else stored.der


def _sizes(label: str, der: bytes) -> None:
    response = ocsp.load_der_ocsp_response(der)
    certificates = sum(len(c.public_bytes(serialization.Encoding.DER)) for c in response.certificates)
    print(f"{label}: {len(der)} bytes ({response.signature_algorithm_oid._name}, signature {len(response.signature)} bytes, "
          f"responder certificate {certificates} bytes)")


def test_ml_dsa_65_delegated_responder_answers_live_and_precomputed_verifiably(server, pkis) -> None:
    live, pre = pkis["pq-live"], pkis["pq-pre"]
    good = _verified(_ask(server, "pq-live", live, live.serials["good"], nonce=True), live, live.serials["good"])
    assert good.signature_algorithm_oid.dotted_string == ML_DSA_65 and len(good.signature) == 3309
    assert good.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert good.extensions.get_extension_for_class(x509.OCSPNonce)  # live: the nonce is echoed
    revoked_serial = live.serials["revoked-keycompromise"]
    revoked = _verified(_ask(server, "pq-live", live, revoked_serial, get=True), live, revoked_serial)
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    _sizes("ML-DSA-65 live", _ask(server, "pq-live", live, live.serials["good"]))

    for leaf, status in (("good", ocsp.OCSPCertStatus.GOOD), ("revoked-superseded", ocsp.OCSPCertStatus.REVOKED)):
        serial = pre.serials[leaf]
        stored = _stored(server, "pq-pre", serial)
        assert stored is not None, "the generator signed every issued serial"
        served = _ask(server, "pq-pre", pre, serial, get=True)
        assert served == stored  # the generator's ML-DSA-65 bytes, served as stored
        response = _verified(served, pre, serial)
        assert response.signature_algorithm_oid.dotted_string == ML_DSA_65
        assert response.certificate_status is status
    unknown = _verified(_ask(server, "pq-pre", pre, pre.serials["unknown"]), pre, pre.serials["unknown"])
    assert unknown.certificate_status is ocsp.OCSPCertStatus.UNKNOWN  # a miss, signed live with ML-DSA-65
    _sizes("ML-DSA-65 precomputed", served)


def _issue_from_request(pki, csr_path, out_path) -> None:
    """The ECDSA CA issues the ML-DSA request with its own algorithm (ecdsa-with-SHA256), copying the
    requested extensions. The CA's side in cryptography: OpenSSL 3.0 cannot read an ML-DSA request."""
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid and csr.signature_algorithm_oid.dotted_string == ML_DSA_65
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(load_cert(pki.ca_cert).subject)
        .public_key(csr.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=30))
    )  # fmt: skip
    for extension in csr.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    out_path.write_bytes(builder.sign(load_key(pki.ca_key), hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def test_hybrid_ca_answers_ml_dsa_clients_with_ml_dsa_and_the_others_with_ecdsa(server, pkis, tmp_path) -> None:
    pki = pkis["hybrid"]
    config = str(server.folder / "certstatus.toml")
    runner = CliRunner()
    made = runner.invoke(main, ["signer", "new", "--config", config, "--ca", "hybrid", "--name", "pq", "--key-type", "ml-dsa-65"])
    assert made.exit_code == 0, made.output
    assert "OpenSSL 3.5 or later" in made.output
    csr = server.folder / "signers" / "pq.csr"
    assert b"BEGIN PRIVATE KEY" in (server.folder / "signers" / "pq.key").read_bytes()
    # The OpenSSL of this system (3.0) cannot read the request: hence the CA's side in cryptography here.
    assert run(["openssl", "req", "-in", str(csr), "-noout", "-verify"]).returncode != 0
    issued = tmp_path / "pq-issued.pem"
    _issue_from_request(pki, csr, issued)
    added = runner.invoke(main, ["signer", "add", "--config", config, "--ca", "hybrid", str(issued)])
    assert added.exit_code == 0, added.output

    serial = pki.serials["revoked-keycompromise"]
    deadline = time.monotonic() + 30  # signers_rescan is 1 s; each worker re-reads its folder
    while True:
        answers = [_ask(server, "hybrid", pki, serial, preferred=PQ_CLIENT) for _ in range(4)]
        algorithms = {ocsp.load_der_ocsp_response(der).signature_algorithm_oid.dotted_string for der in answers}
        if algorithms == {ML_DSA_65}:
            break
        assert time.monotonic() < deadline, f"the ML-DSA signer was not picked up: {algorithms}\n{server.log_text()}"
        time.sleep(0.3)

    # One test, both kinds of clients, POST and GET, each answer verified.
    for get in (False, True):
        pq = _verified(_ask(server, "hybrid", pki, serial, preferred=PQ_CLIENT, nonce=True, get=get), pki, serial)
        assert pq.signature_algorithm_oid.dotted_string == ML_DSA_65
        assert pq.certificates[0].subject.rfc4514_string().startswith("CN=certstatus demo CA OCSP Responder")
        assert pq.certificate_status is ocsp.OCSPCertStatus.REVOKED
        classic_der = _ask(server, "hybrid", pki, serial, nonce=True, get=get)
        classic = _verified(classic_der, pki, serial)
        assert classic.signature_algorithm_oid.dotted_string == ECDSA_SHA256
        assert classic.certificates[0].subject.rfc4514_string() == "CN=certstatus demo OCSP responder"
        assert classic_der == _stored(server, "hybrid", serial)  # precomputed: the generator's ECDSA bytes
        # A client that names only ECDSA is a classical client.
        ecdsa_only = _ask(server, "hybrid", pki, serial, preferred=(ECDSA_SHA256,), get=get)
        assert _verified(ecdsa_only, pki, serial).signature_algorithm_oid.dotted_string == ECDSA_SHA256
    _sizes("hybrid, ECDSA client", classic_der)
    _sizes("hybrid, ML-DSA client", _ask(server, "hybrid", pki, serial, preferred=PQ_CLIENT))


def test_certstatus_check_verifies_an_ml_dsa_responder(server, pkis) -> None:
    """`certstatus check` judges the ML-DSA-65 responder like any other: its signature verifies."""
    import json

    pki = pkis["pq-live"]
    done = run([*CERTSTATUS, "check", f"{server.url}pq-live/", "--issuer", str(pki.ca_cert),
                "--serial", f"{pki.serials['good']:x}", "--unassigned-serial", f"{pki.serials['unknown']:x}",
                "--format", "json"], timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout.decode()
    report = json.loads(done.stdout)
    [signature] = [rule for rule in report["rules"] if rule["rule"] == "signature"]
    assert signature["result"] == "ok" and "ML-DSA-65" in signature["detail"], signature
