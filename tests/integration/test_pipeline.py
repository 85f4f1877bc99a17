"""The pipeline against the simulated provider and real storage (local directory and SeaweedFS)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from archiver.commands.runtime import open_runtime
from archiver.models import Provider
from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.state.base import JobState
from tests.support.pipeline import (
    FAST_RETRY,
    FIXED_START,
    LONG_READY_DEADLINE,
    assert_exactly_once,
    backfill,
    make_settings,
)
from tests.support.stepped import Skewed


@pytest.fixture(params=["local", "s3"])
async def storage(request, tmp_path, make_bucket, s3_settings) -> StorageSettings:
    if request.param == "local":
        return StorageSettings(url=str(tmp_path / "archive"))
    return s3_settings(await make_bucket())


@pytest.mark.parametrize(
    ("kind", "mapping"),
    [(Provider.CDR_V2, "default"), (Provider.CDR_V2, "flex"), (Provider.EPACIFIC, "mixed")],
)
async def test_clean_run_archives_every_recording_once(storage, tmp_path, kind, mapping):
    sim = Simulator(SimConfig(seed=21, calls=30, mapping=mapping, max_size=300_000))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"), kind)
        stats, counts = await backfill(settings, sim)
        with_rec = sum(1 for c in sim.calls if c.has_recording)
        assert counts["archived"] == with_rec
        assert counts["no_recording"] == len(sim.calls) - with_rec
        assert counts["failed"] == 0
        await assert_exactly_once(sim, storage, kind)
        # A second run changes nothing: windows are done, calls archived.
        stats2, counts2 = await backfill(settings, sim)
    assert counts2 == counts
    assert stats2.archived == 0
    assert stats2.windows_skipped == stats2.windows_total
    assert stats2.windows_done == 0
    await assert_exactly_once(sim, storage, kind)


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(Faults(rec_5xx=0.3), id="5xx"),
        pytest.param(Faults(rec_reset=0.3), id="reset"),
        pytest.param(Faults(rec_truncated=0.3), id="truncated"),
        pytest.param(Faults(rec_html=0.3), id="html"),
        pytest.param(Faults(not_ready_fraction=0.3, not_ready_seconds=0.3), id="not-ready"),
        pytest.param(Faults(api_5xx=0.2, api_429=0.1, retry_after=0), id="api-faults"),
    ],
)
async def test_each_fault_mode_ends_with_everything_archived(storage, tmp_path, faults):
    # A fixed day: the API requests name their dates and the fault draws are keyed
    # by the request, so the same faults are drawn on every run. The ready deadline
    # reaches back to it: a recording that 404s is "not ready yet", not gone.
    sim = Simulator(
        SimConfig(seed=33, calls=24, max_size=200_000, faults=faults, start=FIXED_START)
    )
    async with sim.serve() as base:
        # Small pages: enough API requests for the API faults to be drawn.
        settings = make_settings(
            sim,
            base,
            storage,
            str(tmp_path / "s.sqlite3"),
            source={"page_size": 3},
            retry=FAST_RETRY.model_copy(update={"ready_deadline": LONG_READY_DEADLINE}),
        )
        _, counts = await backfill(settings, sim)
    assert counts["failed"] == 0, counts
    assert counts["pending"] == counts["waiting_ready"] == counts["transferring"] == 0
    await assert_exactly_once(sim, storage)
    fault_hits = sum(v for k, v in sim.stats.items() if k.startswith("fault:"))
    assert fault_hits > 0, "the fault mode was never exercised"


async def test_a_full_batch_is_written_without_waiting_for_the_interval(tmp_path):
    """Under load the manifest (and its index) goes out batch by batch during the run,
    not all after the last transfer: a full batch wakes the flusher."""
    # One transfer at a time, each slowed by 0.2 s: the run lasts seconds after the
    # first batch of 5 is full, and the interval (an hour) never comes.
    sim = Simulator(
        SimConfig(seed=12, calls=30, max_size=50_000, faults=Faults(slow=1.0, slow_seconds=0.2))
    )
    storage = StorageSettings(url=str(tmp_path / "archive"))
    archive = tmp_path / "archive"
    async with sim.serve() as base:
        settings = make_settings(
            sim,
            base,
            storage,
            str(tmp_path / "s.sqlite3"),
            concurrency=1,
            manifest_batch=5,
            manifest_interval=3600,
        )
        run = asyncio.create_task(backfill(settings, sim))
        # Recordings in the storage when the first manifest object turned up.
        stored_then: int | None = None
        while not run.done() and stored_then is None:
            if any((archive / "manifests").rglob("*.jsonl")):
                stored_then = sum(1 for _ in (archive / "recordings").rglob("*.*"))
            await asyncio.sleep(0.05)
        _, counts = await run
    with_recording = sum(1 for c in sim.calls if c.has_recording)
    assert stored_then is not None, "no manifest object before the backfill ended"
    assert stored_then < with_recording, "the manifest waited for the last transfer"
    assert counts["failed"] == 0
    contents = await assert_exactly_once(sim, storage)
    # Batches of 5 as they filled (plus a last partial one per date at most).
    assert contents.manifest_objects >= len(contents.lines) // 5


async def test_signed_urls_that_expired_are_refreshed_through_the_source(tmp_path):
    """A backlog listed earlier whose signed links lapsed before their transfer."""
    clock = Skewed()
    sim = Simulator(SimConfig(seed=8, calls=20, faults=Faults(signed_ttl=0.0)), clock=clock)
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"))
        start, end = sim.config.start, sim.config.start + sim.config.span
        async with open_runtime(settings) as rt:
            async for page in rt.source.list_window(start, end):
                await rt.state.jobs.add_calls(page.records, datetime.now(UTC))
            await rt.state.progress.mark_window_done("cdr_v2", start, end)
        clock.advance(2.1)  # links minted with a 0 s TTL are valid to the next second
        async with open_runtime(settings) as rt:
            stats = await rt.pipeline.backfill([(start, end)])
            counts = await rt.state.reports.counts()
    signed = [c for c in sim.calls if c.has_recording and c.url_kind == "signed"]
    assert signed, "the seed gives no signed URL: pick another"
    assert sim.stats["signed_rejected"] >= len(signed)
    assert stats.refreshed >= len(signed)
    assert counts[JobState.FAILED] == 0
    await assert_exactly_once(sim, storage)


async def test_a_recording_that_never_becomes_ready_fails_with_a_reason(tmp_path, capsys):
    sim = Simulator(
        SimConfig(seed=5, calls=6, faults=Faults(not_ready_fraction=1.0, not_ready_seconds=3600))
    )
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        # The calls are from 2021: far past the deadline, so a 404 is final at once.
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"))
        stats, counts = await backfill(settings, sim)
    expected = sum(1 for c in sim.calls if c.has_recording)
    assert counts["archived"] == 0
    assert counts["failed"] == expected
    from archiver.commands.backfill import summarize
    from archiver.failures import FailureKind
    from archiver.state import open_state_store

    async with open_state_store(settings.state) as state:
        failures = await state.reports.failures()
        assert await summarize(stats, state.reports, interrupted=False) == 3
    assert all("recording never became available" in f.reason for f in failures)
    # The kind is a value the run counts, the state keeps and the summary groups by.
    assert {f.kind for f in failures} == {FailureKind.NEVER_AVAILABLE}
    assert stats.failure_kinds == {FailureKind.NEVER_AVAILABLE: expected}
    out = capsys.readouterr().out
    assert f"({expected} x recording never became available):" in out


async def test_the_failure_metric_is_labelled_by_the_failure_kind(tmp_path):
    # The label is the kind the transfer set (a value), not a match on the words.
    from archiver.failures import FailureKind
    from archiver.timeutil import split_windows

    sim = Simulator(
        SimConfig(seed=5, calls=6, faults=Faults(not_ready_fraction=1.0, not_ready_seconds=3600))
    )
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"))
        async with open_runtime(settings) as rt:
            start = sim.config.start
            windows = split_windows(
                start, start + sim.config.span, sim.config.span, rt.source.granularity
            )
            stats = await rt.pipeline.backfill(windows)
            body = rt.pipeline.metrics.render().decode()
    failed = sum(1 for c in sim.calls if c.has_recording)
    assert stats.failure_kinds == {FailureKind.NEVER_AVAILABLE: failed}
    label = f'archiver_recordings_failed_total{{reason="{FailureKind.NEVER_AVAILABLE.value}"}}'
    assert f"{label} {float(failed)}" in body, body
