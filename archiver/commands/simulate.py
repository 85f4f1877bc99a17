"""``archiver simulate``: serve the simulated provider for people testing a setup."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from archiver.settings import Settings


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser("simulate", help="serve the simulated provider (both APIs)")
    common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--calls", type=int, default=200, help="number of calls to serve")
    p.add_argument("--seed", type=int, default=1, help="seed of the deterministic call set")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM, then stop cleanly (exit 0)."""
    from archiver.commands.runtime import StopSignals
    from archiver.simulator import SimConfig, run_simulator

    server = asyncio.create_task(
        run_simulator(args.host, args.port, SimConfig(seed=args.seed, calls=args.calls))
    )

    def stop() -> None:
        server.cancel()

    with StopSignals() as signals:
        signals.target = stop
        try:
            await server
        except asyncio.CancelledError:
            # Our own stop signal: a clean exit. Any other cancellation goes on up.
            if not server.cancelled():
                raise
    return 0
