"""Assemble a responder from settings: store, served CAs, signers, pipeline, HTTP edge.

:func:`prepare` runs once in the supervising process (register issuers,
import data, validate signers, so configuration errors stop start-up before
any worker exists); :func:`build_application` runs in every worker and only
opens and loads what is already checked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from certstatus.access.trust import load_anchors
from certstatus.admin.server import read_token, tls_context
from certstatus.audit import AuditLog
from certstatus.ca_certificate import profile_warnings
from certstatus.cache_size import presigned_answers, with_cache_size
from certstatus.clock import Clock, SystemClock
from certstatus.config import Settings
from certstatus.errors import CertstatusError
from certstatus.health import CaHealth, public_readiness
from certstatus.loading import load_ca
from certstatus.metrics import MULTIPROC_ENV, RequestMetrics
from certstatus.observability import config_warning, grouped_config_warnings, held_config_warnings
from certstatus.pipeline.base import Route
from certstatus.pipeline.build import Pipeline, build_pipeline
from certstatus.pipeline.issuers import IssuerRegistry, ServedCA
from certstatus.secret_files import check_secret_files
from certstatus.server.http import OCSPHttpHandler
from certstatus.server.proxy import TrustedProxies
from certstatus.server.responder import Responder, responder_for
from certstatus.server.tls import server_context
from certstatus.signing.loader import SignerWatcher, start_signer_watcher
from certstatus.signing.revocation import SignerRevocations
from certstatus.sources.health import missing_sources
from certstatus.sources.importer import CaTarget, ImportResult, import_cas, log_refusal
from certstatus.store.base import StatusStore
from certstatus.store.changes import ChangeHub, ChangeWatcher
from certstatus.store.factory import open_configured_store


#: Seconds between two re-reads of a CA's source states by the freshness guard of a worker whose
#: :class:`ChangeWatcher` announces every change (without one: every second).
WATCHED_RECHECK_SECONDS = 30.0


@dataclass
class Application:
    """Everything one worker needs to answer requests.

    ``changes`` announces store changes made by any process (subscribe
    caches to it); ``watcher`` feeds it, or is None when not watching.
    ``revocations`` keeps the signers in step with the CA's own revocation
    data (subscribe to it what holds answers a revoked signer signed).
    """

    settings: Settings
    store: StatusStore
    registry: IssuerRegistry
    http: OCSPHttpHandler
    clock: Clock
    changes: ChangeHub
    watcher: ChangeWatcher | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    pipeline: Pipeline | None = None  # the CAs' plans
    revocations: SignerRevocations | None = None
    responder: Responder | None = None  # the HTTP edge hands it every request

    def close(self) -> None:
        """Stop watching, flush the audit log, close remote connections and the store (worker shutdown)."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        for close in reversed(self.closers):
            close()
        self.closers.clear()


