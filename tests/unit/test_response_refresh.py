"""The CA/Browser Forum refresh rule (BR §4.9.10) as refresh_due and renew_at compute it."""

from __future__ import annotations

import datetime as dt

import pytest

from certstatus.response_refresh import refresh_due, renew_at

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


@pytest.mark.parametrize(
    "validity, due",
    [
        (1 * H, T0 + 30 * dt.timedelta(minutes=1)),  # short: half the validity
        (8 * H, T0 + 4 * H),
        (16 * H - dt.timedelta(seconds=1), T0 + 8 * H - dt.timedelta(seconds=0.5)),
        (16 * H, T0 + 8 * H),  # long: 8 h before nextUpdate
        (1 * D, T0 + 16 * H),
        (3 * D, T0 + 3 * D - 8 * H),
        (4 * D + 8 * H, T0 + 4 * D),  # both limits meet
        (7 * D, T0 + 4 * D),  # long: no later than 4 days after thisUpdate
        (10 * D, T0 + 4 * D),
    ],
)
def test_refresh_due_follows_both_branches_of_the_rule(validity, due):
    assert refresh_due(T0, T0 + validity) == due


@pytest.mark.parametrize(
    "validity, renew",
    [
        (1 * H, T0 + dt.timedelta(minutes=22, seconds=30)),  # a quarter before the half-way deadline
        (8 * H, T0 + 3 * H),
        (1 * D, T0 + 12 * H),
        (7 * D, T0 + 4 * D - 4 * H),  # slack capped at 4 hours
    ],
)
def test_renew_at_comes_before_the_deadline(validity, renew):
    assert renew_at(T0, T0 + validity) == renew
    assert renew_at(T0, T0 + validity) < refresh_due(T0, T0 + validity) <= T0 + validity


def test_refresh_due_refuses_an_empty_validity():
    with pytest.raises(ValueError, match="after thisUpdate"):
        refresh_due(T0, T0)
