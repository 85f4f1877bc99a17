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
from archiver.pipeline.intake import Intake
from archiver.pipeline.role_keeper import RoleKeeper, window_role
from archiver.pipeline.stats import RunStats
from archiver.sources.base import CdrSource
from archiver.state.protocols import Progress
from archiver.waiting import wait_set

log = logging.getLogger("archiver.pipeline")

Window = tuple[datetime, datetime]


class WindowLister:
    """The backfill: list each window not done before; remember each one completed.

    Several backfills on one state split the windows: each window is listed
    under its role (:func:`~archiver.pipeline.role_keeper.window_role`); one another
    live process is listing is left for later and looked at again until it is
    done (by that process) or its role is free (that process died: its lease
    ran out), when this one lists it.
    """

    def __init__(
        self,
        source: CdrSource,
        progress: Progress,
        windows: Sequence[Window],
        stats: RunStats,
        roles: RoleKeeper | None = None,
    ) -> None:
        self.source = source
        self.progress = progress
        self.windows = windows
        self.stats = stats
        self.roles = roles

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """List the windows in order; a stop leaves the current one not done."""
        todo = list(self.windows)
        while todo and not stop.is_set():
            later = [w for w in todo if not await self._take_turn(into, stop, w)]
            if later and later == todo:
                # Every window left is another process's for now: look again shortly.
                wait = min(self.roles.renew_every if self.roles else 1.0, 1.0)
                await wait_set(stop, wait)
            todo = later

    async def _take_turn(self, into: Intake, stop: asyncio.Event, window: Window) -> bool:
        """Done with ``window`` (listed here, or done before or elsewhere): True;
        False when another live process is listing it (or a stop came)."""
        provider = self.source.provider.value
        start, end = window
        if stop.is_set():
            return False
        if await self.progress.is_window_done(provider, start, end):
            self.stats.windows_skipped += 1
            return True
        if self.roles is None:
            await self._list(into, stop, window)
            return True
        role = window_role(provider, start, end)
        if not await self.roles.take(role):
            log.debug("window [%s, %s) is being listed by another process", start, end)
            return False
        # Taken, but its last holder may have finished it in the meantime.
        if await self.progress.is_window_done(provider, start, end):
            await self.roles.release(role)
            self.stats.windows_skipped += 1
            return True
        return await self.roles.hold_while(role, self._list(into, stop, window))

    async def _list(self, into: Intake, stop: asyncio.Event, window: Window) -> None:
        """List one window; mark it done unless a stop or a bound cut it short."""
        provider = self.source.provider.value
        start, end = window
        try:
            async for page in self.source.list_window(start, end):
                await into.take(page)
                if stop.is_set():
                    return
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
            return
        await self.progress.mark_window_done(provider, start, end)
        self.stats.windows_done += 1
