"""The request pipeline's vocabulary: an exchange goes in, an answer comes out.

Each step is a small object with one method, ``handle(exchange, call_next)``:
it may answer by itself (a cache hit, a refusal), or pass the exchange on and
look at what comes back. :func:`compose` chains the steps in the order the
design fixes (authenticate → authorize → cache → forward → local status →
sign → audit); the order is visible in one place, :mod:`certstatus.pipeline.build`.

Refusals are raised as :class:`OCSPError` carrying the OCSP responseStatus;
the HTTP edge turns them into the constant unsuccessful responses.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.pipeline.issuers import ServedCA
from certstatus.protocol.request import OCSPQuery

if TYPE_CHECKING:  # the authenticate step imports this module
    from certstatus.pipeline.authenticate import Authentication


class OCSPError(Exception):
    """Refuse the request with an unsuccessful responseStatus (RFC 6960 §4.2.1).

    ``reason`` is for logs only; clients see the bare status.
    """

    def __init__(self, status: OCSPResponseStatus, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status.name}: {reason}")


@dataclass(frozen=True, slots=True)
class Route:
    """Which CAs the URL the request arrived on may answer for (None: every CA)."""

    path: str
    ca_names: frozenset[str] | None = None

    def allows(self, ca_name: str) -> bool:
        return self.ca_names is None or ca_name in self.ca_names


@dataclass(slots=True)
class Exchange:
    """One request on its way through the pipeline.

    ``received_at`` is aware UTC. ``ca`` and ``cas`` are filled by the step
    that resolves issuers: ``cas[i]`` is the served CA of ``query.cert_ids[i]``
    or None. ``records``, when a step (a live SQL source) filled it, holds
    the status record of each CertID so the signer does not read the store.

    Who asks: ``client_address`` (behind a trusted proxy, the client it
    names), ``tls_client_chain`` (DER, leaf first, as verified in our TLS
    handshake) and ``forwarded_client_cert`` (the raw header value from a
    trusted TLS-terminating proxy). ``auth`` is the
    :class:`~certstatus.pipeline.authenticate.Authentication` the authenticate
    step found. ``request_der`` is the OCSPRequest as received (forwarded
    as-is). ``started_ns`` is ``time.perf_counter_ns()`` when the request
    arrived (latency). ``method`` is the HTTP method it came with (GET, POST or HEAD, RFC 6960
    Appendix A.1). With ``offload`` a step may raise :class:`WouldBlock`
    instead of blocking; the result of the blocking work comes back in
    ``prefetched``.
    """

    query: OCSPQuery
    route: Route
    received_at: dt.datetime
    client_address: str | None = None
    ca: ServedCA | None = None
    cas: list[ServedCA | None] = field(default_factory=list)
    request_der: bytes = b""
    tls_client_chain: tuple[bytes, ...] = ()
    forwarded_client_cert: bytes | None = None
    auth: Authentication | None = None
    started_ns: int = field(default_factory=time.perf_counter_ns)
    offload: bool = False
    prefetched: dict = field(default_factory=dict)
    restricted: bool = False  # answered to authorized clients only: not for shared caches
    records: list | None = None
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class OCSPAnswer:
    """A successful answer: the OCSPResponse DER and what HTTP caching needs.

    ``this_update``/``next_update`` are the earliest of the SingleResponses
    (aware UTC), except that a final response's nextUpdate 99991231235959Z
    counts as the bounded nextUpdate it replaces (:mod:`certstatus.next_update`):
    ``next_update`` is what HTTP caching (max-age, Expires) and the answer
    caches go by; ``source`` says where it came from (``live``, ``cache``,
    ``precomputed``, ``forwarded``); ``statuses`` the certStatus names in
    request order, for logs.
    """

    der: bytes
    this_update: dt.datetime
    next_update: dt.datetime
    produced_at: dt.datetime
    source: str = "live"
    statuses: tuple[str, ...] = ()
    has_nonce: bool = False


class WouldBlock(Exception):
    """A step needs blocking I/O (a network round trip) and ``exchange.offload`` is set.

    The HTTP edge calls ``fetch()`` where it cannot stall the event loop (a
    thread), puts the result (or the exception it raised) in
    ``exchange.prefetched[key]`` and runs the pipeline again; the step then
    finds its result there. Steps that observe outcomes (audit, metrics) let
    it pass unrecorded.
    """

    def __init__(self, key: str, fetch: Callable[[], object]) -> None:
        self.key = key
        self.fetch = fetch
        super().__init__(key)


Handler = Callable[[Exchange], OCSPAnswer]


class Step(Protocol):
    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer: ...


def compose(steps: Sequence[Step], last: Handler) -> Handler:
    """Return one handler running ``steps`` in order, then ``last``."""
    handler = last
    for step in reversed(steps):
        handler = _bind(step, handler)
    return handler


def _bind(step: Step, call_next: Handler) -> Handler:
    return lambda exchange: step.handle(exchange, call_next)
