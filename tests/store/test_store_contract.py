"""The StatusStore contract, run against SQLite and PostgreSQL alike (tests/store/conftest.py).

Rows are keyed on (issuer, serial); each import replaces one source of one
issuer in one transaction; readers see the previous rows until it commits;
a failed import leaves them serving.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from cryptography import x509

from certstatus.clock import UTC
from certstatus.sources.records import RevokedEntry
from certstatus.store.base import REASON_CODES, CertStatusRecord, SourceState, StatusStore
from certstatus.store.factory import open_store

T0 = dt.datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


def _state(kind: str = "crl", *, entries: int = 0, crl_number: int | None = None, at: dt.datetime = T0) -> SourceState:
    if kind == "crl":
        return SourceState(kind, f"/data/{kind}", at, entries, at, at + dt.timedelta(days=1), crl_number)
    return SourceState(kind, f"/data/{kind}", at, entries)


def _revoked(serial: int, hours_ago: int = 1, reason=x509.ReasonFlags.key_compromise, invalidity=None) -> RevokedEntry:
    return RevokedEntry(serial, T0 - dt.timedelta(hours=hours_ago), reason, invalidity)


def test_unknown_issuer_or_serial_has_no_record(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    assert store.lookup(issuer, 1) is None
    assert store.lookup(issuer + 1000, 1) is None
    assert store.source_states(issuer) == {}


def test_register_issuer_is_idempotent_and_names_are_distinct(store: StatusStore) -> None:
    first = store.register_issuer("ca", b"cert-a")
    assert store.register_issuer("ca", b"cert-a") == first
    assert store.register_issuer("other", b"cert-b") != first


def test_revoked_entry_round_trips_time_reason_and_invalidity_date(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    entry = _revoked(7, invalidity=T0 - dt.timedelta(days=3))
    store.replace_source(issuer, _state(entries=1), revoked=[entry])
    record = store.lookup(issuer, 7)
    assert record == CertStatusRecord(issued=False, revoked=entry)
    assert record.revoked.revocation_time.tzinfo is not None
    assert record.revoked.revocation_time.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("reason", [None, *REASON_CODES])
def test_every_reason_code_round_trips(store: StatusStore, reason) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(issuer, _state(entries=1), revoked=[_revoked(5, reason=reason)])
    assert store.lookup(issuer, 5).revoked.reason is reason


@pytest.mark.parametrize("serial", [0, 1, 127, 128, 255, 256, -1, -129, 2**159 - 1, 2**159 + 12345, -(2**159)])
def test_serials_of_every_size_and_sign_have_their_own_key(store: StatusStore, serial: int) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(issuer, _state("issued", entries=1), issued=[serial])
    assert store.lookup(issuer, serial) == CertStatusRecord(issued=True, revoked=None)
    assert store.lookup(issuer, serial + 1) is None
    assert store.lookup(issuer, -serial - 1) is None


def test_rows_are_keyed_on_issuer_and_serial(store: StatusStore) -> None:
    a = store.register_issuer("ca-a", b"cert-a")
    b = store.register_issuer("ca-b", b"cert-b")
    store.replace_source(a, _state(entries=1), revoked=[_revoked(42)])
    store.replace_source(b, _state("index", entries=1), issued=[42])
    assert store.lookup(a, 42) == CertStatusRecord(issued=False, revoked=_revoked(42))
    assert store.lookup(b, 42) == CertStatusRecord(issued=True, revoked=None)


def test_index_rows_carry_issued_and_revoked(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(issuer, _state("index", entries=3), issued=[1, 2, 3], revoked=[_revoked(2)])
    assert store.lookup(issuer, 1) == CertStatusRecord(issued=True, revoked=None)
    assert store.lookup(issuer, 2) == CertStatusRecord(issued=True, revoked=_revoked(2))
    assert store.lookup(issuer, 4) is None


def test_replace_source_replaces_only_that_source(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(issuer, _state(entries=2), revoked=[_revoked(1), _revoked(2)])
    store.replace_source(issuer, _state("issued", entries=2), issued=[1, 3])
    store.replace_source(issuer, _state(entries=1, at=T0 + dt.timedelta(hours=1)), revoked=[_revoked(3)])
    assert store.lookup(issuer, 1) == CertStatusRecord(issued=True, revoked=None)
    assert store.lookup(issuer, 2) is None
    assert store.lookup(issuer, 3) == CertStatusRecord(issued=True, revoked=_revoked(3))
    assert set(store.source_states(issuer)) == {"crl", "issued"}


def test_earliest_revocation_of_all_sources_wins(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(issuer, _state(entries=1), revoked=[_revoked(9, hours_ago=1)])
    store.replace_source(
        issuer, _state("index", entries=1), issued=[9], revoked=[_revoked(9, hours_ago=5, reason=x509.ReasonFlags.superseded)]
    )
    assert store.lookup(issuer, 9) == CertStatusRecord(
        issued=True, revoked=_revoked(9, hours_ago=5, reason=x509.ReasonFlags.superseded)
    )


def test_duplicates_in_one_import_keep_one_row_and_the_last_revocation(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(
        issuer,
        _state("index", entries=3),
        issued=[5, 5, 6],
        revoked=[_revoked(5, hours_ago=2), _revoked(5, hours_ago=3, reason=x509.ReasonFlags.superseded)],
    )
    assert store.lookup(issuer, 5) == CertStatusRecord(
        issued=True, revoked=_revoked(5, hours_ago=3, reason=x509.ReasonFlags.superseded)
    )
    assert store.lookup(issuer, 6) == CertStatusRecord(issued=True, revoked=None)


def test_source_states_round_trip_with_a_160_bit_crl_number(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    crl = _state(entries=0, crl_number=2**159 + 7)
    index = _state("index", entries=2)
    store.replace_source(issuer, crl)
    store.replace_source(issuer, index, issued=[1, 2])
    assert store.source_states(issuer) == {"crl": crl, "index": index}


def test_failed_import_leaves_previous_rows_and_state_serving(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    state = _state(entries=1, crl_number=1)
    store.replace_source(issuer, state, revoked=[_revoked(1)])

    def broken() -> Iterator[RevokedEntry]:
        yield _revoked(2)
        raise ValueError("parser failed half-way")

    with pytest.raises(ValueError):
        store.replace_source(issuer, _state(entries=1, crl_number=2), revoked=broken())
    assert store.lookup(issuer, 1) == CertStatusRecord(issued=False, revoked=_revoked(1))
    assert store.lookup(issuer, 2) is None
    assert store.source_states(issuer) == {"crl": state}
    # And the store still takes the next import.
    store.replace_source(issuer, _state(entries=1, crl_number=3), revoked=[_revoked(3)])
    assert store.lookup(issuer, 3) is not None


def test_readers_see_previous_rows_until_the_import_commits(store: StatusStore, database) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(issuer, _state(entries=1), revoked=[_revoked(1)])
    seen_during_import = []
    reader = open_store(database)
    try:

        def entries() -> Iterator[RevokedEntry]:
            yield _revoked(2)
            seen_during_import.append((reader.lookup(issuer, 1), reader.lookup(issuer, 2)))

        store.replace_source(issuer, _state(entries=1), revoked=entries())
        assert seen_during_import == [(CertStatusRecord(issued=False, revoked=_revoked(1)), None)]
        assert reader.lookup(issuer, 1) is None
        assert reader.lookup(issuer, 2) == CertStatusRecord(issued=False, revoked=_revoked(2))
    finally:
        reader.close()


def test_new_certificate_for_a_name_drops_the_old_keys_rows(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(issuer, _state(entries=1), revoked=[_revoked(1)])
    assert store.register_issuer("ca", b"cert-a-rekeyed") == issuer
    assert store.lookup(issuer, 1) is None
    assert store.source_states(issuer) == {}


def test_every_write_grows_the_issuers_change_counter(store: StatusStore) -> None:
    a = store.register_issuer("ca-a", b"cert-a")
    b = store.register_issuer("ca-b", b"cert-b")
    before = store.change_counters()
    store.replace_source(a, _state(entries=0))
    middle = store.change_counters()
    assert middle[a] > before[a] and middle[b] == before[b]
    store.register_issuer("ca-b", b"cert-b-rekeyed")
    after = store.change_counters()
    assert after[a] == middle[a] and after[b] > middle[b]


def test_store_reports_the_current_schema_version(store: StatusStore) -> None:
    from certstatus.store import migrations

    assert store.schema_version() == migrations.latest_version(store.backend) >= 2
    assert store.upgrade() == []
