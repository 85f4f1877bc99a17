"""Manifest batches in the state-store protocol, on both stores: grouped by date,
bounded in lines, fixed across a crash, in job order."""

from __future__ import annotations

from archiver.state import State
from archiver.storage.layout import manifest_key
from tests.integration.state.helpers import T0, Backend, archived_entry, make_call, reopened


async def archive_many(store: State, days: dict[str, int]) -> dict[str, set[str]]:
    """Archive ``n`` jobs for each manifest date; returns each date's manifest lines."""
    calls = [make_call(f"{day}-{i}") for day, n in days.items() for i in range(n)]
    await store.jobs.add_calls(calls, T0)
    jobs = await store.jobs.claim_due(T0, len(calls))
    lines: dict[str, set[str]] = {day: set() for day in days}
    for n, job in enumerate(jobs):
        day = job.call.cdr_id.rsplit("-", 1)[0]
        entry = archived_entry(n, day=day)
        await store.outcomes.mark_archived(job.id, entry, day)
        lines[day].add(entry.to_line())
    return lines


async def test_batches_group_by_date_and_respect_max_lines(store: State) -> None:
    lines = await archive_many(store, {"2021-02-17": 5, "2021-02-16": 2})
    assert await store.batches.create_manifest_batches("run1", max_lines=2) == 4
    assert await store.batches.create_manifest_batches("run1", max_lines=2) == 0
    batches = await store.batches.unwritten_manifest_batches()
    assert [b.id for b in batches] == [1, 2, 3, 4]
    assert batches[0].key == "manifests/date=2021-02-16/000000000001-run1.jsonl"
    seen: dict[str, list[str]] = {}
    for batch in batches:
        assert batch.content.endswith(b"\n")
        batch_lines = batch.content.decode().splitlines()
        assert len(batch_lines) == batch.line_count <= 2
        day = batch.key.split("/")[1].removeprefix("date=")
        seen.setdefault(day, []).extend(batch_lines)
    # Every archived job in exactly one batch, under its own date.
    assert {day: sorted(v) for day, v in seen.items()} == {
        day: sorted(v) for day, v in lines.items()
    }
    assert sum(len(v) for v in seen.values()) == 7


async def test_batches_are_fixed_across_a_crash(backend: Backend) -> None:
    async with reopened(backend) as state:
        await archive_many(state, {"2021-02-17": 3})
        assert await state.batches.create_manifest_batches("first-run", 10) == 1
        [before] = await state.batches.unwritten_manifest_batches()
    # Crashed before writing the object: the next run rewrites the same one.
    async with reopened(backend) as state:
        assert await state.batches.create_manifest_batches("second-run", 10) == 0
        [after] = await state.batches.unwritten_manifest_batches()
        assert after == before
        assert after.key.endswith("-first-run.jsonl")
        await state.batches.mark_manifest_written(after.id)
        await state.batches.mark_manifest_written(after.id)
        assert await state.batches.unwritten_manifest_batches() == []
        # Jobs archived later go into a new batch with the next id.
        await archive_many(state, {"2021-02-18": 1})
        assert await state.batches.create_manifest_batches("second-run", 10) == 1
        [newer] = await state.batches.unwritten_manifest_batches()
        assert newer.key == manifest_key("2021-02-18", after.id + 1, "second-run")
    assert await backend.query(
        "SELECT id, content IS NULL, written_at IS NULL FROM manifest_batches ORDER BY id"
    ) == [
        (1, 1, 0),
        (2, 0, 1),
    ]


async def test_batch_lines_follow_job_order(store: State) -> None:
    await store.jobs.add_calls([make_call(str(i)) for i in range(4)], T0)
    jobs = await store.jobs.claim_due(T0, 4)
    for job in reversed(jobs):  # archived in the reverse order
        await store.outcomes.mark_archived(job.id, archived_entry(job.id), "2021-02-17")
    await store.batches.create_manifest_batches("r", 100)
    [batch] = await store.batches.unwritten_manifest_batches()
    assert batch.content == b"".join(f"{archived_entry(j.id).to_line()}\n".encode() for j in jobs)
