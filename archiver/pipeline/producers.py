"""The two producers of the one pipeline: the backfill lists fixed windows once;
the daemon polls forever behind a moving checkpoint. Only the stop rule differs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from archiver.errors import ArchiverError, AuthenticationError
from archiver.timeutil import split_windows

if TYPE_CHECKING:
    from archiver.pipeline.runner import Pipeline

log = logging.getLogger("archiver.pipeline")

Window = tuple[datetime, datetime]


async def list_windows(p: Pipeline, windows: Sequence[Window]) -> AsyncIterator[None]:
    """The backfill: list each window not done before; remember each one completed."""
    provider = p.source.provider.value
    for start, end in windows:
        if p.stop_event.is_set():
            return
        if await p.state.is_window_done(provider, start, end):
            p.stats.windows_skipped += 1
            continue
        complete = True
        async for page in p.source.list_window(start, end):
            await p.take_page(page.records, page.skipped, page.duplicates)
            yield None
            if p.stop_event.is_set():
                complete = False
                break
        if complete:
            await p.state.mark_window_done(provider, start, end)
            p.stats.windows_done += 1


async def poll_forever(p: Pipeline) -> AsyncIterator[None]:
    """Each poll lists [checkpoint - lookback, now - settle), then moves the checkpoint.

    A first start begins at now minus the lookback (history is the backfill's
    job). Re-reading the lookback catches late CDRs and recordings whose URL
    appeared late; deduplication in the state makes it cheap.
    """
    provider = p.source.provider.value
    cfg = p.config
    while not p.stop_event.is_set():
        now = p.clock()
        checkpoint = await p.state.get_checkpoint(provider)
        lookback = timedelta(seconds=cfg.lookback)
        start = checkpoint - lookback if checkpoint else now - lookback
        end = now - timedelta(seconds=cfg.settle)
        try:
            if end > start:
                windows = split_windows(
                    start, end, timedelta(seconds=cfg.window), p.source.granularity
                )
                for a, b in windows:
                    async for page in p.source.list_window(a, b):
                        await p.take_page(page.records, page.skipped, page.duplicates)
                        yield None
                        if p.stop_event.is_set():
                            return
                await p.state.set_checkpoint(provider, end)
            p.last_source_ok = time.time()
            p.metrics.last_poll.set(p.last_source_ok)
        except AuthenticationError:
            raise
        except ArchiverError as exc:
            # The next poll re-reads the same range; /readyz shows the source as unreached.
            log.error("poll failed, will try again: %s", exc)  # noqa: TRY400 - expected, one line
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(p.stop_event.wait(), timeout=cfg.poll_interval)
