"""CRLs fetched over real HTTP (http.server in a thread): conditional GET, failures, limits, schedule."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import threading
import time

import httpx
import pytest
from cryptography import x509

from certstatus.app import prepare
from certstatus.clock import ManualClock, SystemClock
from certstatus.config import CaSettings, ServerSettings, Settings
from certstatus.demo_pki import DemoPki, new_key
from certstatus.errors import SourceError
from certstatus.sources.fetch import Fetched, FetchPolicy, fetch
from certstatus.sources.importer import import_crls
from certstatus.sources.refresh import Refresher, register_targets
from certstatus.store.sqlite import SQLiteStore
from tests.crl_server import CrlServer
from tests.openssl_ca import OpenSslCa
from tests.sources_helpers import T0, crl_der, revoked, target

FAST = FetchPolicy(timeout=1.0, retries=1, backoff=0.0, max_bytes=100_000)
DEADLINE = 60.0  # seconds: a bound for a fetch that never ends, not a speed check


@pytest.fixture(scope="module")
def server():
    with CrlServer() as server:
        yield server


@pytest.fixture()
def store():
    store = SQLiteStore(":memory:")
    yield store
    store.close()


def test_conditional_get_gets_304_with_the_etag(server: CrlServer, demo_pki: DemoPki) -> None:
    server.publish("/etag.crl", crl_der(demo_pki, [revoked(1)], number=1))
    first = fetch(server.url("/etag.crl"), FAST)
    second = fetch(server.url("/etag.crl"), FAST, previous=first)
    assert first.data and first.etag and first.last_modified
    assert second.not_modified
    assert server.requests("/etag.crl")[1]["if-none-match"] == first.etag
    assert server.requests("/etag.crl")[1]["if-modified-since"] == first.last_modified


def test_http_500_is_retried_then_reported(server: CrlServer) -> None:
    server.fail("/down.crl", 500)
    waits: list[float] = []
    policy = dataclasses.replace(FAST, retries=2, backoff=0.5)
    with pytest.raises(SourceError, match=r"HTTP 500 \(after 3 attempts\)"):
        fetch(server.url("/down.crl"), policy, sleep=waits.append)
    assert waits == [0.5, 1.0]  # exponential backoff
    assert len(server.requests("/down.crl")) == 3


def test_http_404_is_not_retried(server: CrlServer) -> None:
    with pytest.raises(SourceError, match="HTTP 404: check the URL"):
        fetch(server.url("/missing.crl"), FAST)


def test_timeout_is_reported(server: CrlServer, demo_pki: DemoPki) -> None:
    server.publish("/slow.crl", crl_der(demo_pki, [], number=1))
    server.stall("/slow.crl", 2.5)
    with pytest.raises(SourceError, match="timed out after 1 s"):
        fetch(server.url("/slow.crl"), dataclasses.replace(FAST, retries=0))


def _finished(call, within: float = DEADLINE):
    """Run ``call()`` in a thread; its result or exception, or AssertionError when it is still running after ``within`` s."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), f"still running after {within} s"
    return outcome[0]


def test_a_trickling_server_is_cut_off_at_the_deadline_of_the_whole_attempt(server: CrlServer, demo_pki: DemoPki) -> None:
    """One byte a second keeps every read short; the attempt still ends at fetch_timeout (the CRL would take minutes)."""
    server.publish("/trickle.crl", crl_der(demo_pki, [revoked(n) for n in range(1, 20)], number=1))
    server.trickle("/trickle.crl", 1.0)
    error = _finished(lambda: fetch(server.url("/trickle.crl"), dataclasses.replace(FAST, timeout=2.0, retries=0)))
    assert isinstance(error, SourceError) and "timed out after 2 s" in error.problem, error
    assert "whole download" in error.problem


def test_a_name_lookup_that_hangs_is_cut_off_at_the_deadline_too(monkeypatch) -> None:
    """A resolver that does not answer (getaddrinfo, which asyncio runs in a thread, blocked until released)
    must not hold the attempt: the deadline covers the name lookup as well."""
    release = threading.Event()
    resolve = socket.getaddrinfo

    def hanging(host, *args, **kwargs):
        if host in ("hangs.invalid", b"hangs.invalid"):
            release.wait(60)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        error = _finished(lambda: fetch("http://hangs.invalid/ca.crl", dataclasses.replace(FAST, retries=0)), within=30)
    finally:
        release.set()
    assert isinstance(error, SourceError) and "timed out after 1 s" in error.problem, error


