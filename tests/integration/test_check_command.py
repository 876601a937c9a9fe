"""``certstatus check`` against real responders: certstatus itself, and ``openssl ocsp``.

certstatus (the demo PKI: CRL + index, delegated responder, 1 day validity)
must pass every rule. ``openssl ocsp`` as a responder, signing with the CA's
own key for 30 days (``-ndays 30``) for a CA that expires in 5 days, breaks
exactly three: the validity interval is over 10 days, nextUpdate is after the
signer's notAfter, and it sends no cache headers. It does answer GET, and it
includes the CA's own certificate in its responses (a warning).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import OPENSSL, needs_openssl
from tests.servers import CERTSTATUS, Server, free_port
from tests.openssl_ca import OpenSslCa

pytestmark = [pytest.mark.integration, needs_openssl]


def _check(url: str, issuer: Path, *args: str, fmt: str = "json") -> subprocess.CompletedProcess:
    return subprocess.run([*CERTSTATUS, "check", url, "--issuer", str(issuer), *args, "--format", fmt],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _rules(done: subprocess.CompletedProcess) -> dict[str, dict]:
    return {rule["rule"]: rule for rule in json.loads(done.stdout)["rules"]}


def test_check_passes_against_certstatus(demo_server: Server, demo_pki) -> None:
    serials = ["--serial", f"{demo_pki.serials['good']:x}", "--serial", f"{demo_pki.serials['revoked-keycompromise']:x}",
               "--unassigned-serial", f"{demo_pki.serials['unknown']:x}"]  # fmt: skip
    done = _check(demo_server.origin + "/", demo_pki.ca_cert, *serials)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    rules = _rules(done)
    assert report["violations"] == 0 and report["warnings"] == 0, done.stdout
    for key in ("get", "post", "answered", "content_type", "cache_headers", "etag", "signature", "responder", "responder_eku",
                "responder_nocheck", "responder_key_usage", "responder_aia_crldp", "cert_id", "nonce", "next_update", "validity",
                "signer_not_after", "current", "unassigned"):  # fmt: skip
        assert rules[key]["result"] == "ok", (key, rules[key])
    assert rules["nonce"]["detail"] == "echoed"
    assert rules["size"]["result"] == "note" and "bytes" in rules["size"]["detail"]
    # 3 serials × GET/POST × SHA-1/SHA-256 × nonce or not, plus one If-None-Match per serial and hash.
    answers = report["answers"]
    assert len(answers) == 3 * 8 + 3 * 2
    assert {(a["method"], a["cert_id_hash"], a["nonce"]) for a in answers} == {
        (m, h, n) for m in ("GET", "POST") for h in ("sha1", "sha256") for n in (False, True)
    }
    unassigned = [a for a in answers if a["unassigned"] and a["if_none_match"] is None]
    assert {tuple(a["cert_status"]) for a in unassigned} == {("unknown",)}


def test_check_table_is_whole_outside_a_terminal(demo_server: Server, demo_pki) -> None:
    done = _check(demo_server.origin + "/", demo_pki.ca_cert, "--serial", f"{demo_pki.serials['good']:x}", fmt="table")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # Each rule on one line with its source and detail, never wrapped or cut at 80 columns.
    row = next(line for line in lines if "delegated responder: id-pkix-ocsp-nocheck" in line)
    assert "RFC 6960 §4.2.2.2.1; CA/B BR §7.1.2.8.6" in row and "id-pkix-ocsp-nocheck present" in row
    assert "0 violations, 0 warnings" in done.stdout


@pytest.fixture
def openssl_responder(tmp_path: Path):
    """``openssl ocsp`` answering for a CA valid 5 days, CA-signed, nextUpdate 30 days ahead."""
    ca = OpenSslCa(tmp_path / "ca", days=5)
    good, revoked = ca.issue("leaf-good", days=3), ca.issue("leaf-revoked", days=3)
    ca.revoke("leaf-revoked", reason="keyCompromise")
    port = free_port()
    log = open(tmp_path / "ocsp.log", "wb")  # noqa: SIM115 - closed below
    assert OPENSSL is not None
    process = subprocess.Popen(
        [OPENSSL, "ocsp", "-index", str(ca.index_path), "-CA", str(ca.cert_path), "-rsigner", str(ca.cert_path),
         "-rkey", str(ca.folder / "ca.key"), "-port", str(port), "-ndays", "30"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while b"waiting for OCSP client connections" not in (tmp_path / "ocsp.log").read_bytes():
            assert process.poll() is None, (tmp_path / "ocsp.log").read_text()
            assert time.monotonic() < deadline, "openssl ocsp did not start within 15 s"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/", ca, good, revoked
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_check_flags_the_violations_of_openssl_ocsp(openssl_responder) -> None:
    url, ca, good, revoked = openssl_responder
    done = _check(url, ca.cert_path, "--serial", f"{good:x}", "--serial", f"{revoked:x}", "--unassigned-serial", "7777")
    assert done.returncode == 1, done.stdout + done.stderr
    rules = _rules(done)
    violated = {key for key, rule in rules.items() if rule["result"] == "violation"}
    assert violated == {"validity", "signer_not_after", "cache_headers"}, done.stdout
    assert rules["validity"]["detail"].startswith("30d 0h 0m 1s")
    assert "nextUpdate" in rules["signer_not_after"]["detail"] and ">" in rules["signer_not_after"]["detail"]
    assert rules["cache_headers"]["detail"] == "no max-age, Last-Modified, Expires, ETag"
    # What openssl ocsp does right: GET and POST, both CertID hashes, the nonce, unknown for an unassigned serial.
    for key in ("get", "post", "answered", "content_type", "signature", "cert_id", "nonce", "unassigned"):
        assert rules[key]["result"] == "ok", (key, rules[key])
    # CA-signed: noted, with a warning because the CA's own certificate is included; no delegated profile applies.
    assert rules["responder"]["result"] == "warning" and "signed by the CA itself" in rules["responder"]["detail"]
    assert "responder_eku" not in rules
