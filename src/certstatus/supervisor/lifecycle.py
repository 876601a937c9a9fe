"""What the supervising process does besides running workers: services, metrics folder, reload.

Any worker supervisor uses it the same way:

1. :meth:`Lifecycle.start` before the first worker starts: empties the
   metrics folder and exports ``PROMETHEUS_MULTIPROC_DIR`` (workers count
   into it), exports the settings workers build from (the hand-over: every
   database password moved into a passfile, see :func:`without_passwords`;
   the only settings any child process gets: :mod:`certstatus.server.worker_settings`), and starts the
   supervisor's services (:func:`certstatus.supervisor.services.start_services`:
   the source refresher, the admin listener, to which it adds
   ``GET /metrics``, ``/health`` and ``/ready``, and the background generator) and its own copy of the
   signers (:class:`SupervisorSigners`: what ``/metrics`` and ``/ready``
   report, kept current as the workers' are, and the process that logs a
   revoked signer — once per server, not once per worker);
2. on SIGHUP, :meth:`Lifecycle.reload`: re-reads the configuration,
   validates it and imports the revocation data (:func:`certstatus.app.prepare`),
   restarts the services with it and exports it; when it returns True the
   supervisor starts a new set of workers and tells the old ones to finish
   their requests and exit (new connections wait in the shared listening
   socket's backlog), so no connection is refused. A configuration that fails to load or to prepare
   changes nothing: the error is logged, the running workers keep serving,
   and the data of the running configuration is re-imported;
3. :meth:`Lifecycle.stop` after the last worker exited.

The listen address and the number of workers are read at start only; a
change of either is logged and takes effect at the next restart.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from certstatus.admin.api import AdminResponse
from certstatus.app import ca_health, load_ca, prepare
from certstatus.clock import Clock, SystemClock
from certstatus.config import Settings
from certstatus.errors import CertstatusError
from certstatus.health import CaHealth, readiness_problems, readiness_report, store_problem
from certstatus.metrics import MULTIPROC_ENV, Snapshot, admin_registry
from certstatus.observability import held_config_warnings
from certstatus.pipeline.issuers import IssuerRegistry
from certstatus.server.worker_settings import SETTINGS_ENV, without_passwords, write_private
from certstatus.signing.loader import SignerWatcher
from certstatus.signing.revocation import SignerRevocations
from certstatus.signing.signer_set import signer_expiry
from certstatus.sources.health import source_ages
from certstatus.statuspage.facts import gather_facts
from certstatus.statuspage.page import StatusPage
from certstatus.statuspage.traffic import TrafficSampler, traffic_sampler
from certstatus.store.changes import ChangeHub, ChangeWatcher
from certstatus.store.factory import open_configured_store as open_store
from certstatus.supervisor.services import start_services

log = logging.getLogger("certstatus.server")


class SupervisorSigners:
    """The supervisor's own copy of every CA's signers, kept current as a worker's are.

    Loaded as workers load them (``settings`` are the exported ones, without
    passwords), or taken over from :func:`certstatus.app.prepare` (``loaded``:
    the same CAs, already loaded and validated in this process), with ``announce``: this process logs a revoked signer at
    warning or error level, the workers and the generator at debug. A
    :class:`~certstatus.store.changes.ChangeWatcher` thread re-checks an
    issuer's signers when its statuses change, a
    :class:`~certstatus.signing.loader.SignerWatcher` thread re-reads
    ``signers_dir`` and re-checks every signer now and then, each with a store
    of its own thread; ``/metrics`` and ``/ready`` only read the result.
    """

    def __init__(self, settings: Settings, clock: Clock, loaded: list | None = None) -> None:
        self.watcher: ChangeWatcher | None = None
        store = open_store(settings)
        try:
            if loaded is not None:  # prepare() loaded them (with announce) for these settings: taken over, with
                # the exported CaSettings (no passwords) the services read
                exported = {ca.name: ca for ca in settings.cas}
                registry = IssuerRegistry([dataclasses.replace(ca, settings=exported[ca.name]) for ca in loaded])
            else:
                with held_config_warnings():  # prepare() reported them
                    # prepare() validated these settings before this start or reload
                    registry = IssuerRegistry(
                        [load_ca(ca, store, clock, announce=True, checked=True) for ca in settings.cas]
                    )
            self.cas = registry.cas
            self.revocations = SignerRevocations(self.cas)
            if str(settings.server.database) != ":memory:":
                hub = ChangeHub()
                self.watcher = ChangeWatcher(settings.server.database, hub)
                self.revocations.follow(hub, self.watcher)
                self.watcher.start()
                self.revocations.check(store)  # what changed between loading and the watcher's baseline
        except BaseException:
            self.stop()
            raise
        finally:
            store.close()
        self.health: list[CaHealth] = ca_health(registry)
        opener = None if self.watcher is None else (lambda: open_store(settings, upgrade=False))
        self.signer_watcher = SignerWatcher(self.cas, revocations=self.revocations, open_store=opener).start()

    def stop(self) -> None:
        """Stop both threads (the SignerWatcher's ends at its next wake-up)."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        watcher = getattr(self, "signer_watcher", None)
        if watcher is not None:
            watcher.stop()


class Lifecycle:
    """Supervisor-side operations for ``settings``; ``load_settings()`` reads them again on reload."""

    def __init__(
        self, settings: Settings, load_settings: Callable[[], Settings] | None = None, clock: Clock | None = None,
        *, loaded: list | None = None,
    ) -> None:
        self.settings = settings
        self._loaded = loaded  # the CAs prepare() loaded for ``settings`` (SupervisorSigners takes them over once)
        self.load_settings = load_settings
        self.clock = clock or SystemClock()
        self.services = None
        self.metrics_dir: str | None = None
        self._own_metrics_dir = False
        self._settings_dir: str | None = None
        #: What the processes of this server run on (workers, generator, this one's services): ``settings``
        #: with the database passwords in passfiles, so no DSN they log or report holds one. Set by start().
        self.handed: Settings | None = None
        self.signers: SupervisorSigners | None = None
        self._cas: list[CaHealth] = []
        self._environment: dict[str, str | None] = {}  # MULTIPROC_ENV and SETTINGS_ENV before start()
        self._metrics_store_down = False  # a scrape found the store unreachable (logged once per outage)
        self.traffic: TrafficSampler | None = None  # the status page's samples of the workers' metrics

    # start / stop ------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the metrics folder, export the settings, start the services."""
        self._environment = {name: os.environ.get(name) for name in (MULTIPROC_ENV, SETTINGS_ENV)}
        if self.settings.admin is not None:
            self._metrics_folder()
            self.traffic = traffic_sampler(self.metrics_dir).start()
        self._export()
        self._start_services()

    def stop(self) -> None:
        """Stop the services, remove the folders this process made and take back the environment
        variables that named them (a later child process of this one must not count into a
        folder that is gone)."""
        if self.services is not None:
            self.services.stop()
            self.services = None
        if self.signers is not None:
            self.signers.stop()
            self.signers = None
        if self.traffic is not None:
            self.traffic.stop()
            self.traffic = None
        if self._settings_dir is not None:
            shutil.rmtree(self._settings_dir, ignore_errors=True)
            self._settings_dir = None
        if self._own_metrics_dir and self.metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        for name, value in self._environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._environment = {}

    def _metrics_folder(self) -> None:
        configured = self.settings.admin.metrics_dir
        if configured is None:
            self.metrics_dir = tempfile.mkdtemp(prefix="certstatus-metrics-")
            self._own_metrics_dir = True
        else:
            self.metrics_dir = str(configured)
            Path(configured).mkdir(parents=True, exist_ok=True)
            for stale in Path(configured).glob("*.db"):  # counts of a previous run
                stale.unlink()
        os.environ[MULTIPROC_ENV] = self.metrics_dir

    def _export(self) -> None:
        if self._settings_dir is None:
            self._settings_dir = tempfile.mkdtemp(prefix="certstatus-settings-")  # mode 0700
        folder = Path(self._settings_dir)
        path = folder / "settings.json"
        self.handed = without_passwords(self.settings, folder)
        write_private(path, self.handed.to_json())
        os.environ[SETTINGS_ENV] = str(path)

    def _start_services(self) -> None:
        settings = self.handed
        if self.signers is not None:
            self.signers.stop()
        loaded, self._loaded = self._loaded, None
        self.signers = SupervisorSigners(settings, self.clock, loaded)
        self._cas = self.signers.health
        routes, page = {}, None
        if settings.admin is not None:
            routes = {("GET", "/health"): lambda: _text(200, "ok\n"), ("GET", "/ready"): self._ready}
            if self.metrics_dir is not None:
                registry = admin_registry(self.metrics_dir, self._snapshot)
                routes[("GET", "/metrics")] = lambda: _metrics(registry)
            if self.traffic is not None:
                page = functools.partial(self._status_page, settings)
        self.services = start_services(settings, lambda: open_store(settings), self.clock, extra_routes=routes, status_page=page)

    # reload ------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read configuration and data (SIGHUP); True when workers should be replaced."""
        try:
            settings = self.settings if self.load_settings is None else self.load_settings()
            loaded = []
            prepare(settings, loaded=loaded)  # logs each refused source, as at start
        except CertstatusError as exc:
            log.error("reload refused, the running configuration stays: %s", exc)
            if self.services is not None:
                self.services.refresher.trigger()  # its data is still re-read
            return False
        for notice in settings.server.deprecated:
            log.warning("reload: %s", notice)
        old = self.settings
        if (settings.server.host, settings.server.port) != (old.server.host, old.server.port):
            log.warning("reload: server.listen changed; it takes effect at the next restart")
        if settings.server.worker_count != old.server.worker_count:
            log.warning("reload: server.workers changed; it takes effect at the next restart")
        if (settings.admin is None) != (old.admin is None):
            log.warning("reload: [admin] added or removed; metrics follow at the next restart")
        if self.services is not None:
            self.services.stop()
        self.settings = settings
        self._loaded = loaded
        self._export()
        self._start_services()
        log.info("reloaded configuration and data for %s", ", ".join(ca.name for ca in settings.cas))
        return True

    # admin routes ------------------------------------------------------------------

    def _with_store(self, use):
        store = open_store(self.handed)  # per call: the admin serves from its own thread
        try:
            return use(store)
        finally:
            store.close()

    def _problems(self) -> list[str]:
        try:
            return self._with_store(lambda store: readiness_problems(store, self._cas, self.clock.now()))
        except Exception as exc:  # noqa: BLE001 - an unreachable store is a readiness problem
            return [store_problem(exc)]

    def _ready(self) -> AdminResponse:
        return _text(*readiness_report(self._problems()))

    def _status_page(self, settings: Settings, refresher) -> Callable[[str], str]:
        """The status page's renderer over these services (``GET /`` of the admin listener)."""
        ring = self.traffic.ring
        return StatusPage(
            lambda: gather_facts(lambda: open_store(settings), settings.cas, self._cas, refresher.status(), ring, self.clock.now()),
            ring,
        ).html

    def _snapshot(self) -> Snapshot:
        cas, now = self._cas, self.clock.now()
        store_up = True
        try:
            sources = tuple(self._with_store(lambda store: source_ages(store, ((ca.name, ca.issuer_id) for ca in cas), now)))
        except CertstatusError as exc:  # the store cannot be opened or read (open_store says so as a ConfigError): an
            # outage, said once (certstatus_store_up says the rest), not once per scrape
            if not self._metrics_store_down:
                log.warning("metrics: cannot read the store, data ages are left out until it answers: %s", exc)
            self._metrics_store_down = True
            sources, store_up = (), False
        except Exception:  # noqa: BLE001 - a bug; the scrape still reports the rest
            log.exception("cannot read the store for metrics")
            sources, store_up = (), False
        else:
            if self._metrics_store_down:
                log.info("metrics: the store answers again")
            self._metrics_store_down = False
        return Snapshot(sources, tuple(signer_expiry([ca.signers for ca in cas], now)), not self._problems(), store_up)


def _text(status: int, text: str) -> AdminResponse:
    return AdminResponse(status, {}, text.encode(), "text/plain; charset=utf-8")


def _metrics(registry) -> AdminResponse:
    return AdminResponse(200, {}, generate_latest(registry), CONTENT_TYPE_LATEST)
