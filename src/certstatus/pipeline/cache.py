"""The in-process answer cache: the "cache" step of the pipeline.

For CAs in precomputed or cached mode, a single-CertID request without nonce
or preferred signature algorithms (after
:class:`~certstatus.pipeline.precomputed.ModePolicy`, which keeps the one of
another signer of a precomputed CA: keyed with it, see
:func:`~certstatus.pipeline.precomputed.answer_key`) is answered
from memory when the same CertID bytes were answered before: pre-signed
responses read from the store and live-signed ones alike. Requests with a
nonce, with several CertIDs, and every request of a live-mode CA pass by.

* Bounded by bytes, least recently used first out: an entry costs its DER,
  its key and :data:`ENTRY_OVERHEAD`.
* An entry is never served at or after its refresh point
  (:func:`certstatus.response_refresh.refresh_due`, before nextUpdate).
* A status change of an issuer, committed by any process, drops that
  issuer's entries: :meth:`AnswerCacheStep.issuer_changed` is subscribed to
  the worker's :class:`~certstatus.store.changes.ChangeHub` (SQLite
  counters polled, PostgreSQL LISTEN/NOTIFY) and the drop happens on the
  request path's thread before the next request is answered.
* One byte budget (:class:`ByteBudget`, ``server.response_cache_bytes``) can
  hold this cache and the HTTP edge's answer cache
  (:mod:`certstatus.server.edge`) together: whichever inserts evicts its own
  least recently used entries first, then the other's; the edge takes an
  answer over (:meth:`AnswerCache.discard`) so it is not held twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import OrderedDict, deque
from dataclasses import dataclass

from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer
from certstatus.pipeline.precomputed import answer_key, shareable
from certstatus.response_refresh import refresh_due

#: Bytes counted per entry beyond its DER and key (dict slot, tuple, answer object).
ENTRY_OVERHEAD = 400


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: OCSPAnswer
    expires: dt.datetime
    issuer_id: int
    serial_number: int
    size: int


class ByteBudget:
    """One bound in bytes for several caches of one worker (each has ``size``,
    ``__len__`` and ``evict_oldest()``).

    :meth:`make_room` runs after a cache grew: while the caches together hold
    more than ``max_bytes``, it evicts the growing cache's least recently used
    entry, or, when that cache is empty, the oldest of the others.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.members: list = []

    @property
    def used(self) -> int:
        """Bytes held by every member together."""
        return sum(member.size for member in self.members)

    def make_room(self, growing) -> None:
        while self.used > self.max_bytes:
            victim = growing if len(growing) else next((m for m in self.members if len(m)), None)
            if victim is None:
                return
            victim.evict_oldest()


class AnswerCache:
    """A byte-bounded LRU of OCSP answers keyed on CertID DER.

    ``max_bytes`` 0 disables it. With ``budget`` the bound is shared with the
    budget's other members (``max_bytes`` is then the budget's). Not
    thread-safe (one per worker, used from the event loop).
    """

    def __init__(self, max_bytes: int, budget: ByteBudget | None = None) -> None:
        self.budget = budget or ByteBudget(max_bytes)
        self.budget.members.append(self)
        self.max_bytes = self.budget.max_bytes
        self.size = 0
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: dt.datetime) -> OCSPAnswer | None:
        """The answer stored under ``key`` if it is before its refresh point at ``now``, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.answer

    def put(self, key: bytes, answer: OCSPAnswer, issuer_id: int, serial_number: int) -> None:
        """Keep ``answer`` until its refresh point; evict least recently used entries beyond the bound."""
        size = len(answer.der) + len(key) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        expires = refresh_due(answer.this_update, answer.next_update)
        self._entries[key] = _Entry(dataclasses.replace(answer, source="cache"), expires, issuer_id, serial_number, size)
        self.size += size
        self.budget.make_room(self)

    def evict_oldest(self) -> None:
        """Drop the least recently used entry (:class:`ByteBudget`)."""
        self._drop(next(iter(self._entries)))

    def discard(self, key: bytes) -> None:
        """Drop ``key``'s entry if there is one (the edge cache took the answer over)."""
        if key in self._entries:
            self._drop(key)

    def invalidate(self, changes: list[tuple[int, int | None]] | None) -> None:
        """Drop the entries of changed (issuer_id, serial) pairs; serial None: the whole issuer; None: all."""
        if changes is None:
            self._entries.clear()
            self.size = 0
            return
        whole = {issuer for issuer, serial in changes if serial is None}
        serials = {(issuer, serial) for issuer, serial in changes if serial is not None}
        for key in [
            key
            for key, entry in self._entries.items()
            if entry.issuer_id in whole or (entry.issuer_id, entry.serial_number) in serials
        ]:
            self._drop(key)

    def _drop(self, key: bytes) -> None:
        self.size -= self._entries.pop(key).size


class AnswerCacheStep:
    """The pipeline step in front of the precomputed lookup and live signing (see module doc).

    ``max_bytes`` bounds the cache (0: off); ``budget`` shares the bound (see :class:`ByteBudget`).
    """

    def __init__(self, max_bytes: int, budget: ByteBudget | None = None) -> None:
        self.cache = AnswerCache(max_bytes, budget)
        self._changed: deque[int] = deque()

    def issuer_changed(self, issuer_id: int) -> None:
        """Note that an issuer's statuses changed (thread-safe: called by the change watcher thread)."""
        self._changed.append(issuer_id)

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        if self._changed:
            self._drop_changed()
        if not self.cache.max_bytes or not shareable(exchange):
            return call_next(exchange)
        now = exchange.received_at
        key = answer_key(exchange.query)
        answer = self.cache.get(key, now)
        if answer is not None:
            return answer
        answer = call_next(exchange)
        if not answer.has_nonce:
            self.cache.put(key, answer, exchange.ca.issuer_id, exchange.query.cert_ids[0].serial_number)
        return answer

    def _drop_changed(self) -> None:
        issuers = set()
        while self._changed:
            issuers.add(self._changed.popleft())
        self.cache.invalidate([(issuer_id, None) for issuer_id in issuers])
