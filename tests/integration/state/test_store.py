"""The state-store protocol's behaviour, pinned once for both stores.

Every test here runs on SQLite and on PostgreSQL (the ``backend`` and ``store``
fixtures of tests/integration/state/conftest.py). What only one store has
(file modes, WAL, SQLite's migrations; PostgreSQL's locks and connections) is
tested in test_sqlite_only.py and test_postgres.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import Provider
from archiver.state import JobState, State
from archiver.state.postgres.migrations import LATEST_VERSION as PG_LATEST
from archiver.state.sqlite.migrations import LATEST_VERSION as SQLITE_LATEST
from tests.integration.state.helpers import (
    ICT,
    T0,
    Backend,
    FakeClock,
    archived_entry,
    make_call,
    reopened,
)

# -- opening and schema ----------------------------------------------------------


async def test_reopening_is_a_no_op(backend: Backend) -> None:
    state = await backend.open()
    await state.jobs.add_calls([make_call("1")], T0)
    await state.close()
    # Version 1 creates tables without IF NOT EXISTS: running it twice would raise.
    state = await backend.open()
    assert (await state.reports.counts())[JobState.PENDING] == 1
    await state.close()
    latest = PG_LATEST if backend.kind == "postgres" else SQLITE_LATEST
    assert await backend.query("SELECT version FROM schema_version") == [(latest,)]


async def test_retry_failed_forgets_the_kind(store: State, backend: Backend) -> None:
    await store.jobs.add_calls([make_call("1")], T0)
    [job] = await store.jobs.claim_due(T0, 1)
    await store.outcomes.mark_failed(job.id, "too slow", kind=FailureKind.TOO_SLOW)
    assert await backend.query("SELECT failure_kind FROM calls") == [("too_slow",)]
    await store.jobs.retry_failed()
    assert await backend.query("SELECT failure_kind, reason FROM calls") == [(None, None)]


# -- add_calls -------------------------------------------------------------------


async def test_new_calls_are_pending_or_no_recording(store: State) -> None:
    result = await store.jobs.add_calls(
        [make_call("1"), make_call("2", None), make_call("3", "")], T0
    )
    assert (result.new, result.updated, result.known) == (3, 0, 0)
    counts = await store.reports.counts()
    assert counts[JobState.PENDING] == 1
    assert counts[JobState.NO_RECORDING] == 2
    assert await store.jobs.next_due_at() == T0


async def test_the_same_call_twice_is_known(store: State) -> None:
    await store.jobs.add_calls([make_call("1")], T0)
    result = await store.jobs.add_calls([make_call("1")], T0 + timedelta(minutes=1))
    assert (result.new, result.updated, result.known) == (0, 0, 1)
    assert sum((await store.reports.counts()).values()) == 1


async def test_a_call_repeated_inside_one_page(store: State) -> None:
    result = await store.jobs.add_calls([make_call("1"), make_call("2"), make_call("1")], T0)
    assert (result.new, result.updated, result.known) == (2, 0, 1)
    # A repeat that brings a URL counts as an update, as if it came in a later page.
    result = await store.jobs.add_calls([make_call("9", None), make_call("9")], T0)
    assert (result.new, result.updated, result.known) == (1, 1, 0)
    assert (await store.reports.counts())[JobState.PENDING] == 3


async def test_a_url_appearing_makes_no_recording_pending_due_now(
    store: State,
) -> None:
    await store.jobs.add_calls([make_call("1", None)], T0)
    assert await store.jobs.claim_due(T0 + timedelta(hours=1), 10) == []
    later = T0 + timedelta(minutes=30)
    result = await store.jobs.add_calls([make_call("1", "https://rec.example/late.mp3")], later)
    assert (result.new, result.updated, result.known) == (0, 1, 0)
    assert await store.jobs.next_due_at() == later
    [job] = await store.jobs.claim_due(later, 10)
    assert job.call.recording_url == "https://rec.example/late.mp3"
    assert job.first_seen_at == T0


async def test_a_changed_url_refreshes_the_stored_record(store: State) -> None:
    await store.jobs.add_calls([make_call("1", "https://rec.example/v1.mp3", status="RINGING")], T0)
    fresh = make_call("1", "https://rec.example/v2.mp3", status="ANSWERED")
    result = await store.jobs.add_calls([fresh], T0 + timedelta(minutes=5))
    assert result.updated == 1
    job = await store.reports.find_job("1")
    assert job is not None
    assert job.call == fresh
    assert job.call.raw == {}  # the provider's payload is not kept (it may hold secrets)
    assert job.state is JobState.PENDING
    # The same URL again is no change; a listing without the URL does not erase it.
    again = await store.jobs.add_calls([fresh, replace(fresh, recording_url=None)], T0)
    assert (again.new, again.updated, again.known) == (0, 0, 2)


async def test_archived_and_failed_jobs_are_untouched_by_a_relisting(
    store: State,
) -> None:
    await store.jobs.add_calls([make_call("a"), make_call("f"), make_call("t")], T0)
    jobs = {job.call.cdr_id: job for job in await store.jobs.claim_due(T0, 10)}
    await store.outcomes.mark_archived(jobs["a"].id, archived_entry(1), "2021-02-17")
    await store.outcomes.mark_failed(
        jobs["f"].id, "HTTP 403 from the recording host", kind=FailureKind.HTTP_ERROR
    )
    result = await store.jobs.add_calls(
        [make_call(c, "https://rec.example/new.mp3") for c in ("a", "f", "t")], T0
    )
    # The transferring one takes the new URL but stays with its worker.
    assert (result.new, result.updated, result.known) == (0, 1, 2)
    counts = await store.reports.counts()
    assert (counts[JobState.ARCHIVED], counts[JobState.FAILED]) == (1, 1)
    assert counts[JobState.TRANSFERRING] == 1
    found = await store.reports.find_job("a")
    assert found is not None
    # An archived job keeps no URL (a signed link is a credential), and gets none back.
    assert found.call.recording_url is None


async def test_an_empty_page_does_nothing(store: State) -> None:
    result = await store.jobs.add_calls([], T0)
    assert (result.new, result.updated, result.known) == (0, 0, 0)


# -- claiming and transitions ----------------------------------------------------


async def test_claim_due_takes_the_oldest_due_first_up_to_limit(
    store: State,
) -> None:
    await store.jobs.add_calls([make_call("late")], T0 + timedelta(minutes=10))
    await store.jobs.add_calls([make_call(str(i)) for i in range(5)], T0)
    await store.jobs.add_calls([make_call("none", None)], T0)
    first = await store.jobs.claim_due(T0, 3)
    assert [job.call.cdr_id for job in first] == ["0", "1", "2"]
    assert all(job.state is JobState.TRANSFERRING for job in first)
    assert all(job.attempts == 0 for job in first)
    rest = await store.jobs.claim_due(T0 + timedelta(minutes=5), 10)
    assert [job.call.cdr_id for job in rest] == ["3", "4"]
    assert await store.jobs.claim_due(T0 + timedelta(minutes=5), 10) == []
    [late] = await store.jobs.claim_due(T0 + timedelta(minutes=10), 10)
    assert late.call.cdr_id == "late"
    assert await store.jobs.claim_due(T0 + timedelta(days=1), 0) == []


async def test_claimed_job_carries_the_parsed_call(store: State) -> None:
    call = make_call("1", started=datetime(2021, 2, 17, 10, 0, tzinfo=ICT))
    await store.jobs.add_calls([call], T0)
    [job] = await store.jobs.claim_due(T0, 1)
    assert job.call == call  # every parsed field; the raw payload is not kept
    assert job.call.raw == {}
    assert job.first_seen_at == T0
    assert job.first_seen_at.tzinfo is UTC


async def test_concurrent_claims_never_share_a_job(store: State, backend: Backend) -> None:
    await store.jobs.add_calls([make_call(str(i)) for i in range(60)], T0)
    other = await backend.open()
    try:
        batches = await asyncio.gather(
            *(s.jobs.claim_due(T0, 7) for _ in range(6) for s in (store, other))
        )
    finally:
        await other.close()
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 60


async def test_retry_counts_an_attempt_and_waits(store: State) -> None:
    await store.jobs.add_calls([make_call("1")], T0)
    [job] = await store.jobs.claim_due(T0, 1)
    retry_at = T0 + timedelta(minutes=2)
    await store.outcomes.mark_retry(job.id, JobState.WAITING_READY, "404: not ready yet", retry_at)
    assert (await store.reports.counts())[JobState.WAITING_READY] == 1
    assert await store.jobs.next_due_at() == retry_at
    assert await store.jobs.claim_due(retry_at - timedelta(seconds=1), 1) == []
    [again] = await store.jobs.claim_due(retry_at, 1)
    assert again.attempts == 1
    await store.outcomes.mark_retry(again.id, JobState.PENDING, "timeout", retry_at)
    [third] = await store.jobs.claim_due(retry_at, 1)
    assert third.attempts == 2
    with pytest.raises(ValueError, match="pending or waiting_ready"):
        await store.outcomes.mark_retry(third.id, JobState.ARCHIVED, "no", retry_at)


async def test_failed_jobs_are_listed_most_recent_first(store: State, clock: FakeClock) -> None:
    await store.jobs.add_calls([make_call(str(i)) for i in range(3)], T0)
    jobs = await store.jobs.claim_due(T0, 3)
    for n, job in enumerate(jobs):
        clock.now = T0 + timedelta(minutes=n)
        await store.outcomes.mark_failed(job.id, f"reason {n}", kind=FailureKind.TOO_SLOW)
    failures = await store.reports.failures()
    assert [f.cdr_id for f in failures] == ["2", "1", "0"]
    assert failures[0].reason == "reason 2"
    assert failures[0].kind is FailureKind.TOO_SLOW
    assert failures[0].attempts == 1
    assert failures[0].updated_at == T0 + timedelta(minutes=2)
    assert failures[0].provider == "cdr_v2"
    assert failures[0].sip_call_id == "sip-2"
    assert [f.cdr_id for f in await store.reports.failures(limit=1)] == ["2"]
    assert (await store.reports.counts())[JobState.FAILED] == 3


async def test_archived_is_final(store: State, backend: Backend) -> None:
    await store.jobs.add_calls([make_call("1")], T0)
    [job] = await store.jobs.claim_due(T0, 1)
    await store.outcomes.mark_archived(job.id, archived_entry(1), "2021-02-17")
    await store.outcomes.mark_failed(job.id, "late failure report", kind=FailureKind.OTHER)
    await store.outcomes.mark_retry(job.id, JobState.PENDING, "late retry", T0)
    await store.outcomes.mark_archived(job.id, archived_entry(2), "2021-02-17")
    counts = await store.reports.counts()
    assert counts[JobState.ARCHIVED] == 1
    assert sum(counts.values()) == 1
    row = await backend.query("SELECT object_key, reason FROM calls")
    assert row == [("recordings/1.mp3", None)]


async def test_unknown_job_ids_are_an_error(store: State) -> None:
    with pytest.raises(KeyError):
        await store.outcomes.mark_failed(404, "x", kind=FailureKind.OTHER)
    with pytest.raises(KeyError):
        await store.batches.mark_manifest_written(404)


async def test_manifest_fields_are_checked(store: State) -> None:
    await store.jobs.add_calls([make_call("1")], T0)
    [job] = await store.jobs.claim_due(T0, 1)
    # A line is one line whatever its values hold: JSON escapes the line breaks.
    assert "\n" not in archived_entry(1, agent="a\nb\r").to_line()
    with pytest.raises(ValueError, match="archived_at"):
        await store.outcomes.mark_archived(
            job.id, archived_entry(1, archived_at="yesterday"), "2021-02-17"
        )
    for bad in ("2021/02/17", "20210217", "2021-W07-3", "../../x1234", "2021-13-45"):
        with pytest.raises(ValueError, match="YYYY-MM-DD|month|day"):
            await store.outcomes.mark_archived(job.id, archived_entry(1), bad)
    with pytest.raises(ValueError, match="writer"):
        await store.batches.create_manifest_batches("../evil", 10)


async def test_update_recording_url(store: State) -> None:
    await store.jobs.add_calls([make_call("1")], T0)
    [job] = await store.jobs.claim_due(T0, 1)
    await store.outcomes.update_recording_url(job.id, "https://rec.example/signed?sig=new")
    await store.outcomes.mark_retry(job.id, JobState.PENDING, "expired link", T0)
    [again] = await store.jobs.claim_due(T0, 1)
    assert again.call.recording_url == "https://rec.example/signed?sig=new"


async def test_release_transferring_after_a_crash(backend: Backend, clock: FakeClock) -> None:
    async with reopened(backend, clock) as state:
        await state.jobs.add_calls([make_call(str(i)) for i in range(4)], T0)
        claimed = await state.jobs.claim_due(T0, 3)
        await state.outcomes.mark_archived(claimed[0].id, archived_entry(1), "2021-02-17")
    # The process died with two jobs in flight.
    clock.now = T0 + timedelta(hours=1)
    async with reopened(backend, clock) as state:
        assert (await state.reports.counts())[JobState.TRANSFERRING] == 2
        assert await state.leases.release_transferring() == 2
        assert await state.leases.release_transferring() == 0
        counts = await state.reports.counts()
        assert (counts[JobState.PENDING], counts[JobState.ARCHIVED]) == (3, 1)
        assert await state.jobs.next_due_at() == T0  # the never-claimed one
        again = await state.jobs.claim_due(clock.now, 10)
        assert sorted(job.call.cdr_id for job in again) == ["1", "2", "3"]


async def test_retry_failed_requeues_with_attempts_reset(
    store: State, clock: FakeClock, backend: Backend
) -> None:
    await store.jobs.add_calls([make_call("1"), make_call("2")], T0)
    for job in await store.jobs.claim_due(T0, 2):
        await store.outcomes.mark_retry(job.id, JobState.PENDING, "timeout", T0)
    for job in await store.jobs.claim_due(T0, 2):
        await store.outcomes.mark_failed(job.id, "gave up", kind=FailureKind.TIMED_OUT)
    clock.now = T0 + timedelta(days=1)
    assert await store.jobs.retry_failed() == 2
    assert await store.reports.failures() == []
    assert await store.jobs.next_due_at() == clock.now
    jobs = await store.jobs.claim_due(clock.now, 2)
    assert [job.attempts for job in jobs] == [0, 0]
    assert await backend.query("SELECT DISTINCT reason FROM calls") == [(None,)]


# -- lookups ---------------------------------------------------------------------


async def test_the_line_of_an_archived_call_is_kept(store: State) -> None:
    # reconcile --fix writes it again when the manifest lost it (issue 20).
    await store.jobs.add_calls([make_call("a"), make_call("p")], T0)
    jobs = {job.call.cdr_id: job for job in await store.jobs.claim_due(T0, 10)}
    entry = archived_entry(1)
    await store.outcomes.mark_archived(jobs["a"].id, entry, "2021-02-17")
    provider = jobs["a"].call.provider.value
    kept = await store.reports.archived_line(provider, "a")
    assert kept is not None
    assert ManifestEntry.from_line(json.loads(kept)) == entry
    assert await store.reports.archived_line(provider, "p") is None  # not archived
    assert await store.reports.archived_line(provider, "nope") is None


async def test_find_job_by_either_id(store: State) -> None:
    await store.jobs.add_calls([make_call("cdr-1", sip="abc@pbx"), make_call("cdr-2")], T0)
    by_cdr = await store.reports.find_job("cdr-1")
    by_sip = await store.reports.find_job("  abc@pbx\n")
    assert by_cdr is not None
    assert by_sip is not None
    assert by_cdr.id == by_sip.id
    assert by_cdr.state is JobState.PENDING
    assert await store.reports.find_job("nope") is None
    assert await store.reports.find_job("   ") is None


async def test_find_job_prefers_the_most_recent_call(store: State) -> None:
    await store.jobs.add_calls(
        [
            make_call("x", started=T0 + timedelta(days=1), provider=Provider.EPACIFIC),
            make_call("x", started=T0),
        ],
        T0,
    )
    found = await store.reports.find_job("x")
    assert found is not None
    assert found.call.provider is Provider.EPACIFIC


# -- windows and checkpoints -----------------------------------------------------


async def test_windows_are_remembered(store: State) -> None:
    start, end = T0, T0 + timedelta(hours=1)
    assert not await store.progress.is_window_done("cdr_v2", start, end)
    await store.progress.mark_window_done("cdr_v2", start, end)
    await store.progress.mark_window_done("cdr_v2", start, end)
    assert await store.progress.is_window_done("cdr_v2", start.astimezone(ICT), end)
    assert not await store.progress.is_window_done("epacific", start, end)
    assert not await store.progress.is_window_done("cdr_v2", start, end + timedelta(seconds=1))


async def test_checkpoint_only_moves_forward(store: State) -> None:
    assert await store.progress.get_checkpoint("cdr_v2") is None
    await store.progress.set_checkpoint("cdr_v2", T0)
    await store.progress.set_checkpoint("cdr_v2", T0 - timedelta(hours=1))
    assert await store.progress.get_checkpoint("cdr_v2") == T0
    await store.progress.set_checkpoint("cdr_v2", (T0 + timedelta(minutes=1)).astimezone(ICT))
    checkpoint = await store.progress.get_checkpoint("cdr_v2")
    assert checkpoint == T0 + timedelta(minutes=1)
    assert checkpoint is not None
    assert checkpoint.tzinfo is UTC
    assert await store.progress.get_checkpoint("epacific") is None


async def test_retry_failed_between_requeues_only_the_range_and_provider(
    store: State,
) -> None:
    hour = timedelta(hours=1)
    calls = [
        make_call("before", started=T0 - hour),
        make_call("first", started=T0),
        make_call("last", started=T0 + hour - timedelta(seconds=1)),
        make_call("at-end", started=T0 + hour),
        make_call("other", started=T0, provider=Provider.EPACIFIC),
    ]
    await store.jobs.add_calls(calls, T0)
    for job in await store.jobs.claim_due(T0, 10):
        await store.outcomes.mark_failed(job.id, "HTTP 404", kind=FailureKind.NEVER_AVAILABLE)
    assert await store.jobs.retry_failed_between("cdr_v2", T0, T0 + hour) == 2
    left = sorted(f.cdr_id for f in await store.reports.failures())
    assert left == ["at-end", "before", "other"]
    requeued = await store.jobs.claim_due(T0 + hour, 10)
    assert sorted(j.call.cdr_id for j in requeued) == ["first", "last"]
    assert all(j.attempts == 0 for j in requeued)


# -- properties ------------------------------------------------------------------

URLS = st.sampled_from([None, "", "https://r/1.mp3", "https://r/2.mp3"])
PAGES = st.lists(
    st.lists(st.tuples(st.sampled_from("abcdef"), URLS), min_size=0, max_size=8),
    min_size=1,
    max_size=6,
)


# One database for every example (each starts by emptying it): a PostgreSQL
# database per example would cost more than the examples.
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(pages=PAGES)
def test_any_sequence_of_pages_keeps_one_row_per_cdr(
    backend: Backend, pages: list[list[tuple[str, str | None]]]
) -> None:
    """Against a model: the last URL seen wins, a URL ever seen means pending."""

    async def scenario() -> None:
        model: dict[str, str | None] = {}
        await backend.execute("DELETE FROM calls")
        async with reopened(backend) as state:
            for n, page in enumerate(pages):
                calls = [make_call(cdr, url) for cdr, url in page]
                result = await state.jobs.add_calls(calls, T0 + timedelta(seconds=n))
                assert result.new + result.updated + result.known == len(page)
                new = updated = 0
                for cdr, url in page:
                    if cdr not in model:
                        new += 1
                        model[cdr] = url or None
                    elif url and model[cdr] != url:
                        updated += 1
                        model[cdr] = url
                assert (result.new, result.updated) == (new, updated)
            counts = await state.reports.counts()
            assert sum(counts.values()) == len(model)
            assert counts[JobState.PENDING] == sum(1 for url in model.values() if url)
            for cdr, url in model.items():
                job = await state.reports.find_job(cdr)
                assert job is not None
                assert job.call.recording_url == url

    asyncio.run(scenario())
