"""/metrics' lease figures: what this run holds, and what it took over from a run
that stopped beating (two runs' leases on one real SQLite state and local storage)."""

from __future__ import annotations

from pathlib import Path

from archiver.metrics import Metrics
from archiver.pipeline.run_leases import RunLeases
from archiver.state import SqliteState
from archiver.storage.local import LocalStore
from tests.integration.state.helpers import T0, make_call
from tests.support.stepped import Clock


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


async def test_leases_held_and_taken_over(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = LocalStore(tmp_path / "archive")
    async with await SqliteState.open(tmp_path / "s.sqlite3") as state:
        await state.jobs.add_calls([make_call(f"c{i}") for i in range(3)], T0)
        first, second = Metrics(), Metrics()
        a = RunLeases(state.leases, state.batches, store, "run-a", 60, 600, clock, metrics=first)
        b = RunLeases(state.leases, state.batches, store, "run-b", 60, 600, clock, metrics=second)
        await a.start()
        claimed = await state.jobs.claim_due(T0, 2, owner=a.owner, lease=a.lease)
        assert len(claimed) == 2
        await a.beat()
        assert sample(first, "archiver_leases_held") == 2
        # Run a stops beating; b starts after a's lease ran out and takes its two over.
        clock.advance(120)
        await b.start()
        assert sample(second, "archiver_leases_taken_over_total") == 2
        await b.beat()
        assert sample(second, "archiver_leases_held") == 0
        assert sample(first, "archiver_leases_taken_over_total") == 0
