"""The review workflow in Debian's chromium (Selenium): sort, page, filter, save, export the
whole result; the same at 390 px; and axe-core, run headless, on every page.

The console runs in this test's event loop (a real aiohttp server on loopback); the
browser is driven from a worker thread so the loop keeps serving it.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.console import browser
from tests.support.console import PASSWORD, running_console

pytestmark = pytest.mark.timeout(400)
WAIT = 30
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"


def _wait(driver: WebDriver, condition, timeout: float = WAIT):
    return browser.wait_for(driver, condition, timeout)


def axe_problems(driver: WebDriver) -> list[str]:
    """axe-core's serious and critical violations on the page shown, one line each."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    violations = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations)).catch(e => done([{id: 'axe-error', impact: 'critical',"
        " help: String(e), nodes: []}]));"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(str(n.get("target")) for n in v["nodes"][:3])
        for v in violations
        if v.get("impact") in ("serious", "critical")
    ]


def _sign_in(driver: WebDriver, url: str, user: str) -> None:
    browser.sign_in(driver, url, user, PASSWORD)


def _durations(driver: WebDriver) -> list[int]:
    return [int(c.text) for c in driver.find_elements(By.CSS_SELECTOR, "#results td.duration")]


def _rows(driver: WebDriver) -> list[str]:
    return [
        r.get_attribute("data-id")
        for r in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    ]


def _story(driver: WebDriver, url: str, downloads: Path) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    driver.get(url + "/login?lang=en")
    problems["login"] = axe_problems(driver)
    _sign_in(driver, url, "exporter")
    problems["search form"] = axe_problems(driver)

    driver.get(url + "/?go=1&lang=en")
    _wait(driver, lambda d: d.find_elements(By.ID, "result-count"))
    assert driver.find_element(By.ID, "result-count").text.startswith("6 ")
    problems["results"] = axe_problems(driver)

    # Sort by talk time, longest first, then shortest first.
    driver.find_element(By.ID, "sort-duration").click()
    _wait(driver, lambda d: "sort=longest" in d.current_url)
    talks = _durations(driver)
    assert talks == sorted(talks, reverse=True)
    driver.find_element(By.ID, "sort-duration").click()
    _wait(driver, lambda d: "sort=shortest" in d.current_url)
    assert _durations(driver) == sorted(talks)

    # Five a page: two pages, the next one holds the sixth call.
    Select(driver.find_element(By.ID, "page-size")).select_by_value("5")
    driver.find_element(By.ID, "size-button").click()
    _wait(driver, lambda d: "size=5" in d.current_url)
    assert driver.find_element(By.ID, "page-of").text.endswith("1 / 2")
    first_page = _rows(driver)
    assert len(first_page) == 5
    driver.find_element(By.ID, "next").click()
    _wait(driver, lambda d: "page=2" in d.current_url)
    assert len(_rows(driver)) == 1
    assert _rows(driver)[0] not in first_page

    # A filter: calls that talked at least the median.
    median = sorted(talks)[3]
    driver.get(url + "/?lang=en")
    driver.find_element(By.ID, "min-seconds").send_keys(str(median))
    driver.find_element(By.ID, "search-button").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "result-count"))
    assert all(t >= median for t in _durations(driver))
    assert len(_rows(driver)) == len([t for t in talks if t >= median])

    # Save it, then export the whole result with one reason.
    driver.find_element(By.ID, "save-name").send_keys("long calls")
    driver.find_element(By.ID, "save-button").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#saved-list a.saved-link"))
    assert driver.find_element(By.CSS_SELECTOR, "#saved-list a.saved-link").text == "long calls"
    expected = len(_rows(driver))
    before = set(os.listdir(downloads))
    driver.find_element(By.CSS_SELECTOR, "#export-form .reason-input").send_keys(
        "inspection 2026-12"
    )
    driver.find_element(By.ID, "export-all").click()
    deadline = time.monotonic() + WAIT
    zips: list[Path] = []
    while time.monotonic() < deadline and not zips:
        zips = [
            downloads / n for n in os.listdir(downloads) if n not in before and n.endswith(".zip")
        ]
        time.sleep(0.1)
    assert zips, os.listdir(downloads)
    names = zipfile.ZipFile(io.BytesIO(zips[0].read_bytes())).namelist()
    assert len([n for n in names if n.startswith("recordings/")]) == expected

    # A call's page, an error page.
    driver.find_element(By.CSS_SELECTOR, "#results a.call-link").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "integrity"))
    problems["call"] = axe_problems(driver)
    driver.get(url + "/calls/999999?lang=vi")
    assert "Không tìm thấy." in driver.find_element(By.ID, "error-message").text
    problems["error"] = axe_problems(driver)

    # At 390 px (a phone): nothing cut off, the page does not scroll sideways.
    driver.set_window_size(390, 844)
    for path in ("/login", "/?go=1&lang=vi", "/calls/1"):
        driver.get(url + path)
        width = driver.execute_script("return window.innerWidth")
        wide = driver.execute_script(
            "return [...document.querySelectorAll('body *')].filter("
            "e => e.getBoundingClientRect().right > window.innerWidth + 1"
            " && !e.closest('.scroll')).map(e => e.tagName + '#' + e.id + '.' + e.className)"
        )
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width, (
            path,
            wide[:10],
        )
        for element in driver.find_elements(By.CSS_SELECTOR, "header.bar a, header.bar button"):
            right = driver.execute_script(
                "return arguments[0].getBoundingClientRect().right", element
            )
            assert right <= width, (path, element.text)
        problems[f"390px {path}"] = axe_problems(driver)
    driver.set_window_size(1400, 900)

    driver.find_element(By.ID, "sign-out").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "login-form"))
    _sign_in(driver, url, "officer")
    driver.get(url + "/audit?lang=en")
    _wait(driver, lambda d: d.find_elements(By.ID, "audit-table"))
    assert driver.find_elements(By.CSS_SELECTOR, "#audit-table a.target-link")
    problems["audit"] = axe_problems(driver)
    return problems


