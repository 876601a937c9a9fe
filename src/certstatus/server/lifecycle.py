"""What the supervising process does besides running workers: metrics folder, admin listener, reload.

Any worker supervisor uses it the same way:

1. :meth:`Lifecycle.start` before the first worker starts: empties the
   metrics folder and exports ``PROMETHEUS_MULTIPROC_DIR`` (workers count
   into it), exports the settings workers build from, starts the admin
   listener (``/metrics``, ``/health``, ``/ready``);
2. on SIGHUP, :meth:`Lifecycle.reload`: re-reads the configuration, imports
   the revocation data again (:func:`certstatus.app.prepare`) and exports
   the new settings; when it returns True the supervisor replaces its
   workers one by one (each new worker is ready before an old one is told
   to finish its requests and exit), so no connection is refused. A
   configuration that fails to load changes nothing: the error is logged
   and the running workers keep serving;
3. :meth:`Lifecycle.stop` after the last worker exited.

The listen address and the number of workers are read at start only; a
change of either is logged and takes effect at the next restart.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from certstatus.clock import Clock, SystemClock
from certstatus.config import Settings
from certstatus.errors import CertstatusError
from certstatus.health import CaHealth, readiness_problems, source_figures
from certstatus.metrics import MULTIPROC_ENV, Snapshot, admin_registry
from certstatus.server.admin import AdminRequest, AdminServer
from certstatus.server.http import ALIVE, HttpResponse, readiness_response
from certstatus.signing.signer_set import signer_expiry

log = logging.getLogger("certstatus.server")

#: Environment variable through which the supervisor hands settings to workers.
SETTINGS_ENV = "CERTSTATUS_SETTINGS_JSON"


class Lifecycle:
    """Supervisor-side operations for ``settings``; ``load_settings()`` reads them again on reload."""

    def __init__(self, settings: Settings, load_settings: Callable[[], Settings] | None = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.load_settings = load_settings
        self.clock = clock or SystemClock()
        self.admin: AdminServer | None = None
        self.metrics_dir: str | None = None
        self._own_metrics_dir = False
        self._cas: list[CaHealth] = []

    # start / stop ------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the metrics folder, export the settings and start the admin listener."""
        admin = self.settings.ops.admin
        if admin.enabled:
            self._metrics_folder()
        self._export()
        if admin.enabled:
            self._cas = self._ca_health(self.settings)
            self.admin = AdminServer(admin.host, admin.port)
            self.admin.route("GET", "/health", lambda request: ALIVE)
            self.admin.route("GET", "/ready", self._ready)
            registry = admin_registry(self.metrics_dir, self._snapshot, self.clock.now)
            self.admin.route("GET", "/metrics", lambda request: _metrics(registry))
            self.admin.start()
            host, port = self.admin.address
            log.info("admin listener on http://%s:%d/ (/metrics, /health, /ready)", host, port)

    def stop(self) -> None:
        """Stop the admin listener and remove a metrics folder this process made."""
        if self.admin is not None:
            self.admin.stop()
            self.admin = None
        if self._own_metrics_dir and self.metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _metrics_folder(self) -> None:
        configured = self.settings.ops.admin.metrics_dir
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
        os.environ[SETTINGS_ENV] = self.settings.to_json()

    # reload ------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read configuration and data (SIGHUP); True when workers should be replaced."""
        from certstatus.app import prepare

        if self.load_settings is None:
            settings = self.settings
        else:
            try:
                settings = self.load_settings()
            except CertstatusError as exc:
                log.error("reload refused, the running configuration stays: %s", exc)
                return False
        try:
            results = prepare(settings)
        except CertstatusError as exc:
            log.error("reload refused, the running configuration stays: %s", exc)
            return False
        for result in results:
            if result.error:
                log.error("reload: %s %s of CA %s refused, its previous data keeps serving: %s",
                          result.kind, result.origin, result.ca, result.error)
        old = self.settings
        if (settings.server.host, settings.server.port) != (old.server.host, old.server.port):
            log.warning("reload: server.listen changed; it takes effect at the next restart")
        if settings.server.worker_count != old.server.worker_count:
            log.warning("reload: server.workers changed; it takes effect at the next restart")
        if settings.ops.admin != old.ops.admin:
            log.warning("reload: [admin] changed; it takes effect at the next restart")
        self.settings = settings
        self._export()
        if self.admin is not None:
            self._cas = self._ca_health(settings)
        log.info("reloaded configuration and data for %s", ", ".join(ca.name for ca in settings.cas))
        return True

    # admin routes ------------------------------------------------------------------

    def _ca_health(self, settings: Settings) -> list[CaHealth]:
        from certstatus.app import ca_health, load_ca, open_store
        from certstatus.pipeline.issuers import IssuerRegistry

        store = open_store(settings)
        try:
            return ca_health(IssuerRegistry(load_ca(ca, store, self.clock) for ca in settings.cas))
        finally:
            store.close()

    def _with_store(self, use):
        from certstatus.app import open_store

        store = open_store(self.settings)  # per call: the admin serves from several threads
        try:
            return use(store)
        finally:
            store.close()

    def _problems(self) -> list[str]:
        try:
            return self._with_store(lambda store: readiness_problems(store, self._cas, self.clock.now(), self.settings.ops.admin.max_data_age))
        except Exception as exc:  # noqa: BLE001 - an unreachable store is a readiness problem
            return [f"store unreachable: {type(exc).__name__}: {exc}"]

    def _ready(self, request: AdminRequest) -> HttpResponse:
        return readiness_response(self._problems())

    def _snapshot(self) -> Snapshot:
        cas = self._cas
        try:
            sources = tuple(self._with_store(lambda store: source_figures(store, cas)))
        except Exception:  # noqa: BLE001 - the scrape still reports the rest
            log.exception("cannot read the store for metrics")
            sources = ()
        states = tuple(signer_expiry([ca.signers for ca in cas], self.clock.now()))
        return Snapshot(sources, states, not self._problems())


def _metrics(registry) -> HttpResponse:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return HttpResponse(200, ((b"content-type", CONTENT_TYPE_LATEST.encode()), (b"cache-control", b"no-cache")), generate_latest(registry))
