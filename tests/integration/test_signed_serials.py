"""Zero and negative serials end to end: -1 revoked next to 0 and 255 good, through `openssl ocsp`.

Four CAs made by the real `openssl` (tests/openssl_ca.py), each with serial
-1 revoked in a CRL written by `openssl ca -gencrl` and 0 and 255 issued:
from an issued list (``-01``, ``00``, ``FF``) or from OpenSSL's own
``index.txt``, in live and precomputed mode. `certstatus serve` answers over
SQLite and over the real PostgreSQL; `openssl ocsp -serial -0x01` asks, and
verifies each response with the CA certificate. In precomputed mode the
response served is the one the generator stored for that serial.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from certstatus.config import load_config
from certstatus.store.factory import open_configured_store
from tests.openssl_ca import OpenSslCa
from tests.processes import openssl_serial_status, run_certstatus
from tests.servers import CERTSTATUS, free_port, start_server

pytestmark = pytest.mark.integration

#: ``index.txt`` of every CA: -1 revoked (keyCompromise), 0 and 255 valid, as `openssl ca` writes them.
INDEX = (
    "R\t301231235959Z\t260101000000Z,keyCompromise\t-01\tunknown\t/CN=minus-one\n"
    "V\t301231235959Z\t\t00\tunknown\t/CN=zero\n"
    "V\t301231235959Z\t\tFF\tunknown\t/CN=two-five-five\n"
)
#: serial → (what `openssl ocsp -serial` is given, the status expected).
EXPECTED = {
    -1: ("-0x01", "revoked"),
    0: ("0", "good"),
    255: ("0xFF", "good"),
    1: ("0x01", "unknown"),  # the magnitude of -1: never issued
    -255: ("-0xFF", "unknown"),  # the key 255 would have in one's complement or sign-magnitude mistakes
}
CAS = [(mode, source) for mode in ("live", "precomputed") for source in ("issued", "index")]


def _make_ca(folder: Path, mode: str, source: str) -> tuple[OpenSslCa, str]:
    """One CA and its ``[ca.NAME]`` table."""
    name = f"{mode}-{source}"
    ca = OpenSslCa(folder / name, common_name=f"Signed Serials {name}")
    ca.index_path.write_text(INDEX)
    crl = ca.folder / "ca.crl"
    crl.write_bytes(ca.gencrl())
    issued = ca.folder / "issued.txt"
    issued.write_text("# written by hand, as OpenSSL prints serials\n-01\n00\nFF\n")
    listed = f'issued = "{issued}"' if source == "issued" else f'index = "{ca.index_path}"'
    table = (
        f'[ca.{name}]\ncertificate = "{ca.cert_path}"\nsigner_certificate = "{ca.cert_path}"\n'
        f'signer_key = "{ca.folder / "ca.key"}"\ncrl = "{crl}"\n{listed}\nmode = "{mode}"\npath = "/{name}"\n'
    )
    return ca, table


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp(f"signed-serials-{request.param}")
    cas, tables = {}, []
    for mode, source in CAS:
        ca, table = _make_ca(folder, mode, source)
        cas[(mode, source)] = ca
        tables.append(table)
    database = folder / "store.sqlite3" if request.param == "sqlite" else request.getfixturevalue("postgres_module_dsn")
    port = free_port()
    config = folder / "certstatus.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\ndatabase = "{database}"\n\n' + "\n".join(tables))
    run_certstatus("db", "upgrade", "--config", str(config))
    # Imports every source, then signs the precomputed CAs; exit code 1 when a source was refused.
    generated = subprocess.run([*CERTSTATUS, "generate", "--config", str(config), "--processes", "0"],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
    server = start_server(config.parent, config, port=port)
    try:
        yield {"cas": cas, "server": server, "config": config, "folder": folder, "generated": generated}
    finally:
        server.stop()


@pytest.mark.parametrize("mode, source", CAS, ids=[f"{m}-{s}" for m, s in CAS])
def test_minus_one_zero_and_255_are_answered_each_for_itself(served: dict, mode: str, source: str) -> None:
    ca = served["cas"][(mode, source)]
    url = f"{served['server'].url}{mode}-{source}"
    answers = {}
    for serial, (text, expected) in EXPECTED.items():
        respout = served["folder"] / f"{mode}-{source}-{serial}.der"
        assert openssl_serial_status(ca.cert_path, text, url, ca.cert_path, respout=respout) == expected, f"serial {serial} ({text})"
        answers[serial] = respout.read_bytes()
        response = ocsp.load_der_ocsp_response(answers[serial])
        assert response.serial_number == serial  # the CertID answered is the one asked
    generated = served["generated"]
    assert generated.returncode == 0, generated.stdout + generated.stderr  # no source refused
    if mode == "precomputed":  # the bytes served are the generator's row for that very serial
        settings = load_config(served["config"])
        store = open_configured_store(settings)
        try:
            issuer_id = store.register_issuer(f"{mode}-{source}", ca.certificate.public_bytes(Encoding.DER))
            for serial in (-1, 0, 255):
                stored = store.precomputed(issuer_id, serial, "sha1")
                assert stored is not None and stored.der == answers[serial], f"serial {serial}"
        finally:
            store.close()