async def test_the_review_workflow_in_a_browser_with_no_serious_accessibility_problem(
    local_archive, tmp_path
):
    assert browser.available(), "apt-get install chromium chromium-driver (.ci/run does)"
    assert AXE.is_file(), "axe-core is missing: npm ci --prefix tests/console/axe (.ci/run)"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with running_console(local_archive, tmp_path) as console:

        def drive() -> dict[str, list[str]]:
            with browser.chromium(tmp_path / "profile", downloads) as driver:
                return _story(driver, console.url.replace("127.0.0.1", "localhost"), downloads)

        problems = await asyncio.to_thread(drive)
    assert {page: found for page, found in problems.items() if found} == {}


def _case_story(driver: WebDriver, url: str, downloads: Path) -> list[str]:
    _sign_in(driver, url, "exporter")
    driver.find_element(By.ID, "nav-cases").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "case-form"))
    problems = axe_problems(driver)
    driver.find_element(By.ID, "case-reference").send_keys("KN-2026-118")
    driver.find_element(By.ID, "case-reason").send_keys("customer complaint")
    driver.find_element(By.ID, "case-open").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "case-title"))
    assert "KN-2026-118" in driver.find_element(By.ID, "case-title").text
    driver.get(url + "/?go=1&lang=en")
    _wait(driver, lambda d: d.find_elements(By.ID, "case-select"))
    picks = driver.find_elements(By.CSS_SELECTOR, "input.pick")[:3]
    for box in picks:
        box.click()
    driver.find_element(By.ID, "add-to-case-button").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "case-calls"))
    assert len(driver.find_elements(By.CSS_SELECTOR, "#case-calls a.case-call")) == 3
    problems += axe_problems(driver)
    before = set(os.listdir(downloads))
    driver.find_element(By.ID, "package-button").click()
    deadline = time.monotonic() + WAIT
    zips: list[Path] = []
    while time.monotonic() < deadline and not zips:
        new = [n for n in os.listdir(downloads) if n not in before]
        zips = [downloads / n for n in new if n.endswith(".zip")]
        time.sleep(0.1)
    assert zips, os.listdir(downloads)
    folder = downloads / "package"
    zipfile.ZipFile(zips[0]).extractall(folder)
    checker = subprocess.run(
        [sys.executable, "-I", "verify_package.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checker.returncode == 0, checker.stdout + checker.stderr
    assert len(list(folder.glob("recordings/*"))) == 3
    return problems


async def test_a_case_from_creation_to_its_evidence_package_in_a_browser(local_archive, tmp_path):
    assert browser.available(), "apt-get install chromium chromium-driver (.ci/run does)"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with running_console(local_archive, tmp_path) as console:

        def drive() -> list[str]:
            with browser.chromium(tmp_path / "profile", downloads) as driver:
                return _case_story(driver, console.url.replace("127.0.0.1", "localhost"), downloads)

        problems = await asyncio.to_thread(drive)
    assert problems == []
