"""The state store on PostgreSQL (asyncpg, a small pool): for several replicas on one state.

Semantics are the SQLite store's (archiver/state/sqlite.py), pinned for both by
the conformance suite (tests/integration/state/). What differs is how processes
share the database: a claim is one UPDATE whose selection takes its rows
``FOR UPDATE SKIP LOCKED``, so concurrent claimers never wait on each other and
never take the same job; batches are cut under a transaction-scoped advisory
lock (batches.py); migrations run under a session advisory lock (migrations.py).

Every operation gets a pooled connection under the pool's timeout and a
per-statement deadline; a lost connection raises StateUnavailableError.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord
from archiver.state.base import DEFAULT_LEASE, AddResult, Job, JobState
from archiver.state.postgres.batches import ManifestBatches
from archiver.state.postgres.connect import Pool, PoolConfig, Target, changed, create_pool, utc
from archiver.state.postgres.intake import add_calls
from archiver.state.postgres.leases import JobLeases, Roles
from archiver.state.postgres.migrations import LATEST_VERSION, migrate, newer_schema, schema_version
from archiver.state.postgres.reads import Reads, job_from_row
from archiver.state.records import archived_line, check_retry_state

Clock = Callable[[], datetime]


def _system_clock() -> datetime:
    return datetime.now(UTC)


class PostgresStateStore(JobLeases, Roles, ManifestBatches, Reads):
    """:class:`archiver.state.base.StateStore` on PostgreSQL. Open with :meth:`open`."""

    def __init__(self, pool: Pool, *, clock: Clock = _system_clock) -> None:
        """Wrap an open pool on a migrated database; prefer :meth:`open`."""
        self._pool = pool
        self._clock = clock

    @property
    def description(self) -> str:
        """Which database this is, for messages (never the password)."""
        return self._pool.target.describe()

    @classmethod
    async def open(
        cls, dsn: str, config: PoolConfig, *, clock: Clock = _system_clock
    ) -> PostgresStateStore:
        """Connect and migrate (under the migration lock). ConfigError naming the
        host and database when it cannot be used, or a newer archiver wrote it."""
        target = Target.parse(dsn)
        pool = Pool(await create_pool(dsn, target, config, read_only=False), target, config)
        try:
            async with pool.connection() as conn:
                await migrate(conn, name=target.describe())
        except BaseException:
            await pool.close()
            raise
        return cls(pool, clock=clock)

    @classmethod
    async def open_read_only(cls, dsn: str, config: PoolConfig) -> PostgresStateStore | None:
        """The database for reading only (every transaction read-only); None when it
        has no current schema (new or older: migrating would be a write)."""
        target = Target.parse(dsn)
        pool = Pool(await create_pool(dsn, target, config, read_only=True), target, config)
        try:
            async with pool.connection() as conn:
                version = await schema_version(conn)
        except BaseException:
            await pool.close()
            raise
        if version != LATEST_VERSION:
            await pool.close()
            if version > LATEST_VERSION:
                raise newer_schema(target.describe(), version)
            return None
        return cls(pool)

    async def __aenter__(self) -> PostgresStateStore:
        """``async with`` support: the store itself."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close on leaving the ``async with`` block."""
        await self.close()

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    # -- calls and jobs ----------------------------------------------------------

    async def add_calls(self, calls: Sequence[CallRecord], now: datetime) -> AddResult:
        """See :meth:`archiver.state.base.StateStore.add_calls`.

        One transaction (see :mod:`archiver.state.postgres.intake`).
        """
        if not calls:
            return AddResult(new=0, updated=0, known=0)
        return await self._pool.run(lambda conn: add_calls(conn, calls, now), transaction=True)

    async def claim_due(
        self, now: datetime, limit: int, *, owner: str = "", lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """See :meth:`archiver.state.base.StateStore.claim_due`.

        The selection locks its rows ``FOR UPDATE SKIP LOCKED``: a row another
        claimer is taking is skipped, not waited for, and never taken twice.
        """
        if limit <= 0:
            return []
        ts = utc(now)
        async with self._pool.connection() as conn:
            rows = await conn.fetch(
                "UPDATE calls SET state = 'transferring', updated_at = $1,"
                " lease_owner = $3, lease_until = $4"
                " WHERE id IN (SELECT id FROM calls"
                " WHERE state IN ('pending', 'waiting_ready') AND next_attempt_at <= $1"
                " ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
                " RETURNING next_attempt_at, id, record_json, recording_url, state, attempts,"
                " first_seen_at",
                ts,
                limit,
                owner,
                utc(now + lease),
            )
        # RETURNING gives no order guarantee: restore "oldest due first".
        ordered = sorted(rows, key=lambda r: (r[0], r[1]))
        return [job_from_row(r[1:]) for r in ordered]

    async def mark_archived(
        self, job_id: int, entry: ManifestEntry, manifest_date: str, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.base.StateStore.mark_archived` (idempotent)."""
        line, archived_at = archived_line(entry, manifest_date)
        return await self._update(
            job_id,
            "UPDATE calls SET state = 'archived', attempts = attempts + 1, reason = NULL,"
            " failure_kind = NULL, recording_url = NULL,"
            " object_key = $3, sha256 = $4, size = $5, content_type = $6, archived_at = $7,"
            " manifest_line = $8, manifest_date = $9, updated_at = $2"
            " WHERE id = $1 AND state != 'archived'",
            (entry.object_key, entry.sha256, entry.size, entry.content_type)
            + (utc(archived_at), line, manifest_date),
            owner,
        )

    async def mark_retry(
        self,
        job_id: int,
        state: JobState,
        reason: str,
        next_attempt_at: datetime,
        *,
        owner: str | None = None,
    ) -> bool:
        """See :meth:`archiver.state.base.StateStore.mark_retry`."""
        check_retry_state(state)
        return await self._update(
            job_id,
            "UPDATE calls SET state = $3, attempts = attempts + 1, reason = $4,"
            " next_attempt_at = $5, updated_at = $2 WHERE id = $1 AND state != 'archived'",
            (str(state), reason, utc(next_attempt_at)),
            owner,
        )

    async def postpone(
        self, job_id: int, reason: str, next_attempt_at: datetime, *, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.base.StateStore.postpone`."""
        return await self._update(
            job_id,
            "UPDATE calls SET state = 'pending', reason = $3,"
            " next_attempt_at = $4, updated_at = $2 WHERE id = $1 AND state != 'archived'",
            (reason, utc(next_attempt_at)),
            owner,
        )

    async def mark_failed(
        self, job_id: int, reason: str, *, kind: FailureKind, owner: str | None = None
    ) -> bool:
        """See :meth:`archiver.state.base.StateStore.mark_failed`."""
        return await self._update(
            job_id,
            "UPDATE calls SET state = 'failed', attempts = attempts + 1, reason = $3,"
            " failure_kind = $4, recording_url = NULL, updated_at = $2"
            " WHERE id = $1 AND state != 'archived'",
            (reason, str(kind)),
            owner,
        )

    async def update_recording_url(self, job_id: int, url: str) -> None:
        """See :meth:`archiver.state.base.StateStore.update_recording_url`."""
        await self._update(
            job_id,
            "UPDATE calls SET recording_url = $3, updated_at = $2"
            " WHERE id = $1 AND state != 'archived'",
            (url,),
        )

    async def _update(
        self, job_id: int, sql: str, params: Sequence[Any], owner: str | None = None
    ) -> bool:
        """Run ``sql`` on one job ($1 the id, $2 now, then ``params``); with an ``owner``,
        only while that owner holds the job's lease. True if it changed.

        Archived jobs are spared by every such statement; an unknown id is a bug.
        """
        if owner is not None:
            n = len(params) + 3
            sql += f" AND state = 'transferring' AND lease_owner = ${n}"
            params = (*params, owner)
        async with self._pool.connection() as conn:
            status = await conn.execute(sql, job_id, self._clock(), *params)
            if not changed(status):
                found = await conn.fetchval("SELECT 1 FROM calls WHERE id = $1", job_id)
                if found is None:
                    raise KeyError(f"no job with id {job_id}")
            return changed(status) > 0

    async def recheck(self, job_id: int, url: str | None, now: datetime) -> bool:
        """See :meth:`archiver.state.base.StateStore.recheck`."""
        ts = utc(now)
        async with self._pool.transaction() as conn:
            status = await conn.execute(
                "UPDATE calls SET state = 'pending', recording_url = $2, next_attempt_at = $3,"
                " updated_at = $3, attempts = 0, reason = NULL, failure_kind = NULL"
                " WHERE id = $1 AND state IN ('no_recording', 'failed')"
                " AND $2::text IS NOT NULL AND recording_url IS DISTINCT FROM $2::text",
                job_id,
                url or None,
                ts,
            )
            if changed(status):
                return True
            await conn.execute(
                "UPDATE calls SET updated_at = $2"
                " WHERE id = $1 AND state IN ('no_recording', 'failed')",
                job_id,
                ts,
            )
        return False

    async def retry_failed(self) -> int:
        """See :meth:`archiver.state.base.StateStore.retry_failed`."""
        return await self._pool.count(
            "UPDATE calls SET state = 'pending', next_attempt_at = $1, updated_at = $1,"
            " attempts = 0, reason = NULL, failure_kind = NULL WHERE state = 'failed'",
            self._clock(),
        )

    async def retry_failed_between(self, provider: str, since: datetime, until: datetime) -> int:
        """See :meth:`archiver.state.base.StateStore.retry_failed_between`."""
        return await self._pool.count(
            "UPDATE calls SET state = 'pending', next_attempt_at = $1, updated_at = $1,"
            " attempts = 0, reason = NULL, failure_kind = NULL WHERE state = 'failed'"
            " AND provider = $2 AND started_at >= $3 AND started_at < $4",
            self._clock(),
            provider,
            utc(since),
            utc(until),
        )

    # -- listing progress ---------------------------------------------------------

    async def mark_window_done(self, provider: str, start: datetime, end: datetime) -> None:
        """See :meth:`archiver.state.base.StateStore.mark_window_done`."""
        await self._pool.count(
            "INSERT INTO windows (provider, start_at, end_at, done_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            str(provider),
            utc(start),
            utc(end),
            self._clock(),
        )

    async def set_checkpoint(self, provider: str, value: datetime) -> None:
        """See :meth:`archiver.state.base.StateStore.set_checkpoint` (only forward)."""
        await self._pool.count(
            "INSERT INTO checkpoints (provider, value) VALUES ($1, $2)"
            " ON CONFLICT (provider) DO UPDATE SET value = excluded.value"
            " WHERE excluded.value > checkpoints.value",
            str(provider),
            utc(value),
        )