def test_a_redirect_to_another_host_is_refused_by_default(server: CrlServer, demo_pki: DemoPki) -> None:
    server.publish("/moved/ca.crl", crl_der(demo_pki, [revoked(1)], number=1))
    elsewhere = f"http://localhost:{server.port}/moved/ca.crl"  # another host name, whatever it resolves to
    server.redirect("/away.crl", elsewhere)
    with pytest.raises(SourceError, match=r"redirects to http://localhost:\d+/moved/ca.crl, another scheme, host or port") as refused:
        fetch(server.url("/away.crl"), FAST)
    assert 'follow_redirects = "any"' in refused.value.problem
    assert server.requests("/moved/ca.crl") == []  # never asked
    assert fetch(server.url("/away.crl"), dataclasses.replace(FAST, redirects="any")).data  # allowed: followed


def test_a_ca_imports_through_a_redirect_to_another_host_only_with_follow_redirects_any(
    server: CrlServer, demo_pki: DemoPki, store
) -> None:
    server.publish("/moved/ca2.crl", crl_der(demo_pki, [revoked(4)], number=1))
    server.redirect("/away2.crl", f"http://localhost:{server.port}/moved/ca2.crl")
    refused = import_crls(store, target(store, demo_pki, fetch_retries=0), [server.url("/away2.crl")], ManualClock(T0))
    assert refused[0].error is not None and "another scheme, host or port" in refused[0].error
    allowed = target(store, demo_pki, name="trusting", fetch_retries=0, follow_redirects="any")
    assert import_crls(store, allowed, [server.url("/away2.crl")], ManualClock(T0))[0].error is None
    assert store.lookup(allowed.issuer_id, 4).revoked is not None


def test_a_redirect_on_the_same_server_is_followed_unless_redirects_are_off(server: CrlServer, demo_pki: DemoPki) -> None:
    server.publish("/here/ca.crl", crl_der(demo_pki, [revoked(1)], number=1))
    server.redirect("/here.crl", "/here/ca.crl")
    assert fetch(server.url("/here.crl"), FAST).data == fetch(server.url("/here/ca.crl"), FAST).data
    with pytest.raises(SourceError, match='follow_redirects is "none"'):
        fetch(server.url("/here.crl"), dataclasses.replace(FAST, redirects="none"))


def test_an_https_origin_never_follows_a_redirect_to_http() -> None:
    from certstatus.sources.fetch import _check_redirect

    with pytest.raises(SourceError, match="from https to http is never followed"):
        _check_redirect("https://ca.example/ca.crl", httpx.URL("http://ca.example/ca.crl"), "any")
    _check_redirect("http://ca.example/ca.crl", httpx.URL("https://ca.example/ca.crl"), "any")  # upgrade: allowed


def test_body_over_the_size_limit_is_refused(server: CrlServer) -> None:
    server.publish("/huge.crl", b"\x30" * 200_000)
    with pytest.raises(SourceError, match="larger than the limit of 100000 bytes"):
        fetch(server.url("/huge.crl"), FAST)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(SourceError, match="scheme 'ftp' is not supported"):
        fetch("ftp://127.0.0.1/ca.crl", FAST)


def test_base_and_delta_urls_import_in_order_whatever_the_list_order(server: CrlServer, demo_pki: DemoPki, store) -> None:
    server.publish("/o/base.crl", crl_der(demo_pki, [revoked(1, x509.ReasonFlags.certificate_hold)], number=20))
    server.publish("/o/delta.crl", crl_der(demo_pki, [revoked(1, x509.ReasonFlags.remove_from_crl), revoked(2)], number=21, delta_base=20))
    tgt = target(store, demo_pki, fetch_timeout=1.0, fetch_retries=0)
    results = import_crls(store, tgt, [server.url("/o/delta.crl"), server.url("/o/base.crl")], ManualClock(T0))
    assert [(r.kind, r.error) for r in results] == [("delta", None), ("crl", None)]
    assert store.lookup(tgt.issuer_id, 1) is None
    assert store.lookup(tgt.issuer_id, 2).revoked is not None


