"""Under CI (``CI=true``) a skipped test is a failed one: a skip there hides a part that is missing
(a command, a package, a service) and the suite would pass without testing it.

Registered by tests/conftest.py for every test; xfail is left alone. Elsewhere skips stay skips.
"""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    """True when the ``CI`` environment variable says so (``true``, ``1`` or ``yes``)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _fail_instead(report) -> None:
    if under_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_instead(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_instead(outcome.get_result())  # a module that skips itself whole (pytest.skip(allow_module_level=True))
