"""An index or issued list read again from the same bytes is not parsed nor written (both backends).

A restart, SIGHUP or the refresher seeing a new mtime reads the file again;
when its bytes are those the source state's fingerprint names, the import is
"unchanged (same file)": the source state (import time included), the rows
and the change counter stay as the last import left them. Anything else
imports as before: other bytes, no fingerprint (a row of an older release),
a fingerprint a writer of an older release left behind with a new import
time, another CA certificate or issued_signed, a directory of lists.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import sqlite3
from pathlib import Path

import psycopg
import pytest

from certstatus.clock import ManualClock
from certstatus.sources.importer import import_file_source, source_fingerprint
from certstatus.sources.refresh import Refresher
from tests.precomputed_helpers import copy_pki, settings_for
from tests.sources_helpers import target


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def execute(database: str | Path, sql: str) -> None:
    """Run ``sql`` on the store's database behind the store's back (what another writer would do)."""
    if isinstance(database, Path):
        with sqlite3.connect(database) as conn:
            conn.execute(sql)
        return
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def pki(demo_pki, tmp_path):
    return copy_pki(demo_pki, tmp_path / "pki")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 5, 1, 12, tzinfo=dt.timezone.utc))


def add_to_index(pki, serial: int) -> None:
    with pki.index.open("a") as index:
        index.write(f"V\t300101000000Z\t\t{serial:04X}\tunknown\t/CN=new.demo.test\n")


@pytest.mark.parametrize("kind", ["index", "issued"])
def test_the_same_bytes_again_are_unchanged_and_write_nothing(store, pki, clock, kind) -> None:
    ca = target(store, pki, **{kind: getattr(pki, kind)})
    origin = str(getattr(pki, kind))
    first = import_file_source(store, ca, kind, origin, clock)
    assert first.error is None and not first.unchanged
    state = store.source_states(ca.issuer_id)[kind]
    assert state.fingerprint == source_fingerprint(ca, kind, origin, sha256(Path(origin).read_bytes()), state.imported_at)
    counters, marks = store.change_counters(), store.source_marks()

    clock.advance(300)
    os.utime(origin)  # a new mtime, the same content (a restored backup, `touch`)
    again = import_file_source(store, ca, kind, origin, clock)

    assert (again.unchanged, again.note, again.entries, again.error) == (True, "same file", first.entries, None)
    assert store.source_states(ca.issuer_id)[kind] == state  # imported_at of the first import
    assert (store.change_counters(), store.source_marks()) == (counters, marks)


def test_other_bytes_are_imported(store, pki, clock) -> None:
    ca = target(store, pki, index=pki.index)
    first = import_file_source(store, ca, "index", str(pki.index), clock)
    before = store.source_states(ca.issuer_id)["index"]
    clock.advance(300)
    add_to_index(pki, 0x7777)

    result = import_file_source(store, ca, "index", str(pki.index), clock)

    after = store.source_states(ca.issuer_id)["index"]
    assert (result.unchanged, result.entries) == (False, first.entries + 1)
    assert after.imported_at == clock.now() and after.fingerprint not in (None, before.fingerprint)
    assert store.lookup(ca.issuer_id, 0x7777).issued


def test_a_row_without_fingerprint_is_imported_and_gets_one(database, store, pki, clock) -> None:
    ca = target(store, pki, index=pki.index)
    import_file_source(store, ca, "index", str(pki.index), clock)
    execute(database, "UPDATE sources SET fingerprint = NULL")  # as written by a release before schema 5
    clock.advance(300)

    result = import_file_source(store, ca, "index", str(pki.index), clock)

    state = store.source_states(ca.issuer_id)["index"]
    assert not result.unchanged and state.imported_at == clock.now() and state.fingerprint is not None
    assert import_file_source(store, ca, "index", str(pki.index), clock).unchanged


def test_a_fingerprint_left_by_an_older_writer_does_not_match(database, store, pki, clock) -> None:
    """An older release's upsert writes a new import time (and rows) but leaves the column alone."""
    ca = target(store, pki, index=pki.index)
    import_file_source(store, ca, "index", str(pki.index), clock)
    later = "imported_at + 60" if isinstance(database, Path) else "imported_at + interval '60 seconds'"
    execute(database, f"UPDATE sources SET imported_at = {later}")

    assert not import_file_source(store, ca, "index", str(pki.index), clock).unchanged


