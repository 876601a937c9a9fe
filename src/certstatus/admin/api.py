"""The admin HTTP API, sans-IO: (method, path, headers, body) → status, JSON body.

Served on its own listener (``[admin]``, :mod:`certstatus.admin.server`), never
on the OCSP port. A request is decided in two steps, so that nothing of the
body is read for a request that will be refused:

* :meth:`AdminApi.admit` looks at the request head only: authentication (a
  client certificate that passes :class:`~certstatus.admin.operators.OperatorPolicy`,
  or ``Authorization: Bearer <token>`` matching the token file), the endpoint,
  the CA (it exists, it accepts pushes), the Content-Type and the declared
  Content-Length;
* :meth:`AdminApi.respond` answers an admitted request from its body.

Every POST of the API names its body's media type, which a browser cannot send
across sites without asking first (a CORS preflight): a page visited by an
operator whose browser holds an operator certificate cannot make it push. The
status page's login and logout forms are the exception, and open nothing but
the page (:mod:`certstatus.admin.page_routes`).

=======  ===========================  =====================  ==============================================
method   path                         Content-Type           body → answer
=======  ===========================  =====================  ==============================================
GET      /                                                   → the status page (HTML; also with a session cookie)
POST     /login, /logout              HTML form (urlencoded) the status page's session cookie (page_routes.py)
GET      /metrics                                            → Prometheus text format (all workers summed)
GET      /health, /ready                                     → liveness, readiness (text)
GET      /v1/sources                                         → ages of every source + refresh schedule
POST     /v1/reload                   application/json       (empty) → re-import every source now; results
POST     /v1/ca/NAME/revoke           application/json       {"serial", "revocation_time"?, "reason"?, "invalidity_date"?}
POST     /v1/ca/NAME/unrevoke         application/json       {"serial"} → what changed, what still revokes it
POST     /v1/ca/NAME/issue            application/json       {"serials": [...]}: a batch of issued serials
POST     /v1/ca/NAME/changes          application/json       {"changes": [{"action", "serial", ...}, ...]}
POST     /v1/ca/NAME/crl              application/pkix-crl   a CRL or delta CRL, DER or PEM (RFC 5280 §4.2.1.13 type)
=======  ===========================  =====================  ==============================================

Each push is one store transaction. Answers: 200 with JSON; 400 malformed
input (nothing written); 401 not authenticated; 403 client certificate
refused, or pushes off for the CA (``push = false``: CRL uploads too); 404
unknown CA or path; 405; 411 no Content-Length; 413 body too large
(:data:`MAX_JSON_BYTES` for JSON, the CA's ``max_crl_bytes`` for CRLs); 415
wrong Content-Type; 422 CRL refused (the reason in ``error``); 503 reload timed
out, or the store cannot be read to check a client certificate.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from certstatus.access.trust import OwnRevocationCheck
from certstatus.admin.operators import OperatorPolicy
from certstatus.admin.push_report import unrevoke_reports
from certstatus.clock import Clock
from certstatus.errors import SourceError, StoreUnavailable
from certstatus.pipeline.issuers import IssuerRegistry, ServedCA
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.health import source_ages
from certstatus.sources.importer import CaTarget, ImportResult, import_crl_data
from certstatus.sources.push import PushError, apply_push, find_target, parse_change
from certstatus.sources.refresh import Refresher
from certstatus.store.base import StatusStore

if TYPE_CHECKING:
    from certstatus.admin.page_routes import PageRoutes

log = logging.getLogger("certstatus.admin")


@dataclass(frozen=True, slots=True)
class AdminResponse:
    """HTTP status and JSON-serialisable body; or ``raw`` bytes of ``content_type`` (metrics, probes,
    the status page); ``headers`` are more header fields (name, value) of the answer."""

    status: int
    body: dict
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, indent=1).encode() + b"\n"


#: Media type of every JSON POST body (RFC 8259).
JSON_TYPE = "application/json"
#: Media type of a CRL upload (RFC 2585 §4.2; RFC 5280 §4.2.1.13).
CRL_TYPE = "application/pkix-crl"
#: Largest JSON body (bytes): about 400 000 serials of an ``issue`` batch. Larger batches are split.
MAX_JSON_BYTES = 16 * 1024 * 1024
_DIGITS = re.compile(r"[0-9]{1,19}")


def result_json(result: ImportResult) -> dict:
    """One import result as JSON."""
    return dataclasses.asdict(result)


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """What :meth:`AdminApi.admit` found: the answer from the body, the body's media type (None:
    no body) and its size limit (bytes), and a check of the request's CA (raises PushError)."""

    answer: Callable[[bytes], AdminResponse]
    content_type: str | None = None
    max_bytes: int = 0
    check: Callable[[], object] | None = None


