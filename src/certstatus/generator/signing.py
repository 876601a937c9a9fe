"""The generator's worker side: sign one batch of serials of one CA and store the responses.

Each worker process loads the signers and opens the store itself
(:func:`init_worker`), so nothing secret crosses a process boundary and the
parent only hands out lists of serials. A batch is: read the change
counter of the issuer, then the statuses (:meth:`StatusStore.lookup_many`), decide each
certStatus (:mod:`certstatus.pipeline.status`), encode one response per
CertID hash algorithm with the byte templates of
:mod:`certstatus.protocol.fast_response`, sign, and write everything in one
transaction in the store's compact form (:meth:`StatusStore.store_signed`:
one row per serial, the responder certificates once per batch, not in every
response). Serials the store no longer knows lose their rows instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from contextlib import AbstractContextManager
from dataclasses import dataclass

from certstatus.clock import Clock, SystemClock
from certstatus.config import CaSettings, Settings
from certstatus.pipeline.issuers import ServedCA
from certstatus.pipeline.status import decide
from certstatus.protocol import fast_response as der
from certstatus.refresh import renew_at
from certstatus.signing.signer import ResponseSigner
from certstatus.store.base import PRECOMPUTED_HASH_ALGORITHMS, SignedBatch, StatusStore, serial_key


@dataclass(frozen=True)
class BatchResult:
    """What one batch did: ``signed`` responses written, ``removed`` serials dropped."""

    ca: str
    signed: int
    removed: int


class CASigner:
    """Signs pre-computed responses for one CA: its served CA (settings, issuer id, signers) and templates.

    The signer of a batch is the CA's current one (:class:`~certstatus.signing.signer_set.SignerSet`:
    rollover, HSM keys, as for live answers); a response never outlives it:
    nextUpdate is at most the signer certificate's notAfter.
    """

    def __init__(self, served: ServedCA) -> None:
        self.served = served
        self.settings = served.settings
        self.issuer_id = served.issuer_id
        self.prefixes = {
            algorithm: der.cert_id_prefix(algorithm, *served.hashes[algorithm]) for algorithm in PRECOMPUTED_HASH_ALGORITHMS
        }
        self._cert_ids = tuple(der.CertIdTemplate(prefix) for prefix in self.prefixes.values())
        self._templates: dict[int, tuple[ResponseSigner, bytes, der.ResponseWrapper]] = {}

    @classmethod
    def load(cls, settings: CaSettings, store: StatusStore, clock: Clock) -> "CASigner":
        """Load the CA certificate and its signers as a worker does (:func:`certstatus.app.load_ca`).

        Raises :class:`~certstatus.errors.SignerError` when no signer is usable.
        """
        from certstatus.app import load_ca

        return cls(load_ca(settings, store, clock))

    def _signer(self, now: dt.datetime) -> tuple[ResponseSigner, bytes, der.ResponseWrapper]:
        signer = self.served.signers.select(now=now)
        templates = self._templates.get(id(signer))
        if templates is None or templates[0] is not signer:
            templates = (signer, signer.responder_id.dump(), der.ResponseWrapper(signer.signature_algorithm_der, signer.certificates_der))
            self._templates[id(signer)] = templates
        return templates

    def sign_batch(
        self, store: StatusStore, serial_numbers: list[int], now: dt.datetime, write_lock: AbstractContextManager | None = None
    ) -> BatchResult:
        """Sign every serial of the batch for SHA-1 and SHA-256 CertIDs at ``now`` and store the responses.

        ``write_lock`` (shared by the worker processes) serialises the
        writes, so a worker waiting for the store wakes when the other is
        done instead of polling SQLite's busy handler. Raises
        :class:`~certstatus.errors.SignerUnavailable` when the CA has no
        signer valid at ``now`` (nothing is written).
        """
        signer, responder_id_der, wrapper = self._signer(now)
        counter = store.change_counters().get(self.issuer_id, 0)  # before the statuses: see StatusStore.store_precomputed
        records = store.lookup_many(self.issuer_id, serial_numbers)
        this_update = now.replace(microsecond=0)
        next_update = min(this_update + dt.timedelta(seconds=self.settings.validity), signer.not_after.replace(microsecond=0))
        renew = renew_at(this_update, next_update)
        template = der.ResponseDataTemplate(responder_id_der, this_update, this_update, next_update)
        encode, encode_good, body, sign = template.encode, template.encode_good, wrapper.body, signer.signature
        sha1_cert_id, sha256_cert_id = (cert_id.encode for cert_id in self._cert_ids)
        settings = self.settings
        rows, removed = [], []
        for serial in serial_numbers:
            record = records.get(serial)
            if record is None:
                removed.append(serial)  # no longer known: its requests are misses now
                continue
            key = serial_key(serial)
            if record.revoked is None and record.issued:  # the common case: good, no extension (as decide())
                sha1_data = encode_good(sha1_cert_id(key))
                sha256_data = encode_good(sha256_cert_id(key))
            else:
                decision = decide(record, settings, serial)
                revoked = decision.revoked
                status_der = der.encode_cert_status(
                    decision.status,
                    revoked.revocation_time if revoked else None,
                    revoked.reason if revoked else None,
                )
                invalidity = revoked.invalidity_date if revoked else None
                extended = decision.extended
                sha1_data = encode(sha1_cert_id(key), status_der, invalidity_date=invalidity, extended_revoke=extended)
                sha256_data = encode(sha256_cert_id(key), status_der, invalidity_date=invalidity, extended_revoke=extended)
            rows.append((key, body(sha1_data, sign(sha1_data)), body(sha256_data, sign(sha256_data))))
        batch = SignedBatch(wrapper.assembler.certificates_element, this_update, next_update, renew, rows)
        with write_lock or contextlib.nullcontext():
            store.store_signed(self.issuer_id, batch, change_counter=counter, remove=removed)
        return BatchResult(self.settings.name, len(rows) * len(PRECOMPUTED_HASH_ALGORITHMS), len(removed))


class Worker:
    """The state of one generator process: its store connection and a :class:`CASigner` per CA."""

    def __init__(self, settings: Settings, store: StatusStore, write_lock: AbstractContextManager | None = None) -> None:
        self.store = store
        self.write_lock = write_lock
        self.cas = {ca.name: CASigner.load(ca, store, SystemClock()) for ca in settings.cas}

    def run(self, ca_name: str, serial_numbers: list[int], now: dt.datetime) -> BatchResult:
        return self.cas[ca_name].sign_batch(self.store, serial_numbers, now, self.write_lock)


_worker: Worker | None = None


def init_worker(settings_json: str, write_lock: AbstractContextManager | None = None) -> None:
    """Process-pool initializer: open the store and load every signer of ``settings_json``."""
    global _worker
    from certstatus.app import open_store

    settings = Settings.from_json(settings_json)
    _worker = Worker(settings, open_store(settings), write_lock)


def sign_task(ca_name: str, serial_numbers: list[int], now_timestamp: float) -> BatchResult:
    """Process-pool task: sign one batch in this process (after :func:`init_worker`)."""
    if _worker is None:
        raise RuntimeError("init_worker has not run in this process")
    return _worker.run(ca_name, serial_numbers, dt.datetime.fromtimestamp(now_timestamp, dt.timezone.utc))

