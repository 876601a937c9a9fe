"""Debian's headless Chromium driven by Selenium through chromium-driver (no browser download).

``scripts/setup --test`` installs ``chromium`` and ``chromium-driver``. Without them the tests
that need a browser fail under CI (``CI=true``) and skip elsewhere.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Flags that make Chromium run headless in a container, alone, talking to nobody but the page.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")


def require_chromium() -> None:
    """Skip (a failure under CI) when Debian's chromium or chromium-driver is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed; scripts/setup --test installs chromium and chromium-driver"
        pytest.skip(reason)  # a failure under CI=true (tests/ci_skips.py)


@contextmanager
def chromium(profile: Path, *, width: int = 1280, height: int = 900) -> Iterator:
    """A Selenium ``WebDriver`` of a fresh headless Chromium with its profile in ``profile``; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=str(profile) + ".driver.log"))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def full_page_screenshot(driver, path: Path) -> Path:
    """Save a PNG of the whole document (beyond the window, through the DevTools protocol) to ``path``; returns ``path``."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
