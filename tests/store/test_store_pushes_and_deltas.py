"""StatusStore methods added for sources: apply_changes (pushes), drop_kinds, the base + delta CRL view.

Written against the StatusStore protocol through the ``store`` fixture of
tests/store/conftest.py: every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from certstatus.clock import UTC
from certstatus.model import RevokedEntry
from certstatus.store.base import ChangeCount, SourceState, StatusChange, combine_revocations

T = dt.datetime(2030, 1, 1, tzinfo=UTC)
HOLD, KEY, REMOVE = x509.ReasonFlags.certificate_hold, x509.ReasonFlags.key_compromise, x509.ReasonFlags.remove_from_crl


def _state(kind: str, number: int | None = None) -> SourceState:
    return SourceState(kind=kind, origin=kind, imported_at=T, entries=0, crl_number=number)


def test_combine_revocations_applies_the_delta_then_takes_the_earliest() -> None:
    early, late = T - dt.timedelta(days=2), T - dt.timedelta(days=1)
    assert combine_revocations(1, [("crl", late, HOLD, None), ("delta", late, REMOVE, None)]) is None
    assert combine_revocations(1, [("crl", late, HOLD, None), ("delta", late, KEY, None)]).reason is KEY
    rows = [("crl", late, HOLD, None), ("delta", late, REMOVE, None), ("push", early, KEY, None)]
    assert combine_revocations(1, rows) == RevokedEntry(1, early, KEY)
    assert combine_revocations(1, [("index", late, KEY, None), ("crl", early, HOLD, None)]).revocation_time == early
    assert combine_revocations(1, []) is None


def test_apply_changes_revokes_unrevokes_and_issues_in_one_transaction(store) -> None:
    issuer = store.register_issuer("ca", b"cert")
    store.apply_changes(
        issuer,
        [StatusChange("revoke", 5, T, KEY, T - dt.timedelta(hours=1)), StatusChange("issue", 6), StatusChange("issue", 6)],
        at=T,
    )
    assert store.lookup(issuer, 5).revoked == RevokedEntry(5, T, KEY, T - dt.timedelta(hours=1))
    assert store.lookup(issuer, 6).issued and store.lookup(issuer, 6).revoked is None
    assert store.source_states(issuer)["push"] == SourceState("push", "push", T, 3)
    store.apply_changes(issuer, [StatusChange("unrevoke", 5)], at=T + dt.timedelta(seconds=1))
    assert store.lookup(issuer, 5) is None


def test_a_push_that_changes_no_row_leaves_the_change_counter_alone(store) -> None:
    issuer = store.register_issuer("ca", b"ca")
    revoke = StatusChange("revoke", 5, T, KEY)
    assert store.apply_changes(issuer, [], at=T) == ChangeCount(0, 1)  # the first push: the CA has data
    assert store.apply_changes(issuer, [revoke, StatusChange("issue", 5)], at=T) == ChangeCount(2, 0)
    counter = store.change_counters()[issuer]
    same = [revoke, StatusChange("issue", 5), StatusChange("unrevoke", 6)]  # pushed again; 6 was never revoked
    assert store.apply_changes(issuer, same, at=T + dt.timedelta(hours=1)) == ChangeCount(0, 0)
    assert store.change_counters()[issuer] == counter
    assert store.source_states(issuer)["push"].imported_at == T + dt.timedelta(hours=1)
    later = StatusChange("revoke", 5, T, HOLD)  # the same serial, another reason
    assert store.apply_changes(issuer, [later], at=T) == ChangeCount(1, 0)
    assert store.change_counters()[issuer] == counter + 1
    assert store.lookup(issuer, 5).revoked == RevokedEntry(5, T, HOLD)


def test_apply_changes_with_a_bad_action_writes_nothing(store) -> None:
    issuer = store.register_issuer("ca", b"cert")
    with pytest.raises(ValueError, match="unknown change action"):
        store.apply_changes(issuer, [StatusChange("revoke", 5, T), StatusChange("explode", 6)], at=T)
    assert store.lookup(issuer, 5) is None and store.source_states(issuer) == {}


def test_unrevoke_leaves_revocations_of_other_sources(store) -> None:
    issuer = store.register_issuer("ca", b"cert")
    store.replace_source(issuer, _state("crl", 1), revoked=[RevokedEntry(5, T, HOLD)])
    store.apply_changes(issuer, [StatusChange("unrevoke", 5)], at=T)
    assert store.lookup(issuer, 5).revoked.reason is HOLD


def test_revocations_name_every_source_that_revokes_a_serial_in_the_crl_view(store) -> None:
    issuer = store.register_issuer("ca", b"cert")
    early = T - dt.timedelta(days=1)
    store.replace_source(issuer, _state("crl", 1), revoked=[RevokedEntry(5, T, HOLD), RevokedEntry(6, T, HOLD)])
    store.replace_source(issuer, _state("delta", 2), revoked=[RevokedEntry(6, T, REMOVE)])  # a released hold
    store.apply_changes(issuer, [StatusChange("revoke", 5, early, KEY, early), StatusChange("issue", 7)], at=T)
    assert store.revocations(issuer, 5) == {"crl": RevokedEntry(5, T, HOLD), "push": RevokedEntry(5, early, KEY, early)}
    assert store.revocations(issuer, 6) == {}  # the delta CRL removed it from the CRL view
    assert store.revocations(issuer, 7) == {} and store.revocations(issuer, 8) == {}
    store.apply_changes(issuer, [StatusChange("unrevoke", 5)], at=T)
    assert store.revocations(issuer, 5) == {"crl": RevokedEntry(5, T, HOLD)}


def test_replace_source_drops_other_kinds_in_the_same_transaction(store) -> None:
    issuer = store.register_issuer("ca", b"cert")
    store.replace_source(issuer, _state("crl", 1), revoked=[RevokedEntry(5, T, HOLD)])
    store.replace_source(issuer, _state("delta", 2), revoked=[RevokedEntry(5, T, REMOVE), RevokedEntry(6, T, KEY)])
    assert store.lookup(issuer, 5) is None and store.lookup(issuer, 6).revoked.reason is KEY
    store.replace_source(issuer, _state("crl", 3), revoked=[RevokedEntry(7, T, KEY)], drop_kinds=("delta",))
    assert set(store.source_states(issuer)) == {"crl"}
    assert store.lookup(issuer, 6) is None and store.lookup(issuer, 7).revoked.reason is KEY
