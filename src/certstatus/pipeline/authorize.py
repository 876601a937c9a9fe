"""Authorize step: may this requester ask about this CA?

Runs after the issuer is resolved, so each CA applies its own policy (its
``[ca.NAME]`` keys, else the ``[access]`` defaults):

* ``require_signed_requests`` — an unsigned request gets ``sigRequired``
  (RFC 6960 §4.2.1);
* ``authorization = "by_authentication"`` — some certificate must have been
  authenticated (TLS client or request signer), else ``unauthorized``;
* ``authorization = "by_name"`` — the subject of an authenticated
  certificate must match the CA's name table, else ``unauthorized``.

Every refusal carries its reason for the log and the audit line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.access.names import NameTable
from certstatus.config import CaSettings
from certstatus.config_ops import AccessSettings
from certstatus.pipeline.authenticate import NOBODY, Authentication
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError


@dataclass(frozen=True)
class Policy:
    """One CA's access policy; ``names`` only with ``mode == "by_name"``."""

    require_signed: bool = False
    mode: str = "none"
    names: NameTable | None = None

    @property
    def open(self) -> bool:
        """True when the policy lets anyone in."""
        return not self.require_signed and self.mode == "none"


def policy_for(ca: CaSettings, access: AccessSettings) -> Policy:
    """The effective policy of ``ca``: its own keys, else the listener's ``[access]``."""
    require = access.require_signed_requests if ca.require_signed_requests is None else ca.require_signed_requests
    mode = ca.authorization or access.authorization
    names = ca.authorized_names if ca.authorized_names is not None else access.authorized_names
    return Policy(require, mode, NameTable.parse(names, where=ca.where) if mode == "by_name" else None)


class Authorize:
    """Pipeline step applying the :class:`Policy` of the CA the request is for."""

    def __init__(self, policies: dict[str, Policy]) -> None:
        self.policies = policies

    @classmethod
    def for_cas(cls, cas: Iterable[CaSettings], access: AccessSettings) -> Authorize:
        return cls({ca.name: policy_for(ca, access) for ca in cas})

    @property
    def needed(self) -> bool:
        """False when every CA is open (the step can be left out)."""
        return not all(policy.open for policy in self.policies.values())

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        policy = self.policies.get(exchange.ca.name)
        if policy is None or policy.open:
            return call_next(exchange)
        exchange.restricted = True
        auth: Authentication = exchange.auth or NOBODY
        if policy.require_signed:
            if exchange.query.signature is None:
                raise OCSPError(OCSPResponseStatus.SIG_REQUIRED, f"CA {exchange.ca.name} requires signed requests")
            if auth.signer is None:
                raise OCSPError(OCSPResponseStatus.UNAUTHORIZED, "request signature not verified: no signer trust anchors")
        if policy.mode == "by_authentication" and not auth.principals:
            raise OCSPError(
                OCSPResponseStatus.UNAUTHORIZED,
                f"CA {exchange.ca.name} answers authenticated clients only; no client certificate or request signature",
            )
        if policy.mode == "by_name":
            if not auth.principals:
                raise OCSPError(
                    OCSPResponseStatus.UNAUTHORIZED,
                    f"CA {exchange.ca.name} answers listed names only; no client certificate or request signature",
                )
            if not any(policy.names.match(p.subject) for p in auth.principals):
                subjects = "; ".join(f"{p.how} {p.subject_text}" for p in auth.principals)
                raise OCSPError(
                    OCSPResponseStatus.UNAUTHORIZED,
                    f"CA {exchange.ca.name}: {subjects} matches no authorized name",
                )
        return call_next(exchange)
