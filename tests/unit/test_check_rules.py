"""The rules of ``certstatus check``, each shown broken and kept, on real responses.

Responses are signed with ``cryptography``'s OCSPResponseBuilder (never
certstatus's writers) by keys made here: a CA, delegated responders of every
profile, another CA. Requests come from the check's own planner. Each test
judges the replies as they would have arrived and reads the findings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from email.utils import format_datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certstatus.check.probe import Probe, Reply, plan, request_der
from certstatus.check.rules import judge, summarise
from certstatus.protocol.certid import issuer_hashes

SERIAL = 0x1234
DAY = dt.timedelta(days=1)


def _now() -> dt.datetime:
    """The wall clock: cryptography's builder stamps producedAt with it when signing."""
    return dt.datetime.now(dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer: x509.Certificate | None, issuer_key, *, ca: bool = False, days: float = 365,
          eku=(ExtendedKeyUsageOID.OCSP_SIGNING,), nocheck: bool = True, digital_signature: bool = True,
          aia: bool = False, crldp: bool = False) -> x509.Certificate:  # fmt: skip
    start = _now() - DAY
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer is not None else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
        .add_extension(x509.KeyUsage(digital_signature, False, False, False, False, ca, ca, False, False), True)
    )
    if not ca:
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), False)
        if nocheck:
            builder = builder.add_extension(x509.OCSPNoCheck(), False)
        if aia:
            access = x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier("http://ca.example/ca.crt"))
            builder = builder.add_extension(x509.AuthorityInformationAccess([access]), False)
        if crldp:
            point = x509.DistributionPoint([x509.UniformResourceIdentifier("http://ca.example/ca.crl")], None, None, None)
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), False)
    return builder.sign(issuer_key, hashes.SHA256())


class World:
    """A CA and its delegated responder, and a way to answer a probe as a responder would."""

    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("Check CA", self.ca_key, None, self.ca_key, ca=True, days=3650)
        self.responder_key = ec.generate_private_key(ec.SECP256R1())
        self.responder = self.delegated()

    def delegated(self, **profile) -> x509.Certificate:
        return _cert("Check OCSP", self.responder_key, self.ca, self.ca_key, **profile)

    def probe(self, method: str = "GET", hash_algorithm: str = "sha1", *, nonce: bytes | None = None, unassigned: bool = False) -> Probe:
        return Probe(SERIAL, unassigned, method, hash_algorithm, nonce, request_der(self.ca, SERIAL, hash_algorithm, nonce))

    def response(self, probe: Probe, *, status=ocsp.OCSPCertStatus.GOOD, this_update=None, next_update: dt.timedelta | None = DAY,
                 signer: x509.Certificate | None = None, signer_key=None, by_ca: bool = False, echo: bytes | None | str = "asked",
                 answer_hash: str | None = None, tamper: bool = False, include: list[x509.Certificate] | None = None) -> bytes:  # fmt: skip
        """A signed response to ``probe``: ``next_update`` after ``this_update`` (default now), by the
        delegated responder (or the CA with ``by_ca``), nonce echoed as asked (or ``echo``)."""
        this_update = (this_update or _now()).replace(microsecond=0)
        request = ocsp.load_der_ocsp_request(probe.der)
        algorithm = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}[answer_hash or probe.hash_algorithm]
        name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
        if answer_hash and answer_hash != probe.hash_algorithm:
            name_hash, key_hash = issuer_hashes(self.ca, answer_hash)
        revoked = status is ocsp.OCSPCertStatus.REVOKED
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            name_hash, key_hash, request.serial_number, algorithm, status, this_update,
            None if next_update is None else this_update + next_update, this_update if revoked else None, None,
        )  # fmt: skip
        if by_ca:
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca)
            key = self.ca_key
        else:
            cert = signer or self.responder
            builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, cert).certificates(include or [cert])
            key = signer_key or self.responder_key
        nonce = probe.nonce if echo == "asked" else echo
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        if tamper:  # a CA-signed response ends with its signature: change its last octet
            der = der[:-1] + bytes([der[-1] ^ 0x01])
        return der


def _headers(der: bytes, next_update: dt.timedelta = DAY, **overrides: str | None) -> dict[str, str]:
    """RFC 5019 §6.2 headers for a response made now with ``next_update`` validity; ``None`` drops one."""
    now = _now().replace(microsecond=0)
    headers = {
        "content-type": "application/ocsp-response",
        "cache-control": f"max-age={int(next_update.total_seconds()) - 1}, public, no-transform, must-revalidate",
        "last-modified": format_datetime(now, usegmt=True),
        "expires": format_datetime(now + next_update, usegmt=True),
        "etag": '"' + hashlib.sha256(der).hexdigest() + '"',
    }
    headers.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return {k: v for k, v in headers.items() if v is not None}


