"""Forward step: answer a forwarded CA's requests from its own responders (a proxy).

For a CA configured with ``forward = [URL, ...]`` the request is POSTed as
received (same DER: nonce, signature and all) to each URL in order until one
gives a response that passes :func:`~certstatus.access.response_check.check_response`
(signed for that CA, the CertIDs asked, current, nonce echoed). That
response is returned byte for byte. A request without a nonce is cached,
keyed on its CertIDs, until the response's nextUpdate: the next identical
question is answered from memory (source ``cache``). When no responder
gives a good answer the client gets ``tryLater``.

The network round trip never runs on the event loop: with
``exchange.offload`` the step raises :class:`~certstatus.pipeline.base.WouldBlock`
and the edge runs the fetch in a thread, then the pipeline again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.access.response_check import CheckedResponse, ResponseRejected, check_response
from certstatus.clock import Clock
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError, WouldBlock

log = logging.getLogger("certstatus.forward")

#: Responses kept in memory for nonce-less requests, per worker.
CACHE_ENTRIES = 10_000
#: Remote statuses passed on as they are: the remote's verdict on this very request.
_PASSED_ON = {OCSPResponseStatus.MALFORMED_REQUEST, OCSPResponseStatus.UNAUTHORIZED, OCSPResponseStatus.SIG_REQUIRED}


@dataclass(frozen=True)
class RemoteResponders:
    """Where one CA's requests go: ``urls`` tried in order, ``timeout`` seconds each."""

    urls: tuple[str, ...]
    timeout: float


class ForwardedAnswerCache:
    """Remote responses by CertIDs, each until its nextUpdate; least recently used evicted."""

    def __init__(self, size: int = CACHE_ENTRIES) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[bytes, ...], OCSPAnswer] = OrderedDict()

    def get(self, key: tuple[bytes, ...], now: dt.datetime) -> OCSPAnswer | None:
        answer = self._entries.get(key)
        if answer is None:
            return None
        if answer.next_update <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: tuple[bytes, ...], answer: OCSPAnswer) -> None:
        self._entries[key] = answer
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)


class Forward:
    """Pipeline step sending a forwarded CA's requests to its remote responders.

    ``on_attempt(ca, url, result)`` (optional) is told of every try:
    ``result`` is ``"ok"``, ``"passed_on"``, ``"rejected"`` or ``"failed"``.
    """

    def __init__(
        self,
        responders: Mapping[str, RemoteResponders],
        clock: Clock,
        *,
        cache: ForwardedAnswerCache | None = None,
        on_attempt: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.responders = dict(responders)
        self.clock = clock
        self.cache = cache if cache is not None else ForwardedAnswerCache()
        self.on_attempt = on_attempt
        # One pooled client per worker, used from the threads the edge runs fetches in.
        self.client = httpx.Client(headers={"content-type": "application/ocsp-request"}, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        ca = exchange.ca
        remote = self.responders.get(ca.name)
        if remote is None:
            return call_next(exchange)
        cache_key = None
        if exchange.query.nonce is None:
            cache_key = tuple(cert_id.der for cert_id in exchange.query.cert_ids)
            cached = self.cache.get(cache_key, self.clock.now())
            if cached is not None:
                return cached
        key = f"forward:{ca.name}"
        if key in exchange.prefetched:
            outcome = exchange.prefetched.pop(key)
        elif exchange.offload:
            raise WouldBlock(key, lambda: self._ask(ca.name, remote, exchange))
        else:
            outcome = self._ask(ca.name, remote, exchange)
        if isinstance(outcome, BaseException):
            raise outcome
        checked: CheckedResponse = outcome
        if checked.status is not OCSPResponseStatus.SUCCESSFUL:
            raise OCSPError(checked.status, f"remote responder of CA {ca.name} answered {checked.status.name}")
        answer = OCSPAnswer(
            der=checked.der,
            this_update=checked.this_update,
            next_update=checked.next_update or checked.this_update,
            produced_at=checked.produced_at,
            source="forwarded",
            statuses=checked.statuses,
            has_nonce=checked.has_nonce,
        )
        if cache_key is not None and checked.next_update is not None:
            self.cache.put(cache_key, _cached(answer))
        return answer

    def _ask(self, ca_name: str, remote: RemoteResponders, exchange: Exchange) -> CheckedResponse | OCSPError:
        """Try each responder in order (blocking); the first good response, or tryLater."""
        failures = []
        for url in remote.urls:
            try:
                reply = self.client.post(url, content=exchange.request_der, timeout=remote.timeout)
                if reply.status_code != 200:
                    raise ResponseRejected(f"HTTP {reply.status_code}")
                checked = check_response(reply.content, exchange.query, exchange.ca.certificate, self.clock.now())
            except (httpx.HTTPError, ResponseRejected) as exc:
                result = "rejected" if isinstance(exc, ResponseRejected) else "failed"
                failures.append(f"{url}: {str(exc) or type(exc).__name__}")
                self._count(ca_name, url, result)
                continue
            if checked.status is OCSPResponseStatus.SUCCESSFUL or checked.status in _PASSED_ON:
                self._count(ca_name, url, "ok" if checked.status is OCSPResponseStatus.SUCCESSFUL else "passed_on")
                return checked
            failures.append(f"{url}: answered {checked.status.name}")
            self._count(ca_name, url, "failed")
        log.warning("no remote responder of CA %s answered: %s", ca_name, "; ".join(failures),
                    extra={"ca": ca_name, "failures": failures})
        return OCSPError(OCSPResponseStatus.TRY_LATER, f"no remote responder of CA {ca_name} answered: {'; '.join(failures)}")

    def _count(self, ca_name: str, url: str, result: str) -> None:
        if self.on_attempt is not None:
            self.on_attempt(ca_name, url, result)


def _cached(answer: OCSPAnswer) -> OCSPAnswer:
    return OCSPAnswer(answer.der, answer.this_update, answer.next_update, answer.produced_at, "cache", answer.statuses, answer.has_nonce)
