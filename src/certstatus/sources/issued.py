"""Parse a list of issued serial numbers (one hexadecimal serial per line).

The list tells the responder which serials a CA really issued, so a serial not
on it is answered as revoked (extended revoked, RFC 6960 §2.2) rather than good.
Accepted line forms, all meaning the same serial::

    0123abcd
    0x0123ABCD
    01:23:ab:cd
    serial=0123ABCD        (what ``openssl x509 -noout -serial`` prints)
    # a comment            (ignored, as are blank lines and trailing "# ...")

A serial is the value of the certificate's serialNumber INTEGER, written in
hex with a leading ``-`` when negative, as OpenSSL prints it: ``-01`` (and
``serial=-01``, ``-0x01``) is -1, never 255 (``FF``). RFC 5280 §4.1.2.2 asks
for positive serials, but real CAs issued zero and negative ones.

One line that is not a serial refuses the whole list (naming the line, its
text and why): a list read in part would answer the certificates on the
missing lines as never issued. The list imported before keeps serving.
"""

from __future__ import annotations

import re

from certstatus.errors import SourceError

_PLAIN = re.compile(r"[0-9A-Fa-f]+")
_COLONS = re.compile(r"[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2})+")


def parse_issued(data: bytes, *, origin: str) -> tuple[int, ...]:
    """Return the serials listed in ``data``, deduplicated and sorted ascending.

    Each non-blank, non-comment line holds one serial in hex, with an
    optional ``serial=`` prefix, then an optional ``-`` (negative), an
    optional ``0x`` and optional ``:`` between byte pairs; surrounding
    whitespace is ignored.

    Raises :class:`SourceError` naming the first line that is not such a serial
    (its number, its text and why): the whole list is refused.
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _line_error(origin, line, "contains a non-ASCII byte") from None
    serials: set[int] = set()
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            serials.add(_parse_serial(line, number, origin))
    return tuple(sorted(serials))


def parse_serial(text: str) -> int | None:
    """One serial in any of the module's line forms (hex, ``-`` when negative), or None when ``text`` is not one."""
    token = text.strip()
    if token[:7].lower() == "serial=":
        token = token[7:].strip()
    sign = -1 if token[:1] == "-" else 1
    if sign < 0:
        token = token[1:]
    if token[:2].lower() == "0x":
        token = token[2:]
    if _PLAIN.fullmatch(token):
        return sign * int(token, 16)
    if _COLONS.fullmatch(token):
        return sign * int("".join(pair.zfill(2) for pair in token.split(":")), 16)
    return None


def serial_hex(serial_number: int) -> str:
    """``serial_number`` as OpenSSL writes it (``BN_bn2hex``: ``index.txt``, ``-serial``): upper-case hex
    of an even number of digits, ``-`` before a negative one (-1 → ``-01``, 255 → ``FF``, 0 → ``00``).

    :func:`parse_serial` reads it back.
    """
    digits = f"{abs(serial_number):X}"
    return ("-" if serial_number < 0 else "") + digits.zfill(len(digits) + len(digits) % 2)


def _parse_serial(line: str, number: int, origin: str) -> int:
    serial = parse_serial(line)
    if serial is None:
        raise _line_error(origin, number, f"{line!r} is not a hexadecimal serial number")
    return serial


def _line_error(origin: str, number: int, problem: str) -> SourceError:
    return SourceError(
        origin,
        f"line {number}: {problem}; write one hex serial per line (e.g. 0x1A2B, 1a:2b or -01). The whole list is "
        "refused (the one imported before keeps serving).",
    )
