"""Hybrid rollout: a CA with an ECDSA and an ML-DSA delegated responder, through the real pipeline and store.

A client that lists ML-DSA in its preferred signature algorithms (RFC 6960 §4.4.7) gets the ML-DSA
signer; every other client gets ECDSA — in live, cached and precomputed mode. Every response is
checked by cryptography's OCSP loader and the carried responder certificate's public key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.x509 import ocsp

from certstatus.app import build_application, prepare
from certstatus.clock import ManualClock
from certstatus.generator.run import DEFAULT_BATCH_SIZE, Generator
from certstatus.pipeline.base import OCSPError
from certstatus.signing.algorithms import ALGORITHMS
from certstatus.signing.settings import SignerSettings
from certstatus.signing.signer_set import signer_expiry
from certstatus.store.sqlite import SQLiteStore
from tests.precomputed_helpers import answer, ca_settings, certificate, copy_pki, settings_for
from tests.signing_support import ocsp_request, write_signer

ECDSA_SHA256 = ALGORITHMS["ecdsa-sha256"].oid
ML_DSA_44, ML_DSA_65, ML_DSA_87 = (ALGORITHMS[name].oid for name in ("ml-dsa-44", "ml-dsa-65", "ml-dsa-87"))
NONCE = b"pq-nonce-0123456"
DAY = dt.timedelta(days=1)


class HybridCA:
    """The demo CA (ECDSA) with its ECDSA delegated responder and an ML-DSA-65 one issued by it."""

    def __init__(self, pki, tmp_path, mode: str, *, pq_not_before=None, ecdsa_not_after=None, **changes) -> None:
        self.clock = ManualClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        now = self.clock.now()
        self.pki = copy_pki(pki, tmp_path / "pki")
        # The ML-DSA responder is the newer one: it must still not become the default signer.
        pq_cert, pq_key = write_signer(self.pki, tmp_path / "signers", "ml-dsa-65", mldsa.MLDSA65PrivateKey.generate(),
                                       not_before=pq_not_before or now - dt.timedelta(minutes=5), not_after=now + 30 * DAY)
        signers = [SignerSettings(pq_cert, str(pq_key), name="ml-dsa-65")]
        ca = ca_settings(self.pki, mode, **changes)
        if ecdsa_not_after is not None:  # an ECDSA responder of its own, instead of the demo one
            ec_cert, ec_key = write_signer(self.pki, tmp_path / "signers", "ecdsa", ec.generate_private_key(ec.SECP256R1()),
                                           not_before=now - DAY, not_after=ecdsa_not_after)
            signers.append(SignerSettings(ec_cert, str(ec_key), name="ecdsa"))
            ca = dataclasses.replace(ca, signer_certificate=None, signer_key=None)
        ca = dataclasses.replace(ca, signers=tuple(signers))
        self.settings = settings_for(tmp_path / "store.sqlite3", ca)
        prepare(self.settings, self.clock)
        self.store = SQLiteStore(self.settings.server.database)
        self.generator = Generator(self.settings, self.store, clock=self.clock, processes=0)
        self.app = build_application(self.settings, self.clock, watch=False)
        self.issuer = certificate(self.pki.ca_cert)

    def ask(self, serial: int, *, preferred: tuple[str, ...] = (), nonce: bool = False):
        return answer(self.app, ocsp_request(self.issuer, serial, nonce=nonce, preferred=preferred), self.clock)

    def close(self) -> None:
        self.generator.close()
        self.app.store.close()
        self.store.close()


@pytest.fixture
def hybrid(demo_pki, tmp_path):
    made = []

    def make(mode: str, **changes) -> HybridCA:
        folder = tmp_path / f"ca{len(made)}"
        folder.mkdir()
        made.append(HybridCA(demo_pki, folder, mode, **changes))
        return made[-1]

    yield make
    for item in made:
        item.close()


def verified(der: bytes, issuer: x509.Certificate) -> tuple[str, str, ocsp.OCSPResponse]:
    """(signature algorithm OID, responder CN, response), after cryptography verified the signature with the
    carried delegated responder certificate's public key and that certificate's issuance by ``issuer``."""
    response = ocsp.load_der_ocsp_response(der)
    [responder] = response.certificates
    responder.verify_directly_issued_by(issuer)
    responder.public_key().verify(
        response.signature, response.tbs_response_bytes,
        *(() if response.signature_hash_algorithm is None else (ec.ECDSA(response.signature_hash_algorithm),)),
    )  # fmt: skip
    common_name = responder.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    return response.signature_algorithm_oid.dotted_string, common_name, response


@pytest.mark.parametrize("mode", ["live", "cached", "precomputed"])
def test_ml_dsa_clients_get_the_ml_dsa_signer_and_every_other_client_ecdsa(hybrid, demo_pki, mode) -> None:
    ca = hybrid(mode)
    assert ca.generator.batch_sizes == ({} if mode == "live" else {"demo": DEFAULT_BATCH_SIZE})  # ECDSA pre-signs
    ca.generator.run_pass()
    serial = demo_pki.serials["revoked-keycompromise"]
    plain = ca.ask(serial)
    assert verified(plain.der, ca.issuer)[:2] == (ECDSA_SHA256, "certstatus demo OCSP responder")
    expected_source = {"live": "live", "cached": "precomputed", "precomputed": "precomputed"}[mode]
    assert plain.source == expected_source
    for preferred in ((ML_DSA_65,), (ML_DSA_87, ML_DSA_65, ECDSA_SHA256), (ML_DSA_44, ML_DSA_65)):
        pq = ca.ask(serial, preferred=preferred)
        algorithm, name, response = verified(pq.der, ca.issuer)
        assert (algorithm, name) == (ML_DSA_65, "ml-dsa-65 responder"), preferred
        assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert response.revocation_reason is x509.ReasonFlags.key_compromise
    # Clients naming algorithms this CA has no signer for, or ECDSA first: ECDSA.
    for preferred in ((ML_DSA_87,), (ECDSA_SHA256, ML_DSA_65)):
        assert verified(ca.ask(serial, preferred=preferred).der, ca.issuer)[0] == ECDSA_SHA256, preferred
    # The ECDSA answer is still what plain clients get afterwards (no shared entry mixed up).
    assert verified(ca.ask(serial).der, ca.issuer)[0] == ECDSA_SHA256


def test_precomputed_ml_dsa_answers_are_signed_live_without_nonce_then_shared(hybrid, demo_pki) -> None:
    ca = hybrid("precomputed")
    ca.generator.run_pass()
    serial = demo_pki.serials["good"]
    first = ca.ask(serial, preferred=(ML_DSA_65,), nonce=True)
    assert first.source == "live" and not first.has_nonce  # precomputed mode: the nonce is ignored (RFC 5019 §4)
    with pytest.raises(x509.ExtensionNotFound):
        ocsp.load_der_ocsp_response(first.der).extensions.get_extension_for_class(x509.OCSPNonce)
    second = ca.ask(serial, preferred=(ML_DSA_65,))
    assert (second.source, second.der) == ("cache", first.der)
    # Another list choosing the same signer shares the entry too.
    assert ca.ask(serial, preferred=(ML_DSA_87, ML_DSA_65)).der == first.der
    # Plain clients: the stored ECDSA response, never the cached ML-DSA one.
    plain = ca.ask(serial)
    assert plain.source in ("precomputed", "cache") and verified(plain.der, ca.issuer)[0] == ECDSA_SHA256
    assert plain.der == ca.store.precomputed(ca.app.registry.cas[0].issuer_id, serial, "sha1").der


def test_precomputed_miss_unauthorized_holds_for_ml_dsa_clients(hybrid, demo_pki) -> None:
    ca = hybrid("precomputed", precomputed_miss="unauthorized")
    ca.generator.run_pass()
    with pytest.raises(OCSPError) as refused:
        ca.ask(demo_pki.serials["unknown"], preferred=(ML_DSA_65,))
    assert refused.value.status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert verified(ca.ask(demo_pki.serials["good"], preferred=(ML_DSA_65,)).der, ca.issuer)[0] == ML_DSA_65


def test_live_ml_dsa_answers_echo_the_nonce(hybrid, demo_pki) -> None:
    for mode in ("live", "cached"):
        got = hybrid(mode).ask(demo_pki.serials["good"], preferred=(ML_DSA_65,), nonce=True)
        assert got.source == "live" and got.has_nonce
        assert ocsp.load_der_ocsp_response(got.der).signature_algorithm_oid.dotted_string == ML_DSA_65


def test_both_signers_are_active_and_an_ml_dsa_signer_relieves_no_expiring_ecdsa_one(hybrid, demo_pki, caplog) -> None:
    caplog.set_level(logging.WARNING, "certstatus.signing")
    soon = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + 3 * DAY
    ca = hybrid("live", ecdsa_not_after=soon)
    states = {state.name: state for state in signer_expiry([ca.app.registry.cas[0].signers])}
    assert states["ecdsa"].state == states["ml-dsa-65"].state == "active"
    # The ML-DSA signer outlives the ECDSA one, but clients that cannot verify ML-DSA need an ECDSA successor.
    assert states["ecdsa"].warning and not states["ecdsa"].has_successor
    assert not states["ml-dsa-65"].warning
    assert any("ecdsa" in r.getMessage() and "no successor is installed" in r.getMessage() for r in caplog.records)


def test_when_only_ml_dsa_signers_are_left_everyone_gets_ml_dsa(hybrid, demo_pki) -> None:
    soon = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + DAY
    ca = hybrid("live", ecdsa_not_after=soon)
    assert verified(ca.ask(demo_pki.serials["good"]).der, ca.issuer)[1] == "ecdsa responder"
    ca.clock.advance((2 * DAY).total_seconds())
    assert verified(ca.ask(demo_pki.serials["good"]).der, ca.issuer)[:2] == (ML_DSA_65, "ml-dsa-65 responder")


def test_a_pure_ml_dsa_ca_pre_signs_with_ml_dsa(tmp_path) -> None:
    """The generator signs ML-DSA-65 when that is the CA's only signer: stored bytes verify."""
    from certstatus.demo_pki import make_demo_pki

    pki = make_demo_pki(tmp_path / "pki", key_type="ec", responder_key_type="ml-dsa-65")
    clock = ManualClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    settings = settings_for(tmp_path / "store.sqlite3", ca_settings(pki, "precomputed"))
    prepare(settings, clock)
    store = SQLiteStore(settings.server.database)
    generator = Generator(settings, store, clock=clock, processes=0)
    app = build_application(settings, clock, watch=False)
    try:
        # Batches a twentieth of the ECDSA size: the last ones of a pass keep every process busy.
        assert generator.batch_sizes == {"demo": DEFAULT_BATCH_SIZE // 20}
        assert generator.run_pass().signed == 2 * (len(pki.serials) - 1 + 1)  # issued leaves + the responder, SHA-1 and SHA-256
        issuer = certificate(pki.ca_cert)
        got = answer(app, ocsp_request(issuer, pki.serials["revoked-superseded"]), clock)
        assert got.source == "precomputed"
        algorithm, _, response = verified(got.der, issuer)
        assert algorithm == ML_DSA_65 and response.revocation_reason is x509.ReasonFlags.superseded
    finally:
        generator.close()
        app.store.close()
        store.close()
