"""Filling a worker's edge cache from the store's pre-signed responses as it starts.

A worker starts with an empty edge cache (:mod:`certstatus.server.edge`). Under the requests
OCSP responders see — many distinct serials, each asked now and then, or walked in turn — an
empty cache makes nearly every request of the first minutes (of the first rotation) a miss:
the store read and render of the responder's fast path, ~40-50 µs of CPU against ~5 µs for
an edge hit (bench/README.md, "Cold misses"). So as the worker starts, :class:`EdgePreload`
reads the stored responses of every CA whose plan starts with ``"edge cache"`` in slices
(:meth:`StatusReader.servable_responses <certstatus.store.base.StatusReader.servable_responses>`:
one statement per slice, in serial order) and keeps each under the edge keys of the request
real clients send (:func:`request_keys`), with the bytes a miss would render
(:func:`certstatus.server.rendered.shared_dates`, the ETag of the body).

What is kept:

* the CAs of the edge cache whose data is fresh (the freshness guard's verdict) and whose
  nonce policy answers a request without nonce; rows the request path would serve
  (status unchanged since signed, the CA's signing profile, no revoked responder certificate
  in them), before their refresh point and the CA's stale deadline (:meth:`EdgeCache.preload
  <certstatus.server.edge.EdgeCache.preload>` applies the edge's rules);
* per row, two keys sharing one entry: the minimal nonce-less one-CertID OCSPRequest
  (``SEQUENCE { SEQUENCE { SEQUENCE { SEQUENCE { CertID } } } }``, the DER of ``openssl ocsp
  -no_nonce``, cryptography's ``OCSPRequestBuilder``, Go's ``x/crypto/ocsp`` and Firefox) as a
  POST body, and the GET form of the same request (RFC 6960 Appendix A.1, RFC 5019 §5: the
  base64 of the DER, URL-encoded: ``+``, ``/`` and ``=`` percent-encoded), on the CA's own
  ``path`` when it has one, else on ``server.common_path``;
* SHA-1 CertIDs first (RFC 5019 §2.1.1 clients, OpenSSL, Firefox, Go's default), then SHA-256
  when every CA's SHA-256 set fits beside them.

It fills only when the whole pre-signed set fits the budget (:func:`certstatus.cache_size.fill_fits`,
``answers`` × :data:`~certstatus.cache_size.ANSWER_BYTES` ≤ ``response_cache_bytes``, the
sized default's own rule, applied alike to a configured size): a partial fill is evicted
before a cyclic walk comes back to it. It never evicts: it stops when the budget is full.

Store changes during the fill: :meth:`EdgeCache.issuer_changed
<certstatus.server.edge.EdgeCache.issuer_changed>` counts every change announced
(``changes_seen``). A slice is read and kept in one step of the event loop; when a change was
announced while it was read, the changed issuers' entries are dropped and the slice is read
again before anything of it is kept. A change committed after a slice's read is announced
after it (the watcher reads commits), so it lands in the edge's queue and drops what the
slice kept before the next lookup; one committed before is in the read (a row whose status
changed is not servable). Either way no stale answer is served; a CA whose entries a change
dropped is filled once more from its start.

When: first before the worker accepts a connection, for at most :data:`HEAD_START_SECONDS`
(the worker's requests wait in the shared listening socket's backlog, or are answered by the
other workers; at a reload, by the old ones): 100 000 answers take ~0.6 s of CPU, so a worker
usually starts with its cache full and serves the warmed figures from its first request. What
is left after the head start is filled between requests (:attr:`EdgePreload.paced`): slices of
:data:`SLICE_ROWS` rows (~0.7 ms of CPU each), each followed by a pause as long as the slice
took, so a request waits at most one slice and the fill takes at most about half of a busy
worker (the growth of the cache's dict, ~11 ms at 180 000 keys, is the one longer step: a
cache filled by misses meets it too, which is the other reason to fill before accepting). One log line at the start and one at the end (entries, CAs,
seconds, CPU seconds); a failure (the store unreachable, a row that does not decode) logs one
error line and stops the fill: requests are answered as before, misses filling the cache.
``certstatus_edge_preloaded_total`` counts the entries kept.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time

from prometheus_client import Counter

from certstatus.cache_size import fill_fits
from certstatus.der import tlv
from certstatus.pipeline.base import OCSPError
from certstatus.pipeline.nonce import nonce_for
from certstatus.pipeline.precomputed import signed_by_revoked_signer
from certstatus.server.edge import EdgeCache
from certstatus.server.http import etag_of
from certstatus.server.rendered import ETAG_END, shared_dates
from certstatus.store.base import PRECOMPUTED_HASH_ALGORITHMS

log = logging.getLogger("certstatus.server.preload")

#: Rows read and kept per turn of the event loop (~5 µs each: ~1 ms per slice).
SLICE_ROWS = 200
#: Seconds a worker fills before it accepts connections; the rest is filled between requests.
HEAD_START_SECONDS = 3.0
#: Times a CA is filled again from its start when a store change dropped its entries meanwhile.
REFILLS = 2

#: Entries the edge caches took from the store at their workers' start.
PRELOADED = Counter(
    "certstatus_edge_preloaded",
    "Answers put in the edge answer cache from the store's pre-signed responses at a worker's start",
)


def request_der(cert_id_der: bytes) -> bytes:
    """The minimal OCSPRequest (RFC 6960 §4.1.1) for one CertID: no version, requestorName,
    extensions or signature — what ``openssl ocsp -no_nonce`` and cryptography's builder send."""
    return tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x30, cert_id_der))))


