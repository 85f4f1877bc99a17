"""``archiver status`` and ``archiver retry``: the state at a glance, and a second chance."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from archiver.errors import ConfigError, UsageError
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
    p.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text (default), or json: one object with every field, for scripts",
    )
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
    """Print what is read, counts, checkpoint and the most recent failures
    (``--format json``: one JSON object, for scripts and monitoring)."""
    if not 0 <= args.failures <= 10_000:
        raise UsageError("--failures: between 0 and 10000")
    where = existing_state(settings.state)
    report: dict[str, Any] = {
        "state": where,
        "storage": settings.storage.url,
        "endpoint_url": settings.storage.endpoint_url,
    }
    async with open_state_store(settings.state) as state:
        report["recordings"] = {k.value: n for k, n in (await state.reports.counts()).items()}
        report["provider"] = settings.source.kind.value if settings.source.kind else None
        if settings.source.kind is not None:
            checkpoint = await state.progress.get_checkpoint(settings.source.kind.value)
            report["checkpoint"] = checkpoint.isoformat() if checkpoint else None
        report["recent_failures"] = [
            {
                "at": f.updated_at.isoformat(),
                "provider": f.provider,
                "cdr_id": f.cdr_id,
                "sip_call_id": f.sip_call_id,
                "kind": f.kind.value,
                "attempts": f.attempts,
                "reason": f.reason,
            }
            for f in await state.reports.failures(limit=args.failures)
        ]
        next_due = await state.jobs.next_due_at()
        report["next_retry_due"] = next_due.isoformat() if next_due else None
    if args.format == "json":
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        _print_text(report, args.failures)
    return 0


def _print_text(report: dict[str, Any], limit: int) -> None:
    endpoint = f" at {report['endpoint_url']}" if report["endpoint_url"] else ""
    print(f"state:   {report['state']}")
    print(f"storage: {report['storage']}{endpoint}")
    print("recordings by state:")
    for job_state, n in report["recordings"].items():
        print(f"  {job_state:<14} {n}")
    if report["provider"] is not None:
        print(f"checkpoint ({report['provider']}): {report['checkpoint'] or 'none yet'}")
    if report["recent_failures"]:
        print(f"recent failures (newest first, up to {limit}):")
        for f in report["recent_failures"]:
            print(f"  {f['at']} {f['sip_call_id']}: {f['reason']}")
    if report["next_retry_due"] is not None:
        print(f"next retry due: {report['next_retry_due']}")


async def retry(args: argparse.Namespace, settings: Settings) -> int:
    """Move every failed recording back to pending."""
    existing_state(settings.state)
    async with open_state_store(settings.state) as state:
        n = await state.jobs.retry_failed()
    print(f"{n} failed recording(s) queued again; run backfill or run to transfer them")
    return 0
