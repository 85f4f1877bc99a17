"""``archiver rollup``: each writer's small manifest objects copied into rollups.

See :mod:`archiver.manifest.rollup` (the format) and
:mod:`archiver.manifest.rollup_write` (how, and why a broken chain is never
rolled up). The ``run`` leader does the same for its own writer
(:mod:`archiver.pipeline.rollups`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime

from archiver.exits import ExitCode, fail
from archiver.manifest.reader import require_archive
from archiver.manifest.rollup_walk import ChainBreak, manifest_writers
from archiver.manifest.rollup_write import RollupWriter, WriterRollups
from archiver.retrieval.audit import AuditTrail
from archiver.settings import Settings
from archiver.storage import open_store
from archiver.storage.layout import ROLLUP_PREFIX


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "rollup",
        help=f"copy each writer's small manifest objects into rollups under {ROLLUP_PREFIX}",
    )
    common(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check each chain and say what would be rolled up; write nothing",
    )
    p.set_defaults(handler=rollup_command)


def _said(done: WriterRollups, dry_run: bool) -> list[str]:
    if done.skipped is not None:
        return [f"writer {done.writer}: not rolled up ({done.skipped})"]
    if not done.records:
        return [f"writer {done.writer}: nothing due"]
    verb = "would write" if dry_run else "wrote"
    lines = []
    for record in done.records:
        how = " (an unfinished rollup, finished)" if record.n == done.finished else ""
        lines.append(
            f"writer {done.writer}: {verb} rollup {record.n} ({record.key}){how}: links "
            f"{record.first_seq}..{record.last_seq}, {record.objects} manifest object(s), "
            f"{record.lines} line(s), {record.data_size} bytes, "
            f"{record.first_date}..{record.last_date}"
        )
    return lines


async def rollup_command(args: argparse.Namespace, settings: Settings) -> int:
    """Roll up every writer's chain; exit 5 naming each chain that does not walk cleanly."""
    breaks: list[ChainBreak] = []
    written = objects = 0
    async with open_store(settings.storage, max_connections=16) as store:
        await require_archive(store)
        for writer in await manifest_writers(store):
            try:
                done = await RollupWriter(store, writer, now=lambda: datetime.now(UTC)).run(
                    dry_run=args.dry_run
                )
            except ChainBreak as exc:
                breaks.append(exc)
                print(f"writer {writer}: NOT rolled up: the chain is broken at {exc}")
                continue
            for line in _said(done, args.dry_run):
                print(line)
            written += len(done.records)
            objects += done.objects
        if not args.dry_run:
            await AuditTrail(store, settings.operator).record(
                "rollup",
                {},
                "broken" if breaks else "ok",
                {"rollups": written, "objects": objects, "broken": len(breaks)},
            )
    verb = "would cover" if args.dry_run else "cover"
    print(f"{written} rollup(s) {verb} {objects} manifest object(s)")
    if breaks:
        return fail(
            ExitCode.CORRUPT,
            f"{len(breaks)} writer(s) not rolled up: a chain does not walk cleanly from its "
            f"head (first: {breaks[0]}); run archiver verify",
        )
    return 0
