"""Status after expiry: ArchiveCutoff in every response, and expired certificates answered as before.

ETSI EN 319 411-2 §6.3.10 asks a CA to keep answering for certificates past their notAfter, and
RFC 6960 §4.4.4 lets the responder say since when it keeps that status (ArchiveCutoff, a
singleExtension). A CA with ``archive_cutoff`` answers an expired certificate of its index (an E
line) good, keeps a revoked certificate revoked when a later CRL drops it after expiry, and puts
ArchiveCutoff — producedAt − the retention period, or the CA certificate's notBefore — into every
SingleResponse it signs: live, several CertIDs, pre-signed.
"""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.x509 import ocsp

from certstatus.config import ConfigError
from certstatus.config import ca_settings as parse_ca_settings
from certstatus.model import RevokedEntry
from certstatus.protocol.extensions import ARCHIVE_CUTOFF
from certstatus.sources.importer import CaTarget, import_crl_data
from tests.precomputed_helpers import certificate, copy_pki, multi_request_der, parse, request_der
from tests.sources_helpers import crl_der
from tests.unit.test_modes import Responder

SEVEN_YEARS = 7 * 365 * 86400


def archive_cutoff_of(response: ocsp.OCSPResponse) -> dt.datetime | None:
    """The ArchiveCutoff singleExtension of the (first) SingleResponse, read with cryptography and asn1crypto."""
    for extension in response.single_extensions:
        if extension.oid.dotted_string == ARCHIVE_CUTOFF:
            assert not extension.critical
            return core.GeneralizedTime.load(extension.value.value).native
    return None


def _every_archive_cutoff(der: bytes) -> list[dt.datetime | None]:
    """The ArchiveCutoff of each SingleResponse (asn1crypto: cryptography reads the singleExtensions of one only)."""
    basic = asn1_ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed
    return [
        next((e["extn_value"].parsed.native for e in single["single_extensions"] if e["extn_id"].dotted == ARCHIVE_CUTOFF), None)
        for single in basic["tbs_response_data"]["responses"]
    ]


@pytest.fixture
def expiring(demo_pki, tmp_path):
    made = []

    def make(mode: str, archive_cutoff) -> Responder:
        folder = tmp_path / f"r{len(made)}"
        folder.mkdir()
        made.append(Responder(copy_pki(demo_pki, folder / "pki"), folder, mode, archive_cutoff=archive_cutoff))
        return made[-1]

    yield make
    for item in made:
        item.close()


def _import_crl(responder: Responder, entries, number: int) -> None:
    served = responder.app.registry.cas[0]
    this_update = responder.clock.now() - dt.timedelta(minutes=1)
    data = crl_der(responder.pki, entries, number=number, this_update=this_update, hours=24 * 7)
    result = import_crl_data(responder.store, CaTarget(served.settings, served.issuer_id, served.certificate),
                             data, "crl.pem", responder.clock)  # fmt: skip
    assert result.error is None
    responder.app.pipeline.guard.invalidate(served.issuer_id)


def test_an_expired_certificate_is_answered_with_the_archive_cutoff_of_the_ca_not_before(expiring):
    live = expiring("live", "ca-not-before")
    ca_not_before = certificate(live.pki.ca_cert).not_valid_before_utc
    expired = parse(live.ask(request_der(live.pki, "expired")).der)  # an E line of index.txt: issued, expired
    assert certificate(live.pki.leaves["expired"]).not_valid_after_utc < live.clock.now()
    assert expired.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert archive_cutoff_of(expired) == ca_not_before
    several = live.ask(multi_request_der(*(request_der(live.pki, n) for n in ("good", "revoked-superseded")))).der
    assert _every_archive_cutoff(several) == [ca_not_before, ca_not_before]
    revoked = parse(live.ask(request_der(live.pki, "revoked-keycompromise")).der)
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED and archive_cutoff_of(revoked) == ca_not_before


def test_a_revocation_dropped_by_a_later_crl_after_expiry_stays_revoked(expiring):
    """The CA revokes the expired certificate, then drops it from its next CRL (RFC 5280 §3.3 allows
    that once it expired): still revoked. good2 is dropped while valid (the CA released it): good."""
    live = expiring("live", SEVEN_YEARS)
    expired, good2 = live.pki.serials["expired"], live.pki.serials["good2"]
    when = live.clock.now() - dt.timedelta(hours=2)
    _import_crl(live, [RevokedEntry(expired, when, x509.ReasonFlags.key_compromise),
                       RevokedEntry(good2, when, x509.ReasonFlags.superseded)], number=2)  # fmt: skip
    assert parse(live.ask(request_der(live.pki, "expired")).der).certificate_status is ocsp.OCSPCertStatus.REVOKED
    _import_crl(live, [], number=3)
    answer = parse(live.ask(request_der(live.pki, "expired")).der)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert (answer.revocation_time_utc, answer.revocation_reason) == (when, x509.ReasonFlags.key_compromise)
    assert archive_cutoff_of(answer) == live.clock.now() - dt.timedelta(seconds=SEVEN_YEARS)
    assert parse(live.ask(request_der(live.pki, "good2")).der).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_without_archive_cutoff_the_crl_is_followed_and_no_extension_is_added(expiring):
    live = expiring("live", None)
    expired = live.pki.serials["expired"]
    _import_crl(live, [RevokedEntry(expired, live.clock.now() - dt.timedelta(hours=2))], number=2)
    _import_crl(live, [], number=3)
    answer = parse(live.ask(request_der(live.pki, "expired")).der)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD and archive_cutoff_of(answer) is None


def test_pre_signed_responses_carry_the_archive_cutoff_of_their_signing_time(expiring):
    pre = expiring("precomputed", SEVEN_YEARS)
    pre.generate()
    for name in ("good", "expired", "revoked-keycompromise"):
        got = pre.ask(request_der(pre.pki, name, algorithm="sha256"))
        assert got.source == "precomputed"
        response = parse(got.der)
        assert archive_cutoff_of(response) == response.produced_at_utc - dt.timedelta(seconds=SEVEN_YEARS)


@pytest.mark.parametrize(
    "value, expected",
    [("ca-not-before", "ca-not-before"), ("7y", SEVEN_YEARS), ("3650d", 3650 * 86400), (86400, 86400), (" 12h ", 43200)],
)
def test_archive_cutoff_settings(tmp_path, value, expected):
    table = {"certificate": "ca.pem", "signer_certificate": "o.pem", "signer_key": "o.key", "crl": ["c.crl"]}
    assert parse_ca_settings("ca1", {**table, "archive_cutoff": value}, where="t.toml", base=tmp_path).archive_cutoff == expected


@pytest.mark.parametrize("value", ["forever", "0d", -5, True, "7 years"])
def test_a_bad_archive_cutoff_names_the_key_and_the_fix(tmp_path, value):
    table = {"certificate": "ca.pem", "signer_certificate": "o.pem", "signer_key": "o.key", "crl": ["c.crl"]}
    with pytest.raises(ConfigError, match="retention period") as error:
        parse_ca_settings("ca1", {**table, "archive_cutoff": value}, where="t.toml", base=tmp_path)
    assert error.value.key == "ca.ca1.archive_cutoff" and "ca-not-before" in error.value.fix
