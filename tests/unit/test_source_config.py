"""Configuration of sources and of the admin listener: values, errors naming file and key, JSON round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from certstatus.config import Settings, load_config
from certstatus.errors import ConfigError

CA = 'certificate = "ca.pem"\nsigner_certificate = "ocsp.pem"\nsigner_key = "ocsp.key"\n'

PUSH_CA = f"[ca.p]\n{CA}push = true\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "certstatus.toml"
    path.write_text('[server]\nlisten = "127.0.0.1:8080"\n' + text)
    return path


def test_every_source_key_is_read_and_survives_the_json_hand_over(tmp_path) -> None:
    (tmp_path / "token").write_text("x" * 32)
    path = _write(
        tmp_path,
        '[admin]\nlisten = "127.0.0.1:8081"\ntoken_file = "token"\n'
        f'[ca.web]\n{CA}crl = ["http://127.0.0.1/ca.crl", "ldap://127.0.0.1/cn=CA,o=Test"]\n'
        'refresh_interval = "2h"\nfetch_timeout = "5s"\nfetch_retries = 4\nmax_crl_bytes = 1048576\nfollow_redirects = "any"\n'
        'stale_grace = "30m"\non_stale = "serve"\nissued = "issued.d"\nissued_signed = true\npush = true\npush_issued = true\n'
        f'[ca.db]\n{CA}unknown_serials = "revoked"\n[ca.db.sql]\ndsn = "postgresql://u@127.0.0.1/ca"\n'
        'query = "SELECT status, t, r FROM c WHERE s = %(serial_hex)s"\ntimeout = "3s"\npool_size = 2\n',
    )
    settings = load_config(path)
    web, db = settings.cas
    assert web.crl == ("http://127.0.0.1/ca.crl", "ldap://127.0.0.1/cn=CA,o=Test")
    assert (web.refresh_interval, web.fetch_timeout, web.fetch_retries, web.max_crl_bytes) == (7200, 5.0, 4, 1048576)
    assert (web.stale_grace, web.on_stale, web.issued_signed, web.push, web.push_issued) == (1800, "serve", True, True, True)
    assert web.issued == tmp_path / "issued.d"
    assert (web.follow_redirects, db.follow_redirects) == ("any", "same-origin")
    assert (db.sql.dsn, db.sql.timeout, db.sql.pool_size, db.knows_issuance) == ("postgresql://u@127.0.0.1/ca", 3.0, 2, True)
    assert (settings.admin.port, settings.admin.token_file) == (8081, tmp_path / "token")
    assert Settings.from_json(settings.to_json()) == settings


@pytest.mark.parametrize(
    "text, key, problem",
    [
        (PUSH_CA + '[admin]\nlisten = "127.0.0.1:8081"\n', "admin", "has no authentication"),
        (PUSH_CA + '[admin]\nlisten = "127.0.0.1:8080"\ntoken_file = "t"\n', "admin.listen", "uses the OCSP port"),
        (PUSH_CA + '[admin]\ntoken_file = "t"\nclient_ca = "c.pem"\n', "admin.client_ca", "client certificates need TLS"),
        (f'[ca.a]\n{CA}push_issued = true\n', "ca.a.push_issued", "needs push = true"),
        (f'[ca.a]\n{CA}crl = "a.crl"\non_stale = "maybe"\n', "ca.a.on_stale", "is not tryLater or serve"),
        (f'[ca.a]\n{CA}crl = "a.crl"\nrefresh_interval = "5s"\n', "ca.a.refresh_interval", "is under 10 s"),
        (f'[ca.a]\n{CA}crl = "a.crl"\nfollow_redirects = "all"\n', "ca.a.follow_redirects", "is not same-origin, any or none"),
        (f'[ca.a]\n{CA}crl = "a.crl"\nfetch_retries = 99\n', "ca.a.fetch_retries", "from 0 to 10"),
        (f'[ca.a]\n{CA}[ca.a.sql]\ndsn = "mysql://x"\nquery = "%(serial)s"\n', "ca.a.sql.dsn", "is not a PostgreSQL DSN"),
        (f'[ca.a]\n{CA}[ca.a.sql]\ndsn = "postgresql://x"\nquery = "SELECT 1"\n', "ca.a.sql.query", "must be an SQL query using"),
        (f'[ca.a]\n{CA}crl = "a.crl"\n[ca.a.sql]\ndsn = "postgresql://x"\nquery = "%(serial)s"\n', "ca.a.sql", "answers alone"),
        (f'[ca.a]\n{CA}', "ca.a", "has no source of status"),
    ],
)
def test_bad_source_settings_name_the_key(tmp_path, text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert caught.value.key == key and problem in caught.value.problem


def test_push_only_ca_is_valid(tmp_path) -> None:
    (ca,) = load_config(_write(tmp_path, f"[ca.a]\n{CA}push = true\n")).cas
    assert ca.push and not ca.knows_issuance