@pytest.mark.parametrize(
    "bad, message",
    [
        ("truncated", "not a readable CRL"),
        ("mis-signed", "signature does not verify"),
        ("other-issuer", "CRL issuer is"),
        ("older", "cRLNumber 4 is older than the imported 5"),
        ("oversize", "larger than the limit"),
        ("http-500", "HTTP 500"),
    ],
)
def test_bad_crl_over_http_keeps_the_imported_data_serving(
    server: CrlServer, demo_pki: DemoPki, tmp_path_factory, store, bad: str, message: str
) -> None:
    path = f"/bad/{bad}.crl"
    tgt = target(store, demo_pki, fetch_timeout=1.0, fetch_retries=0, max_crl_bytes=50_000)
    server.publish(path, crl_der(demo_pki, [revoked(5)], number=5))
    clock = ManualClock(T0)
    assert import_crls(store, tgt, [server.url(path)], clock)[0].error is None
    before = store.source_states(tgt.issuer_id)
    good = crl_der(demo_pki, [], number=6)
    if bad == "truncated":
        server.publish(path, good[: len(good) // 2])
    elif bad == "mis-signed":
        server.publish(path, crl_der(demo_pki, [], number=6, key=new_key("ec")))
    elif bad == "other-issuer":
        other = OpenSslCa(tmp_path_factory.mktemp("other-ca"))  # a real `openssl ca` CRL of another CA
        other.gencrl()
        server.publish(path, other.last_crl_der())
    elif bad == "older":
        server.publish(path, crl_der(demo_pki, [], number=4))
    elif bad == "oversize":
        server.publish(path, b"\x30" * 60_000)
    else:
        server.fail(path, 500)
    result = import_crls(store, tgt, [server.url(path)], clock)[0]
    assert result.error is not None and message in result.error
    assert store.source_states(tgt.issuer_id) == before
    assert store.lookup(tgt.issuer_id, 5).revoked is not None


def test_refresher_fetches_at_next_update_backs_off_on_failure_and_uses_304(
    server: CrlServer, demo_pki: DemoPki, store
) -> None:
    path = "/sched/ca.crl"
    server.publish(path, crl_der(demo_pki, [revoked(1)], number=1, hours=2))
    tgt = target(store, demo_pki, crl=(server.url(path),), fetch_timeout=1.0, fetch_retries=0, refresh_interval=3600 * 6)
    settings = Settings(ServerSettings(), (tgt.settings,))
    clock = ManualClock(T0)
    refresher = Refresher(settings, lambda: store, clock, min_interval=30)
    targets = {"demo": tgt}

    assert [r.entries for r in refresher.run_pass(store, targets)] == [1]
    status = refresher.status()[0]
    assert status.next_attempt == T0 + dt.timedelta(hours=2)  # the CRL's nextUpdate

    clock.advance(3600)
    assert refresher.run_pass(store, targets) == []  # not due yet
    clock.advance(3600)
    again = refresher.run_pass(store, targets)
    assert again[0].unchanged and "304" in again[0].note  # conditional GET answered 304

    server.fail(path, 500)
    clock.advance(7200)
    failed = refresher.run_pass(store, targets)
    assert "HTTP 500" in failed[0].error
    first_retry = refresher.status()[0].next_attempt - clock.now()
    clock.advance(first_retry.total_seconds())
    refresher.run_pass(store, targets)
    second_retry = refresher.status()[0].next_attempt - clock.now()
    assert (first_retry.total_seconds(), second_retry.total_seconds()) == (30, 60)
    assert refresher.status()[0].failures == 2
    assert store.lookup(tgt.issuer_id, 1).revoked is not None  # still serving the imported CRL

    server.publish(path, crl_der(demo_pki, [revoked(1), revoked(2)], number=2, this_update=T0.replace(hour=14), hours=48))
    forced = refresher.run_pass(store, targets, force=True)
    assert (forced[0].error, forced[0].entries) == (None, 2)
    assert refresher.status()[0].failures == 0


def test_a_trickling_origin_does_not_delay_another_cas_refresh(server: CrlServer, demo_pki: DemoPki, tmp_path) -> None:
    """The refresher's own thread: CA "slow" (listed first) trickles one byte a second, CA "fast"'s new CRL is
    written while that download is still running; "slow" then fails at its fetch_timeout."""
    server.publish("/slow/ca.crl", crl_der(demo_pki, [revoked(1)], number=1))
    server.trickle("/slow/ca.crl", 1.0)
    server.publish("/fast/ca.crl", crl_der(demo_pki, [revoked(2)], number=7))
    database = tmp_path / "store.sqlite3"
    cas = tuple(
        CaSettings(name=name, certificate=demo_pki.ca_cert, signer_certificate=demo_pki.ocsp_cert,
                   signer_key=demo_pki.ocsp_key, crl=(server.url(f"/{name}/ca.crl"),), fetch_timeout=10.0, fetch_retries=0)
        for name in ("slow", "fast")
    )  # fmt: skip
    settings = Settings(ServerSettings(database=database), cas)
    reader = SQLiteStore(database)
    ids = {name: t.issuer_id for name, t in register_targets(reader, cas).items()}
    refresher = Refresher(settings, lambda: SQLiteStore(database), SystemClock())
    refresher.start()
    try:
        first = refresher.trigger()  # every CA now, as a SIGHUP does
        _wait_for("fast's CRL in the store", lambda: reader.lookup(ids["fast"], 2) is not None)
        slow = next(s for s in refresher.status() if s.ca == "slow")
        assert slow.last_attempt is None and not first.done()  # slow's download has not ended: it ends at its deadline
        _wait_for("slow's answer trickling", lambda: server.trickling("/slow/ca.crl"))  # it was not refused either
        # Another forced pass fetches fast again and waits for slow's download in progress (no second one).
        second = refresher.trigger()
        assert [(r.ca, r.error is None, r.unchanged) for r in first.result(DEADLINE)] == [
            ("slow", False, False), ("fast", True, False),
        ]
        results = second.result(DEADLINE)
        assert [(r.ca, r.unchanged) for r in results] == [("slow", False), ("fast", True)]
        assert "timed out after 10 s" in results[0].error
        assert len(server.requests("/slow/ca.crl")) == 1
        slow = next(s for s in refresher.status() if s.ca == "slow")
        assert "timed out after 10 s" in slow.last_error
        assert reader.source_states(ids["slow"]) == {} and reader.source_states(ids["fast"])["crl"].crl_number == 7
    finally:
        refresher.stop()
        reader.close()


def test_start_up_downloads_the_crls_of_the_cas_side_by_side(server: CrlServer, demo_pki: DemoPki, tmp_path) -> None:
    """Two CAs whose CRL servers trickle: the start-up import (also SIGHUP's) downloads both at once, so the
    second download begins long before the first one's deadline (one after the other, it would begin at it),
    and start-up waits about one fetch_timeout, not two."""
    paths = ("/side-a/ca.crl", "/side-b/ca.crl")
    for path in paths:
        server.publish(path, crl_der(demo_pki, [revoked(1)], number=1))
        server.trickle(path, 1.0)
    cas = tuple(
        CaSettings(name=f"side-{n}", certificate=demo_pki.ca_cert, signer_certificate=demo_pki.ocsp_cert,
                   signer_key=demo_pki.ocsp_key, crl=(server.url(path),), fetch_timeout=10.0, fetch_retries=0)
        for n, path in enumerate(paths)
    )  # fmt: skip
    results = _finished(lambda: prepare(Settings(ServerSettings(database=tmp_path / "store.sqlite3"), cas)))
    assert [("timed out after 10 s" in (r.error or "")) for r in results] == [True, True], results
    (first,), (second,) = (server.arrivals(path) for path in paths)
    assert abs(second - first) < 5.0  # half the deadline: a generous bound on starting together


def _wait_for(what: str, check) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE} s"
        time.sleep(0.05)


def test_fetched_validators_are_kept_only_after_a_good_import(server: CrlServer, demo_pki: DemoPki, store) -> None:
    path = "/validators.crl"
    server.publish(path, crl_der(demo_pki, [], number=1, key=new_key("ec")))
    tgt = target(store, demo_pki, fetch_timeout=1.0, fetch_retries=0)
    previous: dict[str, Fetched] = {}
    assert import_crls(store, tgt, [server.url(path)], ManualClock(T0), previous=previous)[0].error
    assert previous == {}  # a refused CRL is fetched in full next time, not answered 304


def test_freshest_crl_of_the_complete_crl_leads_to_its_delta(server: CrlServer, demo_pki: DemoPki, store) -> None:
    """RFC 5280 §5.2.6: the complete CRL names where its delta CRLs are; only the base is configured."""
    delta_url = server.url("/fresh/delta.crl")
    server.publish("/fresh/base.crl", crl_der(demo_pki, [revoked(1, x509.ReasonFlags.certificate_hold)], number=30,
                                              freshest_crl=[delta_url, "file:///etc/passwd"]))
    server.publish("/fresh/delta.crl", crl_der(demo_pki, [revoked(1, x509.ReasonFlags.remove_from_crl), revoked(2)],
                                               number=31, delta_base=30))
    tgt = target(store, demo_pki, crl=(server.url("/fresh/base.crl"),), fetch_timeout=1.0, fetch_retries=0)
    results = import_crls(store, tgt, [server.url("/fresh/base.crl")], ManualClock(T0))
    assert [(r.origin, r.kind, r.error) for r in results] == [
        (server.url("/fresh/base.crl"), "crl", None), (delta_url, "delta", None),
    ]  # the file: URI of the extension is never read
    assert store.lookup(tgt.issuer_id, 1) is None  # the delta released the hold
    assert store.lookup(tgt.issuer_id, 2).revoked is not None
    assert store.source_states(tgt.issuer_id)["delta"].origin == delta_url


def test_freshest_crl_pointing_at_a_complete_crl_is_refused(server: CrlServer, demo_pki: DemoPki, store) -> None:
    server.publish("/fresh-bad/base.crl", crl_der(demo_pki, [revoked(1)], number=40,
                                                  freshest_crl=[server.url("/fresh-bad/other.crl")]))
    server.publish("/fresh-bad/other.crl", crl_der(demo_pki, [], number=41))  # complete, not a delta
    tgt = target(store, demo_pki, fetch_timeout=1.0, fetch_retries=0)
    base, other = import_crls(store, tgt, [server.url("/fresh-bad/base.crl")], ManualClock(T0))
    assert base.error is None
    assert other.error is not None and "not a delta CRL" in other.error
    assert store.lookup(tgt.issuer_id, 1).revoked is not None  # the base alone serves
    assert "delta" not in store.source_states(tgt.issuer_id)


def test_follow_freshest_crl_false_fetches_only_the_configured_urls(server: CrlServer, demo_pki: DemoPki, store) -> None:
    server.publish("/fresh-off/base.crl", crl_der(demo_pki, [], number=50, freshest_crl=[server.url("/fresh-off/delta.crl")]))
    server.publish("/fresh-off/delta.crl", crl_der(demo_pki, [revoked(3)], number=51, delta_base=50))
    tgt = target(store, demo_pki, fetch_timeout=1.0, fetch_retries=0, follow_freshest_crl=False)
    results = import_crls(store, tgt, [server.url("/fresh-off/base.crl")], ManualClock(T0))
    assert [r.kind for r in results] == ["crl"]
    assert server.requests("/fresh-off/delta.crl") == []
    assert store.lookup(tgt.issuer_id, 3) is None


def test_refresher_schedules_a_followed_delta_by_its_own_next_update(server: CrlServer, demo_pki: DemoPki, store) -> None:
    base_path, delta_path = "/fresh-sched/base.crl", "/fresh-sched/delta.crl"
    server.publish(base_path, crl_der(demo_pki, [], number=60, hours=24, freshest_crl=[server.url(delta_path)]))
    server.publish(delta_path, crl_der(demo_pki, [revoked(7)], number=61, delta_base=60, hours=1))
    tgt = target(store, demo_pki, crl=(server.url(base_path),), fetch_timeout=1.0, fetch_retries=0, refresh_interval=3600 * 24)
    settings = Settings(ServerSettings(), (tgt.settings,))
    clock = ManualClock(T0)
    refresher = Refresher(settings, lambda: store, clock, min_interval=30)
    targets = {"demo": tgt}
    assert [r.kind for r in refresher.run_pass(store, targets)] == ["crl", "delta"]
    schedule = {s.origin: s.next_attempt for s in refresher.status()}
    assert schedule == {server.url(base_path): T0 + dt.timedelta(hours=24), server.url(delta_path): T0 + dt.timedelta(hours=1)}

    # An hour later only the delta is due; the CA has published a newer one.
    server.publish(delta_path, crl_der(demo_pki, [revoked(7), revoked(8)], number=62, delta_base=60,
                                       this_update=T0 + dt.timedelta(hours=1), hours=1))
    clock.advance(3600)
    results = refresher.run_pass(store, targets)
    assert [(r.origin, r.entries) for r in results] == [(server.url(delta_path), 2)]
    assert store.lookup(tgt.issuer_id, 8).revoked is not None

    # A new process (restart) finds the followed delta in the store and keeps its schedule.
    again = Refresher(settings, lambda: store, clock, min_interval=30)
    again.seed(store, targets)
    assert {s.origin for s in again.status()} == {server.url(base_path), server.url(delta_path)}
