"""Two ``archiver backfill`` processes on one state at once: they split the windows
(each listed by one of them, once), both transfer, and every recording ends up
once in the storage and once in the manifest, on an intact chain.

Two pipelines share one real SQLite file and one local archive, as two processes
would; each reaches the simulated provider through its own proxy, which records
the windows it listed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from archiver.commands.runtime import Runtime, open_runtime
from archiver.manifest.reader import list_manifests
from archiver.retrieval.verify import verify_archive
from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.state import JobState
from archiver.storage import open_store
from archiver.timeutil import split_windows
from tests.integration.pipeline_helpers import FIXED_START, assert_exactly_once, make_settings
from tests.support.proxy import Proxy, reverse_proxy

WINDOWS = 8


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared state: one SQLite file, or one PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "state.sqlite3")


@asynccontextmanager
async def _process(
    sim: Simulator, proxy: Proxy, tmp_path: Path, state: str
) -> AsyncIterator[Runtime]:
    settings = make_settings(
        sim,
        proxy.url,
        StorageSettings(url=str(tmp_path / "archive")),
        state,
        concurrency=2,
        leader_lease=3,
    )
    async with open_runtime(settings) as rt:
        yield rt


def _windows_listed(proxy: Proxy) -> set[tuple[str, str]]:
    return {
        (r.query["start_date"], r.query["end_date"]) for r in proxy.requests if r.path == "/v2/cdr"
    }


async def test_two_backfills_split_the_windows_and_archive_each_recording_once(
    tmp_path: Path, state_url: str
) -> None:
    sim = Simulator(
        SimConfig(
            seed=34,
            calls=40,
            start=FIXED_START,
            span=timedelta(hours=2),
            recording_fraction=1.0,
            max_size=60_000,
            # Each request takes a while: both processes are listing at once.
            faults=Faults(slow=1.0, slow_seconds=0.15),
        )
    )
    async with sim.serve() as base, reverse_proxy(base) as to_a, reverse_proxy(base) as to_b:
        process_a = _process(sim, to_a, tmp_path, state_url)
        async with process_a as a, _process(sim, to_b, tmp_path, state_url) as b:
            windows = split_windows(
                sim.config.start,
                sim.config.start + sim.config.span,
                sim.config.span / WINDOWS,
                a.source.granularity,
            )
            assert len(windows) == WINDOWS
            first, second = await asyncio.gather(
                a.pipeline.backfill(windows), b.pipeline.backfill(windows)
            )
            counts = await a.state.counts()
    listed_a, listed_b = _windows_listed(to_a), _windows_listed(to_b)
    # Each window listed by one process only, every window by one of them.
    assert listed_a.isdisjoint(listed_b)
    assert len(listed_a | listed_b) == WINDOWS
    assert listed_a, "the second process listed every window"
    assert listed_b, "the first process listed every window"
    assert first.windows_done + second.windows_done == WINDOWS
    # Both transferred, and nothing twice.
    assert first.archived > 0
    assert second.archived > 0
    assert first.archived + second.archived == len(sim.calls) == counts[JobState.ARCHIVED]
    assert first.manifest_lines + second.manifest_lines == len(sim.calls)
    await assert_exactly_once(sim, StorageSettings(url=str(tmp_path / "archive")))
    async with open_store(StorageSettings(url=str(tmp_path / "archive"))) as store:
        report = await verify_archive(store, await list_manifests(store, None, None, UTC))
    assert report.problems == []
