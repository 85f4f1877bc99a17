"""The console in a real browser: Debian's chromium, driven by Selenium.

The archive is on an Object Lock bucket (SeaweedFS), written by a real
backfill; the accounts are made with ``archiver console-user``; the console
is ``archiver console`` as a subprocess. One browser goes through the whole
story: signed out, then each role in turn, then the audit page.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import time
import zipfile
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from archiver.retrieval.search import phone_key
from archiver.storage import open_store
from tests.console import browser
from tests.support.cli import cli_env, s3_storage_env, start_cli
from tests.support.console import PASSWORD, archived_storage, console_user, manifest_calls
from tests.support.seaweed import admin_client, free_ports

WAIT = 30  # seconds any one browser step may take on a loaded machine
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")  # a directory: save the README's pictures


def _wait(driver: WebDriver, condition, timeout: float = WAIT):
    return browser.wait_for(driver, condition, timeout)


def _sign_in(driver: WebDriver, url: str, user: str) -> None:
    browser.sign_in(driver, url, user, PASSWORD)


def _sign_out(driver: WebDriver) -> None:
    driver.find_element(By.ID, "sign-out").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "login-form"))


def _search_phone(driver: WebDriver, url: str, phone: str) -> list[str]:
    driver.get(url + "/")
    driver.find_element(By.ID, "phone").send_keys(phone)
    driver.find_element(By.ID, "search-button").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "result-count"))
    return [
        row.get_attribute("data-id")
        for row in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    ]


def _reason(driver: WebDriver, form_id: str, text: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#{form_id} .reason-input").send_keys(text)


def _downloaded(folder: Path, suffix: str, before: set[str]) -> Path:
    def done(_d: object) -> Path | None:
        for path in folder.iterdir():
            if path.name not in before and path.name.endswith(suffix):
                return path
        return None

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = done(None)
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} download in {folder}: {sorted(os.listdir(folder))}")


def _story(
    driver: WebDriver, url: str, wav, downloads: Path, shots: Path | None
) -> dict[str, object]:
    seen: dict[str, object] = {}
    # Signed out: every page is the sign-in page.
    for path in ("/", "/audit", "/calls/1", "/?go=1&phone=0901234567"):
        driver.get(url + path)
        assert driver.current_url.endswith("/login"), path
        assert driver.find_elements(By.ID, "login-form")
    phone = phone_key(str(wav.fields["from_number"]))  # 0xxxxxxxxx

    # A viewer searches and reads, but cannot play.
    _sign_in(driver, url, "viewer")
    ids = _search_phone(driver, url, "+84 " + phone[1:])
    assert ids
    driver.find_element(By.CSS_SELECTOR, f'tr[data-id="{ids[0]}"] a.call-link').click()
    _wait(driver, lambda d: d.find_elements(By.ID, "integrity"))
    assert not driver.find_elements(By.ID, "play-button")
    _sign_out(driver)

    # A listener plays (duration known, seeking works) but cannot export.
    _sign_in(driver, url, "listener")
    driver.get(url + f"/?go=1&id={wav.sip_call_id}")
    assert not driver.find_elements(By.ID, "export-button")
    call_id = driver.find_element(By.CSS_SELECTOR, "#results tbody tr").get_attribute("data-id")
    driver.get(url + f"/calls/{call_id}")
    _reason(driver, "play-form", "customer complaint 7781")
    driver.find_element(By.ID, "play-button").click()
    duration = _wait(
        driver,
        lambda d: d.execute_script(
            "var p = document.getElementById('player'); return p.duration > 0 ? p.duration : null;"
        ),
    )
    seen["duration"] = duration
    # The check Play made is shown, not the "not checked yet" the page was drawn with.
    assert driver.find_elements(By.CSS_SELECTOR, "#integrity .good")
    driver.execute_script(
        "var p = document.getElementById('player'); window.__seeked = false;"
        "p.addEventListener('seeked', function () { window.__seeked = true; });"
        "p.currentTime = p.duration * 0.75;"
    )
    _wait(driver, lambda d: d.execute_script("return window.__seeked;"))
    seen["position"] = driver.execute_script(
        "return document.getElementById('player').currentTime;"
    )
    seen["buffered_from"] = driver.execute_script(
        "var b = document.getElementById('player').buffered;"
        "return b.length ? b.start(b.length - 1) : null;"
    )
    if shots is not None:
        driver.save_screenshot(str(shots / "console-player.png"))
    _sign_out(driver)

    # An exporter downloads one recording and exports a selection.
    _sign_in(driver, url, "exporter")
    driver.get(url + f"/calls/{call_id}")
    before = set(os.listdir(downloads))
    _reason(driver, "download-form", "court order 12/2026")
    driver.find_element(By.ID, "download-button").click()
    seen["download"] = _downloaded(downloads, ".wav", before).read_bytes()
    driver.get(url + "/?go=1")
    _wait(driver, lambda d: d.find_elements(By.ID, "select-all"))
    if shots is not None:
        driver.save_screenshot(str(shots / "console-search.png"))
    driver.find_element(By.ID, "select-all").click()
    seen["selected"] = len(driver.find_elements(By.CSS_SELECTOR, "input.pick:checked"))
    _reason(driver, "export-form", "inspection 2026-11")
    before = set(os.listdir(downloads))
    driver.find_element(By.ID, "export-button").click()
    seen["zip"] = _downloaded(downloads, ".zip", before).read_bytes()
    driver.get(url + "/audit")
    assert "this needs the officer role" in driver.page_source
    driver.get(url + "/")
    _sign_out(driver)

    # An officer holds and releases, and sees every action in the audit trail.
    _sign_in(driver, url, "officer")
    driver.get(url + f"/calls/{call_id}")
    states = [driver.find_element(By.ID, "hold-state").text]
    for reason in ("litigation hold 5", "case closed 5"):
        _reason(driver, "hold-form", reason)
        driver.find_element(By.ID, "hold-button").click()
        _wait(driver, lambda d, old=states[-1]: d.find_element(By.ID, "hold-state").text != old)
        states.append(driver.find_element(By.ID, "hold-state").text)
    seen["hold_states"] = states
    driver.find_element(By.ID, "nav-audit").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "audit-table"))
    seen["audit"] = [
        tuple(cell.text for cell in row.find_elements(By.TAG_NAME, "td")[1:4])
        for row in driver.find_elements(By.CSS_SELECTOR, "tr.audit-row")
    ]
    _sign_out(driver)
    return seen


@pytest.mark.slow
async def test_the_console_in_a_browser(tmp_path, make_bucket, s3_settings, s3_env):
    assert browser.available(), "chromium and chromium-driver are installed by .ci/run"
    lock = {"object_lock_mode": "GOVERNANCE", "retention_days": 1}
    bucket = await make_bucket(object_lock=True)
    storage = s3_settings(bucket, **lock)
    await archived_storage(storage, tmp_path / "builder", calls=8)
    async with open_store(storage) as store:
        calls = await manifest_calls(store)
    wav = next(
        c
        for c in calls
        if c.content_type == "audio/wav"
        and phone_key(str(c.fields.get("from_number") or "")).startswith("0")
        and len(phone_key(str(c.fields["from_number"]))) == 10
    )
    (port,) = free_ports(1)
    env = cli_env(
        {
            **s3_storage_env(storage, s3_env),
            "ARCHIVER_STORAGE__OBJECT_LOCK_MODE": "GOVERNANCE",
            "ARCHIVER_STORAGE__RETENTION_DAYS": "1",
            "ARCHIVER_CONSOLE__PORT": str(port),
            "ARCHIVER_CONSOLE__USERS_FILE": str(tmp_path / "users"),
            "ARCHIVER_CONSOLE__INDEX_PATH": str(tmp_path / "index.sqlite3"),
        }
    )
    for role in ("viewer", "listener", "exporter", "officer"):
        made = await console_user(
            env, tmp_path, "add", role, "--role", role, "--password-stdin", password=PASSWORD
        )
        assert made.code == 0, made.err
    proc = await start_cli("console", env=env, cwd=tmp_path)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"serving on" in line, line
        url = f"http://localhost:{port}"  # a secure context: the Secure cookies are kept
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        shots = Path(SCREENSHOTS) if SCREENSHOTS else None
        with browser.chromium(tmp_path / "profile", downloads) as driver:
            seen = await asyncio.to_thread(_story, driver, url, wav, downloads, shots)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0

    expected_seconds = (wav.size - 44) / 16_000
    assert seen["duration"] == pytest.approx(expected_seconds, rel=0.01)
    assert seen["position"] == pytest.approx(expected_seconds * 0.75, abs=0.5)
    assert hashlib.sha256(seen["download"]).hexdigest() == wav.sha256
    archive = zipfile.ZipFile(io.BytesIO(seen["zip"]))
    assert archive.testzip() is None
    recordings = [n for n in archive.namelist() if n.startswith("recordings/")]
    assert len(recordings) == seen["selected"] == len(calls)
    assert {"manifest.csv", "manifest.json", "SHA256SUMS"} <= set(archive.namelist())
    sums = archive.read("SHA256SUMS").decode()
    assert all(c.sha256 in sums for c in calls)
    off, on, off_again = seen["hold_states"]
    assert "Legal hold: OFF" in off
    assert "GOVERNANCE" in off
    assert "Legal hold: ON" in on
    assert "Legal hold: OFF" in off_again
    async with admin_client(s3_env) as client:
        hold = await client.get_object_legal_hold(Bucket=bucket, Key=wav.object_key)
    assert hold["LegalHold"]["Status"] == "OFF"
    audit = set(seen["audit"])
    for row in [
        ("viewer", "search", "ok"),
        ("listener", "play", "ok"),
        ("exporter", "download", "ok"),
        ("exporter", "export", "ok"),
        ("officer", "hold-on", "ok"),
        ("officer", "hold-off", "ok"),
    ]:
        assert row in audit, row
