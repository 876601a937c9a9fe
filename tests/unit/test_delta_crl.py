"""Complete + delta CRLs (RFC 5280 §5.2.4) through the importer into the store's CRL view."""

from __future__ import annotations

import pytest
from cryptography import x509

from certstatus.clock import ManualClock
from certstatus.demo_pki import DemoPki, new_key
from certstatus.errors import SourceError
from certstatus.sources.importer import import_crl_data
from certstatus.store.sqlite import SQLiteStore
from tests.sources_helpers import T0, crl_der, revoked, target

HOLD, KEY = x509.ReasonFlags.certificate_hold, x509.ReasonFlags.key_compromise


@pytest.fixture()
def store():
    store = SQLiteStore(":memory:")
    yield store
    store.close()


def _reason(store, tgt, serial):
    record = store.lookup(tgt.issuer_id, serial)
    return None if record is None or record.revoked is None else record.revoked.reason


def test_delta_adds_revocations_and_releases_a_hold(store, demo_pki: DemoPki) -> None:
    tgt, clock = target(store, demo_pki), ManualClock(T0)
    base = crl_der(demo_pki, [revoked(1, HOLD), revoked(2, KEY), revoked(3, HOLD)], number=10)
    import_crl_data(store, tgt, base, "base", clock)
    delta = crl_der(
        demo_pki,
        [revoked(1, x509.ReasonFlags.remove_from_crl), revoked(3, KEY), revoked(4, x509.ReasonFlags.superseded)],
        number=11, delta_base=10, this_update=T0.replace(hour=13),
    )  # fmt: skip
    result = import_crl_data(store, tgt, delta, "delta", clock)

    assert (result.kind, result.entries, result.error) == ("delta", 3, None)
    assert store.lookup(tgt.issuer_id, 1) is None  # hold released by removeFromCRL
    assert _reason(store, tgt, 2) is KEY  # untouched base entry
    assert _reason(store, tgt, 3) is KEY  # hold made permanent by the delta
    assert _reason(store, tgt, 4) is x509.ReasonFlags.superseded  # new in the delta
    states = store.source_states(tgt.issuer_id)
    assert states["delta"].crl_number == 11 and states["crl"].crl_number == 10


def test_newer_delta_replaces_the_previous_delta(store, demo_pki: DemoPki) -> None:
    tgt, clock = target(store, demo_pki), ManualClock(T0)
    import_crl_data(store, tgt, crl_der(demo_pki, [revoked(1, HOLD)], number=10), "base", clock)
    import_crl_data(store, tgt, crl_der(demo_pki, [revoked(5)], number=11, delta_base=10), "d11", clock)
    later = T0.replace(hour=14)
    import_crl_data(
        store, tgt, crl_der(demo_pki, [revoked(1, x509.ReasonFlags.remove_from_crl)], number=12, delta_base=10, this_update=later), "d12", clock
    )
    # Delta CRLs are cumulative: #12 no longer lists 5, so 5 is not revoked any more.
    assert store.lookup(tgt.issuer_id, 5) is None
    assert store.lookup(tgt.issuer_id, 1) is None


def test_complete_crl_as_new_as_the_delta_drops_it(store, demo_pki: DemoPki) -> None:
    tgt, clock = target(store, demo_pki), ManualClock(T0)
    import_crl_data(store, tgt, crl_der(demo_pki, [revoked(1, HOLD)], number=10), "base", clock)
    import_crl_data(store, tgt, crl_der(demo_pki, [revoked(7)], number=11, delta_base=10), "d11", clock)
    # The next complete CRL (#12) no longer lists 1 nor 7 (7 expired off it, say): delta #11 is obsolete.
    import_crl_data(store, tgt, crl_der(demo_pki, [revoked(2)], number=12, this_update=T0.replace(hour=15)), "base12", clock)
    assert "delta" not in store.source_states(tgt.issuer_id)
    assert store.lookup(tgt.issuer_id, 7) is None
    assert _reason(store, tgt, 2) is KEY


