"""Pushed status: the admin API (sans-IO and on a real TLS listener) and the revoke/unrevoke/issue CLI."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.admin.api import AdminApi
from certstatus.app import build_application, prepare
from certstatus.clock import SystemClock
from certstatus.config import load_config
from certstatus.demo_pki import DemoPki
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.refresh import register_targets
from certstatus.store.factory import open_configured_store
from tests.sources_helpers import T0, crl_der, ocsp_query, revoked
from tests.servers import CERTSTATUS

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture()
def config(demo_pki: DemoPki, demo_pki_rsa: DemoPki, tmp_path) -> Path:
    return write_config(tmp_path, demo_pki, demo_pki_rsa)


def write_config(tmp_path: Path, demo_pki: DemoPki, demo_pki_rsa: DemoPki) -> Path:
    """A config with a push-fed CA (demo_pki), a CRL-fed CA without pushes (demo_pki_rsa), a token file."""
    (tmp_path / "admin.token").write_text(TOKEN + "\n")
    (tmp_path / "admin.token").chmod(0o600)
    path = tmp_path / "certstatus.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:18080"
database = "{tmp_path / 'store.sqlite3'}"
[admin]
listen = "127.0.0.1:18081"
token_file = "admin.token"
[ca.pushed]
certificate = "{demo_pki.ca_cert}"
signer_certificate = "{demo_pki.ocsp_cert}"
signer_key = "{demo_pki.ocsp_key}"
push = true
path = "/pushed"
[ca.crl-only]
certificate = "{demo_pki_rsa.ca_cert}"
signer_certificate = "{demo_pki_rsa.ocsp_cert}"
signer_key = "{demo_pki_rsa.ocsp_key}"
crl = "{demo_pki_rsa.crl}"
path = "/crl-only"
"""
    )
    return path


def _api(settings, feed=None) -> AdminApi:
    return AdminApi(
        lambda: open_configured_store(settings), lambda store: register_targets(store, settings.cas), SystemClock(),
        token=TOKEN, feed=feed,
    )  # fmt: skip


AUTH = {"authorization": f"Bearer {TOKEN}"}
JSON = {**AUTH, "content-type": "application/json"}
CRL = {**AUTH, "content-type": "application/pkix-crl"}


def _post(api: AdminApi, path: str, payload, headers=JSON):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return api.handle("POST", path, headers, body)


