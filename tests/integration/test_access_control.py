"""TLS with optional client certificates, signed requests and authorization, against a real server.

One certstatus (2 workers) serves two CAs over HTTPS with ``client_auth =
"optional"``:

* ``ec`` (the EC demo CA): ``authorization = "by_name"`` — alice exactly,
  and ``glob:CN=b*,O=Example Partners``;
* ``rsa`` (the RSA demo CA): ``require_signed_requests`` and
  ``by_authentication``.

Clients are real: httpx with and without client certificates, and
``openssl ocsp`` making signed requests with ``-signer``/``-signkey``.
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil

import httpx
import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.x509.ocsp import OCSPResponseStatus
from prometheus_client.parser import text_string_to_metric_families

from tests.ocsp_client import cert_status, openssl_ocsp, request_der, response_status, run, tls_context
from tests.processes import openssl_ocsp_status
from tests.servers import demo_ca_table, free_port, server_tables, start_server, table

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(access_pki):
    return access_pki


@pytest.fixture(scope="module")
def server(pki, demo_pki_rsa, tmp_path_factory):
    folder = tmp_path_factory.mktemp("access-server")
    port, admin = free_port(), free_port()
    config = (
        server_tables(port, workers=2, admin=admin, audit=True)
        + table("tls", certificate=pki.server.cert, key=pki.server.key, client_auth="optional", client_trust_anchors=[pki.anchors])
        + demo_ca_table("ec", pki.demo, crl=pki.crl, index=True, path="/ec", authorization="by_name",
                        authorized_names=["CN=alice,O=Example Partners", "glob:CN=b*,O=Example Partners"])
        + demo_ca_table("rsa", demo_pki_rsa, path="/rsa", require_signed_requests=True, authorization="by_authentication")
    )
    running = start_server(folder, config, port=port, admin_port=admin, tls=True)
    yield running
    assert running.stop() == 0, running.log_text()


def _client(pki, who: str | None) -> httpx.Client:
    pair = pki.clients[who] if who else None
    return httpx.Client(verify=tls_context(pki.tls_root, (pair.cert, pair.key) if pair else None), timeout=10)


def _post(server, pki, who: str | None, path: str, der: bytes) -> bytes:
    with _client(pki, who) as client:
        reply = client.post(server.url + path, content=der, headers={"content-type": "application/ocsp-request"})
    return reply.content


def test_listed_subject_is_answered_and_audited_with_its_tls_subject(server, pki):
    mark = server.audit_count()
    demo = pki.demo
    der = _post(server, pki, "alice", "ec", request_der(demo.leaves["revoked-keycompromise"], demo.ca_cert))
    assert cert_status(der) == "revoked"
    record = server.audit_record(lambda r: r["tls_client"] == pki.clients["alice"].subject, after=mark)
    assert record["requestor"] == pki.clients["alice"].subject
    assert record["issuer"] == "ec" and record["source"] == "live"
    assert record["certs"] == [{"serial": format(demo.serials["revoked-keycompromise"], "x"), "cert_id_hash": "sha1", "status": "revoked"}]


def test_glob_pattern_lets_a_matching_subject_in(server, pki):
    der = _post(server, pki, "bob", "ec", request_der(pki.demo.leaves["good"], pki.demo.ca_cert))
    assert cert_status(der) == "good"


def test_answers_of_an_access_controlled_ca_are_private_to_shared_caches(server, pki):
    with _client(pki, "alice") as client:
        reply = client.get(server.url + "ec/" + base64.b64encode(request_der(pki.demo.leaves["good"], pki.demo.ca_cert)).decode())
    assert reply.status_code == 200 and cert_status(reply.content) == "good"
    assert reply.headers["cache-control"].startswith("max-age=") and ", private," in reply.headers["cache-control"]


def test_unlisted_subject_is_unauthorized_with_the_reason_logged(server, pki):
    mark = server.audit_count()
    der = _post(server, pki, "mallory", "ec", request_der(pki.demo.leaves["good"], pki.demo.ca_cert))
    assert response_status(der) is OCSPResponseStatus.UNAUTHORIZED
    record = server.audit_record(lambda r: r["tls_client"] == pki.clients["mallory"].subject, after=mark)
    assert record["response_status"] == "unauthorized"
    assert "matches no authorized name" in record["reason"]
    assert "matches no authorized name" in server.log_text()


def test_client_without_certificate_is_unauthorized_where_names_are_required(server, pki):
    der = _post(server, pki, None, "ec", request_der(pki.demo.leaves["good"], pki.demo.ca_cert))
    assert response_status(der) is OCSPResponseStatus.UNAUTHORIZED


def test_client_certificate_revoked_in_our_data_is_disconnected_after_the_handshake(server, pki):
    with pytest.raises(httpx.TransportError):
        _post(server, pki, "revoked-client", "ec", request_der(pki.demo.leaves["good"], pki.demo.ca_cert))
    assert "disconnected TLS client" in server.log_text()


def test_unsigned_request_gets_sig_required(server, pki, demo_pki_rsa):
    out = openssl_ocsp("-issuer", str(demo_pki_rsa.ca_cert), "-cert", str(demo_pki_rsa.leaves["good"]),
                       "-url", server.url + "rsa", "-noverify")
    assert "sigrequired" in out.lower(), out


def test_request_signed_by_a_trusted_signer_is_answered(server, pki, demo_pki_rsa):
    mark = server.audit_count()
    alice = pki.clients["alice"]
    status = openssl_ocsp_status(["openssl", "ocsp", "-issuer", str(demo_pki_rsa.ca_cert), "-cert", str(demo_pki_rsa.leaves["revoked-superseded"]),
                                  "-signer", str(alice.cert), "-signkey", str(alice.key), "-url", server.url + "rsa",
                                  "-CAfile", str(demo_pki_rsa.root_cert), "-verify_other", str(demo_pki_rsa.ca_cert)])  # fmt: skip
    assert status == "revoked"
    record = server.audit_record(lambda r: r["signer"] == alice.subject, after=mark)
    assert record["requestor"] == alice.subject and record["certs"][0]["status"] == "revoked"


def test_request_signed_with_ml_dsa_by_a_trusted_signer_is_answered(server, pki, demo_pki_rsa):
    mark = server.audit_count()
    """A requestor with an ML-DSA-65 key (certified by the ECDSA clients root) signs tbsRequest with ML-DSA
    (RFC 9881 identifier); OpenSSL 3.0 cannot make such a request, so asn1crypto writes it."""
    import hashlib

    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from certstatus.demo_pki import issue_cert
    from certstatus.protocol.certid import public_key_bits
    from certstatus.signing.algorithms import ALGORITHMS
    from certstatus.signing.lifecycle import generate_file_key
    from tests.signing_support import load_cert, load_key

    root = pki.clients_root
    key = generate_file_key("ml-dsa-65")
    now = dt.datetime.now(dt.timezone.utc)
    requestor = issue_cert(root.certificate, load_key(root.key), key.public_key(), common_name="pq-client",
                           not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=1),
                           extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    ca = load_cert(demo_pki_rsa.ca_cert)
    cert_id = {"hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": hashlib.sha1(ca.subject.public_bytes()).digest(),
               "issuer_key_hash": hashlib.sha1(public_key_bits(ca)).digest(),
               "serial_number": demo_pki_rsa.serials["revoked-superseded"]}  # fmt: skip
    tbs = asn1_ocsp.TBSRequest({
        "requestor_name": asn1_x509.GeneralName(name="directory_name", value=asn1_x509.Name.load(requestor.subject.public_bytes())),
        "request_list": [{"req_cert": cert_id}],
    })  # fmt: skip
    signature = key.sign(tbs.dump())
    signed = asn1_ocsp.OCSPRequest({"tbs_request": tbs, "optional_signature": {
        "signature_algorithm": {"algorithm": ALGORITHMS["ml-dsa-65"].oid}, "signature": signature,
        "certs": [asn1_x509.Certificate.load(requestor.public_bytes(serialization.Encoding.DER))],
    }}).dump()  # fmt: skip
    answer = _post(server, pki, None, "rsa", signed)
    assert response_status(answer) is OCSPResponseStatus.SUCCESSFUL and cert_status(answer) == "revoked"
    record = server.audit_record(lambda r: r["signer"] == "CN=pq-client", after=mark)
    assert record["certs"][0]["status"] == "revoked"
    # The same request with one bit of the ML-DSA signature flipped is refused.
    tampered = signed.replace(signature, bytes([signature[0] ^ 0x01]) + signature[1:])
    assert response_status(_post(server, pki, None, "rsa", tampered)) is OCSPResponseStatus.UNAUTHORIZED


def test_request_with_a_bad_signature_is_unauthorized(server, pki, demo_pki_rsa, tmp_path):
    alice = pki.clients["alice"]
    signed = tmp_path / "signed.der"
    openssl_ocsp("-issuer", str(demo_pki_rsa.ca_cert), "-cert", str(demo_pki_rsa.leaves["good"]),
                 "-signer", str(alice.cert), "-signkey", str(alice.key), "-reqout", str(signed))
    request = asn1_ocsp.OCSPRequest.load(signed.read_bytes())
    signature = bytearray(request["optional_signature"]["signature"].native)
    signature[-1] ^= 0x01
    request["optional_signature"]["signature"] = bytes(signature)
    tampered = tmp_path / "tampered.der"
    tampered.write_bytes(request.dump(force=True))
    out = openssl_ocsp("-reqin", str(tampered), "-url", server.url + "rsa", "-noverify")
    assert "unauthorized" in out.lower(), out
    assert "the signature does not verify" in server.log_text()


@pytest.mark.parametrize(("who", "reason"), [("stranger", "request signer not trusted"), ("revoked-client", "request signer revoked")])
def test_request_signed_by_an_untrusted_or_revoked_signer_is_unauthorized(server, pki, demo_pki_rsa, who, reason):
    signer = pki.clients[who]
    out = openssl_ocsp("-issuer", str(demo_pki_rsa.ca_cert), "-cert", str(demo_pki_rsa.leaves["good"]),
                       "-signer", str(signer.cert), "-signkey", str(signer.key), "-url", server.url + "rsa", "-noverify")
    assert "unauthorized" in out.lower(), out
    assert reason in server.log_text()


def test_health_and_ready_answer_on_the_ocsp_port_without_a_client_certificate(server, pki):
    with _client(pki, None) as client:
        assert client.get(server.url + "health").status_code == 200
        ready = client.get(server.url + "ready")
    assert ready.status_code == 200 and ready.text == "ready\n"


def _scrape(server) -> dict[tuple[str, tuple], float]:
    text = server.admin_get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_sum_every_worker_and_parse_as_prometheus_text(server, pki):
    key = ("certstatus_requests_total", (("ca", "ec"), ("response_status", "successful"), ("source", "live")))
    before = _scrape(server).get(key, 0.0)
    count = 12
    with _client(pki, "alice") as client:  # a new connection each time lands on either worker
        for _ in range(count):
            client.post(server.url + "ec", content=request_der(pki.demo.leaves["good"], pki.demo.ca_cert),
                        headers={"connection": "close"})
    after = _scrape(server)
    assert after[key] - before == count
    assert after[("certstatus_ready", ())] == 1.0
    signer = x509.load_pem_x509_certificate(pki.demo.ocsp_cert.read_bytes())
    not_after = [value for (name, labels), value in after.items()
                 if name == "certstatus_signer_not_after_timestamp_seconds" and ("ca", "ec") in labels]
    assert not_after == [signer.not_valid_after_utc.timestamp()]
    states = {dict(labels)["state"]: value for (name, labels), value in after.items()
              if name == "certstatus_signer_state" and ("ca", "ec") in labels}
    assert states == {"active": 1.0, "standby": 0.0, "next": 0.0, "expired": 0.0, "revoked": 0.0}
    ages = {labels: value for (name, labels), value in after.items() if name == "certstatus_data_age_seconds"}
    assert (("ca", "ec"), ("source", "crl")) in ages and (("ca", "rsa"), ("source", "crl")) in ages
    assert after[("certstatus_request_duration_seconds_count", (("source", "live"),))] >= count
    assert 0.0 <= after[("certstatus_cache_hit_ratio", ())] <= 1.0


def test_openssl_s_client_with_a_certificate_gets_http(server, pki):
    if shutil.which("openssl") is None:
        pytest.skip("openssl missing")
    alice = pki.clients["alice"]
    out = run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-CAfile", str(pki.tls_root),
               "-cert", str(alice.cert), "-key", str(alice.key), "-quiet", "-verify_return_error"],
              stdin=b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").stdout
    assert b"HTTP/1.1 200" in out, out
