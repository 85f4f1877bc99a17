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
import sys
import time
from collections.abc import Callable, Collection
from contextlib import aclosing
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from archiver.commands.backfill import list_range, time_range
from archiver.errors import ArchiverError
from archiver.exits import ExitCode
from archiver.http import ApiClient, make_session
from archiver.logs import redact
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import in_range, list_manifests, require_archive
from archiver.manifest.rollup_read import read_manifests
from archiver.models import CallRecord
from archiver.pipeline.producers import GivenCalls
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.reconcile import (
    ArchivedRef,
    Identity,
    Reconciliation,
    Report,
    to_csv,
    to_json,
    to_lines,
)
from archiver.retrieval.repair import line_of, repair_lines
from archiver.retrieval.tombstones import read_tombstones
from archiver.settings import Settings, require_source
from archiver.sources import Page, make_source
from archiver.state import open_state_read_only
from archiver.state.protocols import Reports
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.witness.keys import load_signer
from archiver.witness.note import Signer
from archiver.witness.registry import register_writer

log = logging.getLogger("archiver.reconcile")

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
        try:
            rec = await reconcile(settings, store, since, until)
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
            archived, _ = await archived_in_range(store, since, until, settings.source.tz)
            now = {i for i in _identities(report.to_fix) if i in archived}
            report = rec.report({**await state_failures(settings), **refused}, archived_now=now)
        _print(report, args.format, fix=args.fix)
        # Disposed calls (archiver dispose) keep their line: archived, then disposed of.
        gone = {s.identity for s in (await read_tombstones(store)).stones.values()}
        disposed = 0
        if gone:  # the manifest is read again only where something was disposed of
            archived, _ = await archived_in_range(store, since, until, settings.source.tz)
            disposed = len(gone & set(archived))
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
    settings: Settings, store: ObjectStore, since: datetime, until: datetime
) -> Reconciliation:
    """The manifest of the range, then the provider's listing of it, compared."""
    archived, bad = await archived_in_range(store, since, until, settings.source.tz)
    async with make_session(settings.source) as session:
        source = make_source(settings.source, ApiClient(session, settings.source))
        rec = Reconciliation(source.provider.value, since, until, settings.source.tz, archived, bad)
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


async def archived_in_range(
    store: ObjectStore, since: datetime, until: datetime, tz: tzinfo
) -> tuple[dict[Identity, ArchivedRef], int]:
    """Every manifest line of calls started in [since, until), and the unreadable lines.

    The one place reconcile reads the manifest.
    """
    refs: dict[Identity, ArchivedRef] = {}
    bad = 0
    manifests = await list_manifests(store, since, until, tz)
    async with aclosing(read_manifests(store, manifests)) as reader:
        async for manifest in reader:
            bad += len(manifest.bad_lines)
            for call in manifest.calls:
                if in_range(call, since, until):
                    refs[call.identity] = ArchivedRef(
                        call.sip_call_id, call.call_started_at, call.manifest_key
                    )
    return refs, bad


async def state_failures(settings: Settings) -> dict[Identity, str]:
    """The state's reasons for permanently failed calls; empty without a state database.

    Opened read-only: a reconcile without --fix writes nothing to the state.
    """
    async with open_state_read_only(settings.state) as state:
        return {} if state is None else await _failures(state.reports)


async def _failures(reports: Reports) -> dict[Identity, str]:
    # The kind first (a value to sort and count by), then the words the state kept.
    return {(f.provider, f.cdr_id): f"{f.kind.value}: {f.reason}" for f in await reports.failures()}


async def relined(
    settings: Settings, store: ObjectStore, calls: list[CallRecord], signer: Signer | None = None
) -> tuple[list[CallRecord], dict[Identity, str]]:
    """The missing calls the state believes archived: their kept lines re-proven against
    the stored objects and written again (:mod:`archiver.retrieval.repair`); says what it
    did. Returns the calls left to archive, and why each refused one could not be
    re-lined (the report's FAILED reason)."""
    lines: dict[Identity, ManifestEntry] = {}
    async with open_state_read_only(settings.state) as state:
        if state is not None:
            for call in calls:
                text = await state.reports.archived_line(call.provider.value, call.cdr_id)
                if text is not None:
                    lines[(call.provider.value, call.cdr_id)] = line_of(text)
    rest = [c for c in calls if (c.provider.value, c.cdr_id) not in lines]
    if not lines:
        return rest, {}
    done = await repair_lines(store, list(lines.values()), settings.source.tz)
    print(
        f"--fix: {len(lines)} missing recording(s) the state believes archived "
        "(their manifest lines are gone): re-proving each stored object",
        file=sys.stderr,
    )
    for key, entries in done.written.items():
        print(
            f"--fix: re-proved {len(entries)} stored object(s) and wrote their line(s) "
            f"again in {key} (chain {done.writer})",
            file=sys.stderr,
        )
    if done.writer is not None and signer is not None:
        origin = "".join("_" if c.isspace() else c for c in settings.storage.url)
        key, _ = await register_writer(store, signer, origin, done.writer, datetime.now(UTC))
        print(f"--fix: registered the repair chain {done.writer} ({key})", file=sys.stderr)
    elif done.writer is not None:
        print(
            f"--fix: with witnessed checkpoints, register chain {done.writer}: archiver "
            f"witness register --key KEY --writer {done.writer}",
            file=sys.stderr,
        )
    refused: dict[Identity, str] = {}
    for entry, why in done.refused:
        reason = (
            f"the state believes it archived as {entry.object_key}, but the stored object "
            f"is not re-proven ({why}): not re-lined; archive it again after checking "
            "the storage (archiver verify)"
        )
        refused[entry.identity] = reason
        print(f"--fix: {entry.describe()}: {reason}", file=sys.stderr)
    return rest, refused


async def fix(settings: Settings, calls: list[CallRecord]) -> int:
    """Archive ``calls`` now through the pipeline; 0, or 130 when stopped by a signal."""
    from archiver.commands.runtime import StopSignals, open_runtime

    print(f"--fix: archiving {len(calls)} missing recording(s) now", file=sys.stderr)
    with StopSignals() as signals:
        async with open_runtime(settings) as rt:
            signals.target = rt.pipeline.stop
            if calls:
                # The archive is asked about these calls' partitions before any is archived.
                started = [c.started_at for c in calls]
                rt.pipeline.span = (min(started), max(started) + timedelta(seconds=1))
            await rt.pipeline.run(GivenCalls(calls), stop_when_idle=True)
            if rt.pipeline.stop_requested:
                print("stopped before the end: run the same command again", file=sys.stderr)
                return ExitCode.INTERRUPTED
    return ExitCode.OK


def _identities(calls: Collection[CallRecord]) -> set[Identity]:
    return {(c.provider.value, c.cdr_id) for c in calls}


def _print(report: Report, fmt: str, *, fix: bool) -> None:
    if fmt == "json":
        sys.stdout.write(to_json(report, {"fix": "archived at once" if fix else None}))
    elif fmt == "csv":
        sys.stdout.write(to_csv(report))
    else:
        print(
            f"reconcile {report.provider} [{report.since.isoformat()}, {report.until.isoformat()})"
        )
        for line in to_lines(report):
            print(line)
    if report.bad_manifest_lines:
        print(
            f"archiver: {report.bad_manifest_lines} unreadable manifest line(s): "
            "run archiver verify",
            file=sys.stderr,
        )