def request_keys(target: bytes, der: bytes) -> tuple[bytes, bytes]:
    """The edge keys (:func:`certstatus.server.responder._edge_key`) of ``der`` sent to the route
    ``target`` (``b"/"`` or a CA's path, ending in ``/``): as a POST body, and as a GET (RFC 6960
    Appendix A.1: URL-encoded base64)."""
    post = der if target == b"/" else b"\0" + target.rstrip(b"/") + b"\0" + der
    encoded = base64.b64encode(der).replace(b"+", b"%2B").replace(b"/", b"%2F").replace(b"=", b"%3D")
    return post, target + encoded


class EdgePreload:
    """The fill of one worker's edge cache (module docstring). Event loop only.

    ``cas``: ``(ServedCA, route target)`` of the CAs to fill; ``presigned`` the pipeline's
    :class:`~certstatus.pipeline.precomputed.PrecomputedLookup` (the CertID encoding and
    signing profile of the stored rows); ``guard`` the freshness guard (None: none);
    ``answers`` the store's pre-signed serials of these CAs, from which whether the set fits
    was decided (:func:`certstatus.cache_size.fill_fits`).
    """

    def __init__(self, edge: EdgeCache, store, presigned, guard, cas: list, *, answers: int,
                 slice_rows: int = SLICE_ROWS) -> None:  # fmt: skip
        self.edge = edge
        self.store = store
        self.presigned = presigned
        self.guard = guard
        self.cas = cas
        self.answers = answers
        self.slice_rows = slice_rows
        self.kept = 0
        self.slices = 0
        self.longest_slice = 0.0  # seconds of CPU of the longest slice
        #: False during the head start (nothing to answer yet: no pause after a slice); the worker sets
        #: it once it accepts connections.
        self.paced = False
        self._dates: tuple = (None, None, b"")

    async def run(self) -> int:
        """Fill the edge cache (module docstring); return the entries kept. Never raises but
        :class:`asyncio.CancelledError` (the worker stops)."""
        started, cpu = time.monotonic(), time.process_time()
        log.info("edge cache fill started: %d CAs, %d pre-signed serials, budget %d bytes",
                 len(self.cas), self.answers, self.edge.budget.max_bytes)  # fmt: skip
        full = False
        filled_cas: set[int] = set()
        try:
            for algorithm in PRECOMPUTED_HASH_ALGORITHMS:
                if algorithm != PRECOMPUTED_HASH_ALGORITHMS[0] and not self._room_for_another(filled_cas):
                    break
                for ca, target in self.cas:
                    done = await self._fill_ca(ca, target, algorithm)
                    if done is None:
                        full = True
                        break
                    if done:
                        filled_cas.add(ca.issuer_id)
                if full:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store went away, a row that does not decode: the worker serves on
            log.error("edge cache fill stopped after %d entries (%.1f s): %s: %s; requests are answered as usual, "
                      "misses filling the cache", self.kept, time.monotonic() - started, type(exc).__name__, exc)  # fmt: skip
            return self.kept
        log.info("edge cache fill done in %.2f s (%.2f CPU-s): %d entries of %d CAs, %d of %d bytes used%s; "
                 "longest slice %.2f ms of CPU",
                 time.monotonic() - started, time.process_time() - cpu, self.kept, len(filled_cas),
                 self.edge.budget.used, self.edge.budget.max_bytes, ", stopped: the budget is full" if full else "",
                 self.longest_slice * 1000)  # fmt: skip
        return self.kept

    def _room_for_another(self, filled_cas: set[int]) -> bool:
        """Whether another hash algorithm's set fits beside what is held (as large as the first's)."""
        if not filled_cas:
            return False
        budget = self.edge.budget
        return budget.max_bytes - budget.used >= budget.used

    async def _fill_ca(self, ca, target: bytes, algorithm: str) -> bool | None:
        """Fill one CA's responses of ``algorithm``: True when it kept some, False when the CA is
        not answered from the store now (stale, a nonce required), None when the budget is full."""
        try:
            if self.guard is not None:
                self.guard.check(ca)
            nonce_for(ca.settings.nonce_policy, None, ca.name)
        except OCSPError:
            return False
        template = self.presigned.template(ca, algorithm)
        profile = self.presigned.profile(ca)
        edge = self.edge
        for _ in range(1 + REFILLS):
            after = b""
            seen_at_start = edge.changes_seen
            while True:
                started = time.process_time()
                while True:
                    seen = edge.changes_seen
                    rows = self.store.servable_responses(ca.issuer_id, algorithm, profile, after=after,
                                                         limit=self.slice_rows)  # fmt: skip
                    if edge.changes_seen == seen:
                        break
                    edge.drop_changed()  # announced while read: drop what it concerns, read again
                if not rows:
                    break
                after = rows[-1][0]
                kept, full = edge.preload(ca, self._answers(ca, target, template, rows))
                self.kept += kept
                PRELOADED.inc(kept)
                self.slices += 1
                spent = time.process_time() - started
                self.longest_slice = max(self.longest_slice, spent)
                if full:
                    return None
                # Once accepting, wait as long as the slice took: the fill takes at most about half of a busy worker.
                # (With sleep(0) the loop polls its sockets with a zero timeout while the task is ready, and
                # under Connection: close load one request was answered between two slices: p99 ~100 ms.)
                await asyncio.sleep(spent if self.paced else 0)
            if edge.changes_seen == seen_at_start:
                return True
            edge.drop_changed()  # a change may have dropped this CA's entries: fill it again
        return True

    def _answers(self, ca, target: bytes, template, rows: list) -> list:
        """``rows`` as :meth:`EdgeCache.preload` takes them: keys, CertID DER, answer, rendered middle."""
        answers = []
        dates = self._dates
        for key, response in rows:
            der = response.der
            if signed_by_revoked_signer(ca, der):
                continue  # its signer was revoked since: a miss would not serve it either
            if dates[0] is not response.this_update or dates[1] is not response.next_update:
                dates = self._dates = (response.this_update, response.next_update,
                                       shared_dates(response.this_update, response.next_update))  # fmt: skip
            cert_id = template.encode(key)
            answers.append((request_keys(target, request_der(cert_id)), cert_id, response, dates[2] + etag_of(der) + ETAG_END))
        return answers


def preload_for(application, edge: EdgeCache | None, fast: dict[int, tuple[str, str]], answers: int | None) -> EdgePreload | None:
    """The fill of one worker's edge cache (module docstring), or None: the setting
    ``server.response_cache_preload`` off, no edge cache, no CA to fill, or the pre-signed set
    (``answers`` serials; None: not counted) does not fit the budget."""
    settings = application.settings
    if edge is None or not settings.server.response_cache_preload or answers is None:
        return None
    if not fill_fits(answers, edge.budget.max_bytes):
        log.info("edge cache fill skipped: %d pre-signed serials do not fit in %d bytes (filled by requests)",
                 answers, edge.budget.max_bytes)  # fmt: skip
        return None
    pipeline = application.pipeline
    common = settings.server.common_path
    cas = []
    for ca in application.registry.cas:
        if ca.issuer_id not in edge.eligible or fast.get(ca.issuer_id, ("live",))[0] == "live":
            continue
        target = ca.settings.path or common
        if target:
            cas.append((ca, target.encode("latin-1")))
    if not cas or pipeline.presigned is None:
        return None
    return EdgePreload(edge, application.store, pipeline.presigned, pipeline.guard, cas, answers=answers)
