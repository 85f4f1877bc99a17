"""A PostgreSQL write whose answer is lost after its commit (the connection broke
between the server's COMMIT and the client reading it): the store settles it by
reading back the stamp it wrote, instead of running it again blind.

The server is real; what is injected is the loss of the answer: the first run of
the operation goes to the database and commits, then the client sees the
connection break (asyncpg's ConnectionDoesNotExistError), as after a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from archiver.failures import FailureKind
from archiver.state import JobState, PostgresState
from archiver.state.postgres import PoolConfig
from archiver.state.postgres.connect import Pool
from tests.integration.state.helpers import T0, TEST_POOL, archived_entry, make_call

OWNER = "proc-a"


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresState]:
    config = PoolConfig(size=TEST_POOL.size, timeout=TEST_POOL.timeout, outage=30)
    opened = await PostgresState.open(postgres_url, config)
    try:
        yield opened
    finally:
        await opened.close()


def lose_next_answer(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The next operation run on a pool commits, then its answer is lost (once)."""
    lost: list[str] = []
    real = Pool._on_connection

    async def answer_lost(
        self: Pool, op: Callable[[asyncpg.Connection], Awaitable[Any]], transaction: bool
    ) -> Any:
        result = await real(self, op, transaction)
        if not lost:
            lost.append(repr(result))
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        return result

    monkeypatch.setattr(Pool, "_on_connection", answer_lost)
    return lost


async def test_a_claim_whose_answer_was_lost_returns_the_jobs_it_took(
    store: PostgresState, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.jobs.add_calls([make_call(str(i)) for i in range(5)], T0)
    lost = lose_next_answer(monkeypatch)
    jobs = await store.jobs.claim_due(T0, 3, owner=OWNER)
    assert lost  # the first run committed and its answer was lost
    # The three it took, not three more: none left held and unknown to its owner.
    assert len(jobs) == 3
    counts = await store.reports.counts()
    assert (counts[JobState.TRANSFERRING], counts[JobState.PENDING]) == (3, 2)
    rest = await store.jobs.claim_due(T0, 5, owner=OWNER)
    assert sorted(j.id for j in jobs + rest) == sorted({j.id for j in jobs + rest})
    assert len(rest) == 2


async def test_an_outcome_whose_answer_was_lost_is_known_done(
    store: PostgresState, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.jobs.add_calls([make_call("1")], T0)
    [job] = await store.jobs.claim_due(T0, 1, owner=OWNER)
    lost = lose_next_answer(monkeypatch)
    # Run again blind, the guarded update would change nothing and say False
    # ("the lease was lost"), and the recording would be counted as not archived.
    assert await store.outcomes.mark_archived(job.id, archived_entry(1), "2021-02-17", owner=OWNER)
    assert lost
    assert (await store.reports.counts())[JobState.ARCHIVED] == 1


async def test_an_outcome_that_did_not_commit_is_run_again(
    store: PostgresState, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.jobs.add_calls([make_call("1")], T0)
    [job] = await store.jobs.claim_due(T0, 1, owner=OWNER)
    real = Pool._on_connection
    failed: list[bool] = []

    async def refused_first(
        self: Pool, op: Callable[[asyncpg.Connection], Awaitable[Any]], transaction: bool
    ) -> Any:
        if not failed:  # the connection broke before the statement reached the server
            failed.append(True)
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        return await real(self, op, transaction)

    monkeypatch.setattr(Pool, "_on_connection", refused_first)
    assert await store.outcomes.mark_failed(
        job.id, "gone", kind=FailureKind.HTTP_ERROR, owner=OWNER
    )
    assert failed
    assert (await store.reports.counts())[JobState.FAILED] == 1
