"""When the manifest flusher writes (pure timing rule; the write itself is counted).

Time is the test's: the flusher's sleep is a :class:`Timer` whose intervals pass
only when the test says so, so each test shows what happened before an interval
was up and what happened after, with no real time and no polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from archiver.errors import StorageError
from archiver.pipeline.flusher import ManifestFlusher


class Timer:
    """The flusher's sleep: each sleep lasts until :meth:`elapse` ends it."""

    def __init__(self) -> None:
        self.asked: list[float] = []  # every interval the flusher slept, in order
        self._pending: list[asyncio.Future[None]] = []
        self._new = asyncio.Event()

    async def sleep(self, delay: float) -> None:
        self.asked.append(delay)
        due = asyncio.get_running_loop().create_future()
        self._pending.append(due)
        self._new.set()
        try:
            await due
        finally:
            self._pending.remove(due)

    async def started(self) -> float:
        """Waits for the next sleep the flusher begins; its length."""
        await self._new.wait()
        self._new.clear()
        return self.asked[-1]

    @property
    def sleeping(self) -> int:
        return len(self._pending)

    def elapse(self) -> None:
        """Every sleep under way is over."""
        for due in self._pending:
            if not due.done():
                due.set_result(None)


class Counted(ManifestFlusher):
    """The flusher with its write replaced by a counter (and optional failures)."""

    def __init__(self, interval: float, max_lines: int, failures: int = 0) -> None:
        self.timer = Timer()
        super().__init__(
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            interval=interval,
            max_lines=max_lines,
            written=lambda n: None,
            sleep=self.timer.sleep,
        )
        self.flushes = 0
        self.failures = failures
        self.flushed: asyncio.Queue[int] = asyncio.Queue()

    async def flush(self) -> None:
        self.flushes += 1
        self.flushed.put_nowait(self.flushes)
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


async def settle() -> None:
    """Lets the flusher's task run until it waits again (no I/O, no real time)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_idle_writes_nothing() -> None:
    flusher = Counted(interval=10, max_lines=10)
    async with running(flusher):
        for _ in range(10):  # ten intervals with nothing archived
            await settle()
            flusher.timer.elapse()
        await settle()
        assert flusher.flushes == 0
        assert flusher.timer.asked == []  # no timer even started: nothing waits


async def test_a_line_is_written_one_interval_after_it_arrives() -> None:
    flusher = Counted(interval=10, max_lines=10)
    async with running(flusher):
        flusher.line_added()
        assert await flusher.timer.started() == 10
        await settle()
        assert flusher.flushes == 0  # not before the interval is up
        flusher.timer.elapse()
        assert await flusher.flushed.get() == 1  # and once it is
        for _ in range(10):  # nothing new: no second write, however long it waits
            await settle()
            flusher.timer.elapse()
        await settle()
        assert flusher.flushes == 1
        assert flusher.timer.asked == [10]


async def test_a_full_batch_is_written_at_once() -> None:
    flusher = Counted(interval=3600, max_lines=3)
    async with running(flusher):
        for _ in range(2):
            flusher.line_added()
        await settle()
        assert flusher.flushes == 0  # two lines of three: they wait for the interval
        flusher.line_added()
        assert await flusher.flushed.get() == 1  # the third fills the batch
        assert flusher.timer.asked == [3600]
        assert flusher.timer.sleeping == 0  # the interval was not what ended the wait


async def test_a_failed_write_is_tried_again_without_new_lines() -> None:
    flusher = Counted(interval=10, max_lines=10, failures=1)
    async with running(flusher):
        flusher.line_added()
        assert await flusher.timer.started() == 10
        flusher.timer.elapse()
        assert await flusher.flushed.get() == 1  # failed: storage away
        assert await flusher.timer.started() == 10  # another interval, no new line needed
        await settle()
        assert flusher.flushes == 1  # not tried again before it is up
        flusher.timer.elapse()
        assert await flusher.flushed.get() == 2
