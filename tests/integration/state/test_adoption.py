"""Adoption in the state-store protocol, on both stores: a call the archive already holds a
line of is archived with that line and never cut into a batch of this state."""

from __future__ import annotations

from archiver.state import JobState, State
from tests.integration.state.helpers import T0, Backend, archived_entry, make_call, reopened

DAY = "2021-02-17"


async def test_an_adopted_job_is_archived_and_never_batched(store: State) -> None:
    await store.jobs.add_calls([make_call("1"), make_call("2")], T0)
    first, second = await store.jobs.claim_due(T0, 2, owner="me")
    existing = archived_entry(7)
    assert await store.outcomes.adopt(first.id, existing, DAY, owner="me")
    assert await store.outcomes.mark_archived(second.id, archived_entry(8), DAY, owner="me")
    # Idempotent, and an archived job is left as it is.
    assert not await store.outcomes.adopt(first.id, existing, DAY, owner="me")
    assert not await store.outcomes.adopt(second.id, existing, DAY)
    counts = await store.reports.counts()
    assert counts[JobState.ARCHIVED] == 2
    assert [w.job_id for w in await store.batches.waiting_lines()] == [second.id]
    assert await store.batches.create_manifest_batches("w", 100) == 1
    [batch] = await store.batches.unwritten_manifest_batches()
    assert batch.content == f"{archived_entry(8).to_line()}\n".encode()
    assert batch.id == 1  # the adopted calls' batch 0 takes no number from the chain
    found = await store.reports.find_job("1")
    assert found is not None
    assert found.state is JobState.ARCHIVED


async def test_adopting_needs_the_lease(store: State) -> None:
    await store.jobs.add_calls([make_call("1")], T0)
    [job] = await store.jobs.claim_due(T0, 1, owner="me")
    assert not await store.outcomes.adopt(job.id, archived_entry(1), DAY, owner="another")
    assert await store.outcomes.adopt(job.id, archived_entry(1), DAY, owner="me")


async def test_a_waiting_line_set_aside_is_left_out_of_every_batch(backend: Backend) -> None:
    async with reopened(backend) as state:
        await state.jobs.add_calls([make_call(str(i)) for i in range(3)], T0)
        jobs = await state.jobs.claim_due(T0, 3)
        for n, job in enumerate(jobs):
            await state.outcomes.mark_archived(job.id, archived_entry(n), DAY)
        waiting = await state.batches.waiting_lines()
        assert [(w.job_id, w.provider, w.cdr_id, w.manifest_date) for w in waiting] == [
            (j.id, "cdr_v2", j.call.cdr_id, DAY) for j in jobs
        ]
        theirs = archived_entry(9)
        assert await state.batches.set_aside(jobs[1].id, theirs, DAY)
        assert not await state.batches.set_aside(jobs[1].id, theirs, DAY)
        assert [w.job_id for w in await state.batches.waiting_lines()] == [jobs[0].id, jobs[2].id]
    # Across a restart too.
    async with reopened(backend) as state:
        assert await state.batches.create_manifest_batches("w", 100) == 1
        [batch] = await state.batches.unwritten_manifest_batches()
        lines = batch.content.decode().splitlines()
        assert lines == [archived_entry(0).to_line(), archived_entry(2).to_line()]
        # A line already in a batch is not set aside any more.
        assert not await state.batches.set_aside(jobs[0].id, theirs, DAY)
