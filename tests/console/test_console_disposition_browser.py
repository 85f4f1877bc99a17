"""The disposition screen in Debian's chromium (Selenium): one officer lists what is due and
requests its disposition, another signs in and approves it, the outcome is shown; axe-core
finds no serious problem on the three pages (issue 27).

The console runs in this test's event loop (a real aiohttp server on loopback); the
browser is driven from a worker thread so the loop keeps serving it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from archiver.manifest.retention import load_schedule
from tests.console import browser
from tests.console.test_console_disposition import write_officers
from tests.console.test_console_review_browser import AXE, axe_problems
from tests.support.console import PASSWORD, running_console

pytestmark = pytest.mark.timeout(300)


def _story(driver: WebDriver, url: str) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    browser.sign_in(driver, url, "officer", PASSWORD)
    driver.find_element(By.ID, "nav-disposition").click()
    browser.wait_for(driver, lambda d: d.find_elements(By.ID, "survey-form"))
    driver.find_element(By.ID, "survey-button").click()
    browser.wait_for(driver, lambda d: d.find_elements(By.ID, "due-table"))
    assert driver.find_element(By.ID, "due-count").text == "6"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#due-table tr.due-row")) == 6
    problems["due"] = axe_problems(driver)
    driver.find_element(By.ID, "request-button").click()
    browser.wait_for(driver, lambda d: d.find_elements(By.ID, "request-title"))
    assert driver.find_element(By.ID, "request-status").get_attribute("data-status") == (
        "requested"
    )
    assert driver.find_elements(By.ID, "own-request"), "the requester is told to ask another"
    assert not driver.find_elements(By.ID, "approve-button")
    problems["request"] = axe_problems(driver)

    driver.find_element(By.ID, "sign-out").click()
    browser.wait_for(driver, lambda d: d.find_elements(By.ID, "login-form"))
    browser.sign_in(driver, url, "officer2", PASSWORD)
    driver.find_element(By.ID, "nav-disposition").click()
    browser.wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "a.request-link"))
    driver.find_element(By.CSS_SELECTOR, "a.request-link").click()
    browser.wait_for(driver, lambda d: d.find_elements(By.ID, "approve-button"))
    driver.find_element(By.ID, "approve-button").click()
    browser.wait_for(driver, lambda d: d.find_elements(By.ID, "outcome"))
    assert driver.find_element(By.ID, "request-status").get_attribute("data-status") == "done"
    assert driver.find_element(By.ID, "disposed-count").text == "6"
    assert driver.find_element(By.ID, "failed-count").text == "0"
    assert driver.find_element(By.ID, "approved-by").text == "officer2"
    assert driver.find_element(By.ID, "certificate").text.startswith("_archiver/audit/")
    problems["outcome"] = axe_problems(driver)
    return problems


async def test_an_officer_requests_and_another_approves_in_a_browser(local_archive, tmp_path):
    assert browser.available(), "apt-get install chromium chromium-driver (.ci/run does)"
    assert AXE.is_file(), "axe-core is missing: npm ci --prefix tests/console/axe (.ci/run)"
    (tmp_path / "rules.toml").write_text("default_days = 30\n")
    schedule = load_schedule(tmp_path / "rules.toml", 0)
    workdir = tmp_path / "console"
    workdir.mkdir()
    write_officers(workdir / "users")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with running_console(local_archive, workdir, schedule=schedule) as console:

        def drive() -> dict[str, list[str]]:
            with browser.chromium(tmp_path / "profile", downloads) as driver:
                return _story(driver, console.url.replace("127.0.0.1", "localhost"))

        problems = await asyncio.to_thread(drive)
    assert {page: found for page, found in problems.items() if found} == {}
    assert not list(Path(local_archive.url).rglob("recordings/**/*.*"))
