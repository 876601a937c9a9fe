"""Parse a list of issued serial numbers (one hexadecimal serial per line).

The list tells the responder which serials a CA really issued, so a serial not
on it is answered as revoked (extended revoked, RFC 6960 §2.2) rather than good.
Accepted line forms, all meaning the same serial::

    0123abcd
    0x0123ABCD
    01:23:ab:cd
    serial=0123ABCD        (what ``openssl x509 -noout -serial`` prints)
    # a comment            (ignored, as are blank lines and trailing "# ...")
"""

from __future__ import annotations

import re

from certstatus.errors import SourceError

_PLAIN = re.compile(r"[0-9A-Fa-f]+")
_COLONS = re.compile(r"[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2})+")


def parse_issued(data: bytes, *, origin: str) -> tuple[int, ...]:
    """Return the serials listed in ``data``, deduplicated and sorted ascending.

    Each non-blank, non-comment line holds one positive serial in hex, with an
    optional ``serial=`` or ``0x`` prefix and optional ``:`` between byte
    pairs; surrounding whitespace is ignored.

    Raises :class:`SourceError` naming the first line that is not such a serial.
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
    """One serial in any of the module's line forms (hex), or None when ``text`` is not one."""
    token = text.strip()
    if token[:7].lower() == "serial=":
        token = token[7:].strip()
    if token[:2].lower() == "0x":
        token = token[2:]
    if _PLAIN.fullmatch(token):
        return int(token, 16)
    if _COLONS.fullmatch(token):
        return int("".join(pair.zfill(2) for pair in token.split(":")), 16)
    return None


def _parse_serial(line: str, number: int, origin: str) -> int:
    serial = parse_serial(line)
    if serial is None:
        raise _line_error(origin, number, f"{line!r} is not a hexadecimal serial number")
    return serial


def _line_error(origin: str, number: int, problem: str) -> SourceError:
    return SourceError(
        origin, f"line {number}: {problem}; write one hex serial per line (e.g. 0x1A2B or 1a:2b)."
    )
