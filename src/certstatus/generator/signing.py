"""The generator's worker side: sign one batch of serials of one CA and store the responses.

Each worker process loads the signers and opens the store itself
(:func:`init_worker`), so nothing secret crosses a process boundary and the
parent only hands out lists of serials. A batch is: read the change-feed
position, then the statuses (:meth:`StatusStore.lookup_many`), decide each
certStatus (:mod:`certstatus.pipeline.status`), encode one response per
CertID hash algorithm with the byte templates of
:mod:`certstatus.protocol.fast_response`, sign, and write everything in one
transaction (:meth:`StatusStore.store_precomputed`). Serials the store no
longer knows lose their rows instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from contextlib import AbstractContextManager
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from certstatus.config import CaSettings, Settings
from certstatus.pipeline.status import decide
from certstatus.protocol import fast_response as der
from certstatus.protocol.certid import issuer_hashes
from certstatus.refresh import renew_at
from certstatus.signing.keys import load_certificates, load_private_key, read_password
from certstatus.signing.signer import ResponseSigner
from certstatus.store.base import PrecomputedResponse, SignedResponse, StatusStore
from certstatus.store.sqlite_precomputed import PRECOMPUTED_HASH_ALGORITHMS


@dataclass(frozen=True)
class BatchResult:
    """What one batch did: ``signed`` responses written, ``removed`` serials dropped."""

    ca: str
    signed: int
    removed: int


class CASigner:
    """Signs pre-computed responses for one CA: its settings, issuer id, signer and templates."""

    def __init__(self, settings: CaSettings, issuer_id: int, signer: ResponseSigner) -> None:
        self.settings = settings
        self.issuer_id = issuer_id
        self.signer = signer
        self.responder_id_der = signer.responder_id.dump()
        self.wrapper = der.ResponseWrapper(signer.signature_algorithm_der, signer.certificates_der)
        self.prefixes = {
            algorithm: der.cert_id_prefix(algorithm, *issuer_hashes(signer.ca_certificate, algorithm))
            for algorithm in PRECOMPUTED_HASH_ALGORITHMS
        }

    @classmethod
    def load(cls, settings: CaSettings, store: StatusStore) -> "CASigner":
        """Load the CA certificate and signer from the files ``settings`` names.

        The signer was validated at start-up (:func:`certstatus.app.prepare`);
        raises :class:`~certstatus.errors.SignerError` when the files became unreadable.
        """
        certificate = load_certificates(settings.certificate)[0]
        signer_certs = load_certificates(settings.signer_certificate)
        key = load_private_key(settings.signer_key, read_password(settings.signer_password_file)).key
        signer = ResponseSigner(
            key, signer_certs[0], certificate, responder_id=settings.responder_id, chain=tuple(signer_certs[1:])
        )
        issuer_id = store.register_issuer(settings.name, certificate.public_bytes(serialization.Encoding.DER))
        return cls(settings, issuer_id, signer)

    def sign_batch(
        self, store: StatusStore, serial_numbers: list[int], now: dt.datetime, write_lock: AbstractContextManager | None = None
    ) -> BatchResult:
        """Sign every serial of the batch for SHA-1 and SHA-256 CertIDs at ``now`` and store the responses.

        ``write_lock`` (shared by the worker processes) serialises the
        writes, so a worker waiting for the store wakes when the other is
        done instead of polling SQLite's busy handler.
        """
        status_seq = store.status_seq()  # before the statuses: see StatusStore.store_precomputed
        records = store.lookup_many(self.issuer_id, serial_numbers)
        this_update = now.replace(microsecond=0)
        next_update = this_update + dt.timedelta(seconds=self.settings.validity)
        renew = renew_at(this_update, next_update)
        this_der = der.generalized_time(this_update)
        next_der = der.generalized_time(next_update)
        responses, removed = [], []
        for serial in serial_numbers:
            record = records.get(serial)
            if record is None:
                removed.append(serial)  # no longer known: its requests are misses now
                continue
            decision = decide(record, self.settings, serial)
            revoked = decision.revoked
            status_der = der.encode_cert_status(
                decision.status,
                revoked.revocation_time if revoked else None,
                revoked.reason if revoked else None,
            )
            for algorithm, prefix in self.prefixes.items():
                data = der.encode_response_data(
                    self.responder_id_der, this_der, der.encode_cert_id(prefix, serial), status_der, this_der, next_der,
                    invalidity_date=revoked.invalidity_date if revoked else None,
                    extended_revoke=decision.extended,
                )  # fmt: skip
                response = self.wrapper.wrap(data, self.signer.signature(data))
                responses.append(
                    SignedResponse(serial, algorithm, PrecomputedResponse(response, this_update, next_update), renew)
                )
        with write_lock or contextlib.nullcontext():
            store.store_precomputed(self.issuer_id, responses, status_seq=status_seq, remove=removed)
        return BatchResult(self.settings.name, len(responses), len(removed))


class Worker:
    """The state of one generator process: its store connection and a :class:`CASigner` per CA."""

    def __init__(self, settings: Settings, store: StatusStore, write_lock: AbstractContextManager | None = None) -> None:
        self.store = store
        self.write_lock = write_lock
        self.cas = {ca.name: CASigner.load(ca, store) for ca in settings.cas}

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

