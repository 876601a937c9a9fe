"""Serving pre-signed responses: the mode policy and the precomputed lookup steps.

Per CA ``mode`` (docs/precomputed.md):

* ``live``: every request signed (nonce echoed); these steps pass it on.
* ``precomputed``: the nonce is ignored (RFC 5019 §4 lets a responder
  answer with pre-signed responses that carry none, so every answer can be
  shared), and so are preferred signature algorithms (RFC 6960 §4.4.7: a
  SHOULD, which pre-signed responses cannot follow) — unless they choose
  another of the CA's signers than the default one, whose responses are
  stored (hybrid rollout: an ML-DSA signer beside an ECDSA one). Such a
  request is signed live by that signer, without nonce, and its answer is
  shared like a stored one, in the answer cache under the CertID and the
  algorithm (docs/precomputed.md says why it is not stored). A
  single-CertID request gets its stored response. A miss (a
  serial the generator has not signed, a serial whose status just changed,
  a non-canonical CertID) is signed live, still without nonce, and cached
  like a stored one; with ``precomputed_miss = "unauthorized"`` a serial
  the store knows nothing of is refused (RFC 5019 §2.2.3) instead.
  A request with several CertIDs is signed live (one response for all).
* ``cached``: the stored response when the request has one CertID, no
  nonce and no preferred signature algorithms; live signing otherwise
  (nonce echoed, the preferred algorithm used).

Never served: a stored response past its refresh point
(:func:`certstatus.response_refresh.refresh_due`, which is before nextUpdate) — it
is signed live instead, a warning is logged (at most once a minute per CA)
and ``certstatus_precomputed_expired_total`` counts it; nor one signed under
another signing profile (:attr:`~certstatus.config.CaSettings.signing_profile`:
other settings, an older release), which is a miss; nor a stored
response that carries a responder certificate the CA's own data revokes
(:attr:`SignerSet.revoked_certificates <certstatus.signing.signer_set.SignerSet.revoked_certificates>`,
empty unless a signer was revoked: then the generator drops and re-signs
those responses, :meth:`certstatus.generator.run.Generator.drop_revoked_signers`)
— signed live by the signer that took over, or tryLater when none is left.

Stored responses are for the canonical CertID of SHA-1 or SHA-256 (NULL
hashAlgorithm parameters, as RFC 5019 clients and OpenSSL send it). A
request whose CertID is encoded otherwise (parameters absent, SHA-384/512)
is signed live so the response echoes its CertID byte for byte: RFC 6960
clients compare the fields, but nothing obliges every client to, and such
requests are rare enough that signing them costs nothing measurable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from cryptography.x509.ocsp import OCSPResponseStatus
from prometheus_client import Counter

from certstatus.errors import SignerUnavailable
from certstatus.model import CertID, serial_key
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError
from certstatus.pipeline.issuers import IssuerRegistry, ServedCA
from certstatus.protocol.fast_response import CertIdTemplate, cert_id_prefix
from certstatus.protocol.request import OCSPQuery
from certstatus.response_refresh import refresh_due
from certstatus.store.base import StatusReader
from certstatus.store.sqlite_precomputed import PRECOMPUTED_HASH_ALGORITHMS

log = logging.getLogger("certstatus.precomputed")

#: Stored responses not served because they were past nextUpdate or past their refresh point.
EXPIRED = Counter(
    "certstatus_precomputed_expired",
    "Pre-signed responses found past their refresh point or nextUpdate and signed live instead",
    ["ca", "reason"],
)
#: How often the expired warning is logged per CA and reason at most.
WARNING_INTERVAL = dt.timedelta(seconds=60)


def shares_answers(ca: ServedCA) -> bool:
    """True when the CA's answers may be shared between requests (precomputed or cached mode)."""
    return ca.settings.mode != "live"


