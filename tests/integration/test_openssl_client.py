"""The real ``openssl ocsp`` client against the real ``certstatus serve`` process.

Every successful response is checked twice: by OpenSSL ("Response verify OK"
against the demo root) and by ``cryptography`` (signature over
tbsResponseData, responder certificate, responderID). Also here: start-up
refusals of bad signers and bad CRLs, which an operator meets on the command line.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certstatus.demo_pki import DemoPki, new_key, sign_crl
from tests.integration.conftest import (
    EXTENDED_REVOKE_OID,
    OPENSSL,
    load_cert,
    needs_openssl,
    openssl_time,
    post,
    run_openssl_ocsp,
    running_server,
    verify_signed_response,
)
from tests.servers import CERTSTATUS, Server, free_port

pytestmark = [pytest.mark.integration, needs_openssl]

UTC = dt.timezone.utc


def _check(server: Server, pki: DemoPki, leaves: list[str], tmp_path: Path, *, path: str = "/", digest: str | None = None,
           delegated: bool = True, extra: tuple[str, ...] = ()):  # fmt: skip
    """Ask ``server`` about ``leaves`` of ``pki`` with openssl; return (openssl result, parsed response).

    Asserts OpenSSL verified the response and ``cryptography`` agrees.
    """
    respout = tmp_path / f"resp-{'-'.join(leaves)}-{digest}.der"
    result = run_openssl_ocsp(
        pki.ca_cert, [pki.leaves[name] for name in leaves], url=server.origin + path, ca_file=pki.root_cert,
        verify_other=pki.ca_cert, digest=digest, extra=("-respout", str(respout), *extra),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.verified, result.stderr
    assert "WARNING" not in result.stderr, result.stderr  # e.g. "no nonce in response"
    response = verify_signed_response(respout.read_bytes(), issuer=load_cert(pki.ca_cert), delegated=load_cert(pki.ocsp_cert) if delegated else None)
    return result, response


def _status_of(result, pki: DemoPki, name: str) -> dict[str, str]:
    return result.statuses[str(pki.leaves[name])]


# --------------------------------------------------------------------------- statuses


def test_good_certificate_is_good_and_verifies(demo_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    result, response = _check(demo_server, demo_pki, ["good"], tmp_path)
    assert _status_of(result, demo_pki, "good")["status"] == "good"
    (single,) = list(response.responses)
    assert single.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert single.serial_number == demo_pki.serials["good"]
    assert single.next_update_utc - single.this_update_utc == dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("leaf", "openssl_reason", "reason"),
    [
        ("revoked-keycompromise", "keyCompromise", x509.ReasonFlags.key_compromise),
        ("revoked-superseded", "superseded", x509.ReasonFlags.superseded),
        ("revoked-unspecified", None, None),
    ],
)
def test_revoked_serial_reports_reason_and_time(
    demo_server: Server, demo_pki: DemoPki, tmp_path: Path, leaf: str, openssl_reason: str | None, reason
) -> None:
    result, response = _check(demo_server, demo_pki, [leaf], tmp_path)
    status = _status_of(result, demo_pki, leaf)
    assert status["status"] == "revoked"
    assert status.get("Reason") == openssl_reason
    assert openssl_time(status["Revocation Time"]) == demo_pki.revocation_times[leaf]
    (single,) = list(response.responses)
    assert single.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert single.revocation_time_utc == demo_pki.revocation_times[leaf]
    assert single.revocation_reason == reason


def test_certificate_hold_is_revoked_with_reason_certificate_hold(demo_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    result, response = _check(demo_server, demo_pki, ["revoked-hold"], tmp_path)
    status = _status_of(result, demo_pki, "revoked-hold")
    assert (status["status"], status["Reason"]) == ("revoked", "certificateHold")
    assert openssl_time(status["Revocation Time"]) == demo_pki.revocation_times["revoked-hold"]
    (single,) = list(response.responses)
    assert single.revocation_reason is x509.ReasonFlags.certificate_hold


def test_never_issued_serial_is_unknown(demo_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    result, response = _check(demo_server, demo_pki, ["unknown"], tmp_path)
    assert _status_of(result, demo_pki, "unknown")["status"] == "unknown"
    (single,) = list(response.responses)
    assert single.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_never_issued_serial_is_extended_revoked_when_configured(extended_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    result, response = _check(extended_server, demo_pki, ["unknown"], tmp_path)
    status = _status_of(result, demo_pki, "unknown")
    assert (status["status"], status["Reason"]) == ("revoked", "certificateHold")
    assert openssl_time(status["Revocation Time"]) == dt.datetime(1970, 1, 1, tzinfo=UTC)
    (single,) = list(response.responses)
    assert single.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert single.revocation_reason is x509.ReasonFlags.certificate_hold
    assert single.revocation_time_utc == dt.datetime(1970, 1, 1, tzinfo=UTC)
    # RFC 6960 §4.4.8: the response says it uses extended revoked.
    assert EXTENDED_REVOKE_OID in {ext.oid.dotted_string for ext in response.extensions}
    parsed = asn1_ocsp.OCSPResponse.load((tmp_path / "resp-unknown-None.der").read_bytes())
    extensions = parsed.basic_ocsp_response["tbs_response_data"]["response_extensions"]
    assert "extended_revoke" in {ext["extn_id"].native for ext in extensions}


def test_never_issued_serial_is_refused_unauthorized_when_configured(policy_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    """unknown_serials = "unauthorized": no certStatus at all for a serial the CA never issued (RFC 5019 §2.2.3)."""
    refused = run_openssl_ocsp(demo_pki.ca_cert, [demo_pki.leaves["unknown"]], url=policy_server.origin, ca_file=demo_pki.root_cert)
    assert "Responder Error: unauthorized (6)" in refused.stdout + refused.stderr
    result, _ = _check(policy_server, demo_pki, ["good"], tmp_path)
    assert _status_of(result, demo_pki, "good")["status"] == "good"


def test_a_request_without_nonce_is_refused_when_the_ca_requires_one(policy_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    """nonce = "require": openssl's default request (with a nonce) is answered and its nonce checked;
    with -no_nonce it is refused unauthorized."""
    refused = run_openssl_ocsp(demo_pki.ca_cert, [demo_pki.leaves["good"]], url=policy_server.origin, ca_file=demo_pki.root_cert,
                               extra=("-no_nonce",))  # fmt: skip
    assert "Responder Error: unauthorized (6)" in refused.stdout + refused.stderr
    result, response = _check(policy_server, demo_pki, ["revoked-superseded"], tmp_path)  # _check: no nonce WARNING
    assert _status_of(result, demo_pki, "revoked-superseded")["status"] == "revoked"
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce


def test_a_pkcs12_signer_sends_the_responder_certificate_only(single_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    """The demo PKCS#12 also holds the CA certificate: it is not sent (only with include_signer_chain)."""
    _, response = _check(single_server, demo_pki, ["good"], tmp_path, path="/single")
    assert response.certificates == [load_cert(demo_pki.ocsp_cert)]


