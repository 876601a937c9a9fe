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

Every path that signs (live signing in the pipeline and the protocol edge's live
lane, the generator of precomputed and cached modes) asks :func:`next_update_limit`;
the answers served from caches and pre-signed rows carry the nextUpdate they
were signed with, and the RFC 5019 cache headers (max-age, Expires) derive
from it. All datetimes are aware UTC.
"""

from __future__ import annotations

import datetime as dt

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
