"""The status page as the admin listener serves it: facts gathered in the background, filtered
and paged per request.

Gathering reads the store once per CA (:func:`~certstatus.statuspage.facts.gather_facts`);
with 10 000 CAs that takes seconds (bench/status_page.py), and the admin API answers one
request at a time. So a request renders the facts at hand and, when they are older than
:data:`FACTS_SECONDS`, starts one gathering in a thread of its own for the next request;
only the first request after start waits for a gathering. The facts are gathered again no sooner
than :data:`GATHER_SPACING` times as long as the last gathering took, so that a large deployment
watched all day spends at most a quarter of a core on it. Every request only filters, pages
(:data:`PAGE_SIZE` CAs per page) and renders. Without a filter the page shows the CAs that
are not green (all of them when every CA is green). Nothing is gathered while nobody looks.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from certstatus.statuspage.facts import PageFacts
from certstatus.statuspage.render import STATES, View, render_page
from certstatus.statuspage.traffic import TrafficRing
from certstatus.statuspage.verdict import AMBER, GREEN, RED

log = logging.getLogger("certstatus.admin")

#: Seconds after which a request has the facts gathered again (in the background), at the least.
FACTS_SECONDS = 5.0
#: ...and at least this many times as long as the last gathering took.
GATHER_SPACING = 4.0
#: CAs per page.
PAGE_SIZE = 50
#: Seconds between two reloads of the page by the browser.
REFRESH_SECONDS = 15
#: Longest name filter kept (characters).
MAX_FILTER = 200


class StatusPage:
    """Render the page for a request's query string from ``gather()`` (called at most every
    ``facts_seconds``) and ``ring`` (the charts of the CAs shown). Thread-safe."""

    def __init__(self, gather: Callable[[], PageFacts], ring: TrafficRing, *, facts_seconds: float = FACTS_SECONDS,
                 page_size: int = PAGE_SIZE, refresh_seconds: int = REFRESH_SECONDS) -> None:
        self.gather = gather
        self.ring = ring
        self.facts_seconds = facts_seconds
        self.page_size = page_size
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._facts: PageFacts | None = None
        self._gathered_at = float("-inf")
        self._gathering: threading.Thread | None = None

    def facts(self) -> PageFacts:
        """The newest facts; gathered here when there are none yet, else in the background once they
        are older than ``facts_seconds`` and GATHER_SPACING times the last gathering (this call
        returns the older ones meanwhile)."""
        with self._lock:
            if self._facts is None:
                self._facts, self._gathered_at = self.gather(), time.monotonic()
            elif time.monotonic() - self._gathered_at >= self._spacing() and self._gathering is None:
                self._gathering = threading.Thread(target=self._gather, name="certstatus-status-page", daemon=True)
                self._gathering.start()
            return self._facts

    def _spacing(self) -> float:
        last = self._facts.seconds if self._facts is not None else 0.0
        return max(self.facts_seconds, GATHER_SPACING * last)

    def _gather(self) -> None:
        try:
            facts = self.gather()
        except Exception:  # noqa: BLE001 - the page keeps the facts it had; the next request tries again
            log.exception("status page: gathering the facts failed")
            facts = None
        with self._lock:
            if facts is not None:
                self._facts, self._gathered_at = facts, time.monotonic()
            self._gathering = None

    def html(self, query: str) -> str:
        """The page for the query string ``query`` (``q``: part of a CA name, case-insensitive;
        ``state``: a key of :data:`~certstatus.statuspage.render.STATES`; ``page``: from 1).
        Values that make no sense fall back to the defaults."""
        args = parse_qs(query, max_num_fields=10)
        q = args.get("q", [""])[0].strip()[:MAX_FILTER]
        state = args.get("state", ["problems"])[0]
        state = state if state in STATES else "problems"
        try:
            page = max(1, int(args.get("page", ["1"])[0]))
        except ValueError:
            page = 1
        facts = self.facts()
        wanted = {"problems": (RED, AMBER), "all": (RED, AMBER, GREEN)}.get(state, (state,))
        needle = q.lower()
        matching = [ca for ca in facts.cas if ca.verdict.color in wanted and needle in ca.name.lower()]
        note = None
        if state == "problems" and not matching and not facts.count(RED) and not facts.count(AMBER):
            matching = [ca for ca in facts.cas if needle in ca.name.lower()]
            note = f"Every CA is green ({len(facts.cas)}); showing all."
        pages = max(1, math.ceil(len(matching) / self.page_size))
        page = min(page, pages)
        shown = matching[(page - 1) * self.page_size : page * self.page_size]
        traffic = {ca.name: self.ring.ca(ca.name) for ca in shown}
        view = View(q, state, page, pages, len(matching), note)
        return render_page(facts, shown, traffic, view, refresh_seconds=self.refresh_seconds)
