"""SQLite storage of pre-signed responses, and the import diff that marks them changed."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from certstatus.model import RevokedEntry
from certstatus.store.base import PrecomputedResponse, SignedResponse, SourceState, StatusChange
from certstatus.store.sqlite import SQLiteStore
from certstatus.store.sqlite_checkpoint import WalCheckpointer

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


@pytest.fixture
def store(tmp_path):
    store = SQLiteStore(tmp_path / "store.sqlite3")
    yield store
    store.close()


def _index(store, issuer_id, issued, revoked=()):
    store.replace_source(issuer_id, SourceState("index", "index.txt", T0, len(issued)), issued=issued, revoked=revoked)


def _counter(store, issuer_id):
    return store.change_counters()[issuer_id]


def _sign(store, issuer_id, serials, *, seq=None, when=T0, tag=b"", algorithms=("sha1", "sha256"), profile=0):
    seq = _counter(store, issuer_id) if seq is None else seq
    responses = [
        SignedResponse(
            serial, algorithm,
            PrecomputedResponse(b"%s:%d:%s" % (tag, serial, algorithm.encode()), when, when + DAY),
            when + dt.timedelta(hours=12),
        )
        for serial in serials for algorithm in algorithms
    ]  # fmt: skip
    store.store_precomputed(issuer_id, responses, change_counter=seq, profile=profile)


def _pending(store, issuer_id, kind, now=T0, batch_size=1000):
    return [serial for batch in store.pending_precomputed(issuer_id, kind, now=now, batch_size=batch_size) for serial in batch]


def test_responses_are_keyed_on_issuer_serial_and_hash_algorithm(store):
    one, two = store.register_issuer("one", b"ca-1"), store.register_issuer("two", b"ca-2")
    for issuer_id in (one, two):
        _index(store, issuer_id, [7])
        _sign(store, issuer_id, [7], tag=b"%d" % issuer_id)
    assert store.precomputed(one, 7, "sha1").der == b"%d:7:sha1" % one
    assert store.precomputed(one, 7, "sha256").der == b"%d:7:sha256" % one
    assert store.precomputed(two, 7, "sha1").der == b"%d:7:sha1" % two
    assert store.precomputed(one, 8, "sha1") is None
    assert store.precomputed(one, 7, "sha384") is None
    stored = store.precomputed(one, 7, "sha1")
    assert (stored.this_update, stored.next_update) == (T0, T0 + DAY)


def test_servable_responses_are_read_in_slices_of_what_the_request_path_would_serve(store):
    """The edge cache's fill: one statement per slice, in serial key order, only rows `precomputed` would
    return (unchanged status, the given profile, a response of the algorithm), complete DER."""
    from certstatus.model import serial_key

    issuer_id, other = store.register_issuer("one", b"ca-1"), store.register_issuer("two", b"ca-2")
    serials = [-5, 0, 1, 2, 3, 255, 256, 70000]
    _index(store, issuer_id, serials)
    _index(store, other, [1])
    _sign(store, issuer_id, serials)
    _sign(store, other, [1])
    _sign(store, issuer_id, [256], profile=7)  # another signing profile: not served
    _sign(store, issuer_id, [70000], algorithms=("sha256",))  # no SHA-1 response any more
    store.apply_changes(issuer_id, [StatusChange("revoke", 3, T0, x509.ReasonFlags.key_compromise)], at=T0)
    expected = [serial for serial in serials if serial not in (3, 256, 70000)]
    assert [s for s in expected if store.precomputed(issuer_id, s, "sha1", 0)] == expected
    got, after = [], b""
    while rows := store.servable_responses(issuer_id, "sha1", 0, after=after, limit=3):
        assert len(rows) <= 3
        got += rows
        after = rows[-1][0]
    assert [key for key, _ in got] == sorted(serial_key(s) for s in expected)
    for key, response in got:
        serial = next(s for s in expected if serial_key(s) == key)
        stored = store.precomputed(issuer_id, serial, "sha1", 0)
        assert (response.der, response.this_update, response.next_update) == (stored.der, stored.this_update, stored.next_update)
    assert [key for key, _ in store.servable_responses(issuer_id, "sha1", 7)] == [serial_key(256)]
    assert len(store.servable_responses(issuer_id, "sha256", 0, limit=100)) == len(expected) + 1
    assert store.servable_responses(issuer_id, "sha1", 0, after=got[-1][0], limit=10) == []
    with pytest.raises(ValueError):
        store.servable_responses(issuer_id, "sha384", 0)


def test_responses_signed_at_one_time_share_their_time_objects(store):
    # The request path caches what it derives from thisUpdate/nextUpdate (rendered headers, the refresh
    # point) by the identity of these objects: one batch of rows must give the same ones.
    issuer_id = store.register_issuer("one", b"ca-1")
    _index(store, issuer_id, [7, 8, 9])
    _sign(store, issuer_id, [7, 8])
    _sign(store, issuer_id, [9], when=T0 + DAY)
    seven, eight, nine = (store.precomputed(issuer_id, serial, "sha1") for serial in (7, 8, 9))
    assert seven.this_update is eight.this_update and seven.next_update is eight.next_update
    assert (seven.this_update, seven.next_update) == (T0, T0 + DAY)
    assert (nine.this_update, nine.next_update) == (T0 + DAY, T0 + 2 * DAY)
    assert nine.this_update is seven.next_update  # one object per second, whichever field it came from


def test_a_row_of_another_signing_profile_is_not_served_and_falls_due_first(store):
    """After a configuration change the CA's profile differs: its old rows are misses, and
    expire_other_profiles puts them before every other renewal."""
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2, 3])
    _sign(store, issuer_id, [1, 2], profile=11)
    _sign(store, issuer_id, [3], profile=22, when=T0 + dt.timedelta(hours=1))
    assert store.precomputed(issuer_id, 1, "sha1", 11).der == b":1:sha1"
    assert store.precomputed(issuer_id, 1, "sha1") is not None  # no profile asked: any row (exports, tests)
    assert store.precomputed(issuer_id, 1, "sha1", 22) is None
    assert store.precomputed(issuer_id, 3, "sha256", 22) is not None
    assert _pending(store, issuer_id, "due") == []
    assert store.expire_other_profiles(issuer_id, 22) == 2
    assert store.expire_other_profiles(issuer_id, 22) == 0  # already due
    assert _pending(store, issuer_id, "due") == [1, 2]  # due now, before serial 3's renewal
    assert store.next_renewal(issuer_id) < T0
    _sign(store, issuer_id, [1, 2], profile=22)
    assert store.precomputed(issuer_id, 2, "sha1", 22) is not None and _pending(store, issuer_id, "due") == []


def test_minus_one_zero_and_255_are_three_rows(store):
    """Serial keys are minimal two's complement (-1: ff, 255: 00ff, 0: 00): no two serials share a row."""
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [0, 255], revoked=[RevokedEntry(-1, T0, x509.ReasonFlags.key_compromise)])
    assert sorted(_pending(store, issuer_id, "missing")) == [-1, 0, 255]
    _sign(store, issuer_id, [-1, 0, 255])

    for serial in (-1, 0, 255):
        assert store.precomputed(issuer_id, serial, "sha1").der == b":%d:sha1" % serial
    for never in (1, -255, 256, -256):
        assert store.precomputed(issuer_id, never, "sha1") is None
    assert _pending(store, issuer_id, "missing") == []


