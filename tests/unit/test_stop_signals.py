"""StopSignals: first signal graceful (even before there is a target), second at once."""

import asyncio
import os
import signal

from archiver.commands.runtime import StopSignals
from tests.support.stepped import poll_until


async def test_a_signal_before_the_target_exists_is_applied_when_it_is_set():
    stopped = asyncio.Event()
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        await poll_until(lambda: signals.seen == 1, what="the signal handled")
        assert not stopped.is_set()
        signals.target = stopped.set
        assert stopped.is_set()


async def test_the_second_signal_cancels_the_task():
    stopped = asyncio.Event()

    async def command() -> str:
        with StopSignals() as signals:
            signals.target = stopped.set
            os.kill(os.getpid(), signal.SIGINT)
            await poll_until(stopped.is_set, what="the first signal stops gracefully")
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.Event().wait()  # for ever, unless the second signal cancels it
        return "not cancelled"

    task = asyncio.create_task(command())
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert task.cancelled()
