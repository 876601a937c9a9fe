"""Learning, in every responder process, that another process changed the store.

A fleet of ``certstatus serve`` processes shares one store; an import, a push
or a generator run in any of them (or in ``certstatus import``) must reach
what each process keeps in memory — a CA's ``has_data`` flag, cached
responses — within a second. The pieces:

* every write that changes an issuer's statuses (or its set of sources) bumps
  the issuer's ``change_counter`` in its transaction (both stores); PostgreSQL
  also sends ``NOTIFY <channel>, '<issuer>:<counter>'``. An import that changes
  no status (a CRL re-issued with the same entries) bumps nothing; it changes
  only the issuer's source state (its new nextUpdate), which the watcher
  learns from the ``sources`` table (:meth:`StatusReader.source_marks`; on
  PostgreSQL at once from ``NOTIFY <sources channel>, '<issuer>'``) and
  publishes as a change with ``statuses=False``: the freshness guard and
  ``has_data`` re-read, caches keep their entries (nothing they hold changed);
* :class:`ChangeWatcher`, a thread per process, LISTENs (PostgreSQL) or polls
  the counters (SQLite, every ``poll_interval`` seconds), and compares all
  counters on start, after a reconnection and every ``resync_interval``
  seconds (source states too), so a notification lost while disconnected is
  still seen;
* :class:`ChangeHub` hands each :class:`StoreChange` to the subscribers::

      hub = ChangeHub()
      unsubscribe = hub.subscribe(lambda change: change.statuses and cache.drop_issuer(change.issuer_id))

Subscribers run on the watcher thread: keep them short and thread-safe
(dropping dict entries is; to touch event-loop state use
``loop.call_soon_threadsafe``). They may read the store through
``watcher.store``, which belongs to that thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from certstatus.errors import StoreError
from certstatus.store.base import StatusReader
from certstatus.store.dsn import is_dsn, redact
from certstatus.store.factory import describe, open_store

log = logging.getLogger("certstatus.store.changes")


@dataclass(frozen=True, slots=True)
class StoreChange:
    """The store rows of issuer ``issuer_id`` changed; ``counter`` is its change counter after the write.

    ``statuses`` False: only its source states changed (an import that changed
    no status: a CRL re-issued with the same entries, with a new nextUpdate);
    ``counter`` is then the last one seen. What depends on statuses alone
    (cached answers) need not react.
    """

    issuer_id: int
    counter: int
    statuses: bool = True


Subscriber = Callable[[StoreChange], None]


class ChangeHub:
    """In-process fan-out of :class:`StoreChange` to subscribers (caches, per-CA state)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(change)`` for every change from now on; return the function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, change: StoreChange) -> None:
        """Call every subscriber; one that raises is logged and does not stop the others."""
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(change)
            except Exception:
                log.exception("store change subscriber %r failed on %s", callback, change)


