"""``reconcile --fix``: the missing calls re-lined (the state believes them archived) or
archived now through the backfill's pipeline.

The missing calls are read from the reconcile's scratch tables as they are
needed (a month never archived is every call of it) and handed to the
pipeline in pages of :data:`BATCH`, like a listing: never all in one list.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from archiver.exits import ExitCode
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord
from archiver.pipeline.intake import Intake
from archiver.retrieval.reconcile import Identity, Rows
from archiver.retrieval.repair import line_of, repair_lines
from archiver.settings import Settings
from archiver.sources import Page
from archiver.state import open_state_read_only
from archiver.storage.base import ObjectStore
from archiver.witness.note import Signer
from archiver.witness.registry import register_writer

#: Calls handed to the pipeline at once (a provider's page is 100 to 1,000).
BATCH = 500


async def relined(
    settings: Settings,
    store: ObjectStore,
    calls: Sequence[CallRecord],
    signer: Signer | None = None,
) -> tuple[Sequence[CallRecord], dict[Identity, str]]:
    """The missing calls the state believes archived: their kept lines re-proven against
    the stored objects and written again (:mod:`archiver.retrieval.repair`); says what it
    did. Returns the calls left to archive (``calls`` read again, without the re-lined
    ones), and why each refused one could not be re-lined (the report's FAILED reason)."""
    lines: dict[Identity, ManifestEntry] = {}
    async with open_state_read_only(settings.state) as state:
        if state is not None:
            for call in calls:
                text = await state.reports.archived_line(call.provider.value, call.cdr_id)
                if text is not None:
                    lines[(call.provider.value, call.cdr_id)] = line_of(text)

    def rest() -> Iterator[CallRecord]:
        return (c for c in calls if (c.provider.value, c.cdr_id) not in lines)

    left: Sequence[CallRecord] = Rows(rest, len(calls) - len(lines))
    if not lines:
        return left, {}
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
    return left, refused


class MissingCalls:
    """The calls a reconcile found missing, handed to the pipeline a page at a time.

    No window is marked done: this pipeline did not list any.
    """

    def __init__(self, calls: Sequence[CallRecord], batch: int = BATCH) -> None:
        self.calls = calls
        self.batch = batch

    async def run(self, into: Intake, stop: asyncio.Event) -> None:
        """Take the calls, once, in pages; a stop ends it between two pages."""
        calls = iter(self.calls)
        while not stop.is_set() and (page := list(itertools.islice(calls, self.batch))):
            await into.take(Page(records=page))


def span(calls: Sequence[CallRecord]) -> tuple[datetime, datetime] | None:
    """The first call's start to one second after the last's (one reading of ``calls``)."""
    first = last = None
    for call in calls:
        first = call.started_at if first is None else min(first, call.started_at)
        last = call.started_at if last is None else max(last, call.started_at)
    if first is None or last is None:
        return None
    return first, last + timedelta(seconds=1)


async def fix(settings: Settings, calls: Sequence[CallRecord]) -> int:
    """Archive ``calls`` now through the pipeline; 0, or 130 when stopped by a signal."""
    from archiver.commands.runtime import StopSignals, open_runtime

    print(f"--fix: archiving {len(calls)} missing recording(s) now", file=sys.stderr)
    with StopSignals() as signals:
        async with open_runtime(settings) as rt:
            signals.target = rt.pipeline.stop
            # The archive is asked about these calls' partitions before any is archived.
            if (between := span(calls)) is not None:
                rt.pipeline.span = between
            await rt.pipeline.run(MissingCalls(calls), stop_when_idle=True)
            if rt.pipeline.stop_requested:
                print("stopped before the end: run the same command again", file=sys.stderr)
                return ExitCode.INTERRUPTED
    return ExitCode.OK