def prepare(
    settings: Settings, clock: Clock | None = None, *, log_refusals: bool = True, loaded: list[ServedCA] | None = None
) -> list[ImportResult]:
    """Validate every CA and signer and import all configured data (start-up, once; and on reload).

    Raises :class:`SignerError`/:class:`ConfigError` for a CA that cannot be
    served; returns the per-source import results (failures included). Each
    refused source is logged at error level (:func:`log_refusal`) unless
    ``log_refusals`` is False (a command that prints the results instead). The
    server starts even when every source is refused: ``/health`` and the admin
    API answer, ``/ready`` names what is missing, and such a CA answers tryLater
    until the refresher imports the source. What a CA certificate leaves unsaid
    (:func:`certstatus.ca_certificate.profile_warnings`) is logged at warning
    level, once per start or reload.

    ``loaded``: a list that receives the CAs as loaded and validated here, with
    ``announce`` (the supervisor keeps them as its own signers, see
    :class:`certstatus.supervisor.lifecycle.SupervisorSigners`, instead of loading
    every CA a second time: seconds with 10 000 CAs).
    """
    clock = clock or SystemClock()
    check_secret_files(settings)
    check_operations(settings)
    store = open_configured_store(settings)
    try:
        with grouped_config_warnings():  # once per start or reload, one line per kind listing the CAs
            announce = loaded is not None
            served_cas = [load_ca(ca, store, clock, announce=announce) for ca in settings.cas]  # every signer checked before any download
            for ca, served in zip(settings.cas, served_cas, strict=True):
                for warning in profile_warnings(served.certificate, signs_crls=bool(ca.crl)):
                    config_warning(warning, f"CA {ca.name} ({ca.certificate})")
        targets = []
        for ca, served in zip(settings.cas, served_cas, strict=True):
            if ca.push and "push" not in store.source_states(served.issuer_id):
                # A CA fed by pushes has data from the start: nothing pushed = nothing revoked.
                store.apply_changes(served.issuer_id, (), at=clock.now())
            targets.append(CaTarget(ca, served.issuer_id, served.certificate))
        if loaded is not None:
            loaded.extend(served_cas)
        results = []
        for target, imported in zip(targets, import_cas(store, targets, clock), strict=True):
            refused = [result for result in imported if result.error] if log_refusals else []
            missing = missing_sources(target.settings, store.source_states(target.issuer_id)) if refused else ()
            for result in refused:
                log_refusal(result, missing)
            results.extend(imported)
        return results
    finally:
        store.close()


def check_operations(settings: Settings) -> None:
    """Load the TLS certificate, key and trust anchors, and the admin token and TLS files, once,
    so a bad file stops start-up (and a reload) before anything changes."""
    server_context(settings.ops.tls)
    load_anchors(settings.ops.tls.client_trust_anchors, key="tls.client_trust_anchors")
    load_anchors(settings.ops.access.signer_trust_anchors, key="access.signer_trust_anchors")
    if settings.admin is not None:
        read_token(settings.admin)
        tls_context(settings.admin)


def routes_for(settings: Settings) -> dict[str, Route]:
    """The URL prefixes served: the common path for every CA, each CA's own path for itself."""
    routes = {}
    if settings.server.common_path:
        routes[settings.server.common_path] = Route(settings.server.common_path, None)
    for ca in settings.cas:
        if ca.path is not None:
            routes[ca.path] = Route(ca.path, frozenset({ca.name}))
    return routes


def ca_health(registry: IssuerRegistry) -> list[CaHealth]:
    """The CAs readiness looks at: those answered from local data (a live SQL source included)."""
    return [CaHealth(ca.name, ca.issuer_id, ca.signers, ca.settings) for ca in registry.cas if not ca.settings.forward]


