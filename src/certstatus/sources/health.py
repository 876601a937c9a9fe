"""How fresh each CA's data is: the staleness rule, the sources never imported, and the ages of every source.

The rule: a CA's CRL view is as fresh as the newest nextUpdate among its
complete and delta CRLs; once ``now`` is past that nextUpdate plus the CA's
``stale_grace``, the data is stale — the refresher could not get a newer CRL
— and requests get tryLater, unless the CA is configured with
``on_stale = "serve"``. Sources without a nextUpdate (index, issued list,
pushes) never go stale by time.

Fail closed: a CA has data only when every configured source has been
imported at least once — the store holds a row for it (:func:`missing_sources`).
A source that was refused from the start would otherwise leave the CA
answering from the others alone: with ``index`` imported and the CRL refused,
every certificate the CRL revokes would be "good". A source imported once and
refused later keeps serving what it imported (the staleness rule decides).

:func:`source_ages` is the small API the metrics exporter reads: one
:class:`SourceAge` per imported source of every CA, from the store, so every
process of a fleet reports the same figures.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from certstatus.config import CaSettings
from certstatus.store.base import CRL_KIND, DELTA_KIND, SourceState, StatusStore


@dataclass(frozen=True, slots=True)
class Freshness:
    """A CA's data as the request path sees it.

    ``has_data``: a source was imported and every configured source was
    imported at least once; ``missing`` names those never imported
    (:func:`missing_sources`). ``next_update`` (aware UTC): the newest
    nextUpdate of its CRL view, None when no CRL with a nextUpdate is
    imported (then the data never goes stale by time).
    ``due``: the earliest nextUpdate of its complete and delta CRLs, when
    newer information is due (RFC 6960 §2.4): what bounds the nextUpdate of
    its responses (:mod:`certstatus.next_update`); None without CRLs.
    """

    has_data: bool
    next_update: dt.datetime | None
    missing: tuple[str, ...] = ()
    due: dt.datetime | None = None

    def stale(self, now: dt.datetime, grace_seconds: int) -> bool:
        """True when ``now`` is past ``next_update`` + ``grace_seconds``."""
        # now − grace, not nextUpdate + grace: a CRL's nextUpdate may be 99991231235959Z, the last date there is.
        return self.next_update is not None and now - dt.timedelta(seconds=grace_seconds) > self.next_update


def freshness(states: Mapping[str, SourceState], ca: CaSettings) -> Freshness:
    """The :class:`Freshness` of CA ``ca`` from its source states (``StatusStore.source_states``)."""
    updates = [s.next_update for k, s in states.items() if k in (CRL_KIND, DELTA_KIND) and s.next_update]
    missing = missing_sources(ca, states)
    return Freshness(bool(states) and not missing, max(updates) if updates else None, missing, min(updates) if updates else None)


def has_data(ca: CaSettings, states: Mapping[str, SourceState]) -> bool:
    """True when CA ``ca`` may answer from what it has: a live SQL source, or every configured source
    imported at least once (:func:`freshness`)."""
    return ca.sql is not None or freshness(states, ca).has_data


def missing_sources(ca: CaSettings, states: Mapping[str, SourceState]) -> tuple[str, ...]:
    """The configured sources of ``ca`` of which ``states`` holds no import: ``"crl ORIGIN[, ORIGIN]"``,
    ``"index PATH"``, ``"issued PATH"``; empty when none is missing.

    The CRLs count as one source, imported once a complete CRL is: whether an
    origin holds a complete or a delta CRL is only known from its bytes, and a
    delta CRL has no row once a newer complete CRL supersedes it, so a missing
    delta cannot be told from a superseded one. A refused delta CRL is logged
    like every refused source. Forwarded CAs and live SQL sources have no
    imported sources.
    """
    if ca.forward or ca.sql is not None:
        return ()
    missing = []
    if ca.crl and CRL_KIND not in states:
        missing.append("crl " + ", ".join(ca.crl))
    for kind, path in (("index", ca.index), ("issued", ca.issued)):
        if path is not None and kind not in states:
            missing.append(f"{kind} {path}")
    return tuple(missing)


@dataclass(frozen=True, slots=True)
class SourceAge:
    """One imported source of one CA, for metrics and the admin API.

    Times are aware UTC; ``age_seconds`` is ``now`` - thisUpdate for a CRL,
    ``now`` - the import time otherwise; ``seconds_to_next_update`` is
    negative once the CRL is past its nextUpdate, None without one.
    """

    ca: str
    kind: str
    origin: str
    entries: int
    imported_at: dt.datetime
    this_update: dt.datetime | None
    next_update: dt.datetime | None
    crl_number: int | None
    age_seconds: float
    seconds_to_next_update: float | None

    def as_json(self) -> dict:
        """A JSON-ready dict (times as ISO 8601 strings)."""
        out = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out


def source_ages(store: StatusStore, cas: Iterable[tuple[str, int]], now: dt.datetime) -> list[SourceAge]:
    """One :class:`SourceAge` per imported source of each ``(ca name, issuer id)``, sorted by CA and kind."""
    ages = []
    for name, issuer_id in cas:
        for kind, state in sorted(store.source_states(issuer_id).items()):
            reference = state.this_update or state.imported_at
            ages.append(
                SourceAge(
                    ca=name, kind=kind, origin=state.origin, entries=state.entries,
                    imported_at=state.imported_at, this_update=state.this_update,
                    next_update=state.next_update, crl_number=state.crl_number,
                    age_seconds=(now - reference).total_seconds(),
                    seconds_to_next_update=None if state.next_update is None else (state.next_update - now).total_seconds(),
                )  # fmt: skip
            )
    return ages


class LogThrottle:
    """Let a message through at most once per ``seconds`` per key (wall-clock monotonic)."""

    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds
        self._last: dict[object, float] = {}

    def allow(self, key: object) -> bool:
        """True when ``key`` was not let through in the last ``seconds``."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.seconds:
            return False
        self._last[key] = now
        return True
