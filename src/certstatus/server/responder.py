"""One worker's answer path: every request the HTTP edge completes is answered here.

:class:`Responder` takes a complete HTTP request from
:class:`~certstatus.server.connection.HttpProtocol` and answers it once, in this order:

1. the edge answer cache (:mod:`certstatus.server.edge`), keyed on the raw request, before
   anything is parsed;
2. the route and the OCSPRequest DER (:meth:`OCSPHttpHandler.ocsp_request
   <certstatus.server.http.OCSPHttpHandler.ocsp_request>`: POST body or GET path; health
   probes, 404, 405, 413 answered there);
3. the request parsed, once (:func:`~certstatus.protocol.fast_request.parse_request_fast`);
4. the CertID's CA (:class:`~certstatus.pipeline.issuers.IssuerRegistry`) and its plan
   (:func:`~certstatus.pipeline.build.plan_steps`, built once by the pipeline builder).

A one-CertID GET or POST (no ``If-None-Match``, no preferred signature algorithms) of a CA
whose plan is *fast* (no policy step) is answered here without the pipeline's objects, in
the plan's order: the freshness guard's verdict
(:meth:`FreshnessGuard.check <certstatus.pipeline.freshness.FreshnessGuard.check>`), the
CA's nonce policy (:func:`~certstatus.pipeline.nonce.nonce_for`), for a precomputed or
cached CA the stored response
(:meth:`PrecomputedLookup.stored_answer <certstatus.pipeline.precomputed.PrecomputedLookup.stored_answer>`:
one store read), else a live signature
(:meth:`LocalStatusSigner.answer_single <certstatus.pipeline.steps.LocalStatusSigner.answer_single>`);
the HTTP answer is one ``bytes.join`` (:mod:`certstatus.server.rendered`), byte for byte
what the handler would send (tests compare), and a shareable one fills the edge cache.
This is the path of a cold cache as of a warm one.

Everything else — a plan with policy steps, HEAD, ``If-None-Match``, several CertIDs,
preferred algorithms, and every refusal of the fast path (stale or missing data, an
unavailable store or signer, a refused miss, a nonce the CA requires) — follows the CA's
whole plan through :meth:`OCSPHttpHandler.run_query
<certstatus.server.http.OCSPHttpHandler.run_query>` with the request already parsed (and
its CA already found): the pipeline then decides, logs and counts as it always does, so
every error status is the pipeline's own.

Answers given here are counted like the pipeline counts them (``source="precomputed"`` or
``"live"``) and added to the metrics once a second with the edge's hits.
"""

from __future__ import annotations

import datetime as dt
import time

from certstatus.clock import Clock
from certstatus.errors import StoreUnavailable
from certstatus.metrics import RequestMetrics
from certstatus.pipeline.base import OCSPAnswer, OCSPError
from certstatus.pipeline.nonce import nonce_for
from certstatus.protocol.fast_request import parse_request_fast
from certstatus.protocol.request import MalformedRequest
from certstatus.server.edge import EdgeCache, edge_for
from certstatus.server.http import HttpResponse, OCSPHttpHandler, Pending, etag_of
from certstatus.server.preload import EdgePreload, preload_for
from certstatus.server.rendered import (
    ETAG_END,
    NONCE_HEAD,
    SHARED_HEAD,
    AnswerCounts,
    HeadLines,
    pipeline_metrics,
    shared_dates,
    unix_time,
)

#: The methods of the fast path (HEAD and the rest follow the whole plan).
_FAST_METHODS = {b"POST": "POST", b"GET": "GET"}


