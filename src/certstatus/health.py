"""Liveness and readiness, as load balancers ask for them (``/health``, ``/ready``).

``/health`` answers 200 whenever the process answers at all. ``/ready``
answers 200 only when this instance can give correct answers now:

* the store answers a query;
* every CA answered from local data has data, no CRL past its nextUpdate
  (RFC 5280 §5.1.2.5: stale), and — with ``[admin] max_data_age`` — no
  source older than that;
* every CA answered locally has a signer valid now.

Forwarded CAs are ready by definition: their remote responders decide.
The checks are cheap (one small query per CA) and run per probe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from certstatus.metrics import SourceFigures
from certstatus.signing.signer_set import SignerSet
from certstatus.store.base import SourceState, StatusStore


@dataclass(frozen=True)
class CaHealth:
    """What readiness needs to know of one CA served locally."""

    name: str
    issuer_id: int
    signers: SignerSet


def source_date(state: SourceState) -> dt.datetime:
    """The date of a source's data: a CRL's thisUpdate, else when it was imported."""
    return state.this_update or state.imported_at


def source_figures(store: StatusStore, cas: Iterable[CaHealth]) -> list[SourceFigures]:
    """Every CA's sources, for the data-age metrics."""
    return [
        SourceFigures(ca.name, kind, source_date(state), state.next_update)
        for ca in cas
        for kind, state in sorted(store.source_states(ca.issuer_id).items())
    ]


def readiness_problems(store: StatusStore, cas: Iterable[CaHealth], now: dt.datetime, max_data_age: float | None = None) -> list[str]:
    """Return what keeps this instance from being ready (empty: ready). Never raises."""
    problems = []
    try:
        for ca in cas:
            states = store.source_states(ca.issuer_id)
            if not states:
                problems.append(f"CA {ca.name}: no revocation data imported")
            for kind, state in sorted(states.items()):
                if state.next_update is not None and state.next_update < now:
                    problems.append(f"CA {ca.name}: {kind} {state.origin} is past its nextUpdate {state.next_update:%Y-%m-%d %H:%M:%SZ}")
                elif max_data_age is not None and (now - source_date(state)).total_seconds() > max_data_age:
                    problems.append(f"CA {ca.name}: {kind} {state.origin} is older than max_data_age")
            if not ca.signers.usable(now):
                problems.append(f"CA {ca.name}: no signer is valid now (expired, not yet valid or revoked)")
    except Exception as exc:  # noqa: BLE001 - a broken store is exactly what readiness reports
        problems.append(f"store unreachable: {type(exc).__name__}: {exc}")
    return problems
