"""SQLiteStore specifics (WAL, ``:memory:``) and serial_key.

The store behaviours shared with PostgreSQL run against both in tests/store/test_store_contract.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import core

from certstatus.clock import UTC
from certstatus.model import CertStatusRecord, serial_key
from certstatus.store.base import SourceState
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


# --- files and connections -----------------------------------------------------------------------


def test_the_file_is_in_wal_mode_so_workers_read_while_an_import_writes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "shared.sqlite3")
    try:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_a_new_store_and_its_wal_and_shm_files_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    """The store holds who is revoked and, precomputed, signed responses: readable by the service user only."""
    import os

    path = tmp_path / "private.sqlite3"
    previous = os.umask(umask)
    try:
        store = SQLiteStore(path)
        issuer = store.register_issuer("ca", b"cert")
        store.replace_source(issuer, _state("issued", 1), issued=[8])  # a write: the WAL and its index exist now
    finally:
        os.umask(previous)
    try:
        files = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        assert files == {"private.sqlite3": 0o600, "private.sqlite3-wal": 0o600, "private.sqlite3-shm": 0o600}
    finally:
        store.close()


def test_an_existing_store_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    SQLiteStore(path).close()
    path.chmod(0o640)  # an operator's choice (a backup group, say)
    SQLiteStore(path).close()
    assert path.stat().st_mode & 0o777 == 0o640


def test_memory_store_works() -> None:
    store = SQLiteStore(":memory:")
    try:
        issuer = store.register_issuer("ca", b"cert")
        store.replace_source(issuer, _state("issued", 1), issued=[8])
        assert store.lookup(issuer, 8) == CertStatusRecord(True, None)
    finally:
        store.close()
