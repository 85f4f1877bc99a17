"""``run`` replicas on one state: only the leader polls, every replica transfers, a
dead leader is replaced after its lease, a leader that loses the role stops polling.

Two pipelines share one real SQLite file and one local archive, as two processes
would; each reaches the simulated provider through its own proxy, which counts
its list requests.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from yarl import URL

from archiver.commands.runtime import Runtime, open_runtime
from archiver.manifest.reader import list_manifests
from archiver.metrics import Metrics
from archiver.pipeline.role_keeper import LEADER, RoleKeeper
from archiver.retrieval.verify import verify_archive
from archiver.service import Service
from archiver.settings import ServiceSettings, StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.state import JobState, SqliteState
from archiver.state.sqlite import decode_time
from archiver.storage import open_store
from tests.support.pipeline import assert_exactly_once, make_settings
from tests.support.proxy import Proxy, reverse_proxy

LEASE = 3.0  # the shortest ARCHIVER_LEADER_LEASE allows: renewed every second
LIST = "/v2/cdr"


def _sim() -> Simulator:
    now = datetime.now(UTC).replace(microsecond=0)
    return Simulator(
        SimConfig(
            seed=33,
            calls=16,
            start=now - timedelta(minutes=50),
            span=timedelta(minutes=40),
            recording_fraction=1.0,
            max_size=60_000,
            # Every request takes a while: the leader alone cannot drain the queue
            # before the follower starts claiming.
            faults=Faults(slow=1.0, slow_seconds=0.2),
        )
    )


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared state: one SQLite file, or one PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "state.sqlite3")


@asynccontextmanager
async def _replica(
    sim: Simulator, proxy: Proxy, tmp_path: Path, state: str | None = None
) -> AsyncIterator[Runtime]:
    settings = make_settings(
        sim,
        proxy.url,
        StorageSettings(url=str(tmp_path / "archive")),
        state or str(tmp_path / "state.sqlite3"),
        concurrency=2,
        poll_interval=0.2,
        leader_lease=LEASE,
    )
    async with open_runtime(settings) as rt:
        yield rt


def _sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def _leading(rt: Runtime) -> bool:
    return _sample(rt.pipeline.metrics, "archiver_leader") == 1


async def _until(check: Callable[[], bool | Awaitable[bool]]) -> None:
    """Wait for ``check`` (the test's timeout bounds it)."""
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.02)


def _count_tries(roles: RoleKeeper) -> Counter[str]:
    """Count, by role, the tries ``roles`` makes to take a role from now on."""
    tries: Counter[str] = Counter()
    take = roles.take

    async def counted(role: str) -> bool:
        try:
            return await take(role)
        finally:
            tries[role] += 1

    roles.take = counted  # type: ignore[method-assign]
    return tries


def _all_archived(rt: Runtime, sim: Simulator) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await rt.state.reports.counts())[JobState.ARCHIVED] == len(sim.calls)

    return check


async def _stop(rt: Runtime, task: asyncio.Task[object]) -> None:
    rt.pipeline.stop()
    await task


async def _chain_intact(tmp_path: Path) -> None:
    async with open_store(StorageSettings(url=str(tmp_path / "archive"))) as store:
        report = await verify_archive(store, await list_manifests(store, None, None, UTC))
    assert report.problems == []


async def test_only_the_leader_polls_and_a_follower_transfers(
    tmp_path: Path, state_url: str
) -> None:
    sim = _sim()
    b_running = asyncio.Event()

    async def once_b_runs(url: URL) -> None:
        # The leader lists only once the follower runs, whatever the machine's load:
        # the recordings are then there for both to claim.
        await b_running.wait()

    async with (
        sim.serve() as base,
        reverse_proxy(base, before=once_b_runs) as to_a,
        reverse_proxy(base) as to_b,
    ):
        replica_a = _replica(sim, to_a, tmp_path, state_url)
        async with replica_a as a, _replica(sim, to_b, tmp_path, state_url) as b:
            run_a = asyncio.create_task(a.pipeline.daemon())
            await _until(lambda: _leading(a))
            started = b.pipeline.health.heartbeat
            run_b = asyncio.create_task(b.pipeline.daemon())
            try:
                # The follower's dispatcher turns: it claims what is due from now on.
                await _until(lambda: b.pipeline.health.heartbeat != started)
                b_running.set()
                await _until(_all_archived(a, sim))
                # The leader goes on polling while the follower runs beside it.
                polls = to_a.count(LIST)
                await _until(lambda: to_a.count(LIST) >= polls + 3)
                assert (_leading(a), _leading(b)) == (True, False)
                # The follower is alive and ready: it never polls, the leader does.
                service = Service(
                    b.pipeline.health,
                    b.pipeline.metrics,
                    b.state.reports,
                    b.store,
                    ServiceSettings(),
                    clock=lambda: datetime.now(UTC),
                )
                await service.probe_storage_once()
                assert service.healthy() == (True, "ok")
                assert service.ready() == (True, {"source": "ok", "storage": "ok"})
            finally:
                await _stop(b, run_b)
                await _stop(a, run_a)
    assert to_b.count(LIST) == 0, "the follower listed the source"
    assert to_a.count(LIST) > 0
    # Both transferred: the follower claimed jobs the leader listed.
    assert b.pipeline.stats.archived > 0
    assert a.pipeline.stats.archived + b.pipeline.stats.archived == len(sim.calls)
    await assert_exactly_once(sim, StorageSettings(url=str(tmp_path / "archive")))
    await _chain_intact(tmp_path)