def test_a_refused_file_keeps_the_last_fingerprint_and_is_read_again(store, pki, clock) -> None:
    ca = target(store, pki, index=pki.index)
    import_file_source(store, ca, "index", str(pki.index), clock)
    state = store.source_states(ca.issuer_id)["index"]
    good = pki.index.read_bytes()
    pki.index.write_bytes(good + b"not an index line\n")

    refused = import_file_source(store, ca, "index", str(pki.index), clock)
    assert refused.error is not None
    assert import_file_source(store, ca, "index", str(pki.index), clock).error == refused.error  # refused again, not skipped
    assert store.source_states(ca.issuer_id)["index"] == state

    pki.index.write_bytes(good)  # back to the bytes the store holds
    assert import_file_source(store, ca, "index", str(pki.index), clock).unchanged


def test_another_origin_with_the_same_bytes_is_imported(store, pki, clock, tmp_path) -> None:
    ca = target(store, pki, index=pki.index)
    import_file_source(store, ca, "index", str(pki.index), clock)
    moved = tmp_path / "moved-index.txt"
    moved.write_bytes(pki.index.read_bytes())

    result = import_file_source(store, ca, "index", str(moved), clock)

    assert not result.unchanged and store.source_states(ca.issuer_id)["index"].origin == str(moved)


def test_a_new_ca_certificate_imports_again(store, pki, demo_pki_rsa, clock) -> None:
    """register_issuer with another certificate wipes the rows and states; the same file then imports."""
    ca = target(store, pki, index=pki.index)
    import_file_source(store, ca, "index", str(pki.index), clock)
    other = target(store, demo_pki_rsa, index=pki.index)  # same CA name, another certificate
    assert other.issuer_id == ca.issuer_id and store.source_states(ca.issuer_id) == {}

    assert not import_file_source(store, other, "index", str(pki.index), clock).unchanged


def test_the_fingerprint_covers_what_decides_the_meaning_of_the_bytes(store, pki, demo_pki_rsa, clock) -> None:
    ca = target(store, pki, issued=pki.issued)
    data, at = sha256(pki.issued.read_bytes()), clock.now()
    base = source_fingerprint(ca, "issued", "o", data, at)
    signed = dataclasses.replace(ca, settings=dataclasses.replace(ca.settings, issued_signed=True))
    other_ca = dataclasses.replace(ca, certificate=target(store, demo_pki_rsa, name="rsa").certificate)
    assert base == source_fingerprint(ca, "issued", "o", data, at + dt.timedelta(microseconds=5))  # store precision
    variants = {
        source_fingerprint(signed, "issued", "o", data, at),
        source_fingerprint(other_ca, "issued", "o", data, at),
        source_fingerprint(ca, "index", "o", data, at),
        source_fingerprint(ca, "issued", "p", data, at),
        source_fingerprint(ca, "issued", "o", sha256(pki.issued.read_bytes() + b"\n"), at),
        source_fingerprint(ca, "issued", "o", data, at + dt.timedelta(seconds=1)),
    }
    assert base not in variants and len(variants) == 6


def test_a_directory_of_issued_lists_is_always_read(store, pki, clock, tmp_path) -> None:
    folder = tmp_path / "issued.d"
    folder.mkdir()
    (folder / "a.txt").write_bytes(pki.issued.read_bytes())
    ca = target(store, pki, issued=folder)
    import_file_source(store, ca, "issued", str(folder), clock)
    assert store.source_states(ca.issuer_id)["issued"].fingerprint is None
    clock.advance(300)

    result = import_file_source(store, ca, "issued", str(folder), clock)

    assert not result.unchanged and store.source_states(ca.issuer_id)["issued"].imported_at == clock.now()


