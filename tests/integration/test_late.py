"""What comes late, in simulated time, each archived without a restart: a CDR that
appears 3 h after its call started, a recording URL that appears 40 min after
its CDR, a recording that 404s for 20 min, and a URL that appears after the
call has left even the sweep's reach (found by a lookup by id)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from archiver.commands.runtime import Runtime, open_runtime
from archiver.pipeline.poller import Poller, PollReport
from archiver.pipeline.sweep import Sweeper, SweepReport
from archiver.settings import RetrySettings, StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.calls import SimCall
from archiver.state.base import JobState
from tests.support.pipeline import FIXED_START, make_settings, producers, read_archive
from tests.support.stepped import Clock, Stepped, until


@dataclass
class Daemon:
    """The daemon's pipeline with its poller and sweeper stepped by the test."""

    sim: Simulator
    rt: Runtime
    clock: Clock
    poller: Poller
    sweeper: Sweeper
    stepped: Stepped

    async def poll(self) -> PollReport:
        report: PollReport = await self.stepped.turn(self.poller.poll_once)
        return report

    async def sweep(self) -> SweepReport:
        report: SweepReport = await self.stepped.turn(self.sweeper.sweep_once)
        return report

    async def advance(self, seconds: float, step: float = 60.0) -> None:
        """Move simulated time, polling every ``step`` and letting due retries run."""
        moved = 0.0
        while moved < seconds:
            self.clock.advance(step)
            moved += step
            await self.poll()
            await self.settled()

    async def settled(self) -> None:
        """Wait until nothing due in simulated now is left unclaimed or in flight."""

        async def idle() -> bool:
            due = await self.rt.state.jobs.next_due_at()
            counts = await self.rt.state.reports.counts()
            return (due is None or due > self.clock.now) and counts[JobState.TRANSFERRING] == 0

        await until(idle)

    async def state_of(self, call: SimCall) -> JobState | None:
        job = await self.rt.state.reports.find_job(call.sip_call_id)
        return job.state if job else None


@asynccontextmanager
async def daemon(tmp_path: Path, **overrides: Any) -> AsyncIterator[Daemon]:
    clock = Clock(FIXED_START + timedelta(hours=6))
    sim = Simulator(SimConfig(seed=7, calls=0, start=FIXED_START, max_size=50_000))
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"), **overrides)
        async with open_runtime(settings) as rt:
            p = rt.pipeline
            p.clock = clock
            poller, sweeper = producers(rt, clock)
            stepped = Stepped()
            run = asyncio.create_task(p.run(stepped, stop_when_idle=False))
            try:
                yield Daemon(sim, rt, clock, poller, sweeper, stepped)
            finally:
                p.stop()
                await run


def recorded(calls: list[SimCall]) -> list[SimCall]:
    with_recording = [c for c in calls if c.has_recording]
    assert with_recording, "the seed gave no call with a recording"
    return with_recording


async def archived_ids(tmp_path: Path) -> set[str]:
    lines = (await read_archive(StorageSettings(url=str(tmp_path / "archive")))).lines
    return {line["sip_call_id"] for line in lines}


async def test_a_cdr_that_appears_3_hours_after_its_call_started(tmp_path: Path) -> None:
    async with daemon(tmp_path) as d:
        await d.poll()
        await d.sweep()  # the daemon's first sweep, at start-up: nothing late yet
        d.clock.advance(60)
        late = recorded(d.sim.add_calls(4, start=d.clock.now - timedelta(hours=3)))
        assert (await d.poll()).new == 0  # beyond the polls' lookback (2 h)
        report = await d.sweep()
        assert report.late == 4
        metric = d.rt.pipeline.metrics.found_late.labels("lookback")._value.get()
        assert metric == 4
        await d.settled()
        assert {await d.state_of(c) for c in late} == {JobState.ARCHIVED}
    assert {c.sip_call_id for c in late} <= await archived_ids(tmp_path)


async def test_a_recording_url_that_appears_40_minutes_after_its_cdr(tmp_path: Path) -> None:
    async with daemon(tmp_path) as d:
        await d.poll()
        d.clock.advance(60)
        calls = recorded(d.sim.add_calls(4, start=d.clock.now - timedelta(minutes=3)))
        d.sim.withheld_urls.update(c.cdr_id for c in calls)
        await d.poll()
        assert {await d.state_of(c) for c in calls} == {JobState.NO_RECORDING}
        await d.advance(40 * 60)
        d.sim.withheld_urls.clear()
        await d.advance(600)  # one sweep interval of polls: the counts did not change
        assert {await d.state_of(c) for c in calls} == {JobState.NO_RECORDING}
        report = await d.sweep()
        assert report.updated == len(calls)
        await d.settled()
        assert {await d.state_of(c) for c in calls} == {JobState.ARCHIVED}
    assert {c.sip_call_id for c in calls} <= await archived_ids(tmp_path)


async def test_a_recording_that_404s_for_20_minutes(tmp_path: Path) -> None:
    # The default not-ready backoff (30 s doubling to 30 min), in simulated time.
    async with daemon(tmp_path, retry=RetrySettings()) as d:
        await d.poll()
        d.clock.advance(60)
        calls = recorded(d.sim.add_calls(4, start=d.clock.now - timedelta(minutes=3)))
        d.sim.withheld_recordings.update(c.cdr_id for c in calls)
        await d.poll()
        await d.settled()
        assert {await d.state_of(c) for c in calls} == {JobState.WAITING_READY}
        await d.advance(20 * 60)
        d.sim.withheld_recordings.clear()
        for _ in range(40):
            if {await d.state_of(c) for c in calls} == {JobState.ARCHIVED}:
                break
            await d.advance(60)
        assert {await d.state_of(c) for c in calls} == {JobState.ARCHIVED}
    assert {c.sip_call_id for c in calls} <= await archived_ids(tmp_path)


async def test_a_url_that_appears_beyond_the_sweeps_reach_is_found_by_id(
    tmp_path: Path,
) -> None:
    async with daemon(tmp_path, lookback=3600, longest_call=3600) as d:
        await d.poll()
        d.clock.advance(60)
        calls = recorded(d.sim.add_calls(4, start=d.clock.now - timedelta(minutes=3)))
        d.sim.withheld_urls.update(c.cdr_id for c in calls)
        await d.poll()
        d.clock.advance(3 * 3600)
        d.sim.withheld_urls.clear()
        report = await d.sweep()
        assert report.updated == 0  # the re-listing no longer reaches them
        assert report.requeued == len(calls)
        await d.settled()
        assert {await d.state_of(c) for c in calls} == {JobState.ARCHIVED}
    assert {c.sip_call_id for c in calls} <= await archived_ids(tmp_path)