async def test_a_dead_leader_is_replaced_once_its_lease_ends(
    tmp_path: Path, state_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="archiver.pipeline")
    sim = _sim()
    async with sim.serve() as base, reverse_proxy(base) as to_b:
        async with _replica(sim, to_b, tmp_path, state_url) as b:
            # The leader is a process of another machine that died after renewing.
            ghost = "a1b2c3-4242@elsewhere"
            renewed = datetime.now(UTC)
            assert await b.state.roles.hold_role(LEADER, ghost, renewed, timedelta(seconds=LEASE))
            run_b = asyncio.create_task(b.pipeline.daemon())
            try:
                await _until(lambda: _leading(b))
                # Not before the dead leader's lease ended.
                assert datetime.now(UTC) >= renewed + timedelta(seconds=LEASE)
                await _until(_all_archived(b, sim))
            finally:
                await _stop(b, run_b)
    metrics = b.pipeline.metrics
    assert _sample(metrics, "archiver_leadership_taken_over_total") == 1
    assert f"in place of {ghost}" in caplog.text
    await assert_exactly_once(sim, StorageSettings(url=str(tmp_path / "archive")))
    await _chain_intact(tmp_path)


async def test_a_leader_that_loses_the_role_stops_polling_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="archiver.pipeline")
    sim = _sim()
    state = tmp_path / "state.sqlite3"
    async with sim.serve() as base, reverse_proxy(base) as to_a:
        async with _replica(sim, to_a, tmp_path) as a:
            run_a = asyncio.create_task(a.pipeline.daemon())
            try:
                await _until(lambda: _leading(a) and to_a.count(LIST) > 0)
                # Another process holds the role now (say, one whose clock runs ahead).
                with sqlite3.connect(state) as db:
                    db.execute(
                        "UPDATE roles SET owner = 'thief-1@elsewhere', until = '9999'"
                        " WHERE role = 'leader'"
                    )
                await _until(lambda: not _leading(a))
                assert "no longer the leader" in caplog.text
                stopped_at = to_a.count(LIST)
                # Three tries to take the role back, all refused: no poll meanwhile.
                tries = _count_tries(a.pipeline.roles)
                await _until(lambda: tries[LEADER] >= 3)
                assert to_a.count(LIST) == stopped_at
                # Still a replica: it takes the role again once it is free.
                with sqlite3.connect(state) as db:
                    db.execute("DELETE FROM roles WHERE role = 'leader'")
                await _until(lambda: _leading(a) and to_a.count(LIST) > stopped_at)
                await _until(_all_archived(a, sim))
            finally:
                await _stop(a, run_a)
    await assert_exactly_once(sim, StorageSettings(url=str(tmp_path / "archive")))


async def test_work_under_a_role_stops_before_its_lease_ends_when_the_state_hangs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    async with await SqliteState.open(path) as state:
        keeper = RoleKeeper(
            state.roles, "me-1@here", timedelta(seconds=LEASE), lambda: datetime.now(UTC)
        )
        assert await keeper.take(LEADER)
        started = asyncio.Event()
        stopped: list[datetime] = []

        async def work() -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append(datetime.now(UTC))

        # Another connection takes the write lock and keeps it: no renewal can land.
        lock = sqlite3.connect(path, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            held = await keeper.hold_while(LEADER, work())
            [(until,)] = lock.execute("SELECT until FROM roles WHERE role = 'leader'").fetchall()
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert started.is_set()
        assert held is False
        # The work was stopped while the lease it held was still running.
        assert len(stopped) == 1
        assert stopped[0] < decode_time(until)
