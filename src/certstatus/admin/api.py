"""The admin HTTP API, sans-IO: (method, path, headers, body) → status, JSON body.

Served on its own listener (``[admin]``), never on the OCSP port. Every
request must be authenticated: a client certificate verified by the TLS
layer (``client_ca``), or ``Authorization: Bearer <token>`` matching the
token file. Each push is one store transaction.

=======  ===========================  ==============================================
method   path                         body → answer
=======  ===========================  ==============================================
GET      /metrics                     → Prometheus text format (all workers summed)
GET      /health, /ready              → liveness, readiness (text)
GET      /v1/sources                  → ages of every source + refresh schedule
POST     /v1/reload                   → re-import every source now; results
POST     /v1/ca/NAME/revoke           {"serial", "revocation_time"?, "reason"?, "invalidity_date"?}
POST     /v1/ca/NAME/unrevoke         {"serial"}
POST     /v1/ca/NAME/issue            {"serials": [...]}: a batch of issued serials
POST     /v1/ca/NAME/changes          {"changes": [{"action", "serial", ...}, ...]}
POST     /v1/ca/NAME/crl              a CRL or delta CRL, DER or PEM (application/pkix-crl)
=======  ===========================  ==============================================

Answers: 200 with JSON; 400 malformed input, 401 not authenticated, 403
pushes off for the CA, 404 unknown CA or path, 405, 413 body too large,
422 CRL refused (the reason in ``error``), 503 reload timed out.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from certstatus.clock import Clock
from certstatus.errors import SourceError
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.health import source_ages
from certstatus.sources.importer import CaTarget, ImportResult, import_crl_data
from certstatus.sources.push import PushError, apply_push, find_target, parse_change
from certstatus.sources.refresh import Refresher
from certstatus.store.base import StatusStore

log = logging.getLogger("certstatus.admin")


@dataclass(frozen=True, slots=True)
class AdminResponse:
    """HTTP status and JSON-serialisable body; or ``raw`` bytes of ``content_type`` (metrics, probes)."""

    status: int
    body: dict
    raw: bytes | None = None
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, indent=1).encode() + b"\n"


def result_json(result: ImportResult) -> dict:
    """One import result as JSON."""
    return dataclasses.asdict(result)


class AdminApi:
    """Route and answer admin requests against one store (used from one thread).

    ``token`` is the expected bearer token (None: only client certificates
    authenticate); ``refresher`` serves /v1/reload (None: 404);
    ``extra_routes`` maps (method, path) to more endpoints (metrics, probes).
    """

    def __init__(
        self,
        store_factory: Callable[[], StatusStore],
        targets_factory: Callable[[StatusStore], Mapping[str, CaTarget]],
        clock: Clock,
        *,
        token: str | None,
        refresher: Refresher | None = None,
        feed: ChangeFeed | None = None,
        max_body_bytes: int = 256 * 1024 * 1024,
        reload_timeout: float = 300.0,
        extra_routes: Mapping[tuple[str, str], Callable[[], AdminResponse]] | None = None,
    ) -> None:
        self._store_factory = store_factory
        self._targets_factory = targets_factory
        self._store: StatusStore | None = None
        self._targets: Mapping[str, CaTarget] = {}
        self.clock = clock
        self.token = token
        self.refresher = refresher
        self.feed = feed
        self.max_body_bytes = max_body_bytes
        self.reload_timeout = reload_timeout
        self.extra_routes = dict(extra_routes or {})

    @property
    def store(self) -> StatusStore:
        if self._store is None:  # opened in the serving thread (SQLite connections are per thread)
            self._store = self._store_factory()
            self._targets = self._targets_factory(self._store)
        return self._store

    def authenticated(self, headers: Mapping[str, str], client_certificate: bool) -> bool:
        """True for a verified client certificate or the right bearer token."""
        if client_certificate:
            return True
        header = headers.get("authorization", "")
        if self.token is None or not header.lower().startswith("bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self.token.encode())

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, *, client_certificate: bool = False
    ) -> AdminResponse:
        """Answer one request (``headers`` with lower-case names). Never raises."""
        if not self.authenticated(headers, client_certificate):
            return AdminResponse(401, {"error": "authenticate with the admin token (Authorization: Bearer ...) or a client certificate"})
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        try:
            return self._route(method, parts, body)
        except PushError as exc:
            log.info("admin %s %s refused: %s", method, path, exc.problem)
            return AdminResponse(exc.status, {"error": exc.problem})
        except Exception:
            log.exception("admin %s %s failed", method, path)
            return AdminResponse(500, {"error": "internal error; see the server log"})

    def _route(self, method: str, parts: list[str], body: bytes) -> AdminResponse:
        extra = self.extra_routes.get((method, "/" + "/".join(parts)))
        if extra is not None:  # GET /metrics, /health, /ready (certstatus.server.lifecycle)
            return extra()
        if parts == ["v1", "sources"]:
            return self._expect(method, "GET") or self._sources()
        if parts == ["v1", "reload"]:
            return self._expect(method, "POST") or self._reload()
        if len(parts) == 4 and parts[:2] == ["v1", "ca"]:
            if (wrong := self._expect(method, "POST")) is not None:
                return wrong
            if len(body) > self.max_body_bytes:
                return AdminResponse(413, {"error": f"body over {self.max_body_bytes} bytes"})
            _ = self.store
            name, action = parts[2], parts[3]
            if action == "crl":
                return self._crl(name, body)
            if action in ("revoke", "unrevoke", "issue", "changes"):
                return self._push(name, action, body)
        return AdminResponse(404, {"error": "no such admin endpoint; see docs/sources.md"})

    @staticmethod
    def _expect(method: str, wanted: str) -> AdminResponse | None:
        return None if method == wanted else AdminResponse(405, {"error": f"use {wanted}"})

    def _push(self, name: str, action: str, body: bytes) -> AdminResponse:
        target = find_target(self._targets, name)
        try:
            payload = json.loads(body or b"{}")
        except ValueError as exc:
            raise PushError(f"body is not JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise PushError("body must be a JSON object")
        now = self.clock.now()
        if action == "issue":
            serials = payload.get("serials")
            if not isinstance(serials, list) or not serials:
                raise PushError('issue needs {"serials": ["1A2B", ...]}')
            changes = [parse_change({"action": "issue", "serial": s}, now) for s in serials]
        elif action == "changes":
            items = payload.get("changes")
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items) or not items:
                raise PushError('changes needs {"changes": [{"action": ..., "serial": ...}, ...]}')
            changes = [parse_change(item, now) for item in items]
        else:
            changes = [parse_change({**payload, "action": action}, now)]
        apply_push(self.store, target, changes, self.clock, self.feed)
        log.info("admin push to CA %s: %d change(s)", name, len(changes))
        return AdminResponse(200, {"ca": name, "applied": len(changes)})

    def _crl(self, name: str, body: bytes) -> AdminResponse:
        target = self._targets.get(name)
        if target is None:
            raise PushError(f"no CA named {name!r} is configured", 404)
        try:
            result = import_crl_data(self.store, target, body, f"admin upload for CA {name}", self.clock, self.feed)
        except SourceError as exc:
            log.warning("CA %s: uploaded CRL refused: %s", name, exc.problem)
            return AdminResponse(422, {"error": exc.problem})
        return AdminResponse(200, result_json(result))

    def _sources(self) -> AdminResponse:
        ages = source_ages(self.store, ((n, t.issuer_id) for n, t in self._targets.items()), self.clock.now())
        refresh = [s.as_json() for s in self.refresher.status()] if self.refresher else []
        return AdminResponse(200, {"sources": [a.as_json() for a in ages], "refresh": refresh})

    def _reload(self) -> AdminResponse:
        if self.refresher is None:
            return AdminResponse(404, {"error": "no refresher runs in this process"})
        try:
            results = self.refresher.trigger().result(self.reload_timeout)
        except FutureTimeout:
            return AdminResponse(503, {"error": f"reload still running after {self.reload_timeout:g} s"})
        return AdminResponse(200, {"results": [result_json(r) for r in results]})
