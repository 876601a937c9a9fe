"""The configured CA certificate: refused when it is no CA, its CRLs refused when it may not sign them.

CAs are made by `openssl req -x509` with the extensions of each case and
their CRLs by `openssl ca -gencrl` (tests/openssl_ca.py); the responses are
read by cryptography from the sans-IO application.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus

from certstatus.app import build_application, prepare
from certstatus.ca_certificate import crl_signer_problem, not_a_ca, profile_warnings
from certstatus.clock import UTC, ManualClock
from certstatus.config import CaSettings, ServerSettings, Settings, load_config
from certstatus.demo_pki import DemoPki
from certstatus.errors import ConfigError
from certstatus.loading import load_ca
from certstatus.model import RevokedEntry
from certstatus.store.base import SourceState
from certstatus.store.factory import open_configured_store
from tests.openssl_ca import OpenSslCa
from tests.sources_helpers import ocsp_query

NO_CRL_SIGN = "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, digitalSignature\nsubjectKeyIdentifier = hash"


def _config(folder: Path, ca: OpenSslCa, sources: str) -> Path:
    """A configuration serving ``ca`` (CA-signed responses) from ``sources`` (TOML lines)."""
    config = folder / "certstatus.toml"
    config.write_text(
        f'[server]\ndatabase = "{folder / "store.sqlite3"}"\n\n[ca.openssl]\ncertificate = "{ca.cert_path}"\n'
        f'signer_certificate = "{ca.cert_path}"\nsigner_key = "{ca.folder / "ca.key"}"\n{sources}\n'
    )
    return config


def test_the_rules_read_basic_constraints_and_key_usage(tmp_path: Path) -> None:
    full = OpenSslCa(tmp_path / "full").certificate
    no_crl_sign = OpenSslCa(tmp_path / "no-crl-sign", ca_extensions=NO_CRL_SIGN).certificate
    leaf_like = OpenSslCa(tmp_path / "ca-false", ca_extensions="basicConstraints = CA:FALSE\nkeyUsage = cRLSign").certificate
    version_1 = OpenSslCa(tmp_path / "v1", ca_extensions="", crl_extensions="").certificate

    assert [not_a_ca(cert) is None for cert in (full, no_crl_sign, leaf_like, version_1)] == [True, True, False, True]
    assert crl_signer_problem(full) is None and crl_signer_problem(version_1) is None
    assert "lacks cRLSign" in crl_signer_problem(no_crl_sign)
    assert "cA=FALSE" in crl_signer_problem(leaf_like)
    assert profile_warnings(full, signs_crls=True) == []
    basic, usage = profile_warnings(version_1, signs_crls=True)
    assert "no basicConstraints" in basic and "no keyUsage" in usage
    assert profile_warnings(version_1, signs_crls=False) == [basic]  # keyUsage only matters for CRLs


def test_responder_certificate_configured_as_the_ca_stops_start_up(demo_pki: DemoPki, tmp_path: Path) -> None:
    """The usual mistake: the delegated responder certificate (cA=FALSE) given as the CA's."""
    config = tmp_path / "certstatus.toml"
    config.write_text(
        f'[server]\ndatabase = "{tmp_path / "store.sqlite3"}"\n\n[ca.demo]\ncertificate = "{demo_pki.ocsp_cert}"\n'
        f'crl = "{demo_pki.crl}"\nsigner_certificate = "{demo_pki.ocsp_cert}"\nsigner_key = "{demo_pki.ocsp_key}"\n'
    )
    with pytest.raises(ConfigError) as caught:
        prepare(load_config(config))

    assert (caught.value.file, caught.value.key) == (str(config), "ca.demo.certificate")
    assert str(demo_pki.ocsp_cert) in caught.value.problem and "cA=FALSE" in caught.value.problem
    assert "not a leaf or the responder certificate" in caught.value.fix


