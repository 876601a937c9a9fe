"""``openssl ocsp`` reads a final response (nextUpdate 99991231235959Z) from a running ``certstatus serve``.

A CA with ``final_response_after_expiry`` answers a revoked certificate past its notAfter with
nextUpdate 9999-12-31T23:59:59Z. OpenSSL must accept that response as it accepts any other:
signature verified, status revoked, the nextUpdate printed, and its validity checks
(``-validity_period``: thisUpdate not in the future and nextUpdate not past, within the
tolerance; ``-status_age``: thisUpdate not older than that) passed. The revoked certificate that
has not expired gets the usual nextUpdate (thisUpdate + 1 day).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from certstatus.demo_pki import DemoPki
from tests.integration.conftest import (
    CERTSTATUS,
    LiveServer,
    free_port,
    load_cert,
    needs_openssl,
    openssl_time,
    run_openssl_ocsp,
    running_server,
    verify_signed_response,
    write_config,
)
from tests.precomputed_helpers import copy_pki
from tests.servers import demo_ca_table

pytestmark = [pytest.mark.integration, needs_openssl]

FINAL = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def final_server(demo_pki: DemoPki, tmp_path_factory: pytest.TempPathFactory):
    """The demo CA from its CRL and index.txt, final responses on, the expired certificate revoked in the index."""
    folder = tmp_path_factory.mktemp("server-final")
    pki = copy_pki(demo_pki, folder / "pki")
    revoked_at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).strftime("%y%m%d%H%M%SZ")
    pki.index.write_text("".join(
        line.replace("E\t", "R\t", 1).replace("\t\t", f"\t{revoked_at},keyCompromise\t", 1) if "/CN=expired." in line else line
        for line in pki.index.read_text().splitlines(keepends=True)
    ))  # fmt: skip
    port = free_port()
    table = demo_ca_table("final", pki, index=True, validity="1d", archive_cutoff="ca-not-before",
                          final_response_after_expiry=True)  # fmt: skip
    config = write_config(folder, port, table)
    with running_server(["serve", "--config", str(config)], folder, port, {"demo": pki}) as server:
        yield server, pki


def _ask(server: LiveServer, pki: DemoPki, name: str, tmp_path: Path, *extra: str):
    respout = tmp_path / f"{name}-{len(extra)}.der"
    result = run_openssl_ocsp(pki.ca_cert, [pki.leaves[name]], url=server.url, ca_file=pki.root_cert,
                              verify_other=pki.ca_cert, extra=("-respout", str(respout), *extra))  # fmt: skip
    response = verify_signed_response(respout.read_bytes(), issuer=load_cert(pki.ca_cert), delegated=load_cert(pki.ocsp_cert))
    return result, response


def test_openssl_verifies_a_final_response_and_prints_its_next_update(final_server, tmp_path: Path) -> None:
    server, pki = final_server
    for extra in ((), ("-validity_period", "300", "-status_age", "3600"), ("-status_age", "60")):
        result, response = _ask(server, pki, "expired", tmp_path, *extra)
        assert result.returncode == 0 and result.verified, result.stderr
        assert "WARNING" not in result.stderr + result.stdout, result.stdout
        status = result.statuses[str(pki.leaves["expired"])]
        assert status["status"] == "revoked" and status["Reason"] == "keyCompromise"
        assert openssl_time(status["Next Update"]) == FINAL
        assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED and response.next_update_utc == FINAL
    result, response = _ask(server, pki, "revoked-keycompromise", tmp_path)
    status = result.statuses[str(pki.leaves["revoked-keycompromise"])]
    assert status["status"] == "revoked" and result.verified
    assert openssl_time(status["Next Update"]) == response.this_update_utc + dt.timedelta(days=1)


def test_certstatus_check_reports_a_final_response_as_outside_the_webpki_rules(final_server) -> None:
    """Why the option is off by default: seen from outside, a final response breaks the WebPKI's
    validity and signer notAfter rules — and nothing else (its cache headers agree with it)."""
    server, pki = final_server
    done = subprocess.run([*CERTSTATUS, "check", server.url + "/", "--issuer", str(pki.ca_cert),
                           "--serial", f"{pki.serials['expired']:x}", "--format", "json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout, done.stderr
    rules = {rule["rule"]: rule for rule in json.loads(done.stdout)["rules"]}
    assert {key for key, rule in rules.items() if rule["result"] == "violation"} == {"validity", "signer_not_after"}, done.stdout
    assert "9999" in rules["signer_not_after"]["detail"]
    assert rules["cache_headers"]["result"] == "ok", rules["cache_headers"]
