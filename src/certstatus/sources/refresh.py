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

The CRLs of one CA are downloaded, verified and parsed in one job, in a pool
of :data:`FETCH_THREADS` threads (``download_crls``), one job per CA at a
time; the refresher's own thread writes what each job got as soon as it is
done (``apply_crls``; index files and issued lists are local and read there
too), so the store sees one writer and a slow origin — each attempt ends at
its ``fetch_timeout`` — delays no other CA.

A refused source is logged at error level with the reason
(:func:`~certstatus.sources.importer.log_refusal`) and keeps its previous data
serving; a CA with a source never imported answers tryLater until it imports
(:func:`~certstatus.sources.health.missing_sources`). A URL refused at start is
tried again after ``min_interval``, then as after any failure.
:meth:`Refresher.status` reports the last attempt, success and error of every
origin (for the admin API and metrics).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization

from certstatus.clock import Clock
from certstatus.config import CaSettings, Settings
from certstatus.signing.keys import load_certificates
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.fetch import Fetched, file_signature, is_remote
from certstatus.sources.health import missing_sources
from certstatus.sources.importer import (
    FETCH_THREADS,
    CaTarget,
    CrlDownload,
    ImportResult,
    apply_crls,
    download_crls,
    import_file_source,
    log_refusal,
)  # fmt: skip
from certstatus.store.base import SourceState, StatusWriter

log = logging.getLogger("certstatus.response_refresh")

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


