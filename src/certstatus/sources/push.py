"""Status pushed by a CA in real time: revoke, unrevoke, issue (CLI and admin API).

:func:`parse_change` turns operator input (strings, as typed or as JSON)
into a :class:`~certstatus.store.base.StatusChange`, refusing a malformed
serial, reason or time with :class:`PushError`; :func:`apply_push` writes a
batch in one store transaction and then notifies the change feed (the hook
precomputed mode re-signs from).

``unrevoke`` removes a revocation that was *pushed*; a revocation listed by
a CRL or ``index.txt`` stays until that source stops listing it (a released
certificateHold disappears with the CA's next CRL or delta CRL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from cryptography import x509

from certstatus.clock import UTC, Clock
from certstatus.errors import CertstatusError
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.importer import CaTarget
from certstatus.sources.issued import parse_serial
from certstatus.store.base import StatusChange, StatusStore

ACTIONS = ("revoke", "unrevoke", "issue")
#: RFC 5280 §5.3.1 names (keyCompromise) and cryptography's (key_compromise), case-insensitive.
REASON_NAMES: dict[str, x509.ReasonFlags] = {
    key: flag
    for flag in x509.ReasonFlags
    if flag is not x509.ReasonFlags.remove_from_crl
    for key in (flag.value.lower(), flag.name.replace("_", ""))
}


class PushError(CertstatusError):
    """A pushed change was refused (unknown CA, pushes off, malformed serial, reason or time).

    ``status`` is the HTTP status the admin API answers with (400, 403, 404).
    """

    def __init__(self, problem: str, status: int = 400) -> None:
        self.problem = problem
        self.status = status
        super().__init__(problem)


def parse_reason(text: str | None) -> x509.ReasonFlags | None:
    """``keyCompromise``, ``key_compromise``, ... → ReasonFlags; None/empty → None; PushError otherwise."""
    if text is None or text == "":
        return None
    flag = REASON_NAMES.get(str(text).strip().lower().replace("_", "").replace(" ", ""))
    if flag is None:
        raise PushError(f"reason {text!r} is not an RFC 5280 reason (keyCompromise, superseded, certificateHold, ...)")
    return flag


def parse_time(text: str | None, default: dt.datetime | None = None) -> dt.datetime | None:
    """ISO 8601 with a zone (``2026-01-02T03:04:05Z``) → aware UTC, whole seconds; PushError otherwise."""
    if text is None or text == "":
        return default
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise PushError(f"time {text!r} is not ISO 8601 (write e.g. 2026-01-02T03:04:05Z)") from None
    if value.tzinfo is None:
        raise PushError(f"time {text!r} has no time zone (end it with Z for UTC)")
    return value.astimezone(UTC).replace(microsecond=0)


def parse_change(fields: Mapping[str, object], now: dt.datetime) -> StatusChange:
    """One change from ``{"action", "serial", "revocation_time"?, "reason"?, "invalidity_date"?}``.

    ``serial`` is hexadecimal (``1A2B``, ``0x1a2b``, ``1a:2b``); a revoke
    without ``revocation_time`` is revoked at ``now``. Raises :class:`PushError`.
    """
    action = fields.get("action")
    if action not in ACTIONS:
        raise PushError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    raw_serial = fields.get("serial")
    serial = parse_serial(raw_serial) if isinstance(raw_serial, str) else None
    if serial is None:
        raise PushError(f"serial {raw_serial!r} is not a hexadecimal serial number (e.g. 1A2B or 0x1a2b)")
    if action != "revoke":
        return StatusChange(str(action), serial)
    return StatusChange(
        "revoke",
        serial,
        revocation_time=parse_time(fields.get("revocation_time"), now.replace(microsecond=0)),  # type: ignore[arg-type]
        reason=parse_reason(fields.get("reason")),  # type: ignore[arg-type]
        invalidity_date=parse_time(fields.get("invalidity_date")),  # type: ignore[arg-type]
    )


def find_target(targets: Mapping[str, CaTarget], ca_name: str) -> CaTarget:
    """The CA named ``ca_name`` if it accepts pushes; PushError (404/403) otherwise."""
    target = targets.get(ca_name)
    if target is None:
        raise PushError(f"no CA named {ca_name!r} is configured (known: {', '.join(sorted(targets)) or 'none'})", 404)
    if not target.settings.push:
        raise PushError(f"CA {ca_name!r} does not accept pushes: set push = true in its [ca.{ca_name}] table", 403)
    return target


def apply_push(
    store: StatusStore, target: CaTarget, changes: Sequence[StatusChange], clock: Clock, feed: ChangeFeed | None = None
) -> None:
    """Write ``changes`` for ``target`` in one transaction, then publish them to ``feed``."""
    if not target.settings.push:
        raise PushError(f"CA {target.settings.name!r} does not accept pushes: set push = true", 403)
    store.apply_changes(target.issuer_id, changes, at=clock.now())
    if feed is not None:
        feed.publish(target.issuer_id, tuple(change.serial_number for change in changes))
