"""Per-CA policies operators of CAs expect: nonce, never-issued serials, certificates sent.

* ``nonce = "echo" | "ignore" | "require"`` (RFC 9654): on the responder's fast path, through
  the handler's pipeline, and in cached mode (where an ignored nonce makes the pre-signed answer fit);
* ``unknown_serials = "unauthorized"``: a serial the CA never issued gets no certStatus at all, in
  every mode (fast path, pipeline with several CertIDs, precomputed miss, cached);
* ``include_signer_chain``: a delegated responder's responses carry its certificate only — never
  the CA's own certificate, whatever else its signer file holds — unless the chain is asked for.

Requests go through :class:`~certstatus.server.connection.HttpProtocol` as bytes (tests/edge_wire.py).
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from certstatus.config import ConfigError
from certstatus.config import ca_settings as parse_ca_settings
from certstatus.demo_pki import DEMO_PASSWORD
from certstatus.signing.keys import load_certificates
from tests.edge_wire import NONCE, post, split
from tests.precomputed_helpers import answer, copy_pki, multi_request_der, request_der
from tests.unit import test_edge_cache, test_fast_live

NEVER_ISSUED = 0x7FFF_0001


@pytest.fixture
def live(demo_pki_rsa, tmp_path):
    """Workers of a live CA with the responder's fast path (RSA: deterministic signatures)."""
    made = []

    def make(**changes) -> test_fast_live.Worker:
        folder = tmp_path / f"live{len(made)}"
        folder.mkdir()
        made.append(test_fast_live.Worker(copy_pki(demo_pki_rsa, folder / "pki"), folder, **changes))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture
def shared(demo_pki, tmp_path):
    """Workers of a precomputed or cached CA, generated, with the edge answer cache."""
    made = []

    def make(mode: str, **changes) -> test_edge_cache.Worker:
        folder = tmp_path / f"shared{len(made)}"
        folder.mkdir()
        made.append(test_edge_cache.Worker(copy_pki(demo_pki, folder / "pki"), folder, mode, **changes))
        return made[-1]

    yield make
    for item in made:
        item.close()


def _parsed(http_response: bytes) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(split(http_response)[2])


def _nonce(response: ocsp.OCSPResponse) -> bytes | None:
    for extension in response.extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            return extension.value.nonce
    return None


# --- nonce ----------------------------------------------------------------------------------


def test_ignore_answers_without_nonce_and_as_a_shareable_answer_on_the_fast_path(live):
    w = live(nonce="ignore")
    response = w.send(post(request_der(w.pki, "good", nonce=NONCE)))
    assert w.counted() == 1  # the fast path answered
    assert response == w.send(post(request_der(w.pki, "good", nonce=NONCE)), fast=False)  # as the handler does
    parsed = _parsed(response)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD and _nonce(parsed) is None
    assert split(response)[1]["cache-control"].endswith("public, no-transform, must-revalidate")


@pytest.mark.parametrize("fast", [True, False])
def test_require_refuses_a_request_without_nonce_with_unauthorized(live, fast):
    w = live(nonce="require")
    refused = _parsed(w.send(post(request_der(w.pki, "good")), fast=fast))
    assert refused.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert w.counted() == 0  # the handler answered, and logged why
    echoed = _parsed(w.send(post(request_der(w.pki, "good", nonce=NONCE)), fast=fast))
    assert echoed.certificate_status is ocsp.OCSPCertStatus.GOOD and _nonce(echoed) == NONCE


def test_echo_is_the_default_of_live_and_cached_mode(live):
    w = live()
    assert _nonce(_parsed(w.send(post(request_der(w.pki, "good", nonce=NONCE))))) == NONCE
    assert _nonce(_parsed(w.send(post(request_der(w.pki, "good"))))) is None


def test_cached_mode_with_require_signs_nonce_requests_and_refuses_the_others(shared):
    w = shared("cached", nonce="require")
    assert _parsed(w.send(post(request_der(w.pki, "good")))).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert _nonce(_parsed(w.send(post(request_der(w.pki, "good", nonce=NONCE))))) == NONCE


def test_cached_mode_with_ignore_serves_the_pre_signed_answer_to_a_nonce_request(shared):
    w = shared("cached", nonce="ignore")
    got = answer(w.app, request_der(w.pki, "good", nonce=NONCE), w.clock)
    assert got.source == "precomputed" and not got.has_nonce


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"mode": "precomputed", "nonce": "require"}, "cannot be kept in precomputed mode"),
        ({"mode": "precomputed", "nonce": "echo"}, "cannot be kept in precomputed mode"),
        ({"nonce": "always"}, "is not echo, ignore or require"),
        ({"unknown_serials": "unauthorized"}, "needs to know which serials were issued"),
        ({"unknown_serials": "refuse", "index": "index.txt"}, "is not unknown, revoked or unauthorized"),
        ({"include_signer_chain": "yes"}, "is not true or false"),
    ],
)
def test_policy_settings_errors_name_the_key_and_the_fix(tmp_path, changes, message):
    table = {"certificate": "ca.pem", "signer_certificate": "o.pem", "signer_key": "o.key", "crl": ["c.crl"], **changes}
    with pytest.raises(ConfigError, match=message) as error:
        parse_ca_settings("ca1", table, where="test.toml", base=tmp_path)
    assert error.value.key.startswith("ca.ca1.") and error.value.fix


