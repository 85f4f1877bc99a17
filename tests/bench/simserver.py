"""The simulated provider in a process of its own, serving N recordings of one size.

A process of its own, so that serving the recordings neither slows the harness
nor is counted in what the harness measures. It prints one JSON line
(``{"base_url": ..., "calls": ..., "since": ..., "until": ...}``) once listening,
and serves until SIGTERM/SIGINT.

    python -m tests.bench.simserver --calls 2000 --size 524288
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from datetime import UTC, datetime, timedelta

from archiver.simulator import SimConfig, Simulator


def bench_config(calls: int, size: int, seed: int = 1, *, recent: bool = False) -> SimConfig:
    """Every call has a recording of exactly ``size`` bytes; calls spread over 6 hours
    of 17 Feb 2021, or (``recent``: for ``archiver run``, whose polls look back an
    hour) over the 30 minutes that ended 10 minutes ago (in its lookback for 20 more)."""
    if recent:
        return SimConfig(
            seed=seed,
            calls=calls,
            fixed_size=size,
            recording_fraction=1.0,
            start=datetime.now(UTC) - timedelta(minutes=40),
            span=timedelta(minutes=30),
        )
    return SimConfig(
        seed=seed,
        calls=calls,
        fixed_size=size,
        recording_fraction=1.0,
        span=timedelta(hours=6),
    )


async def serve(calls: int, size: int, seed: int, recent: bool = False) -> None:
    config = bench_config(calls, size, seed, recent=recent)
    sim = Simulator(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim.serve() as base:
        start = config.start.replace(tzinfo=None)
        ready = {
            "base_url": base,
            "calls": len(sim.calls),
            # Naive local times, as the archiver's --since/--until read them.
            "since": start.isoformat(sep=" "),
            "until": (start + config.span).isoformat(sep=" "),
            "token": config.token,
        }
        print(json.dumps(ready), flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--recent", action="store_true", help="calls of the last hour")
    args = parser.parse_args()
    asyncio.run(serve(args.calls, args.size, args.seed, args.recent))


if __name__ == "__main__":
    main()
