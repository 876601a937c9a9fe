"""SQLiteStore: rows keyed on (issuer, serial), one transaction per source, WAL readers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509

from certstatus.clock import UTC
from certstatus.sources.records import RevokedEntry
from certstatus.store.base import REASON_CODES, CertStatusRecord, SourceState, serial_key
from certstatus.store.sqlite import SQLiteStore

T0 = dt.datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)


def _state(kind: str, entries: int = 0, **times) -> SourceState:
    return SourceState(kind=kind, origin=f"/data/{kind}", imported_at=T0, entries=entries, **times)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    db = SQLiteStore(tmp_path / "status.sqlite3")
    yield db
    db.close()


@pytest.fixture
def issuers(store: SQLiteStore) -> tuple[int, int]:
    return store.register_issuer("ca-one", b"cert one"), store.register_issuer("ca-two", b"cert two")


# --- serial_key ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x00\x80"),
        (255, b"\x00\xff"),
        (256, b"\x01\x00"),
        (2**159, b"\x00\x80" + b"\x00" * 19),
        (2**160 - 1, b"\x00" + b"\xff" * 20),
        (-1, b"\xff"),
        (-129, b"\xff\x7f"),
        (-256, b"\xff\x00"),
    ],
)
def test_serial_key_is_the_der_integer_content(serial: int, expected: bytes) -> None:
    assert serial_key(serial) == expected
    assert serial_key(serial) == core.Integer(serial).contents


@pytest.mark.parametrize("serial", [-128, -32768])
def test_serial_key_of_negative_power_of_two_is_minimal(serial: int) -> None:
    assert serial_key(serial) == core.Integer(serial).contents


def test_serial_keys_of_distinct_serials_differ() -> None:
    serials = [0, 1, -1, 127, 128, -128, -129, 255, 256, 2**159, -(2**159), 2**64, -(2**64)]
    assert len({serial_key(s) for s in serials}) == len(serials)


# --- issuers -----------------------------------------------------------------------------------


def test_register_issuer_returns_a_stable_id_per_name(store: SQLiteStore) -> None:
    first = store.register_issuer("ca-one", b"cert")
    second = store.register_issuer("ca-two", b"cert")

    assert first != second
    assert store.register_issuer("ca-one", b"cert") == first


def test_register_issuer_with_a_changed_certificate_clears_its_rows(store: SQLiteStore, issuers: tuple[int, int]) -> None:
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


def test_lookup_is_none_when_no_source_lists_the_serial(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    assert store.lookup(one, 1) is None
    store.replace_source(one, _state("issued", 1), issued=[1])
    assert store.lookup(one, 2) is None
    assert store.lookup(999, 1) is None


def test_lookup_reports_issued_and_revoked_with_reason_and_dates(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    entry = RevokedEntry(0x1234, T0 - HOUR, x509.ReasonFlags.key_compromise, T0 - 5 * HOUR)
    store.replace_source(one, _state("index", 2), issued=[0x1234, 0x5678], revoked=[entry])

    assert store.lookup(one, 0x1234) == CertStatusRecord(issued=True, revoked=entry)
    assert store.lookup(one, 0x5678) == CertStatusRecord(issued=True, revoked=None)


def test_revoked_only_in_a_crl_is_not_issued(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(5, T0)])

    record = store.lookup(one, 5)

    assert record is not None and record.issued is False and record.revoked == RevokedEntry(5, T0)


@pytest.mark.parametrize("reason", [None, *REASON_CODES])
def test_every_reason_round_trips(store: SQLiteStore, issuers: tuple[int, int], reason) -> None:
    one, _ = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(9, T0, reason)])
    record = store.lookup(one, 9)
    assert record is not None and record.revoked is not None and record.revoked.reason is reason


def test_replace_source_replaces_only_that_issuer_and_kind(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, two = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(1, T0)])
    store.replace_source(one, _state("index", 2), issued=[1, 2])
    store.replace_source(two, _state("crl", 1), revoked=[RevokedEntry(1, T0)])

    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(3, T0)])

    assert store.lookup(one, 1) == CertStatusRecord(issued=True, revoked=None)  # index row kept, CRL row gone
    assert store.lookup(one, 2) == CertStatusRecord(issued=True, revoked=None)
    assert store.lookup(one, 3) == CertStatusRecord(issued=False, revoked=RevokedEntry(3, T0))
    assert store.lookup(two, 1) == CertStatusRecord(issued=False, revoked=RevokedEntry(1, T0))


def test_replace_source_with_nothing_empties_that_source(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(1, T0)])
    store.replace_source(one, _state("crl", 0))
    assert store.lookup(one, 1) is None
    assert store.source_states(one)["crl"].entries == 0


def test_same_serial_under_two_issuers_is_kept_apart(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, two = issuers
    store.replace_source(one, _state("crl", 1), revoked=[RevokedEntry(42, T0, x509.ReasonFlags.superseded)])
    store.replace_source(two, _state("issued", 1), issued=[42])

    assert store.lookup(one, 42) == CertStatusRecord(False, RevokedEntry(42, T0, x509.ReasonFlags.superseded))
    assert store.lookup(two, 42) == CertStatusRecord(True, None)


def test_earliest_revocation_of_several_sources_wins(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    late = RevokedEntry(7, T0, x509.ReasonFlags.superseded)
    early = RevokedEntry(7, T0 - 3 * HOUR, x509.ReasonFlags.key_compromise, T0 - 9 * HOUR)
    store.replace_source(one, _state("crl", 1), revoked=[late])
    store.replace_source(one, _state("index", 1), issued=[7], revoked=[early])

    assert store.lookup(one, 7) == CertStatusRecord(issued=True, revoked=early)

    store.replace_source(one, _state("index", 1), issued=[7])
    assert store.lookup(one, 7) == CertStatusRecord(issued=True, revoked=late)


@pytest.mark.parametrize("serial", [0, 127, 128, 2**159, 2**160 - 1, -1, -129])
def test_extreme_serials_are_stored_and_found(store: SQLiteStore, issuers: tuple[int, int], serial: int) -> None:
    one, _ = issuers
    store.replace_source(one, _state("index", 1), issued=[serial], revoked=[RevokedEntry(serial, T0)])

    assert store.lookup(one, serial) == CertStatusRecord(issued=True, revoked=RevokedEntry(serial, T0))
    assert store.lookup(one, serial + 1) is None


def test_duplicate_serials_in_one_source_do_not_fail(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, _state("issued", 3), issued=[5, 5, 5])
    assert store.lookup(one, 5) == CertStatusRecord(True, None)


def test_failing_import_half_way_leaves_the_previous_rows(store: SQLiteStore, issuers: tuple[int, int]) -> None:
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


def test_failing_revoked_iterable_rolls_back_too(store: SQLiteStore, issuers: tuple[int, int]) -> None:
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


def test_source_states_round_trip_with_utc_datetimes(store: SQLiteStore, issuers: tuple[int, int]) -> None:
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


def test_source_state_times_from_other_zones_come_back_as_the_same_instant(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    zone = dt.timezone(dt.timedelta(hours=-5))
    store.replace_source(one, SourceState("crl", "x", T0.astimezone(zone), 0, T0.astimezone(zone), None, None))

    state = store.source_states(one)["crl"]

    assert state.imported_at == T0 and state.imported_at.tzinfo == UTC
    assert (state.this_update, state.next_update, state.crl_number) == (T0, None, None)


def test_replacing_a_source_updates_its_state(store: SQLiteStore, issuers: tuple[int, int]) -> None:
    one, _ = issuers
    store.replace_source(one, SourceState("crl", "a", T0, 1, T0, T0 + HOUR, 1))
    newer = SourceState("crl", "a", T0 + HOUR, 2, T0 + HOUR, T0 + 2 * HOUR, 2)
    store.replace_source(one, newer)
    assert store.source_states(one) == {"crl": newer}


# --- files and connections -----------------------------------------------------------------------


def test_two_connections_to_one_file_see_committed_data(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    writer, reader = SQLiteStore(path), SQLiteStore(path)
    try:
        issuer = writer.register_issuer("ca", b"cert")
        assert reader.lookup(issuer, 1) is None

        writer.replace_source(issuer, _state("issued", 1), issued=[1])

        assert reader.lookup(issuer, 1) == CertStatusRecord(True, None)
        assert reader.source_states(issuer) == {"issued": _state("issued", 1)}
        assert reader._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        writer.close()
        reader.close()


def test_data_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "status.sqlite3"
    first = SQLiteStore(path)
    issuer = first.register_issuer("ca", b"cert")
    first.replace_source(issuer, _state("crl", 1), revoked=[RevokedEntry(3, T0, x509.ReasonFlags.ca_compromise)])
    first.close()

    second = SQLiteStore(path)
    try:
        assert second.register_issuer("ca", b"cert") == issuer
        assert second.lookup(issuer, 3) == CertStatusRecord(False, RevokedEntry(3, T0, x509.ReasonFlags.ca_compromise))
    finally:
        second.close()


def test_memory_store_works() -> None:
    store = SQLiteStore(":memory:")
    try:
        issuer = store.register_issuer("ca", b"cert")
        store.replace_source(issuer, _state("issued", 1), issued=[8])
        assert store.lookup(issuer, 8) == CertStatusRecord(True, None)
    finally:
        store.close()
