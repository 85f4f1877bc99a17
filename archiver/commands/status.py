"""``archiver status`` and ``archiver retry``: the state at a glance, and a second chance."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from archiver.errors import ConfigError
from archiver.settings import ENV_PREFIX, Settings, StateSettings
from archiver.state import describe_state, open_state_store


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the commands."""
    p = sub.add_parser("status", help="counts by state, the checkpoint, recent failures")
    common(p)
    p.add_argument("--failures", type=int, default=10, metavar="N", help="recent failures to show")
    p.set_defaults(handler=status)
    r = sub.add_parser("retry", help="queue every permanently failed recording again")
    common(r)
    r.set_defaults(handler=retry)


def existing_state(settings: StateSettings) -> str:
    """Where the state database is; ConfigError if it is a file that is not there (it
    is not created). A PostgreSQL database is opened as it is (reached or refused)."""
    if settings.is_postgres:
        return describe_state(settings)
    path = settings.path
    if not path.is_file():
        raise ConfigError(
            f"no state database at {path.absolute()}: nothing has run with this state "
            f"(check {ENV_PREFIX}STATE__URL, or run archiver backfill or run first)"
        )
    return str(path.absolute())


async def status(args: argparse.Namespace, settings: Settings) -> int:
    """Print what is read, counts, checkpoint and the most recent failures."""
    where = existing_state(settings.state)
    endpoint = f" at {settings.storage.endpoint_url}" if settings.storage.endpoint_url else ""
    print(f"state:   {where}")
    print(f"storage: {settings.storage.url}{endpoint}")
    async with open_state_store(settings.state) as state:
        counts = await state.reports.counts()
        print("recordings by state:")
        for job_state, n in counts.items():
            print(f"  {job_state.value:<14} {n}")
        if settings.source.kind is not None:
            checkpoint = await state.progress.get_checkpoint(settings.source.kind.value)
            shown = checkpoint.isoformat() if checkpoint else "none yet"
            print(f"checkpoint ({settings.source.kind.value}): {shown}")
        failures = await state.reports.failures(limit=args.failures)
        if failures:
            print(f"recent failures (newest first, up to {args.failures}):")
            for f in failures:
                print(f"  {f.updated_at.isoformat()} {f.sip_call_id}: {f.reason}")
        next_due = await state.jobs.next_due_at()
        if next_due is not None:
            print(f"next retry due: {next_due.isoformat()}")
    return 0


async def retry(args: argparse.Namespace, settings: Settings) -> int:
    """Move every failed recording back to pending."""
    existing_state(settings.state)
    async with open_state_store(settings.state) as state:
        n = await state.jobs.retry_failed()
    print(f"{n} failed recording(s) queued again; run backfill or run to transfer them")
    return 0
