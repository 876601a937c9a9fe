"""`[server] database` / `--db`: a postgresql:// URI selects PostgreSQL, a path selects SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from certstatus.config import Settings, database_setting, load_config
from certstatus.errors import ConfigError
from certstatus.store.dsn import redact

DSN = "postgresql://certstatus@db.example:5432/ocsp?options=-csearch_path%3Docsp"


def _config(tmp_path: Path, database: str) -> Path:
    path = tmp_path / "certstatus.toml"
    path.write_text(
        f'[server]\ndatabase = "{database}"\n\n'
        '[ca.one]\ncertificate = "ca.pem"\ncrl = ["ca.crl"]\nsigner_certificate = "o.pem"\nsigner_key = "o.key"\n'
    )
    return path


def test_a_dsn_is_kept_as_a_string_and_survives_the_trip_to_workers(tmp_path: Path) -> None:
    settings = load_config(_config(tmp_path, DSN))
    assert settings.server.database == DSN
    assert Settings.from_json(settings.to_json()).server.database == DSN
    assert settings.server.where == str(tmp_path / "certstatus.toml")


def test_a_path_is_resolved_against_the_config_file(tmp_path: Path) -> None:
    settings = load_config(_config(tmp_path, "store.sqlite3"))
    assert settings.server.database == tmp_path / "store.sqlite3"
    assert Settings.from_json(settings.to_json()).server.database == tmp_path / "store.sqlite3"


def test_an_invalid_dsn_names_the_file_and_key(tmp_path: Path) -> None:
    config = _config(tmp_path, "postgresql://db.example/ocsp?sslmode=sometimes&bogus=1")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert info.value.file == str(config) and info.value.key == "server.database"
    assert "not a valid PostgreSQL URI" in info.value.problem


def test_command_line_db_takes_a_dsn() -> None:
    assert database_setting(DSN, base=Path("."), file="command line", key="--db") == DSN
    with pytest.raises(ConfigError, match="--db"):
        database_setting("postgres://h/d?nonsense=1", base=Path("."), file="command line", key="--db")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:pw@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("postgresql://u@h/d?password=pw&sslmode=require", "postgresql://u@h/d?password=***&sslmode=require"),
        ("postgresql://h/d", "postgresql://h/d"),
        ("postgres://u:p@ss:w0rd@h/d", "postgres://u:***@h/d"),  # an "@" left unencoded in the password
        ("lost postgresql://u:pw@h/d: refused; retrying", "lost postgresql://u:***@h/d: refused; retrying"),
        ('missing "]" in URI: "postgresql://u:pw@[::1/d"', 'missing "]" in URI: "postgresql://u:***@[::1/d"'),
        ("host=db user=u password=pw dbname=d", "host=db user=u password=*** dbname=d"),
        ("host=db password = 'p w\\'x' dbname=d", "host=db password = *** dbname=d"),
        ("password authentication failed for user \"u\"", "password authentication failed for user \"u\""),
        ("postgresq://u:pw@h/d is not a PostgreSQL DSN", "postgresq://u:***@h/d is not a PostgreSQL DSN"),
        ("fetch https://crl:pw@ca.example/x.crl: 404", "fetch https://crl:***@ca.example/x.crl: 404"),
        ("at 12:30 on host:5432", "at 12:30 on host:5432"),
    ],
)
def test_passwords_never_reach_messages(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    "dsn", ["postgresql://u:s3cret@[::1/d", "postgresql://u:s3c%zzret@h/d", "postgresql://u@h/d?password=s3cret&bogus=1"]
)
def test_a_dsn_libpq_refuses_is_named_without_its_password(dsn: str) -> None:
    with pytest.raises(ConfigError) as refused:
        database_setting(dsn, base=Path("."), file="command line", key="--db")
    assert "not a valid PostgreSQL URI" in str(refused.value) and "s3c" not in str(refused.value), refused.value


def test_db_option_with_config_overrides_the_file_with_a_dsn(tmp_path: Path) -> None:
    from certstatus.cli.settings import settings_from_options

    config = _config(tmp_path, "store.sqlite3")
    opts = {"config": str(config), "issuer": None, "workers": 0, "listen": None, "db": DSN}
    settings = settings_from_options(opts)
    assert settings.server.database == DSN and settings.server.database_key == "--db"
