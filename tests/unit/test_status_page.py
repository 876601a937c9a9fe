"""The status page's parts without sockets: traffic samples, verdicts, sessions, paging, the admin routes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path

from prometheus_client import CollectorRegistry

from certstatus.admin.api import AdminApi, AdminResponse
from certstatus.admin.page_routes import PageRoutes
from certstatus.admin.session import Sessions
from certstatus.clock import UTC, ManualClock
from certstatus.config import CaSettings
from certstatus.generator.metrics import GeneratorMetrics
from certstatus.generator.signing import BatchResult
from certstatus.metrics import RequestMetrics
from certstatus.server.overload import refused_counter
from certstatus.signing.signer_set import SignerState
from certstatus.statuspage.facts import CaFacts, PageFacts, SourceFacts
from certstatus.statuspage.page import StatusPage
from certstatus.statuspage.traffic import TrafficRing, quantile
from certstatus.statuspage.verdict import AMBER, GREEN, RED, judge

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOKEN = "page-test-token-0123456789abcdef"


# -- traffic ------------------------------------------------------------------------------


def _registry():
    registry = CollectorRegistry()
    return registry, RequestMetrics(registry), refused_counter(registry), GeneratorMetrics(registry)


def test_ring_reads_rates_answers_and_latency_from_the_request_metrics():
    registry, metrics, refused, generator = _registry()
    ring = TrafficRing(slots=4)
    metrics.requests.labels("ca1", "successful", "edge").inc(5)
    ring.add(1000.0, registry.collect())
    metrics.requests.labels("ca1", "successful", "edge").inc(100)
    metrics.requests.labels("ca1", "tryLater", "").inc(20)
    metrics.requests.labels("ca2", "successful", "live").inc(30)  # first seen now: counts from 0
    for _ in range(90):
        metrics.latency.labels("edge").observe(0.0002)
    for _ in range(10):
        metrics.latency.labels("live").observe(0.02)
    refused.labels("connections").inc(3)
    generator.pending.labels("ca1").set(40)
    generator.batch(BatchResult("ca1", signed=8, removed=0))
    ring.add(1010.0, registry.collect())

    ca1 = ring.ca("ca1")
    assert ca1.seconds == 10.0
    assert ca1.requests_per_second == (12.0,) and ca1.try_later_per_second == (2.0,)
    assert ca1.by_status == {"successful": 100.0, "tryLater": 20.0} and ca1.by_source == {"edge": 100.0, "": 20.0}
    assert ring.ca("ca2").requests == 30.0 and ring.ca("nobody").requests == 0
    assert ring.totals() == {"ca1": (120.0, 20.0), "ca2": (30.0, 0.0)}
    overall = ring.overall()
    assert overall.traffic.requests == 150.0 and overall.refused == {"connections": 3.0}
    assert overall.refused_per_second == (0.3,)
    assert 0.0001 < overall.latency[0.5] <= 0.00025 and 0.01 < overall.latency[0.99] <= 0.025
    assert ring.generators()["ca1"].pending == 40.0 and ring.generators()["ca1"].signed == 8.0


def test_ring_keeps_the_last_slots_only():
    registry, metrics, _, _ = _registry()
    ring = TrafficRing(slots=3)
    for second in range(6):
        metrics.requests.labels("ca", "successful", "live").inc(second)  # cumulative 0, 1, 3, 6, 10, 15
        ring.add(float(second), registry.collect())
    traffic = ring.ca("ca")
    assert traffic.seconds == 2.0 and traffic.requests_per_second == (4.0, 5.0) and traffic.requests == 9.0


def test_quantile_interpolates_inside_the_bucket_as_histogram_quantile_does():
    buckets = {0.1: 50.0, 0.2: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == 0.1
    assert math.isclose(quantile(0.75, buckets), 0.15)
    assert quantile(0.99, {0.1: 0.0, math.inf: 10.0}) == 0.1  # above the largest bound: that bound
    assert quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None


# -- verdicts -----------------------------------------------------------------------------


def _signer(name="ocsp", *, days=300.0, warning=False, state="active") -> SignerState:
    return SignerState("ca", name, "CN=r", 1, "ecdsa-sha256", NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=days),
                       state, False, days * 86400, False, warning)


def _crl(next_in: float, **changes) -> SourceFacts:
    return SourceFacts("crl", "http://ca.test/ca.crl", NOW - dt.timedelta(hours=1), NOW - dt.timedelta(hours=1),
                       NOW + dt.timedelta(seconds=next_in), 3, 3600.0, NOW + dt.timedelta(minutes=5), **changes)


def _ca(name="ca", **changes) -> CaFacts:
    facts = CaFacts(name, "live", CaSettings(name=name, certificate=Path("ca.pem")), sources=(_crl(7 * 86400),),
                    signers=(_signer(),), window_seconds=300.0)
    return dataclasses.replace(facts, **changes)


def test_a_ca_that_is_not_ready_is_red_with_the_readiness_words():
    verdict = judge(_ca(problems=("data stale since 2026-11-30 12:00:00Z (CRL nextUpdate)",)), NOW)
    assert verdict.color == RED and verdict.reasons == ("data stale since 2026-11-30 12:00:00Z (CRL nextUpdate)",)


def test_amber_says_what_an_operator_should_act_on():
    assert judge(_ca(), NOW).color == GREEN
    assert judge(_ca(), NOW).reason == "ready, CRL fresh for 7 days, signer ocsp valid for 300 days"
    cases = {
        "CRL nextUpdate in 30 min": _ca(sources=(_crl(1800),)),
        "CRL past its nextUpdate 2026-12-01 11:50Z by 10 min; tryLater in 50 min (stale_grace)":
            _ca(sources=(_crl(-600),), settings=CaSettings(name="ca", certificate=Path("c"), stale_grace=3600)),
        "served anyway (on_stale = serve)": _ca(sources=(_crl(-600),), settings=CaSettings(name="ca", certificate=Path("c"), on_stale="serve")),
        "last import of http://ca.test/ca.crl failed (3 times in a row): HTTP 404": _ca(sources=(_crl(86400, last_error="HTTP 404", failures=3),)),
        "signer ocsp expires in 4 days (2026-12-05 12:00Z) and no successor is installed": _ca(signers=(_signer(days=4, warning=True),)),
        "12 tryLater answers in the last 5 min": _ca(try_later=12.0, requests=40.0),
    }  # fmt: skip
    for words, ca in cases.items():
        verdict = judge(ca, NOW)
        assert verdict.color == AMBER and words in verdict.reason, (words, verdict)


def test_a_backlog_is_amber_only_when_nothing_was_signed_in_the_window():
    from certstatus.statuspage.traffic import Generator

    assert judge(_ca(generator=Generator(pending=500, signed=0)), NOW).reason.startswith("500 serials wait to be signed again")
    assert judge(_ca(generator=Generator(pending=500, signed=2000)), NOW).color == GREEN
    assert judge(_ca(generator=Generator(pending=500, signed=0), window_seconds=10.0), NOW).color == GREEN  # too soon to say


# -- sessions -----------------------------------------------------------------------------


def test_a_session_is_valid_until_it_expires_and_only_under_its_token():
    sessions = Sessions(TOKEN, lifetime=3600)
    value = sessions.issue(1_000_000.0)
    assert TOKEN not in value
    assert sessions.valid(value, 1_000_000.0) and sessions.valid(value, 1_003_599.0)
    assert not sessions.valid(value, 1_003_600.0)
    assert not Sessions("another-token-0123456789abcdef").valid(value, 1_000_000.0)
    expiry, mac = value.split(".")
    assert not sessions.valid(f"{int(expiry) + 1}.{mac}", 1_000_000.0)  # a later expiry is not signed
    for junk in ("", ".", "abc.def", "²³.00", f"{expiry}.", "9" * 40 + "." + mac):
        assert not sessions.valid(junk, 1_000_000.0)


# -- paging -------------------------------------------------------------------------------


def _page(cas, **kwargs) -> StatusPage:
    facts = PageFacts(NOW, tuple(cas), TrafficRing().overall())
    return StatusPage(lambda: facts, TrafficRing(), **kwargs)


def _shown(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('id="ca-')[1:]]


def test_first_screen_lists_what_is_not_green_and_pages_through_many_cas():
    cas = [judged(_ca(f"ca{i:05d}")) for i in range(10_000)]
    cas[1234] = judged(_ca("ca01234", problems=("no revocation data imported",)))
    cas[777] = judged(_ca("ca00777", try_later=3.0))
    cas.sort(key=lambda ca: ({RED: 0, AMBER: 1, GREEN: 2}[ca.verdict.color], ca.name))
    page = _page(cas, page_size=50)
    assert _shown(page.html("")) == ["ca01234", "ca00777"]
    everything = page.html("state=all&page=3")
    assert _shown(everything)[0] == "ca00098" and len(_shown(everything)) == 50  # red, amber, then green by name
    assert "page 3 of 200" in everything and 'href="/?state=all&amp;page=4"' in everything
    assert _shown(page.html("state=all&q=CA0999"))[:2] == ["ca09990", "ca09991"]
    assert _shown(page.html("state=nonsense&page=-4")) == ["ca01234", "ca00777"]  # bad values: the defaults
    assert "page 200 of 200" in page.html("state=green&page=99999")


def test_all_green_shows_every_ca_with_a_note():
    html = _page([judged(_ca("a")), judged(_ca("b"))]).html("")
    assert _shown(html) == ["a", "b"] and "Every CA is green (2); showing all." in html


def test_text_from_outside_is_escaped():
    ca = judged(_ca("<script>x</script>", sources=(_crl(86400, last_error="<b>bad</b> & worse"),)))
    html = _page([ca]).html("q=%3Cscript")
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html and "&lt;b&gt;bad&lt;/b&gt; &amp; worse" in html


def test_facts_older_than_their_lifetime_are_gathered_again_in_the_background():
    import threading

    gathered, release = [], threading.Event()

    def gather() -> PageFacts:
        if gathered:
            release.wait(10)
        gathered.append(len(gathered))
        return PageFacts(NOW + dt.timedelta(seconds=len(gathered)), (judged(_ca(f"ca{len(gathered)}")),), TrafficRing().overall())

    page = StatusPage(gather, TrafficRing(), facts_seconds=0.0)
    assert _shown(page.html("")) == ["ca1"]  # the first request waits for the first gathering
    assert _shown(page.html("")) == ["ca1"]  # the next ones render what is at hand while a gathering runs
    release.set()
    for _ in range(100):
        if len(gathered) == 2 and page._gathering is None:
            break
        threading.Event().wait(0.05)
    assert _shown(page.html("")) == ["ca2"]


def judged(ca: CaFacts) -> CaFacts:
    return dataclasses.replace(ca, verdict=judge(ca, NOW))


# -- the admin routes -----------------------------------------------------------------------


def _api(token: str | None = TOKEN) -> tuple[AdminApi, ManualClock]:
    clock = ManualClock(NOW)
    metrics = {("GET", "/metrics"): lambda: AdminResponse(200, {}, b"metrics", "text/plain")}
    api = AdminApi(lambda: None, lambda store: {}, clock, token=token, extra_routes=metrics)  # the page needs no store here
    api.pages = PageRoutes(lambda query: f"<p>page {query}</p>", api.authenticate, clock, token=token, secure=False)
    return api, clock


FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_the_page_admits_the_api_token_or_a_session_from_the_login_form():
    api, clock = _api()
    refused = api.handle("GET", "/", {}, b"")
    assert refused.status == 401 and b'name="token"' in refused.raw and ("X-Frame-Options", "DENY") in refused.headers
    assert api.handle("GET", "/?state=all", {"authorization": f"Bearer {TOKEN}"}, b"").raw == b"<p>page state=all</p>"

    login = api.handle("POST", "/login", FORM, f"token={TOKEN}".encode())
    headers = dict(login.headers)
    assert login.status == 303 and headers["Location"] == "/"
    assert headers["Set-Cookie"].endswith("; Path=/; Max-Age=28800; HttpOnly; SameSite=Strict")
    session = {"cookie": headers["Set-Cookie"].split(";", 1)[0]}
    assert api.handle("GET", "/", session, b"").status == 200
    assert api.handle("GET", "/metrics", session, b"").status == 401  # the cookie opens the page only
    clock.advance(8 * 3600)
    assert api.handle("GET", "/", session, b"").status == 401  # expired


def test_login_refuses_a_wrong_token_and_anything_but_a_small_form():
    api, _ = _api()
    wrong = api.handle("POST", "/login", FORM, b"token=guess")
    assert wrong.status == 401 and not [h for h in wrong.headers if h[0] == "Set-Cookie"] and b"not the admin token" in wrong.raw
    assert api.handle("POST", "/login", {"content-type": "application/json"}, b'{"token": "x"}').status == 415
    assert api.handle("POST", "/login", FORM, b"token=" + b"x" * 5000).status == 413
    assert api.handle("GET", "/login", {}, b"").status == 405
    assert api.handle("POST", "/", FORM, b"").status == 405
    logout = api.handle("POST", "/logout", FORM, b"")
    assert logout.status == 303 and "Max-Age=0" in dict(logout.headers)["Set-Cookie"]


def test_without_a_token_the_page_asks_for_an_operator_certificate():
    api, _ = _api(token=None)
    refused = api.handle("GET", "/", {}, b"")
    assert refused.status == 401 and b"client certificate" in refused.raw and b'name="token"' not in refused.raw
    assert api.handle("POST", "/login", FORM, b"token=x").status == 404


def test_the_cookie_is_secure_and_host_only_with_tls():
    clock = ManualClock(NOW)
    routes = PageRoutes(lambda query: "", lambda headers, chain: None, clock, token=TOKEN, secure=True)
    cookie = dict(routes.respond("POST", "/login", f"token={TOKEN}".encode()).headers)["Set-Cookie"]
    assert cookie.startswith("__Host-certstatus-session=") and cookie.endswith("; Secure")
