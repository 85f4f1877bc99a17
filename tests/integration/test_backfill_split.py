"""Two ``archiver backfill`` processes on one state at once: they split the windows
(each listed by one of them, once), both transfer, and every recording ends up
once in the storage and once in the manifest, on an intact chain.

Two pipelines share one real SQLite file and one local archive, as two processes
would; each reaches the simulated provider through its own proxy, which records
the windows it listed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from yarl import URL

from archiver.commands.runtime import Runtime, open_runtime
from archiver.manifest.reader import list_manifests
from archiver.pipeline.role_keeper import MANIFEST, window_role
from archiver.retrieval.verify import verify_archive
from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.state import JobState
from archiver.storage import open_store
from archiver.timeutil import split_windows
from tests.support.pipeline import FIXED_START, assert_exactly_once, make_settings
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
    b_listing = asyncio.Event()

    async def after_b_lists(url: URL) -> None:
        # The first process's listings wait until the second one lists too: both
        # are surely at work at once, whatever the machine's load.
        if url.path == "/v2/cdr":
            await b_listing.wait()

    async def b_lists(url: URL) -> None:
        if url.path == "/v2/cdr":
            b_listing.set()

    async with (
        sim.serve() as base,
        reverse_proxy(base, before=after_b_lists) as to_a,
        reverse_proxy(base, before=b_lists) as to_b,
    ):
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
            counts = await a.state.reports.counts()
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


async def test_a_window_a_dead_process_held_is_listed_once_its_lease_ends(tmp_path: Path) -> None:
    sim = Simulator(
        SimConfig(seed=35, calls=12, start=FIXED_START, span=timedelta(hours=1), max_size=50_000)
    )
    async with sim.serve() as base, reverse_proxy(base) as proxy:
        async with _process(sim, proxy, tmp_path, str(tmp_path / "state.sqlite3")) as rt:
            windows = split_windows(
                sim.config.start,
                sim.config.start + sim.config.span,
                sim.config.span / 2,
                rt.source.granularity,
            )
            # A backfill of another machine took the first window, then died.
            provider = rt.source.provider.value
            taken = datetime.now(UTC)
            lease = rt.pipeline.roles.lease
            role = window_role(provider, *windows[0])
            assert await rt.state.roles.hold_role(role, "dead-1@elsewhere", taken, lease)
            stats = await rt.pipeline.backfill(windows)
            # Not before the dead process's lease ended.
            assert datetime.now(UTC) >= taken + lease
            assert await rt.state.progress.is_window_done(provider, *windows[0])
            assert await rt.state.roles.role_holder(role, datetime.now(UTC)) is None
    assert stats.windows_done == 2
    assert len(_windows_listed(proxy)) == 2
    await assert_exactly_once(sim, StorageSettings(url=str(tmp_path / "archive")))


async def test_a_backfill_leaves_its_manifest_lines_to_a_live_run_leader(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="archiver.pipeline")
    sim = Simulator(
        SimConfig(seed=36, calls=12, start=FIXED_START, span=timedelta(hours=1), max_size=50_000)
    )
    state = str(tmp_path / "state.sqlite3")
    async with sim.serve() as base, reverse_proxy(base) as to_run, reverse_proxy(base) as to_fill:
        async with (
            _process(sim, to_run, tmp_path, state) as run,
            _process(sim, to_fill, tmp_path, state) as fill,
        ):
            daemon = asyncio.create_task(run.pipeline.daemon())
            try:
                await _until(
                    lambda: run.pipeline.metrics.registry.get_sample_value("archiver_leader") == 1
                )
                # The leader is writing the manifest when the backfill ends.
                leader = run.pipeline.roles
                assert await leader.take(MANIFEST)
                windows = split_windows(
                    sim.config.start,
                    sim.config.start + sim.config.span,
                    sim.config.span,
                    fill.source.granularity,
                )
                stats = await fill.pipeline.backfill(windows)
                assert stats.manifest_lines == 0
                assert f"manifest lines left to the run leader {leader.owner}" in caplog.text
                await leader.release(MANIFEST)
                # The leader's next flush writes the backfill's lines.
                with_recording = sum(1 for c in sim.calls if c.has_recording)
                await _until(lambda: run.pipeline.stats.manifest_lines == with_recording)
            finally:
                run.pipeline.stop()
                await daemon
    await assert_exactly_once(sim, StorageSettings(url=str(tmp_path / "archive")))


async def test_a_second_signal_does_not_wait_for_another_writer_of_the_manifest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="archiver.pipeline")
    sim = Simulator(
        SimConfig(seed=37, calls=12, start=FIXED_START, span=timedelta(hours=1), max_size=50_000)
    )
    async with sim.serve() as base, reverse_proxy(base) as proxy:
        async with _process(sim, proxy, tmp_path, str(tmp_path / "state.sqlite3")) as rt:
            # Another machine's process is writing the manifest, for a long while.
            other = "other-1@elsewhere"
            assert await rt.state.roles.hold_role(
                MANIFEST, other, datetime.now(UTC), timedelta(hours=1)
            )
            windows = [(sim.config.start, sim.config.start + sim.config.span)]
            backfill = asyncio.create_task(rt.pipeline.backfill(windows))
            await _until(lambda: rt.pipeline.stats.archived > 0)
            # What a second SIGINT does: the command's task is cancelled.
            backfill.cancel()
            with pytest.raises(asyncio.CancelledError):
                await backfill
            assert rt.pipeline.stats.manifest_lines == 0
            # It stopped at once: it did not wait for the role to come free.
            assert "manifest not written" not in caplog.text
            assert await rt.state.roles.role_holder(MANIFEST, datetime.now(UTC)) == other


async def _until(check: Callable[[], bool]) -> None:
    """Wait for ``check`` (the test's timeout bounds it)."""
    while not check():
        await asyncio.sleep(0.02)