def test_the_nonce_policy_follows_the_mode_unless_set(tmp_path):
    table = {"certificate": "ca.pem", "signer_certificate": "o.pem", "signer_key": "o.key", "index": "index.txt"}
    for mode, expected in (("live", "echo"), ("cached", "echo"), ("precomputed", "ignore")):
        assert parse_ca_settings("ca1", {**table, "mode": mode}, where="t.toml", base=tmp_path).nonce_policy == expected
    assert parse_ca_settings("ca1", {**table, "mode": "cached", "nonce": "ignore"}, where="t.toml", base=tmp_path).nonce_policy == "ignore"


# --- never-issued serials ------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
def test_a_never_issued_serial_is_refused_unauthorized_and_issued_ones_answered(live, fast):
    w = live(unknown_serials="unauthorized")
    assert _parsed(w.send(post(request_der(w.pki, NEVER_ISSUED)), fast=fast)).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert _parsed(w.send(post(request_der(w.pki, "good")), fast=fast)).certificate_status is ocsp.OCSPCertStatus.GOOD
    revoked = _parsed(w.send(post(request_der(w.pki, "revoked-superseded")), fast=fast))
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED


def test_several_certids_with_a_never_issued_serial_are_refused_whole(live):
    w = live(unknown_serials="unauthorized")
    several = multi_request_der(request_der(w.pki, "good"), request_der(w.pki, NEVER_ISSUED))
    assert _parsed(w.send(post(several))).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    issued = multi_request_der(request_der(w.pki, "good"), request_der(w.pki, "revoked-superseded"))
    assert _parsed(w.send(post(issued))).response_status is ocsp.OCSPResponseStatus.SUCCESSFUL


@pytest.mark.parametrize("mode", ["precomputed", "cached"])
def test_a_never_issued_serial_is_refused_in_precomputed_and_cached_mode(shared, mode):
    w = shared(mode, unknown_serials="unauthorized")
    for _ in range(2):  # nothing cached: the second is refused again
        assert _parsed(w.send(post(request_der(w.pki, NEVER_ISSUED)))).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert _parsed(w.send(post(request_der(w.pki, "good")))).certificate_status is ocsp.OCSPCertStatus.GOOD


# --- certificates in the response ------------------------------------------------------------------


def test_a_pkcs12_signer_sends_its_certificate_only_never_the_ca_certificate(live, demo_pki_rsa, tmp_path):
    """The demo PKCS#12 holds the responder key, its certificate and the CA certificate: the response
    carries the responder certificate alone."""
    password = tmp_path / "password.txt"
    password.write_bytes(DEMO_PASSWORD + b"\n")
    password.chmod(0o600)
    p12 = demo_pki_rsa.ocsp_p12
    w = live(signer_key=p12, signer_certificate=p12, signer_password_file=password)
    response = _parsed(w.send(post(request_der(w.pki, "good"))))
    assert response.certificates == load_certificates(demo_pki_rsa.ocsp_cert)


@pytest.mark.parametrize("mode", ["live", "precomputed"])
def test_include_signer_chain_adds_the_ca_certificate(shared, demo_pki, mode):
    w = shared(mode, include_signer_chain=True)
    response = _parsed(w.send(post(request_der(w.pki, "good"))))
    assert response.certificates == [*load_certificates(demo_pki.ocsp_cert), *load_certificates(demo_pki.ca_cert)]


def test_include_signer_chain_leaves_a_self_signed_root_out(shared, demo_pki):
    """The CA's certificate file names the CA and its root (chain.pem): the root is the client's trust
    anchor and is not sent."""
    w = shared("live", include_signer_chain=True, certificate=demo_pki.chain)
    response = _parsed(w.send(post(request_der(w.pki, "good"))))
    assert response.certificates == [*load_certificates(demo_pki.ocsp_cert), *load_certificates(demo_pki.ca_cert)]
    assert load_certificates(demo_pki.root_cert)[0] not in response.certificates


def test_a_ca_signed_response_carries_no_certificate_even_with_the_chain_asked(shared, demo_pki):
    w = shared("live", include_signer_chain=True, signer_certificate=demo_pki.ca_cert, signer_key=demo_pki.ca_key)
    assert _parsed(w.send(post(request_der(w.pki, "good")))).certificates == []
