"""Liveness and readiness, as load balancers ask for them (``/health``, ``/ready``).

``/health`` answers 200 whenever the process answers at all. ``/ready``
answers 200 only when this instance gives real answers now — the same rule
the request path applies, so an instance is taken out of rotation exactly
when it would answer tryLater:

* the store answers a query;
* every CA answered from local data has data, every one of its configured
  sources has been imported at least once (a source refused since the start
  keeps the CA out), and that data is not stale (past the newest CRL's
  nextUpdate plus ``stale_grace``, see :mod:`certstatus.sources.health`)
  unless the CA serves stale data (``on_stale = "serve"``);
* every CA answered locally has a signer valid now.

Forwarded CAs are ready by definition: their remote responders decide. A CA
with a live SQL source has no imported data to check. The checks are cheap
(one small query per CA) and run per probe.

What ``/ready`` says is public (anyone who reaches the OCSP port may probe
it): a store that does not answer is only "store unreachable" there; the
admin listener's ``/ready`` and the log give the database and the error.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from certstatus.clock import Clock
from certstatus.config import CaSettings
from certstatus.signing.signer_set import SignerSet
from certstatus.sources.health import LogThrottle, freshness
from certstatus.store.base import StatusReader
from certstatus.store.dsn import redact

log = logging.getLogger("certstatus.health")


@dataclass(frozen=True)
class CaHealth:
    """What readiness needs to know of one CA served locally."""

    name: str
    issuer_id: int
    signers: SignerSet
    settings: CaSettings


#: What ``/ready`` on the OCSP port says when the store does not answer. Which database, user and host,
#: and the driver's error, are for operators, not for whoever can reach the OCSP port: they go to the
#: log and to the admin listener's ``/ready`` (:func:`store_problem`).
STORE_UNREACHABLE = "store unreachable"
#: Seconds between two log lines of a process about its unreachable store (a probe every few seconds
#: would otherwise log one line each).
STORE_LOG_INTERVAL = 60.0


def store_problem(exc: BaseException) -> str:
    """The readiness problem of a store that raised ``exc``, with the details (DSN password masked)."""
    return redact(f"{STORE_UNREACHABLE}: {type(exc).__name__}: {exc}")


def readiness_problems(store: StatusReader, cas: Iterable[CaHealth], now: dt.datetime) -> list[str]:
    """Return what keeps this instance from being ready (empty: ready), with details. Never raises."""
    problems = []
    try:
        for ca in cas:
            if ca.settings.sql is None:
                fresh = freshness(store.source_states(ca.issuer_id), ca.settings)
                if fresh.missing:
                    problems.append(f"CA {ca.name}: nothing imported yet from {'; '.join(fresh.missing)} (see the log)")
                elif not fresh.has_data:
                    problems.append(f"CA {ca.name}: no revocation data imported")
                elif fresh.stale(now, ca.settings.stale_grace) and ca.settings.on_stale != "serve":
                    problems.append(f"CA {ca.name}: data stale since {fresh.next_update:%Y-%m-%d %H:%M:%SZ} (CRL nextUpdate)")
            if not ca.signers.usable(now):
                problems.append(f"CA {ca.name}: no signer is valid now (expired, not yet valid or revoked)")
    except Exception as exc:  # noqa: BLE001 - a broken store is exactly what readiness reports
        problems.append(store_problem(exc))
    return problems


def public_readiness(store: StatusReader, cas: Iterable[CaHealth], clock: Clock) -> Callable[[], list[str]]:
    """The problems function of ``/ready`` on the OCSP listener: :func:`readiness_problems`, except
    that a store that does not answer is :data:`STORE_UNREACHABLE` and nothing more; its details are
    logged (a warning, at most once per :data:`STORE_LOG_INTERVAL` seconds)."""
    cas = list(cas)
    throttle = LogThrottle(STORE_LOG_INTERVAL)

    def problems() -> list[str]:
        found = readiness_problems(store, cas, clock.now())
        for number, problem in enumerate(found):
            if problem.startswith(STORE_UNREACHABLE + ":"):
                if throttle.allow("store"):
                    log.warning("not ready: %s", problem)
                found[number] = STORE_UNREACHABLE
        return found

    return problems


def readiness_report(problems: list[str]) -> tuple[int, str]:
    """HTTP status and text of ``/ready``: 200 ``ready``, or 503 listing the problems one per line."""
    if problems:
        return 503, "not ready:\n" + "".join(f"- {p}\n" for p in problems)
    return 200, "ready\n"
