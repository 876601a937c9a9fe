"""The StatusStore contract, run against SQLite and PostgreSQL alike (tests/store/conftest.py).

Rows are keyed on (issuer, serial); each import replaces one source of one
issuer in one transaction; readers see the previous rows until it commits;
a failed import leaves them serving. SQLite-only behaviour (WAL, ``:memory:``)
and serial_key stay in tests/unit/test_store_sqlite.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certstatus.clock import UTC
from certstatus.sources.records import IssuedCertificate, RevokedEntry
from certstatus.store.base import REASON_CODES, CertStatusRecord, ChangeCount, SourceState, StatusStore
from certstatus.store.factory import open_store

T0 = dt.datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)


def _state(kind: str, entries: int = 0, **times) -> SourceState:
    return SourceState(kind=kind, origin=f"/data/{kind}", imported_at=T0, entries=entries, **times)


def _revoked(serial: int, hours_ago: int = 1, reason=x509.ReasonFlags.key_compromise, invalidity=None) -> RevokedEntry:
    return RevokedEntry(serial, T0 - dt.timedelta(hours=hours_ago), reason, invalidity)


@pytest.fixture
def issuers(store: StatusStore) -> tuple[int, int]:
    return store.register_issuer("ca-one", b"cert one"), store.register_issuer("ca-two", b"cert two")


# --- issuers -----------------------------------------------------------------------------------


def test_register_issuer_returns_a_stable_id_per_name(store: StatusStore) -> None:
    first = store.register_issuer("ca-one", b"cert")
    second = store.register_issuer("ca-two", b"cert")

    assert first != second
    assert store.register_issuer("ca-one", b"cert") == first


def test_register_issuer_with_a_changed_certificate_clears_its_rows(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, two = issuers
    for issuer in issuers:
        store.replace_source(issuer, _state("index", 1), issued=[10], revoked=[RevokedEntry(11, T0)])

    again = store.register_issuer("ca-one", b"cert one, renewed key")

    assert again == one
    assert store.lookup(one, 10) is None and store.lookup(one, 11) is None
    assert store.source_states(one) == {}
    # The other issuer keeps everything.
    assert store.lookup(two, 10) == CertStatusRecord(issued=True, revoked=None)
    assert set(store.source_states(two)) == {"index"}


# --- replace_source and lookup -----------------------------------------------------------------


def test_lookup_is_none_when_no_source_lists_the_serial(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    assert store.lookup(one, 1) is None
    store.replace_source(one, _state("issued", 1), issued=[1])
    assert store.lookup(one, 2) is None
    assert store.lookup(999, 1) is None


def test_lookup_reports_issued_and_revoked_with_reason_and_dates(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    entry = RevokedEntry(0x1234, T0 - HOUR, x509.ReasonFlags.key_compromise, T0 - 5 * HOUR)
    store.replace_source(one, _state("index", 2), issued=[0x1234, 0x5678], revoked=[entry])

    assert store.lookup(one, 0x1234) == CertStatusRecord(issued=True, revoked=entry)
    assert store.lookup(one, 0x5678) == CertStatusRecord(issued=True, revoked=None)


def test_revoked_only_in_a_crl_is_not_issued(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(5, T0)])

    record = store.lookup(one, 5)

    assert record is not None and record.issued is False and record.revoked == RevokedEntry(5, T0)


@pytest.mark.parametrize("reason", [None, *REASON_CODES])
def test_every_reason_round_trips(store: StatusStore, issuers: tuple[int, int], reason) -> None:
    one, _ = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(9, T0, reason)])
    record = store.lookup(one, 9)
    assert record is not None and record.revoked is not None and record.revoked.reason is reason


def test_replace_source_replaces_only_that_issuer_and_kind(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, two = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(1, T0)])
    store.replace_source(one, _state("index", 2), issued=[1, 2])
    store.replace_source(two, _state("crl", 1), revoked=[RevokedEntry(1, T0)])

    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(3, T0)])

    assert store.lookup(one, 1) == CertStatusRecord(issued=True, revoked=None)  # index row kept, CRL row gone
    assert store.lookup(one, 2) == CertStatusRecord(issued=True, revoked=None)
    assert store.lookup(one, 3) == CertStatusRecord(issued=False, revoked=RevokedEntry(3, T0))
    assert store.lookup(two, 1) == CertStatusRecord(issued=False, revoked=RevokedEntry(1, T0))


def test_replace_source_with_nothing_empties_that_source(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(1, T0)])
    store.replace_source(one, _state("crl", 0))
    assert store.lookup(one, 1) is None
    assert store.source_states(one)["crl"].entries == 0


def test_same_serial_under_two_issuers_is_kept_apart(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, two = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(42, T0, x509.ReasonFlags.superseded)])
    store.replace_source(two, _state("issued", 1), issued=[42])

    assert store.lookup(one, 42) == CertStatusRecord(False, RevokedEntry(42, T0, x509.ReasonFlags.superseded))
    assert store.lookup(two, 42) == CertStatusRecord(True, None)


def test_earliest_revocation_of_several_sources_wins(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    late = RevokedEntry(7, T0, x509.ReasonFlags.superseded)
    early = RevokedEntry(7, T0 - 3 * HOUR, x509.ReasonFlags.key_compromise, T0 - 9 * HOUR)
    store.replace_source(one, _state("crl", 1), revoked=[late])
    store.replace_source(one, _state("index", 1), issued=[7], revoked=[early])

    assert store.lookup(one, 7) == CertStatusRecord(issued=True, revoked=early)

    store.replace_source(one, _state("index", 1), issued=[7])
    assert store.lookup(one, 7) == CertStatusRecord(issued=True, revoked=late)


@pytest.mark.parametrize("serial", [0, 127, 128, 2**159, 2**160 - 1, -1, -129])
def test_extreme_serials_are_stored_and_found(store: StatusStore, issuers: tuple[int, int], serial: int) -> None:
    one, _ = issuers
    store.replace_source(one, _state("index", 1), issued=[serial], revoked=[RevokedEntry(serial, T0)])

    assert store.lookup(one, serial) == CertStatusRecord(issued=True, revoked=RevokedEntry(serial, T0))
    assert store.lookup(one, serial + 1) is None


def test_minus_one_and_255_never_meet(store: StatusStore, issuers: tuple[int, int]) -> None:
    """-1 (key ff) revoked by a CRL, 0 (00) and 255 (00ff) issued: each serial has its own rows."""
    one, _ = issuers
    store.replace_source(one, _state("crl", 1), revoked=[_revoked(-1)])
    store.replace_source(one, _state("issued", 3), issued=[-1, 0, 255])

    assert store.lookup(one, -1) == CertStatusRecord(issued=True, revoked=_revoked(-1))
    assert store.lookup(one, 0) == CertStatusRecord(issued=True, revoked=None)
    assert store.lookup(one, 255) == CertStatusRecord(issued=True, revoked=None)
    for never in (1, -255, 256):
        assert store.lookup(one, never) is None
    assert store.lookup_many(one, [255, -1, 1]) == {255: store.lookup(one, 255), -1: store.lookup(one, -1)}


def test_duplicate_serials_in_one_source_do_not_fail(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, _state("issued", 3), issued=[5, 5, 5])
    assert store.lookup(one, 5) == CertStatusRecord(True, None)


def test_failing_import_half_way_leaves_the_previous_rows(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, _state("index", 2), issued=[1, 2], revoked=[RevokedEntry(2, T0)])
    before = store.source_states(one)

    def serials() -> Iterator[int]:
        yield 100
        yield 101
        raise RuntimeError("the index file went away")

    with pytest.raises(RuntimeError, match="went away"):
        store.replace_source(one, SourceState("index", "/new", T0 + HOUR, 99), issued=serials(), revoked=[])

    assert store.lookup(one, 1) == CertStatusRecord(True, None)
    assert store.lookup(one, 2) == CertStatusRecord(True, RevokedEntry(2, T0))
    assert store.lookup(one, 100) is None
    assert store.source_states(one) == before
    # The connection is usable afterwards (no transaction left open).
    store.replace_source(one, _state("index", 1), issued=[3])
    assert store.lookup(one, 3) == CertStatusRecord(True, None)


def test_failing_revoked_iterable_rolls_back_too(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(1, T0)])

    def entries() -> Iterator[RevokedEntry]:
        yield RevokedEntry(50, T0)
        raise ValueError("bad CRL entry")

    with pytest.raises(ValueError):
        store.replace_source(one, _state("crl", 9), revoked=entries())

    assert store.lookup(one, 1) == CertStatusRecord(False, RevokedEntry(1, T0))
    assert store.lookup(one, 50) is None


# --- source_states -------------------------------------------------------------------------------


def test_source_states_round_trip_with_utc_datetimes(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, two = issuers
    crl = SourceState("crl", "/pki/ca.crl", T0, 4, T0 - HOUR, T0 + 24 * HOUR, 2**70)
    index = SourceState("index", "/pki/index.txt", T0 + HOUR, 12)
    store.replace_source(one, crl)
    store.replace_source(one, index)

    states = store.source_states(one)

    assert states == {"crl": crl, "index": index}
    for state in states.values():
        assert state.imported_at.tzinfo is not None and state.imported_at.utcoffset() == dt.timedelta(0)
    assert states["crl"].this_update.utcoffset() == dt.timedelta(0)
    assert store.source_states(two) == {}


def test_source_state_times_from_other_zones_come_back_as_the_same_instant(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    zone = dt.timezone(dt.timedelta(hours=-5))
    store.replace_source(one, SourceState("crl", "x", T0.astimezone(zone), 0, T0.astimezone(zone), None, None))

    state = store.source_states(one)["crl"]

    assert state.imported_at == T0 and state.imported_at.tzinfo == UTC
    assert (state.this_update, state.next_update, state.crl_number) == (T0, None, None)


def test_replacing_a_source_updates_its_state(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, SourceState("crl", "a", T0, 1, T0, T0 + HOUR, 1))
    newer = SourceState("crl", "a", T0 + HOUR, 2, T0 + HOUR, T0 + 2 * HOUR, 2)
    store.replace_source(one, newer)
    assert store.source_states(one) == {"crl": newer}


# --- several connections -------------------------------------------------------------------------


def test_two_connections_to_one_store_see_committed_data(store: StatusStore, database) -> None:
    reader = open_store(database)
    try:
        issuer = store.register_issuer("ca", b"cert")
        assert reader.lookup(issuer, 1) is None

        store.replace_source(issuer, _state("issued", 1), issued=[1])

        assert reader.lookup(issuer, 1) == CertStatusRecord(True, None)
        assert reader.source_states(issuer) == {"issued": _state("issued", 1)}
    finally:
        reader.close()


def test_data_survives_reopening_the_store(database: str | Path) -> None:
    first = open_store(database)
    issuer = first.register_issuer("ca", b"cert")
    first.replace_source(issuer, _state("crl", 1), revoked=[RevokedEntry(3, T0, x509.ReasonFlags.ca_compromise)])
    first.close()

    second = open_store(database)
    try:
        assert second.register_issuer("ca", b"cert") == issuer
        assert second.lookup(issuer, 3) == CertStatusRecord(False, RevokedEntry(3, T0, x509.ReasonFlags.ca_compromise))
    finally:
        second.close()


# --- isolation, duplicates, change counters, schema -----------------------------------------------


def test_duplicates_in_one_import_keep_one_row_and_the_last_revocation(store: StatusStore) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(
        issuer,
        _state("index", 3),
        issued=[5, 5, 6],
        revoked=[_revoked(5, hours_ago=2), _revoked(5, hours_ago=3, reason=x509.ReasonFlags.superseded)],
    )
    assert store.lookup(issuer, 5) == CertStatusRecord(
        issued=True, revoked=_revoked(5, hours_ago=3, reason=x509.ReasonFlags.superseded)
    )
    assert store.lookup(issuer, 6) == CertStatusRecord(issued=True, revoked=None)


def test_readers_see_previous_rows_until_the_import_commits(store: StatusStore, database) -> None:
    issuer = store.register_issuer("ca", b"cert-a")
    store.replace_source(issuer, _state("crl", 1), revoked=[_revoked(1)])
    seen_during_import = []
    reader = open_store(database)
    try:

        def entries() -> Iterator[RevokedEntry]:
            yield _revoked(2)
            seen_during_import.append((reader.lookup(issuer, 1), reader.lookup(issuer, 2)))

        store.replace_source(issuer, _state("crl", 1), revoked=entries())
        assert seen_during_import == [(CertStatusRecord(issued=False, revoked=_revoked(1)), None)]
        assert reader.lookup(issuer, 1) is None
        assert reader.lookup(issuer, 2) == CertStatusRecord(issued=False, revoked=_revoked(2))
    finally:
        reader.close()


def test_every_write_that_changes_an_issuer_grows_its_change_counter(store: StatusStore) -> None:
    a = store.register_issuer("ca-a", b"cert-a")
    b = store.register_issuer("ca-b", b"cert-b")
    before = store.change_counters()
    store.replace_source(a, _state("crl", 0))
    middle = store.change_counters()
    assert middle[a] > before[a] and middle[b] == before[b]
    store.register_issuer("ca-b", b"cert-b-rekeyed")
    after = store.change_counters()
    assert after[a] == middle[a] and after[b] > middle[b]


def test_reimporting_the_same_statuses_changes_nothing_but_the_source_state(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    entries = [_revoked(1), _revoked(2, reason=None), _revoked(3, invalidity=T0 - 9 * HOUR)]
    assert store.replace_source(one, _state("crl", 3, next_update=T0), revoked=entries) == ChangeCount(3, 1)
    assert store.replace_source(one, _state("index", 3), issued=[1, 2, 3], revoked=entries[:1]) == ChangeCount(4, 1)
    before = store.change_counters()
    # A CRL re-issued an hour later with the same entries (in another order), the same index file.
    later = SourceState("crl", "/data/crl", T0 + HOUR, 3, this_update=T0 + HOUR, next_update=T0 + 2 * HOUR, crl_number=2)
    unchanged = store.replace_source(one, later, revoked=entries[::-1])
    assert unchanged == ChangeCount(0, 0) and not unchanged
    assert not store.replace_source(one, _state("index", 3), issued=[3, 2, 1], revoked=entries[:1])
    assert store.change_counters() == before
    assert store.source_states(one)["crl"] == later  # readiness and the freshness guard see the new nextUpdate
    assert store.lookup(one, 2) == CertStatusRecord(issued=True, revoked=_revoked(2, reason=None))


def test_an_import_counts_the_rows_it_changed_and_grows_the_counter(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, two = issuers
    store.replace_source(one, _state("crl", 2), revoked=[_revoked(1), _revoked(2)])
    before = store.change_counters()
    assert store.replace_source(one, _state("crl", 3), revoked=[_revoked(1), _revoked(2), _revoked(3)]) == ChangeCount(1, 0)
    # A revocation whose reason changed: its old row deleted, its new row inserted.
    assert store.replace_source(one, _state("crl", 3), revoked=[_revoked(1), _revoked(2, reason=None), _revoked(3)]) == ChangeCount(2, 0)
    after = store.change_counters()
    assert after[one] == before[one] + 2 and after[two] == before[two]


def test_source_kinds_gained_or_dropped_are_changes_even_without_rows(store: StatusStore, issuers: tuple[int, int]) -> None:
    """The CA has data from its first import on (has_data), even an empty CRL; a dropped delta changes its view."""
    one, _ = issuers
    counter = store.change_counters()[one]
    assert store.replace_source(one, _state("crl", 0, crl_number=1)) == ChangeCount(0, 1)
    assert store.replace_source(one, _state("delta", 0, crl_number=2)) == ChangeCount(0, 1)
    assert store.replace_source(one, _state("crl", 0, crl_number=3), drop_kinds=["delta"]) == ChangeCount(0, 1)
    assert store.change_counters()[one] == counter + 3 and set(store.source_states(one)) == {"crl"}


def test_store_reports_the_current_schema_version(store: StatusStore) -> None:
    from certstatus.store import migrations

    assert store.schema_version() == migrations.latest_version(store.backend) >= 2
    assert store.upgrade() == []


def test_reimport_applies_changed_dropped_and_added_entries(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, two = issuers
    first = [_revoked(1), _revoked(2), _revoked(3, invalidity=T0 - 9 * HOUR)]
    store.replace_source(one, _state("crl", 3), revoked=first)
    store.replace_source(one, _state("issued", 2), issued=[1, 2])
    store.replace_source(two, _state("crl", 1), revoked=[_revoked(2)])

    second = [_revoked(1), _revoked(2, reason=x509.ReasonFlags.superseded), _revoked(3), _revoked(4, hours_ago=2)]
    store.replace_source(one, _state("crl", 4), revoked=second)
    store.replace_source(one, _state("issued", 2), issued=[2, 5])

    assert store.lookup(one, 1) == CertStatusRecord(False, _revoked(1))
    assert store.lookup(one, 2) == CertStatusRecord(True, _revoked(2, reason=x509.ReasonFlags.superseded))
    assert store.lookup(one, 3) == CertStatusRecord(False, _revoked(3))
    assert store.lookup(one, 4) == CertStatusRecord(False, _revoked(4, hours_ago=2))
    assert store.lookup(one, 5) == CertStatusRecord(True, None)
    assert store.lookup(two, 2) == CertStatusRecord(False, _revoked(2))


# --- status after expiry: revocations a later CRL drops --------------------------------------


def _crl(store, issuer, revoked, *, archive: bool, kind: str = "crl", drop=(), this_update=T0) -> None:
    store.replace_source(
        issuer, _state(kind, len(revoked), this_update=this_update, next_update=this_update + 24 * HOUR),
        revoked=revoked, drop_kinds=drop, archive_removed=archive,
    )


@pytest.mark.parametrize("archive", [True, False])
def test_a_revocation_a_later_crl_drops_is_kept_unless_the_certificate_is_still_valid(
    store: StatusStore, issuers: tuple[int, int], archive: bool
) -> None:
    """ETSI EN 319 411-2 §6.3.10: CAs drop expired certificates from their CRLs (RFC 5280 §3.3), and a
    CA with archive_cutoff keeps answering them revoked. Certificate 1 expired (index: notAfter
    before the new CRL), 2 is still valid (the CA released it: followed), 3's expiry is unknown
    (kept: revocation is final), 4 was on hold (a hold may be released: followed)."""
    one, _ = issuers
    store.replace_source(one, _state("index", 2), issued=[
        IssuedCertificate(1, T0 - 24 * HOUR), IssuedCertificate(2, T0 + 30 * 24 * HOUR),
    ])  # fmt: skip
    entries = [_revoked(1), _revoked(2), _revoked(3, reason=x509.ReasonFlags.superseded, invalidity=T0 - 9 * HOUR),
               _revoked(4, reason=x509.ReasonFlags.certificate_hold)]  # fmt: skip
    _crl(store, one, entries, archive=archive, this_update=T0 - 48 * HOUR)
    _crl(store, one, [], archive=archive)

    kept = {serial: store.lookup(one, serial) for serial in (1, 2, 3, 4)}
    if not archive:
        assert kept == {1: CertStatusRecord(True, None), 2: CertStatusRecord(True, None), 3: None, 4: None}
        return
    assert kept[1] == CertStatusRecord(issued=True, revoked=entries[0])
    assert kept[2] == CertStatusRecord(issued=True, revoked=None)
    assert kept[3] == CertStatusRecord(issued=False, revoked=entries[2])  # reason and invalidity date kept
    assert kept[4] is None
    assert set(store.source_states(one)) == {"index", "crl"}  # the archive is no source of its own
    _crl(store, one, [_revoked(7)], archive=True, this_update=T0 + HOUR)  # later CRLs leave it alone
    assert store.lookup(one, 1).revoked == entries[0] and store.lookup(one, 3).revoked == entries[2]


def test_revocations_of_a_dropped_delta_crl_are_kept_the_delta_row_first(store: StatusStore, issuers: tuple[int, int]) -> None:
    """A complete CRL that drops the delta CRL and lists no entry: every revocation of the CRL view is
    kept, the delta's row rather than the complete CRL's for a serial both listed. A delta's
    removeFromCRL (a released hold) is never kept, nor an entry a later delta drops while the complete
    CRL still lists it (11: its delta row is not kept, the complete CRL's is when that goes)."""
    one, _ = issuers
    base = [_revoked(5, hours_ago=10), _revoked(10, hours_ago=20, reason=x509.ReasonFlags.superseded), _revoked(11, hours_ago=2)]
    _crl(store, one, base, archive=True, this_update=T0 - 48 * HOUR)
    delta = [_revoked(10, hours_ago=4), _revoked(8, reason=x509.ReasonFlags.remove_from_crl), _revoked(9, hours_ago=3),
             _revoked(11, hours_ago=10)]  # fmt: skip
    _crl(store, one, delta, archive=True, kind="delta", this_update=T0 - 24 * HOUR)
    _crl(store, one, delta[:3], archive=True, kind="delta", this_update=T0 - 12 * HOUR)
    assert store.lookup(one, 11).revoked == base[2]
    _crl(store, one, [], archive=True, drop=("delta",))
    assert store.lookup(one, 5).revoked == base[0]
    assert store.lookup(one, 10).revoked == delta[0]
    assert store.lookup(one, 9).revoked == delta[2]
    assert store.lookup(one, 11).revoked == base[2]
    assert store.lookup(one, 8) is None


def test_a_changed_not_after_is_a_change_of_the_issued_row(store: StatusStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, _state("issued", 1), issued=[IssuedCertificate(1, T0)])
    assert not store.replace_source(one, _state("issued", 1), issued=[IssuedCertificate(1, T0)])
    assert store.replace_source(one, _state("issued", 1), issued=[IssuedCertificate(1, T0 + HOUR)])
    assert store.replace_source(one, _state("issued", 1), issued=[1])  # the list no longer tells it
    assert store.lookup(one, 1) == CertStatusRecord(issued=True, revoked=None)


def test_certificate_not_after_is_the_latest_an_issuing_source_gives(store: StatusStore, issuers: tuple[int, int]) -> None:
    """A final response needs the certificate's notAfter: from index.txt or an issued list of
    certificates, per issuer; the later one when two sources differ; None when only a CRL, a bare
    serial or a push knows the serial."""
    one, two = issuers
    store.replace_source(one, _state("index", 3), issued=[IssuedCertificate(1, T0), IssuedCertificate(2, T0), 3],
                         revoked=[_revoked(1)])  # fmt: skip
    store.replace_source(one, _state("issued", 1), issued=[IssuedCertificate(2, T0 + HOUR)])
    store.replace_source(one, _state("crl", 1, this_update=T0, next_update=T0 + HOUR), revoked=[_revoked(4)])
    store.replace_source(two, _state("index", 1), issued=[IssuedCertificate(1, T0 - HOUR)])
    assert store.certificate_not_after(one, 1) == T0
    assert store.certificate_not_after(one, 2) == T0 + HOUR
    assert store.certificate_not_after(one, 3) is None
    assert store.certificate_not_after(one, 4) is None
    assert store.certificate_not_after(one, 5) is None
    assert store.certificate_not_after(two, 1) == T0 - HOUR


def test_the_certificate_hash_of_an_issued_list_comes_back_from_every_lookup(store: StatusStore, issuers: tuple[int, int]) -> None:
    """CertHash: the hash an issued list of certificates gives is kept per (issuer, serial, source); a
    serial two sources list keeps the one that knows it; a new hash is a change."""
    one, two = issuers
    digest = bytes(range(32))
    store.replace_source(one, _state("issued", 2), issued=[IssuedCertificate(1, T0, digest), IssuedCertificate(2, T0)])
    store.replace_source(one, _state("index", 2), issued=[1, 3], revoked=[_revoked(1)])
    store.replace_source(two, _state("issued", 1), issued=[IssuedCertificate(1, T0, b"\xff" * 32)])
    assert store.lookup(one, 1) == CertStatusRecord(issued=True, revoked=_revoked(1), cert_hash=digest)
    assert store.lookup(one, 2) == CertStatusRecord(issued=True, revoked=None)
    assert store.lookup(one, 3) == CertStatusRecord(issued=True, revoked=None)
    assert store.lookup(two, 1).cert_hash == b"\xff" * 32
    many = store.lookup_many(one, [1, 2, 3, 4])
    assert many == {serial: store.lookup(one, serial) for serial in (1, 2, 3)}
    assert not store.replace_source(one, _state("issued", 2), issued=[IssuedCertificate(1, T0, digest), IssuedCertificate(2, T0)])
    assert store.replace_source(one, _state("issued", 2), issued=[IssuedCertificate(1, T0, b"\x01" * 32), IssuedCertificate(2, T0)])
    assert store.lookup(one, 1).cert_hash == b"\x01" * 32
