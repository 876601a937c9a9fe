"""Under CI=true a skip fails the run (tests/ci_skips.py); elsewhere it stays a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]

SKIPPING = """
import pytest

@pytest.mark.skipif(True, reason="no such tool")
def test_marked():
    pass

def test_skips_itself():
    pytest.skip("service unreachable")

@pytest.fixture
def part():
    pytest.skip("package missing")

def test_fixture_skips(part):
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

def test_passes():
    pass
"""


@pytest.mark.parametrize(("ci", "failed", "skipped"), [("true", 3, 0), ("", 0, 3)])
def test_a_skip_fails_only_under_ci(pytester, monkeypatch, ci, failed, skipped):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the child pytest imports the plugin from tests/
    pytester.makepyfile(test_skipping=SKIPPING)
    result = pytester.runpytest_subprocess("-p", "tests.ci_skips", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == failed
    assert outcomes.get("skipped", 0) == skipped
    assert outcomes.get("passed") == 1 and outcomes.get("xfailed") == 1


def test_a_module_that_skips_itself_fails_under_ci(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_module_skip='import pytest\npytest.skip("no fuzz extra", allow_module_level=True)\n')
    result = pytester.runpytest_subprocess("-p", "tests.ci_skips", "-p", "no:cacheprovider")
    assert result.ret != 0 and "skipped under CI=true" in result.stdout.str()