def test_one_row_per_serial_refuses_responses_that_differ_in_time_or_hash(store):
    """Both responses of a serial share one row: differing times, or a hash outside SHA-1/SHA-256, write nothing."""
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2])
    seq = _counter(store, issuer_id)
    later = PrecomputedResponse(b"late", T0 + DAY, T0 + 2 * DAY)
    mixed = [
        SignedResponse(2, "sha1", PrecomputedResponse(b"ok", T0, T0 + DAY), T0 + dt.timedelta(hours=12)),
        SignedResponse(1, "sha1", PrecomputedResponse(b"early", T0, T0 + DAY), T0 + dt.timedelta(hours=12)),
        SignedResponse(1, "sha256", later, T0 + dt.timedelta(hours=36)),
    ]
    with pytest.raises(ValueError, match="differ in thisUpdate"):
        store.store_precomputed(issuer_id, mixed, change_counter=seq)
    sha384 = SignedResponse(2, "sha384", PrecomputedResponse(b"x", T0, T0 + DAY), T0)
    with pytest.raises(ValueError, match="sha384"):
        store.store_precomputed(issuer_id, [sha384], change_counter=seq)
    assert store.precomputed(issuer_id, 2, "sha1") is None  # nothing of either call was written
    assert _pending(store, issuer_id, "missing") == [1, 2]


