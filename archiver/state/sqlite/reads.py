"""Listing progress and reports in the SQLite state (SQL: archiver/state/queries/progress.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from archiver.state.base import Failure, Job, JobState
from archiver.state.queries import jobs, progress
from archiver.state.records import stored_kind
from archiver.state.sqlite.database import Database, decode_time, encode_time
from archiver.state.sqlite.jobs import count_rows, job_from_row

Clock = Callable[[], datetime]


class SqliteProgress:
    """:class:`archiver.state.protocols.Progress` on an SQLite :class:`Database`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Progress on ``db``; ``clock`` stamps completed windows."""
        self._db = db
        self._clock = clock

    async def is_window_done(self, provider: str, start: datetime, end: datetime) -> bool:
        """See :meth:`archiver.state.protocols.Progress.is_window_done`."""
        binds = (str(provider), encode_time(start), encode_time(end))
        return bool(await self._db.fetch(progress.IS_WINDOW_DONE.sqlite, binds))

    async def mark_window_done(self, provider: str, start: datetime, end: datetime) -> None:
        """See :meth:`archiver.state.protocols.Progress.mark_window_done`."""
        binds = (str(provider), encode_time(start), encode_time(end), encode_time(self._clock()))
        await count_rows(self._db, progress.MARK_WINDOW_DONE, binds)

    async def get_checkpoint(self, provider: str) -> datetime | None:
        """See :meth:`archiver.state.protocols.Progress.get_checkpoint`."""
        rows = await self._db.fetch(progress.GET_CHECKPOINT.sqlite, (str(provider),))
        return decode_time(rows[0][0]) if rows else None

    async def set_checkpoint(self, provider: str, value: datetime) -> None:
        """See :meth:`archiver.state.protocols.Progress.set_checkpoint`."""
        await count_rows(self._db, progress.SET_CHECKPOINT, (str(provider), encode_time(value)))


class SqliteReports:
    """:class:`archiver.state.protocols.Reports` on an SQLite :class:`Database`."""

    def __init__(self, db: Database) -> None:
        """Reports on ``db``."""
        self._db = db

    async def counts(self) -> dict[JobState, int]:
        """See :meth:`archiver.state.protocols.Reports.counts`."""
        result = dict.fromkeys(JobState, 0)
        for state, count in await self._db.fetch(progress.COUNTS.sqlite):
            result[JobState(state)] = int(count)
        return result

    async def oldest_unarchived(self) -> datetime | None:
        """See :meth:`archiver.state.protocols.Reports.oldest_unarchived`."""
        rows = await self._db.fetch(progress.OLDEST_UNARCHIVED.sqlite)
        return decode_time(rows[0][0]) if rows and rows[0][0] is not None else None

    async def failures(self, limit: int | None = None) -> list[Failure]:
        """See :meth:`archiver.state.protocols.Reports.failures`."""
        bound = -1 if limit is None else max(limit, 0)
        rows = await self._db.fetch(progress.FAILURES.sqlite, (bound,))
        return [
            Failure(r[0], r[1], r[2], r[3] or "", r[4], decode_time(r[5]), stored_kind(r[6]))
            for r in rows
        ]

    async def find_job(self, ident: str) -> Job | None:
        """See :meth:`archiver.state.protocols.Reports.find_job`."""
        ident = ident.strip()
        if not ident:
            return None
        rows = await self._db.fetch(jobs.FIND_JOB.sqlite, (ident,))
        return job_from_row(rows[0]) if rows else None

    async def archived_line(self, provider: str, cdr_id: str) -> str | None:
        """See :meth:`archiver.state.protocols.Reports.archived_line`."""
        rows = await self._db.fetch(jobs.ARCHIVED_LINE.sqlite, (provider, cdr_id))
        return str(rows[0][0]) if rows else None
