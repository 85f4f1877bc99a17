"""What a producer sees of the pipeline: where it lists into, and when to stop.

A leaf module: the producers (backfill windows, the daemon's polls, the sweep)
and the runner both import it, never each other's internals.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from archiver.sources.base import Page
from archiver.state.base import AddResult


class Intake(Protocol):
    """Where listed CDRs go: the state store, through the pipeline's bookkeeping."""

    async def take(self, page: Page) -> AddResult:
        """Remember one page of CDRs; what was new, updated or already known."""


class Producer(Protocol):
    """Something that lists CDRs into the pipeline until it is done or told to stop."""

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """List into ``into``; return when done or soon after ``stop`` is set."""


class Concurrently:
    """Several producers as one (the daemon's polls and sweeps): all run at once; the
    first to fail cancels the others and its error is the run's."""

    def __init__(self, *producers: Producer) -> None:
        self.producers = producers

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """Run every producer until all are done."""
        tasks = [asyncio.create_task(p.run(into, stop)) for p in self.producers]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Health:
    """What /healthz and /readyz read: the loop's heartbeat, the source's last
    answer, and how long the oldest transfer in flight has been going.

    The pipeline and its producers write it; the service only reads it.
    """

    def __init__(
        self,
        transfer_deadline: float | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # The clock of the heartbeat and the transfers' ages; whoever reads them
        # (the service) reads this clock too, so both sides measure alike.
        self.monotonic = monotonic
        # Monotonic time of the dispatcher's last turn.
        self.heartbeat = monotonic()
        # Wall-clock time of the last listing of the source that completed.
        self.last_source_ok: float | None = None
        # Each transfer's own deadline should end it: one older than this is stuck
        # (the dispatcher's heartbeat goes on while every worker hangs).
        self.transfer_deadline = transfer_deadline
        # A ``run`` replica that is not the leader: another process polls the source.
        self.follower = False
        self._transfers: dict[int, float] = {}
        self._ids = itertools.count()

    @contextmanager
    def transferring(self) -> Iterator[None]:
        """Around one transfer attempt: counted in flight from its start."""
        ident = next(self._ids)
        self._transfers[ident] = self.monotonic()
        try:
            yield
        finally:
            del self._transfers[ident]

    def oldest_transfer(self) -> float:
        """Seconds the longest transfer in flight has been going (0 when none)."""
        if not self._transfers:
            return 0.0
        return self.monotonic() - min(self._transfers.values())

    def in_flight(self) -> int:
        """Transfers under way."""
        return len(self._transfers)

    def near_deadline(self, fraction: float = 0.8) -> int:
        """Transfers in flight for more than ``fraction`` of their deadline (0 without one)."""
        if self.transfer_deadline is None:
            return 0
        bound = self.monotonic() - fraction * self.transfer_deadline
        return sum(1 for started in self._transfers.values() if started < bound)

    def beat(self) -> None:
        """The pipeline's loop moved."""
        self.heartbeat = self.monotonic()

    def source_reached(self) -> float:
        """A listing of the source completed; returns the wall-clock time."""
        self.last_source_ok = time.time()
        return self.last_source_ok
