"""``archiver demo``: the newcomer's first command.

Starts the simulated provider in-process on loopback and backfills its calls
into the configured storage (by default ``./archive``), then says where to look.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta

from pydantic import SecretStr

from archiver.models import Provider
from archiver.settings import Settings, SourceSettings


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser("demo", help="archive a simulated provider's calls into ./archive")
    common(p)
    p.add_argument("--calls", type=int, default=60, help="number of simulated calls (default 60)")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the simulator, backfill all its calls, print the summary."""
    from archiver.commands.backfill import archive_range
    from archiver.simulator import SimConfig, Simulator

    sim = Simulator(SimConfig(calls=args.calls, max_size=600_000))
    async with sim.serve() as base_url:
        demo_settings = settings.model_copy(
            update={
                "source": SourceSettings(
                    kind=Provider.CDR_V2,
                    base_url=base_url,
                    token=SecretStr(sim.config.token),
                    timezone=sim.config.timezone,
                )
            }
        )
        since = sim.config.start
        # +1 s: the span's end is exclusive, and the last call may start on it.
        until = since + sim.config.span + timedelta(seconds=1)
        code = await archive_range(demo_settings, since, until)
    where = settings.storage.url
    print(f"\nrecordings are under {where}/recordings/, the manifest under {where}/manifests/")
    example = next((c for c in sim.calls if c.has_recording), None)
    if example is not None:
        print(f"fetch one back, verified: archiver get {example.sip_call_id} -o call.{example.fmt}")
    print("check them all: archiver verify; see the state: archiver status")
    return code
