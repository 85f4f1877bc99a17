"""Driving the daemon's producers in simulated time: a clock the test moves, and a
producer that polls (and sweeps) only when the test says so. No sleeping, no
timed assertions: the test counts requests and reads the state.

``Skewed`` is the wall clock plus what the test has moved it by, for a
simulator whose links expire and recordings turn up in real seconds: the test
moves time forward instead of sleeping until then."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from archiver.pipeline.intake import Intake

Step = Callable[[Intake, asyncio.Event], Awaitable[Any]]


@dataclass
class Clock:
    """Simulated now; ``advance`` moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class Skewed:
    """Seconds since the epoch, ahead of the wall clock by what ``advance`` added."""

    ahead: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead

    def advance(self, seconds: float) -> None:
        self.ahead += seconds


@dataclass
class Stepped:
    """A producer that runs one step (a poll, a sweep) each time ``turn`` is awaited."""

    _asked: asyncio.Queue[Step] = field(default_factory=asyncio.Queue)
    _done: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        while not stop.is_set():
            step = await self._asked.get()
            self._done.put_nowait(await step(into, stop))

    async def turn(self, step: Step) -> Any:
        """Run ``step`` inside the pipeline; what it returned."""
        self._asked.put_nowait(step)
        return await self._done.get()


async def poll_until(check: Callable[[], bool], *, within: float = 60.0, what: str = "") -> None:
    """Wait until ``check()`` is true, looking every 10 ms; AssertionError after ``within`` s
    (a bound for a machine that is slow, not a measure: no test expects it to pass)."""
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait for the pipeline's workers to make ``check`` true (the test's timeout bounds it)."""
    while not await check():
        await asyncio.sleep(0.02)
