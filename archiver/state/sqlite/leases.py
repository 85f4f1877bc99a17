"""Job leases and named leases ("roles") in the SQLite state.

The SQL is in archiver/state/queries/leases.py.

A claim records the holder and the lease's end; the holder's heartbeat moves
that end forward; whatever a holder stops holding, by its end or by its lease
running out, goes back to pending, due at once. A role is a row (role, owner,
until) taken and renewed by one upsert.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import aiosqlite

from archiver.state.queries import Sql
from archiver.state.queries import leases as sql
from archiver.state.sqlite.database import Database, encode_time
from archiver.state.sqlite.jobs import count_rows

Clock = Callable[[], datetime]


class SqliteLeases:
    """:class:`archiver.state.protocols.JobLeases` on an SQLite :class:`Database`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        """Leases on ``db``; ``clock`` stamps the jobs a stop releases."""
        self._db = db
        self._clock = clock

    async def renew_leases(self, owner: str, now: datetime, lease: timedelta) -> int:
        """See :meth:`archiver.state.protocols.JobLeases.renew_leases`."""
        return await self._count(sql.RENEW, encode_time(now + lease), owner)

    async def release_transferring(self, owner: str | None = None) -> int:
        """See :meth:`archiver.state.protocols.JobLeases.release_transferring`."""
        return await self._count(sql.RELEASE_HELD, encode_time(self._clock()), owner)

    async def release_expired(self, now: datetime) -> int:
        """See :meth:`archiver.state.protocols.JobLeases.release_expired`."""
        return await self._count(sql.RELEASE_EXPIRED, encode_time(now))

    async def lease_holders(self, now: datetime) -> list[str]:
        """See :meth:`archiver.state.protocols.JobLeases.lease_holders`."""
        rows = await self._db.fetch(sql.LEASE_HOLDERS.sqlite, (encode_time(now),))
        return sorted(str(r[0]) for r in rows)

    async def _count(self, statement: Sql, *binds: object) -> int:
        return await count_rows(self._db, statement, binds)


class SqliteRoles:
    """:class:`archiver.state.protocols.Roles` on an SQLite :class:`Database`.

    Two processes racing for a free role cannot both win: SQLite runs one write
    transaction at a time, and each re-reads the row inside its own.
    """

    def __init__(self, db: Database) -> None:
        """Roles on ``db``."""
        self._db = db

    async def hold_role(self, role: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """See :meth:`archiver.state.protocols.Roles.hold_role`."""
        if not owner:
            raise ValueError("hold_role: the owner must be named")
        binds = (role, owner, encode_time(now + lease), encode_time(now))

        async def hold(db: aiosqlite.Connection) -> bool:
            return bool(list(await db.execute_fetchall(sql.HOLD_ROLE.sqlite, binds)))

        return await self._db.transact(hold)

    async def release_role(self, role: str, owner: str) -> None:
        """See :meth:`archiver.state.protocols.Roles.release_role`."""
        await count_rows(self._db, sql.RELEASE_ROLE, (role, owner))

    async def role_holder(self, role: str, now: datetime) -> str | None:
        """See :meth:`archiver.state.protocols.Roles.role_holder`."""
        rows = await self._db.fetch(sql.ROLE_HOLDER.sqlite, (role, encode_time(now)))
        return str(rows[0][0]) if rows else None
