"""``archiver verify`` (audit the archive), ``archiver reindex`` (rebuild the id index) and
``archiver seal`` (chain the manifest objects written before the chain).

Both read the manifest partitions of a time range straight from the storage.
``verify`` exits 5 unless everything was proven intact, listing each problem.
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

from archiver.commands.time_range import add_range, parse_range
from archiver.errors import UsageError
from archiver.exits import ExitCode
from archiver.manifest.reader import in_range, list_manifests, read_manifests, require_archive
from archiver.manifest.seal import seal
from archiver.manifest.stamps import HeadStamp, check_head_stamps, stamp_head
from archiver.manifest.writer import read_head
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.index import write_pointers
from archiver.retrieval.orphans import OrphanRule
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.verify import VerifyReport, verify_archive
from archiver.settings import Settings, TimestampSettings
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.timestamping import TokenState, open_stamper, verify_anchors

log = logging.getLogger("archiver.verify")


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the commands."""
    p = sub.add_parser(
        "verify",
        help="prove every manifest entry's object, the manifest chain and the id index",
        description="Audit the archive from the storage alone. Exit 5 unless every object "
        "was proven intact: each object missing, altered, corrupt or unproven, and each "
        "manifest object missing, altered, hidden or out of the chain, is listed.",
    )
    common(p)
    add_range(p, "verify")
    p.add_argument(
        "--deep",
        action="store_true",
        help="read back and re-hash every object instead of trusting the storage's checksum",
    )
    p.add_argument(
        "--no-rehash",
        action="store_true",
        help="list objects the storage keeps no checksum of as UNPROVEN instead of reading them "
        "(local files, legacy multipart uploads)",
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
        help="write id-index pointers (_archiver/ids/) from the manifests (optional)",
        description="Write an index pointer for every manifest line (those already there "
        "are left alone). get and hold no longer need them: they build a local index of "
        "the manifests (ARCHIVER_CONSOLE__INDEX_PATH); pointers present are checked.",
    )
    common(r)
    add_range(r, "index")
    r.set_defaults(handler=reindex)
    s = sub.add_parser(
        "seal",
        help="chain the manifest objects written before the chain (rewrites none of them)",
        description="Give every manifest object no chain link records, and whose lines all "
        "predate recorded proof, a link in a new chain under _archiver/chain/, so verify can "
        "prove none of them goes missing or is altered from now on.",
    )
    common(s)
    s.set_defaults(handler=seal_command)


async def verify(args: argparse.Namespace, settings: Settings) -> int:
    """Check the range; print each problem and a summary; exit 5 on any problem."""
    since, until = parse_range(args.since, args.until, settings.source.tz)
    concurrency = settings.concurrency if args.concurrency is None else args.concurrency
    if not 1 <= concurrency <= 512:
        raise UsageError("--concurrency: between 1 and 512")
    async with open_store(settings.storage, max_connections=concurrency + 8) as store:
        await require_archive(store)
        manifests = await list_manifests(store, since, until, settings.source.tz)
        with _progress() as on_progress:
            # Run even with no manifest object listed: the chain knows which must exist.
            report = await verify_archive(
                store,
                manifests,
                since=since,
                until=until,
                tz=settings.source.tz,
                deep=args.deep,
                rehash=not args.no_rehash,
                concurrency=concurrency,
                on_progress=on_progress,
                orphans=OrphanRule.of(
                    settings.storage.key_template,
                    settings.manifest_interval,
                    settings.orphan_margin,
                ),
            )
        stamps = await _check_stamps(store, settings.timestamp, report)
        if not manifests and report.ok:
            print(f"no manifest objects in {store.description} for this range: nothing to verify")
            return 0
        for problem in report.problems:
            print(problem.line())
        for stamp in stamps:
            print(stamp.line())
        print(report.summary())
        # Best effort: a read-only auditor's credentials may not write records.
        await AuditTrail(store, settings.operator).record_best_effort(
            "verify",
            {
                "since": args.since,
                "until": args.until,
                "deep": args.deep,
                "no_rehash": args.no_rehash,
            },
            "ok" if report.ok else "problems",
            {"checked": report.checked, "problems": len(report.problems)},
        )
    return 0 if report.ok else ExitCode.CORRUPT


async def _check_stamps(
    store: ObjectStore, settings: TimestampSettings, report: VerifyReport
) -> list[HeadStamp]:
    """Each chain head's trusted timestamp, when timestamps are configured; an invalid
    token is a problem of the report (exit 5), a missing one only a line."""
    if settings.url is None and settings.ca_bundle is None:
        return []
    stamps = await check_head_stamps(store, verify_anchors(settings))
    for stamp in stamps:
        if stamp.check.state is TokenState.INVALID:
            report.problems.append(
                Problem(ProblemKind.TIMESTAMP, stamp.check.key, stamp.check.reason or "invalid")
            )
    return [s for s in stamps if s.check.state is not TokenState.INVALID]


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


async def seal_command(args: argparse.Namespace, settings: Settings) -> int:
    """Seal the unchained legacy manifest objects; say what was done."""
    async with (
        open_store(settings.storage, max_connections=16) as store,
        open_stamper(settings.timestamp) as stamper,
    ):
        await require_archive(store)
        done = await seal(store)
        head = await read_head(store, done.writer) if done.writer is not None else None
        if stamper is not None and head is not None:
            stamped = await stamp_head(store, stamper, head)
            if stamped is not None:
                print(f"time-stamped the sealed chain at {stamped.describe_time()}")
    if done.writer is None:
        print(f"nothing to seal: {done.chained} manifest object(s) already under a chain")
    else:
        print(
            f"sealed {done.sealed} manifest object(s) under chain {done.writer}; "
            f"{done.chained} already under a chain"
        )
    for key in done.skipped:
        print(
            f"not sealed: {key} has lines with proof but no chain link (run the archiver "
            "that wrote it again, or see archiver verify)"
        )
    return 0


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
