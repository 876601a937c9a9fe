"""parse_index: OpenSSL CA databases from the demo PKI and from real `openssl ca` runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from certstatus.clock import UTC
from certstatus.demo_pki import DemoPki
from certstatus.errors import SourceError
from certstatus.model import RevokedEntry
from certstatus.sources.index_txt import parse_index
from tests.openssl_ca import OpenSslCa

VALID = "V\t301231235959Z\t\t1A2B\tunknown\t/CN=valid"


def _index(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def test_demo_index_lists_issued_and_revoked_consistently_with_the_crl(demo_pki: DemoPki) -> None:
    data = parse_index(demo_pki.index.read_bytes(), origin=str(demo_pki.index))

    ocsp = x509.load_pem_x509_certificate(demo_pki.ocsp_cert.read_bytes())
    issued_names = set(demo_pki.serials) - {"unknown"}
    assert set(data.issued) == {demo_pki.serials[n] for n in issued_names} | {ocsp.serial_number}
    assert len(data.issued) == len(issued_names) + 1
    by_serial = {e.serial_number: e for e in data.revoked}
    times = demo_pki.revocation_times
    assert set(by_serial) == {demo_pki.serials[n] for n in times}
    for name, reason in {
        "revoked-keycompromise": x509.ReasonFlags.key_compromise,
        "revoked-superseded": x509.ReasonFlags.superseded,
        "revoked-hold": x509.ReasonFlags.certificate_hold,
        "revoked-unspecified": None,
    }.items():
        entry = by_serial[demo_pki.serials[name]]
        assert (entry.reason, entry.revocation_time) == (reason, times[name]), name
    compromised = by_serial[demo_pki.serials["revoked-keycompromise"]]
    assert compromised.invalidity_date == times["revoked-keycompromise"] - dt.timedelta(hours=6)
    # Every line's expiry is the certificate's notAfter; the E line of the expired leaf included.
    not_after = {entry.serial_number: entry.not_after for entry in data.certificates}
    assert [entry.serial_number for entry in data.certificates] == list(data.issued)
    for name in issued_names:
        leaf = x509.load_pem_x509_certificate(demo_pki.leaves[name].read_bytes())
        assert not_after[leaf.serial_number] == leaf.not_valid_after_utc, name


def test_index_written_by_openssl_ca_parses_with_reasons_and_compromise_times(tmp_path: Path) -> None:
    ca = OpenSslCa(tmp_path / "ca")
    names = ("compromised", "ca-compromised", "held", "superseded", "plain", "valid")
    serials = {name: ca.issue(name) for name in names}
    ca.revoke("compromised", reason="keyCompromise", compromise_time="20240102030405Z")
    ca.revoke("ca-compromised", ca_compromise_time="20230405060708Z")
    ca.revoke("held", hold_instruction="holdInstructionReject")
    ca.revoke("superseded", reason="superseded")
    ca.revoke("plain")

    data = parse_index(ca.index_path.read_bytes(), origin="index.txt")

    assert data.issued == tuple(serials[n] for n in names)
    by_serial = {e.serial_number: e for e in data.revoked}
    assert set(by_serial) == {serials[n] for n in names[:-1]}
    compromised = by_serial[serials["compromised"]]
    assert compromised.reason is x509.ReasonFlags.key_compromise
    assert compromised.invalidity_date == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    ca_compromised = by_serial[serials["ca-compromised"]]
    assert ca_compromised.reason is x509.ReasonFlags.ca_compromise
    assert ca_compromised.invalidity_date == dt.datetime(2023, 4, 5, 6, 7, 8, tzinfo=UTC)
    held = by_serial[serials["held"]]
    assert (held.reason, held.invalidity_date) == (x509.ReasonFlags.certificate_hold, None)
    assert by_serial[serials["superseded"]].reason is x509.ReasonFlags.superseded
    assert by_serial[serials["plain"]].reason is None
    now = dt.datetime.now(UTC)
    assert all(abs(e.revocation_time - now) < dt.timedelta(minutes=5) for e in data.revoked)


def test_revoked_line_fields_become_a_revoked_entry() -> None:
    data = parse_index(
        _index(
            VALID,
            "R\t301231235959Z\t240102030405Z,keyCompromise,20231231000000Z\t0F\tunknown\t/CN=r1",
            "R\t301231235959Z\t240102030405Z,REMOVEFROMCRL\t10\tunknown\t/CN=r2",
            "R\t301231235959Z\t20240102030405Z,certificateHold,holdInstructionNone\t11\tunknown\t/CN=r3",
            "E\t200101000000Z\t\t12\tunknown\t/CN=expired",
        ),
        origin="index.txt",
    )
    revoked_at = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert data.issued == (0x1A2B, 0x0F, 0x10, 0x11, 0x12)
    assert data.revoked == (
        RevokedEntry(0x0F, revoked_at, x509.ReasonFlags.key_compromise,
                     dt.datetime(2023, 12, 31, tzinfo=UTC)),
        RevokedEntry(0x10, revoked_at, x509.ReasonFlags.remove_from_crl),
        RevokedEntry(0x11, revoked_at, x509.ReasonFlags.certificate_hold),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "year"),
    [("491231235959Z", 2049), ("500101000000Z", 1950), ("000101000000Z", 2000),
     ("991231235959Z", 1999), ("20500101000000Z", 2050), ("19490101000000Z", 1949)],
)  # fmt: skip
def test_two_digit_years_pivot_at_1950_and_four_digit_years_are_kept(text: str, year: int) -> None:
    line = f"R\t301231235959Z\t{text}\t01\tunknown\t/CN=x"
    (entry,) = parse_index(_index(line), origin="index.txt").revoked
    assert entry.revocation_time.year == year


def test_blank_lines_and_crlf_line_endings_are_accepted() -> None:
    data = parse_index(f"\r\n{VALID}\r\n\n   \nE\t200101000000Z\t\t02\tunknown\t/CN=e\r\n".encode(),
                       origin="index.txt")  # fmt: skip
    assert data.issued == (0x1A2B, 0x02)
    assert data.revoked == ()


def test_empty_index_has_no_serials() -> None:
    assert parse_index(b"", origin="index.txt").issued == ()


def test_subject_with_a_tab_stays_in_the_last_field() -> None:
    line = "V\t301231235959Z\t\t03\tunknown\t/CN=a\tb"
    assert parse_index(_index(line), origin="index.txt").issued == (3,)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("X\t301231235959Z\t\t01\tunknown\t/CN=x", "status 'X' is not V, R or E"),
        ("V\t3012312359Z\t\t01\tunknown\t/CN=x", "expiry '3012312359Z' is not"),
        ("V\t301331235959Z\t\t01\tunknown\t/CN=x", "expiry '301331235959Z' is not a valid date"),
        ("V\t301231235959Z\t\t0G\tunknown\t/CN=x", "serial '0G' is not hexadecimal"),
        ("V\t301231235959Z\t\t--01\tunknown\t/CN=x", "serial '--01' is not hexadecimal"),
        ("V\t301231235959Z\t\t-\tunknown\t/CN=x", "serial '-' is not hexadecimal"),
        ("V\t301231235959Z\t\t\tunknown\t/CN=x", "serial '' is not hexadecimal"),
        ("V\t301231235959Z\t\t01\tunknown", "expected 6 tab-separated fields, found 5"),
        ("V 301231235959Z 01 unknown /CN=x", "expected 6 tab-separated fields, found 1"),
        ("R\t301231235959Z\t\t01\tunknown\t/CN=x", "empty revocation field"),
        ("R\t301231235959Z\tyesterday\t01\tunknown\t/CN=x", "revocation time 'yesterday' is not"),
        ("R\t301231235959Z\t240102030405Z,stolen\t01\tunknown\t/CN=x", "reason 'stolen' is not"),
        ("R\t301231235959Z\t240102030405Z,keyTime,soon\t01\tunknown\t/CN=x", "compromise time 'soon'"),
        ("R\t301231235959Z\t240102030405Z,a,b,c\t01\tunknown\t/CN=x", "more than 3 parts"),
        ("V\t301231235959Z\t240102030405Z\t01\tunknown\t/CN=x", "status V line has a revocation"),
    ],
)
def test_malformed_line_is_refused_naming_line_number_and_problem(line: str, problem: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_index(_index(VALID, "", line), origin="/etc/ca/index.txt")
    assert caught.value.origin == "/etc/ca/index.txt"
    assert caught.value.problem.startswith("line 3: ")
    assert problem in caught.value.problem
    assert "The whole file is refused" in caught.value.problem


def test_signed_serials_as_openssl_ca_writes_them(tmp_path: Path) -> None:
    """-1 revoked next to 0 and 255 valid: three serials, the CRL `openssl ca -gencrl` makes from them has -1."""
    ca = OpenSslCa(tmp_path / "ca")
    ca.index_path.write_text(
        "R\t301231235959Z\t240102030405Z,keyCompromise\t-01\tunknown\t/CN=minus-one\n"
        "V\t301231235959Z\t\t00\tunknown\t/CN=zero\n"
        "V\t301231235959Z\t\tFF\tunknown\t/CN=255\n"
    )
    data = parse_index(ca.index_path.read_bytes(), origin="index.txt")

    assert data.issued == (-1, 0, 255)
    assert [(entry.serial_number, entry.reason) for entry in data.revoked] == [(-1, x509.ReasonFlags.key_compromise)]
    assert [entry.serial_number for entry in x509.load_pem_x509_crl(ca.gencrl())] == [-1]


def test_repeated_negative_serial_is_named_as_openssl_writes_it() -> None:
    with pytest.raises(SourceError, match="line 2: serial -01 is already listed on line 1"):
        parse_index(_index(VALID.replace("1A2B", "-01"), VALID.replace("1A2B", "-1")), origin="index.txt")


def test_repeated_serial_is_refused_naming_both_lines() -> None:
    with pytest.raises(SourceError, match="line 2: serial 1A2B is already listed on line 1"):
        parse_index(_index(VALID, VALID.replace("V\t", "E\t", 1)), origin="index.txt")


def test_same_serial_written_with_leading_zero_is_a_repeat() -> None:
    with pytest.raises(SourceError, match="line 2: serial 1A2B"):
        parse_index(_index(VALID, VALID.replace("1A2B", "001a2b")), origin="index.txt")
