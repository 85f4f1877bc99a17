"""Job leases and named leases ("roles") in the PostgreSQL state.

The SQL is in archiver/state/queries/leases.py.

As in SQLite: a claimed job records its holder and the lease's end; the
heartbeat moves the end; what a holder stops holding goes back to pending, due
at once. A role is one row taken or renewed by a single upsert.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from archiver.state.postgres.connect import Pool, utc
from archiver.state.queries import leases as sql

Clock = Callable[[], datetime]


class PostgresLeases:
    """:class:`archiver.state.protocols.JobLeases` on a PostgreSQL :class:`Pool`."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        """Leases on ``pool``; ``clock`` stamps the jobs a stop releases."""
        self._pool = pool
        self._clock = clock

    async def renew_leases(self, owner: str, now: datetime, lease: timedelta) -> int:
        """See :meth:`archiver.state.protocols.JobLeases.renew_leases`."""
        return await self._pool.count(sql.RENEW.postgres, utc(now + lease), owner)

    async def release_transferring(self, owner: str | None = None) -> int:
        """See :meth:`archiver.state.protocols.JobLeases.release_transferring`."""
        return await self._pool.count(sql.RELEASE_HELD.postgres, self._clock(), owner)

    async def release_expired(self, now: datetime) -> int:
        """See :meth:`archiver.state.protocols.JobLeases.release_expired`."""
        return await self._pool.count(sql.RELEASE_EXPIRED.postgres, utc(now))

    async def lease_holders(self, now: datetime) -> list[str]:
        """See :meth:`archiver.state.protocols.JobLeases.lease_holders`."""
        rows = await self._pool.fetch(sql.LEASE_HOLDERS.postgres, utc(now))
        return sorted(str(r[0]) for r in rows)


class PostgresRoles:
    """:class:`archiver.state.protocols.Roles` on a PostgreSQL :class:`Pool`."""

    def __init__(self, pool: Pool) -> None:
        """Roles on ``pool``."""
        self._pool = pool

    async def hold_role(self, role: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """See :meth:`archiver.state.protocols.Roles.hold_role`."""
        if not owner:
            raise ValueError("hold_role: the owner must be named")
        # Repeatable: a second run finds the row the owner's and renews it again.
        held = await self._pool.fetchval(
            sql.HOLD_ROLE.postgres, role, owner, utc(now + lease), utc(now)
        )
        return held is not None

    async def release_role(self, role: str, owner: str) -> None:
        """See :meth:`archiver.state.protocols.Roles.release_role`."""
        await self._pool.count(sql.RELEASE_ROLE.postgres, role, owner)

    async def role_holder(self, role: str, now: datetime) -> str | None:
        """See :meth:`archiver.state.protocols.Roles.role_holder`."""
        holder = await self._pool.fetchval(sql.ROLE_HOLDER.postgres, role, utc(now))
        return None if holder is None else str(holder)
