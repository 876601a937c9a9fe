"""The generator's worker side: sign one unit of work of one CA and store the responses.

Each worker process loads the signers and opens the store itself
(:func:`init_worker`), so nothing secret crosses a process boundary and the
parent only hands out small descriptions of work (:func:`work_units`: a
range of the store's index, or a list of serials). A unit is: read the
change counter of the issuer, then the pending serials of the unit with
their statuses (:func:`read_work`: by range scans on SQLite), decide each
certStatus (:mod:`certstatus.pipeline.status`; good serials, the common
case, skip it), encode one response per CertID hash algorithm with the
byte templates of :mod:`certstatus.protocol.fast_response`, sign, and
write everything in one transaction in the store's compact form
(:meth:`StatusStore.store_signed`: one row per serial, the responder
certificates once per batch, not in every response). Serials the store no
longer knows lose their rows instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.clock import Clock, SystemClock
from certstatus.config import CaSettings, Settings
from certstatus.observability import held_config_warnings
from certstatus.errors import SignerUnavailable
from certstatus.next_update import final_next_update, next_update_limit
from certstatus.pipeline.ca_extensions import answer_extensions, constant_extensions
from certstatus.pipeline.issuers import ServedCA
from certstatus.pipeline.status import decide
from certstatus.protocol import fast_response as der
from certstatus.refresh import renew_at
from certstatus.signing.revocation import revocation_lookup
from certstatus.sources.health import freshness
from certstatus.signing.signer import ResponseSigner
from certstatus.store.base import (
    PRECOMPUTED_HASH_ALGORITHMS,
    CertStatusRecord,
    SignedBatch,
    StatusStore,
    serial_from_key,
    serial_key,
)


#: The record of a key read_work returned none for, in a CA with cert_hash: issued, certificate unknown.
_ISSUED_UNHASHED = CertStatusRecord(issued=True, revoked=None)


@dataclass(frozen=True)
class BatchResult:
    """What one unit of work did: ``serials`` pending in it, ``signed`` responses written, ``removed`` serials dropped."""

    ca: str
    signed: int
    removed: int
    serials: int = 0


#: A unit of work of the generator: a store range (``precomputed_ranges``) or ``("serials", [serial, ...])``.
Work = tuple


def work_units(store: StatusStore, issuer_id: int, kind: str, *, now: dt.datetime, batch_size: int) -> Iterator[Work]:
    """The pending work of ``kind`` (:data:`WORK_KINDS`) in units of at most ``batch_size`` serials, for :func:`read_work`.

    A store with the range fast path (SQLite:
    :meth:`~certstatus.store.sqlite_precomputed.PrecomputedSQLite.precomputed_ranges`)
    hands out ranges of its index, so the caller neither reads nor ships the
    serials; any other store's :meth:`StatusStore.pending_precomputed`
    batches are shipped as lists.
    """
    ranges = getattr(store, "precomputed_ranges", None)
    if ranges is not None:
        return ranges(issuer_id, kind, now=now, batch_size=batch_size)
    return (("serials", batch) for batch in store.pending_precomputed(issuer_id, kind, now=now, batch_size=batch_size))


def read_work(
    store: StatusStore, issuer_id: int, work: Work, *, cert_hashes: bool = False
) -> tuple[list[bytes], dict[bytes, CertStatusRecord], list[int]]:
    """``(keys, records, gone)`` of one unit of :func:`work_units`.

    ``keys`` are the :func:`serial_key` of the unit's serials the store
    knows; ``records`` hold the status of those that are not simply issued
    and unrevoked, or (``cert_hashes``) whose certificate hash is known (a
    key without a record is issued, unrevoked, of unknown certificate);
    ``gone`` are the serials no source knows any more.
    """
    if work[0] != "serials":
        return store.precomputed_batch(issuer_id, work, cert_hashes=cert_hashes)
    serials = work[1]
    found = store.lookup_many(issuer_id, serials)
    keys, records, gone = [], {}, []
    for serial in serials:
        record = found.get(serial)
        if record is None:
            gone.append(serial)
            continue
        key = serial_key(serial)
        keys.append(key)
        if record.revoked is not None or not record.issued or record.cert_hash is not None:
            records[key] = record
    return keys, records, gone


class CASigner:
    """Signs pre-computed responses for one CA: its served CA (settings, issuer id, signers) and templates.

    The signer of a batch is the CA's current one (:class:`~certstatus.signing.signer_set.SignerSet`:
    rollover, HSM keys, as for live answers); a response never outlives it, nor
    the CA's CRL beyond a short floor (:mod:`certstatus.next_update`): nextUpdate
    is at most the signer certificate's notAfter and the CRL's nextUpdate — except
    in a final response (:func:`~certstatus.next_update.final_next_update`), whose
    bytes say 99991231235959Z while its row keeps the batch's nextUpdate and
    renewal time, so it is renewed, served and cached like any other. Whether
    the CA's own data revokes a signer is asked again before a batch whenever
    the issuer's change counter moved since the last batch, so a revoked
    responder certificate signs no batch started after its revocation.
    """

    def __init__(self, served: ServedCA) -> None:
        self.served = served
        self.settings = served.settings
        self.issuer_id = served.issuer_id
        self.profile = served.settings.signing_profile
        self.prefixes = {
            algorithm: der.cert_id_prefix(algorithm, *served.hashes[algorithm]) for algorithm in PRECOMPUTED_HASH_ALGORITHMS
        }
        self._cert_ids = tuple(der.CertIdTemplate(prefix) for prefix in self.prefixes.values())
        self._templates: dict[int, tuple[ResponseSigner, bytes, der.ResponseWrapper]] = {}
        self._revocations_read_at: int | None = None  # the change counter at the last revocation check

    @classmethod
    def load(cls, settings: CaSettings, store: StatusStore, clock: Clock) -> "CASigner":
        """Load the CA certificate and its signers as a worker does (:func:`certstatus.loading.load_ca`).

        Raises :class:`~certstatus.errors.SignerError` when no signer is usable.
        """
        from certstatus.loading import load_ca

        return cls(load_ca(settings, store, clock))

    def _signer(self, now: dt.datetime) -> tuple[ResponseSigner, bytes, der.ResponseWrapper]:
        signer = self.served.signers.select(now=now)
        templates = self._templates.get(id(signer))
        if templates is None or templates[0] is not signer:
            templates = (signer, signer.responder_id.dump(), der.ResponseWrapper(signer.signature_algorithm_der, signer.certificates_der))
            self._templates[id(signer)] = templates
        return templates

    def sign_batch(
        self, store: StatusStore, work: Work, now: dt.datetime, write_lock: AbstractContextManager | None = None
    ) -> BatchResult:
        """Sign every pending serial of ``work`` for SHA-1 and SHA-256 CertIDs at ``now`` and store the responses.

        ``work`` is a unit of :func:`work_units`. ``write_lock`` (shared by
        the worker processes) serialises the writes, so a worker waiting for
        the store wakes when the other is done instead of polling SQLite's
        busy handler. Raises :class:`~certstatus.errors.SignerUnavailable`
        when the CA has no signer valid at ``now`` (nothing is written).
        """
        counter = store.change_counters().get(self.issuer_id, 0)  # before the statuses: see StatusStore.store_precomputed
        if counter != self._revocations_read_at:  # a status changed: perhaps a signer's own
            self.served.signers.check_revocations(revocation_lookup(store, self.issuer_id))
            self._revocations_read_at = counter
        signer, responder_id_der, wrapper = self._signer(now)
        keys, records, removed = read_work(store, self.issuer_id, work, cert_hashes=self.settings.cert_hash)
        if not keys and not removed:
            return BatchResult(self.settings.name, 0, 0, 0)
        this_update = now.replace(microsecond=0)
        next_update = this_update + dt.timedelta(seconds=self.settings.validity)
        limit = next_update_limit(this_update, next_update, signer.not_after, freshness(store.source_states(self.issuer_id), self.settings).due)
        if limit is not None:
            if limit <= this_update:
                raise SignerUnavailable(f"CA {self.settings.name}: signer {signer.name} expires at {signer.not_after}")
            next_update = limit
        renew = renew_at(this_update, next_update)
        extensions = constant_extensions(self.settings, self.served.certificate, this_update)
        template = der.ResponseDataTemplate(responder_id_der, this_update, this_update, next_update, extensions)
        encode, sign = template.encode, signer.signature
        final_template = None  # of final responses (nextUpdate 99991231235959Z), made for the first of the batch
        sha1_cert_id, sha256_cert_id = (cert_id.encode for cert_id in self._cert_ids)
        # The common case, good, joins bytes without a call: the ResponseData up to the serial key per key
        # length (both CertIDs), and the signature's head per signature length (ECDSA's vary by a byte or two).
        good_heads: dict[int, tuple[bytes, bytes]] = {}
        good_tail = template.good_tail
        signature_heads, signature_head = wrapper.signature_heads, wrapper.signature_head
        special = records.get
        # With cert_hash a key without a record is issued with its certificate unknown: decide() says unknown.
        plain = _ISSUED_UNHASHED if self.settings.cert_hash else None
        rows = []
        for key in keys:
            record = special(key, plain)
            if record is None:  # issued, not revoked, no extension (as decide())
                heads = good_heads.get(len(key))
                if heads is None:
                    heads = good_heads[len(key)] = tuple(template.good_head(cert_id, len(key)) for cert_id in self._cert_ids)
                sha1_data = heads[0] + key + good_tail
                sha256_data = heads[1] + key + good_tail
            else:
                decision = decide(record, self.settings, serial_from_key(key))
                revoked = decision.revoked
                status_der = der.encode_cert_status(
                    decision.status,
                    revoked.revocation_time if revoked else None,
                    revoked.reason if revoked else None,
                )
                invalidity = revoked.invalidity_date if revoked else None
                extended = decision.extended
                own = answer_extensions(self.settings, record) if decision.status is not OCSPCertStatus.UNKNOWN else b""
                encode_this = encode
                final = final_next_update(self.settings, store, self.issuer_id, revoked, this_update)
                if final is not None:  # the row keeps the batch's nextUpdate: renewed and cached as any other
                    if final_template is None:
                        final_template = der.ResponseDataTemplate(responder_id_der, this_update, this_update, final, extensions)
                    encode_this = final_template.encode
                sha1_data = encode_this(sha1_cert_id(key), status_der, invalidity_date=invalidity, extended_revoke=extended,
                                        extensions=own)  # fmt: skip
                sha256_data = encode_this(sha256_cert_id(key), status_der, invalidity_date=invalidity,
                                          extended_revoke=extended, extensions=own)  # fmt: skip
            sha1_signature, sha256_signature = sign(sha1_data), sign(sha256_data)
            sha1_head = signature_heads.get(len(sha1_signature)) or signature_head(len(sha1_signature))
            sha256_head = signature_heads.get(len(sha256_signature)) or signature_head(len(sha256_signature))
            rows.append((key, sha1_data + sha1_head + sha1_signature, sha256_data + sha256_head + sha256_signature))
        batch = SignedBatch(wrapper.assembler.certificates_element, this_update, next_update, renew, rows, self.profile)
        with write_lock or contextlib.nullcontext():
            store.store_signed(self.issuer_id, batch, change_counter=counter, remove=removed)
        return BatchResult(self.settings.name, len(rows) * len(PRECOMPUTED_HASH_ALGORITHMS), len(removed), len(keys) + len(removed))


class Worker:
    """The state of one generator process: its store connection and a :class:`CASigner` per CA."""

    def __init__(self, settings: Settings, store: StatusStore, write_lock: AbstractContextManager | None = None) -> None:
        self.store = store
        self.write_lock = write_lock
        self.cas = {ca.name: CASigner.load(ca, store, SystemClock()) for ca in settings.cas}

    def run(self, ca_name: str, work: Work, now: dt.datetime) -> BatchResult:
        return self.cas[ca_name].sign_batch(self.store, work, now, self.write_lock)


_worker: Worker | None = None


def init_worker(settings_json: str, write_lock: AbstractContextManager | None = None) -> None:
    """Process-pool initializer: open the store and load every signer of ``settings_json``."""
    global _worker
    from certstatus.loading import open_store

    settings = Settings.from_json(settings_json)
    with held_config_warnings():  # reported by the command or supervisor that started this pass
        _worker = Worker(settings, open_store(settings), write_lock)


def sign_task(ca_name: str, work: Work, now_timestamp: float) -> BatchResult:
    """Process-pool task: sign one unit of :func:`work_units` in this process (after :func:`init_worker`)."""
    if _worker is None:
        raise RuntimeError("init_worker has not run in this process")
    return _worker.run(ca_name, work, dt.datetime.fromtimestamp(now_timestamp, dt.timezone.utc))

