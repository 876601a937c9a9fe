"""A flood of distinct unknown serials (and unknown issuers, from distinct addresses) cannot grow memory without bound.

In-process: a real application (config → prepare → build_application, SQLite
store, real signers, metrics and audit on) serving a live-mode CA, a
cached-mode CA and a CA forwarded to a second, real certstatus application
(served over HTTP from a thread). Every per-request structure is checked
against its bound after the flood: the answer cache (bytes), the forward
cache (entries), the issuer registry, the trusted-proxy memo, the audit queue
and the metric label sets (which must not take serials or client addresses).
Python's own allocations (tracemalloc) must not grow with the number of
requests once the bounded structures are full: the second half of the flood
may add less than 100 bytes per request (an answer's DER alone is ~500).
"""

from __future__ import annotations

import gc
import http.server
import random
import threading
import tracemalloc

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from prometheus_client import CollectorRegistry

import certstatus.pipeline.build as build
from certstatus.app import build_application, prepare
from certstatus.config import load_config
from certstatus.metrics import RequestMetrics
from certstatus.pipeline.cache import AnswerCacheStep
from certstatus.pipeline.forward import Forward, ForwardedAnswerCache
from certstatus.protocol.certid import issuer_hashes

pytestmark = pytest.mark.integration

CACHE_BYTES = 64 * 1024  # the answer cache of the cached-mode CA: a few dozen answers
FORWARD_ENTRIES = 50
PROXIES = [f"10.0.0.{i}" for i in range(1, 33)]  # the TCP peers: trusted proxies
FLOOD = 500  # distinct unknown serials per target in each half of the flood


class _Remote(http.server.BaseHTTPRequestHandler):
    application = None

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["content-length"]))
        response = self.application.http.handle("POST", b"/", {}, body, "127.0.0.1")
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name.decode(), value.decode())
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def remote(demo_pki_rsa, tmp_path_factory):
    folder = tmp_path_factory.mktemp("remote")
    config = folder / "certstatus.toml"
    config.write_text(
        f'[server]\ndatabase = "{folder / "store.sqlite3"}"\n\n'
        f'[ca.rsa]\ncertificate = "{demo_pki_rsa.ca_cert}"\ncrl = ["{demo_pki_rsa.crl}"]\n'
        f'signer_certificate = "{demo_pki_rsa.ocsp_cert}"\nsigner_key = "{demo_pki_rsa.ocsp_key}"\n'
    )
    settings = load_config(config)
    prepare(settings)
    started: dict[str, object] = {}
    ready = threading.Event()

    def serve() -> None:  # the store is SQLite: the application lives in the thread that serves it
        application = started["application"] = build_application(settings, watch=False)
        handler = type("Remote", (_Remote,), {"application": application})
        server = started["server"] = http.server.HTTPServer(("127.0.0.1", 0), handler)
        ready.set()
        server.serve_forever()
        application.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(60)
    yield f"http://127.0.0.1:{started['server'].server_address[1]}/"
    started["server"].shutdown()
    thread.join(30)


@pytest.fixture(scope="module")
def front(demo_pki, demo_pki_rsa, remote, tmp_path_factory):
    folder = tmp_path_factory.mktemp("front")
    config = folder / "certstatus.toml"
    config.write_text(
        f'[server]\ndatabase = "{folder / "store.sqlite3"}"\nresponse_cache_bytes = {CACHE_BYTES}\n\n'
        f'[tls]\ntrusted_proxies = ["10.0.0.0/8"]\n\n'
        f'[audit]\nlog = "{folder / "audit.log"}"\n\n'
        f'[ca.live]\ncertificate = "{demo_pki.ca_cert}"\ncrl = ["{demo_pki.crl}"]\nindex = "{demo_pki.index}"\n'
        f'signer_certificate = "{demo_pki.ocsp_cert}"\nsigner_key = "{demo_pki.ocsp_key}"\n'
        f'path = "/live"\n\n'
        f'[ca.rsa]\ncertificate = "{demo_pki_rsa.ca_cert}"\nforward = ["{remote}"]\nforward_timeout = "10s"\n'
    )
    settings = load_config(config)
    prepare(settings)
    made: dict[str, object] = {}

    class SmallForward(Forward):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, cache=ForwardedAnswerCache(FORWARD_ENTRIES), **kwargs)
            made["forward"] = self

    original = build.Forward
    build.Forward = SmallForward
    registry = CollectorRegistry()
    try:
        application = build_application(settings, watch=False, metrics=RequestMetrics(registry))
    finally:
        build.Forward = original
    application.made = made
    application.metrics_registry = registry
    yield application
    application.close()


def _hashes(certificate_path) -> tuple[bytes, bytes]:
    return issuer_hashes(x509.load_pem_x509_certificate(certificate_path.read_bytes()), "sha1")


def _request(name_hash: bytes, key_hash: bytes, serial: int) -> bytes:
    built = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1()).build()
    return built.public_bytes(serialization.Encoding.DER)