def _reply(probe: Probe, der: bytes, status: int = 200, **headers: str | None) -> Reply:
    return Reply(probe, _now(), status, _headers(der, **headers), der)


def _results(replies: list[Reply], world: World) -> dict[str, tuple[str, str]]:
    return {s.rule.key: (s.result, s.detail) for s in summarise(judge(replies, world.ca))}


@pytest.fixture(scope="module")
def world() -> World:
    return World()


# --- a responder that keeps every rule --------------------------------------------------------------


def test_a_compliant_delegated_responder_breaks_no_rule(world: World) -> None:
    replies = []
    for probe in plan(world.ca, [SERIAL], []):
        der = world.response(probe)
        replies.append(_reply(probe, der) if probe.nonce is None else Reply(probe, _now(), 200, {"content-type": "application/ocsp-response"}, der))
    results = _results(replies, world)
    assert {key: result for key, (result, _) in results.items() if result != "ok"} == {"size": "note"}
    assert results["nonce"] == ("ok", "echoed")
    assert results["cert_id"] == ("ok", "sha1 CertID; sha256 CertID")
    assert results["validity"][1].startswith("1d 0h 0m 1s")


# --- times -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validity", "result"),
    [
        (dt.timedelta(days=10) - dt.timedelta(seconds=1), "ok"),  # + 1 s (both ends count) = 10 days
        (dt.timedelta(days=10), "violation"),  # 10 days and 1 second
        (dt.timedelta(hours=8) - dt.timedelta(seconds=1), "ok"),  # 8 hours
        (dt.timedelta(hours=8) - dt.timedelta(seconds=2), "violation"),
        (dt.timedelta(days=30), "violation"),
    ],
)
def test_validity_interval_counts_both_ends_and_spans_8_hours_to_10_days(world: World, validity, result) -> None:
    probe = world.probe()
    der = world.response(probe, next_update=validity)
    assert _results([_reply(probe, der, next_update=validity)], world)["validity"][0] == result


def test_a_response_without_next_update_is_a_violation(world: World) -> None:
    probe = world.probe("POST")
    results = _results([_reply(probe, world.response(probe, next_update=None))], world)
    assert results["next_update"] == ("violation", "no nextUpdate")


def test_next_update_after_the_signers_not_after_is_a_violation(world: World) -> None:
    short_lived = world.delegated(days=2)
    probe = world.probe("POST")
    kept = _results([_reply(probe, world.response(probe, next_update=DAY, signer=short_lived))], world)
    broken = _results([_reply(probe, world.response(probe, next_update=3 * DAY, signer=short_lived))], world)
    assert kept["signer_not_after"][0] == "ok"
    assert broken["signer_not_after"][0] == "violation" and "> signer notAfter" in broken["signer_not_after"][1]


@pytest.mark.parametrize(
    ("this_update", "validity", "words"),
    [
        (dt.timedelta(minutes=10), DAY, "is in the future"),
        (-5 * DAY, 7 * DAY, "past its refresh point"),  # 4 days after thisUpdate at the latest
        (-17 * dt.timedelta(hours=1), DAY, "past its refresh point"),  # 8 hours before nextUpdate
        (-7 * dt.timedelta(hours=1), 12 * dt.timedelta(hours=1), "past its refresh point"),  # half of a short validity
        (-2 * DAY, DAY, "has passed"),
    ],
)
def test_a_response_from_the_future_too_old_or_refreshed_late_is_not_current(world: World, this_update, validity, words) -> None:
    probe = world.probe("POST")
    der = world.response(probe, this_update=_now() + this_update, next_update=validity)
    result, detail = _results([_reply(probe, der)], world)["current"]
    assert result == "violation" and words in detail


# --- who signed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "rule", "result", "words"),
    [
        ({"nocheck": False}, "responder_nocheck", "violation", "id-pkix-ocsp-nocheck is missing"),
        ({"eku": (ExtendedKeyUsageOID.OCSP_SIGNING, ExtendedKeyUsageOID.SERVER_AUTH)}, "responder_eku", "violation", "serverAuth"),
        ({"eku": (ExtendedKeyUsageOID.SERVER_AUTH,)}, "responder_eku", "violation", "lacks id-kp-OCSPSigning"),
        ({"eku": ()}, "responder_eku", "violation", "lacks id-kp-OCSPSigning"),
        ({"digital_signature": False}, "responder_key_usage", "violation", "lacks digitalSignature"),
        ({"aia": True}, "responder_aia_crldp", "warning", "has authorityInfoAccess (not recommended)"),
        ({"crldp": True}, "responder_aia_crldp", "violation", "has cRLDistributionPoints"),
    ],
)
def test_the_delegated_responder_profile_is_checked(world: World, profile, rule, result, words) -> None:
    probe = world.probe("POST")
    der = world.response(probe, signer=world.delegated(**profile))
    found = _results([_reply(probe, der)], world)
    assert found[rule][0] == result and words in found[rule][1]
    assert found["signature"][0] == "ok"  # the key is the same: only the profile is wrong


