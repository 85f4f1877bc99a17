"""The ``run`` leader's rollups of its own writer, off the hot path.

While it leads, a task beside the flusher waits until the flusher has written
``ARCHIVER_ROLLUP_OBJECTS`` manifest objects since the last rollup, or
``ARCHIVER_ROLLUP_AGE`` seconds have passed (0 turns a trigger off), then rolls
its writer's chain up (:class:`~archiver.manifest.rollup_write.RollupWriter`,
reading a few objects at a time so the transfers keep the connections). The
flushes never wait for it: the path to a first line is unchanged. A failure
is logged and left to the next trigger; a chain that does not walk cleanly is
never rolled up (an error naming the break: run ``archiver verify``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from archiver.errors import ArchiverError
from archiver.manifest.rollup_walk import ChainBreak
from archiver.manifest.rollup_write import RollupWriter
from archiver.pipeline.flusher import ManifestFlusher
from archiver.waiting import wait_set

log = logging.getLogger("archiver.pipeline")

# Reads at once while rolling up beside the transfers (the command uses 16).
CONCURRENCY = 4


class RollupTrigger:
    """Rolls the leader's writer up after enough objects or enough time."""

    def __init__(self, flusher: ManifestFlusher) -> None:
        self.flusher = flusher
        self.objects, self.age = flusher.rollup
        self.rollups = 0  # rollups written by this process (for tests and logs)

    async def run(self, stop: asyncio.Event) -> None:
        """Roll up whenever a trigger fires, until ``stop``."""
        if not self.objects and not self.age:
            return
        loop = asyncio.get_running_loop()
        since = self.flusher.objects_written
        started = loop.time()
        while not stop.is_set():
            due = self.objects and self.flusher.objects_written - since >= self.objects
            if self.age and loop.time() - started >= self.age:
                due = True
            if not due:
                self.flusher.object_written.clear()
                left = self.age - (loop.time() - started) if self.age else 3600.0
                await _first(stop, self.flusher.object_written, max(left, 0.0))
                continue
            since, started = self.flusher.objects_written, loop.time()
            await self.roll_up()

    async def roll_up(self) -> None:
        """One rollup pass of this writer; failures are logged, not raised."""
        try:
            writer = await self.flusher.batches.writer_id()
            done = await RollupWriter(
                self.flusher.store, writer, now=lambda: datetime.now(UTC), concurrency=CONCURRENCY
            ).run()
        except ChainBreak as exc:
            # One line, no traceback: the break is named.
            log.error("rollup: not rolled up, the chain is broken at %s (run archiver verify)", exc)  # noqa: TRY400
            return
        except ArchiverError as exc:
            log.warning("rollup: not done now (the next trigger tries again): %s", exc)
            return
        self.rollups += len(done.records)
        if done.records:
            log.info(
                "rollup: %d rollup(s) of writer %s cover %d manifest object(s)",
                len(done.records),
                writer,
                done.objects,
            )


async def _first(stop: asyncio.Event, written: asyncio.Event, seconds: float) -> None:
    """Wait for a stop, an object written, or ``seconds``."""
    waiters = [
        asyncio.ensure_future(written.wait()),
        asyncio.ensure_future(wait_set(stop, seconds)),
    ]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
