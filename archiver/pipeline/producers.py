"""The producers of the one pipeline: the backfill lists fixed windows once; the
daemon polls forever. Only the stop rule differs.

Each producer gets what it lists from and remembers in at construction, and at
``run`` only the narrow :class:`~archiver.pipeline.intake.Intake` and the stop
event: it never reaches into the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from archiver.errors import ArchiverError, AuthenticationError
from archiver.metrics import Metrics
from archiver.pipeline.intake import Health, Intake
from archiver.pipeline.stats import PipelineConfig, RunStats
from archiver.sources.base import CdrSource
from archiver.state.base import StateStore
from archiver.timeutil import split_windows

log = logging.getLogger("archiver.pipeline")

Window = tuple[datetime, datetime]


class WindowLister:
    """The backfill: list each window not done before; remember each one completed."""

    def __init__(
        self, source: CdrSource, state: StateStore, windows: Sequence[Window], stats: RunStats
    ) -> None:
        self.source = source
        self.state = state
        self.windows = windows
        self.stats = stats

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """List the windows in order; a stop leaves the current one not done."""
        provider = self.source.provider.value
        for start, end in self.windows:
            if stop.is_set():
                return
            if await self.state.is_window_done(provider, start, end):
                self.stats.windows_skipped += 1
                continue
            complete = True
            async for page in self.source.list_window(start, end):
                await into.take(page)
                if stop.is_set():
                    complete = False
                    break
            if complete:
                await self.state.mark_window_done(provider, start, end)
                self.stats.windows_done += 1


class Poller:
    """Each poll lists [checkpoint - lookback, now - settle), then moves the checkpoint.

    A first start begins at now minus the lookback (history is the backfill's
    job). Re-reading the lookback catches late CDRs and recordings whose URL
    appeared late; deduplication in the state makes it cheap.
    """

    def __init__(
        self,
        source: CdrSource,
        state: StateStore,
        config: PipelineConfig,
        *,
        clock: Callable[[], datetime],
        health: Health,
        metrics: Metrics,
    ) -> None:
        self.source = source
        self.state = state
        self.config = config
        self.clock = clock
        self.health = health
        self.metrics = metrics

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """Poll every ``poll_interval`` until ``stop``."""
        while not stop.is_set():
            try:
                await self.poll_once(into, stop)
            except AuthenticationError:
                raise
            except ArchiverError as exc:
                # The next poll re-reads the same range; /readyz shows the source as unreached.
                log.error("poll failed, will try again: %s", exc)  # noqa: TRY400 - one line
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_interval)

    async def poll_once(self, into: Intake, stop: asyncio.Event) -> None:
        """One poll of the source."""
        provider = self.source.provider.value
        cfg = self.config
        now = self.clock()
        checkpoint = await self.state.get_checkpoint(provider)
        lookback = timedelta(seconds=cfg.lookback)
        start = checkpoint - lookback if checkpoint else now - lookback
        end = now - timedelta(seconds=cfg.settle)
        if end > start:
            step = timedelta(seconds=cfg.window)
            for a, b in split_windows(start, end, step, self.source.granularity):
                async for page in self.source.list_window(a, b):
                    await into.take(page)
                    if stop.is_set():
                        return
            await self.state.set_checkpoint(provider, end)
        self.metrics.last_poll.set(self.health.source_reached())