def shareable(exchange: Exchange) -> bool:
    """True when the answer to this exchange may be a shared one: a precomputed or cached CA,
    one CertID, no nonce, no preferred signature algorithms but the one :class:`ModePolicy`
    keeps for a precomputed CA (shared under :func:`answer_key`)."""
    query = exchange.query
    return (
        shares_answers(exchange.ca)
        and len(query.cert_ids) == 1
        and query.nonce is None
        and (not query.preferred_signature_algorithms or exchange.ca.settings.mode == "precomputed")
    )


def answer_key(query: OCSPQuery) -> bytes:
    """The key of a shared answer: the CertID DER, followed by the signature algorithm OID that
    :class:`ModePolicy` kept (one CertID TLV alone never equals a key with a suffix)."""
    key = query.cert_ids[0].der
    if query.preferred_signature_algorithms:
        key += b"\x00" + query.preferred_signature_algorithms[0].encode("ascii")
    return key


class ModePolicy:
    """Apply the CA's mode to the request: precomputed mode drops the preferred signature algorithms,
    except the algorithm of another signer than the default one that they choose (module docstring).
    Its nonce is dropped before, by :class:`~certstatus.pipeline.nonce.NoncePolicy`: a precomputed
    CA's nonce policy is ``ignore`` (RFC 5019 §4)."""

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        query = exchange.query
        if exchange.ca.settings.mode == "precomputed" and query.preferred_signature_algorithms:
            kept = _other_signer_algorithm(exchange.ca, query, exchange.received_at)
            exchange.query = dataclasses.replace(query, preferred_signature_algorithms=kept)
        return call_next(exchange)


def _other_signer_algorithm(ca: ServedCA, query: OCSPQuery, now: dt.datetime) -> tuple[str, ...]:
    """``(OID,)`` of the algorithm RFC 6960 §4.4.7.2 picks for ``query`` when a signer other than
    the default one makes it, else ``()`` (the stored responses are the default signer's)."""
    if not query.preferred_signature_algorithms:
        return ()
    request_signature_oid = query.signature.algorithm_oid if query.signature is not None else None
    try:
        chosen = ca.signers.select(query.preferred_signature_algorithms, request_signature_oid, now)
        default = ca.signers.select(now=now)
    except SignerUnavailable:
        return ()  # signing answers tryLater
    return () if chosen.certificate == default.certificate else (chosen.algorithm.oid,)


def signed_by_revoked_signer(ca: ServedCA, der: bytes) -> bool:
    """True when the stored response ``der`` carries a responder certificate that ``ca``'s own data
    revokes (:attr:`SignerSet.revoked_certificates <certstatus.signing.signer_set.SignerSet.revoked_certificates>`,
    empty almost always): such a response is not served, from the store or the edge cache."""
    revoked = ca.signers.revoked_certificates
    return bool(revoked) and any(certificate in der for certificate in revoked)


