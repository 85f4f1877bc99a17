"""The reading side of the PostgreSQL state: due times, counts, failures, lookups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from archiver.failures import FailureKind
from archiver.state.base import Failure, Job, JobState
from archiver.state.postgres.connect import Pool, utc
from archiver.state.records import stored_job, stored_kind


def job_from_row(row: Sequence[Any]) -> Job:
    """A Job from (id, record_json, recording_url, state, attempts, first_seen_at)."""
    job_id, stored_record, url, state, attempts, first_seen_at = row
    return stored_job(job_id, stored_record, url, state, attempts, first_seen_at)


class Reads:
    """The reading part of :class:`archiver.state.postgres.store.PostgresStateStore`."""

    _pool: Pool

    async def _value(self, sql: str, *args: object) -> Any:
        async with self._pool.connection() as conn:
            return await conn.fetchval(sql, *args)

    async def _rows(self, sql: str, *args: object) -> list[Any]:
        async with self._pool.connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def recheck_candidates(self, since: datetime, limit: int) -> list[Job]:
        """See :meth:`archiver.state.base.StateStore.recheck_candidates`."""
        if limit <= 0:
            return []
        rows = await self._rows(
            "SELECT id, record_json, recording_url, state, attempts, first_seen_at FROM calls"
            " WHERE (state = 'no_recording' OR (state = 'failed'"
            " AND failure_kind IN ($3, $4))) AND started_at >= $1"
            " ORDER BY updated_at, id LIMIT $2",
            utc(since),
            limit,
            str(FailureKind.NEVER_AVAILABLE),
            str(FailureKind.NO_URL),
        )
        return [job_from_row(r) for r in rows]

    async def next_due_at(self) -> datetime | None:
        """See :meth:`archiver.state.base.StateStore.next_due_at`."""
        value: datetime | None = await self._value(
            "SELECT min(next_attempt_at) FROM calls WHERE state IN ('pending', 'waiting_ready')"
        )
        return value

    async def oldest_unarchived(self) -> datetime | None:
        """See :meth:`archiver.state.base.StateStore.oldest_unarchived`."""
        value: datetime | None = await self._value(
            "SELECT min(first_seen_at) FROM calls"
            " WHERE state IN ('pending', 'waiting_ready', 'transferring')"
        )
        return value

    async def counts(self) -> dict[JobState, int]:
        """See :meth:`archiver.state.base.StateStore.counts`."""
        result = dict.fromkeys(JobState, 0)
        for state, count in await self._rows("SELECT state, count(*) FROM calls GROUP BY state"):
            result[JobState(state)] = int(count)
        return result

    async def failures(self, limit: int | None = None) -> list[Failure]:
        """See :meth:`archiver.state.base.StateStore.failures`."""
        rows = await self._rows(
            "SELECT provider, cdr_id, sip_call_id, reason, attempts, updated_at, failure_kind"
            " FROM calls WHERE state = 'failed' ORDER BY updated_at DESC, id DESC LIMIT $1",
            None if limit is None else max(limit, 0),
        )
        return [Failure(r[0], r[1], r[2], r[3] or "", r[4], r[5], stored_kind(r[6])) for r in rows]

    async def find_job(self, ident: str) -> Job | None:
        """See :meth:`archiver.state.base.StateStore.find_job`."""
        ident = ident.strip()
        if not ident:
            return None
        rows = await self._rows(
            "SELECT id, record_json, recording_url, state, attempts, first_seen_at FROM calls"
            " WHERE cdr_id = $1 OR sip_call_id = $1"
            " ORDER BY started_at DESC, id DESC LIMIT 1",
            ident,
        )
        return job_from_row(rows[0]) if rows else None

    async def is_window_done(self, provider: str, start: datetime, end: datetime) -> bool:
        """See :meth:`archiver.state.base.StateStore.is_window_done`."""
        found = await self._value(
            "SELECT 1 FROM windows WHERE provider = $1 AND start_at = $2 AND end_at = $3",
            str(provider),
            utc(start),
            utc(end),
        )
        return found is not None

    async def get_checkpoint(self, provider: str) -> datetime | None:
        """See :meth:`archiver.state.base.StateStore.get_checkpoint`."""
        value: datetime | None = await self._value(
            "SELECT value FROM checkpoints WHERE provider = $1", str(provider)
        )
        return value
