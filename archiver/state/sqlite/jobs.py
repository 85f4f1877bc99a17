"""The SQLite state's job queue, outcomes and rechecks (SQL: archiver/state/queries/jobs.py).

A job's outcome updates issued while the connection is busy are committed
together in one transaction (:mod:`archiver.state.sqlite.grouped`), each
caller returning after that commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord
from archiver.state.base import DEFAULT_LEASE, AddResult, Job, JobState
from archiver.state.queries import Sql, adoption, owned
from archiver.state.queries import jobs as sql
from archiver.state.records import (
    check_retry_state,
    line_values,
    record_json,
    stored_job,
)
from archiver.state.sqlite.database import Database, decode_time, encode_time
from archiver.state.sqlite.grouped import GroupedUpdates

Clock = Callable[[], datetime]


def job_from_row(row: Iterable[Any]) -> Job:
    """A Job from (id, record_json, recording_url, state, attempts, first_seen_at)."""
    job_id, stored_record, url, state, attempts, first_seen_at = row
    return stored_job(job_id, stored_record, url, state, attempts, decode_time(first_seen_at))


class SqliteJobs:
    """:class:`archiver.state.protocols.JobQueue` on an SQLite :class:`Database`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """The queue on ``db``; ``clock`` stamps re-queued jobs."""
        self._db = db
        self._clock = clock

    async def add_calls(self, calls: Sequence[CallRecord], now: datetime) -> AddResult:
        """See :meth:`archiver.state.protocols.JobQueue.add_calls`."""
        if not calls:
            return AddResult(new=0, updated=0, known=0)
        ts = encode_time(now)
        rows = [
            (
                str(c.provider),
                c.cdr_id,
                c.sip_call_id,
                encode_time(c.started_at),
                record_json(c),
                c.recording_url or None,
                JobState.PENDING if c.recording_url else JobState.NO_RECORDING,
            )
            for c in calls
        ]
        with_url = [r for r in rows if r[5] is not None]

        def add(db: sqlite3.Connection) -> AddResult:
            # Two passes tell "new" from "updated" exactly: the insert ignores
            # known calls, then the update touches only those whose URL changed.
            # Both walk the page in order, so a CDR repeated inside one page
            # behaves as if the pages had come one by one.
            cur = db.executemany(sql.INSERT_CALL.sqlite, [(*r, ts) for r in rows])
            new = cur.rowcount
            cur = db.executemany(sql.UPDATE_CALL.sqlite, [(*r[:6], ts) for r in with_url])
            updated = cur.rowcount if with_url else 0
            return AddResult(new=new, updated=updated, known=len(calls) - new - updated)

        return await self._db.transact_now(add)

    async def claim_due(
        self, now: datetime, limit: int, *, owner: str = "", lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """See :meth:`archiver.state.protocols.JobQueue.claim_due`.

        The returned jobs' ``state`` is TRANSFERRING: what the store now holds.
        """
        if limit <= 0:
            return []
        ts = encode_time(now)
        binds = (ts, limit, owner, encode_time(now + lease), ts)

        def claim(db: sqlite3.Connection) -> list[Any]:
            return db.execute(sql.CLAIM_DUE.sqlite, binds).fetchall()

        # A failed transaction is rolled back whole: repeating the claim is safe.
        rows = await self._db.transact_now(claim)
        # RETURNING gives no order guarantee: restore "oldest due first".
        ordered = sorted(rows, key=lambda r: (r[0], r[1]))
        return [job_from_row(r[1:]) for r in ordered]

    async def next_due_at(self) -> datetime | None:
        """See :meth:`archiver.state.protocols.JobQueue.next_due_at`."""
        rows = await self._db.fetch(sql.NEXT_DUE_AT.sqlite)
        return decode_time(rows[0][0]) if rows and rows[0][0] is not None else None

    async def retry_failed(self) -> int:
        """See :meth:`archiver.state.protocols.JobQueue.retry_failed`."""
        return await self._count(sql.RETRY_FAILED, encode_time(self._clock()))

    async def retry_failed_between(self, provider: str, since: datetime, until: datetime) -> int:
        """See :meth:`archiver.state.protocols.JobQueue.retry_failed_between`."""
        now = encode_time(self._clock())
        return await self._count(
            sql.RETRY_FAILED_BETWEEN, now, provider, encode_time(since), encode_time(until)
        )

    async def _count(self, statement: Sql, *binds: object) -> int:
        return await count_rows(self._db, statement, binds)


async def count_rows(db: Database, statement: Sql, binds: Sequence[object]) -> int:
    """Run one statement in its own transaction; how many rows it changed."""

    async def execute(conn: aiosqlite.Connection) -> int:
        cur = await conn.execute(statement.sqlite, binds)
        return cur.rowcount

    return await db.transact(execute)


class SqliteOutcomes:
    """:class:`archiver.state.protocols.Outcomes` on an SQLite :class:`Database`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Outcomes on ``db``, grouped into shared commits; ``clock`` stamps them."""
        self._db = db
        self._clock = clock
        self._updates = GroupedUpdates(db)
        self._adopted_batch = False  # batch 0 known to exist (see queries/adoption.py)

    async def mark_archived(
        self, job_id: int, entry: ManifestEntry, manifest_date: str, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.protocols.Outcomes.mark_archived`."""
        values = line_values(entry, manifest_date, encode_time)
        return await self._update(sql.MARK_ARCHIVED, job_id, values, owner)

    async def adopt(
        self, job_id: int, entry: ManifestEntry, manifest_date: str, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.protocols.Outcomes.adopt`."""
        if not self._adopted_batch:
            now = encode_time(self._clock())
            await count_rows(self._db, adoption.ENSURE_ADOPTED_BATCH, (now,))
            self._adopted_batch = True
        values = line_values(entry, manifest_date, encode_time)
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
        values = (str(state), reason, encode_time(next_attempt_at))
        return await self._update(sql.MARK_RETRY, job_id, values, owner)

    async def postpone(
        self, job_id: int, reason: str, next_attempt_at: datetime, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.protocols.Outcomes.postpone`."""
        values = (reason, encode_time(next_attempt_at))
        return await self._update(sql.POSTPONE, job_id, values, owner)

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
        binds = (job_id, encode_time(self._clock()), *values)
        if owner is not None:
            statement = owned(statement, len(binds) + 1)
            binds = (*binds, owner)
        # Grouped with the other updates queued meanwhile into one transaction;
        # a group that failed was rolled back, so the update is run again whole.
        return await self._db.ride(lambda: self._updates.run(job_id, statement.sqlite, binds))


class SqliteRechecks:
    """:class:`archiver.state.protocols.Rechecks` on an SQLite :class:`Database`."""

    def __init__(self, db: Database) -> None:
        """Rechecks on ``db``."""
        self._db = db

    async def recheck_candidates(self, since: datetime, limit: int) -> list[Job]:
        """See :meth:`archiver.state.protocols.Rechecks.recheck_candidates`."""
        if limit <= 0:
            return []
        kinds = (str(FailureKind.NEVER_AVAILABLE), str(FailureKind.NO_URL))
        rows = await self._db.fetch(
            sql.RECHECK_CANDIDATES.sqlite, (encode_time(since), limit, *kinds)
        )
        return [job_from_row(r) for r in rows]

    async def recheck(self, job_id: int, url: str | None, now: datetime) -> bool:
        """See :meth:`archiver.state.protocols.Rechecks.recheck`."""
        ts = encode_time(now)

        async def recheck(db: aiosqlite.Connection) -> bool:
            cur = await db.execute(sql.RECHECK_NEW_URL.sqlite, (job_id, url or None, ts))
            if cur.rowcount:
                return True
            await db.execute(sql.RECHECK_LATER.sqlite, (job_id, ts))
            return False

        return await self._db.transact(recheck)
