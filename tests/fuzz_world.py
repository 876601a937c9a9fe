"""What the fuzzers aim at: every parser of outside bytes, set up once over a demo PKI.

Shared by the hypothesis property tests (tests/unit/test_fuzz_inputs.py) and
the coverage-guided atheris harness (bench/fuzz.py). :class:`FuzzWorld` holds a
real application (config → prepare → build_application, SQLite store, real
signer), a real admin API on a push-fed CA, and valid seed inputs of every
kind (requests written by ``cryptography`` and ``openssl ocsp``, the demo CRL,
index.txt, issued list, a config). Each ``feed_*`` method runs one input
through one parser and returns what came out; it raises only what the parser
does not document, which is what the fuzzers report as a finding.

Documented outcomes per target:

=============  ==================================================  ====================================
target         parser                                              allowed outcome
=============  ==================================================  ====================================
request        ``OCSPHttpHandler.handle`` (POST body)              HTTP < 500 or 503 tryLater, OCSP body
get            ``OCSPHttpHandler.handle`` (GET path)               same; 404 only for non-base64 paths
crl            :func:`certstatus.sources.crl.load_crl`             CrlData or SourceError
index          :func:`certstatus.sources.index_txt.parse_index`    IndexData or SourceError
issued         :func:`certstatus.sources.issued.parse_issued`      serials or SourceError
push           ``AdminApi.handle`` (POST /v1/ca/NAME/changes ...)  200/400/404/413 JSON, never 500
config         :func:`certstatus.config.load_config`               Settings or ConfigError
framing        ``HttpProtocol`` (raw HTTP/1.1 bytes, split into    well-formed responses in order, no
               chunks by the variant byte)                         5xx but tryLater, close after refusals
=============  ==================================================  ====================================

The framing rules are spelled out in tests/fuzz_framing.py.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.admin.api import AdminApi
from certstatus.app import Application, build_application, prepare
from certstatus.clock import UTC, ManualClock
from certstatus.config import load_config
from certstatus.demo_pki import DemoPki, make_demo_pki
from certstatus.errors import ConfigError, SourceError
from certstatus.server.http import HttpResponse
from certstatus.sources.crl import load_crl
from certstatus.sources.index_txt import parse_index
from certstatus.sources.issued import parse_issued
from certstatus.store.factory import open_configured_store
from tests.fuzz_framing import FramingEdge, split_points

TARGETS = ("request", "get", "crl", "index", "issued", "push", "config", "framing")
TOKEN = "fuzz-admin-token-0123456789abcdef"
OCSP_REQUEST = {b"content-type": b"application/ocsp-request"}
PUSH_PATHS = ("/v1/ca/pushed/changes", "/v1/ca/pushed/revoke", "/v1/ca/pushed/unrevoke", "/v1/ca/pushed/issue", "/v1/ca/nobody/revoke")


class Finding(AssertionError):
    """A parser did something its documentation does not allow (the fuzzers' bug report)."""


def config_text(pki: DemoPki, database: Path) -> str:
    """A configuration serving ``pki`` from CRL + index + issued, plus a push-fed CA on /pushed."""
    return f"""\
[server]
listen = "127.0.0.1:8080"
database = "{database}"
max_request_bytes = 10000

[admin]
listen = "127.0.0.1:8081"
token_file = "admin.token"

[ca.demo]
certificate = "{pki.ca_cert}"
crl = "{pki.crl}"
index = "{pki.index}"
issued = "{pki.issued}"
signer_certificate = "{pki.ocsp_cert}"
signer_key = "{pki.ocsp_key}"
validity = "1d"

[ca.pushed]
certificate = "{pki.root_cert}"
signer_certificate = "{pki.root_cert}"
signer_key = "{pki.root_key}"
push = true
path = "/pushed"
"""


def openssl_request(pki: DemoPki, leaf: str, folder: Path, *, nonce: bool) -> bytes:
    """A request written by the real ``openssl ocsp -reqout``."""
    out = folder / f"{leaf}-{nonce}.der"
    subprocess.run(
        ["openssl", "ocsp", "-issuer", str(pki.ca_cert), "-cert", str(pki.leaves[leaf]), "-reqout", str(out),
         "-nonce" if nonce else "-no_nonce"],
        check=True, capture_output=True,
    )  # fmt: skip
    return out.read_bytes()


def cryptography_request(pki: DemoPki, leaf: str, algorithm: hashes.HashAlgorithm, nonce: bytes | None) -> bytes:
    """A request written by ``cryptography``'s OCSPRequestBuilder."""
    issuer = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(pki.leaves[leaf].read_bytes())
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def framing_seeds(requests: list[bytes]) -> list[bytes]:
    """HTTP/1.1 byte streams: keep-alive pipelines of POST, GET and HEAD, chunked bodies,
    Expect: 100-continue, HTTP/1.0, Connection: close, refusals (oversize, bad framing)."""
    import base64

    def post(der: bytes, extra: bytes = b"") -> bytes:
        return b"POST / HTTP/1.1\r\nHost: ocsp\r\nContent-Type: application/ocsp-request\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(der), der)

    def get(der: bytes, method: bytes = b"GET", version: bytes = b"1.1", extra: bytes = b"") -> bytes:
        return b"%s /%s HTTP/%s\r\nHost: ocsp\r\n%s\r\n" % (method, base64.b64encode(der), version, extra)

    good, revoked, unknown = requests[0], requests[1], requests[2]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (revoked[:10], revoked[10:]))
    return [
        post(good) + get(revoked) + get(unknown, b"HEAD") + post(good, b"Connection: close\r\n"),
        post(unknown, b"Expect: 100-continue\r\n") + get(good, version=b"1.0"),
        b"POST /pushed HTTP/1.1\r\nHost: ocsp\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n" + get(good),
        get(good, version=b"1.0", extra=b"Connection: keep-alive\r\n") + get(revoked, extra=b"If-None-Match: *\r\n"),
        b"GET /health HTTP/1.1\r\n\r\nGET /ready HTTP/1.1\r\n\r\nPUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
        post(good) + b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        post(good) + b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n",
        post(good) + b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        post(good) + b"GET / HTTP/1.1\r\nX-Folded: a\r\n  b\r\n\r\n" + get(good),
        b"GET /%s HTTP/1.1\nHost: ocsp\n\n" % base64.b64encode(good) + b"GET / HTTP/1.1\r\nX: \x00\r\n\r\n",
    ]


