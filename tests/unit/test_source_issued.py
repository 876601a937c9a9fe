"""parse_issued: lists of issued serial numbers, one hexadecimal serial per line."""

from __future__ import annotations

import subprocess

import pytest

from certstatus.demo_pki import DemoPki
from certstatus.errors import SourceError
from certstatus.sources.issued import parse_issued


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
    ["xyz", "0x", "serial=", "12 34", "1:2:", ":12", "12::34", "123:45", "-12", "0x-1", "12,34"],
)
def test_malformed_line_is_refused_naming_its_line_number(line: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_issued(f"# header\n01\n{line}\n02\n".encode(), origin="/srv/issued.txt")
    assert caught.value.origin == "/srv/issued.txt"
    assert caught.value.problem.startswith(f"line 3: {line.strip()!r} is not a hexadecimal serial")


def test_non_ascii_byte_is_refused_naming_its_line_number() -> None:
    with pytest.raises(SourceError, match="line 2: contains a non-ASCII byte"):
        parse_issued("01\n0é\n".encode(), origin="issued.txt")
