"""The protocol edge's live lane: a one-CertID request to an open live CA, signed without the pipeline.

For a live CA every request is signed (thisUpdate now, the nonce echoed), so
the edge answer cache (:mod:`certstatus.server.edge`) has nothing to keep.
What the pipeline adds around the signature on the usual request — an
exchange object, a step per layer, the HTTP response object, its header
list and their generic serialisation — cost about as much as the ECDSA P-256
signature itself (``bench/load.py``, figures in ``bench/README.md``). The lane
answers that usual request directly, in the order the pipeline would, with
the same code for each part:

1. :meth:`OCSPHttpHandler.ocsp_request <certstatus.server.http.OCSPHttpHandler.ocsp_request>`
   finds the route and the DER (POST body or GET path);
2. :func:`~certstatus.protocol.fast_request.parse_request_fast` parses it;
3. the CertID's issuer (:class:`~certstatus.pipeline.issuers.IssuerRegistry`) must
   be an eligible CA the route serves, and the CA's nonce policy
   (:func:`~certstatus.pipeline.nonce.nonce_for`) drops or keeps the nonce, or
   hands a request without one to the handler under ``"require"``;
4. :meth:`FreshnessGuard.fresh <certstatus.pipeline.freshness.FreshnessGuard.fresh>`
   must hold (data imported, not stale);
5. :meth:`LocalStatusSigner.answer_single <certstatus.pipeline.steps.LocalStatusSigner.answer_single>`
   reads the status from the store and signs;
6. the HTTP response is rendered as the handler would (:mod:`certstatus.server.rendered`).

Anything else returns None and takes the handler's path, which then decides
and logs as usual: a HEAD, an ``If-None-Match``, a malformed or signed
request, several CertIDs, preferred signature algorithms, another CA, stale
or missing data, an unavailable store or signer (tryLater).

Eligible CAs: ``mode = "live"``, open to everyone, not forwarded, no live SQL
source, and no audit log or authentication configured
(a fast plan of :func:`~certstatus.pipeline.build.plan_steps`, the edge
cache's rule). Answers are counted in the request metrics under
``source="live"``, as the pipeline counts them, flushed once a second.
"""

from __future__ import annotations

import datetime as dt
import time

from certstatus.clock import Clock
from certstatus.errors import StoreUnavailable
from certstatus.metrics import RequestMetrics
from certstatus.pipeline.base import OCSPError
from certstatus.pipeline.freshness import FreshnessGuard
from certstatus.pipeline.issuers import IssuerRegistry
from certstatus.pipeline.nonce import nonce_for
from certstatus.pipeline.steps import LocalStatusSigner
from certstatus.protocol.fast_request import parse_request_fast
from certstatus.protocol.request import MalformedRequest
from certstatus.server.http import HttpResponse, OCSPHttpHandler, etag_of
from certstatus.server.rendered import (
    NONCE_HEAD,
    ETAG_END,
    SHARED_HEAD,
    AnswerCounts,
    HeadLines,
    pipeline_metrics,
    shared_dates,
    unix_time,
)

#: The methods the lane answers (HEAD and the rest take the handler's path).
_METHODS = {b"POST": "POST", b"GET": "GET"}


class LiveLane:
    """Answer eligible live requests of one worker (module docstring). Event loop only.

    ``eligible`` holds the issuer_ids of the eligible CAs.
    """

    def __init__(
        self,
        handler: OCSPHttpHandler,
        registry: IssuerRegistry,
        guard: FreshnessGuard,
        signer: LocalStatusSigner,
        eligible: set[int],
        clock: Clock,
        *,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.handler = handler
        self.registry = registry
        self.guard = guard
        self.signer = signer
        self.eligible = eligible
        # issuer_id -> the CA's nonce policy (certstatus.pipeline.nonce), read once.
        self.nonce_policies = {ca.issuer_id: ca.settings.nonce_policy for ca in registry.cas}
        self.metrics = metrics
        self.time = unix_time(clock)
        self.counts = AnswerCounts("live")
        self._lines = HeadLines()
        self._times = _Times(None, None)  # of the last answer: live answers of one second share them

    def answer(self, method: bytes, url: bytes, body: bytes, close: bool) -> bytes | None:
        """The whole HTTP response to this request (``connection: close`` when ``close``), or
        None when the handler must answer it."""
        started = time.perf_counter_ns()
        name = _METHODS.get(method)
        if name is None:
            return None
        found = self.handler.ocsp_request(name, url, body)
        if isinstance(found, HttpResponse):
            return None
        route, der = found
        try:
            query = parse_request_fast(der)
        except MalformedRequest:
            return None
        if len(query.cert_ids) != 1 or query.signature is not None or query.preferred_signature_algorithms:
            return None
        cert_id = query.cert_ids[0]
        ca = self.registry.find(cert_id)
        if ca is None or ca.issuer_id not in self.eligible or not route.allows(ca.name):
            return None
        try:
            policy = self.nonce_policies[ca.issuer_id]
            nonce = query.nonce if policy == "echo" else nonce_for(policy, query.nonce, ca.name)
            if not self.guard.fresh(ca):
                return None
            answer = self.signer.answer_single(ca, cert_id, nonce)
        except (OCSPError, StoreUnavailable):  # the handler answers (tryLater, unauthorized) and logs it
            return None
        response = answer.der
        now = self.time()
        lines = self._lines
        length = lines.lengths(len(response))[close]
        times = self._times
        if times.this_update is not answer.this_update or times.next_update is not answer.next_update:
            times = self._times = _Times(answer.this_update, answer.next_update)
        if answer.has_nonce:
            data = b"".join((NONCE_HEAD, lines.date(now), length, response))
        else:
            data = b"".join((
                SHARED_HEAD, b"%d" % max(0, int(times.next_update_ts - now)), times.dates, etag_of(response),
                ETAG_END, lines.date(now), length, response,
            ))  # fmt: skip
        counts = self.counts
        counts.count(counts.slot(ca.name, answer.statuses), time.perf_counter_ns() - started,
                     max(0.0, now - times.this_update_ts))  # fmt: skip
        return data

    def flush_metrics(self) -> int:
        """Add the answers counted since the last flush to the Prometheus metrics; return how many."""
        return self.counts.flush(self.metrics)


class _Times:
    """thisUpdate and nextUpdate of an answer (the datetimes, compared by identity: the signer
    reuses them for every answer of one second), their Unix times and rendered headers."""

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


def lane_for(application) -> LiveLane | None:
    """The live lane of one worker's :class:`~certstatus.app.Application`, attached to its
    handler (``handler.lane``); None when no CA is eligible (module docstring)."""
    pipeline = application.pipeline
    if pipeline is None or pipeline.signer is None or pipeline.guard is None:
        return None
    eligible = {ca.issuer_id for ca in application.registry.cas
                if ca.settings.mode == "live" and pipeline.plan_of(ca).fast}  # fmt: skip
    if not eligible:
        return None
    lane = LiveLane(application.http, application.registry, pipeline.guard, pipeline.signer, eligible,
                    application.clock, metrics=pipeline_metrics(pipeline))  # fmt: skip
    application.http.lane = lane
    return lane
