"""The backfill's producer: it lists fixed windows once; ``reconcile --fix``'s hands
over the calls it found missing. The daemon's producers (poller.py, sweep.py)
poll forever; the pipeline is the same, only the stop rule differs.

Each producer gets what it lists from and remembers in at construction, and at
``run`` only the narrow :class:`~archiver.pipeline.intake.Intake` and the stop
event: it never reaches into the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from archiver.errors import ListingLimitError
from archiver.models import CallRecord
from archiver.pipeline.intake import Intake
from archiver.pipeline.stats import RunStats
from archiver.sources.base import CdrSource, Page
from archiver.state.base import StateStore

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
            try:
                async for page in self.source.list_window(start, end):
                    await into.take(page)
                    if stop.is_set():
                        complete = False
                        break
            except ListingLimitError as exc:
                # A bound hit: this window stays not done (what it listed is kept,
                # a re-run lists it again); the other windows are listed.
                log.error(  # noqa: TRY400 - one line, the reason is the message
                    "window [%s, %s) not listed completely: %s",
                    start.isoformat(),
                    end.isoformat(),
                    exc,
                )
                self.stats.windows_stopped[exc.limit] += 1
                self.stats.listing_errors.append(str(exc))
                continue
            if complete:
                await self.state.mark_window_done(provider, start, end)
                self.stats.windows_done += 1


class GivenCalls:
    """``reconcile --fix``: calls another listing found, handed over as one page.

    No window is marked done: this pipeline did not list any.
    """

    def __init__(self, calls: Sequence[CallRecord]) -> None:
        self.calls = list(calls)

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """Take the calls, once."""
        if not stop.is_set():
            await into.take(Page(records=self.calls))