def _refused(exc: PushError) -> AdminResponse:
    return AdminResponse(exc.status, {"error": exc.problem})


class AdminApi:
    """Route and answer admin requests against one store (used from one thread).

    ``token`` is the expected bearer token (None: only client certificates
    authenticate); ``operators`` decides on verified client certificates
    (None: a certificate does not authenticate); ``refresher`` serves
    /v1/reload (None: 404); ``max_json_bytes`` bounds JSON bodies (a CRL
    upload is bounded by its CA's ``max_crl_bytes``); ``extra_routes`` maps
    (method, path) to more endpoints (metrics, probes); ``pages`` admits and answers the
    status page's paths (:class:`~certstatus.admin.page_routes.PageRoutes`), before the rest.
    """

    def __init__(
        self,
        store_factory: Callable[[], StatusStore],
        targets_factory: Callable[[StatusStore], Mapping[str, CaTarget]],
        clock: Clock,
        *,
        token: str | None,
        operators: OperatorPolicy | None = None,
        refresher: Refresher | None = None,
        feed: ChangeFeed | None = None,
        max_json_bytes: int = MAX_JSON_BYTES,
        reload_timeout: float = 300.0,
        extra_routes: Mapping[tuple[str, str], Callable[[], AdminResponse]] | None = None,
        pages: "PageRoutes | None" = None,
    ) -> None:
        self._store_factory = store_factory
        self._targets_factory = targets_factory
        self._store: StatusStore | None = None
        self._targets: Mapping[str, CaTarget] = {}
        self._revocation: OwnRevocationCheck | None = None
        self.clock = clock
        self.token = token
        self.operators = operators
        self.refresher = refresher
        self.feed = feed
        self.max_json_bytes = max_json_bytes
        self.reload_timeout = reload_timeout
        self.extra_routes = dict(extra_routes or {})
        self.pages = pages

    @property
    def store(self) -> StatusStore:
        if self._store is None:  # opened in the serving thread (SQLite connections are per thread)
            self._store = self._store_factory()
            self._targets = self._targets_factory(self._store)
        return self._store

    @property
    def revocation(self) -> OwnRevocationCheck:
        """The OCSP listener's own-revocation check, over the CAs served and this API's store."""
        if self._revocation is None:
            store = self.store
            served = (ServedCA(t.settings, t.certificate, t.issuer_id, None, has_data=False) for t in self._targets.values())  # type: ignore[arg-type]
            self._revocation = OwnRevocationCheck(IssuerRegistry(served), store)
        return self._revocation

    def authenticate(self, headers: Mapping[str, str], client_chain: Sequence[bytes] = ()) -> AdminResponse | None:
        """None when the request is authenticated, else its 401/403 answer.

        ``client_chain`` is the client certificate chain the TLS handshake
        verified (DER, leaf first; () without one). A chain decides alone when
        :attr:`operators` is set: refused (403) even with the right token,
        since the certificate says who is asking. Otherwise the bearer token
        must match (compared in constant time).
        """
        if client_chain and self.operators is not None:
            refusal = self.operators.refusal(client_chain, self.revocation)
            if refusal is None:
                return None
            log.warning("admin request refused: client certificate %s", refusal)
            return AdminResponse(403, {"error": f"client certificate refused: {refusal}"})
        header = headers.get("authorization", "")
        if self.token is not None and header.lower().startswith("bearer "):
            if hmac.compare_digest(header[7:].strip().encode(), self.token.encode()):
                return None
        return AdminResponse(401, {"error": "authenticate with the admin token (Authorization: Bearer ...) or a client certificate"})

    def admit(self, method: str, path: str, headers: Mapping[str, str], client_chain: Sequence[bytes] = ()) -> AdminResponse | None:
        """Decide on a request from its head alone (``headers`` with lower-case names): None to
        read its body and :meth:`respond`, else the answer that refuses it. Never raises."""
        try:
            if self.pages is not None and self.pages.handles(path):
                return self.pages.admit(method, path, headers, client_chain)
            refused = self.authenticate(headers, client_chain)
            if refused is not None:
                return refused
            endpoint = self._endpoint(method, path)
            if isinstance(endpoint, AdminResponse):
                return endpoint
            return self._check_head(endpoint, headers)
        except PushError as exc:
            return _refused(exc)
        except StoreUnavailable as exc:
            log.warning("admin %s %s refused: the store cannot be read (%s)", method, path, exc)
            return AdminResponse(503, {"error": "the store cannot be read; try again later"})
        except Exception:
            log.exception("admin %s %s failed", method, path)
            return AdminResponse(500, {"error": "internal error; see the server log"})

    def _check_head(self, endpoint: _Endpoint, headers: Mapping[str, str]) -> AdminResponse | None:
        if endpoint.check is not None:
            endpoint.check()
        if "transfer-encoding" in headers:
            return AdminResponse(411, {"error": "send the body with a Content-Length, not chunked"})
        length = headers.get("content-length", "0").strip()
        if not _DIGITS.fullmatch(length):
            return AdminResponse(400, {"error": f"Content-Length {length[:30]!r} is not a number of bytes"})
        if int(length) > endpoint.max_bytes:
            return AdminResponse(413, {"error": f"body over {endpoint.max_bytes} bytes"})
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if endpoint.content_type is not None and media_type != endpoint.content_type:
            return AdminResponse(415, {"error": f"send the body as Content-Type: {endpoint.content_type}"})
        return None

    def respond(self, method: str, path: str, body: bytes | BinaryIO) -> AdminResponse:
        """Answer a request :meth:`admit` let in; ``body`` is its bytes or a binary file (read
        once, here). Never raises."""
        try:
            if self.pages is not None and self.pages.handles(path):
                return self.pages.respond(method, path, body if isinstance(body, bytes) else body.read())
            endpoint = self._endpoint(method, path)
            if isinstance(endpoint, AdminResponse):
                return endpoint
            return endpoint.answer(body if isinstance(body, bytes) else body.read())
        except PushError as exc:
            log.info("admin %s %s refused: %s", method, path, exc.problem)
            return _refused(exc)
        except Exception:
            log.exception("admin %s %s failed", method, path)
            return AdminResponse(500, {"error": "internal error; see the server log"})

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes, *, client_chain: Sequence[bytes] = ()) -> AdminResponse:
        """:meth:`admit` then :meth:`respond`, for a request whose body is at hand. Never raises."""
        headers = {"content-length": str(len(body)), **headers}
        return self.admit(method, path, headers, client_chain) or self.respond(method, path, body)

    def _endpoint(self, method: str, path: str) -> _Endpoint | AdminResponse:
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        extra = self.extra_routes.get((method, "/" + "/".join(parts)))
        if extra is not None:  # GET /metrics, /health, /ready (certstatus.supervisor.lifecycle)
            return _Endpoint(lambda body: extra())
        if parts == ["v1", "sources"]:
            return self._expect(method, "GET") or _Endpoint(lambda body: self._sources())
        if parts == ["v1", "reload"]:
            return self._expect(method, "POST") or _Endpoint(lambda body: self._reload(), JSON_TYPE, self.max_json_bytes)
        if len(parts) == 4 and parts[:2] == ["v1", "ca"]:
            name, action = parts[2], parts[3]
            if action not in ("crl", "revoke", "unrevoke", "issue", "changes"):
                return self._not_found()
            if (wrong := self._expect(method, "POST")) is not None:
                return wrong
            _ = self.store
            check = functools.partial(find_target, self._targets, name)  # 404 unknown CA, 403 pushes off
            if action == "crl":
                target = self._targets.get(name)
                limit = 0 if target is None else target.settings.max_crl_bytes
                return _Endpoint(lambda body: self._crl(name, body), CRL_TYPE, limit, check)
            return _Endpoint(lambda body: self._push(name, action, body), JSON_TYPE, self.max_json_bytes, check)
        return self._not_found()

    @staticmethod
    def _not_found() -> AdminResponse:
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
        except RecursionError:
            raise PushError("body is JSON nested too deeply") from None
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
        result = apply_push(self.store, target, changes, self.clock, self.feed)
        log.info("admin push to CA %s: %d change(s), %d row(s) changed", name, result.changes, result.changed.rows)
        answer = {"ca": name, "applied": result.changes, "changed": result.changed.rows}
        if result.unrevoked:
            answer["unrevoked"] = unrevoke_reports(self.store, target, result)
        return AdminResponse(200, answer)

    def _crl(self, name: str, body: bytes) -> AdminResponse:
        target = find_target(self._targets, name)
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
