"""The generator's range fast path on SQLite reads the same work as the serial lists it replaces.

``precomputed_ranges`` + ``precomputed_batch`` (what the generator uses on
SQLite) must yield, for every work kind, exactly the serials
``pending_precomputed`` yields, with the statuses ``lookup_many`` gives them
(through :func:`certstatus.generator.signing.read_work`, which any other
store uses), whatever the batch size.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from cryptography import x509

from certstatus.generator.signing import read_work
from certstatus.model import RevokedEntry, serial_key
from certstatus.store.base import WORK_KINDS, PrecomputedResponse, SignedResponse, SourceState
from certstatus.store.sqlite import SQLiteStore

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)


def _sign(store, issuer_id, serials, when):
    responses = [
        SignedResponse(serial, algorithm, PrecomputedResponse(b"r", when, when + 24 * HOUR), when + 12 * HOUR)
        for serial in serials
        for algorithm in ("sha1", "sha256")
    ]
    store.store_precomputed(issuer_id, responses, change_counter=store.change_counters()[issuer_id])


def _work_by_lists(store, issuer_id, kind, now, batch_size):
    out = []
    for batch in store.pending_precomputed(issuer_id, kind, now=now, batch_size=batch_size):
        out.append(read_work(store, issuer_id, ("serials", batch)))
    return out


def _work_by_ranges(store, issuer_id, kind, now, batch_size):
    ranges = list(store.precomputed_ranges(issuer_id, kind, now=now, batch_size=batch_size))
    units = [store.precomputed_batch(issuer_id, work) for work in ranges]
    assert all(len(keys) + len(gone) <= batch_size for keys, _, gone in units)
    return units


def _flatten(units):
    keys = [key for unit_keys, _, _ in units for key in unit_keys]
    records = {key: record for _, unit_records, _ in units for key, record in unit_records.items()}
    gone = [serial for _, _, unit_gone in units for serial in unit_gone]
    return keys, records, gone


@pytest.fixture
def store(tmp_path):
    store = SQLiteStore(tmp_path / "store.sqlite3")
    yield store
    store.close()


def _mixed_store(store, rng):
    """Two issuers sharing serials; issued, revoked by several sources, delta releases, CRL-only and gone serials."""
    other = store.register_issuer("other", b"ca-2")
    issuer_id = store.register_issuer("one", b"ca-1")
    serials = sorted(rng.sample(range(-300, 5000), 400))  # negative keys (0xff...) and several key lengths
    issued = [s for s in serials if rng.random() < 0.8]
    crl = [s for s in serials if rng.random() < 0.15]
    reasons = (None, x509.ReasonFlags.key_compromise, x509.ReasonFlags.certificate_hold)
    revoked = [RevokedEntry(s, T0 - rng.randint(1, 900) * HOUR, rng.choice(reasons)) for s in crl]
    store.replace_source(other, SourceState("index", "other.txt", T0, len(serials)), issued=serials)
    store.replace_source(issuer_id, SourceState("index", "index.txt", T0, len(issued)), issued=issued)
    store.replace_source(issuer_id, SourceState("issued", "issued.txt", T0, 50), issued=rng.sample(issued, 50))
    store.replace_source(issuer_id, SourceState("crl", "ca.crl", T0, len(revoked)), revoked=revoked)
    holds = [entry.serial_number for entry in revoked if entry.reason is x509.ReasonFlags.certificate_hold]
    delta = [RevokedEntry(s, T0, x509.ReasonFlags.remove_from_crl) for s in holds[: len(holds) // 2]]
    delta += [RevokedEntry(s, T0 - HOUR, x509.ReasonFlags.superseded) for s in rng.sample(issued, 5)]
    store.replace_source(issuer_id, SourceState("delta", "delta.crl", T0, len(delta)), revoked=delta)
    known = sorted(set(issued) | set(crl))
    _sign(store, issuer_id, rng.sample(known, 120), T0 - 20 * HOUR)  # due at T0 - 8 h
    _sign(store, issuer_id, rng.sample(known, 80), T0)  # fresh
    _sign(store, issuer_id, [9001, 9002], T0 - 20 * HOUR)  # rows of serials no source knows: gone when due
    # A later import changes some statuses: their rows are marked changed.
    changed = rng.sample(issued, 30)
    store.replace_source(
        issuer_id, SourceState("issued", "issued.txt", T0 + HOUR, 60), issued=[*rng.sample(issued, 30), *changed]
    )
    return issuer_id


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ranges_yield_the_pending_serials_and_statuses_of_the_serial_lists(store, seed):
    issuer_id = _mixed_store(store, random.Random(seed))
    now = T0 + 2 * HOUR
    for kind in WORK_KINDS:
        expected = _flatten(_work_by_lists(store, issuer_id, kind, now, 1000))
        for batch_size in (1, 3, 7, 64, 1000):
            units = _work_by_ranges(store, issuer_id, kind, now, batch_size)
            keys, records, gone = _flatten(units)
            assert sorted(keys) == sorted(expected[0]), (kind, batch_size)
            assert records == expected[1], (kind, batch_size)
            assert sorted(gone) == sorted(expected[2]), (kind, batch_size)
            if kind != "due":  # index order within a unit: its writes append to the B-trees
                assert all(unit_keys == sorted(unit_keys) for unit_keys, _, _ in units)


def test_each_kind_has_work_in_the_mixed_store(store):
    issuer_id = _mixed_store(store, random.Random(1))
    now = T0 + 2 * HOUR
    for kind in WORK_KINDS:
        keys, records, gone = _flatten(_work_by_ranges(store, issuer_id, kind, now, 10))
        assert keys, kind
    _, records, _ = _flatten(_work_by_ranges(store, issuer_id, "missing", now, 10))
    assert records, "revoked serials take the record path"
    _, _, gone = _flatten(_work_by_ranges(store, issuer_id, "due", now, 10))
    assert sorted(gone) == [9001, 9002]


def test_signed_serials_leave_the_ranges(store):
    issuer_id = store.register_issuer("one", b"ca-1")
    store.replace_source(issuer_id, SourceState("index", "index.txt", T0, 10), issued=range(10))
    _sign(store, issuer_id, range(0, 10, 2), T0)
    keys, records, gone = _flatten(_work_by_ranges(store, issuer_id, "missing", T0, 3))
    assert keys == [serial_key(s) for s in range(1, 10, 2)] and not records and not gone
    _sign(store, issuer_id, range(1, 10, 2), T0)
    assert _flatten(_work_by_ranges(store, issuer_id, "missing", T0, 3)) == ([], {}, [])
    assert list(store.precomputed_ranges(issuer_id, "changed", now=T0, batch_size=3)) == []


def test_unknown_kind_and_batch_size_are_refused(store):
    issuer_id = store.register_issuer("one", b"ca-1")
    with pytest.raises(ValueError, match="kind"):
        list(store.precomputed_ranges(issuer_id, "everything", now=T0, batch_size=3))
    with pytest.raises(ValueError, match="batch_size"):
        list(store.precomputed_ranges(issuer_id, "missing", now=T0, batch_size=0))


def test_an_issuer_or_range_without_responses_counts_and_yields_every_serial(store):
    # Ranges where precomputed has no row skip its probe per serial: they must yield what the lists do.
    issuer_id = store.register_issuer("one", b"ca-1")
    store.replace_source(issuer_id, SourceState("index", "index.txt", T0, 20), issued=range(20))
    store.replace_source(issuer_id, SourceState("issued", "issued.txt", T0, 5), issued=range(5))  # listed twice
    crl_only = [RevokedEntry(s, T0 - HOUR, x509.ReasonFlags.key_compromise) for s in (30, 31)]
    crl_only.append(RevokedEntry(32, T0, x509.ReasonFlags.remove_from_crl))  # a released hold: no response
    store.replace_source(issuer_id, SourceState("crl", "ca.crl", T0, 3), revoked=crl_only)
    everything = [serial_key(s) for s in [*range(20), 30, 31]]
    assert store.count_pending(issuer_id, "missing", now=T0) == 22
    for batch_size in (1, 4, 1000):
        keys, _, gone = _flatten(_work_by_ranges(store, issuer_id, "missing", T0, batch_size))
        assert keys == everything and not gone, batch_size
    _sign(store, issuer_id, [7, 30], T0)
    store.store_precomputed(  # only one of the two responses: still missing
        issuer_id, [SignedResponse(12, "sha1", PrecomputedResponse(b"r", T0, T0 + 24 * HOUR), T0 + 12 * HOUR)],
        change_counter=store.change_counters()[issuer_id],
    )
    left = [key for key in everything if key not in (serial_key(7), serial_key(30))]
    assert store.count_pending(issuer_id, "missing", now=T0) == 20
    for batch_size in (1, 4, 1000):
        keys, _, gone = _flatten(_work_by_ranges(store, issuer_id, "missing", T0, batch_size))
        assert keys == left and not gone, batch_size
        assert _flatten(_work_by_lists(store, issuer_id, "missing", T0, batch_size))[0] == left