def _flood(application, targets, rng: random.Random, count: int) -> dict[str, int]:
    """Send ``count`` requests of distinct random serials to each target; return the certStatus / status tally."""
    tally: dict[str, int] = {}
    for _ in range(count):
        for path, name_hash, key_hash in targets:
            serial = rng.getrandbits(120) | (1 << 119)
            client = PROXIES[rng.randrange(len(PROXIES))]
            headers = {b"x-forwarded-for": f"198.51.{rng.randrange(256)}.{rng.randrange(256)}".encode()}
            response = application.http.handle("POST", path, headers, _request(name_hash, key_hash, serial), client)
            parsed = ocsp.load_der_ocsp_response(response.body)
            key = parsed.response_status.name
            if parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
                key = parsed.certificate_status.name
            tally[key] = tally.get(key, 0) + 1
    return tally


def _label_sets(registry: CollectorRegistry) -> set[tuple]:
    return {(sample.name, tuple(sorted(sample.labels.items()))) for family in registry.collect() for sample in family.samples}


def test_flood_of_unknown_serials_stays_within_every_bound(front, demo_pki, demo_pki_rsa):
    application = front
    live, rsa = _hashes(demo_pki.ca_cert), _hashes(demo_pki_rsa.ca_cert)
    rng = random.Random(6960)
    targets = [
        (b"/live", *live),                              # live mode: signed on the spot, nothing kept
        (b"/", *rsa),                                    # forwarded: answers kept in the forward cache
        (b"/", rng.randbytes(20), rng.randbytes(20)),    # an issuer nobody serves: unauthorized
    ]
    metrics_registry = application.metrics_registry
    warm = _flood(application, targets, rng, 100)
    assert warm["UNAUTHORIZED"] == 100 and warm.get("UNKNOWN", 0) + warm.get("GOOD", 0) == 200, warm
    labels_after_warm_up = _label_sets(metrics_registry)

    gc.collect()
    tracemalloc.start()
    try:
        first = _flood(application, targets, rng, FLOOD)
        gc.collect()
        after_first = tracemalloc.get_traced_memory()[0]
        second = _flood(application, targets, rng, FLOOD)
        gc.collect()
        after_second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert first["UNAUTHORIZED"] == second["UNAUTHORIZED"] == FLOOD
    print(f"traced memory: {after_first} bytes after the first half, {after_second - after_first:+d} after the second")
    assert "TRY_LATER" not in first and "TRY_LATER" not in second, (first, second)

    forward = application.made["forward"]
    assert len(forward.cache._entries) == FORWARD_ENTRIES  # full, and no larger
    assert len(application.registry.cas) == 2 and len(application.registry._by_hashes) == 2 * len(
        next(iter(application.registry.cas)).hashes)
    proxies = application.http.proxies  # its memo of peer addresses, flooded directly (cheaper than requests)
    for i in range(10_000):
        assert proxies.trusted(f"10.{i >> 8 & 255}.{i & 255}.1") and not proxies.trusted(f"2001:db8::{i:x}")
    assert len(proxies._trusted) <= 4096
    assert _label_sets(metrics_registry) == labels_after_warm_up  # no label per serial or client
    for name, labels in labels_after_warm_up:
        values = dict(labels)
        assert set(values) <= {"ca", "response_status", "source", "cert_status", "result", "le"}, (name, labels)
        assert values.get("ca", "") in {"live", "rsa", ""}, (name, labels)
    # 3 × FLOOD more requests in the second half; each answer is ~500 bytes of DER alone.
    grown = after_second - after_first
    assert grown < 3 * FLOOD * 100, f"traced memory grew by {grown} bytes over {3 * FLOOD} requests"


def test_cached_mode_answer_cache_stays_within_its_bytes(demo_pki, tmp_path):
    config = tmp_path / "certstatus.toml"
    config.write_text(
        f'[server]\ndatabase = "{tmp_path / "store.sqlite3"}"\nresponse_cache_bytes = {CACHE_BYTES}\n\n'
        f'[ca.cached]\ncertificate = "{demo_pki.ca_cert}"\ncrl = ["{demo_pki.crl}"]\nindex = "{demo_pki.index}"\n'
        f'signer_certificate = "{demo_pki.ocsp_cert}"\nsigner_key = "{demo_pki.ocsp_key}"\nmode = "cached"\n'
    )
    settings = load_config(config)
    prepare(settings)
    made = []

    class Recorded(AnswerCacheStep):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    original = build.AnswerCacheStep
    build.AnswerCacheStep = Recorded
    try:
        application = build_application(settings, watch=False)
    finally:
        build.AnswerCacheStep = original
    try:
        rng = random.Random(5019)
        tally = _flood(application, [(b"/", *_hashes(demo_pki.ca_cert))], rng, 400)
        assert tally == {"UNKNOWN": 400}
        cache = made[0].cache
        assert 0 < cache.size <= CACHE_BYTES
        assert len(cache) < 400 and len(cache) == len(cache._entries)
    finally:
        application.close()
