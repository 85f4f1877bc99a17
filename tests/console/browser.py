"""Debian's chromium driven by Selenium, with nothing downloaded.

The browser and its driver are the system's (/usr/bin/chromium and
/usr/bin/chromedriver, installed by .ci/run); both paths are given, so
selenium-manager has nothing to look up, and SE_OFFLINE forbids it to try.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
)


def available() -> bool:
    """Whether the system's chromium and chromedriver are installed."""
    return Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()


@contextmanager
def chromium(profile: Path, downloads: Path) -> Iterator[webdriver.Chrome]:
    """A headless chromium with a fresh profile, saving downloads into ``downloads``."""
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must not reach the network
    os.environ["SE_AVOID_STATS"] = "true"
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


WAIT = 30  # seconds any one browser step may take on a loaded machine


def wait_for(
    driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = WAIT
) -> Any:
    """What ``condition`` returns once truthy; AssertionError naming the page after ``timeout``."""
    try:
        # A form post reloads the page: an element read while it reloads is stale, not wrong.
        return WebDriverWait(
            driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(lambda d: condition(d))
    except TimeoutException:
        text = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"waited {timeout}s at {driver.current_url}: {text[:2000]}") from None


def sign_in(driver: WebDriver, url: str, user: str, password: str) -> None:
    """Sign in through the form, in English."""
    driver.get(url + "/login?lang=en")
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "who"))
    assert driver.find_element(By.ID, "who").text.startswith(user)
