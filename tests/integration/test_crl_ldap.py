"""CRLs fetched from a real OpenLDAP slapd started by the tests (certificateRevocationList;binary)."""

from __future__ import annotations

import threading

import pytest
from cryptography import x509

from certstatus.clock import ManualClock
from certstatus.demo_pki import DemoPki
from certstatus.errors import SourceError
from certstatus.sources.fetch import FetchPolicy, fetch
from certstatus.sources.importer import import_crls
from certstatus.store.sqlite import SQLiteStore
from tests.servers import free_port
from tests.slapd import Slapd, crl_entry
from tests.sources_helpers import T0, crl_der, revoked, target
from tests.trickle_proxy import TrickleProxy

pytestmark = pytest.mark.integration
POLICY = FetchPolicy(timeout=2.0, retries=0)


@pytest.fixture(scope="module")
def ldap(demo_pki: DemoPki, tmp_path_factory):
    base = crl_der(demo_pki, [revoked(1, x509.ReasonFlags.certificate_hold), revoked(2)], number=30)
    delta = crl_der(demo_pki, [revoked(1, x509.ReasonFlags.remove_from_crl)], number=31, delta_base=30)
    entries = "\n".join(
        [
            crl_entry("CA", base),
            crl_entry("Delta", delta, "deltaRevocationList;binary"),
            crl_entry("Empty", None),
            crl_entry("Garbage", b"\x30\x03\x02\x01\x01"),
            # An RFC 3296 referral to another server (nothing listens on port 1).
            "dn: cn=Moved,o=Test\nobjectClass: referral\nobjectClass: extensibleObject\ncn: Moved\n"
            "ref: ldap://127.0.0.1:1/cn=CA,o=Test\n",
        ]
    )
    with Slapd(tmp_path_factory.mktemp("slapd"), entries) as server:
        yield server


def test_ldap_url_yields_the_crl_bytes(ldap: Slapd, demo_pki: DemoPki) -> None:
    got = fetch(ldap.url("cn=CA,o=Test"), POLICY)
    assert x509.load_der_x509_crl(got.data).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 30


def test_base_from_ldap_and_delta_from_its_attribute_import_together(ldap: Slapd, demo_pki: DemoPki) -> None:
    store = SQLiteStore(":memory:")
    tgt = target(store, demo_pki, fetch_timeout=2.0, fetch_retries=0)
    origins = [ldap.url("cn=CA,o=Test"), ldap.url("cn=Delta,o=Test", "deltaRevocationList")]
    results = import_crls(store, tgt, origins, ManualClock(T0))
    assert [(r.kind, r.entries, r.error) for r in results] == [("crl", 2, None), ("delta", 1, None)]
    assert store.lookup(tgt.issuer_id, 1) is None  # hold released by the delta
    assert store.lookup(tgt.issuer_id, 2).revoked.reason is x509.ReasonFlags.key_compromise
    store.close()


def test_a_trickling_ldap_server_is_cut_off_at_the_deadline_of_the_whole_attempt(ldap: Slapd) -> None:
    """slapd's answers reach ldap3 one byte a second: each read is short, the attempt still ends at fetch_timeout."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(fetch(f"ldap://127.0.0.1:{proxy.port}/cn=CA,o=Test", POLICY))
        except SourceError as exc:
            outcome.append(exc)

    with TrickleProxy(("127.0.0.1", ldap.port), seconds_per_byte=1.0) as proxy:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(60)  # a bound for a fetch that never ends, not a speed check
        assert not thread.is_alive(), "the fetch was still running after 60 s"
    assert isinstance(outcome[0], SourceError) and "timed out after 2 s" in outcome[0].problem, outcome


def test_a_referral_to_another_server_is_not_followed_and_says_where_it_leads(ldap: Slapd) -> None:
    with pytest.raises(SourceError, match=r"refers to ldap://127\.0\.0\.1:1/cn=CA,o=Test.*referrals are not followed"):
        fetch(ldap.url("cn=Moved,o=Test"), POLICY)


def test_entry_without_the_attribute_is_a_clear_error(ldap: Slapd) -> None:
    with pytest.raises(SourceError, match="has no certificateRevocationList;binary attribute"):
        fetch(ldap.url("cn=Empty,o=Test"), POLICY)


def test_missing_entry_is_a_clear_error(ldap: Slapd) -> None:
    with pytest.raises(SourceError, match="LDAP entry not found"):
        fetch(ldap.url("cn=Nobody,o=Test"), POLICY)


def test_bad_ldap_data_keeps_the_imported_crl_serving(ldap: Slapd, demo_pki: DemoPki) -> None:
    store = SQLiteStore(":memory:")
    tgt = target(store, demo_pki, fetch_timeout=2.0, fetch_retries=0)
    import_crls(store, tgt, [ldap.url("cn=CA,o=Test")], ManualClock(T0))
    before = store.source_states(tgt.issuer_id)
    for dn, message in (("cn=Empty,o=Test", "no certificateRevocationList"), ("cn=Garbage,o=Test", "not a readable CRL")):
        result = import_crls(store, tgt, [ldap.url(dn)], ManualClock(T0))[0]
        assert message in result.error
    assert store.source_states(tgt.issuer_id) == before
    assert store.lookup(tgt.issuer_id, 2).revoked is not None
    store.close()


def test_unreachable_ldap_server_is_reported() -> None:
    port = free_port()
    with pytest.raises(SourceError, match="cannot bind to the LDAP server"):
        fetch(f"ldap://127.0.0.1:{port}/cn=CA,o=Test", FetchPolicy(timeout=1.0, retries=0))
