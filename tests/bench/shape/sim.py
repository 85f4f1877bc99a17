"""The simulator serving the generated archive's calls of [--since, --until) only.

``python -m tests.bench.shape.sim --calls N --seed S --per-day D --since T --until T``
prints one JSON line once listening (base_url, token, calls, start_s) and serves
until SIGTERM. The calls are those of :func:`tests.support.shape.plan.sim_config`:
the same ids the generated archive holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from datetime import datetime

from archiver.simulator import Simulator
from tests.support.shape.plan import Shape, sim_config


async def serve(args: argparse.Namespace) -> None:
    started = time.monotonic()
    shape = Shape(args.calls, per_day=args.per_day, seed=args.seed)
    window = (datetime.fromisoformat(args.since), datetime.fromisoformat(args.until))
    sim = Simulator(sim_config(shape), window=window)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim.serve() as base:
        ready = {
            "base_url": base,
            "token": sim.config.token,
            "calls": len(sim.calls),
            "start_s": round(time.monotonic() - started, 1),
        }
        print(json.dumps(ready), flush=True)
        await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--per-day", type=int, required=True)
    p.add_argument("--since", required=True)
    p.add_argument("--until", required=True)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
