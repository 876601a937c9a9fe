"""Parse an OpenSSL CA database (``index.txt``, as written by ``openssl ca``).

One certificate per line, six tab-separated fields::

    status  expiry  revocation  serial  filename  subject
    V       270219113010Z               1005    unknown   /CN=f
    R       270219113010Z   261121113010Z,keyTime,20240102030405Z   1000   unknown   /CN=a

``status`` is V (valid), R (revoked) or E (expired). ``serial`` is hex, with
a leading ``-`` when negative (``-01`` is -1: OpenSSL's ``BN_bn2hex``, as
``openssl ca`` writes a CA's zero or negative serials). Times are UTCTime
``YYMMDDHHMMSSZ`` (years 50-99 are 19xx, 00-49 are 20xx, RFC 5280 §4.1.2.5.1)
or GeneralizedTime ``YYYYMMDDHHMMSSZ``. The revocation field of an R line is
``revtime[,reason[,extra]]`` with OpenSSL's reason names; ``openssl ca`` writes
``keyTime``/``CAkeyTime`` (keyCompromise/cACompromise with the compromise time
as ``extra``) and ``holdInstruction`` (certificateHold with the instruction OID).
"""

from __future__ import annotations

import datetime as dt
import re

from cryptography import x509

from certstatus.clock import UTC
from certstatus.errors import SourceError
from certstatus.model import IssuedCertificate, RevokedEntry
from certstatus.sources.issued import serial_hex
from certstatus.sources.records import IndexData

# OpenSSL's reason names (apps/ca.c, crl_reasons), lower-cased, to the RFC 5280 reasonCode
# and whether the third field is a compromise time that becomes the invalidityDate.
_REASONS: dict[str, tuple[x509.ReasonFlags, bool]] = {
    "unspecified": (x509.ReasonFlags.unspecified, False),
    "keycompromise": (x509.ReasonFlags.key_compromise, True),
    "cacompromise": (x509.ReasonFlags.ca_compromise, True),
    "affiliationchanged": (x509.ReasonFlags.affiliation_changed, False),
    "superseded": (x509.ReasonFlags.superseded, False),
    "cessationofoperation": (x509.ReasonFlags.cessation_of_operation, False),
    "certificatehold": (x509.ReasonFlags.certificate_hold, False),
    "removefromcrl": (x509.ReasonFlags.remove_from_crl, False),
    "holdinstruction": (x509.ReasonFlags.certificate_hold, False),
    "keytime": (x509.ReasonFlags.key_compromise, True),
    "cakeytime": (x509.ReasonFlags.ca_compromise, True),
}
_TIME = re.compile(r"(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")
_SERIAL = re.compile(r"-?[0-9A-Fa-f]+")


def parse_index(data: bytes, *, origin: str) -> IndexData:
    """Parse an OpenSSL ``index.txt`` into every issued serial and the revoked entries.

    ``issued`` holds the serial of every V, R and E line in file order, and
    ``certificates`` the same with each line's expiry (the certificate's
    notAfter: an E line is an expired certificate, still issued);
    ``revoked`` one :class:`RevokedEntry` per R line (revocation time and
    invalidity date as aware UTC datetimes). Blank lines are ignored.

    Raises :class:`SourceError` naming the line number and the problem for a
    line that is not six tab-separated fields, has an unknown status letter, a
    bad time, serial or reason, or repeats a serial of an earlier line: the
    whole file is refused, as a file read in part would answer the
    certificates of the missing lines as never issued.
    """
    text = data.decode("utf-8", errors="replace")
    issued: list[int] = []
    certificates: list[IssuedCertificate] = []
    revoked: list[RevokedEntry] = []
    first_line: dict[int, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        serial, not_after, entry = _parse_line(line, number, origin)
        if serial in first_line:
            raise _line_error(
                origin, number, f"serial {serial_hex(serial)} is already listed on line {first_line[serial]}"
            )
        first_line[serial] = number
        issued.append(serial)
        certificates.append(IssuedCertificate(serial, not_after))
        if entry is not None:
            revoked.append(entry)
    return IndexData(issued=tuple(issued), revoked=tuple(revoked), certificates=tuple(certificates))


def _parse_line(line: str, number: int, origin: str) -> tuple[int, dt.datetime, RevokedEntry | None]:
    fields = line.split("\t", 5)
    if len(fields) != 6:
        raise _line_error(
            origin, number, f"expected 6 tab-separated fields, found {len(fields)}"
        )
    status, expiry, revocation, serial_text = fields[:4]
    if status not in ("V", "R", "E"):
        raise _line_error(origin, number, f"status {status!r} is not V, R or E")
    not_after = _parse_time(expiry, "expiry", number, origin)
    if not _SERIAL.fullmatch(serial_text):
        raise _line_error(origin, number, f"serial {serial_text!r} is not hexadecimal")
    serial = int(serial_text, 16)
    if status != "R":
        if revocation:
            raise _line_error(
                origin, number, f"status {status} line has a revocation field {revocation!r}"
            )
        return serial, not_after, None
    return serial, not_after, _parse_revocation(serial, revocation, number, origin)


def _parse_revocation(serial: int, field: str, number: int, origin: str) -> RevokedEntry:
    """``revtime[,reason[,extra]]`` of an R line."""
    if not field:
        raise _line_error(origin, number, "status R line has an empty revocation field")
    parts = field.split(",")
    if len(parts) > 3:
        raise _line_error(origin, number, f"revocation field {field!r} has more than 3 parts")
    revocation_time = _parse_time(parts[0], "revocation time", number, origin)
    reason: x509.ReasonFlags | None = None
    invalidity: dt.datetime | None = None
    if len(parts) >= 2:
        known = _REASONS.get(parts[1].lower())
        if known is None:
            raise _line_error(origin, number, f"revocation reason {parts[1]!r} is not an OpenSSL reason")
        reason, extra_is_time = known
        if len(parts) == 3 and extra_is_time:
            invalidity = _parse_time(parts[2], "compromise time", number, origin)
    return RevokedEntry(serial, revocation_time, reason, invalidity)


def _parse_time(text: str, what: str, number: int, origin: str) -> dt.datetime:
    """UTCTime ``YYMMDDHHMMSSZ`` or GeneralizedTime ``YYYYMMDDHHMMSSZ`` → aware UTC."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise _line_error(
            origin, number, f"{what} {text!r} is not YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ"
        )
    year = int(match[1])
    if len(match[1]) == 2:
        year += 1900 if year >= 50 else 2000
    try:
        month, day, hour, minute, second = (int(match[i]) for i in range(2, 7))
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise _line_error(origin, number, f"{what} {text!r} is not a valid date") from None


def _line_error(origin: str, number: int, problem: str) -> SourceError:
    return SourceError(
        origin,
        f"line {number}: {problem}; fix the line or regenerate the file with openssl ca. The whole file is "
        "refused (the one imported before keeps serving).",
    )
