"""``archiver reconcile --since T --until T``: is every recorded call of the range archived?

Lists the provider's CDRs of the range (the backfill's windows and paging,
read-only: no transfer, no state written) and compares them with the manifest
of the same range, read from the storage alone. Each call not accounted for is
one line; then the totals per day. Exit 0 when nothing is missing, 5 otherwise,
1 (one line) when the provider fails mid-listing: never a false "complete".

``--fix`` archives the missing recordings at once, through the same pipeline
as the backfill, then reports again: what it archived is ``FIXED``. A missing
call the state believes archived (its line lost: a batch cut from the chain)
is not archived again by the pipeline: its kept line is re-proven against the
stored object and written again under a chain of its own
(:mod:`archiver.retrieval.repair`), or reported FAILED with the reason.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import aclosing
from datetime import datetime, tzinfo
from pathlib import Path

from archiver.commands.backfill import list_range, time_range
from archiver.commands.reconcile_fix import fix, relined
from archiver.errors import ArchiverError
from archiver.exits import ExitCode
from archiver.http import ApiClient, make_session
from archiver.logs import redact
from archiver.manifest.reader import in_range, list_manifests, require_archive
from archiver.manifest.rollup_read import read_manifests
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.reconcile import (
    ArchivedRef,
    Identity,
    Reconciliation,
    Report,
    iter_lines,
    write_csv,
    write_json,
)
from archiver.retrieval.scratch import open_scratch
from archiver.retrieval.tombstones import read_tombstones
from archiver.settings import Settings, require_source
from archiver.sources import Page, make_source
from archiver.state import open_state_read_only
from archiver.state.protocols import Reports
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.witness.keys import load_signer

log = logging.getLogger("archiver.reconcile")

# The scratch file's page cache, KiB. Reconcile only inserts and looks up single
# rows: a page not cached is read from the system's file cache (outside the RSS),
# about 1 s more of CPU a month than 16 MiB of cache, for 12 MiB less memory.
CACHE_KIB = 4096

FIX_HELP = (
    "archive the missing recordings at once (the backfill's pipeline, with the state "
    "database), then report again; permanently failed ones are left to 'archiver retry'"
)


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "reconcile",
        help="check every CDR with a recording in [--since, --until) is archived",
        description="List the provider's CDRs of the range (read-only) and compare them "
        "with the manifest in the storage. Reports MISSING, FAILED (with the state's reason, "
        "when there is a state database), UNKNOWN-AT-SOURCE (informational) and UNREADABLE "
        "lines, then totals per day. Exit 0 when nothing is missing, 5 otherwise, 1 if the "
        "provider fails mid-listing. Every reconcile writes an audit record.",
    )
    common(p)
    p.add_argument(
        "--since", required=True, help="start (date or ISO datetime; naive = source zone)"
    )
    p.add_argument("--until", required=True, help="end, exclusive")
    p.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="table (default): a line per finding, per day, the totals and the verdict; "
        "json: one document; csv: one table, a row per finding then per day",
    )
    p.add_argument("--fix", action="store_true", help=FIX_HELP)
    p.add_argument(
        "--key",
        type=Path,
        help="--fix: a witness key file: register the chain the repaired lines are written "
        "under with it (archiver witness register)",
    )
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Reconcile the range, optionally fix it, print the report, record it; exit 0/5."""
    require_source(settings.source)
    since, until = time_range(args, settings)
    if args.fix:
        from archiver.commands.runtime import validate_settings

        validate_settings(settings)  # before a long listing, not after it
    target = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "provider": str(settings.source.kind),  # set: require_source checked it
        "fix": args.fix,
    }
    async with open_store(settings.storage, max_connections=24) as store:
        if not args.fix:
            # Read-only, like verify: an empty storage is most likely the wrong
            # URL, and nothing (not even the audit record) is created there.
            # --fix may be what fills it.
            await require_archive(store)
        audit = AuditTrail(store, settings.operator)
        # What the comparison remembers of each call of the range is on disk.
        with open_scratch(settings.scratch_dir, "reconcile") as db:
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            try:
                rec = await reconcile(settings, store, since, until, db=db, fix=args.fix)
                report = rec.report(await state_failures(settings))
            except ArchiverError as exc:
                await audit.record_best_effort(
                    "reconcile", target, "error", {"error": redact(str(exc))}
                )
                raise
            code = 0
            if args.fix and report.to_fix:
                signer = load_signer(args.key) if args.key is not None else None
                to_archive, refused = await relined(settings, store, report.to_fix, signer)
                if to_archive:
                    code = await fix(settings, to_archive)
                # Of the calls to fix, those the manifest names now are FIXED.
                await read_archived(
                    store, since, until, settings.source.tz,
                    lambda lines: rec.mark_fixed(report, (ident for ident, _ in lines)),
                )  # fmt: skip
                report = rec.report({**await state_failures(settings), **refused})
            _print(report, args.format, fix=args.fix)
            # Disposed calls (archiver dispose) keep their line: archived, then disposed of.
            gone = [s.identity for s in (await read_tombstones(store)).stones.values()]
            disposed = rec.disposed(gone) if gone else 0
        if disposed:
            print(
                f"disposed: {disposed} archived call(s) of the range were disposed of "
                "(tombstones; archiver verify counts them DISPOSED)",
                file=sys.stderr,
            )
        result = "complete" if report.complete else "incomplete"
        totals = report.totals() | {"disposed": disposed}
        await audit.record_best_effort("reconcile", target, result, totals)
    if code:
        return code
    return ExitCode.OK if report.complete else ExitCode.CORRUPT


