"""``archiver simulate``: serve the simulated provider for people testing a setup."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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
            print(settings_block(sim, base, args), flush=True)
            while not stop.is_set():
                timeout = args.new_every if args.new_every > 0 else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=timeout)
                if not stop.is_set():
                    sim.add_calls(1)
    return 0


def settings_block(sim: Any, base: str, args: argparse.Namespace) -> str:
    """What ``simulate`` prints: the calls it serves (when, in which zone), and a
    settings block to paste into ``.env`` with the command that archives them."""
    config = sim.config
    start = config.start.astimezone(config.tz)
    end = start + config.span
    # The backfill's range: whole days around the calls, in the source's zone.
    since = start.date()
    until = (end - timedelta(microseconds=1)).date() + timedelta(days=1)
    arriving = f"; a new one every {args.new_every:g} s" if args.new_every > 0 else ""
    return (
        f"Simulated provider listening on {base}\n"
        f"  {len(sim.calls)} calls (seed {args.seed}), started between "
        f"{start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} {config.timezone}{arriving}\n"
        f"  epacific: api_key {config.api_key}  api_secret {config.api_secret}\n"
        f"  control:  GET {base}/_sim/stats, POST {base}/_sim/faults\n"
        "\n"
        "Settings to paste into .env (the cdr_v2 API; for epacific, set the kind to epacific\n"
        "and give the api_key and api_secret above instead of the token):\n"
        "\n"
        "ARCHIVER_SOURCE__KIND=cdr_v2\n"
        f"ARCHIVER_SOURCE__BASE_URL={base}\n"
        f"ARCHIVER_SOURCE__TOKEN={config.token}\n"
        "\n"
        f"then: archiver check && archiver backfill --since {since} --until {until}"
        + ("\n  or: archiver run" if args.recent else "")
    )
