"""Job leases and named leases ("roles") in the PostgreSQL state.

As in SQLite (archiver/state/leases.py, roles.py): a claimed job records its
holder and the lease's end; the heartbeat moves the end; what a holder stops
holding goes back to pending, due at once. A role is one row taken or renewed
by a single upsert that only overwrites it when it is free, expired or already
the owner's: of two processes racing for it, PostgreSQL makes one insert and
the other re-check the committed row, so exactly one wins.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from archiver.state.postgres.connect import Pool, utc

_RELEASE = (
    "UPDATE calls SET state = 'pending', next_attempt_at = $1, updated_at = $1,"
    " lease_owner = NULL, lease_until = NULL WHERE state = 'transferring'"
)


class JobLeases:
    """The lease part of :class:`archiver.state.postgres.store.PostgresStateStore`."""

    _pool: Pool
    _clock: Callable[[], datetime]

    async def renew_leases(self, owner: str, now: datetime, lease: timedelta) -> int:
        """See :meth:`archiver.state.base.StateStore.renew_leases`."""
        return await self._pool.count(
            "UPDATE calls SET lease_until = $1 WHERE state = 'transferring' AND lease_owner = $2",
            utc(now + lease),
            owner,
        )

    async def release_transferring(self, owner: str | None = None) -> int:
        """See :meth:`archiver.state.base.StateStore.release_transferring`."""
        return await self._pool.count(
            _RELEASE + " AND ($2::text IS NULL OR lease_owner = $2::text)", self._clock(), owner
        )

    async def release_expired(self, now: datetime) -> int:
        """See :meth:`archiver.state.base.StateStore.release_expired`.

        The lease end is re-checked on the row as committed when the update
        reaches it: a heartbeat that committed meanwhile keeps its job.
        """
        return await self._pool.count(
            _RELEASE + " AND (lease_until IS NULL OR lease_until <= $1)", utc(now)
        )

    async def lease_holders(self, now: datetime) -> list[str]:
        """See :meth:`archiver.state.base.StateStore.lease_holders`."""
        async with self._pool.connection() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT lease_owner FROM calls WHERE state = 'transferring'"
                " AND lease_until > $1 AND lease_owner IS NOT NULL",
                utc(now),
            )
        return sorted(str(r[0]) for r in rows)


class Roles:
    """The role part of :class:`archiver.state.postgres.store.PostgresStateStore`."""

    _pool: Pool

    async def hold_role(self, role: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """See :meth:`archiver.state.base.StateStore.hold_role`."""
        if not owner:
            raise ValueError("hold_role: the owner must be named")
        async with self._pool.connection() as conn:
            # RETURNING yields the row only when it was inserted or updated.
            held = await conn.fetchval(
                "INSERT INTO roles (role, owner, until) VALUES ($1, $2, $3)"
                " ON CONFLICT (role) DO UPDATE SET owner = excluded.owner,"
                " until = excluded.until WHERE roles.owner = excluded.owner OR roles.until <= $4"
                " RETURNING owner",
                role,
                owner,
                utc(now + lease),
                utc(now),
            )
        return held is not None

    async def release_role(self, role: str, owner: str) -> None:
        """See :meth:`archiver.state.base.StateStore.release_role`."""
        await self._pool.count("DELETE FROM roles WHERE role = $1 AND owner = $2", role, owner)

    async def role_holder(self, role: str, now: datetime) -> str | None:
        """See :meth:`archiver.state.base.StateStore.role_holder`."""
        async with self._pool.connection() as conn:
            holder = await conn.fetchval(
                "SELECT owner FROM roles WHERE role = $1 AND until > $2", role, utc(now)
            )
        return None if holder is None else str(holder)
