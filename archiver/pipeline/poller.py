"""The daemon's polls: one count of the whole range when nothing changed, a few
more to find what did, listings only of the steps that changed (see poll_counts.py).

A count the API does not give, or gives in a shape we cannot trust, falls back
to a full listing of that range, as every poll did before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from archiver.metrics import Metrics
from archiver.pipeline.intake import Health, Intake
from archiver.pipeline.poll_counts import Tally
from archiver.pipeline.repeating import Repeating, run_every
from archiver.pipeline.stats import PipelineConfig, RunStats
from archiver.sources.base import CdrSource
from archiver.state.protocols import Progress, Reports
from archiver.timeutil import split_windows

log = logging.getLogger("archiver.pipeline")

# The polls remember the source's counts per this many seconds of call start time
# (or the provider's granularity, if coarser); not a setting: a change of it only
# moves where the polls cut time, never what they find.
TALLY_STEP = 60.0


@dataclass
class PollReport:
    """What one poll did: the summary line and the metrics read it."""

    requests: int = 0
    listed: int = 0
    new: int = 0
    updated: int = 0
    complete: bool = False


class _Stopped(Exception):
    """The stop event was set in the middle of a poll."""


class Poller:
    """Polls [checkpoint - lookback, now - settle) every ``poll_interval`` seconds.

    A first start begins at now minus the lookback (history is the backfill's
    job). What the counts cannot see (a recording URL that appears on a CDR
    already listed) is the sweep's job.
    """

    def __init__(
        self,
        source: CdrSource,
        progress: Progress,
        reports: Reports,
        config: PipelineConfig,
        *,
        clock: Callable[[], datetime],
        health: Health,
        metrics: Metrics,
        stats: RunStats,
    ) -> None:
        self.source = source
        self.progress = progress
        self.reports = reports
        self.config = config
        self.clock = clock
        self.health = health
        self.metrics = metrics
        self.stats = stats
        step = max(timedelta(seconds=TALLY_STEP), source.granularity)
        self.tally = Tally(step - step % source.granularity)
        self._into: Intake | None = None
        self._stop = asyncio.Event()
        self._report = PollReport()
        self._archived = 0
        self._failed = 0

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """Poll every ``poll_interval`` until ``stop``."""
        await run_every(
            lambda: self.poll_once(into, stop),
            self.config.run.poll_interval,
            stop,
            producer=Repeating.POLL,
            metrics=self.metrics,
        )

    async def poll_once(self, into: Intake, stop: asyncio.Event) -> PollReport:
        """One poll of the source; returns what it did."""
        self._into, self._stop, self._report = into, stop, PollReport()
        started = time.monotonic()
        provider = self.source.provider.value
        now = self.clock()
        checkpoint = await self.progress.get_checkpoint(provider)
        lookback = timedelta(seconds=self.config.run.lookback)
        grain = self.source.granularity
        end = _floor(now - timedelta(seconds=self.config.run.settle), grain)
        lo = self.tally.leaf(checkpoint - lookback if checkpoint else now - lookback)
        self.tally.forget_before(lo)
        try:
            if end > self.tally.start_of(lo):
                hi = self.tally.leaf(end - grain) + 1
                total = await self._count(lo, hi, end)
                await self._resolve(lo, hi, end, total)
                await self.progress.set_checkpoint(provider, end)
        except _Stopped:
            return self._report
        self._report.complete = True
        self.metrics.last_poll.set(self.health.source_reached())
        elapsed = time.monotonic() - started
        self.metrics.poll_seconds.observe(elapsed)
        self.metrics.poll_requests.observe(self._report.requests)
        await self._summary(elapsed)
        return self._report

    async def _resolve(self, lo: int, hi: int, end: datetime, total: int | None) -> None:
        """Find and list the leaves of [lo, hi) whose count changed."""
        if self._stop.is_set():
            raise _Stopped
        if total is None:
            # No count to trust: list the whole range, remember nothing of it.
            self.tally.forget(lo, hi)
            await self._list(lo, hi, end)
            return
        if total == self.tally.remembered(lo, hi):
            return
        if hi - lo == 1 or total <= self.config.source.page_size:
            # One page holds it all, or it is one leaf: listing costs what counting would.
            starts, unparsed = await self._list(lo, hi, end)
            if hi - lo == 1:
                self.tally.remember(lo, total)
                return
            # A record we could not parse counts on the API's side but has no start
            # time to place it by: count smaller ranges instead.
            if not unparsed and self.tally.attribute(lo, hi, starts, total):
                return
        # Most new CDRs are of calls that just ended, near the end of the range:
        # the older three quarters are counted (usually unchanged, one request)
        # and the recent quarter, smaller, is split again.
        mid = hi - max((hi - lo) // 4, 1)
        first = await self._count(lo, mid, end)
        # The second half's count follows from the first unless that cannot be right.
        second = total - first if first is not None and first <= total else None
        if second is None:
            second = await self._count(mid, hi, end)
        await self._resolve(lo, mid, end, first)
        await self._resolve(mid, hi, end, second)

    def _bounds(self, lo: int, hi: int, end: datetime) -> tuple[datetime, datetime]:
        return self.tally.start_of(lo), min(self.tally.start_of(hi), end)

    async def _count(self, lo: int, hi: int, end: datetime) -> int | None:
        start, stop = self._bounds(lo, hi, end)
        self._report.requests += 1
        return await self.source.count_window(start, stop)

    async def _list(self, lo: int, hi: int, end: datetime) -> tuple[list[datetime], int]:
        """List the leaves [lo, hi) into the pipeline: the listed CDRs' start times,
        and how many records could not be parsed."""
        assert self._into is not None
        start, stop = self._bounds(lo, hi, end)
        starts: list[datetime] = []
        unparsed = 0
        size = timedelta(seconds=self.config.run.window)
        for a, b in split_windows(start, stop, size, self.source.granularity):
            async for page in self.source.list_window(a, b):
                self._report.requests += 1
                result = await self._into.take(page)
                self._report.listed += len(page.records)
                self._report.new += result.new
                self._report.updated += result.updated
                starts.extend(call.started_at for call in page.records)
                unparsed += len(page.skipped)
                if self._stop.is_set():
                    raise _Stopped
        return starts, unparsed

    async def _summary(self, elapsed: float) -> None:
        r = self._report
        archived, self._archived = self.stats.archived - self._archived, self.stats.archived
        failed, self._failed = self.stats.failed - self._failed, self.stats.failed
        oldest = await self.reports.oldest_unarchived()
        lag = max((self.clock() - oldest).total_seconds(), 0.0) if oldest else 0.0
        log.info(
            "poll: %d request(s) in %.1fs, listed %d, new %d, updated %d;"
            " since the last poll archived %d, failed %d; lag %.0fs",
            r.requests,
            elapsed,
            r.listed,
            r.new,
            r.updated,
            archived,
            failed,
            lag,
        )


def _floor(moment: datetime, grain: timedelta) -> datetime:
    """``moment`` floored to a multiple of ``grain`` (from the Unix epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // grain) * grain