class PrecomputedLookup:
    """Answer a single canonical CertID without nonce from the store's pre-signed responses.

    One store lookup keyed on (issuer_id, serial, hash algorithm). Anything
    else (a request :class:`ModePolicy` left a signature algorithm in among
    them), and stored responses past their refresh point, goes on to live
    signing. Raises :class:`OCSPError` unauthorized for a precomputed-mode
    miss the store knows nothing of when the CA says ``precomputed_miss =
    "unauthorized"``.
    """

    def __init__(self, store: StatusReader, registry: IssuerRegistry) -> None:
        self.store = store
        # (issuer_id, hash algorithm) -> the stored responses' CertID encoder (headers kept per serial length).
        self._templates: dict[tuple[int, str], CertIdTemplate] = {}
        # issuer_id -> the signing profile a stored row must have been signed under to be served.
        self._profiles = {ca.issuer_id: ca.settings.signing_profile for ca in registry.cas}
        for ca in registry.cas:
            for algorithm in PRECOMPUTED_HASH_ALGORITHMS:
                self._templates[(ca.issuer_id, algorithm)] = CertIdTemplate(cert_id_prefix(algorithm, *ca.hashes[algorithm]))
        self._last_warning: dict[tuple[str, str], dt.datetime] = {}
        # (thisUpdate, nextUpdate, refresh_due of them) of the last stored response: rows signed in one
        # batch share the store's datetime objects (compared by identity), so the rule runs once per batch.
        self._due: tuple = (None, None, None)
        self._unlogged: dict[tuple[str, str], int] = {}

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        if not shareable(exchange):
            return call_next(exchange)
        # A request ModePolicy left another signer's algorithm in: none of that signer's is stored.
        other_signer = bool(exchange.query.preferred_signature_algorithms)
        answer = self.stored_answer(exchange.ca, exchange.query.cert_ids[0], exchange.received_at, look_up=not other_signer)
        return answer if answer is not None else call_next(exchange)

    def stored_answer(self, ca: ServedCA, cert_id: CertID, now: dt.datetime, *, look_up: bool = True) -> OCSPAnswer | None:
        """The stored response of ``cert_id`` of ``ca`` servable at ``now`` (aware UTC), or None when it
        must be signed live: a CertID not in the stored form, no stored row (or ``look_up`` False), a
        revoked signer's response, one past its refresh point (counted and logged, class docstring).
        Raises :class:`OCSPError` unauthorized for a miss the CA refuses (``precomputed_miss``)."""
        if not self.is_canonical(ca, cert_id):
            return None
        stored = None
        if look_up:
            stored = self.store.precomputed(ca.issuer_id, cert_id.serial_number, cert_id.hash_algorithm,
                                            self._profiles[ca.issuer_id])  # fmt: skip
        if stored is None:
            if (
                ca.settings.mode == "precomputed"
                and ca.settings.precomputed_miss == "unauthorized"
                and self.store.lookup(ca.issuer_id, cert_id.serial_number) is None
            ):
                raise OCSPError(OCSPResponseStatus.UNAUTHORIZED, f"serial {cert_id.serial_number:x} unknown to CA {ca.name}")
            return None
        if signed_by_revoked_signer(ca, stored.der):
            return None  # its signer was revoked since: not served (see the module docstring)
        due = self._due
        if due[0] is not stored.this_update or due[1] is not stored.next_update:
            due = self._due = (stored.this_update, stored.next_update, refresh_due(stored.this_update, stored.next_update))
        if now >= due[2]:
            self._expired(ca, "past_next_update" if now >= stored.next_update else "past_refresh_point", stored.next_update, now)
            return None
        return OCSPAnswer(
            der=stored.der,
            this_update=stored.this_update,
            next_update=stored.next_update,
            produced_at=stored.this_update,
            source="precomputed",
        )

    def template(self, ca: ServedCA, hash_algorithm: str) -> CertIdTemplate:
        """The encoder of the CertID the stored responses of ``ca`` carry for ``hash_algorithm``
        (one of :data:`PRECOMPUTED_HASH_ALGORITHMS`; KeyError otherwise)."""
        return self._templates[(ca.issuer_id, hash_algorithm)]

    def profile(self, ca: ServedCA) -> int:
        """The signing profile a stored row of ``ca`` must have been signed under to be served."""
        return self._profiles[ca.issuer_id]

    def is_canonical(self, ca: ServedCA, cert_id: CertID) -> bool:
        """True when ``cert_id`` is SHA-1/SHA-256 and encoded exactly as the stored responses' CertID."""
        template = self._templates.get((ca.issuer_id, cert_id.hash_algorithm))
        return template is not None and cert_id.der == template.encode(serial_key(cert_id.serial_number))

    def _expired(self, ca: ServedCA, reason: str, next_update: dt.datetime, now: dt.datetime) -> None:
        EXPIRED.labels(ca=ca.name, reason=reason).inc()
        key = (ca.name, reason)
        last = self._last_warning.get(key)
        if last is not None and now - last < WARNING_INTERVAL:
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
            return
        self._last_warning[key] = now
        more = self._unlogged.pop(key, 0)
        log.warning(
            "CA %s: a pre-signed response is %s (nextUpdate %s) and was signed live instead%s; "
            "is the generator running (certstatus serve runs it; certstatus generate does it once)?",
            ca.name, reason.replace("_", " "), next_update.isoformat(), f" ({more} more since the last warning)" if more else "",
        )  # fmt: skip
