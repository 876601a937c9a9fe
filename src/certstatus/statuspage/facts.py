"""What the status page knows of each CA, gathered from the services the supervisor already runs.

Nothing here decides anything new: readiness is :func:`certstatus.health.readiness_problems`
(the rule of ``/ready``), a source's import is the store's ``sources`` row
(:func:`certstatus.sources.health.source_ages`), its schedule and last error the
refresher's :class:`~certstatus.sources.refresh.OriginStatus`, a signer's state
:meth:`SignerSet.states`, traffic and the generator's backlog the
:class:`~certstatus.statuspage.traffic.TrafficRing`. :func:`gather_facts` joins
them per CA and asks :func:`~certstatus.statuspage.verdict.judge` for the colour.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from certstatus.config import CaSettings
from certstatus.health import CaHealth, readiness_problems
from certstatus.signing.signer_set import RefusedSigner, SignerState
from certstatus.sources.health import source_ages
from certstatus.sources.refresh import OriginStatus
from certstatus.statuspage.traffic import Generator, Overall, TrafficRing
from certstatus.statuspage.verdict import AMBER, GREEN, ORDER, RED, Verdict, judge
from certstatus.store.base import SourceState, StatusReader


@dataclass(frozen=True)
class SourceFacts:
    """One source of a CA: its last successful import (None fields: never imported) and its schedule.

    ``kind`` is the store's (``crl``, ``delta``, ``index``, ``issued``, ``push``) or, for an origin
    never imported, the refresher's; times are aware UTC; ``age_seconds`` is now − thisUpdate for
    a CRL, now − import time otherwise; ``next_refresh`` is the refresher's next attempt (None:
    not fetched on a schedule: pushes, uploads); ``last_error`` the refresher's last refusal, with
    ``failures`` in a row.
    """

    kind: str
    origin: str
    imported_at: dt.datetime | None = None
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    entries: int | None = None
    age_seconds: float | None = None
    next_refresh: dt.datetime | None = None
    last_error: str | None = None
    failures: int = 0


@dataclass(frozen=True)
class CaFacts:
    """One CA as the page shows it.

    ``mode`` is ``live``, ``precomputed``, ``cached`` or ``forwarded``; ``problems`` what keeps it
    from being ready (the words of ``/ready``, without the CA's name); ``requests`` and
    ``try_later`` count its answers over the traffic window; ``generator`` is None for a CA the
    background generator does not report on.
    """

    name: str
    mode: str
    settings: CaSettings
    problems: tuple[str, ...] = ()
    sources: tuple[SourceFacts, ...] = ()
    signers: tuple[SignerState, ...] = ()
    refused_signers: tuple[RefusedSigner, ...] = ()
    requests: float = 0.0
    try_later: float = 0.0
    window_seconds: float = 0.0
    generator: Generator | None = None
    verdict: Verdict = Verdict(GREEN, ())


@dataclass(frozen=True)
class PageFacts:
    """Everything the page shows: ``cas`` red first, then amber, then green, by name within a colour;
    ``store_error`` says why the store could not be read (None: it answered); ``seconds`` how long
    gathering took."""

    at: dt.datetime
    cas: tuple[CaFacts, ...]
    overall: Overall
    store_error: str | None = None
    seconds: float = 0.0  # how long gathering took (wall clock)
    counts: dict[str, int] = dataclasses.field(init=False, compare=False)

    def __post_init__(self) -> None:
        counts = {RED: 0, AMBER: 0, GREEN: 0}
        for ca in self.cas:
            counts[ca.verdict.color] += 1
        object.__setattr__(self, "counts", counts)

    def count(self, color: str) -> int:
        """How many CAs are of ``color``."""
        return self.counts[color]


class _StatesOnce:
    """A store whose ``source_states`` is read once per issuer (readiness and ages both ask)."""

    def __init__(self, store: StatusReader) -> None:
        self._store = store
        self._states: dict[int, dict[str, SourceState]] = {}

    def source_states(self, issuer_id: int) -> dict[str, SourceState]:
        if issuer_id not in self._states:
            self._states[issuer_id] = self._store.source_states(issuer_id)
        return self._states[issuer_id]

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def _mode(settings: CaSettings) -> str:
    return "forwarded" if settings.forward else settings.mode


def _sources(ca: str, imported: Iterable, origins: Sequence[OriginStatus]) -> tuple[SourceFacts, ...]:
    """The store's rows of one CA joined with the refresher's origins (by origin), never-imported origins included."""
    schedule = {status.origin: status for status in origins}
    found = []
    for age in imported:
        status = schedule.pop(age.origin, None)
        found.append(SourceFacts(
            kind=age.kind, origin=age.origin, imported_at=age.imported_at, this_update=age.this_update,
            next_update=age.next_update, entries=age.entries, age_seconds=age.age_seconds,
            next_refresh=status.next_attempt if status else None, last_error=status.last_error if status else None,
            failures=status.failures if status else 0,
        ))  # fmt: skip
    for status in schedule.values():  # configured, never imported
        found.append(SourceFacts(kind=status.kind, origin=status.origin, next_refresh=status.next_attempt,
                                 last_error=status.last_error, failures=status.failures))
    return tuple(found)


def gather_facts(
    open_store: Callable[[], StatusReader],
    cas: Sequence[CaSettings],
    health: Sequence[CaHealth],
    refresh: Sequence[OriginStatus],
    ring: TrafficRing,
    now: dt.datetime,
) -> PageFacts:
    """The facts of every CA of ``cas`` at ``now`` (aware UTC).

    ``open_store()`` opens a store for this call (closed here); ``health`` are the CAs readiness
    looks at, with their signers (:func:`certstatus.app.ca_health`); ``refresh`` the refresher's
    :meth:`~certstatus.sources.refresh.Refresher.status`. A store that cannot be opened or read
    is reported in ``store_error`` and as a problem of every CA answered from local data; the
    rest (signers, schedule, traffic) is shown still. Never raises for the store.
    """
    started = time.perf_counter()
    by_name = {ca.name: ca for ca in health}
    origins: dict[str, list[OriginStatus]] = {}
    for status in refresh:
        origins.setdefault(status.ca, []).append(status)
    totals = ring.totals()
    generators = ring.generators()
    window = ring.overall()
    store_error = None
    store = None
    try:
        store = open_store()
        store.change_counters()  # one query: does it answer at all?
    except Exception as exc:  # noqa: BLE001 - an unreachable store is what the page must show
        store_error = f"{type(exc).__name__}: {exc}"
    try:
        reader = _StatesOnce(store) if store is not None and store_error is None else None
        found = []
        for settings in cas:
            served = by_name.get(settings.name)
            problems: list[str] = []
            imported: list = []
            if served is not None:
                if reader is None:
                    problems.append(f"store unreachable: {store_error}")
                else:
                    problems = [p.removeprefix(f"CA {settings.name}: ") for p in readiness_problems(reader, [served], now)]
                    try:
                        imported = source_ages(reader, [(settings.name, served.issuer_id)], now)
                    except Exception:  # noqa: BLE001 - readiness_problems has reported it
                        imported = []
            requests, try_later = totals.get(settings.name, (0.0, 0.0))
            facts = CaFacts(
                name=settings.name, mode=_mode(settings), settings=settings, problems=tuple(problems),
                sources=_sources(settings.name, imported, origins.get(settings.name, ())),
                signers=tuple(served.signers.states(now)) if served is not None else (),
                refused_signers=tuple(served.signers.refused) if served is not None else (),
                requests=requests, try_later=try_later, window_seconds=window.traffic.seconds,
                generator=generators.get(settings.name),
            )  # fmt: skip
            found.append(dataclasses.replace(facts, verdict=judge(facts, now)))
    finally:
        if store is not None:
            store.close()
    found.sort(key=lambda ca: (ORDER[ca.verdict.color], ca.name))
    return PageFacts(now, tuple(found), window, store_error, time.perf_counter() - started)
