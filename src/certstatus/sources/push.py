"""Status pushed by a CA in real time: revoke, unrevoke, issue (CLI and admin API).

:func:`parse_change` turns operator input (strings, as typed or as JSON)
into a :class:`~certstatus.store.base.StatusChange`, refusing a malformed
serial, reason or time with :class:`PushError`; :func:`apply_push` writes a
batch in one store transaction and then notifies the change feed (the hook
precomputed mode re-signs from).

``unrevoke`` removes a revocation that was *pushed*; a revocation listed by
a CRL or ``index.txt`` stays until that source stops listing it (a released
certificateHold disappears with the CA's next CRL or delta CRL).
:func:`apply_push` says, for each unrevoked serial, whether a pushed
revocation was removed and which sources still revoke it (:class:`Unrevoked`).

Refused input (:class:`PushError`): a serial that is not hexadecimal or is
longer than 20 octets (RFC 5280 §4.1.2.2; the OCSP request path still answers
such serials, ``unknown``), a reason that is not an RFC 5280 reason, a time
without a zone or outside :data:`EARLIEST_TIME`..:data:`LATEST_TIME`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

from certstatus.clock import UTC, Clock
from certstatus.errors import CertstatusError
from certstatus.model import RevokedEntry, serial_key
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.importer import CaTarget
from certstatus.sources.issued import parse_serial
from certstatus.store.base import PUSH_KIND, ChangeCount, StatusChange, StatusWriter

ACTIONS = ("revoke", "unrevoke", "issue")
#: Longest serialNumber a CA may use: 20 octets of DER INTEGER content (RFC 5280 §4.1.2.2).
MAX_SERIAL_OCTETS = 20
#: The range of pushed revocation and invalidity times (UTC): from the first year X.509 times
#: encode (RFC 5280 §4.1.2.5) to the last a four-digit GeneralizedTime can carry.
EARLIEST_TIME = dt.datetime(1950, 1, 1, tzinfo=UTC)
LATEST_TIME = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
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


def _shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error message must not echo megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def parse_reason(text: str | None) -> x509.ReasonFlags | None:
    """``keyCompromise``, ``key_compromise``, ... → ReasonFlags; None/empty → None; PushError otherwise."""
    if text is None or text == "":
        return None
    flag = REASON_NAMES.get(str(text).strip().lower().replace("_", "").replace(" ", ""))
    if flag is None:
        raise PushError(f"reason {_shown(text)} is not an RFC 5280 reason (keyCompromise, superseded, certificateHold, ...)")
    return flag


def parse_time(text: str | None, default: dt.datetime | None = None) -> dt.datetime | None:
    """ISO 8601 with a zone (``2026-01-02T03:04:05Z``) → aware UTC, whole seconds; PushError otherwise."""
    if text is None or text == "":
        return default
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise PushError(f"time {_shown(text)} is not ISO 8601 (write e.g. 2026-01-02T03:04:05Z)") from None
    if value.tzinfo is None:
        raise PushError(f"time {_shown(text)} has no time zone (end it with Z for UTC)")
    try:
        value = value.astimezone(UTC).replace(microsecond=0)
    except OverflowError:  # a zone offset that moves it past year 1 or 9999
        value = None
    if value is None or not EARLIEST_TIME <= value <= LATEST_TIME:
        raise PushError(f"time {_shown(text)} is out of range: give a UTC time from {EARLIEST_TIME:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d}")
    return value


def parse_change(fields: Mapping[str, object], now: dt.datetime) -> StatusChange:
    """One change from ``{"action", "serial", "revocation_time"?, "reason"?, "invalidity_date"?}``.

    ``serial`` is hexadecimal (``1A2B``, ``0x1a2b``, ``1a:2b``); a revoke
    without ``revocation_time`` is revoked at ``now``. Raises :class:`PushError`.
    """
    action = fields.get("action")
    if action not in ACTIONS:
        raise PushError(f"action {_shown(action)} is not one of {', '.join(ACTIONS)}")
    raw_serial = fields.get("serial")
    serial = parse_serial(raw_serial) if isinstance(raw_serial, str) else None
    if serial is None:
        raise PushError(f"serial {_shown(raw_serial)} is not a hexadecimal serial number (e.g. 1A2B or 0x1a2b)")
    if len(serial_key(serial)) > MAX_SERIAL_OCTETS:
        raise PushError(
            f"serial {_shown(raw_serial)} is {len(serial_key(serial))} octets long; RFC 5280 §4.1.2.2 allows at most "
            f"{MAX_SERIAL_OCTETS} (a positive serial below 2^159)"
        )
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


@dataclass(frozen=True, slots=True)
class SourceRevocation:
    """A revocation one source holds: its kind (``crl``, ``delta``, ``index``, ``push``), origin
    (path or URL, as in ``certstatus sources``) and entry."""

    kind: str
    origin: str
    entry: RevokedEntry


@dataclass(frozen=True, slots=True)
class Unrevoked:
    """What an unrevoke did to one serial: ``removed`` is True when a pushed revocation was
    deleted; ``still_revoked_by`` are the revocations other sources hold (an unrevoke cannot
    remove those: the source must stop listing the serial)."""

    serial_number: int
    removed: bool
    still_revoked_by: tuple[SourceRevocation, ...]


@dataclass(frozen=True, slots=True)
class PushResult:
    """What one push did: ``changes`` applied, ``changed`` status rows written (0: the store
    already held exactly this), and an :class:`Unrevoked` per serial of its unrevokes."""

    changes: int
    changed: ChangeCount
    unrevoked: tuple[Unrevoked, ...] = ()


def apply_push(
    store: StatusWriter, target: CaTarget, changes: Sequence[StatusChange], clock: Clock, feed: ChangeFeed | None = None
) -> PushResult:
    """Write ``changes`` for ``target`` in one transaction, then publish them to ``feed``.

    Reads the revocations of each unrevoked serial before and after (two
    lookups per unrevoke) to report what changed. Raises :class:`PushError`
    (403) when the CA does not accept pushes.
    """
    if not target.settings.push:
        raise PushError(f"CA {target.settings.name!r} does not accept pushes: set push = true", 403)
    unrevoked = list(dict.fromkeys(change.serial_number for change in changes if change.action == "unrevoke"))
    pushed_before = {serial for serial in unrevoked if PUSH_KIND in store.revocations(target.issuer_id, serial)}
    changed = store.apply_changes(target.issuer_id, changes, at=clock.now())
    if feed is not None:
        feed.publish(target.issuer_id, tuple(change.serial_number for change in changes))
    origins = {kind: state.origin for kind, state in store.source_states(target.issuer_id).items()} if unrevoked else {}
    outcomes = []
    for serial in unrevoked:
        after = store.revocations(target.issuer_id, serial)
        others = tuple(SourceRevocation(kind, origins.get(kind, kind), entry) for kind, entry in sorted(after.items()))
        outcomes.append(Unrevoked(serial, serial in pushed_before and PUSH_KIND not in after, others))
    return PushResult(len(changes), changed, tuple(outcomes))
