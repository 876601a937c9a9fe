"""Open the store and load a CA's signers as configured: what every process that signs needs, and nothing more.

:mod:`certstatus.app` builds the whole responder on these; the generator's
signing processes (:mod:`certstatus.generator.signing`) import only this
module, so a worker starts without the HTTP server, the pipeline and the
importers (~0.5 s of CPU less per process).
"""

from __future__ import annotations

from certstatus.clock import Clock, SystemClock
from certstatus.config import CaSettings, Settings
from certstatus.errors import ConfigError, StoreError
from certstatus.pipeline.issuers import ServedCA
from certstatus.signing.keys import load_certificates
from certstatus.signing.loader import load_signer_set
from certstatus.sources.health import has_data
from certstatus.store.base import StatusStore
from certstatus.store.factory import open_store as open_database
from cryptography.hazmat.primitives import serialization


def open_store(settings: Settings, *, upgrade: bool | None = None) -> StatusStore:
    """Open ``server.database`` (see :func:`certstatus.store.factory.open_store`).

    Raises :class:`ConfigError` naming the setting when the database is
    unreachable or its schema is not current.
    """
    try:
        return open_database(settings.server.database, upgrade=upgrade)
    except StoreError as exc:
        raise ConfigError(settings.server.where, settings.server.database_key, str(exc)) from None


def load_ca(ca: CaSettings, store: StatusStore, clock: Clock) -> ServedCA:
    """Load the CA certificate and its signers, validate the signers, register the issuer.

    Raises :class:`SignerError` with the file names (or token objects) when
    a signer is unusable (see :mod:`certstatus.signing.loader`). A forwarded
    CA has no signers (``ServedCA.signers`` is None): its remote responders sign.
    """
    certificate = load_certificates(ca.certificate)[0]
    issuer_id = store.register_issuer(ca.name, certificate.public_bytes(serialization.Encoding.DER))
    if ca.forward:
        return ServedCA(ca, certificate, issuer_id, None, has_data=False)  # type: ignore[arg-type]

    def is_revoked(signer) -> bool:  # "not revoked by the CA's own data"
        record = store.lookup(issuer_id, signer.certificate.serial_number)
        return record is not None and record.revoked is not None

    signers = load_signer_set(ca, certificate, clock, is_revoked=is_revoked)
    return ServedCA(ca, certificate, issuer_id, signers, has_data=has_data(ca, store.source_states(issuer_id)))


def validate_signers(settings: Settings, clock: Clock | None = None) -> None:
    """Check every CA's signer as :func:`prepare` does, without importing (raises :class:`SignerError`)."""
    clock = clock or SystemClock()
    store = open_store(settings)
    try:
        for ca in settings.cas:
            load_ca(ca, store, clock)
    finally:
        store.close()
