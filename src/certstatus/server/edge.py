"""The HTTP edge's answer cache: raw request bytes → the rendered HTTP response.

For a precomputed or cached CA, a nonce-less single-CertID request is
answered from this cache by the worker's :class:`~certstatus.server.responder.Responder`
before it parses anything: a hit costs the
httptools parse, one dict lookup, one ``bytes.join`` and one write. The
response is byte for byte what the handler would send (tests compare), with
the two headers that vary per request filled in:

* ``Cache-Control: max-age`` = nextUpdate − now in whole seconds, truncated
  as the handler does (RFC 5019 §6.2), from integer/float arithmetic on the
  entry's nextUpdate;
* ``Date``, formatted once per second (RFC 9110 §6.6.1).

Last-Modified, Expires, ETag and the body are fixed per entry.

Key: a POST body (prefixed with the request target without its trailing ``/`` when that
is not ``/``: CAs may have their own paths), or a GET's raw request target. HEAD,
``If-None-Match`` and every other method follow the CA's whole plan.

Filled by the responder (:mod:`certstatus.server.responder`) with the answers of
fast plans: a CA is eligible when the pipeline builder gave it a plan that starts
with ``"edge cache"`` (:func:`~certstatus.pipeline.build.plan_steps`: precomputed or
cached, no policy step — open to everyone, not forwarded, no live SQL source, no
audit log, which must see every request), and an answer is kept when it can be
shared: one CertID, no nonce in the request as received, no preferred signature
algorithms, a shareable (nonce-less) answer. As the worker starts, the CAs' stored
responses are also put in ahead of their requests (:meth:`EdgeCache.preload`, driven by
:mod:`certstatus.server.preload`).

Never served:

* at or after the entry's refresh point (:func:`certstatus.response_refresh.refresh_due`,
  before nextUpdate), nor after the CA's data goes stale (its CRL's
  nextUpdate + ``stale_grace``; :class:`~certstatus.pipeline.freshness.FreshnessGuard`
  answers tryLater from then on, unless ``on_stale = "serve"``);
* after a status change of its issuer: :meth:`EdgeCache.issuer_changed` is
  subscribed to the worker's store change hub (any process's import or push
  that changed a status) and to its signer revocation checks (a responder
  certificate of the CA found revoked), and drops the issuer's entries
  before the next lookup. A re-import that changed none drops nothing: an entry keeps the
  stale deadline it was filled with, so a newer CRL can only end it early.

Bounded in bytes by the same :class:`~certstatus.pipeline.cache.ByteBudget`
as the pipeline's answer cache (``server.response_cache_bytes``), least
recently used out; an answer the edge holds is dropped from the answer cache.

Metrics: hits are counted in plain integers and added to the worker's
:class:`~certstatus.metrics.RequestMetrics` (requests, certificates, latency
and response age histograms, ``source="edge"``) by :meth:`EdgeCache.flush_metrics`,
which the protocol calls from its once-a-second sweep and at shutdown.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from certstatus.clock import Clock
from certstatus.metrics import RequestMetrics
from certstatus.pipeline.base import OCSPAnswer
from certstatus.pipeline.cache import ByteBudget
from certstatus.response_refresh import refresh_due
from certstatus.store.base import PrecomputedResponse
from certstatus.server.rendered import (
    SHARED_HEAD,
    AnswerCounts,
    HeadLines,
    add_observations,
    pipeline_metrics,
    unix_time,
)

__all__ = ["EDGE_ENTRY_OVERHEAD", "EDGE_KEY_OVERHEAD", "SOURCE", "EdgeCache", "add_observations", "edge_for"]

#: Bytes counted per entry beyond its key, header block and DER (dict slot, entry tuple, LRU order).
EDGE_ENTRY_OVERHEAD = 300
#: Bytes counted for a second key of one entry (:meth:`EdgeCache.preload`: the GET form beside the
#: POST form), beyond the key itself: its dict slot, LRU node and bytes object header; the entry
#: tuple, header block and DER are shared.
EDGE_KEY_OVERHEAD = 150
#: The source label of answers served by the edge (metrics).
SOURCE = "edge"

# Entry fields (a tuple of atoms: small, and untracked by the garbage collector). _SIZE: the bytes
# counted per key of the entry besides the key itself (an entry under two keys counts half its
# shared part under each).
_DEADLINE, _NEXT_UPDATE, _THIS_UPDATE, _MIDDLE, _LENGTH, _LENGTH_CLOSE, _DER, _ISSUER, _STATS, _SIZE = range(10)


class EdgeCache:
    """Rendered answers of one worker (see the module docstring). Not thread-safe, except
    :meth:`issuer_changed`.

    ``eligible`` maps the issuer_id of each eligible CA to ``(name,
    stale_deadline)``: ``stale_deadline(now)`` returns the Unix time after
    which the CA's data is stale (inf: never), read when an entry is made.
    """

    def __init__(
        self,
        budget: ByteBudget,
        clock: Clock,
        eligible: dict[int, tuple[str, Callable[[], float]]],
        *,
        metrics: RequestMetrics | None = None,
        on_fill: Callable[[bytes], None] | None = None,
    ) -> None:
        self.budget = budget
        budget.members.append(self)
        self.clock = clock
        self.time = unix_time(clock)
        self.eligible = eligible
        self.metrics = metrics
        self.on_fill = on_fill  # told the CertID DER of each answer taken over (the answer cache drops it)
        self.size = 0
        # Least recently used first. An OrderedDict, not a dict with delete-and-reinsert on each
        # hit: that leaves a dummy slot per hit, and the dict is rebuilt whenever they fill its
        # table (every ~2.5 × len hits), a stall of ~9 ms of CPU at 100 000 entries and ~70 ms at
        # 1 000 000 during which no connection of the worker is served. move_to_end relinks a
        # node and never grows the table.
        self._entries: OrderedDict[bytes, tuple] = OrderedDict()
        self._changed: deque[int] = deque()
        #: Grows with every :meth:`issuer_changed` (any thread): :meth:`preload` callers compare it
        #: before and after reading a slice.
        self.changes_seen = 0
        self._lines = HeadLines()
        # (thisUpdate, nextUpdate, their Unix times and refresh point) of the last answer kept: answers
        # of one signing batch share the datetime objects (compared by identity), so computed once per batch.
        self._times: tuple = (None, None, 0.0, 0.0, 0.0)
        self.counts = AnswerCounts(SOURCE)  # hits since the last flush_metrics()

    def __len__(self) -> int:
        return len(self._entries)

    # the hit path ------------------------------------------------------------

    def lookup(self, key: bytes, close: bool) -> bytes | None:
        """The whole HTTP response for ``key`` (with ``connection: close`` when ``close``), or None."""
        started = time.perf_counter_ns()
        if self._changed:
            self._drop_changed()
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self.time()
        if now >= entry[_DEADLINE]:
            self._drop(key)
            return None
        self._entries.move_to_end(key)  # least recently used first out: a hit moves to the end
        data = b"".join((
            SHARED_HEAD, b"%d" % int(entry[_NEXT_UPDATE] - now), entry[_MIDDLE], self._lines.date(now),
            entry[_LENGTH_CLOSE] if close else entry[_LENGTH], entry[_DER],
        ))  # fmt: skip
        self.counts.count(entry[_STATS], time.perf_counter_ns() - started, now - entry[_THIS_UPDATE])
        return data

    # filling -------------------------------------------------------------------

    def put(self, key: bytes, ca, cert_id_der: bytes, answer: OCSPAnswer, middle: bytes) -> None:
        """Keep ``answer`` of ``ca`` (for the CertID ``cert_id_der``) under ``key`` (module docstring): ``middle`` is its rendered
        headers from the end of the max-age value to the Date value (ETag included). The responder
        calls this for a shareable answer of a one-CertID request without nonce; an answer of a CA
        that is not eligible, one past its refresh point or the CA's stale deadline, or one larger
        than the budget is not kept."""
        if not self.budget.max_bytes:
            return
        eligible = self.eligible.get(ca.issuer_id)
        if eligible is None:
            return
        name, stale_deadline = eligible
        times = self._times
        if times[0] is not answer.this_update or times[1] is not answer.next_update:
            times = self._times_of(answer)
        deadline = min(times[4], stale_deadline())
        if self.time() >= deadline:
            return
        size = len(middle) + len(answer.der) + EDGE_ENTRY_OVERHEAD
        if len(key) + size > self.budget.max_bytes:
            return
        lines = self._lines.lengths(len(answer.der))
        stats = self.counts.slot(name, answer.statuses)
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (deadline, times[3], times[2], middle,
                              lines[0], lines[1], answer.der, ca.issuer_id, stats, size)  # fmt: skip
        self.size += len(key) + size
        if self.on_fill is not None:
            self.on_fill(cert_id_der)
        self.budget.make_room(self)

    def preload(self, ca, answers: list[tuple[tuple[bytes, ...], bytes, PrecomputedResponse, bytes]]) -> tuple[int, bool]:
        """Keep stored answers of ``ca`` that no client asked for yet (a worker's fill at its start,
        :mod:`certstatus.server.preload`): each of ``answers`` is ``(keys, CertID DER, stored
        response, middle)``, ``middle`` as for :meth:`put`, one entry shared by its ``keys`` (the POST and GET forms of
        one request). The rules of :meth:`put` hold (eligible CA, before the refresh point and the
        CA's stale deadline, the answer cache told of each answer taken over), and two more: a key
        already held is left as it is, and nothing is evicted — once the next entry does not fit
        under the budget, it stops. Entries go in as the least recently used (evicted before those
        clients asked for). Returns (entries kept, True when the budget is full)."""
        if not self.budget.max_bytes or not answers:
            return 0, False
        eligible = self.eligible.get(ca.issuer_id)
        if eligible is None:
            return 0, False
        name, stale_deadline = eligible
        stale = stale_deadline()
        now = self.time()
        stats = self.counts.slot(name, ())
        issuer_id = ca.issuer_id
        entries = self._entries
        room = self.budget.max_bytes - self.budget.used
        kept = 0
        for keys, cert_id_der, answer, middle in answers:
            keys = tuple(key for key in keys if key not in entries)
            if not keys:
                continue
            times = self._times
            if times[0] is not answer.this_update or times[1] is not answer.next_update:
                times = self._times_of(answer)
            deadline = times[4] if times[4] < stale else stale
            if now >= deadline:
                continue
            shared = len(middle) + len(answer.der) + EDGE_ENTRY_OVERHEAD + EDGE_KEY_OVERHEAD * (len(keys) - 1)
            per_key = -(-shared // len(keys))
            size = per_key * len(keys) + sum(len(key) for key in keys)
            if size > room:
                return kept, True
            lines = self._lines.lengths(len(answer.der))
            entry = (deadline, times[3], times[2], middle, lines[0], lines[1], answer.der, issuer_id, stats, per_key)
            for key in keys:
                entries[key] = entry
                entries.move_to_end(key, last=False)
            self.size += size
            room -= size
            kept += 1
            if self.on_fill is not None:
                self.on_fill(cert_id_der)
        return kept, False

    def _times_of(self, answer) -> tuple:
        """(thisUpdate, nextUpdate, their Unix times, the refresh point's) of ``answer``, kept as the
        last answer's: the answers of one signing batch share the datetime objects."""
        self._times = (answer.this_update, answer.next_update, answer.this_update.timestamp(),
                       answer.next_update.timestamp(), refresh_due(answer.this_update, answer.next_update).timestamp())
        return self._times

    # invalidation and bounds ------------------------------------------------------

    def issuer_changed(self, issuer_id: int) -> None:
        """Note that an issuer's statuses or data changed (thread-safe: the change watcher calls it)."""
        self._changed.append(issuer_id)
        self.changes_seen += 1

    def _drop_changed(self) -> None:
        issuers = set()
        while self._changed:
            issuers.add(self._changed.popleft())
        for key in [key for key, entry in self._entries.items() if entry[_ISSUER] in issuers]:
            self._drop(key)

    def evict_oldest(self) -> None:
        """Drop the least recently used entry (:class:`~certstatus.pipeline.cache.ByteBudget`)."""
        self._drop(next(iter(self._entries)))

    def _drop(self, key: bytes) -> None:
        self.size -= self._entries.pop(key)[_SIZE] + len(key)

    def drop_changed(self) -> None:
        """Drop the entries of the issuers noted by :meth:`issuer_changed` now (the next lookup would)."""
        if self._changed:
            self._drop_changed()

    # metrics --------------------------------------------------------------------

    def flush_metrics(self) -> int:
        """Add the hits counted since the last flush to the Prometheus metrics; return how many."""
        return self.counts.flush(self.metrics)


def edge_for(application) -> EdgeCache | None:
    """The edge cache for one worker's :class:`~certstatus.app.Application`: its CAs whose plan
    starts with ``"edge cache"`` (:func:`~certstatus.pipeline.build.plan_steps`) are eligible; it
    shares the answer cache's budget, and is told of store changes and revoked signers. None when
    no CA is eligible or the cache is off (``server.response_cache_bytes = 0``)."""
    settings = application.settings
    pipeline = application.pipeline
    if pipeline is None or pipeline.cache is None or not settings.server.response_cache_bytes:
        return None
    guard = pipeline.guard
    eligible: dict[int, tuple[str, Callable[[], float]]] = {
        ca.issuer_id: (ca.name, _stale_deadline(guard, ca))
        for ca in application.registry.cas if "edge cache" in pipeline.plan_of(ca).steps
    }  # fmt: skip
    if not eligible:
        return None
    metrics = pipeline_metrics(pipeline)
    answer_cache = pipeline.cache.cache
    edge = EdgeCache(answer_cache.budget, application.clock, eligible, metrics=metrics, on_fill=answer_cache.discard)
    application.changes.subscribe(lambda change: change.statuses and edge.issuer_changed(change.issuer_id))
    if application.revocations is not None:  # a signer found revoked by the safety-net re-check
        application.revocations.subscribe(edge.issuer_changed)
    return edge


def _stale_deadline(guard, ca) -> Callable[[], float]:
    """Unix time after which ``ca``'s data is stale (the freshness guard's rule); inf: never."""

    def deadline() -> float:
        if guard is None or ca.settings.on_stale == "serve":
            return float("inf")
        state = guard.current(ca)
        if state.next_update is None:
            return float("inf")
        return state.next_update.timestamp() + ca.settings.stale_grace

    return deadline