def test_a_responder_certificate_of_another_ca_is_a_violation(world: World) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _cert("Other CA", other_key, None, other_key, ca=True)
    stranger = _cert("Check OCSP", world.responder_key, other_ca, other_key)
    probe = world.probe("POST")
    result, detail = _results([_reply(probe, world.response(probe, signer=stranger))], world)["responder"]
    assert result == "violation" and "is not issued by the CA" in detail


def test_a_ca_signed_response_is_noted_and_its_signature_checked(world: World) -> None:
    probe = world.probe("POST")
    signed = _results([_reply(probe, world.response(probe, by_ca=True))], world)
    assert signed["responder"] == ("note", "signed by the CA itself")
    assert signed["signature"][0] == "ok" and "responder_eku" not in signed
    tampered = _results([_reply(probe, world.response(probe, by_ca=True, tamper=True))], world)
    assert tampered["signature"] == ("violation", "the signature does not verify")


def test_a_response_whose_responder_id_names_no_certificate_at_hand_cannot_be_verified(world: World) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _cert("Other OCSP", other_key, world.ca, world.ca_key)
    probe = world.probe("POST")
    der = world.response(probe, signer=other, signer_key=other_key, include=[world.responder])
    found = _results([_reply(probe, der)], world)
    assert found["signature"] == ("violation", "cannot verify: the responderID names neither the CA nor a certificate in the response")
    assert found["responder"][0] == "violation"


# --- what was asked --------------------------------------------------------------------------------


def test_a_sha256_request_answered_with_a_sha1_cert_id_is_a_violation(world: World) -> None:
    probe = world.probe("POST", "sha256")
    result, detail = _results([_reply(probe, world.response(probe, answer_hash="sha1"))], world)["cert_id"]
    assert result == "violation" and detail == "asked with a sha256 CertID, answered with sha1"


@pytest.mark.parametrize(
    ("echo", "result", "detail"),
    [
        ("asked", "ok", "echoed"),
        (None, "note", "the nonce was ignored (RFC 5019 allows it: freshness by time only)"),
        (b"another nonce of 32 octets......", "violation", "the nonce returned differs from the one sent"),
    ],
)
def test_a_nonce_sent_is_echoed_or_ignored_never_changed(world: World, echo, result, detail) -> None:
    probe = world.probe("POST", nonce=b"n" * 32)
    assert _results([_reply(probe, world.response(probe, echo=echo))], world)["nonce"] == (result, detail)


def test_a_nonce_returned_unasked_is_a_warning(world: World) -> None:
    probe = world.probe("POST")
    assert _results([_reply(probe, world.response(probe, echo=b"unasked"))], world)["nonce"][0] == "warning"


@pytest.mark.parametrize(
    ("status", "result"),
    [(ocsp.OCSPCertStatus.GOOD, "violation"), (ocsp.OCSPCertStatus.UNKNOWN, "ok"), (ocsp.OCSPCertStatus.REVOKED, "ok")],
)
def test_an_unassigned_serial_is_never_good(world: World, status, result) -> None:
    probe = world.probe("POST", unassigned=True)
    found = _results([_reply(probe, world.response(probe, status=status))], world)
    assert found["unassigned"][0] == result
    assert "answered" not in found  # an unassigned serial need not be answered successfully


def test_an_unassigned_serial_may_be_answered_unauthorized_but_an_assigned_one_may_not(world: World) -> None:
    unauthorized = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER)
    never = _results([_reply(world.probe("POST", unassigned=True), unauthorized)], world)
    issued = _results([_reply(world.probe("POST"), unauthorized)], world)
    assert never["unassigned"] == ("ok", "responseStatus unauthorized")
    assert issued["answered"] == ("violation", "responseStatus unauthorized")


# --- HTTP ------------------------------------------------------------------------------------------


