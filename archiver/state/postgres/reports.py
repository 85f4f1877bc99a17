"""Listing progress and reports in the PostgreSQL state (SQL: queries/progress.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from archiver.state.base import Failure, Job, JobState
from archiver.state.postgres.connect import Pool, utc
from archiver.state.postgres.jobs import job_from_row
from archiver.state.queries import jobs, progress
from archiver.state.records import stored_kind

Clock = Callable[[], datetime]


async def _value(pool: Pool, sql: str, *args: object) -> Any:
    return await pool.fetchval(sql, *args)


async def _rows(pool: Pool, sql: str, *args: object) -> list[Any]:
    return await pool.fetch(sql, *args)


class PostgresProgress:
    """:class:`archiver.state.protocols.Progress` on a PostgreSQL :class:`Pool`."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        """Progress on ``pool``; ``clock`` stamps completed windows."""
        self._pool = pool
        self._clock = clock

    async def is_window_done(self, provider: str, start: datetime, end: datetime) -> bool:
        """See :meth:`archiver.state.protocols.Progress.is_window_done`."""
        binds = (str(provider), utc(start), utc(end))
        return await _value(self._pool, progress.IS_WINDOW_DONE.postgres, *binds) is not None

    async def mark_window_done(self, provider: str, start: datetime, end: datetime) -> None:
        """See :meth:`archiver.state.protocols.Progress.mark_window_done`."""
        binds = (str(provider), utc(start), utc(end), self._clock())
        await self._pool.count(progress.MARK_WINDOW_DONE.postgres, *binds)

    async def get_checkpoint(self, provider: str) -> datetime | None:
        """See :meth:`archiver.state.protocols.Progress.get_checkpoint`."""
        value: datetime | None = await _value(
            self._pool, progress.GET_CHECKPOINT.postgres, str(provider)
        )
        return value

    async def set_checkpoint(self, provider: str, value: datetime) -> None:
        """See :meth:`archiver.state.protocols.Progress.set_checkpoint` (only forward)."""
        await self._pool.count(progress.SET_CHECKPOINT.postgres, str(provider), utc(value))


class PostgresReports:
    """:class:`archiver.state.protocols.Reports` on a PostgreSQL :class:`Pool`."""

    def __init__(self, pool: Pool) -> None:
        """Reports on ``pool``."""
        self._pool = pool

    async def counts(self) -> dict[JobState, int]:
        """See :meth:`archiver.state.protocols.Reports.counts`."""
        result = dict.fromkeys(JobState, 0)
        for state, count in await _rows(self._pool, progress.COUNTS.postgres):
            result[JobState(state)] = int(count)
        return result

    async def oldest_unarchived(self) -> datetime | None:
        """See :meth:`archiver.state.protocols.Reports.oldest_unarchived`."""
        value: datetime | None = await _value(self._pool, progress.OLDEST_UNARCHIVED.postgres)
        return value

    async def failures(self, limit: int | None = None) -> list[Failure]:
        """See :meth:`archiver.state.protocols.Reports.failures`."""
        bound = None if limit is None else max(limit, 0)
        rows = await _rows(self._pool, progress.FAILURES.postgres, bound)
        return [Failure(r[0], r[1], r[2], r[3] or "", r[4], r[5], stored_kind(r[6])) for r in rows]

    async def find_job(self, ident: str) -> Job | None:
        """See :meth:`archiver.state.protocols.Reports.find_job`."""
        ident = ident.strip()
        if not ident:
            return None
        rows = await _rows(self._pool, jobs.FIND_JOB.postgres, ident)
        return job_from_row(rows[0]) if rows else None

    async def archived_line(self, provider: str, cdr_id: str) -> str | None:
        """See :meth:`archiver.state.protocols.Reports.archived_line`."""
        rows = await _rows(self._pool, jobs.ARCHIVED_LINE.postgres, provider, cdr_id)
        return str(rows[0][0]) if rows else None
