"""Red, amber or green for one CA, with the reasons in words.

* **red** — the CA does not give real answers now: whatever keeps it from being ready
  (``/ready``'s rule: no data, data past nextUpdate + ``stale_grace``, no signer valid, the
  store unreachable). Its clients get tryLater.
* **amber** — it answers, but an operator should act before it stops: a source whose last
  import failed (the data imported before keeps serving), a CRL within :data:`NEAR_NEXT_UPDATE`
  of its nextUpdate or past it (within ``stale_grace``, or served stale by ``on_stale =
  "serve"``), an active signer that expires within ``signer_expiry_warning`` with no
  successor, a signer refused at loading, tryLater answers in the traffic window, or a
  generator backlog from which nothing was signed in the window.
* **green** — none of these; the reason says until when the data and the signer last.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from certstatus.statuspage.facts import CaFacts

RED, AMBER, GREEN = "red", "amber", "green"
#: Sort order of the colours: what needs an operator first.
ORDER = {RED: 0, AMBER: 1, GREEN: 2}
#: A CRL whose nextUpdate is nearer than this (seconds) is amber: no newer CRL is in yet.
NEAR_NEXT_UPDATE = 3600.0
#: Seconds of traffic window needed before "nothing signed" says anything about a backlog.
MIN_BACKLOG_WINDOW = 60.0
_CRL_KINDS = ("crl", "delta")


@dataclass(frozen=True)
class Verdict:
    """``color`` (:data:`RED`, :data:`AMBER` or :data:`GREEN`) and the ``reasons`` for it, in words."""

    color: str
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def span(seconds: float) -> str:
    """A duration in words an operator reads at a glance: ``45 s``, ``12 min``, ``5 h``, ``3 days``."""
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def when(moment: dt.datetime) -> str:
    """A time as the page writes it (UTC, to the minute)."""
    return f"{moment:%Y-%m-%d %H:%M}Z"


def judge(ca: "CaFacts", now: dt.datetime) -> Verdict:
    """The colour of ``ca`` at ``now`` (aware UTC) and why (see the module docstring)."""
    if ca.mode == "forwarded":
        return Verdict(GREEN, (f"answered by {', '.join(ca.settings.forward)}",))
    if ca.problems:
        return Verdict(RED, tuple(ca.problems))
    warnings = []
    for source in ca.sources:
        if source.last_error:
            since = f"; the data imported {when(source.imported_at)} keeps serving" if source.imported_at else ""
            times = f" ({source.failures} times in a row)" if source.failures > 1 else ""
            warnings.append(f"last import of {source.origin} failed{times}: {source.last_error}{since}")
    next_update = max((s.next_update for s in ca.sources if s.kind in _CRL_KINDS and s.next_update), default=None)
    if next_update is not None:
        left = (next_update - now).total_seconds()
        if left < 0:
            served = "served anyway (on_stale = serve)" if ca.settings.on_stale == "serve" else (
                f"tryLater in {span(left + ca.settings.stale_grace)} (stale_grace)")
            warnings.append(f"CRL past its nextUpdate {when(next_update)} by {span(left)}; {served}")
        elif left < NEAR_NEXT_UPDATE:
            warnings.append(f"CRL nextUpdate in {span(left)} ({when(next_update)}) and no newer CRL yet")
    for signer in ca.signers:
        if signer.warning:
            warnings.append(f"signer {signer.name} expires in {span(signer.seconds_left)} ({when(signer.not_after)}) "
                            "and no successor is installed")  # fmt: skip
    for refused in ca.refused_signers:
        warnings.append(f"signer {refused.name} refused: {refused.reason}")
    if ca.try_later:
        warnings.append(f"{ca.try_later:.0f} tryLater answers in the last {span(ca.window_seconds)}")
    generator = ca.generator
    if generator is not None and generator.pending and not generator.signed and ca.window_seconds >= MIN_BACKLOG_WINDOW:
        warnings.append(f"{generator.pending:.0f} serials wait to be signed again and none was signed in the last "
                        f"{span(ca.window_seconds)}")  # fmt: skip
    if warnings:
        return Verdict(AMBER, tuple(warnings))
    return Verdict(GREEN, (_fine(ca, next_update, now),))


def _fine(ca: "CaFacts", next_update: dt.datetime | None, now: dt.datetime) -> str:
    parts = ["ready"]
    if next_update is not None:
        parts.append(f"CRL fresh for {span((next_update - now).total_seconds())}")
    active = next((s for s in ca.signers if s.state == "active"), None)
    if active is not None:
        parts.append(f"signer {active.name} valid for {span(active.seconds_left)}")
    return ", ".join(parts)
