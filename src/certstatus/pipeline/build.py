"""The request path in one place: which steps, in which order.

    metrics ─ audit ─ authenticate ─ resolve issuers ─ authorize ─ forward ─ freshness ─ [live SQL]
        ─ [nonce policy] ─ [mode ─ cache ─ pre-signed status] ─ local status + sign

The order is authenticate → authorize → cache → forward → local → sign →
log, with two choices made visible:

* the observers (metrics, audit) wrap everything, so they see refusals from
  any step and write after the answer is known — "log" is last in time;
* resolving the issuer sits between authenticate and authorize, because
  each CA may have its own policy (and forwarded CAs are recognised there);
* the freshness guard (tryLater on missing or stale data) and the live SQL
  source belong to local answers, after forward.

The answer cache of precomputed/cached CAs (with the mode policy before it
and the pre-signed lookup after it, docs/precomputed.md) sits after the
freshness guard rather than before forward: forwarded CAs never reach it,
and a CA whose data went stale answers tryLater even when an answer is
cached. Steps that have nothing to do under the configuration are left
out, so a plain responder runs the two core steps only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from certstatus.access.trust import CertificateCache, ChainVerifier, OwnRevocationCheck, load_anchors
from certstatus.audit import AuditLog
from certstatus.clock import Clock
from certstatus.config import Settings
from certstatus.metrics import RequestMetrics
from certstatus.pipeline.audit import Audit
from certstatus.pipeline.authenticate import Authenticate
from certstatus.pipeline.authorize import Authorize
from certstatus.pipeline.base import Handler, compose
from certstatus.pipeline.cache import AnswerCacheStep as ResponseCache
from certstatus.pipeline.forward import Forward, RemoteResponders
from certstatus.pipeline.freshness import FreshnessGuard
from certstatus.pipeline.issuers import IssuerRegistry
from certstatus.pipeline.metrics import ObserveMetrics
from certstatus.pipeline.nonce import NoncePolicy
from certstatus.pipeline.precomputed import ModePolicy, PrecomputedLookup
from certstatus.pipeline.sql_status import LiveSqlStatus
from certstatus.pipeline.steps import LocalStatusSigner, ResolveIssuers
from certstatus.sources.sql import SqlStatusSource
from certstatus.store.base import StatusReader


@dataclass
class Pipeline:
    """The composed handler and what the HTTP edge and shutdown need besides it.

    ``observers`` are told of malformed requests; ``connection_gate(chain)``
    says why a TLS client must be disconnected (None: admit); ``closers``
    release resources at shutdown; ``guard`` is the freshness guard and
    ``cache`` the answer cache of precomputed/cached CAs (both told of store
    changes); ``signer`` is the last step, which the protocol edge's live lane
    (:mod:`certstatus.server.live_lane`) calls directly.
    """

    handler: Handler
    observers: list = field(default_factory=list)
    connection_gate: Callable[[tuple[bytes, ...]], str | None] | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    guard: FreshnessGuard | None = None
    cache: ResponseCache | None = None
    signer: LocalStatusSigner | None = None


def build_pipeline(
    settings: Settings,
    registry: IssuerRegistry,
    store: StatusReader,
    clock: Clock,
    *,
    audit_log: AuditLog | None = None,
    metrics: RequestMetrics | None = None,
) -> Pipeline:
    """Compose the steps the configuration needs. Raises ConfigError for unreadable trust anchors."""
    ops = settings.ops
    steps: list = []
    pipeline = Pipeline(handler=None)  # type: ignore[arg-type]
    if metrics is not None:
        step = ObserveMetrics(metrics, clock)
        steps.append(step)
        pipeline.observers.append(step)
    if audit_log is not None:
        step = Audit(audit_log)
        steps.append(step)
        pipeline.observers.append(step)

    revocation = OwnRevocationCheck(registry, store)
    tls_anchors = load_anchors(ops.tls.client_trust_anchors, key="tls.client_trust_anchors")
    signer_paths = ops.access.signer_trust_anchors or ops.tls.client_trust_anchors
    signer_anchors = load_anchors(signer_paths, key="access.signer_trust_anchors")
    if ops.tls.client_auth != "none" or ops.tls.client_cert_header or signer_anchors:
        steps.append(Authenticate(
            tls_verifier=ChainVerifier(tls_anchors, clock) if tls_anchors else None,
            signer_verifier=ChainVerifier(signer_anchors, clock) if signer_anchors else None,
            revocation=revocation,
        ))
    if ops.tls.client_auth != "none":
        certificates = CertificateCache()
        pipeline.connection_gate = lambda chain: revocation.revoked([certificates.load(der) for der in chain])

    steps.append(ResolveIssuers(registry))
    authorize = Authorize.for_cas(settings.cas, ops.access)
    if authorize.needed:
        steps.append(authorize)
    responders = {ca.name: RemoteResponders(ca.forward, ca.forward_timeout) for ca in settings.cas if ca.forward}
    if responders:
        forward = Forward(responders, clock, on_attempt=metrics.forward_attempt if metrics is not None else None)
        steps.append(forward)
        pipeline.closers.append(forward.close)
    pipeline.guard = FreshnessGuard(store, clock)
    steps.append(pipeline.guard)
    sql_sources = {ca.name: SqlStatusSource(ca.name, ca.sql) for ca in settings.cas if ca.sql is not None}
    if sql_sources:
        live_sql = LiveSqlStatus(sql_sources)
        steps.append(live_sql)
        pipeline.closers.append(live_sql.close)
    if any(ca.nonce_policy != "echo" for ca in settings.cas):
        steps.append(NoncePolicy())
    if any(ca.mode != "live" for ca in settings.cas):
        pipeline.cache = ResponseCache(settings.server.response_cache_bytes)
        steps += [ModePolicy(), pipeline.cache, PrecomputedLookup(store, registry)]
    pipeline.signer = LocalStatusSigner(store, clock, pipeline.guard)
    pipeline.handler = compose(steps, pipeline.signer)
    return pipeline