def test_missing_lists_issued_and_revoked_serials_without_both_responses(store):
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2, 3, 4, 5])
    store.replace_source(
        issuer_id, SourceState("crl", "ca.crl", T0, 2), revoked=[RevokedEntry(3, T0), RevokedEntry(9, T0)]
    )
    assert _pending(store, issuer_id, "missing", batch_size=2) == [1, 2, 3, 4, 5, 9]
    _sign(store, issuer_id, [1, 2])
    _sign(store, issuer_id, [3], algorithms=("sha1",))  # half done: still missing
    assert _pending(store, issuer_id, "missing") == [3, 4, 5, 9]
    assert store.count_pending(issuer_id, "missing", now=T0) == 4


def test_due_lists_responses_whose_renew_time_passed(store):
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, list(range(10)))
    _sign(store, issuer_id, range(5), when=T0)
    _sign(store, issuer_id, range(5, 10), when=T0 + dt.timedelta(hours=1))
    assert _pending(store, issuer_id, "due", now=T0 + dt.timedelta(hours=11)) == []
    assert _pending(store, issuer_id, "due", now=T0 + dt.timedelta(hours=12), batch_size=2) == [0, 1, 2, 3, 4]
    assert _pending(store, issuer_id, "due", now=T0 + dt.timedelta(hours=13)) == list(range(10))
    assert store.next_renewal(issuer_id) == T0 + dt.timedelta(hours=12)


def test_an_import_that_changes_a_status_stops_its_responses_at_once(store):
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2, 3])
    _sign(store, issuer_id, [1, 2, 3])
    before = _counter(store, issuer_id)
    _index(store, issuer_id, [1, 2, 3], revoked=[RevokedEntry(2, T0, x509.ReasonFlags.key_compromise)])
    assert _counter(store, issuer_id) > before
    assert store.precomputed(issuer_id, 2, "sha1") is None
    assert store.precomputed(issuer_id, 1, "sha1") is not None
    assert _pending(store, issuer_id, "changed") == [2]
    _sign(store, issuer_id, [2], tag=b"new")
    assert store.precomputed(issuer_id, 2, "sha256").der == b"new:2:sha256"
    assert _pending(store, issuer_id, "changed") == []


def test_a_response_decided_before_a_change_stays_unserved(store):
    """The generator read statuses at counter C; an import changed serials before its write landed."""
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2])
    _sign(store, issuer_id, [1])
    seq = _counter(store, issuer_id)
    _index(store, issuer_id, [1, 2], revoked=[RevokedEntry(1, T0), RevokedEntry(2, T0)])
    _sign(store, issuer_id, [1, 2], seq=seq, tag=b"old")  # existing row (1) and new row (2)
    assert store.precomputed(issuer_id, 1, "sha1") is None
    assert store.precomputed(issuer_id, 2, "sha1") is None
    assert _pending(store, issuer_id, "changed") == [1, 2]


def test_reimporting_the_same_data_changes_nothing(store):
    issuer_id = store.register_issuer("ca", b"ca")
    revoked = [RevokedEntry(2, T0, x509.ReasonFlags.superseded, T0 - DAY)]
    _index(store, issuer_id, [1, 2, 3], revoked)
    _sign(store, issuer_id, [1, 2, 3])
    _index(store, issuer_id, [3, 2, 1], revoked)
    assert _pending(store, issuer_id, "changed") == []
    assert all(store.precomputed(issuer_id, serial, "sha1") is not None for serial in (1, 2, 3))


