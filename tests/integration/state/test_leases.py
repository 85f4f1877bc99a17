"""Lease semantics of the state-store protocol: two processes on one state.

Written against :class:`archiver.state.protocols.State` only: ``two_handles``
(tests/integration/state/conftest.py) yields two independent handles on one
state (two processes): two SQLite connections, or two PostgreSQL pools. Every
test runs on both stores.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.failures import FailureKind
from archiver.models import CallRecord, Provider
from archiver.state import SqliteState
from archiver.state.base import JobState
from tests.integration.state.helpers import archived_entry

T0 = datetime(2021, 2, 17, 3, 0, tzinfo=UTC)
LEASE = timedelta(seconds=120)


def _call(cdr_id: str) -> CallRecord:
    return CallRecord(
        provider=Provider.CDR_V2,
        cdr_id=cdr_id,
        sip_call_id=f"sip-{cdr_id}",
        started_at=T0,
        recording_url=f"https://rec.example/{cdr_id}.wav",
    )


async def test_a_running_lease_is_never_taken_by_another_process(two_handles) -> None:
    a, b = two_handles
    await a.jobs.add_calls([_call("1"), _call("2")], T0)
    held = await a.jobs.claim_due(T0, 10, owner="proc-a", lease=LEASE)
    assert len(held) == 2
    # Process b starts while a works: nothing of a's goes back to pending.
    assert await b.leases.release_expired(T0 + LEASE - timedelta(seconds=1)) == 0
    assert await b.jobs.claim_due(T0 + timedelta(seconds=5), 10, owner="proc-b", lease=LEASE) == []
    assert (await b.reports.counts())[JobState.TRANSFERRING] == 2


async def test_the_heartbeat_keeps_a_lease_and_its_end_frees_the_jobs(two_handles) -> None:
    a, b = two_handles
    await a.jobs.add_calls([_call("1")], T0)
    [job] = await a.jobs.claim_due(T0, 1, owner="proc-a", lease=LEASE)
    beat = T0 + timedelta(seconds=100)
    assert await a.leases.renew_leases("proc-a", beat, LEASE) == 1
    assert await b.leases.renew_leases("proc-b", beat, LEASE) == 0
    # Past the first lease but inside the renewed one: still a's.
    assert await b.leases.release_expired(T0 + LEASE + timedelta(seconds=10)) == 0
    # a died (no more beats): once the renewed lease is over, b takes the job back.
    assert await b.leases.release_expired(beat + LEASE) == 1
    [again] = await b.jobs.claim_due(beat + LEASE, 1, owner="proc-b", lease=LEASE)
    assert again.id == job.id


async def test_a_process_that_lost_its_lease_changes_nothing(two_handles) -> None:
    """a stalls past its lease; b takes the job back and starts on it. a's late
    outcomes (archived, retry, postponed, failed) must not touch b's job."""
    a, b = two_handles
    await a.jobs.add_calls([_call("1")], T0)
    [job] = await a.jobs.claim_due(T0, 1, owner="proc-a", lease=LEASE)
    assert await b.leases.release_expired(T0 + LEASE) == 1
    [again] = await b.jobs.claim_due(T0 + LEASE, 1, owner="proc-b", lease=LEASE)
    assert again.id == job.id
    later = T0 + 2 * LEASE
    assert not await a.outcomes.mark_retry(job.id, JobState.PENDING, "late", later, owner="proc-a")
    assert not await a.outcomes.postpone(job.id, "late", later, owner="proc-a")
    assert not await a.outcomes.mark_failed(job.id, "late", kind=FailureKind.OTHER, owner="proc-a")
    assert not await a.outcomes.mark_archived(
        job.id, archived_entry(1), "2021-02-17", owner="proc-a"
    )
    counts = await b.reports.counts()
    assert (counts[JobState.TRANSFERRING], sum(counts.values())) == (1, 1)
    assert await b.reports.failures() == []
    # The holder's outcome is written; once it is, no one's late report changes it.
    assert await b.outcomes.mark_archived(job.id, archived_entry(1), "2021-02-17", owner="proc-b")
    assert not await b.outcomes.mark_failed(job.id, "late", kind=FailureKind.OTHER, owner="proc-b")
    assert (await a.reports.counts())[JobState.ARCHIVED] == 1


async def test_a_released_job_is_no_longer_its_late_holder_s(two_handles) -> None:
    """Back to pending (lease over, no one took it yet): the late holder's retry
    would count an attempt and push the job's due time; it changes nothing."""
    a, b = two_handles
    await a.jobs.add_calls([_call("1")], T0)
    [job] = await a.jobs.claim_due(T0, 1, owner="proc-a", lease=LEASE)
    assert await b.leases.release_expired(T0 + LEASE) == 1
    far = T0 + timedelta(days=1)
    assert not await a.outcomes.mark_retry(
        job.id, JobState.WAITING_READY, "late", far, owner="proc-a"
    )
    [again] = await b.jobs.claim_due(T0 + LEASE, 1, owner="proc-b", lease=LEASE)
    assert again.attempts == 0
    # The holder's own retry is written (and without an owner, no lease is checked).
    assert await b.outcomes.mark_retry(job.id, JobState.PENDING, "try again", far, owner="proc-b")
    assert await a.outcomes.postpone(job.id, "operator", far)


