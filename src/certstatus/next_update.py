"""How far a response's nextUpdate may reach: the CA's validity, bounded by the signer and the CRL.

RFC 6960 §2.4: nextUpdate is "the time at or before which newer information
will be available about the status of the certificate". Two things end what a
response may promise before ``thisUpdate + validity`` does:

* **the signer certificate's notAfter** (Mozilla Root Store Policy; RFC 6960
  §2.4): a response must not outlive the certificate that vouches for its
  signature;
* **the CRL's nextUpdate**, for a CA whose status comes from CRLs: newer
  information is due then. With a complete and a delta CRL the earlier of
  their nextUpdates counts (the delta's, normally). When that time is near or
  already past — the next CRL is late and the CA still answers within
  ``stale_grace`` or with ``on_stale = "serve"`` — a nextUpdate at or before it
  would leave no validity at all (RFC 6960 §4.2.2.1 wants nextUpdate after
  thisUpdate), so the bound is never earlier than thisUpdate +
  :data:`STALE_FLOOR`: short-lived answers that clients and caches fetch again
  soon, while the freshness guard decides whether to answer at all.

Every path that signs (live signing in the pipeline and the HTTP edge's live
lane, the generator of precomputed and cached modes) asks :func:`next_update_limit`;
the answers served from caches and pre-signed rows carry the nextUpdate they
were signed with, and the RFC 5019 cache headers (max-age, Expires) derive
from it. All datetimes are aware UTC.

**Final responses** (:func:`final_next_update`, a CA with
``final_response_after_expiry``) are the one exception. ETSI EN 319 411-2
§6.3.10 lets a CA that keeps status after expiry (``archive_cutoff``) answer a
revoked certificate past its notAfter with a response that never needs
replacing: the revocation of an expired certificate can never change (a
revocation for any reason but certificateHold is permanent, RFC 5280 §5.3.1,
and past its notAfter the certificate cannot become valid again). Its
nextUpdate is :data:`FINAL_NEXT_UPDATE`, GeneralizedTime 99991231235959Z, the
value RFC 5280 §4.1.2.5 gives for "no well-defined expiration" — beyond the
signer certificate's notAfter and the CRL's nextUpdate on purpose, for that
answer only. It is off by default because WebPKI root programs (Mozilla Root
Store Policy) require nextUpdate ≤ the signer certificate's notAfter (and the
CA/Browser Forum Baseline Requirements a validity of at most 10 days): ``certstatus
check`` reports such an answer.

HTTP caches keep a final response no longer than the answer it replaces: the
answer's :attr:`~certstatus.pipeline.base.OCSPAnswer.next_update` (and a
pre-signed row's) stays the bounded nextUpdate above, so max-age, Expires and
the answer caches' refresh points are those of any other answer of the CA. A
cache refetches on the CA's usual schedule, and so picks up a new signer, a
revoked responder certificate or the option turned off, instead of keeping
bytes signed by a long-retired key indefinitely.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from cryptography import x509

if TYPE_CHECKING:
    from certstatus.config import CaSettings
    from certstatus.sources.records import RevokedEntry
    from certstatus.store.base import StatusStore

#: The nextUpdate of a final response: GeneralizedTime 99991231235959Z (RFC 5280 §4.1.2.5).
FINAL_NEXT_UPDATE = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)

#: The shortest validity a response gets when the CRL's nextUpdate is near or past (see the module doc).
STALE_FLOOR = dt.timedelta(minutes=5)


def next_update_limit(
    this_update: dt.datetime,
    next_update: dt.datetime,
    signer_not_after: dt.datetime,
    crl_next_update: dt.datetime | None,
) -> dt.datetime | None:
    """The nextUpdate a response valid from ``this_update`` must carry instead of ``next_update``
    (thisUpdate + validity), or None when neither bound comes before ``next_update``.

    ``signer_not_after`` is the signer certificate's notAfter; ``crl_next_update`` the earliest
    nextUpdate of the CA's imported CRLs (:attr:`certstatus.sources.health.Freshness.due`; None
    for a CA without CRLs). The result may be at or before ``this_update`` only when the signer
    expires within that second: callers treat that signer as unusable (tryLater).
    """
    limit = signer_not_after if signer_not_after < next_update else None
    if crl_next_update is not None and crl_next_update < next_update:
        crl_limit = max(crl_next_update, this_update + STALE_FLOOR)
        if crl_limit < next_update and (limit is None or crl_limit < limit):
            limit = crl_limit
    return None if limit is None else limit.replace(microsecond=0)


def final_next_update(
    settings: CaSettings, store: StatusStore, issuer_id: int, revoked: RevokedEntry | None, this_update: dt.datetime
) -> dt.datetime | None:
    """:data:`FINAL_NEXT_UPDATE` when the answer valid from ``this_update`` about the certificate
    ``revoked`` (its revocation as decided; None: not revoked) is final (module doc), else None.

    Final means: the CA has ``final_response_after_expiry``, the certificate is revoked with a reason
    other than certificateHold (a hold may be released, and an extended-revoked answer for a serial
    never issued carries that reason), and the notAfter an issuing source gave
    (:meth:`StatusStore.certificate_not_after <certstatus.store.base.StatusStore.certificate_not_after>`:
    ``index.txt``, an issued list of certificates) lies before ``this_update``. Reads the store only
    for such a revocation; raises :class:`~certstatus.errors.StoreUnavailable` when it cannot.
    """
    if revoked is None or not settings.final_response_after_expiry or revoked.reason is x509.ReasonFlags.certificate_hold:
        return None
    not_after = store.certificate_not_after(issuer_id, revoked.serial_number)
    return FINAL_NEXT_UPDATE if not_after is not None and not_after < this_update else None