@pytest.mark.parametrize(
    "new_revoked",
    [
        [RevokedEntry(2, T0, x509.ReasonFlags.key_compromise)],  # reason changed
        [RevokedEntry(2, T0 + DAY, x509.ReasonFlags.superseded)],  # time changed
        [RevokedEntry(2, T0, x509.ReasonFlags.superseded, T0)],  # invalidity date added
        [],  # un-revoked (hold released)
    ],
)
def test_a_changed_revocation_is_a_change(store, new_revoked):
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2], [RevokedEntry(2, T0, x509.ReasonFlags.superseded)])
    _sign(store, issuer_id, [1, 2])
    _index(store, issuer_id, [1, 2], new_revoked)
    assert _pending(store, issuer_id, "changed") == [2]
    assert store.precomputed(issuer_id, 1, "sha1") is not None
    record = store.lookup(issuer_id, 2)
    assert record.revoked == (new_revoked[0] if new_revoked else None)


def test_removed_serials_are_dropped_unless_the_issuer_changed_since(store):
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2, 3])
    _sign(store, issuer_id, [1, 2, 3])
    _index(store, issuer_id, [1, 3])
    seen = _counter(store, issuer_id)
    _index(store, issuer_id, [1])  # 3 goes too, after the generator read the counter
    store.store_precomputed(issuer_id, [], change_counter=seen, remove=[2])
    assert _pending(store, issuer_id, "changed") == [2, 3]  # kept, to be decided again
    store.store_precomputed(issuer_id, [], change_counter=_counter(store, issuer_id), remove=[2, 3])
    assert _pending(store, issuer_id, "changed") == []
    assert store.precomputed(issuer_id, 2, "sha1") is None and store.precomputed(issuer_id, 1, "sha1") is not None


def test_lookup_many_agrees_with_lookup(store):
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2, 3, -5], [RevokedEntry(2, T0 + DAY, x509.ReasonFlags.superseded)])
    store.replace_source(issuer_id, SourceState("crl", "c", T0, 2), revoked=[RevokedEntry(2, T0), RevokedEntry(9, T0)])
    serials = [1, 2, 3, 4, 9, -5] + list(range(100, 1200))
    records = store.lookup_many(issuer_id, serials)
    assert records == {s: store.lookup(issuer_id, s) for s in serials if store.lookup(issuer_id, s) is not None}
    assert records[2].revoked.revocation_time == T0  # the earliest of two sources


def test_imports_and_pushes_grow_the_counter_and_the_generator_does_not(store):
    """Caches in every process drop an issuer when its counter grows: re-signing must not trigger that."""
    issuer_id = store.register_issuer("ca", b"ca")
    first = _counter(store, issuer_id)
    _index(store, issuer_id, [1, 2])
    after_import = _counter(store, issuer_id)
    _sign(store, issuer_id, [1, 2])
    assert after_import > first and _counter(store, issuer_id) == after_import
    store.apply_changes(issuer_id, [StatusChange("issue", 3)], at=T0)
    assert _counter(store, issuer_id) > after_import


def test_new_certificate_for_a_ca_name_drops_its_responses(store):
    issuer_id = store.register_issuer("ca", b"old-ca")
    _index(store, issuer_id, [1])
    _sign(store, issuer_id, [1])
    before = _counter(store, issuer_id)
    assert store.register_issuer("ca", b"new-ca") == issuer_id
    assert store.precomputed(issuer_id, 1, "sha1") is None
    assert _counter(store, issuer_id) > before


def test_pushed_changes_stop_the_pushed_serials_responses(store):
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2])
    _sign(store, issuer_id, [1, 2])
    store.apply_changes(issuer_id, [StatusChange("revoke", 2, T0, x509.ReasonFlags.key_compromise)], at=T0)
    assert store.precomputed(issuer_id, 2, "sha1") is None
    assert store.precomputed(issuer_id, 1, "sha1") is not None
    assert _pending(store, issuer_id, "changed") == [2]