async def test_a_run_gives_back_only_what_it_holds(two_handles) -> None:
    a, b = two_handles
    await a.jobs.add_calls([_call(str(i)) for i in range(4)], T0)
    mine = await a.jobs.claim_due(T0, 2, owner="proc-a", lease=LEASE)
    theirs = await b.jobs.claim_due(T0, 2, owner="proc-b", lease=LEASE)
    assert {j.id for j in mine}.isdisjoint(j.id for j in theirs)
    assert await a.leases.release_transferring("proc-a") == 2
    counts = await b.reports.counts()
    assert (counts[JobState.PENDING], counts[JobState.TRANSFERRING]) == (2, 2)
    # Due again at once (the store's own clock says when "now" is).
    back = await a.jobs.claim_due(datetime.now(UTC) + LEASE, 10, owner="proc-a", lease=LEASE)
    assert {j.id for j in back} == {j.id for j in mine}


async def test_both_processes_see_one_identity(two_handles, tmp_path: Path) -> None:
    a, b = two_handles
    assert await a.batches.writer_id() == await b.batches.writer_id()
    # Another state (of either kind) is another writer.
    async with await SqliteState.open(tmp_path / "other.sqlite3") as other:
        assert await other.batches.writer_id() != await a.batches.writer_id()


async def test_a_job_left_in_flight_by_an_older_archiver_is_free(tmp_path: Path) -> None:
    """Jobs left transferring before leases existed hold no lease: the first start frees them.

    SQLite only: PostgreSQL states were born with leases.
    """
    path = tmp_path / "state.sqlite3"
    async with await SqliteState.open(path) as store:
        await store.jobs.add_calls([_call("1")], T0)
        await store.jobs.claim_due(T0, 1, owner="old", lease=LEASE)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE calls SET lease_owner = NULL, lease_until = NULL")
    conn.close()
    async with await SqliteState.open(path) as store:
        assert await store.leases.release_expired(T0) == 1


async def test_lease_holders_names_the_running_leases(two_handles) -> None:
    a, b = two_handles
    await a.jobs.add_calls([_call(str(i)) for i in range(3)], T0)
    await a.jobs.claim_due(T0, 1, owner="proc-a", lease=LEASE)
    await b.jobs.claim_due(T0, 1, owner="proc-b", lease=LEASE * 2)
    assert await b.leases.lease_holders(T0) == ["proc-a", "proc-b"]
    assert await a.leases.lease_holders(T0 + LEASE) == ["proc-b"]
    await b.leases.release_transferring("proc-b")
    assert await a.leases.lease_holders(T0) == ["proc-a"]


# -- roles: named leases ------------------------------------------------------------


async def test_a_free_role_is_taken_and_a_running_one_is_not(two_handles) -> None:
    a, b = two_handles
    assert await a.roles.role_holder("leader", T0) is None
    assert await a.roles.hold_role("leader", "proc-a", T0, LEASE)
    assert not await b.roles.hold_role("leader", "proc-b", T0 + timedelta(seconds=1), LEASE)
    assert await b.roles.role_holder("leader", T0 + timedelta(seconds=1)) == "proc-a"
    # Another role is a lease of its own.
    assert await b.roles.hold_role("window:cdr_v2:a:b", "proc-b", T0, LEASE)
    assert await a.roles.role_holder("window:cdr_v2:a:b", T0) == "proc-b"


async def test_the_holder_renews_and_an_expired_role_is_taken_over(two_handles) -> None:
    a, b = two_handles
    assert await a.roles.hold_role("leader", "proc-a", T0, LEASE)
    renewed = T0 + timedelta(seconds=100)
    assert await a.roles.hold_role("leader", "proc-a", renewed, LEASE)
    # Past the first lease, inside the renewed one: still a's.
    assert not await b.roles.hold_role("leader", "proc-b", T0 + LEASE + timedelta(seconds=1), LEASE)
    # a stopped renewing: at the renewed lease's end the role is free.
    end = renewed + LEASE
    assert await b.roles.role_holder("leader", end - timedelta(microseconds=1)) == "proc-a"
    assert await b.roles.role_holder("leader", end) is None
    assert await b.roles.hold_role("leader", "proc-b", end, LEASE)
    assert await a.roles.role_holder("leader", end) == "proc-b"
    # The old holder cannot renew what it lost.
    assert not await a.roles.hold_role("leader", "proc-a", end + timedelta(seconds=1), LEASE)


async def test_a_role_is_released_only_by_its_holder(two_handles) -> None:
    a, b = two_handles
    assert await a.roles.hold_role("manifest", "proc-a", T0, LEASE)
    await b.roles.release_role("manifest", "proc-b")
    assert await b.roles.role_holder("manifest", T0) == "proc-a"
    await a.roles.release_role("manifest", "proc-a")
    assert await b.roles.role_holder("manifest", T0) is None
    assert await b.roles.hold_role("manifest", "proc-b", T0, LEASE)
    # Releasing a role nobody holds, or one held by another, does nothing.
    await a.roles.release_role("manifest", "proc-a")
    await a.roles.release_role("nothing", "proc-a")
    assert await a.roles.role_holder("manifest", T0) == "proc-b"


async def test_of_processes_racing_for_a_free_role_exactly_one_wins(two_handles) -> None:
    a, b = two_handles
    for i in range(10):
        role = f"window:{i}"
        won = await asyncio.gather(
            a.roles.hold_role(role, "proc-a", T0, LEASE),
            b.roles.hold_role(role, "proc-b", T0, LEASE),
        )
        assert sorted(won) == [False, True]
        assert await a.roles.role_holder(role, T0) == ("proc-a" if won[0] else "proc-b")
