"""The state's recheck queue (the sweep's lookups by id), on both stores."""

from __future__ import annotations

from datetime import timedelta

from archiver.failures import FailureKind
from archiver.state import JobState, State
from tests.integration.state.helpers import T0, make_call


async def test_candidates_are_the_recordings_that_may_still_come(store: State) -> None:
    calls = [
        make_call("no-url", None),
        make_call("never", "https://rec.example/n.mp3"),
        make_call("http-error", "https://rec.example/h.mp3"),
        make_call("pending", "https://rec.example/p.mp3"),
        make_call("too-old", None, started=T0 - timedelta(days=3)),
    ]
    await store.jobs.add_calls(calls, T0)
    jobs = {j.call.cdr_id: j for j in await store.jobs.claim_due(T0, 10)}
    await store.outcomes.mark_failed(jobs["never"].id, "404", kind=FailureKind.NEVER_AVAILABLE)
    await store.outcomes.mark_failed(jobs["http-error"].id, "HTTP 403", kind=FailureKind.HTTP_ERROR)
    await store.leases.release_transferring()
    found = await store.rechecks.recheck_candidates(T0 - timedelta(days=1), 10)
    assert sorted(j.call.cdr_id for j in found) == ["never", "no-url"]
    assert len(await store.rechecks.recheck_candidates(T0 - timedelta(days=1), 1)) == 1


async def test_a_new_url_queues_the_recording_again(store: State) -> None:
    await store.jobs.add_calls([make_call("a", None), make_call("b", None)], T0)
    a, b = sorted(await store.rechecks.recheck_candidates(T0, 10), key=lambda j: j.call.cdr_id)
    later = T0 + timedelta(minutes=40)
    assert await store.rechecks.recheck(a.id, "https://rec.example/a.mp3", later) is True
    assert await store.rechecks.recheck(b.id, None, later) is False
    (job,) = await store.jobs.claim_due(later, 10)
    assert job.call.cdr_id == "a"
    assert job.call.recording_url == "https://rec.example/a.mp3"
    assert job.attempts == 0
    # b went to the back of the line; a is no longer a candidate.
    assert [j.call.cdr_id for j in await store.rechecks.recheck_candidates(T0, 10)] == ["b"]
    assert (await store.reports.counts())[JobState.NO_RECORDING] == 1


async def test_a_failed_recording_needs_a_url_from_the_source(store: State) -> None:
    # A failed job keeps no URL at rest (signed links carry secrets): any URL the
    # source gives again is a new chance; no URL leaves it failed.
    await store.jobs.add_calls([make_call("a", "https://rec.example/a.mp3")], T0)
    (job,) = await store.jobs.claim_due(T0, 1)
    await store.outcomes.mark_failed(job.id, "404", kind=FailureKind.NEVER_AVAILABLE)
    assert await store.rechecks.recheck(job.id, None, T0) is False
    assert (await store.reports.counts())[JobState.FAILED] == 1
    assert await store.rechecks.recheck(job.id, "https://rec.example/a.mp3", T0) is True
    assert (await store.reports.counts())[JobState.PENDING] == 1
