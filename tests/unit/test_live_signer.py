"""The live step (LocalStatusSigner) against the asn1crypto reference, byte for byte.

RSA PKCS#1 v1.5 signatures are deterministic, so a whole OCSPResponse signed by
the step can be compared with the one the reference encoders
(tests/ocsp_reference.py) write for the same statuses, times and nonce.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.clock import ManualClock
from certstatus.config import CaSettings
from certstatus.der import tlv
from certstatus.model import RevokedEntry
from certstatus.pipeline.base import Exchange, Route
from certstatus.pipeline.issuers import IssuerRegistry, ServedCA
from certstatus.pipeline.steps import LocalStatusSigner, ResolveIssuers
from certstatus.protocol.fast_request import parse_request_fast
from certstatus.protocol.response import EXTENDED_REVOKED_TIME
from certstatus.signing.keys import load_certificates, load_private_key
from certstatus.signing.signer import ResponseSigner
from certstatus.store.base import SourceState
from certstatus.store.sqlite import SQLiteStore
from tests import ocsp_reference
from tests.ocsp_reference import SingleAnswer

UTC = dt.timezone.utc
START = dt.datetime.now(UTC).replace(microsecond=250_000)  # within the demo signer's validity
REVOKED_AT = (START - dt.timedelta(days=3)).replace(microsecond=0)
INVALID_FROM = (START - dt.timedelta(days=5)).replace(microsecond=0)
GOOD, REVOKED, HOLD, UNKNOWN = 0x1001, 0x1002, 0x1003, 0x1004


@pytest.fixture
def world(tmp_path, demo_pki_rsa):
    ca_cert = load_certificates(demo_pki_rsa.ca_cert)[0]
    signer = ResponseSigner(load_private_key(demo_pki_rsa.ocsp_key, None).key,
                            load_certificates(demo_pki_rsa.ocsp_cert)[0], ca_cert)  # fmt: skip
    store = SQLiteStore(tmp_path / "store.sqlite3")
    issuer_id = store.register_issuer("rsa", ca_cert.public_bytes(serialization.Encoding.DER))
    store.replace_source(
        issuer_id, SourceState("index", "index.txt", START, 4), issued=[GOOD, REVOKED, HOLD],
        revoked=[RevokedEntry(REVOKED, REVOKED_AT, x509.ReasonFlags.key_compromise, INVALID_FROM),
                 RevokedEntry(HOLD, REVOKED_AT, None)],
    )  # fmt: skip
    settings = CaSettings(name="rsa", certificate=demo_pki_rsa.ca_cert, index=demo_pki_rsa.index, validity=3600)
    clock = ManualClock(START)
    ca = ServedCA(settings, ca_cert, issuer_id, signer)
    yield store, IssuerRegistry([ca]), ca, signer, clock, ca_cert
    store.close()


def _request(ca: ServedCA, serials, nonce: bytes | None) -> bytes:
    """An OCSPRequest with one SHA-1 CertID per serial and an optional nonce (cryptography writes one CertID)."""
    name_hash, key_hash = ca.hashes["sha1"]
    cert_ids = [
        parse_request_fast(
            ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1())
            .build().public_bytes(serialization.Encoding.DER)
        ).cert_ids[0].der
        for serial in serials
    ]  # fmt: skip
    extensions = b""
    if nonce is not None:
        nonce_extension = tlv(0x30, bytes.fromhex("06092b0601050507300102") + tlv(0x04, tlv(0x04, nonce)))
        extensions = tlv(0xA2, tlv(0x30, nonce_extension))
    return tlv(0x30, tlv(0x30, tlv(0x30, b"".join(tlv(0x30, c) for c in cert_ids)) + extensions))


def _reference(signer, ca_settings, query, statuses, now, nonce) -> bytes:
    next_update = now + dt.timedelta(seconds=ca_settings.validity)
    answers = []
    extended = False
    for cert_id, status in zip(query.cert_ids, statuses, strict=True):
        kind = status
        if kind == "good":
            answers.append(SingleAnswer(cert_id.der, OCSPCertStatus.GOOD, now, next_update))
        elif kind == "unknown":
            answers.append(SingleAnswer(cert_id.der, OCSPCertStatus.UNKNOWN, now, next_update))
        elif kind == "revoked":
            answers.append(SingleAnswer(cert_id.der, OCSPCertStatus.REVOKED, now, next_update,
                                        revocation_time=REVOKED_AT, reason=x509.ReasonFlags.key_compromise,
                                        invalidity_date=INVALID_FROM))  # fmt: skip
        elif kind == "hold-none":
            answers.append(SingleAnswer(cert_id.der, OCSPCertStatus.REVOKED, now, next_update,
                                        revocation_time=REVOKED_AT))  # fmt: skip
        else:  # extended revoked (RFC 6960 §2.2)
            extended = True
            answers.append(SingleAnswer(cert_id.der, OCSPCertStatus.REVOKED, now, next_update,
                                        revocation_time=EXTENDED_REVOKED_TIME,
                                        reason=x509.ReasonFlags.certificate_hold))  # fmt: skip
    data = ocsp_reference.encode_response_data(
        responder_id=signer.responder_id, produced_at=now, answers=answers, nonce=nonce, extended_revoke=extended
    )
    return ocsp_reference.encode_basic_response(data, signer.signature_algorithm_der, signer.signature(data),
                                          signer.certificates_der)  # fmt: skip


def _answer(world, serials, nonce=None, settings_change=None):
    store, registry, ca, signer, clock, ca_cert = world
    if settings_change:
        ca.settings = dataclasses.replace(ca.settings, **settings_change)
    query = parse_request_fast(_request(ca, serials, nonce))
    exchange = Exchange(query, Route("/", None), clock.now())
    step = LocalStatusSigner(store, clock)
    return query, ResolveIssuers(registry).handle(exchange, step), step


@pytest.mark.parametrize("nonce", [None, b"\x5a" * 16])
def test_every_status_is_the_reference_bytes(world, nonce):
    store, registry, ca, signer, clock, ca_cert = world
    serials = [GOOD, REVOKED, HOLD, UNKNOWN]
    query, answer, _ = _answer(world, serials, nonce)
    now = START.replace(microsecond=0)
    expected = _reference(signer, ca.settings, query, ["good", "revoked", "hold-none", "unknown"], now, query.nonce)
    assert answer.der == expected
    assert (answer.this_update, answer.produced_at) == (now, now)
    assert answer.next_update == now + dt.timedelta(seconds=3600)
    assert answer.statuses == ("good", "revoked", "revoked", "unknown")
    assert answer.has_nonce is (nonce is not None)


def test_extended_revoked_is_the_reference_bytes(world):
    store, registry, ca, signer, clock, ca_cert = world
    query, answer, _ = _answer(world, [UNKNOWN, GOOD], settings_change={"unknown_serials": "revoked"})
    expected = _reference(signer, ca.settings, query, ["extended", "good"], START.replace(microsecond=0), None)
    assert answer.der == expected


def test_times_follow_the_clock_across_seconds(world):
    store, registry, ca, signer, clock, ca_cert = world
    step = LocalStatusSigner(store, clock)
    query = parse_request_fast(_request(ca, [GOOD], None))

    def sign_now():
        return ResolveIssuers(registry).handle(Exchange(query, Route("/", None), clock.now()), step)

    first = sign_now()
    clock.advance(0.5)  # .75: the same second, the same times
    assert sign_now().der == first.der
    clock.advance(0.5)  # .25 of the next second
    later = sign_now()
    assert later.this_update == first.this_update + dt.timedelta(seconds=1)
    assert later.der == _reference(signer, ca.settings, query, ["good"], later.this_update, None)
    clock.set(START - dt.timedelta(seconds=30))  # a clock set back is followed too
    assert sign_now().this_update == (START - dt.timedelta(seconds=30)).replace(microsecond=0)


@pytest.mark.parametrize("delegated", [True, False])
def test_signer_wrap_is_the_reference_bytes_for_every_size(demo_pki_rsa, delegated):
    # ResponseSigner.sign wraps with length headers cached per size: responses of many sizes
    # (1 to 700 SingleResponses, with and without a nonce; the last two sizes again, from the
    # cache), with the responder certificate or none for a CA-signed response, must still give
    # the reference encoder's bytes.
    ca_cert = load_certificates(demo_pki_rsa.ca_cert)[0]
    if delegated:
        key, certificate = load_private_key(demo_pki_rsa.ocsp_key, None).key, load_certificates(demo_pki_rsa.ocsp_cert)[0]
    else:
        key, certificate = load_private_key(demo_pki_rsa.ca_key, None).key, ca_cert
    signer = ResponseSigner(key, certificate, ca_cert)
    assert bool(signer.certificates_der) is delegated
    now = START.replace(microsecond=0)
    single = SingleAnswer(tlv(0x30, b"\x00" * 60), OCSPCertStatus.GOOD, now, now + dt.timedelta(hours=1))
    for count, nonce in [(1, None), (1, b"\x01" * 32), (2, None), (3, b"\x02" * 8), (700, None), (2, None), (1, None)]:
        data = ocsp_reference.encode_response_data(responder_id=signer.responder_id, produced_at=now,
                                             answers=[single] * count, nonce=nonce)  # fmt: skip
        expected = ocsp_reference.encode_basic_response(data, signer.signature_algorithm_der, signer.signature(data),
                                                   signer.certificates_der)  # fmt: skip
        assert signer.sign(data) == expected


def test_signers_share_the_wrap_of_a_size_and_each_keeps_its_own_bytes(demo_pki_rsa):
    # The length headers of a size and the signature's header of an algorithm and size are the same
    # for every signer: worked out once for all of them (10 000 CAs' signers each asked a few times
    # a minute missed their own caches). Interleaved, each signer still writes the reference bytes.
    ca_cert = load_certificates(demo_pki_rsa.ca_cert)[0]
    delegated = ResponseSigner(load_private_key(demo_pki_rsa.ocsp_key, None).key,
                               load_certificates(demo_pki_rsa.ocsp_cert)[0], ca_cert)  # fmt: skip
    ca_signed = ResponseSigner(load_private_key(demo_pki_rsa.ca_key, None).key, ca_cert, ca_cert)
    assert delegated._wrapper.assembler._prefixes is ca_signed._wrapper.assembler._prefixes
    assert delegated._wrapper.signature_heads is ca_signed._wrapper.signature_heads
    now = START.replace(microsecond=0)
    single = SingleAnswer(tlv(0x30, b"\x00" * 60), OCSPCertStatus.GOOD, now, now + dt.timedelta(hours=1))
    for count in (1, 2, 1, 5, 2, 3, 1):
        for signer in (delegated, ca_signed, delegated):
            data = ocsp_reference.encode_response_data(responder_id=signer.responder_id, produced_at=now,
                                                       answers=[single] * count)  # fmt: skip
            expected = ocsp_reference.encode_basic_response(data, signer.signature_algorithm_der,
                                                            signer.signature(data), signer.certificates_der)  # fmt: skip
            assert signer.sign(data) == expected


def test_many_signers_in_one_second_carry_their_own_bounds_byte_for_byte(tmp_path, demo_pki_rsa, monkeypatch):
    """One step answering many CAs within one second, and in the next: each answer carries the times
    of its own CA — thisUpdate + validity, or the signer's notAfter or the CRL's nextUpdate where one
    comes first (certstatus.next_update) — byte for byte as the reference writes them, whatever the
    order of the CAs. Only a CA whose times are bounded has them worked out for its signer: the
    others share the second's times of their validity."""
    import certstatus.pipeline.steps as steps
    from certstatus.demo_pki import issue_cert
    from certstatus.next_update import STALE_FLOOR, next_update_limit

    ca_cert = load_certificates(demo_pki_rsa.ca_cert)[0]
    ca_key = load_private_key(demo_pki_rsa.ca_key, None).key
    responder_key = load_private_key(demo_pki_rsa.ocsp_key, None).key
    demo_responder = load_certificates(demo_pki_rsa.ocsp_cert)[0]
    now = START.replace(microsecond=0)
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    # (validity, the responder certificate's notAfter or None: the demo responder's, the CRL's nextUpdate or
    # None: no CRL); the demo responder outlives every validity here.
    cases = [
        (3600, None, None), (3600, None, now + 30 * day), (86400, None, now + 3 * hour), (86400, now + 6 * hour, None),
        (86400, now + 2 * hour, now + 3 * hour), (7200, None, now - hour), (600, None, None), (86400, None, now + 9 * day),
        (86400, now + 20 * day, now + 9 * day), (600, now + 5 * hour, now + 3 * hour), (600, None, now - hour),
    ] * 3  # fmt: skip
    store = SQLiteStore(tmp_path / "store.sqlite3")
    clock = ManualClock(START)
    cas = []
    for index, (validity, not_after, crl_next_update) in enumerate(cases):
        name = f"ca{index}"
        issuer_id = store.register_issuer(name, ca_cert.public_bytes(serialization.Encoding.DER))
        if crl_next_update is None:
            store.replace_source(issuer_id, SourceState("index", "index.txt", START, 1), issued=[GOOD], revoked=[])
            settings = CaSettings(name=name, certificate=demo_pki_rsa.ca_cert, index=demo_pki_rsa.index, validity=validity)
        else:
            state = SourceState("crl", "ca.crl", START, 0, now - hour, crl_next_update)
            store.replace_source(issuer_id, state, revoked=[])
            settings = CaSettings(name=name, certificate=demo_pki_rsa.ca_cert, crl=("ca.crl",), validity=validity,
                                  stale_grace=86400)  # fmt: skip
        certificate = demo_responder
        if not_after is not None:
            certificate = issue_cert(ca_cert, ca_key, responder_key.public_key(), common_name=f"responder {index}",
                                     not_before=now - day, not_after=not_after, ocsp_signing=True)  # fmt: skip
        signer = ResponseSigner(responder_key, certificate, ca_cert)
        end = now + dt.timedelta(seconds=validity)
        bounded = next_update_limit(now, end, signer.not_after, crl_next_update) is not None
        cas.append((ServedCA(settings, ca_cert, issuer_id, signer), signer, validity, crl_next_update, bounded))
    assert sum(case[4] for case in cas) == 5 * 3  # bounded by the signer, the CRL or the floor; 6 of 11 unbounded
    query = parse_request_fast(_request(cas[0][0], [GOOD], None))
    step = LocalStatusSigner(store, clock)
    worked_out = []
    monkeypatch.setattr(steps, "next_update_limit", lambda *args: worked_out.append(args) or next_update_limit(*args))
    for second in range(2):
        this_update = now + dt.timedelta(seconds=second)
        worked_out.clear()
        for order in (cas, cas[::-1], cas[1::2] + cas[::2]):
            for ca, signer, validity, crl_next_update, _ in order:
                answer = step.answer_single(ca, query.cert_ids[0])
                end = this_update + dt.timedelta(seconds=validity)
                next_update = next_update_limit(this_update, end, signer.not_after, crl_next_update) or end
                if crl_next_update is not None and crl_next_update < this_update:
                    assert next_update == this_update + STALE_FLOOR
                single = SingleAnswer(query.cert_ids[0].der, OCSPCertStatus.GOOD, this_update, next_update)
                data = ocsp_reference.encode_response_data(responder_id=signer.responder_id, produced_at=this_update,
                                                           answers=[single])  # fmt: skip
                assert answer.der == ocsp_reference.encode_basic_response(
                    data, signer.signature_algorithm_der, signer.signature(data), signer.certificates_der
                )
                assert (answer.this_update, answer.next_update) == (this_update, next_update)
        # once per second for each bounded signer, never for the others
        assert len(worked_out) == sum(case[4] for case in cas)
        clock.advance(1)
    store.close()
