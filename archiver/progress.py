"""Progress while a run goes: a rich bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from archiver.logs import through_live_display
from archiver.pipeline.stats import RunStats

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

log = logging.getLogger("archiver.progress")


def _mib(n: int) -> float:
    return n / (1024 * 1024)


def describe(stats: RunStats) -> str:
    """One line of where the run stands."""
    rate = _mib(stats.bytes) / stats.elapsed if stats.elapsed > 0 else 0.0
    return (
        f"windows {stats.windows_done + stats.windows_skipped}/{stats.windows_total}, "
        f"listed {stats.listed}, archived {stats.archived}, failed {stats.failed}, "
        f"waiting {stats.not_ready}, {_mib(stats.bytes):.1f} MiB ({rate:.1f} MiB/s), "
        f"in flight {stats.in_flight}"
    )


async def report(stats: RunStats, interval: float = 10.0, force_plain: bool = False) -> None:
    """Show progress until cancelled."""
    if sys.stderr.isatty() and not force_plain:
        await _rich(stats)
    else:
        await _plain(stats, interval)


async def _plain(stats: RunStats, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        log.info("progress: %s", describe(stats))


async def _rich(stats: RunStats) -> None:
    # Imported here: a run without a terminal (a service, a pipe) never loads rich.
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    with (
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar,
        through_live_display(bar.console),
    ):
        windows = bar.add_task("windows", total=stats.windows_total or None, detail="")
        recordings = bar.add_task("recordings", total=None, detail="")
        update: Callable[[TaskID, RunStats], None] = _updater(bar, windows, recordings)
        try:
            while True:
                update(windows, stats)
                await asyncio.sleep(0.25)
        finally:
            update(windows, stats)


def _updater(
    bar: Progress, windows: TaskID, recordings: TaskID
) -> Callable[[TaskID, RunStats], None]:
    def update(_: TaskID, stats: RunStats) -> None:
        rate = _mib(stats.bytes) / stats.elapsed if stats.elapsed > 0 else 0.0
        bar.update(
            windows,
            completed=stats.windows_done + stats.windows_skipped,
            detail=f"listed {stats.listed} CDRs",
        )
        with_recording = stats.listed - stats.new_without_recording
        bar.update(
            recordings,
            completed=stats.archived + stats.failed,
            total=max(with_recording, stats.archived + stats.failed) or None,
            detail=f"{_mib(stats.bytes):.1f} MiB, {rate:.1f} MiB/s, failed {stats.failed}",
        )

    return update
