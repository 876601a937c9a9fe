"""Keep every CA's data fresh without an operator: scheduled and on-demand re-imports.

One :class:`Refresher` per ``certstatus serve`` supervisor (or one pass for
``certstatus reload``). Its schedule, per source origin:

* CRL URLs: fetched again at the imported CRL's nextUpdate, and at least
  every ``refresh_interval`` (never more often than every ``min_interval``
  when the CA is late publishing); after a failure, again after
  ``min_interval`` doubled per consecutive failure, up to ``refresh_interval``.
  Requests are conditional (ETag / Last-Modified), so an unchanged CRL costs
  a 304.
* Local files and directories (CRL files, ``index.txt``, issued lists):
  re-imported when their size or mtime changes (checked every ``file_poll``,
  :data:`FILE_POLL_SECONDS` unless told: a certificate added to an issued
  list or ``index.txt`` is answered good that long plus one import after,
  well within the 15 minutes of CA/Browser Forum BR §4.9.9).
* Delta CRLs named by a complete CRL's FreshestCRL extension (RFC 5280
  §5.2.6; ``follow_freshest_crl``): found when the complete CRL is fetched
  (or, after a restart, from the delta the store holds) and from then on
  scheduled like a configured CRL URL, by their own nextUpdate.
* On demand (:meth:`Refresher.trigger`: SIGHUP, the admin API): every
  source now.

A refused source is logged at error level with the reason and keeps its
previous data serving; :meth:`Refresher.status` reports the last attempt,
success and error of every origin (for the admin API and metrics).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization

from certstatus.clock import Clock
from certstatus.config import CaSettings, Settings
from certstatus.signing.keys import load_certificates
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.fetch import Fetched, file_signature, is_remote
from certstatus.sources.importer import CaTarget, ImportResult, import_crls, import_file_source
from certstatus.store.base import StatusStore

log = logging.getLogger("certstatus.refresh")

#: Seconds between two looks at the size and mtime of every local source file (the default ``file_poll``).
FILE_POLL_SECONDS = 5.0


@dataclass
class OriginStatus:
    """Schedule and outcome of one source origin (times aware UTC)."""

    ca: str
    kind: str  # "crl" (complete or delta, decided by the CRL), "index", "issued"
    origin: str
    next_attempt: dt.datetime
    last_attempt: dt.datetime | None = None
    last_success: dt.datetime | None = None
    last_error: str | None = None
    failures: int = 0
    signature: tuple = field(default=(), repr=False)

    def as_json(self) -> dict:
        """A JSON-ready dict (times as ISO 8601 strings)."""
        out = {}
        for name in ("ca", "kind", "origin", "next_attempt", "last_attempt", "last_success", "last_error", "failures"):
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out


def register_targets(store: StatusStore, cas: tuple[CaSettings, ...]) -> dict[str, CaTarget]:
    """Register every CA as an issuer of ``store``; return the import targets by CA name."""
    targets = {}
    for ca in cas:
        certificate = load_certificates(ca.certificate)[0]
        issuer_id = store.register_issuer(ca.name, certificate.public_bytes(serialization.Encoding.DER))
        targets[ca.name] = CaTarget(ca, issuer_id, certificate)
    return targets


class Refresher:
    """Re-import the configured sources of ``settings`` on schedule and on demand.

    ``store_factory`` opens the store in the refresher's own thread (SQLite
    connections belong to one thread). ``min_interval`` and ``file_poll``
    are seconds.
    """

    def __init__(
        self,
        settings: Settings,
        store_factory: Callable[[], StatusStore],
        clock: Clock,
        feed: ChangeFeed | None = None,
        *,
        min_interval: float = 30.0,
        file_poll: float = FILE_POLL_SECONDS,
    ) -> None:
        self.settings = settings
        self.store_factory = store_factory
        self.clock = clock
        self.feed = feed
        self.min_interval = min_interval
        self.file_poll = file_poll
        self._origins: dict[tuple[str, str, str], OriginStatus] = {}
        self._discovered: dict[str, list[str]] = {}  # CA name -> delta CRL URIs from FreshestCRL
        self._validators: dict[str, Fetched] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._waiting: list[Future] = []
        self._thread: threading.Thread | None = None

    # -- one pass (runs in whichever thread owns ``store``) ---------------------------------

    def seed(self, store: StatusStore, targets: dict[str, CaTarget]) -> None:
        """Schedule every origin from what the store already holds (after start-up imports)."""
        now = self.clock.now()
        for ca in self.settings.cas:
            states = store.source_states(targets[ca.name].issuer_id)
            delta = states.get("delta")
            if ca.follow_freshest_crl and delta is not None and is_remote(delta.origin) and delta.origin not in ca.crl:
                self._discover(ca, delta.origin)  # found by an earlier process through FreshestCRL
            for kind, origin in self._origins_of(ca):
                status = OriginStatus(ca.name, kind, origin, next_attempt=now)
                if is_remote(origin):
                    state = next((s for s in states.values() if s.origin == origin), states.get("crl"))
                    if state is not None:
                        status.next_attempt = self._next_after_success(ca, state.imported_at, state.next_update)
                else:
                    status.signature = file_signature(origin)
                    status.next_attempt = now + dt.timedelta(seconds=self.file_poll)
                self._origins[(ca.name, kind, origin)] = status

    def run_pass(self, store: StatusStore, targets: dict[str, CaTarget], *, force: bool = False) -> list[ImportResult]:
        """Import every origin that is due (all of them with ``force``); return the results."""
        results: list[ImportResult] = []
        now = self.clock.now()
        for ca in self.settings.cas:
            due_crls, due_files = [], []
            for kind, origin in self._origins_of(ca):
                status = self._origins.setdefault((ca.name, kind, origin), OriginStatus(ca.name, kind, origin, now))
                if not (force or status.next_attempt <= now):
                    continue
                if not is_remote(origin):
                    signature = file_signature(origin)
                    changed = signature != status.signature or status.last_error is not None
                    status.next_attempt = now + dt.timedelta(seconds=self.file_poll)
                    if not (force or changed):
                        continue
                    status.signature = signature
                (due_crls if kind == "crl" else due_files).append((kind, origin))
            target = targets[ca.name]
            if due_crls:
                crl_results = import_crls(
                    store, target, [o for _, o in due_crls], self.clock, previous=self._validators, feed=self.feed
                )
                states = store.source_states(target.issuer_id)
                for result in crl_results:
                    if result.origin not in ca.crl:
                        self._discover(ca, result.origin)
                    state = next((s for s in states.values() if s.origin == result.origin), None)
                    self._record(ca, "crl", result, state.next_update if state else None)
                results.extend(crl_results)
            for kind, origin in due_files:
                result = import_file_source(store, target, kind, origin, self.clock, self.feed)
                self._record(ca, kind, result, None)
                results.append(result)
        return results

    def _origins_of(self, ca: CaSettings) -> list[tuple[str, str]]:
        return _origins_of(ca) + [("crl", origin) for origin in self._discovered.get(ca.name, ())]

    def _discover(self, ca: CaSettings, origin: str) -> None:
        """Schedule a delta CRL URI found through FreshestCRL (once)."""
        known = self._discovered.setdefault(ca.name, [])
        if origin not in known:
            known.append(origin)
            log.info("CA %s: following delta CRL %s (FreshestCRL of the complete CRL)", ca.name, origin)

    def _record(self, ca: CaSettings, kind: str, result: ImportResult, next_update: dt.datetime | None) -> None:
        now = self.clock.now()
        status = self._origins.setdefault((ca.name, kind, result.origin), OriginStatus(ca.name, kind, result.origin, now))
        status.last_attempt = now
        if result.error is not None:
            status.failures += 1
            status.last_error = result.error
            if is_remote(result.origin):
                delay = min(self.min_interval * 2 ** (status.failures - 1), ca.refresh_interval)
                status.next_attempt = now + dt.timedelta(seconds=delay)
            log.error(
                "CA %s: %s %s refused: %s (failure %d; the data imported before keeps serving)",
                ca.name, result.kind, result.origin, result.error, status.failures,
            )  # fmt: skip
            return
        status.failures = 0
        status.last_error = None
        status.last_success = now
        if is_remote(result.origin):
            status.next_attempt = self._next_after_success(ca, now, next_update)
        if not result.unchanged:
            log.info("CA %s: imported %s %s (%d entries)", ca.name, result.kind, result.origin, result.entries)

    def _next_after_success(self, ca: CaSettings, when: dt.datetime, next_update: dt.datetime | None) -> dt.datetime:
        """At nextUpdate, but within [min_interval, refresh_interval] of ``when``."""
        earliest = when + dt.timedelta(seconds=self.min_interval)
        latest = when + dt.timedelta(seconds=ca.refresh_interval)
        if next_update is None:
            return latest
        return min(max(next_update, earliest), latest)

    def status(self) -> list[OriginStatus]:
        """A snapshot of every origin's schedule and last outcome."""
        with self._lock:
            return [OriginStatus(**{**vars(s)}) for s in self._origins.values()]

    # -- background thread ---------------------------------------------------------------

    def start(self) -> None:
        """Run passes in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="certstatus-refresher", daemon=True)
        self._thread.start()

    def trigger(self) -> Future:
        """Ask for a forced pass now; the future resolves to its results (list of ImportResult)."""
        future: Future = Future()
        with self._lock:
            self._waiting.append(future)
        self._wake.set()
        return future

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (waits up to ``timeout`` seconds for a pass in progress)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        store = self.store_factory()
        try:
            targets = register_targets(store, self.settings.cas)
            self.seed(store, targets)
            while not self._stop.is_set():
                self._wake.clear()
                with self._lock:
                    waiting, self._waiting = self._waiting, []
                try:
                    results = self.run_pass(store, targets, force=bool(waiting))
                except Exception as exc:  # a bug must not stop refreshing for good
                    log.exception("refresh pass failed")
                    for future in waiting:
                        future.set_exception(exc)
                else:
                    for future in waiting:
                        future.set_result(results)
                self._wake.wait(self._sleep_seconds())
        finally:
            store.close()

    def _sleep_seconds(self) -> float:
        with self._lock:
            if self._waiting:
                return 0.0
            upcoming = [s.next_attempt for s in self._origins.values()]
        if not upcoming:
            return self.file_poll
        seconds = (min(upcoming) - self.clock.now()).total_seconds()
        return max(0.5, min(seconds, self.file_poll))


def _origins_of(ca: CaSettings) -> list[tuple[str, str]]:
    origins = [("crl", origin) for origin in ca.crl]
    if ca.index is not None:
        origins.append(("index", str(ca.index)))
    if ca.issued is not None:
        origins.append(("issued", str(ca.issued)))
    return origins
