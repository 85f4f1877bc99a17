"""A storage 20 ms away: SeaweedFS behind a loopback proxy that delays every request.

The proxy is the hardening tests' fault proxy with no faults and a ``hold``
that sleeps before each request is forwarded, run in a thread of the bench
harness (whose own CPU no leg is charged with). It counts the requests, so
each leg through it also reports its storage requests per recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Literal

from tests.bench import throughput
from tests.support.faultproxy import FaultProxy, S3Request


@contextlib.contextmanager
def delaying_proxy(upstream: str, delay_s: float) -> Iterator[tuple[str, Callable[[], int]]]:
    """``(endpoint, requests so far)`` of a proxy to ``upstream`` adding ``delay_s`` to each
    request, until the block ends."""

    async def hold(request: S3Request, when: Literal["before", "after"]) -> None:
        if when == "before":
            await asyncio.sleep(delay_s)

    proxy = FaultProxy(upstream, hold=hold)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    endpoint: list[str] = []
    stop: list[asyncio.Event] = []

    async def serve() -> None:
        stop.append(asyncio.Event())
        async with proxy.serve() as url:
            endpoint.append(url)
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the delaying proxy did not start")
    try:
        yield endpoint[0], lambda: proxy.stats["requests"]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(30)
        loop.close()


LEGS = ("archiver", "rclone", "put")


def run(
    setup: throughput.Setup, latency_ms: float, reps: int, log: Callable[[str], None]
) -> dict[str, object]:
    """The archiver, rclone and the bare PUT loop, alternating, through the delaying proxy."""
    with delaying_proxy(setup.server.endpoint_url, latency_ms / 1000) as (endpoint, count):
        proxied = dataclasses.replace(
            setup,
            server=dataclasses.replace(setup.server, endpoint_url=endpoint),
            storage_requests=count,
            variants={},
            tag="latency-",
        )
        runs = throughput.run_all(proxied, reps, log, legs=LEGS)
    return throughput.summarize(runs, setup.sim.size)
