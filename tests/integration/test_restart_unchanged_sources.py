"""A restarted `certstatus serve` does not import a CRL, index or issued list it imported from the same bytes.

The real `certstatus import` then `certstatus serve` (SQLite and PostgreSQL): the
serve's import table says "unchanged (same file)" for the three files, the store's
change counter and the sources' import times stay those of the import, and
openssl gets its answer; once index.txt changed, the next start imports it.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from certstatus.signing.keys import load_certificates
from certstatus.store.factory import open_store
from tests.processes import openssl_status, run_certstatus
from tests.servers import free_port, start_server
from tests.precomputed_helpers import copy_pki


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return request.getfixturevalue("postgres_dsn")


def store_view(database: str, pki) -> tuple[int, dict[str, tuple]]:
    """The issuer's change counter and {kind: (origin, imported_at, entries, fingerprint)}."""
    store = open_store(database)
    try:
        der = load_certificates(pki.ca_cert)[0].public_bytes(serialization.Encoding.DER)
        issuer_id = store.register_issuer("demo", der)
        states = {k: (s.origin, s.imported_at, s.entries, s.fingerprint) for k, s in store.source_states(issuer_id).items()}
        return store.change_counters()[issuer_id], states
    finally:
        store.close()


def serve_once(config, pki) -> str:
    """Start serve, ask openssl about the leaf "good", stop; return serve's output."""
    port = int(config.read_text().split('listen = "127.0.0.1:')[1].split('"')[0])
    server = start_server(config.parent, config, port=port)
    try:
        assert openssl_status(pki.ca_cert, pki.leaves["good"], server.url, pki.root_cert, verify_other=pki.ca_cert) == "good"
    finally:
        server.stop()
    return " ".join(server.log.read_text().replace("\u2502", " ").split())  # without the table's column rules


def test_a_restart_skips_the_same_files_and_imports_a_changed_index(database, demo_pki, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the import table on one line per source
    pki = copy_pki(demo_pki, tmp_path / "pki")
    config = tmp_path / "certstatus.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{free_port()}"\nworkers = 1\ndatabase = "{database}"\n\n'
        f'[ca.demo]\ncertificate = "{pki.ca_cert}"\ncrl = ["{pki.crl}"]\nindex = "{pki.index}"\nissued = "{pki.issued}"\n'
        f'signer_certificate = "{pki.ocsp_cert}"\nsigner_key = "{pki.ocsp_key}"\n'
    )
    if database.startswith("postgresql:"):
        run_certstatus("db", "upgrade", "--config", str(config))
    assert "unchanged" not in run_certstatus("import", "--config", str(config)).stdout
    counter, states = store_view(database, pki)
    assert None not in (states["crl"][3], states["index"][3], states["issued"][3])

    log = serve_once(config, pki)

    assert f"demo crl {pki.crl} {states['crl'][2]} unchanged (same file)" in log
    assert f"demo index {pki.index} {states['index'][2]} unchanged (same file)" in log
    assert f"demo issued {pki.issued} {states['issued'][2]} unchanged (same file)" in log
    assert store_view(database, pki) == (counter, states)

    with pki.index.open("a") as index:
        index.write("V\t300101000000Z\t\t7777\tunknown\t/CN=new.demo.test\n")
    log = serve_once(config, pki)

    after_counter, after = store_view(database, pki)
    assert f"demo index {pki.index} {states['index'][2] + 1} imported" in log
    assert f"demo issued {pki.issued} {states['issued'][2]} unchanged (same file)" in log
    assert f"demo crl {pki.crl} {states['crl'][2]} unchanged (same file)" in log
    assert after_counter > counter and after["index"][1] > states["index"][1] and after["issued"] == states["issued"]
    assert after["crl"] == states["crl"]
