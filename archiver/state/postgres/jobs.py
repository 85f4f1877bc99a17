"""The PostgreSQL state's job queue, outcomes and rechecks (SQL: archiver/state/queries/jobs.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord
from archiver.state.base import DEFAULT_LEASE, AddResult, Job, JobState
from archiver.state.postgres.connect import Pool, changed, utc
from archiver.state.postgres.intake import add_calls
from archiver.state.queries import Sql, adoption, owned
from archiver.state.queries import jobs as sql
from archiver.state.records import check_retry_state, line_values, stored_job

Clock = Callable[[], datetime]


def job_from_row(row: Any) -> Job:
    """A Job from (id, record_json, recording_url, state, attempts, first_seen_at)."""
    job_id, stored_record, url, state, attempts, first_seen_at = row
    return stored_job(job_id, stored_record, url, state, attempts, first_seen_at)


class PostgresJobs:
    """:class:`archiver.state.protocols.JobQueue` on a PostgreSQL :class:`Pool`."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        """The queue on ``pool``; ``clock`` stamps re-queued jobs."""
        self._pool = pool
        self._clock = clock
        self._last_stamp: datetime | None = None

    async def add_calls(self, calls: Sequence[CallRecord], now: datetime) -> AddResult:
        """See :meth:`archiver.state.protocols.JobQueue.add_calls`.

        One transaction (see :mod:`archiver.state.postgres.intake`).
        """
        if not calls:
            return AddResult(new=0, updated=0, known=0)
        return await self._pool.run(lambda conn: add_calls(conn, calls, now), transaction=True)

    async def claim_due(
        self, now: datetime, limit: int, *, owner: str = "", lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """See :meth:`archiver.state.protocols.JobQueue.claim_due`.

        The selection locks its rows ``FOR UPDATE SKIP LOCKED``: a row another
        claimer is taking is skipped, not waited for, and never taken twice.
        """
        if limit <= 0:
            return []
        stamp = self._stamp(utc(now))
        binds = (utc(now), limit, owner, utc(now + lease), stamp)

        async def claim(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(sql.CLAIM_DUE.postgres, *binds))

        async def claimed(conn: asyncpg.Connection) -> list[Any] | None:
            # The connection broke before the answer: the jobs the claim took, if
            # it committed, carry its stamp (none found: it did not, or took none).
            return list(await conn.fetch(sql.CLAIMED.postgres, owner, stamp)) or None

        rows = await self._pool.run(claim, resolve=claimed)
        # RETURNING gives no order guarantee: restore "oldest due first".
        ordered = sorted(rows, key=lambda r: (r[0], r[1]))
        return [job_from_row(r[1:]) for r in ordered]

    def _stamp(self, now: datetime) -> datetime:
        """``now``, or just after the last claim's stamp: each claim's own."""
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return now

    async def next_due_at(self) -> datetime | None:
        """See :meth:`archiver.state.protocols.JobQueue.next_due_at`."""
        value: datetime | None = await self._pool.fetchval(sql.NEXT_DUE_AT.postgres)
        return value

    async def retry_failed(self) -> int:
        """See :meth:`archiver.state.protocols.JobQueue.retry_failed`."""
        return await self._pool.count(sql.RETRY_FAILED.postgres, self._clock())

    async def retry_failed_between(self, provider: str, since: datetime, until: datetime) -> int:
        """See :meth:`archiver.state.protocols.JobQueue.retry_failed_between`."""
        return await self._pool.count(
            sql.RETRY_FAILED_BETWEEN.postgres, self._clock(), provider, utc(since), utc(until)
        )


class PostgresOutcomes:
    """:class:`archiver.state.protocols.Outcomes` on a PostgreSQL :class:`Pool`."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        """Outcomes on ``pool``; ``clock`` stamps them."""
        self._pool = pool
        self._clock = clock
        self._adopted_batch = False  # batch 0 known to exist (see queries/adoption.py)

    async def mark_archived(
        self, job_id: int, entry: ManifestEntry, manifest_date: str, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.protocols.Outcomes.mark_archived`."""
        values = line_values(entry, manifest_date, utc)
        return await self._update(sql.MARK_ARCHIVED, job_id, values, owner)

    async def adopt(
        self, job_id: int, entry: ManifestEntry, manifest_date: str, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.protocols.Outcomes.adopt`."""
        if not self._adopted_batch:
            # Repeatable: ON CONFLICT DO NOTHING.
            await self._pool.count(adoption.ENSURE_ADOPTED_BATCH.postgres, self._clock())
            self._adopted_batch = True
        values = line_values(entry, manifest_date, utc)
        return await self._update(adoption.ADOPT, job_id, values, owner)

    async def mark_retry(
        self,
        job_id: int,
        state: JobState,
        reason: str,
        next_attempt_at: datetime,
        *,
        owner: str | None = None,
    ) -> bool:
        """See :meth:`archiver.state.protocols.Outcomes.mark_retry`."""
        check_retry_state(state)
        values = (str(state), reason, utc(next_attempt_at))
        return await self._update(sql.MARK_RETRY, job_id, values, owner)

    async def postpone(
        self, job_id: int, reason: str, next_attempt_at: datetime, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.protocols.Outcomes.postpone`."""
        return await self._update(sql.POSTPONE, job_id, (reason, utc(next_attempt_at)), owner)

    async def mark_failed(
        self, job_id: int, reason: str, *, kind: FailureKind, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.protocols.Outcomes.mark_failed`."""
        return await self._update(sql.MARK_FAILED, job_id, (reason, str(kind)), owner)

    async def update_recording_url(self, job_id: int, url: str) -> None:
        """See :meth:`archiver.state.protocols.Outcomes.update_recording_url`."""
        await self._update(sql.UPDATE_URL, job_id, (url,), None)

    async def _update(
        self, statement: Sql, job_id: int, values: Sequence[Any], owner: str | None
    ) -> bool:
        """Run one job's update (binds: the id, now, ``values``, then the owner if any)."""
        stamp = self._clock()
        binds = (job_id, stamp, *values)
        check: tuple[Any, ...] = (job_id, stamp)
        if owner is not None:
            statement = owned(statement, len(binds) + 1)
            binds = (*binds, owner)
            check = (*check, owner)
        committed = sql.UPDATED if owner is None else sql.UPDATED_OWNED

        async def update(conn: asyncpg.Connection) -> bool:
            status = await conn.execute(statement.postgres, *binds)
            if not changed(status):
                if await conn.fetchval(sql.JOB_EXISTS.postgres, job_id) is None:
                    raise KeyError(f"no job with id {job_id}")
            return changed(status) > 0

        async def resolve(conn: asyncpg.Connection) -> bool | None:
            # After a broken connection: the job carries this update's stamp if it
            # committed (True); otherwise the update runs again (its guard holds).
            return True if await conn.fetchval(committed.postgres, *check) else None

        return await self._pool.run(update, resolve=resolve)


class PostgresRechecks:
    """:class:`archiver.state.protocols.Rechecks` on a PostgreSQL :class:`Pool`."""

    def __init__(self, pool: Pool) -> None:
        """Rechecks on ``pool``."""
        self._pool = pool

    async def recheck_candidates(self, since: datetime, limit: int) -> list[Job]:
        """See :meth:`archiver.state.protocols.Rechecks.recheck_candidates`."""
        if limit <= 0:
            return []
        kinds = (str(FailureKind.NEVER_AVAILABLE), str(FailureKind.NO_URL))
        rows = await self._pool.fetch(sql.RECHECK_CANDIDATES.postgres, utc(since), limit, *kinds)
        return [job_from_row(r) for r in rows]

    async def recheck(self, job_id: int, url: str | None, now: datetime) -> bool:
        """See :meth:`archiver.state.protocols.Rechecks.recheck`."""
        ts = utc(now)

        async def recheck(conn: asyncpg.Connection) -> bool:
            if changed(await conn.execute(sql.RECHECK_NEW_URL.postgres, job_id, url or None, ts)):
                return True
            await conn.execute(sql.RECHECK_LATER.postgres, job_id, ts)
            return False

        # Repeatable: once the new URL is in, a second run changes nothing.
        return await self._pool.run(recheck, transaction=True)
