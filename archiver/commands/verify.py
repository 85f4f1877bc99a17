"""``archiver verify`` (audit the archive), ``archiver reindex`` (rebuild the id index) and
``archiver seal`` (chain the manifest objects written before the chain).

Both read the manifest partitions of a time range straight from the storage.
``verify`` exits 5 unless everything was proven intact, listing each problem.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from archiver.commands.time_range import add_range, parse_range
from archiver.errors import UsageError
from archiver.exits import ExitCode
from archiver.manifest.reader import in_range, list_manifests, read_manifests, require_archive
from archiver.manifest.seal import seal
from archiver.manifest.stamps import stamp_head
from archiver.manifest.writer import read_head
from archiver.retrieval.assurance import assurance_line
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.history_audit import History, audit_history
from archiver.retrieval.index import write_pointers
from archiver.retrieval.manifest_listing import list_into
from archiver.retrieval.orphans import OrphanRule
from archiver.retrieval.range_audit import RangeChainAudit
from archiver.retrieval.sampling import Sample
from archiver.retrieval.scratch import open_scratch
from archiver.retrieval.stamp_audit import StampReport, audit_stamps
from archiver.retrieval.verify import VerifyReport, verify_archive
from archiver.retrieval.verify_report import LIST_UNPROVEN
from archiver.retrieval.witness_audit import WitnessReport, audit_witnesses
from archiver.settings import Settings, TimestampSettings
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.timestamping import open_stamper, verify_anchors
from archiver.witness.checkpoint import ChainState
from archiver.witness.keys import load_signer, load_verifiers
from archiver.witness.registry import register_writer

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
    add_range(p, "verify calls started")
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
        "--witness",
        action="append",
        metavar="PLACE",
        help="a witnessed checkpoint file, or a folder or s3:// prefix of them (repeatable): "
        "the chain must extend every one (needs --witness-key)",
    )
    p.add_argument(
        "--witness-key",
        action="append",
        metavar="VKEY",
        help="a trusted witness verifier key, or a file of them (repeatable); with it every "
        "writer must be registered",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="objects checked at once (ARCHIVER_CONCURRENCY)",
    )
    p.add_argument(
        "--sample",
        metavar="N|P%",
        help="check the chain and every manifest object in full, but only a random sample of "
        "the recordings: N of them, or a share (2%%); states the confidence it gives",
    )
    p.add_argument(
        "--seed",
        metavar="TEXT",
        help="the sample's seed (printed by every sampled run): the same seed, the same sample",
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
    add_range(r, "index calls started")
    r.set_defaults(handler=reindex)
    s = sub.add_parser(
        "seal",
        help="chain the manifest objects written before the chain (rewrites none of them)",
        description="Give every manifest object no chain link records, and whose lines all "
        "predate recorded proof, a link in a new chain under _archiver/chain/, so verify can "
        "prove none of them goes missing or is altered from now on.",
    )
    common(s)
    s.add_argument(
        "--key",
        type=Path,
        help="a witness key file: register the seal's chain with it (archiver witness register)",
    )
    s.set_defaults(handler=seal_command)


async def verify(args: argparse.Namespace, settings: Settings) -> int:
    """Check the range; print each problem and a summary; exit 5 on any problem."""
    since, until = parse_range(args.since, args.until, settings.source.tz)
    concurrency = settings.concurrency if args.concurrency is None else args.concurrency
    if not 1 <= concurrency <= 512:
        raise UsageError("--concurrency: between 1 and 512")
    if args.seed is not None and args.sample is None:
        raise UsageError("--seed: only with --sample")
    sample = Sample.parse(args.sample, args.seed) if args.sample is not None else None
    async with (
        open_store(settings.storage, max_connections=concurrency + 8) as store,
        _scratch(settings.scratch_dir) as scratch,
    ):
        await require_archive(store)
        # On the scratch file, a row each: not a StoredObject each held for the whole run.
        manifests = await list_into(
            scratch, store, since, until, settings.source.tz, text_only=True
        )
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
                sample=sample,
                scratch_dir=settings.scratch_dir,
                # The latest archived_at of each manifest object: for the tokens' check only.
                keep_archived=_stamps_checked(settings.timestamp),
                scratch=scratch,  # open until the chain's last reader below is done
            )
        ranged = isinstance(report.chains, RangeChainAudit)  # only the range's links walked
        stamps = await _check_stamps(store, settings.timestamp, report)
        witnesses = await _check_witnesses(store, args, settings, report)
        history = (
            History(versioning="unknown")
            if ranged
            else await audit_history(
                store,
                report.chains.state if report.chains else ChainState(),
                settings.storage.object_lock_mode,
            )
        )
        report.problems += history.problems
        # One line per thing wrong: the same key and kind found by two checks is said once.
        unique = {(p.kind, p.where, p.detail): p for p in report.problems}
        report.problems = sorted(unique.values(), key=lambda p: (p.where, p.kind.value))
        if not manifests and report.ok:
            print(f"no manifest objects in {store.description} for this range: nothing to verify")
            return 0
        for problem in report.problems:
            print(problem.line())
        if report.unlisted:
            print(
                f"UNPROVEN: {report.unlisted} more object(s) unproven, not listed (the first "
                f"{LIST_UNPROVEN} are; a storage without checksums needs their bytes re-hashed)"
            )
        for stamp in stamps.writers:
            print(stamp.line())
        if report.chains is not None and (rolled := report.chains.rollups.note()):
            print(rolled)
        if isinstance(report.chains, RangeChainAudit):
            print(report.chains.range_note.line())
        print(witnesses.line())
        summary = report.summary()
        if sample is not None:
            # A sample proves no recording it did not check: never "all intact".
            summary = summary.replace("all intact", "nothing found wrong in the sample", 1)
        print(summary)
        if sample is not None:
            print(sample.line(report.checked, report.entries, report.sampled_bad(sample)))
        print(
            assurance_line(
                s3=settings.storage.is_s3,
                versioning=history.versioning,
                lock_mode=history.object_lock,
                tokens_checked=stamps.checked if stamps.checked or stamps.writers else None,
                checkpoints=witnesses.checkpoints,
                newest=witnesses.latest,
                registration=bool(witnesses.keys),
            )
        )
        # Best effort: a read-only auditor's credentials may not write records.
        await AuditTrail(store, settings.operator).record_best_effort(
            "verify",
            {
                "since": args.since,
                "until": args.until,
                "deep": args.deep,
                "no_rehash": args.no_rehash,
                "sample": args.sample,
                "seed": sample.seed if sample is not None else None,
            },
            "ok" if report.ok else "problems",
            {"checked": report.checked, "problems": len(report.problems) + report.unlisted},
        )
    # "Nothing found wrong, but not all proven" is not "intact": exit 5 too (the contract).
    return 0 if report.proven else ExitCode.CORRUPT


async def _check_witnesses(
    store: ObjectStore, args: argparse.Namespace, settings: Settings, report: VerifyReport
) -> WitnessReport:
    """The chain against the witnessed checkpoints, and the writers' registrations."""
    verifiers = load_verifiers(args.witness_key)
    places: list[str] = args.witness or []
    if places and not verifiers:
        raise UsageError("--witness: give the witness's verifier key with --witness-key")
    chains = report.chains
    if chains is None or isinstance(chains, RangeChainAudit):  # no whole walk to compare
        return WitnessReport()
    found = await audit_witnesses(
        store, chains.state, chains.writer_ids, places, verifiers, settings.storage
    )
    report.problems += found.problems
    return found


