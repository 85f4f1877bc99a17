"""Waiting for an event with a deadline, without losing a cancellation.

``asyncio.wait_for`` on Python 3.11 returns normally when the task is
cancelled in the same turn of the loop as the awaited event is set (CPython
gh-86296): the cancellation is lost. In the pipeline that loses a second
signal (the hard stop) that arrives as the last transfer finishes, or keeps
a loop running that was told to stop. ``asyncio.timeout`` does not have
that race, so every "wait for the stop event, or N seconds" goes through
:func:`wait_set`.
"""

from __future__ import annotations

import asyncio
import contextlib


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it is set.

    A cancellation of the caller always propagates, whatever else happens in
    the same turn of the event loop.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()
