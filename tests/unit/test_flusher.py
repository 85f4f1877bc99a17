"""When the manifest flusher writes (pure timing rule; the write itself is counted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from archiver.errors import StorageError
from archiver.pipeline.flusher import ManifestFlusher


class Counted(ManifestFlusher):
    """The flusher with its write replaced by a counter (and optional failures)."""

    def __init__(self, interval: float, max_lines: int, failures: int = 0) -> None:
        super().__init__(
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            interval=interval,
            max_lines=max_lines,
            written=lambda n: None,
        )
        self.flushes = 0
        self.failures = failures

    async def flush(self) -> None:
        self.flushes += 1
        if self.failures:
            self.failures -= 1
            raise StorageError("storage away")


@asynccontextmanager
async def running(flusher: ManifestFlusher) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(flusher.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await task


async def until(check: Any) -> None:
    while not check():
        await asyncio.sleep(0.005)


async def test_idle_writes_nothing() -> None:
    flusher = Counted(interval=0.01, max_lines=10)
    async with running(flusher):
        await asyncio.sleep(0.1)  # ten intervals with nothing archived
        assert flusher.flushes == 0


async def test_a_line_is_written_one_interval_after_it_arrives() -> None:
    flusher = Counted(interval=0.01, max_lines=10)
    async with running(flusher):
        flusher.line_added()
        await until(lambda: flusher.flushes == 1)
        await asyncio.sleep(0.05)
        assert flusher.flushes == 1  # nothing new: no second write


async def test_a_full_batch_is_written_at_once() -> None:
    flusher = Counted(interval=3600, max_lines=3)
    async with running(flusher):
        for _ in range(3):
            flusher.line_added()
        await until(lambda: flusher.flushes == 1)


async def test_a_failed_write_is_tried_again_without_new_lines() -> None:
    flusher = Counted(interval=0.01, max_lines=10, failures=1)
    async with running(flusher):
        flusher.line_added()
        await until(lambda: flusher.flushes == 2)
