"""CA/Browser Forum BR §4.9.9: a certificate is answered authoritatively within 15 minutes of its issuance.

Without an operator the path is the refresher of `certstatus serve`: every
``FILE_POLL_SECONDS`` it looks at the size and mtime of each local issued
list and ``index.txt`` and imports what changed (a push through the admin API
or `certstatus issue` is answered at once). Here a real `certstatus serve`
with the default poll answers a serial `unknown` (issuance known: never
`good` for an unassigned serial, §4.9.10), the CA's issued list or
``index.txt`` gets the serial, and `openssl ocsp` sees it `good` — live, and precomputed (the
new serial signed live until the generator's next pass; the edge cache's
earlier `unknown` dropped with the change).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
import time
from pathlib import Path

import pytest

from certstatus.demo_pki import DemoPki
from certstatus.sources.refresh import FILE_POLL_SECONDS, Refresher
from tests.precomputed_helpers import copy_pki
from tests.processes import ServeProcess, free_port, openssl_serial_status

pytestmark = pytest.mark.integration

#: CA/Browser Forum Baseline Requirements §4.9.9: an authoritative answer (not unknown) within 15 minutes of issuance.
ISSUANCE_RULE = dt.timedelta(minutes=15)
#: A bound for one import after the poll saw the change: bench/README.md measures ~9 s for an
#: `index.txt` of 1 000 000 certificates; a CA needs a far larger list to get near this.
IMPORT_ALLOWANCE = dt.timedelta(minutes=5)
#: How long the test waits for the new serial to be good: generous (the default poll is seconds),
#: and within the rule.
DEADLINE = 120.0
NEW_SERIAL = 0x5EED_0F_2026


def test_the_default_file_poll_leaves_an_import_room_within_the_rule() -> None:
    assert inspect.signature(Refresher).parameters["file_poll"].default == FILE_POLL_SECONDS
    assert dt.timedelta(seconds=FILE_POLL_SECONDS) + IMPORT_ALLOWANCE <= ISSUANCE_RULE


def _table(name: str, pki: DemoPki, extra: str) -> str:
    return (
        f'[ca.{name}]\ncertificate = "{pki.ca_cert}"\nsigner_certificate = "{pki.ocsp_cert}"\n'
        f'signer_key = "{pki.ocsp_key}"\ncrl = "{pki.crl}"\npath = "/{name}"\n{extra}\n'
    )


@pytest.fixture
def server(demo_pki: DemoPki, demo_pki_rsa: DemoPki, tmp_path: Path):
    pkis = {"issued-live": copy_pki(demo_pki, tmp_path / "ec"), "index-precomputed": copy_pki(demo_pki_rsa, tmp_path / "rsa")}
    port = free_port()
    config = tmp_path / "certstatus.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\ndatabase = "{tmp_path / "store.sqlite3"}"\n\n'
        + _table("issued-live", pkis["issued-live"], f'issued = "{pkis["issued-live"].issued}"')
        + _table("index-precomputed", pkis["index-precomputed"], f'index = "{pkis["index-precomputed"].index}"\nmode = "precomputed"')
    )
    process = ServeProcess.start(config, port)
    try:
        yield process, pkis
    finally:
        process.stop()


def _issue(name: str, pki: DemoPki) -> None:
    """What the CA does when it issues NEW_SERIAL: one more line in its issued list or index.txt."""
    if name.startswith("issued"):
        with pki.issued.open("a") as issued:
            issued.write(f"{NEW_SERIAL:x}\n")
    else:
        with pki.index.open("a") as index:
            index.write(f"V\t301231235959Z\t\t{NEW_SERIAL:X}\tunknown\t/CN=new.demo.test\n")


@pytest.mark.parametrize("name", ["issued-live", "index-precomputed"])
def test_a_newly_issued_serial_becomes_good_through_the_polled_file(server, name: str) -> None:
    process, pkis = server
    pki, url = pkis[name], f"{process.url}{name}"
    ask = lambda: openssl_serial_status(pki.ca_cert, f"0x{NEW_SERIAL:X}", url, pki.chain)  # noqa: E731
    assert ask() == "unknown"  # issuance known: never good for a serial not issued
    assert ask() == "unknown"  # also from the edge cache, which now holds the answer

    _issue(name, pki)
    written = time.monotonic()
    while (status := ask()) != "good" and time.monotonic() - written < DEADLINE:
        time.sleep(0.5)

    assert status == "good", f"still {status!r} {DEADLINE:.0f} s after the issuance was written:\n{process.log.read_text()}"
    print(f"\n{name}: good {time.monotonic() - written:.1f} s after the issuance was written (poll {FILE_POLL_SECONDS:g} s)")
    assert openssl_serial_status(pki.ca_cert, f"0x{NEW_SERIAL + 1:X}", url, pki.chain) == "unknown"


def test_a_bad_line_refuses_the_whole_list_loudly_and_the_list_before_keeps_serving(server) -> None:
    process, pkis = server
    pki, url = pkis["issued-live"], f"{process.url}issued-live"
    good = f"0x{pki.serials['good']:X}"
    assert openssl_serial_status(pki.ca_cert, good, url, pki.chain) == "good"
    lines = pki.issued.read_text().splitlines()
    pki.issued.write_text("\n".join(lines[:1] + ["12,34"] + lines[1:]) + "\n")  # a corrupt line 2, every serial still there

    written = time.monotonic()
    while not (refusals := _refusals(process.log, pki.issued)) and time.monotonic() - written < DEADLINE:
        time.sleep(0.5)

    assert refusals, f"no refusal of {pki.issued} logged within {DEADLINE:.0f} s:\n{process.log.read_text()}"
    record = refusals[0]
    assert record["level"] == "error"
    assert "line 2: '12,34' is not a hexadecimal serial" in record["message"]
    assert "The whole list is refused" in record["message"]
    assert openssl_serial_status(pki.ca_cert, good, url, pki.chain) == "good"  # the list imported before serves


def _refusals(log: Path, origin: Path) -> list[dict]:
    """The JSON log records of `serve` that report ``origin`` refused."""
    records = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and str(origin) in str(record.get("message")) and "refused" in str(record.get("message")):
                records.append(record)
    return records