class ChangeWatcher:
    """A daemon thread publishing to ``hub`` every change any process commits to ``database``.

    ``database`` is a ``postgresql://`` URI (LISTEN/NOTIFY) or an SQLite
    path (polled every ``poll_interval`` seconds: SQLite's data_version, and
    the counters when it moved). Counters are compared in
    full every ``resync_interval`` seconds and after a reconnection (lost
    connections are retried every ``retry_interval`` seconds, logged as
    warnings). :meth:`start` returns once the watcher listens, so no change
    committed afterwards is missed. During an outage the first failure is a
    warning, the retries that fail the same way are debug lines, and the
    reconnection is logged (info): one outage, two lines, however long.
    """

    def __init__(
        self,
        database: str | Path,
        hub: ChangeHub,
        *,
        poll_interval: float = 0.2,
        resync_interval: float = 5.0,
        retry_interval: float = 1.0,
    ) -> None:
        self.database = database
        self.hub = hub
        self.poll_interval = poll_interval
        self.resync_interval = resync_interval
        self.retry_interval = retry_interval
        self.store: StatusReader | None = None
        self._seen: dict[int, int] | None = None
        self._marks: dict[int, tuple] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._failing = False  # the last attempt failed (logged once as a warning)
        self._thread = threading.Thread(target=self._run, name="certstatus-change-watcher", daemon=True)

    def start(self, timeout: float = 10.0) -> "ChangeWatcher":
        """Start the thread; wait up to ``timeout`` seconds until it listens. Returns self."""
        self._thread.start()
        if not self._ready.wait(timeout):
            log.warning("store change watcher not listening after %.0f s; it keeps trying", timeout)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its store (waits up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        postgres = is_dsn(self.database)
        watch = self._watch_postgres if postgres else self._watch_sqlite
        while not self._stop.is_set():
            try:
                if postgres:
                    from certstatus.store.postgres import PostgresStore  # deferred: psycopg only for a PostgreSQL store

                    self.store = PostgresStore(str(self.database), pool_size=1)
                else:
                    self.store = open_store(self.database, upgrade=False)
                try:
                    watch()
                finally:
                    self.store.close()
            except (StoreError, OSError) as exc:
                problem = exc.problem if isinstance(exc, StoreError) else str(exc)  # a StoreError's text names the database too
                self._failed("store change watcher lost %s: %s; retrying", describe(self.database), redact(problem))
            except Exception as exc:  # psycopg errors, sqlite3 errors: keep watching
                self._failed("store change watcher error (%s: %s); retrying", type(exc).__name__, redact(str(exc)))
            self._stop.wait(self.retry_interval)

    def _failed(self, message: str, *args: object) -> None:
        log.log(logging.DEBUG if self._failing else logging.WARNING, message, *args)
        self._failing = True

    def _listening(self) -> None:
        """Connected and compared: ready, and an outage (if any) is over."""
        self._ready.set()
        if self._failing:
            self._failing = False
            log.info("store change watcher listening again on %s", describe(self.database))

    def _watch_sqlite(self) -> None:
        # Every poll used to read every issuer's counter and source rows: with 10 000 CAs, ~27 ms of
        # CPU five times a second in every process, holding the GIL against the event loop. SQLite's
        # data_version tells whether anything was committed since the last look; a full comparison
        # still runs every resync_interval.
        version = self.store.data_version()
        self._resync()
        self._listening()
        next_resync = time.monotonic() + self.resync_interval
        while not self._stop.wait(self.poll_interval):
            now, current = time.monotonic(), self.store.data_version()
            if current != version or now >= next_resync:
                version = current
                self._resync()
                next_resync = now + self.resync_interval

    def _watch_postgres(self) -> None:
        from psycopg import sql  # deferred: psycopg only for a PostgreSQL store

        from certstatus.store.postgres_connect import connect

        store = self.store
        with connect(store.dsn) as conn:
            conn.execute(sql.SQL("LISTEN {}; LISTEN {}").format(sql.Identifier(store.channel), sql.Identifier(store.sources_channel)))
            self._resync()
            self._listening()
            next_resync = time.monotonic() + self.resync_interval
            while not self._stop.is_set():
                for note in conn.notifies(timeout=min(0.25, self.resync_interval), stop_after=1):
                    if note.channel == store.sources_channel:
                        self._compare_sources()  # the payload (issuer id) is only a hint: compare them all
                    else:
                        self._notified(note.payload)
                if time.monotonic() >= next_resync:
                    self._resync()
                    next_resync = time.monotonic() + self.resync_interval

    def _notified(self, payload: str) -> None:
        issuer, _, counter = payload.partition(":")
        if not (issuer.isdigit() and counter.isdigit()):
            log.warning("unexpected store change notification %r; comparing all counters", payload)
            self._resync()
            return
        self._saw(int(issuer), int(counter))

    def _resync(self) -> None:
        counters = self.store.change_counters()
        if self._seen is None:  # first connection: the baseline, nothing to announce
            self._seen = dict(counters)
            self._marks = self.store.source_marks()
            return
        for issuer_id, counter in counters.items():
            self._saw(issuer_id, counter)
        self._compare_sources()

    def _saw(self, issuer_id: int, counter: int) -> None:
        # Notifications may repeat what a resync already announced: publish each counter once.
        seen = self._seen if self._seen is not None else {}
        if seen.get(issuer_id, -1) >= counter:
            return
        seen[issuer_id] = counter
        self._seen = seen
        self.hub.publish(StoreChange(issuer_id, counter))

    def _compare_sources(self) -> None:
        """Publish ``statuses=False`` for each issuer whose source states changed since the last look."""
        marks = self.store.source_marks()
        seen = self._seen if self._seen is not None else {}
        for issuer_id in marks.keys() | self._marks.keys():
            if marks.get(issuer_id) != self._marks.get(issuer_id):
                self.hub.publish(StoreChange(issuer_id, seen.get(issuer_id, 0), statuses=False))
        self._marks = marks
