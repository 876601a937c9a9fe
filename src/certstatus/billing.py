"""Billing statistics from the audit log: certificates queried per requestor (or issuer) and period.

Reads the JSON lines of :mod:`certstatus.audit` — the live file and its
rotated predecessors — and counts, for every line whose time falls in
[``start``, ``end``):

* ``requests``: every request, refused ones included;
* ``certificates``: the CertIDs of successful answers (what is billed);
* ``good``, ``revoked``, ``unknown``: those certificates by certStatus;
* ``refused``: requests answered with an unsuccessful responseStatus.

Rows are keyed by ``requestor`` (the authenticated TLS client or request
signer; an unauthenticated request by its client address, never by the
requestorName it claims) or ``issuer`` (the CA), optionally split per ``day`` or ``month`` (UTC). Unreadable lines are
counted and reported, never fatal.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

COLUMNS = ("requests", "certificates", "good", "revoked", "unknown", "refused")


@dataclass
class Row:
    """Counts of one (key, period)."""

    key: str
    period: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))


@dataclass
class Report:
    """Rows sorted by period then key, and the number of lines that could not be read."""

    rows: list[Row]
    bad_lines: int
    files: list[str]

    def totals(self) -> dict[str, int]:
        return {column: sum(row.counts[column] for row in self.rows) for column in COLUMNS}


def log_files(path: str | Path) -> list[str]:
    """The audit file and its rotated copies (``path.1`` ... ), oldest first."""
    path = str(path)
    rotated = [p for p in glob.glob(glob.escape(path) + ".*") if p.rsplit(".", 1)[-1].isdigit()]
    rotated.sort(key=lambda p: int(p.rsplit(".", 1)[-1]), reverse=True)
    return rotated + ([path] if os.path.exists(path) else [])


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_records(files: Iterable[str]) -> Iterator[dict | None]:
    """Yield each line's record, or None for a line that is not an audit record."""
    for name in files:
        with open(name, "rb") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    record["time"] = _parse_time(record["time"])
                    yield record
                except (ValueError, KeyError, TypeError, AttributeError):
                    yield None


def _period(when: dt.datetime, per: str) -> str:
    if per == "day":
        return f"{when:%Y-%m-%d}"
    if per == "month":
        return f"{when:%Y-%m}"
    return "all"


def billing_report(
    files: Iterable[str], start: dt.datetime, end: dt.datetime, *, by: str = "requestor", per: str = "none"
) -> Report:
    """Count the audit records of ``files`` in [start, end) (aware UTC) by ``by`` and ``per``.

    ``by`` is ``"requestor"`` or ``"issuer"``; ``per`` is ``"none"``,
    ``"day"`` or ``"month"``. Raises ValueError for another value.
    """
    if by not in ("requestor", "issuer") or per not in ("none", "day", "month"):
        raise ValueError("by is requestor or issuer; per is none, day or month")
    files = list(files)
    rows: dict[tuple[str, str], Row] = {}
    bad = 0
    for record in read_records(files):
        if record is None:
            bad += 1
            continue
        when = record["time"]
        if not start <= when < end:
            continue
        key = record.get(by) or (record.get("client") if by == "requestor" else None) or "-"
        period = _period(when.astimezone(dt.timezone.utc), per)
        row = rows.setdefault((period, key), Row(key, period))
        counts = row.counts
        counts["requests"] += 1
        if record.get("response_status") != "successful":
            counts["refused"] += 1
            continue
        for cert in record.get("certs") or ():
            counts["certificates"] += 1
            if cert.get("status") in ("good", "revoked", "unknown"):
                counts[cert["status"]] += 1
    return Report([rows[k] for k in sorted(rows)], bad, files)
