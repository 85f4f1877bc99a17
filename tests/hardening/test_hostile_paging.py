"""A provider whose paging never ends, through ``archiver backfill`` (the CLI).

One hour of the day is served honestly; in others the ``total`` keeps growing
with fresh ids on every page, the pages alternate A, B, A, B, a page holds far
more rows than asked, or the answer is a body without end. Each hostile
window stops at its bound with the bound named, is left not done (a re-run
lists it again), and the honest window is archived: the run ends, exit 3.
An epacific API answering ``next_page: true`` for ever, with fresh ids on
every page, stops at ``ARCHIVER_SOURCE__MAX_PAGES``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from pydantic import SecretStr

from archiver.errors import ListingLimitError
from archiver.failures import ListingLimit
from archiver.http import ApiClient, make_session
from archiver.metrics import Metrics
from archiver.models import Provider
from archiver.pipeline.intake import Health
from archiver.pipeline.poller import Poller
from archiver.pipeline.stats import PipelineConfig, RunStats
from archiver.pipeline.sweep import Sweeper
from archiver.settings import RunSettings, SourceSettings, StateSettings
from archiver.simulator.audio import RecordingBytes
from archiver.sources import make_source
from archiver.sources.base import CdrSource, Page
from archiver.state import open_state_store
from archiver.state.base import AddResult
from archiver.state.protocols import State
from tests.support.cli import archiver_env, run_cli
from tests.support.web import serve

DAY = "2021-02-17"
GOOD_HOUR, GROWING, ALTERNATING, HUGE_PAGE, ENDLESS = "10", "11", "12", "13", "14"
PAGE = 10


def wav(n: int) -> bytes:
    return RecordingBytes(7, n, "wav", 20_000, f"call {n}").read()


def rows(base: str, hour: str, ids: range | list[int], *, recording: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": f"h{hour}-{i}",
            "sip_call_id": f"sip-h{hour}-{i}",
            "time_started": f"{DAY} {hour}:00:{i % 60:02d}",
            **({"recording_url": f"{base}/rec/{i}.wav"} if recording else {}),
        }
        for i in ids
    ]


async def list_cdrs(request: web.Request) -> web.StreamResponse:
    q = request.query
    hour = q.get("start_date", "")[11:13]
    offset = int(q.get("offset", "0"))
    base = str(request.url.origin())
    if hour == GOOD_HOUR:
        data = rows(base, hour, range(offset, min(offset + PAGE, 5)), recording=True)
        return web.json_response({"data": data, "limit": PAGE, "offset": offset, "total": 5})
    if hour == GROWING:
        # Fresh ids on every full page, and always one page more announced.
        data = rows(base, hour, range(offset, offset + PAGE), recording=False)
        total = offset + 2 * PAGE
        return web.json_response({"data": data, "limit": PAGE, "offset": offset, "total": total})
    if hour == ALTERNATING:
        first = 0 if (offset // PAGE) % 2 == 0 else PAGE
        data = rows(base, hour, range(first, first + PAGE), recording=False)
        return web.json_response({"data": data, "limit": PAGE, "offset": offset, "total": 10**6})
    if hour == HUGE_PAGE:
        data = rows(base, hour, range(5000), recording=False)
        return web.json_response({"data": data, "limit": PAGE, "offset": 0, "total": 5000})
    if hour == ENDLESS:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"data": [')
        while True:
            await resp.write(b'{"id": "x", "time_started": "2021-02-17 14:00:00"}, ' * 1000)
    return web.json_response({"data": [], "limit": PAGE, "offset": 0, "total": 0})


async def recording(request: web.Request) -> web.Response:
    return web.Response(body=wav(int(request.match_info["n"])), content_type="audio/wav")


def env(base: str, tmp_path: Path) -> dict[str, str]:
    return archiver_env(
        tmp_path,
        base=base,
        tuning={
            "ARCHIVER_SOURCE__RATE_LIMIT": "0",
            "ARCHIVER_SOURCE__MAX_ATTEMPTS": "2",
            "ARCHIVER_SOURCE__MAX_BACKOFF": "0.05",
            "ARCHIVER_SOURCE__PAGE_SIZE": str(PAGE),
            "ARCHIVER_SOURCE__MAX_PAGES": "40",
            "ARCHIVER_SOURCE__MAX_ROWS": "1000",
            "ARCHIVER_SOURCE__MAX_BODY": str(1024 * 1024),
            "ARCHIVER_WINDOW": "3600",
            "ARCHIVER_MANIFEST_INTERVAL": "0.2",
        },
    )


async def test_hostile_paging_stops_at_its_bounds_and_the_rest_is_archived(
    tmp_path: Path,
) -> None:
    async with serve({"/v2/cdr": list_cdrs, "/rec/{n}.wav": recording}) as api:
        r = await run_cli(
            "backfill",
            "--since",
            DAY,
            "--until",
            "2021-02-18",
            env=env(api.url, tmp_path),
            cwd=tmp_path,
        )
    assert r.code == 3, r.out + r.err
    assert "Traceback" not in r.err, r.err
    assert "4 window(s) not listed completely" in r.out, r.out
    for bound in ("max_pages", "repeated_page", "max_rows", "max_body"):
        assert f"1 x {bound}" in r.out, r.out
    assert "more than ARCHIVER_SOURCE__MAX_PAGES (40) pages in one window" in r.out
    assert "repeats the previous page or an earlier one" in r.out
    assert "has 5000 rows, more than ARCHIVER_SOURCE__MAX_ROWS (1000)" in r.out
    assert "answered more than ARCHIVER_SOURCE__MAX_BODY (1048576 bytes)" in r.out
    # The honest hour is archived, every recording with its bytes.
    lines = []
    for path in sorted((tmp_path / "archive" / "manifests").rglob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["cdr_id"] for line in lines) == [f"h{GOOD_HOUR}-{i}" for i in range(5)]
    for line in lines:
        n = int(line["cdr_id"].rsplit("-", 1)[1])
        assert line["sha256"] == hashlib.sha256(wav(n)).hexdigest()


async def test_epacific_next_page_true_for_ever_stops_at_max_pages(tmp_path: Path) -> None:

    served = 0

    async def cdrs(request: web.Request) -> web.Response:
        nonlocal served
        body = await request.json()
        page = int(body["page"])
        served += 1
        data = [
            {"callid": f"p{page}-{i}", "start": f"{DAY} 10:{i:02d}:00"} for i in range(PAGE)
        ]  # fresh ids on every page, and always a next one
        paging = {"page": page, "limit": PAGE, "next_page": True}
        return web.json_response({"status": "success", "data": data, "paging": paging})

    async with serve({"/cdrs/json": cdrs}) as api:
        settings = SourceSettings(
            kind=Provider.EPACIFIC,
            base_url=api.url,
            api_key=SecretStr("k"),
            api_secret=SecretStr("s"),
            page_size=PAGE,
            rate_limit=0,
            max_pages=25,
        )
        async with make_session(settings) as session:
            source = make_source(settings, ApiClient(session, settings))
            tz = ZoneInfo("Asia/Ho_Chi_Minh")
            start, end = datetime(2021, 2, 17, 10, tzinfo=tz), datetime(2021, 2, 17, 11, tzinfo=tz)
            pages = 0

            async def list_all() -> None:
                nonlocal pages
                async for _ in source.list_window(start, end):
                    pages += 1

            with pytest.raises(ListingLimitError, match="MAX_PAGES") as info:
                await list_all()
    assert info.value.limit is ListingLimit.PAGES
    assert pages == 25
    assert served == 26


async def growing(request: web.Request) -> web.Response:
    """A cdr_v2 API that gives no count and pages for ever, with fresh ids."""
    q = request.query
    offset = int(q.get("offset", "0"))
    started = q.get("start_date", "")
    data = [{"id": f"g-{offset + i}", "time_started": started} for i in range(PAGE)]
    return web.json_response({"data": data, "limit": PAGE, "offset": offset})  # no total


def growing_settings(base_url: str) -> SourceSettings:
    return SourceSettings(
        kind=Provider.CDR_V2,
        base_url=base_url,
        token=SecretStr("t"),
        page_size=PAGE,
        rate_limit=0,
        max_pages=5,
    )


class _IntoState:
    """What a producer lists into: the state, straight."""

    def __init__(self, state: State) -> None:
        self._state = state

    async def take(self, page: Page) -> AddResult:
        return await self._state.jobs.add_calls(page.records, datetime.now(UTC))


@asynccontextmanager
async def _growing_source(url: str, tmp_path: Path) -> AsyncIterator[tuple[CdrSource, State]]:
    """A cdr_v2 source on the endless API at ``url`` (max_pages bound) and a fresh state."""
    settings = growing_settings(url)
    async with (
        make_session(settings) as session,
        open_state_store(StateSettings(url=str(tmp_path / "s.sqlite3"))) as state,
    ):
        yield make_source(settings, ApiClient(session, settings)), state


async def test_the_daemon_counts_a_stopped_listing_and_polls_again(tmp_path: Path) -> None:
    # archiver run's poller against a cdr_v2 API that gives no count and pages for
    # ever: each poll stops at MAX_PAGES, is counted by its bound, and the next
    # poll comes (the daemon is not brought down by a hostile listing).
    async with serve({"/v2/cdr": growing}) as api:
        metrics = Metrics()
        async with _growing_source(api.url, tmp_path) as (source, state):
            poller = Poller(
                source,
                state.progress,
                state.reports,
                PipelineConfig(
                    RunSettings(lookback=600, settle=0, poll_interval=0.05),
                    SourceSettings(page_size=PAGE),
                ),
                clock=lambda: datetime.now(UTC),
                health=Health(),
                metrics=metrics,
                stats=RunStats(),
            )
            stop = asyncio.Event()
            task = asyncio.create_task(poller.run(_IntoState(state), stop))
            label = 'archiver_listings_stopped_total{limit="max_pages",producer="poll"}'
            for _ in range(400):
                if f"{label} 2.0" in metrics.render().decode():
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await task
    assert f"{label} 2.0" in metrics.render().decode()


async def test_the_daemon_counts_a_stopped_sweep_by_its_producer(tmp_path: Path) -> None:
    # archiver run's sweep against the API above: its listing stops at MAX_PAGES
    # and is counted under producer="sweep" (it once only logged it, so a sweep a
    # bound stopped was invisible in the metrics). The stop is asked for by the
    # server itself as it answers the page past the bound: the sweep loop ends
    # right after that round, with no waiting on time.
    stop = asyncio.Event()
    served = 0

    async def growing_then_stop(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        if served > 5:  # the page past MAX_PAGES: the listing stops on it
            stop.set()
        return await growing(request)

    async with serve({"/v2/cdr": growing_then_stop}) as api:
        metrics = Metrics()
        async with _growing_source(api.url, tmp_path) as (source, state):
            sweeper = Sweeper(
                source,
                state.rechecks,
                PipelineConfig(
                    RunSettings(lookback=600, longest_call=600, sweep_interval=3600),
                    SourceSettings(page_size=PAGE),
                ),
                clock=lambda: datetime(2021, 2, 17, 12, tzinfo=UTC),
                metrics=metrics,
                ready_deadline=3600,
            )
            await sweeper.run(_IntoState(state), stop)
    text = metrics.render().decode()
    assert served == 6
    assert 'archiver_listings_stopped_total{limit="max_pages",producer="sweep"} 1.0' in text, text
    assert 'producer="poll"' not in text