def test_get_refused_post_unreachable_and_a_wrong_content_type_are_violations(world: World) -> None:
    get, post = world.probe("GET"), world.probe("POST", "sha256")
    der = world.response(post)
    found = _results([Reply(get, _now(), 405, {}, b""), Reply(post, _now(), error="ConnectError: connection refused"),
                      _reply(world.probe("POST"), der, content_type="application/octet-stream")], world)  # fmt: skip
    assert found["get"] == ("violation", "HTTP 405")
    assert found["post"] == ("violation", "no HTTP answer: ConnectError: connection refused")
    assert found["content_type"] == ("violation", "Content-Type is 'application/octet-stream'")
    try_later = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(serialization.Encoding.DER)
    assert _results([Reply(get, _now(), 503, {}, try_later)], world)["get"] == ("violation", "HTTP 503 (responseStatus tryLater)")


def test_a_body_that_is_no_ocsp_response_is_a_violation(world: World) -> None:
    result, detail = _results([_reply(world.probe(), b"<html>hello</html>")], world)["answered"]
    assert result == "violation" and detail.startswith("not an OCSP response")


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"cache_control": None, "last_modified": None, "expires": None, "etag": None}, "no max-age, Last-Modified, Expires, ETag"),
        ({"cache_control": "no-cache, max-age=60"}, "no-cache on an authoritative response"),
        ({"cache_control": "max-age=864000, public"}, "reaches past nextUpdate"),
        ({"expires": "Mon, 01 Jan 2100 00:00:00 GMT"}, "is after nextUpdate"),
        ({"last_modified": "Mon, 01 Jan 2001 00:00:00 GMT"}, "is outside thisUpdate"),
        ({"expires": "tomorrow"}, "is not an HTTP date"),
    ],
)
def test_cache_headers_of_a_get_answer_must_be_there_and_agree_with_the_response(world: World, headers, words) -> None:
    probe = world.probe()
    result, detail = _results([_reply(probe, world.response(probe), **headers)], world)["cache_headers"]
    assert result == "violation" and words in detail


def test_cache_headers_of_a_final_response_or_an_absurd_max_age_are_judged(world: World) -> None:
    """nextUpdate 99991231235959Z (a final response, ETSI EN 319 411-2) and a max-age no date can
    hold are judged like any other, not an overflow."""
    probe = world.probe()
    this_update = _now().replace(microsecond=0)
    final = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)
    assert _results([_reply(probe, world.response(probe, this_update=this_update, next_update=final - this_update))],
                    world)["cache_headers"][0] == "ok"  # fmt: skip
    absurd = _reply(probe, world.response(probe), cache_control="max-age=99999999999999, public")
    result, detail = _results([absurd], world)["cache_headers"]
    assert result == "violation" and "reaches past nextUpdate" in detail


def test_cache_headers_are_not_asked_of_post_or_nonce_answers(world: World) -> None:
    post, nonce = world.probe("POST"), world.probe(nonce=b"x" * 32)
    bare = {"content-type": "application/ocsp-response", "cache-control": "no-store"}
    replies = [Reply(post, _now(), 200, bare, world.response(post)), Reply(nonce, _now(), 200, bare, world.response(nonce))]
    assert "cache_headers" not in _results(replies, world)


def test_etags_name_one_response_and_revalidation_is_answered(world: World) -> None:
    probe = world.probe()
    first, second = world.response(probe), world.response(probe)
    tag = _headers(first)["etag"]
    same_tag = _results([_reply(probe, first), _reply(probe, second, etag=tag)], world)
    assert same_tag["etag"] == ("violation", f"ETag {tag} names two different responses")
    revalidate = Probe(probe.serial_number, False, "GET", "sha1", None, probe.der, conditional=tag)
    not_modified = _results([_reply(probe, first), Reply(revalidate, _now(), 304, {"etag": tag}, b"")], world)
    assert not_modified["etag"] == ("ok", "If-None-Match answered 304 Not Modified")
    full_again = _results([_reply(probe, first), _reply(revalidate, first)], world)
    assert full_again["etag"][0] == "warning"
    re_signed = _results([_reply(probe, first), _reply(revalidate, second)], world)
    assert re_signed["etag"][0] == "ok"


def test_the_summary_gives_the_worst_result_its_answer_and_the_counts(world: World) -> None:
    good, bad = world.probe("POST"), world.probe("POST", "sha256")
    summaries = {s.rule.key: s for s in summarise(judge([_reply(good, world.response(good)),
                                                        _reply(bad, world.response(bad, next_update=30 * DAY))], world.ca))}  # fmt: skip
    validity = summaries["validity"]
    assert validity.result == "violation" and validity.probe == bad.label
    assert validity.counts == {"violation": 1, "ok": 1}
    assert summaries["size"].detail.endswith("bytes")
