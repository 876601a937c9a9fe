"""A re-imported CRL or index with the same statuses leaves the generator and the caches alone (both backends).

CAs re-issue their CRL every few minutes or hours, mostly with the same
entries. Such an import writes the new source state (thisUpdate, nextUpdate)
and nothing else: the issuer's change counter stays, so the background
generator starts no pass and no worker drops the issuer's cached answers;
the freshness guard and readiness still see the new nextUpdate. A CRL with
one more entry is a change: the generator re-signs that serial, and only it.
"""

from __future__ import annotations

import datetime as dt
import queue
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from certstatus.app import build_application, ca_health, prepare
from certstatus.clock import ManualClock
from certstatus.demo_pki import sign_crl
from certstatus.generator.run import Generator
from certstatus.generator.schedule import GenerationLoop
from certstatus.health import readiness_problems
from certstatus.model import CertStatusRecord, RevokedEntry
from certstatus.pipeline.base import OCSPError
from certstatus.sources.crl import load_crl
from certstatus.sources.importer import CaTarget, import_ca
from certstatus.store.base import SourceState
from certstatus.store.changes import StoreChange
from certstatus.store.factory import open_store
from tests.precomputed_helpers import answer, ca_settings, copy_pki, parse, request_der, settings_for
from tests.sources_helpers import ca_of
from tests.store.test_changes import wait_for


class Ca:
    """The demo CA (CRL + index) in precomputed mode over ``database``, generated once, on a ManualClock."""

    def __init__(self, database: str | Path, pki, tmp_path: Path) -> None:
        self.pki = copy_pki(pki, tmp_path / "pki")
        self.clock = ManualClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        self.settings = settings_for(database, ca_settings(self.pki, "precomputed"))
        prepare(self.settings, self.clock)
        self.store = open_store(database)
        self.generator = Generator(self.settings, self.store, clock=self.clock, processes=0)
        self.loop = GenerationLoop(self.generator)
        self.issuer_id = self.generator.issuer_ids["demo"]
        self.crl_number = 1
        self.apps: list = []

    def reissue_crl(self, *extra: RevokedEntry, next_update: dt.datetime | None = None) -> None:
        """Sign and import the next CRL: the current entries plus ``extra``, thisUpdate = now."""
        cert, key = ca_of(self.pki)
        entries = load_crl(self.pki.crl.read_bytes(), cert, origin="crl").entries + extra
        self.crl_number += 1
        now = self.clock.now()
        crl = sign_crl(cert, key, entries, crl_number=self.crl_number, this_update=now,
                       next_update=next_update or now + dt.timedelta(days=7))  # fmt: skip
        self.pki.crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        self.import_all()

    def import_all(self) -> None:
        ca = self.settings.cas[0]
        cert = x509.load_pem_x509_certificate(ca.certificate.read_bytes())
        results = import_ca(self.store, CaTarget(ca, self.issuer_id, cert), self.clock)
        assert [r.error for r in results] == [None, None]

    def app(self, *, watch: bool):
        self.apps.append(build_application(self.settings, self.clock, watch=watch))
        return self.apps[-1]

    def counter(self) -> int:
        return self.store.change_counters()[self.issuer_id]

    def close(self) -> None:
        for app in self.apps:
            app.close()
        self.generator.close()
        self.store.close()


@pytest.fixture
def ca(database, demo_pki, tmp_path):
    made = Ca(database, demo_pki, tmp_path)
    yield made
    made.close()


def test_a_reissued_crl_with_the_same_entries_wakes_no_generator_and_drops_no_cache(ca) -> None:
    assert ca.loop.tick().signed > 0  # the first pass signs everything
    app = ca.app(watch=True)
    heard: queue.Queue[StoreChange] = queue.Queue()
    app.changes.subscribe(heard.put)  # the hub the answer cache, the edge cache and the freshness guard listen to
    good = request_der(ca.pki, "good")
    assert answer(app, good, ca.clock).source == "precomputed"
    assert answer(app, good, ca.clock).source == "cache"
    counter = ca.counter()

    ca.clock.advance(3600)
    ca.reissue_crl()  # CRL 2: same entries, new thisUpdate/nextUpdate; the index file read again as well
    assert ca.store.source_states(ca.issuer_id)["crl"].crl_number == 2
    assert ca.counter() == counter
    now = ca.clock.now()
    assert [ca.store.count_pending(ca.issuer_id, kind, now=now) for kind in ("changed", "missing")] == [0, 0]
    assert ca.loop.tick() is None  # no pass

    # A write to another issuer after it: once the watcher publishes that one, it has compared the
    # change counters after the re-import (the issuer's is the same: nothing announced for it); the
    # re-import itself is announced as a change of source states only (published after the counters):
    # the freshness guard re-reads, the caches keep the issuer.
    other = ca.store.register_issuer("other", b"other")
    ca.store.replace_source(other, SourceState("crl", "other", now, 0))
    wait_for(lambda: any(change.issuer_id == other for change in list(heard.queue)), "the other issuer's change")
    wait_for(lambda: any(change.issuer_id == ca.issuer_id for change in list(heard.queue)), "the re-import's change")
    mine = [change for change in list(heard.queue) if change.issuer_id == ca.issuer_id]
    assert {change.statuses for change in mine} == {False}
    assert answer(app, good, ca.clock).source == "cache"


