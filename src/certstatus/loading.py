"""Load a CA's signers as configured: what every process that signs needs, and nothing more.

:mod:`certstatus.app` builds the whole responder on these; the generator's
signing processes (:mod:`certstatus.generator.signing`) import only this
module, so a worker starts without the HTTP server, the pipeline and the
importers (~0.5 s of CPU less per process).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from certstatus.ca_certificate import not_a_ca
from certstatus.clock import Clock, SystemClock
from certstatus.config import CaSettings, Settings
from certstatus.errors import ConfigError
from certstatus.observability import grouped_config_warnings
from certstatus.pipeline.issuers import ServedCA
from certstatus.signing.keys import load_certificates
from certstatus.signing.loader import load_signer_set
from certstatus.signing.revocation import revocation_lookup
from certstatus.sources.health import has_data
from certstatus.store.base import StatusStore
from certstatus.store.factory import open_configured_store


def load_ca(ca: CaSettings, store: StatusStore, clock: Clock, *, announce: bool = False, checked: bool = False) -> ServedCA:
    """Load the CA certificate and its signers, validate the signers, register the issuer.

    The signers' revocation is read from ``store`` once, here (in the
    calling thread); keeping it current is :mod:`certstatus.signing.revocation`'s
    job. ``announce``: this process logs revoked signers at warning/error
    level (the supervisor; see :class:`~certstatus.signing.signer_set.SignerSet`).
    ``checked``: :func:`certstatus.app.prepare` validated this configuration
    in this start or reload (the workers, the supervisor's own signers): the
    certificate's CA profile and the configured signers' issuer signature,
    extensions and key proof are not checked again
    (:func:`certstatus.signing.loader.build_signer`).
    Raises :class:`ConfigError` naming the ``certificate`` key when the
    certificate is not a CA's (:func:`certstatus.ca_certificate.not_a_ca`: a
    leaf or the responder certificate given instead), :class:`SignerError`
    with the file names (or token objects) when a signer is unusable (see
    :mod:`certstatus.signing.loader`). A forwarded CA has no signers
    (``ServedCA.signers`` is None): its remote responders sign.
    """
    certificate = load_certificates(ca.certificate)[0]
    problem = None if checked else not_a_ca(certificate)
    if problem is not None:
        key = "--issuer" if ca.where == "command line" else f"ca.{ca.name}.certificate"
        raise ConfigError(
            ca.where, key, f"{ca.certificate} ({certificate.subject.rfc4514_string()}) is refused: {problem}.",
            "Give the certificate of the CA that issues the certificates answered for, not a leaf or the "
            "responder certificate.",
        )
    issuer_id = store.register_issuer(ca.name, certificate.public_bytes(serialization.Encoding.DER))
    if ca.forward:
        return ServedCA(ca, certificate, issuer_id, None, has_data=False)  # type: ignore[arg-type]
    signers = load_signer_set(
        ca, certificate, clock, is_revoked=revocation_lookup(store, issuer_id), announce=announce, checked=checked
    )
    return ServedCA(ca, certificate, issuer_id, signers, has_data=has_data(ca, store.source_states(issuer_id)))


def validate_signers(settings: Settings, clock: Clock | None = None) -> None:
    """Check every CA's signer as :func:`prepare` does, without importing (raises :class:`SignerError`)."""
    clock = clock or SystemClock()
    store = open_configured_store(settings)
    try:
        with grouped_config_warnings():
            for ca in settings.cas:
                load_ca(ca, store, clock)
    finally:
        store.close()
