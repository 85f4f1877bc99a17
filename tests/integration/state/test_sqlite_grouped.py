"""The SQLite store's group commit: outcome updates queued while the connection is
busy share one transaction, and each caller still gets its own outcome.

SQLite only on purpose: the grouping is this store's; the protocol's behaviour
(the same calls one at a time) is in test_store.py, for both stores. Commits are
counted by the Database, never timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archiver.failures import FailureKind
from archiver.state import JobState, SqliteState
from archiver.state.base import Job
from archiver.state.sqlite.database import Database
from archiver.state.sqlite.grouped import GROUP_LIMIT
from tests.integration.state.helpers import T0, FakeClock, archived_entry, make_call

CALLS = 64
DAY = "2021-02-17"
OWNER = "w1"


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[Database, SqliteState, Path]]:
    path = tmp_path / "state.sqlite3"
    db = await Database.open(path)
    store = SqliteState(db, clock=FakeClock())
    try:
        yield db, store, path
    finally:
        await store.close()


async def claimed(store: SqliteState, n: int = CALLS) -> list[Job]:
    await store.jobs.add_calls([make_call(f"c{i}") for i in range(n)], T0)
    jobs = await store.jobs.claim_due(T0, n, owner=OWNER)
    assert len(jobs) == n
    return jobs


def states(path: Path) -> dict[int, str]:
    """Each job's state as another connection (another process) sees it."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT id, state FROM calls").fetchall())
    finally:
        conn.close()


async def test_concurrent_outcomes_share_transactions_and_each_returns_after_its_commit(
    opened: tuple[Database, SqliteState, Path],
) -> None:
    db, store, path = opened
    jobs = await claimed(store)
    before = db.commits

    async def archive(n: int, job: Job) -> int:
        assert await store.outcomes.mark_archived(job.id, archived_entry(n), DAY, owner=OWNER)
        # Returned: its update is committed, visible to another connection.
        assert states(path)[job.id] == "archived"
        return job.id

    done = await asyncio.gather(*(archive(n, job) for n, job in enumerate(jobs)))
    assert done == [job.id for job in jobs]
    assert 1 <= db.commits - before < CALLS
    # A replay is refused (already archived) by the same grouped path.
    replays = [
        store.outcomes.mark_archived(j.id, archived_entry(0), DAY, owner=OWNER) for j in jobs
    ]
    assert await asyncio.gather(*replays) == [False] * CALLS
    assert (await store.reports.counts())[JobState.ARCHIVED] == CALLS


async def test_the_four_outcomes_grouped_each_get_their_own_result(
    opened: tuple[Database, SqliteState, Path],
) -> None:
    db, store, path = opened
    jobs = await claimed(store, 8)
    before = db.commits
    results = await asyncio.gather(
        store.outcomes.mark_archived(jobs[0].id, archived_entry(0), DAY, owner=OWNER),
        store.outcomes.mark_retry(jobs[1].id, JobState.WAITING_READY, "not yet", T0, owner=OWNER),
        store.outcomes.postpone(jobs[2].id, "busy", T0, owner=OWNER),
        store.outcomes.mark_failed(jobs[3].id, "gone", kind=FailureKind.HTTP_ERROR, owner=OWNER),
        # Another owner's lease: refused, False, the job untouched.
        store.outcomes.mark_archived(jobs[4].id, archived_entry(4), DAY, owner="w2"),
        store.outcomes.mark_failed(jobs[5].id, "gone", kind=FailureKind.HTTP_ERROR, owner="w2"),
    )
    assert results == [True, True, True, True, False, False]
    assert db.commits - before == 1
    seen = states(path)
    assert [seen[j.id] for j in jobs[:6]] == [
        "archived",
        "waiting_ready",
        "pending",
        "failed",
        "transferring",
        "transferring",
    ]


