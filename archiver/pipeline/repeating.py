"""The daemon's repeating producers (the polls, the sweep): one loop for both.

Both once carried a copy of this loop, and the sweep's copy lost the count of
listings a bound stopped: a sweep stopped by ``ARCHIVER_SOURCE__MAX_PAGES`` was
invisible in the metrics. One loop keeps what a failed round does the same for
every producer that repeats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum

from archiver.errors import ArchiverError, AuthenticationError, ListingLimitError
from archiver.metrics import Metrics
from archiver.waiting import wait_set

log = logging.getLogger("archiver.pipeline")


class Repeating(StrEnum):
    """Which repeating producer a round belongs to: the ``producer`` label of
    ``archiver_listings_stopped_total`` and the word its failures are logged with."""

    POLL = "poll"
    SWEEP = "sweep"


async def run_every(
    step: Callable[[], Awaitable[object]],
    interval: float,
    stop: asyncio.Event,
    *,
    producer: Repeating,
    metrics: Metrics,
) -> None:
    """Run ``step`` every ``interval`` seconds until ``stop``.

    A failed round is logged and counted (a listing a bound stopped, by bound and
    producer), and the next round tries again; a refused credential ends the loop
    (no later round can succeed without the operator).
    """
    while not stop.is_set():
        try:
            await step()
        except AuthenticationError:
            raise
        except ArchiverError as exc:
            # The next round re-reads the same range; /readyz shows the source as unreached.
            log.error("%s failed, will try again: %s", producer.value, exc)  # noqa: TRY400 - one line
            if isinstance(exc, ListingLimitError):
                metrics.listings_stopped.labels(exc.limit.value, producer.value).inc()
        await wait_set(stop, interval)
