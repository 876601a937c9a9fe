"""load_config: TOML → Settings; every refusal names the file and the dotted key."""

from __future__ import annotations

import dataclasses
import pickle
import textwrap
from pathlib import Path

import pytest

from certstatus.config import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_VALIDITY,
    CaSettings,
    ServerSettings,
    Settings,
    load_config,
    parse_duration,
    parse_listen,
)
from certstatus.errors import ConfigError

MINIMAL_CA = """
[ca.issuing]
certificate = "ca.pem"
crl = "ca.crl"
signer_certificate = "ocsp.pem"
signer_key = "ocsp.key"
"""


def _write(folder: Path, text: str, name: str = "certstatus.toml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    error = raised.value
    assert error.file == str(path) or error.file.endswith(".toml")
    assert str(error).startswith(f"{error.file}: {error.key}: ")
    return error


# --- valid configurations ----------------------------------------------------------------------


def test_full_config_is_read_into_typed_settings(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        [server]
        listen = "0.0.0.0:9090"
        workers = 3
        database = "state/status.sqlite3"
        common_path = "/ocsp"
        max_request_bytes = 4096

        [ca.issuing-1]
        certificate = "pki/ca.pem"
        crl = ["pki/ca.crl", "http://crl.example/ca.crl"]
        index = "pki/index.txt"
        issued = "/abs/issued.txt"
        signer_certificate = "pki/ocsp.pem"
        signer_key = "pki/ocsp.p12"
        signer_password_file = "secrets/password"
        path = "/issuing-1/"
        validity = "2d"
        responder_id = "name"
        unknown_serials = "revoked"

        [ca."second.ca"]
        certificate = "b/ca.pem"
        index = "b/index.txt"
        signer_certificate = "b/ca.pem"
        signer_key = "b/ca.key"
        """,
    )

    settings = load_config(path)

    assert settings.server == ServerSettings(
        host="0.0.0.0", port=9090, workers=3, database=tmp_path / "state/status.sqlite3",
        common_path="/ocsp/", max_request_bytes=4096,
    )  # fmt: skip
    first, second = settings.cas
    assert first == CaSettings(
        name="issuing-1",
        certificate=tmp_path / "pki/ca.pem",
        signer_certificate=tmp_path / "pki/ocsp.pem",
        signer_key=tmp_path / "pki/ocsp.p12",
        crl=(str(tmp_path / "pki/ca.crl"), "http://crl.example/ca.crl"),
        index=tmp_path / "pki/index.txt",
        issued=Path("/abs/issued.txt"),
        signer_password_file=tmp_path / "secrets/password",
        path="/issuing-1/",
        validity=2 * 86400,
        responder_id="name",
        unknown_serials="revoked",
        where=str(path),
    )
    assert first.knows_issuance
    assert second.name == "second.ca"
    assert (second.crl, second.index, second.path) == ((), tmp_path / "b/index.txt", None)
    assert (second.validity, second.responder_id, second.unknown_serials) == (DEFAULT_VALIDITY, "key", "unknown")


def test_defaults_of_a_minimal_config(tmp_path: Path) -> None:
    settings = load_config(_write(tmp_path, MINIMAL_CA))

    assert settings.server == ServerSettings(database=tmp_path / "certstatus.sqlite3")
    assert settings.server.max_request_bytes == DEFAULT_MAX_REQUEST_BYTES
    assert (settings.server.host, settings.server.port, settings.server.common_path) == ("127.0.0.1", 8080, "/")
    assert settings.server.worker_count >= 1
    (ca,) = settings.cas
    assert ca.crl == (str(tmp_path / "ca.crl"),)
    assert not ca.knows_issuance


def test_relative_paths_resolve_against_the_config_directory_not_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "etc" / "certstatus", MINIMAL_CA)
    monkeypatch.chdir(tmp_path)

    (ca,) = load_config(path).cas

    base = tmp_path / "etc" / "certstatus"
    assert ca.certificate == base / "ca.pem"
    assert ca.signer_key == base / "ocsp.key"
    assert ca.crl == (str(base / "ca.crl"),)


def test_home_relative_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = _write(tmp_path, MINIMAL_CA.replace('"ca.pem"', '"~/pki/ca.pem"'))
    assert load_config(path).cas[0].certificate == tmp_path / "home" / "pki" / "ca.pem"


def test_ca_dir_holds_one_file_per_ca_with_paths_relative_to_that_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[server]\nca_dir = "ca.d"\n' + MINIMAL_CA)
    for name in ("beta", "alpha"):
        _write(
            tmp_path / "ca.d",
            f"""
            certificate = "{name}/ca.pem"
            index = "{name}/index.txt"
            signer_certificate = "{name}/ocsp.pem"
            signer_key = "{name}/ocsp.key"
            path = "/{name}"
            """,
            name=f"{name}.toml",
        )
    _write(tmp_path / "ca.d", "not toml at all [", name="README.txt")

    settings = load_config(path)

    assert [ca.name for ca in settings.cas] == ["issuing", "alpha", "beta"]
    alpha = settings.cas[1]
    assert alpha.certificate == tmp_path / "ca.d" / "alpha" / "ca.pem"
    assert alpha.path == "/alpha/"
    assert alpha.where == str(tmp_path / "ca.d" / "alpha.toml")


def test_ca_dir_alone_is_enough(tmp_path: Path) -> None:
    path = _write(tmp_path, '[server]\nca_dir = "ca.d"\n')
    _write(tmp_path / "ca.d", MINIMAL_CA.replace("[ca.issuing]", ""), name="only.toml")
    assert [ca.name for ca in load_config(path).cas] == ["only"]


# --- errors name the file and the dotted key ---------------------------------------------------


def test_unknown_ca_key_is_named(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, MINIMAL_CA + 'certifcate = "typo.pem"\n'))
    assert error.key == "ca.issuing.certifcate"
    assert "not a known key" in error.problem and "certificate" in error.fix


def test_unknown_server_key_and_unknown_section_are_named(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, "[server]\nport = 80\n" + MINIMAL_CA)).key == "server.port"
    assert _error(_write(tmp_path, '[servers]\nlisten = ":80"\n' + MINIMAL_CA)).key == "servers"


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        (MINIMAL_CA + 'signer_kye = "ocsp.key"\n', "ca.issuing.signer_kye", "signer_key"),
        (MINIMAL_CA + 'refresh_intervall = "1h"\n', "ca.issuing.refresh_intervall", "refresh_interval"),
        ('[server]\nlisten_address = "127.0.0.1:80"\n' + MINIMAL_CA, "server.listen_address", "listen"),
        ('[sever]\nlisten = "127.0.0.1:80"\n' + MINIMAL_CA, "sever", "server"),
        ('[tls]\ncertificat = "tls.pem"\n' + MINIMAL_CA, "tls.certificat", "certificate"),
        ('[admin]\ntoken_flie = "t"\n' + MINIMAL_CA, "admin.token_flie", "token_file"),
        (MINIMAL_CA + '[[ca.issuing.signer]]\ncertificate = "a.pem"\nkey = "a.key"\npasword_file = "p"\n',
         "ca.issuing.signer[1].pasword_file", "password_file"),
    ],
)
def test_a_misspelt_key_gets_the_closest_known_one_not_the_whole_list(tmp_path: Path, text: str, key: str, suggestion: str) -> None:
    error = _error(_write(tmp_path, text))
    assert (error.key, error.problem) == (key, f"is not a known {'section' if '.' not in key else 'key'}.")
    assert error.fix == f"Did you mean {suggestion}?"


def test_an_unknown_key_like_none_points_to_the_reference_instead_of_forty_keys(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, MINIMAL_CA + "zzz = 1\n"))
    assert error.fix == "`certstatus config reference` lists every key (docs/configuration.md)."
    few = _error(_write(tmp_path, MINIMAL_CA.replace('crl = "ca.crl"', "") + '[ca.issuing.sql]\nqqq = 1\n'))
    assert few.fix == "Known keys: dsn, pool_size, query, timeout."  # a short list is still given whole


@pytest.mark.parametrize("key", ["certificate", "signer_certificate", "signer_key"])
def test_missing_required_key_is_named(tmp_path: Path, key: str) -> None:
    text = "\n".join(line for line in MINIMAL_CA.splitlines() if not line.startswith(f"{key} "))
    error = _error(_write(tmp_path, text))
    assert error.key == f"ca.issuing.{key}"
    assert "missing" in error.problem


def test_ca_without_any_status_source_is_refused(tmp_path: Path) -> None:
    text = MINIMAL_CA.replace('crl = "ca.crl"\n', "")
    assert _error(_write(tmp_path, text)).key == "ca.issuing"


@pytest.mark.parametrize("validity", ['"2x"', '"1500ms"', '"h"', '""', "true", "1.5", '"-3h"'])
def test_bad_validity_is_named(tmp_path: Path, validity: str) -> None:
    error = _error(_write(tmp_path, MINIMAL_CA + f"validity = {validity}\n"))
    assert error.key == "ca.issuing.validity"


@pytest.mark.parametrize("validity", ['"30m"', "1800", '"11d"', "0", "-60"])
def test_validity_outside_one_hour_to_ten_days_is_refused(tmp_path: Path, validity: str) -> None:
    error = _error(_write(tmp_path, MINIMAL_CA + f"validity = {validity}\n"))
    assert error.key == "ca.issuing.validity"


def test_short_validity_is_accepted_with_force_validity(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL_CA + 'validity = "30m"\nforce_validity = true\n')
    assert load_config(path).cas[0].validity == 1800


def test_force_validity_still_refuses_zero_and_must_be_boolean(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, MINIMAL_CA + "validity = 0\nforce_validity = true\n")).key == "ca.issuing.validity"
    error = _error(_write(tmp_path, MINIMAL_CA + 'validity = "30m"\nforce_validity = "yes"\n'))
    assert error.key == "ca.issuing.force_validity"


@pytest.mark.parametrize("boundary", ['"1h"', '"10d"', "3600", "864000"])
def test_validity_boundaries_are_accepted(tmp_path: Path, boundary: str) -> None:
    load_config(_write(tmp_path, MINIMAL_CA + f"validity = {boundary}\n"))


@pytest.mark.parametrize("value", ['"hash"', '"Key"', "1"])
def test_bad_responder_id_is_named(tmp_path: Path, value: str) -> None:
    assert _error(_write(tmp_path, MINIMAL_CA + f"responder_id = {value}\n")).key == "ca.issuing.responder_id"


def test_unknown_serials_revoked_needs_index_or_issued(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, MINIMAL_CA + 'unknown_serials = "revoked"\n'))
    assert error.key == "ca.issuing.unknown_serials"
    assert "index or issued" in error.fix
    load_config(_write(tmp_path, MINIMAL_CA + 'unknown_serials = "revoked"\nissued = "issued.txt"\n'))


def test_unknown_serials_other_value_is_named(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, MINIMAL_CA + 'unknown_serials = "good"\n')).key == "ca.issuing.unknown_serials"


def test_duplicate_ca_path_is_named(tmp_path: Path) -> None:
    second = MINIMAL_CA.replace("[ca.issuing]", "[ca.other]")
    text = MINIMAL_CA + 'path = "/same"\n' + second + 'path = "/same/"\n'
    error = _error(_write(tmp_path, text))
    assert error.key == "ca.other.path"
    assert "ca.issuing" in error.problem


def test_ca_path_equal_to_the_common_path_is_named(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, '[server]\ncommon_path = "/ocsp"\n' + MINIMAL_CA + 'path = "/ocsp/"\n'))
    assert error.key == "ca.issuing.path"
    assert "server.common_path" in error.problem


def test_same_ca_name_in_table_and_ca_dir_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, '[server]\nca_dir = "ca.d"\n' + MINIMAL_CA)
    _write(tmp_path / "ca.d", MINIMAL_CA.replace("[ca.issuing]", ""), name="issuing.toml")
    error = _error(path)
    assert (error.key, error.file) == ("ca.issuing", str(tmp_path / "ca.d" / "issuing.toml"))


def test_error_in_a_ca_dir_file_names_that_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[server]\nca_dir = "ca.d"\n')
    _write(tmp_path / "ca.d", MINIMAL_CA.replace("[ca.issuing]", "") + 'validity = "2x"\n', name="broken.toml")
    error = _error(path)
    assert (error.file, error.key) == (str(tmp_path / "ca.d" / "broken.toml"), "ca.broken.validity")


def test_missing_ca_dir_is_named(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, '[server]\nca_dir = "nowhere"\n' + MINIMAL_CA)).key == "server.ca_dir"


def test_common_path_off_needs_a_path_per_ca(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, '[server]\ncommon_path = ""\n' + MINIMAL_CA))
    assert error.key == "ca.issuing.path"
    settings = load_config(_write(tmp_path, '[server]\ncommon_path = ""\n' + MINIMAL_CA + 'path = "/a"\n'))
    assert settings.server.common_path == ""


@pytest.mark.parametrize("path", ['"relative"', '"/has space"', '"/q?x"', '"/p%2F"', "3"])
def test_bad_url_path_is_named(tmp_path: Path, path: str) -> None:
    assert _error(_write(tmp_path, MINIMAL_CA + f"path = {path}\n")).key == "ca.issuing.path"


@pytest.mark.parametrize("listen", ['"localhost"', '"127.0.0.1:"', '"127.0.0.1:-1"', '"127.0.0.1:65536"', '"h:http"', "8080"])
def test_bad_listen_is_named(tmp_path: Path, listen: str) -> None:
    assert _error(_write(tmp_path, f"[server]\nlisten = {listen}\n" + MINIMAL_CA)).key == "server.listen"


@pytest.mark.parametrize(
    ("key", "value"),
    [("workers", "-1"), ("workers", "true"), ("workers", '"2"'), ("max_request_bytes", "63"),
     ("max_request_bytes", "1000001"), ("database", '""'), ("database", "5"),
     ("client_timeout", "0"), ("client_timeout", "true"), ("client_timeout", '"10x"'), ("client_timeout", "3601"),
     ("client_timeout", '"50ms"'), ("client_timeout", '"2h"')],
)  # fmt: skip
def test_bad_server_values_are_named(tmp_path: Path, key: str, value: str) -> None:
    assert _error(_write(tmp_path, f"[server]\n{key} = {value}\n" + MINIMAL_CA)).key == f"server.{key}"


def test_bad_crl_value_is_named(tmp_path: Path) -> None:
    text = MINIMAL_CA.replace('crl = "ca.crl"', "crl = [1, 2]")
    assert _error(_write(tmp_path, text)).key == "ca.issuing.crl"


def test_bad_ca_name_is_named(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, MINIMAL_CA.replace("[ca.issuing]", '[ca."-bad name"]'))).key == "ca.-bad name"


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, MINIMAL_CA + "validity = \n"))
    assert "not valid TOML" in error.problem
    assert "line" in error.problem


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    error = _error(tmp_path / "absent.toml")
    assert "cannot read" in error.problem


def test_config_without_ca_is_refused(tmp_path: Path) -> None:
    assert _error(_write(tmp_path, '[server]\nlisten = "127.0.0.1:8080"\n')).key == "ca"
    assert _error(_write(tmp_path, "")).key == "ca"


@pytest.mark.parametrize(
    ("text", "key"),
    [("server = 1\n" + MINIMAL_CA, "server"), ('ca = "x"\n', "ca"), ("[ca]\nissuing = 3\n", "ca.issuing")],
)
def test_non_table_is_named(tmp_path: Path, text: str, key: str) -> None:
    error = _error(_write(tmp_path, text))
    assert error.key == key
    assert "must be a table" in error.problem


# --- parse_duration, parse_listen ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90), ("90", 90), ("90s", 90), ("90m", 5400), ("24h", 86400), ("1d", 86400), (" 2 h ", 7200), ("0", 0),
     ("1.5h", 5400), ("7y", 7 * 365 * 86400), ("500ms", 0.5), ("2.5", 2.5), (2.5, 2.5), ("1.1h", 3960)],
)
def test_parse_duration_forms(value, seconds: int) -> None:
    """One parser for every duration key: seconds, or a number and a unit; whole seconds come back as an int."""
    parsed = parse_duration(value, file="f.toml", key="ca.x.validity")
    assert parsed == seconds and isinstance(parsed, int) == float(seconds).is_integer()


@pytest.mark.parametrize("value", ["2x", "1.5.2h", "h", "", "1 d 2h", "1D", "-3h", "5 ms s", True, float("nan"), None, [1]])
def test_parse_duration_refuses_other_forms(value) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_duration(value, file="f.toml", key="ca.x.validity")
    assert str(raised.value).startswith("f.toml: ca.x.validity: ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), (":80", ("0.0.0.0", 80)), ("[::1]:8443", ("::1", 8443)),
     ("ocsp.example:65535", ("ocsp.example", 65535))],
)  # fmt: skip
def test_parse_listen_forms(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value, file="f", key="server.listen") == expected


# --- JSON round trip for worker processes ------------------------------------------------------------


def test_settings_json_round_trip_is_equal(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        [server]
        listen = "[::1]:8443"
        workers = 2
        common_path = ""
        [ca.a]
        certificate = "a.pem"
        crl = ["a.crl", "ldap://x/a"]
        index = "index.txt"
        signer_certificate = "ocsp.pem"
        signer_key = "ocsp.key"
        signer_password_file = "pw"
        path = "/a"
        validity = "90m"
        responder_id = "name"
        unknown_serials = "revoked"
        [ca.b]
        certificate = "b.pem"
        issued = "issued.txt"
        signer_certificate = "b.pem"
        signer_key = "b.key"
        path = "/b"
        """,
    )
    settings = load_config(path)

    again = Settings.from_json(settings.to_json())

    assert again == settings
    assert isinstance(again.cas[0].certificate, Path) and isinstance(again.cas[0].crl, tuple)
    assert again.cas[1].index is None and again.cas[1].signer_password_file is None


def test_worker_settings_of_many_cas_hold_no_per_ca_copies(tmp_path: Path) -> None:
    """A worker holds the settings of every CA: no instance dict per CA or signer, and one object for the
    texts the CAs repeat (the file they come from, their mode and policies), not one per CA."""
    tables = "".join(
        f'[ca.c{i}]\ncertificate = "c{i}.pem"\ncrl = ["c{i}.crl"]\nsigner_certificate = "o{i}.pem"\n'
        f'signer_key = "o{i}.key"\npath = "/c{i}"\n[[ca.c{i}.signer]]\ncertificate = "n{i}.pem"\nkey = "n{i}.key"\n'
        for i in range(3)
    )
    settings = load_config(_write(tmp_path, tables))

    again = Settings.from_json(settings.to_json())

    assert again == settings
    first, second = again.cas[0], again.cas[1]
    assert not hasattr(first, "__dict__") and not hasattr(first.signers[0], "__dict__")
    assert first.where is second.where and first.mode is second.mode and first.on_stale is second.on_stale
    assert dataclasses.replace(first, mode="cached").mode == "cached" and first.mode == "live"
    assert pickle.loads(pickle.dumps(again)) == again


def test_settings_json_holds_no_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTSTATUS_SIGNER_PASSWORD", "s3cret-value")
    (tmp_path / "pw").write_text("file-secret\n")
    settings = load_config(_write(tmp_path, MINIMAL_CA + 'signer_password_file = "pw"\n'))
    text = settings.to_json()
    assert "s3cret-value" not in text and "file-secret" not in text


def test_config_that_is_not_utf8_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    """Fuzzing finding: tomllib raised UnicodeDecodeError past load_config for a Latin-1 byte."""
    path = tmp_path / "certstatus.toml"
    path.write_bytes(MINIMAL_CA.encode() + b'path = "/caf\xe9"\n')
    error = _error(path)
    assert "not UTF-8" in error.problem and f"line {MINIMAL_CA.count(chr(10)) + 1}" in error.problem
    assert "UTF-8" in error.fix


@pytest.mark.parametrize(
    ("text", "key"),
    [('[server]\ndatabase = "~certstatus-no-such-user/store.sqlite3"\n' + MINIMAL_CA, "server.database"),
     ('[tls]\ncertificate = "~certstatus-no-such-user/tls.pem"\nkey = "tls.key"\n' + MINIMAL_CA, "tls.certificate"),
     ('[audit]\nlog = "~certstatus-no-such-user/audit.log"\n' + MINIMAL_CA, "audit.log"),
     (MINIMAL_CA + '[[ca.issuing.signer]]\ncertificate = "~certstatus-no-such-user/o.pem"\nkey = "o.key"\n',
      "ca.issuing.signer[1].certificate")],
)  # fmt: skip
def test_path_in_the_home_folder_of_an_unknown_user_is_a_config_error(tmp_path: Path, text: str, key: str) -> None:
    """Fuzzing finding: Path.expanduser raised RuntimeError past load_config for "~nosuchuser/..."; every
    path key goes through the one path parser now."""
    error = _error(_write(tmp_path, text))
    assert error.key == key and "unknown user" in error.problem


def test_port_zero_and_client_timeout_are_read(tmp_path: Path) -> None:
    settings = load_config(_write(tmp_path, '[server]\nlisten = "127.0.0.1:0"\nclient_timeout = 2.5\n' + MINIMAL_CA))
    assert settings.server.port == 0
    assert settings.server.client_timeout == 2.5
    assert load_config(_write(tmp_path, '[server]\nclient_timeout = "500ms"\n' + MINIMAL_CA)).server.client_timeout == 0.5
    assert load_config(_write(tmp_path, MINIMAL_CA)).server.client_timeout == 10.0


@pytest.mark.parametrize("value", ['"uvicorn"', '"protocol"', '"auto"'])
def test_server_http_is_accepted_and_ignored_with_a_warning_naming_file_key_and_fix(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, f"[server]\nhttp = {value}\n" + MINIMAL_CA)
    (notice,) = load_config(path).server.deprecated
    assert notice.startswith(f"{path}: server.http = {value.strip(chr(34))!r} is no longer used")
    assert notice.endswith("Remove the key.")
    assert load_config(_write(tmp_path, MINIMAL_CA)).server.deprecated == ()


def test_config_check_prints_the_server_http_warning(tmp_path: Path, demo_pki) -> None:
    from click.testing import CliRunner

    from certstatus.cli import main

    path = _write(tmp_path, f"""
        [server]
        http = "uvicorn"

        [ca.demo]
        certificate = "{demo_pki.ca_cert}"
        crl = "{demo_pki.crl}"
        signer_certificate = "{demo_pki.ocsp_cert}"
        signer_key = "{demo_pki.ocsp_key}"
        """)
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 0, result.stderr
    assert f"warning: {path}: server.http = 'uvicorn' is no longer used" in result.stderr
    assert "ok (1 CA, 1 source file read)" in result.stderr
