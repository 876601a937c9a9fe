"""The request path in one place: which steps, in which order, for which CA.

    metrics ─ audit ─ authenticate ─ resolve issuers ─ authorize ─ forward ─ freshness ─ [live SQL]
        ─ [nonce policy] ─ [mode ─ cache ─ pre-signed status] ─ local status + sign

Each CA gets its *plan* (:class:`Plan`, :func:`plan_steps`): the steps of this
order that its configuration needs, built once here. The policy steps
(:data:`POLICY_STEPS`: audit, authenticate, authorize, forward, live SQL) join
a plan only for a CA configured with them; a plan without any is *fast*: the
HTTP edge's responder (:mod:`certstatus.server.responder`) follows it
without the pipeline's objects — edge cache → pre-signed bytes from the store
→ live signature — and this list is the only place that decides which CAs
may do so.

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
out, so a plain responder runs the two core steps only. Observers of every
plan (the metrics step) are not named in a plan: the responder counts what it
answers itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from certstatus.access.trust import CertificateCache, ChainVerifier, OwnRevocationCheck, load_anchors
from certstatus.audit import AuditLog
from certstatus.clock import Clock
from certstatus.config import CaSettings, Settings
from certstatus.config_ops import OperationsSettings
from certstatus.metrics import RequestMetrics
from certstatus.pipeline.audit import Audit
from certstatus.pipeline.authenticate import Authenticate
from certstatus.pipeline.authorize import Authorize, policy_for
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError, compose
from certstatus.pipeline.cache import AnswerCacheStep
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


#: The steps that join a plan only for a CA configured with them; a plan without any is fast.
POLICY_STEPS = frozenset({"audit", "authenticate", "authorize", "forward", "live sql"})


def authenticates(ops: OperationsSettings) -> bool:
    """True when requests are authenticated (client certificates, a trusted proxy's header, request
    signatures verified against trust anchors): the authenticate step runs for every CA."""
    return bool(
        ops.tls.client_auth != "none" or ops.tls.client_cert_header
        or ops.access.signer_trust_anchors or ops.tls.client_trust_anchors
    )  # fmt: skip


def plan_steps(ca: CaSettings, ops: OperationsSettings, *, audit: bool, cache: bool) -> tuple[str, ...]:
    """The names of the steps CA ``ca`` needs, in the order of the request path (module docstring).

    ``audit``: an audit/billing log is open (it must see every request); ``cache``: the answer caches
    have room (``server.response_cache_bytes`` > 0). Names: ``"edge cache"`` (rendered answers keyed on
    the raw request, looked up by the responder before it parses: fast plans of precomputed/cached
    CAs only), the policy steps of :data:`POLICY_STEPS`, ``"freshness"``, ``"nonce policy"`` (a
    policy other than echo), ``"mode"`` (precomputed: preferred algorithms dropped), ``"answer cache"``
    (the in-process cache of a precomputed/cached CA's answers), ``"pre-signed"`` and
    ``"sign"``. A forwarded CA's plan ends with ``"forward"``; a CA with a live SQL source has no
    freshness step (its freshness is the query's).
    """
    steps: list[str] = []
    if audit:
        steps.append("audit")
    if authenticates(ops):
        steps.append("authenticate")
    if not policy_for(ca, ops.access).open:
        steps.append("authorize")
    if ca.forward:
        return (*steps, "forward")
    steps.append("live sql" if ca.sql is not None else "freshness")
    if ca.nonce_policy != "echo":
        steps.append("nonce policy")
    fast = not POLICY_STEPS.intersection(steps)
    if ca.mode != "live":
        if ca.mode == "precomputed":
            steps.append("mode")
        if cache:
            if fast:
                steps.insert(0, "edge cache")
            steps.append("answer cache")
        steps.append("pre-signed")
    return (*steps, "sign")


@dataclass(frozen=True, eq=False)
class Plan:
    """One CA's plan: ``steps`` (:func:`plan_steps`); ``chain``, the step objects they name (the last
    one, the signer, included; the edge cache is the HTTP edge's); ``handler``, the chain composed
    with the metrics step around it, for an exchange whose issuer is resolved. ``fast``: no policy step."""

    ca: str
    steps: tuple[str, ...]
    chain: tuple[object, ...] = field(repr=False)
    handler: Handler = field(repr=False)
    fast: bool = False


@dataclass
class Pipeline:
    """The plans of the CAs and what the HTTP edge and shutdown need besides them.

    ``handler`` resolves an exchange's issuer and follows that CA's plan
    (``plans``: CA name → :class:`Plan`); an exchange whose issuer does not
    resolve takes the steps before resolution (observers, authenticate) and
    is refused there. ``observers`` are told of malformed requests;
    ``connection_gate(chain)`` says why a TLS client must be disconnected
    (None: admit); ``closers`` release resources at shutdown; ``guard`` is the
    freshness guard and ``cache`` the answer cache of precomputed/cached CAs
    (both told of store changes); ``signer`` (status + signature) and
    ``presigned`` (the store's pre-signed responses) are the last steps, which
    the responder of the HTTP edge calls directly for a fast plan.
    """

    handler: Handler
    plans: dict[str, Plan] = field(default_factory=dict)
    observers: list = field(default_factory=list)
    connection_gate: Callable[[tuple[bytes, ...]], str | None] | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    guard: FreshnessGuard | None = None
    cache: AnswerCacheStep | None = None
    signer: LocalStatusSigner | None = None
    presigned: PrecomputedLookup | None = None
    resolver: ResolveIssuers | None = None

    def plan_of(self, ca) -> Plan:
        """The :class:`Plan` of a :class:`~certstatus.pipeline.issuers.ServedCA`."""
        return self.plans[ca.name]


def build_pipeline(
    settings: Settings,
    registry: IssuerRegistry,
    store: StatusReader,
    clock: Clock,
    *,
    audit_log: AuditLog | None = None,
    metrics: RequestMetrics | None = None,
) -> Pipeline:
    """Build every CA's plan (:func:`plan_steps`) from the configuration, each step made once and
    shared by the plans that name it. Raises ConfigError for unreadable trust anchors."""
    ops = settings.ops
    pipeline = Pipeline(handler=None)  # type: ignore[arg-type]
    observers: list = []  # around every plan
    steps: dict[str, object] = {}  # step name -> the one instance of it
    if metrics is not None:
        observers.append(ObserveMetrics(metrics, clock))
    if audit_log is not None:
        steps["audit"] = Audit(audit_log)
    pipeline.observers = [*observers, *steps.values()]

    revocation = OwnRevocationCheck(registry, store)
    tls_anchors = load_anchors(ops.tls.client_trust_anchors, key="tls.client_trust_anchors")
    signer_paths = ops.access.signer_trust_anchors or ops.tls.client_trust_anchors
    signer_anchors = load_anchors(signer_paths, key="access.signer_trust_anchors")
    if authenticates(ops):
        steps["authenticate"] = Authenticate(
            tls_verifier=ChainVerifier(tls_anchors, clock) if tls_anchors else None,
            signer_verifier=ChainVerifier(signer_anchors, clock) if signer_anchors else None,
            revocation=revocation,
        )
    if ops.tls.client_auth != "none":
        certificates = CertificateCache()
        pipeline.connection_gate = lambda chain: revocation.revoked([certificates.load(der) for der in chain])

    pipeline.resolver = ResolveIssuers(registry)
    authorize = Authorize.for_cas(settings.cas, ops.access)
    if authorize.needed:
        steps["authorize"] = authorize
    responders = {ca.name: RemoteResponders(ca.forward, ca.forward_timeout) for ca in settings.cas if ca.forward}
    if responders:
        forward = Forward(responders, clock, on_attempt=metrics.forward_attempt if metrics is not None else None)
        steps["forward"] = forward
        pipeline.closers.append(forward.close)
    pipeline.guard = steps["freshness"] = FreshnessGuard(store, clock)
    sql_sources = {ca.name: SqlStatusSource(ca.name, ca.sql) for ca in settings.cas if ca.sql is not None}
    if sql_sources:
        live_sql = steps["live sql"] = LiveSqlStatus(sql_sources)
        pipeline.closers.append(live_sql.close)
    steps["nonce policy"] = NoncePolicy()
    if any(ca.mode != "live" for ca in settings.cas):
        pipeline.cache = steps["answer cache"] = AnswerCacheStep(settings.server.response_cache_bytes)
        steps["mode"] = ModePolicy()
        pipeline.presigned = steps["pre-signed"] = PrecomputedLookup(store, registry)
    pipeline.signer = LocalStatusSigner(store, clock, pipeline.guard)
    cache = settings.server.response_cache_bytes > 0
    plans: dict[tuple[str, ...], Plan] = {}  # CAs with the same steps share one composed chain
    for ca in registry.cas:
        names = plan_steps(ca.settings, ops, audit=audit_log is not None, cache=cache)
        plan = plans.get(names)
        if plan is None:
            links = [steps[name] for name in names if name not in ("edge cache", "sign")]
            chain = (*links, pipeline.signer) if "sign" in names else tuple(links)  # forward answers by itself
            handler = compose([*observers, *links], pipeline.signer)
            plan = plans[names] = Plan(ca.name, names, chain, handler, not POLICY_STEPS.intersection(names))
        pipeline.plans[ca.name] = plan if plan.ca == ca.name else dataclasses.replace(plan, ca=ca.name)
    by_issuer = {ca.issuer_id: pipeline.plans[ca.name].handler for ca in registry.cas}
    before = [*observers, *(steps[name] for name in ("audit", "authenticate") if name in steps)]
    refuse = compose([*before, pipeline.resolver], pipeline.signer)  # the resolver raises: no CA answers
    resolve = pipeline.resolver.resolve

    def dispatch(exchange: Exchange) -> OCSPAnswer:
        """Follow the plan of the exchange's CA (resolved here unless the caller did)."""
        if exchange.ca is None:
            try:
                resolve(exchange)
            except OCSPError:
                return refuse(exchange)  # refused after the steps before resolution, as they would see it
        return by_issuer[exchange.ca.issuer_id](exchange)

    pipeline.handler = dispatch
    return pipeline