def test_extended_revoked_server_keeps_issued_and_revoked_serials(extended_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    result, _ = _check(extended_server, demo_pki, ["good", "revoked-keycompromise"], tmp_path)
    assert _status_of(result, demo_pki, "good")["status"] == "good"
    revoked = _status_of(result, demo_pki, "revoked-keycompromise")
    assert (revoked["status"], revoked["Reason"]) == ("revoked", "keyCompromise")
    assert openssl_time(revoked["Revocation Time"]) == demo_pki.revocation_times["revoked-keycompromise"]


def test_several_cert_ids_are_answered_in_one_response_in_order(demo_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    leaves = ["good", "revoked-keycompromise", "unknown"]
    result, response = _check(demo_server, demo_pki, leaves, tmp_path)
    assert [_status_of(result, demo_pki, name)["status"] for name in leaves] == ["good", "revoked", "unknown"]
    assert [single.serial_number for single in response.responses] == [demo_pki.serials[n] for n in leaves]


@pytest.mark.parametrize(("digest", "algorithm"), [("sha256", hashes.SHA256), ("sha384", hashes.SHA384), ("sha512", hashes.SHA512)])
def test_cert_id_with_sha2_hash_is_answered(demo_server: Server, demo_pki: DemoPki, tmp_path: Path, digest: str, algorithm) -> None:
    result, response = _check(demo_server, demo_pki, ["good", "revoked-superseded"], tmp_path, digest=digest)
    assert [s["status"] for s in result.statuses.values()] == ["good", "revoked"]
    for single in response.responses:
        assert isinstance(single.hash_algorithm, algorithm)


def test_openssl_nonce_is_echoed(demo_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    """OpenSSL sends a nonce by default and checks it; the bytes are checked here too."""
    request_der = tmp_path / "req.der"
    made = run_openssl_ocsp(demo_pki.ca_cert, [demo_pki.leaves["good"]], extra=("-reqout", str(request_der)))
    assert made.returncode == 0, made.stderr
    request = ocsp.load_der_ocsp_request(request_der.read_bytes())
    sent = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    with httpx.Client(timeout=5) as client:
        answer = post(client, demo_server.origin + "/", request_der.read_bytes())
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    response = verify_signed_response(answer.content, issuer=load_cert(demo_pki.ca_cert), delegated=load_cert(demo_pki.ocsp_cert))
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == sent
    # OpenSSL compares the nonce of -reqin with the response's (OCSP_check_nonce). No -cert here:
    # it would make OpenSSL build a new request with a nonce of its own.
    (tmp_path / "resp.der").write_bytes(answer.content)
    checked = subprocess.run(
        [OPENSSL, "ocsp", "-reqin", str(request_der), "-respin", str(tmp_path / "resp.der"),
         "-CAfile", str(demo_pki.root_cert), "-verify_other", str(demo_pki.ca_cert)],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "Response verify OK" in checked.stderr and "nonce" not in checked.stderr.lower(), checked.stderr
    # And the live round trip, where OpenSSL makes the nonce itself.
    _check(demo_server, demo_pki, ["good"], tmp_path)


# --------------------------------------------------------------------------- single-CA form, several CAs


def test_single_ca_form_serves_at_its_path_and_at_root(single_server: Server, demo_pki: DemoPki, tmp_path: Path) -> None:
    for number, path in enumerate(("/single/", "/single", "/")):
        folder = tmp_path / str(number)
        folder.mkdir()
        result, response = _check(single_server, demo_pki, ["good", "revoked-keycompromise"], folder, path=path)
        assert [s["status"] for s in result.statuses.values()] == ["good", "revoked"]
        # --responder-id name: the responderID is the responder certificate's subject.
        assert response.responder_name == load_cert(demo_pki.ocsp_cert).subject
        assert response.responder_key_hash is None


def test_each_ca_path_serves_its_own_certificates(multi_server: Server, tmp_path: Path) -> None:
    ca1, ca2 = multi_server.pkis["ca1"], multi_server.pkis["ca2"]
    result, _ = _check(multi_server, ca1, ["good", "revoked-hold"], tmp_path, path="/ca1/")
    assert [s["status"] for s in result.statuses.values()] == ["good", "revoked"]
    # ca2 signs with the CA key itself: no certificate in the response, OpenSSL finds it in -verify_other.
    result, response = _check(multi_server, ca2, ["good", "revoked-superseded"], tmp_path, path="/ca2/", delegated=False)
    assert [s["status"] for s in result.statuses.values()] == ["good", "revoked"]
    assert response.certificates == []
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(load_cert(ca2.ca_cert).public_key()).digest


def test_common_path_serves_every_ca(multi_server: Server, tmp_path: Path) -> None:
    ca1, ca2 = multi_server.pkis["ca1"], multi_server.pkis["ca2"]
    result, _ = _check(multi_server, ca1, ["good"], tmp_path, path="/")
    assert _status_of(result, ca1, "good")["status"] == "good"
    result, _ = _check(multi_server, ca2, ["revoked-keycompromise"], tmp_path, path="/", delegated=False)
    status = _status_of(result, ca2, "revoked-keycompromise")
    assert (status["status"], status["Reason"]) == ("revoked", "keyCompromise")
    assert openssl_time(status["Revocation Time"]) == ca2.revocation_times["revoked-keycompromise"]


def test_other_cas_certificate_on_a_ca_path_is_unauthorized(multi_server: Server) -> None:
    ca2 = multi_server.pkis["ca2"]
    result = run_openssl_ocsp(ca2.ca_cert, [ca2.leaves["good"]], url=multi_server.origin + "/ca1/", ca_file=ca2.root_cert, verify_other=ca2.ca_cert)
    assert result.returncode != 0
    assert "Responder Error: unauthorized (6)" in result.stdout + result.stderr


# --------------------------------------------------------------------------- start-up refusals


def run_cli(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``certstatus ARGS``; kill its whole session if it does not exit (a server that started)."""
    process = subprocess.Popen(
        [*CERTSTATUS, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"}, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"certstatus {' '.join(args[:1])} did not exit within {timeout} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def _single_ca_args(pki: DemoPki, db: Path, *, crl: Path, signer_cert: Path, signer_key: Path, port: int | None) -> list[str]:
    """The single-CA options of ``import`` (``port`` None) or ``serve`` (listening on ``port``)."""
    return [
        "--issuer", str(pki.ca_cert), "--crl", str(crl), "--signer-cert", str(signer_cert), "--signer-key", str(signer_key),
        "--db", str(db), *([] if port is None else ["--listen", f"127.0.0.1:{port}", "--workers", "2"]),
    ]  # fmt: skip


def _serve_with_signer(pki: DemoPki, signer_cert: Path, signer_key: Path, folder: Path) -> subprocess.CompletedProcess:
    db = folder / "store.sqlite3"
    args = ["serve", *_single_ca_args(pki, db, crl=pki.crl, signer_cert=signer_cert, signer_key=signer_key, port=free_port())]
    return run_cli(args, folder)


@pytest.mark.parametrize("problem", ["signer not issued by the CA", "key not matching the certificate"])
def test_serve_refuses_a_bad_signer_with_one_paragraph(demo_pki: DemoPki, second_pki: DemoPki, tmp_path: Path, problem: str) -> None:
    if problem == "signer not issued by the CA":
        signer_cert, signer_key, expected = second_pki.ocsp_cert, second_pki.ocsp_key, "not issued by"
    else:
        signer_cert, signer_key, expected = demo_pki.ocsp_cert, demo_pki.leaves["good"].with_suffix(".key"), "does not belong"
    done = _serve_with_signer(demo_pki, signer_cert, signer_key, tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)  # operator error, not a bug (exit 1)
    assert "Traceback" not in done.stderr + done.stdout
    message = done.stderr.strip()
    assert message.startswith("error:"), message
    assert "\n\n" not in message, "the message is one paragraph"
    flat = "".join(message.splitlines())  # the console may fold long paths
    assert str(signer_cert) in flat and str(signer_key) in flat
    assert expected in " ".join(message.split())


def test_signer_not_issued_by_the_ca_message_says_why(demo_pki: DemoPki, second_pki: DemoPki, tmp_path: Path) -> None:
    """The reason is named even when the exception has no message (InvalidSignature has none)."""
    done = _serve_with_signer(demo_pki, second_pki.ocsp_cert, second_pki.ocsp_key, tmp_path)
    message = " ".join(done.stderr.split())
    assert "not issued by" in message
    assert "()" not in message
    assert "InvalidSignature" in message


def _bad_crls(pki: DemoPki, folder: Path) -> dict[str, Path]:
    """Two CRLs naming ``pki``'s CA with bad signatures: signed by another key; one signature byte flipped."""
    ca_cert = load_cert(pki.ca_cert)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    # Newer than the demo CRL (cRLNumber 2) and empty: accepting it would un-revoke everything.
    wrong_key = sign_crl(ca_cert, new_key("ec"), [], crl_number=2, this_update=now, next_update=now + dt.timedelta(days=7))
    wrong = folder / "wrong-key.crl"
    wrong.write_bytes(wrong_key.public_bytes(serialization.Encoding.PEM))
    der = bytearray(x509.load_pem_x509_crl(pki.crl.read_bytes()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the ECDSA signature's last INTEGER: still DER, no longer valid
    flipped = folder / "flipped.crl"
    flipped.write_bytes(bytes(der))
    return {"wrong-key": wrong, "flipped": flipped}


def test_bad_crl_is_refused_and_earlier_data_keeps_serving(demo_pki: DemoPki, tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite3"
    common = dict(signer_cert=demo_pki.ocsp_cert, signer_key=demo_pki.ocsp_key, port=free_port())
    importing = {**common, "port": None}
    first = run_cli(["import", *_single_ca_args(demo_pki, db, crl=demo_pki.crl, **importing)], tmp_path)
    assert first.returncode == 0, first.stderr
    bad = _bad_crls(demo_pki, tmp_path)
    for name, crl in bad.items():
        refused = run_cli(["import", *_single_ca_args(demo_pki, db, crl=crl, **importing)], tmp_path)
        assert refused.returncode == 1, (name, refused.stdout, refused.stderr)
        assert "refused" in refused.stdout and "Traceback" not in refused.stdout + refused.stderr  # the import table
        assert crl.name in refused.stdout
    # Serving with the bad CRL configured: refused again at start-up, the earlier import answers.
    args = ["serve", *_single_ca_args(demo_pki, db, crl=bad["wrong-key"], **common)]
    with running_server(args, tmp_path, common["port"], {"demo": demo_pki}) as server:
        result, response = _check(server, demo_pki, ["revoked-keycompromise", "good"], tmp_path)
        revoked = _status_of(result, demo_pki, "revoked-keycompromise")
        assert (revoked["status"], revoked["Reason"]) == ("revoked", "keyCompromise")
        assert openssl_time(revoked["Revocation Time"]) == demo_pki.revocation_times["revoked-keycompromise"]
        assert _status_of(result, demo_pki, "good")["status"] == "good"
    assert "refused" in server.log_text()