def build_application(
    settings: Settings, clock: Clock | None = None, *, watch: bool = True, metrics: RequestMetrics | None = None
) -> Application:
    """Open the store and build the pipeline and HTTP handler for one worker.

    With ``watch``, a :class:`ChangeWatcher` thread keeps per-CA state
    (``has_data``) and subscribers of ``Application.changes`` up to date
    with changes committed by any process. Metrics are recorded when
    ``metrics`` is given, or when the supervisor set
    ``PROMETHEUS_MULTIPROC_DIR`` for the admin listener; the audit log is
    opened when ``[audit] log`` is set.
    """
    clock = clock or SystemClock()
    ops = settings.ops
    store = open_configured_store(settings)
    application = Application(settings, store, None, None, clock, ChangeHub())  # type: ignore[arg-type]
    application.closers.append(store.close)
    try:
        with held_config_warnings():  # the supervisor's prepare() reported them, once
            # prepare() validated every CA and signer of these settings before any worker started
            registry = application.registry = IssuerRegistry([load_ca(ca, store, clock, checked=True) for ca in settings.cas])
        audit_log = None
        if ops.audit.log is not None:
            audit_log = AuditLog(ops.audit.log, max_bytes=ops.audit.max_bytes, backup_count=ops.audit.backup_count)
            application.closers.append(audit_log.close)
        if metrics is None and settings.admin is not None and os.environ.get(MULTIPROC_ENV):
            metrics = RequestMetrics()
        # The answer cache's bound when not configured: from the pre-signed set in the store (cache_size.py),
        # which also decides whether the edge cache is filled from the store as the worker starts (server/preload.py).
        answers = None
        server = settings.server
        if server.response_cache_bytes is None or (server.response_cache_bytes and server.response_cache_preload):
            answers = presigned_answers(settings, registry, store)
        settings = application.settings = with_cache_size(settings, registry, store, answers)
        pipeline = build_pipeline(settings, registry, store, clock, audit_log=audit_log, metrics=metrics)
    except CertstatusError:
        application.close()
        raise
    application.closers.extend(pipeline.closers)
    application.pipeline = pipeline
    cas = ca_health(registry)
    proxies = None
    if ops.tls.trusted_proxies:
        proxies = TrustedProxies(ops.tls.trusted_proxies, ops.tls.client_cert_header)
    application.http = OCSPHttpHandler(
        pipeline.handler,
        routes_for(settings),
        clock,
        max_request_bytes=settings.server.max_request_bytes,
        readiness=public_readiness(store, cas, clock),
        proxies=proxies,
        observers=pipeline.observers,
        connection_gate=pipeline.connection_gate,
    )
    changes = application.changes
    revocations = application.revocations = SignerRevocations(registry.cas)
    watcher = None
    if watch and str(settings.server.database) != ":memory:":  # nobody else can write an in-memory store
        watcher = application.watcher = ChangeWatcher(settings.server.database, changes)
        revocations.follow(changes, watcher)  # first: a revoked signer is out before the caches below empty
    if pipeline.cache is not None:  # precomputed/cached CAs: drop an issuer's cached answers when a status changes
        changes.subscribe(lambda change: change.statuses and pipeline.cache.issuer_changed(change.issuer_id))
        revocations.subscribe(pipeline.cache.issuer_changed)
    if watcher is not None:
        changes.subscribe(lambda change: registry.refresh_state(change.issuer_id, watcher.store))
        changes.subscribe(lambda change: pipeline.guard.invalidate(change.issuer_id))
        if pipeline.guard is not None:
            # The watcher tells the guard of every import (source states included), so its own re-read
            # is a safety net: once a second per CA, requests spread over 10 000 CAs re-read their CA's
            # states on nearly every request (~60 us each).
            pipeline.guard.recheck_seconds = WATCHED_RECHECK_SECONDS
        watcher.start()
        guard, read_at = pipeline.guard, time.monotonic()
        for ca in registry.cas:  # what changed between load_ca and the watcher's baseline
            if guard is not None and ca.settings.sql is None:
                # The guard keeps what it reads (and sets has_data from it): the CA's first request
                # reads nothing (that read again cost ~86 k instructions on each CA's first request).
                guard.refresh_state(ca, read_at)
            else:
                registry.refresh_state(ca.issuer_id, store)
        revocations.check(store)
    # After the caches' subscriptions: the edge cache's come last.
    application.responder = responder_for(application, presigned=answers)
    return application


def watch_signers(application: Application) -> SignerWatcher:
    """Start the worker's :class:`SignerWatcher`: re-reads ``signers_dir``, re-checks the signers' revocation
    now and then with a store of its own (a safety net behind ``application.revocations``); SIGHUP forces it.
    Stopped by :meth:`Application.close`."""
    settings = application.settings
    opener = None
    if str(settings.server.database) != ":memory:":
        opener = lambda: open_configured_store(settings, upgrade=False)  # noqa: E731 - opened in the watcher's thread
    watcher = start_signer_watcher(application.registry.cas, revocations=application.revocations, open_store=opener)
    application.closers.append(watcher.stop)
    return watcher