def test_delta_without_its_base_is_refused_and_changes_nothing(store, demo_pki: DemoPki) -> None:
    tgt, clock = target(store, demo_pki), ManualClock(T0)
    with pytest.raises(SourceError, match="no complete CRL"):
        import_crl_data(store, tgt, crl_der(demo_pki, [revoked(9)], number=11, delta_base=10), "d", clock)
    import_crl_data(store, tgt, crl_der(demo_pki, [revoked(1)], number=8), "base", clock)
    with pytest.raises(SourceError, match="based on CRL 10 but the imported complete CRL is 8"):
        import_crl_data(store, tgt, crl_der(demo_pki, [revoked(9)], number=11, delta_base=10), "d", clock)
    assert store.lookup(tgt.issuer_id, 9) is None
    assert _reason(store, tgt, 1) is KEY


def test_delta_older_than_the_imported_delta_is_refused(store, demo_pki: DemoPki) -> None:
    tgt, clock = target(store, demo_pki), ManualClock(T0)
    import_crl_data(store, tgt, crl_der(demo_pki, [], number=10), "base", clock)
    import_crl_data(store, tgt, crl_der(demo_pki, [revoked(3)], number=12, delta_base=10), "d12", clock)
    with pytest.raises(SourceError, match="cRLNumber 11 is older than the imported 12"):
        import_crl_data(store, tgt, crl_der(demo_pki, [], number=11, delta_base=10), "d11", clock)
    assert _reason(store, tgt, 3) is KEY


def test_delta_superseded_by_the_complete_crl_is_skipped_not_applied(store, demo_pki: DemoPki) -> None:
    tgt, clock = target(store, demo_pki), ManualClock(T0)
    import_crl_data(store, tgt, crl_der(demo_pki, [], number=12), "base", clock)
    result = import_crl_data(store, tgt, crl_der(demo_pki, [revoked(3)], number=11, delta_base=10), "d11", clock)
    assert result.unchanged and "superseded" in result.note
    assert store.lookup(tgt.issuer_id, 3) is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda pki: crl_der(pki, [revoked(1)], number=9), "cRLNumber 9 is older than the imported 10"),
        (lambda pki: crl_der(pki, [revoked(1)], number=10, this_update=T0.replace(hour=11)), "thisUpdate is older"),
        (lambda pki: crl_der(pki, [revoked(1)], number=11, key=new_key("ec")), "signature does not verify"),
        (lambda pki: crl_der(pki, [revoked(1)], number=11)[:-40], "not a readable CRL"),
    ],
    ids=["lower-number", "older-thisUpdate", "mis-signed", "truncated"],
)
def test_refused_complete_crl_keeps_the_imported_one_serving(store, demo_pki: DemoPki, make, message) -> None:
    tgt, clock = target(store, demo_pki), ManualClock(T0)
    import_crl_data(store, tgt, crl_der(demo_pki, [revoked(5)], number=10), "base", clock)
    before = store.source_states(tgt.issuer_id)
    with pytest.raises(SourceError, match=message):
        import_crl_data(store, tgt, make(demo_pki), "bad", clock)
    assert store.source_states(tgt.issuer_id) == before
    assert _reason(store, tgt, 5) is KEY and store.lookup(tgt.issuer_id, 1) is None


def test_same_crl_again_is_unchanged_and_not_rewritten(store, demo_pki: DemoPki) -> None:
    tgt, clock = target(store, demo_pki), ManualClock(T0)
    der = crl_der(demo_pki, [revoked(5)], number=10)
    import_crl_data(store, tgt, der, "base", clock)
    clock.advance(600)
    result = import_crl_data(store, tgt, der, "base", clock)
    assert result.unchanged
    assert store.source_states(tgt.issuer_id)["crl"].imported_at == T0
