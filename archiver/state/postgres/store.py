"""The state on PostgreSQL (asyncpg, a small pool): for several replicas on one state.

Semantics are the SQLite state's (archiver/state/sqlite/), pinned for both by
the conformance suite (tests/integration/state/). What differs is how processes
share the database: a claim is one UPDATE whose selection takes its rows
``FOR UPDATE SKIP LOCKED``, so concurrent claimers never wait on each other and
never take the same job; batches are cut under a transaction-scoped advisory
lock (batches.py); migrations run under a session advisory lock (migrations.py).

Every operation gets a pooled connection under the pool's timeout and a
per-statement deadline; a lost connection raises StateUnavailableError.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from archiver.state.postgres.batches import PostgresBatches
from archiver.state.postgres.connect import Pool, PoolConfig, Target, create_pool
from archiver.state.postgres.jobs import PostgresJobs, PostgresOutcomes, PostgresRechecks
from archiver.state.postgres.leases import PostgresLeases, PostgresRoles
from archiver.state.postgres.migrations import LATEST_VERSION, migrate, newer_schema, schema_version
from archiver.state.postgres.reports import PostgresProgress, PostgresReports

Clock = Callable[[], datetime]


def _system_clock() -> datetime:
    return datetime.now(UTC)


class PostgresState:
    """:class:`archiver.state.protocols.State` on PostgreSQL. Open with :meth:`open`."""

    def __init__(self, pool: Pool, *, clock: Clock = _system_clock) -> None:
        """The parts over an open pool on a migrated database; prefer :meth:`open`."""
        self.pool = pool
        self.availability = pool.availability
        self.jobs = PostgresJobs(pool, clock)
        self.outcomes = PostgresOutcomes(pool, clock)
        self.rechecks = PostgresRechecks(pool)
        self.leases = PostgresLeases(pool, clock)
        self.roles = PostgresRoles(pool)
        self.progress = PostgresProgress(pool, clock)
        self.batches = PostgresBatches(pool, clock)
        self.reports = PostgresReports(pool)

    @property
    def description(self) -> str:
        """Which database this is, for messages (never the password)."""
        return self.pool.target.describe()

    @classmethod
    async def open(
        cls, dsn: str, config: PoolConfig, *, clock: Clock = _system_clock
    ) -> PostgresState:
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
    async def open_read_only(cls, dsn: str, config: PoolConfig) -> PostgresState | None:
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

    async def __aenter__(self) -> PostgresState:
        """``async with`` support: the state itself."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close on leaving the ``async with`` block."""
        await self.close()

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()
