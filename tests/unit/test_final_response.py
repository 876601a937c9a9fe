"""Final responses: a revoked certificate past its notAfter answered with nextUpdate 99991231235959Z.

ETSI EN 319 411-2 §6.3.10 allows a CA that keeps status after expiry to give such a certificate a
response that never needs replacing: its revocation can never change. ``final_response_after_expiry``
(with ``archive_cutoff``) turns it on per CA; every path that signs gives it — live signing in the
pipeline, the protocol edge's live lane, the generator's pre-signed rows — and only to revoked and
expired certificates whose notAfter ``index.txt`` or an issued list gives. HTTP caches keep such an
answer no longer than any other.
"""

from __future__ import annotations

import pytest

from certstatus.config import ConfigError
from certstatus.config import ca_settings as parse_ca_settings

_TABLE = {"certificate": "ca.pem", "signer_certificate": "o.pem", "signer_key": "o.key", "index": "index.txt"}


def test_final_responses_are_off_by_default_and_on_with_archive_cutoff(tmp_path):
    assert not parse_ca_settings("ca1", _TABLE, where="t.toml", base=tmp_path).final_response_after_expiry
    table = {**_TABLE, "archive_cutoff": "ca-not-before", "final_response_after_expiry": True}
    assert parse_ca_settings("ca1", table, where="t.toml", base=tmp_path).final_response_after_expiry


@pytest.mark.parametrize(
    "changes, message, fix",
    [
        ({}, "needs archive_cutoff", 'archive_cutoff = "ca-not-before"'),
        ({"archive_cutoff": "7y", "index": None, "crl": ["c.crl"]}, "notAfter", 'index = "FILE"'),
        ({"archive_cutoff": "7y", "final_response_after_expiry": "yes"}, "true or false", "true or false"),
    ],
)
def test_a_final_response_without_what_it_needs_names_the_file_key_and_fix(tmp_path, changes, message, fix):
    table = {**_TABLE, "final_response_after_expiry": True, **changes}
    table = {key: value for key, value in table.items() if value is not None}
    with pytest.raises(ConfigError, match=message) as error:
        parse_ca_settings("ca1", table, where="t.toml", base=tmp_path)
    assert (error.value.file, error.value.key) == ("t.toml", "ca.ca1.final_response_after_expiry")
    assert fix in error.value.fix