def test_non_ca_issuer_on_the_command_line_names_the_option(demo_pki: DemoPki, tmp_path: Path) -> None:
    ca = CaSettings("demo", demo_pki.leaves["good"], demo_pki.ocsp_cert, demo_pki.ocsp_key, crl=(str(demo_pki.crl),))
    store = open_configured_store(Settings(ServerSettings(database=tmp_path / "store.sqlite3"), ()), upgrade=True)
    try:
        with pytest.raises(ConfigError) as caught:
            load_ca(ca, store, ManualClock(dt.datetime.now(UTC)))
    finally:
        store.close()
    assert caught.value.key == "--issuer"


@pytest.mark.parametrize("critical", [True, False], ids=["critical", "non-critical"])
def test_crl_of_a_ca_without_crl_sign_is_refused_and_its_serials_never_answered_good(
    tmp_path: Path, critical: bool
) -> None:
    extensions = NO_CRL_SIGN if critical else NO_CRL_SIGN.replace("critical, keyCertSign", "keyCertSign")
    ca = OpenSslCa(tmp_path / "ca", ca_extensions=extensions)
    revoked, good = ca.issue("revoked"), ca.issue("good")
    ca.revoke("revoked", reason="keyCompromise")
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.gencrl())
    settings = load_config(_config(tmp_path, ca, f'crl = "{crl}"'))

    (result,) = prepare(settings)
    assert result.origin == str(crl) and "lacks cRLSign" in result.error and "RFC 5280" in result.error

    app = build_application(settings, watch=False)
    for serial in (revoked, good):  # no data: tryLater, never a guess
        assert ocsp_query(app, ca.certificate, serial).response_status is OCSPResponseStatus.TRY_LATER


def test_refused_crl_leaves_the_earlier_import_serving(tmp_path: Path) -> None:
    """A store written before the rule (an earlier release imported this CA's CRL) keeps serving it."""
    ca = OpenSslCa(tmp_path / "ca", ca_extensions=NO_CRL_SIGN)
    revoked = ca.issue("revoked")
    ca.revoke("revoked", reason="keyCompromise")
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.gencrl())
    settings = load_config(_config(tmp_path, ca, f'crl = "{crl}"'))
    store = open_configured_store(settings, upgrade=True)
    issuer_id = store.register_issuer("openssl", ca.certificate.public_bytes(serialization.Encoding.DER))
    now = dt.datetime.now(UTC).replace(microsecond=0)
    earlier = RevokedEntry(revoked, now - dt.timedelta(hours=1), x509.ReasonFlags.key_compromise)
    state = SourceState("crl", str(crl), now, 1, now - dt.timedelta(hours=1), now + dt.timedelta(days=1), 1)
    store.replace_source(issuer_id, state, revoked=[earlier])
    store.close()

    (result,) = prepare(settings)

    assert "lacks cRLSign" in result.error
    app = build_application(settings, watch=False)
    assert ocsp_query(app, ca.certificate, revoked).certificate_status is OCSPCertStatus.REVOKED


def test_start_up_warns_about_what_the_ca_certificate_leaves_unsaid(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = OpenSslCa(tmp_path / "ca", ca_extensions="", crl_extensions="")
    ca.index_path.write_text("R\t300101000000Z\t250101000000Z\t1A2B\tunknown\t/CN=leaf\n")
    crl = tmp_path / "ca.crl"
    crl.write_bytes(ca.gencrl())
    settings = load_config(_config(tmp_path, ca, f'crl = "{crl}"'))

    with caplog.at_level(logging.WARNING, logger="certstatus.config"):
        (result,) = prepare(settings)

    assert result.error is None and result.entries == 1
    warnings = [record.getMessage() for record in caplog.records if record.name == "certstatus.config"]
    assert len(warnings) == 2 and all(str(ca.cert_path) in warning for warning in warnings)
    app = build_application(settings, watch=False)
    assert ocsp_query(app, ca.certificate, 0x1A2B).certificate_status is OCSPCertStatus.REVOKED
