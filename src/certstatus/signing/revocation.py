"""Keeping every process's signers in step with the CA's own revocation data.

A delegated responder certificate (RFC 6960 §4.2.2.2) that the CA revokes —
by a push, a CRL or an ``index.txt`` import, in any process sharing the
store — must stop signing in every process at once. Nothing on the request
path reads the store for that: :class:`SignerRevocations` asks the store
and hands the answer to each CA's :class:`~certstatus.signing.signer_set.SignerSet`
(:meth:`~certstatus.signing.signer_set.SignerSet.check_revocations`), from
the thread that owns the store it is given (an SQLite connection belongs to
the thread that opened it). It is asked:

* when the store announces that an issuer's statuses changed
  (:class:`certstatus.store.changes.ChangeWatcher`: PostgreSQL NOTIFY, SQLite
  polled every 0.2 s), on the watcher's thread with the watcher's store —
  subscribed before the answer caches, so they are emptied after the signer
  changed, not before;
* after a re-scan of ``signers_dir`` loaded new signers, and every
  :data:`RECHECK_SECONDS` as a safety net, by the signer watcher thread
  (:class:`certstatus.signing.loader.SignerWatcher`) with a store it opens.

Callbacks given to :meth:`SignerRevocations.subscribe` learn which issuer's
revoked signers changed (to drop cached answers signed by a revoked one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from certstatus.signing.signer import ResponseSigner
from certstatus.signing.signer_set import RevocationLookup, checks_revocation

log = logging.getLogger("certstatus.signing")

#: Seconds between two safety-net re-checks of every signer's revocation (a change of the store is seen at once).
RECHECK_SECONDS = 60.0


def revocation_lookup(store, issuer_id: int) -> RevocationLookup:
    """``is_revoked(signer)`` read from ``store`` (a :class:`~certstatus.store.base.StatusReader` of the calling
    thread): the CA's data (issuer ``issuer_id``) revokes the signer's certificate serial number, by any source.

    Store errors are raised to the caller (:meth:`SignerSet.check_revocations` keeps the last known state).
    """

    def is_revoked(signer: ResponseSigner) -> bool:
        record = store.lookup(issuer_id, signer.certificate.serial_number)
        return record is not None and record.revoked is not None

    return is_revoked


class SignerRevocations:
    """Re-checks the delegated signers of one process's CAs against the store it is handed.

    ``cas`` have ``issuer_id`` and ``signers`` (a SignerSet; None for a
    forwarded CA, which is skipped): :class:`~certstatus.pipeline.issuers.ServedCA`.
    Thread-safe: checks from several threads are serialised per SignerSet.
    """

    def __init__(self, cas: Iterable) -> None:
        self.cas = tuple(ca for ca in cas if ca.signers is not None)
        self._by_issuer: dict[int, list] = {}  # a change names one issuer: no scan of every CA per change
        for ca in self.cas:
            self._by_issuer.setdefault(ca.issuer_id, []).append(ca)
        self._listeners: list[Callable[[int], None]] = []
        self._lock = threading.Lock()

    @property
    def watched(self) -> bool:
        """Whether any CA has a signer the CA's own data can revoke (a delegated responder)."""
        return any(checks_revocation(signer) for ca in self.cas for signer in ca.signers.signers)

    def subscribe(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(issuer_id)`` (in the checking thread) whenever that CA's revoked signers change."""
        with self._lock:
            self._listeners.append(callback)

    def check(self, store, issuer_id: int | None = None) -> list[int]:
        """Re-check the signers of the CA ``issuer_id`` (None: every CA) in ``store``; return the issuers whose
        revoked signers changed, after telling the subscribers. ``store`` must belong to the calling thread."""
        changed = []
        for ca in self.cas if issuer_id is None else self._by_issuer.get(issuer_id, ()):
            if ca.signers.check_revocations(revocation_lookup(store, ca.issuer_id)):
                changed.append(ca.issuer_id)
        if changed:
            with self._lock:
                listeners = list(self._listeners)
            for issuer in changed:
                for callback in listeners:
                    try:
                        callback(issuer)
                    except Exception:  # one broken listener must not keep the others stale
                        log.exception("signer revocation listener %r failed for issuer %d", callback, issuer)
        return changed

    def follow(self, hub, watcher) -> Callable[[], None]:
        """Check an issuer's signers whenever ``hub`` (a ChangeHub fed by ``watcher``, a ChangeWatcher)
        announces that its statuses changed, with the watcher's store on the watcher's thread.

        Subscribe this before anything that drops cached answers on the same change. Returns the
        function that unsubscribes.
        """
        return hub.subscribe(lambda change: change.statuses and self.check(watcher.store, change.issuer_id))
