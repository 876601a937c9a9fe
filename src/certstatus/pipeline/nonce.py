"""The CA's nonce policy (``[ca.NAME] nonce``): echo, ignore or require the request's nonce.

RFC 9654 §2.1 lets a client put a nonce into its request and a responder echo it, binding the
response to the request; relying parties differ in what they need:

* ``echo`` (live and cached mode): a nonce sent is echoed; a request without one is answered
  without one.
* ``ignore`` (what precomputed mode does): the nonce is left out of the response, so the answer
  can be a shared one (pre-signed, cached); many clients never send a nonce anyway.
* ``require``: a request without a nonce is refused with ``unauthorized`` — the responder will not
  answer that query under its policy (RFC 6960 §2.3). The request itself is well-formed
  (requestExtensions are optional, RFC 6960 §4.1.1), so ``malformedRequest`` would be wrong, and
  RFC 9654 defines no answer to a missing nonce; ``sigRequired`` is for signatures.

:class:`NoncePolicy` applies it in the pipeline, :func:`nonce_for` wherever a request is answered
outside it (the fast path of the HTTP edge's responder).
"""

from __future__ import annotations

import dataclasses

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError

#: The values of ``[ca.NAME] nonce``.
NONCE_POLICIES = ("echo", "ignore", "require")


class NonceRequired(OCSPError):
    """A CA with ``nonce = "require"`` got a request without a nonce: unauthorized (module docstring)."""

    def __init__(self, ca_name: str) -> None:
        super().__init__(OCSPResponseStatus.UNAUTHORIZED, f'CA {ca_name} requires a nonce (nonce = "require")')


def nonce_for(policy: str, nonce: bytes | None, ca_name: str) -> bytes | None:
    """The nonce the response echoes under ``policy`` for a request that carried ``nonce`` (None: none).

    Raises :class:`NonceRequired` under ``"require"`` when the request has none.
    """
    if policy == "echo":
        return nonce
    if policy == "ignore":
        return None
    if nonce is None:
        raise NonceRequired(ca_name)
    return nonce


class NoncePolicy:
    """Pipeline step: apply the answering CA's nonce policy to the request (before the answer cache,
    so that an ignored nonce makes the request one a shared answer fits)."""

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        settings = exchange.ca.settings
        query = exchange.query
        nonce = nonce_for(settings.nonce_policy, query.nonce, settings.name)
        if nonce is not query.nonce:
            exchange.query = dataclasses.replace(query, nonce=None)
        return call_next(exchange)