class FuzzWorld:
    """A demo PKI, a served application, an admin API and the seed inputs, in ``folder``."""

    def __init__(self, folder: Path, pki: DemoPki, app: Application, admin: AdminApi, issuer: x509.Certificate) -> None:
        self.folder = folder
        self.pki = pki
        self.app = app
        self.admin = admin
        self.issuer = issuer
        self.seeds: dict[str, list[bytes]] = {}
        self.framing = FramingEdge(app.responder)

    @classmethod
    def build(cls, folder: Path, pki: DemoPki | None = None) -> "FuzzWorld":
        """Make (or reuse) the demo PKI, import its data and build the application."""
        folder.mkdir(parents=True, exist_ok=True)
        pki = pki or make_demo_pki(folder / "pki")
        (folder / "admin.token").write_text(TOKEN + "\n")
        (folder / "admin.token").chmod(0o600)
        config = folder / "certstatus.toml"
        config.write_text(config_text(pki, folder / "status.sqlite3"))
        settings = load_config(config)
        clock = ManualClock(dt.datetime.now(UTC).replace(microsecond=0))
        prepare(settings, clock)
        app = build_application(settings, clock=clock, watch=False)
        from certstatus.sources.refresh import register_targets

        admin = AdminApi(lambda: open_configured_store(settings), lambda store: register_targets(store, settings.cas), clock, token=TOKEN)
        issuer = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        world = cls(folder, pki, app, admin, issuer)
        world.seeds = world._seeds(config)
        return world

    def __repr__(self) -> str:
        return f"FuzzWorld({self.folder})"

    def close(self) -> None:
        """Close the application's store and the admin API's."""
        self.app.close()
        self.framing.close()
        if self.admin._store is not None:
            self.admin._store.close()

    def _seeds(self, config: Path) -> dict[str, list[bytes]]:
        pki = self.pki
        requests = [
            cryptography_request(pki, "good", hashes.SHA1(), None),
            cryptography_request(pki, "revoked-keycompromise", hashes.SHA256(), b"\x01" * 16),
            cryptography_request(pki, "unknown", hashes.SHA512(), b"nonce"),
            openssl_request(pki, "good", self.folder, nonce=True),
            openssl_request(pki, "revoked-unspecified", self.folder, nonce=False),
        ]
        import base64

        crl_pem = pki.crl.read_bytes()
        crl_der = x509.load_pem_x509_crl(crl_pem).public_bytes(serialization.Encoding.DER)
        pushes = [
            json.dumps({"changes": [{"action": "revoke", "serial": "1a2b", "reason": "keyCompromise",
                                     "revocation_time": "2026-01-02T03:04:05Z"}, {"action": "issue", "serial": "0x77"}]}).encode(),
            json.dumps({"serial": "1A:2B", "reason": "superseded", "invalidity_date": "2025-12-31T00:00:00+01:00"}).encode(),
            json.dumps({"serials": ["1", "2", "ff"]}).encode(),
        ]  # fmt: skip
        return {
            "request": requests,
            "get": [base64.b64encode(r) for r in requests],
            "crl": [crl_der, crl_pem],
            "index": [pki.index.read_bytes()],
            "issued": [pki.issued.read_bytes()],
            "push": pushes,
            "config": [config.read_bytes()],
            "framing": framing_seeds(requests),
        }

    # --- one input through one parser -------------------------------------------------------

    def feed(self, target: str, data: bytes, selector: int = 0) -> object:
        """Run ``data`` through ``target`` (one of :data:`TARGETS`); ``selector`` picks a variant."""
        return getattr(self, f"feed_{target}")(data, selector)

    def feed_request(self, data: bytes, selector: int = 0) -> HttpResponse:
        path = b"/pushed" if selector % 2 else b"/"
        return self._ocsp("POST", path, OCSP_REQUEST, data)

    def feed_get(self, data: bytes, selector: int = 0) -> HttpResponse:
        prefix = (b"/", b"/pushed/", b"//", b"/x/")[selector % 4]
        response = self._ocsp("HEAD" if selector & 4 else "GET", prefix + data, {}, b"")
        if response.status == 404 and prefix != b"/x/":
            from certstatus.protocol.request import MalformedRequest, decode_get_path

            try:
                decode_get_path(data.decode("latin-1").split("?", 1)[0])
            except MalformedRequest:
                return response
            if len(data) < 20000:
                raise Finding(f"GET {data[:80]!r} decodes as base64 yet was answered 404")
        return response

    def _ocsp(self, method: str, path: bytes, headers: dict[bytes, bytes], body: bytes) -> HttpResponse:
        response = self.app.http.handle(method, path, headers, body, "127.0.0.1")
        if not isinstance(response, HttpResponse):
            raise Finding(f"handle returned {type(response).__name__}, not an HttpResponse")
        if response.status >= 500 and response.status != 503:
            raise Finding(f"{method} {path[:80]!r} answered HTTP {response.status}")
        content_type = dict(response.headers).get(b"content-type", b"")
        if response.status in (200, 503) and content_type == b"application/ocsp-response" and method != "HEAD":
            status = x509_ocsp.load_der_ocsp_response(response.body).response_status
            if status is OCSPResponseStatus.INTERNAL_ERROR:
                raise Finding(f"{method} {path[:80]!r} answered internalError (a bug, see the log)")
        return response

    def feed_framing(self, data: bytes, selector: int = 0) -> object:
        """Raw bytes on one connection of the HTTP edge, cut into chunks by ``selector``."""
        return self.framing.run_stream(split_points(data, selector))

    def feed_crl(self, data: bytes, selector: int = 0) -> object:
        try:
            return load_crl(data, self.issuer, origin="fuzz")
        except SourceError as exc:
            return exc

    def feed_index(self, data: bytes, selector: int = 0) -> object:
        try:
            return parse_index(data, origin="fuzz")
        except SourceError as exc:
            return exc

    def feed_issued(self, data: bytes, selector: int = 0) -> object:
        try:
            return parse_issued(data, origin="fuzz")
        except SourceError as exc:
            return exc

    def feed_push(self, data: bytes, selector: int = 0) -> object:
        path = PUSH_PATHS[selector % len(PUSH_PATHS)]
        answer = self.admin.handle("POST", path, {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}, data)
        if answer.status >= 500:
            raise Finding(f"admin push {path} {data[:80]!r} answered HTTP {answer.status}: {answer.body}")
        answer.encode()
        return answer

    def feed_config(self, data: bytes, selector: int = 0) -> object:
        with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".toml") as handle:
            handle.write(data)
            handle.flush()
            try:
                return load_config(Path(handle.name))
            except ConfigError as exc:
                return exc
