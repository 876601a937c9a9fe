"""Notification after a committed change of status data: the hook precomputed mode re-signs from.

Importers, pushes and the refresher call :meth:`ChangeFeed.publish` after
their transaction committed; subscribers (the response generator of
precomputed/cached mode, a metrics exporter) react. A subscriber that raises
is logged and never undoes or blocks the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

log = logging.getLogger("certstatus.changes")

#: ``listener(issuer_id, serials)``: ``serials`` are the serial numbers whose
#: status may have changed, or None when any serial of the issuer may have (a CRL import).
ChangeListener = Callable[[int, "tuple[int, ...] | None"], None]


class ChangeFeed:
    """Fan-out of committed changes to subscribed listeners, in subscription order."""

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener`` after every committed change from now on."""
        self._listeners.append(listener)

    def publish(self, issuer_id: int, serials: Sequence[int] | None) -> None:
        """Tell every listener that ``serials`` (None: all) of ``issuer_id`` changed."""
        frozen = None if serials is None else tuple(serials)
        for listener in self._listeners:
            try:
                listener(issuer_id, frozen)
            except Exception:
                log.exception("change listener %r failed for issuer %d", listener, issuer_id)
