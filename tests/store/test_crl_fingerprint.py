"""A complete or delta CRL read again from the same bytes is neither parsed, verified nor written (both backends).

A restart, SIGHUP or the refresher seeing a new mtime reads the CRL again; when
its bytes are those the source state's fingerprint names (the same CA
certificate, origin and kind), the import is "unchanged (same file)" and
``load_crl`` is not called. A complete CRL naming delta CRLs in a FreshestCRL
extension the CA follows gets no fingerprint: its deltas are found by parsing
it, so it is parsed every time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certstatus.clock import ManualClock
from certstatus.sources import importer
from certstatus.sources.importer import import_crls, source_fingerprint
from certstatus.sources.refresh import Refresher
from tests.precomputed_helpers import copy_pki, settings_for
from tests.sources_helpers import T0, crl_der, revoked, target

DELTA_URL = "http://127.0.0.1:9/delta.crl"  # never fetched in these tests: no server there


@pytest.fixture
def pki(demo_pki, tmp_path):
    return copy_pki(demo_pki, tmp_path / "pki")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + dt.timedelta(minutes=5))


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """The origins ``load_crl`` is called for (it still parses)."""
    seen: list[str] = []
    real = importer.load_crl

    def counting(data, issuer, *, origin):
        seen.append(origin)
        return real(data, issuer, origin=origin)

    monkeypatch.setattr(importer, "load_crl", counting)
    return seen


def write_crls(tmp_path, pki, *, number: int = 1, delta: bool = False, **extra) -> list[str]:
    """The complete CRL (and a delta based on it) as files; their paths."""
    base = tmp_path / "base.crl"
    base.write_bytes(crl_der(pki, [revoked(0x1001)], number=number, **extra))
    if not delta:
        return [str(base)]
    change = tmp_path / "delta.crl"
    change.write_bytes(crl_der(pki, [revoked(0x1002)], number=number + 1, delta_base=number, hours=1))
    return [str(base), str(change)]


def imported(store, pki, clock, tmp_path, **settings):
    """The demo CA with one complete CRL file (one entry) imported; (target, origin)."""
    [origin] = write_crls(tmp_path, pki)
    ca = target(store, pki, crl=(origin,), **settings)
    import_crls(store, ca, [origin], clock)
    return ca, origin


def test_the_same_complete_and_delta_files_again_are_not_parsed(store, pki, clock, parses, tmp_path) -> None:
    origins = write_crls(tmp_path, pki, delta=True)
    ca = target(store, pki, crl=tuple(origins))
    first = import_crls(store, ca, origins, clock)
    assert [(r.kind, r.error, r.unchanged) for r in first] == [("crl", None, False), ("delta", None, False)]
    states = store.source_states(ca.issuer_id)
    for kind, origin in (("crl", origins[0]), ("delta", origins[1])):
        data = hashlib.sha256(open(origin, "rb").read()).hexdigest()
        assert states[kind].fingerprint == source_fingerprint(ca, kind, origin, data, states[kind].imported_at)
    counters, marks = store.change_counters(), store.source_marks()
    parses.clear()

    clock.advance(300)
    for origin in origins:
        os.utime(origin)  # a new mtime, the same content
    again = import_crls(store, ca, origins, clock)

    assert parses == []
    assert [(r.kind, r.unchanged, r.note, r.entries, r.error) for r in again] == [
        ("crl", True, "same file", 1, None), ("delta", True, "same file", 1, None),
    ]  # fmt: skip
    assert store.source_states(ca.issuer_id) == states  # import times of the first import
    assert (store.change_counters(), store.source_marks()) == (counters, marks)
    assert store.lookup(ca.issuer_id, 0x1001).revoked and store.lookup(ca.issuer_id, 0x1002).revoked


def test_a_new_crl_is_parsed_and_applied(store, pki, clock, parses, tmp_path) -> None:
    ca, origin = imported(store, pki, clock, tmp_path)
    before = store.source_states(ca.issuer_id)["crl"]
    clock.advance(300)
    (tmp_path / "base.crl").write_bytes(crl_der(pki, [revoked(0x1001), revoked(0x1003)], number=2))

    [result] = import_crls(store, ca, [origin], clock)

    after = store.source_states(ca.issuer_id)["crl"]
    assert (result.unchanged, result.entries, parses[-1]) == (False, 2, origin)
    assert after.crl_number == 2 and after.fingerprint not in (None, before.fingerprint)
    assert store.lookup(ca.issuer_id, 0x1003).revoked


def test_the_same_crl_in_other_bytes_is_parsed_and_still_unchanged(store, pki, clock, parses, tmp_path) -> None:
    """The same CRL as PEM after DER: other bytes, so parsed; the same cRLNumber, so not rewritten."""
    ca, origin = imported(store, pki, clock, tmp_path)
    state = store.source_states(ca.issuer_id)["crl"]
    der = (tmp_path / "base.crl").read_bytes()
    (tmp_path / "base.crl").write_bytes(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
    parses.clear()

    [result] = import_crls(store, ca, [origin], clock)

    assert (parses, result.unchanged, result.note) == ([origin], True, "same CRL")
    assert store.source_states(ca.issuer_id)["crl"] == state


def test_a_complete_crl_naming_deltas_is_parsed_every_time(store, pki, clock, parses, tmp_path, monkeypatch) -> None:
    [origin] = write_crls(tmp_path, pki, freshest_crl=[DELTA_URL])
    ca = target(store, pki, crl=(origin,))
    fetched = []
    real_fetch = importer.fetch

    def no_network(where, policy, previous=None):
        if where == DELTA_URL:
            fetched.append(where)
        return real_fetch(where if where != DELTA_URL else str(tmp_path / "missing.crl"), policy, previous)

    monkeypatch.setattr(importer, "fetch", no_network)
    first = import_crls(store, ca, [origin], clock)
    assert [r.origin for r in first] == [origin, DELTA_URL] and first[1].error  # the delta was looked for
    assert store.source_states(ca.issuer_id)["crl"].fingerprint is None

    again = import_crls(store, ca, [origin], clock)

    assert parses.count(origin) == 2 and len(fetched) == 2  # its FreshestCRL read again: the delta looked for again
    assert (again[0].unchanged, again[0].note) == (True, "same CRL")


def test_a_crl_imported_without_following_deltas_is_parsed_once_following_is_on(store, pki, clock, parses, tmp_path) -> None:
    [origin] = write_crls(tmp_path, pki, freshest_crl=[DELTA_URL])
    ca = target(store, pki, crl=(origin,), follow_freshest_crl=False)
    import_crls(store, ca, [origin], clock)
    assert store.source_states(ca.issuer_id)["crl"].fingerprint is not None
    assert import_crls(store, ca, [origin], clock)[0].note == "same file"
    parses.clear()
    following = dataclasses.replace(ca, settings=dataclasses.replace(ca.settings, follow_freshest_crl=True))

    results = import_crls(store, following, [origin], clock)

    assert parses[0] == origin and [r.origin for r in results] == [origin, DELTA_URL]  # the delta is looked for


def test_a_refused_crl_is_read_again_and_the_restored_file_skipped(store, pki, clock, parses, tmp_path) -> None:
    ca, origin = imported(store, pki, clock, tmp_path)
    state = store.source_states(ca.issuer_id)["crl"]
    good = (tmp_path / "base.crl").read_bytes()
    (tmp_path / "base.crl").write_bytes(good[:-10])  # truncated

    refused = import_crls(store, ca, [origin], clock)[0]
    assert refused.error is not None and import_crls(store, ca, [origin], clock)[0].error == refused.error
    assert store.source_states(ca.issuer_id)["crl"] == state

    (tmp_path / "base.crl").write_bytes(good)
    parses.clear()
    assert import_crls(store, ca, [origin], clock)[0].note == "same file" and parses == []


def test_the_refresher_skips_a_touched_crl_file(database, store, pki, clock, parses, tmp_path) -> None:
    ca, origin = imported(store, pki, clock, tmp_path)
    settings = settings_for(database, ca.settings)
    refresher = Refresher(settings, lambda: store, clock, file_poll=1)
    refresher.seed(store, {"demo": ca})
    stamp = os.stat(origin).st_mtime + 10
    os.utime(origin, (stamp, stamp))
    clock.advance(2)
    parses.clear()

    [polled] = refresher.run_pass(store, {"demo": ca})

    assert (polled.unchanged, polled.note, parses) == (True, "same file", [])
