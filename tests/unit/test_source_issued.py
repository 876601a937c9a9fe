"""parse_issued: lists of issued serial numbers, one hexadecimal serial per line."""

from __future__ import annotations

import subprocess

import pytest

from certstatus.demo_pki import DemoPki
from certstatus.errors import SourceError
from certstatus.sources.issued import parse_issued, parse_serial, serial_hex
from tests.openssl_ca import OpenSslCa


@pytest.mark.parametrize(
    "line",
    ["0123abcd", "0123ABCD", "123abcd", "0x0123abcd", "0X0123ABCD", "01:23:ab:cd", "01:23:AB:CD",
     "serial=0123ABCD", "SERIAL=01:23:ab:cd", "serial=0x123abcd", "  \t0123abcd  \t", "0123abcd # note"],
)  # fmt: skip
def test_every_accepted_form_reads_as_the_same_serial(line: str) -> None:
    assert parse_issued(f"{line}\n".encode(), origin="issued.txt") == (0x0123ABCD,)


def test_comments_blank_lines_and_duplicates_are_dropped_and_serials_sorted() -> None:
    text = b"# issued by CN=Demo CA\n\n0a\r\n  # indented comment\n03\n0x0A\n\n0:1\n"
    assert parse_issued(text, origin="issued.txt") == (0x01, 0x03, 0x0A)


def test_empty_list_has_no_serials() -> None:
    assert parse_issued(b"", origin="issued.txt") == ()
    assert parse_issued(b"# nothing issued yet\n", origin="issued.txt") == ()


def test_single_digit_byte_groups_are_padded() -> None:
    assert parse_issued(b"1:2:3\n", origin="issued.txt") == (0x010203,)


def test_openssl_x509_serial_output_parses_to_the_certificate_serial(demo_pki: DemoPki) -> None:
    outputs = [
        subprocess.run(
            ["openssl", "x509", "-noout", "-serial", "-in", str(path)],
            capture_output=True, check=True,
        ).stdout
        for path in demo_pki.leaves.values()
    ]  # fmt: skip
    assert parse_issued(b"".join(outputs), origin="serials") == tuple(sorted(demo_pki.serials.values()))


def test_demo_issued_list_has_every_issued_leaf_but_not_the_unknown_one(demo_pki: DemoPki) -> None:
    serials = set(parse_issued(demo_pki.issued.read_bytes(), origin=str(demo_pki.issued)))
    assert {s for n, s in demo_pki.serials.items() if n != "unknown"} <= serials
    assert demo_pki.serials["unknown"] not in serials


@pytest.mark.parametrize(
    "line",
    ["xyz", "0x", "serial=", "12 34", "1:2:", ":12", "12::34", "123:45", "- 12", "--12", "0x-1", "+12", "12,34", "-"],
)
def test_malformed_line_refuses_the_whole_list_naming_its_line_number(line: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_issued(f"# header\n01\n{line}\n02\n".encode(), origin="/srv/issued.txt")
    assert caught.value.origin == "/srv/issued.txt"
    assert caught.value.problem.startswith(f"line 3: {line.strip()!r} is not a hexadecimal serial")
    assert "The whole list is refused" in caught.value.problem


@pytest.mark.parametrize(
    "line, serial",
    [("-01", -1), ("-1", -1), ("serial=-01", -1), ("-0x01", -1), ("-0X1", -1), ("-01:00", -256),
     ("-80", -128), ("-81", -129), ("00", 0), ("-00", 0), ("FF", 255), ("00FF", 255), ("0xff", 255)],
)  # fmt: skip
def test_signed_hex_serials_read_as_openssl_writes_them(line: str, serial: int) -> None:
    assert parse_issued(f"{line}\n".encode(), origin="issued.txt") == (serial,)


def test_minus_one_zero_and_255_are_three_serials() -> None:
    """The list of a CA with serial -1 next to 0 and 255: no line refused, no two read as one."""
    assert parse_issued(b"-01\n00\nFF\n", origin="issued.txt") == (-1, 0, 255)


@pytest.mark.parametrize("serial", [0, 1, -1, 127, 128, 255, 256, -128, -129, -256, 2**159 - 1, -(2**159)])
def test_serial_hex_reads_back_as_the_same_serial(serial: int) -> None:
    text = serial_hex(serial)
    assert parse_serial(text) == serial
    assert len(text.lstrip("-")) % 2 == 0 and text == text.upper()


def test_serial_hex_is_what_openssl_prints(tmp_path) -> None:
    ca = OpenSslCa(tmp_path / "ca")
    ca.run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "leaf.key",
           "-out", "leaf.csr", "-subj", "/CN=leaf", "-config", str(ca.config))  # fmt: skip
    for serial in (-1, -129, 0, 127, 255, 0x1A2B3C):
        printed = ca.run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", str(serial),
                         "-noout", "-serial").decode().strip()  # fmt: skip
        assert printed == f"serial={serial_hex(serial)}"
        assert parse_issued(printed.encode(), origin="serials") == (serial,)


def test_non_ascii_byte_is_refused_naming_its_line_number() -> None:
    with pytest.raises(SourceError, match="line 2: contains a non-ASCII byte"):
        parse_issued("01\n0é\n".encode(), origin="issued.txt")
