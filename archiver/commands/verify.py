"""``archiver verify`` (audit the archive) and ``archiver reindex`` (rebuild the id index).

Both read the manifest partitions of a time range straight from the storage.
``verify`` exits 5 when any object is missing or corrupt, listing each.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import aclosing

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from archiver.errors import ConfigError
from archiver.exits import ExitCode
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.index import write_pointers
from archiver.retrieval.options import add_range, parse_range
from archiver.retrieval.records import (
    in_range,
    list_manifests,
    read_manifests,
    require_archive,
)
from archiver.retrieval.verify import VerifyReport, verify_archive
from archiver.settings import Settings
from archiver.storage import open_store

log = logging.getLogger("archiver.verify")


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the commands."""
    p = sub.add_parser(
        "verify",
        help="check every manifest entry's object exists with its size and SHA-256",
        description="Audit the archive from the storage alone. Exit 5 if any object is "
        "missing or corrupt (each is listed).",
    )
    common(p)
    add_range(p, "verify")
    p.add_argument(
        "--deep",
        action="store_true",
        help="read back and re-hash every object instead of trusting the storage's checksum",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="objects checked at once (ARCHIVER_CONCURRENCY)",
    )
    p.set_defaults(handler=verify)
    r = sub.add_parser(
        "reindex",
        help="rebuild the id index (_archiver/ids/) from the manifests",
        description="Write the index pointers get and hold need for every manifest line "
        "(those already there are left alone).",
    )
    common(r)
    add_range(r, "index")
    r.set_defaults(handler=reindex)


async def verify(args: argparse.Namespace, settings: Settings) -> int:
    """Check the range; print each problem and a summary; exit 5 on any problem."""
    since, until = parse_range(args.since, args.until, settings.source.tz)
    concurrency = settings.concurrency if args.concurrency is None else args.concurrency
    if not 1 <= concurrency <= 512:
        raise ConfigError("--concurrency: between 1 and 512")
    async with open_store(settings.storage, max_connections=concurrency + 8) as store:
        await require_archive(store)
        manifests = await list_manifests(store, since, until, settings.source.tz)
        if not manifests:
            print(f"no manifest objects in {store.description} for this range: nothing to verify")
            return 0
        with _progress() as on_progress:
            report = await verify_archive(
                store,
                manifests,
                since=since,
                until=until,
                deep=args.deep,
                concurrency=concurrency,
                on_progress=on_progress,
            )
        for problem in report.problems:
            print(problem.line())
        print(report.summary())
        # Best effort: a read-only auditor's credentials may not write records.
        await AuditTrail(store, settings.operator).record_best_effort(
            "verify",
            {"since": args.since, "until": args.until, "deep": args.deep},
            "ok" if report.ok else "problems",
            {"checked": report.checked, "problems": len(report.problems)},
        )
    return 0 if report.ok else ExitCode.CORRUPT


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[VerifyReport], None]]:
    """A rich bar on a terminal; a log line every 10 s otherwise."""
    if not sys.stderr.isatty():
        last = [time.monotonic()]

        def log_line(report: VerifyReport) -> None:
            if time.monotonic() - last[0] >= 10:
                last[0] = time.monotonic()
                log.info(
                    "verify: %d/%d manifest objects read, %d object(s) checked, %d problem(s)",
                    report.manifests_read,
                    report.manifests,
                    report.checked,
                    len(report.problems),
                )

        yield log_line
        return
    with Progress(
        TextColumn("[bold]verify"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("verify", total=None, detail="")

        def update(report: VerifyReport) -> None:
            # The total grows as manifests are read; it is exact once all are.
            bar.update(
                task,
                completed=report.checked,
                total=report.entries or None,
                detail=f"manifests {report.manifests_read}/{report.manifests}, "
                f"problems {len(report.problems)}",
            )

        yield update


async def reindex(args: argparse.Namespace, settings: Settings) -> int:
    """Write every missing index pointer of the range's manifest lines."""
    since, until = parse_range(args.since, args.until, settings.source.tz)
    async with open_store(settings.storage, max_connections=24) as store:
        await require_archive(store)
        manifests = await list_manifests(store, since, until, settings.source.tz)
        lines = created = bad = 0
        async with aclosing(read_manifests(store, manifests)) as reader:
            async for manifest in reader:
                calls = [c for c in manifest.calls if in_range(c, since, until)]
                lines += len(calls)
                bad += len(manifest.bad_lines)
                created += await write_pointers(store, calls)
    print(
        f"indexed {lines} manifest line(s) from {len(manifests)} manifest object(s): "
        f"{created} new pointer(s); {bad} unreadable line(s) skipped (see archiver verify)"
    )
    return 0
