"""wait_set: the event, the deadline, and a cancellation that is never lost."""

from __future__ import annotations

import asyncio

import pytest

from archiver.waiting import wait_set


async def test_a_cancel_in_the_turn_the_event_is_set_is_not_lost() -> None:
    # asyncio.wait_for on Python 3.11 returns normally here (CPython gh-86296):
    # a second signal arriving as the last transfer ends was ignored.
    event = asyncio.Event()
    waiter = asyncio.create_task(wait_set(event, 10))
    await asyncio.sleep(0)  # the waiter is waiting
    event.set()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_the_event_set_returns_true_and_the_deadline_false() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 10) is True
