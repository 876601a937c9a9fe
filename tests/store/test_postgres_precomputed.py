"""Pre-signed responses on the real PostgreSQL: the SQLite store's contract, and the generator lock.

The contract tests of tests/unit/test_store_precomputed.py (keying, missing/
changed/due work, imports and pushes marking responses changed in their own
transaction, the change counter) run here unchanged against a PostgreSQL
schema of their own: they are imported, and this module's ``store`` fixture
replaces the SQLite one.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from cryptography import x509

from certstatus.model import RevokedEntry
from certstatus.store.base import SourceState
from certstatus.store.postgres import PostgresStore
from tests.unit.test_store_precomputed import (  # noqa: F401  (collected here, against PostgreSQL)
    T0,
    _counter,
    _index,
    _pending,
    _sign,
    test_a_changed_revocation_is_a_change,
    test_a_response_decided_before_a_change_stays_unserved,
    test_a_row_of_another_signing_profile_is_not_served_and_falls_due_first,
    test_an_import_that_changes_a_status_stops_its_responses_at_once,
    test_dropped_source_kinds_are_changes,
    test_due_lists_responses_whose_renew_time_passed,
    test_imports_and_pushes_grow_the_counter_and_the_generator_does_not,
    test_lookup_many_agrees_with_lookup,
    test_lookup_many_applies_the_delta_crl_view,
    test_minus_one_zero_and_255_are_three_rows,
    test_missing_lists_issued_and_revoked_serials_without_both_responses,
    test_new_certificate_for_a_ca_name_drops_its_responses,
    test_one_row_per_serial_refuses_responses_that_differ_in_time_or_hash,
    test_pushed_changes_stop_the_pushed_serials_responses,
    test_reimporting_the_same_data_changes_nothing,
    test_removed_serials_are_dropped_unless_the_issuer_changed_since,
    test_responses_are_keyed_on_issuer_serial_and_hash_algorithm,
    test_servable_responses_are_read_in_slices_of_what_the_request_path_would_serve,
)


@pytest.fixture
def store(postgres_dsn):
    opened = PostgresStore(postgres_dsn, upgrade=True)
    yield opened
    opened.close()


def test_a_first_import_of_a_source_marks_responses_of_its_serials(store):
    """A source with no rows yet is written by COPY without a diff: its serials are changes all the same."""
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2, 3])
    _sign(store, issuer_id, [1, 2, 3])
    store.replace_source(issuer_id, SourceState("crl", "ca.crl", T0, 1), revoked=[RevokedEntry(2, T0, x509.ReasonFlags.superseded)])
    assert _pending(store, issuer_id, "changed") == [2]
    assert store.precomputed(issuer_id, 2, "sha1") is None and store.precomputed(issuer_id, 3, "sha1") is not None


def test_a_batch_waits_for_an_import_in_flight_and_is_then_stored_as_changed(store, postgres_dsn):
    """The generator read statuses at counter C; an import on another connection holds the issuer row.

    The batch's write waits for the import's commit (the issuer row, read
    FOR SHARE) and is then stored unserved: its statuses predate the import.
    """
    issuer_id = store.register_issuer("ca", b"ca")
    _index(store, issuer_id, [1, 2])
    seen = _counter(store, issuer_id)
    importer = PostgresStore(postgres_dsn)
    try:
        with importer._connection() as conn, conn.transaction():
            importer._bump(conn, issuer_id)  # an import's first statement, not yet committed
            writer = threading.Thread(target=_sign, args=(store, issuer_id, [1, 2]), kwargs={"seq": seen})
            writer.start()
            time.sleep(0.3)
            assert writer.is_alive(), "the batch did not wait for the import's transaction"
        writer.join(10)
    finally:
        importer.close()
    assert _pending(store, issuer_id, "changed") == [1, 2]
    assert store.precomputed(issuer_id, 1, "sha1") is None


def test_one_store_holds_the_generator_claim_of_a_ca_and_names_itself(postgres_dsn):
    first, second = PostgresStore(postgres_dsn, upgrade=True), PostgresStore(postgres_dsn)
    try:
        one, two = first.register_issuer("one", b"ca-1"), first.register_issuer("two", b"ca-2")
        assert first.claim_generator(one) is None
        assert first.claim_generator(one) is None  # held: asking again keeps it
        holder = second.claim_generator(one)
        assert holder is not None and "certstatus generator" in holder and "pid" in holder
        assert second.claim_generator(two) is None  # one lock per CA
        first.close()
        # Released with the connection: once its backend has gone, which PostgreSQL does after
        # the client's close returns (a moment later on a loaded machine).
        deadline = time.monotonic() + 10
        while second.claim_generator(one) is not None:
            assert time.monotonic() < deadline, "the closed store's claim was never released"
            time.sleep(0.05)
    finally:
        first.close()
        second.close()


def test_a_killed_holders_claim_is_released_by_postgresql(postgres_dsn):
    store = PostgresStore(postgres_dsn, upgrade=True)
    issuer_id = store.register_issuer("ca", b"ca")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom certstatus.store.postgres import PostgresStore\n"
         f"s = PostgresStore({postgres_dsn!r})\nassert s.claim_generator({issuer_id}) is None\nprint('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert store.claim_generator(issuer_id) is not None
        holder.kill()
        holder.wait(10)
        deadline = time.monotonic() + 10
        while store.claim_generator(issuer_id) is not None:
            assert time.monotonic() < deadline, "the killed holder's lock was not released"
            time.sleep(0.05)
    finally:
        holder.kill()
        holder.wait(10)
        store.close()