def test_a_crl_with_one_more_entry_re_signs_exactly_that_serial(ca) -> None:
    ca.loop.tick()
    counter = ca.counter()
    serial = ca.pki.serials["good"]
    ca.clock.advance(3600)
    ca.reissue_crl(RevokedEntry(serial, ca.clock.now() - dt.timedelta(minutes=5), x509.ReasonFlags.key_compromise))
    assert ca.counter() == counter + 1
    assert ca.store.precomputed(ca.issuer_id, serial, "sha1") is None  # unserved until re-signed

    summary = ca.loop.tick()
    assert summary.signed == 2  # SHA-1 and SHA-256 of that one serial
    for algorithm in ("sha1", "sha256"):
        stored = parse(ca.store.precomputed(ca.issuer_id, serial, algorithm).der)
        assert stored.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert ca.loop.tick() is None


def test_a_stale_ca_is_fresh_again_after_a_reissued_crl_with_the_same_entries(ca) -> None:
    app = ca.app(watch=True)
    app.pipeline.guard.recheck_seconds = 3600.0  # only the watcher's signal can make it re-read in this test
    cas = ca_health(app.registry)
    next_update = ca.store.source_states(ca.issuer_id)["crl"].next_update
    ca.clock.set(next_update + dt.timedelta(minutes=1))
    good = request_der(ca.pki, "good")
    with pytest.raises(OCSPError) as refused:
        answer(app, good, ca.clock)
    assert refused.value.status is ocsp.OCSPResponseStatus.TRY_LATER
    assert readiness_problems(ca.store, cas, ca.clock.now()) != []
    counter = ca.counter()

    ca.reissue_crl()
    assert ca.counter() == counter  # same entries: the generator and the caches are left alone ...
    assert readiness_problems(ca.store, cas, ca.clock.now()) == []  # ... readiness reads the new nextUpdate ...

    def answered() -> bool:  # ... and so does the freshness guard (the watcher publishes a source change)
        try:
            return answer(app, good, ca.clock).der is not None
        except OCSPError:
            return False

    wait_for(answered, "the freshness guard seeing the new CRL")
    assert parse(answer(app, good, ca.clock).der).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_a_watched_worker_reads_a_cas_source_states_again_on_a_change_not_every_second(ca, monkeypatch) -> None:
    """With thousands of CAs a re-read per CA per second was a store read on nearly every request."""
    import types

    from certstatus.pipeline import freshness

    app = ca.app(watch=True)
    good = request_der(ca.pki, "good")
    answer(app, good, ca.clock)
    reads: list[int] = []
    read_states = app.store.source_states
    monkeypatch.setattr(app.store, "source_states", lambda issuer_id: reads.append(issuer_id) or read_states(issuer_id))
    later = freshness.time.monotonic() + 10.0  # ten seconds on, nothing imported
    monkeypatch.setattr(freshness, "time", types.SimpleNamespace(monotonic=lambda: later))
    answer(app, good, ca.clock)
    assert reads == []

    ca.clock.advance(60)
    ca.reissue_crl()  # the watcher announces the new source state: the next request reads it

    def reread() -> bool:
        answer(app, good, ca.clock)
        return ca.issuer_id in reads

    wait_for(reread, "the freshness guard re-reading after the watcher's announcement")


def test_a_re_read_index_file_with_one_more_certificate_signs_it_and_only_it(ca) -> None:
    ca.loop.tick()
    counter = ca.counter()
    ca.import_all()  # the same CRL (skipped: same number) and the same index file
    assert ca.counter() == counter and ca.loop.tick() is None
    serial = 0x7E57
    with ca.pki.index.open("a") as index:
        index.write(f"V\t300101000000Z\t\t{serial:04X}\tunknown\t/CN=new.demo.test\n")
    ca.import_all()
    assert ca.counter() == counter + 1
    assert ca.loop.tick().signed == 2
    assert ca.store.lookup(ca.issuer_id, serial) == CertStatusRecord(issued=True, revoked=None)
