"""The admin listener's status page in a real browser (Debian's headless Chromium, driven by Selenium).

One ``certstatus serve`` with three CAs: ``healthy`` (the demo PKI, a fresh CRL), ``stale-crl``
(a PKI made ten days ago: its CRL's nextUpdate passed three days ago) and ``expiring`` (a PKI
made 360 days ago, with a fresh CRL: its responder certificate ends in 4 days and has no
successor). A client asks the healthy and the stale CA for ~12 s, so the page's traffic samples
see answers and tryLater. The browser logs in with the admin token through the page's form and
reads the page as an operator would; the screenshot is written to the test's temporary folder and
copied to ``tests/artifacts/status-page.png`` (ignored by git), both paths printed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certstatus.clock import UTC
from certstatus.demo_pki import make_demo_pki, sign_crl
from tests.browser import chromium, full_page_screenshot, require_chromium
from tests.ocsp_client import request_der
from tests.servers import ADMIN_TOKEN, Asker, demo_ca_table, free_port, server_tables, start_server

pytestmark = pytest.mark.integration

ARTIFACT = Path(__file__).resolve().parents[1] / "artifacts" / "status-page.png"
#: Seconds of traffic before the page is read: more than one sampling interval (10 s).
TRAFFIC_SECONDS = 12


def _fresh_crl(pki, folder: Path) -> Path:
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    crl = sign_crl(ca, key, [], crl_number=2, this_update=now - dt.timedelta(minutes=1), next_update=now + dt.timedelta(days=7))
    path = folder / "fresh-crl.pem"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def server(demo_pki, tmp_path_factory):
    require_chromium()
    now = dt.datetime.now(UTC)
    stale = make_demo_pki(tmp_path_factory.mktemp("pki-stale"), now=now - dt.timedelta(days=10))
    expiring = make_demo_pki(tmp_path_factory.mktemp("pki-expiring"), now=now - dt.timedelta(days=360))
    folder = tmp_path_factory.mktemp("status-page")
    port, admin = free_port(), free_port()
    config = (server_tables(port, admin=admin) + demo_ca_table("healthy", demo_pki)
              + demo_ca_table("stale-crl", stale, path="/stale/")
              + demo_ca_table("expiring", expiring, crl=_fresh_crl(expiring, folder), path="/expiring/"))  # fmt: skip
    running = start_server(folder, config, port=port, admin_port=admin)
    healthy = Asker(running.url, request_der(demo_pki.leaves["good"], demo_pki.ca_cert))
    refused = Asker(running.url + "stale/", request_der(stale.leaves["good"], stale.ca_cert))
    for asker in (healthy, refused):
        asker.start()
    time.sleep(TRAFFIC_SECONDS)
    for asker in (healthy, refused):
        asker.stop.set()
        asker.join()
    running.answers = (healthy.answers, len(refused.failures))
    yield running
    running.stop()


def _card(driver, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, f"ca-{name}")


def test_status_page_in_chromium_shows_a_stale_crl_and_an_expiring_signer(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    assert server.answers[0] > 0 and server.answers[1] > 0, server.answers  # good answers and tryLater were counted
    with chromium(tmp_path / "profile") as driver:
        driver.get(server.admin_url + "/")
        assert "log in" in driver.title  # no token, no certificate: the login form
        driver.find_element(By.NAME, "token").send_keys(ADMIN_TOKEN)
        driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
        WebDriverWait(driver, 30).until(lambda d: "log in" not in d.title)  # the page after the login's redirect

        assert driver.title == "certstatus: 1 red, 1 amber", driver.page_source[:2000]
        cards = [element.get_attribute("id") for element in driver.find_elements(By.CSS_SELECTOR, "section.ca")]
        assert cards == ["ca-stale-crl", "ca-expiring"]  # the first screen: what is not green, red first

        stale = _card(driver, "stale-crl")
        assert "red" in stale.get_attribute("class").split()
        assert "data stale since" in stale.text and "(CRL nextUpdate)" in stale.text
        assert "tryLater" in stale.text  # its answers over the window, from the workers' counters
        assert stale.find_element(By.CSS_SELECTOR, "table.sources").text.count("ago") >= 1  # nextUpdate in the past

        expiring = _card(driver, "expiring")
        assert "amber" in expiring.get_attribute("class").split()
        assert "signer ocsp expires in 4 days" in expiring.text and "no successor is installed" in expiring.text
        signer_row = expiring.find_element(By.CSS_SELECTOR, "table.signers").text
        assert "active" in signer_row and "4 days ⚠ no successor" in signer_row

        driver.find_element(By.CSS_SELECTOR, "select[name='state'] option[value='all']").click()
        driver.find_element(By.CSS_SELECTOR, "form.filter button").click()
        # The click submits the form; the new page arrives when it arrives (a loaded machine: seconds).
        WebDriverWait(driver, 30).until(lambda d: "state=all" in d.current_url and d.find_elements(By.ID, "ca-healthy"))
        healthy = _card(driver, "healthy")
        assert "green" in healthy.get_attribute("class").split()
        assert "ready, CRL fresh for 7 days, signer ocsp valid for" in healthy.text
        assert "successful" in healthy.text and "requests" in healthy.text
        assert healthy.find_elements(By.CSS_SELECTOR, "svg.spark polyline")  # its request rate, drawn inline

        shot = full_page_screenshot(driver, tmp_path / "status-page.png")
    ARTIFACT.parent.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACT)
    print(f"status page screenshot: {shot} (copy: {ARTIFACT})")
    assert shot.stat().st_size > 10_000


def test_session_cookie_opens_the_page_but_not_the_admin_api(server):
    login = httpx.post(server.admin_url + "/login", data={"token": ADMIN_TOKEN}, timeout=10)
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and ADMIN_TOKEN not in cookie
    session = {"cookie": cookie.split(";", 1)[0]}
    assert httpx.get(server.admin_url + "/", headers=session, timeout=10).status_code == 200
    for path in ("/metrics", "/v1/sources"):
        assert httpx.get(server.admin_url + path, headers=session, timeout=10).status_code == 401
    reload = httpx.post(server.admin_url + "/v1/reload", headers={**session, "content-type": "application/json"}, timeout=10)
    assert reload.status_code == 401
    wrong = httpx.post(server.admin_url + "/login", data={"token": "not-the-token-0123456789"}, timeout=10)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
