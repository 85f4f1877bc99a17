"""Exactly once whatever happened to the state: the archive is asked before a line is written.

The state database is a cache of work; the archive is the record. A state
that is new (a new machine, a deleted or reset file, ``archiver demo`` run
again) knows nothing of what was archived before, so the pipeline asks the
archive itself, by (provider, cdr id), through the local index of the
manifests (:class:`~archiver.retrieval.archived_calls.ArchivedCalls`):

1. at the start of a run, once this process holds its running marker, the
   index is brought up to date over the run's date partitions (a backfill's
   range, the daemon's lookback), one day wider each side;
2. before a job is transferred: a call the archive already holds a call line
   of is *adopted*, marked archived in the state with that line (its object
   key, SHA-256 and proof), with no download, no upload and no new line;
3. before each batch is cut, under the manifest role: the partitions of the
   lines about to be cut are listed again (a manifest object written since by
   any writer is read), and a line whose call the archive now holds is
   adopted instead of being cut into the batch.

What closes the window between (3)'s refresh and the batch's write is the
running markers (:mod:`archiver.pipeline.binding`): a process with another
state refuses to start while this one runs, and processes sharing this state
are kept apart by the state itself (one job per call). Only a writer whose
marker lapsed (stalled past its lease) or an old state's batch cut before it
was stopped and written after can still add a second line; ``verify`` reports
it as DUPLICATE and ``archiver dedupe`` repairs it (docs/compliance.md).

Requests: the refreshes cost one LIST per date partition (and per 1,000
manifest objects in it) and one GET per manifest object another writer wrote;
a manifest this process wrote is indexed from its bytes. A lookup costs no
request unless the archive holds the call (then one GET per manifest object
holding it, cached for its neighbours).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import partial
from pathlib import Path
from typing import TypeVar

from archiver.index_db import IndexDatabase
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import date_span
from archiver.models import CallRecord
from archiver.retrieval.archived_calls import ArchivedCalls
from archiver.retrieval.local_index import SCHEMA
from archiver.state.protocols import Batches, Outcomes
from archiver.storage.base import ObjectStore
from archiver.timeutil import utc_text

T = TypeVar("T")

log = logging.getLogger("archiver.pipeline")

MEMORY = Path(":memory:")


def lookback_span(now: datetime, lookback: float) -> tuple[datetime, datetime]:
    """The start times the daemon may archive: its lookback, to a day ahead (pure)."""
    return now - timedelta(seconds=lookback), now + timedelta(days=1)


def open_index(path: Path) -> IndexDatabase:
    """The local index file (shared with ``get``), or one in memory when it cannot be opened."""
    try:
        return IndexDatabase(path, SCHEMA)
    except sqlite3.Error as exc:
        log.warning(
            "the local index %s cannot be opened (%s): built in memory for this run", path, exc
        )
        return IndexDatabase(MEMORY, SCHEMA)


class ArchiveGuard:
    """Asks the archive before a call line is written (see the module docstring)."""

    def __init__(
        self, store: ObjectStore, outcomes: Outcomes, batches: Batches, db: IndexDatabase
    ) -> None:
        self._store = store
        self._outcomes = outcomes
        self._batches = batches
        self._db = db
        self.calls = ArchivedCalls(store, db)
        self._span: tuple[date, date] | None = None

    async def start(self, span: tuple[datetime, datetime] | None, tz: tzinfo) -> None:
        """Bring the index up to date over the partitions that may hold calls started in
        ``span`` [since, until) (one day wider each side: an archive written with another
        zone); None: nothing to bring up to date (each lookup asks the index as it is)."""
        if span is None:
            return
        self._span = date_span(*span, tz)
        added = await self._safely(lambda: self.calls.refresh(*self._whole()))
        log.info("local index of the manifests: %d manifest object(s) read", added)

    async def known(self, call: CallRecord) -> ManifestEntry | None:
        """The call line the archive holds for ``call``, or None."""
        return await self._safely(partial(self._find, call.provider.value, call.cdr_id))

    async def adopt(
        self, job_id: int, found: ManifestEntry, manifest_date: str, *, owner: str
    ) -> bool:
        """Mark a claimed job archived with the archive's own line; False once the lease
        is lost (another process has the job)."""
        return await self._outcomes.adopt(job_id, _dated(found), manifest_date, owner=owner)

    async def before_cut(self) -> int:
        """Set aside every archived line waiting for a batch whose call the archive now
        holds (the manifest role's holder calls it before cutting); returns how many."""
        waiting = await self._batches.waiting_lines()
        if not waiting:
            return 0
        days = {date.fromisoformat(w.manifest_date) for w in waiting}
        await self._safely(lambda: self.calls.refresh_days(days))
        adopted = 0
        for line in waiting:
            found = await self._safely(partial(self._find, line.provider, line.cdr_id))
            if found is not None and await self._batches.set_aside(
                line.job_id, _dated(found), line.manifest_date
            ):
                adopted += 1
        if adopted:
            log.warning(
                "%d call line(s) another writer wrote meanwhile were not written again", adopted
            )
        return adopted

    async def wrote(self, key: str, content: bytes) -> None:
        """A manifest object this process wrote: indexed from its bytes, not read back."""
        await self._safely(lambda: self.calls.wrote(key, content))

    async def _find(self, provider: str, cdr_id: str) -> ManifestEntry | None:
        # Through self.calls at each call: _safely may have replaced it by one in memory.
        return await self.calls.find(provider, cdr_id)

    def close(self) -> None:
        """Close the index file."""
        self._db.close()

    def _whole(self) -> tuple[date, date]:
        return self._span or (date.max, date.min)

    async def _safely(self, action: Callable[[], Awaitable[T]]) -> T:
        """``action``; if the index file is busy past SQLite's timeout (the console
        building its index in it), the index is built in memory instead and ``action``
        runs again on it."""
        try:
            return await action()
        except sqlite3.OperationalError as exc:
            if self._db.path == MEMORY:
                raise
            log.warning(
                "the local index %s is busy (%s): built in memory for this run", self._db.path, exc
            )
        self._db.close()
        self._db = IndexDatabase(MEMORY, SCHEMA)
        self.calls = ArchivedCalls(self._store, self._db)
        if self._span is not None:
            await self.calls.refresh(*self._span)
        return await action()


def _dated(found: ManifestEntry) -> ManifestEntry:
    """The line as the state keeps it: an old line without a readable archived_at gets now's."""
    if found.archived_at is not None:
        return found
    fields = {**found.fields, "archived_at": utc_text(datetime.now(UTC))}
    return ManifestEntry.from_line(fields, found.manifest_key)
