"""The status page as the admin listener serves it: facts gathered at most every few seconds,
filtered and paged per request.

Gathering reads the store once per CA (:func:`~certstatus.statuspage.facts.gather_facts`);
with 10 000 CAs that is the costly part, so the facts are kept :data:`FACTS_SECONDS` and
every request in between only filters, pages and renders (:data:`PAGE_SIZE` CAs per page).
Without a filter the page shows the CAs that are not green (all of them when every CA is
green).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from certstatus.statuspage.facts import PageFacts
from certstatus.statuspage.render import STATES, View, render_page
from certstatus.statuspage.traffic import TrafficRing
from certstatus.statuspage.verdict import AMBER, GREEN, RED

#: Seconds the gathered facts are shown before the next request gathers them again.
FACTS_SECONDS = 5.0
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

    def facts(self) -> PageFacts:
        """The facts, gathered again when older than ``facts_seconds``."""
        with self._lock:
            if self._facts is None or time.monotonic() - self._gathered_at >= self.facts_seconds:
                self._facts = self.gather()
                self._gathered_at = time.monotonic()
            return self._facts

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
