"""The console under test: an archive written by a real backfill, the console served on loopback.

``archived_storage`` writes a small archive (the simulator's calls, WAV and
MP3 recordings) through the real pipeline; ``running_console`` serves the
console over it on 127.0.0.1 (a real aiohttp server on a free port) with one
local account per role; ``Browser`` is an HTTP client that signs in like a
browser does (the form's token, the cookies).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from archiver.console.app import Console, make_app, open_console, refresh
from archiver.console.auth import Account, Role, hash_password, write_accounts
from archiver.console.hardening import SecureRunner
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import parse_manifest
from archiver.manifest.retention import Schedule
from archiver.privacy.lines import Opener
from archiver.settings import ConsoleSettings, StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from tests.support.cli import Result, run_cli
from tests.support.pipeline import backfill, make_settings

PASSWORD = "correct horse battery"
USERS = {role.label: role for role in Role}  # one user per role, named after it
TZ_NAME = "Asia/Ho_Chi_Minh"


async def archived_storage(
    storage: StorageSettings,
    workdir: Path,
    calls: int = 6,
    fixed_size: int | None = None,
    **overrides: Any,
) -> None:
    """Write an archive of ``calls`` calls (all with a recording) into ``storage``
    (recordings of ``fixed_size`` bytes each, if given; ``overrides``: settings of the
    backfill, such as ``manifest_batch``)."""
    sim = Simulator(
        SimConfig(
            seed=9, calls=calls, recording_fraction=1.0, max_size=120_000, fixed_size=fixed_size
        )
    )
    workdir.mkdir(parents=True, exist_ok=True)
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(workdir / "state.sqlite3"), **overrides)
        await backfill(settings, sim)


async def manifest_calls(store: ObjectStore) -> list[ManifestEntry]:
    """Every call of the archive's manifests."""
    found = []
    async for obj in store.list("manifests/"):
        content = b"".join([c async for c in store.read(obj.key)])
        found += parse_manifest(obj.key, content).calls
    return found


async def audit_records(store: ObjectStore) -> list[dict[str, Any]]:
    """Every audit record in the storage, oldest first."""
    keys = [obj.key async for obj in store.list("_archiver/audit/")]
    return [json.loads(b"".join([c async for c in store.read(k)])) for k in keys]


def write_users(path: Path) -> None:
    """One account per role, all with PASSWORD."""
    hashed = hash_password(PASSWORD)
    write_accounts(path, {name: Account(name, role, hashed) for name, role in USERS.items()})


@dataclass
class Running:
    """A console being served."""

    url: str
    console: Console
    store: ObjectStore


@asynccontextmanager
async def running_console(
    storage: StorageSettings,
    workdir: Path,
    opener: Opener | None = None,
    schedule: Schedule | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    """The console over ``storage`` on 127.0.0.1, one user per role (``opener``: sealed
    phone numbers opened from a key place; ``schedule``: the retention rules its
    disposition screen reads)."""
    from zoneinfo import ZoneInfo

    users = workdir / "users"
    if not users.exists():
        write_users(users)
    fields: dict[str, Any] = {
        "index_path": workdir / "console.sqlite3",
        "users_file": users,
        "cookie_secure": False,  # plain http on loopback; the Secure flag has its own test
        "port": 0,
        **overrides,
    }
    settings = ConsoleSettings.model_validate(fields)
    async with open_store(storage, max_connections=8) as store:
        console = open_console(settings, ZoneInfo(TZ_NAME), store, opener=opener, schedule=schedule)
        await refresh(console)
        runner = SecureRunner(make_app(console), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield Running(f"http://127.0.0.1:{port}", console, store)
        finally:
            await runner.cleanup()
            console.calls.db.close()


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The first CSRF token of a page."""
    match = _CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


@asynccontextmanager
async def signed_in(url: str, user: str | None, password: str = PASSWORD) -> AsyncIterator[Any]:
    """An HTTP client signed in as ``user`` (None: signed out), with ``.csrf`` set."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(url, cookie_jar=jar) as http:
        http.csrf = None  # type: ignore[attr-defined]
        if user is not None:
            async with http.get("/login") as resp:
                token = csrf_of(await resp.text())
            form = {"user": user, "password": password, "csrf": token}
            async with http.post("/login", data=form, allow_redirects=False) as resp:
                assert resp.status == 303, await resp.text()
            async with http.get("/") as resp:
                http.csrf = csrf_of(await resp.text())  # type: ignore[attr-defined]
        yield http


async def console_user(env: dict[str, str], cwd: Path, *args: str, password: str = "") -> Result:
    """``archiver console-user ARGS`` with ``password`` on its standard input."""
    stdin = password.encode() + b"\n"
    return await run_cli("console-user", *args, env=env, cwd=cwd, timeout=60, stdin=stdin)


async def first_call_id(http: Any, **query: str) -> int:
    """The index id of the first (newest) call a search finds."""
    async with http.get("/", params={"go": "1", **query}) as resp:
        assert resp.status == 200
        html = await resp.text()
    marker = 'data-id="'
    assert marker in html, "no result"
    start = html.index(marker) + len(marker)
    return int(html[start : html.index('"', start)])


async def export_records(
    store: ObjectStore, count: int, action: str = "export"
) -> list[dict[str, Any]]:
    """The export audit records, once there are ``count`` (written as the handler ends,
    which may be just after the client has read its last byte)."""
    deadline = time.monotonic() + 60
    while True:
        records = [r for r in await audit_records(store) if r["action"] == action]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.05)
