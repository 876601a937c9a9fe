"""The local steps of the request path: resolve issuers, then status + sign."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseStatus

from certstatus.clock import Clock
from certstatus.errors import SignerUnavailable, StoreUnavailable
from certstatus.model import CertID, CertStatusRecord
from certstatus.next_update import final_next_update, next_update_limit
from certstatus.pipeline.base import Exchange, Handler, OCSPAnswer, OCSPError
from certstatus.pipeline.ca_extensions import answer_extensions, constant_extensions
from certstatus.pipeline.freshness import FreshnessGuard
from certstatus.pipeline.issuers import IssuerRegistry, ServedCA
from certstatus.pipeline.status import UNKNOWN, decide
from certstatus.protocol.fast_response import encode_cert_status, generalized_time
from certstatus.protocol.live_response import ResponseTimes, response_data, single_response
from certstatus.protocol.response import CERT_STATUS_NAMES
from certstatus.signing.signer import ResponseSigner
from certstatus.store.base import StatusReader

#: Marks "read the status record from the store" (a record may legitimately be None: not listed).
_LOOK_UP = object()
# certStatus names by the enum's value (an Enum's hash is computed in Python: a lookup by value is cheaper).
_STATUS_NAMES = {status.value: name for status, name in CERT_STATUS_NAMES.items()}


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
        self.resolve(exchange)
        return call_next(exchange)

    def resolve(self, exchange: Exchange) -> None:
        """Set ``exchange.ca`` and ``exchange.cas`` (class docstring); raises :class:`OCSPError` unauthorized."""
        cert_ids = exchange.query.cert_ids
        if len(cert_ids) == 1:  # the usual request: one dict lookup, no set of CAs to build
            ca = self.registry.find(cert_ids[0])
            if ca is None or not exchange.route.allows(ca.name):
                raise OCSPError(OCSPResponseStatus.UNAUTHORIZED, "no CertID names an issuer served on this URL")
            exchange.cas = [ca]
            exchange.ca = ca
            return
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


class LocalStatusSigner:
    """Look every CertID up in the store, decide its certStatus and sign the response.

    thisUpdate is now, nextUpdate now + the CA's validity, but never after the
    signer certificate's notAfter nor (past a short floor) after the CA's CRL
    nextUpdate (:mod:`certstatus.next_update`, read through ``guard``); the
    nonce is echoed (RFC 9654). A CA without any imported data answers
    tryLater: good without data would be a guess. The signer is chosen per
    response (current signer, preferred signature algorithms of RFC 6960
    §4.4.7); no valid signer or an unreachable HSM answers tryLater. A final
    response (:func:`~certstatus.next_update.final_next_update`) carries nextUpdate
    99991231235959Z in its SingleResponse; the answer's ``next_update``, which
    HTTP caching goes by, stays the bounded one.
    """

    #: Signers whose window of the current second is kept at most (a reload brings new signer objects).
    _MAX_WINDOWS = 256

    def __init__(self, store: StatusReader, clock: Clock, guard: FreshnessGuard | None = None) -> None:
        self.store = store
        self.clock = clock
        self.guard = guard or FreshnessGuard(store, clock)
        # validity (seconds) -> the encoded times of the current second (ResponseTimes).
        self._times: dict[int, ResponseTimes] = {}
        # signer -> (the unbounded times of the current second, the times its responses carry, the CA's
        # constant singleExtensions): looked up once per second per signer, not per request; worked out
        # (next_update_limit) only for a signer whose times are bounded or carry an archive cutoff.
        self._windows: dict[ResponseSigner, tuple[ResponseTimes, ResponseTimes, bytes]] = {}

    def _times_at(self, now: dt.datetime, validity: int) -> ResponseTimes:
        times = self._times.get(validity)
        if times is None or not times.covers(now):
            times = self._times[validity] = ResponseTimes(now, validity)
        return times

    def _window(
        self, ca: ServedCA, preferred_signature_algorithms: Sequence, request_signature_oid: str | None
    ) -> tuple[ResponseSigner, ResponseTimes, bytes]:
        """The signer of this response, its times — thisUpdate the current second, nextUpdate bounded
        (:func:`~certstatus.next_update.next_update_limit`) — and the CA's constant singleExtensions
        (:func:`~certstatus.pipeline.ca_extensions.constant_extensions`). Raises :class:`OCSPError`
        tryLater when no signer is valid (or the one there is expires within this second) or the
        CA's source states cannot be read."""
        settings = ca.settings
        times = self._times_at(self.clock.now(), settings.validity)
        try:
            signer = ca.signers.select(preferred_signature_algorithms, request_signature_oid, times.now)
        except SignerUnavailable as exc:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, str(exc)) from None
        window = self._windows.get(signer)
        if window is not None and window[0] is times:
            return signer, window[1], window[2]
        # The signer's first response in this second (with many CAs, nearly every response).
        try:
            due = self.guard.crl_due(ca)
        except StoreUnavailable as exc:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, str(exc)) from None
        if len(self._windows) >= self._MAX_WINDOWS:
            self._windows.clear()
        end = times.next_update
        if settings.archive_cutoff is None and signer.not_after >= end and (due is None or due >= end):
            # Neither bound comes before thisUpdate + validity (next_update_limit would say None): the
            # second's times of this validity, shared by every such signer, nothing worked out.
            window = self._windows[signer] = (times, times, b"")
        else:
            extensions = b"" if settings.archive_cutoff is None else constant_extensions(settings, ca.certificate, times.now)
            window = self._windows[signer] = (times, self._bounded(ca, signer, times, due), extensions)
        return signer, window[1], window[2]

    def _bounded(self, ca: ServedCA, signer: ResponseSigner, times: ResponseTimes, due: dt.datetime | None) -> ResponseTimes:
        """``times`` with nextUpdate bounded by the signer's notAfter and ``due``, the CA's CRL nextUpdate."""
        limit = next_update_limit(times.now, times.next_update, signer.not_after, due)
        if limit is None:
            return times
        if limit <= times.now:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, f"CA {ca.name}: signer {signer.name} expires at {signer.not_after}")
        return ResponseTimes(times.now, 0, limit)

    def __call__(self, exchange: Exchange) -> OCSPAnswer:
        ca: ServedCA = exchange.ca
        if not ca.has_data:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, f"no revocation data imported for CA {ca.name}")
        query = exchange.query
        cert_ids = query.cert_ids
        signature_oid = query.signature.algorithm_oid if query.signature is not None else None
        if len(cert_ids) == 1 and exchange.cas[0] is not None:
            # The usual request: one CertID of the CA that answers, without the loop's lists.
            return self.answer_single(
                ca, cert_ids[0], query.nonce, query.preferred_signature_algorithms, signature_oid,
                record=exchange.records[0] if exchange.records is not None else _LOOK_UP,
            )  # fmt: skip
        settings = ca.settings
        signer, times, extensions = self._window(ca, query.preferred_signature_algorithms, signature_oid)
        singles = []
        names = []
        extended = False
        for index, (cert_id, cert_ca) in enumerate(zip(cert_ids, exchange.cas, strict=True)):
            if cert_ca is None:
                singles.append(single_response(cert_id.der, encode_cert_status(UNKNOWN.status), times.times_der))
                names.append(_STATUS_NAMES[UNKNOWN.status.value])
                continue
            record = exchange.records[index] if exchange.records is not None else _LOOK_UP
            single, status, revoke = self._single(ca, settings, cert_id, times, record, extensions)
            singles.append(single)
            names.append(_STATUS_NAMES[status])
            extended = extended or revoke
        return self._signed(signer, times, singles, tuple(names), extended, query.nonce)

    def answer_single(
        self,
        ca: ServedCA,
        cert_id: CertID,
        nonce: bytes | None = None,
        preferred_signature_algorithms: Sequence = (),
        request_signature_oid: str | None = None,
        *,
        record: CertStatusRecord | None | object = _LOOK_UP,
    ) -> OCSPAnswer:
        """The signed answer for one CertID of ``ca``: a ResponseData of one SingleResponse,
        thisUpdate the current second, nonce echoed.

        ``record`` is the serial's status record when the caller has it (a live SQL
        source; None: not listed); by default it is read from the store. Raises
        :class:`OCSPError` tryLater when the store or every signer is unavailable.
        """
        signer, times, extensions = self._window(ca, preferred_signature_algorithms, request_signature_oid)
        single, status, extended = self._single(ca, ca.settings, cert_id, times, record, extensions)
        return self._signed(signer, times, [single], (_STATUS_NAMES[status],), extended, nonce)

    @staticmethod
    def _signed(
        signer: ResponseSigner, times: ResponseTimes, singles: list[bytes], statuses: tuple[str, ...], extended: bool,
        nonce: bytes | None,
    ) -> OCSPAnswer:
        """Sign the ResponseData of ``singles`` with ``signer`` and make the answer."""
        now = times.now
        data = response_data(signer.responder_id_der, times.this_update_der, singles, nonce, extended)
        try:
            der = signer.sign(data)
        except SignerUnavailable as exc:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, str(exc)) from None
        return OCSPAnswer(der, now, times.next_update, now, "live", statuses, nonce is not None)

    def _single(
        self, ca: ServedCA, settings, cert_id: CertID, times: ResponseTimes, record, extensions: bytes = b""
    ) -> tuple[bytes, int, bool]:
        """One SingleResponse of a CertID of ``ca``: (DER, the certStatus enum's value, extended revoked).

        ``record`` is the status record, or :data:`_LOOK_UP` to read it from the store; ``extensions``
        the CA's constant singleExtensions."""
        if record is _LOOK_UP:
            try:
                record = self.store.lookup(ca.issuer_id, cert_id.serial_number)
            except StoreUnavailable as exc:
                raise OCSPError(OCSPResponseStatus.TRY_LATER, str(exc)) from None
        decision = decide(record, settings, cert_id.serial_number)
        if decision.refused:
            raise OCSPError(
                OCSPResponseStatus.UNAUTHORIZED, f"serial {cert_id.serial_number:#x} was never issued by CA {ca.name}"
            )
        status = decision.status
        revoked = decision.revoked
        if settings.cert_hash and status is not OCSPCertStatus.UNKNOWN:
            extensions += answer_extensions(settings, record)
        if revoked is None:
            single = single_response(cert_id.der, encode_cert_status(status), times.times_der, None, extensions)
            return single, status.value, False
        try:
            final = final_next_update(settings, self.store, ca.issuer_id, revoked, times.now)
        except StoreUnavailable as exc:
            raise OCSPError(OCSPResponseStatus.TRY_LATER, str(exc)) from None
        times_der = times.times_der if final is None else times.this_update_der + b"\xa0\x11" + generalized_time(final)
        single = single_response(
            cert_id.der, encode_cert_status(status, revoked.revocation_time, revoked.reason),
            times_der, revoked.invalidity_date, extensions,
        )  # fmt: skip
        return single, status.value, decision.extended
