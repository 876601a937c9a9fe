"""What the supervising process does besides running workers: services, metrics folder, reload.

Any worker supervisor uses it the same way:

1. :meth:`Lifecycle.start` before the first worker starts: empties the
   metrics folder and exports ``PROMETHEUS_MULTIPROC_DIR`` (workers count
   into it), exports the settings workers build from, and starts the
   supervisor's services (:func:`certstatus.admin.server.start_services`:
   the source refresher and the admin listener, to which it adds
   ``GET /metrics``, ``/health`` and ``/ready``);
2. on SIGHUP, :meth:`Lifecycle.reload`: re-reads the configuration,
   validates it and imports the revocation data (:func:`certstatus.app.prepare`),
   restarts the services with it and exports it; when it returns True the
   supervisor replaces its workers one by one (each new worker is ready
   before an old one is told to finish its requests and exit), so no
   connection is refused. A configuration that fails to load or to prepare
   changes nothing: the error is logged, the running workers keep serving,
   and the data of the running configuration is re-imported;
3. :meth:`Lifecycle.stop` after the last worker exited.

The listen address and the number of workers are read at start only; a
change of either is logged and takes effect at the next restart.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from certstatus.admin.api import AdminResponse
from certstatus.clock import Clock, SystemClock
from certstatus.config import Settings
from certstatus.errors import CertstatusError
from certstatus.health import CaHealth, readiness_problems, readiness_report
from certstatus.metrics import MULTIPROC_ENV, Snapshot, admin_registry
from certstatus.signing.signer_set import signer_expiry
from certstatus.sources.health import source_ages
from certstatus.store.dsn import is_dsn, pgpass_line, split_password, with_passfile

log = logging.getLogger("certstatus.server")

#: Environment variable naming the file through which the supervisor hands settings to workers.
#: The settings travel in a file of mode 0600 in a private folder, not in the environment:
#: they may hold a database password, and a process environment is copied into every child
#: process and shown by /proc/PID/environ and crash reports.
SETTINGS_ENV = "CERTSTATUS_SETTINGS_FILE"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) by an atomic rename: a reader sees the old or the new file, whole."""
    fresh = path.with_suffix(".new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    fresh.replace(path)


def worker_settings() -> Settings:
    """The settings the supervisor exported (in a worker process)."""
    return Settings.from_json(Path(os.environ[SETTINGS_ENV]).read_text())


def _passfile_dsn(dsn: str, passfile: Path) -> str:
    """``dsn`` without its password, naming ``passfile`` (written, mode 0600) that holds it; as is without one."""
    bare, password = split_password(dsn)
    if password is None:
        return dsn
    _write_private(passfile, pgpass_line(password))
    return with_passfile(bare, str(passfile))


def without_passwords(settings: Settings, folder: Path) -> Settings:
    """``settings`` with every PostgreSQL password moved into a libpq passfile in ``folder``.

    Covers ``server.database`` (file ``pgpass``) and each ``[ca.NAME.sql]`` DSN
    (file ``pgpass-sql-N``, N the CA's position: one file per DSN, since a
    passfile line here matches any host). The DSNs handed on name their file
    with ``passfile=``; libpq reads the password from it when it connects, so
    the settings text (and whatever logs or dumps it) holds no password.
    """
    database = settings.server.database
    if is_dsn(database):
        settings = dataclasses.replace(
            settings, server=dataclasses.replace(settings.server, database=_passfile_dsn(str(database), folder / "pgpass"))
        )
    cas = []
    for number, ca in enumerate(settings.cas):
        if ca.sql is not None:
            sql = dataclasses.replace(ca.sql, dsn=_passfile_dsn(ca.sql.dsn, folder / f"pgpass-sql-{number}"))
            ca = dataclasses.replace(ca, sql=sql)
        cas.append(ca)
    return dataclasses.replace(settings, cas=tuple(cas))


class Lifecycle:
    """Supervisor-side operations for ``settings``; ``load_settings()`` reads them again on reload."""

    def __init__(self, settings: Settings, load_settings: Callable[[], Settings] | None = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.load_settings = load_settings
        self.clock = clock or SystemClock()
        self.services = None
        self.metrics_dir: str | None = None
        self._own_metrics_dir = False
        self._settings_dir: str | None = None
        self._cas: list[CaHealth] = []

    # start / stop ------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the metrics folder, export the settings, start the services."""
        if self.settings.admin is not None:
            self._metrics_folder()
        self._export()
        self._start_services()

    def stop(self) -> None:
        """Stop the services and remove a metrics folder this process made."""
        if self.services is not None:
            self.services.stop()
            self.services = None
        if self._settings_dir is not None:
            shutil.rmtree(self._settings_dir, ignore_errors=True)
            self._settings_dir = None
        if self._own_metrics_dir and self.metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

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
        _write_private(path, without_passwords(self.settings, folder).to_json())
        os.environ[SETTINGS_ENV] = str(path)

    def _start_services(self) -> None:
        from certstatus.admin.server import start_services
        from certstatus.app import open_store

        settings = self.settings
        routes = {}
        if settings.admin is not None:
            self._cas = self._ca_health(settings)
            routes = {("GET", "/health"): lambda: _text(200, "ok\n"), ("GET", "/ready"): self._ready}
            if self.metrics_dir is not None:
                registry = admin_registry(self.metrics_dir, self._snapshot)
                routes[("GET", "/metrics")] = lambda: _metrics(registry)
        self.services = start_services(settings, lambda: open_store(settings), self.clock, extra_routes=routes)

    # reload ------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read configuration and data (SIGHUP); True when workers should be replaced."""
        from certstatus.app import prepare

        try:
            settings = self.settings if self.load_settings is None else self.load_settings()
            prepare(settings)  # logs each refused source, as at start
        except CertstatusError as exc:
            log.error("reload refused, the running configuration stays: %s", exc)
            if self.services is not None:
                self.services.refresher.trigger()  # its data is still re-read
            return False
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
        self._export()
        self._start_services()
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

        store = open_store(self.settings)  # per call: the admin serves from its own thread
        try:
            return use(store)
        finally:
            store.close()

    def _problems(self) -> list[str]:
        try:
            return self._with_store(lambda store: readiness_problems(store, self._cas, self.clock.now()))
        except Exception as exc:  # noqa: BLE001 - an unreachable store is a readiness problem
            return [f"store unreachable: {type(exc).__name__}: {exc}"]

    def _ready(self) -> AdminResponse:
        return _text(*readiness_report(self._problems()))

    def _snapshot(self) -> Snapshot:
        cas, now = self._cas, self.clock.now()
        try:
            sources = tuple(self._with_store(lambda store: source_ages(store, ((ca.name, ca.issuer_id) for ca in cas), now)))
        except Exception:  # noqa: BLE001 - the scrape still reports the rest
            log.exception("cannot read the store for metrics")
            sources = ()
        return Snapshot(sources, tuple(signer_expiry([ca.signers for ca in cas], now)), not self._problems())


def _text(status: int, text: str) -> AdminResponse:
    return AdminResponse(status, {}, text.encode(), "text/plain; charset=utf-8")


def _metrics(registry) -> AdminResponse:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return AdminResponse(200, {}, generate_latest(registry), CONTENT_TYPE_LATEST)