async def test_a_failing_update_fails_only_its_own_caller(
    opened: tuple[Database, SqliteState, Path],
) -> None:
    db, store, path = opened
    jobs = await claimed(store)
    bad_sql, unknown, bad_date = jobs[5].id, jobs[-1].id + 1000, jobs[9].id
    # A statement that fails inside the group, as a full disk or a corrupt
    # page would: the trigger refuses this one job's update.
    conn = sqlite3.connect(path)
    conn.execute(
        f"CREATE TRIGGER refuse BEFORE UPDATE ON calls WHEN NEW.id = {bad_sql}"
        " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    )
    conn.commit()
    conn.close()

    async def archive(job_id: int, day: str = DAY) -> bool:
        return await store.outcomes.mark_archived(job_id, archived_entry(job_id), day, owner=OWNER)

    calls = [archive(j.id, "2021-2-17" if j.id == bad_date else DAY) for j in jobs]
    results = await asyncio.gather(*calls, archive(unknown), return_exceptions=True)
    by_id = dict(zip([j.id for j in jobs] + [unknown], results, strict=True))
    error = by_id.pop(bad_sql)
    assert isinstance(error, sqlite3.IntegrityError)
    assert "refused by the test" in str(error)
    assert isinstance(by_id.pop(unknown), KeyError)
    assert isinstance(by_id.pop(bad_date), ValueError)
    assert set(by_id.values()) == {True}
    seen = states(path)
    assert seen[bad_sql] == seen[bad_date] == "transferring"
    assert [seen[i] for i in by_id] == ["archived"] * len(by_id)
    # The store goes on grouping after the failure.
    before = db.commits
    others = [j.id for j in jobs if j.id not in (bad_sql, bad_date)][:10]
    assert await asyncio.gather(*(archive(i) for i in others)) == [False] * 10
    assert db.commits - before == 1


async def test_cancelled_callers_do_not_break_the_others(
    opened: tuple[Database, SqliteState, Path],
) -> None:
    db, store, path = opened
    jobs = await claimed(store)
    tasks = [
        asyncio.create_task(store.outcomes.mark_archived(j.id, archived_entry(n), DAY, owner=OWNER))
        for n, j in enumerate(jobs)
    ]
    await asyncio.sleep(0)  # every task has queued its update; none is committed yet
    cancelled = {j.id for j in jobs[::4]}
    for job, task in zip(jobs, tasks, strict=True):
        if job.id in cancelled:
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for job, result in zip(jobs, results, strict=True):
        if job.id in cancelled:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result is True
    seen = states(path)
    # Cancelled while queued: taken out of the group, the job still held.
    assert {i for i, s in seen.items() if s == "transferring"} == cancelled
    # Cancelled at every later point too, the queue keeps working.
    for spins in range(1, 6):
        task = asyncio.create_task(
            store.outcomes.mark_archived(jobs[spins * 4].id, archived_entry(0), DAY, owner=OWNER)
        )
        for _ in range(spins):
            await asyncio.sleep(0)
        task.cancel()
        # Its update may or may not be committed by now; either is an outcome.
        with contextlib.suppress(asyncio.CancelledError):
            await task
    rest = [j for j in jobs if j.id in cancelled][6:]
    archived = [
        store.outcomes.mark_archived(j.id, archived_entry(0), DAY, owner=OWNER) for j in rest
    ]
    assert await asyncio.gather(*archived) == [True] * len(rest)
    seen = states(path)
    assert [seen[j.id] for j in rest] == ["archived"] * len(rest)


async def test_a_group_is_bounded(opened: tuple[Database, SqliteState, Path]) -> None:
    db, store, _ = opened
    jobs = await claimed(store, GROUP_LIMIT + 44)
    before = db.commits
    calls = [store.outcomes.mark_archived(j.id, archived_entry(0), DAY, owner=OWNER) for j in jobs]
    assert await asyncio.gather(*calls) == [True] * len(jobs)
    # All queued before the first group began: one full group, then the rest.
    assert db.commits - before == 2
