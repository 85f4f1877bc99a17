"""A provider whose counts cannot be trusted: garbage, negative, missing, absurd or
lying totals on the one-record pages the polls count with. Nothing is lost: an
unusable count makes the poll list the whole range, and what a lying count
hides from the polls, the sweep's full re-listing finds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from archiver.commands.runtime import open_runtime
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from tests.support.pipeline import FIXED_START, make_settings, producers
from tests.support.stepped import Clock

MISSING = object()


@asynccontextmanager
async def serve_counting_lies(sim: Simulator, total: Any) -> AsyncIterator[str]:
    """The simulator, with ``total`` in place of the true one on every one-record page."""

    @web.middleware
    async def lie(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if request.path != "/v2/cdr" or request.query.get("limit") != "1":
            return response
        assert isinstance(response, web.Response)
        assert response.text is not None
        body = json.loads(response.text)
        if total is MISSING:
            del body["total"]
        else:
            body["total"] = total
        return web.json_response(body)

    app = sim.make_app()
    app.middlewares.append(lie)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        sim.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield sim.base_url
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("total", "polls_see_it"),
    [
        ("abc", True),
        (-5, True),
        (MISSING, True),
        ([1], True),
        (10**30, False),
        (0, False),
    ],
)
async def test_an_untrustworthy_count_loses_nothing(
    tmp_path: Path, total: Any, polls_see_it: bool
) -> None:
    clock = Clock(FIXED_START + timedelta(hours=2))
    sim = Simulator(SimConfig(seed=15, calls=20, start=FIXED_START, span=timedelta(hours=2)))
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with serve_counting_lies(sim, total) as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"), settle=0)
        async with open_runtime(settings) as rt:
            p = rt.pipeline
            stop = asyncio.Event()
            poller, sweeper = producers(rt, clock)
            await poller.poll_once(p, stop)
            await sweeper.sweep_once(p, stop)
            assert sum((await rt.state.reports.counts()).values()) == 20
            for _ in range(3):
                clock.advance(10)
                await poller.poll_once(p, stop)
            (late,) = sim.add_calls(1, start=clock.now - timedelta(minutes=5))
            clock.advance(10)
            found_by_poll = (await poller.poll_once(p, stop)).new
            assert found_by_poll == (1 if polls_see_it else 0)
            clock.advance(600)
            swept = await sweeper.sweep_once(p, stop)
            assert found_by_poll + swept.new == 1
            assert await rt.state.reports.find_job(late.sip_call_id) is not None
