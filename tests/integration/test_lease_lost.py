"""A transfer that outlives its lease: the process stalled, the job went back to the
queue and another process took it. The late process's outcome is not written: the
job stays the new holder's. Real simulator, real SQLite state (two handles), local
storage."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.commands.runtime import open_runtime
from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.state import SqliteState
from archiver.state.base import JobState
from tests.support.pipeline import make_settings

OTHER = "other-process"


class OutlivesItsLease:
    """The real transferrer, during whose transfer the lease runs out and another
    process (a second handle on the state) takes the job back and starts on it."""

    def __init__(self, real: Any, other: SqliteState, lease: timedelta) -> None:
        self._real = real
        self._other = other
        self._lease = lease
        self.taken: list[int] = []

    async def transfer(self, call: Any) -> Any:
        result = await self._real.transfer(call)
        later = datetime.now(UTC) + 2 * self._lease
        assert await self._other.leases.release_expired(later) == 1
        self.taken += [j.id for j in await self._other.jobs.claim_due(later, 1, owner=OTHER)]
        return result


@pytest.mark.parametrize("fault", ["archived", "retry"])
async def test_a_late_outcome_leaves_the_job_to_its_new_holder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    # "retry": every recording request answers 5xx, so the transfer ends in a retry.
    faults = Faults(rec_5xx=1.0 if fault == "retry" else 0.0)
    sim = Simulator(
        SimConfig(
            seed=5, calls=1, recording_fraction=1.0, min_size=2_000, max_size=4_000, faults=faults
        )
    )
    state_path = tmp_path / "state.sqlite3"
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(state_path))
        async with (
            open_runtime(settings) as rt,
            await SqliteState.open(state_path) as other,
        ):
            pipeline = rt.pipeline
            start = sim.config.start
            async for page in rt.source.list_window(start, start + sim.config.span):
                await rt.state.jobs.add_calls(page.records, start)
            lease = pipeline.leases.lease
            [job] = await rt.state.jobs.claim_due(
                start + sim.config.span, 1, owner=pipeline.leases.owner, lease=lease
            )
            late = OutlivesItsLease(pipeline.handler.transferrer, other, lease)
            pipeline.handler.transferrer = late
            with caplog.at_level(logging.WARNING, logger="archiver.pipeline"):
                await pipeline.handler.handle(job)
            assert late.taken == [job.id]
            counts = await other.reports.counts()
            assert counts[JobState.TRANSFERRING] == 1, counts
            assert sum(counts.values()) == 1
            assert pipeline.stats.archived == pipeline.stats.retries == 0
            assert pipeline.stats.failed == 0
            assert "lease lost" in caplog.text
