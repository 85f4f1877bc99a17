"""``archiver backfill --since T --until T``: archive every CDR started in [since, until).

Resumable: completed windows and archived calls are skipped on a re-run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from archiver.errors import UsageError
from archiver.exits import ExitCode
from archiver.http import ApiClient, make_session
from archiver.pipeline.producers import Window
from archiver.pipeline.stats import RunStats
from archiver.progress import report
from archiver.settings import Settings, require_source
from archiver.sources import CdrSource, Page, make_source
from archiver.state.base import JobState
from archiver.state.protocols import Progress, Reports
from archiver.timeutil import parse_user_time, split_windows


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser("backfill", help="archive every CDR started in [--since, --until)")
    common(p)
    p.add_argument(
        "--since", required=True, help="start (date or ISO datetime; naive = source zone)"
    )
    p.add_argument("--until", required=True, help="end, exclusive")
    p.add_argument("--dry-run", action="store_true", help="list and count, download nothing")
    p.set_defaults(handler=run, uvloop=True)  # the hot path: see cli.loop_factory


def time_range(args: argparse.Namespace, settings: Settings) -> tuple[datetime, datetime]:
    """The [since, until) range the arguments give; ConfigError if unusable."""
    tz = settings.source.tz
    try:
        since = parse_user_time(args.since, tz)
        until = parse_user_time(args.until, tz)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if until <= since:
        raise UsageError("--until must be later than --since")
    return since, until


def windows_for(
    since: datetime, until: datetime, settings: Settings, granularity: timedelta
) -> list[Window]:
    """The range cut into windows aligned to the source's granularity."""
    return split_windows(since, until, timedelta(seconds=settings.window), granularity)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the backfill; print the summary; exit 3 if any recording failed."""
    require_source(settings.source)
    since, until = time_range(args, settings)
    if args.dry_run:
        return await dry_run(since, until, settings)
    return await archive_range(settings, since, until)


async def archive_range(settings: Settings, since: datetime, until: datetime) -> int:
    """Backfill [since, until) with progress shown and stop signals handled; summarize."""
    from archiver.commands.runtime import StopSignals, open_runtime

    with StopSignals() as signals:
        async with open_runtime(settings) as rt:
            signals.target = rt.pipeline.stop
            windows = windows_for(since, until, settings, rt.source.granularity)
            if await all_listed(rt.state.progress, rt.source.provider.value, windows):
                # Nothing left to list would ask the provider nothing: a wrong token
                # would pass unnoticed until the next new range. One request proves it.
                await rt.source.probe()
            # A re-run of the same range gives its failures another chance (a
            # 404 may have been a lagging replica); `archiver retry` is for the rest.
            again = await rt.state.jobs.retry_failed_between(rt.source.provider.value, since, until)
            if again:
                print(
                    f"trying again {again} recording(s) of this range that failed in an "
                    "earlier run (see `archiver status` for failures outside it)"
                )
            progress = asyncio.create_task(report(rt.pipeline.stats))
            try:
                stats = await rt.pipeline.backfill(windows)
            finally:
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
            return await summarize(stats, rt.state.reports, interrupted=rt.pipeline.stop_requested)


async def all_listed(progress: Progress, provider: str, windows: list[Window]) -> bool:
    """True when every window of the range was listed completely by an earlier run."""
    for start, end in windows:
        if not await progress.is_window_done(provider, start, end):
            return False
    return True


async def summarize(stats: RunStats, reports: Reports, *, interrupted: bool) -> int:
    """Print what the run did; list what is not archived; return the exit code.

    0: everything archived (or without a recording). 3: some recordings failed
    permanently (each listed with its reason), are still waiting for a retry
    that was not due before the run ended, or a window's listing was stopped by
    one of its bounds. 130: stopped by a signal.
    """
    counts = await reports.counts()
    mib = stats.bytes / (1024 * 1024)
    print(
        f"archived {stats.archived} recording(s) ({mib:.1f} MiB, "
        f"{stats.already_present} already in storage) in {stats.elapsed:.1f}s; "
        f"{stats.adopted} already in the archive (not archived again); "
        f"listed {stats.listed} CDR(s), {stats.new_without_recording} without a recording, "
        f"{stats.bad_records} unreadable CDR(s) skipped; {stats.manifest_lines} manifest line(s)"
    )
    print("state: " + ", ".join(f"{k.value} {v}" for k, v in counts.items()))
    if interrupted:
        print("stopped before the end: run the same command again to finish", file=sys.stderr)
        return ExitCode.INTERRUPTED
    code = 0
    waiting = counts[JobState.PENDING] + counts[JobState.WAITING_READY]
    if waiting:
        print(f"{waiting} recording(s) not archived yet (not ready or retrying): run again later")
        code = ExitCode.FAILED_RECORDINGS
    if stats.listing_errors:
        # A bound stopped these windows' listing: not marked done, listed again next run.
        bounds = "; ".join(f"{n} x {limit.value}" for limit, n in stats.windows_stopped.items())
        print(f"{len(stats.listing_errors)} window(s) not listed completely ({bounds}):")
        for reason in stats.listing_errors:
            print(f"  {reason}")
        code = ExitCode.FAILED_RECORDINGS
    failures = await reports.failures()
    if failures:
        kinds = Counter(f.kind for f in failures)
        by_kind = "; ".join(f"{n} x {kind.summary}" for kind, n in kinds.most_common())
        print(f"{len(failures)} recording(s) failed permanently ({by_kind}):")
        for f in failures:
            print(f"  {f.sip_call_id} (cdr {f.cdr_id}): {f.reason}")
        code = ExitCode.FAILED_RECORDINGS
    return code


async def list_range(
    source: CdrSource, since: datetime, until: datetime, settings: Settings
) -> AsyncIterator[Page]:
    """Every page of [since, until), window by window as the backfill lists them.

    Read-only: no state, no transfer. A provider error that outlasts its
    retries propagates (the listing is never taken as complete).
    """
    for start, end in windows_for(since, until, settings, source.granularity):
        async for page in source.list_window(start, end):
            yield page


async def dry_run(since: datetime, until: datetime, settings: Settings) -> int:
    """List the range and count; write nothing."""
    async with make_session(settings.source) as session:
        source = make_source(settings.source, ApiClient(session, settings.source))
        cdrs = recordings = bad = 0
        async for page in list_range(source, since, until, settings):
            cdrs += len(page.records)
            recordings += sum(1 for c in page.records if c.has_recording)
            bad += len(page.skipped)
    print(
        f"dry run: {cdrs} CDR(s), {recordings} with a recording, {bad} unreadable, "
        f"in [{since.isoformat()}, {until.isoformat()})"
    )
    return 0