async def reconcile(
    settings: Settings,
    store: ObjectStore,
    since: datetime,
    until: datetime,
    *,
    db: sqlite3.Connection | None = None,
    fix: bool = False,
) -> Reconciliation:
    """The manifest of the range, then the provider's listing of it, compared (in ``db``,
    the command's scratch file; ``fix``: keep the missing calls' records to archive)."""
    tz = settings.source.tz
    provider = str(settings.source.kind)  # set: run's require_source checked it
    rec = Reconciliation(provider, since, until, tz, db=db, keep_records=fix)
    rec.bad_manifest_lines = await read_archived(store, since, until, tz, rec.add_archived)
    async with make_session(settings.source) as session:
        source = make_source(settings.source, ApiClient(session, settings.source))
        listed, last = 0, time.monotonic()
        async for page in list_range(source, since, until, settings):
            rec.add_page(page.records, page.skipped)
            listed += len(page.records)
            if time.monotonic() - last >= 10:  # a month of CDRs takes a while: show it moving
                last = time.monotonic()
                log.info("reconcile: %d CDR(s) listed, up to %s", listed, _last_start(page))
    log.info("reconcile: %d CDR(s) listed in the range", listed)
    return rec


def _last_start(page: Page) -> str:
    return page.records[-1].started_at.isoformat() if page.records else "-"


async def read_archived(
    store: ObjectStore,
    since: datetime,
    until: datetime,
    tz: tzinfo,
    into: Callable[[list[tuple[Identity, ArchivedRef]]], None],
) -> int:
    """Every manifest line of calls started in [since, until), handed to ``into`` a
    manifest object at a time; returns how many lines could not be read.

    The one place reconcile reads the manifest.
    """
    bad = 0
    manifests = await list_manifests(store, since, until, tz)
    async with aclosing(read_manifests(store, manifests)) as reader:
        async for manifest in reader:
            bad += len(manifest.bad_lines)
            into(
                [
                    (call.identity, ArchivedRef(call.sip_call_id, call.call_started_at,
                                                call.manifest_key))
                    for call in manifest.calls
                    if in_range(call, since, until)
                ]
            )  # fmt: skip
    return bad


async def state_failures(settings: Settings) -> dict[Identity, str]:
    """The state's reasons for permanently failed calls; empty without a state database.

    Opened read-only: a reconcile without --fix writes nothing to the state.
    """
    async with open_state_read_only(settings.state) as state:
        return {} if state is None else await _failures(state.reports)


async def _failures(reports: Reports) -> dict[Identity, str]:
    # The kind first (a value to sort and count by), then the words the state kept.
    return {(f.provider, f.cdr_id): f"{f.kind.value}: {f.reason}" for f in await reports.failures()}


def _print(report: Report, fmt: str, *, fix: bool) -> None:
    # Written as read from the scratch tables: a finding at a time.
    if fmt == "json":
        write_json(report, sys.stdout, {"fix": "archived at once" if fix else None})
    elif fmt == "csv":
        write_csv(report, sys.stdout)
    else:
        print(
            f"reconcile {report.provider} [{report.since.isoformat()}, {report.until.isoformat()})"
        )
        for line in iter_lines(report):
            print(line)
    if report.bad_manifest_lines:
        print(
            f"archiver: {report.bad_manifest_lines} unreadable manifest line(s): "
            "run archiver verify",
            file=sys.stderr,
        )
