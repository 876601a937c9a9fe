"""The configuration schema: the committed reference, the keys accepted, the operators' errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from certstatus import config_schema as schema
from certstatus.config import Settings, load_config
from certstatus.config_schema import render_reference
from certstatus.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_committed_configuration_reference_is_the_generated_one():
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render_reference(), "run: certstatus config reference --output docs/configuration.md"


def test_config_reference_command_prints_the_reference():
    out = subprocess.run([str(Path(sys.executable).with_name("certstatus")), "config", "reference"],
                         check=True, capture_output=True, text=True).stdout
    assert out == render_reference()


def _write(tmp_path: Path, demo_pki, text: str) -> Path:
    path = tmp_path / "certstatus.toml"
    path.write_text(text.format(ca=demo_pki.ca_cert, crl=demo_pki.crl, ocsp=demo_pki.ocsp_cert, key=demo_pki.ocsp_key,
                                anchors=demo_pki.root_cert))
    return path


CA = """
[ca.one]
certificate = "{ca}"
crl = ["{crl}"]
signer_certificate = "{ocsp}"
signer_key = "{key}"
"""


def test_every_documented_key_is_accepted_and_survives_the_trip_to_workers(tmp_path, demo_pki):
    text = """
[server]
listen = "127.0.0.1:8080"
[tls]
certificate = "{ocsp}"
key = "{key}"
min_version = "1.3"
client_auth = "required"
client_trust_anchors = ["{anchors}"]
client_cert_header = "X-SSL-Client-Cert"
trusted_proxies = ["10.0.0.0/8", "192.0.2.1"]
[access]
require_signed_requests = true
signer_trust_anchors = "{anchors}"
authorization = "by_name"
authorized_names = ["CN=app1,O=Example", "glob:CN=*,O=Example", "re:^CN=app[0-9]+"]
[audit]
log = "-"
max_bytes = "10MiB"
backup_count = 3
[admin]
listen = "127.0.0.1:9090"
token_file = "{anchors}"
metrics_dir = "metrics"
[ca.partner]
certificate = "{ca}"
forward = ["http://ocsp.example.net/"]
forward_timeout = "1500ms"
authorization = "by_authentication"
""" + CA.replace("[ca.one]", "[ca.one]\nrequire_signed_requests = false")
    settings = load_config(_write(tmp_path, demo_pki, text))
    ops = settings.ops
    assert ops.tls.min_version == "1.3" and ops.tls.trusted_proxies == ("10.0.0.0/8", "192.0.2.1/32")
    assert ops.access.authorized_names[2] == "re:^CN=app[0-9]+"
    assert ops.audit.max_bytes == 10 * 1024 * 1024 and settings.admin.metrics_dir == tmp_path / "metrics"
    partner = next(ca for ca in settings.cas if ca.name == "partner")
    assert partner.forward_timeout == 1.5 and partner.signer_key is None
    assert Settings.from_json(settings.to_json()) == settings


def test_every_key_of_the_ca_description_is_read_by_one_settings_module():
    from certstatus import config, config_ops, source_settings
    from certstatus.signing import settings as signing_settings

    owners = [set(config._RESPONSE_KEYS) | {"certificate", "crl", "index", "issued", "path"}, signing_settings.CA_SIGNER_KEYS,
              source_settings.SOURCE_KEYS, config_ops.CA_KEYS]
    assert sum(len(keys) for keys in owners) == len(schema.CA.names)  # no key read twice
    assert set().union(*owners) == schema.CA.names
    assert schema.TOP_LEVEL == {"server", "tls", "access", "audit", "admin", "ca"}


#: A value each kind refuses (an inline table), except for the kinds that take tables.
_WRONG = {"signer": '"text"', "sql": '"text"'}
#: Accepted whatever its value, ignored with a warning (no longer used).
_UNCHECKED = {("server", "http")}


def _every_described_key():
    for section in schema.SECTIONS:
        for key in section.keys:
            if (section.name, key.name) not in _UNCHECKED:
                yield section.name, key.name


@pytest.mark.parametrize(("section", "key"), list(_every_described_key()))
def test_every_key_of_the_description_is_validated(tmp_path, demo_pki, section, key):
    """A wrong value for any described key is refused with a ConfigError naming that key (the description is
    what validates: a key it lists but no code checks would pass here)."""
    bad = f"{key} = {_WRONG.get(key, '{{ wrong = 1 }}')}\n"  # _write formats the text: {{ }} is one brace

    def without(text: str) -> str:  # the table's lines but the key under test
        return "".join(line + "\n" for line in text.strip().splitlines() if not line.startswith(f"{key} "))

    if section == "ca.NAME":
        text, expected = without(CA) + bad, f"ca.one.{key}"
    elif section == "ca.NAME.signer":
        text, expected = CA + without('[[ca.one.signer]]\ncertificate = "{ocsp}"\nkey = "{key}"') + bad, f"ca.one.signer[1].{key}"
    elif section == "ca.NAME.sql":
        sql = ('[ca.db]\ncertificate = "{ca}"\nsigner_certificate = "{ocsp}"\nsigner_key = "{key}"\n'
               '[ca.db.sql]\ndsn = "postgresql://u@127.0.0.1/ca"\nquery = "SELECT %(serial)s"')
        text, expected = CA + without(sql) + bad, f"ca.db.sql.{key}"
    else:
        token = 'token_file = "admin.token"\n' if section == "admin" and key != "token_file" else ""
        text, expected = CA + f"[{section}]\n" + token + bad, f"{section}.{key}"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, demo_pki, text))
    assert caught.value.key == expected, str(caught.value)


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ('[tls]\nclient_auth = "required"\nclient_trust_anchors = ["{anchors}"]\n', "tls.client_auth", "without TLS"),
        ('[tls]\nclient_cert_header = "X-Client-Cert"\nclient_trust_anchors = ["{anchors}"]\n', "tls.trusted_proxies", "believed from anyone"),
        ('[tls]\ncertificate = "{ocsp}"\n', "tls.key", "is missing"),
        ('[access]\nauthorization = "by_name"\n', "access.authorized_names", "refuse every request"),
        ('[access]\nauthorized_names = ["CN=a"]\n', "access.authorized_names", "is ignored"),
        ('[access]\nauthorization = "by_name"\nauthorized_names = ["re:(unclosed"]\n', "access.authorized_names", "does not parse"),
        ('[access]\nrequire_signed_requests = true\n', "access.require_signed_requests", "trust anchors"),
        ('[admin]\nlisten = "nowhere"\n', "admin.listen", "HOST:PORT"),
        ('[admin]\ntoken_file = "admin.token"\noperator_names = ["CN=a"]\n', "admin.operator_names", "client_ca is not set"),
        ('[admin]\ntls_certificate = "{ocsp}"\ntls_key = "{key}"\nclient_ca = "{ca}"\noperator_names = ["re:(unclosed"]\n',
         "admin.operator_names", "does not parse"),
        ('[admin]\ntoken_file = "admin.token"\noperator_names = [1]\n', "admin.operator_names", "a list of strings"),
        ('[audit]\nmax_bytes = "lots"\n', "audit.max_bytes", "size in bytes"),
        ('[tls]\nmin_version = "1.0"\n', "tls.min_version", "is not 1.2 or 1.3"),
        ('[tls]\ntrusted_proxies = ["not-an-ip"]\n', "tls.trusted_proxies", "IP addresses"),
        ('[ca.two]\ncertificate = "{ca}"\nforward = ["ftp://x/"]\n', "ca.two.forward", "http:// or https://"),
        ('[ca.two]\ncertificate = "{ca}"\nforward = ["http://x/"]\ncrl = ["{crl}"]\n', "ca.two.forward", "never be used"),
        ('[ca.two]\ncertificate = "{ca}"\ncrl = ["{crl}"]\nsigner_certificate = "{ocsp}"\nsigner_key = "{key}"\n'
         'require_signed_requests = true\n', "ca.two.require_signed_requests", "trust anchors"),
        ('[tls]\nclient_trust_anchors = ["{anchors}"]\nsurprise = 1\n', "tls.surprise", "not a known key"),
        ("[metrics]\nport = 1\n", "metrics", "not a known section"),
    ],
)
def test_operator_errors_name_the_key_and_the_fix(tmp_path, demo_pki, extra, key, words):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, demo_pki, CA + extra))
    assert caught.value.key == key
    assert words in str(caught.value)
