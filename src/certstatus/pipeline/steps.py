"""The local steps of the request path: resolve issuers, then status + sign."""

from __future__ import annotations

import datetime as dt

from cryptography.x509.ocsp import OCSPResponseStatus

from certstatus.clock import Clock
from certstatus.errors import SignerUnavailable, StoreUnavailable
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError
from certstatus.pipeline.issuers import IssuerRegistry, ServedCA
from certstatus.pipeline.status import UNKNOWN, decide
from certstatus.protocol.live_response import encode_response_data
from certstatus.protocol.response import CERT_STATUS_NAMES, SingleAnswer
from certstatus.store.base import StatusStore


class ResolveIssuers:
    """Find the served CA of every CertID and pick the one CA that answers.

    One response has one signer, and a signer is authorized for one CA
    (RFC 6960 §4.2.2.2), so:

    * no CertID of a CA served on this URL → unauthorized;
    * CertIDs of two or more served CAs in one request → unauthorized;
    * CertIDs of one served CA mixed with unserved issuers → answered, the
      unserved ones with certStatus unknown ("unrecognized issuer", RFC 6960 §2.2).
    """

    def __init__(self, registry: IssuerRegistry) -> None:
        self.registry = registry

    def handle(self, exchange: Exchange, call_next: Handler) -> OCSPAnswer:
        cas: list[ServedCA | None] = []
        for cert_id in exchange.query.cert_ids:
            ca = self.registry.find(cert_id)
            cas.append(ca if ca is not None and exchange.route.allows(ca.name) else None)
        served = {id(ca): ca for ca in cas if ca is not None}
        if not served:
            raise OCSPError(OCSPResponseStatus.UNAUTHORIZED, "no CertID names an issuer served on this URL")
        if len(served) > 1:
            raise OCSPError(OCSPResponseStatus.UNAUTHORIZED, "CertIDs of several CAs in one request")
        exchange.cas = cas
        exchange.ca = next(iter(served.values()))
        return call_next(exchange)


class LocalStatusSigner:
    """Look every CertID up in the store, decide its certStatus and sign the response.

    thisUpdate is now, nextUpdate now + the CA's validity; the nonce is
    echoed (RFC 9654). A CA without any imported data answers tryLater:
    good without data would be a guess. The signer is chosen per response
    (current signer, preferred signature algorithms of RFC 6960 §4.4.7);
    no valid signer or an unreachable HSM answers tryLater.
    """

    def __init__(self, store: StatusStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def __call__(self, exchange: Exchange) -> OCSPAnswer:
        ca: ServedCA = exchange.ca
        if not ca.has_data:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, f"no revocation data imported for CA {ca.name}")
        now = self.clock.now().replace(microsecond=0)
        next_update = now + dt.timedelta(seconds=ca.settings.validity)
        answers = []
        extended = False
        for index, (cert_id, cert_ca) in enumerate(zip(exchange.query.cert_ids, exchange.cas, strict=True)):
            if cert_ca is None:
                decision = UNKNOWN
            else:
                if exchange.records is not None:
                    record = exchange.records[index]
                else:
                    try:
                        record = self.store.lookup(ca.issuer_id, cert_id.serial_number)
                    except StoreUnavailable as exc:
                        raise OCSPError(OCSPResponseStatus.TRY_LATER, str(exc)) from None
                decision = decide(record, ca.settings, cert_id.serial_number)
            extended = extended or decision.extended
            revoked = decision.revoked
            answers.append(
                SingleAnswer(
                    cert_id_der=cert_id.der,
                    status=decision.status,
                    this_update=now,
                    next_update=next_update,
                    revocation_time=revoked.revocation_time if revoked else None,
                    reason=revoked.reason if revoked else None,
                    invalidity_date=revoked.invalidity_date if revoked else None,
                )
            )
        query = exchange.query
        try:
            signer = ca.signers.select(
                query.preferred_signature_algorithms,
                query.signature.algorithm_oid if query.signature is not None else None,
                now,
            )
        except SignerUnavailable as exc:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, str(exc)) from None
        response_data = encode_response_data(
            responder_id=signer.responder_id_der,
            produced_at=now,
            answers=answers,
            nonce=exchange.query.nonce,
            extended_revoke=extended,
        )
        try:
            der = signer.sign(response_data)
        except SignerUnavailable as exc:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, str(exc)) from None
        return OCSPAnswer(
            der=der,
            this_update=now,
            next_update=next_update,
            produced_at=now,
            source="live",
            statuses=tuple(CERT_STATUS_NAMES[a.status] for a in answers),
            has_nonce=exchange.query.nonce is not None,
        )

