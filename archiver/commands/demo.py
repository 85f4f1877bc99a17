"""``archiver demo``: the newcomer's first command.

Starts the simulated provider in-process on loopback and backfills its calls
into the configured storage (by default ``./archive``), then says where to look.

The demo keeps a state database of its own (``DEMO_STATE``, in the working
directory), reset at every start: an earlier demo's state names recordings of
a simulator that is gone, and the user's own state must never be touched.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from archiver.logs import setup_logging
from archiver.models import Provider
from archiver.settings import Settings, SourceSettings, StateSettings

if TYPE_CHECKING:
    from archiver.simulator.calls import SimCall

DEMO_STATE = Path("archiver-demo-state.sqlite3")


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser("demo", help="archive a simulated provider's calls into ./archive")
    common(p)
    p.add_argument("--calls", type=int, default=60, help="number of simulated calls (default 60)")
    p.set_defaults(handler=run)


def program() -> str:
    """How the user started this program, to be typed again as it is (hints)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or argv0.endswith(("__main__.py", "-c")):
        return f"{shlex.quote(sys.executable)} -m archiver"
    found = shutil.which("archiver")
    if found and os.path.realpath(found) == os.path.realpath(argv0):
        return "archiver"
    return shlex.quote(argv0)


def reset_state(path: Path) -> None:
    """Remove the demo's state database and its SQLite side files."""
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}-journal"):
        (path.parent / name).unlink(missing_ok=True)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the simulator, backfill all its calls, print the summary and what to try next."""
    from archiver.commands.backfill import archive_range
    from archiver.commands.check import check_storage
    from archiver.simulator import SimConfig, Simulator

    if settings.log_format == "auto":
        # Human output: log lines as text, not JSON, even when stderr is not a terminal.
        setup_logging(verbose=args.verbose, fmt="text")
    reset_state(DEMO_STATE)
    # An unwritable storage stops the demo at once, with one line.
    await check_storage(settings)
    sim = Simulator(SimConfig(calls=args.calls, max_size=600_000))
    async with sim.serve() as base_url:
        demo_settings = settings.model_copy(
            update={
                "source": SourceSettings(
                    kind=Provider.CDR_V2,
                    base_url=base_url,
                    token=SecretStr(sim.config.token),
                    timezone=sim.config.timezone,
                ),
                "state": StateSettings(url=str(DEMO_STATE)),
            }
        )
        since = sim.config.start
        # +1 s: the span's end is exclusive, and the last call may start on it.
        until = since + sim.config.span + timedelta(seconds=1)
        code = await archive_range(demo_settings, since, until)
    _hints(args, settings, sim.calls)
    return code


def _hints(args: argparse.Namespace, settings: Settings, calls: Sequence[SimCall]) -> None:
    where = settings.storage.url
    me = program()
    if args.env_file:
        me += f" --env-file {shlex.quote(args.env_file)}"
    print(f"\nrecordings are under {where}/recordings/, the manifest under {where}/manifests/")
    example = next((c for c in calls if c.has_recording), None)
    if example is not None:
        print(f"fetch one back, verified:  {me} get {example.sip_call_id} -o call.{example.fmt}")
    print(f"check them all:            {me} verify")
    print(f"find calls:                {me} search --direction inbound")
    print(f"see the demo's state:      ARCHIVER_STATE__URL={DEMO_STATE} {me} status")