def test_the_refresher_and_a_reload_skip_a_touched_file_and_import_a_changed_one(database, store, pki, clock) -> None:
    """The refresher's file poll and SIGHUP's forced pass use the same import path."""
    ca = target(store, pki, index=pki.index)
    settings = settings_for(database, ca.settings)
    import_file_source(store, ca, "index", str(pki.index), clock)
    state = store.source_states(ca.issuer_id)["index"]
    refresher = Refresher(settings, lambda: store, clock, file_poll=1)
    refresher.seed(store, {"demo": ca})

    stamp = pki.index.stat().st_mtime + 10
    os.utime(pki.index, (stamp, stamp))
    clock.advance(2)
    [polled] = refresher.run_pass(store, {"demo": ca})
    [reloaded] = refresher.run_pass(store, {"demo": ca}, force=True)
    assert (polled.unchanged, polled.note, reloaded.unchanged) == (True, "same file", True)
    assert store.source_states(ca.issuer_id)["index"] == state

    add_to_index(pki, 0x7778)
    clock.advance(2)
    [changed] = refresher.run_pass(store, {"demo": ca})
    assert not changed.unchanged and store.lookup(ca.issuer_id, 0x7778).issued


def test_a_store_upgraded_from_version_4_imports_its_sources_once_more(database, pki, clock) -> None:
    """Rows imported by a release before schema 5 have no fingerprint: the first start after the upgrade imports."""
    from certstatus.store.factory import open_store

    store = open_store(database)
    ca = target(store, pki, index=pki.index)
    import_file_source(store, ca, "index", str(pki.index), clock)
    store.close()
    # The store as version 4 left it: the columns of the later versions dropped, newest first.
    execute(database, "ALTER TABLE issued DROP COLUMN cert_hash")
    execute(database, "ALTER TABLE issued DROP COLUMN not_after")
    execute(database, "ALTER TABLE precomputed DROP COLUMN profile")
    execute(database, "ALTER TABLE sources DROP COLUMN fingerprint")
    execute(database, "DELETE FROM schema_migrations WHERE version >= 5")

    store = open_store(database, upgrade=True)
    try:
        assert store.source_states(ca.issuer_id)["index"].fingerprint is None
        assert not import_file_source(store, ca, "index", str(pki.index), clock).unchanged
        assert import_file_source(store, ca, "index", str(pki.index), clock).unchanged
    finally:
        store.close()


def test_a_file_signature_is_one_system_call_and_tells_every_change(tmp_path, monkeypatch) -> None:
    """The refresher looks at every local source every FILE_POLL_SECONDS (10 000 CAs: 10 000 files): a
    file's signature (name, size, mtime) costs one stat; a directory's lists its files; a path that
    cannot be read has the empty signature. Each change of size or mtime gives another signature."""
    from certstatus.sources import fetch

    crl = tmp_path / "ca.crl"
    crl.write_bytes(b"x" * 10)
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "b.txt").write_bytes(b"bb")
    (folder / "a.txt").write_bytes(b"a")
    calls = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda *args, **kwargs: calls.append(args[0]) or real_stat(*args, **kwargs))
    first = fetch.file_signature(str(crl))
    assert len(calls) == 1
    monkeypatch.setattr(os, "stat", real_stat)
    stat = crl.stat()
    assert first == (("ca.crl", 10, stat.st_mtime_ns),)
    assert fetch.file_signature(str(tmp_path / "missing.crl")) == ()
    listed = fetch.file_signature(str(folder))
    assert [(name, size) for name, size, _ in listed] == [("a.txt", 1), ("b.txt", 2)]
    os.utime(crl, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    touched = fetch.file_signature(str(crl))
    crl.write_bytes(b"x" * 11)
    assert len({first, touched, fetch.file_signature(str(crl))}) == 3