def register_targets(store: StatusWriter, cas: tuple[CaSettings, ...]) -> dict[str, CaTarget]:
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
        store_factory: Callable[[], StatusWriter],
        clock: Clock,
        feed: ChangeFeed | None = None,
        *,
        min_interval: float = 30.0,
        file_poll: float = FILE_POLL_SECONDS,
        fetch_threads: int = FETCH_THREADS,
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
        self._downloads = _DaemonPool(fetch_threads, "certstatus-fetch")
        self._jobs: dict[str, tuple[Future, list[str]]] = {}  # CA name -> its CRL download in progress, its origins
        self._passes: list[_Pass] = []  # forced passes (trigger) waiting for downloads
        self._order = {ca.name: index for index, ca in enumerate(settings.cas)}

    # -- one pass (runs in whichever thread owns ``store``) ---------------------------------

    def seed(self, store: StatusWriter, targets: dict[str, CaTarget]) -> None:
        """Schedule every origin from what the store already holds (after the start-up or reload import,
        :func:`certstatus.app.prepare`: a URL without data was tried there, and is again after ``min_interval``)."""
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
                    else:  # the start-up import (or reload) has just tried it and logged why it failed
                        status.next_attempt = now + dt.timedelta(seconds=self.min_interval)
                else:
                    status.signature = file_signature(origin)
                    status.next_attempt = now + dt.timedelta(seconds=self.file_poll)
                self._origins[(ca.name, kind, origin)] = status

    def run_pass(self, store: StatusWriter, targets: dict[str, CaTarget], *, force: bool = False) -> list[ImportResult]:
        """Import every origin that is due (all of them with ``force``) and wait for its downloads; return
        the results in configuration order (per CA: CRLs, then index and issued list).

        The CRL downloads of the CAs run at the same time; each CA's is written
        as soon as it is done, so one slow origin does not hold the others back.
        """
        results, started = self._start(store, targets, force=force)
        while started:
            done, _ = wait([self._jobs[name][0] for name in started], return_when=FIRST_COMPLETED)
            for name in [name for name in started if self._jobs[name][0] in done]:
                started.discard(name)
                results.extend(self._finish(store, targets, name))
        return self._in_order(results)

    def _start(self, store: StatusWriter, targets: dict[str, CaTarget], *, force: bool) -> tuple[list[ImportResult], set[str]]:
        """Start the CRL downloads that are due and import the due files; return the file results and the
        CAs whose downloads to wait for (with ``force``, one already in progress too)."""
        results: list[ImportResult] = []
        waiting: set[str] = set()
        now = self.clock.now()
        for ca in self.settings.cas:
            busy = ca.name in self._jobs
            due_crls, due_files = [], []
            for kind, origin in self._origins_of(ca):
                status = self._origins.get((ca.name, kind, origin))
                if status is None:
                    status = self._origins[(ca.name, kind, origin)] = OriginStatus(ca.name, kind, origin, now)
                if not (force or status.next_attempt <= now) or (busy and kind == "crl"):
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
                origins = [origin for _, origin in due_crls]
                future = self._downloads.submit(
                    download_crls, target, origins,
                    previous=dict(self._validators), states=store.source_states(target.issuer_id),
                )  # fmt: skip
                future.add_done_callback(lambda _: self._wake.set())
                self._jobs[ca.name] = (future, origins)
            if ca.name in self._jobs and (due_crls or force):
                waiting.add(ca.name)
            for kind, origin in due_files:
                result = import_file_source(store, target, kind, origin, self.clock, self.feed)
                self._record(ca, kind, result, store.source_states(target.issuer_id))
                results.append(result)
        return results, waiting

    def _finish(self, store: StatusWriter, targets: dict[str, CaTarget], name: str) -> list[ImportResult]:
        """Write the finished CRL download of CA ``name`` (this thread owns ``store``); return its results."""
        future, origins = self._jobs.pop(name)
        ca, target = targets[name].settings, targets[name]
        try:
            download: CrlDownload = future.result()
        except Exception as exc:  # a bug: report it on every origin, keep refreshing
            log.error("CA %s: downloading its CRLs failed", name, exc_info=exc)
            download = CrlDownload(origins, {o: ImportResult(name, "crl", o, error=f"internal error: {exc!r}") for o in origins})
        results = apply_crls(store, target, download, self.clock, previous=self._validators, feed=self.feed)
        states = store.source_states(target.issuer_id)
        for result in results:
            if result.origin not in ca.crl:
                self._discover(ca, result.origin)
            self._record(ca, "crl", result, states)
        return results

    def _in_order(self, results: list[ImportResult]) -> list[ImportResult]:
        """``results`` by the CAs' configuration order, each CA's CRL results before its other sources."""
        return sorted(results, key=lambda r: (self._order.get(r.ca, len(self._order)), r.kind not in ("crl", "delta")))

    def _origins_of(self, ca: CaSettings) -> list[tuple[str, str]]:
        return _origins_of(ca) + [("crl", origin) for origin in self._discovered.get(ca.name, ())]

    def _discover(self, ca: CaSettings, origin: str) -> None:
        """Schedule a delta CRL URI found through FreshestCRL (once)."""
        known = self._discovered.setdefault(ca.name, [])
        if origin not in known:
            known.append(origin)
            log.info("CA %s: following delta CRL %s (FreshestCRL of the complete CRL)", ca.name, origin)

    def _record(self, ca: CaSettings, kind: str, result: ImportResult, states: Mapping[str, SourceState]) -> None:
        """Note the outcome of one origin (``states``: the CA's source states after it) and log a refusal."""
        now = self.clock.now()
        status = self._origins.setdefault((ca.name, kind, result.origin), OriginStatus(ca.name, kind, result.origin, now))
        status.last_attempt = now
        if result.error is not None:
            status.failures += 1
            status.last_error = result.error
            if is_remote(result.origin):
                delay = min(self.min_interval * 2 ** (status.failures - 1), ca.refresh_interval)
                status.next_attempt = now + dt.timedelta(seconds=delay)
            log_refusal(result, missing_sources(ca, states))
            return
        status.failures = 0
        status.last_error = None
        status.last_success = now
        if is_remote(result.origin):
            state = next((s for s in states.values() if s.origin == result.origin), None)
            status.next_attempt = self._next_after_success(ca, now, state.next_update if state else None)
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
        """Ask for a forced pass now; the future resolves to its results (list of ImportResult) once every
        CA's download, one already in progress included, is written."""
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
        self._downloads.shutdown()

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
                    self._step(store, targets, waiting)
                except Exception as exc:  # a bug must not stop refreshing for good
                    log.exception("refresh pass failed")
                    for future in waiting:
                        if not future.done():
                            future.set_exception(exc)
                self._wake.wait(self._sleep_seconds())
        finally:
            for waiting_pass in self._passes:
                waiting_pass.future.cancel()
            store.close()

    def _step(self, store: StatusWriter, targets: dict[str, CaTarget], triggered: list[Future]) -> None:
        """Write the downloads that are done, start what is due (everything when ``triggered``), and
        resolve each triggered future once the downloads it waits for are written."""
        for name in [name for name, (future, _) in self._jobs.items() if future.done()]:
            passes = [waiting_pass for waiting_pass in self._passes if name in waiting_pass.cas]
            for waiting_pass in passes:
                waiting_pass.cas.discard(name)  # first: a failure below must not leave the pass waiting
            results = self._finish(store, targets, name)
            for waiting_pass in passes:
                waiting_pass.results.extend(results)
        results, started = self._start(store, targets, force=bool(triggered))
        for future in triggered:
            self._passes.append(_Pass(future, set(started), list(results)))
        for waiting_pass in [p for p in self._passes if not p.cas]:
            self._passes.remove(waiting_pass)
            if not waiting_pass.future.done():  # a failed step may have answered it already
                waiting_pass.future.set_result(self._in_order(waiting_pass.results))

    def _sleep_seconds(self) -> float:
        with self._lock:
            if self._waiting:
                return 0.0
            # A CA with a download in progress wakes the loop when it is done.
            upcoming = [s.next_attempt for s in self._origins.values() if not (s.ca in self._jobs and s.kind == "crl")]
        if not upcoming:
            return self.file_poll
        seconds = (min(upcoming) - self.clock.now()).total_seconds()
        return max(0.5, min(seconds, self.file_poll))


@dataclass
class _Pass:
    """A forced pass (:meth:`Refresher.trigger`): its future, the CAs whose downloads it still waits
    for, and the results so far."""

    future: Future
    cas: set[str]
    results: list[ImportResult]


class _DaemonPool:
    """Run calls in at most ``size`` daemon threads.

    concurrent.futures' pool joins its threads when the interpreter exits, so a
    stopping server would wait for a download in progress to reach its deadline
    (up to every attempt's ``fetch_timeout``); a daemon thread does not hold it.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, call: Callable, /, *args, **kwargs) -> Future:
        """Run ``call(*args, **kwargs)`` in one of the threads; its future."""
        future: Future = Future()
        self._calls.put((future, call, args, kwargs))
        with self._lock:
            if len(self._threads) < self.size:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def shutdown(self) -> None:
        """End every thread once the calls queued before are done (does not wait)."""
        with self._lock:
            for _ in self._threads:
                self._calls.put(None)
            self._threads.clear()

    def _work(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)


def _origins_of(ca: CaSettings) -> list[tuple[str, str]]:
    origins = [("crl", origin) for origin in ca.crl]
    if ca.index is not None:
        origins.append(("index", str(ca.index)))
    if ca.issued is not None:
        origins.append(("issued", str(ca.issued)))
    return origins
