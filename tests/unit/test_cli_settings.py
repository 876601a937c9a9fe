"""The command line turns options into the same Settings as a config file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from certstatus import cli
from certstatus.cli.settings import settings_from_options
from certstatus.demo_pki import DemoPki


def _opts(*args: str) -> dict:
    """The option values click parses from ``certstatus serve ARGS`` (defaults included)."""
    # as under `certstatus` (click keeps the help option a command first made: it must be main's)
    with cli.main.commands["serve"].make_context("serve", list(args), help_option_names=["-h", "--help"]) as ctx:
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
    settings = settings_from_options(_opts("--config", str(config), "--listen", "127.0.0.1:9555", "--db", str(tmp_path / "cli.sqlite3")))

    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 9555)
    assert settings.server.database == tmp_path / "cli.sqlite3"


def test_config_values_stand_when_no_option_is_given(tmp_path: Path, demo_pki: DemoPki) -> None:
    settings = settings_from_options(_opts("--config", str(_config(tmp_path, demo_pki))))

    assert settings.server.port == 9001
    assert settings.server.database == tmp_path / "from-file.sqlite3"


def test_single_ca_form_uses_the_documented_defaults(demo_pki: DemoPki) -> None:
    settings = settings_from_options(
        _opts(
            "--issuer", str(demo_pki.ca_cert), "--index", str(demo_pki.index),
            "--signer-cert", str(demo_pki.ocsp_cert), "--signer-key", str(demo_pki.ocsp_key),
        )
    )

    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.server.database == Path("certstatus.sqlite3")


def test_options_given_with_config_keep_the_files_other_sections(tmp_path: Path, demo_pki: DemoPki) -> None:
    config = _config(tmp_path, demo_pki)
    token = tmp_path / "admin.token"
    token.write_text("x" * 32)
    config.write_text(config.read_text() + f'[admin]\nlisten = "127.0.0.1:9002"\ntoken_file = "{token}"\n[audit]\nlog = "audit.log"\n')
    settings = settings_from_options(_opts("--config", str(config), "--db", str(tmp_path / "cli.sqlite3"), "--workers", "3"))

    assert settings.admin is not None and settings.admin.port == 9002
    assert settings.ops.audit.log == str(tmp_path / "audit.log")
    assert settings.server.workers == 3


def _commands(group, path=()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


def _option_names(command) -> set[str]:
    return {name for param in command.params for name in param.opts if name.startswith("--")}


def test_every_command_and_group_answers_dash_h() -> None:
    runner = CliRunner()
    for path, _command in [((), cli.main), *_commands(cli.main)]:
        result = runner.invoke(cli.main, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        assert result.output.startswith("Usage: ") and "-h, --help" in result.output, path


SERVE_ONLY = {"--listen", "--workers", "--path", "--mode"}
RESPONSE = {"--validity", "--force-validity", "--responder-id", "--unknown-serials"}
SOURCES = {"--crl", "--index", "--issued"}
SIGNER = {"--signer-cert", "--signer-key", "--signer-password-file", "--pkcs11-module", "--pkcs11-pin-file", "--signers-dir",
          "--signature-algorithm", "--signer-locally-trusted", "--signer-expiry-warning"}
WHICH_CA = {"--config", "--issuer", "--name", "--db"}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("serve", WHICH_CA | SOURCES | SIGNER | RESPONSE | SERVE_ONLY | {"--log-level"}),
        ("import", WHICH_CA | SOURCES | SIGNER | {"--format"}),
        ("reload", WHICH_CA | SOURCES | SIGNER | {"--format"}),
        ("generate", WHICH_CA | SOURCES | SIGNER | RESPONSE | {"--processes", "--batch-size", "--no-import"}),
        ("sources", WHICH_CA | {"--format"}),
        ("signers", WHICH_CA | SIGNER | {"--format"}),
        ("revoke", WHICH_CA | {"--reason", "--time", "--invalidity-date"}),
        ("unrevoke", WHICH_CA),
        ("issue", WHICH_CA),
    ],
)
def test_each_command_lists_only_the_options_it_uses(command: str, expected: set[str]) -> None:
    """`serve`'s listener and response options do nothing for `import` or `sources`: they are not offered there."""
    assert _option_names(cli.main.commands[command]) - {"--help"} == expected


def test_config_check_takes_the_file_as_option_or_argument(tmp_path: Path, demo_pki: DemoPki) -> None:
    config = _config(tmp_path, demo_pki)
    config.write_text(config.read_text().replace('listen = "127.0.0.1:9001"', 'listen = "127.0.0.1:0"'))
    runner = CliRunner()
    for args in (["--config", str(config)], [str(config)]):
        result = runner.invoke(cli.main, ["config", "check", *args])
        assert result.exit_code == 0, result.output
        assert result.output == f"{config}: ok (1 CA, 1 source file read)\n"
    assert runner.invoke(cli.main, ["config", "check"]).exit_code == 2
