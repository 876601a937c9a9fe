"""The command line turns options into the same Settings as a config file."""

from __future__ import annotations

from pathlib import Path

from certstatus import cli
from certstatus.demo_pki import DemoPki


def _opts(*args: str) -> dict:
    """The option values click parses from ``certstatus serve ARGS`` (defaults included)."""
    with cli.main.commands["serve"].make_context("serve", list(args)) as ctx:
        return dict(ctx.params)


def _config(tmp_path: Path, demo_pki: DemoPki) -> Path:
    config = tmp_path / "certstatus.toml"
    config.write_text(
        "[server]\n"
        'listen = "127.0.0.1:9001"\n'
        'database = "from-file.sqlite3"\n'
        "[ca.demo]\n"
        f'certificate = "{demo_pki.ca_cert}"\n'
        f'index = "{demo_pki.index}"\n'
        f'signer_certificate = "{demo_pki.ocsp_cert}"\n'
        f'signer_key = "{demo_pki.ocsp_key}"\n'
    )
    return config


def test_listen_and_db_given_with_config_override_the_file(tmp_path: Path, demo_pki: DemoPki) -> None:
    config = _config(tmp_path, demo_pki)
    settings = cli._settings(_opts("--config", str(config), "--listen", "127.0.0.1:9555", "--db", str(tmp_path / "cli.sqlite3")))

    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 9555)
    assert settings.server.database == tmp_path / "cli.sqlite3"


def test_config_values_stand_when_no_option_is_given(tmp_path: Path, demo_pki: DemoPki) -> None:
    settings = cli._settings(_opts("--config", str(_config(tmp_path, demo_pki))))

    assert settings.server.port == 9001
    assert settings.server.database == tmp_path / "from-file.sqlite3"


def test_single_ca_form_uses_the_documented_defaults(demo_pki: DemoPki) -> None:
    settings = cli._settings(
        _opts(
            "--issuer", str(demo_pki.ca_cert), "--index", str(demo_pki.index),
            "--signer-cert", str(demo_pki.ocsp_cert), "--signer-key", str(demo_pki.ocsp_key),
        )
    )

    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.server.database == Path("certstatus.sqlite3")