class Responder:
    """The answer path of one worker (module docstring). Event loop only.

    ``pipeline`` is the worker's :class:`~certstatus.pipeline.build.Pipeline` (None: every
    request through ``handler``), ``edge`` its edge answer cache (None: off).
    """

    def __init__(
        self,
        handler: OCSPHttpHandler,
        pipeline=None,
        registry=None,
        clock: Clock | None = None,
        *,
        edge: EdgeCache | None = None,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.handler = handler
        self.edge = edge
        self.metrics = metrics
        self.registry = registry
        # issuer_id -> (mode, nonce policy) of each CA whose plan is fast.
        self.fast: dict[int, tuple[str, str]] = {}
        if pipeline is not None and registry is not None and pipeline.signer is not None:
            self.fast = {
                ca.issuer_id: (ca.settings.mode, ca.settings.nonce_policy)
                for ca in registry.cas if pipeline.plan_of(ca).fast
            }  # fmt: skip
            self.guard = pipeline.guard
            self.signer = pipeline.signer
            self.presigned = pipeline.presigned
        self.clock = clock or handler.clock
        self.time = unix_time(self.clock)
        self.counts = {"precomputed": AnswerCounts("precomputed"), "live": AnswerCounts("live")}
        #: The fill of the edge cache the worker runs as it starts (:mod:`certstatus.server.preload`), or None.
        self.preload: EdgePreload | None = None
        self._lines = HeadLines()
        self._times = _Times(None, None)  # of the last answer: live answers of one second share them

    def respond(
        self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes, close: bool, connection
    ) -> bytes | HttpResponse | Pending:
        """Answer one complete request: the whole HTTP response as bytes (``connection: close``
        in it when ``close``), an :class:`HttpResponse` for the edge to encode, or a
        :class:`Pending` (a forwarded request). ``connection`` gives ``client`` (the peer
        address, read only when needed) and ``tls_client_chain``."""
        started = time.perf_counter_ns()
        edge = self.edge
        conditional = b"if-none-match" in headers
        key = None
        if edge is not None and not conditional:
            key = _edge_key(method, url, body)
            if key is not None:
                data = edge.lookup(key, close)
                if data is not None:
                    return data
        fast_method = _FAST_METHODS.get(method)
        name = fast_method or method.decode("latin-1")
        handler = self.handler
        found = handler.ocsp_request(name, url, body)
        if isinstance(found, HttpResponse):
            return handler.finish(found)
        route, der = found
        try:
            query = parse_request_fast(der)
        except MalformedRequest as exc:
            return handler.finish(handler.refuse_malformed(name, headers, connection.client, exc, started))
        ca = None
        if len(query.cert_ids) == 1:
            ca = self.registry.find(query.cert_ids[0]) if self.registry is not None else None
            if ca is not None and not route.allows(ca.name):
                ca = None  # the pipeline refuses it (unauthorized)
            elif ca is not None and fast_method is not None and not conditional and not query.preferred_signature_algorithms:
                plan = self.fast.get(ca.issuer_id)
                if plan is not None:
                    data = self._fast(ca, plan, query, key, close, started)
                    if data is not None:
                        return data
        response = handler.run_query(name, route, der, query, headers, connection.client, connection.tls_client_chain,
                                     True, started, ca=ca)  # fmt: skip
        return response if isinstance(response, Pending) else handler.finish(response)

    def _fast(self, ca, plan: tuple[str, str], query, key: bytes | None, close: bool, started: int) -> bytes | None:
        """The fast plan's answer (module docstring), or None when the whole plan must answer."""
        mode, policy = plan
        cert_id = query.cert_ids[0]
        try:
            nonce = query.nonce if policy == "echo" else nonce_for(policy, query.nonce, ca.name)
            self.guard.check(ca)
            answer = None
            if mode != "live" and nonce is None:
                answer = self.presigned.stored_answer(ca, cert_id, self.clock.now())
            if answer is None:
                signature_oid = query.signature.algorithm_oid if query.signature is not None else None
                answer = self.signer.answer_single(ca, cert_id, nonce, (), signature_oid)
        except (OCSPError, StoreUnavailable):  # the whole plan answers (tryLater, unauthorized) and logs it
            return None
        return self._render(ca, cert_id.der, answer, key if query.nonce is None else None, close, started)

    def _render(self, ca, cert_id_der: bytes, answer: OCSPAnswer, key: bytes | None, close: bool, started: int) -> bytes:
        """The HTTP response of ``answer`` as the handler would write it; kept by the edge under ``key``."""
        response = answer.der
        now = self.time()
        lines = self._lines
        length = lines.lengths(len(response))[close]
        if answer.has_nonce:
            data = b"".join((NONCE_HEAD, lines.date(now), length, response))
            this_update = answer.this_update.timestamp()
        else:
            times = self._times
            if times.this_update is not answer.this_update or times.next_update is not answer.next_update:
                times = self._times = _Times(answer.this_update, answer.next_update)
            this_update = times.this_update_ts
            middle = times.dates + etag_of(response) + ETAG_END
            data = b"".join((
                SHARED_HEAD, b"%d" % max(0, int(times.next_update_ts - now)), middle, lines.date(now), length, response,
            ))  # fmt: skip
            if key is not None and self.edge is not None:
                self.edge.put(key, ca, cert_id_der, answer, middle)
        counts = self.counts[answer.source]
        counts.count(counts.slot(ca.name, answer.statuses), time.perf_counter_ns() - started, max(0.0, now - this_update))
        return data

    def flush_metrics(self) -> int:
        """Add what the edge cache and the fast path answered since the last flush to the metrics;
        return how many (each sweep of the HTTP edge, and at shutdown)."""
        answered = sum(counts.flush(self.metrics) for counts in self.counts.values())
        return answered + (self.edge.flush_metrics() if self.edge is not None else 0)


class _Times:
    """thisUpdate and nextUpdate of an answer (the datetimes, compared by identity: the signer
    reuses them for every answer of one second, the SQLite store for every stored response of
    one signing batch), their Unix times and rendered headers."""

    __slots__ = ("this_update", "next_update", "this_update_ts", "next_update_ts", "dates")

    def __init__(self, this_update: dt.datetime | None, next_update: dt.datetime | None) -> None:
        self.this_update = this_update
        self.next_update = next_update
        if this_update is None or next_update is None:  # before the first answer
            self.this_update_ts = self.next_update_ts = 0.0
            self.dates = b""
            return
        self.this_update_ts = this_update.timestamp()
        self.next_update_ts = next_update.timestamp()
        self.dates = shared_dates(this_update, next_update)


def _edge_key(method: bytes, url: bytes, body: bytes) -> bytes | None:
    """The edge cache key of a request (:mod:`certstatus.server.edge`), None when it has none.

    POST: its body (a DER SEQUENCE, 0x30 first), after NUL, its request target without
    trailing ``/`` and NUL unless the target is ``/`` (``/ca1`` and ``/ca1/`` are one route:
    :meth:`OCSPHttpHandler.route_for <certstatus.server.http.OCSPHttpHandler.route_for>`);
    GET: its raw request target (never 0x30 or NUL first: llhttp refuses control bytes, and
    a target starts with ``/``, ``*`` or a scheme), so the kinds never collide. Other
    methods, HEAD included, follow the CA's whole plan.
    """
    if method == b"POST":
        if body[:1] != b"\x30":
            return None
        return body if url == b"/" else b"\0" + url.rstrip(b"/") + b"\0" + body
    if method == b"GET":
        return url
    return None


def responder_for(application, *, presigned: int | None = None) -> Responder:
    """The responder of one worker's :class:`~certstatus.app.Application`: its handler, its
    pipeline's plans, its edge answer cache (:func:`~certstatus.server.edge.edge_for`) and that
    cache's fill from the store (:func:`~certstatus.server.preload.preload_for`, for
    ``presigned`` pre-signed serials; None: not counted, no fill)."""
    pipeline = application.pipeline
    metrics = pipeline_metrics(pipeline) if pipeline is not None else None
    edge = edge_for(application)
    responder = Responder(application.http, pipeline, application.registry, application.clock,
                          edge=edge, metrics=metrics)  # fmt: skip
    responder.preload = preload_for(application, edge, responder.fast, presigned)
    return responder