def test_pushed_revocation_is_served_at_once_and_notified(config: Path, demo_pki: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    app = build_application(settings)
    serial = demo_pki.serials["good"]
    assert ocsp_query(app, demo_pki, serial).certificate_status is OCSPCertStatus.GOOD
    seen: list = []
    feed = ChangeFeed()
    feed.subscribe(lambda issuer_id, serials: seen.append(serials))
    api = _api(settings, feed)
    answer = _post(api, "/v1/ca/pushed/revoke", {"serial": f"{serial:x}", "reason": "keyCompromise", "revocation_time": "2026-01-02T03:04:05Z"})
    assert (answer.status, answer.body) == (200, {"ca": "pushed", "applied": 1, "changed": 1})
    response = ocsp_query(app, demo_pki, serial)
    assert response.certificate_status is OCSPCertStatus.REVOKED
    assert response.revocation_reason is x509.ReasonFlags.key_compromise
    assert response.revocation_time_utc == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert seen == [(serial,)]  # the hook precomputed mode re-signs from
    assert _post(api, "/v1/ca/pushed/unrevoke", {"serial": f"0x{serial:X}"}).status == 200
    assert ocsp_query(app, demo_pki, serial).certificate_status is OCSPCertStatus.GOOD


def test_batch_is_one_transaction_and_a_bad_item_writes_nothing(config: Path, demo_pki: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    api = _api(settings)
    bad = _post(api, "/v1/ca/pushed/changes", {"changes": [{"action": "revoke", "serial": "1A"}, {"action": "revoke", "serial": "xyz"}]})
    assert bad.status == 400 and "serial 'xyz' is not a hexadecimal serial" in bad.body["error"]
    store = open_configured_store(settings)
    issuer_id = register_targets(store, settings.cas)["pushed"].issuer_id
    assert store.lookup(issuer_id, 0x1A) is None
    ok = _post(api, "/v1/ca/pushed/issue", {"serials": ["1A", "1B", "1c"]})
    assert ok.body["applied"] == 3
    assert all(store.lookup(issuer_id, s).issued for s in (0x1A, 0x1B, 0x1C))
    store.close()


@pytest.mark.parametrize(
    "path, payload, headers, status, message",
    [
        ("/v1/ca/nobody/revoke", {"serial": "1"}, JSON, 404, "no CA named 'nobody'"),
        ("/v1/ca/crl-only/revoke", {"serial": "1"}, JSON, 403, "does not accept pushes"),
        ("/v1/ca/pushed/revoke", {"serial": "12G"}, JSON, 400, "not a hexadecimal serial"),
        ("/v1/ca/pushed/revoke", {"serial": "1", "reason": "sloppy"}, JSON, 400, "not an RFC 5280 reason"),
        ("/v1/ca/pushed/revoke", {"serial": "1", "revocation_time": "2026-01-02"}, JSON, 400, "has no time zone"),
        ("/v1/ca/pushed/revoke", b"{not json", JSON, 400, "not JSON"),
        ("/v1/ca/pushed/revoke", {"serial": "1"}, {"authorization": "Bearer wrong", "content-type": "application/json"}, 401, "authenticate"),
        ("/v1/ca/pushed/revoke", {"serial": "1"}, {"content-type": "application/json"}, 401, "authenticate"),
        ("/v1/nothing", {}, JSON, 404, "no such admin endpoint"),
    ],
)
def test_bad_pushes_get_a_clear_error(config: Path, path, payload, headers, status, message) -> None:
    settings = load_config(config)
    prepare(settings)
    answer = _post(_api(settings), path, payload, headers)
    assert answer.status == status and message in answer.body["error"]


def test_crl_upload_imports_and_a_refused_one_is_422(config: Path, demo_pki: DemoPki, demo_pki_rsa: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    api = _api(settings)
    newer = crl_der(demo_pki, [revoked(0x55)], number=2, this_update=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    assert _post(api, "/v1/ca/pushed/crl", newer, CRL).body["entries"] == 1
    older = crl_der(demo_pki, [], number=1)
    refused = _post(api, "/v1/ca/pushed/crl", older, CRL)
    assert refused.status == 422 and "older than the imported 2" in refused.body["error"]
    sources = api.handle("GET", "/v1/sources", AUTH, b"").body["sources"]
    assert {(s["ca"], s["kind"], s["crl_number"]) for s in sources} >= {("pushed", "crl", 2), ("crl-only", "crl", 1)}


def test_crl_upload_to_a_ca_without_push_is_403_and_imports_nothing(config: Path, demo_pki_rsa: DemoPki) -> None:
    """``push = false`` closes every way to write a CA's data from outside, CRL uploads included."""
    settings = load_config(config)
    prepare(settings)
    api = _api(settings)
    newer = crl_der(demo_pki_rsa, [revoked(0x55)], number=2, this_update=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    refused = _post(api, "/v1/ca/crl-only/crl", newer, CRL)
    assert refused.status == 403 and "does not accept pushes" in refused.body["error"]
    sources = api.handle("GET", "/v1/sources", AUTH, b"").body["sources"]
    assert [s["crl_number"] for s in sources if s["ca"] == "crl-only"] == [1]  # the configured CRL, still


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CERTSTATUS, *args], capture_output=True, text=True, timeout=60)


def test_cli_push_commands_and_their_errors(config: Path, demo_pki: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    app = build_application(settings)
    serial = demo_pki.serials["good2"]
    done = _cli("revoke", "pushed", f"{serial:x}", "--reason", "superseded", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert ocsp_query(app, demo_pki, serial).revocation_reason is x509.ReasonFlags.superseded
    assert _cli("unrevoke", "pushed", f"{serial:x}", "--config", str(config)).returncode == 0
    assert ocsp_query(app, demo_pki, serial).certificate_status is OCSPCertStatus.GOOD
    assert _cli("issue", "pushed", "aa", "bb", "--config", str(config)).returncode == 0

    unknown = _cli("revoke", "nobody", "1", "--config", str(config))
    malformed = _cli("revoke", "pushed", "not-hex", "--config", str(config))
    refused = _cli("revoke", "crl-only", "1", "--config", str(config))
    for result, text in ((unknown, "no CA named 'nobody'"), (malformed, "not a hexadecimal serial"), (refused, "does not accept pushes")):
        assert result.returncode == 2 and text in " ".join(result.stderr.split()) and "Traceback" not in result.stderr


# --- what the API accepts: media types, times, JSON, serial sizes -----------------------------


@pytest.mark.parametrize(
    "path, content_type, payload",
    [
        ("/v1/ca/pushed/revoke", None, {"serial": "1"}),
        ("/v1/ca/pushed/revoke", "text/plain", {"serial": "1"}),  # what a cross-site form or fetch() may send
        ("/v1/ca/pushed/changes", "application/x-www-form-urlencoded", {"changes": [{"action": "revoke", "serial": "1"}]}),
        ("/v1/reload", "multipart/form-data; boundary=x", b""),
        ("/v1/ca/pushed/crl", "application/json", b"0\x00"),
        ("/v1/ca/pushed/revoke", "application/pkix-crl", {"serial": "1"}),
    ],
)
def test_admin_posts_without_their_media_type_are_415_and_write_nothing(config: Path, path, content_type, payload) -> None:
    """Every POST names its media type (application/json; application/pkix-crl for CRLs), which a
    browser cannot send across sites without a CORS preflight: no CSRF through an operator's browser."""
    settings = load_config(config)
    prepare(settings)
    api = _api(settings)
    headers = AUTH if content_type is None else {**AUTH, "content-type": content_type}
    answer = _post(api, path, payload, headers)
    assert answer.status == 415 and "Content-Type: application/" in answer.body["error"]
    store = open_configured_store(settings)
    assert store.lookup(register_targets(store, settings.cas)["pushed"].issuer_id, 1) is None
    store.close()
    with_parameter = _post(api, "/v1/ca/pushed/revoke", {"serial": "1"}, {**AUTH, "content-type": "Application/JSON; charset=utf-8"})
    assert with_parameter.status == 200


@pytest.mark.parametrize(
    "path, payload, message",
    [
        ("/v1/ca/pushed/revoke", {"serial": "1", "revocation_time": "9999-12-31T23:59:59-01:00"}, "out of range"),
        ("/v1/ca/pushed/revoke", {"serial": "1", "revocation_time": "0001-01-01T00:00:00+01:00"}, "out of range"),
        ("/v1/ca/pushed/revoke", {"serial": "1", "revocation_time": "0001-01-01T00:00:00Z"}, "out of range"),
        ("/v1/ca/pushed/revoke", {"serial": "1", "invalidity_date": "1949-12-31T23:59:59Z"}, "out of range"),
        ("/v1/ca/pushed/revoke", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("/v1/ca/pushed/issue", b'{"serials": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        ("/v1/ca/pushed/changes", b'{"changes": [{"action": "revoke", "serial": "1", "reason": ' + b"9" * 5000 + b"}]}", "not JSON"),
        ("/v1/ca/pushed/revoke", {"serial": "1" * 100_000}, "at most 20"),
    ],
)
def test_out_of_range_times_and_huge_or_deep_json_are_400_not_500(config: Path, path, payload, message) -> None:
    settings = load_config(config)
    prepare(settings)
    answer = _post(_api(settings), path, payload)
    assert answer.status == 400 and message in answer.body["error"], answer.body
    assert len(answer.encode()) < 1000  # the error does not echo the input back


def test_a_json_body_over_the_limit_is_413_before_it_is_read(config: Path) -> None:
    settings = load_config(config)
    prepare(settings)
    api = _api(settings)
    headers = {**JSON, "content-length": str(api.max_json_bytes + 1)}
    answer = api.admit("POST", "/v1/ca/pushed/issue", headers)  # the head alone decides
    assert answer is not None and answer.status == 413


def test_times_at_the_ends_of_the_range_are_served_as_pushed(config: Path, demo_pki: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    app = build_application(settings)
    api = _api(settings)
    ends = ((0x71, "1950-01-01T00:00:00Z", dt.datetime(1950, 1, 1)), (0x72, "9999-12-31T23:59:59Z", dt.datetime(9999, 12, 31, 23, 59, 59)))
    for serial, text, when in ends:
        assert _post(api, "/v1/ca/pushed/revoke", {"serial": f"{serial:x}", "revocation_time": text}).status == 200
        assert ocsp_query(app, demo_pki, serial).revocation_time_utc == when.replace(tzinfo=dt.timezone.utc)


def test_serials_longer_than_20_octets_are_refused_in_pushes_but_answered_unknown(config: Path, demo_pki: DemoPki) -> None:
    """RFC 5280 §4.1.2.2: a CA uses at most 20 octets. A push of a longer serial is a mistake and is
    refused (admin API and CLI); a request for one is still answered: unknown, as never issued."""
    config.write_text(config.read_text().replace("push = true\n", "push = true\npush_issued = true\n"))
    settings = load_config(config)
    prepare(settings)
    app = build_application(settings)
    longest, too_long = (1 << 159) - 1, 1 << 159  # 20 and 21 octets of DER INTEGER content
    api = _api(settings)
    refused = _post(api, "/v1/ca/pushed/issue", {"serials": [f"{too_long:x}"]})
    assert refused.status == 400 and "21 octets long" in refused.body["error"] and "RFC 5280" in refused.body["error"]
    cli = _cli("revoke", "pushed", f"{too_long:x}", "--config", str(config))
    assert cli.returncode == 2 and "21 octets long" in " ".join(cli.stderr.split()), cli.stderr
    assert _post(api, "/v1/ca/pushed/issue", {"serials": [f"{longest:x}"]}).status == 200
    assert ocsp_query(app, demo_pki, longest).certificate_status is OCSPCertStatus.GOOD
    assert ocsp_query(app, demo_pki, too_long).certificate_status is OCSPCertStatus.UNKNOWN


# --- unrevoke says what changed -----------------------------------------------------------------


def test_unrevoke_reports_what_changed_and_which_source_still_revokes(config: Path, demo_pki: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    api = _api(settings)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    crl = crl_der(demo_pki, [revoked(0x55, reason=x509.ReasonFlags.key_compromise)], number=2, this_update=now)
    assert _post(api, "/v1/ca/pushed/crl", crl, CRL).status == 200
    assert _post(api, "/v1/ca/pushed/changes", {"changes": [{"action": "revoke", "serial": s} for s in ("55", "56")]}).status == 200

    pushed_only = _post(api, "/v1/ca/pushed/unrevoke", {"serial": "56"}).body
    assert pushed_only["changed"] == 1
    assert pushed_only["unrevoked"] == [{"serial": "56", "changed": True, "status": "good", "extended_revoked": False, "revoked_by": []}]
    [again] = _post(api, "/v1/ca/pushed/unrevoke", {"serial": "56"}).body["unrevoked"]
    assert again["changed"] is False and again["status"] == "good"
    [never] = _post(api, "/v1/ca/pushed/unrevoke", {"serial": "1001"}).body["unrevoked"]
    assert never["changed"] is False and never["revoked_by"] == []
    [listed] = _post(api, "/v1/ca/pushed/unrevoke", {"serial": "55"}).body["unrevoked"]
    assert listed["changed"] is True and listed["status"] == "revoked"
    assert listed["revoked_by"] == [{"source": "crl", "origin": "admin upload for CA pushed",
                                     "revocation_time": f"{T0 - dt.timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}", "reason": "keyCompromise"}]  # fmt: skip


def test_cli_unrevoke_says_what_changed_and_fails_when_the_serial_stays_revoked_or_nothing_changed(config: Path, demo_pki: DemoPki) -> None:
    settings = load_config(config)
    prepare(settings)
    api = _api(settings)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    assert _post(api, "/v1/ca/pushed/crl", crl_der(demo_pki, [revoked(0x55)], number=2, this_update=now), CRL).status == 200
    assert _post(api, "/v1/ca/pushed/changes", {"changes": [{"action": "revoke", "serial": s} for s in ("55", "56")]}).status == 200
    cases = [
        ("56", 0, "removed the pushed revocation of 56 of CA pushed; it is answered good."),
        ("56", 1, "nothing changed: 56 of CA pushed has no pushed revocation; it is answered good."),
        ("1001", 1, "nothing changed: 1001 of CA pushed has no pushed revocation"),
        ("55", 1, "removed the pushed revocation of 55 of CA pushed, but it is still revoked by the crl admin upload for CA pushed"),
    ]
    for serial, code, words in cases:
        done = _cli("unrevoke", "pushed", serial, "--config", str(config))
        assert done.returncode == code and words in " ".join(done.stdout.split()), (serial, done.stdout, done.stderr)
