"""Generation while serving: a background process that keeps the pre-signed responses current.

``certstatus serve --config`` signs nothing before it listens (the single-CA
form runs one pass first: :func:`certstatus.cli.generate.generate_before_serving`): the stored responses
are served at once (a row whose status changed since it was signed, or
past its refresh point, never is: that request is signed live), and the
supervisor's services (:func:`certstatus.supervisor.services.start_services`,
restarted on SIGHUP with the new settings) run :func:`run_background` in its
own process, whose first tick is a full pass: what changed, is missing or
is due while the responder was down (that walk over every known serial,
~0.6 s per million with SQLite on two cores, and the signing used to delay
the listener; bench/startup.py). Then once a second, or at once when
the supervisor's refresher, admin API or pushes publish a change
(:class:`~certstatus.sources.changes.ChangeFeed` sets the wake-up event), it
looks at the store (:meth:`GenerationLoop.tick`):

* the issuer's change counter moved (an import or push that changed a
  status, in this or another process; a re-import of the same statuses does
  not move it): a full pass — changed serials first, so a revocation is re-signed within
  seconds, then new serials, then renewals;
* a response is due for renewal (:meth:`GeneratorStore.next_renewal`): a pass
  over changed and due responses.

Otherwise it sleeps. It runs at a lower CPU priority (nice 10) than the
HTTP workers, and exits when its parent is gone. Over a shared PostgreSQL
store only the process holding a CA's generator claim signs for it
(:meth:`Generator.claim`); the others ask again every tick and take over,
with a full pass, once the holder is gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.synchronize import Event as EventType

from prometheus_client import multiprocess

from certstatus.clock import SystemClock
from certstatus.config import Settings
from certstatus.generator.metrics import generator_metrics
from certstatus.generator.run import GenerationSummary, Generator, generated_cas
from certstatus.metrics import MULTIPROC_ENV
from certstatus.observability import log_level as current_log_level
from certstatus.observability import process_main
from certstatus.sources.changes import ChangeFeed
from certstatus.store.base import WORK_KINDS
from certstatus.store.factory import open_configured_store

log = logging.getLogger("certstatus.generator")

#: Seconds between two looks at the store.
TICK_SECONDS = 1.0
#: CPU priority of the background generator and its workers (higher is nicer).
NICENESS = 10


class GenerationLoop:
    """Decides when a pass is needed and runs it (one :meth:`tick` at a time).

    ``seen`` holds the change counters of the generated issuers the last
    pass started from (None: no pass yet, so the first tick runs one).
    """

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.seen: dict[int, int] | None = None

    def tick(self) -> GenerationSummary | None:
        """Run a pass if a generated issuer changed or a response is due; return its summary, or None."""
        store = self.generator.store
        if self.generator.claim():  # a CA became ours (its previous generator stopped): everything pending
            self.seen = None
        counters = store.change_counters()
        mine = {issuer_id: counters.get(issuer_id, 0) for issuer_id in self.generator.issuer_ids.values()}
        if mine != self.seen:
            self.seen = mine  # read before the pass: a change during it triggers the next one
            return self.generator.run_pass(WORK_KINDS)
        now = self.generator.clock.now()
        for ca in self.generator.mine():
            issuer_id = self.generator.issuer_ids[ca.name]
            renewal = store.next_renewal(issuer_id)
            if renewal is not None and renewal <= now:
                return self.generator.run_pass(("changed", "due"))
        return None


def _say_unavailable(summary: GenerationSummary, said: dict[str, str]) -> None:
    """Log once, at info, each CA whose signing a pass stopped for want of a signer (the signer set
    logged the cause where it was decided: expiry, revocation, an unreachable token), and once when it
    signs again; ``said`` holds what was said, per CA."""
    for ca in summary.cas.values():
        if ca.unavailable is not None and said.get(ca.name) != ca.unavailable:
            log.info("CA %s: pre-signing stopped: %s; it resumes once a signer is valid", ca.name, ca.unavailable)
            said[ca.name] = ca.unavailable
        elif ca.unavailable is None and ca.signed and said.pop(ca.name, None) is not None:
            log.info("CA %s: pre-signing resumed", ca.name)


def run_background(settings_json: str, processes: int | None, wake: EventType | None = None) -> None:
    """Body of the background process (under :func:`~certstatus.observability.process_main`): tick every
    :data:`TICK_SECONDS` (or when ``wake`` is set) until SIGTERM or orphaned."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us with SIGTERM
    os.nice(NICENESS)
    parent = os.getppid()
    settings = Settings.from_json(settings_json)
    store = open_configured_store(settings)
    try:
        with Generator(settings, store, clock=SystemClock(), processes=processes) as generator:
            metrics = generator_metrics()
            if metrics is not None:
                metrics.start(generator)
                generator.on_batch = metrics.batch
            loop = GenerationLoop(generator)
            first = True
            unavailable: dict[str, str] = {}  # CA -> why its signing stopped (said once per reason)
            while os.getppid() == parent:
                try:
                    summary = loop.tick()
                    if summary is not None:
                        _say_unavailable(summary, unavailable)
                except Exception:
                    log.exception("generation pass failed; retrying in %s s", TICK_SECONDS)
                    summary = None
                if metrics is not None:
                    metrics.count(generator, now=summary is not None)
                if first and summary is not None and any(ca.generated_by is None for ca in summary.cas.values()):
                    first = False  # a pass that signed for a CA of ours (over PostgreSQL another process may hold them all)
                    log.info(
                        "first generation pass done in %.1f s: signed %d responses, dropped %d serials no longer known",
                        summary.seconds, summary.signed, summary.removed,
                    )  # fmt: skip
                elif summary is not None and (summary.signed or summary.removed):
                    log.info(
                        "signed %d responses (%.0f/s), dropped %d serials no longer known",
                        summary.signed, summary.responses_per_second, summary.removed,
                    )  # fmt: skip
                if wake is None:
                    time.sleep(TICK_SECONDS)
                elif wake.wait(TICK_SECONDS):
                    wake.clear()
    except SystemExit:
        pass
    finally:
        store.close()


def start_background(
    settings: Settings, *, log_level: str | None = None, processes: int | None = None, feed: ChangeFeed | None = None
) -> multiprocessing.process.BaseProcess | None:
    """Start :func:`run_background` in a new (spawned) process and return it; None when every CA is live.

    With ``feed``, every change published in this process wakes it at once.
    ``log_level`` defaults to the level of this process's certstatus logger.
    """
    if not generated_cas(settings):
        return None
    if log_level is None:
        log_level = current_log_level()
    context = multiprocessing.get_context("spawn")
    wake = context.Event()
    if feed is not None:
        feed.subscribe(lambda issuer_id, serials: wake.set())
    process = context.Process(
        target=process_main,  # JSON logging; an exception is one log line, not a raw traceback
        args=(log_level, run_background, settings.to_json(), processes, wake),
        name="certstatus-generator",
    )
    process.start()
    return process


def stop_background(process: multiprocessing.process.BaseProcess, timeout: float = 30.0) -> None:
    """SIGTERM the background process and wait for it (its running batches finish first)."""
    if process.is_alive():
        process.terminate()
    process.join(timeout)
    if process.is_alive():
        log.error("the background generator did not stop within %s s; killing it", timeout)
        process.kill()
        process.join()
    if os.environ.get(MULTIPROC_ENV):  # its pending count ends with it (a reload starts another generator)
        multiprocess.mark_process_dead(process.pid)