def _stamps_checked(settings: TimestampSettings) -> bool:
    """Whether verify checks the links' trusted timestamps (they are configured)."""
    return settings.url is not None or settings.ca_bundle is not None


async def _check_stamps(
    store: ObjectStore, settings: TimestampSettings, report: VerifyReport
) -> StampReport:
    """Every link's trusted timestamp from each writer's first stamped link on, when
    timestamps are configured; each problem goes into the report (exit 5)."""
    if report.chains is None or not _stamps_checked(settings):
        return StampReport()
    if isinstance(report.chains, RangeChainAudit):
        return StampReport()  # the tokens go with the whole walk: a full verify
    found = await audit_stamps(store, report.chains, verify_anchors(settings), report.archived)
    report.problems += found.problems
    return found


@contextlib.asynccontextmanager
async def _scratch(directory: Path | None) -> AsyncIterator[sqlite3.Connection]:
    """The verify's scratch file, kept open while its report (its links) is read."""
    with open_scratch(directory, "verify") as db:
        yield db


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
                    len(report.problems) + report.unlisted,
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
                f"problems {len(report.problems) + report.unlisted}",
            )

        yield update


async def seal_command(args: argparse.Namespace, settings: Settings) -> int:
    """Seal the unchained legacy manifest objects; say what was done."""
    signer = load_signer(args.key) if args.key is not None else None
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
        if signer is not None and done.writer is not None:
            origin = "".join("_" if c.isspace() else c for c in settings.storage.url)
            key, _ = await register_writer(store, signer, origin, done.writer, datetime.now(UTC))
            print(f"registered the sealed chain {done.writer} ({key})")
    if done.writer is None:
        print(f"nothing to seal: {done.chained} manifest object(s) already under a chain")
    else:
        print(
            f"sealed {done.sealed} manifest object(s) under chain {done.writer}; "
            f"{done.chained} already under a chain"
        )
    if done.recorded:
        print(
            "recorded the archive's seal: the legacy manifest objects sealed now or before "
            "are the only ones any later seal will chain"
        )
    for key in done.refused:
        print(
            f"OUT-OF-CHAIN {key}: a legacy-format manifest object that appeared after the "
            f"archive was sealed ({', '.join(done.sealed_by)}): planted history, not sealed"
        )
    for key in done.skipped:
        print(
            f"not sealed: {key} has lines with proof but no chain link (run the archiver "
            "that wrote it again, or see archiver verify)"
        )
    return ExitCode.CORRUPT if done.refused else 0


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
