"""The daemon's polls against the simulated provider, in simulated time: a quiet
hour costs about one request per poll, and a CDR that appears minutes after its
call started is found by the next poll and archived before the one after."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from archiver.commands.runtime import open_runtime
from archiver.models import Provider
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.state.base import JobState
from tests.support.pipeline import FIXED_START, make_settings, producers, read_archive
from tests.support.stepped import Clock, Stepped, until

POLL = 10.0


@pytest.mark.parametrize("kind", [Provider.CDR_V2, Provider.EPACIFIC])
async def test_a_quiet_hour_costs_one_request_per_poll_and_a_late_cdr_is_archived_at_once(
    tmp_path: Path, kind: Provider
) -> None:
    # 60 calls over the two hours before "now", none with a recording to fetch.
    clock = Clock(FIXED_START + timedelta(hours=2))
    sim = Simulator(
        SimConfig(seed=15, calls=60, start=FIXED_START, span=timedelta(hours=2), max_size=50_000)
    )
    storage = StorageSettings(url=str(tmp_path / "archive"))
    list_key = "api:cdr_v2_list" if kind is Provider.CDR_V2 else "api:epacific_cdrs"
    async with sim.serve() as base:
        settings = make_settings(
            sim, base, storage, str(tmp_path / "s.sqlite3"), kind, poll_interval=POLL, settle=0
        )
        async with open_runtime(settings) as rt:
            p = rt.pipeline
            p.clock = clock
            poller, sweeper = producers(rt, clock)
            stepped = Stepped()
            run = asyncio.create_task(p.run(stepped, stop_when_idle=False))

            try:
                first = await stepped.turn(poller.poll_once)
                assert first.new == 60
                await stepped.turn(sweeper.sweep_once)
                before = sim.stats[list_key]
                polls = int(3600 / POLL)
                swept = []
                for n in range(1, polls + 1):
                    clock.advance(POLL)
                    report = await stepped.turn(poller.poll_once)
                    assert report.new == 0
                    if n % int(p.config.run.sweep_interval / POLL) == 0:
                        swept.append(await stepped.turn(sweeper.sweep_once))
                quiet = sim.stats[list_key] - before
                # Exactly one count per poll (the lookback's total did not change),
                # plus the sweeps' pages (and, on epacific, its lookups by id:
                # the same endpoint).
                lookups = sum(s.looked_up for s in swept) if kind is Provider.EPACIFIC else 0
                assert len(swept) == 6
                assert quiet == polls + sum(s.requests for s in swept) + lookups
                assert all(s.requests <= 10 and s.new == 0 for s in swept)

                # A call that started five minutes ago; its CDR appears now.
                clock.advance(POLL)
                (late,) = sim.add_calls(1, start=clock.now - timedelta(minutes=5))
                before = sim.stats[list_key]
                report = await stepped.turn(poller.poll_once)
                assert report.new == 1
                assert sim.stats[list_key] - before <= 12  # one count, a few halvings, one page

                async def archived() -> bool:
                    job = await rt.state.reports.find_job(late.sip_call_id)
                    return job is not None and job.state in (
                        JobState.ARCHIVED,
                        JobState.NO_RECORDING,
                    )

                # Archived before the next poll: simulated time does not move meanwhile.
                await until(archived)
            finally:
                p.stop()
                await run
    if late.has_recording:
        lines = (await read_archive(storage)).lines
        assert late.sip_call_id in {line["sip_call_id"] for line in lines}