def test_dropped_source_kinds_are_changes(store):
    """A complete CRL that drops the delta CRL: the delta's serials changed."""
    issuer_id = store.register_issuer("ca", b"ca")
    store.replace_source(issuer_id, SourceState("crl", "base", T0, 1), revoked=[RevokedEntry(1, T0)])
    store.replace_source(issuer_id, SourceState("delta", "delta", T0, 1), revoked=[RevokedEntry(5, T0)])
    _sign(store, issuer_id, [1, 5])
    store.replace_source(issuer_id, SourceState("crl", "base", T0, 1), revoked=[RevokedEntry(1, T0)], drop_kinds=["delta"])
    assert _pending(store, issuer_id, "changed") == [5]
    assert store.precomputed(issuer_id, 5, "sha1") is None and store.precomputed(issuer_id, 1, "sha1") is not None


def test_lookup_many_applies_the_delta_crl_view(store):
    issuer_id = store.register_issuer("ca", b"ca")
    hold = x509.ReasonFlags.certificate_hold
    store.replace_source(issuer_id, SourceState("crl", "base", T0, 2), revoked=[RevokedEntry(1, T0, hold), RevokedEntry(2, T0, hold)])
    store.replace_source(
        issuer_id, SourceState("delta", "delta", T0, 1),
        revoked=[RevokedEntry(1, T0, x509.ReasonFlags.remove_from_crl), RevokedEntry(2, T0, x509.ReasonFlags.key_compromise)],
    )  # fmt: skip
    records = store.lookup_many(issuer_id, [1, 2])
    assert records == {2: store.lookup(issuer_id, 2)}
    assert store.lookup(issuer_id, 1) is None
    assert records[2].revoked.reason is x509.ReasonFlags.key_compromise


def test_background_checkpoints_copy_the_wal_and_restart_it_outside_the_writers(tmp_path):
    """The generator's parent checkpoints (WalCheckpointer): writers that never checkpoint keep a bounded WAL."""
    import os
    import sqlite3
    import threading
    import time

    path = tmp_path / "store.sqlite3"
    SQLiteStore(path).close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer copies the WAL
    writer.execute("CREATE TABLE filler (data BLOB)")
    class Lock:  # the workers' write lock, counting the checkpointer's turns
        def __init__(self):
            self.lock, self.checkpointer_turns = threading.Lock(), 0

        def acquire(self, timeout=-1):
            taken = self.lock.acquire(timeout=timeout)
            self.checkpointer_turns += taken and threading.current_thread().name == "wal-checkpoint"
            return taken

        def release(self):
            self.lock.release()

        def __enter__(self):
            self.acquire()

        def __exit__(self, *exc):
            self.release()

    lock = Lock()
    page = os.urandom(3000)
    transactions, rows = 300, 10
    store = SQLiteStore(path)
    # Built with its settings (not set after it started: its first wait would be the default 0.5 s, while
    # the WAL grows past the figure below); the generator's is store.background_checkpoints(lock).
    with WalCheckpointer(str(path), lock, interval=0.002, restart_bytes=40 * 4096):
        for _ in range(transactions):
            with lock:
                writer.execute("BEGIN IMMEDIATE")
                writer.executemany("INSERT INTO filler VALUES (?)", [(page,)] * rows)
                writer.execute("COMMIT")
            time.sleep(0.001)
        deadline = time.monotonic() + 10
        while os.path.getsize(path) < transactions * rows * len(page) and time.monotonic() < deadline:
            time.sleep(0.01)
    store.close()
    written = transactions * rows * len(page)
    assert os.path.getsize(path) >= written  # the rows reached the database file: checkpointed
    assert os.path.getsize(f"{path}-wal") < written  # and the WAL started over (at least once) instead of growing
    assert lock.checkpointer_turns  # the last pages are copied with the writers waiting (so it can start over)
    assert writer.execute("SELECT count(*) FROM filler").fetchone()[0] == transactions * rows
    writer.close()


def test_a_serial_two_sources_list_is_pending_and_counted_once(store):
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2, 3])
    store.replace_source(issuer_id, SourceState("issued", "issued.txt", T0, 2), issued=[2, 3, 4])
    store.replace_source(issuer_id, SourceState("crl", "ca.crl", T0, 2), revoked=[RevokedEntry(9, T0), RevokedEntry(3, T0)])
    assert _pending(store, issuer_id, "missing", batch_size=2) == [1, 2, 3, 4, 9]
    assert store.count_pending(issuer_id, "missing", now=T0) == 5
