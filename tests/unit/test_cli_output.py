"""What the command line prints: messages exactly as raised, tables whole outside a terminal, durations.

Every operator error goes through one renderer (``certstatus.cli.commands._Group`` →
``print_error``); the property test feeds it any text, and the corpus below
runs real bad configurations through ``certstatus config check`` and compares
the output with the ConfigError that ``load_config`` raises for each.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from certstatus.cli import main
from certstatus.cli.output import IMPORT_TABLE_ROWS, duration, plural, print_error, print_import
from certstatus.config import load_config
from certstatus.errors import ConfigError
from certstatus.sources.importer import ImportResult

CA = '[ca.x]\ncertificate = "ca.pem"\nsigner_certificate = "ocsp.pem"\nsigner_key = "ocsp.key"\n'

#: Bad configurations, one ConfigError path each, across the modules that raise them.
BAD_CONFIGS = {
    "no CA": '[server]\nlisten = "127.0.0.1:8080"\n',
    "ca not a table": "ca = 1\n",
    "tls not a table": "tls = 1\n" + CA + 'crl = "a.crl"\n',
    "admin not a table": "admin = 1\n" + CA + 'crl = "a.crl"\n',
    "signer not an array of tables": CA + 'crl = "a.crl"\nsigner = 1\n',
    "signer entry not a table": '[ca.x]\ncertificate = "ca.pem"\ncrl = "a.crl"\nsigner = [1]\n',
    "crl of the wrong type": CA + "crl = 1\n",
    "sql not a table": '[ca.x]\ncertificate = "ca.pem"\nsql = 1\n',
    "no source": CA,
    "unknown section": "[metrics]\nport = 1\n" + CA + 'crl = "a.crl"\n',
    "misspelt server key": '[server]\nlisten_on = "127.0.0.1:1"\n' + CA + 'crl = "a.crl"\n',
    "misspelt ca key": CA + 'crl = "a.crl"\nvalidty = "1d"\n',
    "bad duration": CA + 'crl = "a.crl"\nvalidity = "3 years"\n',
    "bad mode": CA + 'crl = "a.crl"\nmode = "[fast]"\n',
    "by_name without names": '[access]\nauthorization = "by_name"\n' + CA + 'crl = "a.crl"\n',
    "name that does not parse": '[access]\nauthorization = "by_name"\nauthorized_names = ["[CN]"]\n' + CA + 'crl = "a.crl"\n',
    "forwarded CA with data": '[ca.x]\ncertificate = "ca.pem"\ncrl = "a.crl"\nforward = ["http://ocsp.example/"]\n',
    "bad CA name": '[ca."x y"]\ncertificate = "ca.pem"\ncrl = "a.crl"\n',
    "tls key without certificate": '[tls]\nkey = "k.pem"\n' + CA + 'crl = "a.crl"\n',
    "TOML syntax": "[server\nlisten = 1\n",
    "admin without token": '[admin]\nlisten = "127.0.0.1:9"\n' + CA + 'crl = "a.crl"\n',
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_config_check_prints_each_configuration_error_exactly_as_raised(tmp_path: Path, name: str) -> None:
    path = tmp_path / "certstatus.toml"
    path.write_text(BAD_CONFIGS[name])
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {raised.value}\n"  # one line, nothing lost or added


def test_the_messages_with_brackets_keep_them(tmp_path: Path) -> None:
    """The texts an operator saw mangled: "`[] tables`" and an empty name table example."""
    outputs = {}
    for name in ("signer not an array of tables", "by_name without names", "no CA"):
        path = tmp_path / f"{len(outputs)}.toml"
        path.write_text(BAD_CONFIGS[name])
        outputs[name] = CliRunner().invoke(main, ["config", "check", str(path)]).output
    assert "Write [[ca.x.signer]] tables." in outputs["signer not an array of tables"]
    assert 'e.g. ["CN=app1,O=Example"]' in outputs["by_name without names"]
    assert "Add a [ca.NAME] table" in outputs["no CA"]


def test_a_push_refusal_names_the_table_to_edit(tmp_path: Path, demo_pki) -> None:
    config = tmp_path / "certstatus.toml"
    config.write_text(f'[server]\ndatabase = "{tmp_path / "store.sqlite3"}"\n[ca.crl-only]\ncertificate = "{demo_pki.ca_cert}"\n'
                      f'crl = "{demo_pki.crl}"\nsigner_certificate = "{demo_pki.ocsp_cert}"\nsigner_key = "{demo_pki.ocsp_key}"\n')
    result = CliRunner().invoke(main, ["revoke", "crl-only", "1", "--config", str(config)])
    assert result.exit_code == 2
    assert "set push = true in its [ca.crl-only] table" in result.output


_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("[]/\\=:"), max_size=300)


@given(message=_TEXT)
def test_any_error_message_is_printed_as_given(message: str) -> None:
    """Brackets, "[/]", "[bold]", backslashes: nothing is taken for markup, nothing dropped or wrapped."""
    import contextlib
    import io

    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        print_error(message)
    assert stream.getvalue() == f"error: {message}\n"


def test_import_table_cells_are_shown_as_written_and_whole(capsys) -> None:
    origin = "/srv/pki/" + "very-long-directory-name/" * 6 + "issuing-ca.crl"
    results = [
        ImportResult("issuing", "crl", origin, 1234),
        ImportResult("issuing", "index", "[index].txt", error="refused: [/] signature of [ca.issuing] does not verify"),
    ]
    assert print_import(results) is False
    out = capsys.readouterr().err
    assert origin in out and "[index].txt" in out  # not cut to 80 columns, not read as markup
    assert "refused: [/] signature of [ca.issuing] does not verify" in out
    assert "…" not in out


def test_import_table_of_thousands_of_sources_shows_every_refusal_and_counts_the_rest(capsys) -> None:
    results = [ImportResult(f"ca{i:05d}", "crl", f"/pki/ca{i:05d}.crl", 10, unchanged=i % 2 == 1, note="same file")
               for i in range(3000)]  # fmt: skip
    results[2500] = ImportResult("ca02500", "crl", "/pki/ca02500.crl", error="signature does not verify")
    assert print_import(results) is False
    out = capsys.readouterr().err
    assert "ca02500" in out and "refused: signature does not verify" in out
    shown = [line for line in out.splitlines() if "/pki/ca" in line]
    assert len(shown) == IMPORT_TABLE_ROWS
    assert "ca00000" in out and f"ca{IMPORT_TABLE_ROWS - 2:05d}" in out and "ca02999" not in out
    hidden = [result for result in results if not result.error][IMPORT_TABLE_ROWS - 1:]  # one row is the refusal
    unchanged = sum(result.unchanged for result in hidden)
    summary = next(line for line in out.splitlines() if "more sources" in line)
    assert f"{len(hidden)} more sources" in summary and str(10 * len(hidden)) in summary
    assert f"{len(hidden) - unchanged} imported, {unchanged} unchanged" in summary


def test_import_table_of_few_sources_has_a_row_each(capsys) -> None:
    results = [ImportResult(f"ca{i}", "crl", f"/pki/ca{i}.crl", 1) for i in range(IMPORT_TABLE_ROWS)]
    assert print_import(results) is True
    out = capsys.readouterr().err
    assert all(f"/pki/ca{i}.crl" in out for i in range(IMPORT_TABLE_ROWS)) and "more sources" not in out


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.4, "59s"), (61, "1m 1s"), (3600, "1h 0m"), (5 * 3600 + 180, "5h 3m"), (604734, "6d 23h"),
     (604800, "7d 0h"), (-90, "-1m 30s")],
)
def test_durations_read_as_days_hours_minutes(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_counts_take_the_singular_for_one() -> None:
    assert (plural(1, "worker"), plural(2, "worker"), plural(0, "CA")) == ("1 worker", "2 workers", "0 CAs")
