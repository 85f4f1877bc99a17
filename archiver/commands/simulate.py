"""``archiver simulate``: serve the simulated provider for people testing a setup."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from archiver.errors import ListenError
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
    p.add_argument(
        "--recent",
        action="store_true",
        help="calls from the last hour (for `archiver run`), instead of 17 Feb 2021",
    )
    p.add_argument(
        "--new-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a new call arrives this often (0: never)",
    )
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM, then stop cleanly (exit 0)."""
    from archiver.commands.runtime import StopSignals
    from archiver.simulator import SimConfig, Simulator

    config = SimConfig(seed=args.seed, calls=args.calls)
    if args.recent:
        config = SimConfig(
            seed=args.seed,
            calls=args.calls,
            start=datetime.now(UTC) - timedelta(hours=1),
            span=timedelta(minutes=55),
        )
    sim = Simulator(config)
    stop = asyncio.Event()
    with StopSignals() as signals:
        signals.target = stop.set
        async with contextlib.AsyncExitStack() as stack:
            try:
                base = await stack.enter_async_context(sim.serve(args.host, args.port))
            except OSError as exc:
                raise ListenError(args.host, args.port, exc, "--host/--port") from None
            print(f"Simulated provider listening on {base}", flush=True)
            print(f"  {len(sim.calls)} calls (seed {args.seed})", flush=True)
            print(f"  cdr_v2:   base URL {base}  token {config.token}", flush=True)
            print(
                f"  epacific: base URL {base}  api_key {config.api_key}  "
                f"api_secret {config.api_secret}",
                flush=True,
            )
            print(f"  control:  GET {base}/_sim/stats, POST {base}/_sim/faults", flush=True)
            while not stop.is_set():
                timeout = args.new_every if args.new_every > 0 else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=timeout)
                if not stop.is_set():
                    sim.add_calls(1)
    return 0
