"""When a pre-signed response must be replaced (CA/Browser Forum Baseline Requirements §4.9.10).

The rule, for a response valid from thisUpdate to nextUpdate:

* validity under 16 hours: a new response must be available before half
  of the validity has passed;
* 16 hours or more: at least 8 hours before nextUpdate, and no later than
  4 days after thisUpdate.

:func:`refresh_due` is that deadline: from then on a stored response is no
longer served (the request path signs live instead, and says so in a log
line and a counter). :func:`renew_at` is when the generator signs it again,
a quarter of the way before the deadline (at most 4 hours before it), so a
generator that runs once an hour, or is a few minutes late, still meets it.
All datetimes are aware UTC. (The re-fetch of CRLs and other sources is
:mod:`certstatus.sources.refresh`.)
"""

from __future__ import annotations

import datetime as dt

#: Below this validity the half-validity branch of the rule applies.
SHORT_VALIDITY = dt.timedelta(hours=16)
#: Long validity: a new response at least this long before nextUpdate...
BEFORE_NEXT_UPDATE = dt.timedelta(hours=8)
#: ... and no later than this after thisUpdate.
MAX_AGE = dt.timedelta(days=4)
#: The generator's head start on the deadline is at most this.
MAX_SLACK = dt.timedelta(hours=4)


def refresh_due(this_update: dt.datetime, next_update: dt.datetime) -> dt.datetime:
    """The time by which a response valid from ``this_update`` to ``next_update`` must be replaced.

    Raises ``ValueError`` when ``next_update`` is not after ``this_update``.
    """
    validity = next_update - this_update
    if validity <= dt.timedelta(0):
        raise ValueError("nextUpdate must be after thisUpdate")
    if validity < SHORT_VALIDITY:
        return this_update + validity / 2
    return min(next_update - BEFORE_NEXT_UPDATE, this_update + MAX_AGE)


def renew_at(this_update: dt.datetime, next_update: dt.datetime) -> dt.datetime:
    """When the generator signs the response again: before :func:`refresh_due` by a quarter of
    the time to it, at most :data:`MAX_SLACK`; whole seconds (the store keeps seconds)."""
    due = refresh_due(this_update, next_update)
    slack = min(MAX_SLACK, (due - this_update) / 4)
    return (due - slack).replace(microsecond=0)
